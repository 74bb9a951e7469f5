"""Checks on ProcAttr/SysProcAttr made before any process exists.

Each failure is a ValueError or TypeError whose message starts with the field and states the rule.
Besides clone(2)'s own EINVAL combinations, this refuses the settings that hang or corrupt a Go
caller (see the reference notes), since they cannot do what the caller meant here either.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Optional

from . import flags as _flags
from ._record import Value
from .attrs import Credential, ProcAttr, SetNS, SysProcAttr, SysProcIDMap
from .checks import MAX_FD, MAX_ID, check_bool, check_fileno, check_int, check_list, fail, to_bytes
from .plain import plain
from .sandbox.caps import CAP_NUMBERS, cap_last_cap
from .sandbox.extensions import Sandbox, check_extensions
from .sandbox.landlock import is_ruleset_fd
from .sandbox.mounts import MS_BIND, MS_RDONLY, MS_REMOUNT, is_propagation_change

# Plain ints: IntFlag arithmetic costs microseconds on the spawn path.
F = type("F", (), {f.name: int(f) for f in _flags.CloneFlags})
MAX_MAP_LINES = 340  # the kernel's limit since 4.15
# The kernel takes a uid_map/gid_map in one write shorter than a page (EINVAL otherwise); a line is at most
# "4294967294 4294967294 4294967295\n", so up to this many lines always fit.
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_MAP_LINE_MAX = 33
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

_REFUSED_MASK = sum(_REFUSED_CLONEFLAGS)

# clone(2)'s EINVAL combinations that remain possible: (flags present, flags absent/present, rule).
INVALID_PAIRS = (
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
    return tuple(to_bytes(f"{field}[{i}]", v) for i, v in enumerate(check_list(field, values, "strings")))


def resolve_files(files: object) -> tuple[int, ...]:
    """ProcAttr.files as parent fd numbers, -1 for a closed slot."""
    out = []
    for i, f in enumerate(check_list("ProcAttr.files", files, "fds")):
        if type(f) is int and 0 <= f <= MAX_FD:  # the common case, as check_fileno would take it
            out.append(f)
        elif f is None or (type(f) is int and f == -1):
            out.append(-1)
        elif isinstance(f, int) and not isinstance(f, bool) and f < 0:
            fail(f"ProcAttr.files[{i}]", f"must be an fd (0 or more), or None or -1 for a closed slot, "
                 f"got {f}")
        else:
            out.append(check_fileno(f"ProcAttr.files[{i}]", f))
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


def check_cloneflags(sys_attr: SysProcAttr, has_dir: bool, has_chroot: bool) -> int:
    v = check_int("SysProcAttr.cloneflags", sys_attr.cloneflags, 0, 2**64 - 1)
    for flag, why in _REFUSED_CLONEFLAGS.items() if v & _REFUSED_MASK else ():
        if v & flag:
            fail("SysProcAttr.cloneflags", f"{_flags.CloneFlags.describe(flag)} is refused: {why}")
    if v & CSIGNAL & ~F.CLONE_NEWTIME:
        fail("SysProcAttr.cloneflags", "no exit signal byte: children exit with SIGCHLD")
    check_flags("SysProcAttr.cloneflags", v, KNOWN_FLAGS)
    for a, b, rule in INVALID_PAIRS:
        if v & a and v & b:
            fail("SysProcAttr.cloneflags", rule)
    if v & F.CLONE_FS and (has_dir or has_chroot):  # judged on the encoded paths the steps use
        fail("SysProcAttr.cloneflags", "CLONE_FS with ProcAttr.dir or chroot would move this process's "
             "working directory or root too")
    return v


def check_id_maps(field: str, maps: object) -> Sequence[SysProcIDMap]:
    """The maps, checked: ``maps`` itself when each value is a plain int of a SysProcIDMap in a list or
    tuple, else a tuple of plain SysProcIDMaps read once (what the steps then write)."""
    if isinstance(maps, (str, bytes)) or not isinstance(maps, Sequence):
        fail(field, f"must be a list of SysProcIDMap, not {type(maps).__name__}", TypeError)
    plain = type(maps) is list or type(maps) is tuple
    items = maps if plain else tuple(maps)  # read once: a Sequence of our caller's may answer anew
    if not items:
        fail(field, "an empty mapping list maps nothing: give at least one SysProcIDMap, or None")
    if len(items) > MAX_MAP_LINES:
        fail(field, f"at most {MAX_MAP_LINES} mappings, got {len(items)}")
    out = []
    for i, m in enumerate(items):
        if type(m) is SysProcIDMap:  # the common case, decided without building a field name
            c, h, n = m.container_id, m.host_id, m.size
            if type(c) is int and type(h) is int and type(n) is int and min(c, h, n - 1) >= 0 \
                    and max(c, h) + n <= MAX_ID + 1:
                out.append(m)
                continue
        elif not isinstance(m, SysProcIDMap):
            fail(f"{field}[{i}]", f"must be a SysProcIDMap, not {type(m).__name__}", TypeError)
        c = check_int(f"{field}[{i}].container_id", m.container_id, 0, MAX_ID)
        h = check_int(f"{field}[{i}].host_id", m.host_id, 0, MAX_ID)
        n = check_int(f"{field}[{i}].size", m.size, 1, MAX_ID + 1)
        for side, start in (("container_id", c), ("host_id", h)):
            if start + n > MAX_ID + 1:
                fail(f"{field}[{i}]", f"{side} + size must not exceed {MAX_ID + 1}")
        plain = False
        out.append(SysProcIDMap(c, h, n))
    if len(out) * _MAP_LINE_MAX >= PAGE_SIZE:
        size = sum(len(f"{m.container_id} {m.host_id} {m.size}\n") for m in out)
        if size >= PAGE_SIZE:
            fail(field, f"the {len(out)} mappings make {size} bytes of map lines, and the kernel takes a map "
                 f"only in one write shorter than a page ({PAGE_SIZE} bytes; EINVAL): give fewer mappings, "
                 "or merge adjacent ones")
    if len(out) > 1:
        for side in ("container_id", "host_id"):
            ranges = sorted((getattr(m, side), getattr(m, side) + m.size, i) for i, m in enumerate(out))
            for (_, end, i), (start, _, j) in zip(ranges, ranges[1:]):
                if start < end:
                    fail(field, f"mappings {min(i, j)} and {max(i, j)} overlap in {side}")
    return maps if plain else tuple(out)


def check_credential(cred: object) -> Credential:
    """The credential, checked: ``cred`` itself when its ids are plain ints in a list or tuple, else a
    Credential of plain values read once (what the steps then use)."""
    field = "SysProcAttr.credential"
    if not isinstance(cred, Credential):
        fail(field, f"must be a Credential, not {type(cred).__name__}", TypeError)
    uid = check_int(f"{field}.uid", cred.uid, 0, MAX_ID)
    gid = check_int(f"{field}.gid", cred.gid, 0, MAX_ID)
    items = check_list(f"{field}.groups", cred.groups, "group ids")  # (a caller's sequence: read once)
    plain = items is cred.groups
    if len(items) > NGROUPS_MAX:
        fail(f"{field}.groups", f"at most {NGROUPS_MAX} groups")
    groups = tuple(check_int(f"{field}.groups[{i}]", g, 0, MAX_ID) for i, g in enumerate(items))
    no_setgroups = check_bool(f"{field}.no_setgroups", cred.no_setgroups)
    if no_setgroups and groups:
        fail(f"{field}.groups", "would not be set: no_setgroups leaves the supplementary groups as they are "
             "(the caller's); leave one of them out")
    if type(cred) is Credential and plain and uid is cred.uid and gid is cred.gid \
            and all(a is b for a, b in zip(groups, items)):
        return cred
    return Credential(uid, gid, groups, no_setgroups)


def check_terminal(sys_attr: SysProcAttr, files: Sequence[int], cloneflags: int = 0) -> dict[str, int]:
    """ctty and pgid checked with their partner fields; returns those that were not plain ints."""
    nfiles = len(files)
    ctty = check_int("SysProcAttr.ctty", sys_attr.ctty, 0, MAX_FD)  # a child fd: its own number space
    pgid = check_int("SysProcAttr.pgid", sys_attr.pgid, 0, 2**31 - 1)
    # Go reads pgid only with setpgid or foreground, ctty only with setctty or foreground: a value the
    # spawn would ignore is a mistake to name, not to drop
    if pgid and not (sys_attr.setpgid or sys_attr.foreground):
        fail("SysProcAttr.pgid", "is used only with setpgid or foreground, and neither is set")
    if ctty and not (sys_attr.setctty or sys_attr.foreground):
        fail("SysProcAttr.ctty", "is used only with setctty or foreground, and neither is set")
    if sys_attr.setsid and sys_attr.setpgid:
        fail("SysProcAttr.setpgid", "setsid makes the child a session leader, whose process group cannot "
             "change (setpgid fails with EPERM); its new session's process group is its own already")
    if sys_attr.setctty and sys_attr.foreground:
        fail("SysProcAttr.setctty", "setctty and foreground cannot both be set (they read ctty differently)")
    if sys_attr.setctty and not sys_attr.setsid:
        fail("SysProcAttr.setctty", "needs setsid: only a session leader can acquire a controlling terminal")
    if sys_attr.setctty and not ctty < nfiles:
        fail("SysProcAttr.ctty", f"with setctty, ctty is a child fd and must be below len(files)={nfiles}")
    if sys_attr.setctty and files[ctty] < 0:
        fail("SysProcAttr.ctty", f"with setctty, ctty must name an open slot of ProcAttr.files, "
             f"files[{ctty}] is closed")
    if sys_attr.setsid and sys_attr.foreground:
        fail("SysProcAttr.foreground", "setsid makes the child a session leader, whose process group cannot "
             "change (foreground's setpgid fails with EPERM), and its new session has no terminal to take "
             "the foreground of")
    if sys_attr.setsid and sys_attr.noctty:
        fail("SysProcAttr.noctty", "setsid gives the child a new session, which has no controlling terminal "
             "to detach from (TIOCNOTTY fails with ENOTTY)")
    if sys_attr.noctty and (nfiles == 0 or files[0] < 0):
        fail("SysProcAttr.noctty", "detaches the terminal on the child's fd 0, which is closed "
             "(ProcAttr.files[0] is missing, None or -1): TIOCNOTTY would fail with EBADF")
    if pgid not in (0, 1) and (sys_attr.setpgid or sys_attr.foreground) \
            and cloneflags & F.CLONE_NEWPID:
        fail("SysProcAttr.pgid", f"names process group {pgid}, which the child, pid 1 of its new PID "
             "namespace (CLONE_NEWPID), cannot see from there (setpgid fails); use 0 (or 1): its own group")
    return {name: value for name, value in (("ctty", ctty), ("pgid", pgid))
            if value is not getattr(sys_attr, name)}


def check_setns(entries: object) -> Sequence[SetNS]:
    """The entries, checked: ``entries`` itself when each is a SetNS of plain values (a str or bytes
    path, or an int) in a list or tuple, else a tuple of SetNS of the values checked, read once."""
    items = check_list("SysProcAttr.setns", entries, "SetNS")  # (a caller's sequence: read once)
    plain = items is entries
    out = []
    for i, e in enumerate(items):
        field = f"SysProcAttr.setns[{i}]"
        if not isinstance(e, SetNS):
            fail(field, f"must be a SetNS, not {type(e).__name__}", TypeError)
        target = e.target
        if isinstance(target, bool):
            fail(f"{field}.target", "must be a path or an open fd, not bool", TypeError)
        if isinstance(target, int):
            target = check_int(f"{field}.target", target, 0, MAX_FD)
        elif type(target) is not str and type(target) is not bytes:
            target = to_bytes(f"{field}.target", target)  # a path of the caller's type: its bytes, once
        else:
            to_bytes(f"{field}.target", target)
        if not isinstance(target, int) and not target:
            fail(f"{field}.target", "is empty: give the namespace file's path (or an open fd)")
        nstype = check_int(f"{field}.nstype", e.nstype, 0, 2**31 - 1)
        if nstype & ~NAMESPACE_MASK:
            fail(f"{field}.nstype", "must be 0 or CLONE_NEW* namespace flags")
        inode = None if e.inode is None else check_int(f"{field}.inode", e.inode, 1, 2**64 - 1)
        for_children = check_bool(f"{field}.for_children", e.for_children)
        ns_id = None if e.ns_id is None else check_int(f"{field}.ns_id", e.ns_id, 1, 2**64 - 1)
        started = None if e.process_start is None else check_int(f"{field}.process_start", e.process_start,
                                                                 0, 2**64 - 1)
        if started is not None and not isinstance(target, int) and not _proc_path(target):
            fail(f"{field}.process_start", "pins a process: the target must be a /proc/PID/ path or a pidfd")
        if (type(e) is SetNS and target is e.target and nstype is e.nstype and inode is e.inode
                and for_children is e.for_children and ns_id is e.ns_id and started is e.process_start):
            out.append(e)
        else:
            plain = False
            out.append(SetNS(target, nstype, inode=inode, for_children=for_children, ns_id=ns_id,
                             process_start=started))
    return entries if plain else tuple(out)


def _proc_path(target: str | bytes) -> bool:
    """Whether ``target`` is a path through one process's /proc directory (what process_start pins)."""
    from .ns_pins import PROC_PATH  # (only for a pin by process: a launcher imports what it uses)

    return PROC_PATH.match(os.fsdecode(target)) is not None


