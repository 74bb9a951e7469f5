"""``pyforkexec nsenter``: util-linux nsenter(1)'s options on SysProcAttr.setns.

The child joins the namespaces before any other step (``SysProcAttr.setns``, user namespace first):
through one pidfd of the target and a namespace mask when the kernel offers it (5.8+; the joins are
then atomic and immune to pid reuse), else through /proc/PID/ns/* files opened before the target's
last check, and through the files given as ``--net=/run/netns/NAME``, open since their option was read
(as nsenter holds them), never opened again by name at the start.

Two namespaces cannot be joined by the child: setns(CLONE_NEWPID) only moves the caller's future
children, and setns(CLONE_NEWTIME) refuses a process that shares its memory (the core's child runs
on the parent's memory until execve). As nsenter joins everything and then forks, the launcher joins
the pid and time namespaces itself (with the user namespace before them when it is asked for, for
the privileges it gives), so the command it starts is inside them. ``--no-fork`` leaves the pid
namespace to the child: the command stays outside and its children are inside, as with util-linux.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import signal
from collections.abc import Sequence
from typing import NoReturn, Optional, Union

from .. import flags as F
from ..attrs import Credential, ProcAttr, SetNS, SysProcAttr
from ..checks import NS_OPEN
from ..child import _child
from ..proc_pid import proc_pid
from ..sandbox.cgroup import find_cgroup2
from .blame import blamer
from .failure import SetupError, die
from .launch import (
    environ_list,
    inherited_files,
    kept_caps,
    resolve_program,
    setgroups_denied,
    spawn_and_wait,
)
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
from .values import MAX_PID, nonempty, parse_uint

# (long, short, flag, /proc/PID/ns name) in nsenter's order (user first).
NAMESPACES = (
    ("user", "U", F.CLONE_NEWUSER, "user"), ("cgroup", "C", F.CLONE_NEWCGROUP, "cgroup"),
    ("ipc", "i", F.CLONE_NEWIPC, "ipc"), ("uts", "u", F.CLONE_NEWUTS, "uts"),
    ("net", "n", F.CLONE_NEWNET, "net"), ("pid", "p", F.CLONE_NEWPID, "pid"),
    ("mount", "m", F.CLONE_NEWNS, "mnt"), ("time", "T", F.CLONE_NEWTIME, "time"),
)
NS_FILE = {int(flag): name for _, _, flag, name in NAMESPACES}
USER, PID, TIME, MNT = int(F.CLONE_NEWUSER), int(F.CLONE_NEWPID), int(F.CLONE_NEWTIME), int(F.CLONE_NEWNS)

OPTIONS = (
    Opt("all", "a", NONE, "", "enter all namespaces"),
    Opt("target", "t", REQUIRED, "pid", "target process to get namespaces from"),
    *(Opt(long, short, OPTIONAL, "file", f"enter {long} namespace") for long, short, _, _ in NAMESPACES),
    Opt("setuid", "S", REQUIRED, "uid", "set uid in entered namespace ('follow': the target's)"),
    Opt("setgid", "G", REQUIRED, "gid", "set gid in entered namespace ('follow': the target's)"),
    Opt("preserve-credentials", "", NONE, "", "do not touch uids or gids"),
    Opt("keep-caps", "", NONE, "", "retain capabilities granted in user namespaces"),
    Opt("root", "r", OPTIONAL, "dir", "set the root directory (default: the target's)"),
    Opt("wd", "w", OPTIONAL, "dir", "set the working directory (default: the target's)"),
    Opt("wdns", "W", REQUIRED, "dir", "set the working directory in namespace"),
    Opt("env", "e", NONE, "", "inherit environment variables from target process"),
    Opt("no-fork", "F", NONE, "", "do not fork before exec'ing <program>"),
    Opt("join-cgroup", "c", NONE, "", "join the cgroup of the target process"),
    HELP,
    VERSION,
)

CMD = Command(
    prog="pyforkexec nsenter",
    usage="[options] [<program> [<argument>...]]",
    summary="Run a program with namespaces of other processes.",
    options=OPTIONS,
)


class Request:
    """What the options ask for (``request`` fills it in). A plain class, not a dataclass: the
    command's start-up compiles nothing (issue 15)."""

    __slots__ = ("env", "files", "fork", "gid", "held", "join_cgroup", "keep_caps", "namespaces", "pidfd",
                 "preserve", "proc", "root", "started", "target", "target_given", "uid", "wd", "wdns")

    def __init__(self) -> None:
        self.target = 0
        self.target_given = ""  # --target=PID, which a failure about the target names
        # The target's number in /proc (_check_target): PID is a pid of this PID namespace, as the pidfd
        # joined takes it, which /proc may number otherwise (one of an ancestor namespace: proc_pid).
        self.proc = 0
        # The target pinned once it is checked (_check_target): its pidfd (-1 without one: Linux < 5.3,
        # or a thread's id, which the join refuses), and its start time (/proc/PID/stat field 22). What
        # is read of it by number later counts only while it has not ended (still_target): else its
        # number may be another process's, whose environment, cgroup or ids were read.
        self.pidfd = -1
        self.started: Optional[bytes] = None
        self.held: list[int] = []  # its root and cwd open (target_dir), for as long as the launcher runs
        self.namespaces: dict[int, Optional[str]] = {}  # flag -> file, None: the target's
        # flag -> the FILE of its option, open since the option was read (as nsenter holds it): the
        # namespace joined is the one the file named then. Opened again at the start, a /run/netns
        # name made again or a /proc/PID/ns file whose PID went to another process was joined instead.
        self.files: dict[int, int] = {}
        self.uid: Union[int, str, None] = None  # a number or "follow"
        self.gid: Union[int, str, None] = None
        self.preserve = False
        self.keep_caps = False
        self.root: Optional[str] = None  # "" means the target's
        self.wd: Optional[str] = None  # "" means the target's
        self.wdns: Optional[str] = None
        self.env = False
        self.fork = True
        self.join_cgroup = False


