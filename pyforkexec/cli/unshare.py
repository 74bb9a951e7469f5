"""``pyforkexec unshare``: util-linux unshare(1)'s options, spellings and exit statuses, on SysProcAttr.

util-linux unshares its own process and then execs (or, with --fork, forks and waits). Here the
launcher always stays the parent of one child that pyforkexec starts, so the launcher can forward
signals and report the child's end; the placement of the flags gives util-linux's results:

- CLONE_NEWUSER is a clone flag, so the launcher (still in the caller's user namespace, with the
  caller's privileges) writes the id maps; every other namespace is created inside it, as
  util-linux's single unshare() does.
- Without --fork, --pid and --time are unshared in the child before exec: the command stays in the
  caller's pid namespace and its first child is pid 1 there, as with util-linux. With --fork they
  are clone flags: the command is pid 1.
- --mount is unshared in the child, and ``mount_propagation`` sets the propagation of its mounts
  (util-linux's --propagation, private by default).
- --mount-proc is a proc ``Mount`` (after chroot: util-linux mounts it after chroot and chdir);
  with a propagation other than private and no --root, the existing mount at its target is made
  private first, as util-linux does, so that the new proc does not propagate to the caller's.
- --monotonic/--boottime and --TYPE=FILE are done by the launcher in ``SysProcAttr.sync``, while the
  child waits before execve, having unshared its namespaces: it writes /proc/PID/timens_offsets
  (the new time namespace has no process until the execve moves the child into it) and binds
  /proc/PID/ns/TYPE onto each FILE, as util-linux's bind_ns_files does.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from typing import Callable, NoReturn, Optional

from .. import flags as F
from ..attrs import Credential, ProcAttr, SysProcAttr, SysProcIDMap
from ..proc_pid import proc_pid
from ..sandbox.mounts import MS_BIND, Mount
from ..service.supervise import defer_ending
from .blame import Rule, blamer, spelling
from .failure import SetupError, os_error_message
from .idmaps import (
    NO_ID,
    Range,
    add_single,
    overlap,
    parse_range,
    range_problem,
    read_kernel_map,
    read_subid_range,
)
from .launch import environ_list, inherited_files, kept_caps, resolve_program, spawn_and_wait
from .options import (
    ANSWERS,
    HELP,
    NONE,
    OPTIONAL,
    REQUIRED,
    VERSION,
    Command,
    Opt,
    Parsed,
    answer,
    parse_or_fail,
)
from .values import nonempty, parse_id, parse_int, parse_signal, parse_uint, shown

# (long, short, flag) of the namespace options, in util-linux's order.
NAMESPACES = (
    ("mount", "m", F.CLONE_NEWNS), ("uts", "u", F.CLONE_NEWUTS), ("ipc", "i", F.CLONE_NEWIPC),
    ("net", "n", F.CLONE_NEWNET), ("pid", "p", F.CLONE_NEWPID), ("user", "U", F.CLONE_NEWUSER),
    ("cgroup", "C", F.CLONE_NEWCGROUP), ("time", "T", F.CLONE_NEWTIME),
)
# The /proc/PID/ns file util-linux binds for --TYPE=FILE (the *_for_children ones for pid and time).
PERSIST_FILES = {F.CLONE_NEWNS: "mnt", F.CLONE_NEWUTS: "uts", F.CLONE_NEWIPC: "ipc", F.CLONE_NEWNET: "net",
                 F.CLONE_NEWPID: "pid_for_children", F.CLONE_NEWUSER: "user", F.CLONE_NEWCGROUP: "cgroup",
                 F.CLONE_NEWTIME: "time_for_children"}
MAP_OPTIONS = ("map-user", "map-group", "map-root-user", "map-current-user", "map-auto", "map-subids",
               "map-users", "map-groups")

OPTIONS = (
    # util-linux's short forms take no file ("-rmpf" bundles four options): --TYPE=FILE only
    *(Opt(long, short, OPTIONAL, "file", f"unshare {long} namespace", short_arg=NONE)
      for long, short, _ in NAMESPACES),
    Opt("mount-proc", "", OPTIONAL, "dir", "mount proc filesystem first (implies --mount)"),
    Opt("propagation", "", REQUIRED, "slave|shared|private|unchanged",
        "modify mount propagation in mount namespace"),
    Opt("root", "R", REQUIRED, "dir", "run the command with root directory set to <dir>"),
    Opt("wd", "w", REQUIRED, "dir", "change working directory to <dir>"),
    Opt("setuid", "S", REQUIRED, "uid", "set uid in entered namespace"),
    Opt("setgid", "G", REQUIRED, "gid", "set gid in entered namespace"),
    Opt("map-user", "", REQUIRED, "uid>|<name", "map current user to uid (implies --user)"),
    Opt("map-group", "", REQUIRED, "gid>|<name", "map current group to gid (implies --user)"),
    Opt("map-root-user", "r", NONE, "", "map current user to root (implies --user)"),
    Opt("map-current-user", "c", NONE, "", "map current user to itself (implies --user)"),
    Opt("map-auto", "", NONE, "", "map users and groups automatically (implies --user)"),
    Opt("map-subids", "", NONE, "", "map the first block of user IDs owned by euid (implies --user)"),
    Opt("map-users", "", REQUIRED, "inneruid>:<outeruid>:<count",
        "map count users from outeruid to inneruid"
        " (implies --user)"),
    Opt("map-groups", "", REQUIRED, "innergid>:<outergid>:<count",
        "map count groups from outergid to innergid"
        " (implies --user)"),
    Opt("fork", "f", NONE, "", "fork before launching <program>"),
    Opt("kill-child", "", OPTIONAL, "signame", "when dying, kill the forked child (implies --fork)"),
    Opt("forward-signals", "", NONE, "", "forward signals to the child (always done; implies --fork)"),
    Opt("setgroups", "", REQUIRED, "allow|deny", "control the setgroups syscall in user namespaces"),
    Opt("keep-caps", "", NONE, "", "retain capabilities granted in user namespaces"),
    Opt("monotonic", "", REQUIRED, "offset", "set clock monotonic offset (seconds) in time namespaces"),
    Opt("boottime", "", REQUIRED, "offset", "set clock boottime offset (seconds) in time namespaces"),
    Opt("clear-env", "", NONE, "", "do not inherit environment variables from the calling process"),
    Opt("whitelist-env", "", REQUIRED, "list", "clear environment except for specified variables"),
    HELP,
    VERSION,
)

CMD = Command(
    prog="pyforkexec unshare",
    usage="[options] [<program> [<argument>...]]",
    summary="Run a program with some namespaces unshared from the parent.",
    options=OPTIONS,
    sections=(
        ("Options", tuple(long for long, _, _ in NAMESPACES)),
        ("Mounts and directories", ("mount-proc", "propagation", "root", "wd")),
        ("Users", ("setuid", "setgid", *MAP_OPTIONS, "setgroups", "keep-caps")),
        ("Processes", ("fork", "kill-child", "forward-signals")),
        ("Time and environment", ("monotonic", "boottime", "clear-env", "whitelist-env")),
        ("", ("help", "version")),
    ),
)


class Request:
    """What the options ask for, before it is turned into a SysProcAttr (``request`` fills it in).
    A plain class, not a dataclass: the command's start-up compiles nothing (issue 15)."""

    __slots__ = ("bound", "env", "flags", "fork", "gid", "group_ranges", "keep_caps", "kill_signal",
                 "map_group", "map_user", "offsets", "offsets_given", "origin", "persist", "persist_given",
                 "proc", "propagation", "root", "setgroups", "uid", "user_ranges", "wd")

    def __init__(self) -> None:
        self.flags = 0
        self.persist: dict[int, str] = {}
        self.persist_given: dict[int, str] = {}  # each --TYPE=FILE as given, which its failure names
        self.bound: list[str] = []  # the --TYPE=FILE files bound so far
        self.fork = False
        self.kill_signal = 0
        self.proc: Optional[str] = None
        self.propagation = "private"
        self.root = ""
        self.wd: Optional[str] = None
        self.uid: Optional[int] = None
        self.gid: Optional[int] = None
        self.map_user: Optional[int] = None
        self.map_group: Optional[int] = None
        self.user_ranges: list[Range] = []
        self.group_ranges: list[Range] = []
        self.setgroups: Optional[str] = None
        self.keep_caps = False
        self.offsets: dict[str, int] = {}
        self.offsets_given: list[str] = []  # as written, for a refusal of the kernel
        self.env: Optional[list[bytes]] = None
        self.origin: dict[Range, str] = {}  # each range: the option that gave it


