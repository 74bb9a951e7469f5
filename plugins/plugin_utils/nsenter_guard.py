# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""What stands between the nsenter connection's Ansible worker and a command it runs in a target, so that
the command, and what it started, end with the worker.

    python -I -S nsenter_guard.py WORKER_PID NSENTER [ARGS...]

Ansible's worker does not kill what it started when it is told to stop (a Ctrl-C of ansible-playbook):
its SIGINT handler (WorkerProcess._term) passes SIGINT on to its process group and exits (os._exit),
and no exception runs in the connection. A command that ignores SIGINT, or traps it, would keep running
inside the target, handed to the target's init. So the connection starts this program (a fresh
interpreter with the standard library alone, nothing of Ansible's) instead of nsenter, which:

- leaves the worker's process group for one of its own (the worker's SIGINT does not reach it);
- watches the worker through a pidfd (the death of its process, not of the thread that started this
  one, as PR_SET_PDEATHSIG would), or, without pidfds (Linux < 5.3), through its parent pid;
- runs NSENTER ARGS... as the leader of a new process group, which what the command starts in the
  target inherits (nsenter's child in the target's PID namespace included);
- exits as NSENTER did (its status, or the signal that killed it);
- once the worker is gone (or this program is told to stop: SIGHUP, SIGINT, SIGTERM), sends SIGTERM to
  that group (a put_file's shell removes its part file then), and SIGKILL to it once it emptied, or
  GRACE seconds later. What left the group (its own session, or group) is no longer reached.

If the worker is gone before NSENTER was started, nothing is started.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import sys
import time

GRACE = 3.0  # seconds between the SIGTERM and the SIGKILL of the command's group
POLL = 0.05  # seconds between looks, where there is no pidfd to wait on
STOP_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM)


class Stop(Exception):
    """A stop signal came to this program."""


def _stop(signum, frame):
    raise Stop()


def _pidfd(pid):
    """A pidfd of ``pid``, or None where the kernel has none (ENOSYS)."""
    try:
        return os.pidfd_open(pid)
    except OSError as e:
        if e.errno == errno.ENOSYS:
            return None
        raise


def _gone(group):
    """Whether process group ``group`` has no process left (zombies count as processes)."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return True
    return False


def _end_group(group, child, status):
    """SIGTERM to ``group``, SIGKILL once it is empty or GRACE seconds later; reaps ``child`` (its leader,
    our child) on the way. Returns ``child``'s wait status, once known."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)  # a second stop signal changes nothing
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + GRACE
        while True:
            if status is None:
                pid, wstatus = os.waitpid(child, os.WNOHANG)
                status = wstatus if pid else None
            if _gone(group) or time.monotonic() >= deadline or (sig == signal.SIGKILL and status is not None):
                break
            time.sleep(POLL)
    if status is None:
        status = os.waitpid(child, 0)[1]
    return status


def _exit_like(status):
    """End as a process with wait status ``status`` ended: its exit code, or the signal that killed it."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            import resource  # pylint: disable=import-outside-toplevel

            resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
        except (ImportError, OSError, ValueError):
            pass
        signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.waitstatus_to_exitcode(status))


def main(argv):
    worker, command = int(argv[1]), argv[2:]
    child = status = None
    try:
        for sig in STOP_SIGNALS:
            if signal.getsignal(sig) != signal.SIG_IGN:  # one the worker ignores, the command ignores too
                signal.signal(sig, _stop)
        os.setpgid(0, 0)
        watch = _pidfd(worker)
        if os.getppid() != worker:  # gone already (or the pidfd is another process's): start nothing
            return 1
        # A stop signal waits until the child's pid is known; the child gets the mask we had.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            child = os.posix_spawn(command[0], command, os.environ, setpgroup=0, setsigmask=mask,
                                   setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        mine = _pidfd(child)
        while True:
            fds = [fd for fd in (watch, mine) if fd is not None]
            ready = select.select(fds, [], [], None if len(fds) == 2 else POLL)[0]
            if watch in ready or (watch is None and os.getppid() != worker):
                raise Stop()
            if mine is None or mine in ready:
                pid, status = os.waitpid(child, os.WNOHANG)
                if pid:
                    break
                status = None
    except Stop:
        if child is None:
            return 1
        status = _end_group(child, child, status)
    except OSError as e:
        if child is None:
            sys.stderr.write(f"nsenter connection: {command[0] if command else 'nsenter'}: {e.strerror}\n")
            return 127 if isinstance(e, FileNotFoundError) else 126
        status = _end_group(child, child, status)
    return _exit_like(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