# Go's bool fields (the extension ones are checked in extensions.py).
BOOL_FIELDS = ("ptrace", "setsid", "setpgid", "setctty", "noctty", "foreground",
               "gid_mappings_enable_setgroups", "use_cgroup_fd", "pidfd", "no_new_privs", "use_landlock")
_BOOL_LABELS = tuple((name, f"SysProcAttr.{name}") for name in BOOL_FIELDS)  # not one f-string per spawn


def validate(sys_attr: SysProcAttr, files: Sequence[int], directory: bytes,
             chroot: bytes) -> tuple[SysProcAttr, int, int, Optional[Sandbox]]:
    """Checks every field; returns (the SysProcAttr the steps read, cloneflags, unshareflags, the
    extensions or None if all default).

    The SysProcAttr returned is ``sys_attr`` itself when each field the steps read holds a plain value
    (the common case), else a copy holding the values checked, each read once: a subclass of int, a
    list or a path of the caller's is never asked again for what it holds (it could answer otherwise).
    ``files``, ``directory`` and ``chroot`` are check_spawn's, encoded (b"": none)."""
    if not isinstance(sys_attr, SysProcAttr):
        fail("ProcAttr.sys", f"must be a SysProcAttr, not {type(sys_attr).__name__}", TypeError)
    for name, label in _BOOL_LABELS:
        value = getattr(sys_attr, name)
        if type(value) is not bool:  # what check_bool refuses (bool has no subclasses)
            check_bool(label, value)
    checked: dict[str, object] = {}  # field -> the value checked, where the given one is not it
    if type(sys_attr.chroot) is not str and type(sys_attr.chroot) is not bytes:
        checked["chroot"] = chroot
    clone = check_cloneflags(sys_attr, bool(directory), bool(chroot))
    unshare = check_flags("SysProcAttr.unshareflags", sys_attr.unshareflags, UNSHAREABLE)
    for name, value in (("cloneflags", clone), ("unshareflags", unshare)):
        if value is not getattr(sys_attr, name):
            checked[name] = value
    for name in ("uid_mappings", "gid_mappings"):
        maps: Optional[Sequence[SysProcIDMap]] = getattr(sys_attr, name)
        if maps is None:
            continue
        plain_maps = check_id_maps(f"SysProcAttr.{name}", maps)
        if plain_maps is not maps:
            checked[name] = plain_maps
        if not (clone | unshare) & F.CLONE_NEWUSER:
            fail(f"SysProcAttr.{name}", "id mappings need CLONE_NEWUSER in cloneflags or unshareflags "
                 "(without it Go deadlocks waiting for maps that cannot be written)")
    if clone & unshare & F.CLONE_NEWUSER:
        fail("SysProcAttr.unshareflags", "CLONE_NEWUSER with CLONE_NEWUSER in cloneflags too: the child "
             "cannot unshare a user namespace from one whose own maps are never written (the maps go to "
             "the innermost; unshare fails with EPERM); keep CLONE_NEWUSER in one of them")
    if sys_attr.credential is not None:
        cred = check_credential(sys_attr.credential)
        if cred is not sys_attr.credential:
            checked["credential"] = cred
        if cred.groups and (clone | unshare) & F.CLONE_NEWUSER and sys_attr.gid_mappings is not None \
                and not sys_attr.gid_mappings_enable_setgroups:
            # (the child writes "deny" to its /proc/self/setgroups before its gid map, as Go does)
            fail("SysProcAttr.credential.groups", "cannot be set: the child's new user namespace denies "
                 "setgroups (gid_mappings without gid_mappings_enable_setgroups), where the kernel refuses "
                 "it (EPERM); set gid_mappings_enable_setgroups (which needs CAP_SETGID over the parent "
                 "namespace), or leave groups out")
    checked.update(check_terminal(sys_attr, files, clone))
    for name, lo, hi in _INT_FIELDS:
        value = getattr(sys_attr, name)
        if type(value) is not int or not lo <= value <= hi:
            checked[name] = check_int(f"SysProcAttr.{name}", value, lo, hi)
    last = cap_last_cap()
    ambient = check_list("SysProcAttr.ambient_caps", sys_attr.ambient_caps, "capability numbers")  # once
    caps = tuple(check_int(f"SysProcAttr.ambient_caps[{i}]", cap, 0, min(last, 63))
                 for i, cap in enumerate(ambient))
    if ambient is not sys_attr.ambient_caps or any(a is not b for a, b in zip(caps, ambient)):
        checked["ambient_caps"] = caps
    if checked.get("cgroup_fd", sys_attr.cgroup_fd) and not sys_attr.use_cgroup_fd:
        fail("SysProcAttr.cgroup_fd", "is used only with use_cgroup_fd, which is not set")
    if sys_attr.gid_mappings_enable_setgroups and sys_attr.gid_mappings is None:
        fail("SysProcAttr.gid_mappings_enable_setgroups", "is used only with gid_mappings, which are not "
             "given")
    checked.update(check_go_landlock(sys_attr))
    setns = check_setns(sys_attr.setns)
    if setns is not sys_attr.setns:
        checked["setns"] = setns
    sys_attr = copy_with(sys_attr, checked)  # (rare: a value of a type of the caller's) the steps read
    # the values checked
    sandbox = check_extensions(sys_attr, clone, unshare)
    if unshare & F.CLONE_NEWUSER:
        check_left_behind(sys_attr, clone, unshare,
                          "CLONE_NEWUSER in unshareflags moves the child to a new user namespace")
    check_ids(sys_attr, clone, unshare, sandbox)
    return sys_attr, clone, unshare, sandbox


