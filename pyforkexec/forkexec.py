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
import resource
import signal
import struct
from collections.abc import Sequence
from typing import Callable, Optional, TypeVar, Union

from ._forklock import FORK_LOCK  # Go's syscall.ForkLock: see _forklock.py
from ._signals import SEIZE_TRIES, Hold, held, released, seize
from ._terminal import ForegroundTerminal, refuse_own_terminal
from .attrs import ProcAttr, SysProcAttr
from .checked import CheckedSpawns
from .checks import fail
from .child import _child
from .child.joins import joined, open_joins
from .child.plan import (
    CLONE_PIDFD,
    CLONE_VFORK,
    SETGROUPS,
    Plan,
    PlanInputs,
    child_may_map_itself,
    compile_plan,
    fd_floor,
    id_map_path,
    map_writes,
)
from .errors import ChildError, ErrorLocation
from .flags import CloneFlags
from .proc_pid import proc_pid
from .process import Process
from .sandbox import cgroup as cgroup_mod
from .sandbox.cgroup import CgroupHandle, CgroupProcess
from .sandbox.extensions import Sandbox
from .sandbox.idmap import open_idmapped_trees
from .sandbox.landlock import build_ruleset
from .sandbox.rlimits import RLIM_INFINITY
from .validate import NAMESPACE_MASK, SpawnArgs, check_mounts_hold

CLONE_NEWPID, CLONE_PARENT = int(CloneFlags.CLONE_NEWPID), int(CloneFlags.CLONE_PARENT)

StrOrBytes = Union[str, bytes, os.PathLike[str]]  # no string: see attrs.FileLike


_PF_FORKNOEXEC = 0x40  # linux/sched.h: a task that forked and has not exec'd since


def _pipe(what: str, opened: list[int]) -> tuple[int, int]:
    """A CLOEXEC pipe whose ends are above 2, so they never collide with the child's stdio slots;
    both ends are appended to ``opened``. An OSError (out of fds) names ``what`` the pipe is for."""
    try:
        r, w = os.pipe2(os.O_CLOEXEC)
    except OSError as e:
        raise OSError(e.errno, f"{what}: {e.strerror}") from None
    opened += (r, w)
    return _above_stdio(r, opened), _above_stdio(w, opened)


def _above_stdio(fd: int, opened: list[int]) -> int:
    if fd > 2:
        return fd
    copy = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    opened.append(copy)
    opened.remove(fd)
    os.close(fd)
    return copy


def _write_file(path: bytes, data: bytes, opened: list[int]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    opened.append(fd)
    try:
        os.write(fd, data)
    finally:
        opened.remove(fd)
        os.close(fd)


def _write_maps(pid: int, sys_attr: SysProcAttr, opened: list[int]) -> tuple[int, int]:
    """Go's writeUidGidMappings: uid_map, setgroups (ENOENT ignored), gid_map. Returns (errno, index).
    The files are the child's as /proc numbers it (proc_pid): /proc may be another PID namespace's."""
    writes = map_writes(sys_attr)
    try:
        where = str(proc_pid(pid)) if writes else ""
    except OSError as e:
        return e.errno or errno.ESRCH, writes[0][0]
    for index, data in writes:
        try:
            _write_file(id_map_path(where, index), data, opened)
        except FileNotFoundError:
            if index != SETGROUPS:  # a kernel before 3.19 has no setgroups file
                return errno.ENOENT, index
        except OSError as e:
            return e.errno or errno.EIO, index
    return 0, 0


def _high_fd(field: str, fd: int, floor: int, opened: list[int]) -> int:
    """A close-on-exec copy of ``fd`` at ``floor`` or above, out of the way of the child's fd passes."""
    try:  # below RLIMIT_NOFILE (_check_fd_room): EMFILE when every fd from floor up is taken
        copy = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)
    except OSError as e:
        raise OSError(e.errno, f"{field}: {e.strerror}") from None
    opened.append(copy)
    return copy


def _reserve_fd(field: str, floor: int, opened: list[int]) -> int:
    """A close-on-exec fd of ours at ``floor`` or above, whose number the child takes over."""
    fd = os.open("/", os.O_PATH | os.O_CLOEXEC)
    try:
        return _high_fd(field, fd, floor, opened)
    finally:
        os.close(fd)


