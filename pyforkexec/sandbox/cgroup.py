"""A cgroup v2 directory with limits, that the child starts in (clone3 with CLONE_INTO_CGROUP).

``Cgroup("sandbox/job-1", memory_max=256 << 20, pids_max=64)`` creates the directory (and missing
parents) under the cgroup v2 mount, enables the controllers the limits need in every parent's
``cgroup.subtree_control``, writes the limits, and the child is born inside it: no moment outside
the limits. ``path`` is relative to the cgroup v2 root; an absolute path is used as is when it lies
under the cgroup v2 mount and is otherwise read as a cgroup path (as /proc/PID/cgroup shows them).
Values are written as the cgroup files take them: an int or "max", "50000 100000" for cpu.max, one
"MAJ:MIN rbps=..." line per device for io.max; their numbers in ASCII digits and at most 2^63 - 1
(cpu.max's microseconds: what the kernel turns into nanoseconds without wrapping around), since the
kernel parses a larger one into another limit without an error. An existing directory is reused
and left in place; one that ``cgroup.kill`` was ever written to kills every child cloned into it
before it runs, on some kernels (6.18 still): the spawn then fails at clone, naming the field.

Removal: with ``remove`` (the default), directories pyforkexec created are removed once they are
empty, by the Process of start_process/run when it reaps the child, or right away when the spawn
fails. ``fork_exec`` returns only a pid: the directory stays, and the caller removes it (with
``remove_cgroup(cgroup.fs_path())``) after reaping the child.

``kill_remaining``: once the child has been reaped, every process still in the directory (what it
started) is killed (SIGKILL, ``cgroup.kill``) before the directory is removed, as systemd's
``KillMode=control-group`` ends a unit: a service's stop reaches everything it left, even what left
its process group, and the directory does not stay behind busy. It kills every process in the
directory: for a cgroup of the process's own (the collection's services set it for theirs), not one
that other spawns share.

Spawns may share directories (``jobs/a`` and ``jobs/b`` from several threads, processes or pyforkexec
launchers at once): a spawn never fails because another one removed a parent it was creating its
leaf in, and a directory pyforkexec created with ``remove`` (marked with the xattr ``user.pyforkexec``,
or ``trusted.pyforkexec`` before Linux 5.7) is removed by whichever spawn leaves it empty, so a
shared parent does not stay behind when its creator finishes first. A directory that is in use, or
that pyforkexec did not create, is never removed.

The v2 hierarchy is found in /proc/thread-self/mountinfo wherever it is mounted: /sys/fs/cgroup (unified),
/sys/fs/cgroup/unified (systemd's hybrid layout), or elsewhere. On a hybrid layout most controllers
stay bound to cgroup v1, and a limit that needs one is refused with the reason.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import os
import re
import signal
import stat
import threading
import time
import weakref
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, Optional, Union

from .. import _record
from .._signals import held
from ..checks import check_bool, check_int, check_list, check_pid, fail, to_bytes
from ..process import Process, here

if TYPE_CHECKING:  # checkers see the standard decorator; see _dataclass.py
    from dataclasses import dataclass
else:
    from .._dataclass import dataclass

FIELD = "SysProcAttr.cgroup"
Value = Union[int, str]
_PREFERRED = ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")
# Cgroup field -> (interface file, controller)
LIMITS = {
    "memory_max": ("memory.max", "memory"),
    "memory_swap_max": ("memory.swap.max", "memory"),
    "cpu_max": ("cpu.max", "cpu"),
    "cpu_weight": ("cpu.weight", "cpu"),
    "pids_max": ("pids.max", "pids"),
    "io_max": ("io.max", "io"),
}
# Patterns, compiled (and cached by re) when a limit is checked, not at every start-up (issue 15).
# ASCII digits: \d takes other scripts' digits too (U+0661), which the kernel refuses only once the
# directory is made.
_CPU_MAX = r"(max|[0-9]+)( [0-9]+)?"
_IO_MAX = r"[0-9]+:[0-9]+( (rbps|wbps|riops|wiops)=([0-9]+|max))+"
_VALUE_MAX = 2**63 - 1
# cpu.max is in microseconds, which kernels before 6.17 multiply by 1000 in 64 bits unchecked: a
# larger number wraps around to a far smaller quota (or period) than the one asked. (The kernel
# refuses a quota above about 2^44 us itself.)
_CPU_US_MAX = (2**64 - 1) // 1000


class CgroupError(OSError):
    """The cgroup could not be set up: no cgroup v2, a missing controller, a refused write."""


@dataclass(frozen=True)
class Cgroup:
    """A cgroup v2 directory for the child, with limits; see the module documentation."""

    path: str
    memory_max: Optional[Value] = None
    memory_swap_max: Optional[Value] = None
    cpu_max: Optional[Value] = None
    cpu_weight: Optional[int] = None
    pids_max: Optional[Value] = None
    io_max: Optional[Union[str, Sequence[str]]] = None
    remove: bool = True
    kill_remaining: bool = False

    def fs_path(self) -> str:
        """The directory of this cgroup in the mounted v2 hierarchy."""
        return resolve(FIELD, self.path, find_cgroup2())


def _unescape(text: str) -> str:  # mountinfo writes space, tab, newline and backslash as \ooo
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), text)


def find_cgroup2(mountinfo: str = "/proc/thread-self/mountinfo") -> str:
    """The mount point of the cgroup v2 hierarchy (in the calling thread's mount namespace, where the
    path is opened); CgroupError if there is none."""
    found = []
    try:
        with open(mountinfo) as f:
            for line in f:
                fields = line.split()
                if fields[fields.index("-") + 1] == "cgroup2":
                    found.append(_unescape(fields[4]))
    except OSError as e:  # no /proc (a chroot): say which field needed it
        raise CgroupError(e.errno, f"{FIELD}: cannot read {mountinfo} to find the cgroup v2 hierarchy: "
                          f"{e.strerror}", mountinfo) from None
    for preferred in _PREFERRED:
        if preferred in found:
            return preferred
    if not found:
        raise CgroupError(errno.ENOENT, f"{FIELD}: no cgroup v2 hierarchy is mounted (no cgroup2 entry in "
                          f"{mountinfo}); mount one, e.g. at /sys/fs/cgroup, or boot with "
                          "systemd.unified_cgroup_hierarchy=1")
    return found[0]


def resolve(field: str, path: str, root: str) -> str:
    if path.startswith(root.rstrip("/") + "/"):
        path = path[len(root):]
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        fail(field, "must not contain '..'")
    if not parts:
        fail(field, "must name a cgroup below the root: the root cgroup takes no limits")
    return os.path.join(root, *parts)


def _check_value(field: str, name: str, value: object) -> list[str]:
    """The lines to write for one limit."""
    if name == "io_max":
        lines = [value] if isinstance(value, str) else list(check_list(field, value, "io.max lines"))
        for i, line in enumerate(lines):
            where = f"{field}[{i}]" if not isinstance(value, str) else field
            if not isinstance(line, str) or not re.fullmatch(_IO_MAX, line):
                fail(where, f"must be 'MAJ:MIN rbps=N wbps=N riops=N wiops=N' (any of the keys, ASCII "
                     f"digits), got {line!r}")
            lines[i] = str.__str__(line)
            for number in re.findall(r"=([0-9]+)", line):
                _check_bound(where, int(number), _VALUE_MAX)
        return lines
    if name == "cpu_weight":
        return [str(check_int(field, value, 1, 10000))]
    # The kernel parses numbers past 64 bits by wrapping them around (memory.max, io.max, cpu.max):
    # a number in a string is bounded as an int is.
    top = _CPU_US_MAX if name == "cpu_max" else _VALUE_MAX
    if isinstance(value, str):
        value = str.__str__(value)  # its text: a subclass's own methods (encode) are never asked
        pattern = _CPU_MAX if name == "cpu_max" else r"max|[0-9]+"
        if not re.fullmatch(pattern, value):
            form = "'max' or 'QUOTA [PERIOD]'" if name == "cpu_max" else "'max'"
            fail(field, f"must be an int or {form} (ASCII digits), got {value!r}")
        for number in re.findall(r"[0-9]+", value):
            _check_bound(field, int(number), top)
        return [value]
    return [str(_check_bound(field, check_int(field, value, 0, _VALUE_MAX), top))]


def _check_bound(field: str, number: int, top: int) -> int:
    if number > top:
        unit = " microseconds (the kernel counts them in nanoseconds, in 64 bits)" \
            if top == _CPU_US_MAX else ""
        fail(field, f"must be at most {top}{unit}, got {number}")
    return number


class CgroupSpec(_record.Value):
    """A checked Cgroup: the relative path, each file's lines, the controllers they need."""

    __slots__ = ("cgroup", "controllers", "writes")

    def __init__(self, cgroup: Cgroup, writes: tuple[tuple[str, tuple[str, ...]], ...],
                 controllers: frozenset[str]):
        self.cgroup = cgroup
        self.writes = writes
        self.controllers = controllers


