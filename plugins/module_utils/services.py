# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""The services module's logic: a host's services, each with the network namespace it runs in,
planned together and then applied in one process (one module call for N services, where a task loop
of the netns and service modules costs a module round trip per service).

Each entry is the service module's options plus ``wiring``, the netns module's options for the
namespace the entry's ``netns`` names. The run has two phases:

- ``plan``: every entry is checked (names unique, the service module's own checks and pyforkexec's
  validation of its launch spec, the netns model of its wiring) and its files rendered, before
  anything changes. One refused entry fails the task and nothing is applied.
- ``apply``: the entries in state absent first (their daemons stopped together, then each service
  removed, then its namespace); then the others, their namespaces wired (``pyforkexec.netns.converge``
  and its persistence, as the netns module does), and then the services brought to their states
  (``service.apply``, the service module's own run; those under manager direct in threads, as soon as
  their own namespace is wired where PID 1 is not systemd, see DECLARE_THREADS), each restarted when its
  namespace was rewired or its runtime reinstalled (``restart``) under it. An entry whose apply fails is
  reported and the others still apply (they are independent); a service whose namespace could not be
  wired is not started or restarted (fail closed), and the task fails naming every failed entry.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import ipaddress
import os

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.pyforkexec.isolation.plugins.module_utils import deps, name_files, service_direct
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service as svc
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
from ansible_collections.pyforkexec.isolation.plugins.module_utils.arguments import refusal
from ansible_collections.pyforkexec.isolation.plugins.module_utils.files import Files
from ansible_collections.pyforkexec.isolation.plugins.module_utils.files import write as write_file
from ansible_collections.pyforkexec.isolation.plugins.module_utils.isolation import NETNS_DIR
from ansible_collections.pyforkexec.isolation.plugins.module_utils.netns_args import WIRING_ARGSPEC
from ansible_collections.pyforkexec.isolation.plugins.module_utils.netns_persist import persistence

# Each entry is checked against ENTRY_ARGSPEC by ``plan`` (the service module's own argument spec and
# rules, and the netns module's for ``wiring``), so that its messages name the entry and the module's
# documentation can refer to those modules for the options.
ARGSPEC = dict(
    services=dict(type="list", elements="dict", required=True),
    restart=dict(type="list", elements="str", default=[]),
)
ENTRY_ARGSPEC = dict(svc.ARGSPEC, wiring=dict(type="dict", options=WIRING_ARGSPEC))
ENTRY_RULES = dict(mutually_exclusive=svc.MUTUALLY_EXCLUSIVE, required_if=svc.REQUIRED_IF)

# The keys of a service's result (the service module's, and the role's isolated_service_status).
RESULT_KEYS = ("changed", "actions", "state", "manager", "pid", "main_pid", "namespaces", "landlock",
               "spec_path", "unit_path", "pid_file", "log_file", "stop_timeout")


class EntryModule:
    """The AnsibleModule as one entry's Service sees it: that entry's options as its ``params``."""

    def __init__(self, module, params):
        self._module = module
        self.params = params

    def __getattr__(self, name):
        return getattr(self._module, name)


@dataclasses.dataclass
class Entry:
    """One service of the run: its Service, its rendered files, its namespace's netns options (None
    without ``wiring``), and what applying it did."""

    service: svc.Service
    files: dict | None
    wiring: dict | None
    result: dict = dataclasses.field(default_factory=dict)
    netns: dict | None = None
    rehearsed: object = None  # the netns.Converged of its wiring's rehearsal (_rehearse), if any
    reuse: bool = False  # whether that reading stands (the host lock held since: _rehearse)
    topology: dict | None = None  # its wiring as the netns model reads it (model.desired), once
    error: str | None = None
    details: dict = dataclasses.field(default_factory=dict)  # besides ``error``: svc.failure_details
    left: dict | None = None  # the namespaces its service left, removed (_remove_left_behind)
    recorded: list = dataclasses.field(default_factory=list)  # paths.wired_netns before the run

    @property
    def name(self):
        return self.service.name

    @property
    def state(self):
        return self.service.params["state"]


