"""Compiles ProcAttr/SysProcAttr into the flat step list the C child runs.

The order and conditions are those of Go 1.23's forkAndExecInChild1 (see the reference notes), with
the extension steps placed where a sandbox needs them. The child runs, in this order (the
ErrorLocation of each step in brackets; README.md has the same table):

  setns [SETNS]: join SysProcAttr.setns, user namespaces first (with CLONE_NEWUSER, the parent
      joins the net, uts and ipc ones around clone: parent_ns.py)
  Go: keepcaps, the uid/gid map handshake, setsid, setpgid, foreground, signal reset, unshare,
      the child's own id maps, / made private after unshare(CLONE_NEWNS) [... MOUNT_ROOT]
  mount_propagation of a new mount namespace [MOUNT_ROOT]
  hostname, domainname [SETHOSTNAME, SETDOMAINNAME]
  mounts, in order, each after creating its missing target if asked [MKDIR, MOUNT]
  readonly_root: the new root made read-only, just before switching to it [REMOUNT_RO]
  pivot_root: chdir(new root), pivot_root(".", "."), umount2(".", MNT_DETACH), chdir("/")
      [PIVOT_ROOT, UMOUNT_OLDROOT]
  rlimits, while the child still has the caller's privileges [PRLIMIT]
  Go: chroot, setgroups, setgid, setuid, ambient_caps [CHROOT ... SET_CAP]
  capabilities: the bounding set, then permitted/effective/inheritable, then ambient
      [CAPBSET_DROP, CAPSET, CAP_AMBIENT]
  Go: chdir, pdeathsig, the fd passes, close-on-exec for the rest, noctty, setctty [CHDIR ... IOCTL]
  no_new_privs [NO_NEW_PRIVS]
  sync: tell the parent, wait for its callable to return [SYNC_READ]
  Go: ptrace(PTRACE_TRACEME) [PTRACE_ME]
  seccomp, the last step before exec [SECCOMP]
  execve, or execveat(exec_fd, "", AT_EMPTY_PATH) [EXECVE, EXECVEAT]

Nothing here touches the kernel: the plan is plain data.
"""

from __future__ import annotations

import signal
import struct
from dataclasses import dataclass
from typing import Optional

from . import flags as F
from .attrs import SysProcAttr, SysProcIDMap
from .errors import ErrorLocation as L
from .extensions import Ext
from .mounts import MS_RDONLY, mount_steps, remount_step
from .parent_ns import Join
from .rlimits import rlimit_steps
from .seccomp import seccomp_step
from .steps import CONST, Blob, Builder, cstr

NEWUSER, NEWNS, NEWTIME = int(F.CLONE_NEWUSER), int(F.CLONE_NEWNS), int(F.CLONE_NEWTIME)
CLONE_VM, CLONE_VFORK, CLONE_PIDFD = int(F.CLONE_VM), int(F.CLONE_VFORK), int(F.CLONE_PIDFD)
CLONE_CLEAR_SIGHAND, CLONE_INTO_CGROUP = int(F.CLONE_CLEAR_SIGHAND), int(F.CLONE_INTO_CGROUP)
# Python ignores these at start-up; a child expects them default, as subprocess and Go give it.
FORCE_DEFAULT_SIGNALS = (1 << (signal.SIGPIPE - 1)) | (1 << (signal.SIGXFSZ - 1))
# Index of ID_MAP_WRITE / UNSHARE_USER_READ errors: errors.ID_MAP_FILES.
UID_MAP, SETGROUPS, GID_MAP = 0, 1, 2
ALL_CAPS = 0xFFFFFFFF  # one 32-bit half of a capability mask


@dataclass
class Plan:
    """What one spawn needs: the packed steps, the bytes they point to, and the clone flags."""

    steps: bytes
    blobs: tuple[bytes, ...]
    flags: int
    cgroup_fd: int
    map_pipe: bool  # the child waits for the parent's uid/gid maps
    parent_writes_maps: bool


def format_id_maps(maps: list[SysProcIDMap]) -> bytes:
    return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps).encode()


@dataclass
class Inputs:
    """The validated, encoded values a plan is compiled from."""

    sys: SysProcAttr
    cloneflags: int
    unshareflags: int
    files: tuple[int, ...]
    dir: bytes
    chroot: bytes
    joins: tuple[Join, ...] = ()  # SysProcAttr.setns opened, user namespaces first (parent_ns.py)
    map_fds: tuple[int, int] = (-1, -1)  # (read end, write end)
    ppid: int = 0
    exec_fd: int = -1
    ext: Optional[Ext] = None
    sync_fds: tuple[int, int] = (-1, -1)  # (the child's end, the parent's end), both above fd_floor
    cgroup_fd: int = -1  # SysProcAttr.cgroup's directory


def next_fd(files: tuple[int, ...]) -> int:
    """Go's nextfd: above every slot and every fd of ProcAttr.files."""
    return max(len(files), *files) + 1 if files else 1


def fd_floor(files: tuple[int, ...]) -> int:
    """The lowest fd the child's fd passes leave alone: fds the child uses after them go above it."""
    return next_fd(files) + len(files) + 2  # the passes use nextfd on: the error pipe, up to len(files)


