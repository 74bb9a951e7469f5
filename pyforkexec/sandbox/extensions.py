"""The extension fields of SysProcAttr, checked together and turned into what the plan needs.

``check_extensions`` returns None when every extension field has its default and there is no new
mount namespace (whose / the default propagation makes private), so a plain Go-style spawn does no
extra work. Each field's own rules live with its concept (mounts.py, rlimits.py,
caps.py, seccomp.py, cgroup.py); the rules between fields live here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Callable, Optional

from .. import flags as _flags
from .._record import Value
from ..attrs import SysProcAttr
from ..checks import (
    MAX_FD,
    check_bool,
    check_choice,
    check_int,
    check_list,
    check_open_fd,
    fail,
    to_abspath,
    to_bytes,
)
from .caps import CapsPlan, check_capabilities
from .cgroup import CgroupSpec, check_cgroup
from .landlock import ResolvedLandlock, check_landlock
from .mount_table import joined_mount_table, mount_reaching_caller, read_mount_table
from .mounts import MS_REC, PROPAGATION_FLAGS, Mount, ResolvedMount, check_mounts, check_root_is_a_mount
from .rlimits import check_rlimits
from .seccomp import check_seccomp, restrict_namespaces, restrict_set_id

NEWNS, NEWUTS, NEWUSER = int(_flags.CLONE_NEWNS), int(_flags.CLONE_NEWUTS), int(_flags.CLONE_NEWUSER)
NAMESPACE_MASK = _flags.NAMESPACE_MASK
HOST_NAME_MAX = 64  # sethostname/setdomainname (__NEW_UTS_LEN)
PROPAGATIONS = ("private", "slave", "shared", "unchanged")


class Sandbox(Value):
    """The extension fields of one spawn, checked and encoded."""

    __slots__ = ("caps", "cgroup", "domainname", "exec_fd", "hostname", "landlock", "mounts",
                 "namespace_filter", "pivot_root", "propagation", "readonly_root", "rlimits", "seccomp",
                 "set_id_filter", "sync")

    def __init__(self, hostname: Optional[bytes], domainname: Optional[bytes], propagation: int,
                 mounts: tuple[ResolvedMount, ...], pivot_root: Optional[bytes],
                 readonly_root: Optional[bytes],
                 rlimits: tuple[tuple[int, int, int], ...], cgroup: Optional[CgroupSpec],
                 caps: Optional[CapsPlan], landlock: Optional[ResolvedLandlock], seccomp: Optional[bytes],
                 sync: Optional[Callable[[int], None]], exec_fd: Optional[int],
                 set_id_filter: Optional[bytes] = None, namespace_filter: Optional[bytes] = None):
        self.hostname = hostname
        self.domainname = domainname
        # MS_REC|MS_<type> for / once the new mount namespace exists; 0: leave it
        self.propagation = propagation
        self.mounts = mounts
        self.pivot_root = pivot_root
        self.readonly_root = readonly_root  # the new root to make read-only, before pivot_root/chroot
        self.rlimits = rlimits
        self.cgroup = cgroup
        self.caps = caps
        self.landlock = landlock  # None also when the kernel enforces none of it (best effort)
        self.seccomp = seccomp  # the BPF program
        self.sync = sync
        self.exec_fd = exec_fd
        self.set_id_filter = set_id_filter  # restrict_suid_sgid's BPF program, installed before seccomp
        self.namespace_filter = namespace_filter  # restrict_namespaces's, installed before seccomp


def has_extensions(attr: SysProcAttr) -> bool:
    """Whether any extension field (after setns) differs from its default."""
    return (attr.hostname is not None or attr.domainname is not None or attr.mount_propagation != "private"
            or attr.mounts != () or attr.pivot_root is not None or attr.readonly_root is not False
            or attr.rlimits != () or attr.cgroup is not None or attr.capabilities is not None
            or attr.landlock is not None
            or attr.seccomp is not None or attr.sync is not None or attr.exec_fd is not None
            or attr.restrict_suid_sgid is not None or attr.restrict_namespaces is not None)


def _uts_name(field: str, value: object, namespaces: int) -> Optional[bytes]:
    if value is None:
        return None
    if not isinstance(value, str):
        fail(field, f"must be a string, not {type(value).__name__}", TypeError)
    data = to_bytes(field, value)
    if len(data) > HOST_NAME_MAX:
        fail(field, f"at most {HOST_NAME_MAX} bytes, got {len(data)}")
    if not namespaces & NEWUTS:
        fail(field, "needs a new UTS namespace: add CLONE_NEWUTS to cloneflags or unshareflags (else it "
             "would rename this host)")
    return data


def _propagation(attr: SysProcAttr, clone: int, unshare: int) -> int:
    kind = check_choice("SysProcAttr.mount_propagation", attr.mount_propagation, PROPAGATIONS)
    if kind == "unchanged":
        return 0
    if (unshare | clone) & NEWNS:
        # Also "private" with nothing to mount: a new mount namespace whose / stays shared hands every
        # mount the program makes to the host (Go's way for cloneflags: "unchanged").
        return MS_REC | PROPAGATION_FLAGS[kind]
    if kind != "private":
        fail("SysProcAttr.mount_propagation", "needs a new mount namespace (CLONE_NEWNS)")
    return 0


def _may_join_mounts(attr: SysProcAttr, mounts: Sequence[object]) -> bool:
    """Whether a sys.setns entry may join a mount namespace (an optional bind's root is then seen
    there). Looked at only for a spawn with an optional bind."""
    if not isinstance(mounts, (list, tuple)) or not any(isinstance(m, Mount) and m.optional for m in mounts):
        return False  # (a list of another type is refused by its own check, naming it)
    return _may_join(attr, NEWNS)


def _may_join(attr: SysProcAttr, kinds: int) -> bool:
    from .. import nsinfo  # (its child.joins imports this module's callers)

    return nsinfo.may_join(attr.setns, kinds)


def _check_mounts_stay_inside(attr: SysProcAttr, mounts: Sequence[ResolvedMount], clone: int,
                              unshare: int) -> None:
    """mount_propagation shared or unchanged keeps the new mount namespace's copies of the caller's
    shared mounts (systemd makes / shared) peers of them: a mount of the list made on one is made on
    the caller's too, and stays there after the program (util-linux's unshare does that; its
    --mount-proc alone is cut off first). So with a mount namespace joined first: the copies are that
    namespace's, and a mount would stay there (and wherever its mounts propagate: this host's, for one
    made with unshare --propagation unchanged). Refused, naming the first such mount, unless the copy
    is the kernel's to make less privileged (a new user namespace owns it, or one joined without a
    mount namespace: its copies are slaves); a joined namespace whose table cannot be read (no process
    of this /proc in it) is refused too."""
    kind = attr.mount_propagation
    if kind not in ("shared", "unchanged") or not mounts or not (clone | unshare) & NEWNS:
        return
    if clone & NEWUSER or (unshare & NEWUSER and unshare & NEWNS):
        return
    top, where = b"/", "this host"
    if _may_join(attr, NEWNS):
        joined = joined_mount_table(attr.setns)
        if joined is None:
            fail("SysProcAttr.mount_propagation", f"'{kind}' with mounts and a joined mount namespace needs "
                 "that namespace's mount table to tell that no mount reaches its mounts, read from a "
                 "process in it, and no process of this /proc is in it (or its table cannot be read): "
                 "give 'slave' or 'private'")
        table, top = joined
        where = "the joined mount namespace"
    elif _may_join(attr, NEWUSER):
        return
    else:
        table = read_mount_table()
        if table is None:
            fail("SysProcAttr.mount_propagation", f"'{kind}' with mounts needs this process's mount table "
                 "to tell that no mount reaches this host's (/proc/thread-self/mountinfo is unreadable): "
                 "give 'slave' or 'private'")
    m = mount_reaching_caller(mounts, table, top)
    if m is not None:
        fail("SysProcAttr.mount_propagation", f"'{kind}' keeps the new mount namespace's mounts peers of "
             f"{'this process' if top == b'/' else 'the joined namespace'}'s shared ones, so "
             f"mounts[{m.index}] would be made at {os.fsdecode(m.target)} on {where} too, and stay after "
             f"the program: give 'slave' (the program still sees {where}'s new mounts) or 'private', or "
             "cut that mount off first in the list (a propagation change Mount(None, TARGET, None, "
             "\"rprivate\"))")


def _needs_newns(field: str, namespaces: int) -> None:
    if not namespaces & NEWNS:
        fail(field, "needs a new mount namespace: add CLONE_NEWNS to cloneflags or unshareflags (else it "
             "would change this process's mounts)")


def check_extensions(attr: SysProcAttr, clone: int, unshare: int) -> Optional[Sandbox]:
    if not has_extensions(attr) and not clone & NEWNS:  # the default propagation is a step of its own
        return None
    namespaces = clone | unshare
    pivot = None if attr.pivot_root is None else to_abspath("SysProcAttr.pivot_root", attr.pivot_root)
    if pivot is not None and os.path.normpath(pivot).lstrip(b"/") == b"":
        fail("SysProcAttr.pivot_root", "is / itself, the root already: pivot_root(2) cannot put the root "
             "on itself (EBUSY); mount the new root elsewhere and name that")
    if pivot is not None and attr.chroot:
        fail("SysProcAttr.pivot_root", "cannot be combined with chroot: choose one new root")
    chroot = to_bytes("SysProcAttr.chroot", attr.chroot) if attr.chroot else b""
    root = pivot if pivot is not None else chroot
    given = check_list("SysProcAttr.mounts", attr.mounts, "Mount")  # read once, for both below
    mounts = check_mounts("SysProcAttr.mounts", given, root, _may_join_mounts(attr, given))
    readonly = check_bool("SysProcAttr.readonly_root", attr.readonly_root)
    for m in mounts:
        has_maps = attr.uid_mappings is not None or attr.gid_mappings is not None
        if m.idmap is True and not (namespaces & NEWUSER and has_maps):
            fail(f"SysProcAttr.mounts[{m.index}].idmap", "True idmaps to the child's own user namespace: "
                 "that needs CLONE_NEWUSER with uid_mappings/gid_mappings (or name a user namespace)")
    mounting = {"mounts": bool(mounts), "pivot_root": pivot is not None, "readonly_root": readonly}
    for name in (name for name, used in mounting.items() if used):
        _needs_newns(f"SysProcAttr.{name}", namespaces)
    propagation = _propagation(attr, clone, unshare)
    optional = next((i for i, m in enumerate(given) if isinstance(m, Mount) and m.optional), None)
    if optional is not None and propagation & PROPAGATION_FLAGS["shared"]:
        fail(f"SysProcAttr.mounts[{optional}].optional", "cannot be left out with mount_propagation "
             "'shared': a shared tree carries mounts where the check cannot follow them; make it not "
             "optional")
    _check_mounts_stay_inside(attr, mounts, clone, unshare)
    if pivot is not None and propagation & PROPAGATION_FLAGS["shared"]:
        fail("SysProcAttr.mount_propagation", "pivot_root refuses a shared mount tree: use 'private' or "
             "'slave'")
    if (pivot is not None or (readonly and chroot)) and not attr.setns:  # (a joined one has its own mounts)
        check_root_is_a_mount("SysProcAttr.pivot_root" if pivot is not None else "SysProcAttr.readonly_root",
                              root, mounts)
    if attr.cgroup is not None and attr.use_cgroup_fd:
        fail("SysProcAttr.cgroup", "cannot be combined with use_cgroup_fd: the child starts in one cgroup")
    caps = None
    if attr.capabilities is not None:
        if attr.ambient_caps:
            fail("SysProcAttr.capabilities", "cannot be combined with ambient_caps: list those in "
                 "capabilities.ambient")
        caps = check_capabilities("SysProcAttr.capabilities", attr.capabilities)
    sync = attr.sync
    if sync is not None and not callable(sync):
        fail("SysProcAttr.sync", f"must be a callable taking the child's pid, not {type(sync).__name__}",
             TypeError)
    exec_fd = None if attr.exec_fd is None else check_open_fd(
        "SysProcAttr.exec_fd", check_int("SysProcAttr.exec_fd", attr.exec_fd, 0, MAX_FD))
    landlock = None if attr.landlock is None else check_landlock("SysProcAttr.landlock", attr.landlock)
    seccomp = None
    if attr.seccomp is not None:
        last_step = "execve" if exec_fd is None else "execveat"
        seccomp = check_seccomp("SysProcAttr.seccomp", attr.seccomp, last_step)
    set_id_filter = _set_id_filter(attr, mounts)
    return Sandbox(
        hostname=_uts_name("SysProcAttr.hostname", attr.hostname, namespaces),
        domainname=_uts_name("SysProcAttr.domainname", attr.domainname, namespaces),
        propagation=propagation,
        mounts=mounts,
        pivot_root=pivot,
        readonly_root=(root or b"/") if readonly else None,
        rlimits=check_rlimits("SysProcAttr.rlimits", attr.rlimits),
        cgroup=None if attr.cgroup is None else check_cgroup("SysProcAttr.cgroup", attr.cgroup),
        caps=caps,
        landlock=landlock if landlock is not None and landlock.enforces else None,
        seccomp=seccomp,
        sync=sync,
        exec_fd=exec_fd,
        set_id_filter=set_id_filter,
        namespace_filter=_namespace_filter(attr.restrict_namespaces),
    )


def restricts_set_id(attr: SysProcAttr, mounts: Sequence[ResolvedMount]) -> bool:
    """Whether restrict_suid_sgid's filter is installed: asked (True), or by default (None) with an
    idmapped mount, where what the program's root creates is stored as the host's root's (with the
    role's maps), its set-id bits included, and no nosuid of the program's mount keeps them off the
    host, which reaches the files through its own mounts."""
    value = attr.restrict_suid_sgid
    if value is not None:
        return check_bool("SysProcAttr.restrict_suid_sgid", value)
    return any(m.idmap is not None for m in mounts)


def _set_id_filter(attr: SysProcAttr, mounts: Sequence[ResolvedMount]) -> Optional[bytes]:
    if not restricts_set_id(attr, mounts):
        return None
    try:
        return restrict_set_id()
    except ValueError as e:  # another architecture: fail closed, naming the field
        fail("SysProcAttr.restrict_suid_sgid", f"{e} (an idmapped mount turns it on: set it False to run "
             "without it)")


def _namespace_filter(value: object) -> Optional[bytes]:
    """restrict_namespaces's BPF program: None when unset or when it allows every type."""
    field = "SysProcAttr.restrict_namespaces"
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        fail(field, f"must be a mask of CLONE_NEW* flags (an int; 0 allows no namespace), not "
             f"{type(value).__name__}", TypeError)
    if value < 0 or value & ~NAMESPACE_MASK:
        fail(field, f"{value:#x} holds bits that are no namespace type ({value & ~NAMESPACE_MASK:#x}): give "
             "only CLONE_NEW* flags, the types the program may still create or join")
    if value == NAMESPACE_MASK:
        return None  # every type allowed: nothing to refuse
    try:
        return restrict_namespaces(int(value))
    except ValueError as e:  # another architecture: fail closed, naming the field
        fail(field, f"{e}: leave it unset to run without it")
