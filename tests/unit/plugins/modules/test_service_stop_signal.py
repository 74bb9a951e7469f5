"""stop_signal: the signal a stop sends the service (its daemon's --stop-signal, its unit's KillSignal=).
Real daemons: a service that is PID 1 of its own PID namespace and ends on SIGINT only, as
``python3 -m http.server`` does, which the kernel never hands a SIGTERM; what the stop sent and how
the service ended are read from the daemon's log, not timed. A change of stop_signal restarts a running
service (its daemon's arguments), shown in --diff and planned in check mode; another spelling of the
same signal, or SIGTERM given, changes nothing."""

from __future__ import annotations

import os
import signal
import time

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_direct
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
from ansible_collections.pyforkexec.isolation.plugins.modules import service, services
from ansible_collections.pyforkexec.isolation.tests.unit.plugins import sigint_only

SIGINT_ONLY = sigint_only.PROGRAM


@pytest.fixture
def name(service_names):
    return lambda: service_names("h131")


def _start_pid_1(run_module, name, mark, **options):
    """The SIGINT-only service as PID 1 of its PID namespace, once its handler is there; its pid."""
    args = dict(name=name, argv=["/usr/bin/python3", "-c", SIGINT_ONLY, str(mark)], manager="direct",
                namespaces=["pid"], start_check=0, **options)
    result = run_module(service, args)
    assert result.get("failed") is not True and result["state"] == "started", result
    assert result["namespaces"]["pid"]["same_as_host"] is False, result
    deadline = time.monotonic() + 60
    while not (mark.exists() and mark.read_text() == "up"):
        assert time.monotonic() < deadline, "the service never started its loop"
        time.sleep(0.01)
    return result["pid"]


def _said(name):
    """The daemon's own log lines, without their stamp and name."""
    with open(paths.log_file(name)) as f:
        return [line.split("]: ", 1)[1].rstrip("\n") for line in f if "pyforkexec-daemon[" in line]


@pytest.mark.parametrize("given", ["SIGINT", "int", "2"])
def test_a_pid_1_that_ends_on_sigint_is_stopped_by_it(run_module, name, tmp_path, given):
    """With the default SIGTERM the stop waited out its whole stop_timeout, then killed it (below)."""
    made, mark = name(), tmp_path / "mark"
    pid = _start_pid_1(run_module, made, mark, stop_signal=given, stop_timeout=60)
    result = run_module(service, dict(name=made, state="stopped"))
    assert result.get("failed") is not True and result["state"] == "stopped", result
    said = _said(made)
    assert said[-3:] == [f"stopping: SIGINT to {pid}", f"{pid} exited with status 0", "stopped"], said
    assert mark.read_text() == "interrupted"


def test_without_one_a_pid_1_that_ends_on_sigint_gets_sigterm_then_sigkill(run_module, name, tmp_path):
    made, mark = name(), tmp_path / "mark"
    pid = _start_pid_1(run_module, made, mark, stop_timeout=1)
    result = run_module(service, dict(name=made, state="stopped"))  # (absent removes the log)
    assert result.get("failed") is not True and result["state"] == "stopped", result
    assert result["stop_timeout"] == 1, result
    assert mark.read_text() == "up"  # never interrupted: the SIGTERM did not reach it
    said = [line for line in _said(made) if str(pid) in line]
    assert said[:2] == [f"started {pid}", f"stopping: SIGTERM to {pid}"], said
    # killed at the end of its grace, by the daemon or by the module (whichever came first)
    assert said[-1] == f"{pid} killed by SIGKILL", said


def test_a_change_of_stop_signal_restarts_the_service_shown_and_planned(run_module, name):
    made = name()
    args = dict(name=made, argv=["sleep", "600"], manager="direct", start_check=0)
    first = run_module(service, args)
    assert first.get("failed") is not True and first["state"] == "started", first
    # No --stop-signal for the default: a daemon started before the option is not restarted for it.
    assert "--stop-signal" not in service_direct.running_argv(first["main_pid"])
    for same in ({}, dict(stop_signal="SIGTERM"), dict(stop_signal="15")):
        again = run_module(service, dict(args, **same))
        assert again["changed"] is False and again["main_pid"] == first["main_pid"], (same, again)
    planned = run_module(service, dict(args, stop_signal="int"), check_mode=True, diff=True)
    assert planned["changed"] is True and planned["actions"] == ["restart"], planned
    daemon = [d for d in planned["diff"] if d.get("before_header") == "daemon"]
    assert len(daemon) == 1, planned["diff"]
    assert "--stop-signal" not in daemon[0]["before"]
    assert daemon[0]["after"].rstrip("\n").endswith("--stop-signal SIGINT"), daemon
    assert service_direct.running_argv(first["main_pid"]) is not None  # check mode stopped nothing
    done = run_module(service, dict(args, stop_signal="int"), diff=True)
    assert done["actions"] == ["restart"] and done["diff"][:-1] == planned["diff"][:-1], done
    assert service_direct.running_argv(done["main_pid"])[-2:] == ["--stop-signal", "SIGINT"]
    again = run_module(service, dict(args, stop_signal="SIGINT"))
    assert again["changed"] is False and again["main_pid"] == done["main_pid"], again


