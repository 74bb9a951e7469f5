"""The kernel side of named network namespaces: read a topology, and carry out planned actions.

With pyroute2 (the ``net`` extra), imported on first use so that ``import pyforkexec`` never needs it.

``observe`` returns the plain data model plans from; ``apply`` runs model's actions.
Sysctls of the namespace are read and written by a thread that joins it (nsinfo.in_namespace_thread),
since /proc/sys/net shows the network namespace of the thread that looks.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import errno
import functools
import ipaddress
import os
import socket
import stat
import time
from collections.abc import Mapping

from .. import nsinfo
from .._signals import ending_blocked, held
from .._text import OneLineError
from ..checks import NS_OPEN
from ..flags import CLONE_NEWNET
from . import declared as bridge_records
from .model import (
    BRIDGE_ALIAS,
    NETNS_ALIAS,
    ModelError,
    bridge_alias,
    bridge_declarers,
    changes_inside,
    describe,
    has_ipv6,
    ipv6_mtu_link,
    parse_veth_alias,
    route_family,
    route_key,
    sysctl_value,
    veth_alias,
)

NETNS_DIR = "/run/netns"
IFF_UP = 0x1
RT_TABLE_MAIN = 254
RTN_UNICAST = 1
MANAGED_PROTOS = (3, 4)  # RTPROT_BOOT (ip route add), RTPROT_STATIC (pyroute2): routes someone added
RT_SCOPE_LINK = 253
NET_ADDR_SET = 3  # /sys/class/net/*/addr_assign_type of a MAC someone set
NUD_NOARP, NUD_PERMANENT = 0x40, 0x80  # neighbour entries somebody made, kept as they are
# A link sends a gratuitous ARP (IPv4) and an unsolicited neighbour advertisement once its address is
# usable (IPv6) when it comes up or changes its MAC, when the namespace's ``all`` or its own is 1: the
# namespaces made here have it for all their links (create), the links made here for themselves (_announce).
ANNOUNCE = ("/proc/sys/net/ipv4/conf/{}/arp_notify", "/proc/sys/net/ipv6/conf/{}/ndisc_notify")


def _pyroute2():
    import pyroute2
    from pyroute2 import netns

    return pyroute2, netns


def netns_path(name):
    return os.path.join(NETNS_DIR, name)


NETLINK_ROUTE = 0


def _route_in(pyroute2, path, others_only=False):
    """An IPRoute of the network namespace at ``path``, its socket made inside it by a thread
    (nsinfo.socket_in) where pyroute2's NetNS would fork a helper for it. A missing namespace raises
    FileNotFoundError (nothing is created)."""
    sock = nsinfo.socket_in(path, "net", socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE,
                            others_only=others_only)
    fd = sock.detach()
    try:
        return pyroute2.IPRoute(fileno=fd)  # which owns the fd from here, and closes it
    except BaseException:
        os.close(fd)
        raise


def create(pyroute2, netns, name):
    """Create the named network namespace ``name`` (/run/netns/NAME), the way ``ip netns add`` does,
    already marked ours (NETNS_ALIAS on its ``lo``); returns an fd of it (_Pin). The alias is set
    before the namespace gets its name, so that no kill (SIGKILL between the two) can leave a
    namespace under that name which plan_absent would take for one made by hand; killed before the
    attach, the namespace dies with the thread.

    A thread of this process unshares its network namespace alone and pyroute2's ``netns.attach``
    bind-mounts that thread's namespace there; the thread then ends, so that no other thread, the
    caller's included, ever changes namespaces. pyroute2's own ``netns.create`` forks this process
    instead and gives up when the child has not answered within 2 s (its ``default_communicate_timeout``),
    which a busy emulated host exceeds: "no response from the child" on an arm64 guest of a fleet.
    A failure leaves nothing behind: the mount point made for it is removed.

    The links of the namespace announce their address when they come up (``ANNOUNCE``): a link made
    here has a new MAC, and a neighbour on its bridge (another service, the host) that still has an
    entry for its address from a link that had it before (a service removed and made again, or
    another one taking its address) would otherwise send to the old MAC until the entry expired, up
    to a minute. Written by the thread, whose /proc/sys/net is the new namespace's; a /proc/sys
    that is read-only (some containers) leaves the kernel's default, and only that.
    """
    path = netns_path(name)

    def unshare_and_attach():
        if _libc().unshare(int(CLONE_NEWNET)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")
        _announcing("all", ())  # a declared all.* sysctl is written later
        with pyroute2.IPRoute() as ns:  # this thread's socket: the new namespace's
            ns.link("set", index=ns.link_lookup(ifname="lo")[0], ifalias=NETNS_ALIAS)
        made = os.open("/proc/thread-self/ns/net", NS_OPEN)  # (what the rest of a plan acts on: _Pin)
        there_before = os.path.lexists(path)
        try:
            netns.attach(name, "thread-self", libc=_libc())
        except BaseException:
            os.close(made)
            if not there_before and not os.path.ismount(path):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)  # the empty mount point attach made before its mount failed
            raise
        return made

    # A KeyboardInterrupt meanwhile goes on once the namespace is made, or not.
    return nsinfo.in_own_thread(unshare_and_attach, "pyforkexec-netns-create", undo=os.close)


@functools.cache
def _libc():
    """This process's libc (dlopen(NULL)), also given to pyroute2's netns functions: theirs would find it
    with ctypes.util.find_library, which starts ``ldconfig -p`` in every module run that makes or
    removes a namespace."""
    return ctypes.CDLL(None, use_errno=True)


class HostLinks:
    """The host's links (``links``), read once and kept while nothing changes them: what
    ``pyforkexec.netns.batch`` shares between the converges it holds the host lock for. ``forget``
    when an action may have changed them; ``foresee`` the plans of check mode, which change nothing."""

    def __init__(self, keep=(), mtus=None):
        # The bridges the batch's namespaces want: none of them removes one; nor, given as a mapping
        # {bridge: addresses}, an address that one of them declares on it (model.kept_addresses).
        self.keep = {b: tuple(a) for b, a in keep.items()} if isinstance(keep, Mapping) else frozenset(keep)
        self.mtus = dict(mtus or {})  # {bridge: the MTU one of them declares} (model.declared_mtu)
        self._links = None
        self._foreseen = set()  # the host-side actions earlier check-mode plans of the batch hold
        self._gone = set()  # the host links they delete
        self._readdressed = {}  # {(link, address): added} of the host-side addresses they change
        self._declarers = {}  # {bridge: the namespaces declaring it} after them
        self._records = {}  # {netns: what it declares of its bridges} after them (netns.declared)

    def read(self, pyroute2, foreseen=False):
        """The host's links; ``foreseen``: as check mode sees them after the batch's earlier check-mode
        plans (``foresee``), which a real converge never does."""
        if self._links is None:
            with held(), pyroute2.IPRoute() as host:  # (its sockets closed, whatever signal comes)
                self._links = links(host)
        gone = self._gone if foreseen else ()
        # the plans and their simulations never touch the kept one
        out = {k: copy.deepcopy(v) for k, v in self._links.items() if k not in gone}
        for bridge, declarers in self._declarers.items() if foreseen else ():
            if bridge in out:
                out[bridge]["alias"] = bridge_alias(declarers)
        return out

    def foresee(self, actions, name):
        """A check-mode plan of netns ``name`` as the real run makes it after the batch's earlier
        converges: without the host-side actions one of them planned (a bridge's new address, its
        MTU: the real run makes each once, in the first converge that needs it; a bridge one of them
        makes, which this one then declares), and with the links they delete gone from later reads
        (the last namespace on a bridge removes it)."""
        kept = [("declare_bridge", a[1], name) if a[0] == "create_bridge" and describe(a) in self._foreseen
                else a for a in actions]
        for action in kept:  # who declares each bridge once this plan is carried out, for the next reads
            if action[0] in ("create_bridge", "declare_bridge", "undeclare_bridge"):
                bridge = action[1]
                if bridge not in self._declarers:
                    link = (self._links or {}).get(bridge)
                    self._declarers[bridge] = set(bridge_declarers(link["alias"]) or ()) if link else set()
                if action[0] == "undeclare_bridge":
                    self._declarers[bridge].discard(name)
                else:
                    self._declarers[bridge].add(name)
        kept = [a for a in kept if changes_inside(a) or describe(a) not in self._foreseen]
        self._foreseen.update(describe(a) for a in actions if not changes_inside(a))
        for action in actions:  # a name a rename frees, and another one takes again, is not gone
            if action[0] in ("del_veth", "del_bridge", "rename_veth"):
                self._gone.add(action[1])
            if action[0] == "rename_veth":
                self._gone.discard(action[2])
        self._readdressed.update(((a[2], a[3]), a[0] == "add_addr") for a in actions
                                 if a[0] in ("add_addr", "del_addr") and a[1] == "host")
        return kept

    def records(self, foreseen=False):
        """The records of what namespaces declare of their bridges as the batch's earlier check-mode
        plans leave them ({netns: record}, the others read from their files); None: all from the files."""
        return self._records if foreseen else None

    def foresee_record(self, name, record):
        """The record netns ``name`` writes once a check-mode plan of the batch is carried out."""
        self._records[name] = record

    def addresses(self, links, foreseen=False):
        """{link: addresses} of the host's ``links`` (``read``); ``foreseen``: with the changes the
        batch's earlier check-mode plans make to them, on links they make too."""
        out = {k: set(v["addresses"]) for k, v in links.items()}
        for (link, address), added in self._readdressed.items() if foreseen else ():
            if link in self._gone:
                continue
            if added:
                out.setdefault(link, set()).add(address)
            else:
                out.get(link, set()).discard(address)
        return {k: sorted(v) for k, v in out.items()}

    def forget(self):
        self._links = None
        # what check mode foresaw describes nothing now
        self._foreseen, self._gone, self._readdressed, self._records = set(), set(), {}, {}


