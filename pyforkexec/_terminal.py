"""The caller's terminal around a spawn with ``SysProcAttr.foreground``.

The child makes its process group the foreground one of the terminal on ``ctty`` (Go's
``ioctl(TIOCSPGRP)``) early, before its other steps. When a later step fails (a ChildError), or the
spawn is undone (an exception, a KeyboardInterrupt), or run() has reaped it, that group is gone or
was never the program's: the terminal would be left with no foreground process group of a live
process, and this process, now in the background of its own terminal, would be stopped by SIGTTIN
at its next read (SIGTTOU at a tcsetattr). A shell gives the terminal back after a foreground job;
ForegroundTerminal does so for the spawn: it remembers the foreground group before the spawn and sets
it again, only while the terminal's foreground is still the group the child made it.
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Optional


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
        already, its number unknown), when it is the child's group now: ``pgid``, else the child's own,
        which is ``pid`` or, ``pid`` unknown, a group with no process left. SIGTTOU is blocked meanwhile:
        this process may be in the background then, where tcsetpgrp would stop it."""
        if self.before is None:
            return
        try:
            now = os.tcgetpgrp(self.ctty)
        except OSError:
            return
        if now == self.before or not (now == self.pgid if self.pgid else now == pid or _empty(now)):
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
