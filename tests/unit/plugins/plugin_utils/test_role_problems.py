"""The role's cross-field rules (plugin_utils/role_problems.py): each problem names the service, network
or variable and its field; valid variables have none."""

from __future__ import annotations

import pytest
from ansible_collections.pyforkexec.isolation.plugins.plugin_utils.role_problems import (
    host_link_names,
    host_problems,
    interpreter_problems,
    unknown_variables,
    variable_problems,
)

NAMESPACES = ["user", "pid", "mount", "uts", "ipc"]
BRIDGE = dict(name="br-a", addresses=["10.1.0.1/24"])


def _service(**fields):
    return dict(dict(name="web", user="web", argv=["/bin/true"], network=dict(bridge="br-a")), **fields)


def _problems(services, networks=(BRIDGE,), venv="/opt/v", base_python="/usr/bin/python3"):
    return variable_problems(venv, base_python, list(networks), services, NAMESPACES)


def test_valid_variables_have_no_problem():
    assert _problems([_service(), _service(name="api", user="api")]) == []


@pytest.mark.parametrize(
    ("services", "networks", "expected"),
    [
        (
            [_service(network=dict(bridge="nope"))],
            [BRIDGE],
            "isolated_service_services[web]: network.bridge nope is not in isolated_service_networks (br-a)",
        ),
        (
            [_service(network=dict(bridge="br-a", peer="ve-web"))],
            [BRIDGE],
            "isolated_service_services[web]: the host end of its veth, ve-web, starts like the links "
            "systemd-networkd takes over (ve-*, vz-*, vt-*): set another network.peer",
        ),
        (
            [_service(network=dict(bridge="br-a", peer="pfe-much-too-long"))],
            [BRIDGE],
            "isolated_service_services[web]: the host end of its veth, pfe-much-too-long, is longer than an "
            "interface name (15 characters): set network.peer",
        ),
        (
            [_service(network=dict(bridge="br-a", mtu=70000))],
            [BRIDGE],
            "isolated_service_services[web]: network.mtu: must be between 68 and 65535, got 70000",
        ),
        (
            [_service()],
            [dict(BRIDGE, mtu=10)],
            "isolated_service_networks[br-a].mtu: must be between 68 and 65535, got 10",
        ),
        ([_service()], [BRIDGE, BRIDGE], "isolated_service_networks: br-a is declared twice"),
        (
            [],
            [dict(name="a-very-long-bridge")],
            "isolated_service_networks: a-very-long-bridge is longer than an interface name (15 characters)",
        ),
        (
            [_service(), _service(user="x", network=dict(bridge="br-a", peer="other"))],
            [BRIDGE],
            "isolated_service_services[web]: the name is used by another service",
        ),
        (
            [_service(), _service(name="api", network=dict(bridge="br-a", netns="web"))],
            [BRIDGE],
            "isolated_service_services[api]: network namespace web belongs to another service",
        ),
        (
            [_service(), _service(name="api", network=dict(bridge="br-a", peer="pfe-web"))],
            [BRIDGE],
            "isolated_service_services[api]: veth pfe-web belongs to another service",
        ),
        (
            [_service(namespaces=["net"])],
            [BRIDGE],
            "isolated_service_services[web]: namespaces has net and the service has a network, whose "
            "namespace it joins: remove one",
        ),
        (
            [{k: v for k, v in _service().items() if k != "user"}],
            [BRIDGE],
            "isolated_service_services[web]: a user namespace needs user (mapped to root inside), or "
            "uid_map, gid_map and credential",
        ),
        (
            [_service(namespaces=["pid"], credential=dict(uid=1, gid=1))],
            [BRIDGE],
            "isolated_service_services[web]: user and credential both set the ids it runs as: keep one",
        ),
    ],
)
def test_each_rule_names_the_entry_and_its_field(services, networks, expected):
    assert expected in _problems(services, networks)


def test_relative_paths_name_the_variable():
    assert _problems([], venv="venv", base_python="python3") == [
        "isolated_service_venv: venv is not an absolute path",
        "isolated_service_base_python: python3 is not an absolute path",
    ]


def test_a_user_namespace_with_maps_and_credential_needs_no_user():
    svc = {
        k: v
        for k, v in _service(uid_map=[], gid_map=[], credential=dict(uid=0, gid=0)).items()
        if k != "user"
    }
    assert _problems([svc]) == []


HOST = dict(
    systemd=False, rootfs={"/srv/root": True, "/srv/file": False}, passwd={"web": ["x", "1", "1", "", "", ""]}
)


