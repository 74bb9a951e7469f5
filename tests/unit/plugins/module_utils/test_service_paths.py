"""Finding a service's process (pid files locked by their daemon, children of the main process), on
real processes, and where a service's and a persisted network namespace's files are."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import threading

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
from ansible_collections.pyforkexec.isolation.tests.unit.plugins import name_holder


@pytest.mark.parametrize("name", ["web", "web-1.a_b", "tmpl@inst", "1web", "0x10"])
def test_valid_names(name):
    assert paths.check_name(name) == name


@pytest.mark.parametrize("name", ["", "../x", "a/b", "-x", "a b", "x" * 300, "12358", "0", "\u0663\u0665",
                                  " web", None, "web\n", "12\n"])
def test_invalid_names(name):
    with pytest.raises(paths.ServiceError, match="is not a valid service name"):
        paths.check_name(name)


@pytest.mark.parametrize(("target", "pid"), [
    ("1", True), ("4194304", True), ("123\n", False), ("0123", False), ("4194305", False), ("+12", False),
    ("web", False)])
def test_a_pid_is_ascii_digits_alone(target, pid):
    assert paths.is_pid(target) is pid


def test_a_pid_file_counts_only_while_its_daemon_holds_the_lock(tmp_path):
    path = str(tmp_path / "x.pid")
    me = os.getpid()  # the lock's holder, as a daemon's pid file names the daemon
    assert paths.locked_pid(path) is None
    with open(path, "w") as f:
        f.write(f"{me}\n")
    assert paths.locked_pid(path) is None  # stale: nobody holds it
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as pyforkexec.daemon holds it
        assert paths.locked_pid(path) == me
        with open(path, "w") as f:  # another pid than the holder's: edited by hand
            f.write("4242\n")
        with pytest.raises(paths.ServiceError, match="is locked by a running daemon but does not name it"):
            paths.locked_pid(path, wait=0.1)
    finally:
        os.close(fd)
    assert paths.locked_pid(path) is None


def test_a_pid_file_its_daemon_is_writing_is_read_once_written(tmp_path):
    """Locked and empty (a daemon between its lock and its write): a daemon is there, and its pid is
    read once it is written, rather than "no daemon runs"."""
    path = tmp_path / "x.pid"
    path.write_text("")
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        writer = threading.Timer(0.2, lambda: os.pwrite(fd, f"{os.getpid()}\n".encode(), 0))
        writer.start()
        try:
            assert paths.locked_pid(str(path)) == os.getpid()
        finally:
            writer.join()
    finally:
        os.close(fd)


def test_the_service_process_is_the_main_process_child():
    with subprocess.Popen(["sleep", "60"]) as child:
        try:
            assert child.pid in paths.children(os.getpid())
            assert paths.workload_pid(child.pid) is None  # sleep has no child
        finally:
            child.kill()
    assert paths.workload_pid(None) is None


def test_resolve_pid_takes_numbers_as_pids_and_names_as_services():
    """A pid is ASCII digits alone, as /proc names it; anything else is a service name, which is never
    digits alone (a service named 12358 would be entered as whatever process has that pid)."""
    assert paths.resolve_pid("1234") == 1234
    for text in ("0", "0001234", "99999999999999999999", str(paths.PID_MAX + 1)):
        with pytest.raises(paths.ServiceError, match="is not a pid"):
            paths.resolve_pid(text)
    for text in (" 1234 ", "\u0663\u0665\u0667", "\u00b2", "+5", "-1"):  # Arabic-Indic, superscript
        with pytest.raises(paths.ServiceError, match="is not a valid service name"):
            paths.resolve_pid(text)
    with pytest.raises(paths.ServiceError, match="service pfe-ut-nothing is not running"):
        paths.resolve_pid("pfe-ut-nothing", "direct")
    with pytest.raises(paths.ServiceError, match="is not a valid service name"):
        paths.resolve_pid("../etc/passwd")


def test_the_files_of_a_service():
    assert paths.spec_path("web") == "/etc/pyforkexec/web.json"
    assert paths.unit_path("web") == "/etc/systemd/system/pyforkexec-web.service"
    assert paths.pid_file("web") == "/run/pyforkexec/web.pid"
    assert paths.log_file("web") == "/var/log/pyforkexec/web.log"


def test_the_files_of_a_persisted_network_namespace():
    assert paths.netns_config_path("web") == "/etc/pyforkexec/netns/web.json"
    assert paths.netns_unit_name("web") == "pyforkexec-netns@web.service"
    assert paths.netns_template_path() == "/etc/systemd/system/pyforkexec-netns@.service"


def test_the_converge_lock_is_pyforkexecs_host_lock():
    """Held in pyforkexec.host_lock's directory, root's alone (tests/test_netns_batch.py)."""
    from pyforkexec import host_lock

    with paths.converge_lock(), open("/proc/locks", encoding="ascii") as locks:
        held = locks.read()
        st = os.stat(host_lock.path("services"))
        assert f":{st.st_ino} " in held
        assert os.stat(host_lock.LOCK_DIR).st_uid == 0


@pytest.fixture
def holding(tmp_path, monkeypatch):
    """holding(user=None) -> a process that holds the name of service ``web``'s daemon, as ``user``
    (name_holder: a stand-in for a daemon as its name makes it one, or a squatter); the pid files in
    ``tmp_path``, none of them made. Each is killed (its own child) at the end."""
    from pyforkexec.service import singleton

    monkeypatch.setattr(paths, "RUN_DIR", str(tmp_path))
    with contextlib.ExitStack() as stack:
        yield lambda user=None, in_flight=False, made_by=None: stack.enter_context(
            name_holder.holding(singleton.name(paths.pid_file("web")), user, in_flight, made_by))


def test_a_daemon_is_found_by_its_name_whatever_became_of_its_pid_file(holding):
    """Its pid file removed by hand, a running daemon was "not running": a converge started a second
    one, a stop found none. The process holding its name is the daemon, pid file or not."""
    daemon = holding()
    assert not os.path.exists(paths.pid_file("web"))
    assert paths.daemon_pid("web") == daemon.pid
    assert paths.main_pid("web", "direct") == ("direct", daemon.pid)
    assert paths.is_daemon(daemon.pid, "web") and not paths.is_daemon(os.getpid(), "web")
    daemon.kill()
    daemon.wait()
    assert paths.daemon_pid("web") is None and not paths.is_daemon(daemon.pid, "web")


# A stand-in for a daemon started while another user's process held its name: it locks its pid file
# (argv[1]) and writes its pid there as the daemon does, holding no name.
_LOCK_PID_FILE = """
import sys, time
from pyforkexec.service.daemon import lock_pid_file
lock_pid_file(sys.argv[1])
print("locked", flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a process of another user")
@pytest.mark.parametrize(("in_flight", "made_by"), [(False, None), (True, None), (False, 65534)],
                         ids=["held", "in-flight", "handed-to-root"])
def test_a_name_held_by_another_user_s_process_is_no_daemon_the_pid_file_s_lock_finds_it(holding, in_flight,
                                                                                         made_by):
    """Any process of the host's network namespace can bind an abstract name: one of another user
    holding a daemon's made every run fail ("end it by hand"), and the daemon refused to start, so that
    any local user could keep root's service down. Such a name is no daemon: the daemon starts beside it,
    found by its pid file's lock (as before the name), and the squatter is never taken for it (never
    signalled); none running, none is found. So too for a name whose socket no process holds (sent in a
    message nobody reads: "held by no process seen here" was an error), told by its socket's owner; and
    for a socket another user made and handed to a process of this one's (root's process holding it is
    no daemon either: the name is the squatter's)."""
    squatter = holding(user=65534 if made_by is None else None, in_flight=in_flight, made_by=made_by)
    assert paths.daemon_pid("web") is None and paths.main_pid("web", "direct") == ("direct", None)
    assert not paths.is_daemon(squatter.pid, "web")
    daemon = subprocess.Popen([sys.executable, "-c", _LOCK_PID_FILE, paths.pid_file("web")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert daemon.stdout.readline() == "locked\n"
        assert paths.daemon_pid("web") == daemon.pid
        assert paths.main_pid("web", "direct") == ("direct", daemon.pid)
        assert paths.is_daemon(daemon.pid, "web") and not paths.is_daemon(squatter.pid, "web")
    finally:
        daemon.kill()
        daemon.wait()
        daemon.stdout.close()
    assert squatter.poll() is None


# As PID 1 of a PID namespace that kept the host's /proc (as a container may): a daemon's pid file names
# its pid there (os.getpid()), which /proc numbers otherwise; and the service process, the main
# process's child, is found by its pid there too.
_PIDS_WITH_THE_HOST_S_PROC = r"""
import fcntl, json, os, subprocess, sys
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
path = os.path.join(sys.argv[1], "x.pid")
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, f"{os.getpid()}\n".encode())
try:
    locked = paths.locked_pid(path, wait=0.2)
except paths.ServiceError as e:
    locked = str(e)
with subprocess.Popen(["sleep", "60"]) as child:
    try:
        found = paths.workload_pid(os.getpid())
    finally:
        child.kill()
print(json.dumps({"pid": os.getpid(), "self": os.readlink("/proc/self"), "locked": locked,
                  "child": child.pid, "found": found}))
"""


def test_pids_are_the_caller_s_where_proc_is_another_pid_namespace_s(in_pid_namespace, tmp_path):
    """The pid file's lock was looked for in /proc/locks by the pid the daemon wrote, which /proc (the
    host's) gives another process: a running daemon's pid file was taken for one edited by hand (a
    ServiceError); the main process's children were /proc's numbers, another process's here."""
    answer = in_pid_namespace(_PIDS_WITH_THE_HOST_S_PROC, str(tmp_path), mount_proc=False)
    assert answer["pid"] == 1 and answer["self"] != "1"  # the case: /proc is not the namespace's
    assert answer["locked"] == 1
    assert answer["found"] == answer["child"]


# Inside a PID namespace of its own (PID 1 there): a stand-in daemon (its name and pid file held, as
# pyforkexec.service.daemon holds them) whose child is its service. read_workload looks the daemon up,
# then its service, then reads the service; the process found ends between a look-up and the read,
# and the next fork gets its number (ns_last_pid, in this namespace only): a bystander, this process's
# child, which has a child of its own (a main process's child is what is taken for the service).
# "service": the service is killed (and reaped by its daemon) right after it is listed; "daemon": the
# daemon is killed (its service too) right after it is found.
_READ_WORKLOAD_REUSED = r"""
import json, os, signal, sys, time
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
from pid_reuse import sleeper, stand_in
from pyforkexec.service import singleton
from pyforkexec.service.daemon import lock_pid_file

which, name = sys.argv[1], sys.argv[2]
paths.RUN_DIR = sys.argv[3]
main, service = stand_in(lambda: [singleton.claim(paths.pid_file(name)), lock_pid_file(paths.pid_file(name))])

def with_a_child_on(pid):
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(pid - 1))
    r, w = os.pipe()
    bystander = os.fork()
    if bystander == 0:
        sleeper()
        os.write(w, b".")
        time.sleep(600)
        os._exit(0)
    os.read(r, 1)
    return bystander

seen = {"read": []}
listed, found = paths.workload_pid, lambda: paths.daemon_pid(name, wait=0.0)

def steered_listing(pid, wait=0.0, exited=False):
    kid = listed(pid, wait, exited)
    if kid is not None and "bystander" not in seen:
        os.kill(kid, signal.SIGKILL)
        while os.path.exists(f"/proc/{kid}"):  # until its daemon reaped it
            time.sleep(0.001)
        seen.update(gone=kid, bystander=with_a_child_on(kid))
    return kid

def steered_find():
    pid = found()
    if pid is not None and "bystander" not in seen:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.kill(service, signal.SIGKILL)  # (this process's child now: its daemon has ended)
        os.waitpid(service, 0)
        seen.update(gone=pid, bystander=with_a_child_on(pid))
    return pid

if which == "service":
    paths.workload_pid = steered_listing

def read(pid):
    seen["read"].append(pid)
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])  # its parent

answer = paths.read_workload(steered_find if which == "daemon" else found, read)
strangers = [seen["bystander"], *map(int, open(f"/proc/{seen['bystander']}/task/{seen['bystander']}/children")
                                                .read().split())]
print(json.dumps({"reused": seen["gone"] == seen["bystander"], "answer": answer,
                  "read_a_stranger": [p for p in seen["read"] if p in strangers],
                  "main": main if which == "service" else None}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a PID namespace whose next pid it steers")
@pytest.mark.parametrize("which", ["service", "daemon"])
def test_a_service_s_process_is_never_read_in_a_process_that_reused_a_pid_found(
        in_pid_namespace, tmp_path, which):
    """The service module's result (its ``pid`` and ``namespaces``) read the main process's child by
    numbers found one after the other: a service that ended between its listing and the read (its
    restart), its number reused, reported the newcomer's pid and namespaces; a daemon that ended
    after it was found, its number given to a process with a child, reported that child as the
    service. Each is read while pinned now (read_workload), and a process that was not the one found
    is looked up again: here, none runs."""
    for _attempt in range(5):  # (the next fork takes the freed number almost always: the premise)
        answer = in_pid_namespace(_READ_WORKLOAD_REUSED, which, f"h160-{which}-{os.getpid()}", str(tmp_path))
        if answer["reused"]:
            break
    assert answer["reused"]
    assert answer["read_a_stranger"] == []
    assert answer["answer"] == [answer["main"], None, None]