def _prepare_sandbox(sandbox: Sandbox, inputs: PlanInputs, spawn: _Spawn) -> None:
    """The parent's resources for the extension steps: the sync socket, exec fd, and the cgroup."""
    floor = fd_floor(inputs.files)
    if sandbox.exec_fd is not None:
        inputs.exec_fd = _high_fd("SysProcAttr.exec_fd", sandbox.exec_fd, floor, spawn.fds)
    if sandbox.sync is not None:
        import socket  # only for a sync callable: the start of every command pays for it otherwise

        try:
            a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        except OSError as e:
            raise OSError(e.errno, f"SysProcAttr.sync: {e.strerror}") from None
        with a, b:
            inputs.sync_fds = (_high_fd("SysProcAttr.sync", a.fileno(), floor, spawn.fds),
                               _high_fd("SysProcAttr.sync", b.fileno(), floor, spawn.fds))
    if sandbox.cgroup is not None:
        spawn.cgroup = cgroup_mod.prepare(sandbox.cgroup)
        inputs.cgroup_fd = spawn.cgroup.fd
    if any(m.root for m in sandbox.mounts):  # the fd number the child opens mount targets as
        inputs.root_slot = _reserve_fd("SysProcAttr.mounts", floor, spawn.fds)
    if any(m.idmap is not None for m in sandbox.mounts):  # detached trees the child attaches
        inputs.mount_trees = open_idmapped_trees(sandbox.mounts, inputs.sys, spawn.path, spawn.fds)
    if sandbox.landlock is not None:  # close-on-exec, and the child closes it once restricted
        inputs.landlock_fd = build_ruleset("SysProcAttr.landlock", sandbox.landlock, spawn.fds)


def _check_fd_room(files: tuple[int, ...], sandbox: Sandbox) -> None:
    """The parent's extra fds for the child (the sync socket, the exec_fd copy) go above every fd
    the child's fd passes use: refuse, naming the files, when that is beyond RLIMIT_NOFILE."""
    extra = (2 if sandbox.sync is not None else 0) + (1 if sandbox.exec_fd is not None else 0)
    extra += 1 if any(m.root for m in sandbox.mounts) else 0
    if not extra:
        return
    floor, soft = fd_floor(files), _nofile("SysProcAttr.sync" if sandbox.sync is not None else
                                           "SysProcAttr.exec_fd" if sandbox.exec_fd is not None else
                                           "SysProcAttr.mounts")[0]
    if floor + extra > soft:
        which = "sync" if sandbox.sync is not None else "exec_fd" if sandbox.exec_fd is not None else "mounts"
        rule = (f"with SysProcAttr.{which}, the parent's {extra} extra fd(s) go from fd {floor} up, above "
                f"every fd the child gets, and RLIMIT_NOFILE is {soft}: use lower fds")
        error = ValueError(f"ProcAttr.files: {rule}")
        error.fd_room_rule = rule  # type: ignore[attr-defined]  # run() names its own stdin/stdout/stderr
        raise error


def environ_entries() -> tuple[bytes, ...]:
    """This process's environment as ``KEY=value`` bytes (os.environb: no re-encoding per spawn)."""
    return tuple(k + b"=" + v for k, v in os.environb.items())


