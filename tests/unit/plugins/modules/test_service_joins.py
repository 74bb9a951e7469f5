"""A running service whose joined namespace was made again under the same path (``ip netns del`` and
``add``; the netns module's absent then present) runs in the old one, which no path names any more: a
converge restarts it into the namespace the path names now, and check mode says so. Real services
under the real pyforkexec daemon (manager=direct), real network namespaces."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
from ansible_collections.pyforkexec.isolation.plugins.modules import service, services

# Stops promptly on SIGTERM, even as PID 1 of its PID namespace.
_ARGV = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.2; done"]

pytestmark = pytest.mark.skipif(shutil.which("ip") is None or os.geteuid() != 0,
                                reason="needs root and iproute2's ip to make network namespaces")


def _ip_netns(*args):
    subprocess.run(["ip", "netns", *args], check=True, capture_output=True)


@pytest.fixture
def joined(run_module, unique_name):
    """(service name, network namespace made for it): the service removed after, then the namespace."""
    made, netns = unique_name(), unique_name()
    _ip_netns("add", netns)
    yield made, netns
    gone = run_module(service, dict(name=made, state="absent", stop_timeout=0))
    subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)
    assert gone.get("failed") is not True, gone


def _net_inode(pid):
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def _entry(name, netns, how):
    joined = dict(netns=netns) if how == "netns" else dict(join=[dict(path=f"/run/netns/{netns}")])
    return dict(name=name, argv=_ARGV, manager="direct", namespaces=["pid"], stop_timeout=5, **joined)


def _converge(run_module, module, entry, check_mode=False):
    """The service's result, from the service module or as one entry of the services module."""
    if module is service:
        return run_module(service, entry, check_mode=check_mode, diff=True)
    result = run_module(services, dict(services=[entry]), check_mode=check_mode, diff=True)
    assert result.get("failed") is not True, result
    return dict(result["services"][entry["name"]], diff=result["diff"])


@pytest.mark.parametrize("module", [service, services], ids=["service", "services"])
@pytest.mark.parametrize("how", ["netns", "join"])
def test_a_joined_namespace_made_again_restarts_the_service_into_it(run_module, joined, how, module):
    """Both runs reported the service unchanged (changed false, no action), and it went on running in the
    namespace that had been deleted, with none of the new one's links, addresses or routes."""
    name, netns = joined
    entry = _entry(name, netns, how)
    started = _converge(run_module, module, entry)
    assert started.get("failed") is not True, started
    old = _net_inode(started["pid"])
    assert old == os.stat(f"/run/netns/{netns}").st_ino
    _ip_netns("del", netns)
    _ip_netns("add", netns)
    new = os.stat(f"/run/netns/{netns}").st_ino
    assert new != old

    planned = _converge(run_module, module, entry, check_mode=True)
    assert planned["changed"] is True and planned["actions"] == ["restart"], planned
    assert planned["pid"] == started["pid"]
    joined = [d for d in planned["diff"] if d.get("after_header", "").endswith("joined namespaces")]
    assert len(joined) == 1 and f"/run/netns/{netns}: [{new}]" in joined[0]["after"], planned["diff"]
    assert f"[{old}]" in joined[0]["before"], joined

    done = _converge(run_module, module, entry)
    assert done["changed"] is True and done["actions"] == ["restart"], done
    assert done["pid"] != started["pid"] and _net_inode(done["pid"]) == new
    again = _converge(run_module, module, entry)
    assert again["changed"] is False and again["pid"] == done["pid"], again
    assert not os.path.exists(paths.pending_path(name))


@pytest.mark.parametrize("module", [service, services], ids=["service", "services"])
def test_a_joined_namespace_file_respelled_is_no_change(run_module, joined, module):
    """(h147) A join's path written another way (//run/netns/./NAME for /run/netns/NAME) is the same
    namespace file: its spec was rewritten as spelled and the running service restarted."""
    name, netns = joined
    entry = _entry(name, netns, "join")
    started = _converge(run_module, module, entry)
    assert started.get("failed") is not True, started
    respelled = dict(entry, join=[dict(path=f"//run/netns/./{netns}")])
    planned = _converge(run_module, module, respelled, check_mode=True)
    again = _converge(run_module, module, respelled)
    assert (planned["changed"], again["changed"]) == (False, False), (planned, again)
    assert (again["pid"], again["main_pid"]) == (started["pid"], started["main_pid"])
