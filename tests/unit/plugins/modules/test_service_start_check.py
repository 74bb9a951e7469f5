"""start_check: a service the task started is reported started only once its process has execed and
stayed up through the window; one that failed to spawn or died within it fails the task with its cause
and is left stopped. Real services under the real pyforkexec daemon (manager=direct) and, where PID 1
is systemd, under systemd (Type=notify units; these skip elsewhere, and run in the molecule ``vm``
guests' suite)."""

from __future__ import annotations

import os

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
from ansible_collections.pyforkexec.isolation.plugins.modules import service, services

# Stops promptly on SIGTERM, even as PID 1 of its PID namespace.
GOOD = ["sh", "-c", "trap 'exit 0' TERM; echo up; while :; do sleep 0.2; done"]
# A program found and executable, that execve still refuses (no format it knows): the start fails at the
# exec, where a missing one is refused by the module first (test_service_converge_safety).
UNRUNNABLE_PATH = f"/tmp/pyforkexec-test-unrunnable-{os.getpid()}"
MISSING = [UNRUNNABLE_PATH]
DIES = ["sh", "-c", "echo going down >&2; sleep 0.1; exit 1"]
SYSTEMD = pytest.mark.skipif(not paths.systemd_booted(), reason="PID 1 is not systemd here (its Type=notify "
                             "units are checked where it is: the molecule vm guests)")


@pytest.fixture(autouse=True)  # (ansible-test forks each test: a wider scope is never torn down)
def unrunnable():
    with open(UNRUNNABLE_PATH, "wb") as f:
        f.write(b"\x00not a program\n")
    os.chmod(UNRUNNABLE_PATH, 0o755)
    yield
    os.unlink(UNRUNNABLE_PATH)


@pytest.fixture
def names(run_module, unique_name):
    """Service names, each removed after the test under both managers."""
    made = []

    def name():
        made.append(unique_name())
        return made[-1]

    yield name
    for made_name in made:
        gone = run_module(service, dict(name=made_name, state="absent"))
        assert gone.get("failed") is not True, gone


def _options(name, argv, manager, **extra):
    return dict(name=name, argv=argv, manager=manager, namespaces=["uts"], hostname=name, **extra)


def _running(name, manager):
    return paths.main_pid(name, manager)[1]


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # reaped before the open, or between it and the read
        return False


def check_good(run_module, name, manager):
    result = run_module(service, _options(name, GOOD, manager))
    assert result.get("failed") is not True, result
    assert result["changed"] is True and result["state"] == "started", result
    assert result["actions"][-1] == "start"
    assert _alive(result["pid"]) and _running(name, manager) == result["main_pid"]


def check_missing(run_module, name, manager):
    result = run_module(service, _options(name, MISSING, manager))
    assert result["failed"] is True
    assert result["msg"].startswith(f"service {name} did not start"), result["msg"]
    assert "exec format error (at execve)" in result["msg"], result["msg"]
    assert _running(name, manager) is None
    _not_declared(name)


def _not_declared(name):
    """A service this task declared and could not start is not left declared (its spec and unit go
    again; its log, which holds the cause, stays)."""
    assert not os.path.exists(paths.spec_path(name)) and not os.path.exists(paths.unit_path(name))


def check_dies(run_module, name, manager, **extra):
    result = run_module(service, _options(name, DIES, manager, **extra))
    assert result["failed"] is True
    assert result["msg"].startswith(f"service {name} did not stay up: its process "), result["msg"]
    assert "ended within the 0.5s start check (start_check)" in result["msg"], result["msg"]
    assert "exited with status 1" in result["msg"], result["msg"]
    assert "going down" in (result.get("log") or result.get("journal")), result
    assert _running(name, manager) is None  # stopped: its restart policy is not left retrying
    _not_declared(name)


@pytest.mark.parametrize("manager", ["direct", pytest.param("systemd", marks=SYSTEMD)])
def test_a_good_service_is_started(run_module, names, manager):
    check_good(run_module, names(), manager)


@pytest.mark.parametrize("manager", ["direct", pytest.param("systemd", marks=SYSTEMD)])
def test_a_missing_program_fails_the_start_with_its_cause(run_module, names, manager):
    check_missing(run_module, names(), manager)


@pytest.mark.parametrize("manager", ["direct", pytest.param("systemd", marks=SYSTEMD)])
@pytest.mark.parametrize("restart", ["on-failure", "always", "no"])
def test_a_service_that_dies_within_the_window_fails_with_its_status(run_module, names, manager, restart):
    check_dies(run_module, names(), manager, restart=restart)


def test_a_restart_into_a_dying_service_fails_too(run_module, names):
    name = names()
    check_good(run_module, name, "direct")
    result = run_module(service, _options(name, DIES, "direct"))  # a changed argv: a restart
    assert result["failed"] is True and f"service {name} did not stay up" in result["msg"], result
    assert _running(name, "direct") is None


def test_start_check_0_reports_the_start_at_the_exec(run_module, names):
    """Without the window a service that dies 0.1 s after its exec is reported started: what the
    window is for. Its exec is still waited for (a missing program still fails)."""
    name = names()
    result = run_module(service, _options(name, ["sh", "-c", "sleep 0.1; exit 1"], "direct", start_check=0,
                                          restart="no"))
    assert result.get("failed") is not True and result["state"] == "started", result
    missing = run_module(service, _options(names(), MISSING, "direct", start_check=0))
    assert missing["failed"] is True and "(at execve)" in missing["msg"]


def test_start_check_is_refused_out_of_range(run_module, names):
    name = names()
    result = run_module(service, _options(name, GOOD, "direct", start_check=-1))
    assert result["failed"] is True and result["msg"].startswith("start_check: must be 0 to 3600 seconds")
    assert not os.path.exists(paths.spec_path(name))


@pytest.mark.parametrize("argv", [GOOD, MISSING, DIES])
def test_check_mode_is_unaffected(run_module, names, argv):
    name = names()
    result = run_module(service, _options(name, argv, "direct"), check_mode=True)
    assert result.get("failed") is not True, result
    assert result["changed"] is True and result["state"] == "started" and result["pid"] is None
    assert result["actions"] == [f"write {paths.spec_path(name)}", "start"]
    assert not os.path.exists(paths.spec_path(name)) and _running(name, "direct") is None


@pytest.mark.parametrize("manager", ["direct", pytest.param("systemd", marks=SYSTEMD)])
def test_the_services_module_checks_its_starts_together(run_module, names, manager):
    good, missing, dies = names(), names(), names()
    entries = [_options(good, GOOD, manager), _options(missing, MISSING, manager),
               _options(dies, DIES, manager)]
    result = run_module(services, dict(services=entries))
    assert result["failed"] is True
    assert f"services[{missing}]: service {missing} did not start" in result["msg"], result["msg"]
    assert f"services[{dies}]: service {dies} did not stay up" in result["msg"], result["msg"]
    assert good not in result["msg"]
    out = result["services"]
    assert out[good]["state"] == "started" and _alive(out[good]["pid"]) and "failed" not in out[good]
    assert out[dies]["failed"] is True and out[dies]["state"] == "stopped"
    assert out[dies]["actions"][-2:] == ["stop", f"remove {paths.spec_path(dies)}"]  # declared by this run
    _not_declared(dies)
    assert "exited with status 1" in out[dies]["msg"]
    assert out[missing]["failed"] is True and _running(missing, manager) is None
    checked = run_module(services, dict(services=entries), check_mode=True)
    assert checked.get("failed") is not True and checked["services"][dies]["state"] == "started", checked
