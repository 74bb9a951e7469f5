"""The step list the C child runs: one packed struct per step, and the bytes steps point to.

A step is ``op, loc, index, refs, nr, a[6]`` (struct "=iiiiq6q", ``struct step`` in _child.c). Bit j
of ``refs`` marks ``a[j]`` as a Blob: the child gets a pointer to those bytes. ``loc`` and ``index``
are what a failure of the step reports (ErrorLocation and which entry of a list field).

The arguments are named: ``FIELDS`` gives, per operation, the name of each ``a[j]``; _child.c
declares the same names in its STEP_FIELDS table (exported as ``_child.FIELDS``), and
tests/unit/test_step_layout.py checks the two agree. Every step is added through a typed method of
``Builder``: one per operation, and one per system call the child makes (arguments in the kernel's
order, under the names of its man page).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Optional, Union

from .._record import Record
from ..errors import ErrorLocation
from . import _child

OPS, SYS, CONST = _child.OPS, _child.SYS, _child.CONST
STEP = struct.Struct("=iiiiq6q")
HEADER = ("op", "loc", "index", "refs", "nr", "a")  # struct step's members, in order
assert STEP.size == CONST["STEP_SIZE"], "steps.py and _child.c disagree on the step layout"

# The name of a[0], a[1], ... of each operation (SYSCALL: the system call's own arguments).
FIELDS: dict[str, tuple[str, ...]] = {
    "SYSCALL": ("arg0", "arg1", "arg2", "arg3", "arg4", "arg5"),
    "MAP_PIPE": ("close_fd", "read_fd"),
    "WRITE_FILE": ("path", "data", "size"),
    "FOREGROUND": ("ctty", "pgid"),
    "SIGNALS": ("force_default",),
    "CAPS": ("keep_lo", "keep_hi", "add_lo", "add_hi", "effective"),
    "PDEATHSIG_CHECK": ("ppid", "signal"),
    "FDS": ("nextfd", "fcntl_loc"),
    "CLOEXEC_FROM": ("first_fd",),
    "EXECVE": ("exec_fd",),
    "CREATE": ("path", "mode", "is_file", "dirfd"),
    "REMOUNT": ("path", "attr", "at_flags", "ms_flags"),
    "SYNC": ("socket", "close_fd"),
    "SECCOMP": ("filter", "count"),
    "IN_ROOT": ("root", "path", "slot"),
}
ALL_CAPS = 0xFFFFFFFF  # one 32-bit half of a capability mask
_ZEROS = (0,) * 6
# FIELDS by operation number, looked up once per step instead of twice (a plan is compiled per spawn).
_OP_FIELDS = {op: (OPS[op], names, frozenset(names)) for op, names in FIELDS.items()}
_SYSCALL = OPS["SYSCALL"]


class Blob(bytes):
    """A step argument passed by address: the child gets a pointer to these bytes."""


Arg = Union[int, Blob]


def cstr(data: bytes) -> Blob:
    return Blob(data + b"\0")


def opt_cstr(data: Union[bytes, None]) -> Arg:
    """A string argument that may be NULL."""
    return 0 if data is None else cstr(data)


class Builder(Record):
    """The packed steps of one plan, in order, and the bytes (Blob) they point to."""

    __slots__ = ("blobs", "steps")

    def __init__(self, steps: Optional[list[bytes]] = None, blobs: Optional[list[bytes]] = None):
        self.steps: list[bytes] = [] if steps is None else steps
        self.blobs: list[bytes] = [] if blobs is None else blobs

    def _pack(self, op: int, loc: ErrorLocation, args: Sequence[Arg], nr: int, index: int) -> None:
        refs, values = 0, list(args)
        for j, a in enumerate(values):
            if type(a) is Blob:
                refs |= 1 << j
                self.blobs.append(a)
                values[j] = len(self.blobs) - 1
        self.steps.append(STEP.pack(op, loc, index, refs, nr, *values, *_ZEROS[len(values):]))

    def _op(self, op: str, loc: ErrorLocation, index: int = 0, **args: Arg) -> None:
        """An OP_<op> step, its arguments by the names of FIELDS[op] (those left out are 0)."""
        number, names, known = _OP_FIELDS[op]
        if not args.keys() <= known:
            raise TypeError(f"{op} has no field {sorted(args.keys() - known)}")
        values = [args.get(name, 0) for name in names]
        self._pack(number, loc, values, 0, index)

    def _syscall(self, loc: ErrorLocation, name: str, *args: Arg, index: int = 0) -> None:
        self._pack(_SYSCALL, loc, args, SYS[name], index)

    # ---- the operations of _child.c ----

    def map_pipe(self, loc: ErrorLocation, *, close_fd: int, read_fd: int) -> None:
        """Close the parent's end, wait for its {errno, index} after it wrote the id maps."""
        self._op("MAP_PIPE", loc, close_fd=close_fd, read_fd=read_fd)

    def write_file(self, loc: ErrorLocation, path: bytes, data: bytes, index: int = 0) -> None:
        self._op("WRITE_FILE", loc, index, path=cstr(path), data=Blob(data), size=len(data))

    def foreground(self, loc: ErrorLocation, *, ctty: int, pgid: int) -> None:
        self._op("FOREGROUND", loc, ctty=ctty, pgid=pgid)

    def signals(self, loc: ErrorLocation, *, force_default: int) -> None:
        self._op("SIGNALS", loc, force_default=force_default)

    def caps(self, loc: ErrorLocation, *, keep: int, add: int, effective_all: bool) -> None:
        """capget; permitted and inheritable: & keep | add; effective & keep, or the new permitted."""
        self._op("CAPS", loc, keep_lo=keep & ALL_CAPS, keep_hi=keep >> 32, add_lo=add & ALL_CAPS,
                 add_hi=add >> 32, effective=CONST["CAPS_EFFECTIVE_ALL"] if effective_all else 0)

    def pdeathsig_check(self, loc: ErrorLocation, *, ppid: int, signal: int) -> None:
        self._op("PDEATHSIG_CHECK", loc, ppid=ppid, signal=signal)

    def fds(self, loc: ErrorLocation, *, nextfd: int, fcntl_loc: ErrorLocation) -> None:
        self._op("FDS", loc, nextfd=nextfd, fcntl_loc=fcntl_loc)

    def cloexec_from(self, loc: ErrorLocation, *, first_fd: int) -> None:
        self._op("CLOEXEC_FROM", loc, first_fd=first_fd)

    def execve(self, loc: ErrorLocation, *, exec_fd: int) -> None:
        self._op("EXECVE", loc, exec_fd=exec_fd)

    def create(self, loc: ErrorLocation, path: bytes, *, is_file: bool, dirfd: Optional[int] = None,
               index: int = 0) -> None:
        """A directory (an empty file if ``is_file``) at ``path``, relative to ``dirfd`` if given."""
        mode = 0o644 if is_file else 0o755
        self._op("CREATE", loc, index, path=cstr(path), mode=mode, is_file=int(is_file),
                 dirfd=CONST["AT_FDCWD"] if dirfd is None else dirfd)

    def in_root(self, loc: ErrorLocation, root: bytes, path: bytes, *, slot: int, index: int = 0) -> None:
        """Open ``path`` as found from inside ``root`` (its symlinks never lead out) as fd ``slot``."""
        self._op("IN_ROOT", loc, index, root=cstr(root), path=cstr(path), slot=slot)

    def remount(self, loc: ErrorLocation, path: bytes, *, attr: bytes, recursive: bool, ms_flags: int,
                index: int = 0) -> None:
        self._op("REMOUNT", loc, index, path=cstr(path), attr=Blob(attr),
                 at_flags=CONST["AT_RECURSIVE"] if recursive else 0, ms_flags=ms_flags)

    def sync(self, loc: ErrorLocation, *, socket: int, close_fd: int) -> None:
        self._op("SYNC", loc, socket=socket, close_fd=close_fd)

    def seccomp(self, loc: ErrorLocation, program: bytes, index: int = 0) -> None:
        self._op("SECCOMP", loc, index, filter=Blob(program),
                 count=len(program) // CONST["SOCK_FILTER_SIZE"])

    # ---- system calls (OP_SYSCALL), arguments in the kernel's order ----

    def setns(self, loc: ErrorLocation, *, fd: int, nstype: int, index: int = 0) -> None:
        self._syscall(loc, "setns", fd, nstype, index=index)

    def prctl(self, loc: ErrorLocation, option: str, *args: int, index: int = 0) -> None:
        self._syscall(loc, "prctl", CONST[option], *args, index=index)

    def setsid(self, loc: ErrorLocation) -> None:
        self._syscall(loc, "setsid")

    def setpgid(self, loc: ErrorLocation, *, pid: int, pgid: int) -> None:
        self._syscall(loc, "setpgid", pid, pgid)

    def unshare(self, loc: ErrorLocation, *, flags: int) -> None:
        self._syscall(loc, "unshare", flags)

    def mount(self, loc: ErrorLocation, *, source: Arg, target: Arg, fstype: Arg, flags: int, data: Arg,
              index: int = 0) -> None:
        self._syscall(loc, "mount", source, target, fstype, flags, data, index=index)

    def umount2(self, loc: ErrorLocation, *, target: bytes, flags: int, index: int = 0) -> None:
        self._syscall(loc, "umount2", cstr(target), flags, index=index)

    def pivot_root(self, loc: ErrorLocation, *, new_root: bytes, put_old: bytes, index: int = 0) -> None:
        self._syscall(loc, "pivot_root", cstr(new_root), cstr(put_old), index=index)

    def sethostname(self, loc: ErrorLocation, name: bytes) -> None:
        self._syscall(loc, "sethostname", Blob(name), len(name))

    def setdomainname(self, loc: ErrorLocation, name: bytes) -> None:
        self._syscall(loc, "setdomainname", Blob(name), len(name))

    def prlimit64(self, loc: ErrorLocation, *, resource: int, new_limit: bytes, index: int = 0) -> None:
        self._syscall(loc, "prlimit64", 0, resource, Blob(new_limit), 0, index=index)

    def chroot(self, loc: ErrorLocation, path: bytes) -> None:
        self._syscall(loc, "chroot", cstr(path))

    def chdir(self, loc: ErrorLocation, path: bytes, index: int = 0) -> None:
        self._syscall(loc, "chdir", cstr(path), index=index)

    def setgroups(self, loc: ErrorLocation, groups: Sequence[int], index: int = 0) -> None:
        self._syscall(loc, "setgroups", len(groups), Blob(struct.pack(f"={len(groups)}I", *groups)),
                      index=index)

    def setgid(self, loc: ErrorLocation, gid: int) -> None:
        self._syscall(loc, "setgid", gid)

    def setuid(self, loc: ErrorLocation, uid: int) -> None:
        self._syscall(loc, "setuid", uid)

    def ioctl(self, loc: ErrorLocation, fd: int, request: str, *arg: int, index: int = 0) -> None:
        self._syscall(loc, "ioctl", fd, CONST[request], *arg, index=index)

    def landlock_restrict_self(self, loc: ErrorLocation, *, ruleset_fd: int, flags: int,
                               index: int = 0) -> None:
        self._syscall(loc, "landlock_restrict_self", ruleset_fd, flags, index=index)

    def close(self, loc: ErrorLocation, fd: int, index: int = 0) -> None:
        self._syscall(loc, "close", fd, index=index)

    def move_mount(self, loc: ErrorLocation, *, from_fd: int, to_path: bytes = b"",
                   to_fd: Optional[int] = None, index: int = 0) -> None:
        """Attach the detached tree ``from_fd`` at ``to_path``, or on the file ``to_fd`` is open on."""
        flags = CONST["MOVE_MOUNT_F_EMPTY_PATH"]
        if to_fd is not None:
            flags |= CONST["MOVE_MOUNT_T_EMPTY_PATH"]
        self._syscall(loc, "move_mount", from_fd, cstr(b""), CONST["AT_FDCWD"] if to_fd is None else to_fd,
                      cstr(to_path), flags, index=index)

    def ptrace_traceme(self, loc: ErrorLocation) -> None:
        self._syscall(loc, "ptrace", CONST["PTRACE_TRACEME"], 0, 0, 0)
