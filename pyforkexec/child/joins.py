"""SysProcAttr.setns on the parent's side: open each target, learn its type, refuse a join that would
undo a namespace the caller asked for, and join, around clone, those the child cannot.

Why the parent joins some: a child cloned with CLONE_NEWUSER holds capabilities in its new user
namespace only, so its setns() into a namespace owned by an ancestor user namespace (the host's named
netns /run/netns/NAME) fails with EPERM: the kernel wants CAP_SYS_ADMIN over the target's owner. The
parent, still privileged there, joins those namespaces with its calling thread instead, clones (the
child is born in them, and the namespaces it creates are made inside them and owned by its new user
namespace), and goes back, as a container runtime joins a pod's netns before it creates the user
namespace. Only the types one thread of a multi-threaded process may switch qualify: net, uts and ipc.
A user or mount namespace, or a pidfd with a mask, stays a step of the child.

Why some joins are refused: the child joins before anything else, so a join of a type that
cloneflags also creates replaces the new namespace with the joined one. ``CLONE_NEWUTS`` plus a join
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

from .. import flags as F
from .._record import Value
from ..attrs import SetNS
from ..checks import fail
from ..errors import ChildError, ErrorLocation
from ..validate import NAMESPACE_MASK
from . import _child

NS_GET_NSTYPE = 0xB703  # ioctl: the CLONE_NEW* type of a namespace fd
# The namespaces the parent's thread may join around clone, and its own file of each to go back to.
PER_THREAD = {int(F.CLONE_NEWNET): "net", int(F.CLONE_NEWUTS): "uts", int(F.CLONE_NEWIPC): "ipc",
              int(F.CLONE_NEWPID): "pid_for_children"}
NEWUSER, NEWPID = int(F.CLONE_NEWUSER), int(F.CLONE_NEWPID)


class Join(Value):
    """One SysProcAttr.setns entry, opened."""

    __slots__ = ("by_parent", "fd", "index", "kind", "nstype")

    def __init__(self, fd: int, nstype: int, kind: int, index: int, by_parent: bool = False):
        self.fd = fd
        self.nstype = nstype  # as given: 0, one CLONE_NEW* type, or a pidfd's mask
        self.kind = kind  # the CLONE_NEW* types it joins: nstype, else read from the fd (0: not a namespace)
        self.index = index  # its place in SysProcAttr.setns, for errors
        self.by_parent = by_parent  # joined by the calling thread around clone, not by the child


def _kind_of(fd: int, nstype: int) -> int:
    if nstype:
        return nstype
    try:
        return fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        return 0  # not a namespace fd: the child's setns reports the error


def open_joins(entries: Sequence[SetNS], cloneflags: int, opened: list[int], path: str) -> tuple[Join, ...]:
    """The joins in the order the child makes them (user namespaces first, as nsenter joins them).

    Each fd this opens is appended to ``opened`` at once. A target that cannot be opened, or is not
    the namespace its ``inode`` names, is the ChildError the child's setns step would have raised; a
    join that replaces a namespace cloneflags creates is a ValueError naming it, before any process
    exists.
    """
    joins = []
    for index, entry in enumerate(entries):
        if isinstance(entry.target, int):
            fd = entry.target
        else:
            try:
                fd = os.open(entry.target, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                raise ChildError(e.errno or 0, ErrorLocation.SETNS, index, path) from None
            opened.append(fd)
        if entry.inode is not None and os.fstat(fd).st_ino != entry.inode:
            raise ChildError(errno.ESTALE, ErrorLocation.SETNS, index, path)  # not the namespace meant
        kind = _kind_of(fd, entry.nstype)
        replaced = kind & cloneflags & NAMESPACE_MASK
        if replaced:
            names = F.CloneFlags.describe(replaced)
            fail(f"SysProcAttr.setns[{index}]", f"joins a namespace of a type cloneflags creates ({names}): "
                 "the child would leave the new namespace for the joined one, and what relies on it "
                 "(hostname, mounts, ...) would act on the joined one; drop the flag to join, or put it "
                 "in unshareflags (unshare runs after the joins) to get a new one inside the joined one")
        if entry.for_children and not kind & NEWPID:
            fail(f"SysProcAttr.setns[{index}].for_children", "only a PID namespace can be joined for the "
                 "children only")
        nstype = entry.nstype
        if kind & NEWPID and not entry.for_children:
            # A process is born into its PID namespace (setns of one moves only the caller's future
            # children): the parent's thread joins it around clone. A pidfd's others stay the child's.
            joins.append(Join(fd, NEWPID, NEWPID, index, by_parent=True))
            kind = nstype = kind & ~NEWPID
            if not kind:
                continue
        by_parent = bool(cloneflags & NEWUSER) and kind in PER_THREAD and kind != NEWPID
        joins.append(Join(fd, nstype, kind, index, by_parent))
    return tuple(sorted(joins, key=lambda j: not j.kind & NEWUSER))


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
            own = os.open(f"/proc/thread-self/ns/{PER_THREAD[join.kind]}", os.O_RDONLY | os.O_CLOEXEC)
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
