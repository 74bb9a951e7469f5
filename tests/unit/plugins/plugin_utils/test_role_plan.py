"""The role's plan (plugin_utils/role_plan.py): each service's module arguments with the role's
defaults, the account mapped to root inside its user namespace, and what the plan cannot do."""

from __future__ import annotations

from ansible_collections.pyforkexec.isolation.plugins.module_utils import accounts as accounts_utils
from ansible_collections.pyforkexec.isolation.plugins.plugin_utils import role_plan

DEFAULTS = dict(
    state="started", create_user=True, namespaces=["user", "pid", "mount", "uts", "ipc"], manager="auto"
)
HOST = dict(systemd=False, controllers=["cpu", "pids"], cgroup2="/sys/fs/cgroup")
PASSWD = {"web": ["x", "1001", "1002", "", "/nonexistent", "/usr/sbin/nologin"]}
BRIDGE = dict(name="br-a", addresses=["10.1.0.1/24"])


def _plan(*services, passwd=None, host=None, networks=(BRIDGE,)):
    return role_plan.plan(
        role_plan.with_defaults(list(services), DEFAULTS),
        list(networks),
        PASSWD if passwd is None else passwd,
        HOST if host is None else host,
    )


def test_an_account_in_a_user_namespace_is_root_inside():
    (entry,) = _plan(dict(name="web", user="web", argv=["/bin/true"]))
    assert entry["service"] == dict(
        name="web",
        argv=["/bin/true"],
        manager="direct",
        credential=dict(uid=0, gid=0),
        namespaces=DEFAULTS["namespaces"],
        uid_map=[dict(container_id=0, host_id=1001, size=1)],
        gid_map=[dict(container_id=0, host_id=1002, size=1)],
        hostname="web",
        readonly_root=False,
        mounts=[dict(type="proc", target="/proc"), role_plan.PRIVATE_SHM],
        capabilities=dict(keep=[]),
        no_new_privs=True,
        restrict_namespaces=[],
        rlimits={},
        restart="on-failure",
    )
    assert entry["entry"] == dict(entry["service"], state="started")
    assert (entry["name"], entry["state"], entry["account"], entry["cgroup_missing"]) == (
        "web",
        "started",
        "web",
        [],
    )
    assert "netns" not in entry


def test_ipc_and_mount_namespaces_give_a_private_dev_shm():
    """An IPC namespace parts System V IPC and message queues only: the host's /dev/shm (1777, no read-only
    root covers it) stayed one directory the service shared with the host and every other service, where
    it could write, plant links and FIFOs, and take the host's memory. With IPC and mount namespaces and no
    new root, the service gets a tmpfs of its own there, after its own mounts, unless one of them is about
    /dev/shm (a dev on /dev, a bind of it, something over the whole view)."""
    tmp = dict(type="tmpfs", target="/tmp")
    shm = dict(type="tmpfs", target="/dev/shm", mode="1777", flags=["nosuid", "nodev"])
    (default,) = _plan(dict(name="web", user="web", argv=["/bin/true"]))
    assert default["service"]["mounts"] == [dict(type="proc", target="/proc"), shm]
    (given,) = _plan(dict(name="web", user="web", argv=["/bin/true"], readonly_root=True, mounts=[tmp]))
    assert given["service"]["mounts"] == [tmp, shm]
    assert given["entry"]["mounts"] == [tmp, shm]
    for own in (dict(type="dev", target="/dev"), dict(source="/srv/shm", target="/dev/shm"),
                dict(source="/srv/shm", target="//dev/./shm/"), dict(type="tmpfs", target="/dev/shm/app"),
                dict(source="/srv/root", target="/")):
        (entry,) = _plan(dict(name="web", user="web", argv=["/bin/true"], mounts=[own]))
        assert entry["service"]["mounts"] == [own], own
    for ns in (["user", "pid", "mount"], ["user", "ipc"]):  # no IPC namespace, or no mount namespace
        (entry,) = _plan(dict(name="web", user="web", argv=["/bin/true"], namespaces=ns, mounts=[]))
        assert entry["service"]["mounts"] == [], ns
    (rooted,) = _plan(dict(name="web", user="web", argv=["/bin/true"], rootfs="/srv/root", mounts=[]))
    assert rooted["service"]["mounts"] == []  # the new root's own /dev/shm: the host's is not in view
    (elsewhere,) = _plan(dict(name="web", user="web", argv=["/bin/true"],
                              mounts=[dict(type="tmpfs", target="/dev/shmem")]))
    assert elsewhere["service"]["mounts"][-1] == shm


