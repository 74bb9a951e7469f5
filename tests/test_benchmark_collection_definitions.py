"""The services benchmarks/collection generates for the role pass the role's own argument specs
(meta/argument_specs.yml, what Ansible checks before the role's first task), for every N it runs."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "roles" / "isolated_service" / "meta" / "argument_specs.yml"


def _definitions():
    spec = importlib.util.spec_from_file_location("bench_definitions", ROOT / "benchmarks" / "collection" /
                                                  "definitions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _errors(variables):
    options = yaml.safe_load(SPEC.read_text())["argument_specs"]["main"]["options"]
    return ArgumentSpecValidator(options).validate(variables).error_messages


@pytest.mark.parametrize("n", [1, 5, 10, 20])
@pytest.mark.parametrize("state", ["present", "absent"])
@pytest.mark.parametrize("contender", ["ROLE", "ROLE_EXEC"])
def test_generated_services_pass_the_role_argument_specs(n, state, contender):
    d = _definitions()
    variables = d.role_vars(n, state, getattr(d, contender))
    assert len(variables["isolated_service_services"]) == n
    assert _errors(variables) == []


def test_the_role_with_start_check_0_differs_from_the_role_in_that_and_its_names_only():
    d = _definitions()
    role, role_exec = d.role_vars(2, "present", d.ROLE), d.role_vars(2, "present", d.ROLE_EXEC)
    assert role_exec.pop("isolated_service_start_check") == 0
    assert "isolated_service_start_check" not in role  # the role's default
    names = {s["name"] for s in role["isolated_service_services"]}
    assert not names & {s["name"] for s in role_exec["isolated_service_services"]}
    assert role_exec["isolated_service_venv"] == role["isolated_service_venv"]


def test_a_field_the_role_does_not_know_is_refused():
    variables = copy.deepcopy(_definitions().role_vars(1, "present"))
    variables["isolated_service_services"][0]["read_only"] = True  # podman's name, not the role's
    assert any("read_only" in message for message in _errors(variables))


def test_the_role_and_podman_stop_their_services_with_the_same_signal():
    """A removal compares the same stop: SIGINT for both (the role's stop_signal, podman's stop_signal,
    which containers.podman takes as a number), and the program ends on it."""
    import signal

    d = _definitions()
    role = d.role_vars(3, "present")["isolated_service_services"]
    podman = d.podman_vars(3, "present", "img")["bench_containers"]
    assert {s["stop_signal"] for s in role} == {d.STOP_SIGNAL} == {"SIGINT"}
    assert {c["stop_signal"] for c in podman} == {int(getattr(signal, d.STOP_SIGNAL))}
    assert "signal.signal(signal.SIGINT," in d.SERVER