def links(ipr):
    """{ifname: {index, kind, up, mtu, mac, master, alias, link, addresses}} of one namespace; ``link``
    is a veth's peer's index (in the namespace the peer is in)."""
    msgs = list(ipr.get_links())
    names = {m["index"]: m.get_attr("IFLA_IFNAME") for m in msgs}
    out = {}
    for m in msgs:
        info = m.get_attr("IFLA_LINKINFO")
        out[m.get_attr("IFLA_IFNAME")] = dict(
            index=m["index"],
            kind=info.get_attr("IFLA_INFO_KIND") if info is not None else None,
            up=bool(m["flags"] & IFF_UP),
            mtu=m.get_attr("IFLA_MTU"),
            mac=m.get_attr("IFLA_ADDRESS"),
            master=names.get(m.get_attr("IFLA_MASTER")),
            alias=m.get_attr("IFLA_IFALIAS"),
            link=m.get_attr("IFLA_LINK"),
            addresses=[],
        )
    by_index = {v["index"]: v for v in out.values()}
    for a in ipr.get_addr():
        if a["family"] == socket.AF_INET6 and a["scope"] == RT_SCOPE_LINK:
            continue  # the kernel's own fe80:: address
        address = _address_text(a)
        link = by_index.get(a["index"])
        if link is not None and address:
            link["addresses"].append(address)
    for link in out.values():
        link["addresses"].sort()
    return out


def _mac_pinned(name, link):
    """Whether a host link's MAC was set by someone (``addr_assign_type`` NET_ADDR_SET), which keeps a
    bridge from taking its ports' MACs; None when /sys/class/net does not show this very link (a sysfs
    of another network namespace, or none): then nothing is planned for it."""
    base = f"/sys/class/net/{name}/"
    try:
        with open(base + "ifindex") as f:
            same = int(f.read()) == link["index"]
        with open(base + "address") as f:
            same = same and f.read().strip() == link["mac"]
        with open(base + "addr_assign_type") as f:
            return int(f.read()) == NET_ADDR_SET if same else None
    except (OSError, ValueError):
        return None


def _local_mac():
    """A random locally administered unicast MAC, the one a new bridge gets (as Docker's do): given
    one, the kernel keeps it, where it would give the bridge its smallest port's (model._unpinned_bridges)."""
    mac = bytearray(os.urandom(6))
    mac[0] = (mac[0] & 0xFE) | 0x02
    return ":".join(f"{b:02x}" for b in mac)


def _address_text(msg):
    """'10.0.0.1/24' of an RTM_NEWADDR message; None without an address."""
    address = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
    return str(ipaddress.ip_interface(f"{address}/{msg['prefixlen']}")) if address else None


RTPROT_KERNEL = 2


