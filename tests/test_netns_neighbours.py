"""What the neighbours of a namespace cached stays true through a converge, on the real kernel.

A bridge of ours keeps its MAC address whatever ports come and go. A Linux bridge that nobody gave
a MAC carries its smallest port's, and takes another one when that port goes. Every neighbour that
cached the old MAC, such as each service's entry for its gateway (the bridge's address), then sends
into the void until the entry expires: removing one service cut the others on its bridge off from
the host for 20-50 s (measured: 32 s and 21 s). So a bridge the netns converge makes gets a MAC of
its own, and one made before that (by an older pyforkexec) is pinned at the MAC it has before any of
its ports goes. A bridge that is not ours is left as it is.

The other way round, an address added inside a namespace is on a new link with a new MAC whenever it
was another link's until then (a service removed and made again, another service taking its
address): the host's entry for it still names the old MAC, and the host could not reach the new one
for 51 s (measured). So the converge drops the host's entry for each address it adds inside a
namespace, unless somebody made that entry (permanent or noarp).

Connectivity is checked as the services feel it: a TCP connection from inside each namespace that
stays to a listener on the bridge's address, right after the other namespace went, and one from the
host to a listener inside the namespace that took over an address.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any, Optional

import pytest
from helpers.bridged import bridged_names
from helpers.cli import run, wait_for
from helpers.marks import needs_root

from pyforkexec import netns, nsinfo
from pyforkexec.netns import options as netns_options
from pyforkexec.netns.model import BRIDGE_ALIAS, veth_alias

pytestmark = needs_root

SUBNET = "10.214.9"
GATEWAY = f"{SUBNET}.1"
SUBNET6 = "fd21:4:9"
NET_ADDR_SET = "3"  # /sys/class/net/*/addr_assign_type of a MAC someone set


@pytest.fixture
def names() -> Iterator[dict]:
    """Three namespaces with a veth each on one bridge (unique names), removed whatever happens."""
    with bridged_names("bm", 3) as found:
        yield found


def doc(names: dict, i: int, host: int = 0) -> dict:
    """Namespace ``i`` on the bridge, with the addresses .10+i (or ``host``) of both subnets."""
    host = host or 10 + i
    return netns_options.load(dict(
        name=names["netns"][i],
        bridges=[dict(name=names["bridge"], addresses=[f"{GATEWAY}/24", f"{SUBNET6}::1/64"])],
        veths=[dict(name="eth0", peer=names["peers"][i], bridge=names["bridge"],
                    addresses=[f"{SUBNET}.{host}/24", f"{SUBNET6}::{host}/64"])],
        gateway=[GATEWAY]))


def sysfs(link: str, key: str) -> str:
    with open(f"/sys/class/net/{link}/{key}") as f:
        return f.read().strip()


def sh(*argv: str) -> None:
    res = run(list(argv))
    assert res.returncode == 0, res.stderr


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP listener on the host, on every address: the namespaces connect to the bridge's."""
    with socket.create_server(("0.0.0.0", 0), backlog=16) as server:
        yield server


def listening(name: str, address: str, family: int = socket.AF_INET) -> socket.socket:
    """A TCP listener on ``address`` (the port the kernel picks) inside netns ``name``."""
    sock = nsinfo.socket_in(f"/run/netns/{name}", "net", family, socket.SOCK_STREAM)
    sock.bind((address, 0))
    sock.listen(4)
    return sock


def connects(name: Optional[str], address: str, port: int, family: int = socket.AF_INET) -> bool:
    """Whether a TCP connection from inside netns ``name`` (the host's when None) opens within a second."""
    if name is None:
        sock = socket.socket(family, socket.SOCK_STREAM)
    else:
        sock = nsinfo.socket_in(f"/run/netns/{name}", "net", family, socket.SOCK_STREAM)
    with sock:
        sock.settimeout(1.0)
        return sock.connect_ex((address, port)) == 0


def reached(source: Optional[str], name: str, address: str, family: int = socket.AF_INET) -> bool:
    """Whether ``source`` (a netns, or the host) reaches a listener on ``address`` in netns ``name``."""
    with listening(name, address, family) as server:
        return connects(source, address, server.getsockname()[1], family)


