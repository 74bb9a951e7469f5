"""The stop_timeout of a stop (state stopped or absent) is the grace the service gets: the task's when
given, else the one it runs with (as systemd's stop uses the unit's TimeoutStopSec in force); never
cut short below it, never longer than it and a bounded margin, and reported. Real daemons, whose
service ignores SIGTERM, so that only the kill at the end of its grace stops it."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import deps, service_direct
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
from ansible_collections.pyforkexec.isolation.plugins.modules import service, services

STUBBORN = ["sh", "-c", 'trap "" TERM; while :; do sleep .2; done']
MARGIN = 3  # what a stop may take beyond its grace (the daemon's end after its service's)


@pytest.fixture
def name(run_module):
    made = f"h60-{os.getpid() % 100000}"
    yield made
    if os.path.exists(paths.pid_file(made)) or os.path.exists(paths.spec_path(made)):
        gone = run_module(service, dict(name=made, state="absent", stop_timeout=0))
        assert gone.get("failed") is not True, gone


def _start(run_module, name, stop_timeout):
    result = run_module(service, dict(name=name, argv=STUBBORN, manager="direct", stop_timeout=stop_timeout,
                                      start_check=0))
    assert result.get("failed") is not True and result["state"] == "started", result
    _wait_ignoring_term(result["pid"])
    return result["pid"]


def _wait_ignoring_term(pid):
    """Until the service's shell has run its ``trap "" TERM``: start_check 0 counts a start at the exec,
    and a stop sent before the trap ends the shell at once (a stop of 1 s took 0.08 s under load)."""
    deadline = time.monotonic() + 60
    while True:
        with open(f"/proc/{pid}/status") as f:
            ignored = int(next(line for line in f if line.startswith("SigIgn:")).split()[1], 16)
        if ignored & 1 << (signal.SIGTERM - 1):
            return
        assert time.monotonic() < deadline, f"the service {pid} never ignored SIGTERM"
        time.sleep(0.01)


def _timed(run_module, module, args):
    """The module's result and its time from when it holds the host's converge lock: ansible-test runs
    these tests in several workers, and the wait for another worker's converge (7 s once) is not the
    stop's."""
    real, held = paths.converge_lock, []

    @contextlib.contextmanager
    def timed_lock():
        with real():
            held.append(time.monotonic())
            yield

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(paths, "converge_lock", timed_lock)
        result = run_module(module, args)
    assert len(held) == 1, held  # one converge: the time is its own
    return result, time.monotonic() - held[0]


def _gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] == "Z"


@pytest.mark.parametrize("state", ["absent", "stopped"])
def test_a_shorter_stop_timeout_than_the_daemons_is_the_grace_given(run_module, name, state):
    """Started with 12, stopped with 1: it took 7.5 s (the module killed at 1 + 5, the daemon's own
    was 12), reported nothing of it."""
    pid = _start(run_module, name, 12)
    result, took = _timed(run_module, service, dict(name=name, state=state, stop_timeout=1))
    assert result.get("failed") is not True and result["state"] == "stopped", result
    assert 1 <= took < 1 + MARGIN, took
    assert result["stop_timeout"] == 1, result
    assert _gone(pid)


def test_a_longer_stop_timeout_than_the_daemons_is_refused_before_anything_stops(run_module, name):
    """Started with 2, removed with 5: the daemon killed it after 2 s, cut short below the 5 asked."""
    pid = _start(run_module, name, 2)
    refused = run_module(service, dict(name=name, state="absent", stop_timeout=5))
    assert refused["failed"] is True and refused["msg"].startswith(
        f"stop_timeout: service {name} runs with stop_timeout 2 "), refused
    assert not _gone(pid) and os.path.exists(paths.spec_path(name))
    # Without one, the stop gives the one it runs with (here it was 10, the option's default).
    result, took = _timed(run_module, service, dict(name=name, state="absent"))
    assert result.get("failed") is not True and result["stop_timeout"] == 2, result
    assert 2 <= took < 2 + MARGIN, took
    assert _gone(pid)


def test_a_restart_that_lowers_the_stop_timeout_stops_with_the_new_one(run_module, name):
    pid = _start(run_module, name, 12)
    args = dict(name=name, argv=STUBBORN, manager="direct", stop_timeout=1, start_check=0)
    result, took = _timed(run_module, service, args)
    assert result.get("failed") is not True and result["actions"] == ["restart"], result
    assert 1 <= took < 1 + MARGIN, took
    assert result["stop_timeout"] == 1 and result["pid"] != pid, result
    assert _gone(pid)


def test_the_services_module_gives_each_the_grace_asked(run_module, name):
    pid = _start(run_module, name, 12)
    result, took = _timed(run_module, services, dict(services=[dict(name=name, state="absent",
                                                                    stop_timeout=1)]))
    assert result.get("failed") is not True, result
    assert 1 <= took < 1 + MARGIN, took
    assert result["services"][name]["stop_timeout"] == 1, result
    assert _gone(pid)
    pid = _start(run_module, name, 1)
    refused = run_module(services, dict(services=[dict(name=name, state="absent", stop_timeout=4)]))
    assert refused["failed"] is True and "stop_timeout: service" in refused["msg"], refused
    assert not _gone(pid)


def test_a_stop_whose_daemon_hangs_leaves_nothing_of_the_service(run_module, name):
    """A daemon frozen (SIGSTOP) when its service is stopped: the module kills the service at the end of
    its grace, then the daemon; what the service had started in its own cgroup (here a setsid'd sleep,
    out of its process group) and the cgroup went only with the daemon's own stop, so they were left,
    and the task said "stopped". They are swept as that stop would have."""
    argv = ["sh", "-c", 'setsid sleep 1000 & trap "" TERM; while :; do sleep .2; done']
    started = run_module(service, dict(name=name, argv=argv, manager="direct", stop_timeout=1, start_check=0))
    assert started.get("failed") is not True and started["state"] == "started", started
    cgroup = service_direct.own_cgroup(name)
    assert cgroup is not None
    deadline = time.monotonic() + 60
    while len(deps.pyforkexec.sandbox.cgroup.members(cgroup)) < 3:  # sh, sleep, the setsid'd sleep
        assert time.monotonic() < deadline, "the service did not start its sleeps"
        time.sleep(0.05)
    members = [int(pid) for pid in deps.pyforkexec.sandbox.cgroup.members(cgroup)]
    with open(paths.pid_file(name)) as f:
        daemon = int(f.read().split()[0])
    os.kill(daemon, signal.SIGSTOP)
    try:
        result = run_module(service, dict(name=name, state="stopped"))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(daemon, signal.SIGCONT)
    assert result.get("failed") is not True and result["state"] == "stopped", result
    assert all(_gone(pid) for pid in members), [p for p in members if not _gone(p)]
    assert not os.path.exists(cgroup)
    assert not os.path.exists(paths.pid_file(name))
