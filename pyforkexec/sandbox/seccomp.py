"""Seccomp filters from allow/deny lists of system call names, compiled to classic BPF here.

``SeccompFilter(deny=["mount", "ptrace"])`` fails those calls with EPERM and allows the rest;
``SeccompFilter(default_action="errno", errno=ENOSYS, allow=[...])`` allows only the listed calls.
Actions: "allow", "errno" (fail with ``errno``), "kill_process", "kill_thread", "trap" (SIGSYS),
"log" (allow and log). Names are those of the kernel's unistd.h; a name that exists on another
supported architecture but not on this one (``open`` on aarch64) is skipped, as libseccomp does;
a filter left denying nothing on this architecture is refused, and so is an ``errno`` other than
EPERM that no action returns (a ``kill_process`` deny with ``errno``: the errno would be dropped).

The program checks the architecture first: a system call of another ABI (i386 or x32 on x86_64,
arm32 on aarch64) would bypass the lists, so it kills the process. The child installs the filter as
its last step, right before execve, so the filter must allow execve (execveat with exec_fd).

``restrict_set_id(arch)`` is the filter of SysProcAttr.restrict_suid_sgid (systemd's
RestrictSUIDSGID=): every call that would give a file a set-user-ID or set-group-ID mode fails with
EPERM: chmod, fchmod, fchmodat, fchmodat2 with such a mode; open, openat (with O_CREAT or O_TMPFILE)
and creat, mknod, mknodat creating with one. mkdir and mkdirat need no rule: the kernel keeps only
the permission and sticky bits of their mode (a directory is set-group-ID only by inheritance, which
gives files their directory's group, never the set-group-ID bit, and no privilege). openat2 carries
its mode in a struct a filter cannot read, so it fails with ENOSYS (a C library falls back to
openat); so does io_uring_setup: an io_uring opens files (IORING_OP_OPENAT, OPENAT2) without a
system call a filter sees. The child installs it before the caller's filter, as a filter of its own:
the kernel takes the strictest answer of the two, so the caller's cannot allow what it denies.

``restrict_namespaces(allowed, arch)`` is the filter of SysProcAttr.restrict_namespaces (systemd's
RestrictNamespaces=): ``allowed`` is the mask of CLONE_NEW* types the program may still create or
join. unshare(flags) with another type's bit, clone(flags, ...) with another type's bit among those
clone takes (CLONE_NEWTIME, 0x80, is in clone's CSIGNAL byte, the exit signal: only clone3 and
unshare make a time namespace), and setns(fd, nstype) with another type's bit or nstype 0 (whatever
the fd is) fail with EPERM. clone3 fails with ENOSYS: its flags are in a struct a filter cannot read
(glibc's posix_spawn and pthread_create then fall back to clone). Only the low 32 bits of each
argument are read: clone and setns take only those (the kernel drops the high word: clone's
lower_32_bits, setns's int), and unshare fails with EINVAL on any high bit. With every type allowed
there is nothing to restrict and no filter.
"""

from __future__ import annotations

import errno as errno_mod
import stat
import struct
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Optional, Union

from ..checks import check_choice, check_int, check_list, fail
from ..flags import CLONE_NEWTIME, NAMESPACE_MASK
from . import syscalls

if TYPE_CHECKING:  # checkers see the standard decorator; see _dataclass.py
    from dataclasses import dataclass
else:
    from .._dataclass import dataclass

# linux/seccomp.h return values.
ACTIONS = {
    "allow": 0x7FFF0000,
    "errno": 0x00050000,  # | errno
    "kill_process": 0x80000000,
    "kill_thread": 0x00000000,
    "trap": 0x00030000,
    "log": 0x7FFC0000,
}
MAX_ERRNO = 4095
BPF_MAXINSNS = 4096  # linux/bpf_common.h (tests/unit/test_step_layout.py checks it against _child)
# classic BPF (linux/filter.h): ld [k], jeq #k, jge #k, jset #k, ret #k
BPF_LD_W_ABS, BPF_JEQ_K, BPF_JGE_K, BPF_JSET_K, BPF_RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
OFFSET_NR, OFFSET_ARCH, OFFSET_ARGS = 0, 4, 16  # struct seccomp_data: nr, arch, then u64 args[6]
# The low 32 bits of args[i] (a mode or open flags: int or umode_t, whose high bits the kernel drops)
# are the word at args[i]'s own offset on a little-endian architecture: every one of AUDIT_ARCH is.
LITTLE_ENDIAN = frozenset(("x86_64", "aarch64"))
SET_ID_BITS = stat.S_ISUID | stat.S_ISGID
# open flags that create a file (the same on x86_64 and aarch64): O_CREAT, and __O_TMPFILE, the bit
# O_TMPFILE adds to O_DIRECTORY.
CREATE_FLAGS = 0o100 | 0o20000000
# (call, its open-flags argument or None when every call creates or changes the mode, its mode argument).
# The calls of one architecture only (chmod, open, creat, mknod: x86_64) are skipped on another.
SET_ID_CALLS = (("chmod", None, 1), ("fchmod", None, 1), ("fchmodat", None, 2), ("fchmodat2", None, 2),
                ("creat", None, 1), ("open", 1, 2), ("openat", 2, 3), ("mknod", None, 1),
                ("mknodat", None, 2))
