"""The caller's mount table (/proc/self/mountinfo), read for one question: on which of the caller's
mounts a path lies, and whether that mount is shared.

A new mount namespace is a copy of the caller's, and the copy of a shared mount stays a peer of the
original unless the copy is made less privileged (owned by a new user namespace: the kernel turns it
into a slave) or its propagation is changed to private or slave: a mount made on such a copy is made
on the caller's mount too, and stays there after the program. ``mount_reaching_caller`` tells which
mount of a list would.
"""

import os
import re
from collections.abc import Sequence
from typing import NamedTuple, Optional

from .mounts import MS_REC, MS_SHARED, ResolvedMount, is_propagation_change, makes_a_mount, under_root

_ESCAPE = re.compile(rb"\\([0-7]{3})")


class HostMount(NamedTuple):
    point: bytes  # where it is mounted, as /proc/self/mountinfo names it (unescaped)
    shared: bool  # "shared:N" among its optional fields: a member of a peer group


def read_mount_table() -> Optional[list[HostMount]]:
    """The caller's mounts in mountinfo's order (a later one at the same point is on top), or None
    when /proc/self/mountinfo cannot be read."""
    from .. import _signals

    try:
        with _signals.held(), open("/proc/self/mountinfo", "rb") as f:  # no handler before its close
            lines = f.read().splitlines()
    except OSError:
        return None
    table = []
    for line in lines:
        fields = line.split()
        if b"-" not in fields[6:]:
            continue
        optional = fields[6:fields.index(b"-", 6)]
        point = _ESCAPE.sub(lambda m: bytes([int(m.group(1), 8)]), fields[4])
        table.append(HostMount(point, any(o.startswith(b"shared:") for o in optional)))
    return table


def holding_mount(table: Sequence[HostMount], path: bytes) -> Optional[HostMount]:
    """The mount that ``path`` (absolute, symlinks resolved) lies on: the deepest mount point at or
    above it, the last one mounted there."""
    best: Optional[HostMount] = None
    for mount in table:
        if _at_or_under(path, mount.point) and (best is None or len(mount.point) >= len(best.point)):
            best = mount
    return best


def mount_reaching_caller(mounts: Sequence[ResolvedMount],
                          table: Sequence[HostMount]) -> Optional[ResolvedMount]:
    """The first of ``mounts`` (done in order in a new mount namespace copied from the caller's and left
    peers of it: mount_propagation shared or unchanged) that would be made on a shared mount of the
    caller's too, or None. A mount on one the list made itself follows that one (the first to reach
    the caller is named); a propagation change of the list to private, slave or unbindable at a
    caller's mount (recursive: at or above it) cuts that mount off first, as util-linux does for
    --mount-proc."""
    made: list[bytes] = []
    cut: list[tuple[bytes, bool]] = []
    for m in mounts:
        target = _where_made(m)
        if is_propagation_change(m.flags, m.fstype):
            if not m.flags & MS_SHARED:
                cut.append((target, bool(m.flags & MS_REC)))
            continue
        if not makes_a_mount(m):
            continue
        on_own = any(_at_or_under(target, point) for point in made)
        made.append(target)
        if on_own:
            continue
        holder = holding_mount(table, target)
        if holder is None or not holder.shared:
            continue
        if any(at == holder.point or (rec and _at_or_under(holder.point, at)) for at, rec in cut):
            continue
        return m
    return None


def _where_made(m: ResolvedMount) -> bytes:
    """The path, as this process sees it, where the child makes ``m``: under a new root the child finds
    the target from inside it (RESOLVE_IN_ROOT, see mounts.py), so a symlink of the root's tree is
    followed there, not on this host's tree."""
    if not m.root:
        return os.path.realpath(m.target)
    root = os.path.realpath(m.root)  # chroot(2) and pivot_root(2) follow this host's links to it
    return under_root(root, found_in_root(root, m.path))


def found_in_root(root: bytes, path: bytes) -> bytes:
    """``path`` (absolute) as a process whose root is ``root`` finds it, symlinks resolved in that root
    (an absolute link starts again at it, '..' stops at it), as openat2 RESOLVE_IN_ROOT does. As
    os.path.realpath: a part that is not there, or a loop of links, ends the resolution and the rest
    is kept as written."""
    done: list[bytes] = []
    todo = [part for part in reversed(path.split(b"/")) if part not in (b"", b".")]
    links = 0
    while todo:
        part = todo.pop()
        if part == b"..":
            if done:
                done.pop()
            continue
        try:
            link = os.readlink(under_root(root, b"/" + b"/".join([*done, part])))
        except OSError:  # not a link, or not there
            link = None
        links += link is not None
        if link is None or links > 40:  # the kernel's limit of links in one lookup (ELOOP)
            done.append(part)
            continue
        if link.startswith(b"/"):
            done = []
        todo.extend(p for p in reversed(link.split(b"/")) if p not in (b"", b"."))
    return b"/" + b"/".join(done)


def _at_or_under(path: bytes, point: bytes) -> bool:
    return path == point or path.startswith(point.rstrip(b"/") + b"/")
