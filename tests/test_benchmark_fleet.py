"""benchmarks/collection/fleet.py: the inventory it converges gives every host names and a subnet of its
own that the example playbook can use (interface names within the kernel's 15 bytes), and its account of
what ran once reads ansible-playbook's output as it is."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks" / "collection"))

import fleet  # noqa: E402


def test_every_host_has_its_own_names_and_subnet() -> None:
    hosts = fleet.inventory(50)["all"]["children"]["nshosts"]["hosts"]
    assert len(hosts) == 50
    prefixes = [h["isolated_http_prefix"] for h in hosts.values()]
    subnets = [h["isolated_http_subnet"] for h in hosts.values()]
    assert len(set(prefixes)) == len(set(subnets)) == 50
    assert all(len(f"pfe-{p}0") <= 15 for p in prefixes)
    assert all(0 <= int(s.rsplit(".", 1)[1]) <= 255 for s in subnets)


def test_tasks_run_once_are_counted_per_host() -> None:
    log = ("TASK [r : Build the wheels] ***\nok: [pfb1]\n\nTASK [r : Install from the wheels] **\n"
           "changed: [pfb1]\nchanged: [pfb2]\nTASK [r : Start] *\nok: [pfb1]\n")
    assert fleet._once_lines(log) == {"r : Build the wheels": 1, "r : Install from the wheels": 2}


def test_a_guest_joins_the_inventory_with_its_own_names_and_ssh() -> None:
    guest = {"address": "127.0.0.1", "port": 40022, "user": "root", "identity_file": "/k/id_ed25519"}
    children = fleet.inventory(3, guest)["all"]["children"]
    (vm,) = children["guests"]["hosts"].values()
    assert (vm["ansible_host"], vm["ansible_port"], vm["ansible_user"]) == ("127.0.0.1", 40022, "root")
    assert vm["ansible_ssh_private_key_file"] == "/k/id_ed25519"
    hosts = [*children["nshosts"]["hosts"].values(), vm]
    assert len({h["isolated_http_prefix"] for h in hosts}) == 4
    assert len({h["isolated_http_subnet"] for h in hosts}) == 4
    assert "guests" not in fleet.inventory(3)["all"]["children"]
