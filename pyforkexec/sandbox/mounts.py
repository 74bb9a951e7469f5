"""Mounts made in the child's new mount namespace, in order, before pivot_root/chroot.

A ``Mount`` is one mount(2) call: ``Mount(source, target, fstype, flags, data, mkdir)``. Its target is
a path inside the new root (``SysProcAttr.pivot_root`` or ``chroot``) when one is set, else in the
child's mount namespace; ``mkdir=True`` creates the missing target (a directory, or an empty file
when a bind mount's source is not a directory) and its parents first (the default of the ``bind``,
``tmpfs``, ``proc`` and ``sysfs`` constructors). What it makes is made on the filesystem the target
lies on, which a mount namespace shares with this host: outside a tmpfs of the list it stays there
after the program, as systemd's mount points do (the mount itself goes with the namespace); give
``mkdir=False`` for a target that must already exist. Under a new root, the child
finds each target (and each directory it makes) as the program will find it, from inside the root
(openat2 RESOLVE_IN_ROOT, Linux 5.6): a symlink of the root's tree (an image's /var/run -> /run, or
one pointing anywhere) never leads a mount, or a directory made for it, outside the root; a link
that dangles inside the root fails the spawn at MKDIR or MOUNT. Sources are paths as this
process sees them. ``flags`` is an int or MS_* names (``"MS_BIND|MS_REC"``, ``["bind", "rec"]``,
``"ro,nosuid"``; see parse_mount_flags). A read-only or nosuid/nodev/noexec bind mount is a bind
followed by a change of the new mount's attributes (mount_setattr, recursive with MS_REC), as
bubblewrap does; propagation flags given with a mount are applied to it afterwards. Flags of a
propagation type only (with MS_REC or not) and no fstype change the propagation of the mount at the
target; with an fstype they are a new mount, then given that propagation. A field the kind of call
does not use (a bind's or a move's fstype or data, a remount's source, a propagation change's source or
data, a remount with MS_BIND's fstype and data too) is refused: mount(2) would ignore it. So is
MS_REC with MS_REMOUNT (a remount changes one mount; a recursive read-only bind is a bind with MS_REC
and MS_RDONLY), and a ramfs option other than mode= (ramfs ignores a size). A remount without MS_BIND
changes the filesystem itself, as every mount namespace (the host's too) sees it, and keeps it after
the program: only a tmpfs or ramfs the list mounted at that very target may be remounted so. A tmpfs
size, nr_blocks or nr_inodes the kernel reads as 0 (no limit at all) or wraps (beyond 64 bits) is
refused.

A bind mount may be idmapped (``idmap``, see idmap.py): ``True`` to the child's own user namespace
(CLONE_NEWUSER with uid/gid maps), or to the user namespace at a path (``/proc/PID/ns/user``) or of an
open fd. The parent makes the idmapped copy of the source before clone; the child attaches it.

A bind mount may be ``optional`` (bubblewrap's ``--ro-bind-try``): left out when its source does not
exist, as this process sees it when the spawn is checked (once for a prepared spawn), so that one spec
serves hosts that differ (``/lib64`` exists on x86_64, not on arm64). Only under a new root
(``pivot_root`` or ``chroot``), where leaving a bind out only hides more of the host: without one, the
target would stay as the host has it (a bind meant to hide a path, or to make it read-only, would do
nothing), and ``optional`` is refused. Under a new root too it may be left out only where its target
is on an empty new filesystem of the list (a tmpfs or ramfs, as bubblewrap's root always is: see
_check_optional_not_under), with no move or shared mount in the list (they carry mounts along); and not
with a joined mount namespace (``setns``), where the root is another namespace's and cannot be looked
at before the join. A source that disappears after the check still fails the spawn at the mount step.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional, Union

from .._record import Value
from ..checks import (
    MAX_FD,
    NS_OPEN,
    check_bool,
    check_int,
    check_list,
    check_open_fd,
    fail,
    to_abspath,
    to_bytes,
)

if TYPE_CHECKING:  # checkers see the standard decorator; see _dataclass.py
    from dataclasses import dataclass
else:
    from .._dataclass import dataclass

# linux/mount.h, mount(2)'s flags (MS_KERNMOUNT and MS_NOUSER are the kernel's own).
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOSYMFOLLOW, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_MOVE, MS_REC = 256, 1024, 2048, 4096, 8192, 16384
MS_UNBINDABLE, MS_PRIVATE, MS_SLAVE, MS_SHARED = 1 << 17, 1 << 18, 1 << 19, 1 << 20
MS_RELATIME, MS_STRICTATIME = 1 << 21, 1 << 24
MS_FLAGS = {
    "MS_RDONLY": MS_RDONLY, "MS_NOSUID": MS_NOSUID, "MS_NODEV": MS_NODEV, "MS_NOEXEC": MS_NOEXEC,
    "MS_SYNCHRONOUS": 16, "MS_REMOUNT": MS_REMOUNT, "MS_MANDLOCK": 64, "MS_DIRSYNC": 128,
    "MS_NOSYMFOLLOW": MS_NOSYMFOLLOW, "MS_NOATIME": MS_NOATIME, "MS_NODIRATIME": MS_NODIRATIME,
    "MS_BIND": MS_BIND, "MS_MOVE": MS_MOVE, "MS_REC": MS_REC, "MS_SILENT": 32768, "MS_POSIXACL": 1 << 16,
    "MS_UNBINDABLE": MS_UNBINDABLE, "MS_PRIVATE": MS_PRIVATE, "MS_SLAVE": MS_SLAVE, "MS_SHARED": MS_SHARED,
    "MS_RELATIME": MS_RELATIME, "MS_I_VERSION": 1 << 23, "MS_STRICTATIME": MS_STRICTATIME,
    "MS_LAZYTIME": 1 << 25,
}
# mount(8)-style short names.
_ALIASES = {"RO": MS_RDONLY, "RBIND": MS_BIND | MS_REC, "RPRIVATE": MS_REC | MS_PRIVATE,
            "RSLAVE": MS_REC | MS_SLAVE, "RSHARED": MS_REC | MS_SHARED, "RUNBINDABLE": MS_REC | MS_UNBINDABLE}
PROPAGATION_FLAGS = {"private": MS_PRIVATE, "slave": MS_SLAVE, "shared": MS_SHARED,
                     "unbindable": MS_UNBINDABLE}
PROPAGATION_MASK = MS_PRIVATE | MS_SLAVE | MS_SHARED | MS_UNBINDABLE
# The per-mount flags a bind mount ignores, and the MOUNT_ATTR_* (linux/mount.h) that set them after.
_ATTR_OF_MS = {MS_RDONLY: 0x1, MS_NOSUID: 0x2, MS_NODEV: 0x4, MS_NOEXEC: 0x8, MS_NODIRATIME: 0x80,
               MS_NOSYMFOLLOW: 0x200000}
_ATIME_OF_MS = {MS_NOATIME: 0x10, MS_STRICTATIME: 0x20, MS_RELATIME: 0x0}
MOUNT_ATTR_ATIME_MASK = 0x70
ATTR_FLAGS = sum(_ATTR_OF_MS) | sum(_ATIME_OF_MS)
MAX_DATA = 4095  # the kernel copies one page of options, NUL included

MountFlags = Union[int, str, Sequence[str]]
IdMap = Union[bool, str, int, None]


def parse_mount_flags(value: object, field: str = "flags") -> int:
    """mount(2) flags from an int, ``"MS_BIND|MS_REC"``, ``"bind,rec"`` or a list of names.

    Names are MS_* with or without the prefix, in any case, plus mount(8)'s ro, rbind, rprivate,
    rslave, rshared and runbindable.
    """
    if isinstance(value, bool):
        fail(field, "must be an int or MS_* names, not bool", TypeError)
    if isinstance(value, int):
        value = int.__int__(value)  # its value: a subclass's operators are never asked (validate.py)
        if value < 0 or value >= 1 << 32:
            fail(field, f"must be between 0 and {2**32 - 1}, got {value}")
        unknown = value & ~sum(MS_FLAGS.values())
        if unknown:
            fail(field, f"unknown mount flag bits {unknown:#x}")
        return value
    if isinstance(value, str):
        names = [n for n in value.replace("|", ",").split(",") if n.strip()]
    else:
        names = list(check_list(field, value, "MS_* names"))
    flags = 0
    for i, name in enumerate(names):
        if not isinstance(name, str):
            fail(f"{field}[{i}]", f"must be an MS_* name, not {type(name).__name__}", TypeError)
        key = name.strip().upper()
        bits = _ALIASES.get(key, MS_FLAGS.get(key if key.startswith("MS_") else f"MS_{key}"))
        if bits is None:
            fail(field, f"unknown mount flag {name.strip()!r}")
        flags |= bits
    return flags


def mount_flag_names(flags: int) -> str:
    """``MS_BIND|MS_REC`` for 0x5000."""
    return "|".join(name for name, bit in MS_FLAGS.items() if flags & bit) or "0"


@dataclass(frozen=True)
class Mount:
    """One mount(2) call in the child; see the module documentation. Helpers build the usual ones."""

    source: Optional[str]
    target: str
    fstype: Optional[str] = None
    flags: MountFlags = 0
    data: Optional[str] = None
    mkdir: bool = False
    idmap: IdMap = None
    optional: bool = False

    @classmethod
    def bind(cls, source: str, target: str, readonly: bool = False, recursive: bool = True,
             mkdir: bool = True, idmap: IdMap = None, optional: bool = False) -> Mount:
        """Bind ``source`` (with its submounts if ``recursive``) at ``target``, read-only if asked,
        idmapped if asked, left out if ``optional`` and ``source`` does not exist (see the module
        documentation)."""
        flags = MS_BIND | (MS_REC if recursive else 0) | (MS_RDONLY if readonly else 0)
        return cls(source, target, None, flags, None, mkdir, idmap, optional)

    @classmethod
    def tmpfs(cls, target: str, size: Union[int, str, None] = None, mode: Union[int, str, None] = None,
              mkdir: bool = True) -> Mount:
        """A fresh tmpfs (nosuid, nodev); ``size`` in bytes or as tmpfs takes it ("64m", "10%"),
        ``mode`` of its root as an int (0o1777) or octal string."""
        opts = []
        if size is not None:
            opts.append(f"size={size}")
        if mode is not None:
            opts.append(f"mode={mode:o}" if isinstance(mode, int) and not isinstance(mode, bool) else
                        f"mode={mode}")
        return cls("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, ",".join(opts) or None, mkdir)

    @classmethod
    def proc(cls, target: str = "/proc", mkdir: bool = True) -> Mount:
        """A proc filesystem (nosuid, nodev, noexec) for the child's pid namespace."""
        return cls("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None, mkdir)

    @classmethod
    def sysfs(cls, target: str = "/sys", readonly: bool = True, mkdir: bool = True) -> Mount:
        """A sysfs (nosuid, nodev, noexec); mounting one needs a network namespace of one's own."""
        flags = MS_NOSUID | MS_NODEV | MS_NOEXEC | (MS_RDONLY if readonly else 0)
        return cls("sysfs", target, "sysfs", flags, None, mkdir)


DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")


def minimal_dev(target: str = "/dev") -> list[Mount]:
    """A /dev without devtmpfs: a small tmpfs with the host's null, zero, full, random, urandom and
    tty bind-mounted on files, and a /dev/shm tmpfs (mode 1777). There are no symlinks (fd, stdin...),
    no pts and no ptmx."""
    base = target.rstrip("/")
    mounts = [Mount.tmpfs(target, size=1 << 20, mode=0o755)]
    mounts += [Mount.bind(f"/dev/{node}", f"{base}/{node}", recursive=False) for node in DEV_NODES]
    mounts.append(Mount.tmpfs(f"{base}/shm", mode=0o1777))
    return mounts


class ResolvedMount(Value):
    """One Mount, checked and turned into the paths and flags of its steps."""

    __slots__ = ("data", "file_target", "flags", "fstype", "idmap", "index", "mkdirs", "path", "root",
                 "source", "target")

    def __init__(self, source: Optional[bytes], path: bytes, fstype: Optional[bytes], flags: int,
                 data: Optional[bytes], mkdirs: tuple[bytes, ...], file_target: bool,
                 idmap: Union[bool, bytes, int, None] = None, index: int = 0, root: bytes = b""):
        self.index = index  # its place in SysProcAttr.mounts, which errors name (optional binds left out)
        self.source = source
        self.root = root  # the new root (chroot or pivot_root) it is mounted under; b"" for none
        self.path = path  # the target as the program sees it (absolute, normalized)
        self.target = under_root(root, path)  # the full path at mount time, for messages
        self.fstype = fstype
        self.flags = flags
        self.data = data
        self.mkdirs = mkdirs  # created in order before mounting (as the program sees them, like path)
        self.file_target = file_target  # the last of mkdirs is an empty file, not a directory
        self.idmap = idmap  # True, a user namespace's path, or its fd


def under_root(root: bytes, path: bytes) -> bytes:
    """``path`` (absolute, normalized) inside ``root`` (b"" for none)."""
    if path == b"/":
        return root or b"/"
    return root.rstrip(b"/") + path


def normalize(field: str, value: object) -> bytes:
    path = to_abspath(field, value)
    parts = [p for p in path.split(b"/") if p not in (b"", b".")]
    if b".." in parts:
        fail(field, "must not contain '..' (it could leave the new root)")
    return b"/" + b"/".join(parts)


def _source_is_dir(source: bytes) -> bool:
    try:
        return stat.S_ISDIR(os.stat(source).st_mode)
    except OSError:
        return True  # it may appear in the child (an earlier mount); the mount step reports it if not


def check_mount(field: str, m: object, root: bytes, index: int = 0,
                joined: bool = False) -> Optional[ResolvedMount]:
    """The Mount ``m``, checked and resolved; None for an optional bind whose source does not exist.
    ``joined``: the child joins a mount namespace first."""
    if not isinstance(m, Mount):
        fail(field, f"must be a Mount, not {type(m).__name__}", TypeError)
    source = None if m.source is None else to_bytes(f"{field}.source", m.source)
    target = normalize(f"{field}.target", m.target)
    fstype = None if m.fstype is None else to_bytes(f"{field}.fstype", m.fstype)
    flags = parse_mount_flags(m.flags, f"{field}.flags")
    data = None
    if m.data is not None:
        if not isinstance(m.data, str):
            fail(f"{field}.data", f"must be a string of options, not {type(m.data).__name__}", TypeError)
        data = to_bytes(f"{field}.data", m.data)
        if len(data) > MAX_DATA:
            fail(f"{field}.data", f"at most {MAX_DATA} bytes, got {len(data)}")
    if fstype == b"tmpfs" and data is not None:
        _check_tmpfs_options(f"{field}.data", data)
    if fstype == b"ramfs" and data is not None:
        _check_ramfs_options(f"{field}.data", data)
    bind = flags & MS_BIND and not flags & MS_REMOUNT
    if bind and not source:  # ("" the kernel refuses with EINVAL, in the child)
        fail(f"{field}.source", "a bind mount needs a source")
    _check_kind(field, source, fstype, flags, data)
    if not flags & MS_REMOUNT and not is_propagation_change(flags, fstype) and _is_this_root(root) \
            and (target == b"/" or (not joined and _is_this_root(target))):
        # A process's root is a reference to a mount, not a path: a mount made on / stacks over it,
        # and the program, still rooted in the mount below, never sees it (the host's tree stays).
        fail(f"{field}.target", "is the program's / and there is no new root: a mount there is stacked "
             "over the root the program keeps, which never sees it (the host's / stays in view); mount "
             "it on a new root (pivot_root or chroot) instead, or use readonly_root for a read-only /")
    mkdirs: tuple[bytes, ...] = ()
    file_target = False
    if check_bool(f"{field}.mkdir", m.mkdir):
        parts = target.strip(b"/").split(b"/") if target != b"/" else []
        mkdirs = tuple(b"/" + b"/".join(parts[:k]) for k in range(1, len(parts) + 1))
        file_target = bool(bind and mkdirs and not _source_is_dir(source or b""))
    idmap = _check_idmap(f"{field}.idmap", m.idmap, bool(bind))
    if check_bool(f"{field}.optional", m.optional):
        if not bind:
            fail(f"{field}.optional", "only a bind mount can be optional (left out if its source is missing)")
        if _is_this_root(root):  # no new root, or one that is this process's / (chroot "//", a link)
            fail(f"{field}.optional", "needs a new root (pivot_root or chroot) that is not this host's /: "
                 "under that, a bind left out leaves its target as the host has it (a bind meant to hide it "
                 "would hide nothing)")
        if joined:
            fail(f"{field}.optional", "cannot be used with a joined mount namespace (sys.setns): whether the "
                 "new root there is the host's / cannot be told before the join")
        if not os.path.exists(source or b""):  # followed as mount(2) follows it: a dangling link is missing
            return None
    return ResolvedMount(source, target, fstype, flags, data, mkdirs, file_target, idmap, index, root)


def is_propagation_change(flags: int, fstype: object) -> bool:
    """Whether a Mount is a change of the propagation of the mount at its target (flags of a
    propagation type, with MS_REC or not, and no filesystem type), not a mount of its own. With an
    fstype it is a new mount, whose propagation is changed after it is made."""
    return bool(flags & PROPAGATION_MASK) and not flags & ~(PROPAGATION_MASK | MS_REC) and fstype is None


def _check_kind(field: str, source: Optional[bytes], fstype: Optional[bytes], flags: int,
                data: Optional[bytes]) -> None:
    """What the kind of mount(2) call a Mount's flags make (mount(2)'s order: MS_REMOUNT with MS_BIND,
    MS_REMOUNT, MS_BIND, a propagation change, MS_MOVE, a new mount) uses: the kernel ignores the
    fields it does not use, so a field given to one that does not use it is refused."""
    hint = ""
    if flags & MS_REMOUNT and flags & MS_REC:
        fail(f"{field}.flags", "MS_REC with MS_REMOUNT: a remount changes the one mount at its target (the "
             "kernel ignores MS_REC there), so the mounts below it would keep their flags; for a recursive "
             "read-only (nosuid, nodev, noexec) bind give those flags to the bind itself (MS_BIND|MS_REC|"
             "MS_RDONLY: Mount.bind(readonly=True)), and a recursive propagation change its own entry")
    if flags & MS_REMOUNT and flags & MS_BIND:
        kind, unused = "a remount with MS_BIND (a change of the mount's flags)", ("source", "fstype", "data")
    elif flags & MS_REMOUNT:
        kind, unused = "a remount (MS_REMOUNT)", ("source", "fstype")
    elif flags & MS_BIND:
        kind, unused = "a bind mount (MS_BIND)", ("fstype", "data")
    elif is_propagation_change(flags, fstype):
        kind, unused = "a propagation change (flags of a propagation type only, no fstype)", \
            ("source", "data")
        hint = "; give an fstype for a new mount with that propagation"
    elif flags & MS_MOVE:
        if not source:
            fail(f"{field}.source", "a move (MS_MOVE) needs the mount to move as its source")
        kind, unused = "a move (MS_MOVE)", ("fstype", "data")
    else:
        if fstype is None:
            fail(f"{field}.fstype", "a new mount needs a filesystem type (or MS_BIND, MS_REMOUNT, MS_MOVE, "
                 "or flags of a propagation type only)")
        return
    given = dict(source=source, fstype=fstype, data=data)
    for name in unused:
        if given[name] is not None:
            fail(f"{field}.{name}", f"{kind} takes no {name}: the kernel would ignore it{hint}")


_SIZE_SUFFIXES = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50, "e": 1 << 60}