def smallest_mac_first(names: dict, indexes: list[int]) -> list[int]:
    return sorted(indexes, key=lambda i: sysfs(names["peers"][i], "address"))


def test_the_others_keep_their_gateway_when_one_goes(names: dict, listener: Any) -> None:
    """Each removal, the port whose MAC an unpinned bridge would carry first: the bridge keeps its MAC
    and the namespaces that stay reach their gateway at once."""
    port = listener.getsockname()[1]
    made = [netns.converge(name, doc(names, i)) for i, name in enumerate(names["netns"])]
    assert f"create_bridge {names['bridge']}" in made[0].actions
    assert sysfs(names["bridge"], "addr_assign_type") == NET_ADDR_SET
    mac = sysfs(names["bridge"], "address")
    assert mac not in {sysfs(p, "address") for p in names["peers"]}, "the bridge carries a port's MAC"
    left = list(range(3))
    assert all(connects(names["netns"][i], GATEWAY, port) for i in left)
    for gone in smallest_mac_first(names, left)[:2]:
        netns.converge(names["netns"][gone], None)
        left.remove(gone)
        assert sysfs(names["bridge"], "address") == mac
        assert [connects(names["netns"][i], GATEWAY, port) for i in left] == [True] * len(left)


def _legacy(names: dict, indexes: list[int]) -> None:
    """What an older pyforkexec made: our bridge with the kernel's MAC (not set by anyone), and our
    veths on it, made here with iproute2."""
    bridge = names["bridge"]
    sh("ip", "link", "add", bridge, "type", "bridge")
    sh("ip", "link", "set", bridge, "alias", BRIDGE_ALIAS)
    sh("ip", "address", "add", f"{GATEWAY}/24", "dev", bridge)
    sh("ip", "address", "add", f"{SUBNET6}::1/64", "dev", bridge)
    sh("ip", "link", "set", bridge, "up")
    for i in indexes:
        name, peer = names["netns"][i], names["peers"][i]
        sh("ip", "netns", "add", name)
        sh("ip", "link", "add", peer, "type", "veth", "peer", "name", "eth0", "netns", name)
        sh("ip", "link", "set", peer, "alias", veth_alias(name, "eth0"), "master", bridge, "up")
        sh("ip", "-n", name, "address", "add", f"{SUBNET}.{10 + i}/24", "dev", "eth0")
        sh("ip", "-n", name, "address", "add", f"{SUBNET6}::{10 + i}/64", "dev", "eth0")
        sh("ip", "-n", name, "link", "set", "eth0", "up")
        sh("ip", "-n", name, "link", "set", "lo", "up")
        sh("ip", "-n", name, "route", "add", "default", "via", GATEWAY)
    assert sysfs(bridge, "addr_assign_type") != NET_ADDR_SET


def test_a_bridge_made_before_is_pinned_before_a_port_goes(names: dict, listener: Any) -> None:
    port = listener.getsockname()[1]
    _legacy(names, [0, 1, 2])
    bridge = names["bridge"]
    carried = sysfs(bridge, "address")
    gone = smallest_mac_first(names, [0, 1, 2])[0]
    assert carried == sysfs(names["peers"][gone], "address")  # what the kernel does with an unpinned bridge
    stay = [i for i in range(3) if i != gone]
    assert all(connects(names["netns"][i], GATEWAY, port) for i in stay)
    planned = netns.converge(names["netns"][gone], None, check=True)
    assert planned.actions[0] == f"pin_bridge_mac {bridge}"
    assert sysfs(bridge, "addr_assign_type") != NET_ADDR_SET  # check mode changed nothing
    done = netns.converge(names["netns"][gone], None)
    assert done.actions == planned.actions
    pin, delete = f"pin_bridge_mac {bridge}", f"del_veth {names['peers'][gone]}"
    assert done.actions.index(pin) < done.actions.index(delete)
    assert (sysfs(bridge, "address"), sysfs(bridge, "addr_assign_type")) == (carried, NET_ADDR_SET)
    assert [connects(names["netns"][i], GATEWAY, port) for i in stay] == [True, True]
    assert netns.converge(names["netns"][stay[0]], doc(names, stay[0])).actions == []  # pinned: stays so


