"""The number /proc gives a process of the caller's PID namespace (its child, itself).

/proc shows the PID namespace it was mounted in, which need not be the caller's: a container, or
``unshare --pid --fork`` without ``--mount-proc``, may keep the host's /proc (an ancestor namespace's),
where every process has another number than the one os.getpid(), fork or clone gave. A path
``/proc/PID`` built from such a number would name another process there (its uid_map written, its
namespace bound). The number /proc has for it is read from a pidfd's fdinfo, which the kernel gives in
the PID namespace of the /proc it is read through."""

from __future__ import annotations

import errno
import os
from typing import Optional


def own_proc() -> bool:
    """Whether /proc shows this process's PID namespace (/proc/self is os.getpid())."""
    try:
        return os.readlink("/proc/self") == str(os.getpid())
    except OSError:  # no /proc, or one of a namespace that cannot see this process
        return False


def of_pidfd(fd: int) -> int:
    """The number /proc gives the process of pidfd ``fd`` (its fdinfo's Pid): -1 when it has ended, 0
    when /proc is of a PID namespace that cannot see it. OSError when /proc cannot be read."""
    with open(f"/proc/thread-self/fdinfo/{fd}", "rb") as info:
        line = next((x for x in info if x.startswith(b"Pid:")), b"Pid: -1")
    return int(line.split()[1])


def pidfd_pid(fd: int) -> Optional[int]:
    """The number /proc gives the process of ``fd`` if it is a pidfd (of_pidfd), None when it is no
    pidfd or not open (or /proc cannot be read)."""
    try:
        if os.readlink(f"/proc/thread-self/fd/{fd}") != "anon_inode:[pidfd]":
            return None
        return of_pidfd(fd)
    except OSError:
        return None


def proc_pid(pid: int) -> int:
    """The number of process ``pid`` (a number of this process's PID namespace) in /proc: ``pid`` itself
    when /proc is this namespace's. OSError (ESRCH) naming the reason when /proc cannot show it, or it
    has ended: a path built from ``pid`` would be another process's, or none."""
    if own_proc():
        return pid
    try:
        fd = os.pidfd_open(pid)
    except OSError as e:
        raise OSError(e.errno, f"process {pid}: {e.strerror} (/proc is of another PID namespace than this "
                               "process's, and it is found there through a pidfd)") from None
    try:
        found = of_pidfd(fd)
    except OSError as e:
        raise OSError(e.errno, f"/proc does not show this process ({e.strerror}): it is of another PID "
                               "namespace, one that cannot see it") from None
    finally:
        os.close(fd)
    if found <= 0:
        raise OSError(errno.ESRCH, f"process {pid} " + ("has ended" if found < 0 else
                      "is not in /proc, which is of another PID namespace, one that cannot see it"))
    return found


def ns_pid(number: int) -> Optional[int]:
    """The pid in this process's PID namespace of the process /proc numbers ``number``: ``number`` where
    /proc is this namespace's, else its NSpid at this namespace's depth (NSpid lists its pids from the
    namespace of /proc down). None when it is gone, or not in this namespace (above it)."""
    if own_proc():
        return number
    depth = len(_nspid("self") or ()) - 1
    pids = _nspid(str(number))
    return pids[depth] if pids is not None and 0 <= depth < len(pids) else None


def _nspid(where: str) -> Optional[list[int]]:
    try:
        with open(f"/proc/{where}/status") as f:
            line = next((x for x in f if x.startswith("NSpid:")), None)
    except OSError:  # gone
        return None
    return None if line is None else [int(p) for p in line.split()[1:]]