def _check_tmpfs_options(field: str, data: bytes) -> None:
    """tmpfs's ``size=`` (bytes with an optional k, m, g, t, p or e suffix, or a percentage of RAM) and
    ``mode=`` (octal, at most 07777): the kernel refuses another (EINVAL at the mount step). A size,
    ``nr_blocks`` or ``nr_inodes`` the kernel reads as 0 is no limit at all (tmpfs(5)), more than the
    default half of RAM: refused, as is one beyond 64 bits, which the kernel wraps (to 0 among others)."""
    for option in data.split(b","):
        key, _, value = option.partition(b"=")
        text = value.decode(errors="replace")
        if key in (b"size", b"nr_blocks", b"nr_inodes"):
            number = text[:-1] if text[-1:].lower() in (*_SIZE_SUFFIXES, "%") else text
            if not (number.isascii() and number.isdigit()) or (text.endswith("%") and key != b"size"):
                fail(field, f"{key.decode()}={text}: not a size tmpfs takes (a number of bytes, with k, "
                     "m, g, t, p or e, or a percentage such as 50%)")
            amount = int(number) * _SIZE_SUFFIXES.get(text[-1:].lower(), 1)
            if text.endswith("%"):  # the kernel's bytes: the percentage of RAM's pages, times a page
                amount = amount * os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
            if amount == 0:
                fail(field, f"{key.decode()}={text}: tmpfs reads 0 as no limit at all (its "
                     f"default is one); give a limit, or leave {key.decode()}= out for the default")
            if amount >= 1 << 63:
                fail(field, f"{key.decode()}={text}: beyond what the kernel counts (64 bits: it would "
                     "wrap, to no limit for some); give a limit below 8e")
        elif key == b"mode" and not (text.isascii() and text and set(text) <= set("01234567")
                                     and int(text, 8) <= 0o7777):
            fail(field, f"mode={text}: not a mode tmpfs takes (octal, at most 7777)")


