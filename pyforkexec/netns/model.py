"""Named network namespaces, planned: the wanted topology from the options, and the plan from what is there.

Pure functions on plain data (no kernel access), so that planning is tested on its own:
``desired(params)`` normalizes the options (those of netns.options, as the Ansible module ``netns``
has them), ``plan_present``/``plan_absent`` list the actions that bring the observed topology (see
kernel.observe) to the wanted one, ``view`` renders either side for a diff. Links made here
carry an interface alias (``ALIAS_PREFIX``...) so that a later run, and ``netns down``, know which
ones are theirs.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import re
import zlib
from collections.abc import Mapping

from .._text import OneLineError, printable

ALIAS_PREFIX = "pyforkexec.isolation"
IFNAMSIZ = 15
_IFNAME = re.compile(r"[^/\s:]{1,15}")  # each used with fullmatch: "$" takes a last "\n"
_MAC = re.compile(r"([0-9a-f]{2}:){5}[0-9a-f]{2}")
_NETNS_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
DEFAULT_MTU = 1500  # of a new veth or bridge, and of a bridge without ports
IPV6_MIN_MTU = 1280  # below it the kernel takes IPv6 off the link, addresses and routes with it
ETH_MIN_MTU = 68
MAX_METRIC = 2**32 - 1  # a route's priority is a u32
IPV6_DEFAULT_METRIC = 1024  # what the kernel gives an IPv6 route added without one (IPv4: none)


class ModelError(OneLineError, ValueError):
    """A parameter that cannot describe a topology; ``str()`` starts with the option, and is one line
    (a name it quotes escaped, see OneLineError)."""


def veth_alias(netns, inside):
    """The alias of the host end of a veth made for ``inside`` in ``netns``."""
    return f"{ALIAS_PREFIX} netns={netns} link={inside}"


def parse_veth_alias(alias):
    """(netns, inside) from a veth alias of ours, else None."""
    match = re.fullmatch(rf"{re.escape(ALIAS_PREFIX)} netns=(\S+) link=(\S+)", alias or "")
    return match.groups() if match else None


def _peer_taken(peer, alias, name, inside):
    """The refusal of host link ``peer`` (its ``alias``) as the host end of ``name``/``inside``."""
    owner = parse_veth_alias(alias)
    if owner is None:
        return (f"veths: host link {peer} exists and was not made by pyforkexec for {name}/{inside}: "
                "choose another peer name")
    return (f"veths: host link {peer} is the host end of {owner[0]}/{owner[1]} (pyforkexec's), which keeps "
            f"it: a peer name moves to {name}/{inside} in a run after the one that gives it up (peer names "
            "are not swapped in one run); choose another peer name")


BRIDGE_ALIAS = f"{ALIAS_PREFIX} bridge"
NETNS_ALIAS = f"{ALIAS_PREFIX} netns"  # on the lo of a namespace pyforkexec made


# A bridge of ours names the namespaces that declare it (``BRIDGE_ALIAS of NS1 NS2``): it goes once none
# of them is left and no port is on it, never while another one still declares it. ``*``: more than an
# alias holds (IFALIASZ), never removed for being empty; none (the alias alone): made before this was
# recorded, removed only when its ports go, as then.
_DECLARED_BY = f"{BRIDGE_ALIAS} of "
IFALIAS_MAX = 255


def bridge_alias(declarers):
    """The alias of a bridge of ours that the namespaces ``declarers`` declare."""
    alias = _DECLARED_BY + " ".join(sorted(declarers))
    return alias if len(alias.encode()) <= IFALIAS_MAX else _DECLARED_BY + "*"


def bridge_declarers(alias):
    """The namespaces that declare the bridge of ``alias`` (a frozenset; ``*`` among them: unknown
    ones), None for a bridge that is not ours."""
    if alias == BRIDGE_ALIAS:
        return frozenset()
    if alias and alias.startswith(_DECLARED_BY):
        return frozenset(alias[len(_DECLARED_BY):].split())
    return None


def _declared_elsewhere(bridge, name):
    """Whether a namespace other than ``name`` (or one not known) declares ``bridge`` (observed); a
    bridge made before they were recorded (``declared_by`` None) goes as then, once its ports go."""
    return bool((bridge.get("declared_by") or frozenset()) - {name})


def _declares(bridge, name):
    """Whether ``bridge`` (observed) is recorded as declared by ``name``."""
    return name in (bridge.get("declared_by") or ())


# Bytes the kernel's dev_valid_name refuses in a name besides '/' and ':': its isspace() (which counts
# 0xa0, one of the bytes of many UTF-8 letters: "\u00e0" is c3 a0) and the NUL that would end it.
_KERNEL_SPACE = frozenset(b"\x00\t\n\v\f\r \xa0")


# The names of /proc/sys/net/ipv4/conf/* and ipv6/conf/* that are no link's: the kernel refuses a new
# link named so (EINVAL), once the namespace and what came before were made.
_SYSCTL_NAMES = ("all", "default")


def _ifname(option, name):
    """A name the kernel takes as it is (dev_valid_name): 1 to IFNAMSIZ bytes, not "." or "..", no
    '/', ':' or whitespace, and no '%', which makes a new link's name a pattern the kernel numbers
    ("web%d" gives web0, web1...: each run would make another); not "all" or "default" (_SYSCTL_NAMES)."""
    data = (name or "").encode(errors="surrogateescape")
    if (not _IFNAME.fullmatch(name or "") or len(data) > IFNAMSIZ or name in (".", "..") or "%" in name
            or _KERNEL_SPACE.intersection(data)):
        raise ModelError(f"{option}: {name!r} is not a valid interface name (1-{IFNAMSIZ} bytes, not '.' "
                         "or '..', no '/', ':', '%', NUL or whitespace, as the kernel reads the bytes)")
    if name in _SYSCTL_NAMES:
        raise ModelError(f"{option}: {name!r} is a name no link can have: the kernel keeps it for its "
                         f"sysctls (net.ipv4.conf.{name}) and refuses to make a link so named")
    return name


def interface(option, text):
    """An address with its prefix length (the full length if none, as ``ip address add`` takes it),
    normalized: '10.0.0.1/24'. One the kernel would not keep as a link's own (0.0.0.0, ::, a multicast
    group, and ::1, which it takes on lo alone: EADDRNOTAVAIL) is refused here, before anything
    changes, rather than by the kernel halfway through."""
    try:
        iface = ipaddress.ip_interface(text.strip())
    except ValueError as e:
        raise ModelError(f"{option}: {e}") from None
    if iface.ip.is_unspecified or iface.ip.is_multicast:
        what = "the unspecified address" if iface.ip.is_unspecified else "a multicast group"
        raise ModelError(f"{option}: {iface} is {what}, not an address of a link")
    if iface.version == 6 and iface.ip.is_loopback:
        raise ModelError(f"{option}: {iface} is the IPv6 loopback address, which the kernel gives lo alone")
    net = iface.network
    if iface.version == 4 and net.prefixlen < 31 and iface.ip in (net.network_address, net.broadcast_address):
        what = "network" if iface.ip == net.network_address else "broadcast"
        raise ModelError(f"{option}: {iface} is the {what} address of {net}, not a host's")
    if iface.version == 6 and (iface.ip.scope_id or iface.ip.is_link_local):
        raise ModelError(f"{option}: {text.strip()} is a link-local address: the kernel gives each link its "
                         "own (fe80::/64), and keeps it out of the declared ones")
    return str(iface)


def _addresses_of(option, texts):
    """The sorted addresses of a link. An IPv6 address has one prefix length on a link (the kernel
    refuses a second), so one listed with two is refused here, before anything changes."""
    out = sorted({interface(option, a) for a in texts or []})
    seen = {}
    for a in out:
        iface = ipaddress.ip_interface(a)
        if iface.version == 6 and iface.ip in seen:
            raise ModelError(f"{option}: {iface.ip} is listed as {seen[iface.ip]} and {a} (an IPv6 address "
                             "has one prefix length on a link)")
        seen[iface.ip] = a
    return out


def _mac(option, text):
    if text is None:
        return None
    mac = text.strip().lower().replace("-", ":")
    if not _MAC.fullmatch(mac):
        raise ModelError(f"{option}: {text!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    multicast = int(mac[:2], 16) & 1
    if multicast or mac == "00:00:00:00:00:00":  # the kernel refuses them (EADDRNOTAVAIL)
        raise ModelError(f"{option}: {mac} is a {'multicast' if multicast else 'zero'} MAC address, which no "
                         "link can have (the first octet's low bit is the multicast bit)")
    return mac


def route_key(dst, gateway=None, dev=None, metric=None):
    """A route as a plain dict with normalized values; dst 'default' for 0.0.0.0/0 and ::/0."""
    return dict(dst=dst, gateway=gateway, dev=dev, metric=metric)


def _route(option, r, devices):
    dst = (r.get("dst") or "").strip()
    gateway = r.get("gateway")
    family = None
    if gateway is not None and not str(gateway).strip():  # an empty value is no "none"
        raise ModelError(f"{option}.gateway: is empty: give an address, or leave it out")
    if gateway:
        try:
            gw = ipaddress.ip_address(gateway.strip())
        except ValueError as e:
            raise ModelError(f"{option}.gateway: {e}") from None
        if gw.version == 6 and gw.scope_id:
            raise ModelError(f"{option}.gateway: {gateway}: give the link as dev, not as a %zone")
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
        if net.network_address != ipaddress.ip_interface(dst).ip:  # (ip route refuses it too: "Invalid
            # prefix for given prefix length"; taken as its network, a typo of a /32 would route a subnet)
            raise ModelError(f"{option}.dst: {dst} has host bits set: the network is {net} (or give the "
                             "address alone, as a /32 or /128)")
        if family is not None and net.version != family:
            raise ModelError(f"{option}: dst {dst} and gateway {gateway} are of different IP versions")
        dst = str(net)
    if gateway is None and not r.get("dev"):
        raise ModelError(f"{option}: give a gateway or a dev")
    dev = r.get("dev")
    if dev is not None and dev not in devices:
        raise ModelError(f"{option}.dev: {dev!r} is not a link of the namespace "
                         f"(one of {', '.join(devices)})")
    metric = r.get("metric")
    if metric is not None and not 0 <= metric <= MAX_METRIC:
        raise ModelError(f"{option}.metric: {metric} is not a route metric (0 to {MAX_METRIC})")
    if gateway is not None and dev is None and ipaddress.ip_address(gateway).is_link_local:
        raise ModelError(f"{option}: the link-local gateway {gateway} is on every link: give its dev")
    route = route_key(dst, gateway, dev, metric)
    if route["metric"] == 0 and route_family(route) == 6:  # the kernel gives an IPv6 route 1024 for 0
        route["metric"] = IPV6_DEFAULT_METRIC
    return route  # IPv4's 0 stays: the kernel's own metric (shown as none), not any metric


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
    if not _NETNS_NAME.fullmatch(name or "") or name in (".", ".."):
        raise ModelError(f"name: {name!r} is not a valid netns name (letters, digits, '.', '_', '-')")
    return name


def desired(params):
    """The wanted topology from the options (already type-checked: netns.options.load, or the module's
    argument spec); keys other than the options are ignored."""
    name = check_name(params["name"])
    bridges = {}
    for i, b in enumerate(params.get("bridges") or []):
        bname = _ifname(f"bridges[{i}].name", b["name"])
        if bname in bridges:
            raise ModelError(f"bridges[{i}].name: {bname} is listed twice")
        bridges[bname] = dict(mtu=b.get("mtu"),
                              addresses=_addresses_of(f"bridges[{i}].addresses", b.get("addresses")))
    veths, host_names = {}, set(bridges)
    named_bridges = {v.get("bridge") for v in params.get("veths") or []} - {None}  # a veth's, too
    for i, v in enumerate(params.get("veths") or []):
        inside = _ifname(f"veths[{i}].name", v["name"])
        peer = _ifname(f"veths[{i}].peer", v["peer"])
        if inside in veths or inside == "lo":
            raise ModelError(f"veths[{i}].name: {inside} is used twice in the namespace")
        if peer in host_names or peer in named_bridges:
            raise ModelError(f"veths[{i}].peer: {peer} is used twice on the host")
        host_names.add(peer)
        bridge = v.get("bridge")
        if bridge is not None:
            _ifname(f"veths[{i}].bridge", bridge)
            # Named by a veth only: made without addresses if missing, its addresses left as they are
            # (None: not ours to declare; a bridge another namespace lists, or one made by hand).
            bridges.setdefault(bridge, dict(mtu=None, addresses=None))
        veths[inside] = dict(
            peer=peer,
            bridge=bridge,
            mtu=v.get("mtu"),
            mac=_mac(f"veths[{i}].mac", v.get("mac")),
            peer_mac=_mac(f"veths[{i}].peer_mac", v.get("peer_mac")),
            addresses=_addresses_of(f"veths[{i}].addresses", v.get("addresses")),
            peer_addresses=_addresses_of(f"veths[{i}].peer_addresses", v.get("peer_addresses")),
        )
    devices = ["lo", *veths]
    routes = [_route(f"routes[{i}]", r, devices) for i, r in enumerate(params.get("routes") or [])]
    for i, r in enumerate(routes):
        if r["dev"] == "lo" and not params.get("loopback", True):
            raise ModelError(f"routes[{i}]: {route_text(r)}: goes through lo, which loopback false does not "
                             "bring up (a new namespace's is down), and the kernel takes no route through a "
                             "link that is down (ENETDOWN): set loopback true")
    for i, gw in enumerate(params.get("gateway") or []):
        routes.append(_route(f"gateway[{i}]", dict(dst="default", gateway=gw), devices))
    seen = set()
    for r in routes:
        # The kernel keeps one route per destination and metric (IPv4 refuses a second, IPv6 would
        # merge it into a multipath route); no metric is the kernel's own (IPv4 0, IPv6 1024).
        metric = r["metric"] if r["metric"] is not None else _default_metric(route_family(r))
        key = (r["dst"], route_family(r), metric)
        if key in seen:
            raise ModelError(f"routes: {route_text(r)}: a second route to the same destination "
                             "needs a metric of its own")
        seen.add(key)
    for i, b in enumerate(params.get("bridges") or []):
        _check_mtu(f"bridges[{i}].mtu", b.get("mtu"), has_ipv6(bridges[b["name"]]["addresses"]))
    for i, v in enumerate(params.get("veths") or []):
        want = veths[v["name"]]
        ipv6 = has_ipv6(want["addresses"] + want["peer_addresses"]) or any(
            r["dev"] == v["name"] and route_family(r) == 6 for r in routes)
        _check_mtu(f"veths[{i}].mtu", want["mtu"], ipv6)
    for r in routes:
        _check_on_link(r, veths, routes)
        _check_not_the_kernels(r, veths)
    for i, b in enumerate(params.get("bridges") or []):
        _check_followed_mtu(f"bridges[{i}]", b["name"], bridges[b["name"]], veths)
    sysctls, spelled = {}, {}
    for given, value in (params.get("sysctls") or {}).items():
        key = _sysctl_key(given)
        if key in spelled:
            raise ModelError(f"sysctls: {spelled[key]} and {given} name the same sysctl: give it once")
        spelled[key] = given
        if not key.startswith("net."):
            raise ModelError(f"sysctls: {key}: only net.* sysctls belong to a network namespace (any other "
                             "would change the host)")
        _check_link_of_sysctl(key, devices)
        if isinstance(value, float) or not isinstance(value, (str, int)):
            shown = "null" if value is None else repr(value)
            raise ModelError(f"sysctls: {key}: {shown} is not a sysctl value (an integer, or a string)")
        sysctls[key] = sysctl_value(value)
        if not sysctls[key]:  # the kernel takes "" (or blanks) for nothing: it would never read back so
            raise ModelError(f"sysctls: {key}: is empty: give its value (an integer, or a string)")
    _check_sysctls_with_links(sysctls, veths, routes)
    for key, value in sysctls.items():
        if key.startswith("net.ipv6.conf.") and key.endswith(".mtu") and value.isdigit():
            link = key[len("net.ipv6.conf."):-len(".mtu")]
            mtu = veths[link]["mtu"] if link in veths else None
            if link in veths and int(value) > (mtu or DEFAULT_MTU):
                raise ModelError(f"sysctls: {key}: {value} is above {link}'s MTU {mtu or DEFAULT_MTU} (the "
                                 "kernel takes an IPv6 MTU up to the link's)")
    return dict(name=name, loopback=params.get("loopback", True), bridges=bridges, veths=veths,
                routes=sorted(routes, key=route_text), sysctls=sysctls)


def kept_addresses(keep, bname):
    """The addresses of bridge ``bname`` that the batch's other namespaces declare (``keep``: the
    bridges they want, a mapping {bridge: addresses} where a batch gives them), normalized."""
    out = []
    for text in keep.get(bname, ()) if isinstance(keep, Mapping) else ():
        with contextlib.suppress(ValueError):
            out.append(str(ipaddress.ip_interface(text)))
    return out


def bridge_addresses(bname, want, have, kept=()):
    """The addresses bridge ``bname`` is to have: those ``want`` declares, and those that the other
    namespaces declaring it recorded (``have["others"]``: netns.declared) or that a later converge of
    the batch declares (``kept``: kept_addresses), so that the converge of one namespace never takes
    off the bridge what another one declares (its gateway), not even until that one's converge puts it
    back; an address goes once no namespace on the bridge declares it. None for a bridge only named by
    a veth (``want["addresses"]`` None), whose addresses stay as they are. What cannot hold for both, an
    IPv6 address with two prefix lengths or two MTUs, is refused before anything changes."""
    if want["addresses"] is None:
        return None
    out = {a: None for a in want["addresses"]}  # address -> the namespace declaring it (None: this one)
    for a in kept:
        out.setdefault(a, "of this run")
    for other, entry in (have or {}).get("others", ()):
        theirs = entry.get("mtu")
        if want["mtu"] is not None and theirs is not None and theirs != want["mtu"]:
            raise ModelError(f"bridges: {bname}: mtu {want['mtu']} here, {theirs} as netns {other} declares "
                             "it: declare a bridge alike in every namespace on it")
        for text in entry.get("addresses") or ():
            try:
                out.setdefault(interface(f"bridges: {bname}", text), other)
            except (ModelError, AttributeError):  # (a record damaged by hand: it constrains nothing)
                continue
    seen = {}
    for a, who in sorted(out.items()):
        iface = ipaddress.ip_interface(a)
        if iface.version == 6 and iface.ip in seen and seen[iface.ip][1] != who:
            (first, one), (second, two) = seen[iface.ip], (a, who)
            where = [f"{x} {'here' if w is None else f'as netns {w} declares it'}" for x, w in ((first, one),
                                                                                               (second, two))]
            raise ModelError(f"bridges: {bname}: {' and '.join(where)}: an IPv6 address has one prefix "
                             "length on a link; declare a bridge alike in every namespace on it")
        seen[iface.ip] = (a, who)
    return sorted(out)


def _given_up(bname, have, wanted=None, kept=()):
    """The del_addr actions of the addresses that this namespace declared on bridge ``bname`` (observed
    ``have["mine"]``: netns.declared) and no longer does (``wanted``: what it declares now; None:
    nothing), that no other namespace declaring the bridge does nor a later converge of the batch
    (``kept``), and that the bridge has: as a bridge's address goes once no namespace on it declares
    it, not left behind on a bridge that stays."""
    theirs = {a for _, entry in have.get("others", ()) for a in entry.get("addresses") or ()}
    keep = set(wanted or ()) | theirs | set(kept)
    return [("del_addr", "host", bname, a) for a in have["addresses"]
            if a in set(have.get("mine") or ()) and a not in keep]


def _check_sysctls_with_links(sysctls, veths, routes):
    """Refuse, before anything changes, sysctls the kernel cannot take along with the links declared:
    two spellings of one switch set apart (``ip_forward`` is ``conf.all.forwarding``); IPv6 turned off
    (``disable_ipv6``: the link's own, else ``all``'s; for a link made later, ``default``'s when the
    link declares none) on a link with IPv6 addresses or routes; an IPv6 setting of a link whose MTU
    takes IPv6 off it (below 1280, where the kernel removes that link's ``ipv6.conf`` directory)."""
    v4 = [sysctls.get(k) for k in ("net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding")]
    if None not in v4 and v4[0] != v4[1]:
        raise ModelError(f"sysctls: net.ipv4.ip_forward {v4[0]} and net.ipv4.conf.all.forwarding {v4[1]} are "
                         "one switch: give one value (or one of them)")
    for inside, want in [*veths.items(), ("lo", dict(addresses=[], mtu=None))]:
        ipv6 = has_ipv6(want["addresses"]) or any(r["dev"] == inside and route_family(r) == 6
                                                   for r in routes)
        own = sysctls.get(f"net.ipv6.conf.{inside}.disable_ipv6")
        keys = [f"net.ipv6.conf.{inside}.disable_ipv6", "net.ipv6.conf.all.disable_ipv6"]
        if inside != "lo":  # lo is made with the namespace, before any default is written
            keys.append("net.ipv6.conf.default.disable_ipv6")
        for key in keys:
            mine = key.endswith(f".{inside}.disable_ipv6")
            if ipv6 and sysctls.get(key) == "1" and (own is None or mine):
                keep = "" if mine else f" (declare net.ipv6.conf.{inside}.disable_ipv6: 0 to keep it there)"
                raise ModelError(f"sysctls: {key}: 1 takes IPv6 off {inside}, which has IPv6 addresses or "
                                 f"routes{keep}")
        if want["mtu"] is not None and want["mtu"] < IPV6_MIN_MTU:
            for key in sysctls:
                if key.startswith(f"net.ipv6.conf.{inside}.") or key.startswith(f"net.ipv6.neigh.{inside}."):
                    raise ModelError(f"sysctls: {key}: {inside}'s MTU {want['mtu']} is below {IPV6_MIN_MTU}, "
                                     "where the kernel takes IPv6 off the link with its settings")


def _check_not_the_kernels(route, veths):
    """A route to the subnet of an address on any link, at the metric the kernel gives its own route for
    that address (IPv4: none; IPv6: 256): the kernel made that one already, and keeps one route per
    destination and metric (EEXIST), whatever the dev or gateway."""
    if route["dst"] in ("default", "default6"):
        return
    if ipaddress.ip_network(route["dst"]) == ipaddress.ip_network("fe80::/64") and route["metric"] == 256:
        raise ModelError(f"routes: {route_text(route)}: the kernel makes this route itself for every link "
                         "with IPv6 (its link-local address): leave it out (or give it another metric)")
    kernels = {4: (None, 0), 6: (256,)}  # IPv4's metric 0 is none
    dst = ipaddress.ip_network(route["dst"])
    for inside, veth in sorted(veths.items()):
        for a in veth.get("addresses", []):
            iface = ipaddress.ip_interface(a)
            if (iface.network == dst and route["metric"] in kernels[iface.version]
                    and _routes_its_subnet(iface)):
                mine = route["dev"] == inside and route["gateway"] is None
                raise ModelError(f"routes: {route_text(route)}: the kernel makes this route itself for the "
                                 f"address {a}{'' if mine else f' on {inside}'}: leave it out (or give it "
                                 "another metric)")


def _check_followed_mtu(option, name, bridge, veths):
    """A bridge with IPv6 addresses and no MTU of its own takes its smallest port's: below 1280 the
    kernel takes IPv6 off it, with its addresses."""
    if bridge["mtu"] is not None or not has_ipv6(bridge["addresses"] or []):
        return
    small = sorted((v["mtu"], inside) for inside, v in veths.items()
                   if v["bridge"] == name and v["mtu"] is not None and v["mtu"] < IPV6_MIN_MTU)
    if small:
        raise ModelError(f"{option}.mtu: the bridge has IPv6 addresses, and unset it takes its smallest "
                         f"port's MTU ({small[0][0]}, veth {small[0][1]}), below {IPV6_MIN_MTU}: give it "
                         "an mtu")


def _sysctl_key(key):
    """A sysctl key, names joined by '.' or '/', in the dotted spelling; one with an empty name (a
    separator at either end, or two in a row: /proc/sys/net/ipv4//x is not a key of its own) or a name
    with blanks or control characters is refused."""
    if not isinstance(key, str):
        raise ModelError(f"sysctls: {key!r}: a sysctl key is a string")
    names = key.replace("/", ".").split(".")
    if "" in names:
        raise ModelError(f"sysctls: {key}: has an empty name (a '.' or '/' at either end, or two in a "
                         "row): a sysctl key is names joined by '.' or '/'")
    for name in names:
        if any(c.isspace() or not c.isprintable() for c in name):
            raise ModelError(f"sysctls: {key!r}: {name!r} is not a plain name (it has blanks or control "
                             "characters)")
    return ".".join(names)


def _check_link_of_sysctl(key, devices):
    """A per-link sysctl (net.ipv4.conf.LINK.x, net.ipv6.neigh.LINK.x...) names a link of the namespace
    (or all, default): another would fail once the namespace is made. A link whose name has a dot
    cannot be told apart in the key: refused."""
    for prefix in ("net.ipv4.conf.", "net.ipv6.conf.", "net.ipv4.neigh.", "net.ipv6.neigh."):
        if key.startswith(prefix):
            rest = key[len(prefix):]
            links = [d for d in ("all", "default", *devices) if rest.startswith(d + ".")]
            if not links:
                raise ModelError(f"sysctls: {key}: names no link of the namespace (its links: "
                                 f"{', '.join(devices)}; or all, default)")
            if any("." in link for link in links):
                raise ModelError(f"sysctls: {key}: the link's name has a dot, which a sysctl key cannot tell "
                                 "from its separators: rename the link")


def _check_on_link(route, veths, routes):
    """A gateway the kernel can reach: inside a subnet of the namespace's links (its dev's, when it
    names one), an address's or a route's without gateway; else the kernel refuses the route
    (ENETUNREACH) once the namespace is made. A link-local IPv6 gateway is on its dev's link."""
    if route["gateway"] is None:
        return
    gw = ipaddress.ip_address(route["gateway"])
    if gw.is_link_local and route["dev"] == "lo":
        raise ModelError(f"routes: {route_text(route)}: a link-local gateway is on its dev's link, and lo "
                         "has none (the kernel refuses it: EINVAL)")
    if gw.is_link_local and route["dev"] is not None:
        return
    own = [inside for inside, v in veths.items() for a in v["addresses"]
           if ipaddress.ip_interface(a).ip == gw]
    if own:
        raise ModelError(f"routes: {route_text(route)}: the gateway {gw} is an address of this namespace "
                         f"(link {own[0]}): a route through it goes nowhere")
    for net, dev in _connected(veths, routes):
        if net.version == 4 and net.prefixlen < 31 and gw in (net.network_address, net.broadcast_address):
            raise ModelError(f"routes: {route_text(route)}: the gateway {gw} is the network or broadcast "
                             f"address of {net} (link {dev}): no host there")
    devs = {dev for net, dev in _connected(veths, routes) if net.version == gw.version and gw in net}
    if route["dev"] is None and len(_gateway_devs(route, dict(veths=veths, routes=routes))) > 1:
        raise ModelError(f"routes: {route_text(route)}: links {', '.join(sorted(devs))} all reach the "
                         "gateway: give the route's dev (which one the kernel picks cannot be told)")
    if route["dev"] in devs or (route["dev"] is None and devs):
        return
    where = f"link {route['dev']}" if route["dev"] else "link of the namespace"
    raise ModelError(f"routes: {route_text(route)}: the gateway {gw} is in no subnet of a {where} (an "
                     "address's, or a route's without gateway): the kernel could not reach it")


def _check_kept_mtus(observed, wanted, mtus):
    """An MTU left unset keeps the one the link has (a veth's) or follows its ports (a bridge's): below
    1280 the kernel takes IPv6 off the link, so IPv6 addresses or routes asked for on it fail halfway
    through the converge (EINVAL), and every converge after; so does an ``ipv6.conf.LINK.mtu`` above
    the MTU a veth keeps. Refused before anything changes, as a declared MTU is (_check_mtu)."""
    for inside, want in sorted(wanted["veths"].items()):
        have = observed["veths"].get(inside)
        if want["mtu"] is not None or have is None or not _kept(have, want, _taken(observed, wanted)):
            continue
        v6_routes = any(r["dev"] == inside and route_family(r) == 6 for r in wanted["routes"]) \
            or any(k.startswith(f"net.ipv6.conf.{inside}.") for k in wanted["sysctls"])  # (gone below 1280)
        for where, mtu, ipv6 in ((f"{inside} (in the namespace)", have["mtu"], has_ipv6(want["addresses"])
                                  or v6_routes),
                                 (f"{want['peer']} (on the host)", have["peer_mtu"],
                                  has_ipv6(want["peer_addresses"]))):
            if ipv6 and mtu is not None and mtu < IPV6_MIN_MTU:
                raise ModelError(f"veths: {inside}: mtu unset keeps the MTU {where} has, {mtu}, below "
                                 f"{IPV6_MIN_MTU}, the least IPv6 works with, and the link is to have IPv6 "
                                 "addresses, routes or sysctls: give it an mtu")
        key = f"net.ipv6.conf.{inside}.mtu"  # (desired checked it against 1500, a new link's MTU)
        value = wanted["sysctls"].get(key, "")
        if value.isdigit() and have["mtu"] is not None and int(value) > have["mtu"]:
            raise ModelError(f"sysctls: {key}: {value} is above the MTU {have['mtu']} that {inside} keeps "
                             "with its mtu unset (the kernel takes an IPv6 MTU up to the link's): give the "
                             f"veth an mtu of at least {value}")
    for bname, want in sorted(wanted["bridges"].items()):
        final = mtus[bname][2]
        have = observed["bridges"].get(bname) or {}
        addresses = bridge_addresses(bname, want, have)
        addresses = addresses if addresses is not None else have.get("addresses", [])
        if want["mtu"] is None and has_ipv6(addresses) and final < IPV6_MIN_MTU:
            raise ModelError(f"bridges: {bname}: mtu unset, the bridge keeps or follows its ports to "
                             f"{final}, below {IPV6_MIN_MTU}, the least IPv6 works with, and it has (or is "
                             "to have) IPv6 addresses: give it an mtu, or its ports one of at least 1280")


def has_ipv6(addresses):
    return any(ipaddress.ip_interface(a).version == 6 for a in addresses)


def _check_mtu(option, mtu, ipv6):
    """An MTU the kernel takes for an Ethernet link, and that keeps the link's IPv6 (below 1280 the
    kernel takes IPv6 off the link, with the addresses and routes asked for)."""
    if mtu is None:
        return
    if not ETH_MIN_MTU <= mtu <= 65535:
        raise ModelError(f"{option}: {mtu} is not an MTU ({ETH_MIN_MTU} to 65535)")
    if mtu < IPV6_MIN_MTU and ipv6:
        raise ModelError(f"{option}: {mtu} is below {IPV6_MIN_MTU}, the least IPv6 works with, and the link "
                         "has IPv6 addresses or routes")


def _default_metric(family):
    return IPV6_DEFAULT_METRIC if family == 6 else 0


def _metric(route):
    """An observed route's metric as the kernel orders routes: IPv4's own, shown as none, is 0."""
    return route["metric"] if route["metric"] is not None else _default_metric(route_family(route))


def _shown_metric(route):
    """A wanted route's metric as the kernel will show it once added: IPv4's 0 as none, IPv6's none
    as 1024; None for an IPv4 route that gives none."""
    if route_family(route) == 6:
        return _metric(route)
    return route["metric"] or None


def sysctl_value(value):
    """A sysctl value as the kernel prints it: whitespace-normalized, booleans as 1/0, and each word
    that is an integer as C reads it with base 0 (``0x10``, ``010``: what the kernel's integer
    sysctls take) in decimal, as they print it back."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return " ".join(_c_integer(word) for word in str(value).split())


def _c_integer(word):
    """``word`` in decimal when it is an integer in C's base-0 syntax (0x hex, leading-0 octal), else
    as it is."""
    sign, body = (word[0], word[1:]) if word[:1] in "+-" else ("", word)
    if not body.isascii() or not body:
        return word
    if body[:2].lower() == "0x" and len(body) > 2 and all(c in "0123456789abcdefABCDEF" for c in body[2:]):
        number = int(body[2:], 16)
    elif body[0] == "0" and all(c in "01234567" for c in body):
        number = int(body, 8)
    elif body.isdigit() and body[0] != "0":
        number = int(body)
    else:
        return word
    return str(-number if sign == "-" else number)


def _route_matches(have, want, devs=()):
    """``have`` (observed) is ``want``: a dev or metric not given matches any, except that a gateway
    route belongs on the link whose subnet holds the gateway (``devs``, from _gateway_devs)."""
    dev_ok = have["dev"] == want["dev"] if want["dev"] else (not devs or have["dev"] in devs)
    return (have["dst"] == want["dst"] and have["gateway"] == want["gateway"] and dev_ok
            and (want["metric"] is None or want["metric"] == _metric(have)))


def _link_settings(want, have, keys):
    return {k: want[k] for k in keys if want[k] is not None and (have is None or want[k] != have.get(k))}


def _addresses(side, link, want, have):
    """Adds before deletes, so that a link never goes through a moment without the addresses both
    sides give it (its last IPv4 address takes every IPv4 route through the link with it). The one
    exception is forced: an IPv6 address keeps one prefix length, so one whose length changes goes
    before it comes back. (A deleted IPv4 primary does not take its subnet's secondaries with it:
    kernel promotes them.)"""
    adds = [a for a in want if a not in have]
    dels = [a for a in have if a not in want]
    ifaces = {a: ipaddress.ip_interface(a) for a in adds + dels}
    new_ips = {ifaces[a].ip for a in adds}
    first = [a for a in dels if ifaces[a].version == 6 and ifaces[a].ip in new_ips]
    actions = [("del_addr", side, link, a) for a in first]
    actions += [("add_addr", side, link, a) for a in adds]
    actions += [("del_addr", side, link, a) for a in dels if a not in first]
    return actions


def _routes_its_subnet(iface):
    """Whether the kernel makes a route to the subnet of address ``iface`` (an ip_interface) when it is
    added: not for an IPv4 subnet that starts at 0.0.0.0 (10.0.0.2/0 to /4: fib_add_ifaddr skips a
    zero prefix), which the link then does not reach without a route of its own."""
    return iface.version == 6 or iface.network.network_address != ipaddress.IPv4Address(0)


def _connected(veths, routes):
    """(subnet, link) of each subnet the namespace's links reach directly: their addresses' (those the
    kernel routes, _routes_its_subnet), and the routes' without gateway."""
    ifaces = [(ipaddress.ip_interface(a), link) for link, v in veths.items() for a in v["addresses"]]
    nets = [(iface.network, link) for iface, link in ifaces if _routes_its_subnet(iface)]
    return nets + [(_route_network(r), r["dev"]) for r in routes if r["dev"] and not r["gateway"]]


def _gateway_devs(route, wanted):
    """The veths of ``wanted`` the kernel puts ``route`` on when it names a gateway but no dev: those
    whose subnet (an address's, or a route's without gateway) holds the gateway most closely. Empty
    when none does (the route then matches on any dev)."""
    if route["dev"] or not route["gateway"]:
        return set()
    gw = ipaddress.ip_address(route["gateway"])
    nets = [(net, dev) for net, dev in _connected(wanted["veths"], wanted["routes"])
            if net.version == gw.version and gw in net]
    if not nets:
        return set()
    longest = max(net.prefixlen for net, _ in nets)
    return {dev for net, dev in nets if net.prefixlen == longest}


def _route_network(route):
    if route["dst"] in ("default", "default6"):
        return ipaddress.ip_network("::/0" if route["dst"] == "default6" else "0.0.0.0/0")
    return ipaddress.ip_network(route["dst"])


def _kept(have, want, taken):
    """Whether the observed veth ``have`` stays as the wanted ``want`` (None: not wanted): wired to the
    namespace, with the same host end, or one renamed in place (_renamed). Any other is deleted (and
    made again when wanted)."""
    return want is not None and have["wired"] and (want["peer"] == have["peer"]
                                                   or _renamed(have, want, taken))


def _renamed(have, want, taken):
    """Whether the host end of the wired veth ``have`` takes its new name ``want["peer"]`` in place: the
    inside link keeps its addresses and routes (made again, it would lose them for a moment), where no
    host link keeps that name (``taken``: _taken; a name another host end of the namespace leaves, by
    its deletion or its own rename, is free: _renames orders them)."""
    return want["peer"] != have["peer"] and want["peer"] not in taken


def _taken(observed, wanted):
    """The host's link names a renamed (or new) host end cannot take: all but those of the veths whose
    host end leaves its name, deleted first (not wanted, or wired elsewhere) or renamed (wanted under
    another peer name: in place, or made again), so free by the time it is taken."""
    return set(observed["host_links"]) - _freed(observed, wanted)


def _freed(observed, wanted):
    """The host names of the namespace's veths that the plan takes off their link (a deletion, or a
    rename)."""
    return {have["peer"] for inside, have in observed["veths"].items()
            if inside not in wanted["veths"] or not have["wired"]
            or wanted["veths"][inside]["peer"] != have["peer"]}


TEMP_PREFIX = "pfe-"  # of a host end renamed for a moment, in a trade of names (_renames)


def _temp_name(netns, i):
    """The ``i``-th temporary host name of a converge of ``netns``: TEMP_PREFIX, 6 hex digits of the
    namespace's name (two namespaces' never meet) and ``i``; at most IFNAMSIZ bytes."""
    return f"{TEMP_PREFIX}{zlib.crc32(netns.encode()) & 0xFFFFFF:06x}-{i}"


def _renames(renames, observed, wanted):
    """The rename_veth actions of ``renames`` ({old host name: new}), each once its new name is free: a
    name another of them leaves is taken after that one is renamed. A cycle (two host ends trading their
    names, or more in a ring) goes through a temporary name: one of them is renamed to a name no link
    of the host has nor the plan uses (_temp_name), then the others,
    then it. A converge cut short in between (SIGKILL) leaves that host end under the temporary name,
    with the alias that makes it ours (kernel.observe knows it by its alias, not by its name): the next
    converge renames it on."""
    pending, out = dict(renames), []
    used = set(observed["host_links"]) | set(wanted["bridges"])
    used |= {v["peer"] for v in wanted["veths"].values()}
    while pending:
        ready = sorted(old for old, new in pending.items() if new not in pending)
        if not ready:  # each name is left by another one of them: a cycle, opened by a temporary name
            old = min(pending)
            temp = next(t for t in map(functools.partial(_temp_name, wanted["name"]), range(len(used) + 1))
                        if t not in used)
            used.add(temp)
            out.append(("rename_veth", old, temp))
            pending[temp] = pending.pop(old)
            continue
        for old in ready:
            out.append(("rename_veth", old, pending.pop(old)))
    return out


def _dropped_routes(observed, wanted):
    """The observed routes the kernel removes as a side effect of the plan's link and address changes:
    those through a veth that is deleted (or made again under another host name), the IPv4 ones
    through a veth left without an IPv4 address (the kernel disables IPv4 on it and flushes them,
    without a notification), and the IPv6 ones through a veth whose MTU goes below 1280 (the kernel
    takes IPv6 off it). The plan deletes them itself first (before the change: after it, the delete
    would fail) and adds back those still wanted."""
    doomed, v4_gone, v6_gone, taken = set(), set(), set(), _taken(observed, wanted)
    for inside, have in observed["veths"].items():
        want = wanted["veths"].get(inside)
        if not _kept(have, want, taken):
            doomed.add(inside)
            continue
        if (any(ipaddress.ip_interface(a).version == 4 for a in have["addresses"])
                and not any(ipaddress.ip_interface(a).version == 4 for a in want["addresses"])):
            v4_gone.add(inside)
        if _ipv6_taken_off(have, want):
            v6_gone.add(inside)
    return [r for r in observed["routes"]
            if r["dev"] in doomed or (r["dev"] in v4_gone and route_family(r) == 4)
            or (r["dev"] in v6_gone and route_family(r) == 6)]


def _ipv6_taken_off(have, want):
    """Whether the kept veth ``have`` (observed) loses IPv6 as ``want``: its MTU set below 1280."""
    return want["mtu"] is not None and want["mtu"] < IPV6_MIN_MTU and want["mtu"] != have.get("mtu")


def _check_foreign_routes(observed, adds):
    """A route to add where a route of another protocol (left alone: a DHCP client's, a routing
    daemon's) has its destination and metric: the kernel would refuse it (EEXIST) after the rest of
    the plan, at every run."""
    for want in adds:
        metric = _shown_metric(want)
        for dst, theirs, proto in observed.get("foreign_routes", []):
            if dst == want["dst"] and (theirs or None) == (metric or None):
                raise ModelError(f"routes: {route_text(want)}: a route of another protocol ({proto}) to "
                                 f"{dst} at that metric is there, which pyforkexec leaves alone: give this "
                                 "one another metric, or remove that one")


def route_id(route):
    """The kernel's key of a route of the main table: family, destination and metric (one not given is
    the kernel's own, IPv4's 0 and IPv6's 1024). The kernel holds one route per key (IPv4 refuses a
    second, IPv6 would merge it into a multipath route), and a route of another key beside it: a
    route whose key stays is replaced at once (RTM_NEWROUTE with NLM_F_REPLACE), one of a new key is
    added while the old one is still there."""
    return (route_family(route), route["dst"], _metric(route))


def _goes_first(route, wanted):
    """Whether the observed ``route``, which goes, must be deleted before the links and addresses change
    rather than last: an IPv6 route without gateway on a link where an address of ``wanted`` makes the
    kernel's own route for its subnet at the kernel's metric (256): held by ours, that one is not made,
    and the subnet would be left without a route. (One through a link whose MTU goes below 1280 is one
    the kernel drops: _dropped_routes.)"""
    if route_family(route) != 6 or route["dev"] is None:
        return False
    want = wanted["veths"].get(route["dev"])
    if want is None:
        return False
    return route["gateway"] is None and _metric(route) == 256 and any(
        ipaddress.ip_interface(a).network == _route_network(route) for a in want["addresses"]
        if ipaddress.ip_interface(a).version == 6)


def _in_the_way(route, installs, wanted):
    """Whether the observed ``route``, which goes, is at least as specific as the subnet through which
    one of the gateways of ``installs`` (routes added or replaced) is to be reached: the kernel would
    look that gateway up through it (IPv4: put the new route on its link; IPv6: refuse a gateway reached
    through a gateway, EHOSTUNREACH), so it goes before they are added."""
    net = _route_network(route)
    for w in installs:
        if not w["gateway"]:
            continue
        gw = ipaddress.ip_address(w["gateway"])
        if gw.version != net.version or gw not in net:
            continue
        reach = [n.prefixlen for n, dev in _connected(wanted["veths"], wanted["routes"])
                 if n.version == gw.version and gw in n and (w["dev"] is None or dev == w["dev"])]
        if reach and net.prefixlen >= max(reach):  # (none: a link-local gateway, on its dev's link)
            return True
    return False


def _plan_routes(observed, wanted):
    """The route changes, as {first: the observed routes deleted before the link and address changes,
    dropped: those of them the kernel drops itself, installs: the add_route and replace_route actions,
    last: the observed routes deleted after them} (_before_drops and _routes_after place them): an observed
    route stays when a wanted one matches it and the kernel keeps it through the plan. No destination
    that both route is left without a route, not even for a moment: once the links and addresses are
    there, a wanted route whose key (route_id) an observed one that goes has replaces it at once
    (``replace_route``), the others are added (``add_route``) while the ones that go are still there,
    and only then are those deleted (``del_route``). Deleted first: the routes the kernel drops with a
    link or address change itself (_dropped_routes, added back after when still wanted), and those
    the links' changes need gone (_goes_first); deleted before the gateway routes are added, those
    that would stand between them and their gateways (_in_the_way)."""
    dropped = _dropped_routes(observed, wanted)
    free = [r for r in observed["routes"] if r not in dropped]
    # A metric a wanted route gives is its own: a route that has it cannot stay for another one
    # (the kernel keeps one route per destination and metric: it is replaced).
    taken = {(w["dst"], w["metric"]) for w in wanted["routes"] if w["metric"] is not None}
    adds = []
    # The wanted routes that give a metric or a dev choose first: one without would otherwise take
    # the route that only the other one matches.
    for want in sorted(wanted["routes"], key=lambda w: (w["metric"] is None, w["dev"] is None)):
        devs = _gateway_devs(want, wanted)
        match = next((r for r in free if _route_matches(r, want, devs)
                      and (want["metric"] is not None or (r["dst"], _metric(r)) not in taken)), None)
        if match is None:
            adds.append(want)
        else:
            free.remove(match)
    # Added in the order the kernel takes them: a route through a gateway needs the device route that
    # makes its gateway reachable first (ENETUNREACH, EHOSTUNREACH otherwise), in the declared order.
    order = {id(w): i for i, w in enumerate(wanted["routes"])}
    adds.sort(key=lambda w: (w.get("gateway") is not None, order[id(w)]))
    _check_foreign_routes(observed, adds)
    going = [r for r in observed["routes"] if r in free]  # (in the kernel's order, as observed)
    first = [r for r in observed["routes"] if r in dropped] + [r for r in going if _goes_first(r, wanted)]
    last = [r for r in going if r not in first]
    installs = []
    for want in adds:
        old = next((r for r in last if route_id(r) == route_id(want)), None)
        if old is None:
            installs.append(("add_route", want))
        else:
            last.remove(old)
            installs.append(("replace_route", old, want))
    return dict(first=first, dropped=[r for r in first if r in dropped], installs=installs, last=last)


def _routes_after(routes, wanted):
    """The route actions of ``routes`` (_plan_routes, less those _before_drops placed) that come once the
    links and addresses are in place: installs without gateway, the going routes in the way of a
    gateway, installs with gateway, then the other going routes."""
    installs, last = routes["installs"], routes["last"]
    gateway_routes = [a[-1] for a in installs if a[-1]["gateway"]]
    blocking = [r for r in last if _in_the_way(r, gateway_routes, wanted)]
    after = [a for a in installs if not a[-1]["gateway"]]
    after += [("del_route", r) for r in blocking]
    after += [a for a in installs if a[-1]["gateway"]]
    after += [("del_route", r) for r in last if r not in blocking]
    return after


def _before_drops(actions, routes, observed, wanted):
    """``actions`` (the link and address changes, after the routes of ``routes["first"]`` are deleted)
    with B's routes to a destination that A routes only through links the plan takes them off
    (``routes["dropped"]``: a veth deleted or made again, an IPv4 route's link left without IPv4, an
    IPv6 route's link whose MTU goes below 1280) put
    in place before that link change, not after all of them: the destination is never unrouted. Such
    a route (an install of ``routes``, taken out of it) comes just before the first action with which
    the kernel would drop A's (_drop_index), and A's routes are deleted right after it rather than
    first; one of A's of the same kernel key (route_id), or one of ``routes["last"]``, is replaced by
    it at once (NLM_F_REPLACE moves it to the new link). The address of its link whose subnet holds its
    gateway comes first when the plan adds it later (addresses go on before others go off).

    Where the kernel cannot take B's route at that point, the order stays (added at the end, the
    destination unrouted from the link change on): its link is not one A has and keeps (made by
    the plan, or made again: it is there only after A's is gone, a veth made again under its own name
    above all), or for IPv4 a link left without IPv4; or _reachable refuses it there: the link is
    down or without IPv6 (an MTU below 1280) until later, its gateway is reached only through a
    route B adds later or an address that comes back with another prefix length (an IPv6 address
    is deleted before it is added again), or a more specific route of the moment (one through
    another link, or through a gateway) would take the gateway."""
    dropped = routes["dropped"]
    if not dropped:
        return actions
    taken = _taken(observed, wanted)
    kept = {"lo"} | {inside for inside, have in observed["veths"].items()
                     if _kept(have, wanted["veths"].get(inside), taken)}
    v4_gone = {inside for inside in kept - {"lo"} if has_v4(observed["veths"][inside]["addresses"])
               and not has_v4(wanted["veths"][inside]["addresses"])}
    out = list(actions)
    for key in sorted({(route_family(r), r["dst"]) for r in dropped}):
        olds = [r for r in dropped if (route_family(r), r["dst"]) == key]
        drops = [i for i in (_drop_index(out, r, observed) for r in olds) if i is not None]
        if not drops:
            continue
        drop = min(drops)
        head = [a for a in out[:drop] if not (a[0] == "del_route" and a[1] in olds)]
        lifted, placed, replaced = [], [], []
        for install in sorted((a for a in routes["installs"] if (route_family(a[-1]), a[-1]["dst"]) == key),
                              key=lambda a: a[-1]["gateway"] is not None):
            want = install[-1]
            devs = [want["dev"]] if want["dev"] else sorted(_gateway_devs(want, wanted))
            if len(devs) != 1 or devs[0] not in kept or (key[0] == 4 and devs[0] in v4_gone):
                continue
            dev, lift = devs[0], None
            state = _ns_state(observed, head + [out[j] for j in lifted], placed)
            route = _reachable(want, dev, state)
            if route is None and want["gateway"]:
                lift = _liftable_address(out, drop, want, dev, lifted)
                if lift is not None:
                    state = _ns_state(observed, head + [out[j] for j in [*lifted, lift]], placed)
                    route = _reachable(want, dev, state)
            if route is None:
                continue
            if lift is not None:
                lifted.append(lift)
            old = install[1] if install[0] == "replace_route" else next(
                (r for r in olds if route_id(r) == route_id(want) and r not in replaced), None)
            if old is not None:
                replaced.append(old)
            placed.append(("replace_route", old, route) if old is not None else ("add_route", route))
            routes["installs"].remove(install)
        if not placed:
            continue
        moved = placed + [("del_route", r) for r in olds if r not in replaced]
        out = head + [out[j] for j in lifted] + moved + [a for j, a in enumerate(out[drop:], drop)
                                                         if j not in lifted]
    return out


def has_v4(addresses):
    return any(ipaddress.ip_interface(a).version == 4 for a in addresses)


def _drop_index(actions, route, observed):
    """The index of the first of ``actions`` with which the kernel may drop the observed ``route`` (one
    of _dropped_routes): the deletion of its veth, for an IPv4 route the first delete of an IPv4
    address of its link (the last one takes the route; the plan counts on none of them), for an IPv6
    route its link's MTU set below 1280 (an IPv6 address deleted leaves the routes through its subnet's
    gateways)."""
    have = observed["veths"].get(route["dev"])
    for i, a in enumerate(actions):
        if a[0] == "del_veth" and have is not None and a[1] == have["peer"]:
            return i
        if (a[0] == "del_addr" and a[1:3] == ("ns", route["dev"]) and route_family(route) == 4
                and ipaddress.ip_interface(a[3]).version == 4):
            return i
        if (a[:3] == ("set_link", "ns", route["dev"]) and route_family(route) == 6
                and a[3].get("mtu", IPV6_MIN_MTU) < IPV6_MIN_MTU):
            return i
    return None


def _ns_state(observed, actions, placed=()):
    """The namespace's links ({name: {addresses, up, mtu}}) and managed routes once ``actions`` (link,
    address and route deletions) are carried out, with the routes ``placed`` (actions whose route
    names its dev, or goes on the one link _reachable found) added."""
    peers = {v["peer"]: inside for inside, v in observed["veths"].items()}
    links = {inside: dict(addresses=set(v["addresses"]), up=v.get("up"), mtu=v.get("mtu"))
             for inside, v in observed["veths"].items()}
    links["lo"] = dict(addresses=set(), up=observed.get("loopback_up"), mtu=None)
    present = list(observed["routes"])
    for a in actions:
        op = a[0]
        if op == "create_veth":
            links[a[1]], peers[a[2]] = dict(addresses=set(), up=False, mtu=DEFAULT_MTU), a[1]
        elif op == "del_veth" and a[1] in peers:
            inside = peers.pop(a[1])
            links.pop(inside, None)
            present = [r for r in present if r["dev"] != inside]
        elif op == "link_up" and a[1] == "ns" and a[2] in links:
            links[a[2]]["up"] = True
        elif op == "set_link" and a[1] == "ns" and a[2] in links and "mtu" in a[3]:
            links[a[2]]["mtu"] = a[3]["mtu"]
            if a[3]["mtu"] < IPV6_MIN_MTU:  # the kernel takes IPv6 off the link, addresses and routes
                links[a[2]]["addresses"] = {x for x in links[a[2]]["addresses"] if ":" not in x}
                present = [r for r in present if r["dev"] != a[2] or route_family(r) != 6]
        elif op in ("add_addr", "del_addr") and a[1] == "ns" and a[2] in links:
            addresses = links[a[2]]["addresses"]
            if op == "add_addr":
                addresses.add(a[3])
            else:
                addresses.discard(a[3])
                if not has_v4(addresses):  # the kernel flushes the link's IPv4 routes with its last address
                    present = [r for r in present if r["dev"] != a[2] or route_family(r) != 4]
        elif op == "del_route" and a[1] in present:
            present.remove(a[1])
    present += [p[-1] for p in placed]
    return dict(links=links, routes=present)


def _reachable(route, dev, state):
    """``route`` as the kernel takes it through link ``dev`` at ``state`` (_ns_state), with that dev
    named when the kernel could otherwise put it on another link; None when it would not take it
    there: ``dev`` is missing or down, has no IPv6 (MTU below 1280) for an IPv6 route, or the
    route's gateway is in no subnet of ``dev`` (an address's, a route's without gateway), or another
    link holds it more closely, or a route through a gateway at least as specific would take it."""
    link = state["links"].get(dev)
    family = route_family(route)
    if link is None or not link["up"] or (family == 6 and (link["mtu"] or DEFAULT_MTU) < IPV6_MIN_MTU):
        return None
    if not route["gateway"]:
        return route
    gw = ipaddress.ip_address(route["gateway"])
    if gw.version == 6 and gw.is_link_local:
        return route if route["dev"] == dev else None
    nets = [(ipaddress.ip_interface(a).network, name) for name, lk in state["links"].items()
            for a in lk["addresses"]]
    nets += [(_route_network(r), r["dev"]) for r in state["routes"] if r["dev"] and not r["gateway"]]
    holding = [(n, d) for n, d in nets if n.version == gw.version and gw in n]
    if not any(d == dev for _, d in holding):
        return None
    longest = max(n.prefixlen for n, _ in holding)
    devs = {d for n, d in holding if n.prefixlen == longest}
    if dev not in devs or any(r["gateway"] and route_family(r) == gw.version and gw in _route_network(r)
                              and _route_network(r).prefixlen >= longest for r in state["routes"]):
        return None
    return route if route["dev"] or devs == {dev} else dict(route, dev=dev)


def _liftable_address(actions, drop, route, dev, lifted):
    """The index (from ``drop`` on, not in ``lifted``) of the add_addr that gives ``dev`` the subnet holding
    ``route``'s gateway most closely, when it can come before ``drop``: not after a delete of the same
    address in between (an IPv6 address whose prefix length changes). None otherwise."""
    gw = ipaddress.ip_address(route["gateway"])
    best, length = None, -1
    for j in range(drop, len(actions)):
        a = actions[j]
        if a[0] == "add_addr" and a[1:3] == ("ns", dev) and j not in lifted:
            net = ipaddress.ip_interface(a[3]).network
            if net.version == gw.version and gw in net and net.prefixlen > length:
                best, length = j, net.prefixlen
    if best is None:
        return None
    ip = ipaddress.ip_interface(actions[best][3]).ip
    if any(a[0] == "del_addr" and a[1:3] == ("ns", dev) and ipaddress.ip_interface(a[3]).ip == ip
           for a in actions[drop:best]):
        return None
    return best


def _auto_mtu(ports):
    """A bridge's MTU while nobody set it: its smallest port's (the kernel follows its ports)."""
    return min(ports.values()) if ports else DEFAULT_MTU


def declared_mtu(want, have, mtus=None, bname=None):
    """The MTU a bridge is declared with: ``want``'s (this namespace's), else the one another namespace
    declaring it recorded (``have["others"]``: netns.declared) or a later converge of the batch declares
    (``mtus``: {bridge: MTU}, pyforkexec.netns.batch's keep_mtus), else None (it follows its ports)."""
    if want is not None and want["mtu"] is not None:
        return want["mtu"]
    if mtus and mtus.get(bname) is not None:
        return mtus[bname]
    for _other, entry in (have or {}).get("others", ()):
        mtu = entry.get("mtu")
        if isinstance(mtu, int) and not isinstance(mtu, bool):
            return mtu
    return None


def _held_mtus(observed, bridges, leaving, mtus=None):
    """The set_link actions that keep at the MTU another namespace declares each bridge of ``bridges``
    (observed bridges this converge neither lists nor removes) that the ports in ``leaving`` (host
    ends of this namespace's that leave it) let go: a bridge at the declared MTU only because it follows
    a port (setting the MTU it has is no set, _bridge_mtus) would otherwise follow the ports left, and
    the declarer's MTU would be lost until its own next converge."""
    out = []
    for bname in sorted(bridges):
        have = observed["bridges"][bname]
        held = declared_mtu(None, have, mtus, bname)
        ports = {p: m for p, m in have["ports"].items() if p not in leaving}
        if held is not None and have["mtu"] == held and _auto_mtu(have["ports"]) == held \
                and len(ports) < len(have["ports"]) and _auto_mtu(ports) != held:
            out.append(("set_link", "host", bname, dict(mtu=held)))
    return out


def _bridge_mtus(observed, wanted, mtus=None):
    """{bridge: (set_first, set_last, final MTU)}: whether the plan sets the bridge's MTU before its
    ports change (it then stays as set: the kernel stops following the ports) or only after them (a
    bridge whose MTU is already the wanted one cannot be told so, and follows its ports meanwhile).
    The MTU is the one declared here, else one another namespace declares (declared_mtu)."""
    out = {}
    for bname, want in wanted["bridges"].items():
        have = observed["bridges"].get(bname)
        declared = declared_mtu(want, have, mtus, bname)
        ports = dict(have["ports"]) if have else {}
        current = have["mtu"] if have else DEFAULT_MTU
        following = _auto_mtu(ports) == current  # an MTU somebody set looks the same by chance: harmless
        for v in observed["veths"].values():
            ports.pop(v["peer"], None)
        for inside, want in wanted["veths"].items():
            if want["bridge"] == bname:
                have_v = observed["veths"].get(inside)
                kept = have_v is not None and _kept(have_v, want, _taken(observed, wanted))
                ports[want["peer"]] = want["mtu"] or (have_v["peer_mtu"] if kept else DEFAULT_MTU)
        set_first = declared is not None and declared != current
        if set_first or not following:
            final = declared or current
            out[bname] = (set_first, False, final)
        else:
            follows_to = _auto_mtu(ports)
            out[bname] = (False, declared is not None and declared != follows_to, declared or follows_to)
    return out


def _kinds_changed(observed, wanted, emptied):
    """``observed`` as the plan takes it where a host name changes kind between the namespace's links:
    (bridge) a wanted bridge named as the host end of one of its veths that leaves that name (deleted,
    or renamed) is missing, made once the name is free; (veth) a bridge of its own that goes (``emptied``:
    _left_empty) is no host link in the way of the host end of a veth that takes its name, deleted
    first. Both are the namespace's, and neither is wanted as it is: rather than refused as a link in
    the way, the name changes kind in one run. {"bridge": those names, "veth": these} as well."""
    freed = _freed(observed, wanted)
    to_bridge = {b for b, have in observed["bridges"].items()
                 if b in wanted["bridges"] and b in freed and have["kind"] == "veth"}
    to_veth = set(emptied) & {v["peer"] for v in wanted["veths"].values()}
    if not to_bridge and not to_veth:
        return observed, dict(bridge=set(), veth=set())
    planned = dict(observed, bridges={b: v for b, v in observed["bridges"].items() if b not in to_bridge},
                   host_links={k: v for k, v in observed["host_links"].items() if k not in to_veth})
    return planned, dict(bridge=to_bridge, veth=to_veth)


def plan_present(observed, wanted, keep=(), mtus=None):
    """The ordered actions that turn ``observed`` into ``wanted`` (state present); a bridge of ours that
    the namespace's veths leave with no port goes too, unless it is in ``keep`` (the bridges the other
    namespaces of a batch want: it would be made again, a moment later).

    Nothing both have is removed on the way, not even for a moment: addresses are added before
    others are deleted (see _addresses), a bridge of ours keeps its MAC whatever ports go
    (_unpinned_bridges), a bridge's MTU is set where its ports cannot undo it, and the routes change
    last, once their gateways are reachable: a route whose key (destination and metric) stays is
    replaced at once, new ones are added, and only then are the routes that go deleted, so that a
    destination routed before and after always has a route (_plan_routes).
    Routes the kernel drops along with a link or an address change (_dropped_routes) are planned as
    deleted first and added back, so that the plan is what happens; when B routes their destination
    through a link that A has and keeps, B's route is in place before that change instead, and A's are
    deleted just before it (_before_drops, which names the cases where the kernel does not allow it).
    """
    name = wanted["name"]
    for inside, key in sorted(observed.get("ipv6_off", {}).items()):
        raise ModelError(f"sysctls: {key} is 1 in the namespace (left by an earlier converge, or by hand), "
                         f"which takes IPv6 off {inside}, which has IPv6 addresses or routes: declare "
                         f"{key}: 0")
    for link, key in sorted(observed.get("host_ipv6_off", {}).items()):
        raise ModelError(f"{key} is 1 on the host, which takes IPv6 off host link {link}, which is to have "
                         f"IPv6 addresses: set it to 0 on the host (sysctl -w {key}=0), or give {link} none")
    observed, kinds = _kinds_changed(observed, wanted, _left_empty(observed, wanted, (), keep))
    actions = []
    if not observed["exists"]:
        if observed.get("leftover"):  # an empty mount point left in the way (kernel._leftover_mount_point)
            actions.append(("clear_netns_file", name))
        actions.append(("create_netns", name))
    if wanted["loopback"] and not observed["loopback_up"]:
        actions.append(("link_up", "ns", "lo"))
    for bname in sorted(wanted["bridges"]):
        have = observed["bridges"].get(bname)
        if have is not None and have["kind"] != "bridge":
            raise ModelError(f"bridges: host link {bname} exists and is a {have['kind'] or 'plain link'}, "
                             "not a bridge")
    actions += [("pin_bridge_mac", b) for b in _unpinned_bridges(observed)]
    routes = _plan_routes(observed, wanted)
    actions += [("del_route", r) for r in routes["first"]]
    held = mtus
    mtus = _bridge_mtus(observed, wanted, held)
    _check_kept_mtus(observed, wanted, mtus)
    deferred = []  # the actions of the bridges of kinds["bridge"]
    later = []  # the IPv6 addresses of a bridge whose MTU is below 1280 until its ports change
    for bname, want in sorted(wanted["bridges"].items()):
        have = observed["bridges"].get(bname)
        # A host end's name that becomes this bridge's: made once the veth has left it (below).
        out = deferred if bname in kinds["bridge"] else actions
        if have is None:
            out.append(("create_bridge", bname))
            if want["mtu"] == DEFAULT_MTU:  # declared as the kernel's own: set all the same (pin_bridge_mtu)
                out.append(("pin_bridge_mtu", bname, want["mtu"]))
        elif have["ours"] and have.get("declared_by") is not None and not _declares(have, name) \
                and "*" not in have["declared_by"]:
            out.append(("declare_bridge", bname, name))
        if mtus[bname][0]:
            out.append(("set_link", "host", bname, dict(mtu=mtus[bname][2])))
        target = bridge_addresses(bname, want, have, kept_addresses(keep, bname))
        if target is None and have is not None:  # named by a veth only: what it declared before goes
            out += _given_up(bname, have, kept=kept_addresses(keep, bname))
        if target is not None:  # None: named by a veth only, its addresses left as they are
            addresses = _addresses("host", bname, target, have["addresses"] if have else [])
            if have is not None and (have["mtu"] or DEFAULT_MTU) < IPV6_MIN_MTU and not mtus[bname][0]:
                # Below 1280 (following a small port) the bridge has no IPv6 and takes none (EINVAL):
                # its IPv6 addresses go on once its ports' changes have raised its MTU (_bridge_mtus:
                # to 1280 or more, else _check_kept_mtus refused it).
                later += [a for a in addresses if a[0] == "add_addr" and ":" in a[3]]
                addresses = [a for a in addresses if a not in later]
            out += addresses
        if have is None or not have["up"]:
            out.append(("link_up", "host", bname))
    deleted, made, taken = set(), set(), _taken(observed, wanted)
    for inside, have in sorted(observed["veths"].items()):
        want = wanted["veths"].get(inside)
        if not _kept(have, want, taken):
            actions.append(("del_veth", have["peer"]))
            deleted.add(have["peer"])
    actions += [("del_bridge", b) for b in sorted(kinds["veth"])]  # a bridge's name that a host end takes
    # Every rename before the veths' own actions (which name the host ends by their new names), after the
    # deletions: each name free when it is taken (_renames), a new host end taking one after its rename.
    actions += _renames({have["peer"]: wanted["veths"][inside]["peer"]
                         for inside, have in sorted(observed["veths"].items())
                         if _kept(have, wanted["veths"].get(inside), taken)
                         and _renamed(have, wanted["veths"][inside], taken)}, observed, wanted)
    actions += deferred
    freed = _freed(observed, wanted)
    for inside, want in sorted(wanted["veths"].items()):
        have = observed["veths"].get(inside)
        if have is not None and not _kept(have, want, taken):
            have = None  # deleted above: made again (wired to this netns)
        if have is not None and have.get("unmarked"):  # made, and the process killed before its alias
            actions.append(("mark_veth", have["peer"], inside))
        if have is None:
            if want["peer"] in observed["host_links"] and want["peer"] not in freed:
                alias = observed["host_links"][want["peer"]]
                raise ModelError(_peer_taken(want["peer"], alias, name, inside))
            ours = observed["veths"].get(inside)
            if inside in observed["ns_links"] and not (ours and ours["wired"]):
                raise ModelError(f"veths: link {inside} already exists in netns {name} (not a veth of ours)")
            actions.append(("create_veth", inside, want["peer"]))
            made.add(inside)
        addresses = _addresses("ns", inside, want["addresses"], have["addresses"] if have else [])
        addresses += _addresses("host", want["peer"], want["peer_addresses"],
                                have["peer_addresses"] if have else [])
        if want["mtu"] is not None and want["mtu"] < IPV6_MIN_MTU:
            # Below 1280 the kernel takes IPv6 off the link: its addresses are deleted first, while the
            # link still has them (after, their delete fails: ENXIO).
            first = [a for a in addresses if a[0] == "del_addr" and ipaddress.ip_interface(a[3]).version == 6]
            actions += first
            addresses = [a for a in addresses if a not in first]
        inside_settings = _link_settings(dict(mtu=want["mtu"], address=want["mac"]),
                                         have and dict(mtu=have["mtu"], address=have["mac"]),
                                         ["mtu", "address"])
        peer_settings = _link_settings(dict(mtu=want["mtu"], address=want["peer_mac"]),
                                       have and dict(mtu=have["peer_mtu"], address=have["peer_mac"]),
                                       ["mtu", "address"])
        settings = ([("set_link", "ns", inside, inside_settings)] if inside_settings else []) + (
            [("set_link", "host", want["peer"], peer_settings)] if peer_settings else [])
        if want["bridge"] != (have["bridge"] if have else None):
            # A bridge left unset follows its smallest port: a host end whose MTU drops leaves its
            # bridge first (which would otherwise follow it down, below 1280 without its IPv6 addresses),
            # and joins its new one at the MTU it had, not below the one it ends at; one whose MTU rises
            # has it before it joins (its new bridge never goes below what it ends at either).
            dropping = have is not None and "mtu" in peer_settings and peer_settings["mtu"] < have["peer_mtu"]
            master = [("set_master", want["peer"], want["bridge"])]
            settings = master + settings if dropping else settings + master
        actions += settings
        actions += addresses
        if have is None or not have["peer_up"]:
            actions.append(("link_up", "host", want["peer"]))
        if have is None or not have["up"]:
            actions.append(("link_up", "ns", inside))
    for bname in sorted(wanted["bridges"]):
        if mtus[bname][1]:
            actions.append(("set_link", "host", bname, dict(mtu=mtus[bname][2])))
    actions += later
    emptied = _left_empty(observed, wanted, deleted, keep)
    actions += [("del_bridge", b) for b in emptied if b not in kinds["veth"]]
    actions += _held_mtus(observed, set(observed["bridges"]) - set(wanted["bridges"]) - set(emptied),
                          {v["peer"] for v in observed["veths"].values()}, held)
    for b, have in sorted(observed["bridges"].items()):
        if _declares(have, name) and b not in wanted["bridges"] and b not in emptied:
            actions += [*_given_up(b, have, kept=kept_addresses(keep, b)), ("undeclare_bridge", b, name)]
    actions[:] = _deletions_first(_moved_inside_added_first(actions))
    _check_host_subnets(observed, set(wanted["bridges"]), actions, deleted | set(emptied))
    actions[:] = _before_drops(actions, routes, observed, wanted)
    actions += _routes_after(routes, wanted)
    return _with_sysctls(actions, observed, wanted["sysctls"], made)


# Writing one of these sets the same sysctl (family, name) of every link, and of ``default``.
SWITCHES = {"net.ipv4.ip_forward": ("ipv4", "forwarding"),
            "net.ipv4.conf.all.forwarding": ("ipv4", "forwarding"),
            "net.ipv6.conf.all.forwarding": ("ipv6", "forwarding"),
            "net.ipv6.conf.all.disable_ipv6": ("ipv6", "disable_ipv6")}


def _with_sysctls(actions, observed, declared, made):
    """``actions`` with a ``sysctl`` action for each declared sysctl the namespace does not have, or
    that the plan resets, placed where the kernel needs it (kernel.apply writes each run of them at
    once, before the next action):

    - a link made (again) by the plan starts from the defaults: all its sysctls are written right
      after it is made (and its MTU set), before its addresses (``disable_ipv6=0`` on a link that
      ``default.disable_ipv6=1`` makes without IPv6, then its IPv6 address);
    - ``default.*`` ones before the first link is made, which takes them;
    - ``disable_ipv6`` turned off, before the first address added on that link (or any, for ``all``)
      or IPv6 route made through it;
    - the rest last, after the addresses deleted (``disable_ipv6=1`` removes every IPv6 address,
      whose deletes would then fail).

    A sysctl that another action resets is written (again) last: a switch of the whole namespace
    (``SWITCHES``: ``ip_forward`` sets every link's forwarding) comes first there, then each link's own
    declared value; a link's MTU change resets its ``ipv6.conf.LINK.mtu``, and so does the link
    becoming ready (up with a carrier: a link_up of either end of its veth; kernel.apply waits for it
    before it writes that sysctl). Check mode then plans what the run does."""
    mtu_set = {a[2] for a in actions if a[0] == "set_link" and a[1] == "ns" and "mtu" in a[3]}
    mtu_set |= carried(observed, actions)
    switched = {SWITCHES[k] for k, v in declared.items() if k in SWITCHES and observed["sysctls"].get(k) != v}
    out, last = list(actions), []
    for key, value in sorted(declared.items(), key=lambda kv: (kv[0] not in SWITCHES, kv[0])):
        parts, link = key.split("."), _link_of_sysctl(key)
        reset = (key not in SWITCHES and (parts[1], parts[-1]) in switched and parts[2] == "conf") \
            or (link in mtu_set and ipv6_mtu_link(key) is not None)
        if observed["sysctls"].get(key) == value and link not in made and not reset:
            continue
        action = ("sysctl", key, value)
        if reset:
            last.append(action)
        elif link in made:
            out.insert(_after_made(out, link), action)
        elif link == "default":
            out.insert(_first(out, lambda a: a[0] == "create_veth"), action)
        elif parts[-1] == "disable_ipv6" and value == "0":
            out.insert(_first(out, lambda a, on=link: _uses_ipv6_on(a, on)), action)
        else:
            last.append(action)
    return out + last


def carried(observed, actions):
    """The namespace's links that ``actions`` bring up, by a link_up of their own or of their veth's
    host end: a link gets its carrier once both ends are up."""
    peers = {v["peer"]: inside for inside, v in observed["veths"].items()}
    peers.update((a[2], a[1]) for a in actions if a[0] == "create_veth")
    return {a[2] if a[1] == "ns" else peers.get(a[2]) for a in actions if a[0] == "link_up"} - {None}


def ipv6_mtu_link(key):
    """The link whose ``net.ipv6.conf.LINK.mtu`` sysctl ``key`` is; None for any other sysctl."""
    parts = key.split(".")
    return _link_of_sysctl(key) if parts[1:3] == ["ipv6", "conf"] and parts[-1] == "mtu" else None


def _uses_ipv6_on(action, link):
    """Whether ``action`` needs IPv6 on namespace link ``link`` ("all": on any): an address added to it
    (the kernel refuses an IPv6 one while disable_ipv6 is 1), or an IPv6 route made through it (EACCES)."""
    if action[0] == "add_addr":
        return action[1] == "ns" and link in ("all", action[2])
    if action[0] in ("add_route", "replace_route"):
        route = action[-1]
        return route_family(route) == 6 and link in ("all", route.get("dev"))
    return False


def _first(actions, match):
    """The index of the first action ``match`` takes, else the end."""
    return next((i for i, a in enumerate(actions) if match(a)), len(actions))


def _after_made(actions, link):
    """Where a sysctl of ``link``, which the plan makes, goes: after it is made and its own settings
    (MTU, MAC) are set, before anything else is done with it, and after the sysctls already there."""
    i = _first(actions, lambda a: a[0] == "create_veth" and a[1] == link) + 1
    while i < len(actions) and (actions[i][0] == "sysctl" or actions[i][:3] == ("set_link", "ns", link)):
        i += 1
    return i


def _routed_network(address):
    """The subnet the kernel routes to a link for ``address`` on it; None when it routes none that
    another link could compete for (a /32 or /128, a link-local address)."""
    iface = ipaddress.ip_interface(address)
    if iface.network.prefixlen == iface.max_prefixlen or iface.is_link_local:
        return None
    return iface.network


def _moved_inside_added_first(actions):
    """``actions`` with the namespace-side deletion of an address that the plan adds to another link of
    the namespace moved to just after that addition: an address moved from one link to another (eth0
    to eth1) is the namespace's all along, as one moved the other way is, rather than gone until the
    later link in name order gets it (sockets bound to it, the gateways of its subnet)."""
    out = list(actions)
    for action in actions:
        if action[0] != "del_addr" or action[1] != "ns":
            continue
        ip = ipaddress.ip_interface(action[3]).ip
        i = out.index(action)
        added = [j for j, a in enumerate(out) if j > i and a[0] == "add_addr" and a[1] == "ns"
                 and a[2] != action[2] and ipaddress.ip_interface(a[3]).ip == ip]
        if added:
            out.remove(action)
            out.insert(added[-1], action)  # (the addition's index moved down by one)
    return out


def _deletions_first(actions):
    """``actions`` with the host-side address deletions of a link that only loses addresses moved to
    before the first host-side address added elsewhere in an overlapping subnet: a subnet moved from
    one host link to another is never on both at once. (A link that also gains addresses keeps its
    order, which _addresses chose for its primary.)"""
    gaining = {a[2] for a in actions if a[0] == "add_addr" and a[1] == "host"}
    out = list(actions)
    for action in actions:
        if action[0] != "del_addr" or action[1] != "host" or action[2] in gaining:
            continue
        gone = _routed_network(action[3])
        if gone is None:
            continue
        # not before the rename that gives its link that name
        named = max((j + 1 for j, a in enumerate(out) if a[0] == "rename_veth" and a[2] == action[2]),
                    default=0)
        for i, other in enumerate(out):
            if other is action:
                break
            if i >= named and other[0] == "add_addr" and other[1] == "host" and other[2] != action[2]:
                new = _routed_network(other[3])
                if new is not None and new.version == gone.version and new.overlaps(gone):
                    out.remove(action)
                    out.insert(i, action)
                    break
    return out


def _check_host_subnets(observed, bridges, actions, leaving):
    """Refuse an address added on the host's side (a bridge's, a veth's host end's) whose subnet
    overlaps one that another host link has (``observed["host_addresses"]``, or an address this
    plan adds elsewhere), but the links the plan deletes (``leaving``) and the addresses it deletes (a
    subnet moved from one host link to another: _deletions_first): the host would then route the
    same addresses to two links, and which one wins changes when either goes down or comes back (an
    address of eth0 renewed after the bridge's loses the host its own network). podman refuses such
    a network the same way ("already used on the host")."""
    going = {(a[2], a[3]) for a in actions if a[0] == "del_addr" and a[1] == "host"}  # moved elsewhere
    renamed = final_names(actions)  # its addresses go by its new name
    taken = [(renamed.get(link, link), a)
             for link, addrs in sorted(observed.get("host_addresses", {}).items()) if link not in leaving
             for a in addrs if (renamed.get(link, link), a) not in going]
    for action in actions:
        if action[0] != "add_addr" or action[1] != "host":
            continue
        link, address = action[2], action[3]
        network = _routed_network(address)
        if network is not None:
            for other, have in taken:
                theirs = _routed_network(have)
                if other != link and theirs is not None and theirs.version == network.version \
                        and network.overlaps(theirs):
                    where = "bridges" if link in bridges else "veths"
                    raise ModelError(f"{where}: {address} on host link {link} overlaps {have} of host link "
                                     f"{other}: the host would route {network} to both (choose a subnet "
                                     "no other host link has)")
        taken.append((link, address))


def final_names(actions):
    """{host name: the name it has after ``actions``} of the links their rename_veth actions rename (one
    renamed through a temporary name: its last one)."""
    out = {}
    for action in actions:
        if action[0] == "rename_veth":
            old, new = action[1], action[2]
            first = next((k for k, v in out.items() if v == old), old)
            out[first] = new
    return out


def _left_empty(observed, wanted, deleted, keep):
    """The bridges of ours the namespace's veths were on, and leave (moved to another bridge, or
    ``deleted``), with no port after, and those it declared and no longer wants that no port uses; none
    that another namespace still declares: as plan_absent removes those its removal empties, so that a
    service moved off a bridge does not leave it, and its address, on the host for good."""
    moved_off = {}
    for inside, have in observed["veths"].items():
        want = wanted["veths"].get(inside)
        if have["bridge"] and (have["peer"] in deleted or want is None or want["bridge"] != have["bridge"]):
            moved_off.setdefault(have["bridge"], set()).add(have["peer"])
    name = wanted["name"]
    for bname, b in observed["bridges"].items():  # declared by this namespace, and no longer wanted
        if _declares(b, name):
            moved_off.setdefault(bname, set())
    return [b for b, peers in sorted(moved_off.items())
            if b not in wanted["bridges"] and b not in keep and observed["bridges"].get(b, {}).get("ours")
            and not set(observed["bridges"][b]["ports"]) - peers
            and not _declared_elsewhere(observed["bridges"][b], name)]


def _link_of_sysctl(key):
    """The link a per-link sysctl (net.ipv4.conf.eth0.rp_filter, net.ipv6.neigh.eth0...) is of."""
    parts = key.split(".")
    if len(parts) >= 5 and parts[1] in ("ipv4", "ipv6") and parts[2] in ("conf", "neigh"):
        return ".".join(parts[3:-1])
    return None


def _unpinned_bridges(observed, leaving=()):
    """The bridges of ours, other than ``leaving``, whose MAC the kernel still picks (kernel.observe's
    ``mac_pinned`` False: made before bridges were given one). Such a bridge carries its smallest
    port's MAC, and takes another when that port goes: every neighbour that cached the old one (each
    service's entry for its gateway) then sends into the void until the entry expires, 20-50 s for
    the other services on the bridge. Pinned at the MAC it has, before any port goes."""
    return [n for n, b in sorted(observed["bridges"].items())
            if b["ours"] and b.get("mac_pinned") is False and n not in leaving]


# The links the kernel makes in every network namespace: lo, and the fallback device of each tunnel
# module loaded (ipip's tunl0, sit's sit0...).
KERNELS_OWN = frozenset({"lo", "tunl0", "sit0", "ip6tnl0", "gre0", "gretap0", "erspan0", "ip6gre0",
                         "ip6gretap0", "ip6erspan0", "ip_vti0", "ip6_vti0"})


def plan_absent(observed, name, keep=(), made=(), mtus=None):
    """Remove the veths made for ``name``, the bridges of ours they leave empty and those ``name`` made that
    no other port uses (but those in ``keep``, as plan_present), then the netns unless it holds links that are
    not ours; a bridge that stays keeps its MAC (_unpinned_bridges). ``made``: bridges a converge that failed
    had just made (its undo), which go even with no port yet."""
    gone = {v["peer"] for v in observed["veths"].values()}
    emptied = [bname for bname, b in sorted(observed["bridges"].items())
               if b["ours"] and (b["ports"] or bname in made or _declares(b, name))
               and not set(b["ports"]) - gone and bname not in keep and not _declared_elsewhere(b, name)]
    actions = [("pin_bridge_mac", b) for b in _unpinned_bridges(observed, emptied)]
    actions += [("del_veth", observed["veths"][inside]["peer"]) for inside in sorted(observed["veths"])]
    actions += [("del_bridge", bname) for bname in emptied]
    actions += _held_mtus(observed, set(observed["bridges"]) - set(emptied), gone, mtus)
    for bname, b in sorted(observed["bridges"].items()):
        if _declares(b, name) and bname not in emptied:
            kept = kept_addresses(keep, bname)
            actions += [*_given_up(bname, b, kept=kept), ("undeclare_bridge", bname, name)]
    # A namespace that holds links of others (made by hand, or by another tool, in a namespace of that
    # name) is theirs too: it stays, with them, once ours are gone; so does one that pyforkexec did not
    # make (its lo is not marked: ``ip netns add``, then wired by a converge), whatever it holds.
    foreign = set(observed.get("ns_links", ())) - KERNELS_OWN - set(observed["veths"])
    if observed["exists"] and not foreign and observed.get("ours", True):
        actions.append(("delete_netns", name))
    if observed.get("leftover"):
        actions.append(("clear_netns_file", name))
    return actions


# Actions on the host's side only: its bridges and the host ends of veths. The others change the
# namespace itself, what a process in it sees (its links, addresses, routes, sysctls), or make or
# remove it.
_HOST_ONLY = frozenset({"pin_bridge_mac", "create_bridge", "del_bridge", "set_master", "declare_bridge",
                        "undeclare_bridge", "rename_veth", "pin_bridge_mtu"})
_SIDED = frozenset({"link_up", "set_link", "add_addr", "del_addr"})  # ("op", side, ...)


def changes_inside(action):
    """Whether ``action`` changes the namespace itself, not only the host's side of its wiring: a
    service running in it is restarted for such a change (the services module), never for a change
    of a bridge it shares with others or of the host end of its veth."""
    op = action[0]
    if op in _HOST_ONLY:
        return False
    if op in _SIDED:
        return action[1] == "ns"
    return True  # create_netns, delete_netns, create_veth, del_veth, routes, sysctls; unknown: True


def describe(action):
    """One action as a short line (the module's ``actions`` result, the lines ``netns up`` prints), a
    name's control characters escaped (``printable``): no line break or colour change of its own."""
    return printable(_describe(action))


def _describe(action):
    op, *args = action
    if op in ("add_route", "del_route"):
        return f"{op} {route_text(args[0])}"
    if op == "replace_route":
        return f"{op} {route_text(args[0])} with {route_text(args[1])}"
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


def simulate(observed, wanted, actions, held=None):
    """What ``observed`` becomes after ``actions`` (for --diff in check mode and the after view): the
    kernel's own choices where it makes them (a new link's MTU, a bridge's MTU that follows its
    ports, the link a gateway route goes out of, an IPv6 route's metric); None where it draws them
    (the MAC of a new link)."""
    observed = _kinds_changed(observed, wanted, {a[1] for a in actions if a[0] == "del_bridge"})[0]
    after = dict(observed, name=wanted["name"], exists=True, bridges={}, sysctls=dict(observed["sysctls"]))
    if wanted["loopback"]:
        after["loopback_up"] = True
    mtus = _bridge_mtus(observed, wanted, held)
    for bname, want in wanted["bridges"].items():
        new = dict(kind="bridge", ours=True, mtu=None, up=True, addresses=[], ports={}, mac_pinned=True)
        have = observed["bridges"].get(bname) or new  # wanted has the veths' bridges too (desired)
        addresses = bridge_addresses(bname, want, have)
        if addresses is None:  # (less those it declared before: _given_up)
            addresses = [a for a in have["addresses"] if ("del_addr", "host", bname, a) not in actions]
        after["bridges"][bname] = dict(have, mtu=mtus[bname][2], up=True, addresses=addresses)
        if have["ours"]:
            after["bridges"][bname]["mac_pinned"] = True  # made with one, or pinned (_unpinned_bridges)
    after["veths"] = {}
    for inside, want in wanted["veths"].items():
        have = observed["veths"].get(inside)
        if have is None or not _kept(have, want, _taken(observed, wanted)):
            have = {}  # made again
        after["veths"][inside] = dict(
            peer=want["peer"], bridge=want["bridge"], mtu=want["mtu"] or have.get("mtu") or DEFAULT_MTU,
            mac=want["mac"] or have.get("mac"), peer_mac=want["peer_mac"] or have.get("peer_mac"),
            addresses=want["addresses"], peer_addresses=want["peer_addresses"], up=True)
    deleted = [a[1] for a in actions if a[0] in ("del_route", "replace_route")]
    added = []
    for a in actions:
        if a[0] in ("add_route", "replace_route"):
            route, devs = a[-1], _gateway_devs(a[-1], wanted)
            dev = route["dev"] or (next(iter(devs)) if len(devs) == 1 else None)
            added.append(dict(route, dev=dev, metric=_shown_metric(route)))
    after["routes"] = [r for r in observed["routes"] if r not in deleted] + added
    after["sysctls"].update(wanted["sysctls"])
    return after
