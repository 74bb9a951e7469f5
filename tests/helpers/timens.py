"""When a child enters a time namespace created by its clone: the kernel fixes the namespace's
offsets once it has a process."""

from __future__ import annotations

import functools
import os

from pyforkexec import CLONE_NEWTIME, ProcAttr, SysProcAttr, start_process


@functools.cache
def time_namespace_entered_at_clone() -> bool:
    """Whether this kernel moves a child cloned with CLONE_NEWTIME while sharing its parent's memory
    (pyforkexec's child does) into the new namespace at clone, rather than at execve: Linux before
    6.2, where execve does not enter a namespace unshared before it either (one kernel change,
    "fs/exec: switch timens when a task gets a new mm", did both). Observed before the execve, in
    the sync callback (needs root: CAP_SYS_ADMIN)."""
    entered = []

    def look(pid: int) -> None:
        ns = f"/proc/{pid}/ns/"
        entered.append(os.readlink(ns + "time") == os.readlink(ns + "time_for_children"))

    attr = ProcAttr(sys=SysProcAttr(cloneflags=CLONE_NEWTIME, sync=look))
    proc = start_process("/bin/true", ["true"], attr)
    assert proc.wait() == 0
    return entered[0]