def test_a_bridge_made_before_is_pinned_by_the_next_converge_at_the_mac_it_has(names: dict) -> None:
    _legacy(names, [0])
    bridge = names["bridge"]
    mac = sysfs(bridge, "address")
    planned = netns.converge(names["netns"][1], doc(names, 1), check=True)
    assert f"pin_bridge_mac {bridge}" in planned.actions
    done = netns.converge(names["netns"][1], doc(names, 1))
    assert done.actions == planned.actions
    assert (sysfs(bridge, "address"), sysfs(bridge, "addr_assign_type")) == (mac, NET_ADDR_SET)
    assert netns.converge(names["netns"][1], doc(names, 1)).actions == []
    assert netns.converge(names["netns"][0], doc(names, 0)).actions == []


def test_a_bridge_that_is_not_ours_is_left_as_it_is(names: dict) -> None:
    bridge = names["bridge"]
    sh("ip", "link", "add", bridge, "type", "bridge")
    sh("ip", "address", "add", f"{GATEWAY}/24", "dev", bridge)
    sh("ip", "link", "set", bridge, "up")
    done = netns.converge(names["netns"][0], doc(names, 0))
    assert not any(line.startswith("pin_bridge_mac") for line in done.actions), done.actions
    assert sysfs(bridge, "addr_assign_type") != NET_ADDR_SET
    assert netns.converge(names["netns"][0], doc(names, 0)).actions == []


def host_neighbour(address: str, bridge: str) -> str:
    """The host's entry for ``address`` on ``bridge`` as ``ip neigh`` shows it ('' when it has none)."""
    res = run(["ip", "neigh", "show", address, "dev", bridge])
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def test_an_address_taken_over_by_a_new_link_is_reached_from_the_host_at_once(names: dict) -> None:
    """Namespace a has .10 and the host talks to it; a goes, c takes .10 (a new veth, a new MAC): the host
    reaches c at once, where it kept sending to a's MAC. b keeps the bridge all along."""
    netns.converge(names["netns"][1], doc(names, 1))
    address = f"{SUBNET}.10"
    netns.converge(names["netns"][0], doc(names, 0))
    assert reached(None, names["netns"][0], address)
    old = host_neighbour(address, names["bridge"])
    assert "lladdr" in old
    netns.converge(names["netns"][0], None)
    netns.converge(names["netns"][2], doc(names, 2, host=10))
    assert reached(None, names["netns"][2], address)
    assert host_neighbour(address, names["bridge"]) != old


def test_the_host_forgets_each_address_added_inside_but_keeps_entries_somebody_made(names: dict) -> None:
    """Stale entries for both families go when a namespace gets their addresses; a permanent one stays."""
    netns.converge(names["netns"][1], doc(names, 1))
    bridge = names["bridge"]
    for address in (f"{SUBNET}.10", f"{SUBNET6}::10"):
        sh("ip", "neigh", "add", address, "lladdr", "02:00:00:00:00:10", "dev", bridge, "nud", "stale")
    sh("ip", "neigh", "add", f"{SUBNET}.12", "lladdr", "02:00:00:00:00:12", "dev", bridge, "nud", "permanent")
    netns.converge(names["netns"][0], doc(names, 0))
    assert host_neighbour(f"{SUBNET}.10", bridge) == ""
    assert host_neighbour(f"{SUBNET6}::10", bridge) == ""
    netns.converge(names["netns"][2], doc(names, 2))
    assert "PERMANENT" in host_neighbour(f"{SUBNET}.12", bridge)


