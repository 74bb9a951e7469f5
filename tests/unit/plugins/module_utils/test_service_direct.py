"""The running daemon's command line, compared with the wanted one for idempotency, is read in each
shape it takes: as started, back in Python after its waiter, and as pyforkexec-waiter while its
service runs (the daemon's own command line after ``--``). A real daemon: tests/integration."""

from __future__ import annotations

import os

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_direct as direct

WANTED = ["/venv/bin/python", "-m", "pyforkexec.daemon", "--name", "web", "--restart", "always"]


@pytest.mark.parametrize("cmdline", [
    WANTED,
    [*WANTED[:3], "--ready-fd", "7", *WANTED[3:]],
    [*WANTED, "--resume", '{"pid": 1}', "--waited", "run", "--exited-at", "5"],
    ["/site/pyforkexec/service/pyforkexec-waiter", "4242", "10000", "--", *WANTED, "--resume", "{}"],
])
def test_the_daemon_s_argv_is_read_in_each_of_its_shapes(cmdline):
    assert direct.daemon_argv_of(cmdline) == WANTED


def test_another_program_s_argv_is_kept_whole():
    other = ["/usr/bin/python3", "-m", "http.server", "--", "x"]
    assert direct.daemon_argv_of(other) == other


def test_a_process_gone_has_no_argv(dead_pid):
    assert direct.running_argv(dead_pid) is None
    assert direct.running_argv(os.getpid())[0]  # and a live one has its own


def test_a_stop_returns_only_once_the_service_is_reaped():
    """A zombie still counts as its user's process (userdel refuses to remove the account): the stop
    waits until the service's process is reaped, not only exited. Here it is reaped 0.2 s after its
    exit, by another thread; the wait must not return before that."""
    import threading
    import time

    pid = os.fork()
    if pid == 0:
        os._exit(0)
    fd = os.pidfd_open(pid)
    reaped = threading.Event()

    def reap_later():
        time.sleep(0.2)
        os.waitpid(pid, 0)
        reaped.set()

    thread = threading.Thread(target=reap_later)
    thread.start()
    try:
        direct._reaped([fd], time.monotonic() + 30)
        assert reaped.is_set()
    finally:
        thread.join()
        os.close(fd)