def _check_ramfs_options(field: str, data: bytes) -> None:
    """ramfs takes ``mode=`` alone and ignores any other option, a size too (it has no limit)."""
    for option in data.split(b","):
        key = option.partition(b"=")[0]
        if option and key != b"mode":
            fail(field, f"{key.decode(errors='replace')}=: ramfs takes mode= only and ignores the rest "
                 "(it has no size limit): use a tmpfs for a size")


def _is_this_root(root: bytes) -> bool:
    """Whether ``root`` (b"": none) is this process's / however it is spelled ("//", a link to it,
    /proc/self/root); one that does not exist yet (made by the mounts) is a new root."""
    if not root:
        return True
    try:
        st, here = os.stat(root), os.stat(b"/")
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (here.st_dev, here.st_ino)


def is_mount_root(path: bytes) -> Optional[bool]:
    """Whether the directory ``path`` is the root of the mount it names, as pivot_root(2) and
    mount_setattr(2) need (EINVAL or EBUSY otherwise): its parent is in another mount (their fds'
    mnt_id), or it is this process's /. None when that cannot be told (no /proc, no such directory)."""
    from .. import _signals

    ids = []
    with _signals.held():  # no handler between an open and its close
        for where in (path, os.path.join(path, b"..")):
            try:
                fd = os.open(where, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                return None
            try:
                if where == path and os.path.samestat(os.fstat(fd), os.stat(b"/")):
                    return True
                with open(f"/proc/thread-self/fdinfo/{fd}", "rb") as info:
                    ids.append(next(int(line.split()[1]) for line in info if line.startswith(b"mnt_id:")))
            except (OSError, StopIteration, ValueError):
                return None
            finally:
                os.close(fd)
    return ids[0] != ids[1]


def check_root_is_a_mount(field: str, root: bytes, mounts: tuple[ResolvedMount, ...]) -> None:
    """pivot_root(2) and a read-only root (mount_setattr) need the new root to be a mount point: a
    directory that is none, with no mount of the list at / to make it one, fails in the child (EBUSY,
    EINVAL), after ``exec --check`` said OK: refused here."""
    if any(m.path == b"/" and makes_a_mount(m) for m in mounts) or is_mount_root(root) is not False:
        return
    name = field.rsplit(".", 1)[-1]
    fail(field, f"{os.fsdecode(root)} is a directory, not a mount point, and {name} needs "
         "one (the kernel refuses it in the child): mount the new root there first, e.g. bind it onto "
         "itself (a first mount Mount.bind(root, \"/\"))")


def _check_idmap(field: str, value: object, bind: bool) -> Union[bool, bytes, int, None]:
    if value is None or value is False:
        return None
    if not bind:
        fail(field, "only a bind mount can be idmapped")
    if value is True:
        return True
    if isinstance(value, int):
        fd = check_open_fd(field, check_int(field, value, 0, MAX_FD))
        _check_userns(field, fd, f"fd {fd}")
        return fd
    if isinstance(value, str):
        path = to_abspath(field, value)
        from .. import _signals

        with _signals.held():  # no handler between the open and its close
            try:
                fd = os.open(path, NS_OPEN)
            except OSError as e:
                fail(field, f"{value}: {os.strerror(e.errno)} (a user namespace file, /proc/PID/ns/user)")
            try:
                _check_userns(field, fd, value)
            finally:
                os.close(fd)
        return path
    fail(field, f"must be True, a user namespace path or fd, or None, not {type(value).__name__}", TypeError)


def _check_userns(field: str, fd: int, what: str) -> None:
    """An idmap's target is a user namespace (else mount_setattr fails EINVAL at the IDMAP step, and a
    JSON 0 or 1 meant as false or true is an fd)."""
    from .. import nsinfo  # (as extensions.py: the child layer is the spawn's, not the checks')
    from ..flags import CLONE_NEWUSER

    if nsinfo.fd_nstype(fd) != CLONE_NEWUSER:
        fail(field, f"{what} is not a user namespace")
    try:
        here = os.stat("/proc/thread-self/ns/user")
    except OSError as e:  # no /proc of this process's PID namespace: the rule below cannot be checked
        fail(field, f"whether {what} is this process's own user namespace cannot be told without /proc "
             f"(/proc/thread-self/ns/user: {os.strerror(e.errno or 0)}): mount /proc (of this process's PID "
             "namespace)")
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) == (here.st_dev, here.st_ino):
        fail(field, f"{what} is this process's own user namespace: an idmapped mount maps the ids to "
             "another one (the kernel refuses the initial one)")