def routes(ipr, names_by_index, foreign=None):
    """The routes someone added to the main table (not those the kernel derives from addresses).
    ``foreign`` (a list) gets those of the other protocols (a DHCP client's, a routing daemon's), which
    are left alone, as (dst, metric, proto): model refuses a wanted route in their place."""
    out = []
    for r in ipr.route("dump"):
        table = r.get_attr("RTA_TABLE") or r["table"]
        if table != RT_TABLE_MAIN or r["type"] != RTN_UNICAST:
            continue
        if r["dst_len"] == 0:
            dst = "default6" if r["family"] == socket.AF_INET6 else "default"
        else:
            dst = str(ipaddress.ip_network(f"{r.get_attr('RTA_DST')}/{r['dst_len']}", strict=False))
        if r["proto"] not in MANAGED_PROTOS:
            if foreign is not None and r["proto"] != RTPROT_KERNEL:
                foreign.append((dst, r.get_attr("RTA_PRIORITY"), r["proto"]))
            continue
        gateway = r.get_attr("RTA_GATEWAY")
        out.append(route_key(dst, str(ipaddress.ip_address(gateway)) if gateway else None,
                             names_by_index.get(r.get_attr("RTA_OIF")), r.get_attr("RTA_PRIORITY")))
    return sorted(out, key=lambda x: (x["dst"], x["gateway"] or "", x["dev"] or "", x["metric"] or 0))


def _sysctl_path(key):
    return "/proc/sys/" + key.replace(".", "/")


def _sysctl_path_key(path, link):
    """The sysctl key of ``path`` (a /proc/sys path with ``{}`` for ``link``)."""
    return path.removeprefix("/proc/sys/").replace("/", ".").format(link)  # a dot in the link's name stays


def _sysctl_io(reads, writes):
    for key, value in writes.items():
        try:
            with open(_sysctl_path(key), "w") as f:
                f.write(value)
        except OSError as e:  # named as the plan's action is: which key, which value
            raise OSError(e.errno, f"sysctl {key} {value}: {e.strerror}") from None
    out = {}
    for key in reads:
        try:
            with open(_sysctl_path(key)) as f:
                out[key] = " ".join(f.read().split())
        except FileNotFoundError:
            out[key] = None
    return out


def _check_readable_sysctls(keys):
    """A ModelError, before anything changes, for a sysctl that cannot be read back (write-only, as
    net.ipv4.route.flush: an action, not a setting), as this host's /proc/sys shows it (a namespace's
    has the same files, but those of its own links)."""
    for key in keys:
        path = _sysctl_path(key)
        try:
            mode = os.stat(path).st_mode
        except OSError:
            # A link's that the namespace makes: its kind of key is the ``default`` one's.
            mode = _sysctl_mode_of_kind(key)
            if mode is None:
                raise ModelError(f"sysctls: {key}: no such sysctl (no {path} on this host)") from None
            continue
        if not mode & 0o444:
            raise ModelError(f"sysctls: {key} can be written but not read (an action, not a setting): it "
                             "cannot be converged")


def _sysctl_mode_of_kind(key):
    """The mode of the ``default`` counterpart of a link's key (``net.ipv4.conf.eth0.rp_filter`` ->
    ``net.ipv4.conf.default.rp_filter``), None when the key is no link's or its kind does not exist."""
    parts = key.split(".")
    if len(parts) != 5 or parts[1] not in ("ipv4", "ipv6") or parts[2] not in ("conf", "neigh"):
        return None
    try:
        return os.stat(_sysctl_path(".".join([*parts[:3], "default", parts[4]]))).st_mode
    except OSError:
        return None


def _ipv6_off(name, wanted, ns_links, path=None):
    """{link: the key that takes IPv6 off it} for the wanted links with IPv6 addresses or routes whose
    IPv6 an undeclared sysctl left by an earlier converge (or by hand) turns off: the link's own
    ``disable_ipv6`` (a link that exists), else ``default``'s (one the plan makes). model refuses it:
    the addresses would fail at the end of the plan (EACCES) at every run."""
    if not wanted:
        return {}
    declared = wanted.get("sysctls", {})
    keys = {}  # link -> the key that says whether IPv6 is off on it
    for inside, want in wanted.get("veths", {}).items():
        if not (has_ipv6(want["addresses"])
                or any(r["dev"] == inside and route_family(r) == 6 for r in wanted.get("routes", []))):
            continue
        own = f"net.ipv6.conf.{inside}.disable_ipv6"
        key = own if inside in ns_links else "net.ipv6.conf.default.disable_ipv6"
        if own not in declared and key not in declared:  # (model._check_sysctls_with_links: declared)
            keys[inside] = key
    values = sysctls(name, reads=sorted(set(keys.values())), path=path) if keys else {}  # one visit
    return {inside: key for inside, key in keys.items() if values.get(key) == "1"}


def _host_ipv6_off(wanted, host_links):
    """{host link: the key that takes IPv6 off it} for the wanted host ends and bridges with IPv6
    addresses whose IPv6 is off on the host (their own ``disable_ipv6``, set by hand; ``default``'s
    for one the plan makes): model refuses it, as the namespace side's (_ipv6_off)."""
    if not wanted:
        return {}
    links = [(v["peer"], v["peer_addresses"]) for v in wanted.get("veths", {}).values()]
    links += [(b, (w or {}).get("addresses") or []) for b, w in wanted.get("bridges", {}).items()]
    off = {}
    for link, addresses in links:
        if not has_ipv6(addresses):
            continue
        where = link if link in host_links else "default"
        key = f"net.ipv6.conf.{where}.disable_ipv6"
        try:
            with open(f"/proc/sys/net/ipv6/conf/{where}/disable_ipv6") as f:  # (a dot in a name stays)
                if f.read().strip() == "1":
                    off[link] = key
        except OSError:  # no IPv6 on this host at all: the address add names it
            pass
    return off