class _Spawn:
    """Everything one spawn holds on the parent's side until the child is handed to the caller: the
    fds it opened, the child (pid, pidfd, the C handle on the memory it runs on), its cgroup.

    Every acquisition is registered here in the same breath (signal handlers are held, see
    _signals.py), so that abort() can undo exactly what exists, once, whatever raised and where.
    """

    def __init__(self, path: bytes, args: tuple[bytes, ...], envp: tuple[bytes, ...],
                 inputs: Optional[PlanInputs]) -> None:
        self.argv0, self.args, self.envp = path, args, envp
        self.inputs = inputs  # None for a spawn that opens nothing (AlonePlans): its plan is made already
        self.fds: list[int] = []
        self.err_r = -1  # the error pipe's read end, read by finish()
        self.pid = -1
        self.pidfd = -1
        self.handle: object = None  # until finish(): the child may still run on memory it points to
        self.failure: Optional[tuple[int, int, int]] = None  # a vfork child's, known when clone returns
        self.cgroup: Optional[CgroupHandle] = None
        self.vanished: Optional[tuple[int, int]] = None  # (location, index) of a handshake the child missed
        self.handed: Optional[Process] = None  # the result made (process()), undone with the spawn
        # Called once the child has its copies of the fds: start_process_then's, under FORK_LOCK
        self.after_clone: Optional[Callable[[], None]] = None
        # SysProcAttr.foreground's terminal, given back when the spawn fails or is undone
        self.terminal: Optional[ForegroundTerminal] = None

    @property
    def path(self) -> str:
        """argv0 as errors name it (decoded only when asked: most spawns never need it)."""
        return os.fsdecode(self.argv0)

    def clone(self, plan: Plan, files: tuple[int, ...], err_w: int) -> None:
        """Start the child that runs ``plan``. A vfork plan's child has exec'd or exited on return, its
        failure (if any) in self.failure; otherwise finish() waits for it on the error pipe."""
        try:  # it records pid, pidfd, handle and failure here before it returns: see _child.c
            _child.spawn(self, plan.steps, plan.blobs, self.argv0, self.args, self.envp, files, err_w,
                         plan.flags, plan.cgroup_fd)
        except OSError as e:
            blamed = self._clone_blame(plan, e.errno)
            raise ChildError(e.errno, ErrorLocation.CLONE, blamed, self.path) from None

    def _clone_blame(self, plan: Plan, code: int) -> int:
        """The CLONE error's index, which names the field (errors.FIELD_OF_STEP): 1 cgroup_fd, 2
        SysProcAttr.cgroup when clone3 went into a cgroup and the error is one CLONE_INTO_CGROUP gives
        (EPERM too when no namespace was asked for, which gives it too); else 0, the clone flags."""
        if plan.cgroup_fd < 0:
            return 0
        if code == errno.EPERM and plan.flags & NAMESPACE_MASK:
            return 0
        return 2 if self.cgroup is not None else 1

    def killed_unexeced(self, plan: Plan) -> Optional[tuple[int, int, int]]:
        """After the child's end without an error record, for a child clone3 put into a cgroup: the
        CLONE failure (naming the cgroup field) if it ended without an execve, killed before it ran:
        Linux (6.18 still) kills a child cloned into a cgroup that ``cgroup.kill`` was ever written
        to, at birth. (PF_FORKNOEXEC, set at fork, is cleared by execve before it closes the error
        pipe; the child is not reaped yet, so its pid is still its own. /proc numbers it as its PID
        namespace does: proc_pid.)"""
        if plan.cgroup_fd < 0:
            return None
        try:
            with open(f"/proc/{proc_pid(self.pid)}/stat", "rb") as f:
                flags = int(f.read().rsplit(b")", 1)[1].split()[6])
        except (OSError, IndexError, ValueError):
            return None  # reaped already (SIGCHLD ignored), or no /proc: as before, its exit tells
        if not flags & _PF_FORKNOEXEC:
            return None
        return (errno.ESRCH, ErrorLocation.CLONE, self._clone_blame(plan, errno.ESRCH))

    def close(self, fd: int) -> None:
        self.fds.remove(fd)
        os.close(fd)

    def finish(self) -> Optional[tuple[int, int, int]]:
        """Wait until the child no longer runs on our memory (it exec'd or exited); its error if any."""
        handle, self.handle = self.handle, None
        failure, self.failure = self.failure, None
        if handle is not None:
            failure = _child.finish(handle, self.err_r)
        if self.err_r >= 0:
            self.close(self.err_r)
            self.err_r = -1
        return failure

    def reap(self) -> None:
        """After a failure: reap the child, close the pidfd, remove the cgroup (with kill_remaining,
        killing what the child may have started there first: a spawn undone after its execve)."""
        started, pid = self.pid > 0, self.pid
        if self.pid > 0:
            with contextlib.suppress(ChildProcessError):  # CLONE_PARENT: the child is our parent's
                os.waitpid(self.pid, 0)
            self.pid = -1
        if self.terminal is not None:  # its group, which took the terminal's foreground, is gone
            self.terminal.give_back(pid)
        if self.handed is not None:  # made, then undone: it owns nothing (its finalizer closes nothing)
            self.handed._undone()
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1
        if self.cgroup is not None:
            cgroup, self.cgroup = self.cgroup, None
            cgroup.cleanup(failed=True, started=started)

    def pid_only(self) -> int:
        """fork_exec's result: the pid (a SysProcAttr.cgroup stays: the caller removes it after
        reaping, see cgroup.py)."""
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1
        return self.pid

    def process(self) -> Process:
        """start_process's result, which owns the pid, the pidfd and the cgroup from now on.

        Recorded before its __init__ runs: a spawn without a hold builds it with signals live, and an
        exception in __init__ must leave no half-built object that, collected later, waits for (or
        queues in _active) a pid the undo reaped. The undo disowns whatever it finds here (_undone);
        an object made but not yet recorded owns nothing yet (Process._owned)."""
        pidfd = self.pidfd if self.pidfd >= 0 else None
        cgroup = self.cgroup
        cls = Process if cgroup is None else CgroupProcess
        proc = self.handed = cls.__new__(cls)
        proc._terminal = self.terminal  # given back by the Process at its reap from now on (_undone: not)
        if cgroup is None:
            proc._own(self.pid, pidfd)  # its own child's pid and pidfd: nothing to check
        else:
            CgroupProcess.__init__(proc, self.pid, pidfd, cgroup)  # type: ignore[arg-type]
        return proc

    def abort(self, hold: Hold) -> None:
        """Undo the spawn: kill the child, close every fd (the error pipe's write end first, or
        finish() would wait for an EOF that never comes), let the child's memory go, reap it, remove
        the cgroup; then let ``hold`` go. Idempotent, and held, so a second signal cannot cut it short."""
        try:
            with held():
                self._undo()
        finally:
            hold.release()

    def _undo(self) -> None:
        if self.pid > 0:
            with contextlib.suppress(ProcessLookupError):
                if self.pidfd >= 0:
                    signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
                else:
                    os.kill(self.pid, signal.SIGKILL)
        for fd in [fd for fd in self.fds if fd != self.err_r]:
            self.close(fd)
        self.finish()
        self.reap()

    def fail(self, failure: tuple[int, int, int]) -> ChildError:
        """The child failed before execve: reap it, and the ChildError that names the step."""
        self.reap()
        code, location, index = failure
        return ChildError(code, location or ErrorLocation.EXECVE, index, self.path)


