"""Errors from a child that failed before execve, with the step that failed (as go-sandbox does)."""

from __future__ import annotations

import enum
import errno as errno_mod
import os
from typing import Optional


class ErrorLocation(enum.IntEnum):
    """The child step that failed. The numbers are stable; the order the child runs the steps in is
    plan.py's (NO_NEW_PRIVS and the Landlock steps run between PDEATHSIG and DUP3, as in Go 1.28)."""

    CLONE = 1
    SETNS = 2
    KEEPCAPS = 3
    UNSHARE_USER_READ = 4  # the uid/gid maps of a CLONE_NEWUSER child: the parent's write, or its own
    SETSID = 5
    SETPGID = 6
    IOCTL = 7  # TIOCSPGRP (foreground), TIOCNOTTY (noctty), TIOCSCTTY (setctty)
    SIGNAL_RESET = 8
    UNSHARE = 9
    ID_MAP_WRITE = 10  # the child's own setgroups/gid_map/uid_map after unshare(CLONE_NEWUSER)
    MOUNT_ROOT = 11  # making / private (or mount_propagation) after CLONE_NEWNS
    SETHOSTNAME = 12
    SETDOMAINNAME = 13
    MKDIR = 14  # creating the missing target of mounts[index]
    MOUNT = 15  # mounts[index]
    REMOUNT_RO = 16  # readonly_root: the new root made read-only, just before pivot_root/chroot
    PIVOT_ROOT = 17  # index 0: chdir(new root), 1: pivot_root(".", ".")
    UMOUNT_OLDROOT = 18  # index 0: umount2(old root, MNT_DETACH), 1: chdir("/")
    PRLIMIT = 19  # rlimits[index]
    CHROOT = 20
    SETGROUPS = 21
    SETGID = 22
    SETUID = 23
    SET_CAP = 24
    CAPBSET_DROP = 25  # capabilities: dropping capability number index from the bounding set
    CAPSET = 26  # capabilities: setting the permitted/effective/inheritable sets
    CAP_AMBIENT = 27  # capabilities: raising ambient capability number index
    CHDIR = 30
    PDEATHSIG = 31
    DUP3 = 32
    FCNTL = 33
    CLOSE_FDS = 34
    SETRLIMIT = 40  # Go's RLIMIT_NOFILE restore, which a Python parent never needs
    NO_NEW_PRIVS = 41
    SYNC_READ = 42  # waiting for the parent's sync callable (ECANCELED: it raised, or the parent left)
    PTRACE_ME = 50
    SECCOMP = 51  # index 0: SysProcAttr.seccomp, 1: restrict_suid_sgid's filter, 2: restrict_namespaces's
    EXECVE = 60
    EXECVEAT = 61  # exec_fd
    LANDLOCK_RESTRICT_SELF = 43  # Go 1.28's use_landlock: landlock_restrict_self(landlock_fd, landlock_flags)
    LANDLOCK = 44  # SysProcAttr.landlock: index 0: landlock_restrict_self, 1: closing the ruleset
    MOVE_MOUNT = 45  # attaching the idmapped tree of mounts[index] (move_mount)
    IDMAP = 46  # the parent's open_tree/mount_setattr(MOUNT_ATTR_IDMAP) of mounts[index]

    @property
    def step(self) -> str:
        return self.name.lower()


# Which file an ID_MAP_WRITE / UNSHARE_USER_READ error index names.
ID_MAP_FILES = ("uid_map", "setgroups", "gid_map")
UID_MAP, SETGROUPS, GID_MAP = range(len(ID_MAP_FILES))