UNFILTERABLE_CALLS = ("openat2", "io_uring_setup")  # fail with ENOSYS: see the module documentation
SyscallName = Union[str, int]


@dataclass(frozen=True)
class SeccompFilter:
    """System calls to allow or deny, and what every other one does (see the module documentation).

    default_action: what a system call in neither list does.
    allow: calls that are allowed (when the default is not "allow").
    deny: calls that get ``deny_action`` (when the default is something else).
    errno: the error of the "errno" action, EPERM by default.
    """

    default_action: str = "allow"
    allow: Sequence[SyscallName] = ()
    deny: Sequence[SyscallName] = ()
    errno: int = errno_mod.EPERM
    deny_action: str = "errno"


def insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def _numbers(field: str, names: object, arch: str) -> list[int]:
    out = []
    nrs = syscalls.table(arch)
    for i, name in enumerate(check_list(field, names, "system call names")):
        if isinstance(name, str):
            if name in nrs:
                out.append(nrs[name])
            elif not syscalls.known_anywhere(name):
                fail(f"{field}[{i}]", f"unknown system call {name!r}")
        else:
            out.append(check_int(f"{field}[{i}]", name, 0, syscalls.X32_SYSCALL_BIT - 1))
    return out


def _action(field: str, name: object, code: int) -> int:
    value = ACTIONS[check_choice(field, name, tuple(ACTIONS))]
    return value | code if name == "errno" else value


def check_seccomp(field: str, f: object, exec_call: str = "execve", arch: Optional[str] = None) -> bytes:
    """The BPF program of ``f`` for ``arch`` (this machine by default), after checking every field."""
    if not isinstance(f, SeccompFilter):
        fail(field, f"must be a SeccompFilter, not {type(f).__name__}", TypeError)
    arch = arch or syscalls.machine()
    if arch not in syscalls.AUDIT_ARCH:
        fail(field, f"seccomp filters are supported on {', '.join(syscalls.AUDIT_ARCH)}, not {arch}")
    code = check_int(f"{field}.errno", f.errno, 1, MAX_ERRNO)
    default = _action(f"{field}.default_action", f.default_action, code)
    deny_action = _action(f"{field}.deny_action", f.deny_action, code)
    allow, deny = _numbers(f"{field}.allow", f.allow, arch), _numbers(f"{field}.deny", f.deny, arch)
    if f.allow and f.default_action == "allow":
        fail(f"{field}.allow", "has no effect when default_action is 'allow': list calls to deny instead")
    if f.deny and deny_action == default:
        fail(f"{field}.deny", f"has no effect: deny_action and default_action are both {f.deny_action!r}")
    if f.default_action == "allow" and not f.deny:  # an empty YAML mapping, a filter not written yet
        fail(field, "restricts nothing: list calls to deny, or another default_action (or leave it out)")
    if f.default_action == "allow" and not deny:  # every name one of another architecture's calls
        fail(f"{field}.deny", f"restricts nothing on {arch}: none of its calls exists here (each is another "
             "architecture's)")
    if code != errno_mod.EPERM and "errno" not in (f.default_action, f.deny_action):
        fail(f"{field}.errno", "is returned by no action: set default_action or deny_action to 'errno' (or "
             "leave errno out)")
    both = set(allow) & set(deny)
    if both:
        names = {nr: name for name, nr in syscalls.table(arch).items()}
        fail(field, f"{', '.join(sorted(names.get(n, str(n)) for n in both))} both allowed and denied")
    rules = tuple(dict.fromkeys([*((nr, ACTIONS["allow"]) for nr in allow),
                                 *((nr, deny_action) for nr in deny)]))
    size = len(compile_rules(arch, (), default)) // 8 + 2 * len(rules)
    if size > BPF_MAXINSNS:
        fail(field, f"{size} BPF instructions, the kernel takes at most {BPF_MAXINSNS}")
    nr = syscalls.table(arch)[exec_call]
    if dict(rules).get(nr, default) not in (ACTIONS["allow"], ACTIONS["log"]):
        fail(field, f"the filter blocks {exec_call}, which the child calls right after installing it: "
             f"allow {exec_call!r}")
    return compile_rules(arch, rules, default)


@lru_cache(maxsize=64)
def compile_rules(arch: str, rules: tuple[tuple[int, int], ...], default: int) -> bytes:
    """The program: check the architecture (and x32), then one comparison per (number, action)."""
    prog = _prologue(arch)
    for nr, action in rules:
        prog += [insn(BPF_JEQ_K, nr, jf=1), insn(BPF_RET_K, action)]
    prog.append(insn(BPF_RET_K, default))
    return b"".join(prog)


