"""``python -m pyforkexec.daemon``: a spec run as a detached service, where PID 1 is not systemd.

What the Ansible collection's ``service`` module starts with ``manager: direct`` (in a container, on a
CI runner): the same spec document that ``pyforkexec exec --spec`` runs under systemd, with what
systemd would otherwise provide::

    python -m pyforkexec.daemon --name web --spec /etc/pyforkexec/web.json \\
        --pid-file /run/pyforkexec/web.pid --log-file /var/log/pyforkexec/web.log --restart on-failure

- It detaches (a new session, stdin from /dev/null, stdout and stderr appended to ``--log-file``, as
  are its own messages), locks ``--pid-file`` and writes its pid there: the file is locked exactly
  while the daemon runs, so a stale file is never mistaken for a live service. The service's process
  is the daemon's only child.
- One daemon per ``--pid-file`` whatever happens to that file: the daemon holds an abstract unix
  socket named after the pid file's path for as long as it lives (service/singleton.py), and a second
  one refuses to start, even once the file was removed by hand; that socket, not the file, is how the
  collection finds the running daemon. A name held by another user's process (a squatter: abstract
  names have no permissions) is no daemon: the daemon starts anyway, says so in its log, and its pid
  file's lock alone keeps it single for that run (the collection finds it by that lock then); it takes
  the name at a restart of its service once the squatter is gone.
- ``--restart``: ``no``, ``on-failure`` (an exit status other than 0, or death by a signal other than
  SIGHUP, SIGINT, SIGTERM and SIGPIPE, which systemd counts as clean too) or
  ``always``, after ``--restart-sec`` seconds; more than ``--start-limit-burst`` starts within
  ``--start-limit-interval`` seconds of the first of them stop the daemon, as systemd's start limit
  does (the first start after that interval begins the next one; a burst or an interval of 0: no
  start limit, as systemd's StartLimitBurst=0 and StartLimitIntervalSec=0).
- SIGTERM or SIGINT stop the service: ``--stop-signal`` (SIGTERM by default; systemd's KillSignal=,
  podman's --stop-signal), then SIGCONT (for a stopped one, as systemd does), to its process, SIGKILL
  to its process group after ``--stop-timeout`` seconds. A service that is PID 1 of its own PID
  namespace never gets a signal it does not handle (the kernel drops it), so one that ends on SIGINT
  only (``python3 -m http.server``) needs ``--stop-signal SIGINT`` not to wait out the timeout. A
  daemon killed outright takes its service along (the service's
  ``pdeathsig`` is SIGKILL unless its spec sets another), but not what the service forked, nor a
  service that changed its own credentials since its start (a setuid() or setgid() of its own, as a
  server started as root that drops to its user does, or the exec of a set-user-ID program or one
  with file capabilities by a service that is not root: the kernel clears its pdeathsig then). Those
  run on unsupervised until the service's next start, which kills what is left in its own cgroup
  first. SIGHUP, SIGUSR1 and SIGUSR2 are passed on to the process. Each start
  puts the process in a process group of its own, so that a stop also reaches what it forked.
- ``--ready-fd N``: once the first start succeeded or failed, ``ok PID`` or ``error MESSAGE`` is written
  to fd N and the fd is closed, so that whoever started the daemon knows the outcome without polling.
- ``--start-lock-fd N``: a lock (flock) its starter holds, kept until then too (closed with the ready
  fd, or at the daemon's exit): the starter's converge lock (pyforkexec.host_lock) still holds while
  the daemon starts if the starter is killed meanwhile, so that the next converge finds the daemon,
  not its name free and then taken by it (it started a second daemon, which refused, and failed).

The spec is read again at each start (as systemd reads a unit's ExecStart again), so a restart runs
the current document.

While the service runs, the daemon is not Python: once the service started it execs
``pyforkexec-waiter`` (service/waiter.c) in its own process, which keeps the pid, the pid file's lock,
the log and the service as its child, passes signals on and stops the service on SIGTERM like this
module does, in a few hundred KiB instead of an interpreter's ~10 MB. When the service ends the
waiter execs this module again (``--resume STATE --waited HOW``, STATE the JSON of what the daemon
keeps: the service's pid, the fds, the start times, its cgroup), which reaps it and applies the
restart policy. Without the waiter (not built), or when a signal is already being handled, the daemon
supervises the service itself.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import json
import math
import os
import signal
import sys
import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable, NoReturn, Optional

from .. import fd_ready, signames
from .. import spec as specmod
from .._text import printable
from ..attrs import SysProcAttr
from ..errors import ChildError
from ..forkexec import drop_own_groups_for, start_process
from ..lookpath import find_program
from ..process import Process
from ..sandbox.cgroup import handover_record, process_from_record
from . import singleton, waiter

if TYPE_CHECKING:
    import argparse

WAITED = ("run", "stop", "kill", "error")  # how the waiter saw the service end (waiter.c)
RESTART_POLICIES = ("no", "on-failure", "always")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
FORWARDED = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
# Deaths by these signals are clean ends for on-failure, as for systemd's Restart=on-failure: the
# service was asked to end (a stop, a hang-up, a closed pipe), it did not fail.
CLEAN_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE)
HANDLED = (*STOP_SIGNALS, *FORWARDED)


class BadValue(ValueError):
    """An option's value that breaks a rule this module names (argparse shows the message)."""


