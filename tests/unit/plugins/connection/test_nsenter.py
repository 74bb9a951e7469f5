"""The nsenter connection plugin driven as Ansible drives it (loaded by its name, options set, then
connect, exec_command, put_file, fetch_file), on real processes in their own namespaces."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time

import pytest
from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.playbook.play_context import PlayContext
from ansible.plugins.loader import connection_loader

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="nsenter into another process's namespaces needs root"),
    pytest.mark.skipif(shutil.which("nsenter") is None or shutil.which("unshare") is None,
                       reason="util-linux nsenter and unshare are not installed"),
]


@pytest.fixture
def target(tmp_path):
    """A process in its own UTS, network and mount namespaces, with a 64 KiB tmpfs of its own on
    ``tmp_path/small`` (the host's directory stays empty)."""
    small = tmp_path / "small"
    small.mkdir()
    proc = subprocess.Popen(["unshare", "--uts", "--net", "--mount", "--propagation", "private", "sh", "-c",
                             f"mount -t tmpfs -o size=64k none {small} && echo ready && exec sleep 60"],
                            stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"ready\n"
    yield proc
    proc.kill()
    proc.wait()


def connect(target, **options):
    conn = connection_loader.get("pyforkexec.isolation.nsenter", PlayContext(), None)
    conn.set_options(direct={"remote_addr": str(target), **options})
    conn._connect()
    return conn


class Interrupted(Exception):
    """What the test's signal handler raises in the middle of communicate() (a task's timeout does)."""


def test_an_interrupted_command_is_killed_with_what_it_started(target):
    """A task's timeout raises in the middle of communicate(): nsenter and what it started in the
    target are killed and reaped, not left running there."""
    conn = connect(target.pid)
    marker = f"pfe-nsenter-ut-{os.getpid()}"
    started = []

    def running():
        found = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True, check=False)
        return found.stdout.split()

    def interrupt():
        deadline = time.monotonic() + 10
        while not started and time.monotonic() < deadline:  # until the command runs in the target
            started.extend(running())
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGALRM)

    def raise_interrupted(signum, frame):
        raise Interrupted()

    old = signal.signal(signal.SIGALRM, raise_interrupted)
    thread = threading.Thread(target=interrupt)
    thread.start()
    try:
        with pytest.raises(Interrupted):
            pid = os.getpid()
            # the pipes to nsenter closed first: nothing but nsenter keeps communicate() waiting
            conn.exec_command(f"exec >/dev/null 2>&1; sh -c 'sleep 30.{pid}; : {marker}' & sleep 31.{pid}")
    finally:
        thread.join()
        signal.signal(signal.SIGALRM, old)
        conn.close()
    assert started, "the command never ran"
    sleeps = subprocess.run(["pgrep", "-f", f"sleep 3[01].{os.getpid()}"], capture_output=True, check=False)
    assert (running(), sleeps.stdout) == ([], b""), "left running"


def test_a_file_that_does_not_fit_is_not_left_in_part(target, tmp_path):
    big = tmp_path / "big"
    big.write_bytes(os.urandom(256 * 1024))
    conn = connect(target.pid)
    try:
        with pytest.raises(AnsibleError, match="failed to transfer"):
            conn.put_file(str(big), str(tmp_path / "small" / "big"))
        rc, out, err = conn.exec_command(f"ls -A {tmp_path / 'small'}")
        assert (rc, out) == (0, b""), err
    finally:
        conn.close()


def test_a_failed_fetch_leaves_the_destination_as_it_was(target, tmp_path):
    kept = tmp_path / "kept"
    kept.write_text("precious\n")
    conn = connect(target.pid)
    try:
        for dest in (kept, tmp_path / "new"):
            with pytest.raises(AnsibleError, match="failed to transfer"):
                conn.fetch_file("/nonexistent-pfe", str(dest))
        with pytest.raises(AnsibleError):
            conn.fetch_file("/etc/hostname", str(tmp_path / "no-such-dir" / "x"))
        conn.fetch_file("/etc/hostname", str(tmp_path / "hostname"))
    finally:
        conn.close()
    assert kept.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostname", "kept", "small"]  # no part file


def test_a_target_in_the_hosts_namespaces_is_unreachable():
    host = subprocess.Popen(["sleep", "60"])
    try:
        with pytest.raises(AnsibleConnectionFailure, match="has none of its own mount, net, pid, ipc"):
            connect(host.pid)
    finally:
        host.kill()
        host.wait()


def test_an_empty_namespaces_list_is_refused(target):
    with pytest.raises(AnsibleConnectionFailure, match="namespaces: an empty list enters nothing"):
        connect(target.pid, namespaces=[])