# The field that asked for each step, as a spec document names it (``sys.`` SysProcAttr, ``proc.``
# ProcAttr; ``[]``: the error's index is the item's; a tuple: the field of each index). Steps no field
# asks for (execve: argv; the parent's own setsid/dup3/close) have none. ID_MAP_WRITE and
# UNSHARE_USER_READ name the map file.
FIELD_OF_STEP = {
    "SETNS": "sys.setns[]", "MKDIR": "sys.mounts[]", "MOUNT": "sys.mounts[]", "PRLIMIT": "sys.rlimits[]",
    "CLONE": ("sys.cloneflags", "sys.cgroup_fd", "sys.cgroup"),  # by index: forkexec's _clone_blame
    "IOCTL": ("sys.foreground", "sys.noctty", "sys.setctty"), "SET_CAP": "sys.ambient_caps",
    "UNSHARE": "sys.unshareflags", "KEEPCAPS": "sys.capabilities",
    "SETHOSTNAME": "sys.hostname", "SETDOMAINNAME": "sys.domainname", "MOUNT_ROOT": "sys.mount_propagation",
    "REMOUNT_RO": "sys.readonly_root", "PIVOT_ROOT": "sys.pivot_root", "UMOUNT_OLDROOT": "sys.pivot_root",
    "SETGROUPS": ("sys.credential.groups", "sys.credential"),  # 1: none given (Go clears them)
    "SETGID": "sys.credential.gid", "SETUID": "sys.credential.uid",
    "CAPBSET_DROP": "sys.capabilities", "CAPSET": "sys.capabilities", "CAP_AMBIENT": "sys.capabilities",
    "NO_NEW_PRIVS": "sys.no_new_privs", "CHDIR": "proc.dir",
    "SECCOMP": ("sys.seccomp", "sys.restrict_suid_sgid", "sys.restrict_namespaces"),
    "LANDLOCK_RESTRICT_SELF": "sys.landlock_fd", "LANDLOCK": "sys.landlock", "MOVE_MOUNT": "sys.mounts[]",
    "IDMAP": "sys.mounts[]", "CHROOT": "sys.chroot", "SETSID": "sys.setsid", "SETPGID": "sys.setpgid",
    "PDEATHSIG": "sys.pdeathsig", "PTRACE_ME": "sys.ptrace", "DUP3": "proc.files", "FCNTL": "proc.files",
    "EXECVEAT": "sys.exec_fd",
}
FIELD_OF_ID_MAP_FILE = {"uid_map": "sys.uid_mappings", "setgroups": "sys.gid_mappings_enable_setgroups",
                        "gid_map": "sys.gid_mappings"}


def _go_strerror(code: int) -> str:
    # Go's Errno.Error() is the C string with a lower-case first letter.
    text = os.strerror(code)
    return text[:1].lower() + text[1:]


class ChildError(OSError):
    """The child failed at ``location`` (with ``index`` when the step has several parts) before exec."""

    def __init__(self, code: int, location: ErrorLocation, index: int = 0, filename: Optional[str] = None):
        super().__init__(code, _go_strerror(code), filename)
        self.location = ErrorLocation(location)
        self.index = index

    @property
    def errno_name(self) -> str:
        return errno_mod.errorcode.get(self.errno, f"E{self.errno}")

    @property
    def field(self) -> Optional[str]:
        """The field whose step failed, as a spec document names it (``sys.mounts[2]``, ``proc.dir``,
        ``sys.gid_mappings``), or None for a step no field asks for (execve: argv)."""
        step = self.location.name
        field = FIELD_OF_STEP.get(step)
        if isinstance(field, tuple):
            field = field[self.index] if 0 <= self.index < len(field) else None
        if step in ("ID_MAP_WRITE", "UNSHARE_USER_READ") and 0 <= self.index < len(ID_MAP_FILES):
            field = FIELD_OF_ID_MAP_FILE[ID_MAP_FILES[self.index]]
        if field is not None and field.endswith("[]"):
            field = f"{field[:-2]}[{self.index}]"
        return field

    def __str__(self) -> str:
        return f"fork/exec {self.filename}: {self.strerror} (at {self.location.step})"

    def __reduce__(self):
        return (type(self), (self.errno, int(self.location), self.index, self.filename))
