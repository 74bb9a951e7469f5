"""A spawn from a process whose own seccomp filter fails seccomp(2) with EPERM: a filter the child must
install (restrict_suid_sgid's, restrict_namespaces's) cannot be, which must fail the spawn at SECCOMP
naming its field, never run the program without it. Call it in a forked copy (helpers.forked): the
filter stays on the process for good."""

from __future__ import annotations

import ctypes
import errno
from typing import Optional

from pyforkexec import ChildError, SysProcAttr
from pyforkexec.sandbox import syscalls
from pyforkexec.sandbox.seccomp import compile_rules

from .procs import capture


def spawn_with_seccomp_denied(sys_attr: SysProcAttr) -> tuple[int, int, int, Optional[str]]:
    """(errno, location, index, field) of the ChildError of spawning /bin/true with ``sys_attr`` here
    after this process denies itself seccomp(2); zeros and None if it ran."""
    libc = ctypes.CDLL(None, use_errno=True)
    arch = syscalls.machine()
    prog = compile_rules(arch, ((syscalls.table(arch)["seccomp"], 0x00050000 | errno.EPERM),), 0x7FFF0000)
    buf = ctypes.create_string_buffer(prog, len(prog))

    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = Fprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
    assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
    assert libc.syscall(syscalls.table(arch)["seccomp"], 1, 0, ctypes.byref(fprog)) == 0
    try:
        capture(["/bin/true"], sys_attr)
    except ChildError as e:
        return e.errno, int(e.location), e.index, e.field
    return 0, 0, 0, None
