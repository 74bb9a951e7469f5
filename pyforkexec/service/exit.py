"""How a launcher ends as its child ended: the same exit status, or death by the same signal.

Its own module (not supervise.py) because every command's failure path ends here too (Ctrl-C, a
closed stdout: cli/failure.py), and a command that supervises nothing must not import the
supervisor, the process and the cgroup modules to exit (issue 15).
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import sys
from typing import NoReturn

__all__ = ["exit_like"]


def exit_like(code: int) -> NoReturn:
    """Exit with status ``code``, or for a negative code die of signal ``-code`` (no core dump)."""
    for stream in (sys.stdout, sys.stderr):  # (None: the fd was closed when Python started)
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):  # what cannot be written is lost, not the status
                stream.flush()
    if code >= 0:
        os._exit(code & 0xFF)
    signo = -code
    with contextlib.suppress(ValueError, OSError):
        _, hard = resource.getrlimit(resource.RLIMIT_CORE)
        resource.setrlimit(resource.RLIMIT_CORE, (0, hard))  # the child dumped core, if any, not us
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signo, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signo})
        os.kill(os.getpid(), signo)
    os._exit(128 + signo)  # a signal whose default action does not end a process