# The kernel's bound on a time namespace offset (KTIME_SEC_MAX); util-linux reads an int64.
KTIME_SEC_MAX = (2**63 - 1) // 10**9


def _ranges(r: Request, option: str, value: str, kind: str, euid: int) -> list[Range]:
    """The ranges of one --map-users/--map-groups/--map-auto/--map-subids, each checked alone and
    against those given before it (a map whose lines overlap is refused by the kernel)."""
    subid = f"/etc/sub{kind}id"
    given = f"--{option}" + (f"={value}" if option in ("map-users", "map-groups") else "")
    try:
        if value in ("auto", "subids"):
            found = read_subid_range(subid, euid, identity=value == "subids")
            ranges, chosen = [found], value == "subids"
            what = f"the range '{found.outer}:{found.count}' of {subid}"
        elif value == "all":
            ranges, chosen, what = read_kernel_map(f"/proc/self/{kind}id_map"), True, "a line of the map"
        else:
            parsed = parse_range(value)
            if parsed is None:
                CMD.fail(f"--{option}: invalid mapping {shown(value)}")
            ranges, chosen, what = [parsed], True, f"mapping {shown(value)}"
    except OSError as e:
        CMD.fail(f"--{option}: {os_error_message(e)}")
    except ValueError as e:  # no range of ours in the file, or a line that is no range
        CMD.fail(f"--{option}: {e}")
    taken = r.user_ranges if kind == "u" else r.group_ranges
    for new in ranges:
        problem = range_problem(new, inner_chosen=chosen)
        if problem is not None:
            CMD.fail(f"--{option}: {what}: {problem}")
        for old in taken:
            side = overlap(new, old)
            if side is not None:
                CMD.fail(f"{given}: its {side} ids overlap those of {r.origin[old]}")
        r.origin[new] = given
    return ranges


