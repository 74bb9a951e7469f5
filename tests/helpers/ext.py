"""Helpers of the extension tests (tests/test_ext_*.py): sandbox roots, mount tables, seccomp."""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from pyforkexec import CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUSER, SysProcAttr, SysProcIDMap
from pyforkexec.sandbox.mounts import Mount

# Enough of the host for /bin/sh and coreutils (Debian's merged /usr: /bin, /lib... are symlinks,
# and a bind mount of a symlink binds what it points to).
HOST_DIRS = ("/usr", "/bin", "/lib", "/lib64", "/sbin")
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_SET_MODE_FILTER = 1


def kernel_has_mount_setattr() -> bool:
    """mount_setattr(2) (Linux 5.12): without it a read-only recursive bind fails closed (ENOSYS)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall(442, -1, b"", 0, None, 0)  # SYS_mount_setattr on x86_64 and aarch64: EBADF/EINVAL if present
    return ctypes.get_errno() != 38  # ENOSYS


def host_binds(readonly: bool = True) -> list[Mount]:
    # The host's program directories have no submounts: before 5.12 bind them non-recursively, so that
    # the top-only remount is the whole change (a recursive one refuses there).
    recursive = kernel_has_mount_setattr()
    return [Mount.bind(d, d, readonly=readonly, recursive=recursive) for d in HOST_DIRS if os.path.exists(d)]


def new_root(*extra: Mount) -> list[Mount]:
    """A tmpfs as the new root (mount target "/"), the host's programs read-only, its own /proc and /tmp."""
    return [Mount.tmpfs("/", mode=0o755), *host_binds(), Mount.proc(), Mount.tmpfs("/tmp", mode=0o1777),
            *extra]


def userns(uid: int | None = None, gid: int | None = None, flags: int = 0, **kw: object) -> SysProcAttr:
    """A new user namespace (plus ``flags``) where the caller's ids map to root."""
    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if gid is None else gid
    return SysProcAttr(cloneflags=CLONE_NEWUSER | flags, uid_mappings=[SysProcIDMap(0, uid, 1)],
                       gid_mappings=[SysProcIDMap(0, gid, 1)], **kw)  # type: ignore[arg-type]


SANDBOX_NS = CLONE_NEWNS | CLONE_NEWPID


@dataclass(frozen=True)
class MountEntry:
    target: str
    fstype: str
    source: str
    root: str  # the path inside the source filesystem (a bind mount's source directory)
    options: frozenset[str]  # per-mount options (ro, nosuid, ...)
    tags: frozenset[str]  # propagation: shared, master, ...


def _unescape(text: str) -> str:
    return text.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def parse_mountinfo(text: str) -> list[MountEntry]:
    out = []
    for line in text.splitlines():
        fields = line.split()
        sep = fields.index("-")
        out.append(MountEntry(
            target=_unescape(fields[4]), fstype=fields[sep + 1], source=fields[sep + 2],
            root=_unescape(fields[3]), options=frozenset(fields[5].split(",")),
            tags=frozenset(t.split(":")[0] for t in fields[6:sep])))
    return out


def by_target(text: str) -> dict[str, MountEntry]:
    """The mount table as {target: entry}, the topmost mount of each target."""
    return {m.target: m for m in parse_mountinfo(text)}


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install_seccomp(program: bytes) -> None:
    """Install a BPF program on this process (a forked test child), with no_new_privs."""
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    nr = {"x86_64": 317, "aarch64": 277}[os.uname().machine]
    if libc.syscall(nr, SECCOMP_SET_MODE_FILTER, 0, ctypes.byref(prog)) != 0:
        raise OSError(ctypes.get_errno(), "seccomp(SECCOMP_SET_MODE_FILTER)")


def bpf(program: bytes) -> list[tuple[int, int, int, int]]:
    """A program as (code, jt, jf, k) instructions."""
    return [struct.unpack("=HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]


def lines(text: str) -> Sequence[str]:
    return text.strip().splitlines()
