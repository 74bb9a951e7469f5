"""Run a function in a forked copy of the test process and bring back its result or exception.

Go's tests drop privileges by running as an ordinary user; here the forked copy becomes that user
(uid/gid 65534 by default) so the parent pytest process keeps root.
"""

from __future__ import annotations

import os
import pickle
import traceback
from typing import Any, Callable

from . import sysutil

NOBODY = 65534


def outcome_bytes(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> bytes:
    """fn's result or exception, pickled for load_outcome()."""
    try:
        outcome = ("ok", fn(*args, **kwargs))
    except BaseException as e:  # everything, including pytest's skip/fail outcomes, goes back
        e.__notes__ = [*getattr(e, "__notes__", []), "in the forked child:\n" + traceback.format_exc()]
        outcome = ("err", e)
    try:
        return pickle.dumps(outcome)
    except Exception:
        return pickle.dumps(("err", RuntimeError(f"unpicklable outcome {outcome!r}")))


def _drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    # A uid change clears "dumpable", which makes /proc/PID/* root-owned; an ordinary login user is
    # dumpable and may write its children's uid_map, so restore that.
    sysutil.prctl(sysutil.PR_SET_DUMPABLE, 1)


def _child(w: int, fn: Callable[..., Any], args: tuple, kwargs: dict, uid: int | None, gid: int,
           pidns: bool) -> None:
    if pidns:
        from pyforkexec import CLONE_NEWPID

        sysutil.unshare(CLONE_NEWPID)
        pid = os.fork()  # the only way into the new namespace: the forked child is its pid 1
        if pid:
            _, status = os.waitpid(pid, 0)
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    if uid is not None:
        _drop_privileges(uid, gid)
    data = outcome_bytes(fn, *args, **kwargs)
    view = memoryview(data)
    while view:
        view = view[os.write(w, view):]


def run_in_fork(fn: Callable[..., Any], *args: Any, uid: int | None = None, gid: int = NOBODY,
                pidns: bool = False, **kwargs: Any) -> Any:
    """Calls ``fn(*args, **kwargs)`` in a forked child and returns its result or raises its exception.

    ``uid``: drop to this uid/gid (no supplementary groups) first. ``pidns``: run as pid 1 of a new
    PID namespace, so that /proc/sys/kernel/ns_last_pid counts only the processes ``fn`` creates.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            _child(w, fn, args, kwargs, uid, gid, pidns)
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        raise RuntimeError(f"forked child died without a result (wait status {status:#x})")
    return load_outcome(data)


def load_outcome(data: bytes) -> Any:
    """Returns the result that outcome_bytes() pickled, or raises its exception."""
    kind, value = pickle.loads(data)
    if kind == "err":
        raise value
    return value
