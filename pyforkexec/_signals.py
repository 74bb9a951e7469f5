"""Python signal handlers held back while the parent side of a spawn owns resources it has not
handed over yet.

A Python signal handler (KeyboardInterrupt's, or a SIGTERM handler that raises) runs between any two
bytecodes of the main thread: after ``os.open`` returned but before its fd was stored, after clone
returned but before the pid was. No try/finally can close what it never got to see. So the parent's
critical sections run with the handlers *recorded* instead of run, and the recorded signals are
handled, in arrival order, when the outermost section ends, at a point where the code around it is
ready for an exception.

CPython runs Python-level handlers only in the main thread, so elsewhere this is a no-op. Handlers
that are SIG_DFL or SIG_IGN are left alone: the kernel acts on those, and none raises in Python.
"""

from __future__ import annotations

import _thread
import os
import signal
import threading
from typing import Any, Callable

from .child._child import dropped, until_done

try:  # the C module behind signal: the same calls without the enum conversions (10x quicker)
    import _signal as _raw
except ImportError:  # pragma: no cover - another Python implementation
    _raw = signal  # type: ignore[misc]

_SIGNALS = tuple(sorted(int(s) for s in signal.valid_signals()))
Handler = Callable[[int, Any], Any]
_last_scan: tuple[tuple[object, ...], list[tuple[int, Handler]]] = ((), [])  # every handler, and the swaps

_saved: dict[int, Handler] = {}  # the caller's handlers, while ours (_record) are installed
_pending: list[int] = []         # signals recorded meanwhile, in order, once each
_holds = 0                       # active Hold objects (the nesting)
_installed = False               # whether _record is installed now

# The bookkeeping is state, not a stack of undo steps: an exit that never ran (a tracer may raise at
# any bytecode, even between a block and its __exit__) leaves the next start() or release() able to
# see what is installed and put things right.


# The thread that runs Python signal handlers: the main thread, or after os.fork the thread that forked
# (it is the child's only thread, and CPython makes it the one that handles signals).
_main_ident = threading.main_thread().ident


def _forked() -> None:
    """In the child of a fork (os.fork, or clone(fn) made while holding): the thread that forked is its
    main thread, in no critical section of its own. The caller's handlers are back, and what the parent
    recorded is the parent's to handle."""
    global _main_ident, _holds
    _main_ident = _thread.get_ident()
    _pending.clear()
    _holds = 0
    if _installed or _saved:
        _restore()


os.register_at_fork(after_in_child=_forked)


def _on_main_thread() -> bool:
    return _thread.get_ident() == _main_ident


def _record(signum: int, frame: object) -> None:
    if signum not in _pending:
        _pending.append(signum)


def _install() -> None:
    """Swap every Python handler for _record. A handler not swapped yet may still run and raise:
    then what was swapped is put back before the exception leaves."""
    global _installed, _last_scan
    try:
        # One scan first (most signals have no Python handler), then the swaps. The scan is C's (map);
        # while every handler is the one of the last scan, so are the swaps to make.
        handlers = tuple(map(_raw.getsignal, _SIGNALS))
        seen, found = _last_scan
        if handlers != seen:
            found = [(sig, h) for sig, h in zip(_SIGNALS, handlers) if callable(h) and h is not _record]
            _last_scan = (handlers, found)
        for sig, handler in found:
            _saved[sig] = handler
            _raw.signal(sig, _record)
        _installed = True
    except BaseException:
        try:
            _restore()
        finally:
            # What _record took meanwhile (a Ctrl-C that came with the signal that raised here): with no
            # hold, nothing delivers it, and the end of the next one, in some later call, raised it.
            if not _holds:
                _resend()
        raise


def _restore() -> None:
    """Put the caller's handlers back. One already back may run and raise before the loop ends: the
    loop finishes first (an entry leaves _saved only once its handler is back), then that raises."""
    global _installed
    _installed = False  # from the first restored handler on, handlers may run
    if not _saved:
        return
    error: BaseException | None = None
    while _saved:
        try:
            while _saved:
                sig = next(iter(_saved))
                _raw.signal(sig, _saved[sig])
                del _saved[sig]
        except BaseException as e:
            error = error or e
    if error is not None:
        raise error


def _resend() -> None:
    """Send the recorded signals again, for Python to handle at its next check."""
    pending = _pending[:]
    _pending.clear()
    if pending:  # blocked while sent: the first one's handler would raise before the others were sent
        old = _raw.pthread_sigmask(signal.SIG_BLOCK, pending)
        for sig in pending:
            _raw.pthread_kill(_thread.get_ident(), sig)
        _raw.pthread_sigmask(signal.SIG_SETMASK, old)


def _deliver() -> None:
    """Run the recorded signals' handlers. The first exception propagates; the signals after it are
    sent again, so that Python handles them at its next check (or records them, if held)."""
    if not _pending:
        return
    pending = _pending[:]
    _pending.clear()
    for n, sig in enumerate(pending):
        handler = _saved.get(sig) or _raw.getsignal(sig)
        if not callable(handler) or handler is _record:
            continue  # the caller's own code changed it meanwhile: nothing of ours to run
        try:
            handler(sig, None)
        except BaseException:
            for later in pending[n + 1:]:
                os.kill(os.getpid(), later)
            raise