def _wiring(params):
    """The netns module's options for the entry's namespace, None without ``wiring``."""
    if params["wiring"] is None:
        return None
    if not params["netns"]:
        raise paths.ServiceError("wiring: needs netns, the name of the namespace it wires")
    return dict(params["wiring"], name=params["netns"], state="present")


def _plan_entry(module, params):
    wiring = _wiring(params)
    # ModelError names the option
    topology = None if wiring is None else deps.pyforkexec.netns.model.desired(wiring)
    service = svc.Service(EntryModule(module, params))
    files = None
    if params["state"] != "absent":
        # A namespace this run wires is made before the service starts: not looked for yet.
        made = wiring is not None and not os.path.exists(os.path.join(NETNS_DIR, wiring["name"]))
        service.netns_made = made
        service.wired = None if wiring is None else name_files.wired_addresses(topology)
        files = service.wanted_files()
    return Entry(service, files, wiring, topology=topology)


def _duplicates(values):
    seen, twice = set(), []
    for value in values:
        if value in seen and value not in twice:
            twice.append(value)
        seen.add(value)
    return twice


def plan(module):
    """Every entry checked and rendered, nothing changed: the Entries, in apply order (absent
    first). Raises PlanError naming every refused entry."""
    services, problems = [], []
    validator = ArgumentSpecValidator(ENTRY_ARGSPEC, **ENTRY_RULES)
    for i, raw in enumerate(module.params["services"]):
        refused = refusal(ENTRY_ARGSPEC, raw)  # what the validator would raise on, not report
        if refused is not None:
            problems.append(f"services[{raw.get('name', i)}]: {refused}")
            continue
        checked = validator.validate(raw)
        if checked.error_messages:
            problems.append(f"services[{raw.get('name', i)}]: {'; '.join(checked.error_messages)}")
        else:
            services.append(checked.validated_parameters)
    problems += [f"services: {name} is given more than once"
                 for name in _duplicates(p["name"] for p in services)]
    problems += [f"services: netns {name} is wired by more than one service"
                 for name in _duplicates(p["netns"] for p in services if p["wiring"] is not None)]
    unknown = sorted(set(module.params["restart"]) - {p["name"] for p in services})
    if unknown:
        problems.append(f"restart: not among the services: {', '.join(unknown)}")
    entries = []
    for params in services:
        try:
            entries.append(_plan_entry(module, params))
        except (*svc.ERRORS, deps.pyforkexec.netns.ModelError) as e:
            problems.append(f"services[{params['name']}]: {e}")
    problems += own_cgroups_shared(entries)
    problems += bridges_described_differently(entries)
    problems += addresses_twice_on_a_bridge(entries)
    problems += namespaces_removed_under_others(entries)
    if problems:
        raise PlanError("\n".join(problems))
    return sorted(entries, key=lambda entry: entry.state != "absent")


def own_cgroups_shared(entries):
    """The entries whose own cgroup is another service's, inside or around one (of this run's, as it
    leaves them, or of the host's others), or holds processes that are not theirs (Service.check_own_cgroup):
    one's start or stop would kill the other's processes."""
    batch = {entry.name: entry.service.wanted_own_cgroup(entry.files) if entry.files is not None else None
             for entry in entries}
    problems = []
    for entry in entries:
        if entry.files is not None and entry.state != "stopped":
            try:
                entry.service.check_own_cgroup(entry.files, batch)
            except paths.ServiceError as e:
                problems.append(f"services[{entry.name}]: {e}")
    return problems


def namespaces_removed_under_others(entries):
    """An entry removed with its ``wiring`` removes its namespace: refused where a service that stays
    (an entry of the run, or another service on this host) joins that namespace, which would go on
    running in an emptied namespace, then fail to start at its next start."""
    joiners = _joiners(entries)
    problems = []
    for entry in entries:
        if entry.state != "absent" or entry.wiring is None:
            continue
        others = sorted(joiners.get(entry.wiring["name"], set()) - {entry.name})
        if others:
            problems.append(f"services[{entry.name}]: netns {entry.wiring['name']} is joined by "
                            f"{', '.join(others)}, which stay: removing it would leave them in an emptied "
                            "namespace; remove them in this run too, or drop this entry's wiring (the "
                            "namespace then stays while a service joins it)")
    return problems


