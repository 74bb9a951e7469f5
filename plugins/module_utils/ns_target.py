# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""A process's namespaces, root and working directory, held open: what the nsenter connection enters.

``nsenter --target=PID`` opens ``/proc/PID/ns/*`` anew for every command, and a task runs several
through its connection (its temporary directory, the module, the clean-up). Should the target end
between them and its pid go to another process, perhaps one of the host's, the next command would run
in that one's namespaces: on the host, for all the task knows. So the connection opens them once, when
it connects (``Captured``), checks that the target was still the same process once they were open,
and gives nsenter the open files (``--net=/proc/self/fd/N``, ``--root=/proc/self/fd/M``...), after
checking again before each command that the target still runs (``Captured.check``). A target that has
ended fails the command instead of running it anywhere.
"""

from __future__ import annotations

import errno
import os
import select

from ansible_collections.pyforkexec.isolation.plugins.module_utils import pidfds

# nsenter option -> the file's name in /proc/PID/ns, in nsenter's own order
KINDS = {"user": "user", "cgroup": "cgroup", "ipc": "ipc", "uts": "uts", "net": "net", "pid": "pid",
         "mount": "mnt", "time": "time"}


# The namespaces that keep what a command reaches from the host's: a target with none of them of its
# own (a user namespace alone, or with uts) runs in the host's files, network and processes.
RESOURCES = ("mount", "net", "pid", "ipc")


class TargetGone(Exception):
    """The target process has ended (or could not be opened): nothing may run in its place."""


class NotIsolated(Exception):
    """A namespace to enter is this host's own (the caller's): a command would run on the host."""


def stat_field(pid, n):
    """Field ``n`` of /proc/PID/stat counted after the command's name (0: the state, 1: the ppid)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[n]
    except (FileNotFoundError, ProcessLookupError):
        raise TargetGone(f"process {pid} has ended") from None


def not_exec_yet(pid, pidfd=None):
    """Whether process ``pid`` still runs its parent's program image: a launcher's child before its
    execve shares (or copied) the parent's memory, so it shows the parent's command line (or none yet,
    just made), and may not be in all its namespaces yet, nor have its hostname. One that has exited
    (a zombie: its command line is empty too, until its parent reaps it) has ended: TargetGone, which
    says so of one whose main thread alone exited, if ``pidfd`` pins it (main_thread_gone)."""
    if stat_field(pid, 0) == b"Z":
        if main_thread_gone(pid, pidfd):
            raise TargetGone(f"process {pid}: {MAIN_THREAD_GONE}")
        raise TargetGone(f"process {pid} has ended")
    ppid = int(stat_field(pid, 1))
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            mine = f.read()
        with open(f"/proc/{ppid}/cmdline", "rb") as f:
            theirs = f.read()
    except (FileNotFoundError, ProcessLookupError):
        raise TargetGone(f"process {pid} has ended") from None
    return not mine or mine == theirs


# Said of a process whose first thread has ended (pthread_exit) while others run on: the kernel shows
# it as a zombie in /proc/PID/stat, with no /proc/PID/ns/* (but user and pid), root or cwd.
MAIN_THREAD_GONE = ("its main thread has exited (its other threads run on), and the kernel shows its "
                    "namespaces no more")


def main_thread_gone(where, pidfd):
    """Whether the process /proc numbers ``where``, pinned by ``pidfd`` (None: not pinned, False),
    runs on though its main thread has exited (MAIN_THREAD_GONE), rather than having ended."""
    if pidfd is None or select.select([pidfd], [], [], 0)[0]:  # readable: the whole process has ended
        return False
    try:
        return stat_field(where, 0) == b"Z"
    except TargetGone:
        return False


def thread_said(pid):
    """What is wrong with ``pid``, the id of a thread (pidfds.thread_of), as a target."""
    leader = pidfds.thread_of(pid)
    of = f" of process {leader}" if leader else ""
    return f"{pid} is the id of a thread{of}, not of a process: give the process's pid"


def open_pidfd(pid):
    """A pidfd pinning process ``pid`` (a number of this PID namespace), or None on a kernel without
    pidfds (Linux < 5.3). TargetGone when no process has that number, or it is a thread's id."""
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        raise TargetGone(f"no process {pid}") from None
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.EINVAL) and pidfds.thread_of(pid) is not None:
            raise TargetGone(thread_said(pid)) from None
        if e.errno == errno.ENOSYS:
            return None
        raise


def has_ended(pidfd, where, started):
    """Whether the process pinned by ``pidfd`` has ended; without one (None), whether the process /proc
    numbers ``where``, started at ``started`` (its stat start time), has, or its number is another's."""
    if pidfd is not None:
        return bool(select.select([pidfd], [], [], 0)[0])  # a pidfd reads ready once its process ends
    try:
        return stat_field(where, 19) != started
    except TargetGone:
        return True


class Captured:
    """The namespaces ``kinds`` (None: all the target has, as ``nsenter --all`` enters them) of process
    ``pid``, its root and working directory, open. Raises TargetGone when it is not running.

    ``confirm``: for a pid looked up (a service's), a function that looks it up again; called once
    the process is pinned (its pidfd open), it must give the same pid, else the pid went to another
    process meanwhile. Such a process must also have exec'd its program: before that it is its
    launcher's copy, still being set up, perhaps still in the host's namespaces and root.

    NotIsolated when a namespace asked for is the caller's own, or (all by default) when the target
    has none of the RESOURCES namespaces of its own: a command would run on the host as though
    entered."""

    def __init__(self, pid, kinds=None, confirm=None):
        self.pid = pid
        self._proc = pid  # its number in /proc (_identify): /proc may be another PID namespace's
        self.fds = {}  # nsenter option -> open fd
        self._pidfd = None
        self._started = None  # its start time, where pidfds are not there (Linux < 5.3)
        try:
            self._identify()
            if confirm is not None:
                if confirm() != pid:
                    raise TargetGone(f"process {pid} ended while it was looked up")
                if not_exec_yet(self._proc, self._pidfd):
                    raise TargetGone(f"process {pid} is still being set up by its launcher (it has not "
                                     "started its program yet)")
            for kind in kinds or self._all_kinds():
                self.fds[kind] = self._open(f"ns/{KINDS[kind]}", os.O_RDONLY)
            self.fds["root"] = self._open("root", os.O_PATH | os.O_DIRECTORY)
            self.fds["wd"] = self._open("cwd", os.O_PATH | os.O_DIRECTORY)
            self.check()  # what was opened is the target's, not a later holder's of its pid
            self._check_isolated(explicit=bool(kinds))
        except BaseException:
            self.close()
            raise

    def _check_isolated(self, explicit):
        """NotIsolated unless the namespaces to enter are the target's own (see the class)."""
        own = []
        for kind in (k for k in self.fds if k in KINDS):
            theirs, ours = os.fstat(self.fds[kind]), os.stat(f"/proc/thread-self/ns/{KINDS[kind]}")
            if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino):
                own.append(kind)
        if explicit and own:
            raise NotIsolated(f"namespaces: {own[0]}: process {self.pid} is in this host's own {own[0]} "
                              "namespace: there is nothing to enter, a command would run in the host's")
        if not explicit and not any(k in self.fds and k not in own for k in RESOURCES):
            raise NotIsolated(f"process {self.pid} has none of its own {', '.join(RESOURCES)} namespaces: "
                              "a command would reach the host's files, network and processes")

    def _identify(self):
        """Pin the target (its pidfd) and find its number in /proc: ``pid`` is a number of this PID
        namespace, as pidfd_open and kill take it; /proc, read by number, may be an ancestor's."""
        self._pidfd = open_pidfd(self.pid)
        if self._pidfd is None:
            if pidfds.own_proc_number() != os.getpid():
                raise TargetGone(f"process {self.pid} cannot be found in /proc, which is of another PID "
                                 "namespace than this process's, without a pidfd (Linux 5.3)")
            self._started = self._start_time()
            return
        self._proc = pidfds.proc_number(self._pidfd)
        if self._proc <= 0:
            raise TargetGone(f"process {self.pid} " + ("has ended" if self._proc < 0 else "is not in /proc, "
                             "which is of a PID namespace that cannot see it"))

    def _start_time(self):
        return stat_field(self._proc, 19)  # field 22 of /proc/PID/stat

    def _all_kinds(self):
        """What ``nsenter --all`` enters: each namespace the target has, its user namespace only when it
        is not ours (setns refuses to enter one's own)."""
        kinds = [k for k, name in KINDS.items() if os.path.exists(f"/proc/{self._proc}/ns/{name}")]
        theirs, ours = os.stat(f"/proc/{self._proc}/ns/user"), os.stat("/proc/self/ns/user")
        if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino):
            kinds.remove("user")
        return kinds

    def _open(self, name, flags):
        try:
            return os.open(f"/proc/{self._proc}/{name}", flags | os.O_CLOEXEC)
        except (FileNotFoundError, ProcessLookupError):
            if main_thread_gone(self._proc, self._pidfd):
                raise TargetGone(f"process {self.pid}: {MAIN_THREAD_GONE}: nothing to enter") from None
            raise TargetGone(f"process {self.pid} has ended") from None

    def check(self):
        """Raise TargetGone unless the target is still the process these files were opened from."""
        if has_ended(self._pidfd, self._proc, self._started):
            raise TargetGone(f"process {self.pid} has ended")

    def options(self):
        """nsenter's options entering these files, which it opens through this process's /proc entry:
        a child that inherited them instead would keep them open in the command it runs (nsenter
        closes only what it opened). By this process's number in /proc, which /proc may give it in
        another PID namespace than its own (os.getpid() there is another process)."""
        here = pidfds.own_proc_number()
        return [f"--{option}=/proc/{here}/fd/{fd}" for option, fd in self.fds.items()]

    def close(self):
        for fd in [*self.fds.values(), self._pidfd]:
            if fd is not None:
                os.close(fd)
        self.fds, self._pidfd = {}, None
