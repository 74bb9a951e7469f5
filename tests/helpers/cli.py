"""Running the ``pyforkexec`` console script as a user would, next to util-linux's tools."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pytest

from . import forked

# The console script pip installed next to this interpreter (.venv/bin/pyforkexec).
PYFORKEXEC = str(Path(sys.executable).parent / "pyforkexec")
TIMEOUT = 30


def pfe(*args: str, **kw: Any) -> subprocess.CompletedProcess:
    """``pyforkexec ARGS...`` with text output captured."""
    return run([PYFORKEXEC, *args], **kw)


def run(argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", TIMEOUT)
    return subprocess.run(list(argv), **kw)


def util_linux(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"util-linux {tool} is not installed")
    return path


def both(tool: str, *args: str, **kw: Any) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """The same invocation through ``pyforkexec TOOL`` and util-linux's TOOL."""
    return pfe(tool, *args, **kw), run([util_linux(tool), *args], **kw)


@dataclass(frozen=True)
class Counted:
    """What a command did in a PID namespace of its own: status, output, and the processes it made."""

    returncode: int
    stdout: str
    stderr: str
    processes: int  # the command itself included: 1 means it started nothing


# pid 1 of the new namespace is this sh; the command is pid 2, so ns_last_pid (read by a builtin, which
# starts no process) is 2 exactly when the command started no other process, even one reaped at once.
# The report is the last line of stderr, after everything the command wrote.
_COUNT = '"$@"; s=$?; read n < /proc/sys/kernel/ns_last_pid; echo "counted: $s $n" >&2'


def counted(argv: Sequence[str], uid: Optional[int] = None) -> Counted:
    """``argv`` run (as ``uid``, else as this root process) in a new PID namespace with its own /proc,
    made by util-linux: a namespace per command keeps the count exact even beside other tests.
    Where ``uid`` cannot reach the checkout (cloned under /root, 0700), it runs from a forked copy
    that made the way searchable in a mount namespace of its own (helpers/forked.py)."""
    if uid is not None:
        plan = forked.exposure(uid, uid)
        if plan:
            return forked.run_in_fork(_counted_exposed, plan, list(argv), uid)
    return _counted(argv, uid)


def run_as(uid: int, argvs: Sequence[Sequence[str]], **kw: Any) -> list[subprocess.CompletedProcess]:
    """Each command of ``argvs`` run (it drops to ``uid`` itself: setpriv...), from a forked copy that
    made the checkout searchable for ``uid`` where it is not (cloned under /root, 0700)."""
    plan = forked.exposure(uid, uid)
    if plan:
        return forked.run_in_fork(_run_exposed, plan, [list(a) for a in argvs], kw)
    return [run(a, **kw) for a in argvs]


def _run_exposed(plan: forked.Exposure, argvs: list[list[str]],
                 kw: dict) -> list[subprocess.CompletedProcess]:
    forked.expose(plan)
    return [run(a, **kw) for a in argvs]


def _counted_exposed(plan: forked.Exposure, argv: Sequence[str], uid: int) -> Counted:
    forked.expose(plan)
    return _counted(argv, uid)


def _counted(argv: Sequence[str], uid: Optional[int]) -> Counted:
    drop = [] if uid is None else [util_linux("setpriv"), f"--reuid={uid}", f"--regid={uid}",
                                   "--clear-groups"]
    proc = run([util_linux("unshare"), "--pid", "--fork", "--mount-proc", "--", *drop,
                "sh", "-c", _COUNT, "sh", *argv], stdin=subprocess.DEVNULL)
    stderr, _, report = proc.stderr.rstrip("\n").rpartition("\n")
    if not report.startswith("counted: "):  # no newline before it: the command wrote nothing
        stderr, report = "", proc.stderr.rstrip("\n")
    words = report.split()
    if len(words) != 3 or words[0] != "counted:":
        raise AssertionError(f"the counting shell did not report: {proc.stderr!r}")
    return Counted(int(words[1]), proc.stdout, stderr + "\n" if stderr else "", int(words[2]) - 1)


def ns_link(name: str, pid: int | str = "self") -> str:
    return os.readlink(f"/proc/{pid}/ns/{name}")


def wait_for(predicate: Any, what: str, timeout: float = TIMEOUT) -> None:
    """Poll until ``predicate()`` holds (a correctness wait, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class Background:
    """A started command whose stdout is read line by line (``ready`` handshakes)."""

    def __init__(self, argv: Sequence[str], **kw: Any):
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("text", True)
        self.proc = subprocess.Popen(list(argv), **kw)

    def readline(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def child(self) -> int:
        """The only child of the started process (the command of a forking launcher)."""
        path = f"/proc/{self.proc.pid}/task/{self.proc.pid}/children"
        with open(path) as f:
            kids = f.read().split()
        assert len(kids) == 1, f"expected one child of {self.proc.pid}, got {kids}"
        return int(kids[0])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(TIMEOUT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> Background:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
