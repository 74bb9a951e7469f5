"""The oracle of a network namespace's converge from A to B, on the real kernel (shared by
test_netns_transitions.py and test_netns_pairs.py): what the kernel has (read with iproute2, not with
the code under test), B as the kernel must show it, what both A and B contain and so must survive,
netlink monitors that see every RTM_DEL* while B is applied, and ``transition``, which checks it all.
``env`` is a dict of the namespace's and the host links' names (the tests' fixtures make it)."""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import socket
import threading
from typing import Any, Optional

from helpers.cli import run
from pyforkexec import netns
from pyforkexec.netns import options as netns_options

MANAGED = {"boot", "static"}  # the route protocols netns manages (what `ip route add` and pyroute2 use)
RTPROT = {3: "boot", 4: "static"}
IFF_UP = 0x1
GROUPS = 0x1 | 0x10 | 0x40 | 0x100 | 0x400  # RTMGRP_LINK, IPV4_IFADDR, IPV4_ROUTE, IPV6_IFADDR, IPV6_ROUTE
NLM_F_REPLACE = 0x100  # on an RTM_NEWROUTE: it took the place of the route of its key, with no RTM_DELROUTE


def ip(*args: str) -> Any:
    res = run(["ip", "-j", *args])
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout or "[]")


# --- what the kernel has, read with iproute2 ------------------------------------------------------

def _links(*prefix: str) -> dict[str, dict]:
    out = {}
    for link in ip(*prefix, "address", "show"):
        addrs = sorted(str(ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}"))
                       for a in link.get("addr_info", [])
                       if not (a["family"] == "inet6" and a.get("scope") == "link"))
        out[link["ifname"]] = dict(index=link["ifindex"], mtu=link["mtu"], mac=link.get("address"),
                                   master=link.get("master"), up="UP" in link["flags"], addresses=addrs)
    return out


def _routes(ns: str, links: dict[str, dict]) -> list[tuple]:
    """(family, dst, gateway, dev, ifindex, metric) of the managed routes of the main table."""
    out = []
    for family in ("-4", "-6"):
        for r in ip("-n", ns, family, "route", "show", "table", "main"):
            if r.get("protocol") not in MANAGED or r.get("type", "unicast") != "unicast":
                continue
            dst = r["dst"]
            if dst == "default":
                dst = "0.0.0.0/0" if family == "-4" else "::/0"
            dst = str(ipaddress.ip_network(dst, strict=False))
            dev = r.get("dev")
            out.append((int(family[1]), dst, r.get("gateway"), dev, links.get(dev, {}).get("index"),
                        r.get("metric", 0)))
    return sorted(out, key=str)


def kernel(env: dict) -> dict:
    ns = env["netns"]
    host = {n: v for n, v in _links().items() if n in env["host_names"]}
    inside = _links("-n", ns) if ns in [n["name"] for n in ip("netns", "list")] else {}
    return dict(host=host, ns=inside, routes=_routes(ns, inside) if inside else [])


def sysctl(ns: str, key: str) -> str:
    res = run(["ip", "netns", "exec", ns, "cat", "/proc/sys/" + key.replace(".", "/")])
    assert res.returncode == 0, res.stderr
    return " ".join(res.stdout.split())


# --- the oracle: B as the kernel must show it ----------------------------------------------------

def _norm(addresses: list[str]) -> list[str]:
    return sorted({str(ipaddress.ip_interface(a)) for a in addresses})


def _route_family(r: dict) -> int:
    if r.get("gateway"):
        return ipaddress.ip_address(r["gateway"]).version
    return 4 if r["dst"] == "default" else ipaddress.ip_network(r["dst"]).version


def _onlink_dev(gateway: str, doc: dict) -> Optional[str]:
    """The veth of ``doc`` whose subnet holds ``gateway`` (the generator keeps subnets per link): an
    address's, or a route's that has a dev and no gateway."""
    gw = ipaddress.ip_address(gateway)
    for v in doc["veths"]:
        if any(gw in ipaddress.ip_interface(a).network for a in v["addresses"]):
            return v["name"]
    for r in doc["routes"]:
        if r.get("dev") and not r.get("gateway") and r["dst"] != "default" \
                and gw in ipaddress.ip_network(r["dst"], strict=False):
            return r["dev"]
    return None


