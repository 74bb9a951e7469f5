"""SetNS's pins against a reused PID and a reused namespace inode number (helpers/pin_reuse.py), and
their rules: what each pin may name, and what a wrong one is."""

from __future__ import annotations

import errno
import json
import os
import sys
import time
from pathlib import Path

import pytest
from helpers.cli import run_as
from helpers.forked import NOBODY
from helpers.marks import needs_root

import pyforkexec as fe
from pyforkexec import ns_pins

pytestmark = needs_root
SCRIPT = str(Path(__file__).parent / "helpers" / "pin_reuse.py")
NEWNET = int(fe.CLONE_NEWNET)
HAS_IDS = ns_pins.ns_id_of("/proc/self/ns/net") is not None


def _in_own_pid_namespace(uid, script=SCRIPT):
    """``script`` (helpers/pin_reuse.py by default) as PID 1 of a PID namespace of its own (root, or
    ``uid`` in a user namespace of its own, where it is root), and what it reports."""
    argv = ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, script]
    if uid is not None:
        argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "unshare", "--user",
                "--map-root-user", *argv[1:]]
    done, = run_as(NOBODY, [argv], timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("uid", [None, NOBODY], ids=["root", "nobody"])
def test_a_stranger_on_the_pid_with_the_inode_number_is_not_joined(uid):
    for _attempt in range(3):  # (a test beside this one that makes namespaces may take the number)
        report = _in_own_pid_namespace(uid)
        if report["reused"]:
            break
    else:
        pytest.skip("the kernel did not give the freed PID and inode number to the stranger in 500 tries")
    # The inode number alone cannot tell: the stranger's namespace has it (the reuse is real).
    assert report["after"]["inode"] == "ran in " + report["meant"]
    pins = ["process_start", "all"] + (["ns_id"] if HAS_IDS else [])
    for pin in pins:
        assert report["before"][pin] == "ran in " + report["meant"], pin
        assert report["ended"][pin] == "ENOENT at sys.setns[0]", pin
        assert report["after"][pin] == "ESTALE at sys.setns[0]", pin



@pytest.fixture
def target():
    """A sleeping child in a network namespace of its own: (pid, its /proc/PID/ns/net)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            import ctypes
            if ctypes.CDLL(None, use_errno=True).unshare(NEWNET) == 0:
                os.write(w, b".")
                time.sleep(60)
        finally:
            os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"."
    os.close(r)
    yield pid, f"/proc/{pid}/ns/net"
    os.kill(pid, 9)
    os.waitpid(pid, 0)


def _ran_in(pins, path):
    done = fe.run(["readlink", "/proc/self/ns/net"], capture_output=True,
                  sys=fe.SysProcAttr(setns=[fe.SetNS(path, NEWNET, **pins)]))
    return done.stdout.decode().strip()


def test_the_right_pins_join(target):
    pid, path = target
    pins = {"inode": os.stat(path).st_ino, "process_start": ns_pins.process_start(str(pid))}
    if HAS_IDS:
        pins["ns_id"] = ns_pins.ns_id_of(path)
    assert _ran_in(pins, path) == os.readlink(path)


@pytest.mark.skipif(not HAS_IDS, reason="this kernel has no namespace ids (NS_GET_ID)")
def test_a_wrong_ns_id_is_estale(target):
    _pid, path = target
    with pytest.raises(fe.ChildError) as e:
        _ran_in({"ns_id": ns_pins.ns_id_of("/proc/self/ns/net")}, path)
    assert (e.value.errno, e.value.field) == (errno.ESTALE, "sys.setns[0]")


def test_a_wrong_process_start_is_estale(target):
    pid, path = target
    with pytest.raises(fe.ChildError) as e:
        _ran_in({"process_start": ns_pins.process_start(str(pid)) + 1}, path)
    assert (e.value.errno, e.value.field) == (errno.ESTALE, "sys.setns[0]")


def test_a_pidfd_pinned_by_process_start(target):
    pid, path = target
    pidfd = os.pidfd_open(pid)
    try:
        start = ns_pins.process_start(str(pid))
        done = fe.run(["readlink", "/proc/self/ns/net"], capture_output=True,
                      sys=fe.SysProcAttr(setns=[fe.SetNS(pidfd, NEWNET, process_start=start)]))
        assert done.stdout.decode().strip() == os.readlink(path)
        with pytest.raises(fe.ChildError) as e:
            fe.run(["true"], sys=fe.SysProcAttr(setns=[fe.SetNS(pidfd, NEWNET, process_start=start - 1)]))
        assert e.value.errno == errno.ESTALE
    finally:
        os.close(pidfd)


@pytest.mark.parametrize(("entry", "field", "rule"), [
    (fe.SetNS("/run/netns/x", NEWNET, process_start=5), "process_start", "pins a process"),
    (fe.SetNS("/proc/self/ns/net", NEWNET, process_start=5), "process_start", "pins a process"),
    (fe.SetNS("/proc/1/ns/net", NEWNET, ns_id=0), "ns_id", "must be between 1"),
    (fe.SetNS("/proc/1/ns/net", NEWNET, process_start=-1), "process_start", "must be between 0"),
])
def test_a_pin_that_cannot_hold_is_refused_before_any_process(entry, field, rule):
    last_pid = Path("/proc/sys/kernel/ns_last_pid")
    before = last_pid.read_text()
    with pytest.raises(ValueError, match=rf"^SysProcAttr\.setns\[0\]\.{field}: {rule}"):
        fe.run(["true"], sys=fe.SysProcAttr(setns=[entry]))
    assert last_pid.read_text() == before


def test_process_start_on_a_namespace_fd_is_refused(target):
    _pid, path = target
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(ValueError, match=r"^SysProcAttr\.setns\[0\]\.process_start: pins a process: fd "):
            fe.run(["true"], sys=fe.SysProcAttr(setns=[fe.SetNS(fd, NEWNET, process_start=1)]))
    finally:
        os.close(fd)


def test_an_id_pin_on_a_kernel_without_ids_is_refused(target, monkeypatch):
    # (a kernel without NS_GET_ID answers an unknown ioctl: ENOTTY; nr 0xff is no nsfs ioctl on any)
    _pid, path = target
    monkeypatch.setattr(ns_pins, "NS_GET_ID", 0x8008B7FF)
    with pytest.raises(ValueError, match=r"^SysProcAttr\.setns\[0\]\.ns_id: this kernel has no namespace"):
        fe.run(["true"], sys=fe.SysProcAttr(setns=[fe.SetNS(path, NEWNET, ns_id=1)]))


@pytest.mark.parametrize("uid", [None, NOBODY], ids=["root", "nobody"])
def test_a_thread_s_path_is_pinned_by_the_thread_s_start(uid):
    """``/proc/PID/task/TID/ns/net`` with ``process_start``: the thread ends and its TID goes to the next
    thread of the same process, in a network namespace of its own (helpers/task_pin_reuse.py). Pinned by
    the start of process PID, which did not change, the join went into the new thread's namespace; the
    pin of such a path is the thread's start, read and opened through its own /proc directory."""
    report = _in_own_pid_namespace(uid, str(Path(__file__).parent / "helpers" / "task_pin_reuse.py"))
    if not report["reused"]:
        pytest.skip("the kernel did not give the freed TID to the next thread in 200 tries")
    assert report["before"] == report["meant"], report
    assert report["stranger"] != report["meant"], report
    assert report["after"] == "ESTALE at sys.setns[0]", report
    assert report["after_process"] == "ESTALE at sys.setns[0]", report
