"""Thin ctypes wrappers for the system calls the tests need and Python 3.9-3.11 lacks."""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.ptrace.restype = ctypes.c_long
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]

MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PTRACE_DETACH = 17
SYS_PIDFD_SEND_SIGNAL = 424


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def _enc(s: str | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(_enc(source), _enc(target), _enc(fstype), ctypes.c_ulong(flags), _enc(data)), "mount")


def prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), "prctl")


def ptrace(request: int, pid: int, addr: int = 0, data: int = 0) -> int:
    return _check(_libc.ptrace(request, pid, ctypes.c_void_p(addr), ctypes.c_void_p(data)), "ptrace")


def ptrace_detach(pid: int) -> None:
    ptrace(PTRACE_DETACH, pid)


def pidfd_send_signal(pidfd: int, sig: int) -> None:
    _check(_libc.syscall(SYS_PIDFD_SEND_SIGNAL, pidfd, sig, None, 0), "pidfd_send_signal")


def eventfd() -> int:
    """A new eventfd (counter 0, no flags): ``os.eventfd`` is Python 3.10's, glibc's works on 3.9 too."""
    return _check(_libc.eventfd(0, 0), "eventfd")


def make_root_shared() -> None:
    """Give this process a mount namespace whose / is recursively shared, as systemd leaves it.

    The host's / may be private, which would hide whether a child's CLONE_NEWNS stays isolated.
    """
    from pyforkexec import CLONE_NEWNS

    unshare(CLONE_NEWNS)
    mount(None, "/", None, MS_REC | MS_SHARED)
