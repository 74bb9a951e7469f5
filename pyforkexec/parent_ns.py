"""The namespaces of SysProcAttr.setns that the parent joins around clone, for a new user namespace.

A child cloned with CLONE_NEWUSER holds capabilities in its new user namespace only, so its setns()
into a namespace owned by an ancestor user namespace (the host's named netns /run/netns/NAME) fails
with EPERM: the kernel wants CAP_SYS_ADMIN over the target's owner. The parent, still privileged
there, joins those namespaces with its calling thread instead, clones (the child is born in them, and
the namespaces it creates are made inside them and owned by its new user namespace), and goes back,
as a container runtime joins a pod's netns before it creates the user namespace. Only the types one
thread of a multi-threaded process may switch qualify: net, uts and ipc. A user or mount namespace,
or a pidfd with a mask, stays a step of the child.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, Sequence

from . import _child
from . import flags as F
from .errors import ChildError, ErrorLocation

NS_GET_NSTYPE = 0xB703  # ioctl: the CLONE_NEW* type of a namespace fd
PER_THREAD = {int(F.CLONE_NEWNET): "net", int(F.CLONE_NEWUTS): "uts", int(F.CLONE_NEWIPC): "ipc"}
SetNSFds = Sequence[tuple[int, int]]


def _type_of(fd: int, nstype: int) -> int:
    if nstype:
        return nstype  # a single type, or a pidfd's mask (never in PER_THREAD)
    try:
        return fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        return 0  # not a namespace fd: the child's setns reports the error


def parent_joins(setns_fds: SetNSFds, cloneflags: int) -> frozenset[int]:
    """Indexes of the (fd, nstype) entries the parent joins: those of a per-thread type, when the
    child is cloned into a new user namespace."""
    if not cloneflags & F.CLONE_NEWUSER:
        return frozenset()
    return frozenset(n for n, (fd, nstype) in enumerate(setns_fds) if _type_of(fd, nstype) in PER_THREAD)


@contextlib.contextmanager
def joined(setns_fds: SetNSFds, indexes: frozenset[int], path: str) -> Iterator[None]:
    """The calling thread in the namespaces of ``setns_fds[i]`` for i in ``indexes``, and back after.
    A refused setns is the ChildError the child's own setns step would have raised."""
    back: list[tuple[int, int]] = []
    try:
        for n in sorted(indexes):
            fd, nstype = setns_fds[n]
            kind = _type_of(fd, nstype)
            own = os.open(f"/proc/thread-self/ns/{PER_THREAD[kind]}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                _child.setns(fd, kind)
            except OSError as e:
                os.close(own)
                raise ChildError(e.errno or 0, ErrorLocation.SETNS, n, path) from None
            back.append((own, kind))
        yield
    finally:
        for own, kind in reversed(back):
            try:
                _child.setns(own, kind)  # cannot fail: this thread's own namespace, still privileged
            finally:
                os.close(own)
