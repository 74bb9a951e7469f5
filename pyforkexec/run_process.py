"""run(): subprocess.run's shape on top of start_process, for namespaced commands.

Every argument is checked before anything is opened or started (a ValueError/TypeError naming it);
once the child exists, any exception leaving run() (a timeout, KeyboardInterrupt, an error reading
its output) kills and reaps it and closes every fd run() opened.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import selectors
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Optional, Union

from ._forklock import FORK_LOCK
from ._signals import SEIZE_TRIES, Hold, held, seize
from .attrs import ProcAttr, SysProcAttr
from .checks import check_bool, check_fileno, check_int, check_list, check_open_fd, fail, to_bytes
from .forkexec import start_process_then
from .lookpath import find_program
from .plain import plain
from .process import Process, TimeoutExpired, check_timeout

PIPE, STDOUT, DEVNULL = subprocess.PIPE, subprocess.STDOUT, subprocess.DEVNULL
Stream = Union[None, int, IO[Any]]
StrOrBytes = Union[str, bytes, os.PathLike[str]]  # no string: see attrs.FileLike
_MAX_WAIT = 3600.0
_PIDFD_ONLY = SysProcAttr(pidfd=True)  # run()'s sys when the caller gives none (never handed out)
_STREAM_RULE = "must be None, PIPE, DEVNULL, an fd or an object with fileno()"


@dataclass(frozen=True)
class _Args:
    """run()'s arguments, checked."""

    argv: list[StrOrBytes]
    program: str
    env: Optional[list[bytes]]
    cwd: Optional[str]
    input: Optional[bytes]
    streams: tuple[Optional[int], Optional[int], Optional[int]]  # None, PIPE, DEVNULL, STDOUT or an fd
    kill_group: bool


def _env_entries(env: object) -> Optional[list[bytes]]:
    if env is None:
        return None
    if not isinstance(env, Mapping):
        fail("env", f"must be a mapping of names to values (like os.environ), not {type(env).__name__}",
             TypeError)
    out = []
    for key, value in env.items():
        name = to_bytes(f"env[{key!r}]", key)
        if not name or b"=" in name:
            fail(f"env[{key!r}]", "a variable name must be non-empty and without '='")
        out.append(name + b"=" + to_bytes(f"env[{key!r}]", value))
    return out


def _lookup(argv0: StrOrBytes, env: Optional[list[bytes]]) -> str:
    """argv0 as start_process gets it: looked up in the PATH the child gets unless it has a '/'."""
    name = os.fsdecode(argv0)
    if env is None:
        path = os.environ.get("PATH", os.defpath)
    else:
        path = next((os.fsdecode(e[5:]) for e in env if e.startswith(b"PATH=")), os.defpath)
    return find_program(name, path) or name  # not found: execve reports ENOENT at its step


def _input(data: object) -> Optional[bytes]:
    if data is None:
        return None
    if isinstance(data, str):
        try:
            return data.encode()
        except UnicodeEncodeError as e:
            fail("input", f"cannot be encoded as UTF-8 ({e.reason} at position {e.start})")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    fail("input", f"must be bytes or str, not {type(data).__name__}", TypeError)


def _stream(name: str, spec: object) -> Optional[int]:
    """One of stdin/stdout/stderr: None, PIPE, DEVNULL, STDOUT (stderr only), or an open fd."""
    if spec is None:
        return None
    if isinstance(spec, int) and not isinstance(spec, bool) and spec < 0:
        if spec in (PIPE, DEVNULL) or (spec == STDOUT and name == "stderr"):
            return spec
        fail(name, f"{_STREAM_RULE}{', or STDOUT' if name == 'stderr' else ''}, got {spec}")
    # Open now: the spawn would fail at the child's dup step (ChildError), or give the child a pipe
    # run() opens meanwhile under that number; subprocess.run fails on it too.
    return check_open_fd(name, check_fileno(name, spec))