def _joiners(entries):
    """{netns name: the services that join it after this run}: the entries that stay, and the other
    services on this host (their spec documents). A namespace is matched by name (one a kept entry's
    wiring makes), and by the namespace itself (its nsfs inode): a join through another path (a
    symlink, a bind-mounted copy, /proc/PID/ns/net) joins it all the same."""
    named = _named_netns()
    by_inode = {}  # (a spec's join of a /proc/PID path records the namespace's inode: PID may be gone)
    for (_device, inode), names_of in named.items():
        by_inode.setdefault(inode, set()).update(names_of)
    out = {}

    def add(service, joins):
        for path, inode in joins:
            found = by_inode.get(inode, set()) if inode is not None else named.get(_ns_id(path), ())
            for name in found:
                out.setdefault(name, set()).add(service)

    for entry in entries:
        params = entry.service.params
        if entry.state != "absent":
            if params["netns"]:
                out.setdefault(params["netns"], set()).add(entry.name)
            add(entry.name, [(join["path"] or f"/proc/{join['pid']}/ns/net", None) for join in params["join"]
                             if join["path"] or not join["namespaces"] or "net" in join["namespaces"]])
    names = {entry.name for entry in entries}
    try:
        specs = [f[:-len(".json")] for f in os.listdir(paths.SPEC_DIR) if f.endswith(".json")]
    except FileNotFoundError:
        specs = []
    for other in specs:
        if other not in names:
            add(other, _spec_joins(other))
    return out


def _ns_id(path):
    """The namespace file ``path`` as (device, inode), None where there is none."""
    try:
        found = os.stat(path)
    except (OSError, ValueError):
        return None
    return found.st_dev, found.st_ino


def _named_netns():
    """{(device, inode): the names} of the namespaces named in NETNS_DIR."""
    out = {}
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return out
    for name in names:
        key = _ns_id(os.path.join(NETNS_DIR, name))
        if key is not None:
            out.setdefault(key, set()).add(name)
    return out


def bridges_described_differently(entries):
    """A bridge that two kept entries list with other addresses or MTU: each run would converge it to
    one, then to the other (taking a namespace's gateway away and back). Named by a veth only, a
    bridge is used as it is, and agrees with any description."""
    described, problems = {}, []
    for entry in entries:
        if entry.state == "absent" or entry.wiring is None:
            continue
        for name, bridge in sorted(entry.topology["bridges"].items()):
            if bridge["addresses"] is None:
                continue
            first = described.setdefault(name, (entry.name, bridge))
            if first[1] != bridge:
                there, here = (f"addresses {b['addresses']}, mtu {b['mtu']}" for b in (first[1], bridge))
                problems.append(f"services[{entry.name}]: bridge {name} is described otherwise by "
                                f"services[{first[0]}] ({there}; here {here}): describe it the same in both, "
                                "or in one and name it by its veths only in the other")
    return problems


def addresses_twice_on_a_bridge(entries):
    """An address two kept entries' namespaces (or one and the bridge itself) have on the same bridge:
    both would answer for it, and which one the others reach would change from one ARP to the next."""
    owners, problems = {}, []
    for entry in entries:
        if entry.state == "absent" or entry.wiring is None:
            continue
        wanted = entry.topology
        found = [(name, a, f"bridge {name}") for name, b in wanted["bridges"].items()
                 for a in b["addresses"] or []]
        found += [(v["bridge"], a, f"netns {wanted['name']}") for v in wanted["veths"].values() if v["bridge"]
                  for a in v["addresses"]]
        for bridge, address, who in found:
            key = (bridge, str(ipaddress.ip_interface(address).ip))
            first = owners.setdefault(key, (entry.name, who))
            if first[1] != who:
                problems.append(f"services[{entry.name}]: {key[1]} on bridge {bridge} is also {first[1]}'s "
                                f"(services[{first[0]}]): an address has one owner on a bridge")
    return problems


