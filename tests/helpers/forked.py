"""Run a function in a forked copy of the test process and bring back its result or exception.

Go's tests drop privileges by running as an ordinary user; here the forked copy becomes that user
(uid/gid 65534 by default) so the parent pytest process keeps root.

That user must reach the checkout (the venv's python and console scripts, the package, examples/),
which root may have cloned where nobody else can: under /root (mode 0700). The forked copy then
gets a mount namespace of its own in which each such directory is covered by a tmpfs that others may
search, holding bind mounts of only the entries on the way to the checkout: the same paths lead to
the same files, and nothing on the host changes.
"""

from __future__ import annotations

import os
import pickle
import stat
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Optional

from . import sysutil

NOBODY = 65534
# The checkout (tests/helpers/forked.py is two levels below it).
REPO = Path(__file__).resolve().parents[2]

# {directory the dropped ids cannot search: the names of its entries to expose (None: all of them)}
Exposure = dict[str, Optional[frozenset[str]]]


def _searchable(st: os.stat_result, uid: int, gid: int) -> bool:
    """Whether uid/gid without supplementary groups may search a directory (POSIX mode bits)."""
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _needed_paths() -> set[str]:
    """What a dropped child may run or import: the checkout, the interpreter's directory and prefix,
    and every directory on sys.path (the package itself, for an editable install, is in the checkout)."""
    import pyforkexec

    paths = {REPO, Path(pyforkexec.__file__).parent, Path(sys.executable).parent, Path(sys.prefix)}
    paths.update(Path(p) for p in sys.path if p)
    return {os.path.realpath(p) for p in paths if os.path.isdir(p)}


def exposure(uid: int, gid: int) -> Exposure:
    """The directories on the way to _needed_paths() that uid/gid cannot search, with what to expose:
    the next component towards each needed path, or everything in a needed directory itself."""
    plan: dict[str, Optional[set[str]]] = {}
    for path in sorted(_needed_paths()):
        parts = Path(path).parts
        for depth in range(1, len(parts) + 1):
            d = os.path.join(*parts[:depth])
            if _searchable(os.stat(d), uid, gid):
                continue
            names = plan.setdefault(d, set())
            if depth == len(parts):
                plan[d] = None
            elif names is not None:
                names.add(parts[depth])
    return {d: None if names is None else frozenset(names) for d, names in plan.items()}


def expose(plan: Exposure) -> None:
    """Makes the directories of ``plan`` searchable in a new mount namespace of this (root) process."""
    if not plan:
        return  # the usual case: nothing to change, the child stays in the test's mount namespace
    from pyforkexec import CLONE_NEWNS

    sysutil.unshare(CLONE_NEWNS)
    # A slave receives the host's mount events but sends none back: the mounts below stay in here.
    sysutil.mount(None, "/", None, sysutil.MS_REC | sysutil.MS_SLAVE)
    for d in sorted(plan, key=lambda d: d.count("/")):  # outer first: inner ones are reached through them
        st = os.stat(d)
        below = os.open(d, os.O_PATH | os.O_DIRECTORY)  # still names what the tmpfs will cover
        try:
            names = plan[d]
            names = sorted(os.listdir(f"/proc/self/fd/{below}") if names is None else names)
            mode = stat.S_IMODE(st.st_mode) | stat.S_IXGRP | stat.S_IXOTH  # search, not list
            sysutil.mount("tmpfs", d, "tmpfs", 0, f"mode={mode:o},uid={st.st_uid},gid={st.st_gid}")
            for name in names:
                source, target = f"/proc/self/fd/{below}/{name}", os.path.join(d, name)
                if os.path.islink(source):
                    os.symlink(os.readlink(source), target)
                    continue
                if os.path.isdir(source):
                    os.mkdir(target)
                else:
                    os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
                sysutil.mount(source, target, None, sysutil.MS_BIND | sysutil.MS_REC)
        finally:
            os.close(below)


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
           pidns: bool, plan: Exposure) -> None:
    if pidns:
        from pyforkexec import CLONE_NEWPID

        sysutil.unshare(CLONE_NEWPID)
        pid = os.fork()  # the only way into the new namespace: the forked child is its pid 1
        if pid:
            _, status = os.waitpid(pid, 0)
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    if uid is not None:
        expose(plan)
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
    A dropped child reaches the checkout even where that uid could not (see the module's docstring).
    """
    plan = {} if uid is None else exposure(uid, gid)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            _child(w, fn, args, kwargs, uid, gid, pidns, plan)
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
