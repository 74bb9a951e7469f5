# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""The files modules write on the managed host: compared, written atomically, removed, with the
``actions`` lines and ``--diff`` entries of the run, and nothing touched in check mode.

Shared by the service module (spec, unit) and the netns module (persisted options, template unit).
"""

from __future__ import annotations

import os


def read(path):
    """The file's text, None when it does not exist."""
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def write(module, path, text, mode):
    """Write ``text`` atomically: a temporary file in the same directory, on disk before it is renamed
    over ``path`` (a crash leaves the old file or the new one, never an empty one), and removed if the
    writing fails (a full disk)."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    module.atomic_move(tmp, path)
    os.chmod(path, mode)


class Files:
    """The file changes of one module run: ``actions`` ("write PATH", "remove PATH") and ``diff``."""

    def __init__(self, module, actions=None, diff=None):
        self.module = module
        self.actions = [] if actions is None else actions
        self.diff = [] if diff is None else diff

    def sync(self, path, text, mode):
        """Write ``path`` when its text differs; whether it did (or would, in check mode)."""
        old = read(path)
        if old == text:
            return False
        self.actions.append(f"write {path}")
        self.diff.append(dict(before_header=path, before=old or "", after_header=path, after=text))
        if not self.module.check_mode:
            write(self.module, path, text, mode)
        return True

    def remove(self, path, with_diff=True):
        """Remove ``path`` if it exists; whether it did (or would)."""
        if not os.path.lexists(path):
            return False
        self.actions.append(f"remove {path}")
        if with_diff:
            self.diff.append(dict(before_header=path, before=read(path) or "", after_header=path, after=""))
        if not self.module.check_mode:
            os.unlink(path)
        return True