def _check(argv: object, sys: object, env: object, cwd: object, input: object, capture_output: object,
           timeout: object, check: object, stdin: object, stdout: object, stderr: object,
           text: object, kill_group: object) -> _Args:
    if isinstance(argv, (str, bytes)):
        fail("argv", "must be a list of strings, not a single string", TypeError)
    args = list(check_list("argv", argv, "strings"))
    if not args:
        fail("argv", "must not be empty: argv[0] names the program")
    for i, a in enumerate(args):
        to_bytes(f"argv[{i}]", a)
    if sys is not None:
        if not isinstance(sys, SysProcAttr):
            fail("sys", f"must be a SysProcAttr or None, not {type(sys).__name__}", TypeError)
        if check_bool("sys.ptrace", sys.ptrace):
            fail("sys.ptrace", "run() waits for the child to exit and cannot be its tracer (the traced "
                 "child would stop at execve forever): use start_process and trace it yourself")
    envp = _env_entries(env)
    directory = None if cwd is None else os.fsdecode(to_bytes("cwd", cwd))
    for name, value in (("capture_output", capture_output), ("check", check), ("text", text),
                        ("kill_group", kill_group)):
        check_bool(name, value)
    if kill_group and not _leads_a_group(sys):
        fail("kill_group", "the child must lead a process group of its own (sys.setpgid or sys.foreground "
             "with pgid 0, or sys.setsid): kill_group kills the group whose id is the child's pid")
    if timeout is not None:
        check_timeout(timeout)
    data = _input(input)
    streams = (_stream("stdin", stdin), _stream("stdout", stdout), _stream("stderr", stderr))
    if capture_output:
        if stdout is not None or stderr is not None:
            fail("capture_output", "cannot be combined with stdout or stderr")
        streams = (streams[0], PIPE, PIPE)
    if data is not None:
        if stdin is not None:
            fail("input", "cannot be combined with stdin")
        streams = (PIPE, streams[1], streams[2])
    return _Args(args, _lookup(args[0], envp), envp, directory, data, streams, bool(kill_group))


def _leads_a_group(sys: object) -> bool:
    """Whether the child of ``sys`` leads a process group of its own (kill_group's rule). The fields
    read are checked first, as the spawn would check them: a wrong one is named, not kill_group."""
    if not isinstance(sys, SysProcAttr):
        return False
    setsid, setpgid, foreground = (check_bool(f"SysProcAttr.{name}", getattr(sys, name))
                                   for name in ("setsid", "setpgid", "foreground"))
    pgid = check_int("SysProcAttr.pgid", sys.pgid, 0, 2**31 - 1)
    return setsid or ((setpgid or foreground) and not pgid)


def _is_open(fd: int) -> bool:
    try:
        os.get_inheritable(fd)
    except OSError:
        return False
    return True


_STREAMS = ("stdin", "stdout", "stderr")  # run()'s arguments for the child's fds 0, 1, 2


def _open_streams(streams: Sequence[Optional[int]], parent: list[int], child: list[int]) -> list[int]:
    """The child's fds 0, 1, 2; our pipe ends go to ``parent`` (else -1), the child's copies to ``child``.
    Each fd is recorded in the statement that creates it (run() holds signal handlers back here).

    A stream inherited (None) whose fd this process has closed stays closed in the child (-1), as
    with subprocess: which fds are open is read before any is made here, or a pipe made at that
    number would be given to the child as the stream (its own stdout's read end as its stdin)."""
    inherited = [n if spec is None and _is_open(n) else -1 for n, spec in enumerate(streams)]
    files: list[int] = []
    for n, spec in enumerate(streams):
        if spec is None:
            files.append(inherited[n])
            parent.append(-1)
        elif spec == PIPE:
            try:
                fds = os.pipe2(os.O_CLOEXEC)
            except OSError as e:  # out of fds: which stream could not have its pipe
                raise OSError(e.errno, f"{_STREAMS[n]}: {e.strerror}") from None
            ours, theirs = (fds[1], fds[0]) if n == 0 else fds
            parent.append(ours)
            child.append(theirs)
            files.append(theirs)
        elif spec == DEVNULL:
            try:
                child.append(os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC))
            except OSError as e:
                raise OSError(e.errno, f"{_STREAMS[n]}: {os.devnull}: {e.strerror}") from None
            files.append(child[-1])
            parent.append(-1)
        elif spec == STDOUT:
            files.append(files[1])
            parent.append(-1)
        else:
            files.append(spec)
            parent.append(-1)
    return files