def sysfs_in(name: str, link: str, key: str) -> str:
    """/sys/class/net/LINK/KEY of ``link`` inside netns ``name``."""
    res = run(["ip", "netns", "exec", name, "cat", f"/sys/class/net/{link}/{key}"])
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def neighbour_in(name: str, address: str) -> str:
    """The MAC that netns ``name``'s entry for ``address`` (on eth0) names ('' when it has none)."""
    res = run(["ip", "-n", name, "-j", "neigh", "show", address, "dev", "eth0"])
    assert res.returncode == 0, res.stderr
    return next((e.get("lladdr", "") for e in json.loads(res.stdout or "[]")), "")


def _tentative(name: str) -> bool:
    res = run(["ip", "-n", name, "-6", "address", "show", "dev", "eth0", "tentative"])
    assert res.returncode == 0, res.stderr
    return bool(res.stdout.strip())


@pytest.mark.parametrize("elsewhere", [False, True], ids=["netns-made-here", "netns-made-by-ip"])
@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["ipv4", "ipv6"])
def test_an_address_taken_over_is_reached_from_the_other_namespaces_at_once(names: dict, family: int,
                                                                           elsewhere: bool) -> None:
    """b talks to a at .10 (::10); a goes and c takes the address: b reaches c at once, since c's link
    announced itself (a gratuitous ARP; for IPv6 an unsolicited neighbour advertisement once duplicate
    address detection let the address be used), where b kept sending to a's MAC. Also when c's
    namespace was made by `ip netns add` (the kernel's defaults: no announcements but the link's own)."""
    address = f"{SUBNET}.10" if family == socket.AF_INET else f"{SUBNET6}::10"

    def usable(i: int) -> None:  # IPv6: an address is bound (and announced) once DAD has passed
        if family == socket.AF_INET:
            return
        for _ in range(100):
            if not _tentative(names["netns"][i]):
                return
            time.sleep(0.05)
        raise AssertionError("the address stayed tentative")

    for i in (0, 1):
        netns.converge(names["netns"][i], doc(names, i))
        usable(i)
    assert reached(names["netns"][1], names["netns"][0], address, family)
    netns.converge(names["netns"][0], None)
    if elsewhere:
        sh("ip", "netns", "add", names["netns"][2])
    netns.converge(names["netns"][2], doc(names, 2, host=10))
    usable(2)
    # b sends nothing meanwhile (no probe of its own): only c's announcement can give b's entry for the
    # address c's MAC. Waited for, not slept for: on a loaded machine it takes its time over the bridge.
    mac = sysfs_in(names["netns"][2], "eth0", "address")
    wait_for(lambda: neighbour_in(names["netns"][1], address) == mac, "b to learn c's MAC, announced")
    assert reached(names["netns"][1], names["netns"][2], address, family)


def announcing_of(prefix: list[str], link: str) -> tuple[str, str]:
    """(arp_notify, ndisc_notify) of ``link`` where ``prefix`` runs ``cat`` (the host's with [])."""
    out = []
    for family, key in (("ipv4", "arp_notify"), ("ipv6", "ndisc_notify")):
        path = f"/proc/sys/net/{family}/conf/{link}/{key}"
        res = run([*prefix, "cat", path])
        out.append(res.stdout.strip() if res.returncode == 0 else "")
    return out[0], out[1]


def test_the_announcements_are_set_in_the_namespaces_and_nowhere_else(names: dict) -> None:
    """`all` in the namespace made here, the veth's own in the one made by `ip netns add`; the host's
    own settings (`all`, and a host link of the same name as the veth, where there is one) stay."""
    host_before = {link: announcing_of([], link) for link in ("all", "default", "eth0")}
    netns.converge(names["netns"][0], doc(names, 0))
    sh("ip", "netns", "add", names["netns"][1])
    netns.converge(names["netns"][1], doc(names, 1))
    inside = [["ip", "netns", "exec", name] for name in names["netns"][:2]]
    assert announcing_of(inside[0], "all") == ("1", "1")
    assert announcing_of(inside[0], "eth0") == ("1", "1")
    assert announcing_of(inside[1], "all") == ("0", "0")  # the kernel's, in a namespace made elsewhere
    assert announcing_of(inside[1], "eth0") == ("1", "1")
    assert {link: announcing_of([], link) for link in host_before} == host_before