def _env(p: Parsed) -> Optional[list[bytes]]:
    if p.has("whitelist-env"):
        keep = {n for v in p.values("whitelist-env") for n in (v or "").split(",") if n}
        return [k + b"=" + v for k, v in os.environb.items() if os.fsdecode(k) in keep]
    return [] if p.has("clear-env") else None


def request(p: Parsed) -> Request:
    """The options, applied in order as util-linux's getopt loop applies them."""
    r = Request()
    euid, egid = os.geteuid(), os.getegid()
    by_long = {long: flag for long, _, flag in NAMESPACES}
    for opt, value in p.given:
        name = opt.long
        if name in ANSWERS:
            answer(CMD, opt)
        if name in by_long:
            r.flags |= by_long[name]
            if nonempty(CMD, f"--{name}", value, "file name") is not None:  # the last FILE of a type counts
                r.persist[int(by_long[name])] = value
                r.persist_given[int(by_long[name])] = spelling(opt, value)
        elif name in ("fork", "forward-signals"):
            r.fork = True
        elif name == "kill-child":
            r.fork = True
            r.kill_signal = parse_signal(CMD, "--kill-child", value) if value is not None else 9
        elif name == "mount-proc":
            r.flags |= F.CLONE_NEWNS
            r.proc = nonempty(CMD, "--mount-proc", value, "directory") or "/proc"
        elif name == "propagation":
            if value not in ("slave", "shared", "private", "unchanged"):
                CMD.fail(f"--propagation: unsupported propagation mode: {value}")
            r.propagation = value
        elif name == "setgroups":
            if value not in ("allow", "deny"):
                CMD.fail(f"--setgroups: unsupported --setgroups argument '{value}'")
            r.setgroups = value
        elif name in ("root", "wd"):  # "" would be no chroot (chdir) at all: util-linux fails on it too
            setattr(r, name, nonempty(CMD, f"--{name}", value, "directory"))
        elif name == "setuid":
            r.uid = parse_uint(CMD, "--setuid", value, "uid")
        elif name == "setgid":
            r.gid = parse_uint(CMD, "--setgid", value, "gid")
        elif name in ("monotonic", "boottime"):
            r.offsets[name] = parse_int(CMD, f"--{name}", value, f"{name} offset", -KTIME_SEC_MAX,
                                        KTIME_SEC_MAX)
            r.offsets_given.append(spelling(opt, value))
        elif name == "keep-caps":
            r.keep_caps = True
        elif name in MAP_OPTIONS:
            r.flags |= F.CLONE_NEWUSER
            if name == "map-user":
                r.map_user = parse_id(CMD, "--map-user", value, "uid")
            elif name == "map-group":
                r.map_group = parse_id(CMD, "--map-group", value, "gid")
            elif name == "map-root-user":
                r.map_user = r.map_group = 0
            elif name == "map-current-user":
                r.map_user, r.map_group = euid, egid
            elif name == "map-users":
                r.user_ranges = _ranges(r, name, value or "", "u", euid) + r.user_ranges
            elif name == "map-groups":
                r.group_ranges = _ranges(r, name, value or "", "g", euid) + r.group_ranges
            else:  # map-auto, map-subids
                which = "subids" if name == "map-subids" else "auto"
                r.user_ranges = _ranges(r, name, which, "u", euid) + r.user_ranges
                r.group_ranges = _ranges(r, name, which, "g", euid) + r.group_ranges
    for flag, target in r.persist.items():  # once all are read: util-linux finds out only at the bind
        _check_bind_target(r.persist_given[flag], target)
    if r.offsets and not r.flags & F.CLONE_NEWTIME:
        CMD.fail("options --monotonic and --boottime require unsharing of a time namespace (-T)")
    if r.map_group is not None and not r.group_ranges and r.setgroups == "allow":
        CMD.fail("options --setgroups=allow and --map-group are mutually exclusive")
    if r.setgroups == "deny" and not r.flags & F.CLONE_NEWUSER:  # util-linux fails writing it
        CMD.fail("--setgroups: needs a new user namespace (--user, or a map option)")
    r.env = _env(p)
    return r