def _is_int(value: object, least: int) -> bool:
    return type(value) is int and value >= least  # (not a bool, which JSON's true is)


def resume_state(value: str) -> dict[str, Any]:
    """--resume's value: the JSON the daemon gave its waiter (Daemon.hand_over). Only the waiter writes
    it, but it is checked whole here, so that a state the daemon cannot go on from is refused by name
    before the daemon takes over anything (was a traceback, the service left unsupervised)."""
    try:
        state = json.loads(value)
    except ValueError:
        raise BadValue("not JSON") from None
    if not isinstance(state, dict):
        raise BadValue("must be a JSON object")
    rules = (("pid", 1), ("pid_fd", 0), ("log_fd", 0))
    for key, least in rules:
        if not _is_int(state.get(key), least):
            raise BadValue(f"{key}: must be an integer from {least}")
    if "name_fd" in state and not _is_int(state["name_fd"], -1):  # (absent: a daemon from before the name)
        raise BadValue("name_fd: must be an integer from -1")
    starts = state.get("starts")
    if not isinstance(starts, list) or not all(type(t) in (int, float) and math.isfinite(t) for t in starts):
        raise BadValue("starts: must be a list of times")
    record = state.get("cgroup")
    if record is not None and not (isinstance(record, dict) and isinstance(record.get("path"), str)
                                   and isinstance(record.get("root"), str)
                                   and isinstance(record.get("remove"), bool)
                                   and isinstance(record.get("kill", False), bool)
                                   and isinstance(record.get("created"), dict)
                                   and all(_is_int(inode, 0) for inode in record["created"].values())):
        raise BadValue("cgroup: must be null or the cgroup's record (path, created, remove, root, kill)")
    return state


def stop_signal(value: str) -> int:
    """--stop-signal's value as a number; ValueError for no signal (argparse says "invalid value")."""
    signo = signames.parse(value)
    if signo is None:
        raise ValueError(f"no signal: {value!r}")
    return signo


# The daemon's options, defined once for both parsers below: (option, type (None: a flag, store_true),
# default, choices, required, help (None: internal, not shown)).
OPTIONS: tuple[tuple[str, Optional[Callable[[str], object]], object, Optional[tuple[str, ...]], bool,
                     Optional[str]], ...] = (
    ("--name", str, None, None, True, "the service name (for messages)"),
    ("--spec", str, None, None, True, "the spec document (see pyforkexec.spec)"),
    ("--pid-file", str, None, None, True, ""),
    ("--log-file", str, None, None, True, ""),
    ("--restart", str, "no", RESTART_POLICIES, False, ""),
    ("--restart-sec", float, 0.1, None, False, ""),  # systemd's RestartSec default
    ("--stop-timeout", float, 10.0, None, False, ""),
    ("--stop-signal", stop_signal, int(signal.SIGTERM), None, False,
     "the signal a stop sends the service: a name (SIGINT, INT, int, RTMIN+2) or a number"),
    ("--start-limit-burst", int, 5, None, False,
     "at most this many starts within --start-limit-interval seconds, then give up (0: no start limit)"),
    ("--start-limit-interval", float, 10.0, None, False, "see --start-limit-burst (0: no start limit)"),
    ("--ready-fd", int, -1, None, False, ""),
    ("--start-lock-fd", int, -1, None, False, ""),
    ("--foreground", None, False, None, False, "do not detach (for tests and debugging)"),
    ("--no-waiter", None, False, None, False, "supervise in Python, never exec the waiter"),
    # Internal: the daemon coming back from pyforkexec-waiter (module docstring).
    ("--resume", resume_state, None, None, False, None),
    ("--waited", str, None, WAITED, False, None),
    ("--exited-at", int, None, None, False, None),  # CLOCK_MONOTONIC ms
)


# Signals refused as --stop-signal, and why (systemd takes them, to no use).
NOT_STOP_SIGNALS = {
    signal.SIGKILL: "the stop sends it after --stop-timeout; one that cannot be handled leaves no grace, and "
                    "sent to the service's process alone it leaves what that forked until the timeout "
                    "(give --stop-timeout 0 for no grace)",
    signal.SIGSTOP: "it ends no process, and the SIGCONT that follows a stop signal resumes it: every stop "
                    "would wait out --stop-timeout",
}


