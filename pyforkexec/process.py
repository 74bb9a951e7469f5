"""Process: a started child, waited on through its pidfd when it has one (no pid-reuse races)."""

from __future__ import annotations

import os
import select
import signal
import threading
import time
from typing import Optional


class TimeoutExpired(Exception):
    """wait(timeout) ran out before the process exited."""

    def __init__(self, pid: int, timeout: float):
        super().__init__(f"process {pid} did not exit within {timeout} seconds")
        self.pid, self.timeout = pid, timeout


class Process:
    """A child started by start_process. ``returncode`` is None while it runs, then its exit status,
    or the negated signal number that killed it (as in subprocess)."""

    def __init__(self, pid: int, pidfd: Optional[int] = None):
        self.pid = pid
        self.pidfd = pidfd
        self.returncode: Optional[int] = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Process pid={self.pid} returncode={self.returncode}>"

    def _reap(self, options: int) -> Optional[int]:
        with self._lock:
            if self.returncode is None:
                pid, status = os.waitpid(self.pid, options)
                if pid == self.pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
                    self._close_pidfd()
        return self.returncode

    def _close_pidfd(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None

    def poll(self) -> Optional[int]:
        """The return code if the process has exited, else None; never blocks."""
        return self._reap(os.WNOHANG)

    def wait(self, timeout: Optional[float] = None) -> int:
        """Wait for the process to exit and return its return code."""
        while timeout is None and self.returncode is None:
            try:  # wait without reaping, outside the lock, so other threads can still signal it
                os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
            except ChildProcessError:
                with self._lock:  # another waiter reaped it: its returncode is set under the lock
                    if self.returncode is None:
                        raise
            self._reap(0)
        if self.returncode is not None:
            return self.returncode
        assert timeout is not None
        deadline = time.monotonic() + timeout
        while True:
            code = self.poll()
            if code is not None:
                return code
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutExpired(self.pid, timeout)
            fd = self.pidfd
            if fd is not None:  # readable once the process exits
                try:
                    select.select([fd], [], [], left)
                except (OSError, ValueError):  # another waiter reaped it and closed the pidfd
                    continue
            else:
                time.sleep(min(left, 0.005))

    def send_signal(self, sig: int) -> None:
        """Signal the process; a no-op once it has been reaped (its pid may be reused)."""
        with self._lock:
            if self.returncode is not None:
                return
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, sig)
            else:
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.wait()
