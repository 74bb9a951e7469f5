"""Compiles ProcAttr/SysProcAttr into the flat step list the C child runs.

The order and conditions are those of Go 1.23's forkAndExecInChild1 (see the reference notes);
extension steps are placed where noted. Nothing here touches the kernel: the plan is plain data.
"""

from __future__ import annotations

import signal
import struct
from dataclasses import dataclass, field
from typing import Union

from . import _child
from . import flags as F
from .attrs import SysProcAttr, SysProcIDMap
from .errors import ErrorLocation as L

OPS, SYS, CONST = _child.OPS, _child.SYS, _child.CONST
STEP = struct.Struct("=iiiiq6q")
assert STEP.size == CONST["STEP_SIZE"], "plan.py and _child.c disagree on the step layout"

NEWUSER, NEWNS, NEWTIME = int(F.CLONE_NEWUSER), int(F.CLONE_NEWNS), int(F.CLONE_NEWTIME)
CLONE_VM, CLONE_VFORK, CLONE_PIDFD = int(F.CLONE_VM), int(F.CLONE_VFORK), int(F.CLONE_PIDFD)
CLONE_CLEAR_SIGHAND, CLONE_INTO_CGROUP = int(F.CLONE_CLEAR_SIGHAND), int(F.CLONE_INTO_CGROUP)
# Python ignores these at start-up; a child expects them default, as subprocess and Go give it.
FORCE_DEFAULT_SIGNALS = (1 << (signal.SIGPIPE - 1)) | (1 << (signal.SIGXFSZ - 1))
# Index of ID_MAP_WRITE / UNSHARE_USER_READ errors: errors.ID_MAP_FILES.
UID_MAP, SETGROUPS, GID_MAP = 0, 1, 2


class Blob(bytes):
    """A step argument passed by address: the child gets a pointer to these bytes."""


Arg = Union[int, Blob]


@dataclass
class Plan:
    """What one spawn needs: the packed steps, the bytes they point to, and the clone flags."""

    steps: bytes
    blobs: tuple[bytes, ...]
    flags: int
    cgroup_fd: int
    map_pipe: bool  # the child waits for the parent's uid/gid maps
    parent_writes_maps: bool


@dataclass
class Builder:
    steps: list[bytes] = field(default_factory=list)
    blobs: list[bytes] = field(default_factory=list)

    def add(self, op: str, loc: L, *args: Arg, nr: int = 0, index: int = 0) -> None:
        refs, values = 0, []
        for j, a in enumerate(args):
            if isinstance(a, Blob):
                refs |= 1 << j
                self.blobs.append(a)
                a = len(self.blobs) - 1
            values.append(a)
        values += [0] * (6 - len(values))
        self.steps.append(STEP.pack(OPS[op], loc, index, refs, nr, *values))

    def syscall(self, loc: L, name: str, *args: Arg, index: int = 0) -> None:
        self.add("SYSCALL", loc, *args, nr=SYS[name], index=index)


def format_id_maps(maps: list[SysProcIDMap]) -> bytes:
    return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps).encode()


def cstr(data: bytes) -> Blob:
    return Blob(data + b"\0")


@dataclass
class Inputs:
    """The validated, encoded values a plan is compiled from."""

    sys: SysProcAttr
    cloneflags: int
    unshareflags: int
    files: tuple[int, ...]
    dir: bytes
    chroot: bytes
    setns_fds: tuple[tuple[int, int], ...] = ()  # (fd, nstype), user namespaces first
    map_fds: tuple[int, int] = (-1, -1)  # (read end, write end)
    ppid: int = 0
    exec_fd: int = -1