def _maps_handshake(spawn: _Spawn, pid: int, sys_attr: SysProcAttr, plan: Plan,
                    map_fds: tuple[int, int]) -> None:
    """Write the child's uid/gid maps while it waits, then tell it the outcome."""
    spawn.close(map_fds[0])
    code, index = _write_maps(pid, sys_attr, spawn.fds) if plan.parent_writes_maps else (0, 0)
    try:
        os.write(map_fds[1], struct.pack("=ii", code, index))
    except BrokenPipeError:  # it failed or was killed before it read: its error record says which
        spawn.vanished = (ErrorLocation.UNSHARE_USER_READ, index if code else 0)
    spawn.close(map_fds[1])




def _sync_handshake(spawn: _Spawn, fn: Callable[[int], None], parent_end: int) -> None:
    """Wait until the child is ready, run ``fn(pid)``, release the child. (The child's end of the
    socket is closed already, start_spawn: the child's exit shows as EOF here.)"""
    if not os.read(parent_end, 1):
        spawn.vanished = (ErrorLocation.SYNC_READ, 0)  # it failed first (see its record), or was killed
        return
    try:
        with released():  # the caller's code: its signals are its own
            fn(spawn.pid)
    except Exception as e:
        raise ChildError(errno.ECANCELED, ErrorLocation.SYNC_READ, 0, spawn.path) from e
    try:
        os.write(parent_end, b"g")
    except BrokenPipeError:  # fn killed it
        spawn.vanished = (ErrorLocation.SYNC_READ, 0)


Compiler = Callable[[PlanInputs], Plan]
_INPUTS = PlanInputs.__slots__


