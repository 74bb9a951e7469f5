"""fork_exec and start_process: the parent's half of Go's forkExec.

Validate, compile the plan, clone (the C child runs the plan), write the uid/gid maps while the child
waits on the map pipe, run the sync callable while the child waits on the sync socket, then read
the error pipe: EOF means execve succeeded; a record means the child failed, in which case it is
reaped and a ChildError names the step.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import struct
from collections.abc import Sequence
from typing import Callable, Optional, Union

from . import _child
from . import cgroup as cgroup_mod
from .attrs import ProcAttr, SetNS, SysProcAttr, SysProcIDMap
from .cgroup import CgroupHandle, CgroupProcess
from .errors import ChildError, ErrorLocation
from .extensions import Ext
from .parent_ns import joined, parent_joins
from .plan import CLONE_VFORK, GID_MAP, NEWUSER, SETGROUPS, UID_MAP, Inputs, compile_plan, fd_floor
from .process import Process
from .validate import resolve_files, to_bytes, to_bytes_list, validate

StrOrBytes = Union[str, bytes, "os.PathLike[str]"]
_EMPTY_SYS = SysProcAttr()


def _pipe() -> tuple[int, int]:
    """A CLOEXEC pipe whose ends are above 2, so they never collide with the child's stdio slots."""
    r, w = os.pipe2(os.O_CLOEXEC)
    if r > 2 and w > 2:
        return r, w
    try:
        return os.dup(r) if r <= 2 else r, os.dup(w) if w <= 2 else w
    finally:  # os.dup makes non-inheritable (CLOEXEC) copies; drop the low originals
        for fd in (r, w):
            if fd <= 2:
                os.close(fd)


def _write_id_map(path: str, maps: Sequence[SysProcIDMap]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps).encode())
    finally:
        os.close(fd)


def _write_maps(pid: int, sys: SysProcAttr) -> tuple[int, int]:
    """Go's writeUidGidMappings: uid_map, setgroups (ENOENT ignored), gid_map. Returns (errno, index)."""
    index = UID_MAP
    try:
        if sys.uid_mappings is not None:
            _write_id_map(f"/proc/{pid}/uid_map", sys.uid_mappings)
        if sys.gid_mappings is not None:
            index = SETGROUPS
            try:
                fd = os.open(f"/proc/{pid}/setgroups", os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, b"allow" if sys.gid_mappings_enable_setgroups else b"deny")
                finally:
                    os.close(fd)
            except FileNotFoundError:
                pass
            index = GID_MAP
            _write_id_map(f"/proc/{pid}/gid_map", sys.gid_mappings)
    except OSError as e:
        return e.errno or errno.EIO, index
    return 0, 0


def _open_setns(entries: Sequence[SetNS], opened: list[int]) -> tuple[tuple[int, int], ...]:
    """Namespace fds for the child, user namespaces first (as nsenter joins them)."""
    out = []
    for e in entries:
        if isinstance(e.target, int):
            fd = e.target
        else:
            fd = os.open(e.target, os.O_RDONLY | os.O_CLOEXEC)
            opened.append(fd)
        out.append((fd, e.nstype))
    return tuple(sorted(out, key=lambda t: not t[1] & NEWUSER))


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):  # CLONE_PARENT: the child belongs to our parent
        os.waitpid(pid, 0)


def _high_fd(field: str, fd: int, floor: int) -> int:
    """A close-on-exec copy of ``fd`` at ``floor`` or above, out of the way of the child's fd passes."""
    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)
    except OSError as e:
        raise OSError(e.errno, f"{field}: {e.strerror}") from None


def _prepare_extensions(ext: Ext, inputs: Inputs, opened: list[int]) -> Optional[CgroupHandle]:
    """The parent's resources for the extension steps: the sync socket, exec fd, and the cgroup."""
    floor = fd_floor(inputs.files)
    if ext.exec_fd is not None:
        inputs.exec_fd = _high_fd("SysProcAttr.exec_fd", ext.exec_fd, floor)
        opened.append(inputs.exec_fd)
    if ext.sync is not None:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with a, b:
            inputs.sync_fds = (_high_fd("SysProcAttr.sync", a.fileno(), floor),
                               _high_fd("SysProcAttr.sync", b.fileno(), floor))
        opened += inputs.sync_fds
    if ext.cgroup is None:
        return None
    handle = cgroup_mod.prepare(ext.cgroup)
    inputs.cgroup_fd = handle.fd
    return handle


def _run_sync(pid: int, fn: Callable[[int], None], fds: tuple[int, int], opened: list[int],
              path: bytes) -> None:
    """Wait until the child is ready, run ``fn(pid)``, release the child. EOF: the child failed first."""
    child_end, parent_end = fds
    os.close(child_end)  # so that the child's exit shows as EOF here
    opened.remove(child_end)
    if not os.read(parent_end, 1):
        return  # its error record is on the error pipe
    try:
        fn(pid)
    except Exception as e:
        raise ChildError(errno.ECANCELED, ErrorLocation.SYNC_READ, 0, os.fsdecode(path)) from e
    os.write(parent_end, b"g")


