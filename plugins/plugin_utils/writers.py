# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""The scratch files and directories the role's controller-side caches are written in, named after the
process that writes them, so that those of a writer killed before its rename (no ``finally`` ran) are
found and removed by a later one, and never those of a writer still running. A pid reused since only
delays that removal until its new process ends."""

from __future__ import annotations

import os
import re


def ended(pid: int) -> bool:
    """Whether no process ``pid`` runs (another user's runs: signalling it is refused)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def of_ended(directory: str, pattern: re.Pattern) -> list[str]:
    """The names in ``directory`` that ``pattern`` matches whole, whose group ``pid`` names a process
    that ended."""
    found = []
    for name in sorted(os.listdir(directory)):
        match = pattern.fullmatch(name)
        if match is not None and ended(int(match["pid"])):
            found.append(name)
    return found