def _rehearse(module, entries, left, reuse):
    """The wiring of every entry planned against this host, as check mode plans it (one batch, the
    removals first), before anything changes: an entry the model refuses only once the host is
    read (a subnet that another entry, or a host link, takes) fails the run with nothing done, rather
    than after the entries before it were wired and started. ``reuse``: the caller holds the host lock
    from here until the wiring (a batch around both), so an entry the rehearsal finds nothing to do
    for is not read again (its Converged is kept: ``rehearsed``); a reading made before the lock was
    let go (the removed services' stop timeouts) would not tell what another converge did meanwhile.
    ``left``: _left_behind's. Raises PlanError."""
    netns = deps.pyforkexec.netns
    problems = []
    with netns.batch(**_bridges([e for e in entries if e.state != "absent"])):
        for name in (n for names in left.values() for n in names):  # removed first (_apply)
            netns.converge(name, None, check=True)
        for entry in entries:
            if entry.wiring is None:
                continue
            try:
                wanted = entry.wiring if entry.state != "absent" else None
                entry.rehearsed = netns.converge(entry.wiring["name"], wanted, check=True)
                entry.reuse = reuse
            except netns.ModelError as e:
                problems.append(f"services[{entry.name}]: {e}")
    if problems:
        raise PlanError("\n".join(problems))


class PlanError(ValueError):
    """Entries refused before anything changed; ``str()`` names each one and its option."""


def _converge_netns(module, entry, present):
    """The entry's namespace wired (``present``) or removed, without its persistence (``_persist``):
    its result and diff entries, as the netns module returns them; whether the namespace itself
    changed (not only the host's side: a bridge it shares, the host end of its veth)."""
    netns = deps.pyforkexec.netns
    params = entry.wiring
    done = entry.rehearsed if entry.reuse else None
    # The rehearsal found nothing to do: its reading is this one's. In check mode it planned the entry
    # in this very batch, as check mode plans it: its plan is this one. Planned again, the batch takes
    # the host-side actions the rehearsal foresaw for the entry (a bridge's new address, the bridge
    # itself) for an earlier converge's, and leaves them out: check mode said nothing would change.
    if done is None or (done.actions and not module.check_mode):
        done = netns.converge(params["name"], params if present else None, check=module.check_mode)
    entry.netns = dict(actions=done.actions, netns=done.netns, topology=done.after)
    header = f"netns {params['name']}"
    entry.netns["diff"] = [dict(before=done.before, after=done.after, before_header=header,
                                after_header=header)]
    return done.rewired


def _persist(module, entry, present):
    """The persistence of the entry's namespace (its options file, and under systemd its boot unit,
    started or stopped), after ``_converge_netns``: its actions and diff join the entry's."""
    files = Files(module)
    entry.netns["persist"] = persistence(files, entry.wiring, present, module.run_command)
    entry.netns["actions"] = entry.netns["actions"] + files.actions
    entry.netns["diff"] += files.diff


def _stop_removed(module, entries):
    """The daemons of the services to remove (manager direct) stopped together, so that their stop
    timeouts run at once rather than one after another: {name: the daemon stopped}. Raises ServiceError
    (a daemon that survived SIGKILL: nothing is removed then)."""
    daemons = {entry.name: entry.service.daemon() for entry in entries if entry.state == "absent"}
    daemons = {name: daemon for name, daemon in daemons.items() if daemon is not None}
    if not module.check_mode:
        service_direct.stop_all(list(daemons.values()))
    return daemons


def _guarded(entry, step, *args):
    """``step(*args)``; an error of those a service's apply meets becomes the entry's."""
    netns = deps.pyforkexec.netns
    try:
        step(*args)
    except (*svc.ERRORS, netns.ModelError, netns.OptionsError, netns.ApplyError, OSError) as e:
        entry.error, entry.details = str(e), getattr(e, "details", {})
        if isinstance(e, netns.ApplyError):
            entry.netns = dict(actions=e.actions)


def _remove(module, entry, stopped, keep):
    """State absent: the service removed (its daemon stopped already, ``stopped``), then its namespace
    and the bridges it leaves empty, but those in ``keep`` (the kept services want them)."""
    entry.result = svc.apply(entry.service, None, stopped.get(entry.name))
    if entry.wiring is not None:
        with deps.pyforkexec.netns.batch(**keep):
            _converge_netns(module, entry, False)
        _persist(module, entry, False)


