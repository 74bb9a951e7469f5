# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""The role isolated_service's plan: each service as the arguments of the service and netns modules,
and as one entry of the services module, which applies them (roles/isolated_service/tasks/services.yml).
Defaults are applied, manager auto is resolved, and with a user namespace the account's ids are mapped
to root inside. Then what the plan shows the role cannot do: an account whose ids its maps do not map
(or, not created yet, cannot be known to map), cgroup limits whose controllers the host lacks."""

from __future__ import annotations

from typing import Any, Optional

from ansible_collections.pyforkexec.isolation.plugins.module_utils.accounts import made_here
from ansible_collections.pyforkexec.isolation.plugins.module_utils.service_paths import (
    SYSTEMD_UNIFIED_ROOT,
    resolve_manager,
)
from ansible_collections.pyforkexec.isolation.plugins.plugin_utils.role_problems import PEER_PREFIX

# The cgroup v2 controller of each limit of a service's cgroup.
CGROUP_CONTROLLERS = dict(
    memory_max="memory",
    memory_swap_max="memory",
    cpu_max="cpu",
    cpu_weight="cpu",
    pids_max="pids",
    io_max="io",
)
# The ids an account the role has not created yet stands for while it is planned: nobody's.
PLACEHOLDER = ["x", "65534", "65534", "", "", ""]


def with_defaults(services: list[dict], defaults: dict) -> list[dict]:
    """The services with the role's defaults of their fields (state, create_user, namespaces, manager,
    start_check: vars/main.yml's _isolated_service_defaults)."""
    return [dict(defaults, **svc) for svc in services]


def passwd_with_placeholders(
    passwd: dict[str, list], kept: list[dict], primary_groups: Optional[dict[str, Optional[str]]] = None
) -> tuple[dict[str, list], list[str]]:
    """The host's passwd entries (as ansible.builtin.getent has them) and the accounts the role will
    create, standing for nobody's ids until it has; and the names of those accounts. Among them, an
    account the accounts module made whose gid is not the group of its name (``primary_groups``, the
    look's: an interrupted useradd left it without its group), which that module makes whole or
    refuses."""
    groups = primary_groups or {}

    def to_make(name: str) -> bool:
        return name not in passwd or (made_here(passwd[name][3]) and groups.get(name, name) != name)

    new = list(
        dict.fromkeys(
            svc["user"] for svc in kept if "user" in svc and svc["create_user"] and to_make(svc["user"])
        )
    )
    return dict(passwd, **{name: list(PLACEHOLDER) for name in new}), new


def created_passwd(created: list[dict]) -> dict[str, list]:
    """The passwd entries (as ansible.builtin.getent has them) of the accounts that the role's
    pyforkexec.isolation.accounts task created: its results, each with the account's name, uid and group."""
    return {
        r["name"]: ["x", str(r["uid"]), str(r["group"]), "", r.get("home", ""), r.get("shell", "")]
        for r in created
        if r.get("name") is not None and r.get("uid") is not None and r.get("group") is not None
    }


def _inside(id_map: list[dict], host_id: int) -> Optional[int]:
    """The id inside of ``host_id`` by the lines of ``id_map`` that name it as host_id."""
    return next((line.get("container_id") for line in id_map if line.get("host_id") == host_id), None)


def _netns(item: dict, networks: list[dict]) -> Optional[dict]:
    """The netns module's arguments for the service's network, with its bridge."""
    network = item.get("network")
    if network is None:
        return None
    veth = dict(
        name=network.get("interface", "eth0"),
        peer=network.get("peer", PEER_PREFIX + item["name"]),
        bridge=network.get("bridge"),
        addresses=network.get("addresses", []),
        mtu=network.get("mtu"),
        mac=network.get("mac"),
    )
    return dict(
        name=network.get("netns", item["name"]),
        bridges=[net for net in networks if net["name"] == network.get("bridge")],
        veths=[{k: v for k, v in veth.items() if v is not None}],
        gateway=network.get("gateway", []),
        routes=network.get("routes", []),
        sysctls=network.get("sysctls", {}),
    )


# A private POSIX shared memory (shm_open, sem_open, multiprocessing's locks) for a service with IPC and
# mount namespaces of its own, as a container engine's: an IPC namespace parts System V IPC and message
# queues only, and the host's /dev/shm (mode 1777, on no read-only root) would stay one directory shared
# with the host and every other service, writable by each (files, links and FIFOs planted there, host
# memory taken).
PRIVATE_SHM = dict(type="tmpfs", target="/dev/shm", mode="1777", flags=["nosuid", "nodev"])