def check_cgroup(field: str, cg: object) -> CgroupSpec:
    if not isinstance(cg, Cgroup):
        fail(field, f"must be a Cgroup, not {type(cg).__name__}", TypeError)
    if not isinstance(cg.path, str):
        fail(f"{field}.path", f"must be a string, not {type(cg.path).__name__}", TypeError)
    to_bytes(f"{field}.path", cg.path)
    if "\n" in cg.path:  # the kernel's mkdir of a cgroup refuses it (EINVAL)
        fail(f"{field}.path", "a cgroup name cannot hold a newline")
    resolve(f"{field}.path", cg.path, "/")
    check_bool(f"{field}.remove", cg.remove)
    check_bool(f"{field}.kill_remaining", cg.kill_remaining)
    writes, controllers = [], set()
    for name, (filename, controller) in LIMITS.items():
        value = getattr(cg, name)
        if value is not None:
            writes.append((filename, tuple(_check_value(f"{field}.{name}", name, value))))
            controllers.add(controller)
    return CgroupSpec(cg, tuple(writes), frozenset(controllers))


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


# Sharing directories between spawns (threads, processes, the CLI; see the module documentation):
# - a parent cannot vanish under a spawn once the spawn's leaf exists (rmdir of a cgroup with a child
#   fails EBUSY), so creation is mkdir -p that starts over when a parent goes away before the leaf is
#   made;
# - the leaf itself is kept by an exclusive flock on the directory from prepare() until the child is
#   in it (close()), and by the child from then on. A remover takes a shared lock on it without
#   waiting, and does not remove what it cannot lock or rmdir: that is someone's, who removes it in
#   turn once they leave it empty. Removers take turns on a second lock, on the directory's
#   cgroup.procs, waiting (each holds it for an rmdir): they must not turn each other away (the last
#   one out would leave the parent behind), and between one's check and its rmdir no other may remove
#   the directory and a spawn make a new one at the path, which the rmdir would then take away;
# - a MARK on a directory says pyforkexec created it to be removed: whoever leaves it empty removes
#   it, so a parent its creator had to leave (another spawn used it) does not stay behind. A directory
#   without one is removed only by the call that created it (same inode), never one a user made.
# - both locks are its creator's alone: flock takes any file its caller may open, a read-only one too, and
#   the kernel makes a cgroup's directory 0755 and its cgroup.procs 0644, so any process of the host (a
#   service's, in the cgroup or not) could hold them and keep every spawn into the directory, and every
#   removal of it or of a cgroup below, waiting for as long as it liked (a stop of every service under a
#   shared parent hung). A directory made here is made 0700, its cgroup.procs made 0600 and then the
#   directory 0711 (OWN_MODES): others may still reach its files by name (a service reads its memory.max)
#   but open neither lock. One made so by an earlier pyforkexec (marked) is tightened when met.
MARKS = ("user.pyforkexec", "trusted.pyforkexec")  # user.* on cgroup2 since 5.7; trusted.*: root
OWN_MODES = (0o700, 0o600, 0o711)  # the directory as made, its cgroup.procs, the directory then
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC  # not O_PATH: flock needs a real open file
_ATTEMPTS = 1000  # starts over: each one means another spawn removed a directory meanwhile


