"""The Python worker of spawn.py: fork_exec and subprocess.Popen timed per spawn, in serve mode.

Speaks the protocol of c_spawn.c: "N FLAGS MODE PROG [ARGS...]" answers N per-spawn times in ns, MODE
being "fork_exec" (pyforkexec.fork_exec + os.waitpid with FLAGS as clone flags, a root map when they
include CLONE_NEWUSER, one ProcAttr per row), "fork_exec_new" (the same with a new ProcAttr built in
each spawn), "prepared" (the same through pyforkexec.prepare(), prepared once per row and program
outside the timed loop, as a hot loop would: Prepared.fork_exec() + os.waitpid), "floor" (the
least Python a spawn can run, no API: the extension's one C call with the prepared spawn's plan, then
os.waitpid) or "popen" (subprocess.Popen(argv, env={}).wait(), FLAGS ignored); "mem BYTES" (re)sizes
the touched memory this process holds. One worker holds nothing, another the big parent's memory, so
both phases interleave in one run.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from typing import Callable

from workers import HeldMemory

import pyforkexec as fe
from pyforkexec import forkexec


def new_attr(flags: int) -> fe.ProcAttr:
    """The ProcAttr of a row: its clone flags as a caller writes them (fe.CLONE_NEWUTS | ..., a
    CloneFlags), and uid/gid 0 -> ours when it has a user namespace."""
    cloneflags = fe.CloneFlags(flags)
    if not flags:
        return fe.ProcAttr()
    # The work of the C loop and of Go: a CLONE_NEWNS clone flag leaves / as it is ("unchanged"; the
    # default makes it private, one mount(2) more: benchmarks/README.md)
    propagation = "unchanged" if flags & fe.CLONE_NEWNS else "private"
    if not flags & fe.CLONE_NEWUSER:
        return fe.ProcAttr(sys=fe.SysProcAttr(cloneflags=cloneflags, mount_propagation=propagation))
    return fe.ProcAttr(sys=fe.SysProcAttr(
        cloneflags=cloneflags, mount_propagation=propagation,
        uid_mappings=[fe.SysProcIDMap(container_id=0, host_id=os.getuid(), size=1)],
        gid_mappings=[fe.SysProcIDMap(container_id=0, host_id=os.getgid(), size=1)]))


attr_for = functools.cache(new_attr)  # one ProcAttr per row, reused by every spawn of the row


@functools.cache
def prepared_for(flags: int, argv: tuple[str, ...]) -> fe.Prepared:
    """One Prepared per row and program, made at its first request (outside the timed spawns, and once,
    so that a cell's CPU time holds no prepare() but that first one)."""
    return fe.prepare(argv[0], list(argv), attr_for(flags))


class _Child:
    """What the extension's spawn() records a child in (the attributes _Spawn has for it)."""

    __slots__ = ("failure", "handle", "pid", "pidfd")


def python_floor(flags: int, argv: tuple[str, ...]) -> Callable[[], int]:
    """The least Python a spawn can run: pyforkexec's C call on the plan prepare() made for this row,
    with none of the API around it (no object per spawn, no abort path, no result), then os.waitpid.
    What this costs above the C loop is the interpreter's own, in every run: the floor under the
    prepared path. Private internals, for this measurement only."""
    prepared = prepared_for(flags, argv)
    args, alone = prepared._args, prepared._alone
    plan = alone() if alone is not None else None
    if plan is None or plan.flags & fe.CLONE_PIDFD:
        raise RuntimeError(f"the row {flags:#x} needs the parent during its spawn: no one-call floor")
    spawn, child = forkexec._child.spawn, _Child()
    path, cargs, envp, files, steps, blobs, cflags, cgroup_fd = (
        args.path, args.argv, args.env or (), args.files, plan.steps, plan.blobs, plan.flags, plan.cgroup_fd)

    def once() -> int:
        spawn(child, steps, blobs, path, cargs, envp, files, -1, cflags, cgroup_fd)
        if child.failure is not None:
            raise RuntimeError(f"a benchmark child failed: {child.failure}")
        return os.waitpid(child.pid, 0)[1]

    return once


def spawner(mode: str, flags: int, argv: list[str]) -> Callable[[], int]:
    """One spawn + wait, returning the wait status."""
    if mode == "fork_exec":
        attr = attr_for(flags)
        return lambda: os.waitpid(fe.fork_exec(argv[0], argv, attr), 0)[1]
    if mode == "fork_exec_new":  # the caller builds its ProcAttr anew for every spawn
        return lambda: os.waitpid(fe.fork_exec(argv[0], argv, new_attr(flags)), 0)[1]
    if mode == "prepared":
        prepared = prepared_for(flags, tuple(argv))
        return lambda: os.waitpid(prepared.fork_exec(), 0)[1]
    if mode == "floor":
        return python_floor(flags, tuple(argv))
    if mode == "popen":
        return lambda: subprocess.Popen(argv, env={}).wait()
    raise ValueError(f"unknown mode {mode!r}")


def timed(once: Callable[[], int], n: int) -> list[int]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        status = once()
        out.append(time.perf_counter_ns() - t0)
        if status != 0:
            raise RuntimeError(f"a benchmark child ended with status {status}")
    return out


def serve() -> None:
    held = HeldMemory(0)
    for line in sys.stdin:
        tok = line.split()
        if len(tok) == 2 and tok[0] == "mem":
            held.close()
            held = HeldMemory(int(tok[1], 0))
            print("ok", flush=True)
        else:
            n, flags, mode, argv = int(tok[0]), int(tok[1], 0), tok[2], tok[3:]
            print(" ".join(map(str, timed(spawner(mode, flags, argv), n))), flush=True)


if __name__ == "__main__":
    serve()