def _own_view_of(target: str, path: str) -> bool:
    """Whether a mount on ``target`` covers ``path`` or something in it (a /dev, a bind on /dev/shm)."""
    target = "/" + "/".join(part for part in target.split("/") if part not in ("", "."))
    return target == path or path.startswith(target.rstrip("/") + "/") or target.startswith(path + "/")


def _mounts(item: dict, ns: list[str]) -> list[dict]:
    """A service's mounts: its own, or a proc on /proc with pid and mount namespaces; then, with IPC and
    mount namespaces and no new root, a private /dev/shm (PRIVATE_SHM) unless one of them is about it."""
    given = item.get("mounts")
    mounts = list(given) if given is not None else (
        [dict(type="proc", target="/proc")] if "pid" in ns and "mount" in ns else [])
    if "ipc" in ns and "mount" in ns and not item.get("rootfs") \
            and not any(_own_view_of(str(m.get("target", "")), "/dev/shm") for m in mounts):
        mounts.append(dict(PRIVATE_SHM))
    return mounts


def entry(item: dict, networks: list[dict], passwd: dict[str, list], host: dict) -> dict:
    """One service's plan entry: name, state, account, cgroup_missing, cgroup, service (the service
    module's arguments), netns (the netns module's, with a network) and entry (the services module's)."""
    ns = item["namespaces"]
    userns = "user" in ns
    pw = passwd.get(item["user"]) if "user" in item else None
    maps_default = userns and pw is not None
    uid_map = item.get(
        "uid_map", [dict(container_id=0, host_id=int(pw[1]), size=1)] if maps_default else None
    )
    gid_map = item.get(
        "gid_map", [dict(container_id=0, host_id=int(pw[2]), size=1)] if maps_default else None
    )
    # In a user namespace the account runs as the ids its host ids map to (0 with the default maps).
    inside = None
    if maps_default:
        uid, gid = _inside(uid_map or [], int(pw[1])), _inside(gid_map or [], int(pw[2]))
        inside = dict(uid=uid, gid=gid) if uid is not None and gid is not None else None
    manager = resolve_manager(item["manager"], booted=bool(host["systemd"]))
    # Either manager puts a service's limits in cgroup v2, which must have their controllers: the daemon
    # (manager direct) wherever cgroup2 is mounted, systemd only in its unified mode (the service module
    # refuses a limit systemd would skip: service_systemd.check_host_limits).
    cgroup = item.get("cgroup")
    offered = set(host["controllers"])
    if manager == "systemd" and host["cgroup2"] != SYSTEMD_UNIFIED_ROOT:
        offered = set()
    wanted = {CGROUP_CONTROLLERS.get(k) for k, v in (cgroup or {}).items() if v is not None} - {None}
    cgroup_missing = sorted(wanted - offered)
    network = item.get("network")
    module = dict(
        name=item["name"],
        argv=item.get("argv"),
        manager=manager,
        user=item["user"] if "user" in item and not userns and "credential" not in item else None,
        credential=item.get("credential", inside),
        namespaces=ns,
        uid_map=uid_map,
        gid_map=gid_map,
        hostname=item.get("hostname", item["name"] if "uts" in ns else None),
        domainname=item.get("domainname"),
        etc_hosts=item.get("etc_hosts"),
        no_hosts=item.get("no_hosts"),
        dns=item.get("dns"),
        dns_search=item.get("dns_search"),
        dns_options=item.get("dns_options"),
        netns=network.get("netns", item["name"]) if network is not None else None,
        rootfs=item.get("rootfs"),
        readonly_root=item.get("readonly_root", False),
        mounts=_mounts(item, ns),
        mount_propagation=item.get("mount_propagation"),
        cgroup=cgroup if not cgroup_missing else None,
        capabilities=item.get("capabilities", dict(keep=[])),
        no_new_privs=item.get("no_new_privs", True),
        seccomp=item.get("seccomp"),
        restrict_suid_sgid=item.get("restrict_suid_sgid"),
        restrict_namespaces=item.get("restrict_namespaces", []),
        landlock=item.get("landlock"),
        rlimits=item.get("rlimits", {}),
        env=item.get("env"),
        chdir=item.get("chdir"),
        restart=item.get("restart", "on-failure"),
        stop_timeout=item.get("stop_timeout"),
        stop_signal=item.get("stop_signal"),
        restart_sec=item.get("restart_sec"),
        start_check=item.get("start_check"),
        description=item.get("description"),
        enabled=item.get("enabled", True) if manager == "systemd" else None,
    )
    args = {k: v for k, v in module.items() if v is not None}
    netns = _netns(item, networks)
    planned: dict[str, Any] = dict(
        name=item["name"],
        state=item["state"],
        account=item.get("user"),
        cgroup_missing=cgroup_missing,
        cgroup=cgroup,
        service=args,
    )
    services_entry = dict(args, state=item["state"])
    if netns is not None:
        planned["netns"] = netns
        # its netns is recreated at boot (pyforkexec-netns@NAME.service, before the service's unit, on
        # systemd hosts)
        services_entry["wiring"] = dict({k: v for k, v in netns.items() if k != "name"}, persist=True)
    planned["entry"] = services_entry
    return planned