def request(p: Parsed) -> Request:
    """The options, applied in order as nsenter's getopt loop applies them: a value is read, a FILE
    opened, as its option comes (and fails there, before a later --version answers); what needs them
    all (the target's checks, a missing namespace) once they are read."""
    r = Request()
    by_long = {long: int(flag) for long, _, flag, _ in NAMESPACES}
    do_all = False
    for opt, value in p.given:
        name = opt.long
        if name in ANSWERS:
            answer(CMD, opt)
        if name == "target":  # given again, the last one counts (util-linux's getopt loop)
            r.target = parse_uint(CMD, "--target", value, "pid", hi=MAX_PID)
            r.target_given = f"--target={r.target}"
        elif name in by_long:
            file = nonempty(CMD, f"--{name}", value, "file name")
            if file is not None:  # opened now, as nsenter does, though a later option may replace it
                opened = _opened(f"--{name}={file}", file)
                if r.namespaces.get(by_long[name], "") is not None:
                    old = r.files.pop(by_long[name], None)
                    if old is not None:
                        os.close(old)
                    r.files[by_long[name]] = opened
                else:
                    os.close(opened)  # (the target's wins: see below)
            # nsenter opens the target's for every type given bare, after all the options: the
            # target's wins over a FILE of the same type, whatever their order
            if r.namespaces.get(by_long[name], "") is not None:
                r.namespaces[by_long[name]] = file
        elif name == "all":
            do_all = True
        elif name in ("setuid", "setgid"):
            kind = name[3:]
            setattr(r, kind, "follow" if value == "follow" else parse_uint(CMD, f"--{name}", value, kind))
        elif name == "preserve-credentials":
            r.preserve = True
        elif name == "keep-caps":
            r.keep_caps = True
        elif name in ("root", "wd"):  # no value: the target's; an empty one is refused, as nsenter does
            setattr(r, name, "" if value is None else nonempty(CMD, f"--{name}", value, "directory"))
        elif name == "wdns":
            r.wdns = nonempty(CMD, "--wdns", value, "directory")
        elif name == "env":
            r.env = True
        elif name == "no-fork":
            r.fork = False
        elif name == "join-cgroup":
            r.join_cgroup = True
    if r.target_given and r.target == 0:  # (only the last --target counts)
        CMD.fail("--target: invalid pid '0'")
    if r.wd is not None and r.wdns is not None:
        CMD.fail("--wd and --wdns are mutually exclusive")
    if do_all:
        if not r.target:
            CMD.fail("no target PID specified for --all")
        _check_target(r)
        for _, _, flag, name in NAMESPACES:
            if int(flag) not in r.namespaces and _usable(r, int(flag), name):
                r.namespaces[int(flag)] = None
    needs_target = (None in r.namespaces.values() or r.root == "" or r.wd == "" or r.env or r.join_cgroup
                    or "follow" in (r.uid, r.gid))
    if needs_target and not r.target:
        CMD.fail("no target PID specified")
    if not r.namespaces:
        CMD.fail("no namespace specified")
    if needs_target:
        _check_target(r)
    return r