def test_what_the_host_lacks_names_the_service_and_field():
    kept = [
        dict(name="a", manager="systemd", create_user=True),
        dict(name="b", manager="auto", create_user=True, rootfs="/srv/file"),
        dict(name="c", manager="direct", create_user=True, rootfs="/srv/root"),
        dict(name="d", manager="direct", create_user=False, user="nobody-here"),
        dict(name="e", manager="direct", create_user=False, user="web"),
    ]
    assert host_problems(kept, HOST) == [
        "isolated_service_services[a]: manager systemd, but PID 1 of this host is not systemd (a container "
        "or a CI runner?): use manager direct, or auto",
        "isolated_service_services[b]: rootfs: /srv/file is not a directory",
        "isolated_service_services[d]: user nobody-here does not exist on this host, and create_user is "
        "false",
    ]
    assert host_problems(kept[:1], dict(HOST, systemd=True)) == []


def test_a_host_link_of_someone_else_in_the_way_of_a_veth_or_bridge_is_refused_before_anything_changes():
    """A peer named as a link of the host's own (eth0, lo, a bridge it has), or a bridge named as a link
    of another kind: the netns module refused it, but only after the role had made the account and the
    virtualenv. What pyforkexec made (its alias) is taken."""
    links = {"eth0": dict(alias="", bridge=False), "br-own": dict(alias="", bridge=True),
             "pfe-c": dict(alias="pyforkexec.isolation netns=c link=eth0", bridge=False),
             "dummy0": dict(alias="", bridge=False),
             "br-a": dict(alias="pyforkexec.isolation bridge", bridge=True)}
    kept = [
        dict(name="a", manager="direct", create_user=True, network=dict(bridge="br-a", peer="eth0")),
        dict(name="b", manager="direct", create_user=True, network=dict(bridge="br-a", peer="br-own")),
        dict(name="c", manager="direct", create_user=True, network=dict(bridge="br-a")),
        dict(name="d", manager="direct", create_user=True, network=dict(bridge="dummy0")),
        dict(name="e", manager="direct", create_user=True, network=dict(bridge="br-own", peer="pfe-new")),
    ]
    assert host_problems(kept, dict(HOST, links=links)) == [
        "isolated_service_services[a]: network.peer: host link eth0 exists and is not the host end of a veth "
        "pyforkexec made: choose another network.peer",
        "isolated_service_services[b]: network.peer: host link br-own exists and is not the host end of a "
        "veth pyforkexec made: choose another network.peer",
        "isolated_service_services[d]: network.bridge: host link dummy0 exists and is not a bridge",
    ]
    assert host_link_names(kept) == ["eth0", "br-own", "pfe-c", "pfe-d", "pfe-new", "br-a", "dummy0"]


class _TaggedInt(int):
    """As ansible-core hands a number over (its _AnsibleTaggedInt): named by the type YAML wrote."""


@pytest.mark.parametrize(("fields", "expected"), [
    (dict(hostname=_TaggedInt(5)), "hostname: expected a string, got int 5"),
    (dict(argv=5), "argv: give the command as a non-empty list of words, not int 5"),
    (dict(argv=True), "argv: give the command as a non-empty list of words, not bool True"),
    (dict(argv=["/bin/echo", None]), "argv[1]: expected a word (a string or a number), got null None"),
    (dict(argv=["/bin/echo", True]), "argv[1]: expected a word (a string or a number), got bool True"),
    (dict(argv=[["/bin/echo"]]), "argv[0]: expected a word (a string or a number), got list"),
    (dict(argv=[{"a": 1}]), "argv[0]: expected a word (a string or a number), got dict"),
    (dict(hostname=True), "hostname: expected a string, got bool True"),
    (dict(domainname=["a"]), "domainname: expected a string, got list ['a']"),
    (dict(chdir={"a": 1}), "chdir: expected a string, got dict"),
    (dict(description=5), "description: expected a string, got int 5"),
])
def test_what_ansible_core_would_make_text_of_is_refused_where_any_text_passes(fields, expected):
    """ansible-core makes text of any value given for a string, and of any item of a list of strings:
    ``argv: [/bin/prog, ~]`` ran ``/bin/prog ''``, ``[/bin/prog, on]`` ``/bin/prog True``, ``argv: 5``
    the program 5, ``hostname: yes`` set the hostname True, ``domainname: [a]`` the domain ['a']: none
    of them refused before the role had made the account and the virtualenv (or at all)."""
    problems = _problems([_service(**fields)])
    assert len(problems) == 1 and expected in problems[0], problems
    assert problems[0].startswith(("isolated_service_services[web]: ", "isolated_service_services[0].")), \
        problems
    assert _problems([_service(argv=["/bin/sleep", 100], hostname="web1")]) == []


