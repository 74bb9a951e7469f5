"""clone(fn, flags, *args): run a Python callable in a child made by clone(2) with those flags.

The child is a copy of this process, as with os.fork (there is no CLONE_VM: a second copy of the
interpreter cannot share this one's memory), created in the namespaces the flags ask for. Its exit
status is fn's return value, as with the C library's ``clone(fn, stack, flags, arg)``. The low byte
of ``flags`` is the signal the kernel sends this process when the child exits: ``signal.SIGCHLD``
makes an ordinary child; any other value (0 = no signal) makes a "clone child", which
``os.waitpid(pid, 0)`` does not see: wait for it with ``wait_clone(pid)`` (``__WALL``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import sys
import threading
import traceback
import warnings
from typing import Any, Callable, Optional

from . import _clone, signames
from ._signals import SEIZE_TRIES, Hold, held, seize
from .checks import check_bool, check_int, check_pid, fail
from .flags import CloneFlags
from .proc_pid import of_pidfd
from .validate import CSIGNAL, INVALID_PAIRS, KNOWN_FLAGS, F, check_flags

__all__ = ["WALL", "clone", "wait_clone"]

WALL = 0x40000000  # __WALL: wait for a child whatever its exit signal (linux/wait.h)
FIELD = "flags"
_CLONE3_ONLY = "clone3 only: clone(2) drops the upper 32 bits of flags"
_NO_TID_BUFFER = "clone() returns the child's pid and takes no tid buffer"

# Flags that make no sense, or no safe sense, for a child that goes on running this interpreter.
_REFUSED = {
    F.CLONE_VM: "a Python child cannot share this interpreter's memory: both copies would run it at "
    "once (use threading for shared memory)",
    F.CLONE_THREAD: "the child would be a thread sharing this interpreter's memory (use threading.Thread)",
    F.CLONE_SIGHAND: "a shared signal-handler table needs CLONE_VM, which a Python child cannot use",
    F.CLONE_VFORK: "this process would sleep in clone(), holding the GIL and the interpreter's fork "
    "locks, until fn returns; wait with wait_clone(pid) instead",
    F.CLONE_FILES: "the child's interpreter closes fds by itself (os.register_at_fork hooks, finalizers "
    "of objects it drops, e.g. an asyncio loop), which would close this process's fds; without "
    "CLONE_FILES the child inherits a copy of every fd",
    F.CLONE_SETTLS: "the child would run this interpreter on a foreign thread-local area",
    F.CLONE_PARENT_SETTID: _NO_TID_BUFFER,
    F.CLONE_CHILD_SETTID: _NO_TID_BUFFER,
    F.CLONE_CHILD_CLEARTID: _NO_TID_BUFFER,
    F.CLONE_PIDFD: "clone() returns a pid; open a pidfd with os.pidfd_open(pid)",
    F.CLONE_CLEAR_SIGHAND: _CLONE3_ONLY,
    F.CLONE_INTO_CGROUP: _CLONE3_ONLY,
}
MAX_EXIT_SIGNAL = signal.NSIG - 1  # the kernel's _NSIG: 64


def check_clone_flags(flags: object) -> int:
    """``flags`` as a plain int, or ValueError/TypeError starting with ``flags: `` and giving the rule."""
    v = check_int(FIELD, flags, 0, 2**64 - 1)
    for flag, why in _REFUSED.items():
        if v & flag:
            fail(FIELD, f"{CloneFlags.describe(flag)} is refused: {why}")
    exit_signal = v & CSIGNAL
    if exit_signal > MAX_EXIT_SIGNAL:
        newtime = " (CLONE_NEWTIME shares this byte and is clone3 only)" if v & F.CLONE_NEWTIME else ""
        fail(FIELD, f"the low byte is the exit signal and {exit_signal} is no signal (1..{MAX_EXIT_SIGNAL}, "
             f"or 0 for none){newtime}")
    check_flags(FIELD, v, KNOWN_FLAGS | CSIGNAL)
    for a, b, rule in INVALID_PAIRS:
        if v & a and v & b:
            fail(FIELD, rule)
    return int(v)


def describe(flags: int) -> str:
    """``"CLONE_NEWUTS|SIGCHLD"``: the flag names and the exit signal's name."""
    parts = [] if flags & ~CSIGNAL == 0 else [CloneFlags.describe(flags & ~CSIGNAL)]
    sig = flags & CSIGNAL
    if sig:
        parts.append(signames.name(sig))
    return "|".join(parts) or "0"