# Options for the first start only, dropped from the command line the daemon comes back with.
ONCE_OPTIONS = ("--ready-fd", "--start-lock-fd")


def dest(option: str) -> str:
    return option[2:].replace("-", "_")


def argument_parser() -> argparse.ArgumentParser:
    import argparse  # only for --help and a command line not in the plain form: see parse_args

    p = argparse.ArgumentParser(prog="python -m pyforkexec.daemon", description=__doc__.splitlines()[0])
    for option, kind, default, choices, required, text in OPTIONS:
        shown = argparse.SUPPRESS if text is None else (text or None)
        if kind is None:
            p.add_argument(option, action="store_true", help=shown)
        elif required:
            p.add_argument(option, required=True, help=shown)
        else:
            p.add_argument(option, type=None if kind is str else _said(kind), choices=choices,
                           default=default, help=shown)
    return p


def _said(kind: Callable[[str], object]) -> Callable[[str], object]:
    """``kind`` for argparse, which shows a BadValue's rule (argparse's own "invalid value" else)."""
    import argparse

    def convert(value: str) -> object:
        try:
            return kind(value)
        except BadValue as e:
            raise argparse.ArgumentTypeError(f"{printable(value)}: {e}") from None
    convert.__name__ = kind.__name__  # (argparse's "invalid <name> value")
    return convert


def _parse_plain(argv: Sequence[str]) -> Optional[SimpleNamespace]:
    """What argparse would parse from ``argv`` if it is in the plain form that the daemon's callers
    write (the collection's module, the waiter's way back): every option spelt out whole, each value
    a separate word not starting with ``-``, every value valid, the required ones given. None for
    anything else, which is left to argparse."""
    by_option = {o[0]: o for o in OPTIONS}
    values = {dest(option): default for option, _, default, *_ in OPTIONS}
    i = 0
    while i < len(argv):
        option = by_option.get(argv[i])
        if option is not None and option[1] is None:  # a flag
            values[dest(argv[i])] = True
            i += 1
            continue
        if option is None or i + 1 == len(argv) or argv[i + 1].startswith("-"):
            return None
        _, kind, _, choices, _, _ = option
        assert kind is not None
        try:
            value = kind(argv[i + 1])
        except (ValueError, TypeError):
            return None
        if choices is not None and value not in choices:
            return None
        values[dest(argv[i])] = value
        i += 2
    if any(values[dest(o[0])] is None for o in OPTIONS if o[4]):
        return None
    return SimpleNamespace(**values)


def parse_args(argv: Sequence[str]) -> SimpleNamespace:
    """The daemon's options. Each restart starts this module again (module docstring), so the plain
    form its callers write is read without importing argparse (with gettext, locale and shutil, ~5 ms
    of every restart: issue 15); --help and every other form, and every error, are argparse's, which
    gives the same values for the plain form (tests/test_daemon.py compares them)."""
    plain = _parse_plain(argv)
    if plain is not None:
        return plain
    return SimpleNamespace(**vars(argument_parser().parse_args(argv)))


# Numeric options: (option, least, most). Seconds are kept below what the waiter's milliseconds and
# select() take; none may be NaN or infinite.
RANGES = (("--restart-sec", 0, 10**6), ("--stop-timeout", 0, 10**6), ("--start-limit-interval", 0, 10**9),
          ("--start-limit-burst", 0, 10**6))


def out_of_range(args: SimpleNamespace) -> Optional[str]:
    """The first numeric option outside its range (module RANGES), or a --stop-signal refused
    (NOT_STOP_SIGNALS), as a message naming it, or None."""
    for option, least, most in RANGES:
        value = getattr(args, dest(option))
        if not least <= value <= most:  # NaN compares false both ways
            return f"{option}: must be from {least} to {most}, got {value}"
    if args.stop_signal in NOT_STOP_SIGNALS:
        return (f"--stop-signal: {signames.name(args.stop_signal)} cannot be a stop signal: "
                f"{NOT_STOP_SIGNALS[args.stop_signal]}")
    return None


def wanted_argv(argv: Sequence[str]) -> list[str]:
    """The daemon's arguments as its starter gave them: without --ready-fd and --start-lock-fd (used
    once) and without what the waiter adds (--resume and --waited, always last)."""
    argv = list(argv)
    if "--resume" in argv:
        del argv[argv.index("--resume"):]
    for once in ONCE_OPTIONS:
        if once in argv:
            i = argv.index(once)
            del argv[i:i + 2]
    return argv


def exited(proc: Process) -> bool:
    """Whether ``proc`` has exited, without reaping it (WNOWAIT): until the reap its pid, so the id of
    the group it leads, stays its own; a kill by that number after the reap may reach another process
    (a session leader started meanwhile), as a pid kill may."""
    if proc.returncode is not None:
        return True
    info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    return info is not None and info.si_pid == proc.pid


