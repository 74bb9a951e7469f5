"""Spawning a child with captured output, and reading facts about processes from /proc."""

from __future__ import annotations

import contextlib
import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Callable

from pyforkexec import ProcAttr, SysProcAttr, fork_exec, start_process

PATH_ENV = ("PATH=/usr/sbin:/usr/bin:/sbin:/bin",)
NS_NAMES = ("cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts")


@dataclass
class Result:
    pid: int
    returncode: int  # as subprocess: negative signal number when killed
    out: str  # stdout and stderr together


def wait_code(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def capture(argv: Sequence[str], sys: SysProcAttr | None = None, *, env: Sequence[str] | None = PATH_ENV,
            dir: str | None = None, stdin: int | None = None, extra: Sequence[object] = ()) -> Result:
    """fork_exec(argv[0], argv) with stdout+stderr on a pipe; waits and returns what it printed.

    ``stdin`` is a parent fd for the child's fd 0 (default /dev/null); ``extra`` become fds 3, 4, ...
    """
    r, w = os.pipe()
    null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        files = [null if stdin is None else stdin, w, w, *extra]
        pid = fork_exec(argv[0], list(argv), ProcAttr(dir=dir, env=env, files=files, sys=sys))
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
        os.close(null)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode()
    return Result(pid, wait_code(pid), out)


def output(argv: Sequence[str], sys: SysProcAttr | None = None, **kw: object) -> str:
    """capture() that insists on exit status 0."""
    res = capture(argv, sys, **kw)  # type: ignore[arg-type]
    assert res.returncode == 0, f"{argv} exited {res.returncode}: {res.out}"
    return res.out


def children() -> set[int]:
    """Every child of this process, zombies included."""
    pids: set[int] = set()
    for path in glob.glob("/proc/self/task/*/children"):
        try:
            with open(path) as f:
                pids.update(int(p) for p in f.read().split())
        except FileNotFoundError:  # that thread exited since the glob: it has no children left
            continue
    return pids


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def ns_links(pid: str = "self") -> dict[str, str]:
    return {name: os.readlink(f"/proc/{pid}/ns/{name}") for name in NS_NAMES}


def status_fields(text: str) -> dict[str, str]:
    """/proc/PID/status as {"Uid": "0\t0\t0\t0", ...}."""
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if v}


def cap_set(hexmask: str) -> set[int]:
    mask = int(hexmask, 16)
    return {bit for bit in range(64) if mask >> bit & 1}


@dataclass
class Stat:
    pid: int
    ppid: int
    pgrp: int
    session: int
    tty_nr: int
    tpgid: int


def parse_stat(text: str) -> Stat:
    """The ids of /proc/PID/stat (the command name in parentheses may contain spaces)."""
    fields = text[text.rindex(")") + 2:].split()
    pid = int(text.split(" ", 1)[0])
    return Stat(pid, int(fields[1]), int(fields[2]), int(fields[3]), int(fields[4]), int(fields[5]))


def child_stat(sys: SysProcAttr | None = None, **kw: object) -> Stat:
    """The /proc/self/stat of a child started with ``sys``; checks it is that child's own."""
    res = capture(["/usr/bin/cat", "/proc/self/stat"], sys, **kw)  # type: ignore[arg-type]
    assert res.returncode == 0, res.out
    st = parse_stat(res.out)
    assert st.pid == res.pid
    return st


def tty_nr(fd: int) -> int:
    """The tty_nr that /proc/PID/stat shows for the terminal ``fd`` (the kernel's new_encode_dev)."""
    dev = os.fstat(fd).st_rdev
    major, minor = os.major(dev), os.minor(dev)
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


def fd_table(text: str) -> dict[int, str]:
    """The output of ``probe fds`` as {fd: target}."""
    return {int(n): target for n, _, target in (line.partition(" ") for line in text.splitlines())}


def mount_tags(mountinfo: str, mount_point: str = "/") -> set[str]:
    """The propagation fields (shared:N, master:N, ...) of ``mount_point`` in a mountinfo text."""
    for line in mountinfo.splitlines():
        fields = line.split()
        if fields[4] == mount_point:
            return {tag.split(":")[0] for tag in fields[6:fields.index("-")]}
    raise AssertionError(f"{mount_point} not in mountinfo")


@contextlib.contextmanager
def namespace_holder(sys_attr: SysProcAttr) -> Iterator[Callable[[str], str]]:
    """A sleeping process started with ``sys_attr``; yields ``path(kind)``, the file of its namespace
    of that kind (``/proc/PID/ns/uts``). Killed and reaped after."""
    holder = start_process("/bin/sleep", ["sleep", "600"], ProcAttr(sys=sys_attr))
    try:
        yield lambda kind: f"/proc/{holder.pid}/ns/{kind}"
    finally:
        holder.kill()
        holder.wait()