def _mark(path: str) -> None:
    for name in MARKS:  # neither (before 5.7, not root): only the call that made it removes it
        with contextlib.suppress(OSError):
            os.setxattr(path, name, b"remove-when-empty")
            return


def _marked(fd: int) -> bool:
    for name in MARKS:
        with contextlib.suppress(OSError):
            os.getxattr(fd, name)
            return True
    return False


def _keep_locks(path: str) -> None:
    """The locks of directory ``path`` (its own and its cgroup.procs) out of others' reach (OWN_MODES)."""
    os.chmod(os.path.join(path, "cgroup.procs"), OWN_MODES[1])
    os.chmod(path, OWN_MODES[2])


def _tighten(path: str) -> None:
    """_keep_locks for a directory an earlier pyforkexec made (marked, this caller's) readable by others."""
    try:
        st = os.stat(path)
        if st.st_mode & 0o044 and st.st_uid == os.geteuid() and any(_has_xattr(path, n) for n in MARKS):
            _keep_locks(path)
    except OSError:  # gone meanwhile, or not ours to change: as it was
        pass


def _has_xattr(path: str, name: str) -> bool:
    try:
        os.getxattr(path, name)
    except OSError:
        return False
    return True


def _same(fd: int, path: str) -> bool:
    """Whether ``path`` still names the directory open as ``fd`` (not removed, nor made anew)."""
    try:
        st, now = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino)


