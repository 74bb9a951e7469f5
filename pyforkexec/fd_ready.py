"""Which of some fds are readable, within a time: poll(2), whatever their numbers.

``select.select`` takes only fds below FD_SETSIZE (1024) and raises ValueError for any other: a
process with that many files open (a server whose RLIMIT_NOFILE allows it) got a pidfd or a pipe
numbered above it, and a wait on it failed, with the child running on. poll names each fd itself.
"""

from __future__ import annotations

import select
from collections.abc import Sequence
from typing import Optional


def readable(fds: Sequence[int], timeout: Optional[float] = None) -> list[int]:
    """The fds of ``fds`` that are readable (or at their end, or closed by the other side: a read
    would not block), once one is or ``timeout`` seconds passed (None: no limit; 0: right away)."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))  # never shorter than asked
    return [fd for fd, _ in poller.poll(ms)]
