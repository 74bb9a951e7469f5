"""SysProcAttr.setns on the parent's side: open each target, learn its type, refuse a join that would
undo a namespace the caller asked for, and join, around clone, those the child cannot.

Why the parent joins some: a child cloned with CLONE_NEWUSER holds capabilities in its new user
namespace only, so its setns() into a namespace owned by an ancestor user namespace (the host's named
netns /run/netns/NAME) fails with EPERM: the kernel wants CAP_SYS_ADMIN over the target's owner. The
parent, still privileged there, joins those namespaces with its calling thread instead, clones (the
child is born in them, and the namespaces it creates are made inside them and owned by its new user
namespace), and goes back, as a container runtime joins a pod's netns before it creates the user
namespace. Only the types one thread of a multi-threaded process may switch qualify: net, uts and ipc.
A user or mount namespace stays a step of the child. A pidfd with a mask is joined through its
process's namespace files, opened by the parent (_pinned), each type a join of its own.

Why some joins are refused: a join whose target turns out to be the calling thread's own namespace
(a /run/netns name bound to the host's, a process that shares the host's) would run the program in the
caller's namespace as though no join had been asked: the isolation asked for would not hold, so it is
an error before any process exists (nsenter(1)'s no-op joins of one's own are the command line's to
drop). And the child joins before anything else, so a join of a type that cloneflags also creates
replaces the new namespace with the joined one. ``CLONE_NEWUTS`` plus a join
of this host's uts namespace would let ``hostname`` rename the host; ``CLONE_NEWNS`` plus a join of
this process's mount namespace would put ``mounts`` and ``readonly_root`` on this process's tree. The
types are read from the opened fds (the same fds the child will use), not from the paths.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator, Sequence
from typing import Optional

from .. import fd_ready, ns_pins
from .. import flags as F
from .._record import Value
from ..attrs import SetNS, SysProcAttr
from ..checks import NS_OPEN, fail
from ..errors import ChildError, ErrorLocation
from ..proc_pid import pidfd_pid
from ..validate import check_join_kind
from . import _child

NS_GET_NSTYPE = 0xB703  # ioctl: the CLONE_NEW* type of a namespace fd
# The namespaces the parent's thread may join around clone, and its own file of each to go back to.
PER_THREAD = {int(F.CLONE_NEWNET): "net", int(F.CLONE_NEWUTS): "uts", int(F.CLONE_NEWIPC): "ipc",
              int(F.CLONE_NEWPID): "pid_for_children"}
NEWUSER, NEWPID = int(F.CLONE_NEWUSER), int(F.CLONE_NEWPID)
# Each type's file under /proc/PID/ns (the caller's own PID namespace is the one its children are born in).
NS_FILE = {int(flag): name for flag, name in F.NAMESPACE_PROC_FILES.items()}


class Join(Value):
    """One SysProcAttr.setns entry, opened."""

    __slots__ = ("by_parent", "fd", "index", "kind", "nstype")

    def __init__(self, fd: int, nstype: int, kind: int, index: int, by_parent: bool = False):
        self.fd = fd
        self.nstype = nstype  # as given (0 or one CLONE_NEW* type), or the type of a pidfd's pinned file
        self.kind = kind  # the CLONE_NEW* types it joins: nstype, else read from the fd (0: not a namespace)
        self.index = index  # its place in SysProcAttr.setns, for errors
        self.by_parent = by_parent  # joined by the calling thread around clone, not by the child


def kind_of(fd: int, nstype: int = 0) -> int:
    """The CLONE_NEW* types a join of ``fd`` makes: ``nstype`` if given, else the namespace fd's own type
    (0: not a namespace)."""
    if nstype:
        return nstype
    try:
        return fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        return 0  # not a namespace fd: the child's setns reports the error


def own_types(fd: int, kind: int, index: int = 0) -> int:
    """The types among ``kind`` in which the target of ``fd`` (a namespace file, or a pidfd) is the
    calling thread's own namespace (for PID: the one its children are born in)."""
    pid = pidfd_pid(fd)
    if pid == -1:
        return 0  # an ended process: the child's setns fails (ESRCH)
    if pid == 0:
        fail(f"SysProcAttr.setns[{index}]", "is a pidfd of a process this process's /proc cannot see "
             "(another PID namespace): whether its namespaces are the caller's own cannot be told; join "
             "its namespace files instead")
    own = 0
    for flag, name in NS_FILE.items():
        if not kind & flag:
            continue
        own_file = f"/proc/thread-self/ns/{'pid_for_children' if flag == NEWPID else name}"
        try:
            mine = os.stat(own_file)
        except OSError as e:
            if os.path.isdir("/proc/thread-self/ns"):
                continue  # a type this kernel lacks: the child's setns reports it
            # No /proc of this process's PID namespace (a chroot, `umount /proc`): the check cannot be
            # made, and a join of the caller's own namespace would run the program in it unnoticed.
            fail(f"SysProcAttr.setns[{index}]", f"whether it names the caller's own namespace cannot be told "
                 f"without /proc ({own_file}: {os.strerror(e.errno or 0)}): mount /proc (of this process's "
                 "PID namespace)")
        try:
            theirs = os.stat(f"/proc/{pid}/ns/{name}") if pid else os.fstat(fd)
        except OSError:
            continue  # a target gone meanwhile: the child's setns reports it
        if (theirs.st_dev, theirs.st_ino) == (mine.st_dev, mine.st_ino):
            own |= flag
    if pid and fd_ready.readable([fd], 0):
        return 0  # it ended while its files were read: they may have been another process's
    return own


