"""Linux clone/unshare/clone3 flags (linux/sched.h, as Go 1.23's syscall package lists them).

``CloneFlags`` is an ``enum.IntFlag``; its helpers (``split``, ``describe``, ``parse``) work on plain
ints and never rely on IntFlag pseudo-members, whose names, iteration and str() differ between
Python 3.9 and 3.12.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Mapping
from typing import Optional

from ._record import Value

_MAX = 1 << 64  # clone3's flags field is a u64


class FlagGroup(enum.Enum):
    """What a flag is for, in the grouping of the project's clone-flags notes."""

    SHARING = "sharing"  # share a resource with the caller
    NAMESPACE = "namespace"  # create a new namespace
    PROCESS_CONTROL = "process control"  # how the process or thread is created
    ADVANCED = "advanced"  # pidfd, clone3-only extras


class CloneFlags(enum.IntFlag):
    """Every CLONE_* flag of linux/sched.h; values equal Go's ``syscall.CLONE_*``."""

    CLONE_NEWTIME = 0x00000080
    CLONE_VM = 0x00000100
    CLONE_FS = 0x00000200
    CLONE_FILES = 0x00000400
    CLONE_SIGHAND = 0x00000800
    CLONE_PIDFD = 0x00001000
    CLONE_PTRACE = 0x00002000
    CLONE_VFORK = 0x00004000
    CLONE_PARENT = 0x00008000
    CLONE_THREAD = 0x00010000
    CLONE_NEWNS = 0x00020000
    CLONE_SYSVSEM = 0x00040000
    CLONE_SETTLS = 0x00080000
    CLONE_PARENT_SETTID = 0x00100000
    CLONE_CHILD_CLEARTID = 0x00200000
    CLONE_DETACHED = 0x00400000
    CLONE_UNTRACED = 0x00800000
    CLONE_CHILD_SETTID = 0x01000000
    CLONE_NEWCGROUP = 0x02000000
    CLONE_NEWUTS = 0x04000000
    CLONE_NEWIPC = 0x08000000
    CLONE_NEWUSER = 0x10000000
    CLONE_NEWPID = 0x20000000
    CLONE_NEWNET = 0x40000000
    CLONE_IO = 0x80000000
    CLONE_CLEAR_SIGHAND = 0x100000000
    CLONE_INTO_CGROUP = 0x200000000

    @property
    def group(self) -> FlagGroup:
        """The group of this flag; a combination must lie within one group (else ValueError)."""
        groups = {_INFO[m].group for m in CloneFlags.split(self)}
        if len(groups) != 1:
            raise ValueError(f"{CloneFlags.describe(self)} does not belong to a single FlagGroup")
        return groups.pop()

    @property
    def description(self) -> str:
        """A one-line English description of a single flag."""
        return _info(self).description

    @property
    def ns_file(self) -> str | None:
        """The /proc/PID/ns/ file name of a namespace flag (``mnt`` for CLONE_NEWNS), else None."""
        return _info(self).ns_file

    @classmethod
    def split(cls, value: int) -> tuple[CloneFlags, ...]:
        """The known single flags set in ``value``, lowest bit first (unknown bits are dropped)."""
        value = _check_value(value)
        return tuple(m for m in _ORDERED if value & m)

    @classmethod
    def unknown_bits(cls, value: int) -> int:
        """The bits of ``value`` that are no CLONE_* flag (e.g. an exit signal in clone(2)'s low byte)."""
        return _check_value(value) & ~_KNOWN_MASK

    @classmethod
    def describe(cls, value: int) -> str:
        """``"CLONE_NEWNS|CLONE_NEWPID"`` for 0x20020000; unknown bits as hex; ``"0"`` for no flags."""
        parts = [m.name for m in cls.split(value)]
        unknown = cls.unknown_bits(value)
        if unknown:
            parts.append(hex(unknown))
        return "|".join(parts) or "0"

    @classmethod
    def parse(cls, text: str) -> CloneFlags:
        """Parse ``"CLONE_NEWNS,newpid|0x10"``: flag names (the CLONE_ prefix and case optional) and
        ints (decimal, 0x, 0o, 0b), separated by ``,`` or ``|``. A blank string is 0."""
        if not isinstance(text, str):
            raise TypeError(f"CloneFlags.parse: expected a str, got {type(text).__name__}")
        value = 0
        if not text.strip():
            return cls(0)
        for raw in text.replace("|", ",").split(","):
            value |= _parse_token(raw.strip(), text)
        return cls(value)


class _Info(Value):
    """A flag's group, its description and its file in /proc/PID/ns (a plain class: a NamedTuple is
    built with exec at each start, issue 15)."""

    __slots__ = ("description", "group", "ns_file")

    def __init__(self, group: FlagGroup, description: str, ns_file: Optional[str] = None):
        self.group = group
        self.description = description
        self.ns_file = ns_file