class Daemon:
    def __init__(self, args: SimpleNamespace, log_fd: int, argv: Sequence[str] = (), pid_fd: int = -1,
                 name_fd: int = -1):
        self.args = args
        self.argv = wanted_argv(argv)  # for the waiter's way back
        self.log_fd = log_fd
        self.pid_fd = pid_fd
        self.name_fd = name_fd  # the socket holding the daemon's name (singleton.claim), -1: none
        self.name_said = False  # whether the log says already why the daemon runs without its name
        self.gave_up = False
        self.signals: list[int] = []
        self.stopping = False
        self.ready_fd = args.ready_fd
        self.start_lock_fd = args.start_lock_fd
        self.starts: collections.deque[float] = collections.deque()
        self.spec: Optional[specmod.Spec] = None  # the last one read, for the field a failed start blames
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    # ---- messages -------------------------------------------------------------------------------

    def log(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")  # datetime's isoformat(" ", "seconds"), without datetime
        # The name and the message quote input (a --name, an error's path or program): escaped, so that a
        # newline or an escape in them neither forges a line of its own nor rewrites the terminal. Escaping
        # what is already printable (a OneLineError's text) changes nothing: nothing is escaped twice.
        line = printable(f"{stamp} pyforkexec-daemon[{self.args.name}]: {message}") + "\n"
        with contextlib.suppress(OSError):  # a full disk loses the line, not the supervisor (its service)
            os.write(self.log_fd, line.encode(errors="replace"))

    def ready(self, message: str) -> None:
        if self.start_lock_fd >= 0:  # the start is over: the starter's lock goes (if the starter did)
            with contextlib.suppress(OSError):
                os.close(self.start_lock_fd)
            self.start_lock_fd = -1
        if self.ready_fd < 0:
            return
        with contextlib.suppress(OSError):
            os.write(self.ready_fd, printable(message).encode(errors="replace") + b"\n")  # one line, as log()
        with contextlib.suppress(OSError):
            os.close(self.ready_fd)
        self.ready_fd = -1

    # ---- signals --------------------------------------------------------------------------------

    def _on_signal(self, signo: int, _frame: object) -> None:
        self.signals.append(signo)

    def install_handlers(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        for s in (*HANDLED, signal.SIGCHLD):
            signal.signal(s, self._on_signal)

    def _take_signals(self) -> list[int]:
        with contextlib.suppress(BlockingIOError):
            while os.read(self.wake_r, 512):
                pass
        taken, self.signals[:] = list(self.signals), []
        return taken

    def pause(self, seconds: Optional[float], fds: Sequence[int] = ()) -> list[int]:
        """Wait until a signal, an fd is readable, or ``seconds`` pass; the signals that arrived."""
        if not self.signals:
            fd_ready.readable([self.wake_r, *fds], seconds)
        return self._take_signals()

    # ---- one run of the service -----------------------------------------------------------------

    def blamed(self, err: BaseException) -> str:
        """A failed start as the log says it: a child's failure with the spec's field first, as
        ``pyforkexec exec --spec`` says it (``spec: sys.setns[0] (/run/netns/web): fork/exec ...``,
        ``spec: sys.cgroup: the pids controller is not available ...``)."""
        return (self.spec.blame(err) if self.spec is not None else None) or str(err)

    def spawn(self) -> Process:
        spec = self.spec = specmod.read(self.args.spec)
        specmod.check(spec)
        drop_own_groups_for(spec.attr.sys)  # (root started from a login: its group 0 is no service's)
        if tuple(spec.attr.files) != (0, 1, 2):  # what the service gets as 0, 1 and 2 is the daemon's
            raise specmod.SpecError("proc.files", "a service under the daemon gets /dev/null and its log as "
                                    "fds 0, 1 and 2, and no other: leave proc.files out")
        if not spec.wait:  # a launcher's behaviour; the daemon is the service's supervisor whatever it says
            raise specmod.SpecError("wait", "a service under the daemon is supervised by it (restarted, "
                                    "stopped with it), not detached: leave wait out")
        attr = spec.attr
        self.empty_own_cgroup(attr.sys)
        if attr.env is None:
            attr.env = [f"{k}={v}" for k, v in os.environ.items()]
        if attr.sys is None:
            attr.sys = SysProcAttr()
        if not (attr.sys.setsid or attr.sys.setpgid):
            attr.sys.setpgid = True  # a group of its own: a stop reaches what it forked
        if not attr.sys.pdeathsig:
            # The service never outlives its supervisor: a daemon killed outright (SIGKILL, the OOM
            # killer) takes it along, rather than leaving it running with nobody to stop or restart it
            # and its pid file free for a second copy. (systemd's KillMode does this for its units.)
            attr.sys.pdeathsig = signal.SIGKILL
        attr.files = [os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), self.log_fd, self.log_fd]
        try:
            return start_process(self.program(spec), spec.argv, attr)
        finally:
            os.close(attr.files[0])

    def empty_own_cgroup(self, sys_attr: Optional[SysProcAttr]) -> None:
        """A cgroup that is the service's own (Cgroup.kill_remaining, as the collection writes it) and
        still holds processes at a start: what a daemon killed outright left (its service died with it,
        by pdeathsig, but not what the service had started). They are killed before the new start
        joins them, as the stop would have."""
        cgroup = sys_attr.cgroup if sys_attr is not None else None
        if cgroup is None or not cgroup.kill_remaining:
            return
        from ..sandbox.cgroup import CgroupError, empty_own, members

        try:
            path = cgroup.fs_path()
            left = members(path)
        except (OSError, CgroupError):
            return  # not there yet (the start makes it), or no cgroup2: the start reports it
        if left:
            self.log(f"killing what was left in {path} (pids {' '.join(left)})")
        if os.path.isdir(path) and not empty_own(path):  # the start makes it anew
            self.log(f"{path} could not be emptied and removed: the start uses it as it is")

    @staticmethod
    def program(spec: specmod.Spec) -> str:
        """argv0, or argv[0] looked up in the process's PATH inside its new root (if any); a name not
        found is left for execve to report at its step."""
        if spec.argv0 is not None or "/" in spec.argv[0]:
            return spec.program
        env = [os.fsdecode(e) for e in spec.attr.env or ()]
        path = next((e[5:] for e in env if e.startswith("PATH=")), os.environ.get("PATH"))
        s = spec.attr.sys
        root = (s.pivot_root or s.chroot or "") if s is not None else ""
        return find_program(spec.argv[0], path, root) or spec.argv[0]

    def supervise(self, proc: Process) -> int:
        """Wait for the process, passing signals on; returns its exit code (negative: a signal)."""
        pidfd = os.pidfd_open(proc.pid)
        deadline = None
        try:
            while not exited(proc):
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                for signo in self.pause(timeout, [pidfd]):
                    if signo in STOP_SIGNALS and not self.stopping:
                        self.stopping = True
                        self.log(f"stopping: {self.stop_signal_name} to {proc.pid}")
                        deadline = time.monotonic() + self.args.stop_timeout
                        self._kill(proc, self.args.stop_signal, group=False)
                        # A stopped service (SIGSTOP) acts on it now, not SIGKILLed at the
                        # timeout: systemd follows its stop signal with SIGCONT too.
                        self._kill(proc, signal.SIGCONT, group=False)
                    elif signo in FORWARDED:
                        self._kill(proc, signo, group=False)
                if deadline is not None and time.monotonic() >= deadline and not exited(proc):
                    self.log(self.still_running(proc))
                    self._kill(proc, signal.SIGKILL, group=True)
                    deadline = None
        finally:
            os.close(pidfd)
        if proc.returncode is None:  # exited, not reaped: its pid, the group's id, is not another's yet
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # what the process left behind in its group
        return proc.wait()

    @property
    def stop_signal_name(self) -> str:
        return signames.name(self.args.stop_signal)

    def still_running(self, proc: Process) -> str:
        """The log line of a stop's SIGKILL."""
        return f"{proc.pid} still running {self.args.stop_timeout:g}s after {self.stop_signal_name}: SIGKILL"

    @staticmethod
    def _kill(proc: Process, signo: int, group: bool) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(proc.pid, signo)
            if proc.returncode is None:
                proc.send_signal(signo)

    def should_restart(self, code: int, delay: float = 0.0) -> bool:
        """Whether to start again after ``code``, ``delay`` seconds from now. The start limit counts
        the starts within --start-limit-interval of that next start, as systemd checks it when the
        start comes (after RestartSec), not of the exit: starts --restart-sec apart, more than the
        interval over the burst, never reach the limit."""
        # A stop that came as the service exited (before supervise() looked, or while the waiter
        # handed back) is a stop: never a start after it.
        if any(s in STOP_SIGNALS for s in self._take_signals()):
            self.stopping = True
        if self.stopping or self.args.restart == "no":
            return False
        if self.args.restart == "on-failure" and (code == 0 or -code in CLEAN_SIGNALS):
            return False
        # systemd's start limit counts in windows: one begins at a start and takes the starts within
        # the interval of it; the first start after it begins the next (its ratelimit_below). Counted
        # within the interval before each start instead, a service that had run most of an interval
        # before a few quick crashes was given up where systemd goes on.
        now = time.monotonic() + delay  # when the next start would come
        if self.starts and now - self.starts[0] > self.args.start_limit_interval:
            self.starts.clear()  # (self.starts: those of the window the last start is in)
        burst = self.args.start_limit_burst
        if burst == 0:  # no start limit (systemd's StartLimitBurst=0): nothing to count, and the
            self.starts.clear()  # starts the waiter carries (its command line) do not grow without end
        elif len(self.starts) >= burst:
            self.log(f"{len(self.starts)} starts within {self.args.start_limit_interval:g}s: giving up")
            self.gave_up = True
            return False
        return True

    def run(self) -> int:
        """Start, supervise and restart the service; the daemon's exit status: 0 once stopped or after
        a clean exit, else the service's status (128+N for signal N; 1 for a clean exit given up)."""
        self.install_handlers()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)  # blocked until now by main(): see there
        code, first = 0, True
        resumed = self.resumed()
        while True:
            if resumed is not None:
                proc, resumed, first = resumed, None, False
                code = self.supervise(proc)
                self.log_exit(proc, code)
            else:
                self.starts.append(time.monotonic())
                try:
                    proc = self.spawn()
                # (ValueError and TypeError: pyforkexec's refusals at the start itself, such as a join
                # target that names the daemon's own namespace by now; SpecError is a ValueError)
                except (ChildError, OSError, ValueError, TypeError) as e:
                    self.log(f"start failed: {self.blamed(e)}")
                    if first:  # whoever started the daemon reports it; restarts are for a service that ran
                        self.ready(f"error {self.blamed(e)}")
                        return 1
                    code = 1
                else:
                    self.log(f"started {proc.pid}")
                    self.ready(f"ok {proc.pid}")
                    first = False
                    self.hand_over(proc)  # returns only if the waiter could not take over
                    code = self.supervise(proc)
                    self.log_exit(proc, code)
            delay = max(0.0, self.args.restart_sec - self.since_exit())
            if not self.should_restart(code, delay):
                if self.stopping:
                    return 0
                return code if code > 0 else 128 - code if code < 0 else int(self.gave_up)
            self.take_name()
            self.log(f"restarting in {self.args.restart_sec:g}s (restart={self.args.restart})")
            if self.sleep(delay):
                return 0

    def take_name(self) -> None:
        """Hold the daemon's name if it does not (it started while another user's process held it, or
        was handed over by a daemon of a pyforkexec before the name) and it is free now: from then on
        a second daemon is refused even if the pid file is removed. Tried at each restart of the
        service; a failure logged once."""
        if self.name_fd >= 0:
            return
        try:
            self.name_fd = singleton.claim(self.args.pid_file)
        except OSError as e:
            if not self.name_said:
                self.log(f"cannot hold the daemon's name: {e.strerror} (its pid file's lock alone keeps it "
                         "single)")
            self.name_said = True
        else:
            self.log(f"holds its name @{singleton.name(self.args.pid_file)} now")

    def since_exit(self) -> float:
        """Seconds since the waiter saw the service exit (once: later exits are seen here)."""
        exited_at, self.args.exited_at = self.args.exited_at, None
        return 0.0 if exited_at is None else max(0.0, time.monotonic() - exited_at / 1000)

    def log_exit(self, proc: Process, code: int) -> None:
        self.log(f"{proc.pid} exited with status {code}" if code >= 0 else
                 f"{proc.pid} killed by {signames.name(-code)}")

    # ---- the waiter: the daemon while its service runs ------------------------------------------

    def hand_over(self, proc: Process) -> None:
        """Exec pyforkexec-waiter in this process, with the signals it handles blocked (pending ones
        stay pending across exec). Returns, the daemon supervising in Python, if there is no waiter,
        a signal came before the block, or the exec failed."""
        if self.args.no_waiter or self.pid_fd < 0 or not waiter.available():
            return
        handled = {*STOP_SIGNALS, *FORWARDED, signal.SIGCHLD}
        old = signal.pthread_sigmask(signal.SIG_BLOCK, handled)
        # A signal that came before the block has had its handler run by now (at this line). A
        # SIGCHLD needs nothing: the waiter sees an exit that came first at once (its pidfd).
        taken = [s for s in self._take_signals() if s != signal.SIGCHLD]
        if taken:
            self.signals[:0] = taken  # for supervise(), here
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
            return
        state = {"pid": proc.pid, "pid_fd": self.pid_fd, "log_fd": self.log_fd, "name_fd": self.name_fd,
                 "starts": list(self.starts), "cgroup": handover_record(proc)}
        keep = tuple(fd for fd in (self.pid_fd, self.log_fd, self.name_fd) if fd >= 0)
        command = [sys.executable, "-m", "pyforkexec.daemon", *self.argv, "--resume", json.dumps(state)]
        error = waiter.hand_over(proc.pid, f"{round(self.args.stop_timeout * 1000)}:{self.args.stop_signal}",
                                 command, keep=keep)
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
        self.log(f"cannot exec {waiter.WAITER}: {error}; supervising in Python")

    def resumed(self) -> Optional[Process]:
        """Back from the waiter: the state it kept, the service as a Process to reap (a zombie now,
        unless the waiter failed: then it still runs and is supervised here), how it ended."""
        state = self.args.resume
        if state is None:
            return None
        for fd in (self.pid_fd, self.log_fd, self.name_fd):
            if fd >= 0:
                os.set_inheritable(fd, False)
        # The waiter's signals were blocked across both execs: now that ours are installed, take them.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {*STOP_SIGNALS, *FORWARDED, signal.SIGCHLD})
        self.starts.extend(state["starts"])
        proc = process_from_record(state["pid"], state.get("cgroup"))
        waited = self.args.waited
        if waited in ("stop", "kill"):
            self.stopping = True
            self.log(f"stopping: {self.stop_signal_name} to {proc.pid}")
        if waited == "kill":
            self.log(self.still_running(proc))
        if waited == "error":
            self.log("the waiter failed: supervising in Python")
        return proc

    def sleep(self, seconds: float) -> bool:
        """Sleep unless a stop signal comes first; whether one came."""
        deadline = time.monotonic() + seconds
        while True:  # at least one look, for a delay of 0: a stop already pending is a stop
            if any(s in STOP_SIGNALS for s in self.pause(max(0.0, deadline - time.monotonic()))):
                self.stopping = True
                return True
            if deadline - time.monotonic() <= 0:
                return False


