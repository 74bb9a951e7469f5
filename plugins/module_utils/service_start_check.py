# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""start_check: a service this run started counts as started only once it has stayed up.

Two conditions, as systemd's ``Type=notify`` and a container's health check's start period give them:

- **Ready**: its process has execed. Under systemd the unit is ``Type=notify`` and the launcher sends
  ``READY=1`` only after the execve, so ``systemctl start`` fails with the spawn (its cause is in the
  journal, read by ``systemd_failure``); the pyforkexec daemon answers ``ok PID`` on its ready fd only
  after the execve, ``error MESSAGE`` otherwise (service_direct.start).
- **Still up after the window**: for ``start_check`` seconds after that, the service's process and its
  parent (the launcher, or the daemon) are watched through pidfds. The exit of either within the window
  fails the start at once; at its end the parent must still be the service's (systemd's MainPID and
  NRestarts unchanged, the daemon's pid file held by the same daemon). A service that exits within the
  window is a failed start even when its restart policy would start it again: a restart counts as a
  failure here.

A service whose start failed is stopped (its restart policy is not left retrying what the task
reports failed). Several services share one window (``wait_all``): the services module starts them
all, then waits once.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import time

from ansible_collections.pyforkexec.isolation.plugins.module_utils import pidfds
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths

UP_PROPERTIES = ("MainPID", "NRestarts", "ActiveState", "SubState")
FAILURE_PROPERTIES = ("ActiveState", "SubState", "Result", "ExecMainCode", "ExecMainStatus", "NRestarts")
# systemd's ExecMainCode: the si_code of the main process's end (waitid(2)).
EXIT_CODES = {"1": "exited", "2": "killed", "3": "dumped core"}
LAUNCHER = "pyforkexec: "  # how the launcher's own messages start (pyforkexec.cli.failure)
# systemd's journal line on the main process's exit: "...: Main process exited, code=exited, status=1/FAILURE"
_MAIN_EXIT = re.compile(r"Main process exited, code=(\w+), status=(\d+)(?:/(\S+))?")
WORD_WAIT = 3.0  # how long a failure's cause (the daemon's log line, systemd's record) may take to appear


class StartCheckFailed(paths.ServiceError):
    """A service this run started that did not stay up; ``details``: what tells why (its journal or
    log lines), for the module's result."""

    def __init__(self, message, details=None):
        super().__init__(message)
        self.details = details or {}


class Watch:
    """One started service within its window: its process and its parent, each with a pidfd (None: it
    was gone already), and what the end of the window compares with."""

    def __init__(self, name, manager, main, pid, window, restarts=None, log_offset=0, since=0.0):
        self.name, self.manager, self.main, self.pid = name, manager, main, pid
        self.deadline = time.monotonic() + window
        self.window = window
        self.restarts = restarts  # systemd's NRestarts at the start
        self.log_offset = log_offset  # the daemon's log size before the start
        self.since = since  # time.time() before the start, for the journal
        self.fds = {}
        self.gone = None  # "process" or "parent": which one ended within the window
        if main is not None:
            with contextlib.suppress(ProcessLookupError):
                self.fds["parent"] = os.pidfd_open(main)
        # The process's pid was reported (or read in /proc) before: one that ended and was reaped since
        # left its number to any process, which a plain open would watch in its place (the window
        # would pass). Its pidfd is kept only if /proc, read after the open, shows the parent's child.
        if pid is not None and main is not None:
            fd = pidfds.child_pidfd(pid, main, self.fds.get("parent"))
            if fd is not None:
                self.fds["process"] = fd
        # (A parent gone already tells first: its child cannot be confirmed as its own then.)
        missing = [what for what in ("parent", "process") if what not in self.fds]
        self.gone = "process" if pid is None else next(iter(missing), None)

    def close(self):
        for fd in self.fds.values():
            os.close(fd)
        self.fds = {}


def wait_all(watches):
    """Wait until each watch's window ends or one of its processes exits (whichever comes first, each
    on its own); closes their pidfds."""
    pending = [w for w in watches if w.gone is None]
    try:
        while pending:
            now = time.monotonic()
            pending = [w for w in pending if w.deadline > now and w.gone is None]
            if not pending:
                break
            fds = {fd: (w, what) for w in pending for what, fd in w.fds.items()}
            left = min(w.deadline for w in pending) - now
            for fd in select.select(list(fds), [], [], left)[0]:
                watch, what = fds[fd]
                watch.gone = watch.gone or what
    finally:
        for watch in watches:
            watch.close()


def _still_up_direct(watch):
    return paths.daemon_pid(watch.name) == watch.main


