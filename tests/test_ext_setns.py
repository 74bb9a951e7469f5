"""SysProcAttr.setns beyond paths and namespace fds: a pidfd with a namespace mask, user namespaces first."""

from __future__ import annotations

import os
from typing import Any, Callable

from helpers.ext import userns
from helpers.marks import needs_root
from helpers.procs import output

from pyforkexec import (
    CLONE_NEWNET,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
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
