"""The caller's terminal around a spawn with ``SysProcAttr.foreground`` or ``setctty``.

The child makes its process group the foreground one of the terminal on ``ctty`` (Go's
``ioctl(TIOCSPGRP)``) early, before its other steps. When a later step fails (a ChildError), or the
spawn is undone (an exception, a KeyboardInterrupt), or its Process (start_process, run) has reaped
it, that group is gone or was never the program's: the terminal would be left with no foreground
process group of a live process, and this process, now in the background of its own terminal, would
be stopped by SIGTTIN at its next read (SIGTTOU at a tcsetattr). A shell gives the terminal back after
a foreground job; ForegroundTerminal does so for the spawn: it remembers the foreground group before
the spawn and sets it again, only while the terminal's foreground is still the group the child made it.

``setctty`` makes the terminal on the child's fd ``ctty`` the controlling terminal of the child's new
session with Go's ``ioctl(TIOCSCTTY, 1)``, which, given CAP_SYS_ADMIN, takes a terminal that is
another session's controlling terminal away from that session. When it is this process's own, this
process's session would be left with none, for good (EPERM without the capability, after the clone):
refused before any process (refuse_own_terminal).
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
from collections.abc import Sequence
from typing import Optional

from .attrs import SysProcAttr
from .checks import fail


class ForegroundTerminal:
    """The foreground process group of the terminal on fd ``ctty`` before a spawn (None: none known,
    as for an fd that is no terminal, where the child's TIOCSPGRP fails too)."""

    __slots__ = ("before", "ctty", "pgid")

    def __init__(self, ctty: int, pgid: int) -> None:
        self.ctty = ctty
        self.pgid = pgid  # SysProcAttr.pgid: 0 is the child's own group (its pid)
        self.before: Optional[int] = None
        with contextlib.suppress(OSError):
            self.before = os.tcgetpgrp(ctty)

    def give_back(self, pid: int) -> None:
        """The foreground back to the group it had before the spawn of child ``pid`` (-1: reaped
        already, its number unknown), when it is the child's group now: ``pgid``, the child's own
        (``pid``), or a group with no process left (the child's, reaped). SIGTTOU is blocked meanwhile:
        this process may be in the background then, where tcsetpgrp would stop it."""
        if self.before is None:
            return
        try:
            now = os.tcgetpgrp(self.ctty)
        except OSError:
            return
        # (pgid as this process numbers it: in a new PID namespace 1 is the child's own group)
        if now == self.before or not (now == pid or (self.pgid and now == self.pgid) or _empty(now)):
            return
        old = signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGTTOU,))
        try:
            with contextlib.suppress(OSError):  # (the group before may be gone meanwhile: EPERM)
                os.tcsetpgrp(self.ctty, self.before)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _empty(group: int) -> bool:
    """Whether process group ``group`` has no process (any more)."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return True
    except OSError:  # (EPERM: a process is there)
        return False
    return False


def controlling_terminal() -> int:
    """This process's controlling terminal as a device number (tty_nr of /proc/self/stat), 0 for none."""
    with open("/proc/self/stat", "rb") as f:
        return int(f.read().rsplit(b")", 1)[1].split()[4])


def refuse_own_terminal(sys_attr: SysProcAttr, files: Sequence[int]) -> None:
    """setctty's terminal (``files[ctty]``, checked already) must not be this process's controlling
    terminal (this process's state: checked at each spawn)."""
    fd = files[sys_attr.ctty]
    try:
        st = os.fstat(fd)
        own = controlling_terminal()
    except (OSError, ValueError, IndexError):
        return  # (a closed fd fails at the child's fd pass, named there)
    if own and stat.S_ISCHR(st.st_mode) and st.st_rdev == own:
        fail("SysProcAttr.ctty", f"with setctty, ProcAttr.files[{sys_attr.ctty}] (fd {fd}) is this process's "
             "own controlling terminal, which the child's TIOCSCTTY would take away from this process's "
             "session for good (it steals it with CAP_SYS_ADMIN; EPERM without): give the child a terminal "
             "of its own (a new pty), or leave setsid and setctty out and use foreground to run it in this "
             "session")
