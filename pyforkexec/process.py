"""Process: a started child, waited on through its pidfd when it has one (no pid-reuse races)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import threading
import time
import warnings
from typing import TYPE_CHECKING, Any, Optional

from . import fd_ready, pidfd_group
from ._signals import SEIZE_TRIES, Hold, held, seize
from .checks import MAX_FD, check_int, check_pid, check_real, fail
from .proc_pid import own_proc, pidfd_pid

if TYPE_CHECKING:
    from ._terminal import ForegroundTerminal

_EXITS = (os.CLD_EXITED, os.CLD_KILLED, os.CLD_DUMPED)
# Processes collected while still running (Process.__del__), reaped at the next Process made, as
# subprocess does with its _active list: a dropped Process leaves no zombie for good.
_active: list[Process] = []


def _reap_dropped() -> None:
    for proc in _active[:]:
        try:
            done = proc._reap(os.WNOHANG) is not None
        except ChildProcessError:  # reaped by someone else
            done = True
        if done:
            with contextlib.suppress(ValueError):
                _active.remove(proc)


# Forks this process descends from (os.fork, clone(fn), multiprocessing: at-fork hooks). With the pid,
# what tells a Process's owner from a forked copy of it (Process._owner), even where the copy has the
# owner's pid number (1, both of them, in PID namespaces of their own).
_forks = 0


def _forked() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_forked)


def here() -> tuple[int, int]:
    """This process, as Process._owner records its owner."""
    return os.getpid(), _forks


# Whether waits go through a pidfd (P_PIDFD, Linux 5.4): cleared at the first EINVAL, a kernel with
# pidfds that lacks it (5.3).
_by_pidfd = hasattr(os, "P_PIDFD")


def _copy(pidfd: int) -> int:
    """A copy of ``pidfd`` to wait on, or -1 when no fd is to be had (EMFILE, ENFILE, ENOMEM): the
    wait then looks every few milliseconds instead. A wait needs no fd of its own: out of them it
    raised, and so did the kill and reap of a run() undoing itself, which left its child unreaped,
    its pidfd and its cgroup behind."""
    try:
        return fcntl.fcntl(pidfd, fcntl.F_DUPFD_CLOEXEC, 0)
    except OSError as e:
        if e.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOMEM):
            raise
        return -1


class TimeoutExpired(Exception):
    """wait(timeout) ran out before the process exited."""

    def __init__(self, pid: int, timeout: float):
        super().__init__(f"process {pid} did not exit within {timeout} seconds")
        self.pid, self.timeout = pid, timeout


def check_timeout(timeout: object) -> float:
    """A timeout in seconds as a plain int or float, or ValueError/TypeError starting ``timeout: ``:
    a number from 0 to threading.TIMEOUT_MAX (so never negative, NaN or infinite). The one rule for
    every public call taking a timeout (Process.wait, run); None (no limit) is the caller's to allow."""
    return check_real("timeout", timeout, 0, threading.TIMEOUT_MAX)


def _check_pidfd_of(pidfd: int, pid: int) -> None:
    """A pidfd given with a pid must be a pidfd, of that process: every signal and wait goes through the
    pidfd (send_signal, kill, _waitid), so another process's would be killed or reaped in its stead."""
    named = pidfd_pid(pidfd)
    if named is None and os.path.isdir("/proc/thread-self/fdinfo"):  # (no /proc, as in a chroot: cannot tell)
        fail("pidfd", f"fd {pidfd} is not an open pidfd (os.pidfd_open, SysProcAttr.pidfd)")
    # -1: its process has ended (nothing to signal through it); 0: in a PID namespace this /proc cannot
    # see; or a /proc of another PID namespace than ours (unshare --pid without a /proc of its own),
    # whose numbers are not pid's kind: none can be compared, and the pidfd is taken as given.
    if named is not None and named > 0 and named != pid and own_proc():
        fail("pidfd", f"fd {pidfd} is a pidfd of process {named}, not of pid {pid}: signals and waits go "
             "through the pidfd, to the process it names")