class PlanCache:
    """compile_plan for a spawn made again and again from the same checked (frozen) arguments: the
    last plan is reused while every PlanInputs value equals the last spawn's. The plan is a pure
    function of those values, and every field is compared, one added later too, so a reused plan is
    the plan compile_plan would make. One slot, set by a single assignment: threads at worst compile
    twice."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: Optional[tuple[tuple[object, ...], Plan]] = None

    def __call__(self, inputs: PlanInputs) -> Plan:
        key = tuple([getattr(inputs, name) for name in _INPUTS])
        last = self.last
        if last is not None and last[0] == key:
            return last[1]
        plan = compile_plan(inputs)
        self.last = (key, plan)
        return plan


def start_spawn(spawn: _Spawn, compile: Compiler) -> None:
    """Open what the child needs, clone it, do the parent's half of its handshakes, wait for execve.
    ``compile`` is compile_plan, or a Prepared's cache of its results (prepared.py)."""
    inputs, sandbox = spawn.inputs, spawn.inputs.sandbox
    sys_attr = inputs.sys
    with FORK_LOCK:  # no os.fork of another thread copies the ends whose EOF tells the child's end
        inputs.joins = open_joins(sys_attr.setns, inputs.cloneflags, spawn.fds, spawn.path,
                                  inputs.unshareflags, sys_attr)
        if inputs.joins and sandbox is not None and (sandbox.mounts or sandbox.readonly_root is not None):
            # the rule again with the types of the fds the child joins (validate read them by path)
            check_mounts_hold(sys_attr, inputs.cloneflags, inputs.unshareflags, sandbox,
                              [join.kind for join in inputs.joins])
        if any(join.by_parent and join.kind & CLONE_NEWPID for join in inputs.joins):
            inputs.ppid = 0  # born in the joined PID namespace: its parent, outside, is not seen from there
        if sys_attr.uid_mappings is not None or sys_attr.gid_mappings is not None:
            inputs.maps_by_child = _maps_by_child(sys_attr, inputs.cloneflags, inputs.unshareflags,
                                                  inputs.joins)
            if not inputs.maps_by_child:
                field = "uid_mappings" if sys_attr.uid_mappings is not None else "gid_mappings"
                inputs.map_fds = _pipe(f"SysProcAttr.{field}: the pipe that releases the child once its "
                                       "maps are written", spawn.fds)
        if sandbox is not None:
            _prepare_sandbox(sandbox, inputs, spawn)
        plan = compile(inputs)
        err_w = -1
        if not plan.flags & CLONE_VFORK:  # a vfork child leaves its failure in shared memory instead
            spawn.err_r, err_w = _pipe(f"fork/exec {spawn.path}: the pipe of the child's error", spawn.fds)
        _check_files_not_ours(inputs.files, spawn)
        with joined(inputs.joins, spawn.path) if inputs.joins else contextlib.nullcontext():
            spawn.clone(plan, inputs.files, err_w)
        if err_w >= 0:
            spawn.close(err_w)  # the child has its own copy: EOF on err_r now means exec or exit
        if inputs.sync_fds[0] >= 0:
            spawn.close(inputs.sync_fds[0])  # the child's end of the sync socket: its exit is EOF
        if spawn.after_clone is not None:
            spawn.after_clone()  # the caller's own fds for the child (run()'s pipes), still under the lock
    if spawn.cgroup is not None:
        spawn.cgroup.close()  # the child is in it; the directory stays until it is reaped
    if plan.map_pipe:
        _maps_handshake(spawn, spawn.pid, sys_attr, plan, inputs.map_fds)
    if sandbox is not None and sandbox.sync is not None:
        _sync_handshake(spawn, sandbox.sync, inputs.sync_fds[1])
    for fd in spawn.fds[:]:  # the sync socket and exec fd copies: the child has its own
        if fd != spawn.err_r:
            spawn.close(fd)
    failure = spawn.finish()
    if failure is None and spawn.vanished is not None:
        location, index = spawn.vanished  # gone without a word before a handshake: it never exec'd
        failure = (errno.ESRCH, location, index)
    failure = failure or spawn.killed_unexeced(plan)
    if failure is not None:
        raise spawn.fail(failure)


def _check_files_not_ours(files: tuple[int, ...], spawn: _Spawn) -> None:
    """A ProcAttr.files entry that names an fd this spawn opened was closed when the spawn began (the
    kernel gave its number to ours): the child would get our pipe in its place, where a spawn that
    opens nothing fails at the fd pass. Failed the same way, before the child exists."""
    ours = set(spawn.fds)
    for i, fd in enumerate(files):
        if fd in ours:
            location = ErrorLocation.FCNTL if fd == i else ErrorLocation.DUP3
            raise ChildError(errno.EBADF, location, i, spawn.path)


def _maps_by_child(sys_attr: SysProcAttr, cloneflags: int, unshareflags: int,
                   joins: tuple[object, ...]) -> bool:
    """Whether this spawn's child writes its own uid/gid maps (plan.child_may_map_itself with our euid and
    egid now). Not when it joins namespaces: a joined mount namespace's /proc could keep it from them."""
    return not joins and child_may_map_itself(sys_attr, cloneflags, unshareflags, os.geteuid(), os.getegid())


def opens_nothing(args: SpawnArgs) -> bool:
    """Whether a spawn of ``args`` may open nothing in the parent: no namespace to join, and none of the
    sandbox's resources that _prepare_sandbox opens (the same conditions). Its maps still decide per
    spawn (AlonePlans)."""
    sandbox = args.sandbox
    return not args.sys.setns and (sandbox is None or (
        sandbox.exec_fd is None and sandbox.sync is None and sandbox.cgroup is None
        and sandbox.landlock is None and not any(m.idmap is not None or m.root for m in sandbox.mounts)))