def open_joins(entries: Sequence[SetNS], cloneflags: int, opened: list[int], path: str, unshareflags: int = 0,
               sys_attr: Optional[SysProcAttr] = None) -> tuple[Join, ...]:
    """The joins in the order the child makes them (user namespaces first, as nsenter joins them).

    Each fd this opens is appended to ``opened`` at once. A target that cannot be opened, or is not
    the namespace its ``inode`` names, is the ChildError the child's setns step would have raised; a
    join that replaces a namespace cloneflags creates is a ValueError naming it, before any process
    exists.
    """
    joins = []
    first_of_type: dict[tuple[int, bool], tuple[int, tuple[int, int]]] = {}
    for index, entry in enumerate(entries):
        try:
            # A caller's fd is copied before it is checked: the checks and the join then see one file,
            # which another thread of the caller cannot swap for another namespace (dup2) in between.
            if isinstance(entry.target, int):
                fd = fcntl.fcntl(entry.target, fcntl.F_DUPFD_CLOEXEC, 3)
            elif entry.process_start is not None:  # (a /proc/PID path: validate.py; its process's, or none)
                fd = ns_pins.open_of_process(os.fsdecode(entry.target), entry.process_start)
            else:
                fd = os.open(entry.target, NS_OPEN)
        except OSError as e:  # a closed fd, a path that cannot be opened: what the child's setns would meet
            raise ChildError(e.errno or 0, ErrorLocation.SETNS, index, path) from None
        opened.append(fd)
        kind = kind_of(fd, entry.nstype)
        check_join_kind(f"SysProcAttr.setns[{index}]", entry, kind, cloneflags, unshareflags, sys_attr)
        # (a pidfd: one join per type, of the namespace files _pinned opened; any other fd: itself)
        if entry.process_start is not None and isinstance(entry.target, int) and pidfd_pid(fd) is None:
            fail(f"SysProcAttr.setns[{index}].process_start", f"pins a process: fd {entry.target} is no "
                 "pidfd (pin a namespace fd by inode or ns_id)")
        targets = _pinned(fd, kind, index, path, opened, entry.process_start) or [(fd, kind, entry.nstype)]
        if entry.inode is not None or entry.ns_id is not None:
            _check_pins(targets, entry, index, path)
        for ns_fd, types, nstype in targets:
            _one_of_type(first_of_type, ns_fd, types, index, entry.for_children)
            own = own_types(ns_fd, types, index)
            if own:
                fail(f"SysProcAttr.setns[{index}]", f"names the caller's own namespace "
                     f"({F.CloneFlags.describe(own)}): the program would run in it as if no join had been "
                     "asked; leave the entry out to run there")
            if types & NEWPID and not entry.for_children:
                # A process is born into its PID namespace (setns of one moves only the caller's future
                # children): the parent's thread joins it around clone.
                joins.append(Join(ns_fd, NEWPID, NEWPID, index, by_parent=True))
                types = nstype = types & ~NEWPID
                if not types:
                    continue
            by_parent = bool(cloneflags & NEWUSER) and types in PER_THREAD and types != NEWPID
            joins.append(Join(ns_fd, nstype, types, index, by_parent))
    return tuple(sorted(joins, key=lambda j: not j.kind & NEWUSER))


def _one_of_type(first_of_type: dict[tuple[int, bool], tuple[int, tuple[int, int]]], fd: int, kind: int,
                 index: int, for_children: bool) -> None:
    """Refuse a join of another namespace of a type an earlier entry joins (``first_of_type``: the
    first entry and namespace of each type): setns to the second leaves the first, so the program would
    run in the last one joined alone, and the earlier entry's isolation would not hold. The same
    namespace twice is one join."""
    if kind not in NS_FILE:
        return  # not a namespace (the child's setns reports it), or a pidfd's types: _pinned splits them
    st = os.fstat(fd)
    first, namespace = first_of_type.setdefault((kind, for_children), (index, (st.st_dev, st.st_ino)))
    if namespace != (st.st_dev, st.st_ino):
        fail(f"SysProcAttr.setns[{index}]", f"joins another {NS_FILE[kind]} namespace than "
             f"SysProcAttr.setns[{first}]: the child would leave that one for this one, and setns[{first}]'s "
             "join would not hold; join one namespace of each type")