def id_maps(r: Request) -> tuple[Optional[list[SysProcIDMap]], Optional[list[SysProcIDMap]]]:
    """(uid_mappings, gid_mappings) as util-linux writes them."""
    out = []
    for ranges, single, own in ((r.user_ranges, r.map_user, os.geteuid()), (r.group_ranges, r.map_group,
                                                                           os.getegid())):
        if ranges:
            ranges = add_single(ranges, own, NO_ID if single is None else single)
            out.append([x.as_map() for x in ranges])
        elif single is not None:
            out.append([SysProcIDMap(container_id=single, host_id=own, size=1)])
        else:
            out.append(None)
    return out[0], out[1]


def inner_id(maps: Optional[Sequence[SysProcIDMap]], outer: int, userns: bool) -> Optional[int]:
    """The id ``outer`` has inside the new user namespace (None: unmapped)."""
    if not userns:
        return outer
    for m in maps or ():
        if m.host_id <= outer < m.host_id + m.size:
            return m.container_id + outer - m.host_id
    return None


def credential(r: Request, uids: Optional[list[SysProcIDMap]],
               gids: Optional[list[SysProcIDMap]]) -> Optional[Credential]:
    """--setuid/--setgid; the id not given keeps its value inside (util-linux changes only what is given)."""
    if r.uid is None and r.gid is None:
        return None
    userns = bool(r.flags & F.CLONE_NEWUSER)
    uid = r.uid if r.uid is not None else inner_id(uids, os.geteuid(), userns)
    gid = r.gid if r.gid is not None else inner_id(gids, os.getegid(), userns)
    if uid is None or gid is None:  # (the one given is not: both unmapped would need neither given)
        given, missing, kind = ("--setgid", "--setuid", "uid") if uid is None else \
            ("--setuid", "--setgid", "gid")
        CMD.fail(f"{given}: needs {missing} as well: the current {kind} has no mapping in the new user "
                 f"namespace, where {given} keeps it (util-linux runs with the overflow id)")
    # util-linux drops the supplementary groups only with --setgid; the core skips setgroups where
    # the namespace denies it (util-linux fails there).
    return Credential(uid=uid, gid=gid, groups=(), no_setgroups=r.gid is None)


