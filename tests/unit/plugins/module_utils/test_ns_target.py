"""The namespaces the nsenter connection enters, held open from its connect (ns_target.Captured), against
the real kernel: nsenter given the open files runs in the target's namespaces and root, and once the
target has ended nothing runs anywhere."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils.ns_target import Captured, TargetGone

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="nsenter into another process's namespaces needs root"),
    pytest.mark.skipif(shutil.which("nsenter") is None or shutil.which("unshare") is None,
                       reason="util-linux nsenter and unshare are not installed"),
]

HOSTNAME = "pfe-ns-target"


@pytest.fixture
def target():
    """A process in its own UTS, network and mount namespaces, with a private tmpfs on /mnt."""
    proc = subprocess.Popen(["unshare", "--uts", "--net", "--mount", "--propagation", "private", "sh", "-c",
                             f"hostname {HOSTNAME} && mount -t tmpfs none /mnt && touch /mnt/inside "
                             "&& echo ready && exec sleep 60"], stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"ready\n"
    yield proc
    proc.kill()
    proc.wait()


def _inside(captured, command):
    captured.check()
    return subprocess.run(["nsenter", *captured.options(), "--", "sh", "-c", command], capture_output=True,
                          text=True, pass_fds=tuple(captured.fds.values()), check=True).stdout


def test_commands_run_in_the_target_s_namespaces_and_root(target):
    captured = Captured(target.pid)
    try:
        assert set(captured.fds) >= {"uts", "net", "mount", "root", "wd"} and "user" not in captured.fds
        assert _inside(captured, "hostname").strip() == HOSTNAME
        theirs = os.readlink(f"/proc/{target.pid}/ns/net")
        assert _inside(captured, "readlink /proc/self/ns/net").strip() == theirs
        assert _inside(captured, "ls /mnt").split() == ["inside"]
        assert not os.path.exists("/mnt/inside")  # the host's /mnt is not the target's
    finally:
        captured.close()


def test_only_the_namespaces_asked_for(target):
    captured = Captured(target.pid, ["uts"])
    try:
        assert set(captured.fds) == {"uts", "root", "wd"}
        assert _inside(captured, "hostname").strip() == HOSTNAME
        assert _inside(captured, "readlink /proc/self/ns/net").strip() == os.readlink("/proc/self/ns/net")
    finally:
        captured.close()


def test_a_target_that_ended_runs_nothing(target):
    captured = Captured(target.pid)
    try:
        target.kill()
        target.wait()
        with pytest.raises(TargetGone):
            captured.check()
    finally:
        captured.close()
    assert captured.fds == {}
    with pytest.raises(TargetGone):
        Captured(target.pid)  # reaped: no such process
