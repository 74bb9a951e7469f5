"""A role field written with no value (YAML's null: ``capabilities:``, ``mounts:``) is the field left out,
as ansible-core's check of the role's argument_specs takes it: the plan holds the role's defaults for it
(plugin_utils/role_problems.unset_nulls, called by the action isolated_service_plan), or, for a field
without a default, names it. Read as given, a null passed nothing to the modules and their own defaults
held instead: the service kept every capability and read the host's /proc in its own pid namespace;
``user:`` sent None to the host's probe (a traceback), ``network.peer:`` crashed the plan."""

from __future__ import annotations

import pytest
from ansible_collections.pyforkexec.isolation.plugins.action.isolated_service_plan import ActionModule
from ansible_collections.pyforkexec.isolation.plugins.plugin_utils import role_plan

DEFAULTS = dict(state="started", create_user=True, namespaces=["user", "pid", "mount", "uts", "ipc"],
                manager="direct", start_check=0.5)
# the host as the probe would say it (given: no probe runs), with the account web
HOST = dict(version="3.11", systemd=False, controllers=[], cgroup2=None, rootfs={}, spec_accounts={},
            spec_unreadable=[],
            passwd={"web": ["x", "1001", "1002", "", "/nonexistent", "/usr/sbin/nologin"]})
BRIDGE = dict(name="br-a", addresses=["10.1.0.1/24"])


def _act(services, networks=(BRIDGE,)):
    action = ActionModule.__new__(ActionModule)  # act() alone: no connection, the host given
    args = dict(services=services, networks=list(networks), defaults=DEFAULTS, venv="/opt/v",
                base_python="/usr/bin/python3", state="present", cgroup_required=True, host=HOST, created=[],
                variables=[], argument_specs=None)
    return action.act({}, args)


def _service(**fields):
    return dict(dict(name="web", user="web", argv=["/bin/true"]), **fields)


def test_a_null_field_holds_the_roles_default():
    result = _act([_service(capabilities=None, mounts=None, no_new_privs=None, hostname=None,
                            restrict_namespaces=None)])
    assert not result.get("failed"), result
    service = result["plan"][0]["service"]
    assert service["capabilities"] == dict(keep=[])
    assert service["mounts"] == [dict(type="proc", target="/proc"), role_plan.PRIVATE_SHM]
    assert service["no_new_privs"] is True
    assert service["restrict_namespaces"] == []  # (null read as given: every namespace allowed)
    assert service["hostname"] == "web"


def test_a_null_network_field_holds_the_roles_default():
    network = dict(bridge="br-a", addresses=["10.1.0.11/24"], netns=None, peer=None, interface=None)
    result = _act([_service(network=network)])
    assert not result.get("failed"), result
    planned = result["plan"][0]
    assert planned["netns"]["name"] == "web" and planned["service"]["netns"] == "web"
    veth = planned["netns"]["veths"][0]
    assert veth["peer"] == "pfe-web" and veth["name"] == "eth0"


@pytest.mark.parametrize(("services", "networks", "expected"), [
    ([_service(user=None)], [BRIDGE], "isolated_service_services[web]: a user namespace needs user"),
    ([_service(name=None)], [BRIDGE], "isolated_service_services[0].name: required, got null"),
    ([_service(network=dict(bridge=None))], [BRIDGE],
     "isolated_service_services[0].network.bridge: required, got null"),
    ([_service()], [dict(BRIDGE, name=None)], "isolated_service_networks[0].name: required, got null"),
])
def test_a_null_field_without_a_default_is_named(services, networks, expected):
    result = _act(services, networks)
    assert result.get("failed") and result["msg"].startswith(expected), result
