"""Planning a named network namespace: options normalized by desired(), and the actions plan_present
and plan_absent choose for observed topologies (plain data, as netns.kernel.observe returns it)."""

from __future__ import annotations

import copy
import ipaddress
import re

import pytest
from helpers.marks import needs_root

from pyforkexec.netns import model as m
from pyforkexec.netns import options as netns_options

NAME = "web"


@pytest.fixture
def wanted():
    """wanted(**options) -> desired() of the options, type-checked as ``pyforkexec netns up`` does."""
    return lambda **options: m.desired(netns_options.load(dict(name=NAME, **options)))


def nothing():
    return dict(name=NAME, exists=False, loopback_up=False, bridges={}, veths={}, routes=[], sysctls={},
                host_links={}, host_addresses={}, ns_links=[])


def converged():
    """What the kernel shows once SIMPLE is in place."""
    state = nothing()
    state.update(
        exists=True, loopback_up=True, ns_links=["eth0", "lo"],
        host_links={"br-web": m.BRIDGE_ALIAS, "veth-web": m.veth_alias(NAME, "eth0")},
        bridges={"br-web": dict(kind="bridge", ours=True, mtu=1500, up=True, addresses=["10.42.0.1/24"],
                                ports={"veth-web": 1500}, mac_pinned=True)},
        veths={"eth0": dict(peer="veth-web", peer_mtu=1500, peer_mac="6e:00:00:00:00:01", peer_up=True,
                            wired=True, bridge="br-web", peer_addresses=[], mtu=1500, mac="02:00:00:00:00:0a",
                            up=True, addresses=["10.42.0.10/24", "fd42::a/64"])},
        routes=[m.route_key("default", "10.42.0.1", "eth0", None)],
        sysctls={"net.ipv4.ip_forward": "1"},
    )
    return state


SIMPLE = dict(
    bridges=[dict(name="br-web", addresses=["10.42.0.1/24"])],
    veths=[dict(name="eth0", peer="veth-web", bridge="br-web", mac="02:00:00:00:00:0A",
                addresses=["fd42::000a/64", "10.42.0.10/24"])],
    gateway=["10.42.0.1"],
    sysctls={"net.ipv4.ip_forward": True},
)


def test_desired_normalizes_addresses_macs_routes_and_sysctls(wanted):
    w = wanted(**SIMPLE)
    assert w["veths"]["eth0"]["addresses"] == ["10.42.0.10/24", "fd42::a/64"]
    assert w["veths"]["eth0"]["mac"] == "02:00:00:00:00:0a"
    assert w["routes"] == [m.route_key("default", "10.42.0.1")]
    assert w["sysctls"] == {"net.ipv4.ip_forward": "1"}
    assert w["bridges"] == {"br-web": dict(mtu=None, addresses=["10.42.0.1/24"])}


def test_desired_adds_a_bridge_named_only_by_a_veth_and_full_length_prefixes(wanted):
    w = wanted(veths=[dict(name="eth0", peer="v0", bridge="br9", addresses=["10.0.0.2", "fd00::2/64"])],
               gateway=["fd00::1"], routes=[dict(dst="10.9.0.0/16", dev="eth0", metric=5)])
    assert w["bridges"] == {"br9": dict(mtu=None, addresses=None)}  # None: its addresses left as they are
    assert w["veths"]["eth0"]["addresses"] == ["10.0.0.2/32", "fd00::2/64"]
    assert m.route_key("default6", "fd00::1") in w["routes"]
    assert m.route_key("10.9.0.0/16", None, "eth0", 5) in w["routes"]


ETH0 = dict(name="eth0", peer="v0", addresses=["10.0.0.2/24"])  # desired() copies what it reads


@pytest.mark.parametrize(("options", "error"), [
    (dict(veths=[dict(name="a-long-ifname-16", peer="v0")]), "veths[0].name: 'a-long-ifname-16' is not"),
    (dict(veths=[dict(name="eth0", peer="v0"), dict(name="eth1", peer="v0")]), "veths[1].peer: v0 is used"),
    (dict(veths=[dict(name="lo", peer="v0")]), "veths[0].name: lo is used twice"),
    (dict(veths=[dict(name="eth0", peer="v0", mac="zz")]), "veths[0].mac: 'zz' is not a MAC address"),
    (dict(veths=[dict(name="eth0", peer="v0", addresses=["10.0.0.300/24"])]), "veths[0].addresses: "),
    (dict(routes=[dict(dst="10.0.0.0/8")]), "routes[0]: give a gateway or a dev"),
    (dict(routes=[dict(dst="10.0.0.0/8", dev="eth7")]), "routes[0].dev: 'eth7' is not a link of the"),
    (dict(routes=[dict(dst="10.0.0.0/8", gateway="fd00::1")]), "routes[0]: dst 10.0.0.0/8 and gateway"),
    (dict(gateway=["10.0.0.1", "10.0.0.2"]), "routes: default via 10.0.0.2: a second route to the same"),
    (dict(sysctls={"kernel.pid_max": 100}), "sysctls: kernel.pid_max: only net.* sysctls"),
    # What the kernel refuses halfway through a converge, refused before anything changes instead:
    (dict(veths=[dict(name="eth0", peer="v0", addresses=["0.0.0.0/0"])]),
     "veths[0].addresses: 0.0.0.0/0 is the unspecified address"),
    (dict(veths=[dict(name="eth0", peer="v0", peer_addresses=["::/64"])]),
     "veths[0].peer_addresses: ::/64 is the unspecified address"),
    (dict(bridges=[dict(name="br0", addresses=["224.0.0.5/24"])]),
     "bridges[0].addresses: 224.0.0.5/24 is a multicast group"),
    (dict(veths=[dict(name="eth0", peer="v0", addresses=["::1"])]),
     "veths[0].addresses: ::1/128 is the IPv6 loopback address, which the kernel gives lo alone"),
    (dict(veths=[dict(name="eth0", peer="v0", peer_addresses=["::1/64"])]),
     "veths[0].peer_addresses: ::1/64 is the IPv6 loopback address"),
    (dict(bridges=[dict(name="br0", addresses=["0::1/128"])]),
     "bridges[0].addresses: ::1/128 is the IPv6 loopback address"),
    (dict(veths=[dict(name="eth0", peer="v0", mac="01:00:00:00:00:01")]),
     "veths[0].mac: 01:00:00:00:00:01 is a multicast MAC"),
    (dict(veths=[dict(name="eth0", peer="v0", peer_mac="00-00-00-00-00-00")]), "veths[0].peer_mac: "
     "00:00:00:00:00:00 is a zero MAC"),
    (dict(veths=[ETH0],
          routes=[dict(dst="10.9.0.0/16", gateway="10.0.0.1", metric=-1)]), "routes[0].metric: -1 is not"),
    (dict(veths=[ETH0],
          routes=[dict(dst="10.9.0.0/16", gateway="10.0.0.1", metric=2**32)]),
     "routes[0].metric: 4294967296"),
    (dict(veths=[ETH0], gateway=["10.99.0.1"]),
     "routes: default via 10.99.0.1: the gateway 10.99.0.1 is in no subnet of a link of the namespace"),
    (dict(veths=[ETH0, dict(name="eth1", peer="v1")],
          routes=[dict(dst="10.9.0.0/16", gateway="10.0.0.1", dev="eth1")]),
     "routes: 10.9.0.0/16 via 10.0.0.1 dev eth1: the gateway 10.0.0.1 is in no subnet of a link eth1"),
    (dict(veths=[dict(name="eth0", peer="v0", addresses=["fd00::2/64"])], gateway=["fe80::1"]),
     "gateway[0]: the link-local gateway fe80::1 is on every link: give its dev"),
    (dict(veths=[dict(name="eth0", peer="v0", addresses=["fd00::2/64"])],
          routes=[dict(dst="fd01::/64", gateway="fe80::1%eth0", dev="eth0")]),
     "routes[0].gateway: fe80::1%eth0: give the link as dev, not as a %zone"),
    (dict(veths=[dict(name="eth0", peer="v0", addresses=["fe80::5/64"])]),
     "veths[0].addresses: fe80::5/64 is a link-local address"),
    (dict(veths=[ETH0], gateway=["10.0.0.2"]),
     "routes: default via 10.0.0.2: the gateway 10.0.0.2 is an address of this namespace (link eth0)"),
    (dict(veths=[ETH0], gateway=["10.0.0.255"]),
     "routes: default via 10.0.0.255: the gateway 10.0.0.255 is the network or broadcast address of "
     "10.0.0.0/24"),
    (dict(veths=[ETH0, dict(name="eth1", peer="v1", addresses=["10.0.0.3/24"])], gateway=["10.0.0.1"]),
     "routes: default via 10.0.0.1: links eth0, eth1 all reach the gateway: give the route's dev"),
    (dict(veths=[ETH0], routes=[dict(dst="10.0.0.0/24", dev="eth0")]),
     "routes: 10.0.0.0/24 dev eth0: the kernel makes this route itself for the address 10.0.0.2/24"),
    (dict(bridges=[dict(name="br0", addresses=["fd00::1/64"])],
          veths=[dict(name="eth0", peer="v0", bridge="br0", mtu=576)]),
     "bridges[0].mtu: the bridge has IPv6 addresses, and unset it takes its smallest port's MTU (576"),
    (dict(veths=[ETH0], sysctls={"net.ipv4.conf.eth9.rp_filter": 1}),
     "sysctls: net.ipv4.conf.eth9.rp_filter: names no link of the namespace (its links: lo, eth0"),
    (dict(veths=[dict(name="v.x", peer="v0")], sysctls={"net/ipv4/conf/v.x/rp_filter": 1}),
     "sysctls: net.ipv4.conf.v.x.rp_filter: the link's name has a dot"),
    (dict(veths=[dict(name="eth0", peer="v0", addresses=["10.0.0.255/24"])]),
     "veths[0].addresses: 10.0.0.255/24 is the broadcast address of 10.0.0.0/24"),
    # ip route refuses them too ("Invalid prefix for given prefix length")
    (dict(veths=[ETH0], routes=[dict(dst="10.9.0.1/16", dev="eth0")]),
     "routes[0].dst: 10.9.0.1/16 has host bits set: the network is 10.9.0.0/16"),
    (dict(veths=[ETH0], routes=[dict(dst="fd09::1/64", dev="eth0")]),
     "routes[0].dst: fd09::1/64 has host bits set: the network is fd09::/64"),
    (dict(bridges=[dict(name="br0", addresses=["10.0.0.0/24"])]),
     "bridges[0].addresses: 10.0.0.0/24 is the network address of 10.0.0.0/24"),
    (dict(veths=[ETH0], sysctls={"net.ipv4.ip_forward": 1.0}),
     "sysctls: net.ipv4.ip_forward: 1.0 is not a sysctl value"),
    (dict(veths=[ETH0], sysctls={"net.ipv4.ip_forward": ""}), "sysctls: net.ipv4.ip_forward: is empty"),
    (dict(veths=[ETH0], sysctls={"net.ipv4.ip_forward": " \t"}), "sysctls: net.ipv4.ip_forward: is empty"),
    # two spellings of one key: which would win is no one's guess
    (dict(sysctls={"net.ipv4.ip_forward": 1, "net/ipv4/ip_forward": 0}),
     "sysctls: net.ipv4.ip_forward and net/ipv4/ip_forward name the same sysctl"),
    (dict(sysctls={"net.ipv4.ip_forward": 1, "net.ipv4..ip_forward": 0}),
     "sysctls: net.ipv4..ip_forward: has an empty name"),
    (dict(sysctls={"net/ipv4//ip_forward": 1}), "sysctls: net/ipv4//ip_forward: has an empty name"),
    (dict(sysctls={".net.ipv4.ip_forward": 1}), "sysctls: .net.ipv4.ip_forward: has an empty name"),
    (dict(sysctls={"net.ipv4.ip_forward/": 1}), "sysctls: net.ipv4.ip_forward/: has an empty name"),
    (dict(sysctls={"net.ipv4.ip forward": 1}), "sysctls: 'net.ipv4.ip forward': 'ip forward' is not a plain"),
    (dict(sysctls={"net.ipv4.ip_forward\n": 1}),
     "sysctls: 'net.ipv4.ip_forward\\n': 'ip_forward\\n' is not a"),
])
def test_desired_refuses_what_cannot_be_a_topology(wanted, options, error):
    with pytest.raises(m.ModelError) as e:
        wanted(**options)
    assert str(e.value).startswith(error)


