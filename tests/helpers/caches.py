"""The caches that make a spawn's later calls shorter than its first, and a way to forget them (tests only).

fork_exec and start_process remember a spawn's checks and plans at its second sight
(pyforkexec/checked.py); a Prepared keeps its last plan (forkexec.PlanCache, AlonePlans). A test that
wants the first call's path (every check, the plan compiled) forgets them before each call; one that
wants a hot loop's path calls twice first.
"""

from __future__ import annotations

from pyforkexec.checked import _SEEN
from pyforkexec.forkexec import checked_spawn
from pyforkexec.prepared import Prepared


def remembered_spawns() -> int:
    """How many spawns fork_exec and start_process remember (seen twice: their checks are skipped)."""
    return sum(entry is not _SEEN for entry in list(checked_spawn.entries.values()))


def forget_checked_spawns() -> bool:
    """Make every spawn of fork_exec and start_process a first sight again (checked in full); whether one
    was remembered."""
    remembered = remembered_spawns() > 0
    checked_spawn.clear()
    return remembered


def forget_plans(prepared: Prepared) -> bool:
    """Make ``prepared``'s next spawn compile its plan again, as its first did (always True: a Prepared
    keeps its last plan)."""
    prepared._plans.last = None
    if prepared._alone is not None:
        prepared._alone.last = None
    return True