# Ignored by Python itself (its start-up), not by the daemon's starter: the spawn restores them in the
# service, as CPython's subprocess does.
PYTHON_IGNORES = (signal.SIGPIPE, signal.SIGXFSZ)


def unignore_signals() -> None:
    """Every signal the daemon's starter ignored goes back to its default action, for the daemon and so
    for its service, which would inherit the SIG_IGN across its execve: systemd starts every service
    with none ignored. A non-interactive shell's background job (``ansible-playbook site.yml &`` on a
    CI runner) ignores SIGINT and SIGQUIT, and the service then never got a SIGQUIT: a stop with
    --stop-signal SIGQUIT waited out --stop-timeout, every time. (Those the daemon handles get its
    handlers in run(), which no execve passes on: until then they stay as they were, ignored or not.)"""
    for signo in signal.valid_signals():
        if signo in (*PYTHON_IGNORES, *HANDLED, signal.SIGCHLD, signal.SIGKILL, signal.SIGSTOP):
            continue
        with contextlib.suppress(OSError, ValueError):
            if signal.getsignal(signo) == signal.SIG_IGN:
                signal.signal(signo, signal.SIG_DFL)


# The pid file is its owner's alone: flock takes any open file, a read-only one too, and a process of any
# account that could open it (a service's, of this daemon or another) held its lock once its daemon was
# killed outright, or between a starting daemon's open and its lock: the next daemon was refused as
# "already running", the modules' converge of the service failed ("locked ... but does not name it").
PID_FILE_MODE = 0o600