@pytest.mark.parametrize("name", ["a/b", "..", ".", "", "x" * 65, "web\n"])
def test_desired_refuses_a_bad_netns_name(name):
    with pytest.raises(m.ModelError, match=r"name: .* is not a valid netns name"):
        m.desired(netns_options.load(dict(name=name)))


def test_from_nothing_everything_is_created_in_order(wanted):
    actions = m.plan_present(nothing(), wanted(**SIMPLE))
    assert [m.describe(a) for a in actions] == [
        "create_netns web",
        "link_up ns lo",
        "create_bridge br-web",
        "add_addr host br-web 10.42.0.1/24",
        "link_up host br-web",
        "create_veth eth0 veth-web",
        "set_link ns eth0 address=02:00:00:00:00:0a",
        "set_master veth-web br-web",
        "add_addr ns eth0 10.42.0.10/24",
        "add_addr ns eth0 fd42::a/64",
        "link_up host veth-web",
        "link_up ns eth0",
        "add_route default via 10.42.0.1",
        "sysctl net.ipv4.ip_forward 1",
    ]


def test_a_converged_topology_needs_nothing(wanted):
    assert m.plan_present(converged(), wanted(**SIMPLE)) == []


def test_addresses_mtu_and_sysctls_change_one_by_one(wanted):
    options = copy.deepcopy(SIMPLE)
    options["veths"][0]["addresses"] = ["10.42.0.10/24", "10.42.0.11/24"]
    options["veths"][0]["mtu"] = 1400
    options["sysctls"]["net.ipv6.conf.all.forwarding"] = 1
    actions = m.plan_present(converged(), wanted(**options))
    assert [m.describe(a) for a in actions] == [
        "set_link ns eth0 mtu=1400",
        "set_link host veth-web mtu=1400",
        "add_addr ns eth0 10.42.0.11/24",
        "del_addr ns eth0 fd42::a/64",
        "sysctl net.ipv6.conf.all.forwarding 1",
    ]


def test_host_side_changes_alone_leave_the_namespace_as_it_was(wanted):
    """What the services module restarts a service for (changes_inside): a change of the bridge or of
    the host end of the veth is not one; any change in the namespace, or a namespace made, is."""
    host_only = copy.deepcopy(SIMPLE)
    host_only["bridges"][0]["addresses"] = ["10.42.0.1/24", "10.42.0.254/24"]
    host_only["bridges"][0]["mtu"] = 1400
    host_only["veths"][0]["peer_addresses"] = ["169.254.9.1/32"]
    stale = converged()
    stale["veths"]["eth0"]["peer_up"] = False
    stale["bridges"]["br-web"]["mac_pinned"] = False
    actions = m.plan_present(stale, wanted(**host_only))
    assert {a[0] for a in actions} == {"pin_bridge_mac", "set_link", "add_addr", "link_up"}
    assert not any(map(m.changes_inside, actions)), actions
    assert all(m.changes_inside(a) for a in m.plan_present(nothing(), wanted(**SIMPLE))
               if a[0] in ("create_netns", "create_veth", "add_route", "sysctl")
               or (a[0] in ("link_up", "add_addr") and a[1] == "ns"))
    inside = copy.deepcopy(SIMPLE)
    inside["veths"][0]["addresses"].append("10.42.0.11/24")
    assert [m.changes_inside(a) for a in m.plan_present(converged(), wanted(**inside))] == [True]
    moved = copy.deepcopy(SIMPLE)
    moved["bridges"].append(dict(name="br-two", addresses=["10.42.0.1/24"]))
    moved["veths"][0]["bridge"] = "br-two"
    steps = m.plan_present(converged(), wanted(**moved))
    assert ("set_master", "veth-web", "br-two") in steps and not any(map(m.changes_inside, steps)), steps


def test_a_new_peer_name_renames_the_host_end_in_place(wanted):
    """Made again, the inside link would lose its addresses and routes for a moment (in both A and B);
    renamed, it keeps them, and its bridge."""
    options = copy.deepcopy(SIMPLE)
    options["veths"][0]["peer"] = "veth-web2"
    assert m.plan_present(converged(), wanted(**options)) == [("rename_veth", "veth-web", "veth-web2")]
    after = m.simulate(converged(), wanted(**options), [("rename_veth", "veth-web", "veth-web2")])
    veth = after["veths"]["eth0"]
    assert veth["peer"] == "veth-web2" and veth["mac"] == "02:00:00:00:00:0a"


