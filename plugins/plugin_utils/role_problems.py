# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""What the role isolated_service refuses in its variables before it looks at a host or plans: the rules
across fields and entries that its argument spec cannot say (the values the modules take are checked
by the modules' own code later, roles/isolated_service/files/check_services.py), and then what the
host's probe shows (its service manager, the new roots, the accounts). Each message names the service,
network or variable it is about; the MTU range is the role's, as the netns module leaves it to the
kernel."""

from __future__ import annotations

import ipaddress
from typing import Any

from ansible_collections.pyforkexec.isolation.plugins.module_utils.accounts import AccountError, check_names

# The host end of a service's veth is PREFIX + its name unless network.peer says otherwise. Not ve-, vz-
# or vt-: systemd-networkd's default configuration (80-container-ve.network...) takes such links over,
# detaching them from their bridge.
PEER_PREFIX = "pfe-"
# The alias pyforkexec gives the host end of a veth it made (pyforkexec/netns/model.py's veth_alias):
# a host link of a peer's name without it is someone else's, which the netns module refuses to take.
VETH_ALIAS_PREFIX = "pyforkexec.isolation netns="
NETWORKD_PREFIXES = ("ve-", "vz-", "vt-")
IFNAMSIZ = 15  # an interface name's characters


def _mtu_problem(mtu: Any) -> bool:
    return mtu is not None and not 68 <= mtu <= 65535


# What the role sets itself (present.yml's result), besides its variables (meta/argument_specs.yml).
ROLE_OUTPUTS = ("isolated_service_status",)


def unknown_variables(defined: list[str], known: list[str]) -> list[str]:
    """The variables named isolated_service_* that the role does not take (a misspelled one, such as
    isolated_service_service, would otherwise be ignored and the role converge to nothing)."""
    import difflib

    problems = []
    for name in sorted(set(defined) - set(known) - set(ROLE_OUTPUTS)):
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(f"{name}: not a variable of the role isolated_service{hint}")
    return problems


# The fields that have no default: a null there is refused as missing, where a null elsewhere is the
# field left out (unset_nulls).
_REQUIRED_FIELDS = ("name",)
_REQUIRED_NETWORK_FIELDS = ("bridge",)


def unset_nulls(entries: list) -> list:
    """``entries`` (isolated_service_services or isolated_service_networks) with their fields, and their
    network's, that are null left out, as ansible-core's check of argument_specs takes them: not given.
    YAML makes a field written with no value (``capabilities:``, ``mounts:``, a list whose items were
    commented out) null; read as given, the role passed nothing for it and the modules' own defaults
    held instead of the role's: every capability kept, the host's /proc in a pid namespace of its own
    (refused when mounts lists no proc), the netns module's name for a null netns. The required
    fields stay, for type_problems to name."""
    def kept(entry: Any, required: tuple[str, ...]) -> Any:
        if not isinstance(entry, dict):
            return entry
        return {k: v for k, v in entry.items() if v is not None or k in required}

    out = []
    for entry in entries:
        entry = kept(entry, _REQUIRED_FIELDS)
        if isinstance(entry, dict) and isinstance(entry.get("network"), dict):
            entry = dict(entry, network=kept(entry["network"], _REQUIRED_NETWORK_FIELDS))
        out.append(entry)
    return out


# The fields the role reads as strings (argument_specs says so, but an action gets the variables as
# written: YAML makes ``user: 1000`` an integer).
# hostname, domainname, chdir and description too: ansible-core makes text of anything given for a
# string option, so that "hostname: yes" became the hostname True and "domainname: [a]" the domain
# name ['a'], accepted by every later check.
_STRING_FIELDS = ("name", "user", "group", "rootfs", "state", "hostname", "domainname", "chdir",
                  "description")
_STRING_NETWORK_FIELDS = ("bridge", "peer", "netns", "interface")


def _type_name(value: Any) -> str:
    """The YAML type of ``value`` by its Python base type: ansible-core hands variables over as its own
    subclasses (``_AnsibleTaggedInt``), whose names mean nothing to whoever wrote the YAML."""
    if value is None:
        return "null"
    return next((t.__name__ for t in (bool, int, float, str, list, dict) if isinstance(value, t)),
                type(value).__name__)


def type_problems(networks: list[dict], services: list[dict]) -> list[str]:
    """Values of the wrong type in the fields the role's checks and plan read as strings, named (the
    other fields are checked by the modules' own code)."""
    problems = []

    def expect(where: str, value: Any, required: bool = False) -> None:
        if value is None and required:
            problems.append(f"{where}: required, got null (give a string)")
        elif value is not None and not isinstance(value, str):
            problems.append(f"{where}: expected a string, got {_type_name(value)} {value!r} (quote it in "
                            "YAML)")

    def expect_int(where: str, value: Any) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            problems.append(f"{where}: expected an integer, got {_type_name(value)} {value!r} (a quoted "
                            "or templated number is a string: use | int)")

    def expect_list(where: str, value: Any) -> None:
        if value is not None and not isinstance(value, list):
            problems.append(f"{where}: expected a list, got {_type_name(value)} {value!r}")

    for i, net in enumerate(networks):
        if not isinstance(net, dict):
            problems.append(f"isolated_service_networks[{i}]: expected a dict, got {_type_name(net)}")
            continue
        expect(f"isolated_service_networks[{i}].name", net.get("name"), required=True)
        expect_int(f"isolated_service_networks[{i}].mtu", net.get("mtu"))
        expect_list(f"isolated_service_networks[{i}].addresses", net.get("addresses"))
    for i, svc in enumerate(services):
        if not isinstance(svc, dict):
            problems.append(f"isolated_service_services[{i}]: expected a dict, got {_type_name(svc)}")
            continue
        for key in _STRING_FIELDS:
            expect(f"isolated_service_services[{i}].{key}", svc.get(key), required=key in _REQUIRED_FIELDS)
        network = svc.get("network")
        if network is not None and not isinstance(network, dict):
            problems.append(f"isolated_service_services[{i}].network: expected a dict, got "
                            f"{_type_name(network)}")
        elif network is not None:
            for key in _STRING_NETWORK_FIELDS:
                expect(f"isolated_service_services[{i}].network.{key}", network.get(key),
                       required=key in _REQUIRED_NETWORK_FIELDS)
            expect_int(f"isolated_service_services[{i}].network.mtu", network.get("mtu"))
            expect_list(f"isolated_service_services[{i}].network.addresses", network.get("addresses"))
    return problems


def interpreter_problems(interpreter: str, set_here: str, venv: str | None) -> list[str]:
    """The role runs its services module, and so its services (whose daemon commands and units name the
    Python that ran it), with its virtualenv's Python by setting ansible_python_interpreter in that
    task's vars. ``interpreter`` is what a task that sets it to ``set_here`` gets: another value is one
    of higher precedence (extra vars, set_fact, role or include parameters), which would override the
    role's too. Refused whatever it is, the virtualenv's own Python too: the role's other tasks make,
    upgrade and switch that virtualenv, with the play's interpreter. ``venv``: isolated_service_venv,
    None where it is left to its default."""
    if interpreter == set_here:
        return []
    where = f"isolated_service_venv, {venv}" if venv is not None else "isolated_service_venv"
    return [
        f"ansible_python_interpreter: is {interpreter}, set where it overrides a task's vars (extra vars -e, "
        "set_fact, role or include parameters), but the role sets it in its own tasks' vars: it runs its "
        f"services module, and the services, with its virtualenv's Python ({where}), and its other tasks "
        "with the play's interpreter. Set that in the inventory (a host or group variable) or with "
        "ANSIBLE_PYTHON_INTERPRETER instead"
    ]


def variable_problems(
    venv: str, base_python: str, networks: list[dict], services: list[dict], namespaces: list[str],
    state: str = "present",
) -> list[str]:
    """The cross-field problems of the role's variables, in the order of the variables and entries
    (``state``: the role's; an entry or a role that removes needs nothing of what would run)."""
    problems = type_problems(networks, services)
    if problems:  # the checks below read those fields as strings
        return problems
    problems = [
        f"{var}: {value} is not an absolute path"
        for var, value in (("isolated_service_venv", venv), ("isolated_service_base_python", base_python))
        if not value.startswith("/")
    ]
    problems += [
        f"isolated_service_networks[{net['name']}].mtu: must be between 68 and 65535, got {net['mtu']}"
        for net in networks
        if _mtu_problem(net.get("mtu"))
    ]
    bridges = [net["name"] for net in networks]
    for name in dict.fromkeys(bridges):
        if bridges.count(name) > 1:
            problems.append(f"isolated_service_networks: {name} is declared twice")
        if len(name) > IFNAMSIZ:
            problems.append(
                f"isolated_service_networks: {name} is longer than an interface name (15 characters)"
            )
    problems += _overlapping_bridges(networks)
    names = [svc["name"] for svc in services]
    seen_netns: list[str] = []
    seen_peers: list[str] = []
    for svc in services:
        where = f"isolated_service_services[{svc['name']}]"
        ns = svc.get("namespaces", namespaces)
        if names.count(svc["name"]) > 1:
            problems.append(f"{where}: the name is used by another service")
        network = svc.get("network")
        if network is not None:
            netns = network.get("netns", svc["name"])
            peer = network.get("peer", PEER_PREFIX + svc["name"])
            if network.get("bridge") not in bridges:
                problems.append(
                    f"{where}: network.bridge {network.get('bridge')} is not in isolated_service_networks "
                    f"({', '.join(bridges)})"
                )
            if peer[:3] in NETWORKD_PREFIXES:
                problems.append(
                    f"{where}: the host end of its veth, {peer}, starts like the links systemd-networkd "
                    f"takes over ({'*, '.join(NETWORKD_PREFIXES)}*): set another network.peer"
                )
            if len(peer) > IFNAMSIZ:
                problems.append(
                    f"{where}: the host end of its veth, {peer}, is longer than an interface name "
                    "(15 characters): set network.peer"
                )
            if _mtu_problem(network.get("mtu")):
                problems.append(f"{where}: network.mtu: must be between 68 and 65535, got {network['mtu']}")
            if "net" in ns:
                problems.append(
                    f"{where}: namespaces has net and the service has a network, whose namespace it "
                    "joins: remove one"
                )
            if netns in seen_netns:
                problems.append(f"{where}: network namespace {netns} belongs to another service")
            if peer in seen_peers:
                problems.append(f"{where}: veth {peer} belongs to another service")
            seen_netns.append(netns)
            seen_peers.append(peer)
        removed = state == "absent" or svc.get("state") == "absent"
        if (
            not removed
            and "user" in ns
            and "user" not in svc
            and not all(k in svc for k in ("uid_map", "gid_map", "credential"))
        ):
            problems.append(
                f"{where}: a user namespace needs user (mapped to root inside), or uid_map, gid_map and "
                "credential"
            )
        if "user" not in ns and "user" in svc and "credential" in svc:
            problems.append(f"{where}: user and credential both set the ids it runs as: keep one")
        mounts = svc.get("mounts")
        if not removed and "pid" in ns and "mount" in ns and mounts is not None and not any(
                isinstance(m, dict) and m.get("type") == "proc" for m in mounts):
            # The role's default mounts a private /proc; mounts given without one keep the host's, where
            # a service in its own PID namespace reads every process of the host.
            problems.append(
                f"{where}: mounts has no proc mount, and the service has its own pid namespace: it would "
                "see the host's processes in /proc; add {type: proc, target: /proc}"
            )
        if svc.get("create_user", True) and isinstance(svc.get("user"), str):
            try:  # the accounts module's rule, refused there only once the runtime is installed
                check_names([svc["user"]])
            except AccountError as e:
                problems.append(f"{where}: user: {str(e).split(': ', 1)[1]}")
        argv = svc.get("argv")
        if not removed and argv is not None and (not isinstance(argv, list) or not argv):
            what = ("a string" if isinstance(argv, str) else "an empty list" if isinstance(argv, list)
                    else f"{_type_name(argv)} {argv!r}")
            problems.append(f"{where}: argv: give the command as a non-empty list of words, not {what}")
        elif not removed and argv is not None:
            # ansible-core makes text of any item: null became "", yes "True", a list its repr
            problems += [f"{where}: argv[{i}]: expected a word (a string or a number), got "
                         f"{'null' if word is None else type(word).__name__} {word!r} (quote it in YAML)"
                         for i, word in enumerate(argv)
                         if word is None or isinstance(word, (bool, list, dict))]
    return problems


def _overlapping_bridges(networks: list[dict]) -> list[str]:
    """Two bridges whose subnets overlap: the host would route those addresses to both (the services
    module refuses it too, but only once the role has made the accounts and the runtime)."""
    seen: list[tuple[str, Any]] = []
    problems = []
    for net in networks:
        for address in net.get("addresses") or []:
            try:
                subnet = ipaddress.ip_interface(str(address)).network
            except ValueError:
                continue  # the module names a malformed address
            if subnet.prefixlen == subnet.max_prefixlen:
                continue  # a /32 or /128 routes no subnet
            for other, theirs in seen:
                if other != net["name"] and theirs.version == subnet.version and theirs.overlaps(subnet):
                    problems.append(f"isolated_service_networks[{net['name']}]: {address} overlaps {theirs} "
                                    f"of bridge {other}: the host would route those addresses to both")
            seen.append((net["name"], subnet))
    return problems


def _peer(svc: dict) -> str:
    return svc["network"].get("peer", PEER_PREFIX + svc["name"])


def host_link_names(kept: list[dict]) -> list[str]:
    """The host links the services to be kept take: their veths' host ends and their bridges."""
    names = [_peer(svc) for svc in kept if isinstance(svc.get("network"), dict)]
    names += [svc["network"]["bridge"] for svc in kept if isinstance(svc.get("network"), dict)]
    return list(dict.fromkeys(name for name in names if isinstance(name, str)))


def host_problems(kept: list[dict], host: dict) -> list[str]:
    """What the host's probe (``host``) shows the services to be kept cannot have: systemd where PID 1 is
    not, a new root that is not a directory, an account that does not exist and is not to be created, a
    veth's host end whose name a link not made by pyforkexec has (the host's eth0, lo, a bridge of its
    own), a bridge whose name a link of another kind has. The netns module refuses those too, but only
    once the role has made the accounts and the virtualenv."""
    problems = []
    links = host.get("links") or {}
    for svc in kept:
        if not isinstance(svc.get("network"), dict):
            continue
        where = f"isolated_service_services[{svc['name']}]"
        peer, bridge = _peer(svc), svc["network"]["bridge"]
        if peer in links and not links[peer]["alias"].startswith(VETH_ALIAS_PREFIX):
            problems.append(f"{where}: network.peer: host link {peer} exists and is not the host end of a "
                            "veth pyforkexec made: choose another network.peer")
        if bridge in links and not links[bridge]["bridge"]:
            problems.append(f"{where}: network.bridge: host link {bridge} exists and is not a bridge")
    for svc in kept:
        if svc["manager"] == "systemd" and not host["systemd"]:
            problems.append(
                f"isolated_service_services[{svc['name']}]: manager systemd, but PID 1 of this host is "
                "not systemd (a container or a CI runner?): use manager direct, or auto"
            )
    for svc in kept:
        if svc.get("rootfs") is not None and not host["rootfs"].get(svc["rootfs"], False):
            problems.append(
                f"isolated_service_services[{svc['name']}]: rootfs: {svc['rootfs']} is not a directory"
            )
    for svc in kept:
        if "user" in svc and not svc["create_user"] and svc["user"] not in host["passwd"]:
            problems.append(
                f"isolated_service_services[{svc['name']}]: user {svc['user']} does not exist on this "
                "host, and create_user is false"
            )
    return problems
