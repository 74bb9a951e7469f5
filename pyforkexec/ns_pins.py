"""What pins a join to the namespace it meant: ``SetNS.inode``, ``SetNS.ns_id`` and ``SetNS.process_start``.

A saved ``/proc/PID/ns/net`` names whatever process has PID when it is opened. The inode number of a
namespace is no identity across time: the kernel numbers namespaces from an allocator that hands out
the lowest free number, so once a namespace is freed the next one made gets its number. A process that
takes a dead target's PID and makes a namespace of its own passes an inode pin (forced in a few tries
with ``ns_last_pid``). Two identities are never given again:

- ``ns_id``: the kernel's 64-bit id of the namespace (ioctl NS_GET_ID; Linux 6.18), from a counter
  that only grows. Where the kernel has no such ioctl a pin by it cannot be checked, and is refused.
- ``process_start``: the start time of the process a ``/proc/PID/...`` path or a pidfd names
  (``/proc/PID/stat`` field 22, clock ticks after boot); for a ``/proc/PID/task/TID/...`` path, that
  of thread TID (``/proc/PID/task/TID/stat``): a thread that ended leaves its TID to the next thread
  made, in its process too, which may be in other namespaces, while the process's start stays. A
  path's files are opened through one open ``/proc/PID`` (or ``/proc/PID/task/TID``) directory, which
  the kernel ties to the process (thread) it was opened for: once that one ends nothing opens through
  it, even when its number is reused. So the start time read through it and the namespace opened
  through it are one process's (thread's).
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import struct
from typing import Optional

from .checks import NS_OPEN

NS_GET_ID = 0x8008B70D  # _IOR(0xb7, 13, __u64): the namespace's id, never another's
# A path through one process's /proc directory: /proc/PID/ns/net, /proc/PID/task/TID/ns/uts.
PROC_PATH = re.compile(r"^/proc/([1-9][0-9]*)/(.+)$")
# One thread's directory, which process_start pins for such a path: /proc/PID/task/TID, then the rest.
TASK_PATH = re.compile(r"^(/proc/[1-9][0-9]*/task/[1-9][0-9]*)/(.+)$")


def ns_id(fd: int) -> Optional[int]:
    """The kernel's id of the namespace open at ``fd``; None where the kernel has no such ioctl (or
    ``fd`` is no namespace)."""
    try:
        return struct.unpack("Q", fcntl.ioctl(fd, NS_GET_ID, bytes(8)))[0]
    except OSError as e:
        if e.errno in (errno.ENOTTY, errno.EINVAL):
            return None
        raise


def ns_id_of(path: str) -> Optional[int]:
    """ns_id of the namespace file ``path``. OSError when it cannot be opened."""
    fd = os.open(path, NS_OPEN)
    try:
        return ns_id(fd)
    finally:
        os.close(fd)


def process_start(where: str = "self", dir_fd: Optional[int] = None) -> int:
    """The start time of the process /proc numbers ``where`` (clock ticks after boot), or of the one
    whose /proc directory is open at ``dir_fd``. OSError when it has ended."""
    path = "stat" if dir_fd is not None else f"/proc/{where}/stat"
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    return int(data.rsplit(b")", 1)[1].split()[19])  # (the name, in parentheses, may hold anything)


def pinned_directory(path: str) -> tuple[str, str]:
    """(the /proc directory of the process or thread whose start time process_start pins for the
    ``/proc/PID/...`` path ``path``: /proc/PID/task/TID for a thread's path, else /proc/PID; the rest
    of ``path`` under it)."""
    match = TASK_PATH.match(path) or PROC_PATH.match(path)
    if match is None:
        raise ValueError(f"{path} is not a path under /proc/PID/")
    if match.re is PROC_PATH:
        return f"/proc/{match[1]}", match[2]
    return match[1], match[2]


def open_of_process(path: str, started: int) -> int:
    """Open the ``/proc/PID/...`` file ``path`` of process PID (thread TID for /proc/PID/task/TID/...)
    only if it is the one that started at ``started``, read and opened through one directory fd of it
    (see above). OSError: ESTALE when the number is another process's (thread's) by now, ESRCH when it
    has ended, or what the open met."""
    where, rest = pinned_directory(path)
    directory = os.open(where, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            now = process_start(dir_fd=directory)
            if now != started:
                raise OSError(errno.ESTALE, f"the process at {where} is another one by now (started at "
                              f"{now}, not {started})")
            return os.open(rest, NS_OPEN, dir_fd=directory)
        except (FileNotFoundError, ProcessLookupError):  # nothing opens through an ended one's directory
            raise OSError(errno.ESRCH, f"{where} has ended") from None
    finally:
        os.close(directory)


def check(fd: int, inode: Optional[int], id_: Optional[int]) -> None:
    """The namespace open at ``fd`` is the one ``inode`` and ``id_`` (ns_id) name, where given.
    OSError: ESTALE when it is another, ENOTTY when the kernel has no ids to tell by."""
    if inode is not None and os.fstat(fd).st_ino != inode:
        raise OSError(errno.ESTALE, f"another namespace by now (inode {os.fstat(fd).st_ino}, not {inode})")
    if id_ is not None:
        now = ns_id(fd)
        if now is None:
            raise OSError(errno.ENOTTY, "this kernel has no namespace ids (NS_GET_ID) to check the pin by")
        if now != id_:
            raise OSError(errno.ESTALE, f"another namespace by now (id {now}, not {id_})")