def expected_routes(doc: dict) -> list[tuple]:
    out = []
    for r in [*doc["routes"], *(dict(dst="default", gateway=g) for g in doc["gateway"])]:
        family = _route_family(r)
        dst = r["dst"]
        if dst == "default":
            dst = "0.0.0.0/0" if family == 4 else "::/0"
        dst = str(ipaddress.ip_network(dst, strict=False))
        gateway = str(ipaddress.ip_address(r["gateway"])) if r.get("gateway") else None
        dev = r.get("dev") or _onlink_dev(gateway, doc)
        metric = r.get("metric")  # none: any will do
        if metric == 0 and family == 6:
            metric = 1024  # what the kernel makes of an IPv6 route's 0
        out.append((family, dst, gateway, dev, metric))
    return out


def routes_match(have: list[tuple], want: list[tuple]) -> bool:
    """Each wanted route is one of the kernel's, and the kernel has no other."""
    left = list(have)
    for w in sorted(want, key=lambda w: w[4] is None):
        match = next((h for h in left if h[:4] == w[:4] and w[4] in (None, h[4])), None)
        if match is None:
            return False
        left.remove(match)
    return not left


def assert_is(state: dict, doc: dict, env: dict) -> None:
    """The kernel shows exactly ``doc`` (what it declares; undeclared MTUs and MACs are the kernel's)."""
    ns, host = state["ns"], state["host"]
    assert ns["lo"]["up"]
    assert sorted(n for n in ns if n != "lo") == sorted(v["name"] for v in doc["veths"])
    for v in doc["veths"]:
        inside, peer = ns[v["name"]], host.get(v["peer"])
        assert peer is not None, f"host end {v['peer']} missing"
        assert inside["up"] and peer["up"]
        assert inside["addresses"] == _norm(v["addresses"]), v["name"]
        assert peer["addresses"] == _norm(v["peer_addresses"]), v["peer"]
        assert peer["master"] == v["bridge"]
        if v["mtu"] is not None:
            assert inside["mtu"] == peer["mtu"] == v["mtu"]
        if v["mac"] is not None:
            assert inside["mac"] == v["mac"]
        if v["peer_mac"] is not None:
            assert peer["mac"] == v["peer_mac"]
    gone = {p for p in env["peers"] if p not in {v["peer"] for v in doc["veths"]}}
    assert not gone & set(host), "a host end of a veth no longer declared is left"
    for b in doc["bridges"]:
        bridge = host[b["name"]]
        assert bridge["up"] and bridge["addresses"] == _norm(b["addresses"]), b["name"]
        if b["mtu"] is not None:
            assert bridge["mtu"] == b["mtu"], b["name"]
    have = [(f, d, g, dev, m) for f, d, g, dev, _, m in state["routes"]]
    assert routes_match(have, expected_routes(doc)), (have, expected_routes(doc))
    for key, value in doc["sysctls"].items():
        assert sysctl(env["netns"], key) == str(int(value)), key


# --- what must survive: objects of A still there in B, by interface index -------------------------

def survivors(a: dict, b: dict, bridges: Any = ()) -> dict[str, Any]:
    """The addresses, routes and links present before and after (a link made again has a new index), the
    links up before and after, and the MACs of the ``bridges`` there before and after, by index
    (tests/test_netns_bridge_mac.py)."""
    out: dict[str, Any] = dict(links=set(), up=set(), addresses=set(), routes=set())
    out["bridge_macs"] = {a["host"][n]["index"]: a["host"][n]["mac"] for n in bridges
                          if n in a["host"] and a["host"][n]["index"] == b["host"].get(n, {}).get("index")}
    for side in ("host", "ns"):
        before = {v["index"]: v for v in a[side].values()}
        after = {v["index"]: v for v in b[side].values()}
        for index in before.keys() & after.keys():
            out["links"].add((side, index))
            if before[index]["up"] and after[index]["up"]:
                out["up"].add((side, index))
            for addr in set(before[index]["addresses"]) & set(after[index]["addresses"]):
                out["addresses"].add((side, index, addr))
    out["routes"] = {(f, d, g, i, m) for f, d, g, _, i, m in a["routes"]} & {
        (f, d, g, i, m) for f, d, g, _, i, m in b["routes"]}
    # The one loss the kernel forces: the last IPv4 address of a link takes every IPv4 route through
    # the link with it (fib_disable_ip), so a route through a link that B leaves without IPv4 goes.
    ns_before = {v["index"]: v for v in a["ns"].values()}
    ns_after = {v["index"]: v for v in b["ns"].values()}

    def v4(link: Optional[dict]) -> bool:
        return bool(link) and any(":" not in x for x in link["addresses"])

    out["routes"] = {r for r in out["routes"]
                     if not (r[0] == 4 and v4(ns_before.get(r[3])) and not v4(ns_after.get(r[3])))}
    # (family, index) of the links inside whose routes of that family the kernel leaves where they are
    # (kept, and for IPv4 not left without an IPv4 address): a route of A through another one goes
    # with its link.
    out["routed_links"] = {(f, i) for side, i in out["links"] if side == "ns" for f in (4, 6)
                           if not (f == 4 and v4(ns_before.get(i)) and not v4(ns_after.get(i)))}
    return out


