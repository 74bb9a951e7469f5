# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""A service's own name resolution files: the /etc/hosts and /etc/resolv.conf it sees, as podman writes
a container's (``--add-host``, ``--no-hosts``, ``--dns``, ``--dns-search``, ``--dns-option``).

The service and services modules write them beside the service's spec (service_paths.hosts_path and
resolv_path), atomically, and the spec bind-mounts each read-only over the file the service would
read, in its own mount namespace, after its other mounts (``Plan.mounts``). A service wired into its
own network namespace (the services module's ``wiring``) with a mount namespace of its own gets a
generated /etc/hosts by default: its namespace usually reaches no resolver, and every lookup the host's
files do not answer (its own hostname: Python's ``socket.getfqdn()``, ``http.server``'s bind) waited
out the resolver's timeouts.

``check`` refuses a malformed value naming the option and the rule; ``plan`` decides which files the
service gets, their text and where each is bind-mounted, and refuses what cannot hold (no mount
namespace of its own, a target that is no file where the service sees it, a mount of the same file).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import socket

from ansible_collections.pyforkexec.isolation.plugins.module_utils import deps, pidfds
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths

ARGSPEC = dict(
    etc_hosts=dict(type="dict"),
    no_hosts=dict(type="bool", default=False),
    dns=dict(type="list", elements="str"),
    dns_search=dict(type="list", elements="str"),
    dns_options=dict(type="list", elements="str"),
)
HOSTS, RESOLV_CONF = "/etc/hosts", "/etc/resolv.conf"
HOST_RESOLV_CONF = RESOLV_CONF  # this host's, which a service's copies what its options leave out from
# iproute2's convention: ``ip netns exec NAME`` bind-mounts each /etc/netns/NAME/X over /etc/X.
NETNS_ETC = "/etc/netns"
MAXNS = 3  # glibc's resolver reads the first 3 nameserver lines and ignores the others
# resolv.conf(5)'s options: those without a value, and those with one, with the largest value glibc
# takes (a larger one is silently taken as that) and the smallest.
OPTION_WORDS = ("debug", "rotate", "no-check-names", "inet6", "ip6-bytestring", "ip6-dotint", "no-ip6-dotint",
                "edns0", "single-request", "single-request-reopen", "no-tld-query", "use-vc", "no-reload",
                "trust-ad", "no-aaaa")
OPTION_NUMBERS = {"ndots": (0, 15), "timeout": (1, 30), "attempts": (1, 5)}
# A host name or domain: dot-separated labels of letters, digits, '-' and '_' (not starting with '-'),
# 1 to 63 characters each, 253 in all, an optional trailing dot. No whitespace or '#': either would
# make another line of the file than the one given.
_LABEL = r"[A-Za-z0-9_][A-Za-z0-9_-]{0,62}"
_NAME = re.compile(rf"(?=[^\n]{{1,253}}\.?\Z){_LABEL}(?:\.{_LABEL})*\.?")
# A zone of an IPv6 address: a Linux interface name (IFNAMSIZ - 1 characters, no '/', ':' or whitespace;
# those in use) or its index.
_ZONE = re.compile(r"[A-Za-z0-9_.@-]{1,15}")
_HEADER = "# Written by pyforkexec for service {name}: its {path} (options {option}); edits are lost.\n"


class NameFileError(paths.ServiceError):
    """A name resolution option that is malformed or cannot hold; the message starts with it."""


def _fail(option, message):
    raise NameFileError(f"{option}: {message}")


def _name(option, value, what):
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        _fail(option, f"{value!r} is not a {what} (dot-separated labels of letters, digits, '-' and '_', "
              "1 to 63 characters each and 253 in all; no spaces)")
    return value


def _inet_aton(text):
    try:
        socket.inet_aton(text)
    except OSError:
        return False
    return True


def _address(option, value, scoped=False):
    """An IP address as text (``ipaddress``'s spelling, so that 010.0.0.1 is refused, not read as
    octal by one reader and decimal by another)."""
    if not isinstance(value, str):
        _fail(option, f"expected an IPv4 or IPv6 address, got {type(value).__name__} {value!r}")
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        _fail(option, f"{value!r} is not an IPv4 or IPv6 address")
    zone = getattr(address, "scope_id", None)
    if zone and not scoped:
        _fail(option, f"{value!r} has a zone (%{zone}), which a hosts file does not take")
    if zone and not (_ZONE.fullmatch(zone) and zone not in (".", "..")):
        # (ipaddress takes any text after the %: a newline in it wrote another line of the file)
        _fail(option, f"{value!r} has a zone that is no interface name or index (%{zone!r}: 1 to 15 letters, "
              "digits, '_', '.', '@' or '-')")
    return str(address)


def _hosts_entries(given):
    """[(name, [address])] of ``etc_hosts`` ({name: address or [addresses]}), by name."""
    out = []
    for name, value in given.items():
        option = f"etc_hosts.{name}"
        _name(option, name, "host name")
        if name.rstrip(".").rpartition(".")[2].isdigit() or _inet_aton(name):
            # getaddrinfo takes it for an address (5 is 0.0.0.5, 0x10 0.0.0.16) and gethostbyname finds
            # no name of digits and dots: the entry was never read (RFC 1123: its last label is no number)
            _fail(option, f"{name!r} reads as an IPv4 address, not a host name (its last label all digits, "
                  "or a number inet_aton takes): the resolver never looks it up in /etc/hosts")
        values = value if isinstance(value, list) else [value]
        if not values:
            _fail(option, "is an empty list: give an address, or leave the name out")
        addresses = [_address(option if len(values) == 1 else f"{option}[{i}]", v)
                     for i, v in enumerate(values)]
        twice = next((a for a in addresses if addresses.count(a) > 1), None)
        if twice:
            _fail(option, f"{twice} is given twice")
        out.append((name, addresses))
    # The resolver reads a hosts file's names without case and its first line of a name: DB and db
    # are one name, and the first of their lines by name would hide the other's addresses.
    seen = {}
    for name, _addresses in sorted(out):
        if name.lower() in seen:
            _fail(f"etc_hosts.{name}", f"is the name etc_hosts.{seen[name.lower()]} gives (the resolver "
                  "reads host names without case): give its addresses under one of them")
        seen[name.lower()] = name
    return sorted(out)


def _options(given):
    out, seen = [], {}
    for i, word in enumerate(given):
        option = f"dns_options[{i}]"
        if not isinstance(word, str):
            _fail(option, f"expected a resolv.conf option word, got {type(word).__name__}")
        key, colon, value = word.partition(":")
        if key in OPTION_NUMBERS and colon:
            least, most = OPTION_NUMBERS[key]
            if not (value.isascii() and value.isdigit() and least <= int(value) <= most):
                _fail(option, f"{key} takes a whole number from {least} to {most} ({key}:N; glibc takes a "
                      f"larger one as {most}), got {word!r}")
            word = f"{key}:{int(value)}"
        elif key not in OPTION_WORDS or colon:
            _fail(option, f"{word!r} is not a resolv.conf option: one of {', '.join(OPTION_WORDS)}, or "
                  f"{', '.join(f'{k}:N' for k in OPTION_NUMBERS)}")
        if key in seen:
            _fail(option, f"{key} is given by dns_options[{seen[key]}] too: give it once")
        seen[key] = i
        out.append(word)
    return out


def check(params):
    """The name resolution options, checked: raises NameFileError naming the option and the rule (for
    the service module's check_options, before anything changes, in check mode too)."""
    hosts, search = params.get("etc_hosts"), params.get("dns_search")
    if hosts is not None:
        _hosts_entries(hosts)
        if params.get("no_hosts"):
            _fail("no_hosts", "true contradicts etc_hosts, whose entries go in the generated /etc/hosts: "
                  "give one of them")
    servers = params.get("dns")
    if servers is not None:
        if len(servers) > MAXNS:
            _fail("dns", f"{len(servers)} servers given: the resolver reads the first {MAXNS} "
                  "(glibc's MAXNS) and ignores the others")
        # (by the address: ::1 and 0::1, FE80::1%eth0 and fe80::1%eth0 are one server)
        addresses = [_address(f"dns[{i}]", server, scoped=True) for i, server in enumerate(servers)]
        twice = next((i for i, a in enumerate(addresses) if addresses.index(a) < i), None)
        if twice is not None:
            first = servers[addresses.index(addresses[twice])]
            _fail("dns", f"{servers[twice]} is given twice" if servers[twice] == first
                  else f"{servers[twice]} is given twice (as {first} too)")
    if search is not None:
        if "." in search and len(search) > 1:
            _fail("dns_search", "'.' (no search domains) cannot be given with domains")
        seen = {}
        for i, domain in enumerate(search):
            if domain != ".":
                _name(f"dns_search[{i}]", domain, "domain")
                # (the resolver reads domains without case, and a final dot as none)
                key = domain.lower().rstrip(".")
                if key in seen:
                    _fail(f"dns_search[{i}]", f"{domain!r} is the domain dns_search[{seen[key]}] gives: "
                          "give each once")
                seen[key] = i
    if params.get("dns_options") is not None:
        _options(params["dns_options"])


def given(params):
    """The name resolution options given (their names), in ARGSPEC's order."""
    return [key for key in ARGSPEC if key != "no_hosts" and params.get(key) is not None]


@dataclasses.dataclass(frozen=True)
class NameFile:
    """One file of the service's: the option that asks for it (messages name it), where the service
    reads it (``target``, in its root), the host file that holds it (``source``) and its text."""

    option: str
    target: str
    source: str
    text: str


@dataclasses.dataclass(frozen=True)
class Plan:
    """The name resolution files a service gets (none, hosts, resolv.conf or both), and the files of
    its network namespace's /etc/netns/NAME/ (iproute2's, (source, target) each)."""

    files: tuple = ()
    netns_etc: tuple = ()

    def mounts(self):
        """[(option, Mount)]: the files of /etc/netns/NAME/ bound over their targets as ``ip netns exec``
        binds them (read-write, not recursive), then each generated file bind-mounted read-only over its
        target (over those: an option given wins); every target must be there (no mkdir: one made would
        be made in the service's root, on the host's disk)."""
        bind = deps.pyforkexec.Mount.bind
        etc = [("netns", bind(source, target, recursive=False, mkdir=False))
               for source, target in self.netns_etc]
        return etc + [(f.option, bind(f.source, f.target, readonly=True, recursive=False, mkdir=False))
                      for f in self.files]

    def wanted(self):
        """{host path: (text, mode)} of the files, as Service.wanted_files gives them."""
        return {f.source: (f.text, 0o644) for f in self.files}


def own_mount_namespace(params):
    """Whether the service gets a mount namespace of its own (``mount`` in namespaces, CLONE_NEWNS in
    cloneflags or unshareflags): its binds are its own there. None when the flags do not parse (the
    isolation options' check names them)."""
    return _own_namespace(params, "mount", deps.pyforkexec.CLONE_NEWNS)


def _own_namespace(params, word, flag):
    if word in (params.get("namespaces") or []):
        return True
    for key in ("cloneflags", "unshareflags"):
        names = params.get(key) or []
        try:
            if names and int(deps.pyforkexec.CloneFlags.parse(",".join(names))) & int(flag):
                return True
        except ValueError:
            return None
    return False


def _other_network(params, wired):
    """Whether the service runs in a network namespace other than this host's: wired into its own, a
    new one (``net``, CLONE_NEWNET), or a named one joined (``netns``)."""
    return wired is not None or bool(params.get("netns")) \
        or bool(_own_namespace(params, "net", deps.pyforkexec.CLONE_NEWNET))


def _is_loopback(server):
    try:
        return ipaddress.ip_address(server.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _joined_mount(params, on_host):
    """``join[i]``, the first join of a mount namespace (unshareflags' CLONE_NEWNS then copies that one's
    tree), or None. Away from the host only a join naming ``mount`` is known; a join the isolation
    options' check refuses (no such process or file) is none here."""
    nsinfo = deps.pyforkexec.nsinfo
    for i, join in enumerate(params.get("join") or []):
        kinds = join.get("namespaces")
        try:
            if kinds:
                joined = "mount" in kinds
            elif not on_host:
                joined = False
            elif join.get("path"):
                joined = nsinfo.nstype(join["path"]) == int(deps.pyforkexec.CLONE_NEWNS)
            else:
                where = pidfds.in_proc(join["pid"]) if (join.get("pid") or 0) > 0 else None
                joined = where is not None and "mount" in nsinfo.differing(where)
        except OSError:
            joined = False
        if joined:
            return f"join[{i}]"
    return None


def _on_shared_mount(path):
    """Whether the mount that holds ``path`` in this process's mount namespace (the deepest mount point
    above it, the last mounted there) is shared (``shared:N`` in /proc/self/mountinfo)."""
    mount_table = deps.pyforkexec.sandbox.mount_table
    table = mount_table.read_mount_table()
    holder = None if table is None else mount_table.holding_mount(table, os.fsencode(os.path.realpath(path)))
    return holder is not None and holder.shared


def _reaches_host(params, on_host, target):
    """Why the service's bind over ``target`` (in its root) would be made in this host's mount namespace
    too, or None: mount_propagation shared or unchanged keeps the copy of a mount that is shared here a
    peer of it (systemd makes / shared), and a mount made on a peer is made on each (the host's
    /etc/hosts became the service's file, and stayed, deleted, after the service was removed)."""
    kind = params.get("mount_propagation") or "private"
    if kind not in ("shared", "unchanged") or not on_host:
        return None
    host = (params.get("rootfs") or "").rstrip("/") + target
    if not _on_shared_mount(host):
        return None
    return (f"mount_propagation {kind} keeps the service's mounts peers of this host's, and {host} is on a "
            "shared mount here: the bind over it would be made on the host's too, and stay after the "
            "service; give mount_propagation private (the default) or slave")


def _in_root(root, path, links=None):
    """Where ``path`` leads as the service sees it: its symlinks followed inside ``root`` (the new root's
    directory on this host, "" for none), as pyforkexec finds a mount's target (RESOLVE_IN_ROOT). The
    path in the service's root, or None where a link loops. ``links``: a list given gets the path of
    each link followed."""
    parts, at, hops = [p for p in path.split("/") if p], "/", 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            at = os.path.dirname(at)
            continue
        here = os.path.join(at, part)
        host = (root.rstrip("/") + here) if root else here
        if os.path.islink(host):
            hops += 1
            if hops > 40:
                return None
            if links is not None:
                links.append(here)
            link = os.readlink(host)
            if link.startswith("/"):
                at = "/"
            parts = [p for p in link.split("/") if p] + parts
            continue
        at = here
    return at


def _outside_mounts(option, path, found, params, explicit, what, root=None):
    """Whether ``found`` (``path``, or a link on the way from it, or where it leads) is outside every
    mount of ``mounts``, made before the binds: what the service has under one (a tmpfs on /run where
    /etc/resolv.conf leads, a bind of /etc) is that mount's, which this host cannot tell from its root.
    ``root``: the new root's directory on this host ("" for none), where each mount's target is found
    as pyforkexec finds it (its links followed), None to take the targets as given (away from the host).
    False leaves the default out (rather than fail its start); a given option is refused naming the
    mount, before anything changes (its bind failed the start, after the running service was stopped)."""
    led = "" if found == path else f" (on the way from {path})"
    for i, mount in enumerate(params.get("mounts") or []):
        target = os.path.normpath("/" + (mount.get("target") or "").lstrip("/"))
        target = (_in_root(root, target) or target) if root is not None else target
        if target == found:
            if explicit:
                _fail(option, f"mounts[{i}] mounts {found}{led} already, which {what}: give one of them")
            return False  # the service's own mount of it stands
        if target == "/" or found.startswith(target + "/"):
            if explicit:
                _fail(option, f"mounts[{i}] mounts {target}, over {found}{led}: what the service has there "
                      "is that mount's, which this host cannot tell is a file to bind-mount over; put "
                      f"the file in the mount's source, or give {path} outside it")
            return False
    return True


def _target(option, path, params, on_host, explicit, source=None):
    """Where the service's ``path`` is to be bind-mounted: the file it reads there (its symlinks
    followed, as /etc/resolv.conf -> ../run/systemd/resolve/stub-resolv.conf is). None (the default
    /etc/hosts only, ``explicit`` false) where it cannot be; a refusal naming ``option`` otherwise.
    ``source``: the host file bound there when it is not a file this module generates (a directory of
    /etc/netns/NAME/ is bound over a directory)."""
    root = params.get("rootfs") or ""
    what = f"{source} is bound over (iproute2's {NETNS_ETC} convention)" if source else f"{option} generates"
    want_dir = bool(source) and os.path.isdir(source)
    if not _outside_mounts(option, path, path, params, explicit, what):
        return None
    if not on_host:  # (the role's check on its controller: the host tells the rest)
        return path
    where = " in its root " + root if root else ""
    links = []
    found = _in_root(root, path, links)
    for each in dict.fromkeys(p for p in (path, *links, found) if p is not None):
        if not _outside_mounts(option, path, each, params, explicit, what, root):
            return None
    if found is None:
        if not explicit:
            return None
        _fail(option, f"{path} is a symlink loop{where}: nothing to bind-mount "
              f"{source or 'the generated one'} over")
    host = (root.rstrip("/") + found) if root else found
    if not (os.path.isdir(host) if want_dir else os.path.isfile(host)):
        if not explicit:
            return None
        led = "" if found == path else f" (it leads to {found})"
        kind = ("not a directory" if want_dir and os.path.exists(host)
                else "a directory" if os.path.isdir(host) else "not there")
        if source:
            _fail(option, f"{path}{led} is {kind}{where}: {source} is bound over it as ip netns exec "
                  "binds it, which needs one there (ip netns exec warns and goes on; a service fails "
                  f"closed): remove {source}, or give the service the file")
        _fail(option, f"{path}{led} is {kind}{where}: the generated file is bind-mounted over the file the "
              "service reads, which must exist (give the root one, or leave the option out)")
    return found


def _netns_etc(params, on_host, look=True):
    """[(source, target)]: what ``ip netns exec NAME`` binds for the namespace the service joins by name
    (``netns``): each entry of /etc/netns/NAME/ over /etc/ENTRY, in name order (``look`` false: the
    target as given, not looked for)."""
    name = params.get("netns")
    if not name or not on_host or "/" in name or name in (".", ".."):  # (the netns option's check refuses it)
        return []
    directory = os.path.join(NETNS_ETC, name)
    try:
        entries = sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as e:
        _fail("netns", f"cannot read {directory} (iproute2's files of the namespace): {e.strerror}")
    out = []
    for entry in entries:
        source = os.path.join(directory, entry)
        if not os.path.exists(source):  # (its bind failed the start, after the running service stopped)
            _fail("netns", f"{source} is a dangling symlink: nothing to bind over /etc/{entry} as ip netns "
                  "exec binds it (ip netns exec warns and goes on; a service fails closed): remove it, or "
                  "make it lead to a file")
        target = _target("netns", f"/etc/{entry}", params, on_host, True, source) if look else f"/etc/{entry}"
        out.append((source, target))
    return out


def _hosts_hostname(params):
    """The hostname the generated /etc/hosts names: refused as input is, before the host is looked at
    (whether the file can be bound there), so that one value gets one answer on every host."""
    hostname = params.get("hostname") or socket.gethostname()
    if not _NAME.fullmatch(hostname):  # (whitespace or a newline would make other lines of the file)
        _fail("hostname", f"{hostname!r} cannot be written in the service's generated /etc/hosts "
              "(dot-separated labels of letters, digits, '-' and '_'): give another, or no_hosts: true")
    return hostname


def _hosts_text(name, hostname, addresses, entries):
    # An entry of etc_hosts stands in place of the generated line of its name (localhost, the hostname):
    # the resolver answers a name from its first line, which would be the generated one.
    given = {host.lower() for host, _each in entries}
    generated = [("127.0.0.1", ["localhost"]), ("::1", ["localhost", "ip6-localhost", "ip6-loopback"])]
    if hostname != "localhost":
        generated += [(address, [hostname]) for address in addresses or ["127.0.1.1"]]
    lines = []
    for address, names in generated:
        names = [n for n in names if n.lower() not in given]
        if names:
            lines.append(f"{address}\t{' '.join(names)}")
    lines += [f"{address}\t{host}" for host, each in entries for address in each]
    options = "etc_hosts, no_hosts"
    return _HEADER.format(name=name, path=HOSTS, option=options) + "\n".join(lines) + "\n"


def _host_resolv():
    """{kind: [values]} of the host's resolv.conf (nameserver, search, options, sortlist); its domain
    line is a search of one domain, as the resolver takes it (the last of the two wins)."""
    out = dict(nameserver=[], search=None, options=[], sortlist=[])
    try:
        with open(HOST_RESOLV_CONF) as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if not words:
            continue
        kind, values = words[0], words[1:]
        if kind == "nameserver" and values:
            out["nameserver"].append(values[0])
        elif kind in ("search", "domain"):
            out["search"] = values if kind == "search" else values[:1]
        elif kind in ("options", "sortlist"):
            out[kind] += values
    return out


def _resolv_text(name, params, on_host, other_network=False):
    """The service's resolv.conf: its options, the host's for those it leaves out. The host's loopback
    nameservers (systemd-resolved's 127.0.0.53, a local dnsmasq) are left out in another network
    namespace, whose loopback has no such server (podman drops them too); with none left, refused."""
    host = _host_resolv() if on_host else dict(nameserver=[], search=None, options=[], sortlist=[])
    # (by the address, as check() tells them apart: 2001:DB8:0::53 is 2001:db8::53, whose respelling is
    # no change of the file nor a restart)
    servers = [_address(f"dns[{i}]", server, scoped=True) for i, server in enumerate(params["dns"])] \
        if params.get("dns") is not None else host["nameserver"]
    if params.get("dns") is None and other_network:
        servers = [server for server in servers if not _is_loopback(server)]
        if host["nameserver"] and not servers:
            option = next(key for key in ("dns_search", "dns_options") if params.get(key) is not None)
            _fail(option, f"copies this host's nameservers into the service's resolv.conf, but they are on "
                  f"this host's loopback ({', '.join(host['nameserver'])}), which the service's network "
                  "namespace cannot reach: give dns")
    # (each domain as check() tells them apart, without case and final dot: EXAMPLE.com. is example.com,
    # whose respelling is no change of the file nor a restart)
    search = [domain if domain == "." else domain.lower().rstrip(".") for domain in params["dns_search"]] \
        if params.get("dns_search") is not None else host["search"]
    options = _options(params["dns_options"]) if params.get("dns_options") is not None else host["options"]
    lines = [f"nameserver {server}" for server in servers]
    if search is not None:  # "search ." for none: without a search line glibc searches the hostname's domain
        lines.append("search " + (" ".join(search) if search else "."))
    if host["sortlist"]:
        lines.append("sortlist " + " ".join(host["sortlist"]))
    if options:
        lines.append("options " + " ".join(options))
    header = _HEADER.format(name=name, path=RESOLV_CONF, option="dns, dns_search, dns_options")
    return header + "".join(f"{line}\n" for line in lines)


def plan(params, name, wired=None, on_host=True):
    """The name resolution files of service ``name`` (its module parameters, checked by ``check``).
    ``wired``: its own addresses where it is wired into its own network namespace (the services module's
    ``wiring``: a list, maybe empty), else None. Raises NameFileError for what cannot hold."""
    asked = given(params)
    hosts_asked = params.get("etc_hosts") is not None
    resolv_asked = any(key in asked for key in ("dns", "dns_search", "dns_options"))
    default_hosts = wired is not None and not params.get("no_hosts") and not hosts_asked
    if not asked and not default_hosts and not params.get("netns"):
        return Plan()
    own = own_mount_namespace(params)
    if own is None:
        return Plan()  # (the isolation options' check refuses the flags)
    if not own:
        if asked:
            _fail(asked[0], "needs a mount namespace of the service's own ('mount' in namespaces) for its "
                  "generated file to be bind-mounted over the one it would read: without one it could only "
                  "be written over the host's")
        return Plan()  # the default and /etc/netns/NAME/ follow the service's own mount namespace
    joined = _joined_mount(params, on_host)
    if joined:
        # What it has at /etc/hosts, /etc/resolv.conf and /etc/ENTRY is the joined namespace's, which
        # this host's files do not tell: a bind found nothing there at the start, after the run had
        # written the files and stopped a running service.
        etc = _netns_etc(params, on_host, look=False)
        if asked or etc:
            option = asked[0] if asked else "netns"
            what = "its generated file" if asked else f"the files of {os.path.dirname(etc[0][0])}"
            _fail(option, f"{joined} joins a mount namespace: the files the service reads, which {what} "
                  "would be bound over, are that namespace's, which this run does not look into; leave "
                  f"{option} out, or give the service a mount namespace of its own without {joined}")
        return Plan()  # (the default: left out)
    netns_etc = _netns_etc(params, on_host)
    if any(os.path.basename(source) == "hosts" for source, _target_path in netns_etc):
        default_hosts = False  # the namespace's own /etc/hosts stands
    files = []
    if hosts_asked or default_hosts:
        hostname = _hosts_hostname(params)
        target = _target("etc_hosts" if hosts_asked else "no_hosts", HOSTS, params, on_host, hosts_asked)
        if target is not None:
            entries = _hosts_entries(params["etc_hosts"] or {}) if hosts_asked else []
            files.append(NameFile("etc_hosts", target, paths.hosts_path(name),
                                  _hosts_text(name, hostname, wired, entries)))
    if resolv_asked:
        option = next(key for key in asked if key.startswith("dns"))
        target = _target(option, RESOLV_CONF, params, on_host, True)
        text = _resolv_text(name, params, on_host, _other_network(params, wired))
        files.append(NameFile(option, target, paths.resolv_path(name), text))
    for source, target in netns_etc:
        why = _reaches_host(params, on_host, target)
        if why:
            _fail("netns", f"{source} is bound over {target} as ip netns exec binds it, but {why}")
    for file in list(files):
        why = _reaches_host(params, on_host, file.target)
        if why and file.option == "etc_hosts" and not hosts_asked:
            files.remove(file)  # (the default: left out, as under a mount it cannot tell)
        elif why:
            _fail(file.option, f"its generated file is bound over {file.target}, but {why}")
    return Plan(tuple(files), tuple(netns_etc))


def wired_addresses(topology):
    """The addresses (without prefix) of the links a wiring's namespace has (the netns model's
    ``desired``), in order."""
    out = []
    for veth in (topology or {}).get("veths", {}).values():
        for address in veth.get("addresses") or []:
            text = str(ipaddress.ip_interface(address).ip)
            if text not in out:
                out.append(text)
    return out
