"""Checks on ProcAttr/SysProcAttr made before any process exists.

Each failure is a ValueError or TypeError whose message starts with the field and states the rule.
Besides clone(2)'s own EINVAL combinations, this refuses the settings that hang or corrupt a Go
caller (see the reference notes), since they cannot do what the caller meant here either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from . import flags as _flags
from .attrs import Credential, ProcAttr, SetNS, SysProcAttr, SysProcIDMap
from .caps import cap_last_cap
from .checks import check_int, fail, to_bytes
from .extensions import Ext, check_extensions

# Plain ints: IntFlag arithmetic costs microseconds on the spawn path.
F = type("F", (), {f.name: int(f) for f in _flags.CloneFlags})
MAX_ID = 2**32 - 2  # (uid_t)-1 means "no change" to the kernel
MAX_MAP_LINES = 340  # the kernel's limit since 4.15
MAX_FD = 2**31 - 1
NGROUPS_MAX = 65536

# Flags that would make the child share what it must not share with a Python parent, and the reason.
_REFUSED_CLONEFLAGS = {
    F.CLONE_VM: "the child already shares memory only for the few steps before execve; a caller-requested "
    "CLONE_VM would let the new program corrupt this interpreter",
    F.CLONE_VFORK: "pyforkexec decides when the parent waits (vfork) itself",
    F.CLONE_THREAD: "the new program would replace this whole process at execve",
    F.CLONE_SIGHAND: "the child resets signal handlers, which would reset this process's handlers",
    F.CLONE_FILES: "the child rearranges fds 0..n, which would close this process's fds",
    F.CLONE_SETTLS: "the child would run on a foreign thread-local area",
    F.CLONE_PARENT_SETTID: "there is no parent tid buffer to fill",
    F.CLONE_CHILD_SETTID: "there is no child tid buffer to fill",
    F.CLONE_CHILD_CLEARTID: "there is no child tid buffer to clear",
    F.CLONE_PIDFD: "set SysProcAttr.pidfd=True instead",
    F.CLONE_CLEAR_SIGHAND: "pyforkexec always clears signal handlers in the child",
    F.CLONE_INTO_CGROUP: "set SysProcAttr.use_cgroup_fd and cgroup_fd instead",
}

# clone(2)'s EINVAL combinations that remain possible: (flags present, flags absent/present, rule).
_INVALID_PAIRS = (
    (F.CLONE_NEWNS, F.CLONE_FS, "CLONE_NEWNS cannot be combined with CLONE_FS"),
    (F.CLONE_NEWUSER, F.CLONE_FS, "CLONE_NEWUSER cannot be combined with CLONE_FS"),
    (F.CLONE_NEWUSER, F.CLONE_PARENT, "CLONE_NEWUSER cannot be combined with CLONE_PARENT"),
    (F.CLONE_NEWPID, F.CLONE_PARENT, "CLONE_NEWPID cannot be combined with CLONE_PARENT"),
    (F.CLONE_NEWIPC, F.CLONE_SYSVSEM, "CLONE_NEWIPC cannot be combined with CLONE_SYSVSEM"),
)

NAMESPACE_MASK = (
    F.CLONE_NEWNS | F.CLONE_NEWUTS | F.CLONE_NEWIPC | F.CLONE_NEWNET | F.CLONE_NEWPID | F.CLONE_NEWUSER
    | F.CLONE_NEWCGROUP | F.CLONE_NEWTIME
)
UNSHAREABLE = NAMESPACE_MASK | F.CLONE_FS | F.CLONE_FILES | F.CLONE_SYSVSEM
KNOWN_FLAGS = sum(int(f) for f in _flags.CloneFlags)
CSIGNAL = 0xFF


def to_bytes_list(field: str, values: object) -> tuple[bytes, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        fail(field, f"must be a list of strings, not {type(values).__name__}", TypeError)
    return tuple(to_bytes(f"{field}[{i}]", v) for i, v in enumerate(values))


def resolve_files(files: object) -> tuple[int, ...]:
    """ProcAttr.files as parent fd numbers, -1 for a closed slot."""
    if isinstance(files, (str, bytes)) or not isinstance(files, Sequence):
        fail("ProcAttr.files", f"must be a list of fds, not {type(files).__name__}", TypeError)
    out = []
    for i, f in enumerate(files):
        if f is None:
            out.append(-1)
            continue
        fd = f if isinstance(f, int) else getattr(f, "fileno", None)
        if callable(fd):
            fd = fd()
        out.append(check_int(f"ProcAttr.files[{i}]", fd, -1, MAX_FD))
    return tuple(out)


def check_flags(field: str, value: object, allowed: int) -> int:
    v = check_int(field, value, 0, 2**64 - 1)
    unknown = v & ~KNOWN_FLAGS & ~CSIGNAL
    if unknown:
        fail(field, f"unknown clone flag bits {unknown:#x}")
    extra = v & ~allowed
    if extra:
        fail(field, f"{_flags.CloneFlags.describe(extra)} not allowed here")
    return v


def check_cloneflags(sys: SysProcAttr, has_dir: bool) -> int:
    v = check_int("SysProcAttr.cloneflags", sys.cloneflags, 0, 2**64 - 1)
    for flag, why in _REFUSED_CLONEFLAGS.items():
        if v & flag:
            fail("SysProcAttr.cloneflags", f"{_flags.CloneFlags.describe(flag)} is refused: {why}")
    if v & CSIGNAL & ~F.CLONE_NEWTIME:
        fail("SysProcAttr.cloneflags", "no exit signal byte: children exit with SIGCHLD")
    check_flags("SysProcAttr.cloneflags", v, KNOWN_FLAGS)
    for a, b, rule in _INVALID_PAIRS:
        if v & a and v & b:
            fail("SysProcAttr.cloneflags", rule)
    if v & F.CLONE_FS and (has_dir or sys.chroot):
        fail("SysProcAttr.cloneflags", "CLONE_FS with ProcAttr.dir or chroot would move this process's "
             "working directory or root too")
    return v


def check_id_maps(field: str, maps: object) -> None:
    if isinstance(maps, (str, bytes)) or not isinstance(maps, Sequence):
        fail(field, f"must be a list of SysProcIDMap, not {type(maps).__name__}", TypeError)
    if not maps:
        fail(field, "an empty mapping list maps nothing: give at least one SysProcIDMap, or None")
    if len(maps) > MAX_MAP_LINES:
        fail(field, f"at most {MAX_MAP_LINES} mappings, got {len(maps)}")
    for i, m in enumerate(maps):
        if not isinstance(m, SysProcIDMap):
            fail(f"{field}[{i}]", f"must be a SysProcIDMap, not {type(m).__name__}", TypeError)
        check_int(f"{field}[{i}].container_id", m.container_id, 0, MAX_ID)
        check_int(f"{field}[{i}].host_id", m.host_id, 0, MAX_ID)
        check_int(f"{field}[{i}].size", m.size, 1, MAX_ID + 1)
        for side in ("container_id", "host_id"):
            if getattr(m, side) + m.size > MAX_ID + 1:
                fail(f"{field}[{i}]", f"{side} + size must not exceed {MAX_ID + 1}")
    for side in ("container_id", "host_id"):
        ranges = sorted((getattr(m, side), getattr(m, side) + m.size, i) for i, m in enumerate(maps))
        for (_, end, i), (start, _, j) in zip(ranges, ranges[1:]):
            if start < end:
                fail(field, f"mappings {min(i, j)} and {max(i, j)} overlap in {side}")


def check_credential(cred: object) -> None:
    if not isinstance(cred, Credential):
        fail("SysProcAttr.credential", f"must be a Credential, not {type(cred).__name__}", TypeError)
    check_int("SysProcAttr.credential.uid", cred.uid, 0, MAX_ID)
    check_int("SysProcAttr.credential.gid", cred.gid, 0, MAX_ID)
    if len(cred.groups) > NGROUPS_MAX:
        fail("SysProcAttr.credential.groups", f"at most {NGROUPS_MAX} groups")
    for i, g in enumerate(cred.groups):
        check_int(f"SysProcAttr.credential.groups[{i}]", g, 0, MAX_ID)


def check_terminal(sys: SysProcAttr, files: Sequence[int]) -> None:
    nfiles = len(files)
    if sys.setctty and sys.foreground:
        fail("SysProcAttr.setctty", "setctty and foreground cannot both be set (they read ctty differently)")
    if sys.setctty and not sys.setsid:
        fail("SysProcAttr.setctty", "needs setsid: only a session leader can acquire a controlling terminal")
    if sys.setctty and not 0 <= sys.ctty < nfiles:
        fail("SysProcAttr.ctty", f"with setctty, ctty is a child fd and must be below len(files)={nfiles}")
    if sys.setctty and files[sys.ctty] < 0:
        fail("SysProcAttr.ctty", f"with setctty, ctty must name an open slot of ProcAttr.files, "
             f"files[{sys.ctty}] is closed")
    if sys.foreground:
        check_int("SysProcAttr.ctty", sys.ctty, 0, MAX_FD)
    check_int("SysProcAttr.pgid", sys.pgid, 0, 2**31 - 1)


def check_setns(entries: object) -> None:
    if isinstance(entries, (str, bytes)) or not isinstance(entries, Sequence):
        fail("SysProcAttr.setns", "must be a list of SetNS", TypeError)
    for i, e in enumerate(entries):
        field = f"SysProcAttr.setns[{i}]"
        if not isinstance(e, SetNS):
            fail(field, f"must be a SetNS, not {type(e).__name__}", TypeError)
        if isinstance(e.target, int) and not isinstance(e.target, bool):
            check_int(f"{field}.target", e.target, 0, MAX_FD)
        else:
            to_bytes(f"{field}.target", e.target)
        nstype = check_int(f"{field}.nstype", e.nstype, 0, 2**31 - 1)
        if nstype & ~NAMESPACE_MASK:
            fail(f"{field}.nstype", "must be 0 or CLONE_NEW* namespace flags")


def validate(sys: SysProcAttr, attr: ProcAttr, files: Sequence[int]) -> tuple[int, int, Optional[Ext]]:
    """Checks every field; returns (cloneflags, unshareflags, the extensions or None if all default)."""
    if not isinstance(sys, SysProcAttr):
        fail("ProcAttr.sys", f"must be a SysProcAttr, not {type(sys).__name__}", TypeError)
    clone = check_cloneflags(sys, bool(attr.dir))
    unshare = check_flags("SysProcAttr.unshareflags", sys.unshareflags, UNSHAREABLE)
    for name in ("uid_mappings", "gid_mappings"):
        maps: Optional[Sequence[SysProcIDMap]] = getattr(sys, name)
        if maps is None:
            continue
        check_id_maps(f"SysProcAttr.{name}", maps)
        if not (clone | unshare) & F.CLONE_NEWUSER:
            fail(f"SysProcAttr.{name}", "id mappings need CLONE_NEWUSER in cloneflags or unshareflags "
                 "(without it Go deadlocks waiting for maps that cannot be written)")
    if sys.credential is not None:
        check_credential(sys.credential)
    check_terminal(sys, files)
    check_int("SysProcAttr.pdeathsig", sys.pdeathsig, 0, 64)
    last = cap_last_cap()
    for i, cap in enumerate(sys.ambient_caps):
        check_int(f"SysProcAttr.ambient_caps[{i}]", cap, 0, min(last, 63))
    if sys.use_cgroup_fd:
        check_int("SysProcAttr.cgroup_fd", sys.cgroup_fd, 0, MAX_FD)
    check_setns(sys.setns)
    return clone, unshare, check_extensions(sys, clone, unshare)