def check_ids(sys_attr: SysProcAttr, clone: int, unshare: int, sandbox: Optional[Sandbox]) -> None:
    """The checks whose answer depends on this process's euid and egid besides the arguments: the maps
    a child may write itself, and the uid a program has in a new user namespace (check_mounts_hold).
    validate() makes them; a spawn checked earlier (a remembered one, prepare()) makes them again
    under other ids: a process may change its euid between spawns (seteuid)."""
    if unshare & F.CLONE_NEWUSER and not _may_join_user(sys_attr.setns):
        name = unwritable_map(sys_attr, os.geteuid(), os.getegid())
        if name is not None and (sys_attr.uid_mappings is not None or sys_attr.gid_mappings is not None):
            fail(f"SysProcAttr.{name}",
                 "with CLONE_NEWUSER in unshareflags the child writes its maps itself, from inside the new "
                 "namespace, where the kernel lets it map only its own euid/egid, one line of size 1 each, "
                 f"(here uid {os.geteuid()}, gid {os.getegid()}) with setgroups denied (EPERM even as "
                 "root); map more with CLONE_NEWUSER in cloneflags, where the parent writes the maps")
    if sandbox is not None and (sandbox.mounts or sandbox.readonly_root is not None):
        check_mounts_hold(sys_attr, clone, unshare, sandbox)
    if sandbox is not None and sandbox.set_id_filter is not None:
        check_no_file_caps(sys_attr, clone, unshare, sandbox)


