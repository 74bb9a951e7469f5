"""Whether a process waits for a file lock (flock or fcntl), as the tests of the converge locks ask it.

Read from each of its threads' wait channel (``/proc/PID/task/TID/wchan``: the kernel function a blocked
lock request sleeps in), and from /proc/locks (its request, "->") where the kernel gives no wait channel.
/proc/locks alone misses it inside a PID namespace: a lock whose taker is gone (a run killed while the
daemon it gave the lock's fd to holds it on) shows the taker's pid, which the namespace cannot name, so
the kernel leaves that lock and every request blocked on it out of the namespace's /proc/locks."""

from __future__ import annotations

import os

# The kernel function a blocked lock request sleeps in (fs/locks.c; flock_lock_inode_wait before 4.4).
_LOCK_WAITS = ("locks_lock_inode_wait", "flock_lock_inode_wait", "fcntl_setlk")  # (fcntl_setlk: F_SETLKW)


def waits_for_a_lock(pid: int) -> bool:
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return False
    channels = []
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/wchan") as f:
                channels.append(f.read().strip())
        except OSError:  # (ended meanwhile)
            continue
    if any(channel in _LOCK_WAITS for channel in channels):
        return True
    if any(channel not in ("", "0") for channel in channels):
        return False  # the wait channels are known, and none is a lock's
    with open("/proc/locks") as f:
        return any(line.split()[1:2] == ["->"] and line.split()[5:6] == [str(pid)] for line in f)
