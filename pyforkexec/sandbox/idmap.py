"""Idmapped bind mounts: the parent's half (mount_setattr(2), MOUNT_ATTR_IDMAP).

Before clone, for each bind mount with ``idmap``, the parent makes a detached copy of the source
(open_tree(OPEN_TREE_CLONE), recursive with MS_REC) and idmaps it to a user namespace; the child
attaches that tree at the mount's place in its steps (move_mount), in its own mount namespace.

The user namespace: ``idmap=True`` means the child's own. It does not exist before clone, so the parent
makes one with the same uid/gid maps (a short-lived process in a new user namespace, stopped at its
sync point while its namespace is opened, then killed): an idmapping is the content of the maps, not
the namespace's identity, so files look the same through either. A path (``/proc/PID/ns/user``) or
an fd names another user namespace.

What it does to ownership: a file stored with uid ``u`` appears through the mount as the id the
namespace maps ``u`` to, so with the child's own maps (0 -> 100000) host-root files appear as the
child's root, and what the child's root creates is stored as uid 0.
"""

from __future__ import annotations

import os
from typing import Union

from .. import _signals
from ..attrs import ProcAttr, SysProcAttr
from ..checks import NS_OPEN
from ..errors import ChildError, ErrorLocation
from ..proc_pid import proc_pid
from . import kernel_fds
from .mounts import MS_REC, ResolvedMount

NEWUSER = 0x10000000  # CLONE_NEWUSER


class _Opened(Exception):
    """Stops the helper at its sync point once its user namespace is open."""


def _userns_like(sys_attr: SysProcAttr, opened: list[int]) -> int:
    """An fd of a new user namespace with ``sys_attr``'s uid/gid maps (registered in ``opened``)."""
    from ..forkexec import fork_exec  # the spawn itself, which this module's caller is part of

    def open_ns(pid: int) -> None:
        where = proc_pid(pid)  # /proc's number for it: /proc may be another PID namespace's
        with _signals.held():  # a sync callable runs with handlers live: none between open and append
            opened.append(os.open(f"/proc/{where}/ns/user", os.O_RDONLY | os.O_CLOEXEC))
        raise _Opened

    helper = SysProcAttr(cloneflags=NEWUSER, uid_mappings=sys_attr.uid_mappings,
                         gid_mappings=sys_attr.gid_mappings,
                         gid_mappings_enable_setgroups=sys_attr.gid_mappings_enable_setgroups, sync=open_ns)
    try:  # the helper never execs: its sync callable stops it, and fork_exec kills and reaps it
        fork_exec("/", ["pyforkexec-idmap-userns"], ProcAttr(files=(), sys=helper))
    except ChildError as e:
        cause = e.__cause__
        if isinstance(cause, _Opened):
            return opened[-1]
        if cause is not None and not isinstance(cause, OSError):  # a signal handler's, in the callable
            raise cause from None
        raise OSError(e.errno, f"a user namespace with the child's maps: {e.strerror} "
                      f"(at {e.location.step})") from None
    raise AssertionError("the idmap helper exec'd /")  # pragma: no cover - "/" is a directory


def _userns_fd(idmap: Union[bool, bytes, int], sys_attr: SysProcAttr, opened: list[int]) -> int:
    if idmap is True:
        return _userns_like(sys_attr, opened)
    if isinstance(idmap, bytes):
        opened.append(os.open(idmap, NS_OPEN))
        return opened[-1]
    return int(idmap)


def open_idmapped_trees(mounts: tuple[ResolvedMount, ...], sys_attr: SysProcAttr, path: str,
                        opened: list[int]) -> tuple[tuple[int, int], ...]:
    """(index, tree fd) for each idmapped mount, every fd in ``opened``. A failure is a ChildError at
    IDMAP naming ``SysProcAttr.mounts[index]`` (EINVAL: this filesystem cannot be idmapped; EPERM: it
    needs CAP_SYS_ADMIN over the filesystem, as root has)."""
    trees = []
    for m in mounts:
        if m.idmap is None:
            continue
        n = m.index  # its place in SysProcAttr.mounts
        recursive = bool(m.flags & MS_REC)
        try:
            userns = _userns_fd(m.idmap, sys_attr, opened)
            tree = kernel_fds.open_tree_clone(m.source or b"", recursive)
            opened.append(tree)
            kernel_fds.mount_setattr_idmap(tree, userns, recursive)
        except OSError as e:
            raise ChildError(e.errno, ErrorLocation.IDMAP, n, path) from e
        trees.append((n, tree))
    return tuple(trees)
