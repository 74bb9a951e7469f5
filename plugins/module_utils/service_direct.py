# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""manager: direct: the service as ``python -m pyforkexec.daemon``, started detached, stopped by SIGTERM.

The daemon's command line carries every setting (restart policy, stop timeout, paths), so comparing
the running daemon's /proc/PID/cmdline with the wanted one tells whether it must be restarted.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time

from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths

# What a service gets as its environment when its spec sets none (systemd gives services the same PATH).
DAEMON_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
READY_FD_OPTION = "--ready-fd"
WAITER, RESUME_OPTION = "pyforkexec-waiter", "--resume"


def daemon_argv(name, python, restart, stop_timeout, restart_sec):
    return [python, "-m", "pyforkexec.daemon", "--name", name, "--spec", paths.spec_path(name),
            "--pid-file", paths.pid_file(name), "--log-file", paths.log_file(name), "--restart", restart,
            "--restart-sec", f"{restart_sec:g}", "--stop-timeout", str(stop_timeout)]


def running_argv(pid):
    """The command line a running daemon was started with (daemon_argv's), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return daemon_argv_of([a.decode(errors="replace") for a in f.read().split(b"\0")[:-1]])
    except FileNotFoundError:
        return None


def daemon_argv_of(argv):
    """The daemon's arguments in a /proc cmdline, without its --ready-fd. While its service runs the
    daemon is pyforkexec-waiter, whose command line ends with the daemon's, followed by what the daemon
    adds for its way back (--resume and after, always last: pyforkexec.service.daemon)."""
    if argv and os.path.basename(argv[0]) == WAITER and "--" in argv:
        argv = argv[argv.index("--") + 1:]
    if RESUME_OPTION in argv:
        argv = argv[:argv.index(RESUME_OPTION)]
    if READY_FD_OPTION in argv:
        i = argv.index(READY_FD_OPTION)
        argv = argv[:i] + argv[i + 2:]
    return argv


def log_tail(name, lines=20):
    try:
        with open(paths.log_file(name), errors="replace") as f:
            return f.read().splitlines()[-lines:]
    except FileNotFoundError:
        return []


def _read_ready(fd, timeout):
    data, deadline = b"", time.monotonic() + timeout
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


class ServiceTimeout(paths.ServiceError):
    """The daemon neither started the service nor failed within the time allowed."""


def start(name, argv, timeout=30.0):
    """Start the daemon detached; the pid of the service's process once it started. Raises ServiceError."""
    for d in (paths.RUN_DIR, paths.LOG_DIR):
        os.makedirs(d, mode=0o755, exist_ok=True)
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        proc = subprocess.Popen([*argv, READY_FD_OPTION, str(w)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, pass_fds=(w,),
                                start_new_session=True, env=DAEMON_ENV, cwd="/")
        os.close(w)
        w = -1
        answer = _read_ready(r, timeout)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    if answer is not None and answer.startswith("ok "):
        proc.stderr.close()
        return int(answer.split()[1])
    if answer is None and proc.poll() is None:
        proc.stderr.close()
        raise ServiceTimeout(f"the daemon of {name} did not report a start within {timeout:g}s")
    early = proc.stderr.read().decode(errors="replace").strip() if proc.poll() is not None else ""
    proc.stderr.close()
    reason = answer[len("error "):] if answer and answer.startswith("error ") else early or "no reason given"
    raise paths.ServiceError(f"service {name} did not start: {reason}")


def _wait_gone(pid, timeout):
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def stop(name, main_pid, stop_timeout):
    """SIGTERM to the daemon (it stops the service within stop_timeout), SIGKILL if it lingers."""
    workload = paths.workload_pid(main_pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(main_pid, signal.SIGTERM)
    if _wait_gone(main_pid, stop_timeout + 5):
        return
    for pid in (workload, main_pid):
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    if not _wait_gone(main_pid, 5):
        raise paths.ServiceError(f"service {name}: daemon {main_pid} survived SIGKILL")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(paths.pid_file(name))