class Monitor:
    """Netlink sockets bound to the link, address and route groups, on the host and in the netns."""

    def __init__(self, ns: str) -> None:
        self.socks = {"host": self._socket(), "ns": self._socket_in(f"/run/netns/{ns}")}

    @staticmethod
    def _socket() -> socket.socket:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.NETLINK_ROUTE)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        s.bind((0, GROUPS))
        return s

    def _socket_in(self, path: str) -> socket.socket:
        """A socket of the netns at ``path``: made by a thread that joined it (a socket stays in the
        namespace it was made in)."""
        from pyforkexec.child import _child

        made: dict[str, Any] = {}

        def make() -> None:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    _child.setns(fd, 0x40000000)  # CLONE_NEWNET, for this thread only
                finally:
                    os.close(fd)
                made["sock"] = self._socket()
            except OSError as e:
                made["error"] = e

        thread = threading.Thread(target=make)
        thread.start()
        thread.join()
        if "error" in made:
            raise made["error"]
        return made["sock"]

    def events(self) -> list[tuple]:
        """(side, event, key, netlink flags) of every message received so far, in order."""
        from pyroute2.netlink.rtnl.marshal import MarshalRtnl

        marshal, out = MarshalRtnl(), []
        for side, s in self.socks.items():
            while True:
                try:
                    data = s.recv(1 << 20)
                except BlockingIOError:
                    break
                except OSError as e:  # ENOBUFS: events were lost, and the check would mean nothing
                    assert e.errno != errno.ENOBUFS, "the netlink monitor overflowed"
                    raise
                for msg in marshal.parse(data):
                    out.append((side, msg["event"], _key(msg), msg["header"]["flags"]))
        return out

    def close(self) -> None:
        for s in self.socks.values():
            s.close()


def _key(msg: Any) -> Any:
    event = msg["event"]
    if event == "RTM_NEWLINK" and msg["family"] == socket.AF_UNSPEC:
        return msg["index"], msg.get_attr("IFLA_ADDRESS"), msg["flags"]
    if event in ("RTM_NEWLINK", "RTM_DELLINK"):
        return msg["index"] if msg["family"] == socket.AF_UNSPEC else None  # AF_BRIDGE: port events
    if event in ("RTM_NEWADDR", "RTM_DELADDR"):
        addr = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
        return msg["index"], str(ipaddress.ip_interface(f"{addr}/{msg['prefixlen']}"))
    if event in ("RTM_NEWROUTE", "RTM_DELROUTE"):
        table = msg.get_attr("RTA_TABLE") or msg["table"]
        if table != 254 or msg["proto"] not in RTPROT or msg["type"] != 1:
            return None
        family = 6 if msg["family"] == socket.AF_INET6 else 4
        dst = msg.get_attr("RTA_DST") or ("::" if family == 6 else "0.0.0.0")
        return (family, str(ipaddress.ip_network(f"{dst}/{msg['dst_len']}", strict=False)),
                msg.get_attr("RTA_GATEWAY"), msg.get_attr("RTA_OIF"), msg.get_attr("RTA_PRIORITY") or 0)
    return None


def losses(events: list[tuple], kept: dict[str, Any]) -> list[tuple]:
    """The events that removed (or re-made) something that A and B both have, took down a link up in
    both, or gave a bridge that both have another MAC, even for a moment."""
    out = []
    macs = kept["bridge_macs"]
    for side, event, key, _ in events:
        if key is None:
            continue
        if ((event == "RTM_DELLINK" and (side, key) in kept["links"])
                or (event == "RTM_NEWLINK" and side == "host" and key[0] in macs and key[1] != macs[key[0]])
                or (event == "RTM_NEWLINK" and (side, key[0]) in kept["up"] and not key[2] & IFF_UP)
                or (event == "RTM_DELADDR" and (side, *key) in kept["addresses"])
                or (event in ("RTM_DELROUTE", "RTM_NEWROUTE") and side == "ns" and key in kept["routes"])):
            out.append((side, event, key))
    return out