def check_mounts(field: str, mounts: object, root: bytes, joined: bool = False) -> tuple[ResolvedMount, ...]:
    """Each Mount checked and resolved, in order, without the optional binds whose source is missing.

    An optional bind left out leaves its target as it is, so it is refused where that may show this
    host: without a new root (or with / itself as one, however spelled: check_mount), under a root seen
    through a joined mount namespace (``joined``), with a move or a shared mount in the list, and
    wherever its target is not on an empty new filesystem of the list: _check_optional_not_under."""
    out: list[ResolvedMount] = []
    given = check_list(field, mounts, "Mount")
    carrying = None
    if any(isinstance(m, Mount) and m.optional is True for m in given):  # (else no spawn parses twice)
        carrying = next((m for m in given if isinstance(m, Mount)
                         and _flags_or_zero(m.flags) & (MS_MOVE | MS_SHARED)), None)
    for i, m in enumerate(given):
        resolved = check_mount(f"{field}[{i}]", m, root, i, joined)
        if isinstance(m, Mount) and m.optional:
            if carrying is not None:
                fail(f"{field}[{i}].optional", "cannot be left out with a move or a shared mount in the "
                     f"list (mounts[{given.index(carrying)}]): either carries mounts where the check cannot "
                     "follow them; make it not optional")
            _check_optional_not_under(f"{field}[{i}].optional", normalize("target", m.target), out)
        if resolved is not None:
            if resolved.flags & MS_REMOUNT and not resolved.flags & MS_BIND:
                _check_remount_of_own(f"{field}[{i}]", resolved.path, out)
            out.append(resolved)
    return tuple(out)


