"""Compiles ProcAttr/SysProcAttr into the flat step list the C child runs.

The order and conditions are those of Go 1.23's forkAndExecInChild1 (see the reference notes), with
the extension steps placed where a sandbox needs them. The child runs, in this order (the
ErrorLocation of each step in brackets; README.md has the same table):

  / made private first when the child will leave the user namespace owning a mount namespace of
      cloneflags (mount_propagation, below, otherwise) [MOUNT_ROOT]
  setns [SETNS]: join SysProcAttr.setns, user namespaces first (with CLONE_NEWUSER, the parent
      joins the net, uts and ipc ones around clone: joins.py)
  Go: keepcaps, the uid/gid map handshake (or maps the child may write itself, written here by it:
      child_may_map_itself), setsid, setpgid, foreground, signal reset, unshare,
      the child's own id maps, / made private after unshare(CLONE_NEWNS) [... MOUNT_ROOT]
  mount_propagation of a new mount namespace [MOUNT_ROOT]
  hostname, domainname [SETHOSTNAME, SETDOMAINNAME]
  mounts, in order, each after creating its missing target if asked [MKDIR, MOUNT]; under a new
      root (chroot, pivot_root) every target and directory is found from inside it (IN_ROOT steps:
      a symlink of the root's tree never leads the mount outside it)
  readonly_root: the new root made read-only, just before switching to it [REMOUNT_RO]
  pivot_root: chdir(new root), pivot_root(".", "."), umount2(".", MNT_DETACH), chdir("/")
      [PIVOT_ROOT, UMOUNT_OLDROOT]
  rlimits, while the child still has the caller's privileges [PRLIMIT]; RLIMIT_NOFILE only raises its
      hard limit here (when asked above the parent's), and is set after the fd passes, as Go restores it
  Go: chroot, setgroups, setgid, setuid, ambient_caps [CHROOT ... SET_CAP]
  capabilities: the bounding set, then permitted/effective/inheritable, then ambient
      [CAPBSET_DROP, CAPSET, CAP_AMBIENT]
  Go: chdir, pdeathsig [CHDIR, PDEATHSIG]
  Go 1.28: no_new_privs (also for landlock), then landlock_restrict_self(landlock_fd, landlock_flags),
      before the fd shuffle could overwrite the ruleset fd (golang/go#81057) [NO_NEW_PRIVS,
      LANDLOCK_RESTRICT_SELF]
  landlock: landlock_restrict_self(the parent's ruleset), then close it [LANDLOCK]
  Go: the fd passes, close-on-exec for the rest, noctty, setctty [DUP3 ... IOCTL]
  RLIMIT_NOFILE, where Go restores its own: a low limit limits the program, not the set-up [PRLIMIT]
  sync: tell the parent, wait for its callable to return [SYNC_READ]
  Go: ptrace(PTRACE_TRACEME) [PTRACE_ME]
  seccomp: restrict_suid_sgid's filter [SECCOMP index 1], restrict_namespaces's [SECCOMP index 2],
      then the caller's, the last step before exec [SECCOMP]
  execve, or execveat(exec_fd, "", AT_EMPTY_PATH) [EXECVE, EXECVEAT]

compile_plan below is the one place that emits steps: one straight sequence in this order. The concept
modules (mounts, rlimits, seccomp, caps) check their fields and encode values; steps.Builder names each
step's arguments. Nothing here touches the kernel: the plan is plain data.
"""

from __future__ import annotations

import signal
from typing import Optional

from .. import flags as F
from .._record import Record
from ..attrs import SysProcAttr, SysProcIDMap
from ..errors import GID_MAP, ID_MAP_FILES, SETGROUPS, UID_MAP
from ..errors import ErrorLocation as L
from ..sandbox.extensions import Sandbox
from ..sandbox.mounts import (
    ATTR_FLAGS,
    MS_BIND,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    PROPAGATION_MASK,
    ResolvedMount,
    is_propagation_change,
    mount_attr,
)
from ..sandbox.rlimits import RESOURCES, RLIM_INFINITY, encode_rlimit
from ..validate import maps_writable_by_self
from .joins import Join
from .steps import CONST, Builder, cstr, opt_cstr

