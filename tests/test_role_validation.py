"""The role isolated_service checks every variable before it changes anything on a host (issue 11).

One ansible-playbook run against this machine (``-c local``) over a corpus of bad variables: networks,
addresses, interface names, MTUs, routes, sysctls, service names, paths, ids, mounts, limits,
capabilities, seccomp, argument specs, accounts. Each case is one service (with its own bridge, account
and names) with one bad value; the cases caught by the same check share an inventory host, whose
failure must name every one of its cases. Nothing may be left: no account, no virtualenv, no spec, pid
file, log, network namespace, veth or bridge. A host with valid variables runs the validation phase
alone (``tasks_from: validate``) and passes it, changing nothing either.

The role gets a pyforkexec wheel built from this checkout (``isolated_service_wheel_dir``), so that
nothing is fetched. PFE_ROLE_VALIDATION_ONLY=ID,ID runs part of the corpus.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers.marks import needs_root

ROOT = Path(__file__).resolve().parent.parent
PID = os.getpid() % 10000
PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
pytestmark = [needs_root,
              pytest.mark.skipif(not os.path.exists(PLAYBOOK), reason="no ansible-core in this venv")]
Vars = dict[str, Any]
Mutation = Callable[[Vars, Vars, Vars], None]  # (host variables, the case's service, its bridge)


def _set(path: str, value: Any) -> Mutation:
    """Sets ``path``: ``service.X``, ``network.X`` (the service's), ``bridge.X``, ``vars.X`` (the host's)."""
    scope, key = path.split(".")

    def mutate(host: Vars, service: Vars, bridge: Vars) -> None:
        target = {"service": service, "network": service["network"], "bridge": bridge, "vars": host}[scope]
        target[key] = value

    return mutate


def _update(**fields: Any) -> Mutation:
    return lambda host, service, bridge: service.update(fields)


def _without_user(host: Vars, service: Vars, bridge: Vars) -> None:
    del service["user"]


def _address_of_the_bridge(host: Vars, service: Vars, bridge: Vars) -> None:
    """The service's address is the bridge's own too: two owners of one address on the bridge (refused
    by the services module, once the role had made the runtime and the account)."""
    bridge["addresses"] = [service["network"]["addresses"][0], *bridge["addresses"]]


PROC = dict(type="proc", target="/proc")  # a service in its own pid namespace needs its own /proc

# Where the role catches a case: the argument specs, the cross-field template, the accounts, the plan,
# the modules' own checks. Cases of one stage share a host (a stage reports all its problems at once).
SPEC, TEMPLATE, MANAGER, ROOTFS, ACCOUNTS, PLAN, MODULES = (
    "spec", "template", "manager", "rootfs", "accounts", "plan", "modules")
SYSTEMD = os.path.isdir("/run/systemd/system")
# id -> (stage, mutation, what the failure says; {svc}, {bridge}, {user}: the case's names)
CORPUS: dict[str, tuple[str, Mutation, str]] = {
    "bridge-cidr": (MODULES, _set("bridge.addresses", ["10.213.7.1/33"]),
                    "isolated_service_networks[{bridge}].addresses: '10.213.7.1/33'"),
    "address": (MODULES, _set("network.addresses", ["10.213.7.300/24"]), "[{svc}]: network.addresses: "),
    "gateway": (MODULES, _set("network.gateway", ["10.213.7.x"]), "[{svc}]: network.gateway[0]: "),
    "interface-name": (MODULES, _set("network.interface", "eth/0"),
                       "[{svc}]: network.interface: 'eth/0' is not a valid"),
    "mac": (MODULES, _set("network.mac", "zz:zz"), "[{svc}]: network.mac: 'zz:zz' is not a MAC address"),
    "route": (MODULES, _set("network.routes", [dict(dst="10.999.0.0/16", dev="eth0")]),
              "[{svc}]: network.routes[0].dst: "),
    "sysctl": (MODULES, _set("network.sysctls", {"kernel.hostname": "x"}),
               "[{svc}]: network.sysctls: kernel.hostname"),
    "netns-name": (MODULES, _set("network.netns", "bad/name"),
                   "[{svc}]: network.netns: 'bad/name' is not a valid"),
    "service-name": (MODULES, _set("service.name", "bad name!"),
                     "[bad name!]: name: 'bad name!' is not a valid service"),
    "hostname": (MODULES, _set("service.hostname", "h" * 70), "[{svc}]: hostname: at most 64 bytes"),
    "capability": (MODULES, _set("service.capabilities", dict(keep=["bogus"])),
                   "[{svc}]: capabilities.keep[0]: unknown"),
    "uid-map": (MODULES, _update(uid_map=[dict(container_id=0, host_id=-1)], credential=dict(uid=0, gid=0)),
                "[{svc}]: uid_map[0].host_id: must"),
    "mount-target": (MODULES, _set("service.mounts", [PROC, dict(type="tmpfs", target="tmp")]),
                     "[{svc}]: mounts[1].target: must be an absolute path"),
    "memory": (MODULES, _set("service.cgroup", dict(memory_max="lots")),
               "[{svc}]: cgroup.memory_max: expected bytes"),
    "cpu-weight": (MODULES, _set("service.cgroup", dict(cpu_weight=0)),
                   "[{svc}]: cgroup.cpu_weight: must be between"),
    "rlimit": (MODULES, _set("service.rlimits", dict(bogus=1)), "[{svc}]: rlimits.bogus: unknown resource"),
    "seccomp": (MODULES, _set("service.seccomp", dict(deny=["no_such_call"])),
                "[{svc}]: seccomp.deny[0]: unknown system"),
    "env": (MODULES, _set("service.env", {"A=B": "1"}), "[{svc}]: env.A=B: not a variable name"),
    "landlock-right": (MODULES,
                       _set("service.landlock", dict(paths=[dict(path="/usr", access=["read", "rwx"])])),
                       "[{svc}]: landlock.paths[0].access[1]: unknown access right 'rwx'"),
    "landlock-port": (MODULES, _set("service.landlock", dict(ports=[dict(port=8080, access=["listen"])])),
                      "[{svc}]: landlock.ports[0].access[0]: unknown access right 'listen'"),
    "mount-idmap": (MODULES,
                    _set("service.mounts", [PROC, dict(source="/srv", target="/srv", idmap="maybe")]),
                    "[{svc}]: mounts[1].idmap: expected true, false or the absolute path"),
    "stop-timeout": (MODULES, _set("service.stop_timeout", -5),
                     "[{svc}]: stop_timeout: must be 0 to 1000000"),
    "stop-signal": (MODULES, _set("service.stop_signal", "KILL"),
                    "[{svc}]: stop_signal: must be one of SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1"),
    "tmpfs-size": (MODULES, _set("service.mounts", [PROC, dict(type="tmpfs", target="/tmp", size="lots")]),
                   "[{svc}]: mounts[1]: size=lots: not a size tmpfs takes"),
    "address-on-the-bridge": (MODULES, _address_of_the_bridge, "[{svc}]: 10.213."),
    "account-name": (TEMPLATE, _set("service.user", "Bad-User"),
                     "[{svc}]: user: 'Bad-User' is not an account name"),
    "start-check": (MODULES, _set("service.start_check", 7200.0), "[{svc}]: start_check: must be 0 to 3600"),
    "peer-length": (TEMPLATE, _set("network.peer", "pfe-much-too-long"),
                    "pfe-much-too-long, is longer than an interface"),
    "unknown-bridge": (TEMPLATE, _set("network.bridge", "pfe-nobridge"),
                       "network.bridge pfe-nobridge is not in"),
    "bridge-mtu": (TEMPLATE, _set("bridge.mtu", 10),
                   "isolated_service_networks[{bridge}].mtu: must be between 68"),
    "veth-mtu": (TEMPLATE, _set("network.mtu", 70000), "[{svc}]: network.mtu: must be between 68 and 65535"),
    "venv-path": (TEMPLATE, _set("vars.isolated_service_venv", "relative/venv"),
                  "isolated_service_venv: relative/venv is not"),
    "userns-without-user": (TEMPLATE, _without_user, "[{svc}]: a user namespace needs user"),
    "mounts-without-proc": (TEMPLATE, _set("service.mounts", [dict(type="tmpfs", target="/tmp")]),
                            "[{svc}]: mounts has no proc mount, and the service has its own pid namespace"),
    # a null is the field left out (as argument_specs reads it), and what ansible-core would make text of
    "user-null": (TEMPLATE, _set("service.user", None), "[{svc}]: a user namespace needs user"),
    "argv-null-item": (TEMPLATE, _set("service.argv", ["/bin/sleep", None]),
                       "[{svc}]: argv[1]: expected a word (a string or a number), got null"),
    # a veth's host end named as a link of the host's own: refused by the netns module, after the account
    "peer-host-link": (ROOTFS, _set("network.peer", "lo"),
                       "[{svc}]: network.peer: host link lo exists and is not the host end of a veth"),
    "argument-spec": (SPEC, _set("service.state", "bogus"), "state must be one of: started, stopped, absent"),
    "landlock-mode": (SPEC, _set("service.landlock", dict(mode="lax")),
                      "mode must be one of: best_effort, strict"),
    "rootfs": (ROOTFS, _set("service.rootfs", "/nonexistent/pfe-rootfs"),
               "[{svc}]: rootfs: /nonexistent/pfe-rootfs is not a directory"),
    **({} if SYSTEMD else {"manager": (MANAGER, _set("service.manager", "systemd"),
                                       "[{svc}]: manager systemd, but PID 1 of this host is not systemd")}),
    "missing-account": (ACCOUNTS, _set("service.create_user", False),
                        "[{svc}]: user {user} does not exist on this host, and create_user is false"),
    "new-account-maps": (PLAN, _set("service.uid_map", [dict(container_id=0, host_id=100000, size=65536)]),
                         "[{svc}]: the account {user} does not exist yet"),
}


def _names(i: int) -> dict[str, str]:
    return dict(svc=f"pfe-rv{i}", bridge=f"pfe-rv{i}b", user=f"pfe-rv{PID}-{i}")


def _service(i: int) -> tuple[Vars, Vars]:
    """A valid service and its bridge, number ``i``, as those of the example playbook."""
    n = _names(i)
    service = dict(
        name=n["svc"], user=n["user"], argv=["/bin/sleep", "1000"],
        network=dict(bridge=n["bridge"], addresses=[f"10.213.{i}.11/24"], gateway=[f"10.213.{i}.1"]),
        readonly_root=True, mounts=[dict(type="proc", target="/proc"), dict(type="tmpfs", target="/tmp")],
        cgroup=dict(memory_max="64M", pids_max=32), capabilities=dict(keep=[]), restart="always")
    return service, dict(name=n["bridge"], addresses=[f"10.213.{i}.1/24"])


def _host(venv: Path, wheels: Path) -> Vars:
    return dict(ansible_connection="local", ansible_python_interpreter=sys.executable,
                isolated_service_venv=str(venv), isolated_service_wheel_dir=str(wheels),
                isolated_service_manager="direct", isolated_service_cgroup_required=False,
                isolated_service_networks=[], isolated_service_services=[])


def traces(i: int) -> list[str]:
    """What the role would have made for service ``i``, that exists."""
    n = _names(i)
    svc = n["svc"]
    paths = [f"/etc/pyforkexec/{svc}.json", f"/run/pyforkexec/{svc}.pid", f"/var/log/pyforkexec/{svc}.log",
             f"/run/netns/{svc}", f"/etc/pyforkexec/netns/{svc}.json", f"/sys/class/net/pfe-{svc}",
             f"/sys/class/net/{n['bridge']}"]
    found = [p for p in paths if os.path.lexists(p)]
    try:
        pwd.getpwnam(n["user"])
        found.append(f"account {n['user']}")
    except KeyError:
        pass
    return found


def _cleanup(i: int) -> None:
    """Undo what a role that does not validate first leaves (the test fails on it anyway)."""
    n = _names(i)
    subprocess.run(["userdel", n["user"]], capture_output=True)
    subprocess.run(["ip", "netns", "delete", n["svc"]], capture_output=True)
    for link in (f"pfe-{n['svc']}", n["bridge"]):
        subprocess.run(["ip", "link", "delete", link], capture_output=True)
    for path in (f"/etc/pyforkexec/{n['svc']}.json", f"/etc/pyforkexec/netns/{n['svc']}.json"):
        if os.path.exists(path):
            os.unlink(path)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pyforkexec's wheel, built from a copy of this checkout's sources (as the role's wheels.yml does),
    kept in ~/.cache/pyforkexec/test-wheels/HASH-OF-THE-SOURCES: a build takes ~20 s."""
    sources = [ROOT / "setup.py", ROOT / "pyproject.toml", ROOT / "README.md", ROOT / "galaxy.yml",
               *sorted(p for p in (ROOT / "pyforkexec").rglob("*") if p.suffix in (".py", ".c", ".h"))]
    digest = hashlib.sha256(b"".join(str(p.relative_to(ROOT)).encode() + p.read_bytes()
                                     for p in sources)).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    out = cache / "pyforkexec" / "test-wheels" / digest
    if list(out.glob("pyforkexec-*.whl")):
        return out
    src = tmp_path_factory.mktemp("src")
    for path in sources:
        target = src / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
                            "--no-deps", "--wheel-dir", str(out), str(src)], capture_output=True, text=True)
    if built.returncode != 0:  # the checkout's own sources must build: a failure here is a bug
        pytest.fail(f"cannot build pyforkexec's wheel from the checkout: {built.stderr[-500:]}")
    return out


