# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""The CPUs a process the collection starts may run on: another process's, not the Ansible worker's.

mitogen's strategy pins every worker of a 2- or 3-CPU controller to one CPU (its affinity policy), and a
child inherits its parent thread's mask: what a module or a connection starts from there would run on
that one CPU for good. Used by the nsenter connection (what runs inside a target runs on the target's
CPUs, as it runs in its namespaces) and by ``manager: direct`` (a daemon gets PID 1's CPUs, as systemd
gives a unit its manager's ``CPUAffinity=``).
"""

from __future__ import annotations

import contextlib
import os


@contextlib.contextmanager
def of_process(pid):
    """Run the block (which starts a process) with the CPU affinity of process ``pid``, this thread's own
    restored after. Where ``pid``'s cannot be had or taken (it is gone, or has CPUs this thread's
    cpuset lacks), this thread's is kept."""
    try:
        own = os.sched_getaffinity(0)
        target = os.sched_getaffinity(pid)
        if target == own:
            own = None
        else:
            os.sched_setaffinity(0, target)
    except OSError:
        own = None
    try:
        yield
    finally:
        if own is not None:
            os.sched_setaffinity(0, own)