class Process:
    """A child started by start_process. ``returncode`` is None while it runs, then its exit status,
    or the negated signal number that killed it (as in subprocess)."""

    # Whether this object acts on its pid (its finalizer reaps or queues it): set by _own (__init__'s)
    # as its last step, when the object is whole; cleared by the undo of a spawn that made it (_undone),
    # which reaped the child itself. An object whose __init__ raised (a signal's exception in it) never
    # owns the pid: its maker still does, or the spawn's undo has reaped it, and the number may be
    # another's by now.
    _owned = False
    # Whether a wait found the pid no longer our child (reaped by another caller: a waitpid of it or of
    # -1, a SIGCHLD handler that reaps, SIGCHLD ignored): its status is lost and returncode stays None,
    # but its number may be another process's since, another child of ours even. Nothing is sent or
    # waited for by number from then on (the pidfd is closed then: no fd is kept for a process gone).
    _lost = False
    # SysProcAttr.foreground's terminal (set by the spawn that made this object): its foreground process
    # group given back to the one before the spawn once the child is reaped (or found reaped by another
    # caller), as a shell does after a foreground job, so that this process is not left in the
    # background of its own terminal (SIGTTIN at its next read). Once: cleared as it is given back.
    _terminal: Optional[ForegroundTerminal] = None

    def __init__(self, pid: int, pidfd: Optional[int] = None):
        # A pid of 0 or -1 is a process group or every process to kill(2): a Process is one process.
        pid = check_pid("pid", pid)
        if pidfd is not None:
            pidfd = check_int("pidfd", pidfd, 0, MAX_FD)
            _check_pidfd_of(pidfd, pid)
        self._own(pid, pidfd)

    def _own(self, pid: int, pidfd: Optional[int]) -> None:
        """Become the owner of ``pid`` (and ``pidfd``), checked: __init__'s, and a spawn's (forkexec.py,
        CgroupProcess), whose pidfd is its own child's by construction, without reading /proc for it
        (which a chroot may lack)."""
        self.pid, self.pidfd = pid, pidfd
        self.returncode: Optional[int] = None
        # The process whose child pid is: a copy of this object in a forked child of it (os.fork,
        # multiprocessing) finds the pid not its own child (ChildProcessError), and is not its reaper.
        self._owner = here()
        self._lock = threading.Lock()
        if _active:
            _reap_dropped()
        self._owned = True  # last: a subclass sets its own attributes before it calls this

    def __del__(self, _warn: Any = warnings.warn, _dropped: list[Process] = _active) -> None:
        """A Process dropped before it was waited for: a child still running is reaped later
        (_active), with a ResourceWarning, as subprocess.Popen does. Its pidfd stays open until then:
        that reap goes through it, as every wait does (see _reap), and a caller that reaps the child
        meanwhile (a waitpid(-1), a SIGCHLD handler) leaves its number to any process, another child of
        ours even, whose exit a wait by number would take and reap from its owner. (The defaults keep
        what it needs at interpreter shutdown, when module globals may be gone.) One that does not own
        its pid (half-built, or its spawn undone) does nothing, nor does one found reaped by another
        caller (_lost): no pid, no pidfd is its own any more, and a reap attempt would only hold the
        signals that come meanwhile and run their handlers here, where Python drops their exception
        (a Ctrl-C lost)."""
        if not self._owned or self.returncode is not None or self._lost:
            return
        try:
            if self._reap(os.WNOHANG) is not None:
                return
        except OSError:  # ChildProcessError: reaped by someone else, the pidfd closed
            if self.pidfd is None:
                return
        _warn(f"pyforkexec: process {self.pid} is still running", ResourceWarning, source=self)
        _dropped.append(self)

    def __repr__(self) -> str:
        return f"<Process pid={self.pid} returncode={self.returncode}>"

    def _reap(self, options: int) -> Optional[int]:
        """Reap the process if it has exited (``options`` 0: wait until it has), and store its status.

        waitid(WEXITED) and not waitpid, and only exits count: a traced child (SysProcAttr.ptrace)
        also reports its stops to wait calls, and a stopped process is still running; WNOWAIT first,
        so that such a stop stays for its tracer to collect. Held: a signal between the reap and the
        store would lose the status and leave the pidfd open. Through the pidfd when there is one
        (P_PIDFD, Linux 5.4): once another caller reaped the process, its number may be another child
        of ours, whose exit a wait by number would take for this one's (and reap it from its owner).
        """
        with self._lock, held():
            if self.returncode is None:
                if self._lost:  # its number is not its own: a wait by it could take another child's exit
                    raise ChildProcessError(errno.ECHILD, f"process {self.pid} was reaped by another caller")
                try:
                    info = self._waitid(os.WEXITED | os.WNOWAIT | options)
                except ChildProcessError:  # reaped by someone else (a waitpid(-1)): its status is lost
                    self._lost = True
                    self._close_pidfd()
                    self._give_terminal_back(-1)
                    raise
                if info is not None and info.si_pid == self.pid and info.si_code in _EXITS:
                    self._waitid(os.WEXITED)
                    killed = info.si_code != os.CLD_EXITED
                    self.returncode = -info.si_status if killed else info.si_status
                    self._close_pidfd()
                    self._give_terminal_back(self.pid)
        return self.returncode

    def _give_terminal_back(self, pid: int) -> None:
        """After the reap (``pid`` -1: by another caller, see ForegroundTerminal.give_back)."""
        terminal, self._terminal = self._terminal, None
        if terminal is not None:
            terminal.give_back(pid)

    def _waitid(self, options: int) -> Optional[os.waitid_result]:
        """waitid of this process: by its pidfd where there is one (see _reap), else by its pid."""
        global _by_pidfd
        if self.pidfd is not None and _by_pidfd:
            try:
                return os.waitid(os.P_PIDFD, self.pidfd, options)
            except OSError as e:
                if e.errno != errno.EINVAL:  # (ChildProcessError included)
                    raise
                _by_pidfd = False
        return os.waitid(os.P_PID, self.pid, options)

    def _undone(self) -> None:
        """The spawn that made this result was undone (an exception before the caller got it): the
        child is killed and reaped, and the pidfd (and a cgroup) closed, by the spawn. Called on a
        half-built object too (its __init__ interrupted): whatever it set, it owns nothing."""
        self._owned = False
        self.pidfd, self.returncode = None, -signal.SIGKILL
        self._terminal = None  # the undo gives it back (_Spawn.reap)

    def _close_pidfd(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None

    def poll(self) -> Optional[int]:
        """The return code if the process has exited, else None; never blocks."""
        try:
            return self._reap(os.WNOHANG)
        except ChildProcessError:
            with self._lock:  # another thread's wait reaped it: its returncode is set under the lock
                if self.returncode is None:
                    raise
            return self.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        """Wait for the process to exit and return its return code; TimeoutExpired after ``timeout``
        seconds (None: no limit)."""
        if timeout is not None:  # (the plain number: a subclass's own arithmetic is never asked)
            timeout = check_timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            code = self.poll()
            if code is not None:
                return code
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutExpired(self.pid, timeout or 0)
            self._sleep(left)

    def _sleep(self, left: Optional[float]) -> None:
        """Until the process may have exited, or ``left`` seconds; outside the lock, so that other
        threads can still signal it."""
        fd, watched = -1, False
        try:
            with self._lock, held():  # a copy: another waiter may close the pidfd, and its number be reused
                if self.pidfd is not None:
                    watched = True
                    fd = _copy(self.pidfd)
            if fd >= 0:  # readable once the process exits (not at a stop); not held: a Ctrl-C ends it
                fd_ready.readable([fd], left)
                # Closed here, inside the try: the finally's copy for a return runs outside it, and a
                # handler's exception at its first line, before the close, left the copy open.
                with held():
                    os.close(fd)
                    fd = -1
                return
        finally:
            if fd >= 0:  # an exception from the try (the close is the first call: no handler before it)
                os.close(fd)
        if left is None and not watched:  # (a pidfd's process: never by its number, see _reap)
            with contextlib.suppress(ChildProcessError):  # another waiter reaped it
                info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
                if info is None or info.si_code in _EXITS:
                    return
        time.sleep(0.005 if left is None else min(left, 0.005))  # a traced child's stop: look again

    def send_signal(self, sig: int) -> None:
        """Signal the process; a no-op once it has been reaped (its pid may be reused). ``sig`` 0 only
        checks that it can be signalled. ProcessLookupError once it has exited and been reaped by
        another caller (a waitpid(-1)), which a wait() or poll() found: never by a number that may be
        another process's by then."""
        check_int("sig", sig, 0, signal.NSIG - 1)
        with self._lock, held():  # a handler's exception at the lock's release would keep it: deferred
            if self.returncode is not None:
                return
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, sig)
            else:
                self._check_not_lost()
                os.kill(self.pid, sig)

    def send_group_signal(self, sig: int) -> None:
        """Signal the process group this process leads (SysProcAttr.setpgid, or setsid: the group's id
        is its pid), what it started in it included, while it is not reaped: until then its pid, so the
        group's id, is its own, even once it exited (the group keeps what it left behind). After the
        reap a killpg by that number may reach another group, made by a process given the number since;
        here it is a no-op, as send_signal is. Through the pidfd where the kernel can (Linux 6.9): a
        reap by another caller (a waitpid(-1)) leaves returncode None, and only the pidfd still names
        this process's group then; once a wait() or poll() found it reaped that way (ChildProcessError),
        nothing is sent. ProcessLookupError when no group has that
        id (the process never led one, or left it and it emptied), or when nothing was sent."""
        check_int("sig", sig, 0, signal.NSIG - 1)
        with self._lock, held():  # the reap (_reap) takes the lock: it cannot come between the two
            if self.returncode is not None:
                return
            if self.pidfd is None or not pidfd_group.send_group_signal(self.pidfd, sig):
                self._check_not_lost()
                os.killpg(self.pid, sig)

    def _check_not_lost(self) -> None:
        """Before a signal by number: ProcessLookupError once the process was reaped by another caller
        (_lost), whose number, so whose group's id, may be another's by now. Asked of the kernel here
        too (a waitid that reaps nothing), not only found by an earlier wait: a caller that reaped it
        (a SIGCHLD handler's waitpid(-1)) and then kill() with no poll() between sent the signal to
        whatever process had its number by then."""
        if not self._lost:
            try:
                os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:  # not our child any more: reaped, its number free or another's
                self._lost = True
                self._close_pidfd()
                self._give_terminal_back(-1)
        if self._lost:
            raise ProcessLookupError(errno.ESRCH, f"process {self.pid} was reaped by another caller: "
                                     "its pid may be another process's now")

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        """Waits for the process; interrupted meanwhile (a second Ctrl-C), it kills and reaps it."""
        hold = Hold()
        try:
            self.wait()
        except BaseException:
            seize(hold.start, SEIZE_TRIES)  # first: see _signals.seize
            try:
                with contextlib.suppress(OSError):
                    self.kill()
                with contextlib.suppress(ChildProcessError):
                    self._reap(0)
            finally:
                hold.release()
            raise