@pytest.fixture(scope="module")
def collections(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ANSIBLE_COLLECTIONS_PATH with this checkout as pyforkexec.isolation (scripts/lib/link-collection)."""
    dest = tmp_path_factory.mktemp("collections")
    subprocess.run([str(ROOT / "scripts/lib/link-collection"), str(dest)], check=True, capture_output=True)
    return dest


def run_playbook(scratch: Path, collections: Path, inventory: Vars, playbook: list[Vars],
                 options: tuple[str, ...] = ()) -> dict[str, Any]:
    """ansible-playbook on this machine; the last result of each host (the tree callback's)."""
    (scratch / "inventory.json").write_text(json.dumps(inventory))
    (scratch / "play.yml").write_text(json.dumps(playbook))
    tree = scratch / "tree"
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_CALLBACK_TREE_DIR=str(tree),
               ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.tree", ANSIBLE_NOCOLOR="1",
               ANSIBLE_RETRY_FILES_ENABLED="False")
    run = subprocess.run([PLAYBOOK, "-i", "inventory.json", *options, "play.yml"], env=env,
                         capture_output=True, text=True, cwd=scratch, timeout=600)
    (scratch / "ansible.log").write_text(run.stdout + run.stderr)  # to read when a case fails
    return {p.name: json.loads(p.read_text()) for p in tree.iterdir()} if tree.exists() else {}


def run_role(scratch: Path, collections: Path, host: Vars, check: bool = False) -> str:
    """One run of the role on this machine as inventory host ``host`` (its variables), in ``scratch``
    (made here), with --check --diff if ``check``; its output, once it says nothing failed."""
    scratch.mkdir()
    playbook = [dict(name="the role", hosts="all", gather_facts=False,
                     roles=["pyforkexec.isolation.isolated_service"])]
    run_playbook(scratch, collections, dict(all=dict(hosts=dict(h=host))), playbook,
                 ("--check", "--diff") if check else ())
    log = (scratch / "ansible.log").read_text()
    assert "failed=0" in log, log[-3000:]
    return log


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory, wheels: Path, collections: Path) -> Iterator[tuple]:
    """Runs the corpus and the valid control once: (each case's failure message, traces, the control's
    last result, its traces)."""
    scratch = tmp_path_factory.mktemp("role")
    only = [x for x in os.environ.get("PFE_ROLE_VALIDATION_ONLY", "").split(",") if x]
    cases = {case: i for i, case in enumerate((c for c in CORPUS if not only or c in only), start=1)}
    hosts: dict[str, Vars] = {}
    for case, i in cases.items():
        stage, mutate, _ = CORPUS[case]
        host = hosts.setdefault(stage, _host(scratch / f"venv-{stage}", wheels))
        service, bridge = _service(i)
        mutate(host, service, bridge)
        host["isolated_service_services"].append(service)
        host["isolated_service_networks"].append(bridge)
    control = _host(scratch / "venv-control", wheels)
    service, bridge = _service(0)
    control.update(isolated_service_services=[service], isolated_service_networks=[bridge])
    inventory = dict(all=dict(children=dict(bad=dict(hosts=hosts), good=dict(hosts=dict(control=control)))))
    playbook = [  # the control first: a play whose hosts all fail ends the playbook
        dict(name="validation alone", hosts="good", gather_facts=False, tasks=[
            dict(name="validate", **{"ansible.builtin.include_role": dict(
                name="pyforkexec.isolation.isolated_service", tasks_from="validate")}),
            dict(name="passed", **{"ansible.builtin.debug": dict(msg="validated")})]),
        dict(name="the role", hosts="bad", gather_facts=False,
             roles=["pyforkexec.isolation.isolated_service"]),
    ]
    try:
        results = run_playbook(scratch, collections, inventory, playbook)
        messages = {}
        for case in cases:
            result = results.get(CORPUS[case][0], {})
            # a loop's failures (an assertion per service) are in its results
            messages[case] = "\n".join([result.get("msg", ""),
                                        *(r.get("msg", "") for r in result.get("results", []))])
        venvs = {stage: [str(p) for p in (scratch / f"venv-{stage}", scratch / "relative") if p.exists()]
                 for stage in [*hosts, "control"]}
        found = {case: traces(i) + venvs[CORPUS[case][0]] for case, i in cases.items()}
        yield cases, messages, found, results.get("control", {}), traces(0) + venvs["control"]
    finally:
        for i in [0, *cases.values()]:
            _cleanup(i)


