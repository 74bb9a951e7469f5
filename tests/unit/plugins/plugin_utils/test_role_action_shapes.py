"""The role's actions (plugins/action/isolated_service_*.py) refuse, naming the option, what their code
failed on with a bare exception: ``Task failed: [Errno 2] No such file or directory: '/x'`` for a
check script, wheel directory or collection root that is not there, ``Task failed: 'state'`` for
defaults or an earlier look (host) without a key the plan reads."""

from __future__ import annotations

import pytest
from ansible_collections.pyforkexec.isolation.plugins.action import (
    isolated_service_check,
    isolated_service_plan,
    isolated_service_wheels,
)
from ansible_collections.pyforkexec.isolation.plugins.plugin_utils.role_action import shape_problems


def test_a_path_that_is_not_there_is_named(tmp_path):
    existing = isolated_service_check.ActionModule.EXISTING
    (tmp_path / "script.py").write_text("")
    args = dict(script=str(tmp_path / "script.py"), wheels=str(tmp_path))
    assert shape_problems(args, existing, {}) == []
    args = dict(script=str(tmp_path), wheels=str(tmp_path / "nope"))
    assert shape_problems(args, existing, {}) == [
        f"script: {str(tmp_path)!r} is not a file of the controller",
        f"wheels: {str(tmp_path / 'nope')!r} is not a directory of the controller",
    ]
    root = isolated_service_wheels.ActionModule.EXISTING
    assert shape_problems(dict(root=""), root, {}) == ["root: '' is not a directory of the controller"]


@pytest.mark.parametrize(("given", "said"), [
    (dict(defaults={}, host=None), ["defaults: has no state", "defaults: has no create_user",
                                    "defaults: has no namespaces", "defaults: has no manager"]),
    (dict(defaults=dict(state="started", create_user=True, namespaces=[], manager="auto"),
          host=dict(version="3.11")), ["host: has no passwd", "host: has no systemd", "host: has no cgroup2",
                                       "host: has no controllers", "host: has no rootfs"]),
])
def test_a_dict_without_a_key_the_plan_reads_is_named(given, said):
    assert shape_problems(given, {}, isolated_service_plan.ActionModule.KEYS) == said