def check_sysctl_values(sysctls):
    """A ModelError, before anything changes, for a sysctl the kernel would refuse at the end of the
    plan: each is written first in a scratch network namespace (made by a thread of its own, gone with
    it), as the plan writes them, a link's key as that of a link every namespace has (the link is not
    there): ``conf.default``, and for ``neigh`` (a new namespace has no ``neigh.default``: only the
    host's has) ``neigh.lo``. What the kernel refuses there (a key a namespace does not have, one
    read-only, a value out of its range or of another kind) it refuses in the namespace too."""
    if not sysctls:
        return
    trial = {}
    for key, value in sysctls.items():
        parts = key.split(".")
        if len(parts) == 5 and parts[2] in ("conf", "neigh") and parts[3] not in ("all", "default", "lo"):
            stand_in = "default" if parts[2] == "conf" else "lo"
            trial[key] = (".".join([*parts[:3], stand_in, parts[4]]), value)
        else:
            trial[key] = (key, value)
    refused = nsinfo.in_own_thread(functools.partial(_trial_writes, trial), "pyforkexec-netns-trial")
    if refused is not None:
        key, value, why = refused
        raise ModelError(f"sysctls: {key}: the kernel refuses {value!r} ({why}), as a new namespace shows")


def _trial_writes(trial):
    """In a thread of its own: unshare(CLONE_NEWNET), then write each (as key, value) of ``trial``;
    the first the kernel refuses, as (key, value, why), or None."""
    if _libc().unshare(int(CLONE_NEWNET)) != 0:
        err = ctypes.get_errno()
        if err in (errno.EPERM, errno.EACCES):
            return None  # no namespace to try them in: the plan's writes tell
        raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")
    for key, (as_key, value) in trial.items():
        try:
            with open(_sysctl_path(as_key), "w") as f:
                f.write(value)
            with open(_sysctl_path(as_key)) as f:  # what it keeps: the converge reads it back so
                kept = sysctl_value(f.read())
        except OSError as e:
            return key, value, e.strerror
        if kept != value:
            return key, value, f"it keeps {kept!r}"
    return None


def sysctls(name, reads=(), writes=None, path=None):
    """Write then read net.* sysctls inside netns ``name`` (or the namespace file ``path``: one held
    open, _Pin)."""
    return _in_netns(name, functools.partial(_sysctl_io, list(reads), dict(writes or {})), path)


def _in_netns(name, fn, path=None):
    """``fn()`` in a thread that joined netns ``name`` (or the namespace file ``path``: one held open,
    _Pin) (its /proc/sys/net is the namespace's)."""
    return nsinfo.in_namespace_thread(path or netns_path(name), "net", fn, "pyforkexec-netns-sysctl",
                                      others_only=True)


class _Pin:
    """Netns ``name`` held open (``fd``) for one read or one apply, so that every step of it acts on one
    namespace: each step opened /run/netns/NAME again, and a namespace made again under the name
    meanwhile (``ip netns del`` and ``add`` by another caller) got the rest of the plan, a veth, its
    addresses, sysctls, and the converge said it was done. ``identity`` is the namespace's, and
    ``expected`` the one the plan was made from (observe's ``identity``): another under the name fails
    the apply before anything is done there (ESTALE)."""

    def __init__(self, name, expected=None):
        self.name = name
        self.expected = expected
        self.fd = None

    def path(self):
        """The namespace's file as held: /proc/self/fd/N (also in a thread of this process)."""
        return f"/proc/self/fd/{self.open()}"

    def open(self):
        if self.fd is None:
            fd = os.open(netns_path(self.name), NS_OPEN)
            try:
                if self.expected is not None and identity(fd) != tuple(self.expected):
                    raise OSError(errno.ESTALE, f"{netns_path(self.name)} is another namespace than the one "
                                  "read when the plan was made (made again under the name meanwhile)")
            except BaseException:
                os.close(fd)
                raise
            self.fd = fd
        return self.fd

    def made(self, fd):
        """The namespace ``fd`` (which create made) is the one the rest of the plan acts on."""
        self.close()
        self.fd, self.expected = fd, None

    def check_named(self):
        """OSError (ESTALE) unless the name names the namespace held (or, none held, the one expected)."""
        if self.fd is None and self.expected is None:
            return
        meant = identity(self.fd) if self.fd is not None else tuple(self.expected)
        try:
            fd = os.open(netns_path(self.name), NS_OPEN)
        except FileNotFoundError:
            now = None
        else:
            try:
                now = identity(fd)
            finally:
                os.close(fd)
        if now != meant:
            raise OSError(errno.ESTALE, f"{netns_path(self.name)} is another namespace than the one this "
                          "converge acted on (made again under the name meanwhile)")

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def identity(fd):
    """(device, inode, the kernel's id or None) of the namespace open at ``fd``: the id is never given
    again, the inode number is once the namespace is freed."""
    from .. import ns_pins

    st = os.fstat(fd)
    return (st.st_dev, st.st_ino, ns_pins.ns_id(fd))


def _swap_file(path, value):
    """Write ``value`` to the /proc/sys file ``path``; what it held before."""
    with open(path, "r+") as f:
        old = f.read().strip()
        if old != value:
            f.seek(0)
            f.write(value)
    return old