def _in_use(path: str) -> bool:
    """Processes or child cgroups keep it (rmdir's EBUSY); unreadable counts as in use."""
    try:
        events = dict(line.split() for line in _read(os.path.join(path, "cgroup.events")).splitlines())
        stat = dict(line.split() for line in _read(os.path.join(path, "cgroup.stat")).splitlines())
    except OSError:
        return True
    return events.get("populated") != "0" or stat.get("nr_descendants") != "0"


def _rmdir(path: str, attempts: int) -> bool:
    for _ in range(attempts):
        try:
            os.rmdir(path)
            return True
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENODEV):  # gone, or going
                return True
            if e.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                raise
            if _in_use(path):
                return False
            time.sleep(0.002)  # the last process was reaped but not yet unlinked from the cgroup
    return False


def _remove_one(path: str, ino: Optional[int], attempts: int = 50) -> bool:
    """rmdir ``path`` if it is ours (``ino``: the inode this call created; None: asked by name) or
    marked, empty and not locked by a spawn on its way in. True once it is gone."""
    try:
        fd = os.open(path, _DIR)
    except FileNotFoundError:
        return True
    except NotADirectoryError:
        return False  # a file, or below one (a path that could not be made): nothing of ours
    except OSError as e:
        if e.errno in (errno.EMFILE, errno.ENFILE):
            return _remove_made(path, ino, attempts)
        raise
    try:
        own = ino is None or os.fstat(fd).st_ino == ino
        if not own and not _marked(fd):
            return False  # someone else's directory
        try:
            turn = os.open("cgroup.procs", os.O_RDONLY | os.O_CLOEXEC, dir_fd=fd)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENODEV):
                return True  # removed since we opened it (ENODEV: while it is being torn down)
            if e.errno in (errno.EMFILE, errno.ENFILE):
                return _remove_made(path, ino, attempts)
            raise
        try:
            fcntl.flock(turn, fcntl.LOCK_EX)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # a spawn is preparing to start in it: it removes the directory after
            if not _same(fd, path):
                return True  # removed by the remover before us
            try:
                return _rmdir(path, attempts)
            except OSError:
                if own:
                    raise
                return False  # another user's leftover we may not remove (EACCES): theirs to remove
        finally:
            os.close(turn)
    finally:
        os.close(fd)