def test_the_start_check_is_the_services_own_or_the_roles_default():
    web, api = role_plan.plan(
        role_plan.with_defaults([dict(name="web", user="web", argv=["/bin/true"], start_check=0.0),
                                 dict(name="api", user="web", argv=["/bin/true"])],
                                dict(DEFAULTS, start_check=0.5)),
        [BRIDGE], PASSWD, HOST)
    assert web["service"]["start_check"] == 0.0  # 0 (only the execve) is kept, not taken for "unset"
    assert api["service"]["start_check"] == 0.5
    assert web["entry"]["start_check"] == 0.0


def test_without_a_user_namespace_the_account_is_the_services_user():
    (entry,) = _plan(dict(name="web", user="web", argv=["/bin/true"], namespaces=["pid"]))
    assert entry["service"]["user"] == "web"
    assert not {"uid_map", "gid_map", "credential", "hostname"} & entry["service"].keys()
    assert entry["service"]["mounts"] == []  # no /proc of its own without a pid and a mount namespace


def test_a_network_is_a_netns_and_its_wiring():
    (entry,) = _plan(
        dict(
            name="web",
            user="web",
            argv=["/bin/true"],
            network=dict(bridge="br-a", addresses=["10.1.0.2/24"], gateway=["10.1.0.1"]),
        )
    )
    netns = dict(
        name="web",
        bridges=[BRIDGE],
        veths=[dict(name="eth0", peer="pfe-web", bridge="br-a", addresses=["10.1.0.2/24"])],
        gateway=["10.1.0.1"],
        routes=[],
        sysctls={},
    )
    assert entry["netns"] == netns
    assert entry["service"]["netns"] == "web"
    assert entry["entry"]["wiring"] == dict({k: v for k, v in netns.items() if k != "name"}, persist=True)


def test_systemd_services_are_enabled_and_need_jinja2():
    svc = dict(name="web", user="web", argv=["/bin/true"])
    (entry,) = _plan(svc, host=dict(HOST, systemd=True))
    assert (entry["service"]["manager"], entry["service"]["enabled"]) == ("systemd", True)
    assert role_plan.jinja2_needed(role_plan.with_defaults([svc], DEFAULTS), dict(HOST, systemd=True))
    assert not role_plan.jinja2_needed(role_plan.with_defaults([svc], DEFAULTS), HOST)


def test_limits_without_their_controllers_are_left_out_or_refused():
    (entry,) = _plan(
        dict(name="web", user="web", argv=["/bin/true"], cgroup=dict(memory_max="64M", pids_max=8))
    )
    assert entry["cgroup_missing"] == ["memory"]
    assert "cgroup" not in entry["service"]
    assert role_plan.plan_problems([entry], [], HOST, cgroup_required=True) == [
        "isolated_service_services[web]: its cgroup limits need the memory controllers of cgroup v2, which "
        "this host does not have (/sys/fs/cgroup has cpu, pids: a hybrid cgroup v1/v2 layout?); set "
        "isolated_service_cgroup_required to false to run it without them"
    ]
    assert role_plan.plan_problems([entry], [], HOST, cgroup_required=False) == []
    assert role_plan.cgroup_notes([entry], cgroup_required=False) == [
        "web: runs without its cgroup limits: cgroup v2 has no memory controller here "
        "(isolated_service_cgroup_required is false)"
    ]
    (kept,) = _plan(dict(name="web", user="web", argv=["/bin/true"], cgroup=dict(pids_max=8)))
    assert kept["service"]["cgroup"] == dict(pids_max=8)


def test_under_systemd_limits_need_its_unified_hierarchy_with_their_controllers():
    """systemd skips a limit whose controller its cgroup v2 lacks, and writes none in cgroup v2 on a
    hybrid layout (v2 at /sys/fs/cgroup/unified): the plan sees it as the service module would refuse it."""
    limits = dict(memory_max="64M", pids_max=8)
    svc = dict(name="web", user="web", argv=["/bin/true"], manager="systemd", cgroup=limits)
    (entry,) = _plan(svc, host=dict(HOST, systemd=True))
    assert entry["cgroup_missing"] == ["memory"] and "cgroup" not in entry["service"]
    hybrid = dict(HOST, systemd=True, cgroup2="/sys/fs/cgroup/unified", controllers=["memory", "pids"])
    (entry,) = _plan(svc, host=hybrid)
    assert entry["cgroup_missing"] == ["memory", "pids"] and "cgroup" not in entry["service"]
    assert role_plan.plan_problems([entry], [], hybrid, cgroup_required=True)
    (entry,) = _plan(dict(svc, manager="direct"), host=hybrid)  # the daemon uses that v2 all the same
    assert entry["cgroup_missing"] == [] and entry["service"]["cgroup"] == svc["cgroup"]
    (kept,) = _plan(dict(svc, cgroup=dict(pids_max=8)), host=dict(HOST, systemd=True))
    assert kept["service"]["cgroup"] == dict(pids_max=8)