def test_valid_variables_pass_the_validation_and_it_changes_nothing(outcome):
    *_, control, control_traces = outcome
    assert control.get("msg") == "validated", control
    assert control_traces == []


@pytest.mark.parametrize("case", CORPUS)
def test_a_bad_variable_fails_the_role_before_anything_changes(outcome, case):
    cases, messages, found, *_ = outcome
    if case not in cases:
        pytest.skip("not in PFE_ROLE_VALIDATION_ONLY")
    expected = CORPUS[case][2].format(**_names(cases[case]))
    assert found[case] == [], f"the role changed the host before it failed: {found[case]} ({messages[case]})"
    assert expected in messages[case]


# Values ansible-core's own check of argument_specs (its validate_argument_spec, the role's implicit first
# task) raised on, failing as "Task failed: argument of type 'NoneType' is not iterable" or "cannot
# convert Infinity to integer", naming no variable, or ("1e1000000") built as an integer of a million
# digits for ~20 s of CPU each before it passed: one host each, its variable set to the value; what the
# failure says.
MALFORMED: dict[str, tuple[Mutation, str]] = {
    "network-list-of-null": (_set("service.network", [None]),
                             "isolated_service_services[0].network: expected a dictionary, got a list"),
    "capabilities-number": (_set("service.capabilities", 5),
                            "isolated_service_services[0].capabilities: expected a dictionary, got a number"),
    "cgroup-bool": (_set("service.cgroup", True),
                    "isolated_service_services[0].cgroup: expected a dictionary, got a boolean"),
    "uid-map-null": (_set("service.uid_map", [None]),
                     "isolated_service_services[0].uid_map[0]: expected a dictionary, got null"),
    "route-bool": (_set("network.routes", [True]),
                   "isolated_service_services[0].network.routes[0]: expected a dictionary, got a boolean"),
    "services-null": (_set("vars.isolated_service_services", [None]),
                      "isolated_service_services[0]: expected a dictionary, got null"),
    "networks-bool": (_set("vars.isolated_service_networks", [False]),
                      "isolated_service_networks[0]: expected a dictionary, got a boolean"),
    "stop-timeout-inf": (_set("service.stop_timeout", float("inf")),
                         "isolated_service_services[0].stop_timeout: is infinite, not an integer"),
    "stop-timeout-inf-text": (_set("service.stop_timeout", "inf"),
                              "isolated_service_services[0].stop_timeout: is infinite, not an integer"),
    "mtu-huge": (_set("bridge.mtu", "1e1000000"),
                 "isolated_service_networks[0].mtu: is out of range (more than 20 digits"),
}