def _remove_made(path: str, ino: Optional[int], attempts: int) -> bool:
    """_remove_one without an fd to spare (EMFILE: often the very failure being undone): only a
    directory this call made (``ino``), by its inode, without the turn lock: another spawn on its way
    into it (that found it by name meanwhile) then fails at clone3, in no cgroup rather than
    outside the one it asked for."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return True
    if ino is None or st.st_ino != ino:
        return False
    return _rmdir(path, attempts)


def _remove_upwards(path: str, root: str, created: dict[str, int]) -> None:
    """Remove ``path`` and then its parents up to ``root``, stopping at the first one that stays."""
    while path.startswith(root.rstrip("/") + "/"):
        if not _remove_one(path, created.get(path, -1)):
            return
        path = os.path.dirname(path)


class CgroupHandle(_record.Record):
    """A prepared cgroup: its directory, an fd of it for clone3 (holding the lock that keeps it from
    removal until the child is in it), and the directories this call made (path -> inode)."""

    __slots__ = ("created", "fd", "kill", "path", "remove", "root")

    def __init__(self, path: str, fd: int, created: Optional[dict[str, int]] = None, remove: bool = True,
                 root: str = "", kill: bool = False):
        self.path = path
        self.fd = fd
        self.created = {} if created is None else created
        self.remove = remove
        self.root = root
        self.kill = kill  # Cgroup.kill_remaining

    def close(self) -> None:
        """Close the fd once the child is in the cgroup (or will not be): the directory is free."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            try:  # unlock the open file itself: a copy os.fork gave a child would hold it too
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def __del__(self) -> None:
        # Dropped without close() (its caller was interrupted): the lock must not outlive it, or
        # every later spawn into this directory would wait for it. (An __init__ interrupted before it
        # set fd leaves none.)
        if getattr(self, "fd", -1) >= 0:
            with contextlib.suppress(OSError):
                self.close()

    def cleanup(self, failed: bool = False, started: bool = True) -> None:
        """Close the fd; remove the directory, then the parents, if they are ours or marked and empty.
        ``failed``: the spawn failed, so what this call made goes even with ``remove=False`` (which
        keeps a cgroup for a look after its process, and there was none). ``started``: a child was
        made in the cgroup (a spawn undone after its clone), whose descendants ``kill`` kills too;
        before that, what the cgroup holds is not the spawn's."""
        with held():
            self.close()
            if self.kill and started:
                kill_members(self.path)
                _remove_below(self.path)  # the cgroups its process made in its own: nothing is in them
            created, self.created = self.created, {}
            if self.remove or failed:
                # A spawn that failed before its leaf existed (a path through a file) starts from the
                # deepest directory it made, which the leaf's removal would never reach.
                start = self.path if self.path in created or not created else max(created, key=len)
                _remove_upwards(start, self.root or os.path.dirname(self.path), created)


def members(path: str) -> list[str]:
    """The pids in cgroup ``path`` and in the cgroups below it (none for one that is gone)."""
    pids: list[str] = []
    for directory, _subdirs, files in os.walk(path):
        if "cgroup.procs" in files:
            with contextlib.suppress(OSError):
                pids += _read(os.path.join(directory, "cgroup.procs")).split()
    return pids


def kill_members(path: str, timeout: float = 2.0) -> bool:
    """SIGKILL every process in cgroup ``path`` (its subtree too) and wait up to ``timeout`` seconds
    until none is left in it: whether it is empty. ``cgroup.kill`` (Linux 5.14) kills them at once,
    forks racing it included; before it, each pid of ``cgroup.procs`` is killed, again until none is
    left."""
    deadline = time.monotonic() + timeout
    try:
        _write(os.path.join(path, "cgroup.kill"), "1")
        by_file = True
    except OSError:  # before Linux 5.14, no such cgroup (the loop below tells), or a delegated cgroup
        by_file = False  # whose cgroup.kill its owner may not write: each pid is killed instead
    while True:
        try:
            with open(os.path.join(path, "cgroup.events")) as f:
                if "populated 0" in f.read().split("\n"):
                    return True
            if not by_file:
                _kill_listed(os.path.join(path, "cgroup.procs"))
        except FileNotFoundError:
            return True  # removed meanwhile
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)


def _kill_listed(procs: str) -> None:
    """SIGKILL each process the ``cgroup.procs`` file ``procs`` lists, through a pidfd opened on its
    number and used only if the number is listed again after the open: a listed process may exit and be
    reaped before its kill, and its number be another's, outside the cgroup, by then. The SIGKILL's
    success through the pidfd tells its process held the number since the open, so through the second
    read: it was the one listed there. (Without pidfds, Linux < 5.3: by number, as before them.) A
    member outside this process's PID namespace is listed as 0: it is left (kill_members then says the
    cgroup is not empty)."""
    fds: dict[str, int] = {}
    try:
        for pid in _read(procs).split():
            if pid == "0":  # a process of no PID namespace we see (a parent one): no number to reach it by
                continue   # here; pidfd_open(0) is EINVAL, and a kill(0) our own process group
            try:
                with held():  # made and recorded as one step
                    fds[pid] = os.pidfd_open(int(pid))
            except ProcessLookupError:
                continue
            except OSError as e:
                if e.errno != errno.ENOSYS:
                    raise
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
        listed = set(_read(procs).split()) if fds else set()
        for pid, fd in fds.items():
            if pid in listed:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
    finally:
        with held():
            for fd in fds.values():
                os.close(fd)


def _remove_below(path: str) -> bool:
    """rmdir the cgroups under ``path``, deepest first (emptied by kill_members): those a process made in
    a cgroup of its own (Cgroup.kill_remaining), which would keep it from removal; whether none is
    left."""
    gone = True
    for directory, _subdirs, _files in os.walk(path, topdown=False):
        if directory != path:
            try:
                os.rmdir(directory)
            except FileNotFoundError:
                pass
            except OSError:
                gone = False
    return gone