def _shown(value):
    """``value`` with each bytes in it as text: pyroute2 gives a name the kernel holds that is no UTF-8
    (a link's, which whoever may administer the namespace chooses) as bytes, which no JSON takes; each
    such byte shows as \\xNN."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {_shown(k): _shown(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shown(v) for v in value]
    return value


def net_view(ipr):
    """The links and routes of one namespace, as namespace_info returns them (all text)."""
    found = links(ipr)
    names = {v["index"]: k for k, v in found.items()}
    return _shown(dict(
        links={k: {x: v[x] for x in ("kind", "up", "mtu", "mac", "master", "addresses")}
               for k, v in found.items()},
        addresses=sorted(a for v in found.values() for a in v["addresses"]),
        routes=routes(ipr, names),
    ))


def net_view_of(path):
    """net_view of the network namespace at ``path`` (/proc/PID/ns/net, /run/netns/NAME), through a
    netlink socket a thread made inside it (nsinfo.socket_in); pyroute2 runs in the caller's thread.
    Not a forked helper: a lock another thread held at the fork (pyroute2's import lock while that
    thread imports it) would be held forever in the helper, and the call would never return."""
    with _route_in(_pyroute2()[0], path) as ipr:
        return net_view(ipr)


def observe(name, wanted=None, host=None, foreseen=False):
    """The topology of netns ``name`` as model expects it: what exists, and which host links
    are ours (by alias). ``wanted`` (model.desired) adds its bridges and sysctls. ``host``: the
    HostLinks to read the host's links from (read afresh without); ``foreseen``: for check mode,
    as the batch's earlier check-mode plans leave them (HostLinks.foresee)."""
    pyroute2, netns = _pyroute2()
    exists = name in netns.listnetns()
    state = dict(name=name, exists=exists, loopback_up=False, bridges={}, veths={}, routes=[], sysctls={},
                 host_links={}, ns_links=[])
    host = host or HostLinks()
    host_links = host.read(pyroute2, foreseen)
    ns_links = {}
    _check_readable_sysctls(sorted((wanted or {}).get("sysctls", {})))
    check_sysctl_values((wanted or {}).get("sysctls", {}))
    if exists and _leftover_mount_point(netns_path(name)):
        exists = state["exists"] = False  # no namespace: its name is free (clear_netns_file)
        state["leftover"] = True
    if exists:
        _check_netns_file(name)
        pin = _Pin(name)  # (every read of one namespace, the one the plan is then pinned to)
        try:
            state["identity"] = identity(pin.open())
            with held(), _route_in(pyroute2, pin.path(), others_only=True) as ns:  # (closed, whatever comes)
                ns_links = links(ns)
                state["foreign_routes"] = []
                by_index = {v["index"]: k for k, v in ns_links.items()}
                state["routes"] = routes(ns, by_index, state["foreign_routes"])
            keys = sorted((wanted or {}).get("sysctls", {}))
            state["sysctls"] = sysctls(name, reads=keys, path=pin.path()) if keys else {}
            state["ipv6_off"] = _ipv6_off(name, wanted, ns_links, pin.path())
        finally:
            pin.close()
    state["host_ipv6_off"] = _host_ipv6_off(wanted, host_links)
    state["loopback_up"] = ns_links.get("lo", {}).get("up", False)
    state["ours"] = ns_links.get("lo", {}).get("alias") == NETNS_ALIAS
    state["host_links"] = {k: v["alias"] for k, v in host_links.items()}
    state["host_addresses"] = host.addresses(host_links, foreseen)  # model._check_host_subnets
    for ifname, link in host_links.items():
        parsed = parse_veth_alias(link["alias"])
        unmarked = False
        if not parsed and not link["alias"] and link["kind"] == "veth":
            # A veth made with its other end in this namespace but not marked yet (the process was killed
            # between the two calls): ours by construction, marked by the plan (mark_veth).
            inner = next((n for n, v in ns_links.items()
                          if v["kind"] == "veth" and v["link"] == link["index"]), None)
            # Only as declared (its name inside and its peer's): one of others into this namespace (by
            # hand, by another tool) stays theirs, on removal too.
            declared = (wanted or {}).get("veths", {}).get(inner)
            if inner is not None and declared and declared["peer"] == ifname:
                parsed, unmarked = (name, inner), True
        if not parsed or parsed[0] != name:
            continue
        inside = ns_links.get(parsed[1], {})
        # The host end is wired to this namespace when the link of that name in it is a veth whose
        # peer is this host end. Otherwise its peer is elsewhere: in a namespace of that name that
        # was deleted while something held it open, or behind another mount namespace's
        # /run/netns. Such a host end is made again (the plan deletes it first).
        wired = inside.get("kind") == "veth" and inside.get("link") == link["index"]
        if not wired:
            inside = {}
        state["veths"][parsed[1]] = dict(
            unmarked=unmarked,
            peer=ifname, peer_mtu=link["mtu"], peer_mac=link["mac"], peer_up=link["up"], wired=wired,
            bridge=link["master"], peer_addresses=link["addresses"], mtu=inside.get("mtu"),
            mac=inside.get("mac"), up=inside.get("up", False), addresses=inside.get("addresses", []))
    state["ns_links"] = sorted(ns_links)
    bridges = set((wanted or {}).get("bridges", {}))
    bridges |= {v["bridge"] for v in state["veths"].values() if v["bridge"]}
    bridges |= {k for k, v in host_links.items()  # declared by this namespace: its removal may take them
                if v["kind"] == "bridge" and name in (bridge_declarers(v["alias"]) or ())}
    for bname in sorted(bridges):
        link = host_links.get(bname)
        if link is None:
            continue
        declarers = bridge_declarers(link["alias"])
        state["bridges"][bname] = dict(
            # declared_by None: made before its declarers were recorded (model._declared_elsewhere)
            kind=link["kind"], ours=declarers is not None,
            declared_by=None if link["alias"] == BRIDGE_ALIAS else declarers,
            mtu=link["mtu"], up=link["up"],
            addresses=link["addresses"], mac_pinned=_mac_pinned(bname, link),
            others=bridge_records.others(name, bname, declarers, _named, host.records(foreseen)),
            mine=bridge_records.own(name, bname, host.records(foreseen)),
            ports={k: v["mtu"] for k, v in sorted(host_links.items()) if v["master"] == bname})
    return state


def _named(name):
    """Whether /run/netns has ``name``."""
    return os.path.lexists(netns_path(name))


def _leftover_mount_point(path):
    """Whether ``path`` is the empty mount point a namespace was (or was to be) bound onto, with none
    on it: what a converge SIGKILLed between the mount point and the mount, or between umount and
    unlink, leaves (pyroute2 and ``ip netns`` make it an empty file of mode 0). Nothing is lost with it,
    so the name is free; any other file that holds no namespace is refused (_check_netns_file)."""
    try:
        found = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISREG(found.st_mode) or found.st_size or found.st_mode & 0o7777 or os.path.ismount(path):
        return False
    try:
        return not nsinfo.nstype(path)
    except OSError:
        return False


def _check_netns_file(name):
    """A ModelError, before anything changes, when /run/netns/NAME is there but is no network
    namespace: an ordinary file (a mount point whose mount went away: made in another mount
    namespace, or an ``ip netns add`` cut short), a directory, another kind of namespace. Neither a
    plan to make the namespace (the name is taken) nor to remove it (setns would fail halfway) holds."""
    path = netns_path(name)
    try:
        kind = nsinfo.nstype(path)
    except OSError as e:
        raise ModelError(f"name: {path} cannot be opened: {e.strerror}") from None
    if kind == CLONE_NEWNET:
        if nsinfo.is_callers(path):
            raise ModelError(f"name: {path} is this process's own network namespace (the host's, bound there "
                             "as by `ip netns attach NAME PID`): its links, routes and sysctls would be the "
                             "host's; remove it (umount, then unlink) to reuse the name")
        return
    what = "a directory" if os.path.isdir(path) else (
        "a file with no namespace mounted on it here" if not kind else "another kind of namespace")
    raise ModelError(f"name: {path} is not a network namespace ({what}): remove it to reuse the name")