CAP_SYS_ADMIN, CAP_SETFCAP = CAP_NUMBERS["CAP_SYS_ADMIN"], CAP_NUMBERS["CAP_SETFCAP"]


def _may_hold(cap: int, sys_attr: SysProcAttr, sandbox: Sandbox, uid: Optional[int]) -> bool:
    """Whether the program may hold ``cap`` in its user namespace: unless (a) ``capabilities`` leaves
    it out of the bounding set, or (b) it runs with a uid other than 0 there under no_new_privs and
    without ``cap`` ambient (without no_new_privs a set-user-ID program owned by the namespace's root
    gives it back)."""
    caps = sandbox.caps
    if caps is not None and not caps.keep >> cap & 1:
        return False  # (a): not in the bounding set (nor, so, ambient)
    ambient = caps.ambient if caps is not None else tuple(sys_attr.ambient_caps)
    # (the child sets no_new_privs for SysProcAttr.landlock too, enforced or not: plan.py)
    nnp = sys_attr.no_new_privs or sys_attr.landlock is not None
    return not (uid != 0 and nnp and cap not in ambient)  # (b)


def check_no_file_caps(sys_attr: SysProcAttr, clone: int, unshare: int, sandbox: Sandbox) -> None:
    """Refuses an idmapped mount under restrict_suid_sgid to a program that may hold CAP_SETFCAP in a
    user namespace of its own (new or joined): it could write a file capability there (a
    security.capability xattr, which no seccomp filter can tell from another xattr), stored with the
    root id of its namespace as the idmap maps it back to the disk: host root's with the role's maps,
    capabilities that a host user executing the file gets. In the caller's own user namespace its
    CAP_SETFCAP is the caller's, which the idmap gives nothing more."""
    idmapped = next((m for m in sandbox.mounts if m.idmap is not None), None)
    if idmapped is None:
        return
    joined = not clone & F.CLONE_NEWUSER and _joins(sys_attr, F.CLONE_NEWUSER)
    namespaces = clone | unshare
    if not (namespaces & F.CLONE_NEWUSER or joined):
        return
    if not _may_hold(CAP_SETFCAP, sys_attr, sandbox, _uid_in_new_userns(sys_attr, namespaces, joined)):
        return
    fail(f"SysProcAttr.mounts[{idmapped.index}].idmap", "with capabilities keeping CAP_SETFCAP "
         "(or none given, the program root in its user namespace) the program could write a file "
         "capability on the idmapped mount that is stored as the host's root's (the set-id "
         "restriction, restrict_suid_sgid, cannot filter it): drop CAP_SETFCAP (capabilities, keeping "
         "what it needs but CAP_SETFCAP), or run the program with a credential uid other than 0 there "
         "and no_new_privs, or set restrict_suid_sgid False to allow both")


