"""A converge that runs beside another, or is interrupted, or is given a value the daemon would refuse,
loses nothing: real services under the real pyforkexec daemon (manager=direct), each run of the
module a process of its own where two must overlap."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service as svc
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_direct as direct
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
from ansible_collections.pyforkexec.isolation.plugins.modules import service, services
from ansible_collections.pyforkexec.isolation.tests.unit.plugins import name_holder
from ansible_collections.pyforkexec.isolation.tests.unit.plugins.modules import test_kill_anywhere as ka


# Stops promptly on SIGTERM, even as PID 1 of its PID namespace; its argv says which version runs.
def _argv(version):
    return ["sh", "-c", f"trap 'exit 0' TERM; while :; do sleep 0.2; done # v{version}"]


# The directory that holds ansible_collections, for a module run as a process of its own.
_COLLECTIONS = os.path.abspath(os.path.join(os.path.dirname(service.__file__), *[os.pardir] * 5))


@pytest.fixture
def name(run_module, unique_name):
    made = unique_name()
    yield made
    gone = run_module(service, dict(name=made, state="absent"))
    assert gone.get("failed") is not True, gone
    assert not os.path.exists(paths.pending_path(made))


def _module_process(args):
    """The service module run as Ansible runs it: a process given its arguments on stdin (all of them
    at once, so that two such runs overlap)."""
    env = dict(os.environ, PYTHONPATH=_COLLECTIONS)
    module = "ansible_collections.pyforkexec.isolation.plugins.modules.service"
    proc = subprocess.Popen([sys.executable, "-m", module], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd="/")
    proc.stdin.write(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    proc.stdin.close()
    proc.stdin = None  # (communicate would flush it)
    return proc


def _result(proc):
    out, err = proc.communicate(timeout=120)
    assert out, err
    return json.loads(out)


def _running_argv(name):
    main = paths.main_pid(name, "direct")[1]
    pid = paths.workload_pid(main, wait=2.0)
    with open(f"/proc/{pid}/cmdline") as f:
        return f.read().split("\0")[:-1]


def test_two_converges_of_a_new_service_at_once_leave_it_running(name):
    """Both runs found the service new and started it; the one that lost the start stopped the other's
    daemon and removed the spec (4 runs in 11): the service was gone, and both tasks failed. One at a
    time (paths.converge_lock), the second finds it running as declared."""
    args = dict(name=name, argv=_argv(1), manager="direct")
    for _round in range(8):
        procs = [_module_process(args), _module_process(args)]
        results = [_result(proc) for proc in procs]
        assert [r.get("failed", False) for r in results] == [False, False], results
        assert sorted(bool(r["changed"]) for r in results) in ([False, True], [False, False]), results
        assert _running_argv(name) == _argv(1)
        assert os.path.exists(paths.spec_path(name))
        gone = _result(_module_process(dict(name=name, state="absent")))
        assert gone.get("failed") is not True, gone


def test_a_converge_interrupted_after_its_files_is_finished_by_the_next(run_module, name, monkeypatch):
    """A Ctrl-C (or a kill) after the new spec was written and before the restart: the next run found
    the files as wanted and changed nothing, and the old version ran on for good."""
    first = run_module(service, dict(name=name, argv=_argv(1), manager="direct"))
    assert first.get("failed") is not True, first
    real_do = svc.Service.do

    def interrupted(self, verb):
        raise KeyboardInterrupt  # the run ends here, its new files written

    monkeypatch.setattr(svc.Service, "do", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_module(service, dict(name=name, argv=_argv(2), manager="direct"))
    monkeypatch.setattr(svc.Service, "do", real_do)
    assert _running_argv(name) == _argv(1)  # still the old one, the spec the new one
    check = run_module(service, dict(name=name, argv=_argv(2), manager="direct"), check_mode=True, diff=True)
    assert check["actions"] == ["restart"], check
    # The files are as wanted: the diff names the restart's cause, which no file's diff shows.
    assert [entry["before_header"] for entry in check["diff"]] == ["started from", "state"], check["diff"]
    assert "cut off before it restarted" in check["diff"][0]["before"]
    again = run_module(service, dict(name=name, argv=_argv(2), manager="direct"))
    assert again["actions"] == ["restart"] and _running_argv(name) == _argv(2), again
    assert not os.path.exists(paths.pending_path(name))
    assert run_module(service, dict(name=name, argv=_argv(2), manager="direct"))["changed"] is False


@pytest.mark.parametrize(("extra", "message"), [
    (dict(stop_timeout=2000000), "stop_timeout: must be 0 to 1000000 seconds, got 2000000"),
    (dict(argv=[]), "argv: an empty list names no program to run"),
    (dict(argv=[""]), "argv: an empty argv[0] names no program to run"),
    (dict(argv=[" "]), "argv: an empty argv[0] names no program to run"),
    (dict(argv=["/nonexistent/pfe-program"]), 'argv: "/nonexistent/pfe-program": no such file or directory'),
    (dict(argv=["/"]), 'argv: "/": permission denied'),  # execve's EACCES (a directory, not executable)
    (dict(argv=["pfe-no-such-program"]), 'argv: "pfe-no-such-program": executable file not found in $PATH'),
    (dict(argv=["sleep"], env=dict(PATH="/x")), 'argv: "sleep": executable file not found in $PATH'),
    (dict(chdir="/nonexistent/pfe-dir"), "chdir: /nonexistent/pfe-dir is not a directory here"),
    (dict(rlimits=dict(nofile=2000000000)), "rlimits.nofile: 2000000000 is above this host's fs.nr_open"),
    (dict(namespaces=["mount"], mounts=[dict(source="/nonexistent/pfe-src", target="/mnt")]),
     "mounts[0].source: /nonexistent/pfe-src does not exist here"),
])
@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check mode"])
def test_a_value_the_daemon_or_the_spec_refuses_leaves_the_running_service(
        run_module, name, extra, message, check_mode):
    """Check mode planned a restart, and the run stopped the service, then failed with the daemon's
    own option (--stop-timeout) or the spec's loader (argv): the service stayed down."""
    first = run_module(service, dict(name=name, argv=_argv(1), manager="direct"))
    refused = run_module(service, dict(dict(name=name, argv=_argv(1), manager="direct"), **extra),
                         check_mode=check_mode)
    assert refused.get("failed") is True and refused["msg"].startswith(message), refused
    assert paths.main_pid(name, "direct")[1] == first["main_pid"]
    assert _running_argv(name) == _argv(1)


