"""A daemon that holds its starter's converge lock (--start-lock-fd) until its start is reported can
never wedge the host's converges: one that never reports (here stopped, SIGSTOP, before its report) is
killed and reaped when its starter's start timeout fires, which fails the task and frees the lock; one
whose starter was killed outright meanwhile (nobody left to kill it) is not waited for by the next
converge longer than that timeout (and a margin) from its start, which then fails naming it. The lock
never reaches the service, at its first start or any after. Real module runs, real daemons (names
h122-sl*); the wedged daemons' tests wait out a start timeout (30 s)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_direct as direct
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
from ansible_collections.pyforkexec.isolation.plugins.modules import services
from ansible_collections.pyforkexec.isolation.tests.unit.plugins.modules import test_kill_anywhere as ka

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(os.geteuid() != 0, reason="starts daemons: needs root"),
]

# Names of each test's own: the tests run beside one another (xdist), and each cleans only its own.
HUNG, WEDGED, OTHER, FDS = "h122-sl-hung", "h122-sl-wedged", "h122-sl-other", "h122-sl-fds"
CUT = "h122-sl-cut"
OWN = {"killed_when_its_start_times_out": (HUNG,), "whose_starter_was_killed": (WEDGED, OTHER),
       "is_free_after_each": (FDS,), "leaves_no_cgroup": (CUT,)}


def _service(name):
    return dict(name=name, argv=["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.2; done"],
                manager="direct", start_check=0, cgroup={})


private_locks = ka.private_locks  # the fixture, for this module's tests too


def _module_in(ns_pid, args):
    """The service module run as ka._module_process runs it, in the mount namespace of ``ns_pid``."""
    return ka._module_process(args, prefix=ka.in_mount_namespace_of(ns_pid))


def _stopped_before_its_report(args, ns_pid=None):
    """A run of the service module for ``args`` (in the mount namespace of ``ns_pid``, when given), and
    its daemon, stopped (SIGSTOP) before it reported its start (the run still waiting for it)."""
    run = ka._module_process(args) if ns_pid is None else _module_in(ns_pid, args)
    daemon = None
    while daemon is None and run.poll() is None:
        daemon = next(iter(ka._daemons(args["name"])), None)
    assert daemon is not None, run.communicate()
    os.kill(daemon, signal.SIGSTOP)
    assert run.poll() is None, "the daemon reported its start before it could be stopped"
    return run, daemon


def _interrupted_in_its_spawn(args):
    """A run of the service module for ``args`` whose daemon was stopped (SIGSTOP) once the service's own
    cgroup exists, then the run interrupted (SIGINT) as it waited for that daemon's report; (its stdout,
    stderr, the daemon's pid), None when the report came first (then what the run did is undone)."""
    cgroup = direct.default_own_cgroup(args["name"])
    run = ka._module_process(args)
    daemon = None
    while daemon is None and run.poll() is None:
        daemon = next(iter(ka._daemons(args["name"])), None)
    while daemon is not None and run.poll() is None and not os.path.isdir(cgroup):
        pass  # (the daemon makes it just before its spawn: a tight loop, to stop it within the spawn)
    if daemon is not None:
        os.kill(daemon, signal.SIGSTOP)
        run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=120)
    if "KeyboardInterrupt" in err and "in _read_ready" in err:  # (cut while it waited for the report)
        return out, err, daemon
    if daemon is not None:
        os.kill(daemon, signal.SIGCONT)
    assert ka._ok(ka._converge(services, dict(services=[dict(name=args["name"], state="absent")])))
    return None


