"""prepare(): a spawn checked and compiled once, for a hot loop that starts the same program again and again.

``prepare(argv0, argv, attr)`` makes every check fork_exec makes (the same ValueError/TypeError, before
any process) on a private copy of ``attr``, and returns a ``Prepared``. Its ``fork_exec()`` and
``start()`` then spawn without checking or compiling again, but for the checks that depend on this
process's euid and egid (validate.check_ids), made again when those differ from prepare() time.
Nothing else can make it stale: it holds only its own deep copy of what it checked (a caller who
changes ``attr``, its lists or its SysProcAttr afterwards changes nothing here), and is itself
read-only.

What only exists at spawn time is still made per spawn, exactly as fork_exec makes it: the error and
map pipes, the setns fds, the sync socket, the exec_fd copy, the cgroup leaf, our pid for pdeathsig,
the RLIMIT_NOFILE room check, the signal holds. The plan is a pure function of the checked copy and
of those per-spawn values (PlanInputs): it is compiled again whenever one of them differs from the
last spawn's (a new pipe number, a new pid after os.fork), and reused when all are equal, which in
a loop they are (forkexec.PlanCache). A spawn that opens nothing per spawn (forkexec.opens_nothing)
keeps its plan while our pid and whether the child may write its own maps (our euid and egid) are
unchanged (forkexec.AlonePlans), and takes fork_exec's path without a signal hold.

Read once, at prepare(): ``ProcAttr.files`` as fd numbers (a file object's fileno()), and for
``start()`` with ``env`` None, os.environ. As with fork_exec, an fd closed since is reported by the
spawn (an OSError naming the field, or a ChildError naming the step), never skipped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Optional

from .attrs import ProcAttr
from .checked import checked_copy
from .forkexec import (
    PlanCache,
    StrOrBytes,
    alone_plans,
    environ_entries,
    fork_exec_checked,
    start_checked,
)
from .process import Process
from .validate import SpawnArgs, check_ids, check_spawn


class Prepared:
    """A checked, compiled spawn of one program with one ProcAttr (made by prepare()); read-only.

    ``fork_exec()`` and ``start()`` behave as ``fork_exec(argv0, argv, attr)`` and
    ``start_process(argv0, argv, attr)`` did with the ``attr`` of prepare() time, raising the same
    ChildError when the child fails. Safe to share between threads, and after os.fork."""

    __slots__ = ("_alone", "_args", "_environ", "_ids", "_plans")

    def __init__(self, args: SpawnArgs, environ: tuple[bytes, ...], ids: tuple[int, int]) -> None:
        object.__setattr__(self, "_args", args)
        object.__setattr__(self, "_ids", ids)  # the euid and egid the checks saw (validate.check_ids)
        object.__setattr__(self, "_environ", environ)  # start()'s env when ProcAttr.env is None
        object.__setattr__(self, "_plans", PlanCache())
        # A spawn that opens nothing in the parent skips start_spawn: its plan is made and run at once.
        object.__setattr__(self, "_alone", alone_plans(args))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Prepared is read-only (cannot set {name})")

    def __repr__(self) -> str:
        return f"<Prepared {self._args.path!r} argv={list(self._args.argv)!r}>"

    def _checked_args(self) -> SpawnArgs:
        """The checked arguments, their euid- and egid-dependent checks made again when this process's
        ids are no longer those prepare() checked them with (a ValueError as fork_exec's then)."""
        args = self._args
        if (os.geteuid(), os.getegid()) != self._ids:
            check_ids(args.sys, args.cloneflags, args.unshareflags, args.sandbox)
        return args

    def fork_exec(self) -> int:
        """Spawn, as fork_exec: the pid (``attr.env`` None: an empty environment)."""
        args = self._checked_args()
        return fork_exec_checked(args, args.env if args.env is not None else (), self._alone, self._plans)

    def start(self) -> Process:
        """Spawn, as start_process: a Process (``attr.env`` None: os.environ as prepare() read it)."""
        args = self._checked_args()
        return start_checked(args, args.env if args.env is not None else self._environ, self._alone,
                             self._plans)


def prepare(argv0: StrOrBytes, argv: Sequence[StrOrBytes], attr: Optional[ProcAttr] = None) -> Prepared:
    """Check a spawn of argv0 with argv and attr once, for spawns that then neither check nor compile
    again (the plan is compiled at the first, once its pipes exist); see Prepared.

    Raises what fork_exec would raise for these arguments before any process exists."""
    ids = (os.geteuid(), os.getegid())
    first = check_spawn(argv0, argv, attr)  # the caller's objects: the same errors as fork_exec's
    args = checked_copy(first, attr)
    return Prepared(args, environ_entries() if args.env is None else (), ids)