class _ChildEnds:
    """run()'s ``after_clone``: closes the child's ends of its streams and lets go the FORK_LOCK that
    run() took before the first of them (_forklock.py), once: called by the spawn as soon as the child
    has its copies, still under the lock (no fork of another thread copies them meanwhile), and by
    run() after the spawn, whichever way it ended. (A plain os.fork() of another thread that runs no
    at-fork hook, as one in a C extension, copies the ends still, as with subprocess.)"""

    __slots__ = ("child", "locked")

    def __init__(self, child: list[int]) -> None:
        self.child = child
        self.locked = False

    def __call__(self) -> None:
        try:
            while self.child:
                os.close(self.child.pop())
        finally:
            if self.locked:
                self.locked = False
                FORK_LOCK.release()


def _close(fds: list[int], n: int) -> None:
    """Close ``fds[n]`` and forget it, both or neither: never twice (its number may be reused by then)."""
    with held():
        fd, fds[n] = fds[n], -1
        if fd >= 0:
            os.close(fd)


def _wait(proc: Process, deadline: Optional[float]) -> None:
    """proc.wait() until ``deadline``, an hour at a time (see _left)."""
    while True:
        try:
            proc.wait(_left(deadline))
            return
        except TimeoutExpired:
            if _left(deadline) == 0:
                raise


def _left(deadline: Optional[float]) -> Optional[float]:
    """Seconds until ``deadline`` (None: no deadline), at most an hour: epoll's timeout overflows at
    about 24 days, select's further on, and the callers loop until the deadline."""
    return None if deadline is None else min(max(0.0, deadline - time.monotonic()), _MAX_WAIT)


def _selector(streams: Sequence[Optional[int]]) -> selectors.BaseSelector:
    """The selector (an epoll fd) that run() feeds and drains the pipes of ``streams`` with; an OSError
    (out of fds) names them."""
    try:
        return selectors.DefaultSelector()
    except OSError as e:
        piped = ", ".join(_STREAMS[n] for n, spec in enumerate(streams) if spec == PIPE)
        raise OSError(e.errno, f"{piped}: the selector of their pipes: {e.strerror}") from None


def _communicate(proc: Process, fds: list[int], data: bytes, timeout: Optional[float],
                 selector: list[selectors.BaseSelector], out: dict[int, list[bytes]]) -> tuple[bytes, bytes]:
    """Feed stdin and drain stdout/stderr until EOF (their chunks go to ``out[1]``, ``out[2]``), then
    wait. Closes what it is done with (and marks it -1 in ``fds``); raises TimeoutExpired when
    ``timeout`` runs out. ``selector``: the one run() made with the pipes (empty without them)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    if not selector:  # no pipe to feed or drain (run() made the selector with them)
        _wait(proc, deadline)
        return b"", b""
    sel = selector[0]
    if fds[0] >= 0:
        if data:
            os.set_blocking(fds[0], False)
            sel.register(fds[0], selectors.EVENT_WRITE, 0)
        else:
            _close(fds, 0)
    for n in (1, 2):
        if fds[n] >= 0:
            sel.register(fds[n], selectors.EVENT_READ, n)
    view = memoryview(data)
    while sel.get_map():
        if _left(deadline) == 0:
            raise TimeoutExpired(proc.pid, timeout or 0)
        for key, _ in sel.select(_left(deadline)):
            n = key.data
            if n == 0:
                try:
                    view = view[os.write(key.fd, view[:65536]):]
                except BrokenPipeError:
                    view = view[:0]
                if not view:
                    sel.unregister(key.fd)
                    _close(fds, 0)
            else:
                chunk = os.read(key.fd, 65536)
                if chunk:
                    out[n].append(chunk)
                else:
                    sel.unregister(key.fd)
    _wait(proc, deadline)
    return b"".join(out[1]), b"".join(out[2])


def _kill_and_reap(proc: Process, group: bool) -> None:
    """SIGKILL to the child (with ``group``, to the process group it leads first, while it is unreaped:
    see Process.send_group_signal), then its reap. Held: a second Ctrl-C must not leave the child
    unreaped; it is raised once the child is reaped, which SIGKILL makes quick."""
    with held():
        if group:
            with contextlib.suppress(ProcessLookupError):
                proc.send_group_signal(signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        # Reaped by another caller (SIGCHLD ignored, a handler's waitpid(-1)) once the pidfd's kill
        # reached it, or before: gone either way. The exception that brought us here (a Ctrl-C, the
        # timeout) is the one to raise, not this lost status.
        with contextlib.suppress(ChildProcessError):
            proc.wait()


def _communicate_or_kill(proc: Process, parent: list[int], a: Any, timeout: Optional[float],
                         selector: list[selectors.BaseSelector], hold: Hold) -> tuple[bytes, bytes]:
    """_communicate; when the timeout runs out, the child killed and reaped, held, and run()'s
    subprocess.TimeoutExpired raised. A clause of its own: entered by no signal, it holds first, and a
    signal that comes before raises out of it into run()'s except, which kills."""
    out: dict[int, list[bytes]] = {1: [], 2: []}
    try:
        return _communicate(proc, parent, a.input or b"", timeout, selector, out)
    except TimeoutExpired:
        hold.start()
        _kill_and_reap(proc, a.kill_group)
        # As subprocess.run: the output read so far on the exception (bytes, also with text; None when
        # nothing was), and here also what the pipes held when the child was killed.
        for n in (1, 2):
            if a.streams[n] == PIPE and parent[n] >= 0:
                out[n].append(_buffered(parent[n]))
        output, errors = (b"".join(out[n]) or None for n in (1, 2))
        raise subprocess.TimeoutExpired(a.argv, timeout or 0, output, errors) from None


