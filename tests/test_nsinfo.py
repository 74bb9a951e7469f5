"""What the kernel says about a process's namespaces (pyforkexec.nsinfo, which the collection's
namespace_info and service modules report), on real processes."""

from __future__ import annotations

import os
import socket

import pytest
from helpers.marks import needs_root

import pyforkexec as fe
from pyforkexec import nsinfo


@needs_root  # namespaces only root may create or join here
def test_this_process_shares_every_namespace_with_the_host():
    found = nsinfo.namespaces(os.getpid())
    assert {"user", "pid", "net", "mount", "uts", "ipc", "cgroup"} <= set(found)
    assert all(ns["same_as_host"] for ns in found.values())
    assert found["mount"]["path"] == f"/proc/{os.getpid()}/ns/mnt"
    assert nsinfo.differing(os.getpid()) == []
    assert nsinfo.hostname(os.getpid()) == socket.gethostname()


@needs_root  # namespaces only root may create or join here
def test_a_namespaced_process_differs_where_it_was_given_new_namespaces():
    sys = fe.SysProcAttr(cloneflags=fe.CLONE_NEWUTS | fe.CLONE_NEWNET | fe.CLONE_NEWUSER, hostname="pfe-unit",
                         uid_mappings=[fe.SysProcIDMap(0, 0, 1)], gid_mappings=[fe.SysProcIDMap(0, 0, 1)])
    with fe.start_process("/bin/sleep", ["sleep", "60"], fe.ProcAttr(sys=sys)) as proc:
        try:
            found = nsinfo.namespaces(proc.pid)
            assert nsinfo.differing(proc.pid) == ["user", "net", "uts"]
            assert nsinfo.hostname(proc.pid) == "pfe-unit"
            assert nsinfo.id_map(proc.pid, "uid_map") == [dict(container_id=0, host_id=0, size=1)]
            assert nsinfo.cgroup(proc.pid) == nsinfo.cgroup(os.getpid())
        finally:
            proc.kill()
    assert [k for k, v in found.items() if not v["same_as_host"]] == ["user", "net", "uts"]


@pytest.mark.parametrize("where", ["before the thread's work", "during it", "after it"])
def test_in_own_thread_interrupted_waits_for_the_thread_then_undoes_and_goes_on(where: str) -> None:
    """A KeyboardInterrupt while the caller waits (SIGINT sent by the thread itself, at three points)
    is raised only once the thread's work is done, and what it made is undone. A ``Thread.join``
    interrupted so on Python 3.11 marks the running thread stopped, and a second join returns at once."""
    import signal
    import threading
    import time

    steps: list[str] = []
    undone: list[str] = []

    def interrupt() -> None:
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        time.sleep(0.05)  # the caller is interrupted in its wait meanwhile

    def work() -> str:
        if where == "before the thread's work":
            interrupt()
        steps.append("began")
        if where == "during it":
            interrupt()
        time.sleep(0.05)
        steps.append("made")
        if where == "after it":
            interrupt()
        return "thing"

    assert threading.current_thread() is threading.main_thread()
    with pytest.raises(KeyboardInterrupt):
        nsinfo.in_own_thread(work, "pfe-test-in-own-thread", undo=undone.append)
    assert steps == ["began", "made"]
    assert undone == ["thing"]
    assert not [t for t in threading.enumerate() if t.name == "pfe-test-in-own-thread"]


def test_in_own_thread_returns_or_raises_what_the_thread_did() -> None:
    assert nsinfo.in_own_thread(lambda: 42, "pfe-test") == 42
    with pytest.raises(ZeroDivisionError):
        nsinfo.in_own_thread(lambda: 1 / 0, "pfe-test")


@pytest.mark.parametrize("func", ["nstype", "is_callers"])
def test_a_ctrl_c_during_the_open_of_a_namespace_file_leaves_it_closed(
        func: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGINT arrives while the namespace file is being opened: its handler runs right after the open
    returns, before the fd is stored, and nothing could close it (a netns fd pins the namespace after
    its removal). Held: the KeyboardInterrupt comes once the fd is closed again."""
    import signal

    path, real_open, opened = "/proc/self/ns/net", os.open, []

    def open_then_signal(name, *args, **kwargs):  # the open returns, then the signal is handled
        fd = real_open(name, *args, **kwargs)
        if name == path:
            opened.append(fd)
            signal.raise_signal(signal.SIGINT)
        return fd

    monkeypatch.setattr(os, "open", open_then_signal)
    with pytest.raises(KeyboardInterrupt):
        getattr(nsinfo, func)(path)
    monkeypatch.undo()
    assert opened, f"{func} no longer opens the file with os.open: move the signal"
    assert not os.path.exists(f"/proc/self/fd/{opened[0]}") or os.readlink(f"/proc/self/fd/{opened[0]}") \
        != os.readlink(path), "the namespace file's fd was left open"


def test_in_own_thread_never_takes_a_signal_that_ends_the_process() -> None:
    """A process-directed SIGTERM goes to any thread that does not block it: to this helper, past its
    Python code but not yet gone, while the caller blocked it (ending_blocked) around a plan that must
    not be cut in two (`netns up` under systemd's stop ended halfway, now and then, under load)."""
    import signal

    from pyforkexec._signals import ENDING

    def blocked() -> int:
        with open("/proc/thread-self/status") as f:
            return int(next(line.split()[1] for line in f if line.startswith("SigBlk:")), 16)

    mask = nsinfo.in_own_thread(blocked, "pfe-test")
    assert all(mask & 1 << (s - 1) for s in ENDING), hex(mask)
    assert not signal.pthread_sigmask(signal.SIG_BLOCK, []) & set(ENDING)  # the caller's is its own


@needs_root  # namespaces only root may create or join here
def test_names_a_namespace_holds_that_are_no_utf8_are_reported_as_text() -> None:
    """A service's root chooses its hostname and the names of its links (sethostname and the kernel take
    any bytes; with no capability left it still can, in a user namespace it makes with new UTS and network
    namespaces, which its /proc/PID/ns then names). Bytes that are no UTF-8 failed every describe of it
    (UnicodeDecodeError: namespace_info for the service failed, h161 found it so) or left bytes no JSON
    takes; each such byte shows as \\xNN now."""
    import json
    import shutil
    import subprocess

    from pyforkexec.netns import kernel

    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's ip to name a link")
    sys_ = fe.SysProcAttr(cloneflags=fe.CLONE_NEWUTS | fe.CLONE_NEWNET)
    with fe.start_process("/bin/sleep", ["sleep", "60"], fe.ProcAttr(sys=sys_)) as proc:
        try:
            nsinfo.in_namespace_thread(nsinfo.ns_path(proc.pid, "uts"), "uts",
                                       lambda: socket.sethostname(b"\xffpfe-\xc3"), "pfe-test-uts")
            subprocess.run([b"nsenter", f"--net=/proc/{proc.pid}/ns/net".encode(), b"ip", b"link", b"add",
                            b"\xfepfe", b"type", b"veth", b"peer", b"name", b"pfe-peer"], check=True)
            facts = nsinfo.describe(proc.pid, with_net=kernel.net_view_of)
        finally:
            proc.kill()
    assert facts["hostname"] == "\\xffpfe-\\xc3"
    assert sorted(facts["net"]["links"]) == ["\\xfepfe", "lo", "pfe-peer"]
    json.dumps(facts)
