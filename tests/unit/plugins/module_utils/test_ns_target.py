"""The namespaces the nsenter connection enters, held open from its connect (ns_target.Captured), against
the real kernel: nsenter given the open files runs in the target's namespaces and root, and once the
target has ended nothing runs anywhere."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils.ns_target import (
    Captured,
    NotIsolated,
    TargetGone,
)

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="nsenter into another process's namespaces needs root"),
    pytest.mark.skipif(shutil.which("nsenter") is None or shutil.which("unshare") is None,
                       reason="util-linux nsenter and unshare are not installed"),
]

HOSTNAME = "pfe-ns-target"


@pytest.fixture
def target():
    """A process in its own UTS, network and mount namespaces, with a private tmpfs on /mnt."""
    proc = subprocess.Popen(["unshare", "--uts", "--net", "--mount", "--propagation", "private", "sh", "-c",
                             f"hostname {HOSTNAME} && mount -t tmpfs none /mnt && touch /mnt/inside "
                             "&& echo ready && exec sleep 60"], stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"ready\n"
    yield proc
    proc.kill()
    proc.wait()


def _inside(captured, command):
    captured.check()
    return subprocess.run(["nsenter", *captured.options(), "--", "sh", "-c", command], capture_output=True,
                          text=True, check=True).stdout


def test_commands_run_in_the_target_s_namespaces_and_root(target):
    captured = Captured(target.pid)
    try:
        assert set(captured.fds) >= {"uts", "net", "mount", "root", "wd"} and "user" not in captured.fds
        assert _inside(captured, "hostname").strip() == HOSTNAME
        theirs = os.readlink(f"/proc/{target.pid}/ns/net")
        assert _inside(captured, "readlink /proc/self/ns/net").strip() == theirs
        assert _inside(captured, "ls /mnt").split() == ["inside"]
        assert not os.path.exists("/mnt/inside")  # the host's /mnt is not the target's
        assert max(map(int, _inside(captured, "ls /proc/self/fd").split())) < 4  # none of them left open
    finally:
        captured.close()


def test_only_the_namespaces_asked_for(target):
    captured = Captured(target.pid, ["uts"])
    try:
        assert set(captured.fds) == {"uts", "root", "wd"}
        assert _inside(captured, "hostname").strip() == HOSTNAME
        assert _inside(captured, "readlink /proc/self/ns/net").strip() == os.readlink("/proc/self/ns/net")
    finally:
        captured.close()


def test_a_target_that_ended_runs_nothing(target):
    captured = Captured(target.pid)
    try:
        target.kill()
        target.wait()
        with pytest.raises(TargetGone):
            captured.check()
    finally:
        captured.close()
    assert captured.fds == {}
    with pytest.raises(TargetGone):
        Captured(target.pid)  # reaped: no such process


def test_a_namespace_asked_for_that_is_the_hosts_own_is_refused(target):
    """The target shares this host's pid namespace: entering it would enter nothing, and a command
    would run in the host's; refused naming the namespace, with nothing left open."""
    with pytest.raises(NotIsolated, match=r"^namespaces: pid: process \d+ is in this host's own pid"):
        Captured(target.pid, ["uts", "pid"])


@pytest.mark.parametrize("unshare", [[], ["--user", "--map-root-user"],
                                     ["--user", "--map-root-user", "--uts"]])
def test_a_target_in_none_of_its_own_resource_namespaces_is_refused(unshare):
    """By default every namespace the target has is entered: a process of the host, or one in a user
    (and uts) namespace alone, keeps nothing of the host's files, network or processes from a command."""
    host = subprocess.Popen(["unshare", *unshare, "sleep", "60"] if unshare else ["sleep", "60"])
    try:
        time.sleep(0.2)  # unshare has exec'd sleep
        with pytest.raises(NotIsolated, match="has none of its own mount, net, pid, ipc namespaces"):
            Captured(host.pid)
    finally:
        host.kill()
        host.wait()


