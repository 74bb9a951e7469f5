# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""Where the role isolated_service builds its wheels (roles/isolated_service/tasks/wheels_build.yml), so
that the cache holds a finished build or none: a scratch directory beside the wheels' directory
(``CACHE/.building-PID-XXXXXXXX``, PID the controller's), in whose ``wheels/`` the build writes and marks
itself finished, which is then renamed into place whole. Of two builds of the same wheels at once, the
first to finish is kept and the other's is removed with its scratch. The scratch of a build that was
killed (Ctrl-C or a kill of ansible-playbook: its ``always`` never ran) is removed by the next build."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile

from ansible_collections.pyforkexec.isolation.plugins.plugin_utils import wheel_sources, writers

PREFIX = ".building-"
BUILDING = re.compile(r"\.building-(?P<pid>[0-9]{1,7})-.+")
WHEELS = "wheels"  # in the scratch: what becomes the wheels' directory


def _discard(path: str, scratch: str) -> None:
    """Removes the directory ``path`` of the cache after renaming it into ``scratch`` (its own name
    there), so that no rename of the directory can happen while it is half removed, and a removal
    killed midway leaves it in a scratch that a later build sweeps."""
    aside = tempfile.mkdtemp(prefix="discarded-", dir=scratch)
    with contextlib.suppress(FileNotFoundError):  # another build took it first
        os.rename(path, os.path.join(aside, "it"))
    shutil.rmtree(aside, ignore_errors=True)


def begin(cache: str, pid: int) -> str:
    """A new scratch directory in ``cache`` for a build by the process ``pid``, after removing the
    scratches of builds whose process ended."""
    os.makedirs(cache, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=f"{PREFIX}{pid}-", dir=cache)
    for name in writers.of_ended(cache, BUILDING):
        _discard(os.path.join(cache, name), scratch)
    return scratch


def _renamed(built: str, wheels: str) -> bool | None:
    """True once renamed; False when a finished build is there; None when an unfinished one is."""
    try:
        os.rename(built, wheels)
    except OSError as e:
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        return False if wheel_sources.finished(wheels) else None
    return True


def finish(scratch: str, wheels: str) -> bool:
    """Renames the finished build of ``scratch`` to ``wheels``; False when another build of them
    finished first (theirs is kept, ours is left in the scratch). A directory there without the mark is
    a build of an older role, which wrote in place, killed midway: it is replaced by ours."""
    built = os.path.join(scratch, WHEELS)
    if not wheel_sources.finished(built):
        raise ValueError(f"{built} holds no finished build (no {wheel_sources.COMPLETE})")
    renamed = _renamed(built, wheels)
    if renamed is None:
        _discard(wheels, scratch)
        renamed = _renamed(built, wheels)
        if renamed is None:
            raise OSError(errno.ENOTEMPTY, f"{wheels}: an unfinished build came back after its removal")
    return renamed