def _joins(sys_attr: SysProcAttr, kind: int) -> bool:
    from . import nsinfo  # (nsinfo loads the child, whose plan imports this module)

    return nsinfo.may_join(sys_attr.setns, kind)


def check_mounts_hold(sys_attr: SysProcAttr, clone: int, unshare: int, sandbox: Sandbox,
                      join_kinds: Optional[Sequence[int]] = None) -> None:
    """Refuses mounts the program could undo: those the child makes in a mount namespace that a user
    namespace other than the caller's owns (CLONE_NEWUSER, or a joined one), where the program could
    hold CAP_SYS_ADMIN. The kernel locks (MNT_LOCK_*) only the mounts copied into a mount namespace
    of a less privileged user namespace, never those made there: root of that user namespace may
    remount a read-only bind read-write, unmount a tmpfs that hides a path, or the read-only
    root. Every mount of the list counts (a bind, read-only or not, hides its target; a tmpfs or
    sysfs hides what was there; nosuid/nodev/noexec and idmaps are restrictions too), except a
    change of propagation alone (a mount namespace of one's own never becomes a peer of the
    caller's again) and a new proc mounted read-write: the view of a new PID namespace (util-linux's
    --mount-proc, which runs such a program too), not a restriction, whose unmount shows the proc
    that was there (a read-only proc still counts). The program cannot hold CAP_SYS_ADMIN there
    when CAP_SYS_ADMIN is not in the bounding set the spawn leaves (capabilities), or when it runs
    with a uid other than 0 in that namespace under no_new_privs and without CAP_SYS_ADMIN ambient
    (without no_new_privs a set-user-id program owned by the namespace's root gives it back), or when
    a Landlock ruleset of the spawn handles file access (Landlock denies mount, umount, remount,
    move_mount and pivot_root to such a process). A caller's own user namespace (root with
    CLONE_NEWNS only) is not refused: a program keeping CAP_SYS_ADMIN can undo those mounts too, as it
    could on the host (README).

    ``join_kinds``: the types of the joins as read from the fds the child joins (joins.open_joins),
    checked again at the spawn: a path looked at here may name another namespace by then (a symlink
    or a bind mount swapped: a net namespace here, a user namespace at the join)."""
    namespaces = clone | unshare

    def joins(kind: int) -> bool:
        if join_kinds is None:
            return _joins(sys_attr, kind)
        return any(k & kind for k in join_kinds)

    joined = not clone & F.CLONE_NEWUSER and joins(F.CLONE_NEWUSER)
    if not clone & F.CLONE_NEWUSER and not (
            (unshare & F.CLONE_NEWUSER or joined)
            and (unshare & F.CLONE_NEWNS or joins(F.CLONE_NEWNS))):
        return  # the mount namespace is the caller's user namespace's (or check_left_behind refuses)
    made = [m for m in sandbox.mounts
            if not is_propagation_change(m.flags, m.fstype) and not _is_proc_view(m.fstype, m.flags)]
    if not made and sandbox.readonly_root is None:
        return
    if not _may_hold(CAP_SYS_ADMIN, sys_attr, sandbox, _uid_in_new_userns(sys_attr, namespaces, joined)):
        return  # (a), (b)
    if sandbox.landlock is not None and sandbox.landlock.fs:
        return  # (c)
    field = f"SysProcAttr.mounts[{made[0].index}]" if made else "SysProcAttr.readonly_root"
    where = ("a user namespace it joins (setns)" if joined and not namespaces & F.CLONE_NEWUSER else
             "its new user namespace (CLONE_NEWUSER)")
    fail(field, f"would not hold: the child makes it in a mount namespace owned by {where}, where the "
         "kernel does not lock the mounts made there, and the program, which may hold CAP_SYS_ADMIN in "
         "that user namespace, could remount or unmount it; drop CAP_SYS_ADMIN (capabilities, "
         "keeping nothing or what it needs but CAP_SYS_ADMIN), or run the program with a credential uid "
         "other than 0 there and no_new_privs (no CAP_SYS_ADMIN ambient), or restrict it with a Landlock "
         "policy with path rules (Landlock denies mount and umount)")