def _raise_dropped() -> None:
    """Raise the first exception seize dropped (a handler's: a Ctrl-C that came with the exception an
    except clause undoes), once no hold is left: late, but not lost."""
    if dropped:
        first = dropped[0]
        dropped.clear()
        raise first


class Hold:
    """Python signal handlers held back from start() to stop(). Nests: the handlers are installed
    while any hold is active, and what was recorded runs when the last one stops.

    A function that acquires resources holds from before the first to after the last has been handed
    over, and calls stop() inside the try whose except undoes them::

        hold = Hold()
        try:
            hold.start()
            ...acquire, register, hand over...
            hold.stop()        # the handlers run here; their exception reaches the except below
        except BaseException:
            ...undo...         # still held if the exception came before stop() let go
            hold.release()
            raise
    """

    __slots__ = ("active",)

    def __init__(self) -> None:
        self.active = False

    def start(self) -> None:
        """Hold from now on (again a no-op while this hold is active)."""
        global _holds
        if self.active or not _on_main_thread():
            return
        if not _installed:
            _install()
        _holds += 1  # from here on only _record runs: nothing can raise before the block
        self.active = True

    def stop(self) -> None:
        """Run the recorded signals' handlers while still holding (an exception leaves with the hold
        on, so that the caller's undo cannot be cut short: it calls release()), then let go."""
        if self.active and _holds == 1:
            _deliver()
        self.release()

    def end(self) -> None:
        """stop(), and let go even when a handler raises: for a finally, with nothing left to undo."""
        try:
            self.stop()
        finally:
            self.release()

    def release(self) -> None:
        """Let go without running what was recorded first; when no hold is left, the caller's
        handlers are back and what arrived is handled (and may raise). Idempotent."""
        global _holds
        if not self.active:
            return
        self.active = False
        _holds = max(0, _holds - 1)
        if _holds == 0:
            try:
                if _installed or _saved:
                    _restore()
            finally:
                try:
                    _deliver()
                finally:
                    _raise_dropped()


class _Held:
    """``with held():`` a Hold around a block (its undo, say): the recorded signals are handled when
    the block ends, after the block's own code."""

    def __enter__(self) -> None:
        self.hold = Hold()
        self.hold.start()

    def __exit__(self, *exc: object) -> None:
        self.hold.end()


class _Released:
    """``with released():`` inside a hold, the caller's handlers run again for the block (a caller's
    callback), after those that arrived so far. The block's code must be ready for an exception.
    Should the exit never run, the next start(), or the last release(), finds the handlers out and
    acts on that."""

    def __enter__(self) -> None:
        if _installed and _on_main_thread():
            _restore()
            _deliver()

    def __exit__(self, *exc: object) -> None:
        if _holds and not _installed and _on_main_thread():
            _install()


# ``seize(hold.start, SEIZE_TRIES)``, the first call of an except clause whose undo must run whole:
# the hold started. A second signal that arrived with the first (both tripped at once) runs its handler
# at the entry of the first Python function called there; were that a method of Hold, its exception
# would leave the clause before the undo (100 of 100 spawns left their child behind with SIGINT and
# SIGTERM sent together). seize is C (_child.until_done): the first Python function it calls is
# start() itself, whose handler's exception it keeps aside and calls again (each signal raises once: a
# failure SEIZE_TRIES times over is start()'s own). The first exception is the one the undo goes on
# with; what was kept aside is raised once the last hold ends (_raise_dropped), after the undo.
seize = until_done
SEIZE_TRIES = 64


def held() -> _Held:
    return _Held()


# Signals whose default action ends the process, every one that can be blocked: systemd's stop,
# timeout(1), a closed terminal, SIGINT, but also an alarm, a CPU time limit, a real-time signal (a list
# of the usual ones left SIGALRM's kin out, and one of those ended what had to end whole). held() defers
# Python's handlers, and the kernel acts on a default action at once. Not the ones that stop the
# process or do nothing, nor glibc's own (32 and 33, which it never lets a mask hold).
_NOT_ENDING = {signal.SIGKILL, signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGCHLD,
               signal.SIGCONT, signal.SIGURG, signal.SIGWINCH}
ENDING = tuple(sorted(int(s) for s in signal.valid_signals()
                      if s not in _NOT_ENDING and not 32 <= s < signal.SIGRTMIN))


class _EndingBlocked:
    """``with ending_blocked():`` the ENDING signals blocked in this thread (pthread_sigmask) for the
    block: one that arrives is delivered, or its handler run, when the block ends. For what must not be
    cut in two by a signal that would end the process, or by a handler's exception where no try can
    see it (between os.pipe() and the store of its fds). A child forked inside starts with them
    blocked too."""

    def __enter__(self) -> None:
        self.before = _raw.pthread_sigmask(signal.SIG_BLOCK, ENDING)

    def __exit__(self, *exc: object) -> None:
        _raw.pthread_sigmask(signal.SIG_SETMASK, self.before)


def ending_blocked() -> _EndingBlocked:
    return _EndingBlocked()


def block_ending() -> None:
    """Block the ENDING signals in this thread for good (a helper thread: they go to another one)."""
    _raw.pthread_sigmask(signal.SIG_BLOCK, ENDING)


def released() -> _Released:
    return _Released()