def _check_remount_of_own(field: str, path: bytes, earlier: list[ResolvedMount]) -> None:
    """A remount without MS_BIND changes the filesystem (its superblock) at its target, which every
    mount namespace that has it sees, this host's too, and keeps it so after the program: allowed only
    for a tmpfs or ramfs the list made at that very target (a new filesystem of the child's alone),
    with no later mount of the list at the target or above it (the path would lead elsewhere)."""
    on = next((m for m in reversed(earlier) if makes_a_mount(m)
               and (m.path in (b"/", path) or path.startswith(m.path + b"/"))), None)
    if on is not None and on.path == path and on.fstype in _EMPTY_FILESYSTEMS \
            and not on.flags & (MS_BIND | MS_MOVE):
        return
    fail(f"{field}.flags", "MS_REMOUNT without MS_BIND changes the filesystem at the target, as every mount "
         "namespace sees it (this host's too, and after the program ends); only a tmpfs or ramfs that the "
         "list mounts at this very target can be remounted so: give the options to that mount, or use "
         "MS_REMOUNT|MS_BIND to change this mount's flags alone")


_EMPTY_FILESYSTEMS = (b"tmpfs", b"ramfs")


def _flags_or_zero(flags: object) -> int:
    """``flags`` parsed, or 0 when they are invalid (check_mount refuses them, naming the mount)."""
    try:
        return parse_mount_flags(flags)
    except (ValueError, TypeError):
        return 0


