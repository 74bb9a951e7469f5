# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""pidfds of processes that are not this one's children (a service's, a command's descendants), each
confirmed after the open, and signals through them: a pid read from /proc may be another process's by
the time it is used (the process exited and its parent reaped it), and a signal by number would reach
that one; a pidfd stays with the process it was opened on."""

from __future__ import annotations

import contextlib
import os
import signal


def alive(fd):
    """Whether the process of pidfd ``fd`` still holds its pid (running, or exited and not reaped)."""
    try:
        signal.pidfd_send_signal(fd, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: there all the same
        pass
    return True


def proc_number(fd):
    """The number /proc gives the process of pidfd ``fd`` (its fdinfo's Pid): -1 once it has ended, 0
    when it is not in /proc. /proc shows the PID namespace it was mounted in, which may be an ancestor
    of this process's (a container, or ``unshare --pid --fork``, that kept the host's /proc): there a
    pid of this namespace (os.getpid(), a child's, what pidfd_open and kill take) is another process's
    number. (pyforkexec.proc_pid on the managed host; the connection runs where it may not be.)"""
    with open(f"/proc/self/fdinfo/{fd}", "rb") as info:
        line = next((x for x in info if x.startswith(b"Pid:")), b"Pid: -1")
    return int(line.split()[1])


def own_proc_number():
    """This process's number in /proc (os.getpid() only where /proc is this PID namespace's)."""
    return int(os.readlink("/proc/self"))


def _own_proc():
    return own_proc_number() == os.getpid()


def in_proc(pid, fd=None):
    """The number /proc gives process ``pid`` of this PID namespace (through its pidfd ``fd`` when one
    is open): ``pid`` where /proc is this namespace's; None when it has ended or /proc does not show it."""
    if _own_proc():
        return pid
    if fd is None:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return None
        try:
            return in_proc(pid, fd)
        finally:
            os.close(fd)
    number = proc_number(fd)
    return number if number > 0 else None


def from_proc(number):
    """The pid in this PID namespace of the process /proc numbers ``number``: ``number`` where /proc is
    this namespace's; else its NSpid at this namespace's depth (NSpid lists its pids from /proc's
    namespace down); None when it is gone or not in this namespace (0 stays 0: no parent here)."""
    if number <= 0 or _own_proc():
        return number
    depth = len(_nspid("self")) - 1
    pids = _nspid(number)
    return pids[depth] if pids is not None and len(pids) > depth else None


def thread_of(pid):
    """Where pidfd_open refused ``pid`` (a pid of this PID namespace) as no process's (ENOENT since
    Linux 6.9, EINVAL before): the process whose thread ``pid`` is (its Tgid), that process's pid here,
    or 0 when it cannot be told (/proc of another PID namespace, or the thread gone); None when ``pid``
    is no thread's either."""
    if not _own_proc():
        return 0
    try:
        with open(f"/proc/{pid}/status") as f:
            tgid = next((int(line.split()[1]) for line in f if line.startswith("Tgid:")), 0)
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return None if tgid == pid else tgid


def _nspid(where):
    try:
        with open(f"/proc/{where}/status") as f:
            line = next((x for x in f if x.startswith("NSpid:")), f"NSpid: {where}")  # (before Linux 4.1)
    except (FileNotFoundError, ProcessLookupError):
        return None
    return [int(p) for p in line.split()[1:]]


def parent_of(pid, fd=None):
    """The parent of ``pid`` (a pid of this PID namespace, its pidfd ``fd`` when one is open) as /proc
    shows it, as a pid of this namespace (None: no such process, or its parent is not in it)."""
    where = in_proc(pid, fd)
    if where is None:
        return None
    try:
        with open(f"/proc/{where}/status") as f:
            ppid = next((int(line.split()[1]) for line in f if line.startswith("PPid:")), None)
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if ppid is None else from_proc(ppid)


def child_pidfd(pid, parent, parent_fd=None):
    """A pidfd of ``pid`` if it is ``parent``'s child, else None (gone, or the number is another
    process's now). pidfd_open takes whichever process has the number at the open: the PPid read from
    /proc after it, with a signal 0 through the pidfd after that read (so the process read was the
    pidfd's), tells. ``parent_fd``, ``parent``'s own pidfd where it is not this process: alive after
    the read too, so that ``parent`` was that process, not one that reused its number."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    try:
        if parent_of(pid, fd) == parent and alive(fd) and (parent_fd is None or alive(parent_fd)):
            return fd
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None


def kill_group(fd, pid, sig=signal.SIGKILL):
    """``sig`` to the process group that the process of pidfd ``fd`` (pid ``pid``) leads, if it leads
    one. Through the pidfd where the kernel can (6.9: the group the pidfd names, whatever became of the
    number); otherwise by number, only while the process holds its pid (the group's id is then not
    another's), checked right before: a narrow window remains there, between the check and the kill,
    in which its parent may reap it. (On the managed host: pyforkexec is imported here, not with this
    module, which the nsenter connection uses on the controller too.)"""
    from pyforkexec.pidfd_group import send_group_signal  # pylint: disable=import-outside-toplevel

    try:
        if send_group_signal(fd, sig):
            return
    except ProcessLookupError:  # it leads no group (or it was reaped and its group emptied)
        return
    if not alive(fd):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
