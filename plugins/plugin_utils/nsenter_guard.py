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
- once the worker is gone (or this program is told to stop: SIGHUP, SIGINT, SIGTERM), sends SIGINT to
  that group (as the worker does to its own: a module cleans up then, a put_file's shell removes its
  part file), SIGTERM to what is left of it GRACE seconds later, and SIGKILL once it emptied, or
  GRACE seconds after that (END_SIGNALS). What left the group (its own session, or group) is no
  longer reached. NSENTER is reaped last, after these: until its reap its pid, the group's id, stays
  its own even once it exited, where a group kill after the reap could reach a group a process given
  the number made since.

If the worker is gone before NSENTER was started, nothing is started.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import sys
import time

GRACE = 3.0  # seconds given the command's group after each signal of END_SIGNALS but the last
# What the command's group is sent, in turn, each once the one before left some of it running GRACE
# seconds: first the SIGINT that Ansible's worker passes on to its own group on a Ctrl-C (which a
# command on the host, the local connection's, gets): a Python module (AnsiballZ) then runs its
# finally blocks, removing its payload directory and the temporary file of a move it was making,
# which SIGTERM, killing Python at once, left in the target. Then SIGTERM, for what ignores SIGINT
# (what a shell starts in the background does), then SIGKILL.
END_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
POLL = 0.05  # seconds between looks, where there is no pidfd to wait on
STOP_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM)


class Stop(Exception):
    """A stop signal came to this program."""


_stopping = False  # set by the first Stop, and once the command ended: a stop signal changes nothing


def _stop(signum, frame):
    global _stopping
    if not _stopping:
        _stopping = True
        raise Stop()


def _pidfd(pid):
    """A pidfd of ``pid``, or None where the kernel has none (ENOSYS)."""
    try:
        return os.pidfd_open(pid)
    except OSError as e:
        if e.errno == errno.ENOSYS:
            return None
        raise


def _exited(child):
    """Whether ``child`` (ours) has exited, without reaping it (WNOWAIT): see _end_group."""
    return os.waitid(os.P_PID, child, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _alone(leader):
    """Whether the process group ``leader`` (our child) leads holds nothing but it, exited. Others
    are looked for in /proc (zombies count): the exited leader, unreaped, keeps the group's id
    in use, so a signal 0 to the group always finds it."""
    if not _exited(leader):
        return False
    group = _in_proc(leader)  # the group's id as /proc numbers it, as it gives each process's group
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == group:
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                pgrp = int(f.read().rsplit(")", 1)[1].split()[2])
        except (OSError, IndexError, ValueError):  # gone meanwhile
            continue
        if pgrp == group:
            return False
    return True


def _in_proc(child):
    """The number /proc gives ``child`` (ours, unreaped: its pid stays its own): its pid where /proc is
    this PID namespace's; else its pidfd's fdinfo Pid, /proc's number for it. (/proc may be an ancestor
    namespace's: a container that kept the host's, where this pid is another process's number. The
    same as the collection's pidfds.proc_number, which this program, run alone, cannot import.)"""
    try:
        if os.readlink("/proc/self") == str(os.getpid()):
            return child
        fd = os.pidfd_open(child)
    except OSError:  # no pidfds (Linux < 5.3): the pid as it is
        return child
    try:
        with open(f"/proc/self/fdinfo/{fd}", "rb") as info:
            return int(next((x for x in info if x.startswith(b"Pid:")), b"Pid: -1").split()[1])
    finally:
        os.close(fd)


def _end_group(child):
    """END_SIGNALS to the process group ``child`` (our child) leads, each but the first once what
    came before left more than the exited ``child`` in it GRACE seconds; SIGKILL as soon as nothing
    else is left. ``child`` is not reaped here (the caller reaps it
    once this returned): until then its pid, the group's id, cannot be another's, even once it exited;
    a kill of the group by that number after the reap could reach a group that a process given the
    number made meanwhile."""
    global _stopping
    _stopping = True  # a second stop signal changes nothing
    for sig in END_SIGNALS:
        try:
            os.killpg(child, sig)
        except ProcessLookupError:  # the child left the group it made, which emptied
            return
        deadline = time.monotonic() + GRACE
        settled = _exited if sig == signal.SIGKILL else _alone  # SIGKILL: no need to wait for the rest
        while not settled(child) and time.monotonic() < deadline:
            time.sleep(POLL)


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
    global _stopping
    worker, command = int(argv[1]), argv[2:]
    child = None
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
            if (mine is None or mine in ready) and _exited(child):  # reaped below, after any group kill
                break
        _stopping = True  # the command ended: a stop signal from here on changes nothing
    except Stop:
        if child is None:
            return 1
        _end_group(child)
    except OSError as e:
        if child is None:
            sys.stderr.write(f"nsenter connection: {command[0] if command else 'nsenter'}: {e.strerror}\n")
            return 127 if isinstance(e, FileNotFoundError) else 126
        _end_group(child)
    return _exit_like(os.waitpid(child, 0)[1])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
