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

from .mounts import MS_REC, MS_SHARED, ResolvedMount, is_propagation_change, makes_a_mount

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
        target = os.path.realpath(m.target)
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


def _at_or_under(path: bytes, point: bytes) -> bool:
    return path == point or path.startswith(point.rstrip(b"/") + b"/")