def _lock_free(ns_pid=None):
    from pyforkexec import host_lock

    where = host_lock.path("services")
    where = where if ns_pid is None else f"/proc/{ns_pid}/root{where}"  # (in that namespace's mounts)
    fd = os.open(where, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def _dead(pid):
    """Whether process ``pid`` has ended: gone, or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def _gone(pid):
    """Whether process ``pid`` is gone, reaped (no /proc entry, not even a zombie's)."""
    return not os.path.exists(f"/proc/{pid}")


@pytest.fixture
def clean(request):
    names = [name for end, own in OWN.items() if request.node.name.endswith(end) for name in own]
    assert names, request.node.name
    yield
    for name in names:
        for daemon in ka._daemons(name):  # (what a failed test left: stopped daemons hold the lock)
            os.kill(daemon, signal.SIGKILL)
    gone = ka._converge(services, dict(services=[dict(name=n, state="absent") for n in names]))
    assert ka._ok(gone), gone


def test_h122_a_daemon_wedged_before_its_report_is_killed_when_its_start_times_out(clean):
    """Before: the task failed at its start timeout and left the stopped daemon holding the converge
    lock, and every later converge (an absent too) waited for it for ever."""
    run, daemon = _stopped_before_its_report(_service(HUNG))
    out, _err = run.communicate(timeout=120)
    result = json.loads(out)
    assert result.get("failed") and "did not report a start" in result["msg"], result
    assert _gone(daemon)  # (and so is its hold of the lock: the absent below takes it)
    assert not os.path.exists(paths.spec_path(HUNG)) and not os.path.exists(paths.pid_file(HUNG))
    again = ka._module_process(dict(name=HUNG, state="absent", manager="direct"))
    out, _err = again.communicate(timeout=120)  # (before: for ever)
    assert ka._ok(json.loads(out)), out


def test_h122_a_converge_does_not_wait_for_ever_for_a_wedged_daemon_whose_starter_was_killed(
        clean, private_locks):
    """Before: the next converge waited for the lock for ever; now it fails once the wedged daemon is
    older than its start timeout (and a margin), naming it, and runs again once it is killed."""
    run, daemon = _stopped_before_its_report(_service(WEDGED), private_locks)
    run.kill()
    run.wait()
    assert not _lock_free(private_locks)  # (the daemon holds the lock its starter gave it)
    waiting = _module_in(private_locks, _service(OTHER))
    out, _err = waiting.communicate(timeout=120)  # (before: for ever)
    result = json.loads(out)
    assert result.get("failed") and f"pid {daemon} (" in result["msg"], result
    assert "pyforkexec.daemon" in result["msg"] and f"wedged, and its starter is gone; kill it (kill -KILL " \
        f"{daemon})" in result["msg"], result
    assert not os.path.exists(paths.spec_path(OTHER))  # (it changed nothing)
    os.kill(daemon, signal.SIGKILL)
    while not _gone(daemon):  # (reaped by PID 1, or whichever subreaper adopted it)
        pass
    assert ka._ok(ka._converge(services, dict(services=[_service(OTHER)])))


def _lock_fds(pids):
    """The (pid, fd) of ``pids`` open on the converge lock's file."""
    from pyforkexec import host_lock

    lock = os.stat(host_lock.path("services"))
    found = []
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                st = os.stat(f"/proc/{pid}/fd/{fd}")
                if (st.st_dev, st.st_ino) == (lock.st_dev, lock.st_ino):
                    found.append((pid, fd))
    return found


def _tree(pid):
    """``pid`` and its descendants."""
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        with contextlib.suppress(OSError), open(f"/proc/{found[-1]}/task/{found[-1]}/children") as f:
            todo += [int(child) for child in f.read().split()]
    return found


def test_h122_the_lock_reaches_no_start_of_the_service_and_is_free_after_each(clean, tmp_path):
    """Each start of the service (its first, one after a crash, one after a converge that changed its
    spec) lists the files its program has open as it starts: the converge lock is never among them;
    nor is it open in the daemon and its service's processes after each."""
    from pyforkexec import host_lock

    listed = tmp_path / "fds"
    program = f"for f in /proc/$$/fd/*; do readlink $f; done >> {listed}; echo . >> {listed}; " \
              "trap 'exit 0' TERM; while :; do sleep 0.2; done"

    def service(version):
        return dict(name=FDS, argv=["sh", "-c", f"{program} # v{version}"], manager="direct", start_check=0,
                    cgroup={}, restart="always", restart_sec=0.1)

    def started():
        return listed.read_text().count(".\n") if listed.exists() else 0

    def check(starts):
        while started() < starts:  # (the daemon's restart after a crash comes in its own time)
            pass
        daemon = paths.daemon_pid(FDS)
        # (not flock -n: another converge of the host, another test's, may hold the lock meanwhile)
        assert daemon is not None and not _lock_fds(_tree(daemon))
        assert host_lock.path("services") not in listed.read_text().split("\n")

    assert ka._ok(ka._converge(services, dict(services=[service(1)])))
    check(1)
    os.kill(paths.workload_pid(paths.daemon_pid(FDS)), signal.SIGKILL)  # a crash: restarted
    check(2)
    assert ka._ok(ka._converge(services, dict(services=[service(2)])))  # the spec changed: restarted
    check(3)


def test_h122_a_start_interrupted_within_the_daemons_spawn_leaves_no_cgroup(clean, tmp_path):
    """A Ctrl-C (SIGINT: KeyboardInterrupt) to a run whose daemon has made the service's own cgroup and
    not yet reported its start kills that daemon (its service dies with it, by its pdeathsig). Before:
    the own cgroup stayed behind, empty or holding what the service had forked, until a later converge of
    the service (1 run in 30 with a random cut); now it goes with the daemon."""
    forked = tmp_path / "forked"
    args = dict(_service(CUT), argv=["sh", "-c", f"sleep 1000 & echo $! > {forked}; wait"])
    cut = None
    for _attempt in range(10):  # (the report can come before the stop lands: then again)
        cut = _interrupted_in_its_spawn(args)
        if cut is not None:
            break
    assert cut is not None, "the daemon reported its start before it could be stopped, 10 times"
    _out, _err, daemon = cut
    cgroup = direct.default_own_cgroup(CUT)
    assert _gone(daemon) and not ka._daemons(CUT)
    assert not os.path.exists(cgroup), os.listdir(cgroup)
    if forked.exists() and forked.read_text().strip():  # (killed, maybe not reaped yet by its reaper)
        assert _dead(int(forked.read_text()))