_S, _N, _P, _A = FlagGroup.SHARING, FlagGroup.NAMESPACE, FlagGroup.PROCESS_CONTROL, FlagGroup.ADVANCED
# Keyed by the name without CLONE_; the order and grouping follow the clone-flags notes.
_TABLE = {
    "VM": (_S, "Share the virtual memory (the child runs in the caller's address space, like a thread)."),
    "FS": (_S, "Share filesystem information (root directory, working directory, umask)."),
    "FILES": (_S, "Share the file descriptor table (both see the same open files)."),
    "SIGHAND": (_S, "Share the table of signal handlers."),
    "SYSVSEM": (_S, "Share System V semaphore SEM_UNDO state."),
    "THREAD": (_S, "Put the child in the caller's thread group (like a POSIX thread, same TGID)."),
    "IO": (_S, "Share the I/O context (the I/O scheduler treats both as one)."),
    "NEWNS": (_N, "New mount namespace (isolates mount points).", "mnt"),
    "NEWUTS": (_N, "New UTS namespace (isolates host name and NIS domain name).", "uts"),
    "NEWIPC": (_N, "New IPC namespace (isolates System V IPC and POSIX message queues).", "ipc"),
    "NEWPID": (_N, "New PID namespace (isolates process IDs; the first process is PID 1).", "pid"),
    "NEWNET": (_N, "New network namespace (isolates network devices, addresses, ports).", "net"),
    "NEWUSER": (
        _N, "New user namespace (isolates user and group IDs; unprivileged users can be root inside).", "user"
    ),
    "NEWCGROUP": (_N, "New cgroup namespace (isolates the view of the cgroup hierarchy).", "cgroup"),
    "NEWTIME": (_N, "New time namespace (offsets for the monotonic and boot-time clocks).", "time"),
    "VFORK": (_P, "Suspend the caller until the child calls execve or exits (like vfork())."),
    "PARENT": (_P, "Give the child the caller's parent instead of the caller."),
    "PTRACE": (_P, "If the caller is being traced (e.g. by GDB), trace the child too."),
    "UNTRACED": (_P, "Do not let a tracer force CLONE_PTRACE on the child."),
    "CHILD_SETTID": (_P, "Store the child's thread ID at an address in the child's memory."),
    "PARENT_SETTID": (_P, "Store the child's thread ID at an address in the parent's memory."),
    "CHILD_CLEARTID": (_P, "Clear the child's thread ID at an address when it exits (thread sync)."),
    "SETTLS": (_P, "Give the child a new TLS (thread-local storage) descriptor."),
    "DETACHED": (_P, "Obsolete; ignored by modern kernels."),
    "PIDFD": (_A, "Return a pidfd referring to the child to the parent (for process monitoring)."),
    "CLEAR_SIGHAND": (_A, "Reset every signal handler of the child to SIG_DFL (clone3 only)."),
    "INTO_CGROUP": (_A, "Start the child in the cgroup given by a cgroup fd (clone3 only)."),
}
_INFO: Mapping[int, _Info] = {CloneFlags["CLONE_" + name]: _Info(*row) for name, row in _TABLE.items()}
#: Every flag in the order of the project's clone-flags notes, group by group (as ``pyforkexec flags``
#: lists them), rather than by value.
NOTES_ORDER: tuple[CloneFlags, ...] = tuple(CloneFlags(f) for f in _INFO)

_ORDERED: tuple[CloneFlags, ...] = tuple(sorted(CloneFlags.__members__.values()))
_KNOWN_MASK = sum(_ORDERED)
_BY_NAME: Mapping[str, CloneFlags] = {m.name: m for m in _ORDERED}

#: Short namespace names as util-linux (unshare, nsenter, lsns) and Ansible options spell them.
NAMESPACE_FLAGS: Mapping[str, CloneFlags] = types.MappingProxyType(
    {
        "mount": CloneFlags.CLONE_NEWNS,
        "mnt": CloneFlags.CLONE_NEWNS,
        "uts": CloneFlags.CLONE_NEWUTS,
        "ipc": CloneFlags.CLONE_NEWIPC,
        "net": CloneFlags.CLONE_NEWNET,
        "pid": CloneFlags.CLONE_NEWPID,
        "user": CloneFlags.CLONE_NEWUSER,
        "cgroup": CloneFlags.CLONE_NEWCGROUP,
        "time": CloneFlags.CLONE_NEWTIME,
    }
)

#: Every namespace type's CLONE_NEW* flag, as one mask.
NAMESPACE_MASK: int = sum({int(f) for f in NAMESPACE_FLAGS.values()})

#: Each namespace flag -> its file in /proc/PID/ns/.
NAMESPACE_PROC_FILES: Mapping[CloneFlags, str] = types.MappingProxyType(
    {m: info.ns_file for m, info in _INFO.items() if info.ns_file}
)


def _check_value(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"clone flags must be an int, got {type(value).__name__}")
    if not 0 <= value < _MAX:
        raise ValueError(f"clone flags must fit in 64 unsigned bits, got {value:#x}")
    return int(value)