def test_a_value_ansible_core_s_argument_check_raises_on_is_refused_naming_the_variable(
        tmp_path: Path, collections: Path) -> None:
    """Each value of MALFORMED fails the role (in check mode: it fails before any change) with one line
    naming the variable's path and the rule, from the role's own check (its dependency
    isolated_service_arguments), before ansible-core's check of argument_specs, which raised on it."""
    hosts: dict[str, Vars] = {}
    for case, (mutate, _) in MALFORMED.items():
        host = hosts[case] = _host(tmp_path / "venv", tmp_path / "wheels")
        service, bridge = _service(1)
        host["isolated_service_services"], host["isolated_service_networks"] = [service], [bridge]
        mutate(host, service, bridge)
    inventory = dict(all=dict(hosts=hosts))
    playbook = [dict(hosts="all", gather_facts=False, roles=["pyforkexec.isolation.isolated_service"])]
    results = run_playbook(tmp_path, collections, inventory, playbook, ("--check",))
    log = (tmp_path / "ansible.log").read_text()
    said = {case: results.get(case, {}).get("msg", "") for case in MALFORMED}
    wrong = {case: msg for case, msg in said.items() if "\n" in msg or not msg.startswith(MALFORMED[case][1])}
    assert wrong == {}, log[-3000:]
    assert "is not iterable" not in log and "cannot convert" not in log and "Traceback" not in log
    assert not (tmp_path / "venv").exists()