class _Handles:
    """IPRoute sockets for the host and the namespace, opened on first use."""

    def __init__(self, name, expected=None):
        self.name = name
        self.pyroute2, self.netns = _pyroute2()
        self._host = self._ns = None
        self.pin = _Pin(name, expected)

    def side(self, side):
        if side == "host":
            if self._host is None:
                self._host = self.pyroute2.IPRoute()
            return self._host
        if self._ns is None:
            self._ns = _route_in(self.pyroute2, self.pin.path(), others_only=True)
        return self._ns

    def index(self, side, ifname):
        found = self.side(side).link_lookup(ifname=ifname)
        if not found:
            raise LookupError(f"no link {ifname} in {'the host' if side == 'host' else 'netns ' + self.name}")
        return found[0]

    def swap_sysctl(self, side, path, value):
        """Write a /proc/sys file of the host or the namespace (_in_netns); what it held before."""
        if side == "host":
            return _swap_file(path, value)
        return _in_netns(self.name, functools.partial(_swap_file, path, value), self.pin.path())

    def close(self):
        for h in (self._host, self._ns):
            if h is not None:
                h.close()
        self.pin.close()


def _address(text):
    iface = ipaddress.ip_interface(text)
    return dict(address=str(iface.ip), prefixlen=iface.network.prefixlen)


RT_SCOPE_NOWHERE = 255


def _route_args(h, route, op="add"):
    """pyroute2's arguments for adding, replacing or deleting ``route``. An IPv4 route without a gateway
    is made with scope link, as ``ip route add ... dev X`` makes it: the kernel reaches a gateway only through
    a scope-link route (with pyroute2's default, universe, a gateway inside that route's subnet is
    unreachable). A delete matches any scope (NOWHERE, as ``ip route del``): a route made by hand with
    scope link is deleted too."""
    family = route_family(route)
    dst = route["dst"]
    if dst in ("default", "default6"):
        dst = "::/0" if family == 6 else "0.0.0.0/0"
    args = dict(dst=dst, family=socket.AF_INET6 if family == 6 else socket.AF_INET)
    if family == 4:
        if op == "del":
            args["scope"] = RT_SCOPE_NOWHERE
        elif not route["gateway"]:
            args["scope"] = RT_SCOPE_LINK
    if route["gateway"]:
        args["gateway"] = route["gateway"]
    if route["dev"]:
        args["oif"] = h.index("ns", route["dev"])
    if route["metric"] is not None:
        args["priority"] = route["metric"]
    return args


IFA_F_SECONDARY = 0x01
IFA_F_NODAD = 0x02


def _usable_at_once(side, address):
    """An IPv6 address made in the namespace skips duplicate address detection (IFA_F_NODAD, as Docker
    adds a container's): a tentative address cannot be bound, and the service started right after the
    wiring would fail on it (EADDRNOTAVAIL) for the second or two DAD takes. The addresses are
    declared, as IPv4 ones (which have no such check), and so is their uniqueness on the bridge."""
    if side == "ns" and ipaddress.ip_interface(address).version == 6:
        return {"flags": IFA_F_NODAD}
    return {}


RT_TABLE_LOCAL = 255


def _wait_local_route(h, side, ifname, address, timeout=5.0):
    """Wait (at most ``timeout`` s) until the kernel delivers packets to the IPv6 ``address`` just added
    to ``ifname``: until the link's local route for it is in the local table. The kernel inserts that
    route when it announces the address (RTM_NEWADDR), and for an address added with IFA_F_NODAD
    (_usable_at_once) or through duplicate address detection it does so later, from its address
    worker: 11 of 500 adds measured had no local route yet when the add returned. Until then the
    address receives nothing: moved from another link, whose deletion comes next, it would be
    unreachable for that moment, and a service started right after the wiring could not be reached. An
    IPv4 address gets its local route in the add itself. A host address is waited for only when the plan
    moves it from another link (its detection takes a second or two; one that fails it never gets the
    route, and the wait ends at ``timeout``)."""
    iface = ipaddress.ip_interface(address)
    if iface.version != 6:
        return
    ipr, index, ip = h.side(side), h.index(side, ifname), str(iface.ip)
    deadline = time.monotonic() + timeout
    while not any(r.get_attr("RTA_DST") == ip and r.get_attr("RTA_OIF") == index
                  for r in ipr.get_routes(family=socket.AF_INET6, table=RT_TABLE_LOCAL)):
        if time.monotonic() > deadline:
            return
        time.sleep(0.001)


def _wait_ready(h, link, timeout=5.0):
    """Wait (at most ``timeout`` s) until namespace link ``link``, up, is ready: its operational state
    UP (a veth's, once both ends are up). The kernel sets its ``ipv6.conf.LINK.mtu`` back to the link's
    MTU when it becomes ready, from its linkwatch work, after the link_up returned: the declared value
    is written after that (model: such a sysctl comes last). At once for a link that is down."""
    ipr, index = h.side("ns"), h.index("ns", link)
    deadline = time.monotonic() + timeout
    while True:
        found = ipr.link("get", index=index)[0]
        if not found["flags"] & IFF_UP or found.get_attr("IFLA_OPERSTATE") in ("UP", "UNKNOWN"):
            return
        if time.monotonic() > deadline:
            return
        time.sleep(0.001)


def _forget_neighbour(h, address):
    """Drop the host's neighbour entry for ``address``, just added inside the namespace. A new link has
    a new MAC: when the address was another link's until now (a service removed and made again, or
    another service taking its address), the host's entry still names that link's MAC, and the host
    sends into the void until the entry expires (51 s measured). The entry is on the link the host
    routes the address through (the bridge); one somebody made (permanent, noarp) is kept."""
    ip = ipaddress.ip_interface(address).ip
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    host = h.side("host")
    try:
        oif = host.route("get", dst=str(ip), family=family)[0].get_attr("RTA_OIF")
        if oif is None:
            return
        entry = host.neigh("get", dst=str(ip), ifindex=oif, family=family)[0]
    except h.pyroute2.NetlinkError:  # no route to it (the host never talks to it), or no entry
        return
    if not entry["state"] & (NUD_PERMANENT | NUD_NOARP):
        host.neigh("del", dst=str(ip), ifindex=oif, family=family)