def test_a_veth_wired_elsewhere_is_made_again_under_its_new_name(wanted):
    """Its inside end is no longer in this namespace: made again, its route with it."""
    state = converged()
    state["veths"]["eth0"]["wired"] = False
    state["ns_links"] = ["lo"]
    options = copy.deepcopy(SIMPLE)
    options["veths"][0]["peer"] = "veth-web2"
    actions = m.plan_present(state, wanted(**options))
    route = m.route_key("default", "10.42.0.1", "eth0", None)
    assert actions[:2] == [("del_route", route), ("del_veth", "veth-web")]  # the route goes with the link
    assert ("create_veth", "eth0", "veth-web2") in actions
    assert ("set_master", "veth-web2", "br-web") in actions
    assert actions[-1] == ("add_route", m.route_key("default", "10.42.0.1"))  # back, on the new link


def test_a_veth_no_longer_listed_is_removed_and_its_routes_too(wanted):
    actions = m.plan_present(converged(), wanted(sysctls={"net.ipv4.ip_forward": 1}))
    assert actions == [("del_route", m.route_key("default", "10.42.0.1", "eth0", None)),
                       ("del_veth", "veth-web"), ("del_bridge", "br-web")]  # its bridge is left with no port


def test_a_bridge_of_ours_left_with_no_port_goes_unless_the_batch_keeps_it(wanted):
    """A service moved to another bridge leaves the old one empty: it goes (else it stays on the host
    for good, with its address, since nothing wants it any more), unless another namespace of the
    batch wants it, or it is not ours, or it has another port."""
    moved = copy.deepcopy(SIMPLE)
    moved["bridges"] = [dict(name="br-two", addresses=["10.43.0.1/24"])]
    moved["veths"][0]["bridge"] = "br-two"
    moved["veths"][0]["addresses"] = ["10.43.0.10/24"]
    moved["gateway"] = ["10.43.0.1"]
    steps = m.plan_present(converged(), wanted(**moved))
    assert ("set_master", "veth-web", "br-two") in steps and steps[-2] == ("del_bridge", "br-web"), steps
    assert ("del_bridge", "br-web") not in m.plan_present(converged(), wanted(**moved), keep={"br-web"})
    shared = converged()
    shared["bridges"]["br-web"]["ports"]["veth-other"] = 1500
    assert ("del_bridge", "br-web") not in m.plan_present(shared, wanted(**moved))
    foreign = converged()
    foreign["bridges"]["br-web"]["ours"] = False
    assert ("del_bridge", "br-web") not in m.plan_present(foreign, wanted(**moved))
    assert ("del_bridge", "br-web") not in m.plan_absent(converged(), NAME, keep={"br-web"})
    assert ("del_bridge", "br-web") in m.plan_absent(converged(), NAME)


def test_a_foreign_host_link_or_inside_link_is_never_taken_over(wanted):
    state = nothing()
    state["host_links"] = {"veth-web": None}
    with pytest.raises(m.ModelError, match="host link veth-web exists and was not made by pyforkexec"):
        m.plan_present(state, wanted(**SIMPLE))
    state = nothing()
    state.update(exists=True, ns_links=["lo", "eth0"])
    with pytest.raises(m.ModelError, match="link eth0 already exists in netns web"):
        m.plan_present(state, wanted(**SIMPLE))
    state = nothing()
    state["bridges"] = {"br-web": dict(kind="veth", ours=False, mtu=1500, up=True, addresses=[], ports={})}
    with pytest.raises(m.ModelError, match="host link br-web exists and is a veth, not a bridge"):
        m.plan_present(state, wanted(**SIMPLE))


def test_routes_match_any_metric_unless_one_is_given_and_extra_ones_go(wanted):
    state = converged()
    state["routes"] = [m.route_key("default", "10.42.0.1", "eth0", 100),
                       m.route_key("10.9.0.0/16", "10.42.0.2", "eth0", None)]
    actions = m.plan_present(state, wanted(**SIMPLE))
    assert actions == [("del_route", m.route_key("10.9.0.0/16", "10.42.0.2", "eth0", None))]
    options = dict(SIMPLE, gateway=[], routes=[dict(dst="default", gateway="10.42.0.1", metric=5)])
    actions = m.plan_present(state, wanted(**options))
    assert [m.describe(a) for a in actions] == ["add_route default via 10.42.0.1 metric 5",
                                                "del_route default via 10.42.0.1 dev eth0 metric 100",
                                                "del_route 10.9.0.0/16 via 10.42.0.2 dev eth0"]
    both = dict(SIMPLE, gateway=[], routes=[dict(dst="default", gateway="10.42.0.1"),
                                            dict(dst="default", gateway="10.42.0.1", metric=100)])
    state["routes"] = [m.route_key("default", "10.42.0.1", "eth0", 100),
                       m.route_key("default", "10.42.0.1", "eth0", None)]
    assert m.plan_present(state, wanted(**both)) == []  # metric 100 is taken by the one that asks for it


def test_absent_removes_our_veths_then_our_bridges_left_empty_then_the_netns():
    assert m.plan_absent(converged(), NAME) == [("del_veth", "veth-web"), ("del_bridge", "br-web"),
                                                ("delete_netns", NAME)]
    shared = converged()
    shared["bridges"]["br-web"]["ports"] = {"veth-web": 1500, "veth-other": 1500}
    assert ("del_bridge", "br-web") not in m.plan_absent(shared, NAME)
    foreign = converged()
    foreign["bridges"]["br-web"]["ours"] = False
    assert ("del_bridge", "br-web") not in m.plan_absent(foreign, NAME)
    assert m.plan_absent(nothing(), NAME) == []


def test_a_bridge_of_ours_whose_mac_the_kernel_picks_is_pinned_before_any_port_goes(wanted):
    """A bridge made before bridges got a MAC of their own carries its smallest port's, and changes it
    when that port goes (tests/test_netns_bridge_mac.py): pinned first, in both plans, unless it goes
    itself, is not ours, or the kernel's answer is unknown (None: nothing is planned)."""
    unpinned = converged()
    unpinned["bridges"]["br-web"]["mac_pinned"] = False
    renamed = dict(SIMPLE, veths=[dict(SIMPLE["veths"][0], peer="veth-new")])
    plan = m.plan_present(unpinned, wanted(**renamed))
    assert plan[0] == ("pin_bridge_mac", "br-web")
    assert plan.index(("rename_veth", "veth-web", "veth-new")) > 0
    assert m.plan_present(unpinned, wanted(**SIMPLE)) == [("pin_bridge_mac", "br-web")]
    after = m.simulate(unpinned, wanted(**SIMPLE), [("pin_bridge_mac", "br-web")])
    assert after["bridges"]["br-web"]["mac_pinned"] is True  # and pinned, nothing to do (converged())
    unpinned["bridges"]["br-web"]["ports"] = {"veth-web": 1500, "veth-other": 1500}
    assert m.plan_absent(unpinned, NAME)[:2] == [("pin_bridge_mac", "br-web"), ("del_veth", "veth-web")]
    alone = converged()
    alone["bridges"]["br-web"]["mac_pinned"] = False  # its last port goes, and it with it
    assert ("pin_bridge_mac", "br-web") not in m.plan_absent(alone, NAME)
    for key, value in (("ours", False), ("mac_pinned", None)):
        other = converged()
        other["bridges"]["br-web"].update(mac_pinned=False, ports={"veth-web": 1500, "veth-other": 1500})
        other["bridges"]["br-web"][key] = value
        assert not any(a[0] == "pin_bridge_mac" for a in m.plan_present(other, wanted(**renamed))), key
        assert not any(a[0] == "pin_bridge_mac" for a in m.plan_absent(other, NAME)), key
    new = m.simulate(nothing(), wanted(**SIMPLE), m.plan_present(nothing(), wanted(**SIMPLE)))
    assert new["bridges"]["br-web"]["mac_pinned"] is True  # a new one is made with a MAC of its own


def test_simulate_and_view_give_the_diff_of_a_check_mode_run(wanted):
    w = wanted(**SIMPLE)
    actions = m.plan_present(nothing(), w)
    after = m.view(m.simulate(nothing(), w, actions))
    assert m.view(nothing()) == dict(netns=None)
    assert after == dict(  # with the kernel's MTUs and the link the gateway is on, as the kernel shows it
        netns=NAME, loopback_up=True,
        bridges={"br-web": dict(mtu=1500, up=True, addresses=["10.42.0.1/24"])},
        veths={"eth0": dict(peer="veth-web", bridge="br-web", mtu=1500, mac="02:00:00:00:00:0a",
                            peer_mac=None, addresses=["10.42.0.10/24", "fd42::a/64"], peer_addresses=[],
                            up=True)},
        routes=["default via 10.42.0.1 dev eth0"], sysctls={"net.ipv4.ip_forward": "1"})
    assert set(after) == set(m.view(converged()))