def empty_own(path: str) -> bool:
    """A process's own cgroup (Cgroup.kill_remaining) taken away whole: every process in it and below
    it killed, the cgroups made under it removed, then it (remove_cgroup). Whether it is gone. A cgroup
    that ``cgroup.kill`` was written to is not used again: on some kernels a child cloned into it later
    is killed at birth."""
    with held():
        return kill_members(path) and _remove_below(path) and remove_cgroup(path)


def remove_cgroup(path: str, attempts: int = 50) -> bool:
    """rmdir a cgroup once it is empty; False if it is in use (processes, child cgroups, a spawn on
    its way in): it is left in place.

    The empty parents pyforkexec created (and marked) are removed after it, up to the first one that
    is in use or not pyforkexec's."""
    with held():
        if not _remove_one(path, None, attempts):
            return False
        with contextlib.suppress(CgroupError):
            _remove_upwards(os.path.dirname(path), find_cgroup2(), {})
        return True


def _check_killable(path: str) -> None:
    """kill_remaining kills what is left in the cgroup through its ``cgroup.kill``: one this process
    may not write (a cgroup delegated as the kernel lists it, /sys/kernel/cgroup/delegate, leaves it
    the parent's) would leave a descendant that changed its credentials running, so it is refused
    before the program runs. (Without the file, before Linux 5.14, each pid is killed.)"""
    kill = os.path.join(path, "cgroup.kill")
    if os.path.exists(kill) and not os.access(kill, os.W_OK):
        raise CgroupError(errno.EACCES, f"{FIELD}.kill_remaining: {kill} is not writable by this process, "
                          "so what the program leaves in the cgroup could not be killed; choose a path "
                          "below it (pyforkexec makes that cgroup, and may write its cgroup.kill), or "
                          "leave kill_remaining out", kill)


def check_available(directory: str, needed: Collection[str], field: str = FIELD) -> None:
    """CgroupError, its message starting with ``field``, unless ``directory`` offers every controller
    of ``needed`` to its children (the service module asks it of systemd's hierarchy too)."""
    available = set(_read(os.path.join(directory, "cgroup.controllers")).split())
    absent = sorted(set(needed) - available)
    if absent:
        what = f"the {absent[0]} controller is" if len(absent) == 1 else \
            f"the {', '.join(absent[:-1])} and {absent[-1]} controllers are"
        listed = " ".join(sorted(available)) or "none"
        raise CgroupError(errno.EOPNOTSUPP, f"{field}: {what} not available in {directory} "
                          f"(cgroup.controllers: {listed}); on a hybrid cgroup v1/v2 system they stay "
                          "bound to cgroup v1", directory)


_PATH_MAX = 4096  # linux/limits.h, with the terminating NUL


