"""Did a call create a process? Run it as pid 1 of a fresh PID namespace and read ns_last_pid.

There /proc/sys/kernel/ns_last_pid moves only when the call creates a process (even one that is
reaped at once), so "no process was created" is exact rather than a before/after child count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from helpers.forked import run_in_fork


def last_pid() -> int:
    with open("/proc/sys/kernel/ns_last_pid") as f:
        return int(f.read())


@dataclass(frozen=True)
class Attempt:
    kind: str  # the exception class name, or "none"
    message: str
    processes: int  # processes created in the attempt's PID namespace


def attempt(fn: Any, *args: Any, **kwargs: Any) -> Attempt:
    """Calls fn as pid 1 of a new PID namespace and reports what it raised and how many pids it used."""

    def inner() -> Attempt:
        before = last_pid()
        try:
            result = fn(*args, **kwargs)
        except Exception as e:  # a ChildError here means a rule was left to the kernel
            return Attempt(type(e).__name__, str(e), last_pid() - before)
        if isinstance(result, int):  # fork_exec's pid
            os.waitpid(result, 0)
        return Attempt("none", "", last_pid() - before)

    return run_in_fork(inner, pidns=True)