def test_accounts_to_create_stand_for_nobody_and_their_own_maps_need_a_credential():
    services = role_plan.with_defaults(
        [
            dict(
                name="new",
                user="new",
                argv=["/bin/true"],
                uid_map=[dict(container_id=0, host_id=100000, size=65536)],
                gid_map=[dict(container_id=0, host_id=100000, size=65536)],
            )
        ],
        DEFAULTS,
    )
    passwd, new = role_plan.passwd_with_placeholders(PASSWD, services)
    assert new == ["new"] and passwd["new"][1:3] == ["65534", "65534"] and passwd["web"] == PASSWD["web"]
    planned = role_plan.plan(services, [], passwd, HOST)
    assert "credential" not in planned[0]["service"]
    assert role_plan.plan_problems(planned, new, HOST, True) == [
        "isolated_service_services[new]: the account new does not exist yet, so whether its uid_map and "
        "gid_map map its ids cannot be known before the role creates it: give credential (the ids it runs as "
        "inside)"
    ]
    assert "the uid and gid of new are not the host_id" in role_plan.plan_problems(planned, [], HOST, True)[0]


def test_services_to_remove_are_planned_but_not_checked():
    (entry,) = _plan(dict(name="old", user="old", state="absent", uid_map=[]), passwd={})
    assert entry["entry"]["state"] == "absent"
    assert role_plan.plan_problems([entry], ["old"], HOST, True) == []


def test_accounts_created_by_the_user_task_have_their_ids_in_the_plan_made_again():
    created = [
        dict(name="new", uid=990, group=985, home="/nonexistent", shell="/usr/sbin/nologin", changed=True),
        dict(skipped=True),
    ]
    passwd = dict(PASSWD, **role_plan.created_passwd(created))
    assert passwd["new"] == ["x", "990", "985", "", "/nonexistent", "/usr/sbin/nologin"]
    services = role_plan.with_defaults([dict(name="new", user="new", argv=["/bin/true"])], DEFAULTS)
    assert role_plan.passwd_with_placeholders(passwd, services)[1] == []
    (entry,) = role_plan.plan(services, [], passwd, HOST)
    assert entry["service"]["uid_map"] == [dict(container_id=0, host_id=990, size=1)]
    assert entry["service"]["gid_map"] == [dict(container_id=0, host_id=985, size=1)]


def test_the_accounts_of_services_removed_go_unless_a_kept_service_runs_as_them():
    services = role_plan.with_defaults([
        dict(name="a", user="shared", state="absent"),
        dict(name="b", user="shared", argv=["/bin/true"]),
        dict(name="c", user="c", state="absent"),
        dict(name="d", user="d", state="absent", create_user=False),
        dict(name="e", user="c", state="absent"),
        dict(name="f", state="absent"),
    ], DEFAULTS)
    assert role_plan.gone_accounts(services) == ["c"]
    assert role_plan.gone_accounts([svc for svc in services if svc["name"] != "b"]) == ["shared", "c"]


def test_an_account_of_uid_0_is_refused_for_a_service_in_a_user_namespace():
    """Root inside, mapped to uid 0 outside: the service would own the host's root files."""
    passwd = dict(PASSWD, root=["x", "0", "0", "root", "/root", "/bin/sh"])
    (entry,) = _plan(dict(name="web", user="root", argv=["/bin/true"]), passwd=passwd)
    assert "user" in entry["service"]["namespaces"]
    assert role_plan.plan_problems([entry], [], dict(HOST, passwd=passwd), True) == [
        "isolated_service_services[web]: user root has uid 0: from inside its user namespace the service "
        "would own the host's root files; give it an account of its own"
    ]
    (fine,) = _plan(dict(name="web", user="web", argv=["/bin/true"]), passwd=passwd)
    assert role_plan.plan_problems([fine], [], dict(HOST, passwd=passwd), True) == []


def test_an_account_the_role_made_goes_once_its_service_runs_as_another():
    """A service's user changed (old -> new): the account its spec on the host runs as goes when the
    accounts module made it, and neither an account made otherwise, nor one that a service outside the
    run, or one kept, runs as; none at all when a spec on the host could not be read."""
    mark = accounts_utils.MARK
    services = role_plan.with_defaults([
        dict(name="a", user="new", argv=["/bin/true"]),
        dict(name="b", user="other", argv=["/bin/true"]),
        dict(name="c", user="kept", argv=["/bin/true"]),
    ], DEFAULTS)
    host = dict(HOST, spec_unreadable=[], spec_accounts={
        "a": {"old": mark},  # the role made it for a, which runs as new now
        "b": {"by-hand": "Someone"},  # made by hand: left
        "c": {"kept": mark},  # still c's
        "outside": {"shared": mark},  # another play's service
    })
    host["spec_accounts"]["b"]["shared"] = mark
    assert role_plan.gone_accounts(services, host) == ["old"]
    assert role_plan.gone_accounts(services, dict(host, spec_unreadable=["x"])) == []
    moved = [dict(svc, user="old") if svc["name"] == "b" else svc for svc in services]
    assert role_plan.gone_accounts(moved, host) == []  # b runs as old now


