"""The attributes of a new process: Go's ProcAttr, SysProcAttr, Credential and SysProcIDMap, snake_cased.

Every field of Go 1.23's Linux ``syscall.SysProcAttr`` is here with the same meaning and zero value,
and Go 1.28's four Landlock fields (golang/go#68595: use_landlock, landlock_fd, landlock_flags,
no_new_privs). Fields after the ``# extensions`` marker go beyond Go: namespaces to join, and the steps
of a sandbox (hostname, mounts, pivot_root, rlimits, cgroup, capabilities, landlock, seccomp, a sync
point, exec of an open file). Each is documented where it is declared; the order in which the child runs
them is in plan.py. With every extension field at its default, a spawn does exactly what Go's does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import field
from typing import TYPE_CHECKING, Callable, Optional, Union

from .sandbox.caps import Capabilities
from .sandbox.cgroup import Cgroup
from .sandbox.landlock import Landlock
from .sandbox.mounts import Mount
from .sandbox.rlimits import Rlimit
from .sandbox.seccomp import SeccompFilter

if TYPE_CHECKING:  # checkers see the standard decorator; see _dataclass.py
    from dataclasses import dataclass
else:
    from ._dataclass import dataclass


class HasFileno:  # typing helper only: anything with a fileno() method
    def fileno(self) -> int:  # pragma: no cover - protocol
        raise NotImplementedError


# The class itself, not the string "HasFileno": typing turns a string into a ForwardRef, whose
# compile() of it sets up the compiler's AST types, ~0.8 ms of every command's start (issue 15).
FileLike = Union[int, None, HasFileno]


@dataclass(frozen=True)
class SysProcIDMap:
    """One line of a uid_map/gid_map: ``size`` ids from ``container_id`` map to ``host_id`` onwards."""

    container_id: int
    host_id: int
    size: int


@dataclass(frozen=True)
class Credential:
    """The ids the child runs as (Go's ``syscall.Credential``)."""

    uid: int
    gid: int
    groups: Sequence[int] = ()
    no_setgroups: bool = False


@dataclass(frozen=True)
class SetNS:
    """A namespace to join before any other step, as nsenter does.

    ``target`` is a path (``/run/netns/web``, ``/proc/PID/ns/net``), an open namespace fd, or a pidfd;
    ``nstype`` is the CLONE_NEW* flag the kernel checks against (0 accepts any type for a namespace
    fd; a pidfd needs the mask of namespaces to join). User namespaces are joined first. With
    CLONE_NEWUSER in cloneflags, net, uts and ipc namespaces are joined by the parent's thread around
    clone instead (the child, privileged only in its new user namespace, could not): see child/joins.py.
    Pins, each checked on the namespace opened for the join (any that does not hold: ChildError at
    setns, ESTALE), for a target that may name another namespace by then, as a saved
    ``/proc/PID/ns/*`` path does once that PID is reused:
    ``inode``, the namespace's inode number (``stat -L``, ``lsns``); the kernel gives a freed
    namespace's number to the next one made, so alone it does not tell a stranger's namespace made
    after the target's ended. ``ns_id``, the kernel's 64-bit id of the namespace
    (``pyforkexec.ns_pins.ns_id``; Linux 6.18), never given again; refused (ValueError) on a kernel
    that has none. ``process_start``, for a ``/proc/PID/...`` path or a pidfd: the start time of the
    process meant (``pyforkexec.ns_pins.process_start``: /proc/PID/stat field 22), which a process that
    took PID later does not have; for a ``/proc/PID/task/TID/...`` path, that of thread TID (its
    /proc/PID/task/TID/stat), whose TID the next thread made, of the same process too, takes once it
    ends; the path is opened through that process's (thread's) /proc directory, so the check and the
    open see one process. For a pidfd ``inode`` and ``ns_id`` are those of the process's
    namespace of the one type ``nstype`` names (several types: ValueError).

    A PID namespace is one a process is born into: setns(2) of one only moves the caller's future
    children. So the parent's thread joins it around clone, and the program itself is in it (as
    nsenter's forked child is). ``for_children=True`` asks for setns(2)'s own meaning instead (what
    ``nsenter --no-fork`` does): the child joins it, the program stays in the caller's PID namespace
    and only the processes it starts are in the joined one.
    """

    target: Union[str, int]
    nstype: int = 0
    inode: Optional[int] = None
    for_children: bool = False
    ns_id: Optional[int] = None
    process_start: Optional[int] = None


@dataclass
class SysProcAttr:
    """Linux-specific attributes, Go 1.23 ``syscall.SysProcAttr`` field for field, and Go 1.28's."""

    chroot: str = ""
    credential: Optional[Credential] = None
    ptrace: bool = False
    setsid: bool = False
    setpgid: bool = False
    setctty: bool = False
    noctty: bool = False
    ctty: int = 0
    foreground: bool = False
    pgid: int = 0
    pdeathsig: int = 0
    cloneflags: int = 0
    unshareflags: int = 0
    uid_mappings: Optional[Sequence[SysProcIDMap]] = None
    gid_mappings: Optional[Sequence[SysProcIDMap]] = None
    gid_mappings_enable_setgroups: bool = False
    ambient_caps: Sequence[int] = ()
    use_cgroup_fd: bool = False
    cgroup_fd: int = 0
    pidfd: bool = False
    # Go 1.28 (golang/go#68595): prctl(PR_SET_NO_NEW_PRIVS) before exec (and before Landlock).
    no_new_privs: bool = False
    # Go 1.28: landlock_restrict_self(landlock_fd, landlock_flags) in the child, after pdeathsig and
    # before the fd shuffle (golang/go#81057). landlock_fd is this process's ruleset fd (-1 is passed
    # as is, for flags that take no ruleset); both are ignored when use_landlock is False.
    # Unprivileged, it needs no_new_privs (EPERM otherwise).
    use_landlock: bool = False
    landlock_fd: int = 0
    landlock_flags: int = 0
    # extensions (not in Go)
    setns: Sequence[SetNS] = ()
    # New UTS namespace only (CLONE_NEWUTS in cloneflags or unshareflags).
    hostname: Optional[str] = None
    domainname: Optional[str] = None
    # The propagation of every mount of a new mount namespace, set before the mounts:
    # "private" (the default, as util-linux's unshare), "slave", "shared" or "unchanged", for any new
    # mount namespace. Go changes it (to private) only for unshareflags CLONE_NEWNS: "unchanged" is Go's
    # way for cloneflags, where a shared / hands every mount the program makes to the host.
    # "shared" and "unchanged" refuse a mount of `mounts` that would be made on a shared mount of the
    # caller's too (and stay there), or of the mount namespace `setns` joins (its table read from a
    # process in it; refused when none can be read), unless a new user namespace owns the mount namespace.
    mount_propagation: str = "private"
    # Mounts in a new mount namespace, in order; targets are inside pivot_root/chroot when set.
    mounts: Sequence[Mount] = ()
    # A new root (a mount point, e.g. made by mounts[...] with target "/"): pivot_root into it and
    # detach the old root, as bubblewrap does. Cannot be combined with chroot.
    pivot_root: Optional[str] = None
    # Make the new root (pivot_root, chroot, or / of the new mount namespace) read-only, not its submounts.
    readonly_root: bool = False
    rlimits: Sequence[Rlimit] = ()
    # A cgroup v2 directory with limits, created if needed, that the child starts in (clone3).
    cgroup: Optional[Cgroup] = None
    # The capability sets to keep (replaces ambient_caps, which cannot be combined with it).
    capabilities: Optional[Capabilities] = None
    # A Landlock policy: the parent builds its ruleset, the child restricts itself to it right after
    # the Go 1.28 Landlock step (it implies no_new_privs). See sandbox/landlock.py.
    landlock: Optional[Landlock] = None
    # Installed right before execve; sets no_new_privs itself when the child lacks CAP_SYS_ADMIN.
    seccomp: Optional[SeccompFilter] = None
    # A seccomp filter failing with EPERM every call that would make a file set-user-ID or
    # set-group-ID (chmod, open with O_CREAT...; systemd's RestrictSUIDSGID=, see sandbox/seccomp.py),
    # installed before `seccomp`, with no_new_privs as it sets it. None: on whenever a mount is idmapped
    # (what the program's root creates there is the host's root's, set-id bits included); False: off.
    restrict_suid_sgid: Optional[bool] = None
    # The CLONE_NEW* types of namespace the program may still create or join (systemd's
    # RestrictNamespaces=, see sandbox/seccomp.py): a seccomp filter of its own, installed with
    # restrict_suid_sgid's, fails unshare, clone and setns with EPERM for any other type, setns of any
    # type (nstype 0) and clone3 (ENOSYS: its flags are in a struct; a C library falls back to clone).
    # None: no restriction (Go's behaviour); 0: none; every type: no filter.
    restrict_namespaces: Optional[int] = None
    # Called in the parent with the child's pid once the child is set up, just before seccomp and
    # execve; the child waits until it returns. If it raises, the child is killed and a ChildError
    # at SYNC_READ is raised from the exception.
    sync: Optional[Callable[[int], None]] = None
    # Execute this open file (execveat(fd, "", AT_EMPTY_PATH)) instead of looking up argv0, which
    # then only names the program in errors. A script needs an fd without O_CLOEXEC in the child,
    # which this does not give it: use it for binaries.
    exec_fd: Optional[int] = None


@dataclass
class ProcAttr:
    """Go's ``syscall.ProcAttr``: working directory, environment, the child's fds, and SysProcAttr.

    ``files[i]`` becomes fd ``i`` in the child; ``None`` or ``-1`` leaves fd ``i`` closed. Any other fd
    of the parent is closed on exec in the child.
    """

    dir: Optional[str] = None
    env: Optional[Sequence[str]] = None
    files: Sequence[FileLike] = (0, 1, 2)
    sys: Optional[SysProcAttr] = field(default=None)
