"""The system calls the parent makes to prepare an fd for the child: a Landlock ruleset, a detached
(idmapped) mount tree. Python's os module has none of them, so they go through the C library's
syscall(2) with ctypes, imported by each function (not by this module: a command that makes
no such fd does not pay for ctypes at its start). The numbers are the same on x86_64 and aarch64 (system
calls added since Linux 5.1 share one table, asm-generic/unistd.h), the two architectures _child.c
builds for.

Each function returns the new fd, or raises OSError with the kernel's errno; the caller registers the
fd at once (the spawn's fd list) so that any later failure closes it.
"""

from __future__ import annotations

import errno
import os
import struct
from typing import Any, Optional

SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_MOUNT_SETATTR = 428, 429, 442
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_CREATE_RULESET_VERSION = 1 << 0
LANDLOCK_RULE_PATH_BENEATH, LANDLOCK_RULE_NET_PORT = 1, 2
# struct landlock_ruleset_attr: handled_access_fs, handled_access_net (ABI 4), scoped (ABI 6). A kernel
# with an older ABI takes the longer struct as long as the fields it does not know are zero.
RULESET_ATTR = struct.Struct("=QQQ")
PATH_BENEATH_ATTR = struct.Struct("=Qi")  # __attribute__((packed)): allowed_access, parent_fd
NET_PORT_ATTR = struct.Struct("=QQ")  # allowed_access, port
OPEN_TREE_CLONE, OPEN_TREE_CLOEXEC, AT_RECURSIVE, AT_EMPTY_PATH = 1, os.O_CLOEXEC, 0x8000, 0x1000
MOUNT_ATTR_IDMAP = 0x100000
MOUNT_ATTR = struct.Struct("=QQQQ")  # struct mount_attr: attr_set, attr_clr, propagation, userns_fd

_libc: Optional[Any] = None


def _syscall(number: int, *args: object) -> int:
    import ctypes

    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    result = _libc.syscall(ctypes.c_long(number), *args)
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return int(result)


def landlock_abi_version() -> int:
    """The kernel's Landlock ABI version; 0 when Landlock is not built in or not enabled at boot. Any
    other refusal (a seccomp filter's EPERM or EINVAL) says nothing of what the kernel enforces: an
    OSError, not a version 0 that would make a best-effort policy restrict nothing."""
    import ctypes

    try:
        return _syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                        ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))
    except OSError as e:
        if e.errno in (errno.ENOSYS, errno.EOPNOTSUPP):  # not built; not enabled (lsm= at boot)
            return 0
        raise OSError(e.errno, "Landlock's ABI version cannot be read (landlock_create_ruleset: "
                      f"{e.strerror}; a seccomp filter of this process?)") from None


def landlock_create_ruleset(fs: int, net: int, scoped: int) -> int:
    """A new ruleset fd (close-on-exec, as the kernel always makes it) handling these access masks."""
    import ctypes

    attr = RULESET_ATTR.pack(fs, net, scoped)
    return _syscall(SYS_LANDLOCK_CREATE_RULESET, attr, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))


def landlock_add_path_rule(ruleset: int, parent_fd: int, access: int) -> None:
    import ctypes

    _syscall(SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH),
             PATH_BENEATH_ATTR.pack(access, parent_fd), ctypes.c_uint32(0))


def landlock_add_port_rule(ruleset: int, port: int, access: int) -> None:
    import ctypes

    _syscall(SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(LANDLOCK_RULE_NET_PORT),
             NET_PORT_ATTR.pack(access, port), ctypes.c_uint32(0))


def open_tree_clone(source: bytes, recursive: bool) -> int:
    """A detached copy of the mount at ``source`` (with its submounts if ``recursive``), close-on-exec."""
    import ctypes

    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (AT_RECURSIVE if recursive else 0)
    return _syscall(SYS_OPEN_TREE, ctypes.c_int(-100), source, ctypes.c_uint(flags))  # AT_FDCWD


def mount_setattr_idmap(tree: int, userns_fd: int, recursive: bool) -> None:
    """Idmap the detached tree ``tree`` to the user namespace ``userns_fd``."""
    import ctypes

    attr = MOUNT_ATTR.pack(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
    flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    _syscall(SYS_MOUNT_SETATTR, ctypes.c_int(tree), b"", ctypes.c_uint(flags), attr,
             ctypes.c_size_t(len(attr)))