class AlonePlans:
    """The plans of a checked spawn that opens nothing in the parent (opens_nothing): no fd, no pipe, no
    handshake, the child sleeping in clone until it exec'd or failed, as vfork does. Such a plan depends
    only on our pid (pdeathsig's check) and on whether the child may write its own maps (our euid and
    egid, and the RLIMIT_NOFILE a plan setting rlimits starts from): the last answer is reused while
    they are unchanged. None when this spawn needs the parent after all (maps only the parent may write):
    the caller takes start_spawn's way."""

    __slots__ = ("args", "last")

    def __init__(self, args: SpawnArgs) -> None:
        self.args = args
        self.last: Optional[tuple[tuple[int, int, int, tuple[int, int]], Optional[Plan]]] = None

    def __call__(self) -> Optional[Plan]:
        args = self.args
        # Everything the answer depends on besides args (its own, checked: nobody changes them)
        key = (parent_seen_by_child(args.cloneflags), os.geteuid(), os.getegid(), parent_nofile(args.sandbox))
        last = self.last
        if last is not None and last[0] == key:
            return last[1]
        plan = self._plan(key)
        self.last = (key, plan)
        return plan

    def _plan(self, key: tuple[int, int, int, tuple[int, int]]) -> Optional[Plan]:
        args = self.args
        sys_attr = args.sys
        ppid, euid, egid, nofile = key
        by_child = False
        if sys_attr.uid_mappings is not None or sys_attr.gid_mappings is not None:
            by_child = child_may_map_itself(sys_attr, args.cloneflags, args.unshareflags, euid, egid)
            if not by_child:
                return None
        inputs = PlanInputs(args.sys, args.cloneflags, args.unshareflags, args.files, args.dir, args.chroot,
                            maps_by_child=by_child, ppid=ppid, sandbox=args.sandbox, nofile=nofile)
        plan = compile_plan(inputs)
        return plan if plan.flags & CLONE_VFORK else None


def _run_alone(spawn: _Spawn, plan: Plan, files: tuple[int, ...]) -> None:
    """start_spawn for a plan of AlonePlans: one call clones, and returns once the child exec'd or failed
    (a failed child reaped already)."""
    spawn.clone(plan, files, -1)
    if spawn.after_clone is not None:
        spawn.after_clone()
    failure = spawn.finish() or spawn.killed_unexeced(plan)
    if failure is not None:
        raise spawn.fail(failure)


T = TypeVar("T")


def _spawn_checked(args: SpawnArgs, envp: tuple[bytes, ...], alone: Optional[Plan], compile: Compiler,
                   result: Callable[[_Spawn], T], after_clone: Optional[Callable[[], None]] = None) -> T:
    """The spawn of checked arguments, handed over as ``result`` makes it (_Spawn.pid_only or process).
    ``alone`` is its plan when AlonePlans made one (the spawn opens nothing), else None: start_spawn
    opens what it needs and compiles the plan with ``compile``.

    Every resource is registered the moment it exists and undone by abort() on any exception. Python's
    signal handlers are held (_signals.py) from before the first fd to the hand-over, because a handler
    could raise between a call that opened an fd and the store of its number. A spawn of an alone plan
    without a pidfd opens no fd in Python: its one resource, the child, is recorded by the C call
    itself before any handler can run, so it needs no hold (which costs more than the rest of a
    prepared spawn's Python)."""
    if alone is not None and not alone.flags & CLONE_PIDFD:
        spawn = _Spawn(args.path, args.argv, envp, None)
        spawn.after_clone = after_clone
        if args.sys.foreground:
            spawn.terminal = ForegroundTerminal(args.sys.ctty, args.sys.pgid)
        hold = Hold()  # only for the undo: made here, as the except clause may call nothing before it
        try:
            _run_alone(spawn, alone, args.files)
            return result(spawn)  # a handler raising after this call still finds the child to undo
        except BaseException:
            seize(hold.start, SEIZE_TRIES)  # first: see _signals.seize
            spawn.abort(hold)
            raise
    spawn = new_spawn(args, envp) if alone is None else _Spawn(args.path, args.argv, envp, None)
    spawn.after_clone = after_clone
    if args.sys.foreground:
        spawn.terminal = ForegroundTerminal(args.sys.ctty, args.sys.pgid)
    hold = Hold()  # from before the first fd to the result in this frame: see _signals.py
    try:
        hold.start()
        if alone is None:
            start_spawn(spawn, compile)
        else:
            _run_alone(spawn, alone, args.files)
        out = result(spawn)
        hold.stop()
        return out  # inside the try: a signal's exception cannot come between it and the caller
    except BaseException:
        spawn.abort(hold)
        raise


