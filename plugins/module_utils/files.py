# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""The files modules write on the managed host: compared, written atomically, removed, with the
``actions`` lines and ``--diff`` entries of the run, and nothing touched in check mode.

Shared by the service module (spec, unit) and the netns module (persisted options, template unit).
"""

from __future__ import annotations

import contextlib
import os
import stat


def read(path):
    """The file's text, None when it does not exist."""
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def write(path, text, mode):
    """Write ``text`` atomically, with ``mode`` from the start: a temporary file in the same directory,
    made with that mode (a secret in it is never readable by others, not even for a moment), on disk
    before it is renamed over ``path`` (a crash leaves the old file or the new one, never an empty
    one), and removed if the writing fails (a full disk). Not AnsibleModule.atomic_move: it gives a
    new file the umask's mode (0644) after the rename, and an existing one its old mode."""
    from pyforkexec._signals import ending_blocked, held  # pylint: disable=import-outside-toplevel

    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    # A Ctrl-C or SIGTERM meanwhile would leave the temporary file (and its fd, or the directory's):
    # the signals that end a run (their Python handlers, and their default actions) wait for the few
    # calls this takes, and act once it is written.
    with held(), ending_blocked():
        sweep_stale(path)  # left by killed runs (this pid's included)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode & 0o600)
        try:
            try:
                f = os.fdopen(fd, "w")
            except BaseException:
                os.close(fd)  # (fdopen failed: the fd is still ours alone)
                raise
            with f:
                os.fchmod(f.fileno(), mode)  # what the umask took off
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)  # the rename itself on disk
        finally:
            os.close(dir_fd)


def sweep_stale(path):
    """Remove the temporary files of ``path`` (PATH.tmp-PID) that runs killed outright (SIGKILL, the OOM
    killer, a crash: nothing of theirs ran to remove it) left behind: those of a pid that no process has
    now, or this one's. Without this, one stayed for good beside the file, even once that was removed
    (state=absent), with the text it was being written with (a spec's secrets)."""
    directory, base = os.path.split(path)
    prefix = f"{base}.tmp-"
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for entry in names:
        pid = entry[len(prefix):]
        if not (entry.startswith(prefix) and pid.isascii() and pid.isdigit()):
            continue
        if int(pid) != os.getpid() and _alive(int(pid)):
            continue  # (a run writing it now)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(directory, entry))


def _alive(pid):
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # (OverflowError: above any pid)
        return False
    except PermissionError:
        return True
    return True


def mode_of(path):
    """The permission bits of ``path``, None when it does not exist."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None


class Files:
    """The file changes of one module run: ``actions`` ("write PATH", "remove PATH") and ``diff``."""

    def __init__(self, module, actions=None, diff=None):
        self.module = module
        self.actions = [] if actions is None else actions
        self.diff = [] if diff is None else diff

    def sync(self, path, text, mode):
        """Write ``path`` when its text differs, or set its mode when only that differs; whether its
        text was (or would be, in check mode) written: a mode put back changes no reader's input (the
        action and diff still say it)."""
        old = read(path)
        if old == text:
            had = mode_of(path)
            if had == mode:
                return False
            self.actions.append(f"chmod {mode:04o} {path}")
            self.diff.append(dict(before_header=f"{path} (mode)", before=f"{had:04o}\n",
                                  after_header=f"{path} (mode)", after=f"{mode:04o}\n"))
            if not self.module.check_mode:
                os.chmod(path, mode)
            return False
        self.actions.append(f"write {path}")
        self.diff.append(dict(before_header=path, before=old or "", after_header=path, after=text))
        if not self.module.check_mode:
            write(path, text, mode)
        return True

    @staticmethod
    def differ(files):
        """Whether the text of any of ``files`` ({path: (text, mode)}) differs from what is on disk."""
        return any(read(path) != text for path, (text, _mode) in files.items())

    def remove(self, path, with_diff=True):
        """Remove ``path`` if it exists; whether it did (or would). A temporary file of it that a killed
        run left goes too (sweep_stale)."""
        if not self.module.check_mode:
            sweep_stale(path)
        if not os.path.lexists(path):
            return False
        self.actions.append(f"remove {path}")
        if with_diff:
            self.diff.append(dict(before_header=path, before=read(path) or "", after_header=path, after=""))
        if not self.module.check_mode:
            os.unlink(path)
        return True