def test_veth_aliases_round_trip():
    assert m.parse_veth_alias(m.veth_alias("a.b-c", "eth0")) == ("a.b-c", "eth0")
    assert m.parse_veth_alias(m.veth_alias("a.b-c", "eth0") + "\n") is None
    assert m.parse_veth_alias("something else") is None
    assert m.parse_veth_alias(None) is None


@pytest.mark.parametrize("name", ["eth0\n", "\n", "eth0/1", "e" * 16, "web%d", ".", "..", "\u00e9" * 8,
                                  "h21\u00e0", "h21\x00x"])
def test_desired_refuses_a_bad_link_name(name):
    """A link name the kernel would take as another (a last newline included: "$" of a pattern
    matches before it; "%d", which the kernel numbers, making another link at each run), or refuse
    part-way ("." and "..", 16 bytes in 8 characters), is refused naming the option."""
    with pytest.raises(m.ModelError, match=r"^veths\[0\]\.name: "):
        m.desired(netns_options.load(dict(name="web", veths=[dict(name=name, peer="v0")])))



@pytest.mark.parametrize("name", ["all", "default"])
@pytest.mark.parametrize("where, options", [
    ("veths[0].name", lambda n: dict(veths=[dict(name=n, peer="v0")])),
    ("veths[0].peer", lambda n: dict(veths=[dict(name="eth0", peer=n)])),
    ("veths[0].bridge", lambda n: dict(veths=[dict(name="eth0", peer="v0", bridge=n)])),
    ("bridges[0].name", lambda n: dict(bridges=[dict(name=n)])),
])
def test_a_link_named_as_the_kernel_s_sysctl_directories_is_refused(name, where, options):
    """The kernel refuses to make a link named "all" or "default" (EINVAL: net.ipv4.conf.all and
    .default are its sysctls'): check mode planned it, and the run failed after making the namespace
    with "create_veth all v0: (22, 'Invalid argument')", naming no option."""
    with pytest.raises(m.ModelError, match=rf"^{re.escape(where)}: '{name}' is a name no link can have"):
        m.desired(netns_options.load(dict(name="web", **options(name))))



@pytest.mark.parametrize("address", ["10.0.0.2/0", "10.0.0.2/1", "10.0.0.2/4"])
def test_a_gateway_in_a_subnet_that_starts_at_0_0_0_0_is_not_reached(address):
    """The kernel makes no route to an IPv4 subnet starting at 0.0.0.0 (fib_add_ifaddr skips a zero
    prefix): check mode planned a default route via 10.0.0.1 for an address 10.0.0.2/1, and the run
    failed after making the namespace, "add_route default via 10.0.0.1: (101, 'Network is
    unreachable')". Refused now, before anything changes; a route of the subnet's own makes it reached,
    and is no route the kernel makes itself."""
    veths = [dict(name="eth0", peer="v0", addresses=[address])]
    with pytest.raises(m.ModelError, match=r"^routes: default via 10\.0\.0\.1: the gateway 10\.0\.0\.1 is in "
                                           r"no subnet of a link"):
        m.desired(netns_options.load(dict(name="web", veths=veths, gateway=["10.0.0.1"])))
    net = str(ipaddress.ip_interface(address).network)
    if net != "0.0.0.0/0":  # (a route of its own would be a second default route)
        m.desired(netns_options.load(dict(name="web", veths=veths, gateway=["10.0.0.1"],
                                          routes=[dict(dst=net, dev="eth0")])))


def lines(actions):
    return [m.describe(a) for a in actions]


def with_eth0(**changes):
    """SIMPLE with the veth's options changed."""
    options = copy.deepcopy(SIMPLE)
    options["veths"][0].update(changes)
    return options


def test_an_address_in_the_same_subnet_is_added_before_the_old_one_goes(wanted):
    actions = m.plan_present(converged(), wanted(**with_eth0(addresses=["10.42.0.20/24", "fd42::a/64"])))
    assert lines(actions) == ["add_addr ns eth0 10.42.0.20/24", "del_addr ns eth0 10.42.0.10/24"]


def test_an_ipv6_address_whose_prefix_changes_goes_first(wanted):
    """The kernel keeps one prefix length per IPv6 address (a second add is EEXIST); IPv4 keeps both."""
    options = with_eth0(addresses=["10.42.0.10/16", "fd42::a/48", "fd42::b/64"])
    assert lines(m.plan_present(converged(), wanted(**options))) == [
        "del_addr ns eth0 fd42::a/64", "add_addr ns eth0 10.42.0.10/16", "add_addr ns eth0 fd42::a/48",
        "add_addr ns eth0 fd42::b/64", "del_addr ns eth0 10.42.0.10/24"]


def test_routes_change_after_the_links_and_go_last(wanted):
    """A route that goes is deleted last, once the routes that stay are there; a route the kernel
    flushes with a link's last IPv4 address is planned as deleted first and added back, after the
    addresses (and so is what happens)."""
    state = converged()
    state["routes"].append(m.route_key("10.9.0.0/16", None, "eth0", None))
    options = with_eth0(addresses=["fd42::a/64"])
    options.update(gateway=[], routes=[dict(dst="10.9.0.0/16", dev="eth0")])
    assert lines(m.plan_present(state, wanted(**options))) == [
        "del_route default via 10.42.0.1 dev eth0", "del_route 10.9.0.0/16 dev eth0",
        "del_addr ns eth0 10.42.0.10/24", "add_route 10.9.0.0/16 dev eth0"]
    options = with_eth0(addresses=["fd42::a/64", "10.43.0.10/24"])
    options.update(gateway=[], routes=[dict(dst="10.9.0.0/16", dev="eth0")])
    assert lines(m.plan_present(state, wanted(**options))) == [  # an IPv4 address stays: so does the route
        "add_addr ns eth0 10.43.0.10/24", "del_addr ns eth0 10.42.0.10/24",
        "del_route default via 10.42.0.1 dev eth0"]


def test_a_route_that_goes_is_deleted_once_the_new_one_is_there_or_replaced(wanted):
    """A destination routed before and after always has a route: a new metric is another route to
    the kernel, added before the old one goes; at the same metric (the kernel's key), a new gateway
    or link replaces the route at once. IPv6 keys by metric too (1024 when none is given)."""
    state = converged()
    state["routes"] = [m.route_key("10.9.0.0/16", "10.42.0.1", "eth0", None),
                       m.route_key("default", "10.42.0.1", "eth0", None),
                       m.route_key("default6", "fd42::1", "eth0", 1024)]
    options = dict(SIMPLE, gateway=["10.42.0.2", "fd42::2"],
                   routes=[dict(dst="10.9.0.0/16", gateway="10.42.0.1", metric=20)])
    actions = m.plan_present(state, wanted(**options))
    assert lines(actions) == [
        "add_route 10.9.0.0/16 via 10.42.0.1 metric 20",
        "replace_route default via 10.42.0.1 dev eth0 with default via 10.42.0.2",
        "replace_route default via fd42::1 dev eth0 metric 1024 with default via fd42::2",
        "del_route 10.9.0.0/16 via 10.42.0.1 dev eth0"]
    after = m.simulate(state, wanted(**options), actions)
    assert m.view(after)["routes"] == ["10.9.0.0/16 via 10.42.0.1 dev eth0 metric 20",
                                       "default via 10.42.0.2 dev eth0",
                                       "default via fd42::2 dev eth0 metric 1024"]
    assert m.route_id(m.route_key("default6", "fd42::2")) == (6, "default6", 1024)


def test_ipv6_routes_the_link_changes_take_go_first(wanted):
    """Deleted last, an IPv6 route through a link whose MTU goes below 1280 would be gone already (the
    kernel takes IPv6 off the link: the delete fails), and one without gateway at metric 256 to the
    subnet of an address added on its link would keep the kernel from making its own route there
    (which is then missing once ours goes): those go before the links change."""
    state = converged()
    state["veths"]["eth0"]["addresses"] = ["10.42.0.10/24"]
    state["routes"].append(m.route_key("fd43::/64", None, "eth0", 1024))
    actions = lines(m.plan_present(state, wanted(**with_eth0(addresses=["10.42.0.10/24"], mtu=1200))))
    assert actions[0] == "del_route fd43::/64 dev eth0 metric 1024"
    assert actions.index("set_link ns eth0 mtu=1200") > 0
    state["routes"][-1] = m.route_key("fd43::/64", None, "eth0", 256)
    actions = lines(m.plan_present(state, wanted(**with_eth0(addresses=["10.42.0.10/24", "fd43::a/64"]))))
    assert actions == ["del_route fd43::/64 dev eth0 metric 256", "add_addr ns eth0 fd43::a/64"]