def new_spawn(args: SpawnArgs, envp: tuple[bytes, ...]) -> _Spawn:
    """One spawn of checked arguments: what depends on this moment (RLIMIT_NOFILE, our pid) is read now."""
    if args.sandbox is not None:
        _check_fd_room(args.files, args.sandbox)
    inputs = PlanInputs(args.sys, args.cloneflags, args.unshareflags, args.files, args.dir, args.chroot,
                        ppid=parent_seen_by_child(args.cloneflags), sandbox=args.sandbox,
                        nofile=parent_nofile(args.sandbox))
    return _Spawn(args.path, args.argv, envp, inputs)


def _nofile(field: str) -> tuple[int, int]:
    """This process's RLIMIT_NOFILE, which ``field`` needs; an OSError naming it when the kernel will
    not say (a seccomp filter refusing prlimit64, which getrlimit calls)."""
    try:
        return resource.getrlimit(resource.RLIMIT_NOFILE)
    except OSError as e:
        raise OSError(e.errno, f"{field}: this process's RLIMIT_NOFILE cannot be read (prlimit64: "
                      f"{e.strerror})") from None


def parent_nofile(sandbox: Optional[Sandbox]) -> tuple[int, int]:
    """This process's RLIMIT_NOFILE, which the child starts with: a plan setting it needs it
    (compile_plan raises the hard limit early only when asked above it)."""
    if sandbox is None or not sandbox.rlimits:
        return (RLIM_INFINITY, RLIM_INFINITY)
    soft, hard = _nofile("SysProcAttr.rlimits")
    return (RLIM_INFINITY if soft == resource.RLIM_INFINITY else soft,
            RLIM_INFINITY if hard == resource.RLIM_INFINITY else hard)


def parent_seen_by_child(cloneflags: int) -> int:
    """What the child's getppid() returns while the process it is born to lives: pdeathsig's check
    (Go's) signals the child when it reads anything else, its parent being gone already. Ours; our
    parent's with CLONE_PARENT; 0 in a PID namespace of its own, where its parent is not seen (the
    joins of one are start_spawn's to add)."""
    if cloneflags & CLONE_NEWPID:
        return 0
    return os.getppid() if cloneflags & CLONE_PARENT else os.getpid()


def drop_own_groups_for(sys_attr: Optional[SysProcAttr]) -> None:
    """For a launcher of its own (``exec --spec``, the daemon), root: drop this process's supplementary
    groups where the child asks for none and could not drop them itself (refuse_kept_groups), as
    nsenter's launcher does. A root started from a login (groups 0) would otherwise hand group 0 to
    every service in a user namespace that denies setgroups."""
    if sys_attr is None or os.geteuid() != 0 or not os.getgroups():
        return
    try:
        refuse_kept_groups(sys_attr)
    except ValueError:
        os.setgroups([])


def refuse_kept_groups(sys_attr: SysProcAttr) -> None:
    """Go skips setgroups for a Credential without groups in a new user namespace that denies it
    (gid_mappings without gid_mappings_enable_setgroups): the child keeps this process's supplementary
    groups, which show as the overflow gid inside and still grant their access on this host. Refused
    (checked at each spawn: it is this process's state) unless this process has none beyond the host
    gid the child's own gid maps to; ``no_setgroups`` keeps them knowingly."""
    cred = sys_attr.credential
    if (cred is None or cred.no_setgroups or cred.groups or sys_attr.gid_mappings is None
            or sys_attr.gid_mappings_enable_setgroups):
        return
    own = {m.host_id + cred.gid - m.container_id for m in sys_attr.gid_mappings
           if m.container_id <= cred.gid < m.container_id + m.size}
    kept = [g for g in os.getgroups() if g not in own]
    if kept:
        fail("SysProcAttr.credential.groups", "is empty (no supplementary groups), but the child's user "
             "namespace denies setgroups (gid_mappings without gid_mappings_enable_setgroups): it would keep "
             f"this process's groups {', '.join(map(str, kept))}, which still grant their access on this "
             "host. Drop them in this process first, or set credential.no_setgroups to keep them")


# The rules of an entry point (fork_exec: a pid only; start_process: a Process that waits) that
# check_spawn, which serves both, cannot apply: (field, rule, the Python API's way out, a spec
# document's way out). A check that stands for a start (``pyforkexec exec --spec --check``) applies
# them through entry_refusal, so that it refuses what the start refuses.
_KILL_REMAINING_UNSEEN = (
    "SysProcAttr.cgroup.kill_remaining",
    "happens once the child has been reaped, which fork_exec (a pid only) never sees",
    "use start_process or run, whose Process kills what remains",
    'set it false, or "wait": true')