def clone(fn: Callable[..., Optional[int]], flags: int, *args: Any) -> int:
    """Runs ``fn(*args)`` in a child created by clone(2) with ``flags`` and returns the child's pid.

    The child is a copy-on-write copy of this process (like os.fork: os.register_at_fork hooks run, fds
    are inherited) placed in the namespaces ``flags`` asks for. Output pending in the standard streams
    (sys.stdout, sys.stderr and the originals they replaced) at the clone is the caller's to write,
    never the child's; what fn writes there is flushed before the child exits. Its exit status is what
    fn returns, read as ``sys.exit(value)`` reads it (CPython's exit): None is 0, an int its low byte
    when it fits a C long, else 255 (as -1), anything else is printed to stderr and 1; a SystemExit
    escaping fn is read the same way. Another exception prints its traceback to stderr and exits 1, but
    a KeyboardInterrupt, as Python's own, prints it and ends the child by SIGINT (the default action
    restored), so that waiters see death by SIGINT; where the signal cannot end it (pid 1 of a new PID
    namespace, which ignores it, or SIGINT blocked) it exits 130. The child never returns to
    the caller.
    The low byte of ``flags`` is the exit signal: pass ``signal.SIGCHLD`` for an ordinary child, and
    wait for any other with ``wait_clone(pid)``. With CLONE_PARENT the child is a sibling: this
    process's parent gets its exit signal and must reap it; should clone() raise once it exists (a
    signal's handler), the child is killed through a pidfd the clone took (CLONE_PIDFD), and left to
    run on a kernel before 5.2, where its pid, which the parent may have reaped, is all there is.
    With CLONE_NEWUSER the child starts with no uid/gid maps (it sees uid 65534) but holds every
    capability in its new user namespace.

    Raises ValueError/TypeError naming ``flags`` (or ``fn``) before any process exists, and OSError
    (e.g. PermissionError for a namespace that needs privilege) when the kernel refuses.
    """
    if not callable(fn):
        fail("fn", f"must be callable, not {type(fn).__name__}", TypeError)
    value = check_clone_flags(flags)
    if sys.is_finalizing():
        raise RuntimeError("clone: cannot clone at interpreter shutdown")
    sys.audit("pyforkexec.clone", fn, value)
    _warn_if_threaded()
    _flush_std_streams()  # or the child would write this process's pending output a second time
    # Held from before the child exists to its pid in the caller's hands: a handler that ran when the
    # C call returned would lose the pid (the child left unreaped). The child, a copy of this process
    # in the middle of the hold, gets the caller's handlers back first thing (_signals, at fork).
    # A CLONE_PARENT child is our parent's, which may reap it whenever it exits: its pid may be another
    # process's by the time an undo below kills it. A pidfd taken by the clone itself (CLONE_PIDFD,
    # an internal flag: the caller's is refused) stays with the child whatever becomes of the number.
    # CLONE_DETACHED, which the kernel otherwise ignores (since 2.6.2), is EINVAL with CLONE_PIDFD: it
    # is left out then, or clone(CLONE_PARENT | CLONE_DETACHED) would fail where it ran before.
    # The pidfd is closed as the call returns: a handler's exception after that close (at the end of
    # its hold) would leave the sibling running, its pid never the caller's. So the sibling's identity
    # (its parent and start time, read while the pidfd shows it alive) is kept, and the undo opens a
    # pidfd on the pid again, used only if that identity is the one read then (_identity).
    sibling = bool(value & F.CLONE_PARENT)
    hold, pid, pidfd, born = Hold(), 0, -1, None
    try:
        hold.start()
        try:
            pid, pidfd = _clone.clone((value & ~F.CLONE_DETACHED) | F.CLONE_PIDFD if sibling else value,
                                      lambda: _child_main(fn, args))
        except OSError as e:
            raise OSError(e.errno, f"clone({describe(value)}): {e.strerror}") from None
        if pidfd >= 0:
            born = _identity(pidfd)
        hold.stop()
        with held():  # closed whatever signal comes: its exception is raised after the close
            if pidfd >= 0:
                os.close(pidfd)
                pidfd = -1
        return pid
    except BaseException:
        seize(hold.start, SEIZE_TRIES)  # first: see _signals.seize
        try:
            if pid > 0:
                if pidfd < 0 and born is not None:  # closed as the call returned: the same sibling's, or -1
                    pidfd = _reopened(pid, born)
                _kill_and_reap(pid, pidfd, sibling)
        finally:
            if pidfd >= 0:
                os.close(pidfd)
            hold.release()
        raise


def _identity(pidfd: int) -> Optional[tuple[bytes, bytes]]:
    """The parent and start time of the process of ``pidfd`` as /proc shows them, the pidfd alive after
    the read (so the process read was the pidfd's); None when it is gone, or /proc cannot see it. It is
    read at the number /proc gives it (of_pidfd), which is its pid only where /proc is of this process's
    PID namespace: one that kept its parent's /proc would show another process, or none."""
    try:
        number = of_pidfd(pidfd)
        if number <= 0:
            return None
        with open(f"/proc/{number}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        signal.pidfd_send_signal(pidfd, 0)
    except (OSError, ValueError):  # ProcessLookupError: gone (reaped)
        return None
    return fields[1], fields[19]  # ppid, starttime


def _reopened(pid: int, born: tuple[bytes, bytes]) -> int:
    """A pidfd of ``pid`` if its process is still the one whose identity was ``born``, else -1."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return -1
    try:
        if _identity(fd) == born:
            return fd
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return -1


def _kill_and_reap(pid: int, pidfd: int, sibling: bool) -> None:
    """The child of a clone() that did not return: ended and reaped. Through its pidfd when there is
    one. A CLONE_PARENT child (``sibling``) is our parent's to reap, and may be reaped already: it is
    killed only through a pidfd (none: a kernel before 5.2, or the sibling gone), never by a number
    that may be another process's by now; ours is unreaped until the waitpid here."""
    with contextlib.suppress(ProcessLookupError):
        if pidfd >= 0:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        elif not sibling:
            os.kill(pid, signal.SIGKILL)
    if not sibling:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, WALL)


