# Copyright: (c) 2026, pyforkexec developers
# SPDX-License-Identifier: MIT
"""Installed by the role isolated_service into each runtime's site-packages as _pyforkexec_runtime.py,
and imported at startup by its 00-pyforkexec-runtime.pth (before any package of the runtime).

isolated_service_venv is a symbolic link to the runtime in use (VENV.runtimes/NAME), which an upgrade
swaps in one rename (files/runtime_switch.py). A Python started through the link would otherwise
import through it all its life: a swap during its imports would give it half the old and half the new
runtime. Here it pins itself to the runtime the link named now: sys.path's entries under the link
become that runtime's real directory. It holds a shared lock on the runtime's runtime.lock until it
exits or execs (the fd is close-on-exec), which tells runtime_switch.py the runtime is in use; its
sys.executable stays the link, so an exec of it (the daemon back from pyforkexec-waiter) finds the
newest runtime. Any Python 3: no f-strings, no annotations."""

import fcntl
import os
import sys


def pin():
    link = sys.prefix
    for _turn in range(100):  # each turn: a switch removed the runtime between the look and the lock
        real = os.path.realpath(link)
        lock = os.path.join(real, "runtime.lock")
        try:
            fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        fcntl.flock(fd, fcntl.LOCK_SH)
        # runtime_switch.py removes a runtime holding the exclusive lock, renaming it first: one still
        # at its place was not removed, and now cannot be while this process holds the lock
        if os.path.exists(lock):
            break
        os.close(fd)
    else:
        return  # no runtime.lock: not a runtime the role switched to (a virtualenv made otherwise)
    if real != link:
        under = [p == link or p.startswith(link + os.sep) for p in sys.path]
        sys.path[:] = [real + p[len(link):] if u else p for p, u in zip(sys.path, under)]
    pin.fd = fd  # kept open (and so locked) for the process's life


pin()
