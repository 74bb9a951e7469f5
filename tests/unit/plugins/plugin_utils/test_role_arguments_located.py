"""What ansible-core's check of the role's argument_specs reports in an entry of a list names the entry:
``isolated_service_services.network.routess`` or ``found in 'isolated_service_services -> landlock ->
paths'`` left the reader to guess which service, and which of its paths. The role's first check (the
action isolated_service_arguments, plugin_utils/argument_specs.located_errors) fails on them first,
each error prefixed with the path of its entry."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from ansible_collections.pyforkexec.isolation.plugins.action.isolated_service_arguments import ActionModule
from ansible_collections.pyforkexec.isolation.plugins.plugin_utils import argument_specs

ROLE_SPECS = os.path.join(os.path.dirname(argument_specs.__file__), os.pardir, os.pardir, "roles",
                          "isolated_service", "meta", "argument_specs.yml")


class _AsGiven:
    """A templar for values without templates."""

    def template(self, value):
        return value


def _act(task_vars=None, interpreter=None, **variables):
    """act() alone: the variables given; ``task_vars``, the task's own vars."""
    action = ActionModule.__new__(ActionModule)
    action._task_vars, action._templar = variables, _AsGiven()
    action._task = SimpleNamespace(vars=task_vars or {})
    return action.act({}, dict(argument_specs=ROLE_SPECS, interpreter=interpreter))


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


SET_HERE = dict(ansible_python_interpreter="/the/task/s/own")


def test_an_interpreter_that_overrides_the_task_s_vars_is_refused_first():
    """The task sets ansible_python_interpreter in its vars: another value it gets is one of higher
    precedence (extra vars...), which would override the role's task vars too."""
    result = _act(SET_HERE, "/usr/bin/python3", isolated_service_venv="/opt/v",
                  isolated_service_services=[_service("a", state="gone")])
    assert result.get("failed") and result["msg"].startswith(
        "ansible_python_interpreter: is /usr/bin/python3, set where it overrides a task's vars"), result
    assert "(isolated_service_venv, /opt/v)" in result["msg"] and "\n" not in result["msg"]


def test_the_task_s_own_interpreter_or_a_task_without_one_passes():
    assert not _act(SET_HERE, "/the/task/s/own").get("failed")
    assert not _act({}, "/usr/bin/python3").get("failed")  # nothing to compare it with
