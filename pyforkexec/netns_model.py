"""Named network namespaces, planned: the wanted topology from the options, and the plan from what is there.

Pure functions on plain data (no kernel access), so that planning is tested on its own:
``desired(params)`` normalizes the options (those of netns_options, as the Ansible module ``netns``
has them), ``plan_present``/``plan_absent`` list the actions that bring the observed topology (see
netns_kernel.observe) to the wanted one, ``view`` renders either side for a diff. Links made here
carry an interface alias (``ALIAS_PREFIX``...) so that a later run, and ``netns down``, know which
ones are theirs.
"""

from __future__ import annotations

import ipaddress
import re

ALIAS_PREFIX = "pyforkexec.isolation"
IFNAMSIZ = 15
_IFNAME = re.compile(r"^[^/\s:]{1,15}$")
_MAC = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
_NETNS_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class ModelError(ValueError):
    """A parameter that cannot describe a topology; ``str()`` starts with the option."""


def veth_alias(netns, inside):
    """The alias of the host end of a veth made for ``inside`` in ``netns``."""
    return f"{ALIAS_PREFIX} netns={netns} link={inside}"


def parse_veth_alias(alias):
    """(netns, inside) from a veth alias of ours, else None."""
    match = re.match(rf"^{re.escape(ALIAS_PREFIX)} netns=(\S+) link=(\S+)$", alias or "")
    return match.groups() if match else None


BRIDGE_ALIAS = f"{ALIAS_PREFIX} bridge"


def _ifname(option, name):
    if not _IFNAME.match(name or ""):
        raise ModelError(f"{option}: {name!r} is not a valid interface name (1-{IFNAMSIZ} characters, "
                         "no '/', ':' or whitespace)")
    return name


def interface(option, text):
    """An address with its prefix length (the full length if none), normalized: '10.0.0.1/24'."""
    try:
        return str(ipaddress.ip_interface(text.strip()))
    except ValueError as e:
        raise ModelError(f"{option}: {e}") from None


