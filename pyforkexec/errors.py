"""Errors from a child that failed before execve, with the step that failed (as go-sandbox does)."""

from __future__ import annotations

import enum
import errno as errno_mod
import os
from typing import Optional


class ErrorLocation(enum.IntEnum):
    """The child step that failed, in the order the child runs them."""

    CLONE = 1
    SETNS = 2
    KEEPCAPS = 3
    UNSHARE_USER_READ = 4  # the parent's uid/gid map write, reported through the map pipe
    SETSID = 5
    SETPGID = 6
    IOCTL = 7  # TIOCSPGRP (foreground), TIOCNOTTY (noctty), TIOCSCTTY (setctty)
    SIGNAL_RESET = 8
    UNSHARE = 9
    ID_MAP_WRITE = 10  # the child's own setgroups/gid_map/uid_map after unshare(CLONE_NEWUSER)
    MOUNT_ROOT = 11  # mount("none", "/", MS_REC|MS_PRIVATE) after unshare(CLONE_NEWNS)
    CHROOT = 20
    SETGROUPS = 21
    SETGID = 22
    SETUID = 23
    SET_CAP = 24
    CHDIR = 30
    PDEATHSIG = 31
    DUP3 = 32
    FCNTL = 33
    CLOSE_FDS = 34
    SETRLIMIT = 40
    PTRACE_ME = 50
    EXECVE = 60

    @property
    def step(self) -> str:
        return self.name.lower()


# Which file an ID_MAP_WRITE / UNSHARE_USER_READ error index names.
ID_MAP_FILES = ("uid_map", "setgroups", "gid_map")


def _go_strerror(code: int) -> str:
    # Go's Errno.Error() is the C string with a lower-case first letter.
    text = os.strerror(code)
    return text[:1].lower() + text[1:]


class ChildError(OSError):
    """The child failed at ``location`` (with ``index`` when the step has several parts) before exec."""

    def __init__(self, code: int, location: ErrorLocation, index: int = 0, filename: Optional[str] = None):
        super().__init__(code, _go_strerror(code), filename)
        self.location = ErrorLocation(location)
        self.index = index

    @property
    def errno_name(self) -> str:
        return errno_mod.errorcode.get(self.errno, f"E{self.errno}")

    def __str__(self) -> str:
        return f"fork/exec {self.filename}: {self.strerror} (at {self.location.step})"

    def __reduce__(self):
        return (type(self), (self.errno, int(self.location), self.index, self.filename))
