"""Host-wide locks of pyforkexec's converges: one netns converge at a time (``netns``), one converge of
a host's services at a time (``services``, the collection's modules).

Each lock is a file of LOCK_DIR, a directory of /run that root makes 0755 and that must be root's alone
when it is used: in a directory any user may write (/run/lock, or a /run a container made 1777), a user
could make the file first and hold its lock, and every converge, boot units included, would wait for
ever. A directory that is not root's alone is refused (OSError naming it) rather than waited on.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Optional

from ._signals import SEIZE_TRIES, Hold, held, seize

LOCK_DIR = "/run/pyforkexec-locks"

# The fd of each lock this process holds now (host_lock), by name: a process started meanwhile that
# must keep the lock until it is ready is given a copy of it (held_fd).
_HELD: dict[str, int] = {}


def path(name: str) -> str:
    return os.path.join(LOCK_DIR, f"{name}.lock")


def _checked_dir() -> None:
    with suppress(FileExistsError):
        os.mkdir(LOCK_DIR, 0o755)
    st = os.lstat(LOCK_DIR)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
        raise OSError(errno.EPERM, f"{LOCK_DIR} is not a directory root's alone (uid {st.st_uid}, mode "
                      f"{stat.S_IMODE(st.st_mode):04o}): another user could hold its locks; remove it")


@contextmanager
def host_lock(name: str) -> Iterator[None]:
    """Hold lock ``name`` of this host, waiting for whoever holds it (a Ctrl-C ends the wait)."""
    _checked_dir()
    fd = -1
    hold = Hold()  # the finally's: made here, as it may call nothing before seizing it
    try:
        with held():  # a Ctrl-C between the open and the store would keep the fd (and the lock) open
            fd = os.open(path(name), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)  # not held: a Ctrl-C while another converge runs ends the wait
        _HELD[name] = fd
        yield
        # Closed inside the try: the finally's copy for the normal end runs outside it, and a handler's
        # exception at its first line (before the seize) would keep the fd, and the lock.
        with held():
            _HELD.pop(name, None)
            os.close(fd)
            fd = -1
    finally:
        seize(hold.start, SEIZE_TRIES)  # a signal here would keep the lock for good (_signals.seize)
        try:
            if fd >= 0:
                _HELD.pop(name, None)
                os.close(fd)
        finally:
            hold.end()


def held_fd(name: str) -> Optional[int]:
    """The fd of lock ``name`` while this process holds it (in host_lock), else None. A flock belongs to
    the open file: a process given a copy of the fd (pass_fds) keeps the lock held until it closes that
    copy, even once this process is gone (killed outright)."""
    return _HELD.get(name)