def test_an_interpreter_that_overrides_the_role_s_is_refused_before_anything_changes(
        tmp_path: Path, wheels: Path, collections: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Extra vars take precedence over a task's vars: ``-e ansible_python_interpreter=...`` (the
    inventory's Python here, as scripts/demo passed it) ran the services module, whose Python runs the
    services, with that Python instead of the role's virtualenv's. The role refuses it, naming the
    variable, before anything changes (not in check mode: a role that went on would install and start
    the service), the virtualenv's own Python too; ANSIBLE_PYTHON_INTERPRETER, which task vars override,
    passes."""
    i = 90
    host = _host(tmp_path / "venv", wheels)
    service, bridge = _service(i)
    host.update(isolated_service_services=[service], isolated_service_networks=[bridge])
    inventory = dict(all=dict(hosts=dict(h=host)))
    playbook = [dict(hosts="all", gather_facts=False, roles=["pyforkexec.isolation.isolated_service"])]
    try:
        for n, interpreter in enumerate((sys.executable, f"{tmp_path / 'venv'}/bin/python")):
            scratch = tmp_path / f"run{n}"
            scratch.mkdir()
            results = run_playbook(scratch, collections, inventory, playbook,
                                   ("-e", f"ansible_python_interpreter={interpreter}"))
            log = (scratch / "ansible.log").read_text()
            assert traces(i) == [] and list(tmp_path.glob("venv*")) == [], log[-3000:]
            said = results["h"].get("msg", "")
            assert said.startswith(f"ansible_python_interpreter: is {interpreter}, set where it overrides a "
                                   "task's vars"), log[-3000:]
            assert f"(isolated_service_venv, {tmp_path / 'venv'})" in said
            assert said.endswith("or with ANSIBLE_PYTHON_INTERPRETER instead")
        own = tmp_path / "own"
        own.mkdir()
        validate = [dict(hosts="all", gather_facts=False, tasks=[
            dict(name="validate", **{"ansible.builtin.include_role": dict(
                name="pyforkexec.isolation.isolated_service", tasks_from="validate")}),
            dict(name="passed", **{"ansible.builtin.debug": dict(msg="validated")})])]
        monkeypatch.setenv("ANSIBLE_PYTHON_INTERPRETER", sys.executable)
        unset = {k: v for k, v in host.items() if k != "ansible_python_interpreter"}
        results = run_playbook(own, collections, dict(all=dict(hosts=dict(h=unset))), validate)
        assert results["h"].get("msg") == "validated", (own / "ansible.log").read_text()[-3000:]
    finally:
        if traces(i) or list(tmp_path.glob("venv*")):  # a role that went on: its service, stopped
            gone = tmp_path / "gone"
            gone.mkdir(exist_ok=True)
            absent = dict(host, isolated_service_state="absent")
            run_playbook(gone, collections, dict(all=dict(hosts=dict(h=absent))), playbook)
        _cleanup(i)


def test_the_role_names_its_task_files_from_role_path() -> None:
    """A bare task file name in a file that was included dynamically is looked up beside the playbook
    first: a playbook with its own tasks/services.yml ran that instead of the role's. Every include
    and import of the role names its file from role_path."""
    import re

    bare = []
    for path in sorted(Path(__file__).parent.parent.glob("roles/*/tasks/*.yml")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            m = re.search(r"(?:import|include)_tasks:\s*(\S.*)$", line)
            if m and not m.group(1).strip("\"'").startswith("{{ role_path }}/tasks/"):
                bare.append(f"{path.name}:{n}: {m.group(1)}")
    assert not bare, bare