def unrouted(events: list[tuple], before: dict, after: dict, kept: dict[str, Any]) -> list[tuple]:
    """The route events after which a destination that both A and B route had no managed route: the
    namespace's routes replayed from A's, an RTM_NEWROUTE with NLM_F_REPLACE taking the place of the
    route of its key (family, dst, metric). A destination whose routes in A all go with their link (one
    deleted or made again, or left without IPv4) is counted when B routes it through a link that both
    have and the kernel leaves its routes on (survivors' routed_links): B's route is added (or replaces
    A's) before A's link goes. Not counted, the kernel taking A's routes before B's can be there: one
    that B routes only through links that A does not have (made by the plan, or made again), or, for
    IPv4, through a link left without IPv4."""
    watched = {(f, d) for f, d, _, _, i, _ in [*before["routes"], *after["routes"]]
               if (f, i) in kept["routed_links"]}
    watched &= {(f, d) for f, d, *_ in before["routes"]} & {(f, d) for f, d, *_ in after["routes"]}
    live = [(f, d, g, i, m) for f, d, g, _, i, m in before["routes"]]
    out = []
    for side, event, key, flags in events:
        if side != "ns" or key is None or event not in ("RTM_NEWROUTE", "RTM_DELROUTE"):
            continue
        if event == "RTM_DELROUTE":
            if key in live:
                live.remove(key)
        else:
            if flags & NLM_F_REPLACE:
                live = [r for r in live if (r[0], r[1], r[4]) != (key[0], key[1], key[4])]
            live.append(key)
        if key[:2] in watched and not any(r[:2] == key[:2] for r in live):
            out.append((event, key))
    return out




# --- converging A -> B under the monitors, and what check mode cannot know ----------------------

def options(env: dict, doc: dict) -> dict:
    return netns_options.load(dict(doc, name=env["netns"]))


def transition(env: dict, a: dict, b: dict) -> tuple[netns.Converged, dict, dict, list[tuple]]:
    """Converge to ``a``, then to ``b`` under the monitors; check everything the rule says."""
    a, b = options(env, a), options(env, b)
    netns.converge(env["netns"], a)
    before = kernel(env)
    assert_is(before, a, env)
    planned = netns.converge(env["netns"], b, check=True)
    monitor = Monitor(env["netns"])
    try:
        done = netns.converge(env["netns"], b)
        events = monitor.events()
    finally:
        monitor.close()
    after = kernel(env)
    assert_is(after, b, env)
    assert netns.converge(env["netns"], b).actions == [], "a second converge is not a no-op"
    assert done.actions == planned.actions, "check mode planned otherwise"
    assert planned.after == unknowable(done.after, planned.after, b), "check mode's diff shows otherwise"
    kept = survivors(before, after, env["bridges"])
    lost = losses(events, kept)
    assert lost == [], f"removed on the way though in A and B: {lost}\nactions: {done.actions}"
    gaps = unrouted(events, before, after, kept)
    assert gaps == [], f"a destination A and B both route had no route: {gaps}\nactions: {done.actions}"
    assert done.rewired == planned.rewired, "check mode says otherwise whether the namespace changes"
    if not done.rewired:  # what the services module restarts a service for: nothing inside changed
        assert (after["ns"], after["routes"]) == (before["ns"], before["routes"]), (
            f"the namespace changed, though it was not rewired: {done.actions}")
    return done, before, after, events


def unknowable(real: dict, planned: dict, doc: dict) -> dict:
    """``real`` (a diff side) with what check mode cannot know as check mode shows it: the MACs the
    kernel draws for new links, and the MTU of a bridge that ``doc`` leaves to the kernel (which
    follows the bridge's ports unless somebody set it, and nothing tells whether somebody did)."""
    out = dict(real, veths={n: dict(v) for n, v in real.get("veths", {}).items()},
               bridges={n: dict(v) for n, v in real.get("bridges", {}).items()})
    for name, veth in out["veths"].items():
        for key in ("mac", "peer_mac"):
            if planned.get("veths", {}).get(name, {}).get(key, "") is None:
                veth[key] = None
    declared = {b["name"] for b in doc["bridges"] if b["mtu"] is not None}
    for name, bridge in out["bridges"].items():
        if name not in declared and name in planned.get("bridges", {}):
            bridge["mtu"] = planned["bridges"][name]["mtu"]
    return out
