"""One daemon per service, held by the kernel rather than by a file.

A pid file's lock counts only while the file is where its path says: one removed by hand (``rm``, a
cleaned ``/run/pyforkexec``) while its daemon runs lets a second daemon create and lock another file
there, so that two copies of the service run, and whoever looks for the daemon by the file finds the
second only. So the daemon also binds a unix socket in the abstract namespace, named after its pid
file's path (``name``), and keeps it open for as long as it lives (across its execs of
pyforkexec-waiter and back): the kernel refuses a second bind of that name, nothing in any file system
can remove it, and it is released exactly when the daemon's process ends (its last fd closes; the
service never has it: close-on-exec). Whoever looks for a service's daemon asks which process holds
that socket (``bound_inode``, ``holds``, ``holder``), not which pid a file names.

Abstract names are per network namespace: the daemon binds its own in the host's (it never leaves it;
its service joins its own namespaces), and only a look from that namespace finds it. The socket is
bound, never listened on: a connect is refused, nothing queues on it. A local process of that network
namespace can bind the name first (as it can for any abstract name): the daemon then refuses to start,
and the one holding the name is another user's process, which callers can tell (``holder_uid``).
"""

from __future__ import annotations

import errno
import os
from typing import Optional

PREFIX = "pyforkexec-daemon:"
MAX_NAME = 107  # sun_path's 108 bytes, without the NUL that makes a name abstract


class Taken(OSError):
    """Another process holds the daemon's name: a daemon of that pid file runs (``pid``: the holder
    found, None if it could not be told)."""

    def __init__(self, name: str, pid: Optional[int]):
        super().__init__(errno.EADDRINUSE, f"the name @{name} is held by "
                         + (f"process {pid}" if pid is not None else "another process"))
        self.name, self.pid = name, pid


def name(pid_file: str) -> str:
    """The abstract socket name (without its leading NUL) of the daemon of ``pid_file``: its absolute
    path as given (no file is looked at: the name must not depend on what is on disk), readable where
    it fits and is printable ASCII without spaces (/proc/net/unix prints names raw), else its SHA-256."""
    key = os.path.abspath(pid_file)
    readable = PREFIX + key
    if len(readable) <= MAX_NAME and key.isascii() and key.isprintable() and " " not in key:
        return readable
    import hashlib  # (only for such a path: the daemon's start imports what it uses)

    return f"{PREFIX}sha256:{hashlib.sha256(os.fsencode(key)).hexdigest()}"


def claim(pid_file: str) -> int:
    """Bind the daemon's name; the socket's fd (close-on-exec). Raises Taken if another process holds
    it, OSError for any other failure."""
    # _socket, not socket: the daemon's every start would import socket's enum and selectors machinery
    # for a bind (tests/test_startup_imports.py).
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.bind("\0" + name(pid_file))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise Taken(name(pid_file), holder(pid_file)) from None
        raise
    return sock.detach()


def bound_inode(pid_file: str) -> Optional[int]:
    """The inode of the socket bound at the daemon's name in this network namespace (/proc/net/unix),
    None when none is: no daemon of ``pid_file`` runs (or one of a pyforkexec that predates the name)."""
    wanted = "@" + name(pid_file)
    with open("/proc/net/unix") as f:
        next(f, None)  # the header
        for line in f:
            fields = line.rstrip("\n").split(None, 7)  # Num RefCount Protocol Flags Type St Inode Path
            if len(fields) == 8 and fields[7] == wanted:
                return int(fields[6])
    return None


def holds(pid: int, inode: int) -> bool:
    """Whether process ``pid`` has the socket ``inode`` open (its /proc/PID/fd)."""
    target = f"socket:[{inode}]"
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:  # gone, or not ours to look at
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                return True
        except OSError:  # closed meanwhile
            continue
    return False


def holder(pid_file: str, hint: Optional[int] = None) -> Optional[int]:
    """The process that holds the daemon's name: ``hint`` (its pid file's pid, asked first) if it does,
    else the one found among every process here. None when the name is not bound, or no process seen
    here holds it (it was released meanwhile, or its holder is in a PID namespace this one does not
    see). Of several (the service between its clone and its execve holds it too, until close-on-exec),
    the one whose parent does not."""
    inode = bound_inode(pid_file)
    if inode is None:
        return None
    if hint is not None and holds(hint, inode):
        return hint
    found = {int(p) for p in os.listdir("/proc") if p.isdigit() and holds(int(p), inode)}
    return next((pid for pid in sorted(found) if _parent(pid) not in found), None)


def holder_uid(pid: int) -> Optional[int]:
    """The real uid of process ``pid`` (None: gone)."""
    return _status(pid, "Uid:")


def _parent(pid: int) -> Optional[int]:
    return _status(pid, "PPid:")


def _status(pid: int, field: str) -> Optional[int]:
    """The first number of ``field`` in /proc/PID/status (None: no such process)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith(field)), None)
    except (FileNotFoundError, ProcessLookupError):
        return None