def place_flags(r: Request) -> tuple[int, int]:
    """(cloneflags, unshareflags), as the module docstring explains."""
    clone = unshare = 0
    for flag in F.CloneFlags.split(r.flags):
        f = int(flag)
        if f == F.CLONE_NEWUSER:
            clone |= f
        elif f in (F.CLONE_NEWPID, F.CLONE_NEWTIME):
            clone, unshare = (clone | f, unshare) if r.fork else (clone, unshare | f)
        else:
            unshare |= f
    return clone, unshare


def proc_mounts(r: Request, wd: Optional[str]) -> list[Mount]:
    """--mount-proc[=DIR]: util-linux mounts proc after chroot and chdir (a relative DIR is taken
    from there); when it leaves / private it first makes an existing mount at DIR private, and
    ignores EINVAL (no mount there), which here is a look at DIR before the spawn."""
    if r.proc is None:
        return []
    target = r.proc
    if not os.path.isabs(target):  # only then is where we are read: it may be gone (a removed directory)
        here = wd or _cwd_for(r.proc)
        if not os.path.isabs(here):  # a relative --wd: from the new root's /, else from where we are
            here = os.path.join("/" if r.root else _cwd_for(r.proc), here)
        target = os.path.join(here, target)
    target = os.path.normpath(target)
    mounts = []
    if not r.root and r.propagation != "private" and os.path.ismount(target):
        mounts.append(Mount(None, target, None, "rprivate"))
    return [*mounts, Mount.proc(target, mkdir=False)]


def _cwd_for(proc: str) -> str:
    """The current directory, which a relative --mount-proc DIR is taken from; a SetupError naming the
    option when there is none (removed: util-linux's mount of DIR fails then too)."""
    try:
        return os.getcwd()
    except OSError as e:
        raise SetupError(f"--mount-proc={proc}: the current directory, which it is relative to, is "
                         f"unreachable: {e.strerror}") from None


def write_time_offsets(pid: int, offsets: dict[str, int], given: Sequence[str] = ()) -> None:
    """util-linux's --monotonic/--boottime: the child has unshared the time namespace, which stays
    empty (its offsets writable) until the child's execve enters it. The kernel refuses an offset
    that would put the clock before 0: the message names the options as given."""
    path = f"/proc/{pid}/timens_offsets"
    try:
        with open(path, "w") as f:
            f.write("".join(f"{clock} {secs} 0\n" for clock, secs in offsets.items()))
    except OSError as e:
        options = f"{' '.join(given)}: " if given else ""
        why = f": {ENTERED_AT_CLONE}" if e.errno == errno.EACCES and entered_time_namespace(pid) else ""
        raise SetupError(f"{options}failed to write {path}: {e.strerror}{why}") from None


# Why the offsets of a --fork child's time namespace are fixed already on Linux before 6.2.
ENTERED_AT_CLONE = ("the child entered its new time namespace at clone, which fixes the offsets "
                    "(Linux before 6.2 moves a child sharing the launcher's memory there at clone, "
                    "later ones at execve): give them without --fork on this kernel")


def entered_time_namespace(pid: int) -> bool:
    """Whether process PID is in the time namespace it made for its children: once a process is in a
    time namespace, the kernel refuses to change its offsets (EACCES)."""
    try:
        return os.readlink(f"/proc/{pid}/ns/time") == os.readlink(f"/proc/{pid}/ns/time_for_children")
    except OSError:
        return False