def test_a_route_that_goes_and_stands_between_a_new_route_and_its_gateway_goes_before_it(wanted):
    """10.42.0.0/25 dev eth9 (more specific than eth0's 10.42.0.0/24) would make the kernel reach the new
    gateway 10.42.0.100 through eth9: it goes before the gateway routes are added."""
    state = converged()
    state["routes"] = [m.route_key("10.42.0.0/25", None, "eth9", 5)]
    options = dict(SIMPLE, gateway=["10.42.0.100"])
    assert lines(m.plan_present(state, wanted(**options))) == [
        "del_route 10.42.0.0/25 dev eth9 metric 5", "add_route default via 10.42.0.100"]


def test_a_gateway_route_belongs_on_the_link_whose_subnet_holds_the_gateway(wanted):
    state = converged()
    state["routes"] = [m.route_key("default", "10.42.0.1", "eth9", None)]
    actions = m.plan_present(state, wanted(**SIMPLE))
    assert lines(actions) == ["replace_route default via 10.42.0.1 dev eth9 with default via 10.42.0.1"]


def test_a_bridge_mtu_is_set_where_its_ports_cannot_undo_it(wanted):
    """The kernel gives a bridge its smallest port's MTU until somebody sets a different one: set
    first when it differs, else after the ports (setting the MTU a bridge has does not count)."""
    options = copy.deepcopy(SIMPLE)
    options["bridges"][0]["mtu"] = 9000
    assert lines(m.plan_present(nothing(), wanted(**options)))[2:4] == [
        "create_bridge br-web", "set_link host br-web mtu=9000"]
    options = with_eth0(mtu=1400)
    options["bridges"][0]["mtu"] = 1500
    assert lines(m.plan_present(converged(), wanted(**options))) == [
        "set_link ns eth0 mtu=1400", "set_link host veth-web mtu=1400", "set_link host br-web mtu=1500"]
    pinned = converged()
    pinned["bridges"]["br-web"]["mtu"] = 1500
    pinned["bridges"]["br-web"]["ports"] = {"veth-web": 1400}  # 1500 over a 1400 port: set by somebody
    pinned["veths"]["eth0"].update(mtu=1400, peer_mtu=1400)
    assert m.plan_present(pinned, wanted(**options)) == []


@pytest.mark.parametrize(("options", "error"), [
    (dict(veths=[dict(name="eth0", peer="v0", addresses=["fd00::1/64", "fd00::1/48"])]),
     "veths[0].addresses: fd00::1 is listed as fd00::1/48 and fd00::1/64"),
    (dict(veths=[dict(name="eth0", peer="v0", mtu=1200, addresses=["fd00::1/64"])]),
     "veths[0].mtu: 1200 is below 1280"),
    (dict(veths=[dict(name="eth0", peer="v0", mtu=1200)], routes=[dict(dst="fd00::/8", dev="eth0")]),
     "veths[0].mtu: 1200 is below 1280"),
    (dict(bridges=[dict(name="br0", mtu=20)]), "bridges[0].mtu: 20 is not an MTU (68 to 65535)"),
    (dict(veths=[dict(name="eth0", peer="v0")],  # no metric is 1024 for IPv6
          routes=[dict(dst="fd00::/8", dev="eth0", metric=1024),
                  dict(dst="fd00::/8", gateway="fe80::1", dev="eth0")]),
     "routes: fd00::/8 via fe80::1 dev eth0: a second route to the same destination needs a metric"),
])
def test_desired_refuses_what_the_kernel_would_not_keep(wanted, options, error):
    with pytest.raises(m.ModelError) as e:
        wanted(**options)
    assert str(e.value).startswith(error)
    assert wanted(veths=[dict(name="eth0", peer="v0", mtu=1200, addresses=["10.0.0.1/24"])])


def test_a_link_made_again_gets_its_sysctls_again(wanted):
    state = converged()
    state["sysctls"]["net.ipv4.conf.eth0.rp_filter"] = "2"
    options = copy.deepcopy(SIMPLE)
    options["sysctls"]["net.ipv4.conf.eth0.rp_filter"] = 2
    assert m.plan_present(state, wanted(**options)) == []
    state["veths"]["eth0"]["wired"] = False  # its inside end is in another namespace: made again
    state["ns_links"] = ["lo"]
    options["veths"][0]["peer"] = "veth-web2"
    plan = m.plan_present(state, wanted(**options))
    at = plan.index(("sysctl", "net.ipv4.conf.eth0.rp_filter", "2"))
    # right after it is made and its MAC set, before its addresses
    assert plan[at - 2:at] == [("create_veth", "eth0", "veth-web2"),
                               ("set_link", "ns", "eth0", {"address": "02:00:00:00:00:0a"})]
    assert [a[0] for a in plan[at + 1:]].count("sysctl") == 0 and plan[-1][0] == "add_route"


def test_a_metric_another_wanted_route_gives_is_not_kept_for_one_without(wanted):
    """default dev eth0 (any metric) must not keep the route at metric 5 that default via ... metric 5
    needs (the kernel holds one route per destination and metric); IPv4's metric 0 is no metric."""
    state = converged()
    state["routes"] = [m.route_key("default", None, "eth0", 5)]
    options = dict(SIMPLE, gateway=[], routes=[dict(dst="default", dev="eth0"),
                                               dict(dst="default", gateway="10.42.0.1", metric=5)])
    assert lines(m.plan_present(state, wanted(**options))) == [
        "add_route default dev eth0",
        "replace_route default dev eth0 metric 5 with default via 10.42.0.1 metric 5"]
    state["routes"] = [m.route_key("default", "10.42.0.1", "eth0", None),
                       m.route_key("default6", "fd42::1", "eth0", 1024)]
    zero = [dict(dst="default", gateway=gw, metric=0) for gw in ("10.42.0.1", "fd42::1")]
    assert m.plan_present(state, wanted(**dict(SIMPLE, gateway=[], routes=zero))) == []


def test_an_ipv4_metric_of_0_is_that_metric_not_any(wanted):
    """metric 0 asks for the kernel's own IPv4 metric (which it shows as none): a route at metric 10
    does not stand for it. Found by the transitions property test: the route stayed at 10."""
    state = converged()
    state["routes"] = [m.route_key("default", None, "eth0", 10)]
    options = dict(SIMPLE, gateway=[], routes=[dict(dst="default", dev="eth0", metric=0)])
    actions = m.plan_present(state, wanted(**options))
    assert lines(actions) == ["add_route default dev eth0 metric 0", "del_route default dev eth0 metric 10"]
    assert m.simulate(state, wanted(**options), actions)["routes"] == [m.route_key("default", None, "eth0")]


def _on_host(state, **addresses):
    """``state`` with host links holding ``addresses`` ({link: [address, ...]}), as observe reads them."""
    state["host_addresses"] = dict(state.get("host_addresses", {}), **addresses)
    return state


@pytest.mark.parametrize("taken", ["10.42.0.200/24", "10.42.0.1/16", "10.42.0.128/25"])
def test_a_bridge_subnet_another_host_link_has_is_refused(wanted, taken):
    """The host would route the subnet to two links, and which wins changes as either flaps."""
    with pytest.raises(m.ModelError, match=r"^bridges: 10\.42\.0\.1/24 on host link br-web overlaps "
                       rf"{taken} of host link eth9: the host would route 10\.42\.0\.0/24 to both"):
        m.plan_present(_on_host(nothing(), eth9=[taken]), wanted(**SIMPLE))


def test_a_host_end_address_overlapping_a_host_subnet_is_refused_ipv6_too(wanted):
    options = dict(veths=[dict(name="eth0", peer="veth-web", peer_addresses=["fd00::1/64"])])
    with pytest.raises(m.ModelError, match=r"^veths: fd00::1/64 on host link veth-web overlaps fd00::2/64"):
        m.plan_present(_on_host(nothing(), eth0=["fd00::2/64"]), wanted(**options))
    both = dict(bridges=[dict(name="br-a", addresses=["10.43.0.1/24"])],
                veths=[dict(name="eth0", peer="veth-web", peer_addresses=["10.43.0.9/24"])])
    with pytest.raises(m.ModelError, match=r"^veths: 10\.43\.0\.9/24 on host link veth-web overlaps 10\.43"):
        m.plan_present(nothing(), wanted(**both))  # two links of one plan


