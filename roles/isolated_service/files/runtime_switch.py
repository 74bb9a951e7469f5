# Copyright: (c) 2026, pyforkexec developers
# SPDX-License-Identifier: MIT
"""The role isolated_service's switch of the runtime (tasks/runtime.yml), run with the host's Python:
    python3 runtime_switch.py VENV [RUNTIME]
VENV (isolated_service_venv) is a symbolic link to the runtime in use, a virtualenv of its own in
VENV.runtimes/: whatever runs VENV/bin/python (a daemon back from pyforkexec-waiter, a systemd unit's
ExecStart, the modules) finds one whole runtime, the old or the new, never one half replaced, and a
converge killed anywhere leaves the old one in use.

With RUNTIME (a directory of VENV.runtimes/, installed and checked): VENV names it after one rename(2)
of a new link over the old one. A VENV that is still a virtualenv itself (the role's layout before)
is exchanged with the link in one renameat2(RENAME_EXCHANGE) and then moved into VENV.runtimes/:
there is no moment without VENV/bin/python. Then, with or without RUNTIME, each other directory of
VENV.runtimes/ that no process runs from any more is removed: a runtime's Pythons hold a shared lock
on its runtime.lock (runtime_pin.py), taken here exclusively first; a directory without one (the old
layout's virtualenv, a runtime a killed converge left half made) pins no process. Prints one JSON
object: whether VENV changed, the directories removed and those kept as still in use. Any Python 3."""

import ctypes
import errno
import fcntl
import json
import os
import shutil
import sys
import time

RENAME_EXCHANGE = 2  # linux/fs.h
AT_FDCWD = -100


def exchange(a, b):
    """renameat2(a, b, RENAME_EXCHANGE): both names stay, swapped in one step (Linux 3.15, glibc 2.28)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), RENAME_EXCHANGE) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"renameat2(RENAME_EXCHANGE) {a} {b}: {os.strerror(e)}")


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# A runtime.lock is root's alone (LOCK_MODE): flock takes any open file, a read-only one too, and a process
# of any account that could open it (a service's, whatever its namespaces: the runtime is in its view of the
# host's files) could hold it exclusively, and then every Python of the runtime in use (the modules, each
# daemon back from its waiter, each systemd launcher) would wait for it in runtime_pin.py for ever. A Python
# of another account cannot open it and runs unpinned (runtime_pin.py); only root's run the services.
LOCK_MODE = 0o600


def make_lock(runtime):
    """The lock a runtime's Pythons take (runtime_pin.py); every runtime switched to has one, root's alone
    (one made before with a wider mode too)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    fd = os.open(os.path.join(runtime, "runtime.lock"), flags, LOCK_MODE)
    try:
        os.fchmod(fd, LOCK_MODE)
    finally:
        os.close(fd)


def tighten_locks(venv):
    """Each runtime.lock of VENV.runtimes/ made by a role before LOCK_MODE (0644), root's alone now."""
    runtimes = venv + ".runtimes"
    try:
        names = os.listdir(runtimes)
    except OSError:
        return
    for name in names:
        try:
            path = os.path.join(runtimes, name, "runtime.lock")
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue  # none (never switched to), or not a runtime's
        try:
            if os.fstat(fd).st_mode & 0o777 != LOCK_MODE:
                os.fchmod(fd, LOCK_MODE)
        finally:
            os.close(fd)


def switch(venv, runtime):
    """Point VENV at RUNTIME; returns whether it changed."""
    runtimes = venv + ".runtimes"
    # relative: the directory of VENV and its runtimes can move as one
    target = os.path.join(os.path.basename(runtimes), os.path.basename(runtime))
    if os.path.islink(venv) and os.readlink(venv) == target:
        return False
    make_lock(runtime)  # before any of its Pythons can start
    new = os.path.join(os.path.dirname(venv), f".{os.path.basename(venv)}.link-{os.getpid()}")
    if os.path.lexists(new):
        os.unlink(new)
    os.symlink(target, new)
    if os.path.isdir(venv) and not os.path.islink(venv):
        exchange(new, venv)  # the old virtualenv is at `new` now, VENV the link
        before = os.path.join(runtimes, f"{os.path.basename(venv)}.before-{os.getpid()}")
        os.rename(new, before)
        make_lock(before)  # it was in use: prune() need not wait UNTOUCHED_FOR (no Python of it is pinned)
        fsync_dir(runtimes)
    else:
        os.rename(new, venv)
    fsync_dir(os.path.dirname(venv))
    return True


# A directory of VENV.runtimes/ with no runtime.lock was never switched to: a runtime a killed converge
# left half made, the virtualenv of the layout before, or one another converge of this host is making
# right now (its top directory is written at each step, the last some seconds before its switch). It
# goes once it was left alone this long, which no install takes.
UNTOUCHED_FOR = 3600


def prune(venv):
    """Removes the directories of VENV.runtimes/ but VENV's that no process runs from, and those without a
    runtime.lock once untouched for UNTOUCHED_FOR seconds: (removed, kept)."""
    runtimes = venv + ".runtimes"
    current = os.path.basename(os.path.realpath(venv)) if os.path.islink(venv) else None
    removed, kept = [], []
    try:
        names = sorted(os.listdir(runtimes))
    except FileNotFoundError:
        return removed, kept
    for name in names:
        path = os.path.join(runtimes, name)
        if name == current or name.startswith(".") or not os.path.isdir(path) or os.path.islink(path):
            continue
        fd = -1
        try:
            fd = os.open(os.path.join(path, "runtime.lock"), os.O_RDONLY | os.O_CLOEXEC)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                os.close(fd)
                kept.append(path)
                continue
            if e.errno != errno.ENOENT:
                raise
            if time.time() - os.stat(path).st_mtime < UNTOUCHED_FOR:  # maybe being made: not now
                kept.append(path)
                continue
        try:
            # out of the way first, under the lock: a Python that opened runtime.lock meanwhile sees it
            # gone once it has the lock, and pins itself to VENV's runtime instead (runtime_pin.py)
            gone = os.path.join(runtimes, ".removing-" + name)
            os.rename(path, gone)
            shutil.rmtree(gone)
        finally:
            if fd >= 0:
                os.close(fd)
        removed.append(path)
    for name in os.listdir(runtimes):  # what a removal killed midway left
        if name.startswith(".removing-"):
            shutil.rmtree(os.path.join(runtimes, name), ignore_errors=True)
    return removed, kept


def main():
    venv = sys.argv[1].rstrip("/")
    tighten_locks(venv)
    changed = switch(venv, sys.argv[2].rstrip("/")) if len(sys.argv) > 2 else False
    removed, kept = prune(venv)
    print(json.dumps(dict(changed=changed or bool(removed), switched=changed, removed=removed, kept=kept)))


if __name__ == "__main__":
    main()
