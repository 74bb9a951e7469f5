# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""A module's interpreter ends without its final search for reference cycles.

When a module's Python exits, it clears every imported module and runs its garbage collector over
what is left, looking for cycles to free. Ansible's ``basic`` alone leaves enough for that to take
~30 ms; with pyforkexec and pyroute2 (every netlink family's message classes) ~80-120 ms. The task
waits for it: the controller reads the module's output until the process ends. ``gc.freeze()`` at
exit moves what exists into the collector's permanent generation, which that last collection skips.

Nothing a module depends on is skipped: the result is already written and flushed (``exit_json``),
every ``atexit`` function and ``finally`` block still runs, objects still freed by their reference
count still run their finalizers, and the kernel closes the fds, locks and sockets of the process as
it ends. Only objects in reference cycles are no longer freed one by one before the process ends,
which CPython has never promised for the end of a process anyway.
"""

from __future__ import annotations

import atexit
import gc


def skip_final_collection():
    """At the interpreter's exit, after the ``atexit`` functions registered after this call: ``gc.freeze()``.
    Call first thing in ``main()``, so that it runs after AnsibleModule's own cleanup."""
    atexit.register(gc.freeze)