NEWUSER, NEWNS, NEWTIME = int(F.CLONE_NEWUSER), int(F.CLONE_NEWNS), int(F.CLONE_NEWTIME)
CLONE_VM, CLONE_VFORK, CLONE_PIDFD = int(F.CLONE_VM), int(F.CLONE_VFORK), int(F.CLONE_PIDFD)
CLONE_CLEAR_SIGHAND, CLONE_INTO_CGROUP = int(F.CLONE_CLEAR_SIGHAND), int(F.CLONE_INTO_CGROUP)
# Python ignores these at start-up; a child expects them default, as subprocess and Go give it.
FORCE_DEFAULT_SIGNALS = (1 << (signal.SIGPIPE - 1)) | (1 << (signal.SIGXFSZ - 1))
KEEP_ALL = (1 << 64) - 1  # a capability mask keeping every capability
RLIMIT_NOFILE = RESOURCES.index("RLIMIT_NOFILE")
__all__ = ["GID_MAP", "SETGROUPS", "UID_MAP"]  # re-exported: the index of an id-map file (errors.py)


class Plan(Record):
    """What one spawn needs: the packed steps, the bytes they point to, and the clone flags."""

    __slots__ = ("blobs", "cgroup_fd", "flags", "map_pipe", "parent_writes_maps", "steps")

    def __init__(self, steps: bytes, blobs: tuple[bytes, ...], flags: int, cgroup_fd: int, map_pipe: bool,
                 parent_writes_maps: bool):
        self.steps = steps
        self.blobs = blobs
        self.flags = flags
        self.cgroup_fd = cgroup_fd
        self.map_pipe = map_pipe  # the child waits for the parent's uid/gid maps
        self.parent_writes_maps = parent_writes_maps


def format_id_maps(maps: list[SysProcIDMap]) -> bytes:
    """The lines of a uid_map/gid_map file, as Go formats them (written by the child or the parent)."""
    return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps).encode()


def setgroups_word(enable: bool) -> bytes:
    """What /proc/PID/setgroups gets before gid_map (the child writes it with Go's NUL byte)."""
    return b"allow" if enable else b"deny"


def child_may_map_itself(attr: SysProcAttr, cloneflags: int, unshareflags: int, euid: int, egid: int) -> bool:
    """Whether a CLONE_NEWUSER child's maps are ones it may write itself (user_namespaces(7)): one line
    of one id, the caller's own euid (and egid, with setgroups denied). The kernel then grants the child
    exactly what it grants the parent's write, so the child needs no parent to wait for, and the spawn
    can sleep as vfork does instead of a pipe handshake and a second wake-up at exec."""
    if not cloneflags & NEWUSER or unshareflags & NEWUSER:
        return False
    return maps_writable_by_self(attr, euid, egid)


def map_writes(attr: SysProcAttr) -> list[tuple[int, bytes]]:
    """Go's writeUidGidMappings as data: (UID_MAP, SETGROUPS or GID_MAP, what to write), in its order."""
    writes = []
    if attr.uid_mappings is not None:
        writes.append((UID_MAP, format_id_maps(attr.uid_mappings)))
    if attr.gid_mappings is not None:
        writes.append((SETGROUPS, setgroups_word(attr.gid_mappings_enable_setgroups)))
        writes.append((GID_MAP, format_id_maps(attr.gid_mappings)))
    return writes


def id_map_path(pid: str, index: int) -> bytes:
    """/proc/<pid>/<file>, ``index`` one of UID_MAP, SETGROUPS, GID_MAP (errors.ID_MAP_FILES)."""
    return f"/proc/{pid}/{ID_MAP_FILES[index]}".encode()