def _opened(given: str, file: str) -> int:
    """nsenter opens each FILE as it reads its option, and joins that open file: one that cannot be
    opened fails the command (set-up, 125, as the join of it would) even where a later option of its
    type replaces it."""
    try:
        return _open(file)
    except SetupError as e:
        die(f"{given}: {e}")


def about_target(r: Request, message: str) -> str:
    """A failure about the target process names the option that gave it."""
    return f"{r.target_given}: {message}"


def _check_target(r: Request) -> None:
    """The target process exists, before anything is opened or started (a zombie's namespaces are gone:
    the step that needs them tells, naming --target too). It is pinned from here on (Request.pidfd,
    Request.started)."""
    try:
        r.pidfd = os.pidfd_open(r.target)
    except OSError:
        r.pidfd = -1  # (no pidfds, or a thread's id: the join that needs one says so; none: just below)
    try:
        r.proc = proc_pid(r.target)
        r.started = _start_time(r.proc)
    except OSError as e:
        why = os.strerror(errno.ESRCH) if e.errno == errno.ENOENT else e.strerror
        die(about_target(r, f"no process {r.target}: {why}"))
    still_target(r)  # (the number read by was the pidfd's)


def _start_time(where: int) -> bytes:
    """Field 22 of /proc/WHERE/stat (counted after the command's name, which may hold spaces)."""
    with open(f"/proc/{where}/stat", "rb") as f:
        return f.read().rsplit(b")", 1)[1].split()[19]


def still_target(r: Request) -> None:
    """Exit (a set-up failure naming --target) unless the target pinned by _check_target still holds its
    number (running, or a zombie not yet reaped): a process reaped leaves its number to any other, and
    what was read by that number since (its environment, cgroup, ids, root) may be the other's. Asked
    after every read, just before the spawn."""
    if r.pidfd >= 0:
        try:  # (a zombie holds its number until it is reaped: what was read was still its own)
            signal.pidfd_send_signal(r.pidfd, 0)
            ended = False
        except ProcessLookupError:
            ended = True
        except PermissionError:  # another user's: there all the same
            ended = False
    else:
        try:
            ended = _start_time(r.proc) != r.started
        except OSError:
            ended = True
    if ended:
        die(about_target(r, f"process {r.target} has ended (its number may be another process's by now): "
                            "nothing runs in its place"))


def _usable(r: Request, flag: int, name: str) -> bool:
    """nsenter --all: a namespace type this kernel has, and not our own user namespace (setns refuses it)."""
    try:
        mine = os.stat(f"/proc/self/ns/{name}").st_ino
    except FileNotFoundError:
        return False
    if flag != USER:
        return True
    try:
        return os.stat(f"/proc/{r.proc}/ns/{name}").st_ino != mine
    except OSError as e:
        die(about_target(r, f"stat of /proc/{r.proc}/ns/{name} failed: {e.strerror}"))