def _is_proc_view(fstype: object, flags: int) -> bool:
    """A new proc mounted read-write (see check_mounts_hold); the sandbox's fstype is bytes."""
    return fstype == b"proc" and not flags & (MS_RDONLY | MS_BIND | MS_REMOUNT)


def _uid_in_new_userns(sys_attr: SysProcAttr, namespaces: int, joined: bool) -> Optional[int]:
    """The program's uid in the user namespace the child enters: the credential's, else this process's
    euid as uid_mappings maps it in a new one (65534, non-zero, when unmapped: the kernel's overflow
    uid); None (unknown) in a joined one without a credential."""
    if sys_attr.credential is not None:
        return sys_attr.credential.uid
    if not namespaces & F.CLONE_NEWUSER:
        return None
    euid = os.geteuid()
    for m in sys_attr.uid_mappings or ():
        if m.host_id <= euid < m.host_id + m.size:
            return m.container_id + euid - m.host_id
    return 65534


def copy_with(sys_attr: SysProcAttr, checked: dict[str, object]) -> SysProcAttr:
    """``sys_attr``, or a copy with the values ``checked`` in place of the given ones."""
    if not checked:
        return sys_attr
    import copy

    sys_attr = copy.copy(sys_attr)
    for name, value in checked.items():
        setattr(sys_attr, name, value)
    return sys_attr


def _may_join_user(entries: object) -> bool:
    """Whether a setns entry may join a user namespace (its nstype says so, or is 0: read from the file)."""
    if not isinstance(entries, (list, tuple)):
        return True
    return any(not isinstance(e, SetNS) or type(e.nstype) is not int or not e.nstype
               or e.nstype & F.CLONE_NEWUSER for e in entries)


def check_left_behind(sys_attr: SysProcAttr, clone: int, unshare: int, how: str) -> None:
    """Refuses a step that acts on a namespace cloneflags made when the child leaves, before that step,
    the user namespace owning it (the caller's): it holds no capability there any more (EPERM).
    mount_propagation is no such step: the child makes / private before it leaves (plan.py)."""
    if clone & F.CLONE_NEWUSER:
        return  # the namespaces are its own user namespace's; leaving it is refused on its own
    steps = []
    if clone & F.CLONE_NEWUTS and not unshare & F.CLONE_NEWUTS:
        steps += [name for name in ("hostname", "domainname") if getattr(sys_attr, name) is not None]
    if clone & F.CLONE_NEWNS and not unshare & F.CLONE_NEWNS:
        steps += [name for name, used in (("mounts", sys_attr.mounts != ()),
                                          ("pivot_root", sys_attr.pivot_root is not None),
                                          ("readonly_root", sys_attr.readonly_root is True)) if used]
    if steps:
        kind = "CLONE_NEWUTS" if steps[0] in ("hostname", "domainname") else "CLONE_NEWNS"
        fail(f"SysProcAttr.{steps[0]}", f"acts on the namespace {kind} in cloneflags makes, which the "
             f"caller's user namespace owns, but {how} before this step, where it has no privilege over "
             f"that namespace (EPERM); put {kind} in unshareflags instead (unshare runs after the user "
             "namespace is entered)")