class PlanInputs(Record):
    """The validated, encoded values a plan is compiled from (every one of them: PlanCache compares
    the fields named by __slots__)."""

    __slots__ = ("cgroup_fd", "chroot", "cloneflags", "dir", "exec_fd", "files", "joins", "landlock_fd",
                 "map_fds", "maps_by_child", "mount_trees", "nofile", "ppid", "root_slot", "sandbox",
                 "sync_fds", "sys", "unshareflags")

    def __init__(self, sys: SysProcAttr, cloneflags: int, unshareflags: int, files: tuple[int, ...],
                 dir: bytes, chroot: bytes, joins: tuple[Join, ...] = (), map_fds: tuple[int, int] = (-1, -1),
                 maps_by_child: bool = False, ppid: int = 0, exec_fd: int = -1,
                 sandbox: Optional[Sandbox] = None, sync_fds: tuple[int, int] = (-1, -1), cgroup_fd: int = -1,
                 landlock_fd: int = -1, mount_trees: tuple[tuple[int, int], ...] = (), root_slot: int = -1,
                 nofile: tuple[int, int] = (RLIM_INFINITY, RLIM_INFINITY)):
        self.sys = sys
        self.cloneflags = cloneflags
        self.unshareflags = unshareflags
        self.files = files
        self.dir = dir
        self.chroot = chroot
        self.joins = joins  # SysProcAttr.setns opened, user namespaces first (joins.py)
        self.map_fds = map_fds  # (read end, write end)
        # child_may_map_itself held at this spawn: no map pipe, see compile_plan
        self.maps_by_child = maps_by_child
        self.ppid = ppid
        self.exec_fd = exec_fd
        self.sandbox = sandbox
        self.sync_fds = sync_fds  # (the child's end, the parent's end), both above fd_floor
        self.cgroup_fd = cgroup_fd  # SysProcAttr.cgroup's directory
        self.landlock_fd = landlock_fd  # SysProcAttr.landlock's ruleset, built by the parent
        self.mount_trees = mount_trees  # (index in mounts, detached idmapped tree fd)
        self.root_slot = root_slot  # a parent's fd the child's IN_ROOT steps open mount targets as
        self.nofile = nofile  # the parent's RLIMIT_NOFILE (soft, hard), which the child starts with


def _in_root(path: bytes) -> bytes:
    """``path`` as the program sees it (absolute, normalized; b"" for /), relative to its root."""
    return path.lstrip(b"/") or b"."


def _target(steps: Builder, m: ResolvedMount, slot: int) -> bytes:
    """The path the next step of mount ``m`` names its target by: without a new root, the target
    itself; under one, fd ``slot``, opened on the target as found from inside the root (IN_ROOT),
    through /proc/self/fd (mount(2) has no *at form), whose magic link the kernel follows to it."""
    if not m.root:
        return m.path
    steps.in_root(L.MOUNT, m.root, _in_root(m.path), slot=slot, index=m.index)
    return b"/proc/self/fd/%d" % slot


def next_fd(files: tuple[int, ...]) -> int:
    """Go's nextfd: above every slot and every fd of ProcAttr.files."""
    return max(len(files), *files) + 1 if files else 1


def fd_floor(files: tuple[int, ...]) -> int:
    """The lowest fd the child's fd passes leave alone: fds the child uses after them go above it."""
    return next_fd(files) + len(files) + 2  # the passes use nextfd on: the error pipe, up to len(files)


