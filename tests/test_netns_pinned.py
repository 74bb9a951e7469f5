"""A converge of a named network namespace acts on one namespace: the one it read. Each step opened
/run/netns/NAME again, so a namespace made again under the name meanwhile (``ip netns del`` and
``add`` by another caller) got the rest of the plan (a veth, its addresses) and the converge said it
was done: what the services that join the name find was configured by no plan of theirs, and the one
read was left half done."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import pytest
from helpers.marks import needs_root

from pyforkexec import netns
from pyforkexec.netns import ApplyError, kernel
from pyforkexec.netns import options as netns_options

pytestmark = needs_root

PID = os.getpid() % 100000
NAME, PEER = f"h165pin{PID}", f"h165p{PID}"


def _ip(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *argv], capture_output=True, text=True, check=False)


@pytest.fixture
def named() -> Iterator[str]:
    """Netns NAME made by a converge (loopback only); it, the stranger made under its name, and the
    veth are removed whatever happens."""
    netns.converge(NAME, netns_options.load({"name": NAME}))
    try:
        yield NAME
    finally:
        _ip("link", "del", PEER)
        _ip("netns", "del", NAME)


def _links(name: str) -> dict[str, list[str]]:
    """{link: its IPv4 addresses} inside netns ``name``, read with iproute2."""
    res = _ip("-n", name, "-j", "address", "show")
    assert res.returncode == 0, res.stderr
    return {link["ifname"]: sorted(a["local"] for a in link.get("addr_info", []) if a["family"] == "inet")
            for link in json.loads(res.stdout)}


@pytest.mark.parametrize("at", [0, -1], ids=["before-the-first-action", "before-the-last-action"])
def test_a_namespace_made_again_meanwhile_gets_nothing_of_the_plan(named, monkeypatch, at):
    wanted = netns_options.load({"name": named, "veths": [
        {"name": "eth0", "peer": PEER, "addresses": ["10.165.7.2/24"]}]})
    planned = netns.converge(named, wanted, check=True).actions
    index = at % len(planned)
    real, calls = kernel._apply_one, []

    def made_again_at(h, name, action):
        if len(calls) == index:  # another caller makes another namespace under the name
            assert _ip("netns", "del", named).returncode == 0
            assert _ip("netns", "add", named).returncode == 0
        calls.append(action)
        return real(h, name, action)

    monkeypatch.setattr(kernel, "_apply_one", made_again_at)
    with pytest.raises(ApplyError, match="made again under the name meanwhile"):
        netns.converge(named, wanted)
    assert _links(named) == {"lo": []}  # the stranger's: nothing of the plan there


def test_a_namespace_made_again_meanwhile_is_not_removed_by_absent(named, monkeypatch):
    """state absent removes a namespace it made (its mark on lo, read at the observe): one made again
    under the name meanwhile by another caller, unmarked, was removed in its place."""
    real = kernel._apply_one

    def made_again_first(h, name, action):
        if action[0] == "delete_netns":
            assert _ip("netns", "del", named).returncode == 0
            assert _ip("netns", "add", named).returncode == 0
        return real(h, name, action)

    monkeypatch.setattr(kernel, "_apply_one", made_again_first)
    with pytest.raises(ApplyError, match="made again under the name meanwhile"):
        netns.converge(named, None)
    assert _links(named) == {"lo": []}  # the stranger's, still there
