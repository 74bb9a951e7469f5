"""Host-wide locks of pyforkexec's converges: one netns converge at a time (``netns``), one converge of
a host's services at a time (``services``, the collection's modules).

Each lock is a file of LOCK_DIR, a directory of /run that root makes 0755 and that must be root's alone
when it is used: in a directory any user may write (/run/lock, or a /run a container made 1777), a user
could make the file first and hold its lock, and every converge, boot units included, would wait for
ever. A directory that is not root's alone is refused (OSError naming it) rather than waited on.

A process that holds a lock may be wedged (stopped, blocked for good): a caller that knows when a holder
can no longer be waited for passes ``give_up``, and the wait ends with LockHeld naming the holders.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Optional

from ._signals import SEIZE_TRIES, Hold, held, seize
from .proc_pid import ns_pid

LOCK_DIR = "/run/pyforkexec-locks"

# The fd of each lock this process holds now (host_lock), by name: a process started meanwhile that
# must keep the lock until it is ready is given a copy of it (held_fd).
_HELD: dict[str, int] = {}


def path(name: str) -> str:
    return os.path.join(LOCK_DIR, f"{name}.lock")


class Holder:
    """A process that holds a lock (has its file open and does not wait for it): its pid and command line
    (pid None: a process of a PID namespace above this one's, seen in its /proc)."""

    def __init__(self, pid: Optional[int], argv: list[str]) -> None:
        self.pid, self.argv = pid, argv

    def __str__(self) -> str:
        who = f"pid {self.pid}" if self.pid is not None else "a process of another PID namespace"
        return f"{who} ({' '.join(self.argv) or 'no command line'})"


class LockHeld(OSError):
    """The wait for a lock was given up (``give_up`` of host_lock): ``holders`` hold it."""

    def __init__(self, name: str, reason: str, found: list[Holder]) -> None:
        held_by = ", ".join(str(holder) for holder in found)
        super().__init__(errno.EAGAIN, f"the host's {name} lock ({path(name)}) is held by {held_by}: "
                         f"{reason}")
        self.holders = found


_ASK = 1.0  # seconds between two questions to give_up while a wait lasts


def holders(fd: int) -> list[Holder]:
    """The processes that hold the lock of ``fd``'s file, this one aside: those with an fd of the file
    whose /proc/PID/fdinfo shows the lock (a process waiting for it has the file open too, without).
    The pid /proc/locks gives is the process that took the lock, which may be gone while another it
    gave the fd to (pass_fds) holds it still: the fds tell who holds it now."""
    st = os.fstat(fd)
    where = os.readlink(f"/proc/self/fd/{fd}")
    # /proc numbers processes in the PID namespace it was mounted in, which may be an ancestor of this
    # one's (a container that kept the host's /proc): this process is /proc/self's number there, and
    # a holder is given by its pid here (ns_pid; None: a process of a namespace above this one).
    me = os.readlink("/proc/self")
    found = []
    for pid in (entry for entry in os.listdir("/proc") if entry.isdigit() and entry != me):
        try:
            for entry in os.scandir(f"/proc/{pid}/fd"):
                if _holds(entry, where, st):
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        argv = [arg.decode(errors="replace") for arg in f.read().split(b"\0")[:-1]]
                    found.append(Holder(ns_pid(int(pid)), argv))
                    break
        except OSError:  # gone, or not ours to read
            continue
    return found


def _holds(entry: os.DirEntry, where: str, st: os.stat_result) -> bool:
    """Whether fd ``entry`` (of /proc/PID/fd) is of the file of ``st`` (at ``where``) and holds its lock.
    By its link first: no other process's file is stat'ed (one on a hung network mount would block)."""
    try:
        if os.readlink(entry.path) != where:
            return False
        other = os.stat(entry.path)
        if (other.st_dev, other.st_ino) != (st.st_dev, st.st_ino):
            return False
        with open(entry.path.replace("/fd/", "/fdinfo/")) as f:
            return any(line.startswith("lock:") for line in f)
    except OSError:  # closed meanwhile
        return False


def _wait(fd: int, name: str, give_up: Callable[[list[Holder]], Optional[str]]) -> None:
    """Take the lock of ``fd``, asking ``give_up`` with its holders every _ASK seconds meanwhile; LockHeld
    when it answers a reason. The wait is a blocking flock (a waiter as /proc/locks shows it, woken by
    the kernel, first come) in a thread of its own, on a copy of ``fd`` that it closes once it returns:
    the lock is the open file's, held through ``fd``; a wait given up ends in that thread at the
    holder's release, whose lock then goes with the copy, the last of that file in this process."""
    copy = os.dup(fd)  # (a number of its own: ``fd`` is closed, and reused, once the wait is given up)
    done = threading.Event()
    failed: list[OSError] = []

    def wait() -> None:
        try:
            fcntl.flock(copy, fcntl.LOCK_EX)
        except OSError as e:
            failed.append(e)
        finally:
            os.close(copy)
            done.set()

    threading.Thread(target=wait, name=f"host_lock {name}", daemon=True).start()
    while not done.wait(_ASK):  # (a Ctrl-C ends the wait, as the blocking flock's)
        found = holders(fd)
        reason = give_up(found) if found else None
        if reason is not None and not done.is_set():
            raise LockHeld(name, reason, found)
    if failed:
        raise failed[0]


def _checked_dir() -> None:
    with suppress(FileExistsError):
        os.mkdir(LOCK_DIR, 0o755)
    st = os.lstat(LOCK_DIR)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
        raise OSError(errno.EPERM, f"{LOCK_DIR} is not a directory root's alone (uid {st.st_uid}, mode "
                      f"{stat.S_IMODE(st.st_mode):04o}): another user could hold its locks; remove it")


@contextmanager
def host_lock(name: str, give_up: Optional[Callable[[list[Holder]], Optional[str]]] = None) -> Iterator[None]:
    """Hold lock ``name`` of this host, waiting for whoever holds it (a Ctrl-C ends the wait), until
    ``give_up``, when given, called with its holders while the wait lasts, answers a reason not to wait
    longer: LockHeld (an OSError) naming them then."""
    _checked_dir()
    fd = -1
    hold = Hold()  # the finally's: made here, as it may call nothing before seizing it
    try:
        with held():  # a Ctrl-C between the open and the store would keep the fd (and the lock) open
            fd = os.open(path(name), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        if give_up is None:
            fcntl.flock(fd, fcntl.LOCK_EX)  # not held: a Ctrl-C while another converge runs ends the wait
        else:
            _wait(fd, name, give_up)
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
