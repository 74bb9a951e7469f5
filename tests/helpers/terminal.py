"""Run a Python script in a session of its own on a new pty, for what a spawn does to a terminal."""

from __future__ import annotations

import contextlib
import os
import pty
import sys

import pyforkexec as fe


def in_a_terminal(script: str, *args: str) -> list[str]:
    """The fields of the line ``RESULT ...`` that ``script`` prints, run by this Python as the session
    leader of a new session whose controlling terminal is a new pty (on its fds 0, 1, 2)."""
    pid, master = pty.fork()
    if pid == 0:
        try:
            os.execve(sys.executable, [sys.executable, "-c", script, *args],
                      {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(fe.__file__))})
        finally:
            os._exit(127)
    out = b""
    with contextlib.suppress(OSError):  # EIO once the session's last holder of the pty is gone
        while chunk := os.read(master, 4096):
            out += chunk
    os.close(master)
    assert os.waitpid(pid, 0)[1] == 0, out
    line = [ln for ln in out.decode().splitlines() if ln.startswith("RESULT")]
    assert line, out
    return line[0].split()[1:]
