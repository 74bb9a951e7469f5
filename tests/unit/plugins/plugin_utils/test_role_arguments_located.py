"""What ansible-core's check of the role's argument_specs reports in an entry of a list names the entry:
``isolated_service_services.network.routess`` or ``found in 'isolated_service_services -> landlock ->
paths'`` left the reader to guess which service, and which of its paths. The role's first check (the
action isolated_service_arguments, plugin_utils/argument_specs.located_errors) fails on them first,
each error prefixed with the path of its entry."""

from __future__ import annotations

import os

import pytest
from ansible_collections.pyforkexec.isolation.plugins.action.isolated_service_arguments import ActionModule
from ansible_collections.pyforkexec.isolation.plugins.plugin_utils import argument_specs

ROLE_SPECS = os.path.join(os.path.dirname(argument_specs.__file__), os.pardir, os.pardir, "roles",
                          "isolated_service", "meta", "argument_specs.yml")


class _AsGiven:
    """A templar for values without templates."""

    def template(self, value):
        return value


def _act(**variables):
    action = ActionModule.__new__(ActionModule)  # act() alone: the variables given
    action._task_vars, action._templar = variables, _AsGiven()
    return action.act({}, dict(argument_specs=ROLE_SPECS))


def _service(name, **fields):
    return dict(name=name, argv=["/bin/true"], **fields)


@pytest.mark.parametrize(("variables", "expected"), [
    (dict(isolated_service_services=[_service("a"), _service("b", network=dict(bridge="br", routess=[]))]),
     "isolated_service_services[1].network: routess. Supported parameters include: "),
    (dict(isolated_service_services=[_service("a", landlock=dict(paths=[
        dict(path="/usr", access=["read"]), dict(path="/srv", access={"read": 1})]))]),
     "isolated_service_services[0].landlock.paths[1]: argument 'access' is of type dict"),
    (dict(isolated_service_services=[_service("a"), _service("b", state="gone")]),
     "isolated_service_services[1]: value of state must be one of: started, stopped, absent, got: gone"),
    (dict(isolated_service_services=[_service("a"), dict(name="b")]),
     "isolated_service_services[1]: state is started but all of the following are missing: argv"),
    (dict(isolated_service_networks=[dict(name="br0"), dict(name="br1", mtu="big")]),
     "isolated_service_networks[1]: argument 'mtu' is of type str"),
    (dict(isolated_service_services=[_service("a", mounts=[dict(type="proc", target="/proc"),
                                                           dict(type="tmpfs", target="/tmp", sise="1m")])]),
     "isolated_service_services[0].mounts[1]: sise. Supported parameters include: "),
])
def test_an_error_in_an_entry_names_the_entry(variables, expected):
    result = _act(**variables)
    assert result.get("failed") and result["msg"].startswith(expected), result


def test_valid_variables_and_errors_of_a_variable_itself_are_left_to_ansible_core():
    assert not _act(isolated_service_services=[_service("a", network=dict(bridge="br"))],
                    isolated_service_networks=[dict(name="br", mtu=1500)]).get("failed")
    assert not _act(isolated_service_state="gone").get("failed")  # ansible-core names it
