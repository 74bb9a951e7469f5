"""Which file runs: execvp's search of a program name in a PATH, the one lookup of the package.

``run()``, the service daemon and every CLI subcommand find their program here, so that a name means
the same file wherever it is given (as Go's ``exec.LookPath``, but with execvp's rules: a file found
but not executable is still the answer when nothing better exists, so that execve reports EACCES at
its step rather than ENOENT).
"""

from __future__ import annotations

import os
import stat
from typing import Optional


def find_program(name: str, path: Optional[str], root: str = "") -> Optional[str]:
    """execvp's search of ``name`` in ``path`` (inside ``root`` when given); None when not found.

    A name with a slash is used as is. As execvp does, a file found but not executable is returned
    when nothing better exists, so that execve reports EACCES rather than ENOENT.
    """
    if "/" in name:
        return name
    denied = None
    for d in (path if path is not None else os.defpath).split(os.pathsep):
        candidate = os.path.join(d or ".", name)
        try:
            st = os.stat(os.path.join(root, candidate.lstrip("/")) if root else candidate)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        if os.access(os.path.join(root, candidate.lstrip("/")) if root else candidate, os.X_OK):
            return candidate
        denied = denied or candidate
    return denied