def _check_pins(targets: list[tuple[int, int, int]], entry: SetNS, index: int, path: str) -> None:
    """``entry``'s inode and ns_id are one namespace's: that of the file joined, or of a pidfd's one
    namespace (the file _pinned opened; the pidfd's own inode is no namespace's, which every join by
    pidfd failed on)."""
    pin = "inode" if entry.inode is not None else "ns_id"
    if len(targets) > 1:
        fail(f"SysProcAttr.setns[{index}].{pin}", "names one namespace, and a pidfd with several types in "
             "nstype joins several: give one type per entry")
    try:
        ns_pins.check(targets[0][0], entry.inode, entry.ns_id)
    except OSError as e:
        if e.errno == errno.ENOTTY:
            fail(f"SysProcAttr.setns[{index}].ns_id", "this kernel has no namespace ids (NS_GET_ID, Linux "
                 "6.18) to check the pin by: pin by inode and process_start")
        raise ChildError(e.errno or 0, ErrorLocation.SETNS, index, path) from None  # not the namespace meant


def _pinned(fd: int, kind: int, index: int, path: str, opened: list[int], started: Optional[int] = None) \
        -> Optional[list[tuple[int, int, int]]]:
    """For a pidfd ``fd``: its process's namespaces of each type in ``kind``, opened now, as (fd, type,
    type) joins; None for any other fd. A pidfd names a process, not its namespaces: setns(pidfd) joins
    the ones it is in when the child gets there, which may be the caller's own by then (a process can
    switch its namespaces: setns), after own_types found them another's. The files opened here are the
    namespaces the checks see and the child joins: nothing can swap them in between. They are read
    while the process is alive (its pidfd not yet readable after the last open), so they are its own,
    not those of a process that took its pid; one that ended is the ESRCH the child's setns would get."""
    pid = pidfd_pid(fd)
    if pid is None or pid == 0:
        return None  # not a pidfd; or one own_types refuses (a process this /proc cannot see)
    if pid == -1:
        raise ChildError(errno.ESRCH, ErrorLocation.SETNS, index, path)  # it ended: no namespaces to join
    try:
        if started is not None and ns_pins.process_start(str(pid)) != started:
            raise ChildError(errno.ESTALE, ErrorLocation.SETNS, index, path)  # (a pidfd of another process)
    except (FileNotFoundError, ProcessLookupError):
        raise ChildError(errno.ESRCH, ErrorLocation.SETNS, index, path) from None
    pinned = []
    for flag, name in NS_FILE.items():
        if kind & flag:
            try:
                ns = os.open(f"/proc/{pid}/ns/{name}", NS_OPEN)
            except OSError as e:  # the kernel lacks the type, or we may not look (ptrace access)
                raise ChildError(e.errno or 0, ErrorLocation.SETNS, index, path) from None
            opened.append(ns)
            pinned.append((ns, flag, flag))
    if fd_ready.readable([fd], 0):  # it ended meanwhile: the files may be a successor's
        raise ChildError(errno.ESRCH, ErrorLocation.SETNS, index, path)
    return pinned


@contextlib.contextmanager
def joined(joins: Sequence[Join], path: str) -> Iterator[None]:
    """The calling thread in the namespaces of the joins made by the parent, and back after.
    A refused setns is the ChildError the child's own setns step would have raised.

    Run it with signal handlers held (pyforkexec._signals): an exception between a setns and the
    bookkeeping of the way back would leave this thread in the joined namespace."""
    back: list[tuple[int, int]] = []
    try:
        for join in joins:
            if not join.by_parent:
                continue
            mine = f"/proc/thread-self/ns/{PER_THREAD[join.kind]}"
            try:
                own = os.open(mine, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:  # out of fds: the way back is not to be had, so no join either
                raise OSError(e.errno, f"SysProcAttr.setns[{join.index}]: {mine} (this thread's own, to "
                              f"come back to): {e.strerror}") from None
            try:
                _child.setns(join.fd, join.kind)
            except OSError as e:
                os.close(own)
                raise ChildError(e.errno or 0, ErrorLocation.SETNS, join.index, path) from None
            back.append((own, join.kind))
        yield
    finally:
        for own, kind in reversed(back):
            try:
                _child.setns(own, kind)  # cannot fail: this thread's own namespace, still privileged
            finally:
                os.close(own)