@pytest.mark.parametrize("module", [service, services])
def test_a_stop_with_another_stop_signal_than_the_service_runs_with_is_refused(run_module, name, module):
    """The stop is its daemon's, which sends its own: one asked for another is refused before anything
    stops, as a longer stop_timeout than the daemon's is; without one it stops with its own."""
    made = name()
    started = run_module(service, dict(name=made, argv=["sleep", "600"], manager="direct", start_check=0,
                                       stop_signal="SIGINT"))
    assert started.get("failed") is not True, started
    args = dict(name=made, state="absent", stop_signal="SIGTERM")
    refused = run_module(module, args if module is service else dict(services=[args]))
    assert refused["failed"] is True, refused
    assert f"stop_signal: service {made} runs with stop_signal SIGINT (its daemon sends it at a stop): " \
           "a stop cannot send SIGTERM" in refused["msg"], refused
    assert service_direct.running_argv(started["main_pid"]) is not None
    assert os.path.exists(paths.spec_path(made))
    stopped = run_module(service, dict(name=made, state="stopped", stop_signal="INT"))
    assert stopped.get("failed") is not True and stopped["state"] == "stopped", stopped
    assert _said(made)[-2:] == [f"{started['pid']} killed by SIGINT", "stopped"], _said(made)


@pytest.mark.parametrize("module", [service, services])
def test_a_stopped_daemon_is_stopped_as_a_running_one(run_module, name, module):
    """A daemon stopped by SIGSTOP (by hand, a debugger gone, a cgroup freezer thawed badly) left the
    module's SIGTERM pending: its service never got its stop signal, the stop waited out the whole grace
    and its margin, and ended both by SIGKILL. SIGCONT follows the SIGTERM, as systemd follows its
    KillSignal= with SIGCONT (kill_and_sigcont), so the daemon stops its service as it would have."""
    made = name()
    started = run_module(service, dict(name=made, argv=["sleep", "600"], manager="direct", start_check=0,
                                       stop_timeout=30))
    assert started.get("failed") is not True and started["state"] == "started", started
    os.kill(started["main_pid"], signal.SIGSTOP)
    begun = time.monotonic()
    args = dict(name=made, state="stopped")
    stopped = run_module(module, args if module is service else dict(services=[args]))
    took = time.monotonic() - begun
    assert stopped.get("failed") is not True, stopped
    pid, said = started["pid"], _said(made)
    assert said[-3:] == [f"stopping: SIGTERM to {pid}", f"{pid} killed by SIGTERM", "stopped"], said
    assert took < 15, took


def _state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_a_converge_while_the_service_ended_unreaped_reports_no_pid(run_module, name, tmp_path):
    """Between its service's exit and its reap, the daemon is on its way back from pyforkexec-waiter
    (an interpreter's start, 0.1-0.2 s at each restart): the service is its child still, a zombie. A
    converge then reported that pid as the running service, with the namespaces of a process that has
    none left (user and pid alone: the kernel drops the others at its exit), and judged the service's
    joins by them. Held here in between: the daemon stopped before its service ends."""
    made, go = name(), tmp_path / "go"
    args = dict(name=made, argv=["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.05; done; exit 3"],
                manager="direct", start_check=0, restart="always", namespaces=["net"])
    started = run_module(service, args)
    assert started.get("failed") is not True and started["state"] == "started", started
    assert "net" in started["namespaces"], started
    main, pid = started["main_pid"], started["pid"]
    os.kill(main, signal.SIGSTOP)
    try:
        go.touch()
        deadline = time.monotonic() + 30
        while _state(pid) != "Z":
            assert time.monotonic() < deadline, "the service never ended"
            time.sleep(0.02)
        again = run_module(service, args)
    finally:
        os.kill(main, signal.SIGCONT)
    assert again.get("failed") is not True and again["changed"] is False, again
    assert again["main_pid"] == main and again["pid"] is None and again["namespaces"] == {}, again
