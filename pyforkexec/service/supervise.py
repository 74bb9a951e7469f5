"""Stay the parent of a started child: forward signals to it, reap it, and end the way it ended.

This is what makes the launcher usable under a service manager: stopping the launcher (SIGTERM to
the main pid) stops the service, ``kill -HUP $MAINPID`` reaches the service, and the launcher's own
exit reports the child's: its exit status, or death by the same signal (as util-linux ``unshare
--fork`` and ``nsenter`` do, so a shell shows ``128+N`` and systemd sees the real signal).

The child restores the signal mask the parent had at clone time, so signals cannot simply be blocked
before the spawn. Handlers are installed first (they record or forward a signal; the child resets
them), and once the pid is known the signals are blocked and taken with sigwaitinfo, which tells a
signal a terminal sent to the whole foreground process group (the child got it already) from one
sent to the launcher alone. The exit is only seen there (WNOWAIT): the Process reaps the child
itself, so that it can release what it holds (start_process removes the cgroup it created).

A launcher without a controlling terminal (a systemd unit's main process) has no job control or
terminal signals to tell apart: it hands its child over to pyforkexec-waiter (waiter.py), which
passes every signal on in a few hundred KiB and, once the child exited, reaps it and exits as it did
(``forward-exit``); a child with a cgroup to remove after it is reaped instead by ``python -m
pyforkexec.service.reap PID CGROUP``, which the waiter execs (``forward``), as it does on any failure
of its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from typing import Callable, Optional

from .._signals import ENDING, ending_blocked
from ..process import Process
from ..sandbox.cgroup import handover_record
from . import waiter

#: Signals a launcher passes on to its child. SIGUSR1/2 are here because their default action would
#: kill the launcher (``kill -USR1 $MAINPID`` asks a daemon to reopen its logs). One of them that the
#: launcher's caller ignores (``nohup``, ``trap '' INT``, a background job's SIGINT) is not: the child
#: inherits the SIG_IGN, as util-linux's program and Go's children do, and the signal is the kernel's
#: to discard, for both.
FORWARDED = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
SI_KERNEL = 0x80  # si_code of a signal the kernel raised, e.g. the tty's ^C to the foreground group


def forwarded() -> tuple[int, ...]:
    """The FORWARDED signals this process does not ignore: the ones a launcher passes on."""
    return tuple(s for s in FORWARDED if signal.getsignal(s) != signal.SIG_IGN)


class Supervisor:
    """Forwards the ``forwarded()`` signals to the process once it is set; call ``wait()`` to reap it."""

    def __init__(self) -> None:
        self.proc: Optional[Process] = None
        self._early: list[int] = []
        self.signals = forwarded()  # before our handlers: an ignored one stays ignored (handlers())

    @property
    def pid(self) -> Optional[int]:
        return None if self.proc is None else self.proc.pid

    @property
    def early(self) -> tuple[int, ...]:
        """The signals caught while no process was set (during the spawn), in order."""
        return tuple(self._early)

    def _on_signal(self, signo: int, _frame: object) -> None:
        if self.pid is None:
            self._early.append(signo)  # arrived during the spawn: forwarded once the pid exists
        else:
            self._forward(signo)

    def _forward(self, signo: int) -> None:
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):  # unreaped, so the pid is still ours
                os.kill(self.pid, signo)

    @contextlib.contextmanager
    def handlers(self) -> Iterator[None]:
        """Catch the forwarded signals for the duration of the spawn (and of the wait)."""
        old = {s: signal.signal(s, self._on_signal) for s in self.signals}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def started(self, proc: Process) -> None:
        self.proc = proc
        for signo in self._early:
            self._forward(signo)
        self._early.clear()

    def hand_over(self) -> None:
        """Become pyforkexec-waiter until the child exits, when there is no terminal; returns (to
        wait() here) if there is one, no waiter, or the exec failed."""
        proc = self.proc
        if proc is None or not waiter.available() or _has_terminal():
            return
        # Signals that came before the block were forwarded by _on_signal (the pid is known).
        # Not an ignored one: blocked, the kernel would queue it rather than discard it, for the waiter.
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {*self.signals, signal.SIGCHLD})
        command = [sys.executable, "-m", "pyforkexec.service.reap", str(proc.pid)]
        record = handover_record(proc)
        mode = "forward-exit"  # nothing to release after it: the waiter reaps it and exits as it did
        if record is not None:  # its cgroup, to remove once it is reaped: back to Python (reap.py)
            import json  # only then: a launcher's start-up imports what it uses (test_startup_imports)

            command.append(json.dumps(record))
            mode = "forward"
        waiter.hand_over(proc.pid, mode, command)
        signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def wait(self) -> int:
        """Reaps the child; returns its exit status, or the negated signal that killed it."""
        proc = self.proc
        assert proc is not None
        pid = proc.pid
        mask = {*self.signals, signal.SIGCHLD}  # an ignored one blocked would be queued, and taken
        old = signal.pthread_sigmask(signal.SIG_BLOCK, mask)
        try:
            while True:
                # Look first: a SIGCHLD raised before the block was discarded (SIG_DFL ignores it).
                info = os.waitid(os.P_PID, pid, os.WEXITED | os.WSTOPPED | os.WNOHANG | os.WNOWAIT)
                if info is not None and info.si_pid == pid:
                    if info.si_code != os.CLD_STOPPED:
                        return proc.wait()
                    os.waitid(os.P_PID, pid, os.WSTOPPED | os.WNOHANG)  # consume the stop
                    os.kill(os.getpid(), signal.SIGSTOP)  # job control, as nsenter does it
                    os.kill(pid, signal.SIGCONT)
                    continue
                got = signal.sigwaitinfo(mask)
                if got.si_signo == signal.SIGCHLD:
                    continue
                if got.si_code == SI_KERNEL and _same_process_group(pid):
                    continue  # the terminal signalled the whole group: the child has it already
                self._forward(got.si_signo)
        finally:
            self.proc = None
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _has_terminal() -> bool:
    try:
        os.close(os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY | os.O_CLOEXEC))
    except OSError:
        return False
    return True


def _same_process_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == os.getpgrp()
    except ProcessLookupError:
        return False


def defer_ending() -> None:
    """Hold back, from now until run_as_parent's spawn is done (a failed one undone), the ENDING
    signals this process leaves to their default action (SIGALRM, SIGVTALRM, SIGXCPU, a real-time
    one...): then they end it as they would have. Those it catches (``forwarded()``, SIGINT) are
    recorded meanwhile, and ignored ones stay ignored. For a spawn's sync callable that makes what a
    program that never ran must not keep (a launcher's --TYPE=FILE binds): such a signal between that
    and its undo ended the launcher and left it. Only in a sync callable, after the clone: the child
    restores the mask the clone had, and would run its program with them blocked."""
    signal.pthread_sigmask(signal.SIG_BLOCK, [s for s in ENDING if signal.getsignal(s) == signal.SIG_DFL])


def run_as_parent(spawn: Callable[[], Process], started: Optional[Callable[[int], object]] = None, *,
                  failed: Optional[Callable[[BaseException], object]] = None) -> int:
    """``spawn()`` the child (it returns its Process) with signals caught, then supervise it until it
    ends. ``started(pid)`` runs once the child has execed (a launcher's sd_notify READY), before the
    hand-over to the waiter; it must not raise.

    Exceptions from ``spawn`` propagate (no child exists then), with the forwarded signals this
    process got meanwhile as their ``signals_in_spawn`` (a terminal's Ctrl-C reaches the child
    before its execve too: it died of it). ``failed(err)`` runs then, for the undo of what the
    caller made for a program that never ran (a launcher's --TYPE=FILE binds): still inside the
    handlers, which record a forwarded signal, and with the other ending ones blocked (a SIGALRM's
    default action), so that no signal ends this process between the failure and the undo; the
    forwarded ones it got during the undo are the exception's ``signals_in_undo``, for the caller
    to end by once it is done. The signal mask a sync callable changed (defer_ending) is the
    caller's again once the spawn is done, or its failure undone. Returns as ``Supervisor.wait``.
    """
    sup = Supervisor()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    with sup.handlers():
        try:
            try:
                proc = spawn()
            except BaseException as e:
                e.signals_in_spawn = got = tuple(sup._early)  # type: ignore[attr-defined]
                if failed is not None:
                    with ending_blocked():
                        failed(e)
                e.signals_in_undo = tuple(sup._early[len(got):])  # type: ignore[attr-defined]
                raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a deferred signal acts here
        sup.started(proc)
        if started is not None and sup.pid is not None:
            started(sup.pid)
        sup.hand_over()
        return sup.wait()