@contextlib.contextmanager
def _promoting(h, side, ifname, index, address):
    """Delete an IPv4 address without its subnet's other addresses. The first address of a subnet is
    its primary, the later ones its secondaries, and the kernel deletes the secondaries with the
    primary unless the link's promote_secondaries is set, in which case one of them becomes the
    primary and every route through the subnet stays. So it is set for this one deletion of a
    primary that has secondaries, and put back after (any value the options ask for comes later)."""
    iface = ipaddress.ip_interface(address)
    primary, others = False, False
    if iface.version == 4:
        for a in h.side(side).get_addr(index=index, family=socket.AF_INET):
            local = ipaddress.ip_interface(_address_text(a))
            if local == iface:
                primary = not (a["flags"] | (a.get_attr("IFA_FLAGS") or 0)) & IFA_F_SECONDARY
            elif local.network == iface.network:
                others = True
    if not (primary and others):
        yield
        return
    path = os.path.join("/proc/sys/net/ipv4/conf", ifname, "promote_secondaries")
    old = h.swap_sysctl(side, path, "1")
    try:
        yield
    finally:
        if old != "1":
            h.swap_sysctl(side, path, old)


class ApplyError(OneLineError, RuntimeError):
    """An action the kernel refused; ``str()`` names the action (one line, see OneLineError).
    ``actions``: every planned line; ``done``: how many of them were carried out before; ``undone``:
    whether what they made was removed again (a namespace this converge created, see netns.converge)."""

    actions: list[str] = []
    done = 0
    undone = False


def apply(name, actions, expected=None):
    """Carry out model's actions, in order, then have the links with a new MAC or a new address
    announce themselves (_announce). Raises ApplyError at the first refused one.

    Python's signal handlers are held meanwhile (a Ctrl-C is raised once the plan is carried out): an
    action is two calls at times (a link, then the alias that makes it ours), and the plan's order is
    what keeps nothing both topologies have from going; interrupted between two of them, a link
    made but not yet ours would stop the next converge ("not made by pyforkexec"), a veth deleted
    before its emptied bridge would leave the bridge for good. The signals that would end the process
    (SIGTERM from systemd's stop of a boot unit, timeout(1)) are blocked for the same span: one that
    arrives ends it once the plan is carried out, not between two actions.

    ``expected``: the identity of the namespace the plan was made from (observe's); every action acts
    on that one (_Pin), and the name must still name it once they are done (ApplyError otherwise).
    Returns the identity of the namespace acted on (None: none, or it was removed)."""
    with held(), ending_blocked():
        return _apply_held(name, actions, expected)


def _apply_held(name, actions, expected=None):
    h = _Handles(name, expected)
    moved = {a[3] for a in actions if a[0] == "del_addr" and a[1] == "host"}  # host addresses, maybe moved
    run = []  # (index, action) of the sysctl actions not written yet: written at once, before the next
    try:
        for done, action in enumerate(actions):
            if action[0] == "sysctl":
                run.append((done, action))
                continue
            _write_sysctls(h, run)
            try:
                _apply_one(h, name, action)
                if action[0] == "add_addr" and (action[1] == "ns" or action[3] in moved):
                    _wait_local_route(h, *action[1:])
            except Exception as e:  # pyroute2's NetlinkError, OSError, LookupError
                error = ApplyError(f"{describe(action)}: {e}")
                error.done = done
                raise error from e
        try:
            _announce(h, name, actions)
            for link in sorted({ipv6_mtu_link(a[1]) for _, a in run} - {None}):
                _wait_ready(h, link)  # else the kernel's reset of its IPv6 MTU could come after the write
        except Exception as e:
            error = ApplyError(f"announcing the new links' addresses: {e}")
            error.done = len(actions) - len(run)
            raise error from e
        _write_sysctls(h, run)
        deleted = any(a[0] == "delete_netns" for a in actions)
        try:
            if not deleted:
                h.pin.check_named()
        except OSError as e:
            error = ApplyError(str(e.strerror))
            error.done = len(actions)
            raise error from None
        return None if deleted or h.pin.fd is None else identity(h.pin.fd)
    finally:
        h.close()


def _write_sysctls(h, run):
    """Write the sysctls of ``run`` (emptied) in one visit of the namespace; an ApplyError whose
    ``done`` is the index of the first."""
    if not run:
        return
    writes = {a[1]: a[2] for _, a in run}
    first = run[0][0]
    run.clear()
    try:
        sysctls(h.name, writes=writes, path=h.pin.path())
    except (OSError, RuntimeError) as e:
        error = ApplyError(e.strerror if isinstance(e, OSError) and e.strerror else f"sysctls: {e}")
        error.done = first
        raise error from e


def _announcing(link, declared):
    """Set ``ANNOUNCE`` for ``link`` of this thread's network namespace, but the sysctls ``declared``
    (the plan writes the user's value). A /proc/sys that is read-only (some containers) leaves the
    kernel's default, and only that."""
    for path in ANNOUNCE:  # the link's name as it is in the path: a dot in it is no separator here
        if _sysctl_path_key(path, link) in declared:
            continue
        with contextlib.suppress(OSError), open(path.format(link), "w") as f:
            f.write("1")


def _announce(h, name, actions):
    """Make each link of the namespace that was made, or given an address, by ``actions`` announce its
    addresses (a gratuitous ARP, and for an IPv6 address already usable an unsolicited neighbour
    advertisement: ``ANNOUNCE``), so that the neighbours on its bridge that cached another MAC for
    one of them learn this link's now. The kernel announces a link when it comes up, but a veth's bridge
    port starts forwarding only once the bridge has seen the carrier, a few ms later, and that first
    announcement is lost there: setting the link's MAC to the one it has makes the kernel announce it
    again, sent once the port forwards. A link made here is set to announce itself (its own
    ``ANNOUNCE``, unless the user declares them), also in a namespace that was not made here; the
    host forgets its old entry of a link that got an address in any case (_forget_neighbour)."""
    made = {a[1]: a[2] for a in actions if a[0] == "create_veth"}  # inside -> host end
    links = set(made) | {a[2] for a in actions if a[0] == "add_addr" and a[1] == "ns"}
    declared = {a[1] for a in actions if a[0] == "sysctl"}
    for inside in sorted(links):
        if inside in made:
            _in_netns(name, functools.partial(_announcing, inside, declared), h.pin.path())
            _wait_forwarding(made[inside])
        _set_own_mac(h.side("ns"), h.index("ns", inside))