_PARENT_UNREAPED = (
    "SysProcAttr.cloneflags",
    "CLONE_PARENT makes the child our parent's, which a Process cannot wait for or reap",
    "start it with fork_exec (its pid is our parent's to reap)",
    'leave it out, or set "wait": false (the program is then the launcher\'s parent\'s to reap)')


def entry_refusal(args: SpawnArgs, process: bool) -> Optional[tuple[str, str, str, str]]:
    """The rule of the entry point (``process``: start_process, else fork_exec) that checked
    arguments break, as (field, rule, the API's remedy, a spec's remedy), or None."""
    if process:
        return _PARENT_UNREAPED if args.cloneflags & CLONE_PARENT else None
    cgroup = args.sandbox.cgroup if args.sandbox is not None else None
    return _KILL_REMAINING_UNSEEN if cgroup is not None and cgroup.cgroup.kill_remaining else None


def _refuse_at_entry(args: SpawnArgs, process: bool) -> None:
    refuse_kept_groups(args.sys)
    if args.sys.setctty:
        refuse_own_terminal(args.sys, args.files)
    refused = entry_refusal(args, process)
    if refused is not None:
        field, rule, remedy, _ = refused
        fail(field, f"{rule}: {remedy}")


def fork_exec_checked(args: SpawnArgs, envp: tuple[bytes, ...], alone: Optional[AlonePlans],
                      compile: Compiler) -> int:
    """fork_exec of checked arguments: ``alone`` the AlonePlans of a spawn that opens nothing, or None;
    ``compile`` compile_plan or a PlanCache (prepared.py)."""
    _refuse_at_entry(args, process=False)
    return _spawn_checked(args, envp, alone() if alone is not None else None, compile, _Spawn.pid_only)


def start_checked(args: SpawnArgs, envp: tuple[bytes, ...], alone: Optional[AlonePlans],
                  compile: Compiler, after_clone: Optional[Callable[[], None]] = None) -> Process:
    """start_process of checked arguments, as fork_exec_checked; ``after_clone`` see start_process_then."""
    _refuse_at_entry(args, process=True)
    return _spawn_checked(args, envp, alone() if alone is not None else None, compile, _Spawn.process,
                          after_clone)


def alone_plans(args: SpawnArgs) -> Optional[AlonePlans]:
    """The AlonePlans of a spawn that opens nothing in the parent, else None (start_spawn's way)."""
    return AlonePlans(args) if opens_nothing(args) else None


# check_spawn of fork_exec and start_process, and their AlonePlans, remembered by value (checked.py).
checked_spawn = CheckedSpawns(alone_plans)


def fork_exec(argv0: StrOrBytes, argv: Sequence[StrOrBytes], attr: Optional[ProcAttr] = None) -> int:
    """Go's syscall.ForkExec: start argv0 (not searched in PATH) and return its pid.

    ``attr.env`` None means an empty environment, as in Go. With ``SysProcAttr.pidfd`` the pidfd is closed
    here (use start_process to keep it). Raises ChildError if the child fails before execve.
    """
    args, alone = checked_spawn(argv0, argv, attr)  # every check: no process, no fd yet
    envp = args.env if args.env is not None else ()
    return fork_exec_checked(args, envp, alone, compile_plan)


def start_process(argv0: StrOrBytes, argv: Sequence[StrOrBytes], attr: Optional[ProcAttr] = None) -> Process:
    """Go's os.StartProcess: like fork_exec, but ``attr.env`` None inherits os.environ, and the result
    is a Process carrying the pidfd when ``SysProcAttr.pidfd`` asked for one."""
    args, alone = checked_spawn(argv0, argv, attr)
    envp = args.env if args.env is not None else environ_entries()
    return start_checked(args, envp, alone, compile_plan)


def start_process_then(argv0: StrOrBytes, argv: Sequence[StrOrBytes], attr: Optional[ProcAttr],
                       after_clone: Callable[[], None]) -> Process:
    """start_process, calling ``after_clone()`` once the child exists and has its copies of the fds
    (before any handshake or the wait for its execve), while the spawn holds FORK_LOCK: for a caller that
    made fds for the child under FORK_LOCK (run()'s pipes) to close the child's ends and let the lock go
    (_forklock.py). Not called if no child was made: the caller's own cleanup does it then."""
    args, alone = checked_spawn(argv0, argv, attr)
    envp = args.env if args.env is not None else environ_entries()
    return start_checked(args, envp, alone, compile_plan, after_clone)