def test_an_account_a_service_outside_the_run_runs_as_stays_when_the_one_in_the_run_goes():
    """Two plays' services ran as one account: the play that removed its service removed the account
    too, and the other's spec ran as a uid nobody had; an account the role made that a removed
    service's spec on the host runs as (its variables naming an older user) was left."""
    mark = accounts_utils.MARK
    services = role_plan.with_defaults([dict(name="gone", user="shared", state="absent"),
                                        dict(name="moved", user="older", state="absent")], DEFAULTS)
    host = dict(HOST, spec_unreadable=[], spec_accounts={
        "other-play": {"shared": mark},
        "moved": {"newer": mark},  # what its spec on the host runs as now
    })
    assert role_plan.gone_accounts(services, host) == ["older", "newer"]
    # a spec that cannot be read: only the first kind, and never one a spec that can be read runs as
    assert role_plan.gone_accounts(services, dict(host, spec_unreadable=["x"])) == ["older"]


def test_its_own_hosts_and_resolv_conf_are_the_modules_options():
    names = dict(etc_hosts={"db": "10.1.0.5"}, dns=["10.1.0.1"], dns_search=["internal"],
                 dns_options=["ndots:1"])
    (given,) = _plan(dict(name="web", user="web", argv=["/bin/true"], **names))
    (none,) = _plan(dict(name="web", user="web", argv=["/bin/true"], no_hosts=True))
    (unset,) = _plan(dict(name="web", user="web", argv=["/bin/true"]))
    assert {k: given["entry"][k] for k in names} == names
    assert none["entry"]["no_hosts"] is True
    assert not {*names, "no_hosts"} & unset["service"].keys()  # (the module's defaults)


def test_each_field_the_role_readme_defaults_to_the_name_gets_it():
    """roles/isolated_service/README.md's service table: a field whose default it gives as `name` (with
    uts) is planned with the service's name (it said so of `domainname` too, which the plan leaves unset:
    the host's, copied into the new UTS namespace)."""
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[4] / "roles" / "isolated_service" / "README.md").read_text()
    table = readme[readme.index("### A service"):]
    rows = re.findall(r"^\| ((?:`\w+`(?:, )?)+) \| `name` \(with uts\) \|", table, re.M)
    fields = [field for row in rows for field in re.findall(r"`(\w+)`", row)]
    assert fields  # the table still says so of some field
    (entry,) = _plan(dict(name="web", user="web", argv=["/bin/true"]))
    assert {field: entry["service"].get(field) for field in fields} == {field: "web" for field in fields}


def test_an_account_made_half_by_the_accounts_module_is_made_again():
    """An interrupted useradd left the account the accounts module made without its group (its gid no
    group's, or since another's): the role took it as there and planned the service with that gid,
    never running the accounts module again, which makes it whole (or refuses it). Now it is one to
    create, as is one the look cannot tell (an earlier look's result without primary_groups: as before)."""
    ours = ["x", "990", "985", accounts_utils.MARK, "/nonexistent", "/usr/sbin/nologin"]
    passwd = dict(PASSWD, new=ours, other=list(ours))
    services = role_plan.with_defaults(
        [dict(name=n, user=n, argv=["/bin/true"]) for n in ("web", "new", "other")], DEFAULTS
    )
    groups = dict(web="nogroup", new=None, other="someone")  # web: made by hand, in a group of another name
    planned, new = role_plan.passwd_with_placeholders(passwd, services, groups)
    assert new == ["new", "other"] and planned["new"] == role_plan.PLACEHOLDER
    whole = dict(groups, new="new", other="other")
    assert role_plan.passwd_with_placeholders(passwd, services, whole)[1] == []
    assert role_plan.passwd_with_placeholders(passwd, services)[1] == []


def test_a_service_makes_no_namespace_of_its_own_unless_it_lists_the_types():
    """As docker's and podman's default profiles treat a container without CAP_SYS_ADMIN: the role's
    services are made their namespaces and may make none (a nested user namespace, and in it every
    other type, is the kernel surface those profiles close); a service lists what it makes itself."""
    (default,) = _plan(dict(name="web", user="web", argv=["/bin/true"]))
    assert default["service"]["restrict_namespaces"] == []
    (listed,) = _plan(dict(name="web", user="web", argv=["/bin/true"], restrict_namespaces=["net", "user"]))
    assert listed["service"]["restrict_namespaces"] == ["net", "user"]