def _set_own_mac(ipr, index):
    """Set link ``index`` to the MAC it has: the kernel then counts it as set by someone (a bridge keeps
    it, model._unpinned_bridges) and tells the link's neighbours again (_announce)."""
    ipr.link("set", index=index, address=ipr.link("get", index=index)[0].get_attr("IFLA_ADDRESS"))


BR_STATE_DISABLED = "0"


def _wait_forwarding(port, timeout=1.0):
    """Wait (at most ``timeout`` s) while the bridge has not yet seen the carrier of its port ``port``
    (a host link): it forwards once it has, at once without STP (ours), or after STP's delays, which
    this does not wait for. At once when /sys/class/net does not show ``port`` as a bridge port (no
    bridge, or a sysfs of another network namespace)."""
    deadline = time.monotonic() + timeout
    path = f"/sys/class/net/{port}/brport/state"
    while True:
        try:
            with open(path) as f:
                if f.read().strip() != BR_STATE_DISABLED:
                    return
        except OSError:
            return
        if time.monotonic() > deadline:
            return
        time.sleep(0.001)


KEEP_ADDR_ON_DOWN = "/proc/sys/net/ipv6/conf/{}/keep_addr_on_down"


def _rename_link(h, old, new):
    """Rename host link ``old`` to ``new``, in place where the kernel renames a link that is up (Linux
    6.2 and later): the link keeps its carrier, its bridge port forwarding and the routes through it.
    An older kernel renames only a link that is down (EBUSY), and taking one down deletes its IPv6
    addresses and its connected routes: there they are kept (its keep_addr_on_down, for that moment),
    and the link is up again at once, a Ctrl-C held until then (a link left down or unrenamed)."""
    host = h.side("host")
    with held():
        index = h.index("host", old)
        try:
            host.link("set", index=index, ifname=new)
            return
        except h.pyroute2.NetlinkError as e:
            if e.code != errno.EBUSY:
                raise
        up = host.link("get", index=index)[0]["flags"] & IFF_UP
        try:
            kept = _swap_file(KEEP_ADDR_ON_DOWN.format(old), "1")
        except FileNotFoundError:  # no IPv6 on the link: nothing to keep
            kept = None
        try:
            host.link("set", index=index, state="down")
            host.link("set", index=index, ifname=new)
        finally:
            if up:
                host.link("set", index=index, state="up")
            if kept is not None:
                name = new if host.link_lookup(ifname=new) else old
                _swap_file(KEEP_ADDR_ON_DOWN.format(name), kept)


def _apply_one(h, name, action):
    op, args = action[0], action[1:]
    if op == "clear_netns_file":  # (looked at again: only an empty mount point with nothing on it)
        path = netns_path(name)
        if _leftover_mount_point(path):
            os.unlink(path)
    elif op == "create_netns":  # made and marked ours (plan_absent removes only a namespace it made)
        h.pin.made(create(h.pyroute2, h.netns, name))
    elif op == "delete_netns":
        h.pin.check_named()  # (a namespace made again under the name meanwhile is not the one to remove)
        h.netns.remove(name, libc=_libc())
    elif op == "link_up":
        side, ifname = args
        h.side(side).link("set", index=h.index(side, ifname), state="up")
    elif op == "set_link":
        side, ifname, settings = args
        h.side(side).link("set", index=h.index(side, ifname), **settings)
    elif op == "add_addr":
        side, ifname, address = args
        flags = _usable_at_once(side, address)
        h.side(side).addr("add", index=h.index(side, ifname), **_address(address), **flags)
        if side == "ns":
            _forget_neighbour(h, address)
    elif op == "del_addr":
        side, ifname, address = args
        index = h.index(side, ifname)
        with _promoting(h, side, ifname, index, address):
            h.side(side).addr("del", index=index, **_address(address))
    elif op == "create_bridge":
        h.side("host").link("add", ifname=args[0], kind="bridge", address=_local_mac())
        h.side("host").link("set", index=h.index("host", args[0]), ifalias=bridge_alias([name]))
    elif op in ("declare_bridge", "undeclare_bridge"):
        bridge, netns = args
        index = h.index("host", bridge)
        link = h.side("host").link("get", index=index)[0]
        declarers = set(bridge_declarers(link.get_attr("IFLA_IFALIAS")) or ())
        declarers = declarers | {netns} if op == "declare_bridge" else declarers - {netns}
        h.side("host").link("set", index=index, ifalias=bridge_alias(declarers))
    elif op == "create_veth":
        inside, peer = args
        h.side("host").link("add", ifname=peer, kind="veth", peer={"ifname": inside,
                                                                    "net_ns_fd": h.pin.open()})
        h.side("host").link("set", index=h.index("host", peer), ifalias=veth_alias(name, inside))
    elif op == "pin_bridge_mtu":
        # A bridge follows its ports' MTU until its own is set, and setting the MTU it has is no set to
        # the kernel: through another value, while the new bridge has no port (no frame to drop).
        bridge, mtu = args
        index = h.index("host", bridge)
        h.side("host").link("set", index=index, mtu=mtu - 1)
        h.side("host").link("set", index=index, mtu=mtu)
    elif op == "pin_bridge_mac":
        _set_own_mac(h.side("host"), h.index("host", args[0]))
    elif op == "rename_veth":
        _rename_link(h, *args)
    elif op == "mark_veth":
        peer, inside = args
        h.side("host").link("set", index=h.index("host", peer), ifalias=veth_alias(name, inside))
    elif op in ("del_veth", "del_bridge"):
        h.side("host").link("del", index=h.index("host", args[0]))
    elif op == "set_master":
        peer, bridge = args
        master = h.index("host", bridge) if bridge else 0
        h.side("host").link("set", index=h.index("host", peer), master=master)
    elif op in ("add_route", "del_route"):
        h.side("ns").route(op[:3], **_route_args(h, args[0], op[:3]))
    elif op == "replace_route":  # the route of the same key, replaced at once (NLM_F_REPLACE)
        h.side("ns").route("replace", **_route_args(h, args[1], "replace"))
    else:
        raise ValueError(f"unknown action {op}")