def lock_pid_file(path: str) -> int:
    """Open and lock the pid file; exits if another daemon holds it.

    A daemon that stops unlinks its file while it still holds the lock: one that opened the file
    just before and locks it then holds a file no longer at ``path``, which a third daemon would
    create and lock anew. So the lock counts only once ``path`` still names the file locked, else it
    starts over. A reader that meets the locked file empty (between the cut and the write) waits for
    the whole line."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PID_FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise SystemExit(f"pyforkexec-daemon: already running (pid {other}, {path} is locked)") from None
        try:
            still = os.stat(path)
        except FileNotFoundError:
            still = None
        held_file = os.fstat(fd)
        if still is not None and (still.st_dev, still.st_ino) == (held_file.st_dev, held_file.st_ino):
            break
        os.close(fd)  # unlinked (or replaced) by the daemon that held it: try the file there now
    os.fchmod(fd, PID_FILE_MODE)  # (one a daemon of an earlier pyforkexec left: 0644)
    os.ftruncate(fd, 0)  # no stale pid of a daemon killed outright is read as ours; readers wait for a line
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def detach(log_fd: int) -> None:
    null = os.open(os.devnull, os.O_RDONLY)  # first: out of fds, nothing has changed yet
    with contextlib.suppress(PermissionError):  # already a session leader
        os.setsid()
    os.dup2(null, 0)
    os.close(null)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    problem = out_of_range(args)
    if problem is not None:  # before anything starts: a value the waiter or a sleep could not take
        _refuse(args, problem)
    if args.start_lock_fd >= 0:  # (pass_fds made it inheritable: the service must not hold the lock)
        with contextlib.suppress(OSError):
            os.set_inheritable(args.start_lock_fd, False)
    resume = args.resume
    if resume is not None:  # back from the waiter: the same process, its log, name and locked pid file open
        log_fd, pid_fd = resume["log_fd"], resume["pid_fd"]
        for key in ("log_fd", "pid_fd", "name_fd"):
            if resume.get(key, -1) >= 0:
                try:
                    os.fstat(resume[key])
                except OSError as e:
                    _refuse(args, f"--resume: {key} {resume[key]}: {os.strerror(e.errno)}")
        try:  # (the service the waiter waited for: this process's child, a zombie or running)
            os.waitid(os.P_PID, resume["pid"], os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            _refuse(args, f"--resume: pid {resume['pid']}: not a child of this process")
        daemon = _daemon(args, log_fd, argv, pid_fd, resume.get("name_fd", -1))
        # A daemon that passes no name_fd is of a pyforkexec before the name: held from now on. One
        # that passes -1 started beside a squatter, and said so then.
        daemon.name_said = "name_fd" in resume
        daemon.take_name()
    else:
        unignore_signals()  # (once: the daemon coming back from the waiter has them as it left them)
        try:
            os.makedirs(os.path.dirname(args.log_file) or ".", exist_ok=True)
            # Not waiting for a reader: a FIFO at the path with none is refused (ENXIO) at once, not a
            # start blocked until its starter gives up on it (the collection's start timeout).
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK
            log_fd = os.open(args.log_file, flags, 0o640)
            os.set_blocking(log_fd, True)  # (the service's stdout and stderr: it writes as it would anywhere)
        except OSError as e:
            _refuse(args, f"--log-file {args.log_file}: {os.strerror(e.errno)}")
        daemon = _daemon(args, log_fd, argv)
        # From the pid file on, a stop is the daemon's to handle (its handlers, from run() on): until
        # then their default action would end it with the file left behind.
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
        # The name first: it holds while the daemon lives whatever becomes of its pid file, which a
        # second daemon would lock anew once removed by hand (singleton.py).
        try:
            daemon.name_fd = singleton.claim(args.pid_file)
        except singleton.Taken as e:
            if e.found is None or e.found.uid == os.geteuid():  # a daemon (or its own user's doing)
                who = "another process holds" if e.pid is None else f"pid {e.pid}, which holds"
                _refuse(args, f"already running ({who} @{e.name})")
            # Another user's process: no daemon, and no reason for root's service not to run.
            daemon.name_said = True
            daemon.log(f"the daemon's name @{e.name} is held by {singleton.describe(e.found)}, not a "
                       "daemon: starting without it, its pid file's lock alone keeping it single; one daemon "
                       "per service if its pid file is removed is not guaranteed for this run")
        except OSError as e:
            _refuse(args, f"cannot hold the daemon's name @{singleton.name(args.pid_file)}: "
                    f"{os.strerror(e.errno)}")
        try:
            pid_fd = daemon.pid_fd = lock_pid_file(args.pid_file)
        except OSError as e:
            daemon.log(f"--pid-file {args.pid_file}: {os.strerror(e.errno)}")
            _refuse(args, f"--pid-file {args.pid_file}: {os.strerror(e.errno)}")
        except SystemExit as e:
            daemon.ready(f"error {str(e.code).split(': ', 1)[-1]}")
            raise
        if not args.foreground:
            try:
                detach(log_fd)
            except OSError as e:  # out of fds for /dev/null: the pid file is this process's to take back
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(args.pid_file)
                os.close(pid_fd)
                problem = f"cannot detach: {os.devnull}: {os.strerror(e.errno or 0)}"
                daemon.log(problem)
                _refuse(args, problem)
    try:
        return daemon.run()
    finally:
        # Nothing is left to stop: a stop signal from here on stays pending (a stop sent twice, a
        # second kill). Handled, it came after the interpreter's exit had put its default action
        # back, and the daemon that had stopped its service ended killed by it (status -15, not 0).
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(args.pid_file)  # still locked: nobody can take it for a live daemon's meanwhile
        os.close(pid_fd)
        daemon.log("stopped")
        if daemon.name_fd >= 0:  # last: until here a second daemon would find this one's pid file
            os.close(daemon.name_fd)


def _daemon(args: SimpleNamespace, log_fd: int, argv: Sequence[str], pid_fd: int = -1,
            name_fd: int = -1) -> Daemon:
    """The Daemon, or a refusal (one line) when it cannot have its wake-up pipe (out of fds)."""
    try:
        return Daemon(args, log_fd, argv, pid_fd, name_fd)
    except OSError as e:
        _refuse(args, f"cannot make the daemon's wake-up pipe: {os.strerror(e.errno or 0)}")


def _refuse(args: SimpleNamespace, problem: str) -> NoReturn:
    """Exit before any start, saying why on the ready fd (the module waits there) and standard error."""
    if args.ready_fd >= 0:
        with contextlib.suppress(OSError):
            os.write(args.ready_fd, f"error {problem}\n".encode())
    raise SystemExit(f"python -m pyforkexec.daemon: {problem}")


if __name__ == "__main__":
    sys.exit(main())
