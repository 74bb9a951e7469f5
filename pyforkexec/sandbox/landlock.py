"""Landlock (landlock(7)): what the program may do beneath given paths, on given TCP ports, and across
its domain's boundary (scopes), enforced by the kernel from execve on, for it and every descendant.

``SysProcAttr.landlock = Landlock(paths=[LandlockPath("/srv/data", ["read", "write"])], ...)``.

What is restricted (the ruleset's *handled* rights), and what the rules allow back:

- filesystem: when ``paths`` has any rule, every filesystem right the kernel's ABI knows is
  restricted, and each ``LandlockPath`` allows its rights beneath its path (a file: on that file).
  A right the ABI does not know (``truncate`` below 3, ``ioctl_dev`` below 5) is then not restricted
  anywhere: ``plan()`` reports it, and strict mode refuses.
  With no path rule, file access is not restricted (a policy of ports or scopes alone; a program
  denied every file could not even be executed).
- network: when ``ports`` has any rule, TCP bind and connect (ABI 4) are both restricted, and each
  ``LandlockPort`` allows its rights on its port. To deny all networking, use a new network namespace.
- scopes (ABI 6): ``abstract_unix_socket`` (no connecting to abstract unix sockets created outside
  the domain), ``signal`` (no signals to processes outside it).

Kernels differ (Debian 12's 6.1 has ABI 2). ``Landlock.plan(abi)`` says what a kernel with that ABI
enforces: ``LandlockPlan(effective, dropped)``, ``effective`` the policy it can enforce and
``dropped`` one line per right it cannot (``paths[2].access: truncate needs Landlock ABI 3, this
kernel has 2``). ``mode="best_effort"`` (the default) enforces ``effective``; ``mode="strict"``
refuses the spawn (ValueError naming the right) when anything would be dropped.
``landlock_abi()`` is the kernel's ABI version (0: no Landlock); the environment variable
``PYFORKEXEC_LANDLOCK_ABI`` lowers it (never raises it), to see what an older kernel would do.

The parent builds the ruleset before clone (the rule paths are opened with O_PATH as the parent sees
them, so name them as this process sees them, not inside a new root: a bind mount carries the rule of
its source); the child sets no_new_privs and calls landlock_restrict_self on it just before its fd
shuffle, then closes it: the program never gets it.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple, Optional, Union

from .._record import Value
from ..checks import check_choice, check_int, check_list, fail, to_bytes
from . import kernel_fds

if TYPE_CHECKING:  # checkers see the standard decorator; see _dataclass.py
    from dataclasses import dataclass
else:
    from .._dataclass import dataclass

ABI_ENV = "PYFORKEXEC_LANDLOCK_ABI"
MODES = ("best_effort", "strict")

# name -> (bit, the ABI that introduced it). LANDLOCK_ACCESS_FS_* (linux/landlock.h).
FS_RIGHTS = {
    "execute": (1 << 0, 1), "write_file": (1 << 1, 1), "read_file": (1 << 2, 1), "read_dir": (1 << 3, 1),
    "remove_dir": (1 << 4, 1), "remove_file": (1 << 5, 1), "make_char": (1 << 6, 1), "make_dir": (1 << 7, 1),
    "make_reg": (1 << 8, 1), "make_sock": (1 << 9, 1), "make_fifo": (1 << 10, 1), "make_block": (1 << 11, 1),
    "make_sym": (1 << 12, 1), "refer": (1 << 13, 2), "truncate": (1 << 14, 3), "ioctl_dev": (1 << 15, 5),
}
# Below the ABI that knows them, the kernel denies these everywhere rather than allowing them (ABI 1
# never lets a file move to another directory): nothing of the policy is lost.
ALWAYS_DENIED = ("refer",)
# The rights that apply to a file (the others only to what is beneath a directory).
FILE_RIGHTS = ("execute", "write_file", "read_file", "truncate", "ioctl_dev")
FS_GROUPS = {
    "read": ("read_file", "read_dir"),
    "write": ("write_file", "truncate", "make_char", "make_dir", "make_reg", "make_sock", "make_fifo",
              "make_block", "make_sym", "remove_dir", "remove_file"),
}
NET_RIGHTS = {"bind": (1 << 0, 4), "connect": (1 << 1, 4)}  # LANDLOCK_ACCESS_NET_{BIND,CONNECT}_TCP
SCOPES = {"abstract_unix_socket": (1 << 0, 6), "signal": (1 << 1, 6)}  # LANDLOCK_SCOPE_*

_kernel_abi: Optional[int] = None


def landlock_abi() -> int:
    """The Landlock ABI version this process plans with: the kernel's (0 when Landlock is missing or
    disabled), lowered to ``$PYFORKEXEC_LANDLOCK_ABI`` when that is set to a smaller number. OSError
    when the kernel refuses to say otherwise (a seccomp filter's EPERM or EINVAL)."""
    global _kernel_abi
    if _kernel_abi is None:
        _kernel_abi = kernel_fds.landlock_abi_version()
    cap = os.environ.get(ABI_ENV)
    if cap is None:
        return _kernel_abi
    if not (cap.isascii() and cap.isdigit()):
        fail(ABI_ENV, f"must be a Landlock ABI version (0 or more), got {cap!r}")
    return min(_kernel_abi, int(cap))


@dataclass(frozen=True)
class LandlockPath:
    """Allow ``access`` (right names, or the groups ``read``/``write``) beneath ``path``."""

    path: Union[str, bytes]
    access: Sequence[str]


@dataclass(frozen=True)
class LandlockPort:
    """Allow ``access`` (``bind``, ``connect``) on TCP ``port``."""

    port: int
    access: Sequence[str]


@dataclass(frozen=True)
class Landlock:
    """A Landlock policy; see the module documentation."""

    paths: Sequence[LandlockPath] = ()
    ports: Sequence[LandlockPort] = ()
    scopes: Sequence[str] = ()
    mode: str = "best_effort"

    def plan(self, abi: int) -> LandlockPlan:
        """What a kernel with Landlock ABI ``abi`` enforces of this policy. A value of the wrong type,
        or a name that is no right or scope, is a TypeError or ValueError naming its field (the paths
        themselves are looked at when a process is spawned)."""
        check_int("abi", abi, 0, 1 << 31)
        _check_shape("", self)
        return self._plan(abi)[0]

    def _plan(self, abi: int) -> tuple[LandlockPlan, tuple[int, ...], tuple[int, ...]]:
        """plan(), and where each rule of its ``effective`` came from: the rule's index in this
        policy's paths and ports (a rule left with no right the ABI knows is not in ``effective``,
        so the numbering differs, and errors must name the caller's)."""
        dropped: list[str] = []

        def keep(field: str, names: Sequence[str], table: dict[str, tuple[int, int]]) -> tuple[str, ...]:
            kept = []
            for name in dict.fromkeys(names):  # each once, in the order given
                if name not in table:
                    fail(field, f"unknown name {name!r}; known: {', '.join(table)}")
                need = table[name][1]
                if need <= abi:
                    kept.append(name)
                else:
                    dropped.append(f"{field}: {name} needs Landlock ABI {need}, this kernel has {abi}")
            return tuple(kept)

        paths, path_indices = [], []
        for i, rule in enumerate(self.paths):
            access = keep(f"paths[{i}].access", _expand(rule.access), FS_RIGHTS)
            if access:
                paths.append(LandlockPath(rule.path, access))
                path_indices.append(i)
        ports, port_indices = [], []
        for i, port in enumerate(self.ports):
            access = keep(f"ports[{i}].access", tuple(port.access), NET_RIGHTS)
            if access:
                ports.append(LandlockPort(port.port, access))
                port_indices.append(i)
        scopes = keep("scopes", tuple(self.scopes), SCOPES)
        if self.paths and not paths:  # so file access is not restricted at all
            dropped.append("paths: no rule has a right this kernel knows: file access is not restricted")
        elif self.paths:  # the rights the policy denies outside its rules, that this ABI cannot
            dropped += [f"paths: {name} needs Landlock ABI {need}, this kernel has {abi}: it is not "
                        "restricted anywhere" for name, (_, need) in FS_RIGHTS.items()
                        if need > abi and name not in ALWAYS_DENIED]
        plan = LandlockPlan(Landlock(tuple(paths), tuple(ports), scopes, self.mode), tuple(dropped))
        return plan, tuple(path_indices), tuple(port_indices)


# The functional form, with the types themselves: the class form's annotations are strings here
# (``from __future__ import annotations``), which typing turns into ForwardRefs whose compile() sets
# up the compiler's AST types, ~0.8 ms of every command's start (issue 15). The same NamedTuple.
LandlockPlan = NamedTuple("LandlockPlan", [("effective", Landlock), ("dropped", tuple[str, ...])])  # noqa: UP014
LandlockPlan.__doc__ = """What a kernel with a given ABI enforces of a policy (``effective``), and what it
cannot (``dropped``: one line per right, naming the field)."""


def _expand(access: Sequence[str]) -> tuple[str, ...]:
    """Right names with the groups replaced by their members, each once, in the kernel's bit order."""
    names = set()
    for name in access:
        names.update(FS_GROUPS.get(name, (name,)))
    return (*(n for n in FS_RIGHTS if n in names), *sorted(names - FS_RIGHTS.keys()))  # unknown: last


def _mask(names: Sequence[str], table: dict[str, tuple[int, int]]) -> int:
    mask = 0
    for name in names:  # a name given twice is one right
        mask |= table[name][0]
    return mask


def _known(table: dict[str, tuple[int, int]], abi: int) -> int:
    return sum(bit for bit, need in table.values() if need <= abi)


class ResolvedLandlock(Value):
    """A policy checked against the kernel: the masks of the ruleset and its rules, ready to build."""

    __slots__ = ("dropped", "fs", "net", "paths", "ports", "scoped")

    def __init__(self, fs: int, net: int, scoped: int, paths: tuple[tuple[int, bytes, int], ...],
                 ports: tuple[tuple[int, int, int], ...], dropped: tuple[str, ...]):
        self.fs = fs  # handled_access_fs
        self.net = net  # handled_access_net
        self.scoped = scoped
        self.paths = paths  # (index in the policy's paths, path, allowed access)
        self.ports = ports  # (index in the policy's ports, port, allowed access)
        self.dropped = dropped

    @property
    def enforces(self) -> bool:
        return bool(self.fs or self.net or self.scoped)


def _check_access(field: str, access: object, names: Sequence[str]) -> tuple[str, ...]:
    values = check_list(field, access, "access right names")
    if not values:
        fail(field, "must name at least one access right")
    for j, name in enumerate(values):
        if not isinstance(name, str):
            fail(f"{field}[{j}]", f"must be an access right name, not {type(name).__name__}", TypeError)
        if name not in names:
            fail(f"{field}[{j}]", f"unknown access right {name!r}; known: {', '.join(names)}")
    return tuple(values)


def _check_path_rule(field: str, rule: object) -> LandlockPath:
    if not isinstance(rule, LandlockPath):
        fail(field, f"must be a LandlockPath, not {type(rule).__name__}", TypeError)
    path = to_bytes(f"{field}.path", rule.path)
    if not path:
        fail(f"{field}.path", "must not be empty")
    access = _check_access(f"{field}.access", rule.access, (*FS_RIGHTS, *FS_GROUPS))
    try:
        st = os.stat(path)
    except OSError as e:
        fail(f"{field}.path", f"{os.fsdecode(path)}: {e.strerror}")
    if not stat.S_ISDIR(st.st_mode):
        # A group names rights for directories too: on a file, keep its file rights. A right named
        # on its own that only applies beneath a directory is a mistake the kernel would refuse.
        explicit = [n for n in access if n in FS_RIGHTS and n not in FILE_RIGHTS]
        if explicit:
            fail(f"{field}.access", f"{explicit[0]} applies beneath a directory, and "
                 f"{os.fsdecode(path)} is not one (a file takes: {', '.join(FILE_RIGHTS)})")
        access = tuple(n for n in _expand(access) if n in FILE_RIGHTS)  # each group has file rights
    return LandlockPath(path, access)


def _check_shape(field: str, value: object) -> tuple[str, Sequence[LandlockPath], list[LandlockPort],
                                                  Sequence[str]]:
    """The policy's values, each of its type and naming known rights (its paths not looked at yet),
    or ValueError/TypeError naming the field (``field`` "" for the policy's own: ``paths[0].access``)."""
    at = f"{field}." if field else ""
    if not isinstance(value, Landlock):
        fail(field or "policy", f"must be a Landlock, not {type(value).__name__}", TypeError)
    mode = check_choice(f"{at}mode", value.mode, MODES)
    paths = check_list(f"{at}paths", value.paths, "LandlockPath rules")
    for i, rule in enumerate(paths):
        if not isinstance(rule, LandlockPath):
            fail(f"{at}paths[{i}]", f"must be a LandlockPath, not {type(rule).__name__}", TypeError)
        _check_access(f"{at}paths[{i}].access", rule.access, (*FS_RIGHTS, *FS_GROUPS))
    ports = []
    for i, rule in enumerate(check_list(f"{at}ports", value.ports, "LandlockPort rules")):
        if not isinstance(rule, LandlockPort):
            fail(f"{at}ports[{i}]", f"must be a LandlockPort, not {type(rule).__name__}", TypeError)
        port = check_int(f"{at}ports[{i}].port", rule.port, 0, 65535)
        ports.append(LandlockPort(port, _check_access(f"{at}ports[{i}].access", rule.access, NET_RIGHTS)))
    scopes = check_list(f"{at}scopes", value.scopes, "scope names")
    for j, name in enumerate(scopes):
        check_choice(f"{at}scopes[{j}]", name, tuple(SCOPES))
    return mode, paths, ports, scopes


def check_landlock(field: str, value: object) -> ResolvedLandlock:
    """``value`` as the masks to build, or ValueError/TypeError naming the field; in strict mode, also
    when this kernel's Landlock ABI cannot enforce all of it."""
    mode, rules, ports, scopes = _check_shape(field, value)
    if not (rules or ports or scopes):  # an empty YAML mapping, a policy not written yet
        fail(field, "restricts nothing: give paths, ports or scopes (or leave the policy out)")
    paths = tuple(_check_path_rule(f"{field}.paths[{i}]", r) for i, r in enumerate(rules))
    try:
        abi = landlock_abi()
    except OSError as e:  # not "no Landlock": a best-effort plan of ABI 0 would restrict nothing
        fail(field, f"{e.strerror}: what this kernel enforces cannot be told")
    policy = Landlock(paths, tuple(ports), tuple(scopes), mode)
    (effective, dropped), path_indices, port_indices = policy._plan(abi)
    if mode == "strict" and dropped:
        fail(f"{field}.{dropped[0]}", "strict mode enforces every right or refuses")
    return ResolvedLandlock(
        fs=_known(FS_RIGHTS, abi) if effective.paths else 0,
        net=_known(NET_RIGHTS, abi) if effective.ports else 0,
        scoped=_mask(effective.scopes, SCOPES),
        paths=tuple((i, bytes(r.path), _mask(r.access, FS_RIGHTS))
                    for i, r in zip(path_indices, effective.paths)),
        ports=tuple((i, r.port, _mask(r.access, NET_RIGHTS))
                    for i, r in zip(port_indices, effective.ports)),
        dropped=dropped,
    )


def build_ruleset(field: str, policy: ResolvedLandlock, opened: list[int]) -> int:
    """Create the ruleset and add its rules (in the parent, before clone); its fd is in ``opened``.
    A rule path's O_PATH fd lives only while its rule is added."""
    try:
        ruleset = kernel_fds.landlock_create_ruleset(policy.fs, policy.net, policy.scoped)
    except OSError as e:
        raise OSError(e.errno, f"{field}: landlock_create_ruleset: {e.strerror}") from None
    opened.append(ruleset)
    for i, path, access in policy.paths:  # i: the rule's index in the caller's policy
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError as e:
            raise OSError(e.errno, f"{field}.paths[{i}].path: {e.strerror}", os.fsdecode(path)) from None
        opened.append(fd)
        try:
            kernel_fds.landlock_add_path_rule(ruleset, fd, access)
        except OSError as e:
            if e.errno == errno.EBADFD:  # an internal filesystem's file (nsfs: /proc/PID/ns/*): bad input
                fail(f"{field}.paths[{i}].path", f"{os.fsdecode(path)} is on a filesystem Landlock takes no "
                     "rule on (an internal one, as /proc/PID/ns/* are)")
            raise OSError(e.errno, f"{field}.paths[{i}]: landlock_add_rule: {e.strerror}") from None
        finally:
            opened.remove(fd)
            os.close(fd)
    for i, port, access in policy.ports:
        try:
            kernel_fds.landlock_add_port_rule(ruleset, port, access)
        except OSError as e:
            raise OSError(e.errno, f"{field}.ports[{i}]: landlock_add_rule: {e.strerror}") from None
    return ruleset


def is_ruleset_fd(fd: int) -> bool:
    """Whether ``fd`` is open here and is a Landlock ruleset."""
    try:
        return os.readlink(f"/proc/thread-self/fd/{fd}") == "anon_inode:[landlock-ruleset]"
    except OSError:
        return False
