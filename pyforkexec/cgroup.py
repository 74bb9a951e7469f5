"""A cgroup v2 directory with limits, that the child starts in (clone3 with CLONE_INTO_CGROUP).

``Cgroup("sandbox/job-1", memory_max=256 << 20, pids_max=64)`` creates the directory (and missing
parents) under the cgroup v2 mount, enables the controllers the limits need in every parent's
``cgroup.subtree_control``, writes the limits, and the child is born inside it: no moment outside
the limits. ``path`` is relative to the cgroup v2 root; an absolute path is used as is when it lies
under the cgroup v2 mount and is otherwise read as a cgroup path (as /proc/PID/cgroup shows them).
Values are written as the cgroup files take them: an int or "max", "50000 100000" for cpu.max, one
"MAJ:MIN rbps=..." line per device for io.max. An existing directory is reused and left in place.

Removal: with ``remove`` (the default), directories pyforkexec created are removed once they are
empty, by the Process of start_process/run when it reaps the child, or right away when the spawn
fails. ``fork_exec`` returns only a pid: the directory stays, and the caller removes it (with
``remove_cgroup(cgroup.fs_path())``) after reaping the child.

The v2 hierarchy is found in /proc/self/mountinfo wherever it is mounted: /sys/fs/cgroup (unified),
/sys/fs/cgroup/unified (systemd's hybrid layout), or elsewhere. On a hybrid layout most controllers
stay bound to cgroup v1, and a limit that needs one is refused with the reason.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional, Union

from .checks import check_bool, check_int, check_list, fail, to_bytes
from .process import Process

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
_CPU_MAX = re.compile(r"(max|\d+)( \d+)?")
_IO_MAX = re.compile(r"\d+:\d+( (rbps|wbps|riops|wiops)=(\d+|max))+")


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

    def fs_path(self) -> str:
        """The directory of this cgroup in the mounted v2 hierarchy."""
        return resolve(FIELD, self.path, find_cgroup2())


def _unescape(text: str) -> str:  # mountinfo writes space, tab, newline and backslash as \ooo
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), text)


def find_cgroup2(mountinfo: str = "/proc/self/mountinfo") -> str:
    """The mount point of the cgroup v2 hierarchy; CgroupError if there is none."""
    found = []
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            if fields[fields.index("-") + 1] == "cgroup2":
                found.append(_unescape(fields[4]))
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
            if not isinstance(line, str) or not _IO_MAX.fullmatch(line):
                fail(f"{field}[{i}]" if not isinstance(value, str) else field,
                     f"must be 'MAJ:MIN rbps=N wbps=N riops=N wiops=N' (any of the keys), got {line!r}")
        return lines
    if name == "cpu_weight":
        return [str(check_int(field, value, 1, 10000))]
    if isinstance(value, str):
        pattern = _CPU_MAX if name == "cpu_max" else re.compile(r"max|\d+")
        if not pattern.fullmatch(value):
            form = "'max' or 'QUOTA [PERIOD]'" if name == "cpu_max" else "'max'"
            fail(field, f"must be an int or {form}, got {value!r}")
        return [value]
    return [str(check_int(field, value, 0, 2**63 - 1))]


@dataclass(frozen=True)
class CgroupSpec:
    """A checked Cgroup: the relative path, each file's lines, the controllers they need."""

    cgroup: Cgroup
    writes: tuple[tuple[str, tuple[str, ...]], ...]
    controllers: frozenset[str]


def check_cgroup(field: str, cg: object) -> CgroupSpec:
    if not isinstance(cg, Cgroup):
        fail(field, f"must be a Cgroup, not {type(cg).__name__}", TypeError)
    if not isinstance(cg.path, str):
        fail(f"{field}.path", f"must be a string, not {type(cg.path).__name__}", TypeError)
    to_bytes(f"{field}.path", cg.path)
    resolve(f"{field}.path", cg.path, "/")
    check_bool(f"{field}.remove", cg.remove)
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