@pytest.mark.parametrize("taken", ["10.42.0.7/32", "169.254.1.1/16", "10.43.0.1/24", "fd42::1/64"])
def test_addresses_that_route_no_shared_subnet_are_not_in_the_way(wanted, taken):
    """A host route (/32), a link-local address, another subnet, another family."""
    actions = m.plan_present(_on_host(nothing(), eth9=[taken]), wanted(**SIMPLE))
    assert ("add_addr", "host", "br-web", "10.42.0.1/24") in actions
    same = dict(veths=[dict(name="eth0", peer="veth-web", peer_addresses=["169.254.1.1/32"])])
    assert m.plan_present(_on_host(nothing(), veth9=["169.254.1.1/32"]), wanted(**same))


def test_a_subnet_already_in_place_or_on_a_link_the_plan_removes_is_not_in_the_way(wanted):
    # A bridge that has its address already (made before this check, or a host set up so): no add.
    assert m.plan_present(_on_host(converged(), eth9=["10.42.0.200/24"]), wanted(**SIMPLE)) == []
    # The host end made again under a new name: the old one, with the address, is deleted by the same
    # plan; renamed in place, it keeps the address.
    state = converged()
    state["veths"]["eth0"]["peer_addresses"] = ["10.44.0.1/24"]
    state = _on_host(state, **{"veth-web": ["10.44.0.1/24"]})
    options = copy.deepcopy(SIMPLE)
    options["veths"][0].update(peer="veth-web2", peer_addresses=["10.44.0.1/24"])
    assert m.plan_present(state, wanted(**options)) == [("rename_veth", "veth-web", "veth-web2")]
    state["veths"]["eth0"]["wired"] = False
    state["ns_links"] = ["lo"]
    actions = m.plan_present(state, wanted(**options))
    assert actions.index(("del_veth", "veth-web")) < actions.index(("add_addr", "host", "veth-web2",
                                                                     "10.44.0.1/24"))


def test_a_renamed_host_end_given_another_address_of_its_subnet_is_not_in_its_own_way(wanted):
    """The host end renamed and its address changed within its subnet: the plan refused it as
    overlapping "the address of host link veth-web", its own old name (found by the transitions
    property test)."""
    state = converged()
    state["veths"]["eth0"]["peer_addresses"] = ["10.44.0.1/24"]
    state = _on_host(state, **{"veth-web": ["10.44.0.1/24"]})
    options = copy.deepcopy(SIMPLE)
    options["veths"][0].update(peer="veth-web2", peer_addresses=["10.44.0.2/24"])
    assert lines(m.plan_present(state, wanted(**options))) == [
        "rename_veth veth-web veth-web2", "add_addr host veth-web2 10.44.0.2/24",
        "del_addr host veth-web2 10.44.0.1/24"]
    state = _on_host(state, eth9=["10.44.0.9/24"])  # another host link's still counts
    with pytest.raises(m.ModelError, match=r"overlaps 10\.44\.0\.9/24 of host link eth9"):
        m.plan_present(state, wanted(**options))


V6 = dict(name="eth0", peer="v0", addresses=["fd00::2/64"])


@pytest.mark.parametrize(("options", "error"), [
    (dict(veths=[V6], sysctls={"net.ipv6.conf.all.disable_ipv6": 1}),
     "sysctls: net.ipv6.conf.all.disable_ipv6: 1 takes IPv6 off eth0, which has IPv6 addresses or routes "
     "(declare net.ipv6.conf.eth0.disable_ipv6: 0"),
    (dict(veths=[V6], sysctls={"net.ipv6.conf.eth0.disable_ipv6": 1}),
     "sysctls: net.ipv6.conf.eth0.disable_ipv6: 1 takes IPv6 off eth0"),
    (dict(veths=[V6], sysctls={"net.ipv6.conf.default.disable_ipv6": "0x1"}),
     "sysctls: net.ipv6.conf.default.disable_ipv6: 1 takes IPv6 off eth0"),
    (dict(veths=[dict(name="eth0", peer="v0", mtu=1200)], sysctls={"net.ipv6.conf.eth0.accept_dad": 0}),
     "sysctls: net.ipv6.conf.eth0.accept_dad: eth0's MTU 1200 is below 1280"),
    (dict(veths=[V6], sysctls={"net.ipv4.ip_forward": 0, "net.ipv4.conf.all.forwarding": 1}),
     "sysctls: net.ipv4.ip_forward 0 and net.ipv4.conf.all.forwarding 1 are one switch"),
])
def test_sysctls_the_links_cannot_take_are_refused_before_anything_changes(wanted, options, error):
    """Each was planned (check mode said so), then failed halfway through the run."""
    with pytest.raises(m.ModelError) as e:
        wanted(**options)
    assert str(e.value).startswith(error)


def test_a_link_that_keeps_ipv6_under_an_all_switch_is_accepted(wanted):
    sysctls = {"net.ipv6.conf.all.disable_ipv6": 1, "net.ipv6.conf.eth0.disable_ipv6": 0}
    assert wanted(veths=[V6], sysctls=sysctls)["sysctls"]["net.ipv6.conf.eth0.disable_ipv6"] == "0"


@pytest.mark.parametrize(("value", "printed"), [("0x0", "0"), ("01", "1"), ("00", "0"), ("010", "8"),
                                                ("0x10 020", "16 16"), ("-1", "-1"), (" 4\t5 ", "4 5"),
                                                ("cubic", "cubic"), ("08", "08"), (True, "1"), (7, "7")])
def test_a_sysctl_value_is_compared_as_the_kernel_prints_it(value, printed):
    """Integer sysctls read C's base-0 syntax and print decimal: "01" never converged (each run
    wrote it again, then failed: the kernel keeps 1)."""
    assert m.sysctl_value(value) == printed


def test_a_route_through_a_gateway_is_added_after_the_device_route_that_reaches_it(wanted):
    """A gateway route with a metric sorted first (the metric chooses first when routes are matched)
    and was added before the device route its gateway needs: ENETUNREACH at every run."""
    options = dict(veths=[dict(name="eth0", peer="veth-web", addresses=["10.42.0.10/24"])],
                   routes=[dict(dst="10.43.0.0/24", dev="eth0"),
                           dict(dst="10.44.0.0/24", gateway="10.43.0.1", metric=5),
                           dict(dst="fd49:cb::/64", dev="eth0"),
                           dict(dst="default", gateway="fd49:cb::1", metric=5)])
    routes = [m.describe(a) for a in m.plan_present(nothing(), wanted(**options)) if a[0] == "add_route"]
    assert routes == ["add_route 10.43.0.0/24 dev eth0", "add_route fd49:cb::/64 dev eth0",
                      "add_route 10.44.0.0/24 via 10.43.0.1 metric 5",
                      "add_route default via fd49:cb::1 metric 5"]


def test_ipv6_left_off_by_an_earlier_converge_is_refused_before_anything_changes(wanted):
    """A disable_ipv6 of 1 that A declared and B no longer lists stays in the namespace: B's IPv6
    addresses then failed at the end of every run (EACCES) while check mode planned them."""
    state = converged()
    state["ipv6_off"] = {"eth0": "net.ipv6.conf.eth0.disable_ipv6"}
    with pytest.raises(m.ModelError, match=r"^sysctls: net\.ipv6\.conf\.eth0\.disable_ipv6 is 1 in the "
                                           r"namespace .* declare net\.ipv6\.conf\.eth0\.disable_ipv6: 0"):
        m.plan_present(state, wanted(**SIMPLE))


def test_a_sysctl_that_is_no_value_is_refused_naming_it(wanted):
    for value, shown in ((None, "null"), ([1], "[1]"), ({"a": 1}, "{'a': 1}")):
        with pytest.raises(m.ModelError, match=re.escape(f"sysctls: net.ipv4.ip_forward: {shown} is not a "
                                                         "sysctl value")):
            m.desired(dict(name=NAME, sysctls={"net.ipv4.ip_forward": value}))
    with pytest.raises(m.ModelError, match=r"^sysctls: net\.ipv6\.conf\.eth0\.mtu: 1500 is above eth0's MTU"):
        wanted(veths=[dict(name="eth0", peer="v0", mtu=1280)], sysctls={"net.ipv6.conf.eth0.mtu": 1500})