def environ_entries() -> tuple[bytes, ...]:
    """This process's environment as ``KEY=value`` bytes (os.environb: no re-encoding per spawn)."""
    return tuple(k + b"=" + v for k, v in os.environb.items())


def _spawn(argv0: StrOrBytes, argv: Sequence[StrOrBytes], attr: Optional[ProcAttr],
           inherit_env: bool) -> tuple[int, int, Optional[CgroupHandle]]:
    attr = attr if attr is not None else ProcAttr()
    sys = attr.sys if attr.sys is not None else _EMPTY_SYS
    path = to_bytes("argv0", argv0)
    args = to_bytes_list("argv", argv)
    if attr.env is None:
        envp = environ_entries() if inherit_env else ()
    else:
        envp = to_bytes_list("ProcAttr.env", attr.env)
    files = resolve_files(attr.files)
    directory = to_bytes("ProcAttr.dir", attr.dir) if attr.dir else b""
    cloneflags, unshareflags, ext = validate(sys, attr, files)
    chroot = to_bytes("SysProcAttr.chroot", sys.chroot) if sys.chroot else b""

    opened: list[int] = []
    child_pipes = [-1, -1]  # the map pipe
    handle = failure = cgroup = None
    pid = pidfd = err_r = err_w = -1
    try:
        setns_fds = _open_setns(sys.setns, opened)
        inputs = Inputs(sys, cloneflags, unshareflags, files, directory, chroot, setns_fds=setns_fds,
                        parent_setns=parent_joins(setns_fds, cloneflags), ppid=os.getpid(), ext=ext)
        if sys.uid_mappings is not None or sys.gid_mappings is not None:
            inputs.map_fds = child_pipes[:] = _pipe()
            opened += child_pipes
        if ext is not None:
            cgroup = _prepare_extensions(ext, inputs, opened)
        plan = compile_plan(inputs)
        if not plan.flags & CLONE_VFORK:  # a vfork child leaves its failure in shared memory instead
            err_r, err_w = _pipe()
            opened += (err_r, err_w)
        with joined(setns_fds, inputs.parent_setns, os.fsdecode(path)):
            try:
                pid, pidfd, handle = _child.spawn(plan.steps, plan.blobs, path, args, envp, files, err_w,
                                                  plan.flags, plan.cgroup_fd)
            except OSError as e:
                raise ChildError(e.errno, ErrorLocation.CLONE, 0, os.fsdecode(path)) from None
        if err_w >= 0:
            os.close(err_w)  # the child has its own copy: EOF on err_r now means exec or exit
            opened.remove(err_w)
        if cgroup is not None:
            cgroup.close()
        if plan.map_pipe:
            os.close(child_pipes[0])
            opened.remove(child_pipes[0])
            code, index = _write_maps(pid, sys) if plan.parent_writes_maps else (0, 0)
            os.write(child_pipes[1], struct.pack("=ii", code, index))
        if ext is not None and ext.sync is not None:
            _run_sync(pid, ext.sync, inputs.sync_fds, opened, path)
    except BaseException:
        if pid > 0:  # interrupted between clone and exec: the child must not outlive the error
            os.kill(pid, 9)
            _child.finish(handle, err_r)
            handle = None
            _reap(pid)
            if pidfd >= 0:
                os.close(pidfd)
        if cgroup is not None:
            cgroup.cleanup()
        raise
    finally:
        for fd in opened:  # the write ends too: the child has its own copies
            if fd != err_r:
                os.close(fd)
        if handle is not None:
            failure = _child.finish(handle, err_r)
        if err_r >= 0:
            os.close(err_r)
    if failure is None:
        return pid, pidfd, cgroup
    _reap(pid)
    if pidfd >= 0:
        os.close(pidfd)
    if cgroup is not None:
        cgroup.cleanup()
    code, loc, index = failure
    raise ChildError(code, loc or ErrorLocation.EXECVE, index, os.fsdecode(path))


def fork_exec(argv0: StrOrBytes, argv: Sequence[StrOrBytes], attr: Optional[ProcAttr] = None) -> int:
    """Go's syscall.ForkExec: start argv0 (not searched in PATH) and return its pid.

    ``attr.env`` None means an empty environment, as in Go. With ``sys.pidfd`` the pidfd is closed
    here (use start_process to keep it). Raises ChildError if the child fails before execve.
    """
    pid, pidfd, _ = _spawn(argv0, argv, attr, inherit_env=False)
    if pidfd >= 0:
        os.close(pidfd)
    return pid  # a SysProcAttr.cgroup stays: the caller removes it after reaping (see cgroup.py)


def start_process(argv0: StrOrBytes, argv: Sequence[StrOrBytes], attr: Optional[ProcAttr] = None) -> Process:
    """Go's os.StartProcess: like fork_exec, but ``attr.env`` None inherits os.environ, and the result
    is a Process carrying the pidfd when ``sys.pidfd`` asked for one."""
    pid, pidfd, cgroup = _spawn(argv0, argv, attr, inherit_env=True)
    if cgroup is not None:
        return CgroupProcess(pid, pidfd if pidfd >= 0 else None, cgroup)
    return Process(pid, pidfd if pidfd >= 0 else None)
