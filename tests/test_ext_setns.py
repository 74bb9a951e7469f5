"""SysProcAttr.setns beyond paths and namespace fds: a pidfd with a namespace mask, user namespaces first."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any, Callable

import pytest
from helpers.ext import userns
from helpers.marks import needs_root
from helpers.procs import children, output

from pyforkexec import (
    CLONE_NEWNET,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    ChildError,
    ErrorLocation,
    ProcAttr,
    SetNS,
    SysProcAttr,
    start_process,
)

pytestmark = needs_root
NAMES = ("net", "uts", "ipc", "user")


def ns_links(sys: SysProcAttr) -> dict[str, str]:
    out = output(["/usr/bin/readlink", *(f"/proc/self/ns/{n}" for n in NAMES)], sys)
    return dict(zip(NAMES, out.split()))


def links_of(pid: int | str) -> dict[str, str]:
    return {n: os.readlink(f"/proc/{pid}/ns/{n}") for n in NAMES}


def test_pidfd_with_a_namespace_mask() -> None:
    sleeper = start_process("/bin/sleep", ["sleep", "60"],
                            ProcAttr(sys=SysProcAttr(cloneflags=CLONE_NEWNET | CLONE_NEWUTS, pidfd=True)))
    try:
        assert sleeper.pidfd is not None
        got = ns_links(SysProcAttr(setns=[SetNS(sleeper.pidfd, CLONE_NEWNET | CLONE_NEWUTS)]))
        theirs, ours = links_of(sleeper.pid), links_of("self")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert got == {"net": theirs["net"], "uts": theirs["uts"], "ipc": ours["ipc"], "user": ours["user"]}
    assert theirs["net"] != ours["net"]



def test_two_joins_of_one_type_must_name_one_namespace(no_child: None) -> None:
    """Two entries joining different namespaces of one type: the child joined both, in order, so the
    program ran in the last one alone and the first entry's join did not hold. A ValueError naming the
    later entry now, before any process exists; one namespace named twice (a path and a pidfd) still
    runs there."""
    attr = ProcAttr(sys=SysProcAttr(cloneflags=CLONE_NEWNET | CLONE_NEWUTS, pidfd=True))
    a, b = (start_process("/bin/sleep", ["sleep", "60"], attr) for _ in range(2))
    try:
        assert a.pidfd is not None
        other = r"^SysProcAttr\.setns\[1\]: joins another (net|uts) namespace than SysProcAttr\.setns\[0\]"
        both = CLONE_NEWNET | CLONE_NEWUTS
        for setns in ([SetNS(f"/proc/{a.pid}/ns/net"), SetNS(f"/proc/{b.pid}/ns/net")],
                      [SetNS(a.pidfd, both), SetNS(f"/proc/{b.pid}/ns/uts", CLONE_NEWUTS)],
                      [SetNS(f"/proc/{a.pid}/ns/uts"), SetNS(f"/proc/{b.pid}/ns/uts", CLONE_NEWUTS)]):
            with pytest.raises(ValueError, match=other):
                start_process("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(setns=setns)))
        got = ns_links(SysProcAttr(setns=[SetNS(f"/proc/{a.pid}/ns/net"), SetNS(a.pidfd, CLONE_NEWNET)]))
        assert got["net"] == links_of(a.pid)["net"] != links_of(b.pid)["net"]
    finally:
        for sleeper in (a, b):
            sleeper.kill()
            sleeper.wait()


def test_a_pidfd_s_inode_is_that_of_the_namespace_it_joins(no_child: None) -> None:
    """SetNS.inode was compared with the pidfd's own inode, which is no namespace's: every join by
    pidfd with an inode failed (ESTALE, "not the namespace meant"), its own namespace's inode too. It
    is that of the one namespace the pidfd's mask names; with several types it could name only one of
    them, a ValueError naming the field before any process exists."""
    sleeper = start_process("/bin/sleep", ["sleep", "60"],
                            ProcAttr(sys=SysProcAttr(cloneflags=CLONE_NEWNET | CLONE_NEWUTS, pidfd=True)))
    try:
        assert sleeper.pidfd is not None
        net = os.stat(f"/proc/{sleeper.pid}/ns/net").st_ino
        got = ns_links(SysProcAttr(setns=[SetNS(sleeper.pidfd, CLONE_NEWNET, inode=net)]))
        assert got["net"] == f"net:[{net}]" == links_of(sleeper.pid)["net"]
        uts = os.stat(f"/proc/{sleeper.pid}/ns/uts").st_ino
        with pytest.raises(ChildError) as stale:  # another namespace's: not the one meant
            start_process("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(
                setns=[SetNS(sleeper.pidfd, CLONE_NEWNET, inode=uts)])))
        assert stale.value.errno == errno.ESTALE and stale.value.location == ErrorLocation.SETNS
        with pytest.raises(ValueError, match=r"^SysProcAttr\.setns\[0\]\.inode: names one namespace, "):
            start_process("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(
                setns=[SetNS(sleeper.pidfd, CLONE_NEWNET | CLONE_NEWUTS, inode=net)])))
    finally:
        sleeper.kill()
        sleeper.wait()

# A process that switches its network namespace with setns: its own, and now and then the host's, as
# a daemon opening a socket in the host's does. A pidfd of it names the process, not a namespace.
SWITCHER = """if 1:
    import ctypes, os, time
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, 9)  # PR_SET_PDEATHSIG: SIGKILL when the test ends
    host = os.open("/proc/self/ns/net", os.O_RDONLY)
    libc.unshare(0x40000000)
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    print(os.readlink("/proc/self/ns/net"), flush=True)
    while True:
        libc.setns(own, 0x40000000); time.sleep(0.002)
        libc.setns(host, 0x40000000); time.sleep(0.0005)