def wait_clone(pid: int, *, nohang: bool = False) -> Optional[int]:
    """Waits for the child ``pid`` of clone() and returns its exit code as subprocess does
    (negative: killed by that signal). ``nohang``: None if it has not exited yet.

    Uses ``__WALL``, which also reaps children whose exit signal is not SIGCHLD (or none), which
    ``os.waitpid(pid, 0)`` fails on with ChildProcessError. ``pid`` must be one process (as for
    Process): 0, -1 or a negative process group, which would reap whichever child exited first, and
    a bool are refused, as is a ``nohang`` that is not a bool (ValueError/TypeError naming it).
    """
    pid = check_pid("pid", pid)
    flags = WALL | (os.WNOHANG if check_bool("nohang", nohang) else 0)
    done, status = os.waitpid(pid, flags)
    return os.waitstatus_to_exitcode(status) if done else None


def _child_main(fn: Callable[..., Any], args: tuple) -> int:
    """In the child: fn's exit status, after flushing; _clone exits with it."""
    try:
        _drop_inherited_output()  # (inside: a Ctrl-C that comes meanwhile ends the child as one in fn)
        status = _exit_status(fn(*args))
    except SystemExit as e:
        status = _exit_status(e.code)
    except KeyboardInterrupt:
        _print_exception()
        _flush_std_streams()
        _end_by_sigint()
        return 128 + signal.SIGINT
    except BaseException:
        _print_exception()
        status = 1
    _flush_std_streams()
    return status


def _end_by_sigint() -> None:
    """As Python ends on an uncaught KeyboardInterrupt (Modules/main.c exit_sigint): SIGINT's default
    action restored, and the signal sent to itself. Returns where that did not end it."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    except (ValueError, OSError):
        return
    os.kill(os.getpid(), signal.SIGINT)


_LONG_MIN, _LONG_MAX = -(1 << (8 * struct.calcsize("l") - 1)), (1 << (8 * struct.calcsize("l") - 1)) - 1


def _exit_status(value: object) -> int:
    """What sys.exit(value) makes of value (CPython's _Py_HandleSystemExit): None 0, an int its low
    byte when it fits a C long (the int cast keeps it), else 255 (PyLong_AsLong's -1), anything else
    printed and 1."""
    if value is None:
        return 0
    if isinstance(value, int):
        number = int.__int__(value)  # a subclass's own operators are never asked
        return number & 0xFF if _LONG_MIN <= number <= _LONG_MAX else 0xFF
    if sys.stderr is not None:
        print(value, file=sys.stderr)
    return 1


def _print_exception() -> None:
    if sys.stderr is not None:
        traceback.print_exc()


def _std_streams() -> list[Any]:
    """sys.stdout and sys.stderr, and the originals they may have replaced, each once."""
    streams: list[Any] = []
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is not None and not any(stream is s for s in streams):
            streams.append(stream)
    return streams


def _flush_std_streams() -> None:
    for stream in _std_streams():
        with contextlib.suppress(AttributeError, ValueError, OSError):  # closed or broken: nothing to lose
            stream.flush()


def _drop_inherited_output() -> None:
    """In the child, first: what the standard streams' buffers held when it was cloned is the caller's
    to write, not the child's. The caller flushes them just before the clone, but another of its
    threads may print in between (20 of 1,355 lines written twice in 500 clones, a thread printing
    meanwhile): each buffer is flushed into /dev/null, put on its fd for that flush alone (in the
    child's own fd table: no CLONE_FILES), and fn's output starts from empty buffers."""
    for stream in _std_streams():
        try:
            fd = stream.fileno()
            inheritable = os.get_inheritable(fd)
            saved = os.dup(fd)
        except (AttributeError, ValueError, OSError):  # no fd (an object of the caller's own), closed
            continue
        try:
            null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.dup2(null, fd, inheritable=inheritable)
            finally:
                os.close(null)
            try:
                with contextlib.suppress(AttributeError, ValueError, OSError):
                    stream.flush()
            finally:
                os.dup2(saved, fd, inheritable=inheritable)
        except OSError:  # no /dev/null to flush into: the buffer stays, as before
            pass
        finally:
            os.close(saved)


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def _warn_if_threaded() -> None:
    """os.fork's DeprecationWarning (Python 3.12+), raised before the child exists rather than after."""
    if sys.version_info >= (3, 12) and _thread_count() > 1:
        warnings.warn(f"This process (pid={os.getpid()}) is multi-threaded, use of clone() may lead to "
                      "deadlocks in the child.", DeprecationWarning, stacklevel=3)
