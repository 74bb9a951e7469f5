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

import os
import signal
import threading
from typing import Any, Callable

_SIGNALS = tuple(sorted(int(s) for s in signal.valid_signals()))
Handler = Callable[[int, Any], Any]

_saved: dict[int, Handler] = {}  # the caller's handlers while a section is open
_pending: list[int] = []         # signals that arrived inside it, in order, once each
_depth = 0


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _record(signum: int, frame: object) -> None:
    if signum not in _pending:
        _pending.append(signum)


def _install() -> None:
    """Swap every Python handler for _record. A handler not swapped yet may still run and raise:
    then what was swapped is put back before the exception leaves."""
    try:
        for sig in _SIGNALS:
            handler = signal.getsignal(sig)
            if callable(handler) and handler is not _record:
                _saved[sig] = handler
                signal.signal(sig, _record)
    except BaseException:
        _restore()
        raise


def _restore() -> None:
    """Put the caller's handlers back. One already back may run and raise before the loop ends: the
    loop finishes first (an entry leaves _saved only once its handler is back), then that raises."""
    error: BaseException | None = None
    while _saved:
        try:
            while _saved:
                sig = next(iter(_saved))
                signal.signal(sig, _saved[sig])
                del _saved[sig]
        except BaseException as e:
            error = error or e
    if error is not None:
        raise error


def _deliver() -> None:
    """Run the recorded signals' handlers. The first exception propagates; the signals after it are
    sent again, so that Python handles them at its next check, as it would have without us."""
    pending = _pending[:]
    _pending.clear()
    for n, sig in enumerate(pending):
        handler = signal.getsignal(sig)
        if not callable(handler):
            continue  # the caller's own code changed it meanwhile: nothing of ours to run
        try:
            handler(sig, None)
        except BaseException:
            for later in pending[n + 1:]:
                os.kill(os.getpid(), later)
            raise


class _Held:
    """``with held():`` Python signal handlers are held back for the block, and what arrived runs when
    the outermost block ends (after the block's own cleanup): an exception a handler raises leaves
    the with statement there. Nests."""

    def __enter__(self) -> None:
        global _depth
        if not _on_main_thread():
            return
        if _depth == 0:
            _install()
        _depth += 1  # from here on only _record runs: nothing can raise before the block

    def __exit__(self, *exc: object) -> None:
        global _depth
        if not _on_main_thread():
            return
        _depth -= 1
        if _depth == 0:
            _restore()
            _deliver()


class _Released:
    """``with released():`` inside held(), handlers run again for the block (a caller's callback),
    after those that arrived so far. The block's code must be ready for an exception."""

    def __enter__(self) -> None:
        global _depth
        self.depth = 0
        if not _on_main_thread() or _depth == 0:
            return
        self.depth, _depth = _depth, 0
        try:
            _restore()
            _deliver()
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc: object) -> None:
        global _depth
        if self.depth:
            _install()
            _depth, self.depth = self.depth, 0


def held() -> _Held:
    return _Held()


def released() -> _Released:
    return _Released()