def _is_file(path: str) -> bool:
    """Whether ``path`` exists and is no directory, from one lstat: a directory being removed by
    another spawn is never taken for a file."""
    try:
        return not stat.S_ISDIR(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _not_a_cgroup(path: str) -> CgroupError:
    return CgroupError(errno.ENOTDIR, f"{FIELD}.path: names a file, not a cgroup directory: {path} (a "
                       "cgroup's interface files, e.g. cgroup.procs, cannot be cgroup names)", path)


def check_host(cg: Cgroup) -> None:
    """What ``prepare`` would find first, read without creating anything (a check mode's foresight): a
    CgroupError when this host has no cgroup2 hierarchy, its root does not offer a controller the
    limits of ``cg`` need (none below it can then), or this process cannot write where the cgroup is
    (its directory, or the nearest one of its parents that exists)."""
    spec = check_cgroup(FIELD, cg)
    root = find_cgroup2()
    if spec.controllers:
        check_available(root, spec.controllers)
    path = resolve(f"{FIELD}.path", cg.path, root)
    if len(os.fsencode(path)) >= _PATH_MAX:  # mkdir would fail part way, after making the parents
        raise CgroupError(errno.ENAMETOOLONG, f"{FIELD}.path: is too long: under {root} it makes "
                          f"{len(os.fsencode(path))} bytes, the kernel takes paths below {_PATH_MAX}", path)
    existing = path
    while not os.path.isdir(existing):
        if _is_file(existing):  # mkdir there or below would fail (EEXIST, ENOTDIR) after its parents
            raise _not_a_cgroup(existing)
        existing = os.path.dirname(existing)
    # A cgroup this call makes has the interface files every cgroup has, which ``existing`` (its parent
    # or an ancestor) has too: the core ones (cgroup.*) and those of no controller (cpu.stat, the
    # pressure files *.pressure). A name of the path below the first one to make that is a file of
    # ``existing`` cannot be made, and checking it here fails before anything is made. (A name of a
    # controller's file there, memory.max, is refused too though it might be made: it is no name for
    # a cgroup, whose parent could then not enable that controller.)
    made = existing
    for name in os.path.relpath(path, existing).split("/") if existing != path else ():
        if made != existing and _is_file(os.path.join(existing, name)):
            raise _not_a_cgroup(os.path.join(made, name))
        made = os.path.join(made, name)
    if not os.access(existing, os.W_OK):  # the leaf to make in it, or (made) to move the child into
        raise CgroupError(errno.EACCES, f"{FIELD}.path: {existing} is not writable by this process",
                          existing)
    if cg.kill_remaining and existing == path:
        _check_killable(path)


def _enable_in(directory: str, needed: frozenset[str]) -> None:
    enabled = set(_read(os.path.join(directory, "cgroup.subtree_control")).split())
    missing = needed - enabled
    if not missing:
        return
    check_available(directory, missing)
    try:
        _write(os.path.join(directory, "cgroup.subtree_control"), " ".join(f"+{c}" for c in sorted(missing)))
    except OSError as e:
        if e.errno != errno.EBUSY:
            raise
        raise CgroupError(e.errno, f"{FIELD}: cannot hand controllers down from {directory}: it has "
                          "processes of its own (cgroup v2 enables controllers only below cgroups without "
                          "them); choose a path below a cgroup that has none", directory) from None


def _create(handle: CgroupHandle, parts: Sequence[str]) -> None:
    """mkdir -p that starts over when another spawn removes a parent before the leaf exists; ends
    with the leaf open in ``handle.fd`` under an exclusive lock."""
    for _ in range(_ATTEMPTS):
        current = handle.root
        for part in parts:
            current = os.path.join(current, part)
            try:
                os.mkdir(current, OWN_MODES[0])
            except FileExistsError:
                # An interface file of the cgroup made just before (a directory another spawn removed
                # meanwhile is no file: the next mkdir starts over).
                if _is_file(current):
                    raise _not_a_cgroup(current) from None
                _tighten(current)
                continue
            except FileNotFoundError:
                break  # a parent was removed by a spawn that had finished with it: start over
            # Unmarked yet, so nobody else removes it before it is recorded and marked.
            handle.created[current] = os.stat(current).st_ino
            if handle.remove:
                _mark(current)
            try:
                _keep_locks(current)
            except FileNotFoundError:
                continue  # removed by a spawn that found it marked and empty: the next level starts over
        else:
            try:
                handle.fd = os.open(handle.path, _DIR)
            except OSError as e:
                if e.errno in (errno.ENOENT, errno.ENODEV):
                    continue  # an existing leaf was removed by the spawn that made it
                raise
            # Waits for removers and for other spawns into this leaf until their child is in it:
            # both hold it briefly (a clone, an rmdir), so the wait stays inside held().
            fcntl.flock(handle.fd, fcntl.LOCK_EX)
            if _same(handle.fd, handle.path):
                return
            handle.close()
    raise CgroupError(errno.ENOENT, f"{FIELD}: {handle.path} was removed {_ATTEMPTS} times while being "
                      "created", handle.path)


def prepare(spec: CgroupSpec) -> CgroupHandle:
    """Create (or reuse) the directory, enable controllers, write the limits, open it for clone3.

    From here until ``close()`` (after clone3) no other pyforkexec spawn removes the directory."""
    root = find_cgroup2()
    path = resolve(f"{FIELD}.path", spec.cgroup.path, root)
    handle = CgroupHandle(path, -1, remove=spec.cgroup.remove, root=root, kill=spec.cgroup.kill_remaining)
    parts = os.path.relpath(path, root).split("/")
    current = path
    try:
        with held():  # a KeyboardInterrupt waits until what was made is recorded in the handle
            _create(handle, parts)
            # Every parent is kept by the leaf now: each hands the controllers down to the next level.
            current = root
            for part in parts:
                if spec.controllers:
                    _enable_in(current, spec.controllers)
                current = os.path.join(current, part)
            for filename, lines in spec.writes:
                current = os.path.join(path, filename)
                for line in lines:
                    _write(current, line)
            if handle.kill:
                _check_killable(path)
            return handle  # inside: a signal held until here is delivered while cleanup can run
    except BaseException as e:
        handle.cleanup(failed=True, started=False)
        if isinstance(e, OSError) and not isinstance(e, CgroupError):
            raise CgroupError(e.errno, f"{FIELD}: {e.strerror}", e.filename or current) from e
        raise


class CgroupProcess(Process):
    """A Process whose cgroup (created by pyforkexec) is removed once the child has been reaped.

    wait() and poll() return the return code only once the cgroup is removed (with kill_remaining,
    once what the child left in it is killed): a thread that finds the child reaped while another
    thread removes its cgroup waits for that removal to end (a few seconds at most: kill_members'
    timeout), even in poll(). A removal that raised (in the thread that ran it) is left to do: the next
    wait() or poll(), in any thread, runs it again, and raises its error in turn if it fails again."""

    def __init__(self, pid: int, pidfd: Optional[int], cgroup: CgroupHandle):
        self.cgroup_path = cgroup.path
        self._cgroup: Optional[CgroupHandle] = cgroup
        self._removing = threading.Lock()  # held while the cgroup is removed: other waiters wait on it
        # last: it makes the object the pid's owner (Process._owned). Made by a spawn (its child's pid
        # and pidfd) or from a handover record (no pidfd): Process.__init__'s pidfd check is not needed
        self._own(check_pid("pid", pid), pidfd)
        _unreaped.add(self)

    def _reap(self, options: int) -> Optional[int]:
        with held():  # reaped means removed: an interrupt in between would leave the directory
            try:
                code = super()._reap(options)
            except ChildProcessError:  # reaped by someone else: gone all the same
                # ...unless this is a copy in a forked child of the owner (os.fork, multiprocessing),
                # whose wait, poll, collection or exit (_reap_at_exit) finds the child not its own while
                # it runs on: the cgroup, and what runs in it, are the owner's (kill_remaining killed them).
                if self._owner == here():
                    self._remove_cgroup()
                raise
            if code is not None:
                self._remove_cgroup()
        return code

    def _undone(self) -> None:
        super()._undone()
        self._cgroup = None  # the undone spawn removes it

    def _remove_cgroup(self) -> None:
        """Remove the cgroup once. The handle is dropped only after its cleanup returned: a cleanup
        that raised is run again by the next waiter, and a waiter coming while another thread's
        cleanup runs waits for it to end."""
        with self._removing:
            handle = self._cgroup
            if handle is not None:
                handle.cleanup()
                self._cgroup = None


# The CgroupProcesses not yet waited for. One still referenced when the interpreter exits (a cycle
# the last collection frees) would reach its removal only once the builtins are gone (a NameError,
# the directory left): _reap_at_exit reaps those whose child has exited while the interpreter is
# whole. One still running is left running, as subprocess leaves a Popen's child: its cgroup is in use.
_unreaped: weakref.WeakSet[CgroupProcess] = weakref.WeakSet()


@atexit.register
def _reap_at_exit() -> None:
    for proc in list(_unreaped):
        with contextlib.suppress(Exception):
            proc.poll()


def handover_record(proc: Process) -> Optional[dict[str, object]]:
    """What removing the cgroup of ``proc`` after it is reaped takes, as JSON data, for a process that
    reaps it after an exec (the daemon, service/daemon.py); None when there is nothing to remove."""
    handle = proc._cgroup if isinstance(proc, CgroupProcess) else None
    if handle is None:
        return None
    return {"path": handle.path, "created": handle.created, "remove": handle.remove, "root": handle.root,
            "kill": handle.kill}


def process_from_record(pid: int, record: Optional[dict[str, Any]]) -> Process:
    """The Process of a child started before an exec, from handover_record's data: waiting for it
    removes its cgroup as the CgroupProcess it was would have."""
    if record is None:
        return Process(pid)
    handle = CgroupHandle(record["path"], -1, dict(record["created"]), bool(record["remove"]), record["root"],
                          bool(record.get("kill", False)))
    return CgroupProcess(pid, None, handle)