def mount_namespace_steps(b: Builder, e: Ext) -> None:
    """From the new mount namespace's propagation to the new root; then the rlimits."""
    if e.propagation:
        b.syscall(L.MOUNT_ROOT, "mount", cstr(b"none"), cstr(b"/"), 0, e.propagation, 0)
    if e.hostname is not None:
        b.syscall(L.SETHOSTNAME, "sethostname", Blob(e.hostname), len(e.hostname))
    if e.domainname is not None:
        b.syscall(L.SETDOMAINNAME, "setdomainname", Blob(e.domainname), len(e.domainname))
    mount_steps(b, e.mounts)
    if e.readonly_root is not None:
        remount_step(b, L.REMOUNT_RO, e.readonly_root, MS_RDONLY, recursive=False)
    if e.pivot_root is not None:
        b.syscall(L.PIVOT_ROOT, "chdir", cstr(e.pivot_root), index=0)
        b.syscall(L.PIVOT_ROOT, "pivot_root", cstr(b"."), cstr(b"."), index=1)
        b.syscall(L.UMOUNT_OLDROOT, "umount2", cstr(b"."), CONST["MNT_DETACH"], index=0)
        b.syscall(L.UMOUNT_OLDROOT, "chdir", cstr(b"/"), index=1)
    rlimit_steps(b, e.rlimits)


def capability_steps(b: Builder, e: Ext) -> None:
    c = e.caps
    if c is None:
        return
    everything = CONST["CAPS_EFFECTIVE_ALL"]
    if c.bounding_drop:
        # After a uid change the effective set is empty; PR_CAPBSET_DROP needs CAP_SETPCAP in it.
        b.add("CAPS", L.CAPBSET_DROP, ALL_CAPS, ALL_CAPS, 0, 0, everything)
        for cap in c.bounding_drop:
            b.syscall(L.CAPBSET_DROP, "prctl", CONST["PR_CAPBSET_DROP"], cap, 0, 0, 0, index=cap)
    ambient = sum(1 << cap for cap in c.ambient)
    b.add("CAPS", L.CAPSET, c.keep & ALL_CAPS, c.keep >> 32, ambient & ALL_CAPS, ambient >> 32, everything)
    for cap in c.ambient:
        b.syscall(L.CAP_AMBIENT, "prctl", CONST["PR_CAP_AMBIENT"], CONST["PR_CAP_AMBIENT_RAISE"], cap, 0, 0,
                  index=cap)




def compile_plan(i: Inputs) -> Plan:
    s, b, e = i.sys, Builder(), i.ext
    has_maps = s.uid_mappings is not None or s.gid_mappings is not None
    unshare_user = bool(i.unshareflags & NEWUSER)

    for join in i.joins:  # extension: join namespaces before anything else
        if not join.by_parent:
            b.syscall(L.SETNS, "setns", join.fd, join.nstype, index=join.index)
    # capabilities: permitted must survive the uid change, for the bounding-set drops after it
    if s.ambient_caps or (e is not None and e.caps is not None and s.credential is not None):
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
        if i.unshareflags & NEWNS and e is None:  # with extensions: mount_propagation below
            b.syscall(L.MOUNT_ROOT, "mount", cstr(b"none"), cstr(b"/"), 0,
                      CONST["MS_REC"] | CONST["MS_PRIVATE"], 0)
    if e is not None:
        mount_namespace_steps(b, e)
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
        b.add("CAPS", L.SET_CAP, ALL_CAPS, ALL_CAPS, mask & ALL_CAPS, mask >> 32, 0)
        for cap in s.ambient_caps:
            b.syscall(L.SET_CAP, "prctl", CONST["PR_CAP_AMBIENT"], CONST["PR_CAP_AMBIENT_RAISE"], cap, 0, 0,
                      index=cap)
    if e is not None:
        capability_steps(b, e)
    if i.dir:
        b.syscall(L.CHDIR, "chdir", cstr(i.dir))
    if s.pdeathsig:
        b.syscall(L.PDEATHSIG, "prctl", CONST["PR_SET_PDEATHSIG"], s.pdeathsig)
        b.add("PDEATHSIG_CHECK", L.PDEATHSIG, i.ppid, s.pdeathsig)
    b.add("FDS", L.DUP3, next_fd(i.files), L.FCNTL)
    b.add("CLOEXEC_FROM", L.CLOSE_FDS, len(i.files))
    if s.noctty:
        b.syscall(L.IOCTL, "ioctl", 0, CONST["TIOCNOTTY"])
    if s.setctty:
        b.syscall(L.IOCTL, "ioctl", s.ctty, CONST["TIOCSCTTY"], 1)
    if e is not None and e.no_new_privs:
        b.syscall(L.NO_NEW_PRIVS, "prctl", CONST["PR_SET_NO_NEW_PRIVS"], 1, 0, 0, 0)
    if e is not None and e.sync is not None:
        b.add("SYNC", L.SYNC_READ, *i.sync_fds)
    if s.ptrace:
        b.syscall(L.PTRACE_ME, "ptrace", CONST["PTRACE_TRACEME"], 0, 0, 0)
    if e is not None and e.seccomp is not None:
        seccomp_step(b, e.seccomp)
    b.add("EXECVE", L.EXECVE if i.exec_fd < 0 else L.EXECVEAT, i.exec_fd)

    flags = i.cloneflags | CLONE_VM | CLONE_CLEAR_SIGHAND
    if not has_maps and (e is None or e.sync is None):
        flags |= CLONE_VFORK  # nothing for the parent to do until exec: sleep, as vfork does
    if s.pidfd:
        flags |= CLONE_PIDFD
    cgroup_fd = s.cgroup_fd if s.use_cgroup_fd else i.cgroup_fd
    if cgroup_fd >= 0:
        flags |= CLONE_INTO_CGROUP
    return Plan(
        steps=b"".join(b.steps),
        blobs=tuple(b.blobs),
        flags=flags,
        cgroup_fd=cgroup_fd,
        map_pipe=has_maps,
        parent_writes_maps=has_maps and not unshare_user,
    )