def _buffered(fd: int) -> bytes:
    """What the pipe ``fd`` holds now, without waiting: a writer that goes on (a grandchild that kept
    the pipe) adds nothing to it."""
    size = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    chunks = []
    while size > 0:
        chunk = os.read(fd, size)  # no wait: at least that much is there
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def run(argv: Sequence[StrOrBytes], *, sys: Optional[SysProcAttr] = None,
        env: Optional[Mapping[Union[str, bytes], Union[str, bytes]]] = None,
        cwd: Optional[StrOrBytes] = None, input: Optional[Union[bytes, str]] = None,
        capture_output: bool = False, timeout: Optional[float] = None, check: bool = False,
        stdin: Stream = None, stdout: Stream = None, stderr: Stream = None,
        text: bool = False, kill_group: bool = False) -> subprocess.CompletedProcess:
    """Run argv (argv[0] looked up in PATH, that of ``env`` when given) with the given SysProcAttr and
    wait for it.

    Returns subprocess.CompletedProcess; raises subprocess.TimeoutExpired (after killing and reaping
    the child; its ``output`` and ``stderr`` are the captured bytes so far, None when none) and, with
    check, subprocess.CalledProcessError, as subprocess.run does. ``stderr=STDOUT`` sends the child's
    stderr where its stdout goes; a str ``input`` is encoded as UTF-8. ``sys.ptrace`` is refused:
    run() cannot be the tracer. Bad arguments raise ValueError/TypeError naming the argument before
    anything is started. ``timeout`` follows Process.wait's rule (0 to threading.TIMEOUT_MAX
    seconds, or None): a negative, NaN or infinite one is a ValueError before the program starts,
    where subprocess.run starts the program and then times out at once on a negative one.

    ``sys.foreground``: once the child is reaped (it exited, or run() killed it), the terminal on
    ``sys.ctty`` gets back the foreground process group it had before, as a shell gives it back after
    a job, if the child's group still holds it (its Process does, as start_process's does).

    ``kill_group``: whenever run() kills the child (a timeout, an exception), it first SIGKILLs the
    process group the child leads, what the child started in it included, while the child is still
    unreaped: its pid, the group's id, cannot be another's then. (A ``os.killpg`` of the child's pid
    after run() returned or raised may reach a group another process made with that number since.)
    The child must lead that group: ``sys.setpgid`` or ``sys.foreground`` with ``pgid`` 0, or
    ``sys.setsid``; otherwise a ValueError before anything starts.

    The child is waited for and killed through a pidfd that run() takes (``sys.pidfd`` or not): a
    SIGCHLD handler, SIGCHLD ignored or another thread's ``waitpid(-1)`` may reap it first, and a kill
    by its number would reach the process given that number since. Reaped so, its status is lost: a
    ChildProcessError, unless a timeout or an exception ended run() first (then that is raised).

    The child's ends of the pipes exist only under FORK_LOCK, which every fork's at-fork hooks wait
    for: no child another thread forks (clone(fn), os.fork) keeps a copy. Ours stay: such a child
    forked while ``input`` is fed keeps the stdin pipe open, and the child sees its EOF when that one
    ends (as with subprocess).
    """
    # Each argument read once (plain.py): a check and the spawn then read the same values.
    argv, sys, cwd, input, timeout, stdin, stdout, stderr = (plain(v, n) for v, n in (
        (argv, "argv"), (sys, "sys"), (cwd, "cwd"), (input, "input"), (timeout, "timeout"), (stdin, "stdin"),
        (stdout, "stdout"), (stderr, "stderr")))
    a = _check(argv, sys, env, cwd, input, capture_output, timeout, check, stdin, stdout, stderr, text,
               kill_group)
    # Waited for and killed (its group too, with kill_group) through a pidfd of its own: a SIGCHLD
    # handler, SIGCHLD ignored (the kernel reaps) or another thread's waitpid(-1) may reap the child
    # before an exception here kills it, and its number, the group's id, be another process's since.
    if sys is None:
        sys = _PIDFD_ONLY
    elif sys.pidfd is False:  # (a pidfd not bool is named later)
        sys = dataclasses.replace(sys, pidfd=True)
    parent: list[int] = []  # our ends of the pipes, by stream (-1: none, or closed)
    child: list[int] = []  # the child's ends and /dev/null: closed once it has its copies
    selector: list[selectors.BaseSelector] = []
    proc: Optional[Process] = None
    # Held while fds or the child are made and recorded, and again from the last statement of the try
    # on: the cleanup in finally then runs whole, whichever way the try was left, and a signal that
    # came meanwhile is raised after it.
    hold = Hold()
    ends = _ChildEnds(child)
    try:
        hold.start()
        try:
            FORK_LOCK.acquire()  # until the child's ends are closed (_forklock.py)
            ends.locked = True
            files = _open_streams(a.streams, parent, child)
            if any(fd >= 0 for fd in parent):  # made before the child, as the pipes are: out of fds, the
                selector.append(_selector(a.streams))  # call fails before the program runs
            attr = ProcAttr(dir=a.cwd, env=a.env, files=files, sys=sys)  # type: ignore[arg-type]
            try:
                proc = start_process_then(a.program, a.argv, attr, ends)
            except ValueError as e:
                rule = getattr(e, "fd_room_rule", None)  # ProcAttr.files is run()'s streams: the highest
                if rule is None:                         # fd among them is named
                    raise
                n = max(range(3), key=lambda i: files[i])
                raise ValueError(f"{('stdin', 'stdout', 'stderr')[n]}: fd {files[n]} is too high: {rule}") \
                    from None
        finally:
            ends()  # no child made (or the spawn failed before it called this): closed and let go here
        hold.stop()
        out, err = _communicate_or_kill(proc, parent, a, timeout, selector, hold)
        hold.start()
    except BaseException:
        seize(hold.start, SEIZE_TRIES)  # before anything else: see _signals.seize
        if proc is not None and proc.returncode is None:
            _kill_and_reap(proc, a.kill_group)
        raise
    finally:
        try:
            while selector:
                selector.pop().close()
            for n in range(len(parent)):
                _close(parent, n)
        finally:
            hold.end()
    result_out: Any = (out.decode() if text else out) if a.streams[1] == PIPE else None
    result_err: Any = (err.decode() if text else err) if a.streams[2] == PIPE else None
    code = proc.returncode
    assert code is not None
    if check and code:
        raise subprocess.CalledProcessError(code, a.argv, result_out, result_err)
    return subprocess.CompletedProcess(a.argv, code, result_out, result_err)
