"""A CLONE_NEWUSER child whose maps it may write itself (one id: the caller's euid/egid, setgroups
denied) writes them, and the spawn sleeps as vfork does instead of a pipe handshake with the parent.
The outcome must be the parent-written one: the same maps and setgroups, the same errors at the same
step. Checked as root and as uid 65534, against the parent's path on the same kernel."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Optional

import pytest
from helpers.forked import NOBODY

import pyforkexec as fe
from pyforkexec.child.plan import NEWUSER, PlanInputs, child_may_map_itself, compile_plan
from pyforkexec.errors import UID_MAP, ErrorLocation

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mounts over /proc)")
NS = fe.CLONE_NEWUSER | fe.CLONE_NEWPID | fe.CLONE_NEWNS


def one(host: int, size: int = 1) -> list[fe.SysProcIDMap]:
    return [fe.SysProcIDMap(container_id=0, host_id=host, size=size)]


def attr_with(uid_maps: Optional[list[fe.SysProcIDMap]], gid_maps: Optional[list[fe.SysProcIDMap]],
              setgroups: bool = False, flags: int = NS) -> fe.SysProcAttr:
    return fe.SysProcAttr(cloneflags=fe.CloneFlags(flags), uid_mappings=uid_maps, gid_mappings=gid_maps,
                          gid_mappings_enable_setgroups=setgroups)


@pytest.mark.parametrize(("uid_maps", "gid_maps", "setgroups", "expected"), [
    (one(1000), one(1000), False, True),
    (one(1000), None, False, True),
    (None, one(1000), False, True),
    (one(1000), one(1000), True, False),  # setgroups allowed needs CAP_SETGID over the parent namespace
    (one(0), one(1000), False, False),  # another uid than the caller's
    (one(1000), one(0), False, False),  # another gid
    (one(1000, 2), one(1000), False, False),  # more than one id
    ([fe.SysProcIDMap(0, 1000, 1), fe.SysProcIDMap(1, 1001, 1)], None, False, False),  # two lines
    (None, None, False, False),
])
def test_only_maps_the_kernel_lets_a_child_write_go_to_it(uid_maps, gid_maps, setgroups, expected) -> None:
    attr = attr_with(uid_maps, gid_maps, setgroups)
    assert child_may_map_itself(attr, NS, 0, 1000, 1000) is expected
    # Without CLONE_NEWUSER at clone, or with it (also) at unshare, Go's own order stays.
    assert not child_may_map_itself(attr, NS & ~NEWUSER, 0, 1000, 1000)
    assert not child_may_map_itself(attr, NS, NEWUSER, 1000, 1000)


def test_a_child_that_maps_itself_sleeps_as_vfork_without_a_map_pipe() -> None:
    attr = attr_with(one(1000), one(1000))
    inputs = PlanInputs(attr, NS, 0, (0, 1, 2), b"", b"", maps_by_child=True)
    plan = compile_plan(inputs)
    assert plan.flags & fe.CLONE_VFORK and not plan.map_pipe and not plan.parent_writes_maps
    # Go's parent order (uid_map, setgroups, gid_map), so a failure names the same file either way.
    assert plan.blobs == (b"/proc/self/uid_map\0", b"0 1000 1\n", b"/proc/self/setgroups\0", b"deny",
                          b"/proc/self/gid_map\0", b"0 1000 1\n")
    inputs = PlanInputs(attr, NS, 0, (0, 1, 2), b"", b"", map_fds=(7, 8))
    plan = compile_plan(inputs)
    assert not plan.flags & fe.CLONE_VFORK and plan.map_pipe and plan.parent_writes_maps


def spawn_reading_maps(attr: fe.SysProcAttr) -> str:
    """What the child sees of its own maps and setgroups, after exec."""
    r, w = os.pipe()
    try:
        argv = ["cat", "/proc/self/uid_map", "/proc/self/gid_map", "/proc/self/setgroups"]
        pid = fe.fork_exec("/bin/cat", argv, fe.ProcAttr(files=[0, w, 2], sys=attr))
    finally:
        os.close(w)
    with os.fdopen(r) as out:
        text = out.read()
    assert os.waitpid(pid, 0)[1] == 0
    return " ".join(text.split())


def own_maps() -> tuple[str, str]:
    """(what a child that maps itself sees, what Go's parent writes for the same attr)."""
    uid, gid = os.geteuid(), os.getegid()
    return spawn_reading_maps(attr_with(one(uid), one(gid))), f"0 {uid} 1 0 {gid} 1 deny"


def test_the_child_writes_what_the_parent_would_as_root() -> None:
    mine, expected = own_maps()
    assert mine == expected


def test_the_child_writes_what_the_parent_would_unprivileged(unprivileged) -> None:
    mine, expected = unprivileged(own_maps)
    assert mine == expected
    assert f" {NOBODY} " in f" {mine} "


# A /proc the child cannot write its maps through: the parent's path fails the same way there, at
# the same step, on the same file. Run in a private mount namespace with a tmpfs over /proc, where
# the parent's /proc/PID is missing too.
FAILING = textwrap.dedent("""
    import os, sys
    import pyforkexec as fe
    uid = os.geteuid()
    maps, gids = [fe.SysProcIDMap(0, uid, 1)], [fe.SysProcIDMap(0, os.getegid(), 1)]
    flags = fe.CLONE_NEWUSER | fe.CLONE_NEWPID
    for label, attr in [
        ("child", fe.SysProcAttr(cloneflags=flags, uid_mappings=maps, gid_mappings=gids)),
        ("parent", fe.SysProcAttr(cloneflags=flags, uid_mappings=maps + [fe.SysProcIDMap(1, 1, 1)])),
    ]:
        try:
            fe.fork_exec("/bin/true", ["true"], fe.ProcAttr(sys=attr))
        except fe.ChildError as e:
            print(label, e.errno, int(e.location), e.index, e.field)
        else:
            print(label, "ran")
""")


@needs_root
def test_without_proc_both_paths_fail_at_the_uid_map() -> None:
    script = f"mount -t tmpfs none /proc && exec {sys.executable} -c \"$0\""
    out = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, FAILING],
                         capture_output=True, text=True, timeout=60, check=True).stdout.split("\n")
    loc = int(ErrorLocation.UNSHARE_USER_READ)
    assert out[0] == f"child 2 {loc} {UID_MAP} sys.uid_mappings"
    assert out[1] == f"parent 2 {loc} {UID_MAP} sys.uid_mappings"