def test_mounts_without_proc_in_a_pid_namespace_and_an_empty_argv_are_refused():
    """Given mounts replace the role's default, which has the private /proc: without one, a service in
    its own pid namespace would read every process of the host in the host's /proc."""
    assert _problems([_service(mounts=[dict(type="tmpfs", target="/tmp")])]) == [
        "isolated_service_services[web]: mounts has no proc mount, and the service has its own pid "
        "namespace: it would see the host's processes in /proc; add {type: proc, target: /proc}"
    ]
    proc = [dict(type="proc", target="/proc"), dict(type="tmpfs", target="/tmp")]
    assert _problems([_service(mounts=proc)]) == []
    assert _problems([_service(argv=[])]) == [
        "isolated_service_services[web]: argv: give the command as a non-empty list of words, not an "
        "empty list"
    ]


def test_bridges_whose_subnets_overlap_are_refused_before_anything_changes():
    networks = [BRIDGE, dict(name="br-b", addresses=["10.1.0.129/25"]),
                dict(name="br-c", addresses=["10.2.0.1/24"])]
    assert _problems([], networks=networks) == [
        "isolated_service_networks[br-b]: 10.1.0.129/25 overlaps 10.1.0.0/24 of bridge br-a: the host would "
        "route those addresses to both"
    ]


@pytest.mark.parametrize(("field", "value", "where", "number"), [
    ("user", 1000, "isolated_service_services[0].user", 1000),
    ("name", 12345, "isolated_service_services[0].name", 12345),
    ("network", dict(bridge=5), "isolated_service_services[0].network.bridge", 5),
    ("network", dict(bridge="br-a", peer=42), "isolated_service_services[0].network.peer", 42),
])
def test_a_number_where_a_string_is_read_is_named_not_a_crash(field, value, where, number):
    """YAML makes ``user: 1000`` an integer: the plan then failed with "getpwnam() argument must be
    str" or "'_AnsibleTaggedInt' object is not subscriptable", naming no variable."""
    expected = f"{where}: expected a string, got int {number} (quote it in YAML)"
    assert _problems([_service(**{field: value})]) == [expected]


def test_a_removed_service_needs_no_ids_nor_a_command():
    """A removal (the entry's state, or the role's) was refused for lacking user, though it needs no ids."""
    removed = dict(name="web", state="absent")
    assert variable_problems("/opt/v", "/usr/bin/python3", [BRIDGE], [removed], NAMESPACES) == []
    assert variable_problems("/opt/v", "/usr/bin/python3", [BRIDGE], [dict(name="web")], NAMESPACES,
                             "absent") == []
    assert variable_problems("/opt/v", "/usr/bin/python3", [BRIDGE], [dict(name="web")], NAMESPACES) != []


def test_a_misspelled_variable_is_named_with_the_one_meant():
    known = ["isolated_service_services", "isolated_service_networks", "isolated_service_state"]
    defined = ["isolated_service_service", "isolated_service_state", "isolated_service_status"]
    assert unknown_variables(defined, known) == [
        "isolated_service_service: not a variable of the role isolated_service (did you mean "
        "isolated_service_services?)"]


@pytest.mark.parametrize(("networks", "services", "expected"), [
    ([dict(BRIDGE, mtu="1500")], None,
     "isolated_service_networks[0].mtu: expected an integer, got str '1500'"),
    ([dict(BRIDGE, addresses="10.1.0.1/24")], None,
     "isolated_service_networks[0].addresses: expected a list, got str '10.1.0.1/24'"),
    ([BRIDGE], [_service(network=dict(bridge="br-a", mtu="1400"))],
     "isolated_service_services[0].network.mtu: expected an integer, got str '1400'"),
])
def test_a_number_or_list_given_as_a_string_is_named(networks, services, expected):
    """``mtu: "1500"`` (quoted, or templated) crashed the plan comparing a string with an int; an
    addresses string was read character by character, and the overlap check skipped."""
    problems = variable_problems("/opt/v", "/usr/bin/python3", networks, services or [_service()], NAMESPACES)
    assert problems and problems[0].startswith(expected), problems


SET_HERE = "/the/task/s/own"


def test_the_interpreter_the_task_sets_passes():
    assert interpreter_problems(SET_HERE, SET_HERE, "/opt/v") == []


@pytest.mark.parametrize("interpreter", ["/usr/bin/python3", "python3", "/opt/v/bin/python",
                                         "/opt/v/bin/python3"])
@pytest.mark.parametrize("venv", ["/opt/v", None])
def test_an_interpreter_that_overrides_the_task_s_is_refused_naming_it_and_what_to_set(interpreter, venv):
    """A value of higher precedence than the task's vars (extra vars) would run the services module, and
    the services, with another Python than the virtualenv's: refused, even the virtualenv's own."""
    (problem,) = interpreter_problems(interpreter, SET_HERE, venv)
    assert problem.startswith(f"ansible_python_interpreter: is {interpreter}, set where it overrides a")
    assert ("(isolated_service_venv, /opt/v)" if venv else "(isolated_service_venv)") in problem
    assert problem.endswith("(a host or group variable) or with ANSIBLE_PYTHON_INTERPRETER instead")