def compile_plan(inputs: PlanInputs) -> Plan:
    attr, steps, sandbox = inputs.sys, Builder(), inputs.sandbox
    has_maps = attr.uid_mappings is not None or attr.gid_mappings is not None
    unshare_user = bool(inputs.unshareflags & NEWUSER)
    caps = sandbox.caps if sandbox is not None else None
    trees = dict(inputs.mount_trees)

    # Extension: a mount namespace of cloneflags is the caller's user namespace's: a child about to
    # leave that (unshare or join a user namespace) makes its / private first, while it still may.
    early_propagation = bool(
        sandbox is not None and sandbox.propagation and inputs.cloneflags & NEWNS
        and not (inputs.cloneflags & NEWUSER or inputs.unshareflags & NEWNS)
        and (unshare_user or any(join.kind & NEWUSER for join in inputs.joins)))
    if early_propagation:
        steps.mount(L.MOUNT_ROOT, source=cstr(b"none"), target=cstr(b"/"), fstype=0,
                    flags=sandbox.propagation, data=0)
    # Extension: join namespaces before anything else, user namespaces first (with CLONE_NEWUSER
    # the parent joins the others around clone: joins.py).
    for join in inputs.joins:
        if not join.by_parent:
            steps.setns(L.SETNS, fd=join.fd, nstype=join.nstype, index=join.index)
    # Go: permitted must survive setuid for the ambient raise; so must it for the bounding-set drops.
    if attr.ambient_caps or (caps is not None and attr.credential is not None):
        steps.prctl(L.KEEPCAPS, "PR_SET_KEEPCAPS", 1)
    # Go: wait until the parent has written our uid/gid maps (the error it had comes back here).
    # Maps the child may write itself it writes here instead, the same files in the same order as the
    # parent would, reported at the same step.
    if has_maps and inputs.maps_by_child:
        for index, data in map_writes(attr):
            steps.write_file(L.UNSHARE_USER_READ, id_map_path("self", index), data, index=index)
    elif has_maps:
        steps.map_pipe(L.UNSHARE_USER_READ, close_fd=inputs.map_fds[1], read_fd=inputs.map_fds[0])
    if attr.setsid:
        steps.setsid(L.SETSID)
    if attr.setpgid or attr.foreground:
        steps.setpgid(L.SETPGID, pid=0, pgid=attr.pgid)
    if attr.foreground:  # signals are still blocked: no SIGTTOU
        steps.foreground(L.IOCTL, ctty=attr.ctty, pgid=attr.pgid)
    # Go's runtime_AfterForkInChild: handlers back to default, the parent's mask restored.
    steps.signals(L.SIGNAL_RESET, force_default=FORCE_DEFAULT_SIGNALS)
    if inputs.unshareflags:
        steps.unshare(L.UNSHARE, flags=inputs.unshareflags)
        # Go: after unshare(CLONE_NEWUSER) the child writes its own maps, gid_map before uid_map.
        if unshare_user and attr.gid_mappings is not None:
            steps.write_file(L.ID_MAP_WRITE, id_map_path("self", SETGROUPS),
                             setgroups_word(attr.gid_mappings_enable_setgroups) + b"\0", index=SETGROUPS)
            steps.write_file(L.ID_MAP_WRITE, id_map_path("self", GID_MAP), format_id_maps(attr.gid_mappings),
                             index=GID_MAP)
        if unshare_user and attr.uid_mappings is not None:
            steps.write_file(L.ID_MAP_WRITE, id_map_path("self", UID_MAP), format_id_maps(attr.uid_mappings),
                             index=UID_MAP)
        # Go: mounts made in the new namespace must not propagate back (with extensions:
        # mount_propagation below decides).
        if inputs.unshareflags & NEWNS and sandbox is None:
            steps.mount(L.MOUNT_ROOT, source=cstr(b"none"), target=cstr(b"/"), fstype=0,
                        flags=CONST["MS_REC"] | CONST["MS_PRIVATE"], data=0)
    if sandbox is not None:
        # Extension: the new mount namespace, from /'s propagation to the new root.
        if sandbox.propagation and not early_propagation:
            steps.mount(L.MOUNT_ROOT, source=cstr(b"none"), target=cstr(b"/"), fstype=0,
                        flags=sandbox.propagation, data=0)
        if sandbox.hostname is not None:
            steps.sethostname(L.SETHOSTNAME, sandbox.hostname)
        if sandbox.domainname is not None:
            steps.setdomainname(L.SETDOMAINNAME, sandbox.domainname)
        slot = inputs.root_slot
        for m in sandbox.mounts:
            n = m.index  # its place in SysProcAttr.mounts, as errors name it
            for k, path in enumerate(m.mkdirs):  # the missing target, if asked
                is_file = m.file_target and k == len(m.mkdirs) - 1
                if m.root:  # made in the directory found from inside the root
                    parent, name = path.rsplit(b"/", 1)
                    steps.in_root(L.MKDIR, m.root, _in_root(parent), slot=slot, index=n)
                    steps.create(L.MKDIR, name, is_file=is_file, dirfd=slot, index=n)
                else:
                    steps.create(L.MKDIR, path, is_file=is_file, index=n)
            source, fstype, data = opt_cstr(m.source), opt_cstr(m.fstype), opt_cstr(m.data)
            propagation = m.flags & PROPAGATION_MASK
            if is_propagation_change(m.flags, m.fstype):  # (no mount of its own: no source, fstype, data)
                steps.mount(L.MOUNT, source=source, target=cstr(_target(steps, m, slot)), fstype=fstype,
                            flags=m.flags, data=data, index=n)
                continue
            bind = m.flags & MS_BIND and not m.flags & MS_REMOUNT
            mflags = m.flags & ~PROPAGATION_MASK
            if bind:  # the kernel ignores per-mount flags in a bind: set them on the new mount after
                mflags &= ~ATTR_FLAGS
            if n in trees and m.root:  # an idmapped bind: the parent's detached tree attached here
                steps.in_root(L.MOVE_MOUNT, m.root, _in_root(m.path), slot=slot, index=n)
                steps.move_mount(L.MOVE_MOUNT, from_fd=trees[n], to_fd=slot, index=n)
            elif n in trees:
                steps.move_mount(L.MOVE_MOUNT, from_fd=trees[n], to_path=m.path, index=n)
            else:
                steps.mount(L.MOUNT, source=source, target=cstr(_target(steps, m, slot)), fstype=fstype,
                            flags=mflags, data=data, index=n)
            # Each step after the mount finds the target again: found before, it is the directory
            # under the new mount.
            if bind and m.flags & ATTR_FLAGS:
                steps.remount(L.MOUNT, _target(steps, m, slot), attr=mount_attr(m.flags),
                              recursive=bool(m.flags & MS_REC), ms_flags=m.flags & ATTR_FLAGS, index=n)
            if propagation:  # a propagation type is a change of its own, after the mount
                steps.mount(L.MOUNT, source=0, target=cstr(_target(steps, m, slot)), fstype=0,
                            flags=propagation | (m.flags & MS_REC), data=0, index=n)
        if sandbox.readonly_root is not None:  # just before switching to it, once every mount is in
            steps.remount(L.REMOUNT_RO, sandbox.readonly_root, attr=mount_attr(MS_RDONLY), recursive=False,
                          ms_flags=MS_RDONLY & ATTR_FLAGS)
        if sandbox.pivot_root is not None:  # the old root stacked on the new one, then detached
            steps.chdir(L.PIVOT_ROOT, sandbox.pivot_root, index=0)
            steps.pivot_root(L.PIVOT_ROOT, new_root=b".", put_old=b".", index=1)
            steps.umount2(L.UMOUNT_OLDROOT, target=b".", flags=CONST["MNT_DETACH"], index=0)
            steps.chdir(L.UMOUNT_OLDROOT, b"/", index=1)
        # Extension: rlimits, while the child still has the caller's privileges. RLIMIT_NOFILE would
        # limit the set-up's own fds (the fd passes dup3 above every fd of ProcAttr.files): here only
        # its hard limit is raised, when asked above the parent's (which needs the privileges); it
        # is set after the fd passes.
        for n, (res, soft, hard) in enumerate(sandbox.rlimits):
            if res != RLIMIT_NOFILE:
                steps.prlimit64(L.PRLIMIT, resource=res, new_limit=encode_rlimit(soft, hard), index=n)
            elif hard > inputs.nofile[1]:
                steps.prlimit64(L.PRLIMIT, resource=res, new_limit=encode_rlimit(inputs.nofile[0], hard),
                                index=n)
    if inputs.chroot:  # Go: no chdir("/") after it
        steps.chroot(L.CHROOT, inputs.chroot)
    cred = attr.credential
    if cred is not None:
        groups = tuple(cred.groups)
        # Go: no setgroups when asked, or in a user namespace that denies it and nothing to set.
        skip = cred.no_setgroups or (attr.gid_mappings is not None and not attr.gid_mappings_enable_setgroups
                                     and not groups)
        if not skip:  # index 1: no groups were given, Go clears them (errors.py names the credential)
            steps.setgroups(L.SETGROUPS, groups, index=0 if groups else 1)
        steps.setgid(L.SETGID, cred.gid)
        steps.setuid(L.SETUID, cred.uid)
    if attr.ambient_caps:  # Go: into permitted and inheritable, then raised
        mask = 0
        for cap in attr.ambient_caps:
            mask |= 1 << cap
        steps.caps(L.SET_CAP, keep=KEEP_ALL, add=mask, effective_all=False)
        for cap in attr.ambient_caps:
            steps.prctl(L.SET_CAP, "PR_CAP_AMBIENT", CONST["PR_CAP_AMBIENT_RAISE"], cap, 0, 0, index=cap)
    if caps is not None:
        # Extension: the bounding set, then permitted/effective/inheritable, then ambient. After a uid
        # change the effective set is empty; PR_CAPBSET_DROP needs CAP_SETPCAP in it.
        if caps.bounding_drop:
            steps.caps(L.CAPBSET_DROP, keep=KEEP_ALL, add=0, effective_all=True)
            for cap in caps.bounding_drop:
                steps.prctl(L.CAPBSET_DROP, "PR_CAPBSET_DROP", cap, 0, 0, 0, index=cap)
        ambient = sum(1 << cap for cap in caps.ambient)
        steps.caps(L.CAPSET, keep=caps.keep, add=ambient, effective_all=True)
        for cap in caps.ambient:
            steps.prctl(L.CAP_AMBIENT, "PR_CAP_AMBIENT", CONST["PR_CAP_AMBIENT_RAISE"], cap, 0, 0, index=cap)
    if inputs.dir:  # Go: after chroot and setuid
        steps.chdir(L.CHDIR, inputs.dir)
    if attr.pdeathsig:  # Go: after setuid, which clears it; and the parent may already be gone
        steps.prctl(L.PDEATHSIG, "PR_SET_PDEATHSIG", attr.pdeathsig)
        steps.pdeathsig_check(L.PDEATHSIG, ppid=inputs.ppid, signal=attr.pdeathsig)
    # Go 1.28: no_new_privs first (landlock_restrict_self needs it without CAP_SYS_ADMIN), and the
    # restriction before the fd passes, which may put ProcAttr.files over the ruleset's fd number.
    if attr.no_new_privs or attr.landlock is not None:
        steps.prctl(L.NO_NEW_PRIVS, "PR_SET_NO_NEW_PRIVS", 1, 0, 0, 0)
    if attr.use_landlock:
        steps.landlock_restrict_self(L.LANDLOCK_RESTRICT_SELF, ruleset_fd=attr.landlock_fd,
                                     flags=attr.landlock_flags)
    if inputs.landlock_fd >= 0:  # extension: the parent's ruleset, closed once applied
        steps.landlock_restrict_self(L.LANDLOCK, ruleset_fd=inputs.landlock_fd, flags=0, index=0)
        steps.close(L.LANDLOCK, inputs.landlock_fd, index=1)
    # Go's two fd passes, then close-on-exec for every fd above ProcAttr.files.
    steps.fds(L.DUP3, nextfd=next_fd(inputs.files), fcntl_loc=L.FCNTL)
    steps.cloexec_from(L.CLOSE_FDS, first_fd=len(inputs.files))
    if attr.noctty:  # IOCTL's index names the field: 0 foreground, 1 noctty, 2 setctty (errors.py)
        steps.ioctl(L.IOCTL, 0, "TIOCNOTTY", index=1)
    if attr.setctty:  # here Ctty is a child fd
        steps.ioctl(L.IOCTL, attr.ctty, "TIOCSCTTY", 1, index=2)
    if sandbox is not None:  # extension: RLIMIT_NOFILE, once the set-up needs no new fd (Go restores
        for n, (res, soft, hard) in enumerate(sandbox.rlimits):  # its own limit here too)
            if res == RLIMIT_NOFILE:
                steps.prlimit64(L.PRLIMIT, resource=res, new_limit=encode_rlimit(soft, hard), index=n)
    if sandbox is not None and sandbox.sync is not None:  # extension: the parent's callable runs here
        steps.sync(L.SYNC_READ, socket=inputs.sync_fds[0], close_fd=inputs.sync_fds[1])
    if attr.ptrace:  # Go: immediately before exec
        steps.ptrace_traceme(L.PTRACE_ME)
    if sandbox is not None and sandbox.set_id_filter is not None:  # extension: restrict_suid_sgid,
        steps.seccomp(L.SECCOMP, sandbox.set_id_filter, index=1)  # first: the caller's may deny seccomp
    if sandbox is not None and sandbox.namespace_filter is not None:  # extension: restrict_namespaces,
        steps.seccomp(L.SECCOMP, sandbox.namespace_filter, index=2)  # (after it, no step makes or joins one)
    if sandbox is not None and sandbox.seccomp is not None:  # extension: the last step before exec
        steps.seccomp(L.SECCOMP, sandbox.seccomp)
    steps.execve(L.EXECVE if inputs.exec_fd < 0 else L.EXECVEAT, exec_fd=inputs.exec_fd)

    map_pipe = has_maps and not inputs.maps_by_child
    flags = inputs.cloneflags | CLONE_VM | CLONE_CLEAR_SIGHAND
    if not map_pipe and (sandbox is None or sandbox.sync is None):
        flags |= CLONE_VFORK  # nothing for the parent to do until exec: sleep, as vfork does
    if attr.pidfd:
        flags |= CLONE_PIDFD
    cgroup_fd = attr.cgroup_fd if attr.use_cgroup_fd else inputs.cgroup_fd
    if cgroup_fd >= 0:
        flags |= CLONE_INTO_CGROUP
    return Plan(
        steps=b"".join(steps.steps),
        blobs=tuple(steps.blobs),
        flags=flags,
        cgroup_fd=cgroup_fd,
        map_pipe=map_pipe,
        parent_writes_maps=map_pipe and not unshare_user,
    )