# Go's int fields read by the steps as they are, and their ranges (ctty and pgid: check_terminal;
# cgroup_fd, landlock_*: with their partner fields).
_INT_FIELDS = (("pdeathsig", 0, 64), ("cgroup_fd", 0, MAX_FD))


def check_go_landlock(sys_attr: SysProcAttr) -> dict[str, int]:
    """Go 1.28's fields. Go passes them to landlock_restrict_self as they are; an fd that is not a
    ruleset would fail there (EBADF, or EBADFD) after the clone, so it is refused here instead.
    Returns those that were not plain ints."""
    fd = check_int("SysProcAttr.landlock_fd", sys_attr.landlock_fd, -1, MAX_FD)
    flags = check_int("SysProcAttr.landlock_flags", sys_attr.landlock_flags, 0, 2**32 - 1)
    if not sys_attr.use_landlock and (fd > 0 or flags):  # a ruleset given but never applied
        name = "landlock_fd" if fd > 0 else "landlock_flags"
        fail(f"SysProcAttr.{name}", "is used only with use_landlock, which is not set: the child would "
             "run without the ruleset")
    unknown = flags & ~restrict_self_flags() if sys_attr.use_landlock and flags else 0
    if unknown:
        fail("SysProcAttr.landlock_flags", f"bits {unknown:#x} are no landlock_restrict_self flag this "
             "kernel defines (EINVAL)")
    if sys_attr.use_landlock and fd == -1 and flags != LOG_SUBDOMAINS_OFF:
        fail("SysProcAttr.landlock_fd", f"-1 (no ruleset) goes only with landlock_flags exactly "
             f"LANDLOCK_RESTRICT_SELF_LOG_SUBDOMAINS_OFF ({LOG_SUBDOMAINS_OFF:#x}), got {flags:#x} (EBADF)")
    if sys_attr.use_landlock and fd >= 0 and not is_ruleset_fd(fd):
        fail("SysProcAttr.landlock_fd", f"fd {fd} is not an open Landlock ruleset in this process "
             "(use_landlock restricts the child to it)")
    return {name: value for name, value in (("landlock_fd", fd), ("landlock_flags", flags))
            if value is not getattr(sys_attr, name)}


# landlock_restrict_self's flags (linux/landlock.h) and the ABI version that brought each: LOG_SAME_EXEC_OFF,
# LOG_NEW_EXEC_ON and LOG_SUBDOMAINS_OFF (7), TSYNC (8).
RESTRICT_SELF_FLAGS = {1 << 0: 7, 1 << 1: 7, 1 << 2: 7, 1 << 3: 8}
LOG_SUBDOMAINS_OFF = 1 << 2  # the one flag a ruleset fd of -1 may go with


def restrict_self_flags() -> int:
    """The landlock_restrict_self flags the running kernel defines (by its Landlock ABI version)."""
    from .sandbox import kernel_fds

    abi = kernel_fds.landlock_abi_version()
    return sum(bit for bit, since in RESTRICT_SELF_FLAGS.items() if abi >= since)


_EMPTY_SYS = SysProcAttr()


def check_attr(attr: object) -> ProcAttr:
    """fork_exec's ``attr``: None (the defaults) or a ProcAttr."""
    if attr is None:
        return ProcAttr()
    if not isinstance(attr, ProcAttr):
        hint = ": wrap it as ProcAttr(sys_attr=...)" if isinstance(attr, SysProcAttr) else ""
        fail("attr", f"must be a ProcAttr or None, not {type(attr).__name__}{hint}", TypeError)
    return attr


class SpawnArgs(Value):
    """The arguments of fork_exec/start_process, checked and encoded (check_spawn)."""

    __slots__ = ("argv", "chroot", "cloneflags", "dir", "env", "files", "path", "sandbox", "sys",
                 "unshareflags")

    def __init__(self, path: bytes, argv: tuple[bytes, ...], env: Optional[tuple[bytes, ...]],
                 files: tuple[int, ...], dir: bytes, chroot: bytes, sys: SysProcAttr, cloneflags: int,
                 unshareflags: int, sandbox: Optional[Sandbox]):
        self.path = path
        self.argv = argv
        self.env = env  # None: ProcAttr.env was None (fork_exec: empty; start_process: inherit)
        self.files = files
        self.dir = dir  # b"": no chdir
        self.chroot = chroot
        self.sys = sys
        self.cloneflags = cloneflags
        self.unshareflags = unshareflags
        self.sandbox = sandbox


def check_spawn(argv0: object, argv: object, attr: object, is_plain: bool = False) -> SpawnArgs:
    """Every argument of fork_exec/start_process, for type and range, before any fd or process.

    Each failure is a ValueError/TypeError whose message starts with the argument or field. The
    checks and the steps read the arguments made plain (plain.py), each value read once; ``is_plain``
    says they are already (checked.snapshot took them: builtin types and records only)."""
    proc = check_attr(attr)
    if not is_plain:
        proc, argv0, argv = plain(proc), plain(argv0, "argv0"), plain(argv, "argv")
    sys_attr = proc.sys if proc.sys is not None else _EMPTY_SYS
    path = to_bytes("argv0", argv0)
    args = to_bytes_list("argv", argv)
    env = None if proc.env is None else to_bytes_list("ProcAttr.env", proc.env)
    directory = b"" if proc.dir is None else to_bytes("ProcAttr.dir", proc.dir)
    files = resolve_files(proc.files)
    if not isinstance(sys_attr, SysProcAttr):
        fail("ProcAttr.sys", f"must be a SysProcAttr, not {type(sys_attr).__name__}", TypeError)
    chroot = to_bytes("SysProcAttr.chroot", sys_attr.chroot)  # "" is no chroot, as in Go
    sys_attr, cloneflags, unshareflags, sandbox = validate(sys_attr, files, directory, chroot)
    return SpawnArgs(path, args, env, files, directory, chroot, sys_attr, cloneflags, unshareflags, sandbox)