def plan(services: list[dict], networks: list[dict], passwd: dict[str, list], host: dict) -> list[dict]:
    """Every service's plan entry, in order (``services`` with the role's defaults)."""
    return [entry(item, networks, passwd, host) for item in services]


def plan_problems(
    planned: list[dict], new_accounts: list[str], host: dict, cgroup_required: bool
) -> list[str]:
    """What the plan of the services to be kept shows the role cannot do (state present)."""
    problems = []
    kept = [p for p in planned if p["state"] != "absent"]
    for p in kept:
        if "uid_map" in p["service"] and "credential" not in p["service"]:
            why = (
                (
                    f"the account {p['account']} does not exist yet, so whether its uid_map and gid_map map "
                    "its ids cannot be known before the role creates it"
                )
                if p["account"] in new_accounts
                else (
                    f"the uid and gid of {p['account']} are not the host_id of a line of its uid_map and "
                    "gid_map"
                )
            )
            problems.append(
                f"isolated_service_services[{p['name']}]: {why}: give credential (the ids it runs as inside)"
            )
    for p in kept:
        entry = host.get("passwd", {}).get(p["account"]) if p.get("account") else None
        if entry is not None and entry[1] == "0" and "user" in p["service"].get("namespaces", []):
            # Mapped to root inside, uid 0 outside: the service would own (and write) root's files.
            problems.append(
                f"isolated_service_services[{p['name']}]: user {p['account']} has uid 0: from inside its "
                "user namespace the service would own the host's root files; give it an account of its own"
            )
    if cgroup_required:
        problems += [
            f"isolated_service_services[{p['name']}]: its cgroup limits need the "
            f"{', '.join(p['cgroup_missing'])} controllers of cgroup v2, which this host does not have "
            f"({host['cgroup2'] or 'no cgroup v2'} has {', '.join(host['controllers']) or 'none'}: a hybrid "
            "cgroup v1/v2 layout?); set isolated_service_cgroup_required to false to run it without them"
            for p in kept
            if p["cgroup_missing"]
        ]
    return problems


def cgroup_notes(planned: list[dict], cgroup_required: bool) -> list[str]:
    """With isolated_service_cgroup_required false: which services run without their cgroup limits."""
    if cgroup_required:
        return []
    return [
        f"{p['name']}: runs without its cgroup limits: cgroup v2 has no {', '.join(p['cgroup_missing'])} "
        "controller here (isolated_service_cgroup_required is false)"
        for p in planned
        if p["state"] != "absent" and p["cgroup_missing"]
    ]


def jinja2_needed(kept: list[dict], host: dict) -> bool:
    """Whether a service to be kept runs under systemd, whose units are rendered with jinja2 on the host."""
    return any(resolve_manager(svc["manager"], booted=bool(host["systemd"])) == "systemd" for svc in kept)


def gone_accounts(every: list[dict], host: Optional[dict] = None) -> list[str]:
    """The accounts to remove after the services converge: those the role created (create_user) for the
    services in state absent, and those the role's accounts module made (made_here) that a service of
    the run ran as before and runs as no more (its ``user`` changed, or it is removed: ``host
    ["spec_accounts"]``, the accounts its spec on the host runs as); but any that a service to be kept
    runs as, or that the spec of a service outside the run uses (an account two plays' services share
    stays with the one that stays). When a spec on the host could not be read, only the first kind,
    as no spec can be told to use them."""
    kept = {svc["user"] for svc in every if svc["state"] != "absent" and "user" in svc}
    gone = [svc["user"] for svc in every if svc["state"] == "absent" and "user" in svc and svc["create_user"]]
    specs = (host or {}).get("spec_accounts") or {}
    if not (host or {}).get("spec_unreadable"):
        gone += [
            account
            for svc in every
            for account, comment in sorted(specs.get(svc["name"], {}).items())
            if made_here(comment) and (account != svc.get("user") or svc["state"] == "absent")
        ]
    names = {svc["name"] for svc in every}  # (the specs that could be read protect theirs in any case)
    elsewhere = {account for name, accounts in specs.items() if name not in names for account in accounts}
    return [user for user in dict.fromkeys(gone) if user not in kept and user not in elsewhere]