def makes_a_mount(m: ResolvedMount) -> bool:
    """Whether ``m`` puts a mount at its target (not a remount, nor a propagation change alone:
    is_propagation_change)."""
    return not m.flags & MS_REMOUNT and not is_propagation_change(m.flags, m.fstype) \
        and bool(m.flags & (MS_BIND | MS_MOVE) or m.fstype is not None)


def _check_optional_not_under(field: str, path: bytes, earlier: list[ResolvedMount]) -> None:
    """An optional bind left out shows what its target has, so it may be left out only where that is
    an empty new filesystem of the list: the last mount made at its target or above it is a tmpfs or
    ramfs, and so is the last one above that tmpfs's place, and so on up to one over the new root, as
    bubblewrap's root always is. Then every directory on the way is one the list made in a fresh tmpfs,
    where no symlink leads elsewhere, and the path as written is where the child mounts and looks.
    Anywhere else (a bind of /etc, then an optional bind meant to hide /etc/hostname; the root
    directory, whose mounts, overlays or symlinks may show this host; a tmpfs reached through a bind,
    whose symlinks may put it elsewhere) it is refused."""
    target, upto, above = path, len(earlier), None
    while True:
        on = None
        for k in range(upto - 1, -1, -1):  # the mount the child finds at ``target`` (its place, if above)
            m = earlier[k]
            if makes_a_mount(m) and (m.path == b"/" or target.startswith(m.path + b"/")
                                      or (above is None and target == m.path)):
                on, upto = m, k
                break
        if on is not None and on.fstype in _EMPTY_FILESYSTEMS and not on.flags & (MS_BIND | MS_MOVE):
            if on.path == b"/":
                return
            target, above = on.path, on
            continue
        kind = "" if on is None else "bind" if on.flags & MS_BIND else os.fsdecode(on.fstype or b"")
        where = "the new root's own directory" if on is None else \
            f"the {kind} mount of mounts[{on.index}] ({os.fsdecode(on.path)})"
        if above is not None:
            where = f"the tmpfs of mounts[{above.index}] ({os.fsdecode(above.path)}), which is in {where}"
        fail(field, f"its target is in {where}, not on an empty tmpfs or ramfs of the list over the new "
             "root: left out, it would leave what is there, which may show this host; mount a tmpfs over "
             "the root first, as bubblewrap's root is, or make it not optional")


def mount_attr(flags: int) -> bytes:
    """The struct mount_attr (for the child's REMOUNT step) setting the per-mount flags among ``flags``."""
    attr_set = attr_clr = 0
    for ms, attr in _ATTR_OF_MS.items():
        if flags & ms:
            attr_set |= attr
    for ms, attr in _ATIME_OF_MS.items():
        if flags & ms:
            attr_set, attr_clr = attr_set | attr, MOUNT_ATTR_ATIME_MASK
    return struct.pack("=4Q", attr_set, attr_clr, 0, 0)