def _spec_joins(name):
    """(path, inode or None) of the namespace files the spec of service ``name`` on this host joins (of
    any or the net type); the inode where the spec pins one."""
    try:
        spec = deps.pyforkexec.spec.read(paths.spec_path(name))
    except (OSError, ValueError):  # none, or unreadable: nothing known
        return []
    sys_attr = spec.attr.sys
    net = int(deps.pyforkexec.CLONE_NEWNET)
    return [(e.target, e.inode) for e in (sys_attr.setns if sys_attr is not None else ())
            if isinstance(e.target, str) and e.nstype in (0, net)]


def _left_behind(entries):
    """{entry name: [netns]}: the namespace this module wired for an entry's service (recorded:
    paths.wired_netns) that the service will not be wired into after this run (its ``netns``
    renamed, its ``wiring`` dropped, or the entry removed without one) and that no other service joins
    or is wired into: the run removes it, with its veths and persistence, rather than leave it on the
    bridge with the address the new one takes. A namespace the service only joined is never removed."""
    in_use = set(_joiners(entries))
    out = {}
    for entry in entries:
        entry.recorded = paths.wired_netns(entry.name)  # (read before the service's removal drops it)
        own = entry.wiring["name"] if entry.wiring is not None else None  # its own converge handles it
        gone = [name for name in entry.recorded if name != own and name not in in_use]
        if gone:
            out[entry.name] = gone
    return out


def _record_wired(module, entry):
    """Record (or forget, for an entry removed) the namespace this run wired for the entry's service:
    bookkeeping of this module's, as a pending mark is, written only outside check mode."""
    if module.check_mode:
        return
    path = paths.wired_netns_path(entry.name)
    own = entry.wiring["name"] if entry.wiring is not None else None
    # Those it left that another service joined stay on the host, and so does their record, even
    # with the service removed: the run after the last one leaves them removes them (_left_behind).
    # Forgotten, they would stay for good, with their veths and addresses.
    kept = [name for name in entry.recorded
            if name != own and os.path.lexists(os.path.join(NETNS_DIR, name))]
    wanted = ([own] if entry.state != "absent" and own is not None else []) + kept
    if wanted == paths.wired_netns(entry.name):
        return
    if wanted:
        write_file(path, "".join(f"{name}\n" for name in wanted), 0o644)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _remove_left_behind(module, entry, names, keep):
    """The namespaces ``names`` the entry's service leaves (_left_behind) removed, with their veths,
    the bridges they leave empty (but ``keep``) and their persistence: their actions and diff are the
    entry's."""
    netns = deps.pyforkexec.netns
    entry.left = entry.left or dict(actions=[], diff=[])
    for name in names:
        with netns.batch(**keep):
            done = netns.converge(name, None, check=module.check_mode)
        files = Files(module)
        persistence(files, dict(name=name, persist=None), False, module.run_command)
        entry.left["actions"] += [f"netns {name}: {a}" for a in done.actions + files.actions]
        header = f"netns {name}"
        entry.left["diff"] += [dict(before=done.before, after=done.after, before_header=header,
                                    after_header=header), *files.diff]


def _wire(module, entry, restart):
    """The namespace of a service to keep wired, without its persistence; what changed under the
    service."""
    if entry.wiring is not None:
        planned = entry.rehearsed
        if not module.check_mode and planned is not None and planned.rewired \
                and entry.service.main_pid() is not None:
            # Marked before the rewire: a run cut after it still restarts the service next time.
            paths.mark_pending(entry.name)
        if _converge_netns(module, entry, True):
            entry.service.changed_under.append("netns")
    if entry.name in restart:
        entry.service.changed_under.append("runtime")


def _declare(entry):
    # The start check is waited out for all the services together (_check_started).
    entry.result = svc.apply(entry.service, entry.files, check_start=False)


def _persist_and_declare(module, entry):
    """A wired entry's persistence, then its service, unless the persistence failed."""
    if entry.wiring is not None:
        _guarded(entry, _persist, module, entry, True)
    if entry.error is None:  # fail closed: not started unwired
        _guarded(entry, _declare, entry)


