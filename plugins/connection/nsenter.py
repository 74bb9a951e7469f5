# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
name: nsenter
short_description: Run tasks inside the namespaces of a pyforkexec service or of a process
version_added: 0.1.0
description:
  - Runs Ansible's commands, and copies files, inside the namespaces of a running process on the machine
    that runs Ansible, with the C(nsenter) command of util-linux, the way C(community.docker.docker)
    reaches a container.
  - The target is a service of M(pyforkexec.isolation.service), by name (its process, the child of the
    launcher or of the pyforkexec daemon), or any process, by pid.
  - Files go through the same namespaces (C(dd) inside them), so they land in the target's mount namespace
    and new root, owned as the target's user namespace sees it.
  - The target's namespaces, root and working directory are opened once per task, when it connects, and
    every command of the task enters those (C(nsenter --net=/proc/PID/fd/N ...)), never whatever process
    holds the target's pid later. Once the target has ended, a command fails as unreachable instead of
    running (a restarted service is reached again by the next task). A service's process is looked up
    again once it is pinned, and must have started its program (a launcher's child still being set up
    may be in the host's namespaces), else the task is unreachable too.
  - A namespace asked for in O(namespaces) that is this host's own (there is nothing to enter), or by
    default a target with none of its own mount, net, pid or ipc namespace (a user namespace alone), is
    refused, as the task would run on the host.
  - None of those files stays open in a command; a command interrupted (the task's C(timeout),
    a Ctrl-C) is killed with what it started (not what left for a session or process group of its
    own), even one that ignores SIGINT. Each command runs in a process group of its own, which a
    small guard process (Python's standard library alone) sends SIGINT (as Ansible's worker does to its
    own, a module then cleans up), then SIGTERM, then SIGKILL, a few seconds apart while some of it
    runs, once Ansible's worker is gone (or the task's timeout came, which then also kills what is left
    below the command, out of its group). A file put or fetched replaces the destination only once it
    came whole, and an interrupted transfer leaves no part of it behind.
  - Ansible's remote temporary directory defaults to the target's own C(/tmp) (inside its mount namespace)
    instead of C(~/.ansible/tmp), which root mapped into a user namespace, or a read-only root, cannot
    write. Set C(ansible_remote_tmp) (or C(remote_tmp) in C(ansible.cfg)) to choose another one.
  - To check a service from inside, run the play on the host itself (C(connection=local)) and
    C(delegate_to) an inventory host that uses this connection, or add one with M(ansible.builtin.add_host).
author:
  - pyforkexec developers (@pyforkexec)