"""


def test_a_pidfd_join_runs_the_program_only_in_the_namespace_it_checked() -> None:
    # The parent refuses a join of the caller's own namespace. Checked on the pidfd's process and
    # joined later by the child through the pidfd, the check could see the process's own netns and
    # the join the host's (11-14 of these 400 spawns did): the join is of the files the check read.
    switcher = subprocess.Popen([sys.executable, "-c", SWITCHER], stdout=subprocess.PIPE, text=True)
    host = os.readlink("/proc/self/ns/net")
    ran: dict[str, int] = {}
    try:
        theirs = switcher.stdout.readline().strip()  # type: ignore[union-attr]  # a pipe
        pidfd = os.pidfd_open(switcher.pid)
        try:
            for _ in range(400):
                try:
                    got = output(["/usr/bin/readlink", "/proc/self/ns/net"],
                                 SysProcAttr(setns=[SetNS(pidfd, CLONE_NEWNET)])).strip()
                except ValueError as e:  # checked while the process was in the host's: refused
                    assert "caller's own namespace" in str(e)
                    got = "refused"
                ran[got] = ran.get(got, 0) + 1
        finally:
            os.close(pidfd)
    finally:
        switcher.kill()
        switcher.wait()
    assert ran.get(host, 0) == 0, ran
    assert ran.get(theirs, 0) > 0, ran  # (joins happened: the test saw the race's window)


def join_in_the_wrong_order() -> tuple[dict[str, str], dict[str, str]]:
    sleeper = start_process("/bin/sleep", ["sleep", "60"], ProcAttr(sys=userns(flags=CLONE_NEWNET)))
    try:
        ns = f"/proc/{sleeper.pid}/ns"
        # listed net first: only after joining the user namespace does uid 65534 own the netns
        entries = [SetNS(f"{ns}/net", CLONE_NEWNET), SetNS(f"{ns}/user", CLONE_NEWUSER)]
        got = ns_links(SysProcAttr(setns=entries))
        return got, links_of(sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_user_namespace_is_joined_first(unprivileged: Callable[..., Any]) -> None:
    got, theirs = unprivileged(join_in_the_wrong_order)
    assert (got["net"], got["user"]) == (theirs["net"], theirs["user"])


# ---- a PID namespace is one a process is born into ---------------------------------------------------
# setns(CLONE_NEWPID) moves only the caller's future children: joined by the child, the program would
# run in the caller's PID namespace (seeing its processes, through a /proc it mounts too) while the
# caller asked for the target's. The parent's thread joins it around clone instead.

# NSpid of the program itself (a builtin reads it: a $(...) would be a child of the program).
NSPID = "while read k v; do case $k in NSpid:) echo $v;; esac; done < /proc/self/status"
NSPID_OF_A_CHILD = f"/bin/sh -c '{NSPID}'"


def _pid_namespace_holder() -> Any:
    """A sleep that is PID 1 of a new PID namespace (and of a new network namespace)."""
    return start_process("/bin/sleep", ["sleep", "60"],
                         ProcAttr(sys=SysProcAttr(cloneflags=CLONE_NEWPID | CLONE_NEWNET, pidfd=True)))


def _levels(sys: SysProcAttr, script: str = NSPID) -> int:
    return len(output(["/bin/sh", "-c", script], sys).split())


def test_a_joined_pid_namespace_holds_the_program_itself() -> None:
    holder = _pid_namespace_holder()
    ours = os.readlink("/proc/thread-self/ns/pid_for_children")
    try:
        path = f"/proc/{holder.pid}/ns/pid"
        for entry in (SetNS(path, CLONE_NEWPID), SetNS(path), SetNS(holder.pidfd, CLONE_NEWPID)):
            assert _levels(SysProcAttr(setns=[entry])) == 2, entry  # the caller's and the target's
        # a pidfd's mask: PID joined around clone, the network namespace by the child
        both = SysProcAttr(setns=[SetNS(holder.pidfd, CLONE_NEWPID | CLONE_NEWNET)])
        assert output(["/usr/bin/readlink", "/proc/self/ns/net"], both).strip() == \
            os.readlink(f"/proc/{holder.pid}/ns/net")
        assert _levels(both) == 2
    finally:
        holder.kill()
        holder.wait()
    assert os.readlink("/proc/thread-self/ns/pid_for_children") == ours  # the caller's thread is back


def test_for_children_joins_as_setns_does_for_what_the_program_starts() -> None:
    holder = _pid_namespace_holder()
    try:
        sys = SysProcAttr(setns=[SetNS(f"/proc/{holder.pid}/ns/pid", CLONE_NEWPID, for_children=True)])
        assert _levels(sys) == 1  # the program: the caller's PID namespace (nsenter --no-fork)
        assert _levels(sys, NSPID_OF_A_CHILD) == 2  # what it starts: the target's
    finally:
        holder.kill()
        holder.wait()


@pytest.fixture
def no_child() -> Iterator[None]:
    before = children()
    yield
    assert children() == before


def test_for_children_is_a_pid_namespace_bool(no_child: None) -> None:
    net = "/proc/self/ns/net"
    only = r"^SysProcAttr\.setns\[0\]\.for_children: only a PID namespace can "
    with pytest.raises(ValueError, match=only):
        start_process("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(setns=[SetNS(net, for_children=True)])))
    with pytest.raises(TypeError, match=r"^SysProcAttr\.setns\[0\]\.for_children: "):
        start_process("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(setns=[SetNS(net, for_children=1)])))


def _join_user_and_pid(for_children: bool) -> Any:
    """As uid 65534: join the user and PID namespaces of its own sandboxed sleep."""
    holder = start_process("/bin/sleep", ["sleep", "60"], ProcAttr(sys=userns(flags=CLONE_NEWPID)))
    ns = f"/proc/{holder.pid}/ns"
    sys = SysProcAttr(setns=[SetNS(f"{ns}/user", CLONE_NEWUSER),
                             SetNS(f"{ns}/pid", CLONE_NEWPID, for_children=for_children)])
    try:
        return _levels(sys, NSPID_OF_A_CHILD) if for_children else _levels(sys)
    except ChildError as e:
        return (e.errno, e.location, e.index)
    finally:
        holder.kill()
        holder.wait()


def test_unprivileged_a_pid_namespace_the_parent_cannot_join_fails_closed(
        unprivileged: Callable[..., Any]) -> None:
    """Without CAP_SYS_ADMIN where it runs, the caller's thread cannot join a PID namespace: a
    ChildError at setns (the program would otherwise run in the caller's), unless asked for the
    children only, which the child, once in the user namespace, may join."""
    assert unprivileged(_join_user_and_pid, False) == (errno.EPERM, ErrorLocation.SETNS, 1)
    assert unprivileged(_join_user_and_pid, True) == 2