# The services under manager direct are declared in threads: each has its own files and daemon, and
# most of a start is waiting for its daemon to report (a Python starting). Where PID 1 is not systemd,
# a namespace's persistence is its options file alone, so each such service is persisted and started
# in a thread as soon as its own namespace is wired, while the module's thread wires the next (pyroute2
# and setns stay in that thread): the daemons' start-ups overlap the wiring. Otherwise (a persistence
# starts a boot unit, whose ``netns up`` waits for the lock the wiring holds; units, one after another)
# everything is persisted and declared after the wiring.
DECLARE_THREADS = 8


def _bridges(entries):
    """What the wirings of ``entries`` want of the host's bridges, as pyforkexec.netns.batch takes it:
    ``keep_bridges``, the bridges with the addresses they declare on each ({bridge: [address]}), and
    ``keep_mtus``, the MTUs they declare ({bridge: MTU}: a bridge one entry declares is not let follow
    its ports to another MTU by an entry's converge before that one's)."""
    wirings = [entry.wiring for entry in entries if entry.wiring is not None]
    out = {v["bridge"]: [] for w in wirings for v in w.get("veths") or [] if v.get("bridge")}
    mtus = {}
    for bridge in (b for w in wirings for b in w.get("bridges") or []):
        out.setdefault(bridge["name"], []).extend(bridge.get("addresses") or [])
        if bridge.get("mtu") is not None:
            mtus[bridge["name"]] = bridge["mtu"]
    return dict(keep_bridges=out, keep_mtus=mtus)


def _apply(module, entries, restart, stopped, left, rehearse=False):
    """``left``: _left_behind's, read before the specs change. ``rehearse``: _rehearse first, in the
    batch that wires the kept entries (nothing to remove)."""
    kept = [entry for entry in entries if entry.state != "absent"]
    keep = _bridges(kept)  # not removed as emptied by a removal or a move: a kept service wants it
    for entry in entries:
        if entry.state == "absent":
            _guarded(entry, _remove, module, entry, stopped, keep)
            if entry.error is None and entry.name in left:
                _guarded(entry, _remove_left_behind, module, entry, left[entry.name], keep)
            if entry.error is None:
                _guarded(entry, _record_wired, module, entry)
    early = not paths.systemd_booted()
    with concurrent.futures.ThreadPoolExecutor(max_workers=DECLARE_THREADS) as pool:
        declaring, later = [], []
        # The namespaces wired in one batch (one hold of the host lock, the host's links read once
        # until something changes them).
        with deps.pyforkexec.netns.batch(**keep):
            if rehearse:
                _rehearse(module, entries, left, reuse=True)
            for entry in kept:  # before the new wirings: an address moves, never on a bridge twice
                if entry.name in left:
                    _guarded(entry, _remove_left_behind, module, entry, left[entry.name], keep)
            for entry in kept:
                _guarded(entry, _wire, module, entry, restart)
                if entry.error is not None:
                    continue  # fail closed: not started unwired
                _guarded(entry, _record_wired, module, entry)
                if early and entry.service.manager == "direct":
                    declaring.append(pool.submit(_persist_and_declare, module, entry))
                else:
                    later.append(entry)
        for entry in later:
            if entry.wiring is not None:
                _guarded(entry, _persist, module, entry, True)
        for entry in later:
            if entry.error is None and entry.service.manager != "direct":
                _guarded(entry, _declare, entry)
        declaring += [pool.submit(_guarded, entry, _declare, entry) for entry in later
                      if entry.error is None and entry.service.manager == "direct"]
        for done in declaring:
            done.result()
    _check_started([entry for entry in kept if entry.error is None])
    _unwire_failed(module, kept)