@dataclass
class CgroupHandle:
    """A prepared cgroup: its directory, an O_PATH fd for clone3, and the directories we made."""

    path: str
    fd: int
    created: list[str] = field(default_factory=list)
    remove: bool = True

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def cleanup(self) -> None:
        """Close the fd; remove the directories we created, deepest first, if they are empty."""
        self.close()
        created, self.created = self.created, []
        if self.remove:
            for path in reversed(created):
                if not remove_cgroup(path):
                    break


def remove_cgroup(path: str, attempts: int = 50) -> bool:
    """rmdir a cgroup once it is empty; False if processes are still in it (it is left in place)."""
    for _ in range(attempts):
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
            with contextlib.suppress(OSError):  # still populated: not ours to wait for
                if "populated 1" in _read(os.path.join(path, "cgroup.events")):
                    return False
            time.sleep(0.002)  # the last process was reaped but not yet unlinked from the cgroup
    return False


def _enable_in(directory: str, needed: frozenset[str]) -> None:
    enabled = set(_read(os.path.join(directory, "cgroup.subtree_control")).split())
    missing = needed - enabled
    if not missing:
        return
    available = set(_read(os.path.join(directory, "cgroup.controllers")).split())
    if missing - available:
        absent = sorted(missing - available)
        what = f"the {absent[0]} controller is" if len(absent) == 1 else \
            f"the {', '.join(absent[:-1])} and {absent[-1]} controllers are"
        listed = " ".join(sorted(available)) or "none"
        raise CgroupError(errno.EOPNOTSUPP, f"{FIELD}: {what} not available in {directory} "
                          f"(cgroup.controllers: {listed}); on a hybrid cgroup v1/v2 system they stay "
                          "bound to cgroup v1", directory)
    try:
        _write(os.path.join(directory, "cgroup.subtree_control"), " ".join(f"+{c}" for c in sorted(missing)))
    except OSError as e:
        if e.errno != errno.EBUSY:
            raise
        raise CgroupError(e.errno, f"{FIELD}: cannot hand controllers down from {directory}: it has "
                          "processes of its own (cgroup v2 enables controllers only below cgroups without "
                          "them); choose a path below a cgroup that has none", directory) from None


def prepare(spec: CgroupSpec) -> CgroupHandle:
    """Create (or reuse) the directory, enable controllers, write the limits, open it for clone3."""
    root = find_cgroup2()
    path = resolve(f"{FIELD}.path", spec.cgroup.path, root)
    handle = CgroupHandle(path, -1, remove=spec.cgroup.remove)
    current = root
    try:
        for part in os.path.relpath(path, root).split("/"):
            if spec.controllers:  # each parent hands the controllers down to the next level
                _enable_in(current, spec.controllers)
            current = os.path.join(current, part)
            try:
                os.mkdir(current)
                handle.created.append(current)
            except FileExistsError:
                pass
        for filename, lines in spec.writes:
            current = os.path.join(path, filename)
            for line in lines:
                _write(current, line)
        current = path
        handle.fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except CgroupError:
        handle.cleanup()
        raise
    except OSError as e:
        handle.cleanup()
        raise CgroupError(e.errno, f"{FIELD}: {e.strerror}", current) from e
    return handle


class CgroupProcess(Process):
    """A Process whose cgroup (created by pyforkexec) is removed once the child has been reaped."""

    def __init__(self, pid: int, pidfd: Optional[int], cgroup: CgroupHandle):
        super().__init__(pid, pidfd)
        self.cgroup_path = cgroup.path
        self._cgroup: Optional[CgroupHandle] = cgroup

    def _reap(self, options: int) -> Optional[int]:
        code = super()._reap(options)
        if code is not None:
            with self._lock:
                handle, self._cgroup = self._cgroup, None
            if handle is not None:
                handle.cleanup()
        return code