def _info(flag: CloneFlags) -> _Info:
    info = _INFO.get(int(flag))
    if info is None:
        raise ValueError(f"{CloneFlags.describe(flag)} is not a single flag")
    return info


_BASES = {"0x": (16, "0123456789abcdefABCDEF"), "0o": (8, "01234567"), "0b": (2, "01")}


def _number(token: str) -> Optional[int]:
    """A decimal, 0x, 0o or 0b integer of ASCII digits with an optional sign, else None (int(x, 0)
    would also take ``1_000`` and non-ASCII digits, and refuse ``010``). No re: its import would cost
    every command's start."""
    sign, body = (-1, token[1:]) if token[:1] == "-" else (1, token[1:] if token[:1] == "+" else token)
    if not body.isascii():
        return None
    base, digits = _BASES.get(body[:2].lower(), (10, "0123456789"))
    if base != 10:
        body = body[2:]
    if not body or any(c not in digits for c in body):
        return None
    return sign * int(body, base)


def _parse_token(token: str, text: str) -> int:
    if not token:
        raise ValueError(f"CloneFlags.parse: empty flag in {text!r}")
    if token[0].isdigit() or token[0] in "+-":
        try:
            value = _number(token)  # (int() refuses one of thousands of digits)
            if value is None:
                raise ValueError("not a decimal, 0x, 0o or 0b integer of ASCII digits")
            return _check_value(value)
        except ValueError as exc:
            raise ValueError(f"CloneFlags.parse: bad number {token!r} in {text!r}: {exc}") from None
    name = token.upper()
    flag = _BY_NAME.get(name) or _BY_NAME.get("CLONE_" + name)
    if flag is None:
        raise ValueError(f"CloneFlags.parse: unknown clone flag {token!r} in {text!r}")
    return flag


# Module constants, as Go's syscall package exports them.
CLONE_NEWTIME = CloneFlags.CLONE_NEWTIME
CLONE_VM = CloneFlags.CLONE_VM
CLONE_FS = CloneFlags.CLONE_FS
CLONE_FILES = CloneFlags.CLONE_FILES
CLONE_SIGHAND = CloneFlags.CLONE_SIGHAND
CLONE_PIDFD = CloneFlags.CLONE_PIDFD
CLONE_PTRACE = CloneFlags.CLONE_PTRACE
CLONE_VFORK = CloneFlags.CLONE_VFORK
CLONE_PARENT = CloneFlags.CLONE_PARENT
CLONE_THREAD = CloneFlags.CLONE_THREAD
CLONE_NEWNS = CloneFlags.CLONE_NEWNS
CLONE_SYSVSEM = CloneFlags.CLONE_SYSVSEM
CLONE_SETTLS = CloneFlags.CLONE_SETTLS
CLONE_PARENT_SETTID = CloneFlags.CLONE_PARENT_SETTID
CLONE_CHILD_CLEARTID = CloneFlags.CLONE_CHILD_CLEARTID
CLONE_DETACHED = CloneFlags.CLONE_DETACHED
CLONE_UNTRACED = CloneFlags.CLONE_UNTRACED
CLONE_CHILD_SETTID = CloneFlags.CLONE_CHILD_SETTID
CLONE_NEWCGROUP = CloneFlags.CLONE_NEWCGROUP
CLONE_NEWUTS = CloneFlags.CLONE_NEWUTS
CLONE_NEWIPC = CloneFlags.CLONE_NEWIPC
CLONE_NEWUSER = CloneFlags.CLONE_NEWUSER
CLONE_NEWPID = CloneFlags.CLONE_NEWPID
CLONE_NEWNET = CloneFlags.CLONE_NEWNET
CLONE_IO = CloneFlags.CLONE_IO
CLONE_CLEAR_SIGHAND = CloneFlags.CLONE_CLEAR_SIGHAND
CLONE_INTO_CGROUP = CloneFlags.CLONE_INTO_CGROUP

__all__ = [
    "CLONE_CHILD_CLEARTID",
    "CLONE_CHILD_SETTID",
    "CLONE_CLEAR_SIGHAND",
    "CLONE_DETACHED",
    "CLONE_FILES",
    "CLONE_FS",
    "CLONE_INTO_CGROUP",
    "CLONE_IO",
    "CLONE_NEWCGROUP",
    "CLONE_NEWIPC",
    "CLONE_NEWNET",
    "CLONE_NEWNS",
    "CLONE_NEWPID",
    "CLONE_NEWTIME",
    "CLONE_NEWUSER",
    "CLONE_NEWUTS",
    "CLONE_PARENT",
    "CLONE_PARENT_SETTID",
    "CLONE_PIDFD",
    "CLONE_PTRACE",
    "CLONE_SETTLS",
    "CLONE_SIGHAND",
    "CLONE_SYSVSEM",
    "CLONE_THREAD",
    "CLONE_UNTRACED",
    "CLONE_VFORK",
    "CLONE_VM",
    "NAMESPACE_FLAGS",
    "NAMESPACE_MASK",
    "NAMESPACE_PROC_FILES",
    "CloneFlags",
    "FlagGroup",
]