def _unwire_failed(module, kept):
    """A service this run declared (it had no spec) that failed to start is not left declared (its
    spec goes: service.stop_failed), nor wired: the namespace this run made for it goes too, with its
    veth, its options file and the bridges it leaves empty that no other kept service wants."""
    failed = [entry for entry in kept if entry.error is not None and entry.wiring is not None
              and getattr(entry.service, "new", False) and entry.service.netns_made and not module.check_mode]
    if not failed:
        return
    netns = deps.pyforkexec.netns
    keep = _bridges([entry for entry in kept if entry.error is None])
    for entry in failed:
        errors = (*svc.ERRORS, netns.ModelError, netns.ApplyError, netns.OptionsError, OSError)
        with contextlib.suppress(*errors):
            with netns.batch(**keep):
                done = netns.converge(entry.wiring["name"], None)
            entry.netns = entry.netns or dict(actions=[], diff=[])
            entry.netns["actions"] = entry.netns["actions"] + done.actions
            _persist(module, entry, False)
            with contextlib.suppress(FileNotFoundError):  # its record: no namespace of the module's now
                os.unlink(paths.wired_netns_path(entry.name))


def _check_started(entries):
    """The start checks of the services this run started, in one window for all of them; a service
    that did not stay up is stopped and its entry fails with the cause."""
    failed = svc.check_started([entry.service for entry in entries])
    for entry in entries:
        error = failed.get(entry.name)
        if error is not None:
            entry.error, entry.details = str(error), error.details
            entry.result = svc.report(entry.service, True)


def _service_result(entry, diff):
    out = {key: entry.result[key] for key in RESULT_KEYS if key in entry.result}
    out["changed"] = bool(entry.result.get("actions")) or bool(entry.netns and entry.netns["actions"]) \
        or bool(entry.left and entry.left["actions"])
    if entry.netns is not None:
        out["netns"] = {key: value for key, value in entry.netns.items() if key != "diff"}
    if entry.left is not None:
        out["netns_left"] = entry.left["actions"]
    if entry.error is not None:
        out.update(failed=True, msg=entry.error, **{**svc.daemon_log(entry.service.params), **entry.details})
    if diff:
        out["diff"] = [*(entry.left or {}).get("diff", []), *(entry.netns or {}).get("diff", []),
                       *entry.result.get("diff", [])]
    return out


def run(module):
    """One run of the module: the result for exit_json, and the message to fail with (None when
    every entry applied). Raises PlanError before anything changed. One converge of the host's
    services at a time (service_paths.converge_lock), the service module's included."""
    try:
        with paths.converge_lock():
            return _run(module)
    except paths.LockWedged as e:  # (only the lock's wait raises it: before anything changed)
        raise PlanError(str(e)) from None


def _run(module):
    entries = plan(module)
    # A run that removes something rehearses before it stops a service; one that does not, in the batch
    # that wires (_apply), whose readings then stand. Check mode rehearses as the run it plans does: an
    # entry the model refuses fails the whole run the same way (PlanError, nothing planned), rather than
    # as one failed entry among planned ones.
    left = _left_behind(entries)  # (the host's specs read once, before anything changes)
    removing = any(entry.state == "absent" for entry in entries) or bool(left)
    if removing:
        _rehearse(module, entries, left, reuse=False)
    restart = set(module.params["restart"])
    try:
        stopped = _stop_removed(module, entries)
    except paths.ServiceError as e:
        return dict(changed=True, services={}), f"stopping the services to remove: {e}"
    if module.check_mode:  # one batch, as the real run's rehearsal: each entry sees the removals before it
        keep = _bridges([entry for entry in entries if entry.state != "absent"])
        with deps.pyforkexec.netns.batch(**keep):
            _apply(module, entries, restart, stopped, left, rehearse=not removing)
    else:
        _apply(module, entries, restart, stopped, left, rehearse=not removing)
    results = {entry.name: _service_result(entry, module._diff) for entry in entries}
    result = dict(changed=any(r["changed"] for r in results.values()), services=results)
    if module._diff:
        result["diff"] = [dict(d, before_header=f"{name}: {d.get('before_header', '')}",
                               after_header=f"{name}: {d.get('after_header', '')}")
                          for name, r in results.items() for d in r["diff"]]
    failed = [entry for entry in entries if entry.error is not None]
    if not failed:
        return result, None
    return result, "; ".join(f"services[{entry.name}]: {entry.error}" for entry in failed)
