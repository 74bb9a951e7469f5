"""The caller's mount table (/proc/self/mountinfo), or that of a mount namespace the child joins, read
for one question: on which of its mounts a path lies, and whether that mount is shared.

A new mount namespace is a copy of the caller's (or of the one the child joined first), and the copy
of a shared mount stays a peer of the original unless the copy is made less privileged (owned by a new
user namespace: the kernel turns it into a slave) or its propagation is changed to private or slave: a
mount made on such a copy is made on the original too, and stays there after the program.
``mount_reaching_caller`` tells which mount of a list would. A joined namespace's table is read from a
process in it (``joined_mount_table``), its paths resolved through that process's /proc/PID/root.
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


def read_mount_table(pid: str = "thread-self") -> Optional[list[HostMount]]:
    """The mounts of process ``pid`` (a number of this /proc) in mountinfo's order (a later one at the
    same point is on top), or None when its mountinfo cannot be read. By default the calling thread's,
    which the child's mount namespace is copied from: /proc/self is the main thread's, whose mount
    namespace another thread may have left (unshare(CLONE_FS), then setns)."""
    from .. import _signals

    try:
        with _signals.held(), open(f"/proc/{pid}/mountinfo", "rb") as f:  # no handler before its close
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


def joined_mount_table(entries: Sequence[object]) -> Optional[tuple[list[HostMount], bytes]]:
    """The table of the mount namespace that a SysProcAttr.setns entry of ``entries`` joins, and the path
    through which this process reaches that namespace's root (``/proc/PID/root``), read from a process
    of this /proc in it, the one the entry names first (a /proc/PID path, a pidfd), else any; None when
    no entry is known to join one and one may (its target cannot be looked at), or when no process in
    it can be found or read (a namespace kept by a bind mount or an fd alone). Checked to be that
    namespace's still once read."""
    from .. import nsinfo
    from ..attrs import SetNS
    from ..flags import CLONE_NEWNS
    from ..proc_pid import pidfd_pid

    for entry in entries:
        if not isinstance(entry, SetNS) or (entry.nstype and not entry.nstype & CLONE_NEWNS):
            continue
        target = entry.target
        named = pidfd_pid(target) if isinstance(target, int) else None
        try:
            if named is not None:  # a pidfd: its process's namespace (-1: ended, 0: not in this /proc)
                if named <= 0:
                    return None
                ns = os.stat(f"/proc/{named}/ns/mnt")
            elif isinstance(target, int):
                if nsinfo.fd_nstype(target) != CLONE_NEWNS:
                    continue
                ns = os.fstat(target)
            else:
                if nsinfo.nstype(target) != CLONE_NEWNS:
                    continue
                ns = os.stat(target)
                found = _PROC_NS.fullmatch(os.fsencode(target))
                named = int(found.group(1)) if found else None
        except (OSError, TypeError, ValueError):
            return None  # its join fails then, or the namespace cannot be told
        for pid in ([named] if named else []) + [int(p) for p in os.listdir("/proc") if p.isdigit()]:
            try:
                if not _same(os.stat(f"/proc/{pid}/ns/mnt"), ns):
                    continue
                table = read_mount_table(str(pid))
                if table is not None and _same(os.stat(f"/proc/{pid}/ns/mnt"), ns):
                    return table, f"/proc/{pid}/root".encode()
            except OSError:  # ended, or not ours to look at
                continue
        return None
    return None


_PROC_NS = re.compile(rb"/proc/(\d+)/(?:task/\d+/)?ns/mnt")


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def mount_reaching_caller(mounts: Sequence[ResolvedMount], table: Sequence[HostMount],
                          top: bytes = b"/") -> Optional[ResolvedMount]:
    """The first of ``mounts`` (done in order in a new mount namespace copied from the caller's, or the
    joined one whose ``table`` and root ``top`` joined_mount_table gave, and left peers of it:
    mount_propagation shared or unchanged) that would be made on a shared mount of that table too, or
    None. A mount on one the list made itself follows that one (the first to reach the original is
    named); a propagation change of the list to private, slave or unbindable at a mount of the table
    (recursive: at or above it) cuts that mount off first, as util-linux does for --mount-proc."""
    made: list[bytes] = []
    cut: list[tuple[bytes, bool]] = []
    for m in mounts:
        target = _where_made(m, top)
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


def _where_made(m: ResolvedMount, top: bytes) -> bytes:
    """The path, in the mount namespace whose root this process reaches at ``top``, where the child
    makes ``m``: symlinks resolved from that root, and under a new root (chroot, pivot_root, which
    follow links on the way to it) from inside that one (RESOLVE_IN_ROOT, see mounts.py)."""
    root = found_in_root(top, m.root) if m.root else b"/"
    return under_root(root, found_in_root(under_root(top, root), m.path))


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