def test_a_route_through_lo_the_kernel_would_refuse_is_refused_first(wanted):
    """A route via lo with loopback false (ENETDOWN) or an IPv6 one with IPv6 off lo (EACCES) failed
    halfway while check mode planned it."""
    with pytest.raises(m.ModelError, match=r"^routes\[0\]: 10\.9\.0\.0/24 dev lo: goes through lo, which "
                       r"loopback false does not bring up"):
        wanted(loopback=False, routes=[dict(dst="10.9.0.0/24", dev="lo")])
    for key in ("net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.lo.disable_ipv6"):
        with pytest.raises(m.ModelError, match=rf"^sysctls: {re.escape(key)}: 1 takes IPv6 off lo"):
            wanted(routes=[dict(dst="fd09::/64", dev="lo")], sysctls={key: 1})
    wanted(routes=[dict(dst="fd09::/64", dev="lo")], sysctls={"net.ipv6.conf.default.disable_ipv6": 1})


def test_a_route_in_the_place_of_the_kernels_or_another_protocols_is_refused_first(wanted):
    """The kernel keeps one route per destination and metric: one that it made for an address on
    another link, or one of another protocol (left alone), made the route's add fail (EEXIST) after
    the rest of the plan, at every run."""
    two = [dict(name="eth0", peer="v0", addresses=["10.9.0.2/24", "fd09::2/64"]),
           dict(name="eth1", peer="v1")]
    for route in (dict(dst="10.9.0.0/24", dev="eth1"), dict(dst="fd09::/64", dev="eth1", metric=256)):
        with pytest.raises(m.ModelError, match=r"the kernel makes this route itself for the address .* on"):
            wanted(veths=two, routes=[route])
    state = nothing()
    state["foreign_routes"] = [("10.8.0.0/16", None, 16)]
    with pytest.raises(m.ModelError, match=r"^routes: 10\.8\.0\.0/16 via 10\.9\.0\.1: a route of another "
                                           r"protocol \(16\)"):
        m.plan_present(state, wanted(veths=two, routes=[dict(dst="10.8.0.0/16", gateway="10.9.0.1")]))
    m.plan_present(state, wanted(veths=two, routes=[dict(dst="10.8.0.0/16", gateway="10.9.0.1", metric=7)]))


@pytest.mark.parametrize("options", [dict(gateway=[""]), dict(routes=[dict(dst="10.9.0.0/24", gateway=" ")])])
def test_an_empty_gateway_is_refused_naming_it(wanted, options):
    """An empty gateway (a template's empty variable) was read as none by one check and as an address
    by the next: a traceback from ipaddress instead of the option's name."""
    with pytest.raises(m.ModelError, match=r"gateway: is empty"):
        wanted(veths=[dict(name="eth0", peer="v0", addresses=["10.9.0.2/24"])], **options)


@pytest.mark.parametrize(("route", "error"), [
    (dict(dst="fe80::/64", dev="eth0", metric=256), "the kernel makes this route itself for every link"),
    (dict(dst="fd99::/64", gateway="fe80::1", dev="lo"), "a link-local gateway is on its dev's link, and lo"),
])
def test_a_link_local_route_the_kernel_refuses_is_refused_first(wanted, route, error):
    with pytest.raises(m.ModelError, match=re.escape(error)):
        wanted(veths=[dict(name="eth0", peer="v0", addresses=["fd09::2/64"])], routes=[route])


@pytest.mark.parametrize("veths", [
    [dict(name="eth0", peer="br9", bridge="br9")],
    [dict(name="eth0", peer="v0", bridge="br9"), dict(name="eth1", peer="br9")],
])
def test_a_peer_named_as_a_bridge_a_veth_names_is_refused(wanted, veths):
    """A bridge named only by a veth's bridge was no host name yet: check mode planned both, and the
    second link failed with EEXIST."""
    with pytest.raises(m.ModelError, match=r"\.peer: br9 is used twice on the host"):
        wanted(veths=veths)


def two_veths():
    """converged() with a second veth, eth1 (10.43.0.10/24), and 10.9.0.0/16 through eth0's gateway."""
    state = converged()
    state["ns_links"] = ["eth0", "eth1", "lo"]
    state["host_links"]["veth-web1"] = m.veth_alias(NAME, "eth1")
    state["veths"]["eth1"] = dict(state["veths"]["eth0"], peer="veth-web1", peer_mac="6e:00:00:00:00:02",
                                  bridge=None, mac="02:00:00:00:00:0b", addresses=["10.43.0.10/24"])
    state["routes"].append(m.route_key("10.9.0.0/16", "10.42.0.1", "eth0", None))
    return state


ETH1 = dict(name="eth1", peer="veth-web1", mac="02:00:00:00:00:0b", addresses=["10.43.0.10/24"])


def test_a_route_whose_link_goes_moves_to_a_kept_link_before_it_goes(wanted):
    """The kernel takes a link's routes with it (or an IPv4 one with the link's last IPv4 address): B's
    route to the same destination through a link that stays is put in place first (replacing A's, of
    the same key, at once), the new address that reaches its gateway before it; A's link goes after."""
    routes = [dict(dst="10.9.0.0/16", gateway="10.43.0.1")]
    options = dict(SIMPLE, veths=[ETH1], gateway=["10.43.0.1"], routes=routes)  # eth0 removed
    actions = lines(m.plan_present(two_veths(), wanted(**options)))
    assert actions[:3] == [
        "replace_route 10.9.0.0/16 via 10.42.0.1 dev eth0 with 10.9.0.0/16 via 10.43.0.1",
        "replace_route default via 10.42.0.1 dev eth0 with default via 10.43.0.1", "del_veth veth-web"]
    # eth0 left without IPv4, the gateway in a subnet eth1 is given: that address goes on first
    eth0 = dict(SIMPLE["veths"][0], addresses=["fd42::a/64"])
    eth1 = dict(ETH1, addresses=["10.43.0.10/24", "10.44.0.10/24"])
    options = dict(SIMPLE, veths=[eth0, eth1], gateway=["10.44.0.1"],
                   routes=[dict(dst="10.9.0.0/16", dev="eth1", metric=5)])
    assert lines(m.plan_present(two_veths(), wanted(**options))) == [
        "add_route 10.9.0.0/16 dev eth1 metric 5", "del_route 10.9.0.0/16 via 10.42.0.1 dev eth0",
        "add_addr ns eth1 10.44.0.10/24",
        "replace_route default via 10.42.0.1 dev eth0 with default via 10.44.0.1",
        "del_addr ns eth0 10.42.0.10/24"]
    # the gateway's subnet on both links until eth0 goes: the route names eth1, where B has it
    eth1 = dict(ETH1, addresses=["10.43.0.10/24", "10.42.0.11/24"])
    options = dict(SIMPLE, veths=[eth1], routes=[])
    actions = m.plan_present(two_veths(), wanted(**options))
    assert lines(actions)[:4] == [
        "del_route 10.9.0.0/16 via 10.42.0.1 dev eth0", "add_addr ns eth1 10.42.0.11/24",
        "replace_route default via 10.42.0.1 dev eth0 with default via 10.42.0.1 dev eth1",
        "del_veth veth-web"]
    assert m.view(m.simulate(two_veths(), wanted(**options), actions))["routes"] == [
        "default via 10.42.0.1 dev eth1"]


def traded(eth0_peer, eth1_peer, **eth1):
    """two_veths()'s topology (10.9.0.0/16 kept) with the host ends of eth0 and eth1 named anew."""
    eth0, eth1 = dict(SIMPLE["veths"][0], peer=eth0_peer), dict(ETH1, peer=eth1_peer, **eth1)
    return dict(SIMPLE, veths=[eth0, eth1], routes=[dict(dst="10.9.0.0/16", gateway="10.42.0.1")])


def test_a_host_name_freed_by_a_rename_is_taken_by_another_rename_after_it(wanted):
    """eth1's host end veth-web1 becomes veth-new and eth0's takes veth-web1: the plan was refused
    ("host link veth-web1 exists and was not made by pyforkexec"), the name counted as taken though the
    same plan frees it. Renamed in place, each once its new name is free."""
    actions = m.plan_present(two_veths(), wanted(**traded("veth-web1", "veth-new")))
    assert lines(actions) == ["rename_veth veth-web1 veth-new", "rename_veth veth-web veth-web1"]
    after = m.simulate(two_veths(), wanted(**traded("veth-web1", "veth-new")), actions)
    assert {k: v["peer"] for k, v in after["veths"].items()} == {"eth0": "veth-web1", "eth1": "veth-new"}