def test_a_looked_up_pid_must_stay_the_services_and_have_started_its_program(target):
    """``confirm`` looks the pid up again once it is pinned: another pid (the service restarted, its
    pid went elsewhere) is refused; so is a launcher's child that has not exec'd yet (its parent's
    command line), which may still be in the host's namespaces."""
    with pytest.raises(TargetGone, match="ended while it was looked up"):
        Captured(target.pid, confirm=lambda: target.pid + 1)
    Captured(target.pid, confirm=lambda: target.pid).close()
    pid = os.fork()
    if pid == 0:  # a copy of this process that never execs, as a launcher's child before its execve
        try:
            # (It called os.unshare, which Python 3.11 lacks: it died at once, and the test met its zombie,
            # refused with that message for its empty command line; the refusal comes before any
            # namespace is opened.)
            time.sleep(60)
        finally:
            os._exit(0)
    try:
        with pytest.raises(TargetGone, match="still being set up by its launcher"):
            Captured(pid, confirm=lambda: pid)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_a_looked_up_pid_that_has_exited_is_refused_as_ended(target):
    """A crash-looping service between its exit and its daemon's reap (a zombie: the daemon's Python
    starts again to reap it) was refused as "still being set up by its launcher (it has not started
    its program yet)", its command line being empty: it has ended."""
    child = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + 10
        while _state(child.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(TargetGone, match=f"process {child.pid} has ended"):
            Captured(child.pid, confirm=lambda: child.pid)
    finally:
        child.wait()


def _state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(") ", 1)[1][0]


# Run as PID 1 of a PID namespace that kept the host's /proc (as a container may): there this process
# is 1 and its child another number than /proc gives them. The target is this script's child, in UTS
# and network namespaces of its own; nsenter is given Captured's files.
_CAPTURED_WITH_THE_HOST_S_PROC = r"""
import json, os, subprocess
from ansible_collections.pyforkexec.isolation.plugins.module_utils.ns_target import Captured, NotIsolated
proc = subprocess.Popen(["unshare", "--uts", "--net", "sh", "-c",
                         "hostname h128-target && readlink /proc/self/ns/net && exec sleep 60"],
                        stdout=subprocess.PIPE, text=True)
net = proc.stdout.readline().strip()
answer = {"pid": os.getpid(), "self": os.readlink("/proc/self")}
try:
    captured = Captured(proc.pid, ["uts", "net"])
    try:
        answer["opened"] = f"net:[{os.fstat(captured.fds['net']).st_ino}]" == net
        answer["through_options"] = [os.stat(o.split("=", 1)[1]).st_ino == os.fstat(fd).st_ino
                                     for o, fd in zip(captured.options(), captured.fds.values())]
        answer["hostname"] = subprocess.run(["nsenter", *captured.options(), "--", "hostname"],
                                            capture_output=True, text=True).stdout.strip()
    finally:
        captured.close()
except (NotIsolated, OSError) as e:
    answer["error"] = str(e)
proc.kill()
proc.wait()
print(json.dumps(answer))
"""


def test_a_looked_up_pid_whose_main_thread_exited_is_not_said_to_have_ended(main_thread_gone):
    """A service's process whose main thread exited while others run on (/proc shows it as a zombie):
    the look-up's "has it started its program" step said it had ended; as for a pid given, it is
    refused saying what became of it."""
    with pytest.raises(TargetGone) as failed:
        Captured(main_thread_gone, confirm=lambda: main_thread_gone)
    assert str(failed.value) == (f"process {main_thread_gone}: its main thread has exited (its other "
                                 "threads run on), and the kernel shows its namespaces no more")


def test_the_target_s_files_are_its_own_where_proc_is_another_pid_namespace_s(in_pid_namespace):
    """Captured opened /proc/PID/ns/* of the target's pid, and gave nsenter /proc/OWN/fd/N by
    os.getpid(): numbers of the caller's PID namespace, which /proc (the host's) gives to other
    processes (the host's PID 1 for this one). The target's files are found through its pidfd
    (its fdinfo's Pid: its number in /proc), nsenter's by /proc/self's number."""
    answer = in_pid_namespace(_CAPTURED_WITH_THE_HOST_S_PROC, mount_proc=False)
    assert answer["pid"] == 1 and answer["self"] != "1"  # the case: /proc is not the namespace's
    assert answer.get("error") is None
    assert answer["opened"] and answer["through_options"] == [True] * 4
    assert answer["hostname"] == "h128-target"
