"""Planning a named network namespace: options normalized by desired(), and the actions plan_present
and plan_absent choose for observed topologies (plain data, as netns_kernel.observe returns it)."""

from __future__ import annotations

import copy

import pytest

from pyforkexec import netns_model as m
from pyforkexec import netns_options

NAME = "web"


@pytest.fixture
def wanted():
    """wanted(**options) -> desired() of the options, type-checked as ``pyforkexec netns up`` does."""
    return lambda **options: m.desired(netns_options.load(dict(name=NAME, **options)))


def nothing():
    return dict(name=NAME, exists=False, loopback_up=False, bridges={}, veths={}, routes=[], sysctls={},
                host_links={}, ns_links=[])


def converged():
    """What the kernel shows once SIMPLE is in place."""
    state = nothing()
    state.update(
        exists=True, loopback_up=True, ns_links=["eth0", "lo"],
        host_links={"br-web": m.BRIDGE_ALIAS, "veth-web": m.veth_alias(NAME, "eth0")},
        bridges={"br-web": dict(kind="bridge", ours=True, mtu=1500, up=True, addresses=["10.42.0.1/24"],
                                ports=["veth-web"])},
        veths={"eth0": dict(peer="veth-web", peer_mtu=1500, peer_mac="6e:00:00:00:00:01", peer_up=True,
                            bridge="br-web", peer_addresses=[], mtu=1500, mac="02:00:00:00:00:0a", up=True,
                            addresses=["10.42.0.10/24", "fd42::a/64"])},
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
    w = wanted(veths=[dict(name="eth0", peer="v0", bridge="br9", addresses=["10.0.0.2"])],
               gateway=["fd00::1"], routes=[dict(dst="10.9.0.0/16", dev="eth0", metric=5)])
    assert w["bridges"] == {"br9": dict(mtu=None, addresses=[])}
    assert w["veths"]["eth0"]["addresses"] == ["10.0.0.2/32"]
    assert m.route_key("default6", "fd00::1") in w["routes"]
    assert m.route_key("10.9.0.0/16", None, "eth0", 5) in w["routes"]


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
])
def test_desired_refuses_what_cannot_be_a_topology(wanted, options, error):
    with pytest.raises(m.ModelError) as e:
        wanted(**options)
    assert str(e.value).startswith(error)


@pytest.mark.parametrize("name", ["a/b", "..", ".", "", "x" * 65])
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


def test_a_new_peer_name_makes_the_veth_again(wanted):
    options = copy.deepcopy(SIMPLE)
    options["veths"][0]["peer"] = "veth-web2"
    actions = m.plan_present(converged(), wanted(**options))
    assert actions[0] == ("del_veth", "veth-web")
    assert ("create_veth", "eth0", "veth-web2") in actions
    assert ("set_master", "veth-web2", "br-web") in actions


def test_a_veth_no_longer_listed_is_removed_and_its_routes_too(wanted):
    actions = m.plan_present(converged(), wanted(sysctls={"net.ipv4.ip_forward": 1}))
    assert actions == [("del_veth", "veth-web"),
                       ("del_route", m.route_key("default", "10.42.0.1", "eth0", None))]


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
    state["bridges"] = {"br-web": dict(kind="veth", ours=False, mtu=1500, up=True, addresses=[], ports=[])}
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
    assert [m.describe(a) for a in actions] == ["del_route default via 10.42.0.1 dev eth0 metric 100",
                                                "del_route 10.9.0.0/16 via 10.42.0.2 dev eth0",
                                                "add_route default via 10.42.0.1 metric 5"]


def test_absent_removes_our_veths_then_our_bridges_left_empty_then_the_netns():
    assert m.plan_absent(converged(), NAME) == [("del_veth", "veth-web"), ("del_bridge", "br-web"),
                                                ("delete_netns", NAME)]
    shared = converged()
    shared["bridges"]["br-web"]["ports"] = ["veth-web", "veth-other"]
    assert ("del_bridge", "br-web") not in m.plan_absent(shared, NAME)
    foreign = converged()
    foreign["bridges"]["br-web"]["ours"] = False
    assert ("del_bridge", "br-web") not in m.plan_absent(foreign, NAME)
    assert m.plan_absent(nothing(), NAME) == []


def test_simulate_and_view_give_the_diff_of_a_check_mode_run(wanted):
    w = wanted(**SIMPLE)
    actions = m.plan_present(nothing(), w)
    after = m.view(m.simulate(nothing(), w, actions))
    assert m.view(nothing()) == dict(netns=None)
    assert after == dict(
        netns=NAME, loopback_up=True,
        bridges={"br-web": dict(mtu=None, up=True, addresses=["10.42.0.1/24"])},
        veths={"eth0": dict(peer="veth-web", bridge="br-web", mtu=None, mac="02:00:00:00:00:0a",
                            peer_mac=None, addresses=["10.42.0.10/24", "fd42::a/64"], peer_addresses=[],
                            up=True)},
        routes=["default via 10.42.0.1"], sysctls={"net.ipv4.ip_forward": "1"})
    assert set(after) == set(m.view(converged()))


def test_veth_aliases_round_trip():
    assert m.parse_veth_alias(m.veth_alias("a.b-c", "eth0")) == ("a.b-c", "eth0")
    assert m.parse_veth_alias("something else") is None
    assert m.parse_veth_alias(None) is None
