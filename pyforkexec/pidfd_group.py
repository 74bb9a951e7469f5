"""A signal to the process group a pidfd's process leads, through the pidfd (Linux 6.9).

A kill of a group by number (``killpg(pid)``) is safe only while its leader is unreaped: once reaped,
its pid, so the group's id, may be another process's, whose own new group the kill would reach.
``pidfd_send_signal`` with ``PIDFD_SIGNAL_PROCESS_GROUP`` names the group by the pidfd's process
itself, kept by the pidfd whatever became of the number: the group it led, never a later one.
"""

from __future__ import annotations

import errno
import signal

# linux/pidfd.h (Linux 6.9): the signal goes to the process group whose id is the pidfd's process's pid.
PIDFD_SIGNAL_PROCESS_GROUP = 4


def send_group_signal(pidfd: int, sig: int) -> bool:
    """``sig`` to the process group the process of ``pidfd`` leads (or led: its members that are left),
    through the pidfd: True once sent, False where the kernel lacks the flag (before 6.9: the caller
    falls back to a kill by number, where it knows the number is still the process's).
    ProcessLookupError when no process is in that group (it never led one, or the group emptied)."""
    try:
        signal.pidfd_send_signal(pidfd, sig, None, PIDFD_SIGNAL_PROCESS_GROUP)
    except OSError as e:
        if e.errno == errno.EINVAL:  # an unknown flag to this kernel (sig itself is the caller's to check)
            return False
        raise
    return True