requirements:
  - C(nsenter) (util-linux) where Ansible runs, and root there
  - A POSIX shell, C(dd) (with C(conv=excl) and C(oflag=nofollow), as GNU coreutils' has them), C(mv),
    C(rm) and C(/dev/null) in the target's filesystem (Ansible removes its temporary files with C(rm) and
    sends output to C(/dev/null)), and Python for modules
  - "A C(/tmp) in the target that its root (mapped root, with a user namespace) can write: the host's, a
    O(pyforkexec.isolation.service#module:mounts) entry V({type: tmpfs, target: /tmp}), or a directory given
    as C(ansible_remote_tmp)"
options:
  remote_addr:
    description:
      - The service name or the pid. A pid is ASCII digits alone, with no sign, space or leading zero; a
        service's name is never digits alone.
    type: str
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_nsenter_target
  manager:
    description:
      - Where to look a service name up; V(auto) tries the pyforkexec daemon's pid file, then systemd.
    type: str
    choices: [auto, systemd, direct]
    default: auto
    vars:
      - name: ansible_nsenter_manager
  namespaces:
    description:
      - The namespaces to enter; all of the target's by default (its user namespace only if it differs).
        Each one listed must be the target's own, not this host's; an empty list is refused.
    type: list
    elements: str
    choices: [user, pid, net, mount, uts, ipc, cgroup, time]
    vars:
      - name: ansible_nsenter_namespaces
  nsenter_exe:
    description:
      - The nsenter program.
    type: str
    default: nsenter
    env:
      - name: ANSIBLE_NSENTER_EXE
    vars:
      - name: ansible_nsenter_exe
  executable:
    description:
      - The shell commands run with, inside the target.
    type: str
    default: /bin/sh
    ini:
      - section: defaults
        key: executable
    env:
      - name: ANSIBLE_EXECUTABLE
    vars:
      - name: ansible_executable
"""

EXAMPLES = r"""
- name: Check a service from inside its namespaces
  hosts: localhost
  connection: local
  tasks:
    - name: Reach the service "web" as an inventory host
      ansible.builtin.add_host:
        name: web
        ansible_connection: pyforkexec.isolation.nsenter
        ansible_python_interpreter: /usr/bin/python3

    - name: Its hostname, from inside its UTS namespace
      ansible.builtin.command: hostname
      delegate_to: web
      register: inside
      changed_when: false

    - name: Its addresses
      ansible.builtin.command: ip -brief address
      delegate_to: web
      changed_when: false
"""

import contextlib
import errno
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible.plugins.connection import BUFSIZE, ConnectionBase
from ansible.utils.display import Display
from ansible_collections.pyforkexec.isolation.plugins.module_utils import affinity, pidfds, service_paths
from ansible_collections.pyforkexec.isolation.plugins.module_utils.ns_target import (
    Captured,
    NotIsolated,
    TargetGone,
)
from ansible_collections.pyforkexec.isolation.plugins.plugin_utils import nsenter_guard

display = Display()

# Where Ansible makes its temporary directories inside the target unless remote_tmp is configured:
# the shell's own default, ~/.ansible/tmp, is the host's /root/.ansible/tmp seen from inside, which
# the root of a user namespace (an unprivileged uid outside) or a read-only root cannot create.
# /tmp is world-writable, or the target's private tmpfs; Ansible makes a fresh mode-0700 directory in it.
TARGET_REMOTE_TMP = "/tmp"


def _tree(pid, stop):
    """pidfds of ``pid`` (our child) and of every process below it, parents before their children
    ({} once it was reaped: its number may be another's). Each through a pidfd confirmed to be its
    parent's child (pidfds.child_pidfd): a process found in /proc may exit and be reaped (by a parent
    not stopped yet, or one that ignores SIGCHLD) before it is signalled, and its number be another's
    by then. ``stop``: each is stopped (SIGSTOP) as it is found, round by round until a round finds
    none it had not (a stopped process forks no more, and keeps what it forked below it: one killed
    right after a fork would hand its new child to the target's init, out of reach); else one look."""
    root = pidfds.child_pidfd(pid, os.getpid())
    if root is None:
        return {}
    tree = {pid: root}
    try:
        if stop:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(root, signal.SIGSTOP)
        for _round in range(100 if stop else 1):
            found, parents = False, list(tree)
            while parents:  # a child found is stopped, then looked into in the same round
                parent = parents.pop(0)
                for child in service_paths.children(parent):
                    fd = None if child in tree else pidfds.child_pidfd(child, parent, tree[parent])
                    if fd is None:
                        continue
                    tree[child], found = fd, True
                    parents.append(child)
                    if stop:
                        with contextlib.suppress(ProcessLookupError):
                            signal.pidfd_send_signal(fd, signal.SIGSTOP)
            if not found:
                break
    except BaseException:
        _release(tree)
        raise
    return tree


def _kill(tree):
    """SIGKILL to each process of ``tree`` (_tree) still there, children first; the pidfds closed."""
    try:
        for fd in reversed(tree.values()):
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
    finally:
        _release(tree)


def _release(tree):
    for fd in tree.values():
        os.close(fd)


def _kill_tree(pid):
    """SIGKILL ``pid`` (our child) and every process below it, all stopped first (_tree). One that left
    for a session of its own and was handed to an init is no longer below it."""
    _kill(_tree(pid, stop=True))


def _part_name():
    """The name of a put's new file beside its destination: not known in the target beforehand (a
    process there could read it from the shell's command line once the put runs, which the exclusive
    create of the file turns into a failed put, not a write through what it planted there)."""
    return f".nsenter-put-{os.urandom(8).hex()}"


def _umask():
    """This process's umask, as /proc shows it (os.umask can only read it by changing it)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))


class _Part:
    """The new file a fetch writes, which takes the place of ``dest`` once it came whole (``install``):
    a transfer that fails, or is interrupted, leaves the destination as it was, and nothing else.

    An anonymous file in ``dest``'s directory (O_TMPFILE), which vanishes with this process however it
    ends (Ansible's worker leaves on a Ctrl-C by os._exit: no exception, no ``finally``), linked in only
    once whole. Where the filesystem has no O_TMPFILE, a named file beside the destination, removed on
    an exception (one a Ctrl-C leaves behind)."""

    def __init__(self, dest):
        self.dest = dest
        self.dir = os.path.dirname(dest) or b"."
        self.name = None  # the named file's, without O_TMPFILE
        try:
            self.fd = os.open(self.dir, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EISDIR):  # EISDIR: a kernel without O_TMPFILE
                raise
            self.fd, self.name = tempfile.mkstemp(prefix=b".nsenter-fetch-", dir=self.dir)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        os.close(self.fd)
        if kind is not None and self.name is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.name)

    def install(self):
        """Give the file the destination's name, with the mode a new file gets here (0666 less the
        umask): linked there, or, the name being taken, linked under a temporary name that then
        replaces it (rename: atomic)."""
        os.fchmod(self.fd, 0o666 & ~_umask())
        if self.name is not None:
            os.replace(self.name, self.dest)
            return
        # linkat(AT_SYMLINK_FOLLOW) of the fd's /proc link: os.link uses it only given a directory fd
        # (plain link(2) would link the /proc link itself: EXDEV).
        anonymous, base = f"/proc/self/fd/{self.fd}", os.path.basename(self.dest)
        at = os.open(self.dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            try:
                os.link(anonymous, base, dst_dir_fd=at, follow_symlinks=True)
                return
            except FileExistsError:
                pass
            for _attempt in range(100):
                name = f".nsenter-fetch-{os.urandom(6).hex()}".encode()
                try:
                    os.link(anonymous, name, dst_dir_fd=at, follow_symlinks=True)
                except FileExistsError:
                    continue
                try:
                    os.replace(name, base, src_dir_fd=at, dst_dir_fd=at)
                except BaseException:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(name, dir_fd=at)
                    raise
                return
            raise FileExistsError(errno.EEXIST, "no temporary name is free", self.dir)
        finally:
            os.close(at)


class Connection(ConnectionBase):
    """Commands and files inside the namespaces of a local process, through nsenter(1)."""

    transport = "pyforkexec.isolation.nsenter"
    has_pipelining = True
    has_tty = False
    default_user = "root"

    def __init__(self, play_context, new_stdin, *args, **kwargs):
        super().__init__(play_context, new_stdin, *args, **kwargs)
        self.pid = None
        self.nsenter = None
        self.target = None  # its namespaces, root and working directory, open (ns_target.Captured)
        # Ansible sets the shell's options after this connection's, for each task, and reads remote_tmp
        # before it runs any command here: the default is replaced as the shell's options are set.
        set_shell_options = self._shell.set_options

        def set_options(*args, **kwargs):
            set_shell_options(*args, **kwargs)
            if self._shell.get_option_and_origin("remote_tmp")[1] == "default":
                self._shell.set_option("remote_tmp", TARGET_REMOTE_TMP)

        self._shell.set_options = set_options

    def _connect(self):
        if self._connected:
            return self
        if os.geteuid() != 0:
            raise AnsibleConnectionFailure("the nsenter connection needs root where Ansible runs")
        exe = self.get_option("nsenter_exe")
        # A path as it is (absolute, or with a "/": from the working directory), a name from PATH:
        # either way an executable file here, or the task fails naming the option before anything runs
        # (else the guard's exec failure would surface as Ansible's "Failed to create temporary directory").
        self.nsenter = shutil.which(exe) if exe else None
        if not self.nsenter:
            raise AnsibleConnectionFailure(f"nsenter: nsenter_exe: {exe!r} is not an executable file here "
                                           "(a path, or a name found in PATH): install util-linux, or name "
                                           "its nsenter")
        if not self.get_option("executable"):
            raise AnsibleConnectionFailure("nsenter: executable: empty: it names the shell commands run "
                                           "with, inside the target (/bin/sh by default)")
        target, manager = self.get_option("remote_addr"), self.get_option("manager")
        kinds = self.get_option("namespaces")
        if kinds is not None and not kinds:
            raise AnsibleConnectionFailure("nsenter: namespaces: an empty list enters nothing: leave the "
                                           "option out to enter all of the target's")
        try:
            self.pid = service_paths.resolve_pid(target, manager)
            # A service's process is looked up again once it is pinned: the pid must still be its.
            confirm = None if service_paths.is_pid(target) else (
                lambda: service_paths.resolve_pid(target, manager))
            # Opened once: every command of the task enters these, even if the pid goes to another
            # process meanwhile (ns_target.py).
            self.target = Captured(self.pid, kinds, confirm)
        except (service_paths.ServiceError, TargetGone, NotIsolated, OSError) as e:  # OSError: /proc refused
            raise AnsibleConnectionFailure(f"nsenter: {e}") from None
        display.vvv(f"NSENTER TARGET PID {self.pid}", host=target)
        self._connected = True
        return self

    def _argv(self, cmd):
        return [self.nsenter, *self.target.options(), "--", self.get_option("executable"), "-c", cmd]

    def _popen(self, cmd, stdin=subprocess.PIPE):
        try:
            self.target.check()
        except TargetGone as e:
            raise AnsibleConnectionFailure(f"nsenter: {e}: nothing runs in its place") from None
        argv = self._argv(cmd)
        display.vvv(f"EXEC {argv}", host=self.get_option("remote_addr"))
        # nsenter runs under nsenter_guard, in a process group of its own that the guard kills once
        # this worker is gone: Ansible's worker, on a Ctrl-C, only passes SIGINT on to its own group
        # and exits (no exception runs here then), which a command ignoring SIGINT would outlive in
        # the target. nsenter opens the files through this process's /proc entry (Captured.options),
        # so that none of them stays open in the command, holding the target's namespaces after the
        # play.
        guard = [sys.executable, "-I", "-S", nsenter_guard.__file__, str(os.getpid()), *argv]
        with affinity.of_process(self.pid):
            return subprocess.Popen([to_bytes(a, errors="surrogate_or_strict") for a in guard], stdin=stdin,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    @staticmethod
    def _communicate(p, in_data=None, gently=False):
        """p.communicate(); on an exception here (a task's timeout) nsenter and what it started in the
        target (its descendants) are killed and reaped before the exception goes on.

        ``gently``: first stopped as on a Ctrl-C (the guard's END_SIGNALS to the command's group, a few
        seconds apart), and waited for, so that a put's shell runs its trap, which removes the new
        file, and a module its finally blocks, which remove its payload directory and temporary files:
        a SIGKILL alone leaves them in the target."""
        try:
            return p.communicate(in_data)
        except BaseException:
            Connection._stop(p, gently)
            raise

    @staticmethod
    def _stop(p, gently=False):
        """Kill nsenter and what it started in the target (``gently``: see _communicate), and reap it."""
        # What is below it now, held: a process that left the command's group (setsid) gets none of the
        # guard's signals, and once its parent has ended it is an init's, out of _kill_tree's reach.
        below = _tree(p.pid, stop=False) if gently else {}
        try:
            try:
                if gently:
                    p.send_signal(signal.SIGTERM)  # the guard's; it stops the command's group and exits
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        p.wait(len(nsenter_guard.END_SIGNALS) * nsenter_guard.GRACE + 1)
            finally:
                _kill(below)
        finally:
            _kill_tree(p.pid)  # what is still there (below it, out of its group); none once reaped
            p.communicate()  # what is left in the pipes: nothing writes to them any more

    def exec_command(self, cmd, in_data=None, sudoable=False):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        p = self._popen(cmd)
        stdout, stderr = self._communicate(p, in_data, gently=True)  # a module cleans up on SIGINT
        return p.returncode, stdout, stderr

    @staticmethod
    def _absolute(path):
        # As the chroot connection does: a relative path is taken from /, the target may have no $HOME.
        return os.path.normpath(os.path.join(os.path.sep, path))

    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        out_path = self._absolute(out_path)
        display.vvv(f"PUT {in_path} TO {out_path}", host=self.get_option("remote_addr"))
        out = shlex.quote(out_path)
        # Into a new file beside the destination, which takes its place once it came whole: a transfer
        # that fails, or is stopped (the guard's SIGINT, nsenter_guard.py), leaves the destination as it
        # was and removes that new file; only a SIGKILL before the trap runs leaves it. SIGPIPE is ignored:
        # stopped because the worker is gone, with its end of the shell's stderr, the shell would die of
        # it writing its report of dd's death ("Terminated"), before its trap runs.
        # The new file is created by this put or the put fails (conv=excl: O_EXCL, which no symlink
        # passes, nor anything else already there), then written without following a link (oflag=
        # nofollow); made is unset when that create fails, and then nothing is removed: what a process in
        # the target put there first (a link to a file of its choice, which dd of= followed) is left alone.
        part = shlex.quote(os.path.join(os.path.dirname(out_path), _part_name()))
        # The trap's action quoted as one word: the quoted path put inside quotes again would be split (a
        # directory "a b": "rm -f .../a") or expanded ("$(...)" run) as the trap is set.
        remove = shlex.quote(f"if [ -n \"$made\" ]; then rm -f {part}; fi; exit 1")
        # mv onto a directory (or a link to one) would move the file into it, under its temporary name,
        # and succeed: refused, as a copy onto a directory is.
        said = shlex.quote(f"{out_path}: is a directory")
        is_dir = f"if [ -d {out} ]; then printf '%s\\n' {said} >&2; exit 1; fi"
        try:
            with open(to_bytes(in_path, errors="surrogate_or_strict"), "rb") as src:
                st = os.fstat(src.fileno())
                # count=0 for an empty file only: a pipe's or a device's size says nothing of what it holds
                count = " count=0" if stat.S_ISREG(st.st_mode) and not st.st_size else ""
                p = self._popen(f"made=; trap '' PIPE; trap {remove} HUP INT TERM; {is_dir}; made=1; "
                                f"dd if=/dev/null of={part} conv=excl oflag=nofollow count=0 "
                                f"|| {{ made=; exit 1; }}; "
                                f"dd of={part} bs={BUFSIZE}{count} conv=notrunc oflag=nofollow "
                                f"&& mv -f {part} {out} || {{ rm -f {part}; exit 1; }}", stdin=src)
                stdout, stderr = self._communicate(p, gently=True)
        except OSError as e:
            raise AnsibleError(f"failed to transfer {in_path} to {out_path}: {to_native(e)}") from e
        if p.returncode != 0:
            raise AnsibleError(f"failed to transfer {in_path} to {out_path}:\n{to_native(stdout)}\n"
                               f"{to_native(stderr)}")

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        in_path = self._absolute(in_path)
        display.vvv(f"FETCH {in_path} TO {out_path}", host=self.get_option("remote_addr"))
        dest = to_bytes(out_path, errors="surrogate_or_strict")
        try:
            part = _Part(dest)
        except OSError as e:
            raise AnsibleError(f"failed to transfer {in_path} to {out_path}: {to_native(e)}") from e
        with part:
            with os.fdopen(part.fd, "wb", closefd=False) as dst:
                p = self._popen(f"dd if={shlex.quote(in_path)} bs={BUFSIZE}")
                try:
                    shutil.copyfileobj(p.stdout, dst, BUFSIZE)
                except BaseException:
                    # Stopped here (a task's timeout, a write error), not waited for: communicate() would
                    # read the rest into memory, as long as the source gives (a FIFO, a growing log), and
                    # the timeout would not end the transfer.
                    self._stop(p)
                    raise
                stdout, stderr = self._communicate(p)
            if p.returncode != 0:
                raise AnsibleError(f"failed to transfer {in_path} to {out_path}:\n{to_native(stdout)}\n"
                                   f"{to_native(stderr)}")
            try:
                part.install()
            except OSError as e:  # a directory there, a full disk: a transfer that failed, as the above
                raise AnsibleError(f"failed to transfer {in_path} to {out_path}: {to_native(e)}") from e

    def reset(self):
        """What is pinned is let go (meta: reset_connection): the next command looks the target up and
        pins it again, as a new task does. (ConnectionBase's only warns that reset is not implemented.)"""
        self.close()

    def close(self):
        super().close()
        if self.target is not None:
            self.target.close()
            self.target = None
        self._connected = False