def _same_as_ours(file: str, flag: int) -> bool:
    """Whether ``file`` is our own namespace of this type: joining it would change nothing but for the
    mount namespace (nsenter(1) lets such a join through; pyforkexec refuses a join of the caller's
    own, so it is left out of SysProcAttr.setns), and after joining the target's user namespace first
    (as SysProcAttr.setns does) a namespace of ours could no longer be joined. Our own user namespace
    is kept: setns refuses it, as nsenter reports."""
    own = f"/proc/self/ns/{'pid_for_children' if flag == PID else NS_FILE[flag]}"
    try:
        return flag != USER and _identity(file) == _identity(own)
    except OSError:
        return False  # the join reports it


def _identity(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _pidfd_setns_supported() -> bool:
    m = re.match(r"([0-9]+)\.([0-9]+)", os.uname().release)
    return m is not None and (int(m[1]), int(m[2])) >= (5, 8) and hasattr(os, "pidfd_open")


class Joins:
    """The namespaces to join, split between the launcher and the child, as (fd, nstype): each one
    open before the target's last check (still_target, just before the spawn) or since its FILE option
    was read. Joined by path later, a file whose PID went to another process meanwhile, or a name made
    again, was joined instead of the namespace meant (the target's own mount namespace, which the
    launcher joins, or every namespace of the target on a kernel without pidfd joins)."""

    def __init__(self, r: Request):
        self.launcher: list[tuple[int, int]] = []
        self.child: list[tuple[int, int]] = []
        self.named: dict[int, str] = {}  # fd -> what a failure to join it names
        paths = {f: f"/proc/self/fd/{r.files[f]}" if file is not None else f"/proc/{r.proc}/ns/{NS_FILE[f]}"
                 for f, file in r.namespaces.items()}
        self.named.update({r.files[f]: file for f, file in r.namespaces.items() if file is not None})
        ours = {f for f, path in paths.items() if _same_as_ours(path, f)}
        wanted = {f: file for f, file in r.namespaces.items() if f not in ours}
        in_launcher = {f for f in wanted if f == TIME or (f == PID and r.fork)}
        if in_launcher and USER in wanted:
            in_launcher.add(USER)  # its capabilities are what allow joining the others
        pidfd = -1
        if None in wanted.values() and _pidfd_setns_supported():
            pidfd = r.pidfd  # the target pinned by its check: the process whose files were read
            if pidfd < 0:
                try:
                    os.close(os.pidfd_open(r.target))
                except OSError as e:
                    why = f"failed to open a pidfd for process {r.target}: {e.strerror}"
                    raise SetupError(about_target(r, why)) from None
                raise SetupError(about_target(r, f"process {r.target} has ended"))
        for joins, group in ((self.launcher, in_launcher), (self.child, set(wanted) - in_launcher)):
            mask = 0
            for flag in sorted(group, key=lambda f: (f != USER, f)):  # user namespace first
                file = wanted[flag]
                if file is None and pidfd >= 0:
                    mask |= flag
                else:
                    joins.append((self._open_now(r, flag, paths[flag]), flag))
            if mask:  # one atomic setns for everything the target gives, user namespace included
                joins.insert(0 if mask & USER else len(joins), (pidfd, mask))
        if MNT in ours:
            # Joining our own mount namespace still moves root and working directory to its root, as
            # nsenter's setns does (a chroot left, ``pwd`` is /): the launcher joins it, first, while
            # it has the privileges it has over its own namespace.
            self.launcher.insert(0, (self._open_now(r, MNT, paths[MNT]), MNT))

    def _open_now(self, r: Request, flag: int, path: str) -> int:
        """The namespace of ``flag`` to join, open: a FILE's since its option was read; the target's
        opened now, which still_target then confirms was the target's (it had not ended)."""
        if r.namespaces[flag] is not None:
            return r.files[flag]
        fd = _open(path)
        self.named[fd] = path
        return fd

    def join_in_launcher(self) -> None:
        """The launcher's joins; a failure is the child's step ``setns`` (its blamer names the options)."""
        for fd, nstype in self.launcher:
            try:
                _child.setns(fd, nstype)
            except OSError as e:
                what = self.named.get(fd) or f"the target's {F.CloneFlags.describe(nstype)}"
                raise SetupError(f"setns {what}: {e.strerror}", "setns") from None

    def child_setns(self) -> list[SetNS]:
        # --no-fork: the pid namespace is the child's own setns, for what the command starts (util-linux)
        return [SetNS(target=t, nstype=n, for_children=bool(n & PID))  # type: ignore[arg-type]
                for t, n in self.child]


def _open(path: str) -> int:
    try:
        return os.open(path, NS_OPEN)
    except OSError as e:
        raise SetupError(f"cannot open {path}: {e.strerror}") from None


def _target_ids(r: Request) -> tuple[int, int]:
    """The target's uid and gid (--setuid/--setgid follow) as the user namespace the command is put in
    sees them: the stat of /proc/PID gives them as ours sees them, which is the host's view, not the
    target's, once its user namespace is joined (uid 0 in a container is 1000 here)."""
    try:
        st = os.stat(f"/proc/{r.proc}")
    except OSError as e:
        raise SetupError(about_target(r, f"stat of /proc/{r.proc} failed: {e.strerror}")) from None
    if USER not in r.namespaces:
        return st.st_uid, st.st_gid
    theirs = f"/proc/{r.proc}/ns/user"
    joined = r.namespaces[USER] or theirs
    held = f"/proc/self/fd/{r.files[USER]}" if r.namespaces[USER] else theirs  # (the FILE open: joined)
    try:
        if _identity(held) == _identity("/proc/self/ns/user"):
            return st.st_uid, st.st_gid  # our own: its setns fails, as nsenter's, and tells
        same = _identity(held) == _identity(theirs)
    except OSError as e:
        raise SetupError(about_target(r, f"stat of {e.filename} failed: {e.strerror}")) from None
    follows = [o for o, kind in (("--setuid=follow", r.uid), ("--setgid=follow", r.gid)) if kind == "follow"]
    if not same:
        CMD.fail(f"{' '.join(follows)}: the user namespace joined (--user={joined}) is not the target's: "
                 "its ids there are unknown")
    return (_inside(r, "uid", st.st_uid, r.uid == "follow"), _inside(r, "gid", st.st_gid, r.gid == "follow"))


def _inside(r: Request, kind: str, outside: int, needed: bool) -> int:
    """``outside`` (an id as our user namespace sees it) as the target's user namespace sees it, from
    /proc/PID/{uid,gid}_map: each line "inside outside count", outside as seen from the reader (relative
    to our namespace, for a target nested deeper too)."""
    if not needed:
        return outside
    path = f"/proc/{r.proc}/{kind}_map"
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise SetupError(about_target(r, f"cannot read {path}: {e.strerror}")) from None
    for line in lines:
        inside, start, count = (int(w) for w in line.split())
        if start <= outside < start + count:
            return inside + outside - start
    CMD.fail(f"--set{kind}=follow: the target's {kind} ({outside} here) has no mapping in its user namespace")


def credential(r: Request) -> Optional[Credential]:
    """nsenter's rule: entering a user namespace sets uid and gid (0 unless given) and drops the
    supplementary groups, unless --preserve-credentials; otherwise only what is given changes."""
    userns = USER in r.namespaces and not r.preserve
    if not userns and r.uid is None and r.gid is None:
        return None
    follow = _target_ids(r) if "follow" in (r.uid, r.gid) else (0, 0)

    def pick(given: Union[int, str, None], followed: int, current: int) -> int:
        if given is None:
            return 0 if userns else current
        return followed if given == "follow" else int(given)

    uid = pick(r.uid, follow[0], os.getuid())
    gid = pick(r.gid, follow[1], os.getgid())
    drop_groups = userns or r.gid is not None
    if drop_groups and userns and _drop_own_groups():
        drop_groups = False  # none left to drop: the command inherits the launcher's empty list
    elif drop_groups and r.namespaces.get(USER, "") is None and setgroups_denied(r.proc):
        kept = os.getgroups()
        if kept:  # they would still grant their access on this host: nsenter fails too
            CMD.fail("setgroups failed: the target's user namespace denies setgroups, and this process "
                     f"(not root) cannot drop its supplementary groups ({', '.join(map(str, kept))}) "
                     "first: use --preserve-credentials to keep them")
        drop_groups = False  # none to drop; setgroups(2) is refused there
    return Credential(uid=uid, gid=gid, groups=(), no_setgroups=not drop_groups)


def _drop_own_groups() -> bool:
    """nsenter's setgroups(0, NULL) before it enters the user namespace: where the caller may (root),
    the launcher drops its own supplementary groups, which the command inherits, so that a user
    namespace that denies setgroups (given by file as well as by --target) leaves it none either."""
    try:
        os.setgroups([])
    except OSError:
        return False
    return True


def directories(r: Request) -> tuple[str, Optional[str]]:
    """(chroot, dir). The target's root or cwd: opened here through /proc/PID/ when its mount namespace
    is not joined, and given as a file open in the launcher, which the child inherits, by its own
    /proc/self/fd/N (its /proc/LAUNCHER/fd/N it may not read once in the target's user namespace): a
    path /proc/PID/root, which the child resolved at its chroot, led to whatever process had the number
    by then (the target may have ended). Else as the path the target sees (the child resolves it after
    joining the mount namespace, which it joins through the target's pidfd)."""
    joined_mnt = MNT in r.namespaces

    def target_dir(kind: str) -> str:
        link = f"/proc/{r.proc}/{kind}"
        if not joined_mnt:
            try:
                r.held.append(os.open(link, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
                return f"/proc/self/fd/{r.held[-1]}"
            except OSError as e:
                raise SetupError(about_target(r, f"cannot open {link}: {e.strerror}")) from None
        try:
            return os.readlink(link)
        except OSError as e:
            raise SetupError(about_target(r, f"cannot read {link}: {e.strerror}")) from None

    root = "" if r.root is None else (r.root or target_dir("root"))
    if r.wdns is not None:
        wd: Optional[str] = r.wdns
    elif r.wd is not None:
        wd = r.wd or target_dir("cwd")
    else:
        wd = "/" if root else None
    return root, wd


def wd_before_root(r: Request, root: str, wd: Optional[str]) -> bool:
    """Whether --wd is where the program starts as found before the chroot: nsenter opens --wd where it
    is called and fchdir()s to it after the chroot, which is where the path leads after it only when
    the mount namespace is entered (its paths are inside it, see docs/cli.md), else the directory may
    even lie outside the new root. The launcher then moves there itself, just before the spawn, and the
    child, whose chroot keeps the working directory it inherited (as Go's), does not chdir again."""
    return bool(root) and wd is not None and r.wdns is None and MNT not in r.namespaces


def _from_here(path: object) -> object:
    """A relative path as found from the launcher's working directory now, before it moves (--wd)."""
    return os.path.abspath(path) if isinstance(path, (str, bytes)) else path


def move_to(wd: str) -> None:
    try:
        os.chdir(wd)
    except OSError as e:
        raise SetupError(f"--wd={wd}: cannot change directory: {e.strerror}") from None


def target_env(r: Request) -> list[bytes]:
    pid = r.proc
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return [e for e in f.read().split(b"\0") if e]
    except OSError as e:
        raise SetupError(about_target(r, f"failed to get environment variables of {r.target}: {e.strerror}")
                         ) from None


def target_cgroup_fd(r: Request) -> int:
    """An fd of the target's cgroup v2 directory, for clone3(CLONE_INTO_CGROUP)."""
    pid = r.proc
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            path = next((line[3:].strip() for line in f if line.startswith("0::")), None)
    except OSError as e:
        raise SetupError(about_target(r, f"failed to get cgroup path of {r.target}: {e.strerror}")) from None
    if path is None:
        raise SetupError("--join-cgroup is only supported in cgroup v2")
    try:
        mount = find_cgroup2()
    except OSError as e:
        raise SetupError(f"--join-cgroup: {e}") from None
    return _open(os.path.join(mount, path.lstrip("/")))


def lookup(r: Request, root: str, rest: Sequence[str]) -> tuple[str, list[str]]:
    """The command, found in $PATH as the child will see it: in the target's root when its mount
    namespace is joined from the target."""
    view = ""
    if r.namespaces.get(MNT, "") is None:
        view = f"/proc/{r.proc}/root"
        if not root and not os.path.isdir(view):  # (a zombie's, or one this uid may not look into)
            why = os.strerror(13)  # EACCES: the namespace file opens, its root does not
            try:
                os.close(os.open(f"/proc/{r.proc}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC))
            except OSError as e:
                why = e.strerror
            raise SetupError(about_target(r, f"cannot open /proc/{r.proc}/ns/mnt: {why}"))
    if root:
        view = os.path.join(view, root.lstrip("/")) if view else root
    return resolve_program(rest, view, root)


def main(argv: Sequence[str]) -> NoReturn:
    parsed = parse_or_fail(CMD, argv, in_order=True)
    r = request(parsed)
    files = inherited_files()
    try:
        joins = Joins(r)
        root, wd = directories(r)
        cred = credential(r)
        env = target_env(r) if r.env else environ_list()
        cgroup_fd = target_cgroup_fd(r) if r.join_cgroup else -1
    except SetupError as e:
        die(str(e))
    setns, before, here = joins.child_setns(), joins.join_in_launcher, None
    if wd_before_root(r, root, wd):
        here, wd, root = wd, None, str(_from_here(root))
        setns = [dataclasses.replace(j, target=_from_here(j.target)) for j in setns]

        def before() -> None:
            joins.join_in_launcher()
            move_to(here)
    argv0, args = lookup(r, root, parsed.rest)
    if r.proc:  # (checked: its files are read)
        still_target(r)  # what was read of it by its number was its own
    caps = kept_caps(r.keep_caps, USER in r.namespaces, cred.uid if cred is not None else None)
    sys_attr = SysProcAttr(setns=setns, chroot=root, credential=cred, ambient_caps=caps,
                           use_cgroup_fd=cgroup_fd >= 0, cgroup_fd=max(cgroup_fd, 0))
    attr = ProcAttr(dir=wd, env=env, files=files, sys=sys_attr)
    spawn_and_wait(argv0, args, attr, before=before, blame=blamer(CMD, parsed, BLAME))


# The options behind each field and child step (see blame.blamer).
_JOINS = (*(long for long, _, _, _ in NAMESPACES), "target", "all")
_CREDENTIAL = ("setuid", "setgid", "preserve-credentials", "user", "all")
BLAME = {
    "SysProcAttr.setns": _JOINS,
    "SysProcAttr.credential": _CREDENTIAL,
    "SysProcAttr.chroot": ("root",),
    "SysProcAttr.ambient_caps": ("keep-caps",),
    "SysProcAttr.cgroup_fd": ("join-cgroup",),
    "SysProcAttr.use_cgroup_fd": ("join-cgroup",),
    "ProcAttr.dir": ("wd", "wdns", "root"),
    "ProcAttr.env": ("env",),
    "at clone": ("join-cgroup",),
    "at setns": _JOINS,
    "at chroot": ("root",),
    "at chdir": ("wd", "wdns", "root"),
    "at setgroups": _CREDENTIAL,
    "at setgid": _CREDENTIAL,
    "at setuid": _CREDENTIAL,
    "at cap_ambient": ("keep-caps",),
}
