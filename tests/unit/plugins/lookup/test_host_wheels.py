"""The lookup the role lists a host's wheels with: its options reach plugin_utils/wheel_sources.for_host,
and a directory that is not there fails naming it."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleLookupError
from ansible.plugins.loader import lookup_loader


def _lookup():
    return lookup_loader.get("pyforkexec.isolation.host_wheels")


def test_the_options_select_the_wheels(tmp_path):
    for name in ("pyroute2-0.9.7-py3-none-any.whl", "pyforkexec-0.1.0-cp39-abi3-linux_aarch64.whl",
                 "pip-3.11/pip-26.3-py3-none-any.whl"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("")
    run = _lookup().run
    assert run([str(tmp_path)], {}, machine="x86_64", python="3.11") == ["pyroute2-0.9.7-py3-none-any.whl"]
    assert run([str(tmp_path)], {}, machine="aarch64", python="3.11", pip=True) == [
        "pyforkexec-0.1.0-cp39-abi3-linux_aarch64.whl", "pyroute2-0.9.7-py3-none-any.whl",
        "pip-3.11/pip-26.3-py3-none-any.whl"]
    assert len(run([str(tmp_path)], {}, machine="x86_64", python="3.11", every=True)) == 2


def test_a_missing_directory_is_named(tmp_path):
    with pytest.raises(AnsibleLookupError, match="no-such"):
        _lookup().run([str(tmp_path / "no-such")], {}, machine="x86_64", python="3.11")