def _check_bind_target(given: str, target: str) -> None:
    """--TYPE=FILE: a namespace is bound on a file that exists (util-linux finds out at the mount, once
    the child exists; this, before any process does)."""
    import stat

    try:
        mode = os.stat(target).st_mode
    except OSError as e:
        CMD.fail(f"{given}: cannot bind the namespace on {target}: {e.strerror}")
    if stat.S_ISDIR(mode):
        CMD.fail(f"{given}: cannot bind the namespace on {target}: it is a directory (a namespace is bound "
                 "on a file)")


def bind_mount(source: str, target: str) -> None:
    """mount(source, target, NULL, MS_BIND, NULL) in the launcher's own mount namespace.

    No SysProcAttr field can do this (every mount there is the child's), and the standard library
    has no mount(2): this one needs ctypes, imported only for --TYPE=FILE."""
    try:
        import ctypes
    except ImportError as e:
        raise SetupError(f"persisting a namespace to {target} needs ctypes: {e}") from None
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(os.fsencode(source), os.fsencode(target), None, ctypes.c_ulong(MS_BIND), None) < 0:
        code = ctypes.get_errno()
        raise SetupError(f"mount {source} on {target} failed: {os.strerror(code)}")


def bind_namespace_files(pid: int, persist: dict[int, str], bound: list[str], given: dict[int, str]) -> None:
    """util-linux's bind_ns_files: bind /proc/PID/ns/X onto each --TYPE=FILE (each one done is added
    to ``bound``, for unbind_namespace_files). A failure names the option (``given``: as the user
    gave it), then util-linux's message."""
    for flag, target in persist.items():
        try:
            bind_mount(f"/proc/{pid}/ns/{PERSIST_FILES[flag]}", target)
        except SetupError as e:
            raise SetupError(f"{given[flag]}: {e}") from None
        bound.append(target)


MNT_DETACH = 2