def _prologue(arch: str) -> list[bytes]:
    """Kill a call of another ABI (i386 or x32 on x86_64, arm32 on aarch64), which would bypass the
    numbers below; leave the call's number loaded."""
    kill = ACTIONS["kill_process"]
    prog = [insn(BPF_LD_W_ABS, OFFSET_ARCH), insn(BPF_JEQ_K, syscalls.AUDIT_ARCH[arch], jt=1),
            insn(BPF_RET_K, kill), insn(BPF_LD_W_ABS, OFFSET_NR)]
    if arch == "x86_64":
        prog += [insn(BPF_JGE_K, syscalls.X32_SYSCALL_BIT, jf=1), insn(BPF_RET_K, kill)]
    return prog


def _low_word(arg: int) -> int:
    return OFFSET_ARGS + 8 * arg


@lru_cache(maxsize=4)
def restrict_set_id(arch: Optional[str] = None) -> bytes:
    """The program of SysProcAttr.restrict_suid_sgid for ``arch`` (this machine by default): EPERM for
    a call giving a file a set-user-ID or set-group-ID mode, ENOSYS for openat2 and io_uring_setup,
    every other call allowed (see the module documentation)."""
    arch = arch or syscalls.machine()
    if arch not in LITTLE_ENDIAN:
        raise ValueError(f"no set-id restriction for {arch}: its arguments' low words are not known")
    nrs, eperm = syscalls.table(arch), ACTIONS["errno"] | errno_mod.EPERM
    prog = _prologue(arch)
    for name, flags_arg, mode_arg in SET_ID_CALLS:
        if name not in nrs:
            continue
        # nr == this call? then (when it has open flags: creating?) mode & (S_ISUID|S_ISGID)? EPERM.
        # Every way out but EPERM reloads the number for the next call's comparison.
        checks = [] if flags_arg is None else [insn(BPF_LD_W_ABS, _low_word(flags_arg)),
                                               insn(BPF_JSET_K, CREATE_FLAGS, jf=3)]
        checks += [insn(BPF_LD_W_ABS, _low_word(mode_arg)), insn(BPF_JSET_K, SET_ID_BITS, jf=1),
                   insn(BPF_RET_K, eperm), insn(BPF_LD_W_ABS, OFFSET_NR)]
        prog += [insn(BPF_JEQ_K, nrs[name], jf=len(checks)), *checks]
    for name in UNFILTERABLE_CALLS:
        prog += [insn(BPF_JEQ_K, nrs[name], jf=1), insn(BPF_RET_K, ACTIONS["errno"] | errno_mod.ENOSYS)]
    prog.append(insn(BPF_RET_K, ACTIONS["allow"]))
    return b"".join(prog)


@lru_cache(maxsize=16)
def restrict_namespaces(allowed: int, arch: Optional[str] = None) -> bytes:
    """The program of SysProcAttr.restrict_namespaces for ``arch`` (this machine by default): EPERM for
    unshare, clone or setns of a namespace type outside ``allowed`` (a mask of CLONE_NEW* flags) and
    for setns with nstype 0, ENOSYS for clone3, every other call allowed (see the module
    documentation). ``allowed`` must leave a type out: with every type there is nothing to refuse."""
    arch = arch or syscalls.machine()
    if arch not in LITTLE_ENDIAN:
        raise ValueError(f"no namespace restriction for {arch}: its arguments' low words are not known")
    denied = NAMESPACE_MASK & ~allowed
    if not denied:
        raise ValueError("every namespace type is allowed: there is nothing to restrict")
    nrs, eperm, allow = syscalls.table(arch), ACTIONS["errno"] | errno_mod.EPERM, ACTIONS["allow"]
    prog = _prologue(arch)
    # nr == call? then load its flags: a denied bit? EPERM, else allow.
    for name, arg, bits in (("unshare", 0, denied), ("clone", 0, denied & ~int(CLONE_NEWTIME))):
        if bits:
            prog += [insn(BPF_JEQ_K, nrs[name], jf=4), insn(BPF_LD_W_ABS, _low_word(arg)),
                     insn(BPF_JSET_K, bits, jf=1), insn(BPF_RET_K, eperm), insn(BPF_RET_K, allow)]
    # setns: nstype 0 (any type: the fd's own) or a denied bit (a pidfd takes several)? EPERM.
    prog += [insn(BPF_JEQ_K, nrs["setns"], jf=5), insn(BPF_LD_W_ABS, _low_word(1)),
             insn(BPF_JEQ_K, 0, jt=1), insn(BPF_JSET_K, denied, jf=1), insn(BPF_RET_K, eperm),
             insn(BPF_RET_K, allow)]
    prog += [insn(BPF_JEQ_K, nrs["clone3"], jf=1), insn(BPF_RET_K, ACTIONS["errno"] | errno_mod.ENOSYS)]
    prog.append(insn(BPF_RET_K, allow))
    return b"".join(prog)