def unwritable_map(attr: SysProcAttr, euid: int, egid: int) -> Optional[str]:
    """The field whose maps the process inside a new user namespace may not write itself, with no help
    of a process outside it (None: it may): each map one line of one id, its own euid and egid, with
    setgroups denied."""
    uid, gid = attr.uid_mappings, attr.gid_mappings
    if uid is not None and not (len(uid) == 1 and uid[0].size == 1 and uid[0].host_id == euid):
        return "uid_mappings"
    if gid is not None and not (len(gid) == 1 and gid[0].size == 1 and gid[0].host_id == egid):
        return "gid_mappings"
    if gid is not None and attr.gid_mappings_enable_setgroups:
        return "gid_mappings_enable_setgroups"
    return None


def maps_writable_by_self(attr: SysProcAttr, euid: int, egid: int) -> bool:
    """Whether maps are given and the process inside the new user namespace may write them itself."""
    return (attr.uid_mappings is not None or attr.gid_mappings is not None) \
        and unwritable_map(attr, euid, egid) is None


def check_join_kind(field: str, entry: SetNS, kind: int, cloneflags: int, unshareflags: int = 0,
                    sys_attr: Optional[SysProcAttr] = None) -> None:
    """What a join of a namespace of ``kind`` may not be, whatever it is: one of a type cloneflags
    creates too, a time namespace, a mount or user namespace with CLONE_FS, or one joined for the
    children only that is no PID namespace (the kernel's refusals, told before any process exists)."""
    replaced = kind & cloneflags & NAMESPACE_MASK
    if replaced:
        names = _flags.CloneFlags.describe(replaced)
        fail(field, f"joins a namespace of a type cloneflags creates ({names}): the child would leave the "
             "new namespace for the joined one, and what relies on it (hostname, mounts, ...) would act on "
             "the joined one; drop the flag to join, or put it in unshareflags (unshare runs after the "
             "joins) to get a new one inside the joined one")
    if kind & (F.CLONE_NEWNS | F.CLONE_NEWUSER) and cloneflags & F.CLONE_FS:
        fail(field, f"joins a {'mount' if kind & F.CLONE_NEWNS else 'user'} namespace, which the kernel "
             "refuses to a process sharing its root and working directory with another (EINVAL), as "
             "CLONE_FS in cloneflags makes the child do with the caller: drop CLONE_FS")
    if kind & F.CLONE_NEWTIME:
        fail(field, "joins a time namespace, which the kernel lets only a process that shares its memory "
             "with no other join (EUSERS): the child shares the caller's until execve, so the join could "
             "never succeed; start the program from a process already in it (as `pyforkexec nsenter "
             "--time` does), or give it a new one with CLONE_NEWTIME")
    if entry.for_children and not kind & F.CLONE_NEWPID:
        fail(f"{field}.for_children", "only a PID namespace can be joined for the children only")
    if entry.for_children and unshareflags & F.CLONE_NEWPID:
        fail(f"{field}.for_children", "joins a PID namespace for the children, and CLONE_NEWPID in "
             "unshareflags asks for a new one for them too: the kernel refuses the unshare (EINVAL); "
             "keep one of them")
    # With CLONE_NEWUSER the parent joins net, uts, ipc and a PID namespace (not for the children) around
    # clone (joins.py); every other join is the child's, from its new user namespace, which holds no
    # privilege over a namespace that exists already (EPERM).
    by_child = kind if entry.for_children else kind & ~F.CLONE_NEWPID
    if cloneflags & F.CLONE_NEWUSER and by_child and by_child not in _JOINED_BY_PARENT:
        fail(field, f"joins a namespace ({_flags.CloneFlags.describe(by_child)}) the child must join itself, "
             "which from the new user namespace CLONE_NEWUSER in cloneflags makes it cannot (setns fails "
             "with EPERM: it has no privilege over the namespace's owner); only net, uts, ipc and a PID "
             "namespace (not for_children), which the caller joins around clone, go with CLONE_NEWUSER; "
             "join the user namespace as well instead of CLONE_NEWUSER, or start from inside")
    if kind & F.CLONE_NEWUSER and sys_attr is not None:
        check_left_behind(sys_attr, cloneflags, unshareflags, f"{field}, a join of a user namespace, "
                          "moves the child to it")


_JOINED_BY_PARENT = (F.CLONE_NEWNET, F.CLONE_NEWUTS, F.CLONE_NEWIPC)