def _still_up_systemd(watch, systemctl):
    now = systemctl.show(watch.name, *UP_PROPERTIES)
    return (now.get("MainPID") == str(watch.main) and now.get("NRestarts") == watch.restarts
            and now.get("ActiveState") == "active")


def failure(watch, systemctl=None):
    """None if the service stayed up through its window (call after wait_all), else StartCheckFailed."""
    if watch.gone is None:
        up = _still_up_direct(watch) if watch.manager == "direct" else _still_up_systemd(watch, systemctl)
        if up:
            return None
        watch.gone = "parent"
    if watch.manager == "direct":
        return direct_failure(watch)
    return systemd_failure(watch.name, systemctl, watch.since, watch)


def _within(watch):
    if watch.gone == "parent" and watch.main is not None:
        ended = f"its supervisor {watch.main}"
    else:
        ended = "its process" if watch.pid is None else f"its process {watch.pid}"
    return f"{ended} ended within the {watch.window:g}s start check (start_check)"


def log_since(name, offset, lines=10):
    """The daemon's log lines written since ``offset`` (its size before the start), the last ``lines``."""
    return paths.log_lines(name, offset, lines)


def _eventually(find, seconds=WORD_WAIT):
    """``find()`` until it returns something true or ``seconds`` pass; its last answer."""
    deadline = time.monotonic() + seconds
    while not (found := find()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def direct_failure(watch):
    """The daemon's word on how the service ended (its ``exited with status N`` or ``killed by``
    line, which the service's own output precedes in the log; written once the daemon has reaped it,
    a moment after the exit the pidfd saw)."""
    def exit_lines():
        log[:] = log_since(watch.name, watch.log_offset)
        return [line.split("]: ", 1)[-1] for line in log
                if f"]: {watch.pid} exited with status" in line or f"]: {watch.pid} killed by" in line]

    log = []
    ends = _eventually(exit_lines)
    cause = f": {ends[0]}" if ends else ""
    output = [line for line in log if "pyforkexec-daemon[" not in line][-3:]
    said = f"; its output: {' | '.join(output)}" if output else ""
    return StartCheckFailed(f"service {watch.name} did not stay up: {_within(watch)}{cause}{said}",
                            dict(log=log))


def main_exit_words(line):
    """systemd's ``Main process exited`` journal line in the daemon's words (``exited with status
    N``, ``killed by SIGNAME``), or None for another line."""
    found = _MAIN_EXIT.search(line)
    if not found:
        return None
    code, status, name = found.groups()
    if code == "exited":
        return f"exited with status {status}"
    return f"killed by {'SIG' + name if name and name.isupper() else 'signal ' + status}" + (
        " (core dumped)" if code == "dumped" else "")


def systemd_failure(name, systemctl, since, watch=None):
    """How the unit failed (``watch``: within its window; None: its ``systemctl start`` failed): its
    state, result and main process's exit, and its journal since the start (the launcher's
    ``pyforkexec: ...`` line, systemd's ``Main process exited``)."""
    def recorded():
        # systemd records the main process's exit once it has reaped the launcher, a moment after
        # the exit the pidfd saw: until then the unit still shows the launcher as its MainPID.
        now = systemctl.show(name, "MainPID", *FAILURE_PROPERTIES)
        return now if watch is None or now.get("MainPID") != str(watch.main) else {}

    state = _eventually(recorded) or systemctl.show(name, *FAILURE_PROPERTIES)
    code = EXIT_CODES.get(state.get("ExecMainCode", ""), state.get("ExecMainCode", "?"))
    status = (f"unit {paths.unit_name(name)} {state.get('ActiveState', '?')} ({state.get('SubState', '?')}), "
              f"result {state.get('Result', '?')}, main process {code} with status "
              f"{state.get('ExecMainStatus', '?')}, restarts {state.get('NRestarts', '?')}")

    def told():  # the launcher's line, or systemd's on the exit, once journald has them
        journal[:] = systemctl.journal(name, since)
        return [line for line in journal if line.startswith(LAUNCHER) or "Main process exited" in line]

    journal = []
    _eventually(told)
    launcher = [line for line in journal if line.startswith(LAUNCHER)]
    exits = [words for words in map(main_exit_words, journal) if words]
    # The launcher's own line says why a spawn failed; else systemd's record of the first exit since
    # the start (the unit's properties may already show a restart: status 0, as in the daemon's log).
    cause = f": {launcher[-1]}" if launcher else f": {exits[0]}" if exits else ""
    what = f"did not stay up: {_within(watch)}" if watch is not None else "did not start"
    return StartCheckFailed(f"service {name} {what}{cause} ({status})", dict(journal=journal))