def test_a_spec_written_with_another_mode_is_put_back(run_module, name):
    """The spec (0600: its env may hold secrets) changed to 0644 by hand (or left so by a run killed
    between its rename and its chmod) is made 0600 again, without a restart."""
    first = run_module(service, dict(name=name, argv=_argv(1), env=dict(TOKEN="s3cret"), manager="direct"))
    assert os.stat(paths.spec_path(name)).st_mode & 0o777 == 0o600
    os.chmod(paths.spec_path(name), 0o644)
    again = run_module(service, dict(name=name, argv=_argv(1), env=dict(TOKEN="s3cret"), manager="direct"))
    assert again["actions"] == [f"chmod 0600 {paths.spec_path(name)}"], again
    assert os.stat(paths.spec_path(name)).st_mode & 0o777 == 0o600
    assert again["main_pid"] == first["main_pid"]


def _cgroup_available():
    try:
        svc.service_direct.deps.pyforkexec.sandbox.cgroup.find_cgroup2()
    except OSError:
        return False
    return True


def _alive(pid):
    """Whether ``pid`` runs (a zombie waiting for its reaper does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not _cgroup_available(), reason="no cgroup v2 hierarchy here")
@pytest.mark.parametrize("state", ["stopped", "absent"])
def test_what_a_killed_daemon_left_in_its_cgroup_is_stopped_and_removed(run_module, name, state):
    """A daemon killed outright (SIGKILL, the OOM killer) takes its service along (pdeathsig), not what
    the service had started: a setsid'd sleep ran on in the service's cgroup, and stopped or absent
    said "stopped", changed nothing and left both behind."""
    argv = ["sh", "-c", "setsid sleep 1005 & exec sleep 1006"]
    started = run_module(service, dict(name=name, argv=argv, manager="direct", cgroup={}, start_check=0))
    assert started.get("failed") is not True, started
    path = svc.service_direct.own_cgroup(name)
    assert path is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(svc.deps.pyforkexec.sandbox.cgroup.members(path)) < 2:
        time.sleep(0.05)  # both sleeps started
    main = paths.main_pid(name, "direct")[1]
    os.kill(main, 9)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(f"/proc/{main}"):
        time.sleep(0.05)
    while time.monotonic() < deadline and len(svc.deps.pyforkexec.sandbox.cgroup.members(path)) > 1:
        time.sleep(0.05)  # the service's own sleep died with the daemon (pdeathsig)
    left = svc.deps.pyforkexec.sandbox.cgroup.members(path)
    assert len(left) == 1, "the setsid'd sleep is left in the service's cgroup"
    checked = run_module(service, dict(name=name, state=state), check_mode=True)
    assert checked["changed"] is True and checked["actions"][0] == "stop", checked
    assert svc.deps.pyforkexec.sandbox.cgroup.members(path) == left  # check mode stops nothing
    result = run_module(service, dict(name=name, state=state))
    assert result["changed"] is True and result["actions"][0] == "stop", result
    assert result["state"] == "stopped", result
    assert not os.path.exists(path)
    assert not any(_alive(pid) for pid in left)
    again = run_module(service, dict(name=name, state=state))
    assert again["changed"] is False, again


def test_a_killed_daemons_pid_file_goes_with_the_stop(run_module, name):
    """A daemon killed outright (SIGKILL) leaves its pid file, unlocked, naming its dead pid (which
    another process may have by now): state=stopped found the service stopped and left the file for
    good; the daemon's own stop removes it."""
    started = run_module(service, dict(name=name, argv=_argv(1), manager="direct", start_check=0))
    assert started.get("failed") is not True, started
    main = paths.main_pid(name, "direct")[1]
    os.kill(main, 9)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(main):
        time.sleep(0.05)
    pid_file = paths.pid_file(name)
    with open(pid_file) as f:
        assert f.read() == f"{main}\n"  # left: nothing of the daemon ran to remove it
    checked = run_module(service, dict(name=name, state="stopped"), check_mode=True)
    assert checked["changed"] is True and checked["actions"][-1] == f"remove {pid_file}", checked
    assert os.path.exists(pid_file)  # check mode removes nothing
    result = run_module(service, dict(name=name, state="stopped"))
    assert result["actions"][-1] == f"remove {pid_file}" and result["state"] == "stopped", result
    assert not os.path.exists(pid_file)
    again = run_module(service, dict(name=name, state="stopped"))
    assert again["changed"] is False, again