def unbind_namespace_files(bound: list[str]) -> None:
    """Undo the binds of a program that never ran (its execve failed, or a later bind did): a file
    left bound would hold a namespace no program used (util-linux leaves it)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    while bound:
        libc.umount2(os.fsencode(bound.pop()), MNT_DETACH)


def deny_setgroups(pid: int) -> None:
    """--setgroups deny without a gid map, which the core writes ``setgroups`` with: written here, as
    util-linux writes it, so that the program cannot setgroups(2) in its user namespace."""
    path = f"/proc/{pid}/setgroups"
    try:
        with open(path, "w") as f:
            f.write("deny")
    except OSError as e:
        raise SetupError(f"--setgroups: failed to write {path}: {e.strerror}") from None


def launcher_sync(r: Request, gids: Optional[list[SysProcIDMap]] = None) -> Optional[Callable[[int], None]]:
    """What the launcher does while the child waits before execve (SysProcAttr.sync); the files it
    binds are in ``r.bound``."""
    deny = r.setgroups == "deny" and gids is None
    if not r.offsets and not r.persist and not deny:
        return None

    def sync(pid: int) -> None:
        try:  # the child's files as /proc numbers it: /proc may be another PID namespace's
            pid = proc_pid(pid)
        except OSError as e:
            raise SetupError(f"cannot find the command's process in /proc: {e.strerror}") from None
        if deny:
            deny_setgroups(pid)
        if r.offsets:
            write_time_offsets(pid, r.offsets, r.offsets_given)
        if r.persist:  # a signal that would end the launcher waits until the binds are undone, or kept
            defer_ending()
        bind_namespace_files(pid, r.persist, r.bound, r.persist_given)

    return sync


def build(r: Request, rest: Sequence[str]) -> tuple[str, list[str], ProcAttr]:
    """(argv0, argv, attr) of the command."""
    uids, gids = id_maps(r)
    clone, unshare = place_flags(r)
    argv0, argv = resolve_program(rest, r.root)
    wd = r.wd or ("/" if r.root else None)
    enable_setgroups = gids is not None and (r.setgroups == "allow" or (bool(r.group_ranges)
                                                                        and r.setgroups != "deny"))
    sys_attr = SysProcAttr(
        cloneflags=clone, unshareflags=unshare, uid_mappings=uids, gid_mappings=gids,
        gid_mappings_enable_setgroups=enable_setgroups,
        pdeathsig=r.kill_signal, ambient_caps=kept_caps(r.keep_caps, bool(r.flags & F.CLONE_NEWUSER), r.uid),
        chroot=r.root,
        credential=credential(r, uids, gids),
        # util-linux applies --propagation only with --mount
        mount_propagation=r.propagation if r.flags & F.CLONE_NEWNS else "private",
        mounts=proc_mounts(r, wd), sync=launcher_sync(r, gids))
    env = r.env if r.env is not None else environ_list()
    return argv0, argv, ProcAttr(dir=wd, env=env, files=inherited_files(), sys=sys_attr)


# The options behind each field and child step, named when the library refuses the field (a mix
# only the whole can refuse; each value is checked when it is parsed) or the child fails at the step.
_NS = tuple(long for long, _, _ in NAMESPACES)
_USER_MAPS = ("map-root-user", "map-current-user", "map-auto", "map-subids")
_UID_MAPS = ("map-user", *_USER_MAPS, "map-users")
_GID_MAPS = ("map-group", *_USER_MAPS, "map-groups")
BLAME = {
    # The child could not drop the supplementary groups it would keep (forkexec.refuse_kept_groups).
    "SysProcAttr.credential.groups": Rule(
        ("setgid", "setgroups", "map-group", "map-root-user"),
        "refused: setgroups is denied in the new user namespace, so the command would keep this "
        "process's supplementary groups, which still grant their access on this host: drop them first "
        "(setpriv --clear-groups), allow setgroups there (--map-groups with --setgroups=allow), or leave "
        "out --setgid to keep them"),
    "SysProcAttr.uid_mappings": _UID_MAPS,
    "SysProcAttr.gid_mappings": _GID_MAPS,
    "SysProcAttr.gid_mappings_enable_setgroups": ("setgroups",),
    "SysProcAttr.credential": ("setuid", "setgid"),
    "SysProcAttr.chroot": ("root",),
    "SysProcAttr.mounts": ("mount-proc",),
    "SysProcAttr.mount_propagation": ("propagation",),
    "SysProcAttr.pdeathsig": ("kill-child",),
    "SysProcAttr.ambient_caps": ("keep-caps",),
    "SysProcAttr.cloneflags": (*_NS, *MAP_OPTIONS, "fork", "mount-proc"),
    "SysProcAttr.unshareflags": (*_NS, "mount-proc"),
    "ProcAttr.dir": ("wd", "root"),
    "ProcAttr.env": ("clear-env", "whitelist-env"),
    "at clone": (*_NS, *MAP_OPTIONS),
    "at unshare": (*_NS, "mount-proc"),
    "at unshare_user_read[0]": _UID_MAPS,
    "at unshare_user_read[1]": (*_GID_MAPS, "setgroups"),
    "at unshare_user_read[2]": _GID_MAPS,
    "at mount_root": ("propagation",),
    "at mkdir": ("mount-proc",),
    "at mount": ("mount-proc",),
    "at chroot": ("root",),
    "at chdir": ("wd", "root"),
    "at setgroups": ("setgid",),
    "at setgid": ("setgid", "setuid"),
    "at setuid": ("setuid",),
    "at cap_ambient": ("keep-caps",),
    "at pdeathsig": ("kill-child",),
}


def main(argv: Sequence[str]) -> NoReturn:
    parsed = parse_or_fail(CMD, argv, in_order=True)
    r = request(parsed)
    restate = blamer(CMD, parsed, BLAME)

    def blame(e: BaseException) -> Optional[BaseException]:  # the program never ran
        unbind_namespace_files(r.bound)
        return restate(e)

    spawn_and_wait(*build(r, parsed.rest), blame=blame)