def _mac(option, text):
    if text is None:
        return None
    mac = text.strip().lower().replace("-", ":")
    if not _MAC.match(mac):
        raise ModelError(f"{option}: {text!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    return mac


def route_key(dst, gateway=None, dev=None, metric=None):
    """A route as a plain dict with normalized values; dst 'default' for 0.0.0.0/0 and ::/0."""
    return dict(dst=dst, gateway=gateway, dev=dev, metric=metric)


def _route(option, r, devices):
    dst = (r.get("dst") or "").strip()
    gateway = r.get("gateway")
    family = None
    if gateway:
        try:
            gw = ipaddress.ip_address(gateway.strip())
        except ValueError as e:
            raise ModelError(f"{option}.gateway: {e}") from None
        gateway, family = str(gw), gw.version
    if dst in ("default", "0.0.0.0/0", "::/0"):
        if dst != "default":
            version = 6 if ":" in dst else 4
            if family not in (None, version):
                raise ModelError(f"{option}: dst {dst} and gateway {gateway} are of different IP versions")
            family = version
        dst = "default6" if family == 6 else "default"
    else:
        try:
            net = ipaddress.ip_network(dst, strict=False)
        except ValueError as e:
            raise ModelError(f"{option}.dst: {e}") from None
        if family is not None and net.version != family:
            raise ModelError(f"{option}: dst {dst} and gateway {gateway} are of different IP versions")
        dst = str(net)
    if gateway is None and not r.get("dev"):
        raise ModelError(f"{option}: give a gateway or a dev")
    dev = r.get("dev")
    if dev is not None and dev not in devices:
        raise ModelError(f"{option}.dev: {dev!r} is not a link of the namespace "
                         f"(one of {', '.join(devices)})")
    return route_key(dst, gateway, dev, r.get("metric"))


def route_family(route):
    if route["dst"] == "default6":
        return 6
    if route["dst"] == "default":
        return 4
    return ipaddress.ip_network(route["dst"]).version


def route_text(route):
    dst = "default" if route["dst"] in ("default", "default6") else route["dst"]
    text = dst
    if route["gateway"]:
        text += f" via {route['gateway']}"
    if route["dev"]:
        text += f" dev {route['dev']}"
    if route["metric"] is not None:
        text += f" metric {route['metric']}"
    return text


def check_name(name):
    """A netns name: a file name of /run/netns (and a systemd instance name)."""
    if not _NETNS_NAME.match(name or "") or name in (".", ".."):
        raise ModelError(f"name: {name!r} is not a valid netns name (letters, digits, '.', '_', '-')")
    return name


def desired(params):
    """The wanted topology from the options (already type-checked: netns_options.load, or the module's
    argument spec); keys other than the options are ignored."""
    name = check_name(params["name"])
    bridges = {}
    for i, b in enumerate(params.get("bridges") or []):
        bname = _ifname(f"bridges[{i}].name", b["name"])
        if bname in bridges:
            raise ModelError(f"bridges[{i}].name: {bname} is listed twice")
        bridges[bname] = dict(mtu=b.get("mtu"),
                              addresses=sorted({interface(f"bridges[{i}].addresses", a)
                                                for a in b.get("addresses") or []}))
    veths, host_names = {}, set(bridges)
    for i, v in enumerate(params.get("veths") or []):
        inside = _ifname(f"veths[{i}].name", v["name"])
        peer = _ifname(f"veths[{i}].peer", v["peer"])
        if inside in veths or inside == "lo":
            raise ModelError(f"veths[{i}].name: {inside} is used twice in the namespace")
        if peer in host_names:
            raise ModelError(f"veths[{i}].peer: {peer} is used twice on the host")
        host_names.add(peer)
        bridge = v.get("bridge")
        if bridge is not None:
            _ifname(f"veths[{i}].bridge", bridge)
            bridges.setdefault(bridge, dict(mtu=None, addresses=[]))
        veths[inside] = dict(
            peer=peer,
            bridge=bridge,
            mtu=v.get("mtu"),
            mac=_mac(f"veths[{i}].mac", v.get("mac")),
            peer_mac=_mac(f"veths[{i}].peer_mac", v.get("peer_mac")),
            addresses=sorted({interface(f"veths[{i}].addresses", a) for a in v.get("addresses") or []}),
            peer_addresses=sorted({interface(f"veths[{i}].peer_addresses", a)
                                   for a in v.get("peer_addresses") or []}),
        )
    devices = ["lo", *veths]
    routes = [_route(f"routes[{i}]", r, devices) for i, r in enumerate(params.get("routes") or [])]
    for i, gw in enumerate(params.get("gateway") or []):
        routes.append(_route(f"gateway[{i}]", dict(dst="default", gateway=gw), devices))
    seen = set()
    for r in routes:
        key = (r["dst"], route_family(r))
        if key in seen and r["metric"] is None:
            raise ModelError(f"routes: {route_text(r)}: a second route to the same destination "
                             "needs a metric")
        seen.add(key)
    sysctls = {}
    for key, value in (params.get("sysctls") or {}).items():
        key = key.replace("/", ".")
        if not key.startswith("net."):
            raise ModelError(f"sysctls: {key}: only net.* sysctls belong to a network namespace (any other "
                             "would change the host)")
        sysctls[key] = sysctl_value(value)
    return dict(name=name, loopback=params.get("loopback", True), bridges=bridges, veths=veths,
                routes=sorted(routes, key=route_text), sysctls=sysctls)


def sysctl_value(value):
    """A sysctl value as the kernel prints it, whitespace-normalized; booleans as 1/0."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return " ".join(str(value).split())


def _route_matches(have, want):
    return (have["dst"] == want["dst"] and have["gateway"] == want["gateway"]
            and want["dev"] in (None, have["dev"]) and want["metric"] in (None, have["metric"]))


def _link_settings(want, have, keys):
    return {k: want[k] for k in keys if want[k] is not None and (have is None or want[k] != have.get(k))}


def _addresses(side, link, want, have):
    actions = [("add_addr", side, link, a) for a in want if a not in have]
    actions += [("del_addr", side, link, a) for a in have if a not in want]
    return actions


def plan_present(observed, wanted):
    """The ordered actions that turn ``observed`` into ``wanted`` (state present)."""
    name = wanted["name"]
    actions = []
    if not observed["exists"]:
        actions.append(("create_netns", name))
    if wanted["loopback"] and not observed["loopback_up"]:
        actions.append(("link_up", "ns", "lo"))
    for bname, want in sorted(wanted["bridges"].items()):
        have = observed["bridges"].get(bname)
        if have is not None and have["kind"] != "bridge":
            raise ModelError(f"bridges: host link {bname} exists and is a {have['kind'] or 'plain link'}, "
                             "not a bridge")
        if have is None:
            actions.append(("create_bridge", bname))
        settings = _link_settings(want, have, ["mtu"])
        if settings:
            actions.append(("set_link", "host", bname, settings))
        actions += _addresses("host", bname, want["addresses"], have["addresses"] if have else [])
        if have is None or not have["up"]:
            actions.append(("link_up", "host", bname))
    deleted = set()
    for inside, have in sorted(observed["veths"].items()):
        want = wanted["veths"].get(inside)
        if want is None or want["peer"] != have["peer"]:
            actions.append(("del_veth", have["peer"]))
            deleted.add(have["peer"])
    for inside, want in sorted(wanted["veths"].items()):
        have = observed["veths"].get(inside)
        if have is not None and have["peer"] != want["peer"]:
            have = None  # deleted above: made again with the new host name
        if have is None:
            if want["peer"] in observed["host_links"] and want["peer"] not in deleted:
                raise ModelError(f"veths: host link {want['peer']} exists and was not made by pyforkexec "
                                 f"for {name}/{inside}: choose another peer name")
            if inside in observed["ns_links"] and inside not in observed["veths"]:
                raise ModelError(f"veths: link {inside} already exists in netns {name} (not a veth of ours)")
            actions.append(("create_veth", inside, want["peer"]))
        inside_settings = _link_settings(dict(mtu=want["mtu"], address=want["mac"]),
                                         have and dict(mtu=have["mtu"], address=have["mac"]),
                                         ["mtu", "address"])
        if inside_settings:
            actions.append(("set_link", "ns", inside, inside_settings))
        peer_settings = _link_settings(dict(mtu=want["mtu"], address=want["peer_mac"]),
                                       have and dict(mtu=have["peer_mtu"], address=have["peer_mac"]),
                                       ["mtu", "address"])
        if peer_settings:
            actions.append(("set_link", "host", want["peer"], peer_settings))
        if want["bridge"] != (have["bridge"] if have else None):
            actions.append(("set_master", want["peer"], want["bridge"]))
        actions += _addresses("ns", inside, want["addresses"], have["addresses"] if have else [])
        actions += _addresses("host", want["peer"], want["peer_addresses"],
                              have["peer_addresses"] if have else [])
        if have is None or not have["peer_up"]:
            actions.append(("link_up", "host", want["peer"]))
        if have is None or not have["up"]:
            actions.append(("link_up", "ns", inside))
    unmatched = list(wanted["routes"])
    for route in observed["routes"]:
        match = next((w for w in unmatched if _route_matches(route, w)), None)
        if match is None:
            actions.append(("del_route", route))
        else:
            unmatched.remove(match)
    actions += [("add_route", r) for r in unmatched]
    for key, value in sorted(wanted["sysctls"].items()):
        if observed["sysctls"].get(key) != value:
            actions.append(("sysctl", key, value))
    return actions


def plan_absent(observed, name):
    """Remove the veths made for ``name``, the bridges of ours they leave empty, then the netns."""
    actions = [("del_veth", observed["veths"][inside]["peer"]) for inside in sorted(observed["veths"])]
    gone = {v["peer"] for v in observed["veths"].values()}
    for bname, b in sorted(observed["bridges"].items()):
        if b["ours"] and b["ports"] and not set(b["ports"]) - gone:
            actions.append(("del_bridge", bname))
    if observed["exists"]:
        actions.append(("delete_netns", name))
    return actions


def describe(action):
    """One action as a short line (the module's ``actions`` result, the lines ``netns up`` prints)."""
    op, *args = action
    if op in ("add_route", "del_route"):
        return f"{op} {route_text(args[0])}"
    if op == "set_link":
        side, link, settings = args
        return f"set_link {side} {link} " + " ".join(f"{k}={v}" for k, v in sorted(settings.items()))
    return " ".join([op, *(str(a) for a in args)])


def view(observed):
    """The topology as --diff shows it (the same shape for before and after)."""
    if not observed["exists"]:
        return dict(netns=None)
    return dict(
        netns=observed["name"],
        loopback_up=observed["loopback_up"],
        bridges={n: dict(mtu=b["mtu"], up=b["up"], addresses=b["addresses"])
                 for n, b in sorted(observed["bridges"].items())},
        veths={n: {k: v[k] for k in ("peer", "bridge", "mtu", "mac", "peer_mac", "addresses",
                                     "peer_addresses", "up")}
               for n, v in sorted(observed["veths"].items())},
        routes=sorted(route_text(r) for r in observed["routes"]),
        sysctls=dict(sorted(observed["sysctls"].items())),
    )


def simulate(observed, wanted, actions):
    """What ``observed`` becomes after ``actions`` (for --diff in check mode and the after view)."""
    after = dict(observed, name=wanted["name"], exists=True, bridges=dict(observed["bridges"]),
                 sysctls=dict(observed["sysctls"]))
    if wanted["loopback"]:
        after["loopback_up"] = True
    for bname, want in wanted["bridges"].items():
        have = after["bridges"].get(bname) or dict(kind="bridge", ours=True, mtu=None, up=True, addresses=[],
                                                   ports=[])
        after["bridges"][bname] = dict(have, mtu=want["mtu"] or have["mtu"], up=True,
                                       addresses=want["addresses"])
    after["veths"] = {}
    for inside, want in wanted["veths"].items():
        have = observed["veths"].get(inside) or {}
        after["veths"][inside] = dict(
            peer=want["peer"], bridge=want["bridge"], mtu=want["mtu"] or have.get("mtu"),
            mac=want["mac"] or have.get("mac"), peer_mac=want["peer_mac"] or have.get("peer_mac"),
            addresses=want["addresses"], peer_addresses=want["peer_addresses"], up=True)
    deleted = [a[1] for a in actions if a[0] == "del_route"]
    added = [a[1] for a in actions if a[0] == "add_route"]
    after["routes"] = [r for r in observed["routes"] if r not in deleted] + added
    after["sysctls"].update(wanted["sysctls"])
    return after
