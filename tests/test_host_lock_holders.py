"""A host lock's wait that may be given up (host_lock's give_up) is asked with the processes that hold
the lock now: one given the fd of its taker (pass_fds) holds it once the taker is gone, as the daemon
given its starter's converge lock does; one waiting for the lock has its file open too and does not."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pyforkexec import host_lock

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lock directory must be root's alone")

_HOLD = "import sys; sys.stdin.read()"  # holds its inherited fds until stdin closes


@pytest.fixture
def lock_dir(tmp_path, monkeypatch):
    directory = tmp_path / "locks"
    monkeypatch.setattr(host_lock, "LOCK_DIR", str(directory))
    return directory


def _given_the_lock(name: str) -> subprocess.Popen:
    """A process given the fd of lock ``name`` by its taker (this process, which lets it go then)."""
    with host_lock.host_lock(name):
        fd = host_lock.held_fd(name)
        assert fd is not None
        return subprocess.Popen([sys.executable, "-c", _HOLD, "h122-holder"], stdin=subprocess.PIPE,
                                pass_fds=(fd,))


def test_h122_the_process_given_the_lock_is_its_holder_and_a_waiter_is_not(lock_dir) -> None:
    holder = _given_the_lock("h122")
    waiter = subprocess.Popen(["flock", host_lock.path("h122"), "true"])
    asked: list[list[host_lock.Holder]] = []

    def give_up(found: list[host_lock.Holder]) -> str:
        asked.append(found)
        return "h122 gives up"

    try:
        with pytest.raises(host_lock.LockHeld) as raised, host_lock.host_lock("h122", give_up=give_up):
            pass
    finally:
        holder.stdin.close()
        holder.wait()
        waiter.wait()
    assert [[holder.pid]] == [[found.pid for found in holders] for holders in asked]
    message = str(raised.value)
    assert f"pid {holder.pid} ({sys.executable} -c" in message and "h122-holder" in message
    assert message.endswith("h122 gives up")


def test_h122_a_wait_not_given_up_ends_when_the_holder_lets_go(lock_dir) -> None:
    holder = _given_the_lock("h122")
    asked: list[list[int]] = []

    def give_up(found: list[host_lock.Holder]) -> None:
        asked.append([each.pid for each in found])
        holder.stdin.close()  # (it lets go: the wait goes on, and takes the lock)

    try:
        with host_lock.host_lock("h122", give_up=give_up):
            assert host_lock.held_fd("h122") is not None
    finally:
        if not holder.stdin.closed:
            holder.stdin.close()
        holder.wait()
    assert asked[0] == [holder.pid]