def test_a_new_veth_takes_a_host_name_a_rename_frees(wanted):
    """A new veth (dmz0, planned before eth0) takes the name eth0's host end leaves: made after it."""
    options = copy.deepcopy(SIMPLE)
    options["veths"][0]["peer"] = "veth-new"
    options["veths"].append(dict(name="dmz0", peer="veth-web", addresses=["10.44.0.2/24"]))
    actions = lines(m.plan_present(converged(), wanted(**options)))
    assert "del_veth veth-web" not in actions
    assert actions.index("rename_veth veth-web veth-new") < actions.index("create_veth dmz0 veth-web")


def test_two_veths_trading_host_names_are_renamed_through_a_temporary_name(wanted):
    """eth0 and eth1 trade host names: both pairs were made again, their addresses and routes (here
    10.9.0.0/16 through eth0) gone for a moment. Renamed in place, one of them through a free temporary
    name (IFNAMSIZ), the inside links kept with all they have."""
    actions = m.plan_present(two_veths(), wanted(**traded("veth-web1", "veth-web")))
    assert [a[0] for a in actions] == ["rename_veth"] * 3, lines(actions)
    temp = actions[0][2]
    assert actions == [("rename_veth", "veth-web", temp), ("rename_veth", "veth-web1", "veth-web"),
                       ("rename_veth", temp, "veth-web1")]
    assert m._ifname("temp", temp) and temp not in two_veths()["host_links"]
    # a converge cut short (SIGKILL) leaves the host end under that name, with the alias that makes it
    # ours: the next one renames it on
    left = two_veths()
    left["host_links"][temp] = left["host_links"].pop("veth-web")
    left["host_links"]["veth-web"] = left["host_links"].pop("veth-web1")
    left["veths"]["eth0"]["peer"], left["veths"]["eth1"]["peer"] = temp, "veth-web"
    assert lines(m.plan_present(left, wanted(**traded("veth-web1", "veth-web")))) == [
        f"rename_veth {temp} veth-web1"]


def test_a_temporary_name_of_a_trade_is_not_one_the_host_has(wanted):
    """The first temporary name the plan would pick for a trade is taken on the host: another one."""
    state = two_veths()
    first = m.plan_present(state, wanted(**traded("veth-web1", "veth-web")))[0][2]
    state["host_links"][first] = None
    actions = m.plan_present(state, wanted(**traded("veth-web1", "veth-web")))
    assert actions[0][2] not in state["host_links"] and len(actions) == 3
    assert m.simulate(state, wanted(**traded("veth-web1", "veth-web")), actions)["veths"]["eth0"]["peer"] \
        == "veth-web1"


def test_a_host_name_held_by_a_link_not_ours_is_still_refused(wanted):
    state = two_veths()
    state["host_links"]["veth-new"] = None
    with pytest.raises(m.ModelError, match="host link veth-new exists and was not made by pyforkexec"):
        m.plan_present(state, wanted(**traded("veth-web1", "veth-new")))


def test_a_renamed_host_end_loses_its_subnet_to_the_bridge_after_its_rename(wanted):
    """The host end's subnet moves to the bridge as it is renamed: its address's delete, put before the
    bridge's add (_deletions_first), went before the rename too, on a name no link had yet (the apply
    failed: no link veth-web2). It stays after the rename."""
    state = converged()
    state["veths"]["eth0"]["peer_addresses"] = ["10.45.0.1/24"]
    state["host_addresses"] = {"veth-web": ["10.45.0.1/24"], "br-web": ["10.42.0.1/24"]}
    options = with_eth0(peer="veth-web2")
    options["bridges"] = [dict(name="br-web", addresses=["10.42.0.1/24", "10.45.0.1/24"])]
    actions = lines(m.plan_present(state, wanted(**options)))
    renamed = actions.index("rename_veth veth-web veth-web2")
    assert renamed < actions.index("del_addr host veth-web2 10.45.0.1/24")
    assert "add_addr host br-web 10.45.0.1/24" in actions


ODD = "h111\x1b[31m"  # a link name the kernel takes (no '/', ':', blank or NUL) holding a colour change


@pytest.mark.parametrize(("options", "state", "start"), [
    (dict(veths=[dict(name=ODD, peer="v0"), dict(name=ODD, peer="v1")]), None,
     "veths[1].name: h111\\x1b[31m is used twice"),
    (dict(veths=[dict(name="eth0", peer=ODD), dict(name="eth1", peer=ODD)]), None,
     "veths[1].peer: h111\\x1b[31m is used twice"),
    (dict(sysctls={f"net.ipv4.conf.{ODD}..forwarding": 1}), None,
     "sysctls: net.ipv4.conf.h111\\x1b[31m..forwarding: has an empty name"),
    (dict(veths=[dict(name="eth0", peer=ODD)]), dict(host_links={ODD: None}),
     "veths: host link h111\\x1b[31m exists"),
])
def test_a_name_with_a_control_character_is_escaped_in_the_message(wanted, options, state, start):
    """A user-given name is quoted as the CLI prints it (pyforkexec._text.printable), once, whichever
    caller shows the message (a module's msg has no CLI to escape it)."""
    with pytest.raises(m.ModelError) as raised:
        want = wanted(**options)
        if state is not None:
            m.plan_present({**nothing(), **state}, want)
    assert str(raised.value).startswith(start), raised.value
    assert str(raised.value).isprintable() and "\\\\" not in str(raised.value)


def test_an_action_line_escapes_a_control_character():
    assert m.describe(("link_up", "host", ODD)) == "link_up host h111\\x1b[31m"
    assert m.describe(("set_link", "ns", ODD, {"mtu": 1400})) == "set_link ns h111\\x1b[31m mtu=1400"


@needs_root
def test_the_kernels_refusal_names_the_link_escaped():
    """The real apply of an action on a link that is not there (no namespace made: the host's links
    are only looked up): ApplyError quotes the name escaped, as ModelError does."""
    pytest.importorskip("pyroute2")
    from pyforkexec.netns import kernel

    with pytest.raises(kernel.ApplyError) as raised:
        kernel.apply("h111-none", [("link_up", "host", ODD)])
    assert str(raised.value) == "link_up host h111\\x1b[31m: no link h111\\x1b[31m in the host"


def test_a_bridge_of_its_own_gives_its_name_to_the_host_end_of_its_veth(wanted):
    """br-web, which the namespace made and no longer wants, becomes eth0's host end's name: planned
    as "a host link in the way" (refused) while the bridge went last; it goes first, then the host end
    is renamed in place, and check mode shows it so."""
    options = dict(veths=[dict(SIMPLE["veths"][0], peer="br-web", bridge=None)], gateway=["10.42.0.1"],
                   sysctls=SIMPLE["sysctls"])
    plan = m.plan_present(converged(), wanted(**options))
    assert plan.index(("del_bridge", "br-web")) < plan.index(("rename_veth", "veth-web", "br-web")), plan
    after = m.view(m.simulate(converged(), wanted(**options), plan))
    assert after["bridges"] == {} and after["veths"]["eth0"]["peer"] == "br-web"


def test_the_host_end_of_its_veth_gives_its_name_to_a_bridge(wanted):
    """veth-web, eth0's host end, becomes the name of eth0's bridge (the host end renamed veth-new):
    refused as "exists and is a veth, not a bridge" though it is the namespace's own and goes; it is
    renamed first, then the bridge made under its name."""
    state = converged()
    state["bridges"]["veth-web"] = dict(kind="veth", ours=False, declared_by=None, mtu=1500, up=True,
                                        addresses=[], ports={}, mac_pinned=None)  # as observe shows it
    options = dict(SIMPLE, bridges=[dict(name="veth-web", addresses=["10.42.0.1/24"])],
                   veths=[dict(SIMPLE["veths"][0], peer="veth-new", bridge="veth-web")])
    plan = m.plan_present(state, wanted(**options))
    renamed = plan.index(("rename_veth", "veth-web", "veth-new"))
    assert renamed < plan.index(("create_bridge", "veth-web")), plan
    assert ("set_master", "veth-new", "veth-web") in plan and ("del_bridge", "br-web") in plan
    after = m.view(m.simulate(state, wanted(**options), plan))
    assert after["bridges"]["veth-web"]["addresses"] == ["10.42.0.1/24"]