def test_a_pid_file_a_daemon_holds_is_not_removed_as_stale(tmp_path):
    held = tmp_path / "held.pid"
    held.write_text("1\n")
    fd = os.open(held, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert not paths.stale_pid_file(str(held)) and not paths.remove_stale_pid_file(str(held))
        assert held.exists()
    finally:
        os.close(fd)
    assert paths.stale_pid_file(str(held)) and paths.remove_stale_pid_file(str(held))
    assert not held.exists()
    assert not paths.stale_pid_file(str(held)) and not paths.remove_stale_pid_file(str(held))


@pytest.mark.skipif(not _cgroup_available(), reason="no cgroup v2 hierarchy here")
@pytest.mark.parametrize("state", ["stopped", "absent"])
def test_what_a_service_detached_ends_with_it_without_the_cgroup_option(run_module, name, state):
    """Without the cgroup option a manager=direct service had no cgroup: its stop ended its process
    group only, and what it had detached (setsid, a double fork) ran on after stopped or absent, where
    systemd ends a unit's whole control group. It now runs in its own cgroup pyforkexec/NAME."""
    argv = ["sh", "-c", "setsid sleep 1007 & exec sleep 1008"]
    started = run_module(service, dict(name=name, argv=argv, manager="direct", start_check=0))
    assert started.get("failed") is not True, started
    path = svc.service_direct.own_cgroup(name)
    assert path is not None and path.endswith(f"/pyforkexec/{name}")
    cgroups = svc.deps.pyforkexec.sandbox.cgroup
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(cgroups.members(path)) < 2:
        time.sleep(0.05)  # both sleeps started
    members = cgroups.members(path)
    assert len(members) == 2, members
    result = run_module(service, dict(name=name, state=state))
    assert result["changed"] is True and result["state"] == "stopped", result
    assert not any(_alive(pid) for pid in members)
    assert not os.path.exists(path)


@pytest.mark.parametrize("edit", ["emptied", "another pid"])
def test_a_pid_file_edited_by_hand_hides_no_daemon_and_names_no_other_process(run_module, name, edit):
    """A pid file still locked by its daemon but emptied (or naming another process) read as "not
    running": absent removed the service's files and reported it stopped, leaving the daemon and its
    service running (and a pid of another process would have been signalled); then it was an error.
    The daemon is found by its name now, what the file says is only a hint: absent stops it, and the
    process the file names is not signalled."""
    started = run_module(service, dict(name=name, argv=_argv(1), manager="direct", start_check=0))
    assert started.get("failed") is not True, started
    pid_file = paths.pid_file(name)
    with open(pid_file) as f:
        assert f.read() == f"{started['main_pid']}\n"
    bystander = subprocess.Popen(["sleep", "60"])
    with open(pid_file, "w") as f:  # the daemon keeps its lock on the same file
        f.write("" if edit == "emptied" else f"{bystander.pid}\n")
    try:
        result = run_module(service, dict(name=name, state="absent"))
        assert result.get("failed") is not True and result["actions"][0] == "stop", result
        assert ka._daemons(name) == [] and not os.path.exists(paths.spec_path(name))
        assert bystander.poll() is None  # not signalled
    finally:
        _stop_every_daemon(name)
        bystander.kill()
        bystander.wait()


@pytest.mark.skipif(not _cgroup_available(), reason="no cgroup v2 hierarchy here")
def test_a_killed_daemons_leftovers_in_nested_cgroups_go_and_the_next_start_stays_up(run_module, name):
    """What the service left in a cgroup it made under its own kept that one from removal: stopped and
    absent failed for good ("cannot be removed (in use)"). A start after a killed daemon reused the
    cgroup it had killed the leftovers of, and this kernel killed the new service at birth there."""
    root = svc.service_direct.deps.pyforkexec.sandbox.cgroup.find_cgroup2()
    script = (f"cg={root}$(grep '^0::' /proc/self/cgroup | cut -d: -f3); mkdir -p $cg/sub; "
              "sh -c \"echo \\$\\$ > $cg/sub/cgroup.procs; exec sleep 3001\" & exec sleep 3000")
    args = dict(name=name, argv=["sh", "-c", script], manager="direct", cgroup={})
    for round_ in range(2):
        started = run_module(service, dict(args, start_check=0.5))
        assert started.get("failed") is not True, started
        path = svc.service_direct.own_cgroup(name)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(svc.deps.pyforkexec.sandbox.cgroup.members(path)) < 2:
            time.sleep(0.05)
        os.kill(paths.main_pid(name, "direct")[1], 9)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(svc.deps.pyforkexec.sandbox.cgroup.members(path)) > 1:
            time.sleep(0.05)
        assert os.path.isdir(os.path.join(path, "sub"))
        left = svc.deps.pyforkexec.sandbox.cgroup.members(path)
        if round_ == 0:  # started again: it stays up, and what was left is gone
            again = run_module(service, dict(args, start_check=0.5))
            assert again.get("failed") is not True and again["actions"] == ["start"], again
            assert not any(_alive(pid) for pid in left)
            stopped = run_module(service, dict(args, state="stopped"))
            assert stopped.get("failed") is not True, stopped
        else:  # stopped: everything goes, nested cgroup included
            stopped = run_module(service, dict(args, state="stopped"))
            # (and the pid file the killed daemon left)
            assert stopped.get("failed") is not True, stopped
            assert stopped["actions"] == ["stop", f"remove {paths.pid_file(name)}"], stopped
    assert not os.path.exists(path)


def _members(path):
    return svc.deps.pyforkexec.sandbox.cgroup.members(path)


def _converge(run_module, module, args, check_mode=False):
    """``args`` (one service's) run by the service module, or by the services module as its one entry:
    that service's result (with the failure of the services module's run, if any)."""
    if module is service:
        return run_module(service, args, check_mode=check_mode)
    result = run_module(services, dict(services=[args]), check_mode=check_mode)
    return dict(result["services"][args["name"]], top_failed=result.get("failed"), top_msg=result.get("msg"))


def _kill_daemon(name, path):
    """SIGKILL to the daemon of ``name`` once both sleeps of its service run in ``path``; the pids that
    were there (the service's own dies with its daemon, by pdeathsig; the other is left)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(_members(path)) < 2:
        time.sleep(0.05)
    there = _members(path)
    assert len(there) == 2, there
    os.kill(paths.main_pid(name, "direct")[1], 9)
    return there


@pytest.mark.skipif(not _cgroup_available(), reason="no cgroup v2 hierarchy here")
@pytest.mark.parametrize("module", [service, services], ids=["service", "services"])
@pytest.mark.parametrize("cgroup", ["dropped", "moved"])
def test_a_killed_daemons_cgroup_goes_when_the_start_no_longer_names_it(run_module, name, module, cgroup):
    """Started again after its daemon was SIGKILLed, with its cgroup option dropped (or moved): the
    new daemon empties only the cgroup of the new spec, and nothing swept the old one, whose processes
    ran on for good (not even absent found them then: the spec no longer named that cgroup)."""
    argv = ["sh", "-c", "sleep 3011 & exec sleep 3012"]
    args = dict(name=name, argv=argv, manager="direct", start_check=0)
    started = _converge(run_module, module, dict(args, cgroup={}))
    assert started.get("failed") is not True, started
    path = svc.service_direct.own_cgroup(name)
    assert path is not None
    _kill_daemon(name, path)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(_members(path)) > 1:
        time.sleep(0.05)
    left = _members(path)
    assert len(left) == 1, left
    again_args = dict(args, cgroup={"path": f"pyforkexec/{name}-moved"}) if cgroup == "moved" else args
    spec = paths.spec_path(name)
    # Dropped: the default own cgroup is the same one (pyforkexec/NAME, no limits): the spec is unchanged
    # and the start empties it first.
    actions = ["stop", f"write {spec}", "start"] if cgroup == "moved" else ["start"]
    checked = _converge(run_module, module, again_args, check_mode=True)
    assert checked["actions"] == actions, checked
    assert _members(path) == left  # check mode stops nothing
    again = _converge(run_module, module, again_args)
    assert again.get("failed") is not True and again["actions"] == checked["actions"], again
    assert not any(_alive(pid) for pid in left)
    assert again["state"] == "started"
    if cgroup == "moved":
        assert not os.path.exists(path)
        assert svc.service_direct.own_cgroup(name).endswith(f"/pyforkexec/{name}-moved")
    else:
        assert svc.service_direct.own_cgroup(name) == path and not set(left) & set(_members(path))


@pytest.mark.skipif(not _cgroup_available(), reason="no cgroup v2 hierarchy here")
@pytest.mark.parametrize("module", [service, services], ids=["service", "services"])
def test_a_new_service_whose_daemon_is_killed_in_its_start_check_leaves_nothing(run_module, name, module):
    """A new service whose daemon died (SIGKILL, the OOM killer) within its start check: the task
    failed and its spec went, but with no daemon to stop nothing was stopped: what the service had
    started ran on in its cgroup, and the stale pid file stayed."""
    args = dict(name=name, argv=["sh", "-c", "sleep 3021 & exec sleep 3022"], manager="direct", cgroup={},
                start_check=4)
    found = {}

    def kill():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and svc.service_direct.own_cgroup(name) is None:
            time.sleep(0.05)
        found["path"] = svc.service_direct.own_cgroup(name)
        found["pids"] = _kill_daemon(name, found["path"])

    killer = threading.Thread(target=kill)
    killer.start()
    try:
        result = _converge(run_module, module, args)
    finally:
        killer.join()
    assert "pids" in found, "the daemon was not killed"
    failed = result.get("top_failed") if module is services else result.get("failed")
    # (Killed a moment before its start report, the daemon did not start: the other test below.)
    before_report = f"service {name} did not start: {_KILLED_BEFORE_REPORT}"
    assert failed is True and ("did not stay up" in result["msg"] or result["msg"] == before_report), result
    assert not os.path.exists(found["path"])
    assert not any(_alive(pid) for pid in found["pids"])
    for path in (paths.spec_path(name), paths.pid_file(name)):
        assert not os.path.exists(path), path
    if module is services and "did not stay up" in result["msg"]:  # (the service module's has no actions)
        assert result["state"] == "stopped", result
        assert result["actions"][-3:] == ["stop", f"remove {paths.spec_path(name)}",
                                          f"remove {paths.pid_file(name)}"], result


_KILLED_BEFORE_REPORT = "its daemon was killed by SIGKILL before it reported a start"


@pytest.mark.parametrize("module", [service, services], ids=["service", "services"])
def test_a_daemon_killed_before_its_start_report_is_named_as_the_cause(run_module, name, module):
    """The daemon of a new service killed (SIGKILL, the OOM killer) before it reported its start, so
    with nothing on its stderr: the task said "did not start: no reason given". It names the signal now,
    and leaves nothing declared."""
    from pyforkexec.service import singleton

    args = dict(name=name, argv=_argv(1), manager="direct", start_check=0)
    for _attempt in range(20):  # until the daemon is stopped before it claims its name (most times)
        found = {}

        def kill(found):
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not found:
                for pid in ka._daemons(name):
                    os.kill(pid, signal.SIGSTOP)
                    found[pid] = singleton.bound_inode(paths.pid_file(name)) is None  # not claimed: no report
                    os.kill(pid, signal.SIGKILL if found[pid] else signal.SIGCONT)

        killer = threading.Thread(target=kill, args=(found,))
        killer.start()
        try:
            result = _converge(run_module, module, args)
        finally:
            killer.join()
        if any(found.values()):
            break
        assert _converge(run_module, module, dict(name=name, state="absent")).get("failed") is not True
    else:
        pytest.fail("the daemon claimed its name before it could be stopped, 20 times")
    failed = result.get("top_failed") if module is services else result.get("failed")
    assert failed is True, result
    assert result["msg"] == f"service {name} did not start: {_KILLED_BEFORE_REPORT}", result
    for path in (paths.spec_path(name), paths.pid_file(name)):
        assert not os.path.exists(path), path
    assert ka._daemons(name) == []


# ---- a service's own cgroup is its alone --------------------------------------------------------------
# It is killed whole, with the cgroups below it, at the service's starts and stops: one another service,
# or a process of someone else's, is in was killed with it, and removed.


@pytest.fixture
def foreign(tmp_path):
    """A cgroup made by hand (under the v2 root) holding a sleep of someone else's; its path, relative to
    the root, and the sleep's pid. Both are gone after the test."""
    root = svc.deps.pyforkexec.sandbox.cgroup.find_cgroup2()
    rel = f"pfe-ut-foreign-{os.getpid() % 100000}"
    os.mkdir(os.path.join(root, rel))
    sleep = subprocess.Popen(["sleep", "600"])
    try:
        with open(os.path.join(root, rel, "cgroup.procs"), "w") as f:
            f.write(str(sleep.pid))
        yield rel, sleep.pid
    finally:
        sleep.kill()
        sleep.wait()
        with contextlib.suppress(OSError):
            os.rmdir(os.path.join(root, rel))


@pytest.mark.skipif(not _cgroup_available(), reason="no cgroup v2 hierarchy here")
@pytest.mark.parametrize("module", [service, services], ids=["service", "services"])
@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check"])
def test_a_cgroup_path_holding_someone_elses_processes_is_refused(run_module, name, foreign, module,
                                                                  check_mode):
    rel, pid = foreign
    args = dict(name=name, argv=_argv(1), manager="direct", start_check=0, cgroup=dict(path=rel))
    given = args if module is service else dict(services=[args])
    result = run_module(module, given, check_mode=check_mode)  # (services: refused by its plan)
    assert result.get("failed") is True and "cgroup.path: " in result["msg"] \
        and "already holds processes that this service did not start" in result["msg"], result
    assert _alive(pid)  # (the start killed it, the stop removed its cgroup)
    assert not os.path.exists(paths.spec_path(name)) and paths.main_pid(name, "direct")[1] is None


@pytest.mark.skipif(not _cgroup_available(), reason="no cgroup v2 hierarchy here")
@pytest.mark.parametrize("other", ["same", "inside", "around"])
def test_a_cgroup_path_of_another_services_own_is_refused(run_module, name, unique_name, other):
    first = unique_name()
    base = f"pfe-ut-shared-{os.getpid() % 100000}"
    mine, theirs = {"same": (base, base), "inside": (f"{base}/sub", base),
                    "around": (base, f"{base}/sub")}[other]
    try:
        started = run_module(service, dict(name=first, argv=_argv(1), manager="direct", start_check=0,
                                           cgroup=dict(path=theirs)))
        assert started.get("failed") is not True, started
        pid = started["pid"]
        refused = run_module(service, dict(name=name, argv=_argv(1), manager="direct", start_check=0,
                                           cgroup=dict(path=mine)))
        assert refused.get("failed") is True and refused["msg"].startswith("cgroup.path: ") \
            and f"service {first}'s own cgroup" in refused["msg"], refused
        assert _alive(pid)
        # the services module too, whether the other is on the host or in the same run
        batch = run_module(services, dict(services=[
            dict(name=first, argv=_argv(1), manager="direct", start_check=0, cgroup=dict(path=theirs)),
            dict(name=name, argv=_argv(1), manager="direct", start_check=0, cgroup=dict(path=mine))]))
        assert batch.get("failed") is True and f"services[{name}]: cgroup.path: " in batch["msg"], batch
        assert _alive(pid)
    finally:
        gone = run_module(service, dict(name=first, state="absent"))
        assert gone.get("failed") is not True, gone


def _stop_every_daemon(name):
    """SIGTERM through a pidfd to each daemon of ``name`` (one the module lost track of), each waited for."""
    for pid in ka._daemons(name):
        with contextlib.suppress(ProcessLookupError):
            fd = os.pidfd_open(pid)
            try:
                if pid in ka._daemons(name):  # (read after the open: the pidfd's process, not a successor)
                    signal.pidfd_send_signal(fd, signal.SIGTERM)
                    select.select([fd], [], [], 30)
            finally:
                os.close(fd)


def test_a_pid_file_removed_by_hand_starts_no_second_daemon_and_hides_none(run_module, name):
    """The daemon was found by its pid file's lock alone: a pid file removed by hand (rm, a cleaned
    /run/pyforkexec) while it ran made the service look stopped, and a converge started a second daemon,
    whose start emptied the service's cgroup (the first's service killed, restarted by its daemon: the
    two fought) and which a stop then stopped alone. The daemon is found by its name now (an abstract
    socket it holds while it lives): the converge finds it running, a restart and a stop replace and
    stop it, whether its pid file is there or not."""
    args = dict(name=name, argv=_argv(1), manager="direct", restart="always", start_check=0)
    try:
        first = run_module(service, args)
        assert first.get("failed") is not True, first
        os.unlink(paths.pid_file(name))
        again = run_module(service, args)
        assert again.get("failed") is not True and again["changed"] is False, again
        assert (again["main_pid"], again["pid"]) == (first["main_pid"], first["pid"])
        assert ka._daemons(name) == [first["main_pid"]] and not os.path.exists(paths.pid_file(name))
        restarted = run_module(service, dict(args, state="restarted"))
        assert restarted.get("failed") is not True and restarted["actions"] == ["restart"], restarted
        assert ka._daemons(name) == [restarted["main_pid"]] != [first["main_pid"]]
        os.unlink(paths.pid_file(name))
        stopped = run_module(service, dict(name=name, state="stopped", manager="direct"))
        assert stopped["actions"] == ["stop"] and stopped["state"] == "stopped", stopped
        assert ka._daemons(name) == []
    finally:
        _stop_every_daemon(name)  # (what a failure here left running)


@pytest.mark.skipif(not _cgroup_available(), reason="no cgroup v2 hierarchy here")
@pytest.mark.parametrize("module", [service, services], ids=["service", "services"])
def test_a_spec_removed_by_hand_leaves_the_running_service_s_cgroup_its_own(run_module, name, module):
    """Its spec removed by hand while it ran, a service with a cgroup path of its own could not be
    declared again: the spec alone said which cgroup was its own, and its running processes there were
    taken for someone else's ("already holds processes that this service did not start"). The cgroup
    its running process is in (the kernel's word) is its own now: the converge restarts it there."""
    rel = f"pfe-ut-own-{os.getpid() % 100000}"
    args = dict(name=name, argv=_argv(1), manager="direct", start_check=0, cgroup=dict(path=rel))
    given = args if module is service else dict(services=[args])
    try:
        first = run_module(service, args)
        assert first.get("failed") is not True, first
        os.unlink(paths.spec_path(name))
        again = run_module(module, given)
        assert again.get("failed") is not True, again
        result = again if module is service else again["services"][name]
        assert result["actions"] == [f"write {paths.spec_path(name)}", "restart"], result
        assert ka._daemons(name) == [result["main_pid"]] != [first["main_pid"]]
    finally:
        _stop_every_daemon(name)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a process of another user")
@pytest.mark.parametrize("in_flight", [False, True], ids=["held", "in-flight"])
def test_another_user_s_process_holding_the_daemon_s_name_keeps_no_service_down(
        run_module, unique_name, in_flight):
    """Abstract names have no permissions: any local user could bind @pyforkexec-daemon:/run/pyforkexec/
    NAME.pid first, and then the daemon refused to start and every run of the module failed ("end it by
    hand"), so that an unprivileged user kept root's service down. A name another user's process holds is
    no daemon: the service starts and runs, its daemon found by its pid file's lock (the start check,
    a converge run again, a stop, absent), and the squatter is never signalled. So too for a name whose
    socket no process holds (sent in a message nobody reads)."""
    from pyforkexec.service import singleton

    name = unique_name().replace("pfe-ut", "h115-squat")
    args = dict(name=name, argv=_argv(1), manager="direct", restart="always")
    squatting = name_holder.holding(singleton.name(paths.pid_file(name)), user=65534, in_flight=in_flight)
    with squatting as squatter:
        try:
            first = run_module(service, args)
            assert first.get("failed") is not True and first["actions"][-1] == "start", first
            assert ka._daemons(name) == [first["main_pid"]] != [squatter.pid]
            who = "no process seen here, uid 65534's socket" if in_flight else \
                f"process {squatter.pid} of uid 65534"
            assert f"is held by {who}, not a daemon" in "\n".join(direct.log_tail(name))
            again = run_module(service, args)
            assert again.get("failed") is not True and again["changed"] is False, again
            assert (again["main_pid"], again["pid"]) == (first["main_pid"], first["pid"])
            stopped = run_module(service, dict(name=name, state="stopped", manager="direct"))
            assert stopped.get("failed") is not True and stopped["actions"] == ["stop"], stopped
            assert ka._daemons(name) == [] and squatter.poll() is None
            started = run_module(service, args)
            assert started.get("failed") is not True and started["actions"] == ["start"], started
            gone = run_module(service, dict(name=name, state="absent"))
            assert gone.get("failed") is not True and gone["actions"][0] == "stop", gone
            assert ka._daemons(name) == [] and squatter.poll() is None
        finally:
            _stop_every_daemon(name)  # (what a failure here left running)
            run_module(service, dict(name=name, state="absent"))