def compile_plan(i: Inputs) -> Plan:
    s, b = i.sys, Builder()
    has_maps = s.uid_mappings is not None or s.gid_mappings is not None
    unshare_user = bool(i.unshareflags & NEWUSER)

    for n, (fd, nstype) in enumerate(i.setns_fds):  # extension: join namespaces before anything else
        b.syscall(L.SETNS, "setns", fd, nstype, index=n)
    if s.ambient_caps:
        b.syscall(L.KEEPCAPS, "prctl", CONST["PR_SET_KEEPCAPS"], 1)
    if has_maps:
        b.add("MAP_PIPE", L.UNSHARE_USER_READ, i.map_fds[1], i.map_fds[0])
    if s.setsid:
        b.syscall(L.SETSID, "setsid")
    if s.setpgid or s.foreground:
        b.syscall(L.SETPGID, "setpgid", 0, s.pgid)
    if s.foreground:
        b.add("FOREGROUND", L.IOCTL, s.ctty, s.pgid)
    b.add("SIGNALS", L.SIGNAL_RESET, FORCE_DEFAULT_SIGNALS)
    if i.unshareflags:
        b.syscall(L.UNSHARE, "unshare", i.unshareflags)
        if unshare_user and s.gid_mappings is not None:
            setgroups = b"allow\0" if s.gid_mappings_enable_setgroups else b"deny\0"
            b.add("WRITE_FILE", L.ID_MAP_WRITE, cstr(b"/proc/self/setgroups"), Blob(setgroups),
                  len(setgroups), index=SETGROUPS)
            data = format_id_maps(s.gid_mappings)
            b.add("WRITE_FILE", L.ID_MAP_WRITE, cstr(b"/proc/self/gid_map"), Blob(data), len(data),
                  index=GID_MAP)
        if unshare_user and s.uid_mappings is not None:
            data = format_id_maps(s.uid_mappings)
            b.add("WRITE_FILE", L.ID_MAP_WRITE, cstr(b"/proc/self/uid_map"), Blob(data), len(data),
                  index=UID_MAP)
        if i.unshareflags & NEWNS:
            b.syscall(L.MOUNT_ROOT, "mount", cstr(b"none"), cstr(b"/"), 0,
                      CONST["MS_REC"] | CONST["MS_PRIVATE"], 0)
    if i.chroot:
        b.syscall(L.CHROOT, "chroot", cstr(i.chroot))
    cred = s.credential
    if cred is not None:
        groups = tuple(cred.groups)
        skip = cred.no_setgroups or (s.gid_mappings is not None and not s.gid_mappings_enable_setgroups
                                     and not groups)
        if not skip:
            b.syscall(L.SETGROUPS, "setgroups", len(groups), Blob(struct.pack(f"={len(groups)}I", *groups)))
        b.syscall(L.SETGID, "setgid", cred.gid)
        b.syscall(L.SETUID, "setuid", cred.uid)
    if s.ambient_caps:
        mask = 0
        for cap in s.ambient_caps:
            mask |= 1 << cap
        b.add("RAISE_CAPS", L.SET_CAP, mask & 0xFFFFFFFF, mask >> 32)
        for cap in s.ambient_caps:
            b.syscall(L.SET_CAP, "prctl", CONST["PR_CAP_AMBIENT"], CONST["PR_CAP_AMBIENT_RAISE"], cap, 0, 0,
                      index=cap)
    if i.dir:
        b.syscall(L.CHDIR, "chdir", cstr(i.dir))
    if s.pdeathsig:
        b.syscall(L.PDEATHSIG, "prctl", CONST["PR_SET_PDEATHSIG"], s.pdeathsig)
        b.add("PDEATHSIG_CHECK", L.PDEATHSIG, i.ppid, s.pdeathsig)
    nextfd = max(len(i.files), *i.files) + 1 if i.files else 1
    b.add("FDS", L.DUP3, nextfd, L.FCNTL)
    b.add("CLOEXEC_FROM", L.CLOSE_FDS, len(i.files))
    if s.noctty:
        b.syscall(L.IOCTL, "ioctl", 0, CONST["TIOCNOTTY"])
    if s.setctty:
        b.syscall(L.IOCTL, "ioctl", s.ctty, CONST["TIOCSCTTY"], 1)
    if s.ptrace:
        b.syscall(L.PTRACE_ME, "ptrace", CONST["PTRACE_TRACEME"], 0, 0, 0)
    b.add("EXECVE", L.EXECVE, i.exec_fd)

    flags = i.cloneflags | CLONE_VM | CLONE_CLEAR_SIGHAND
    if not has_maps:
        flags |= CLONE_VFORK  # nothing for the parent to do until exec: sleep, as vfork does
    if s.pidfd:
        flags |= CLONE_PIDFD
    if s.use_cgroup_fd:
        flags |= CLONE_INTO_CGROUP
    return Plan(
        steps=b"".join(b.steps),
        blobs=tuple(b.blobs),
        flags=flags,
        cgroup_fd=s.cgroup_fd if s.use_cgroup_fd else -1,
        map_pipe=has_maps,
        parent_writes_maps=has_maps and not unshare_user,
    )
