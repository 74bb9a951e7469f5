"""The role's filter resolves a service's manager as the service module does (one decision, in
module_utils/service_paths.resolve_manager)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.pyforkexec.isolation.plugins.filter.service_manager import FilterModule
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths

service_manager = FilterModule().filters()["service_manager"]


@pytest.mark.parametrize("wanted", ["auto", "systemd", "direct"])
@pytest.mark.parametrize("booted", [True, False])
def test_the_filter_and_the_module_agree(wanted, booted):
    try:
        expected = service_paths.resolve_manager(wanted, booted=booted)
    except service_paths.ServiceError as e:
        with pytest.raises(AnsibleFilterError, match="PID 1 is not systemd"):
            service_manager(wanted, booted)
        assert "manager=systemd" in str(e)
        return
    assert service_manager(wanted, booted) == expected
    assert expected == ("systemd" if wanted == "systemd" or (wanted == "auto" and booted) else "direct")
