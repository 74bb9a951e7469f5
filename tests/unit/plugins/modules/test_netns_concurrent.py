"""Two runs of the netns module on one namespace at once: the options the namespace has in the kernel
are the ones persisted for the next boot (real namespaces, each run a process of its own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
from ansible_collections.pyforkexec.isolation.plugins.modules import netns as netns_module
from ansible_collections.pyforkexec.isolation.tests.unit.plugins import lock_wait

# The directory that holds ansible_collections, for a module run as a process of its own.
_COLLECTIONS = os.path.abspath(os.path.join(os.path.dirname(netns_module.__file__), *[os.pardir] * 5))


def _module_process(args):
    env = dict(os.environ, PYTHONPATH=_COLLECTIONS)
    proc = subprocess.Popen([sys.executable, "-m", netns_module.__name__], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd="/")
    proc.stdin.write(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    proc.stdin.close()
    proc.stdin = None
    return proc


def _done_or_waiting_for_a_lock(proc):
    """Until ``proc`` has exited or waits for a lock."""
    deadline = time.monotonic() + 120
    while proc.poll() is None:
        if lock_wait.waits_for_a_lock(proc.pid):
            return
        assert time.monotonic() < deadline, "the other run neither ended nor waited"
        time.sleep(0.01)


def _forwarding(name):
    out = subprocess.run(["ip", "netns", "exec", name, "cat", "/proc/sys/net/ipv4/ip_forward"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.skipif(os.geteuid() != 0, reason="makes network namespaces: needs root")
def test_a_run_between_the_converge_and_the_options_file_of_another_loses_nothing(
        run_module, unique_name, monkeypatch):
    """A second run converged the namespace (forwarding off) and wrote its options while the first was
    between its converge (forwarding on) and its write: the kernel had the second's, the file the
    first's, and the next boot brought back the first's. One run at a time now (paths.converge_lock):
    the second converges and writes after the first."""
    name = unique_name()
    real = netns_module.persistence
    other = []

    def meanwhile(files, params, present, run):
        other.append(_module_process(dict(name=name, persist=True, sysctls={"net.ipv4.ip_forward": "0"})))
        _done_or_waiting_for_a_lock(other[0])
        return real(files, params, present, run)

    monkeypatch.setattr(netns_module, "persistence", meanwhile)
    try:
        first = run_module(netns_module, dict(name=name, persist=True, sysctls={"net.ipv4.ip_forward": "1"}))
        out, err = other[0].communicate(timeout=120)
        second = json.loads(out or "{}")
        assert first.get("failed") is not True and second.get("failed") is not True, (first, out, err)
        with open(paths.netns_config_path(name)) as f:
            persisted = json.load(f)["sysctls"]["net.ipv4.ip_forward"]
        assert persisted == _forwarding(name) == "0"
    finally:
        monkeypatch.setattr(netns_module, "persistence", real)
        gone = run_module(netns_module, dict(name=name, state="absent"))
        assert gone.get("failed") is not True, gone
    assert not os.path.exists(paths.netns_config_path(name))
