"""SysProcAttr.exec_fd: execute an open file (execveat with AT_EMPTY_PATH)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from helpers.marks import needs_root
from helpers.procs import output

from pyforkexec import SysProcAttr
from pyforkexec.sandbox.seccomp import SeccompFilter

pytestmark = needs_root


@contextmanager
def opened(path: str, flags: int = os.O_PATH) -> Iterator[int]:
    fd = os.open(path, flags | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


@pytest.mark.parametrize("flags", [os.O_PATH, os.O_RDONLY], ids=["O_PATH", "O_RDONLY"])
def test_runs_the_open_file_not_argv0(flags: int) -> None:
    with opened("/bin/echo", flags) as fd:
        assert output(["/nonexistent/name-only", "hello"], SysProcAttr(exec_fd=fd)) == "hello\n"


def test_an_fd_in_the_way_of_the_fd_passes() -> None:
    # the child places files[i] at fd i; exec_fd's own number is one of those slots
    with opened("/bin/echo") as fd, opened("/dev/null", os.O_RDONLY) as null:
        extra = [null] * (fd - 2)  # capture() puts these at fds 3..fd, so files[fd] is /dev/null
        assert output(["echo", "still echo"], SysProcAttr(exec_fd=fd), extra=extra) == "still echo\n"


def test_under_a_filter_that_denies_execve() -> None:
    # the child calls execveat, not execve: the filter only has to allow that one
    f = SeccompFilter(deny=["execve"])
    with opened("/bin/echo") as fd:
        assert output(["echo", "filtered"], SysProcAttr(exec_fd=fd, seccomp=f)) == "filtered\n"


def test_a_closed_fd_is_refused_before_any_process() -> None:
    fd = next(n for n in range(900, 2000) if not os.path.exists(f"/proc/self/fd/{n}"))
    with pytest.raises(ValueError, match=r"SysProcAttr\.exec_fd: fd \d+ is not open"):
        output(["echo"], SysProcAttr(exec_fd=fd))
