"""Handing a started child over to pyforkexec-waiter (waiter.c), which this process then becomes.

The daemon while its service runs, and a launcher without a terminal (``pyforkexec exec --spec``
under systemd) while its command runs, need nothing of Python: only to pass signals on and to see the
child end. So they exec ``pyforkexec-waiter`` in their own process (the same pid, fds kept, the child
still theirs), a few hundred KiB instead of an interpreter's ~10 MB, and it execs the Python command
they give it again once the child exited, adding ``--waited HOW --exited-at MS``.

The signals the waiter handles must be blocked before the exec (pending ones stay pending across
it): the caller blocks them, as only it knows which of its own handlers may have run meanwhile.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Optional

WAITER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pyforkexec-waiter")


def available() -> bool:
    """Whether the waiter was built (setup.py builds it beside the extensions)."""
    return os.access(WAITER, os.X_OK)


def hand_over(pid: int, mode: str, command: Sequence[str], keep: Sequence[int] = ()) -> Optional[OSError]:
    """Exec the waiter for ``pid``: ``mode`` is the daemon's stop timeout in ms and its stop signal's
    number (``10000:15``; the timeout alone: SIGTERM), ``forward`` (every
    signal passed on) or ``forward-exit`` (the same, and the waiter then reaps ``pid`` and exits as
    it did); ``command`` the way back (with ``forward-exit``, only should the waiter fail); ``keep``
    the fds it must keep open. Returns only if the exec failed: its error, with ``keep`` close-on-exec
    again."""
    for fd in keep:
        os.set_inheritable(fd, True)
    try:
        os.execv(WAITER, [WAITER, str(pid), mode, "--", *command])
    except OSError as e:
        for fd in keep:
            os.set_inheritable(fd, False)
        return e
    return None  # pragma: no cover - execv does not return
