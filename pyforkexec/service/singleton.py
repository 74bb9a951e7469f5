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
bound, never listened on: a connect is refused, nothing queues on it.

An abstract name has no permissions: any local process of that network namespace can bind it first (a
squatter). Whose a name is, is its socket's owner (``held_by``): the user whose process made the socket,
which no process it is passed to, or that execs a set-uid program, changes. A name of another user than
the daemon's is not a daemon: the daemon starts beside it, its pid file's lock alone keeping it single
for that run (as before the name), and whoever looks for the daemon looks by that lock; an unprivileged
user cannot keep root's service from starting. A name of the daemon's own user is a daemon (or that
user's own doing): a second daemon is refused.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from typing import NamedTuple, Optional

from ..proc_pid import ns_pid, proc_pid

PREFIX = "pyforkexec-daemon:"
MAX_NAME = 107  # sun_path's 108 bytes, without the NUL that makes a name abstract


class Holder(NamedTuple):
    """The process holding a daemon's name (None: none seen, see ``held_by``), and the name's owner:
    the uid its socket was made with."""

    pid: Optional[int]
    uid: int


class Taken(OSError):
    """Another process holds the daemon's name (``found``: ``held_by``'s, None if it could not be told):
    a daemon of that pid file runs, unless ``found.uid`` is another user's (a squatter)."""

    def __init__(self, name: str, found: Optional[Holder]):
        super().__init__(errno.EADDRINUSE, f"the name @{name} is held by " + describe(found))
        self.name, self.found = name, found
        self.pid = None if found is None else found.pid


def describe(found: Optional[Holder]) -> str:
    """Who holds a name, for a message: "process N of uid U" ("no process seen here, uid U's socket", or
    "another process", where ``held_by`` could tell less)."""
    if found is None:
        return "another process"
    if found.pid is None:
        return f"no process seen here, uid {found.uid}'s socket"
    return f"process {found.pid} of uid {found.uid}"


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

    for _attempt in range(100):
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            sock.bind("\0" + name(pid_file))
        except OSError as e:
            sock.close()
            if e.errno != errno.EADDRINUSE:
                raise
            found = held_by(pid_file)
            if found is not None and (found.pid is not None or found.uid != os.geteuid()):
                raise Taken(name(pid_file), found) from None
            # No holder seen (of this user's, or of anyone's where no owner can be told): released
            # between the bind and the look, or its holder ending (its fds closed, the socket not yet
            # released): bound again, shortly.
            time.sleep(0.001)
        else:
            return sock.detach()
    # Still none seen after 100 tries: a holder in a PID namespace this one does not see, or a name
    # bound and released over and over. Whose, cannot be told.
    raise Taken(name(pid_file), None)


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
    """Whether the process /proc numbers ``pid`` has the socket ``inode`` open (its /proc/PID/fd)."""
    return _fd_of(pid, inode) is not None


def _fd_of(pid: int, inode: int) -> Optional[str]:
    """The /proc/PID/fd/N path of process ``pid``'s fd open on socket ``inode``, None if it has none."""
    target = f"socket:[{inode}]"
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:  # gone, or not ours to look at
        return None
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                return f"/proc/{pid}/fd/{fd}"
        except OSError:  # closed meanwhile
            continue
    return None


def holder(pid_file: str, hint: Optional[int] = None) -> Optional[int]:
    """The process that holds the daemon's name: ``hint`` (its pid file's pid, asked first) if it does,
    else the one found among every process here. None when the name is not bound, or no process seen
    here holds it (it was released meanwhile, or its holder is in a PID namespace this one does not
    see). Of several (the service between its clone and its execve holds it too, until close-on-exec),
    the one whose parent does not."""
    found = held_by(pid_file, hint)
    return None if found is None else found.pid


def held_by(pid_file: str, hint: Optional[int] = None) -> Optional[Holder]:
    """The process holding the daemon's name (as ``holder`` finds it) and the name's owner: the uid of
    the user whose process made its socket (the socket's inode's, set by the kernel at its making from
    that process's file system uid), not the holder's: a squatter's socket passed to a process of
    another user, or kept across the exec of a set-uid program, stays the squatter's. The owner is
    asked of the kernel (``owner``), so that a socket no process holds is still told: one sent in a
    unix socket's message and closed, in flight in a queue nobody reads (``pid`` None then). None when
    the name is not bound, or neither its holder nor its owner can be told (no unix_diag here)."""
    inode = bound_inode(pid_file)
    if inode is None:
        return None
    # /proc is read by the numbers it gives (another PID namespace's, where it was mounted there: a
    # container that kept the host's); ``hint`` and the holder given back are this namespace's pids.
    seen = _in_proc(hint) if hint is not None else None
    pid = seen if seen is not None and holds(seen, inode) else None
    if pid is None:
        found = {int(p) for p in os.listdir("/proc") if p.isdigit() and holds(int(p), inode)}
        pid = next((pid for pid in sorted(found) if _parent(pid) not in found), None)
    uid = owner(inode)
    if uid is None and pid is not None:  # no unix_diag: the socket's inode, through the holder's fd
        path = _fd_of(pid, inode)
        try:
            st = os.stat(path) if path is not None else None
        except OSError:  # closed meanwhile
            st = None
        # (the inode again: the fd closed and its number reused between the look and the stat)
        uid = st.st_uid if st is not None and st.st_ino == inode else None
    if uid is None:
        return None
    if pid is not None:  # (the hint is a pid of this namespace already; one found in /proc is /proc's number)
        pid = hint if pid == seen else ns_pid(pid)
    return Holder(pid, uid)


def _in_proc(pid: int) -> Optional[int]:
    """The number /proc gives process ``pid`` of this PID namespace, None when it has none (gone)."""
    try:
        return proc_pid(pid)
    except OSError:
        return None


SOCK_DIAG_BY_FAMILY, UDIAG_SHOW_UID, UNIX_DIAG_UID = 20, 0x40, 7  # linux/sock_diag.h, linux/unix_diag.h


def owner(inode: int) -> Optional[int]:
    """The uid unix socket ``inode`` of this network namespace was made with, as the kernel's sock_diag
    says (UNIX_DIAG_UID, Linux 5.3), whichever process holds it, if any; None where it cannot say (no
    unix_diag in this kernel, the socket gone)."""
    import _socket

    def u16(value: int) -> bytes:
        return value.to_bytes(2, sys.byteorder)

    def u32(value: int) -> bytes:
        return value.to_bytes(4, sys.byteorder)

    # struct unix_diag_req: family, protocol, pad, states, ino, show, cookie (none: all ones)
    req = bytes([_socket.AF_UNIX, 0]) + u16(0) + u32(0xFFFFFFFF) + u32(inode) + u32(UDIAG_SHOW_UID) \
        + u32(0xFFFFFFFF) * 2
    # struct nlmsghdr: length, type, flags (NLM_F_REQUEST), sequence, port
    msg = u32(16 + len(req)) + u16(SOCK_DIAG_BY_FAMILY) + u16(1) + u32(1) + u32(0) + req
    try:
        sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC, 4)  # SOCK_DIAG
    except OSError:
        return None
    try:
        sock.settimeout(5)  # (the kernel answers at once; never a daemon's start stuck on it)
        sock.sendto(msg, (0, 0))
        data = sock.recv(65536)
    except OSError:
        return None
    finally:
        sock.close()

    def num(offset: int, size: int) -> int:
        return int.from_bytes(data[offset:offset + size], sys.byteorder)

    # struct unix_diag_msg (16 bytes after the header: family, type, state, pad, ino, cookie), then
    # its attributes (struct rtattr: length, type; each padded to 4 bytes)
    if len(data) < 32 or num(4, 2) != SOCK_DIAG_BY_FAMILY or num(20, 4) != inode:
        return None  # NLMSG_ERROR: no such socket, or no unix_diag
    end, at = min(num(0, 4), len(data)), 32
    while at + 8 <= end:
        length, kind = num(at, 2), num(at + 2, 2)
        if kind == UNIX_DIAG_UID:
            return num(at + 4, 4)
        at += max(4, (length + 3) & ~3)
    return None


def _parent(pid: int) -> Optional[int]:
    """The parent of process ``pid`` (/proc/PID/status; None: no such process)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("PPid:")), None)
    except (FileNotFoundError, ProcessLookupError):
        return None
