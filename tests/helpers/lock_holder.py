"""A process of another account (uid/gid 65534) that takes the flock of files it may open and keeps it:
what a service could do to a lock of the host's pyforkexec that others may open (flock takes any open
file, a read-only one too)."""

from __future__ import annotations

import errno
import fcntl
import os
import signal
from typing import Optional

NOBODY = 65534


def hold_as_nobody(paths: list[str], dir_fd: Optional[int] = None) -> tuple[int, list[str]]:
    """Forks a process of uid 65534 that opens each of ``paths`` read-only (relative to ``dir_fd`` if
    given: then the directories above it need not be searchable to it), takes its flock exclusively and
    keeps what it got until killed (release). Returns its pid and the outcome of each: "held" or the
    errno's name."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            said = []
            for path in paths:
                try:
                    fcntl.flock(os.open(path, os.O_RDONLY, dir_fd=dir_fd), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    said.append("held")
                except OSError as e:
                    said.append(errno.errorcode[e.errno])
            os.write(w, " ".join(said).encode())
            os.close(w)
            signal.pause()
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        return pid, f.read().split()


def release(pid: int) -> None:
    """Ends the holder ``pid`` and reaps it."""
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
