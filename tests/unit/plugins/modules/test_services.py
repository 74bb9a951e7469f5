"""The services module in-process, against the real kernel: several services and their network
namespaces planned and applied in one call, with check mode, diffs, per-service results, restarts of
what changed under a service, and failures that name the service."""

from __future__ import annotations

import datetime
import os
import subprocess
import time

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
from ansible_collections.pyforkexec.isolation.plugins.modules import netns as netns_module
from ansible_collections.pyforkexec.isolation.plugins.modules import services

# Stops promptly on SIGTERM, even as PID 1 of its PID namespace.
# Each pytest worker its own subnets (two bridges of the host on one subnet are refused): NET, the
# bridge of ``two``; NET_OTHER, another bridge's.
NET, NET_OTHER = (f"10.98.{os.getpid() % 120 * 2 + i}" for i in (0, 1))
PROGRAM = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.2; done"]


def _entry(name, peer, address, bridge=None, **extra):
    veth = dict(name="eth0", peer=peer, addresses=[address])
    wiring = dict(veths=[dict(veth, bridge=bridge)] if bridge else [veth])
    if bridge:
        wiring["bridges"] = [dict(name=bridge, addresses=[f"{NET}.1/24"])]
    return dict(dict(name=name, argv=PROGRAM, manager="direct", namespaces=["pid", "mount"],
                     mounts=[dict(type="proc", target="/proc")], netns=name, wiring=wiring), **extra)


@pytest.fixture
def two(run_module, unique_name):
    """Two services on one bridge (not yet applied), removed after the test."""
    tag = os.getpid() % 10000
    entries = [_entry(unique_name(), f"pfs{tag}a", f"{NET}.2/24", bridge=f"pfsbr{tag}"),
               _entry(unique_name(), f"pfs{tag}b", f"{NET}.3/24", bridge=f"pfsbr{tag}")]
    yield entries
    gone = run_module(services, dict(services=[dict(e, state="absent") for e in entries]))
    assert gone.get("failed") is not True, gone


def _netns_inode(pid):
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def test_check_mode_plans_every_service_and_touches_nothing(run_module, two):
    result = run_module(services, dict(services=two), check_mode=True, diff=True)
    assert result["changed"] is True
    for entry in two:
        name = entry["name"]
        out = result["services"][name]
        assert out["state"] == "started" and out["pid"] is None
        # (wired, with a mount namespace: its own /etc/hosts by default, module_utils/name_files.py,
        # bound over the host's: left out on a machine that has none, a minimal root's)
        hosts = [f"write /etc/pyforkexec/{name}.hosts"] if os.path.isfile("/etc/hosts") else []
        assert out["actions"] == [*hosts, f"write /etc/pyforkexec/{name}.json", "start"]
        assert out["netns"]["actions"][0] == f"create_netns {name}"
        assert not os.path.exists(f"/run/netns/{name}") and not os.path.exists(paths.spec_path(name))
        assert not os.path.exists(paths.hosts_path(name))
    headers = [d["before_header"] for d in result["diff"]]
    assert f"{two[0]['name']}: netns {two[0]['name']}" in headers
    assert f"{two[1]['name']}: state" in headers


def test_services_start_in_their_namespaces_and_a_rerun_changes_nothing(run_module, two):
    first = run_module(services, dict(services=two))
    assert first["changed"] is True and first.get("failed") is not True, first
    pids = {name: out["pid"] for name, out in first["services"].items()}
    for entry in two:
        out = first["services"][entry["name"]]
        assert out["state"] == "started" and out["manager"] == "direct"
        assert _netns_inode(out["pid"]) == out["netns"]["netns"]["inode"]
        assert out["namespaces"]["pid"]["same_as_host"] is False
    again = run_module(services, dict(services=two))
    assert again["changed"] is False, again
    assert {name: out["pid"] for name, out in again["services"].items()} == pids
    assert all(out["actions"] == [] and out["netns"]["actions"] == [] for out in again["services"].values())


def test_a_rewired_namespace_restarts_its_service_only(run_module, two):
    first = run_module(services, dict(services=two))
    assert first.get("failed") is not True, first
    changed = [two[0], dict(two[1], wiring=dict(two[1]["wiring"], gateway=[f"{NET}.1"]))]
    second = run_module(services, dict(services=changed))
    kept, rewired = (second["services"][e["name"]] for e in two)
    assert kept["changed"] is False and kept["pid"] == first["services"][two[0]["name"]]["pid"]
    assert rewired["actions"] == ["restart"] and rewired["netns"]["actions"]
    assert rewired["pid"] != first["services"][two[1]["name"]]["pid"]


def test_a_rewire_shows_the_same_diff_entries_in_check_mode_and_in_the_run(run_module, two):
    """The run marks a running service pending before it rewires its namespace (so that a run cut
    there restarts it next time); the service read that mark back as an earlier run's, cut off, and
    the run's diff gained a "started from" entry (older files than the host's) that check mode did not
    show and that was not the cause: the rewire's own netns entry is."""
    first = run_module(services, dict(services=two))
    assert first.get("failed") is not True, first
    changed = [two[0], dict(two[1], wiring=dict(two[1]["wiring"], gateway=[f"{NET}.1"]))]
    planned = run_module(services, dict(services=changed), check_mode=True, diff=True)
    done = run_module(services, dict(services=changed), diff=True)
    assert done.get("failed") is not True, done
    assert done["services"][two[1]["name"]]["actions"] == ["restart"], done["services"]
    headers = [[d["before_header"] for d in result["diff"] if d["before"] != d["after"]]
               for result in (planned, done)]
    assert headers[0] == headers[1] == [f"{two[1]['name']}: netns {two[1]['name']}"], headers


def test_check_mode_plans_the_host_side_actions_the_run_makes(run_module, two):
    """Check mode planned an entry twice in one batch (its rehearsal, then its plan): the second plan
    took the host-side actions the first foresaw for an earlier entry's and left them out. A bridge
    named by a veth only was "declared" rather than made, and an address the bridge gains when the
    entry then describes it was not planned at all: check mode said nothing would change."""
    entry = two[0]
    name, bridge = entry["name"], entry["wiring"]["bridges"][0]["name"]
    bare = dict(entry, wiring=dict(entry["wiring"], bridges=[]))  # the bridge named by its veth only
    for args in (bare, entry):  # made; then described, with its address
        planned = run_module(services, dict(services=[args]), check_mode=True)
        done = run_module(services, dict(services=[args]))
        assert done.get("failed") is not True, done
        assert planned["services"][name]["netns"]["actions"] == done["services"][name]["netns"]["actions"]
        assert planned["changed"] is done["changed"] is True
    assert done["services"][name]["netns"]["actions"] == [f"add_addr host {bridge} {NET}.1/24"]


def test_a_namespace_left_while_another_service_joins_it_goes_once_that_one_leaves(
        run_module, two, unique_name):
    """A service's wiring dropped while another service joins its namespace keeps the namespace (the
    other runs in it), but the run forgot that the module had wired it: once the joiner left, no run
    removed it, nor its veth, even with both services absent. It is remembered until it goes."""
    wired, joiner = two[0], dict(name=unique_name(), argv=PROGRAM, manager="direct", netns=two[0]["netns"])
    namespace = wired["netns"]
    unwired = dict(wired, netns=None, wiring=None)
    try:
        for step in ([wired], [wired, joiner], [unwired, joiner]):
            result = run_module(services, dict(services=step))
            assert result.get("failed") is not True, result
        assert os.path.exists(f"/run/netns/{namespace}")  # joined: kept
        leaving = [unwired, dict(joiner, state="absent")]
        planned = run_module(services, dict(services=leaving), check_mode=True)
        done = run_module(services, dict(services=leaving))
        assert done.get("failed") is not True, done
        left = done["services"][wired["name"]].get("netns_left")
        assert left == planned["services"][wired["name"]].get("netns_left"), (left, planned["services"])
        assert f"netns {namespace}: delete_netns {namespace}" in (left or []), done["services"]
        assert not os.path.exists(f"/run/netns/{namespace}")
        assert not os.path.exists(paths.wired_netns_path(wired["name"]))
    finally:
        run_module(services, dict(services=[dict(joiner, state="absent")]))


def test_a_change_of_the_shared_bridge_alone_restarts_no_service(run_module, two):
    """A new address on the bridge both services share is a host-side action of the first one's
    wiring: it changes neither namespace, and neither service is restarted (both were, or the first,
    before; a connection to it was then refused while it came back)."""
    first = run_module(services, dict(services=two))
    assert first.get("failed") is not True, first
    bridge = dict(two[0]["wiring"]["bridges"][0], addresses=[f"{NET}.1/24", f"{NET}.254/24"])
    changed = [dict(e, wiring=dict(e["wiring"], bridges=[bridge])) for e in two]
    second = run_module(services, dict(services=changed))
    assert second.get("failed") is not True, second
    outs = [second["services"][e["name"]] for e in two]
    assert f"add_addr host {bridge['name']} {NET}.254/24" in outs[0]["netns"]["actions"]
    for entry, out in zip(two, outs):
        assert out["actions"] == [], out
        assert out["pid"] == first["services"][entry["name"]]["pid"]


def _on_bridge(entry, bridge, subnet=NET):
    """``entry`` on ``bridge``, whose subnet no other bridge may have (the host would route it to both)."""
    address = entry["wiring"]["veths"][0]["addresses"][0].replace(NET, subnet)
    veth = dict(entry["wiring"]["veths"][0], bridge=bridge, addresses=[address])
    return dict(entry, wiring=dict(entry["wiring"], bridges=[dict(name=bridge, addresses=[f"{subnet}.1/24"])],
                                   veths=[veth]))


def _ifindex(link):
    try:
        with open(f"/sys/class/net/{link}/ifindex") as f:
            return int(f.read())
    except FileNotFoundError:
        return None


def test_a_bridge_left_with_no_port_goes_and_one_still_wanted_stays(run_module, two):
    """A service moved to another bridge takes its old one along when it leaves it empty, rather than
    leaving it and its address on the host for good; a bridge a removal empties stays, not even
    removed for a moment, when another service of the run is moved onto it."""
    x = two[0]["wiring"]["bridges"][0]["name"]
    y = f"{x}y"
    try:
        first = run_module(services, dict(services=[two[0], _on_bridge(two[1], y, NET_OTHER)]))
        assert first.get("failed") is not True, first
        index = _ifindex(x)
        assert index is not None and _ifindex(y) is not None
        second = run_module(services, dict(services=[dict(two[0], state="absent"), _on_bridge(two[1], x)]))
        assert second.get("failed") is not True, second
        assert _ifindex(x) == index  # kept: the moved service wants it
        assert _ifindex(y) is None, second["services"][two[1]["name"]]["netns"]["actions"]  # left empty: gone
    finally:
        # what a failed run leaves is left to the test
        subprocess.run(["ip", "link", "del", y], capture_output=True, check=False)


def test_restart_names_the_services_to_restart(run_module, two):
    first = run_module(services, dict(services=two))
    second = run_module(services, dict(services=two, restart=[two[0]["name"]]), diff=True)
    assert second["services"][two[0]["name"]]["actions"] == ["restart"]

    def headers(name):  # (each has its namespace's diff too, empty here)
        return [e["before_header"] for e in second["services"][name]["diff"] if e["before"] != e["after"]]

    # the cause, in no file: the runtime reinstalled under it
    assert headers(two[0]["name"]) == ["runtime"] and headers(two[1]["name"]) == []
    assert second["services"][two[1]["name"]]["pid"] == first["services"][two[1]["name"]]["pid"]


def test_a_refused_entry_fails_the_task_before_anything_changes(run_module, two):
    bad = dict(two[1], mounts=[dict(type="proc", target="/proc")], namespaces=["uts"])
    result = run_module(services, dict(services=[two[0], bad]))
    assert result["failed"] is True
    assert result["msg"].startswith(f"services[{bad['name']}]: mounts: needs a new mount namespace")
    assert not os.path.exists(f"/run/netns/{two[0]['name']}")
    assert not os.path.exists(paths.spec_path(two[0]["name"]))
    typo = run_module(services, dict(services=[two[0], dict(two[1], user="nobody", credential=dict(uid=0))]))
    exclusive = "parameters are mutually exclusive: user|credential"
    assert typo["msg"].startswith(f"services[{two[1]['name']}]: {exclusive}")
    unwired = run_module(services, dict(services=[dict(two[0], netns=None)]))
    needs = "wiring: needs netns, the name of the namespace it wires"
    assert unwired["msg"] == f"services[{two[0]['name']}]: {needs}"
    twice = run_module(services, dict(services=[two[0], two[0]], restart=["nobody-here"]))
    assert f"services: {two[0]['name']} is given more than once" in twice["msg"]
    assert "restart: not among the services: nobody-here" in twice["msg"]


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check mode"])
def test_a_join_of_another_network_namespace_than_the_wired_one_is_refused_before_anything_changes(
        run_module, two, check_mode):
    """An entry wired into its own netns that also joins another network namespace (a process's): the
    run made and wired the netns, then started the service in the other namespace, the last joined
    (or, with pyforkexec's own refusal, failed its start after changing the host). Refused now naming
    the join, before anything changes; a join of another type still goes with the wiring."""
    holder = subprocess.Popen(["unshare", "--net", "--uts", "sleep", "60"])
    try:
        while os.readlink(f"/proc/{holder.pid}/ns/net") == os.readlink("/proc/self/ns/net"):
            time.sleep(0.01)  # (unshare execs sleep once its namespaces are made)
        for join in ([dict(pid=holder.pid)], [dict(path=f"/proc/{holder.pid}/ns/net")]):
            result = run_module(services, dict(services=[dict(two[0], join=join)]), check_mode=check_mode)
            assert result.get("failed") is True, result
            assert result["msg"].startswith(f"services[{two[0]['name']}]: join[0]: joins another net "
                                            f"namespace (/proc/{holder.pid}/ns/net) than netns does"), result
            _nothing_made(two)
        other_type = dict(two[0], join=[dict(pid=holder.pid, namespaces=["uts"])])
        uts = run_module(services, dict(services=[other_type]), check_mode=True)
        assert uts.get("failed") is not True, uts
    finally:
        holder.kill()
        holder.wait()


def _nothing_made(entries):
    for entry in entries:
        assert not os.path.exists(f"/run/netns/{entry['name']}")
        assert not os.path.exists(paths.spec_path(entry["name"]))


def test_a_bridge_two_entries_describe_otherwise_is_refused_before_anything_changes(run_module, two):
    """Each run would converge the bridge to one entry's addresses, then to the other's, taking a
    namespace's gateway away and back; a bridge named by a veth only agrees with any description."""
    bridge = dict(two[1]["wiring"]["bridges"][0], addresses=[f"{NET}.1/24", f"{NET}.9/24"])
    other = dict(two[1], wiring=dict(two[1]["wiring"], bridges=[bridge]))
    result = run_module(services, dict(services=[two[0], other]))
    assert result["failed"] is True
    bridge = two[0]["wiring"]["bridges"][0]["name"]
    assert result["msg"].startswith(f"services[{other['name']}]: bridge {bridge} is described otherwise by "
                                    f"services[{two[0]['name']}]")
    _nothing_made(two)
    named_only = dict(two[1], wiring=dict(two[1]["wiring"], bridges=[]))
    applied = run_module(services, dict(services=[two[0], named_only]))
    assert applied.get("failed") is not True, applied
    assert run_module(services, dict(services=[two[0], named_only]))["changed"] is False


def test_an_address_two_entries_have_on_one_bridge_is_refused_before_anything_changes(run_module, two):
    """Both would answer for it on the bridge (or one would shadow the bridge's own address)."""
    twin = dict(two[1], wiring=dict(two[1]["wiring"], veths=[dict(two[1]["wiring"]["veths"][0],
                                                                  addresses=[f"{NET}.2/24"])]))
    result = run_module(services, dict(services=[two[0], twin]))
    assert result["failed"] is True
    assert result["msg"].startswith(f"services[{twin['name']}]: {NET}.2 on bridge ")
    _nothing_made(two)
    gateway = dict(two[1], wiring=dict(two[1]["wiring"], veths=[dict(two[1]["wiring"]["veths"][0],
                                                                     addresses=[f"{NET}.1/24"])]))
    result = run_module(services, dict(services=[two[0], gateway]))
    assert result["failed"] is True and f"{NET}.1 on bridge " in result["msg"]
    _nothing_made(two)


def test_an_entry_refused_once_the_host_is_read_fails_the_task_before_anything_changes(run_module, two):
    """Two new entries whose host ends take overlapping subnets: the second is refused only against
    what the first makes, which the model sees once the host is read. The run is rehearsed as check
    mode plans it, and fails with nothing made, instead of after the first was wired and started."""
    tag = os.getpid() % 10000
    entries = [_entry(two[0]["name"], f"pfs{tag}a", f"{NET_OTHER}.2/24"),
               _entry(two[1]["name"], f"pfs{tag}b", f"{NET_OTHER}.3/24")]
    for i, entry in enumerate(entries):
        entry["wiring"]["veths"][0]["peer_addresses"] = [f"{NET_OTHER}.{100 + i}/24"]
    for check_mode in (True, False):
        result = run_module(services, dict(services=entries), check_mode=check_mode)
        assert result["failed"] is True, result
        assert f"overlaps {NET_OTHER}.100/24 of host link pfs{tag}a" in result["msg"], result["msg"]
        _nothing_made(entries)
        links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, check=True).stdout
        assert f"pfs{tag}a" not in links


def test_a_service_that_fails_to_start_is_named_and_the_others_apply(run_module, two):
    broken = dict(two[1], argv=["/nonexistent/program"], restart="no")
    result = run_module(services, dict(services=[two[0], broken]))
    assert result["failed"] is True and result["msg"].startswith(f"services[{broken['name']}]: ")
    good, bad = result["services"][two[0]["name"]], result["services"][broken["name"]]
    assert good["state"] == "started" and good["pid"] is not None and good.get("failed") is not True
    assert bad["failed"] is True and bad["netns"]["actions"]  # its namespace was wired, then unwired
    assert bad["netns"]["actions"][-1] == f"delete_netns {broken['name']}"
    assert not os.path.exists(f"/run/netns/{broken['name']}")
    assert not os.path.exists(paths.spec_path(broken["name"]))
    assert not os.path.exists(paths.wired_netns_path(broken["name"]))  # no namespace of the module's now
    assert os.path.exists(f"/run/netns/{two[0]['name']}")  # the other's, and the bridge it shares, stay
    assert os.path.exists(f"/sys/class/net/{two[0]['wiring']['bridges'][0]['name']}")


def test_absent_removes_services_and_namespaces_in_one_call(run_module, two):
    run_module(services, dict(services=two))
    absent = dict(services=[dict(e, state="absent") for e in two])
    planned = run_module(services, absent, check_mode=True)
    gone = run_module(services, absent, diff=True)
    assert gone["changed"] is True
    for entry in two:
        out = gone["services"][entry["name"]]
        assert planned["services"][entry["name"]]["actions"] == out["actions"]  # check mode foresaw it
        assert out["state"] == "stopped" and "stop" in out["actions"]
        assert not os.path.exists(f"/run/netns/{entry['name']}")
        assert not os.path.exists(paths.spec_path(entry["name"]))
    assert not os.path.exists(f"/sys/class/net/{two[0]['wiring']['bridges'][0]['name']}")
    again = run_module(services, dict(services=[dict(e, state="absent") for e in two]))
    assert again["changed"] is False, again  # (once seen changed under load: what changed, if again)


@pytest.mark.parametrize("position", [0, 1])
def test_a_service_whose_namespace_cannot_be_wired_is_not_started(run_module, two, position, monkeypatch):
    # A sysctl the kernel refuses, once the namespace is made: after the plan and its rehearsal (whose
    # trial in a scratch namespace, which refuses it first, is skipped: as on a kernel that refuses
    # the namespace's own write only). First or last: a service under manager direct starts while the
    # next namespace is wired.
    from pyforkexec.netns import kernel

    monkeypatch.setattr(kernel, "_trial_writes", lambda trial: None)
    good = two[1 - position]
    refused = {"net.ipv4.tcp_syn_retries": 999}
    unwirable = dict(two[position], wiring=dict(two[position]["wiring"], sysctls=refused))
    entries = [unwirable, good] if position == 0 else [good, unwirable]
    result = run_module(services, dict(services=entries))
    assert result["failed"] is True and result["msg"].startswith(f"services[{unwirable['name']}]: ")
    bad = result["services"][unwirable["name"]]
    assert bad["failed"] is True and "pid" not in bad
    assert not os.path.exists(paths.spec_path(unwirable["name"]))
    assert not os.path.exists(paths.pid_file(unwirable["name"]))
    assert not os.path.exists(f"/run/netns/{unwirable['name']}")  # what its converge made is removed again
    assert result["services"][good["name"]]["state"] == "started"


def test_a_namespace_the_model_refuses_once_the_host_is_read_starts_nothing(run_module, two):
    """Enslaving a veth to the host's loopback (no bridge): refused by the rehearsal, nothing made."""
    unwirable = dict(two[0], wiring=dict(veths=[dict(two[0]["wiring"]["veths"][0], bridge="lo")]))
    result = run_module(services, dict(services=[unwirable, two[1]]))
    assert result["failed"] is True
    assert result["msg"].startswith(f"services[{unwirable['name']}]: bridges: host link lo exists and is a ")
    _nothing_made(two)


@pytest.mark.parametrize("removing", [False, True], ids=["kept", "with-a-removal"])
def test_check_mode_fails_a_model_refusal_as_the_run_does(run_module, two, removing):
    """Check mode planned the other entries and reported the refused one as a failed entry (with a
    stale daemon log line), where the run fails as a whole with nothing done (PlanError): the same
    refusal now, in both, whether or not the run also removes something."""
    unwirable = dict(two[0], wiring=dict(veths=[dict(two[0]["wiring"]["veths"][0], bridge="lo")]))
    entries = [unwirable, dict(two[1], state="absent") if removing else two[1]]
    planned = run_module(services, dict(services=entries), check_mode=True, diff=True)
    done = run_module(services, dict(services=entries), diff=True)
    assert planned["failed"] is True and "services" not in planned, planned
    assert {k: planned[k] for k in ("failed", "msg")} == {k: done[k] for k in ("failed", "msg")}
    assert "services" not in done
    _nothing_made(two)


def test_peers_swapped_between_two_services_are_refused_naming_the_owner(run_module, two):
    """Each service's peer name taken by the other's host end: refused with nothing done (the model
    plans one namespace at a time), and the message said the link "was not made by pyforkexec", which
    it was: it names the namespace that holds it now."""
    assert run_module(services, dict(services=two)).get("failed") is not True
    peers = [entry["wiring"]["veths"][0]["peer"] for entry in two]
    swapped = [dict(entry, wiring=dict(entry["wiring"], veths=[dict(entry["wiring"]["veths"][0], peer=peer)]))
               for entry, peer in zip(two, reversed(peers))]
    refused = run_module(services, dict(services=swapped))
    assert refused["failed"] is True and "was not made by pyforkexec" not in refused["msg"], refused
    assert f"host link {peers[1]} is the host end of {two[1]['netns']}/eth0 (pyforkexec's)" in refused["msg"]
    assert run_module(services, dict(services=two))["changed"] is False


def test_a_service_whose_namespace_cannot_be_persisted_is_not_started(run_module, two):
    # A directory where the namespace's options file goes: its persistence fails after the wiring.
    blocked = dict(two[0], wiring=dict(two[0]["wiring"], persist=True))
    config = paths.netns_config_path(blocked["name"])
    with paths.converge_lock():  # made and removed as a run would: other tests' runs go on at once
        os.makedirs(config)
    try:
        result = run_module(services, dict(services=[blocked, two[1]]))
    finally:
        with paths.converge_lock():
            os.rmdir(config)
    assert result["failed"] is True and result["msg"].startswith(f"services[{blocked['name']}]: ")
    bad = result["services"][blocked["name"]]
    assert bad["failed"] is True and "pid" not in bad and bad["netns"]["actions"]
    assert not os.path.exists(paths.spec_path(blocked["name"]))
    assert not os.path.exists(paths.pid_file(blocked["name"]))
    assert result["services"][two[1]["name"]]["state"] == "started"


def test_a_run_cut_after_a_rewire_restarts_the_service_next_time(run_module, two, monkeypatch):
    """Killed after it rewired a running service's namespace and before it restarted the service: the
    next run found the files as wanted and the wiring done, and the service ran on in a namespace it
    had not been started for. The service is marked before the rewire."""
    from ansible_collections.pyforkexec.isolation.plugins.module_utils import services as services_utils

    first = run_module(services, dict(services=two))
    assert first.get("failed") is not True, first
    changed = [two[0], dict(two[1], wiring=dict(two[1]["wiring"], gateway=[f"{NET}.1"]))]

    def cut(entry):
        raise KeyboardInterrupt  # the run ends here, its namespaces rewired

    monkeypatch.setattr(services_utils, "_declare", cut)
    with pytest.raises(KeyboardInterrupt):
        run_module(services, dict(services=changed))
    monkeypatch.undo()
    again = run_module(services, dict(services=changed))
    rewired = again["services"][two[1]["name"]]
    assert rewired["netns"]["actions"] == [] and rewired["actions"] == ["restart"], rewired
    assert rewired["pid"] != first["services"][two[1]["name"]]["pid"]
    assert again["services"][two[0]["name"]]["pid"] == first["services"][two[0]["name"]]["pid"]


def test_a_namespace_the_service_leaves_goes_before_its_new_one_is_wired(run_module, two):
    """The service's netns renamed (or its wiring dropped): the old namespace stayed on the bridge with
    the same address as the new one (a renamed netns with the same peer failed: "not made by
    pyforkexec for NEW/eth0"). A namespace the run persisted for the service and no service joins any
    more goes first, in check mode as planned, with its options file."""
    first = dict(two[0], wiring=dict(two[0]["wiring"], persist=True))
    old = first["name"]
    joined = f"{old}j"  # another task's namespace, which a service only joins: never removed here
    moved = dict(first, netns=f"{old}n")
    try:
        assert run_module(services, dict(services=[first])).get("failed") is not True
        assert os.path.exists(paths.netns_config_path(old))
        planned = run_module(services, dict(services=[moved]), check_mode=True)
        done = run_module(services, dict(services=[moved]), diff=True)
        assert done.get("failed") is not True, done
        result = done["services"][old]
        assert result["netns_left"] and result["netns_left"] == planned["services"][old]["netns_left"]
        assert f"netns {old}: delete_netns {old}" in result["netns_left"]
        assert not os.path.exists(f"/run/netns/{old}") and not os.path.exists(paths.netns_config_path(old))
        assert os.path.exists(f"/run/netns/{old}n")
        assert "netns_left" not in run_module(services, dict(services=[moved]))["services"][old]
        # An entry removed without its wiring: the namespace wired for its service goes with it.
        gone = run_module(services, dict(services=[dict(name=old, state="absent")]))
        assert gone.get("failed") is not True, gone
        assert not os.path.exists(f"/run/netns/{old}n")
        assert not os.path.exists(paths.netns_config_path(f"{old}n"))
        assert not os.path.exists(paths.wired_netns_path(old))
        # A namespace another task made (and persisted), which the service only joins, stays.
        other = run_module(netns_module, dict(name=joined, persist=True))
        assert other.get("failed") is not True, other
        only_joins = dict(first, netns=joined, wiring=None)
        assert run_module(services, dict(services=[only_joins])).get("failed") is not True
        dropped = dict(only_joins, netns=None, namespaces=["pid", "mount"])
        left = run_module(services, dict(services=[dropped]))
        assert "netns_left" not in left["services"][old], left
        assert os.path.exists(f"/run/netns/{joined}")
    finally:
        run_module(services, dict(services=[dict(moved, state="absent")]))
        run_module(services, dict(services=[dict(name=old, state="absent")]))
        run_module(netns_module, dict(name=joined, state="absent", persist=False))


def test_a_namespace_another_service_joins_is_not_removed_under_it(run_module, two, unique_name):
    """An entry removed with its wiring deleted its namespace while another service (an entry kept in
    the run, or one declared by the service module) ran in it: that one was left in an emptied
    namespace and reported unchanged. Refused before anything changes, naming the joiner; a join
    through /var/run/netns (a symlink of /run) counts as one through /run/netns."""
    wired = two[0]
    joiner = dict(name=unique_name(), argv=PROGRAM, manager="direct", netns=wired["name"])
    via_var_run = dict(name=unique_name(), argv=PROGRAM, manager="direct",
                       join=[dict(path=f"/var/run/netns/{wired['name']}", namespaces=["net"])])
    from ansible_collections.pyforkexec.isolation.plugins.modules import service as service_module

    try:
        assert run_module(services, dict(services=[wired])).get("failed") is not True
        assert run_module(services, dict(services=[wired, joiner])).get("failed") is not True
        for check_mode in (True, False):
            refused = run_module(services, dict(services=[dict(wired, state="absent"), joiner]),
                                 check_mode=check_mode)
            assert refused["failed"] is True, refused
            assert f"netns {wired['name']} is joined by {joiner['name']}, which stay" in refused["msg"]
            assert os.path.exists(f"/run/netns/{wired['name']}")
        assert run_module(services, dict(services=[dict(joiner, state="absent")])).get("failed") is not True
        if os.path.realpath("/var/run") == "/run":
            assert run_module(service_module, via_var_run).get("failed") is not True
            refused = run_module(services, dict(services=[dict(wired, state="absent")]))
            assert f"is joined by {via_var_run['name']}, which stay" in refused.get("msg", ""), refused
            moved = run_module(services, dict(services=[dict(wired, netns=None, wiring=None)]))
            assert "netns_left" not in moved["services"][wired["name"]], moved  # kept: it is joined
            assert os.path.exists(f"/run/netns/{wired['name']}")
    finally:
        run_module(service_module, dict(name=via_var_run["name"], state="absent", manager="direct"))
        run_module(services, dict(services=[dict(joiner, state="absent")]))
        run_module(services, dict(services=[dict(wired, state="absent")]))


def test_check_mode_sees_the_removals_before_each_entry_as_the_run_does(run_module, two, unique_name):
    """Each removed entry was planned in check mode in a batch of its own: two entries leaving one
    bridge were both said to undeclare it (the run removed it), and a new entry taking a removed one's
    host end was refused ("not made by pyforkexec"), which the run then made. And the removed entry,
    the last to declare the bridge's address, took it off, for the new one to put it back a moment
    later (check mode foresaw neither)."""
    assert run_module(services, dict(services=two)).get("failed") is not True
    gone = [dict(e, state="absent") for e in two]
    planned = run_module(services, dict(services=gone), check_mode=True)
    done = run_module(services, dict(services=gone))
    for entry in two:
        name = entry["name"]
        assert planned["services"][name]["netns"]["actions"] == done["services"][name]["netns"]["actions"]
    assert any(a.startswith("del_bridge") for a in done["services"][two[1]["name"]]["netns"]["actions"])
    assert run_module(services, dict(services=two[:1])).get("failed") is not True
    taker = dict(_entry(unique_name(), two[0]["wiring"]["veths"][0]["peer"], f"{NET}.4/24",
                        bridge=two[0]["wiring"]["veths"][0]["bridge"]))
    swap = [dict(two[0], state="absent"), taker]
    try:
        planned = run_module(services, dict(services=swap), check_mode=True)
        assert planned.get("failed") is not True, planned
        done = run_module(services, dict(services=swap))
        assert done.get("failed") is not True, done
        assert planned["services"][taker["name"]]["netns"]["actions"] == \
            done["services"][taker["name"]]["netns"]["actions"]
        # The bridge's gateway, which the taker declares too, stays on it throughout: the removal did
        # not take it off for the taker's converge to put it back (the run's A and B both have it).
        gateway = f"{taker['wiring']['veths'][0]['bridge']} {NET}.1/24"
        assert not [a for entry in swap for a in done["services"][entry["name"]]["netns"]["actions"]
                    if a in (f"del_addr host {gateway}", f"add_addr host {gateway}")]
    finally:
        run_module(services, dict(services=[dict(taker, state="absent")]))


def test_a_change_made_while_removed_services_stop_is_seen_by_the_run(run_module, two):
    """The run rehearsed its wiring, let the host lock go while a removed service took its stop
    timeout, and then took the rehearsal's "nothing to do" for a kept entry whose namespace another
    converge had changed meanwhile: it reported the old topology, unchanged. Read again (and put back)."""
    import threading
    import time

    stubborn = dict(two[0], argv=["sh", "-c", "trap '' TERM; while :; do sleep 0.2; done"], stop_timeout=3)
    kept = two[1]
    assert run_module(services, dict(services=[stubborn, kept])).get("failed") is not True
    veth = kept["wiring"]["veths"][0]
    moved = dict(name=kept["name"], veths=[dict(veth, addresses=[f"{NET}.42/24"])],
                 bridges=kept["wiring"]["bridges"])
    changed = {}

    def meanwhile():  # (pyforkexec.netns itself: two module runs in one process would share their I/O)
        from pyforkexec import netns
        from pyforkexec.netns import options

        time.sleep(1.5)  # the run is waiting for the stubborn service to stop
        changed["changed"] = bool(netns.converge(kept["name"], options.load(moved)).actions)

    other = threading.Thread(target=meanwhile)
    other.start()
    done = run_module(services, dict(services=[dict(stubborn, state="absent"), kept]))
    other.join()
    assert changed.get("changed") is True, changed
    result = done["services"][kept["name"]]
    assert result["changed"] is True and f"add_addr ns eth0 {NET}.3/24" in result["netns"]["actions"], result
    shown = subprocess.run(["ip", "-n", kept["name"], "-br", "addr", "show", "eth0"], capture_output=True,
                           text=True, check=True).stdout
    assert f"{NET}.3/24" in shown and f"{NET}.42/24" not in shown, shown


@pytest.mark.parametrize("how", ["pid", "symlink", "same-run-path", "exited-pid"])
def test_a_join_through_any_path_counts_as_one(run_module, two, unique_name, tmp_path, how):
    """A staying service that joins the namespace through /proc/PID/ns/net, a symlink of its file, or
    (in the same run) a join path, was no joiner: the namespace was removed under it."""
    from ansible_collections.pyforkexec.isolation.plugins.modules import service as service_module

    wired = two[0]
    started = run_module(services, dict(services=[wired]))
    assert started.get("failed") is not True, started
    target = f"/run/netns/{wired['name']}"
    helper = None
    if how == "pid":
        join = dict(pid=started["services"][wired["name"]]["pid"], namespaces=["net"])
    elif how == "exited-pid":  # a process in it when the joiner was declared, gone since (its spec
        # records the namespace's inode)
        helper = subprocess.Popen(["ip", "netns", "exec", wired["name"], "sleep", "60"])
        while os.stat(f"/proc/{helper.pid}/ns/net").st_ino != os.stat(target).st_ino:
            pass
        join = dict(path=f"/proc/{helper.pid}/ns/net", namespaces=["net"])
    elif how == "symlink":
        (tmp_path / "ns").symlink_to(target)
        join = dict(path=str(tmp_path / "ns"), namespaces=["net"])
    else:
        join = dict(path=target, namespaces=["net"])
    joiner = dict(name=unique_name(), argv=PROGRAM, manager="direct", join=[join])
    try:
        if how == "same-run-path":
            removal = [dict(wired, state="absent"), joiner]
        else:
            assert run_module(service_module, joiner).get("failed") is not True
            removal = [dict(wired, state="absent")]
        if helper is not None:
            helper.kill()
            helper.wait()
        refused = run_module(services, dict(services=removal))
        assert f"is joined by {joiner['name']}, which stay" in refused.get("msg", ""), refused
        assert os.path.exists(target)
    finally:
        if helper is not None and helper.poll() is None:
            helper.kill()
            helper.wait()
        run_module(service_module, dict(name=joiner["name"], state="absent", manager="direct"))


def test_a_bridge_mtu_an_entry_declares_holds_while_an_entry_before_it_moves_its_small_port_off(
        run_module, unique_name):
    """A bridge at 1400 because it followed one service's small port (veth mtu 1400); B moves that
    service off the bridge and has another, later in the list, declare the bridge's 1400: the bridge
    followed the ports left to 1500 when the first one's namespace was wired, until the second one's
    set it back (0.6 s in h156's A->B probe). The run's declared MTUs hold it: at most for the moment
    between the port's leaving and the set that follows it (the kernel takes no set of the MTU a bridge
    has, and only a set stops it following its ports)."""
    tag = os.getpid() % 10000
    bridge = f"pfsbr{tag}m"
    small, declarer = unique_name(), unique_name()
    monitor = None

    def entries(small_on_bridge, mtu):
        on = dict(name="eth0", peer=f"pfs{tag}m", mtu=1400, addresses=[f"{NET}.2/24"])
        on = dict(on, bridge=bridge) if small_on_bridge else on
        port = dict(name="eth0", peer=f"pfs{tag}n", bridge=bridge, addresses=[f"{NET}.3/24"])
        described = dict(name=bridge, addresses=[f"{NET}.1/24"], **({"mtu": mtu} if mtu else {}))
        return [dict(name=small, argv=PROGRAM, manager="direct", netns=small, wiring=dict(veths=[on])),
                dict(name=declarer, argv=PROGRAM, manager="direct", netns=declarer,
                     wiring=dict(veths=[port], bridges=[described]))]

    try:
        first = run_module(services, dict(services=entries(True, None)))
        assert first.get("failed") is not True, first
        with open(f"/sys/class/net/{bridge}/mtu") as f:
            assert f.read().strip() == "1400"
        monitor = subprocess.Popen(["ip", "-ts", "-o", "monitor", "link"], stdout=subprocess.PIPE, text=True)
        time.sleep(0.2)
        second = run_module(services, dict(services=entries(False, 1400)))
        assert second.get("failed") is not True, second
        time.sleep(0.2)
        monitor.terminate()
        seen = [line for line in monitor.communicate()[0].splitlines() if f" {bridge}: " in line]
        since, windows = None, []  # (seconds at another MTU)
        for line in seen:
            at = datetime.datetime.fromisoformat(line[1:line.index("]")]).timestamp()
            if " mtu 1400 " not in line and since is None:
                since = at
            elif " mtu 1400 " in line and since is not None:
                windows.append(at - since)
                since = None
        assert since is None and all(w < 0.05 for w in windows), (windows, seen)
        again = run_module(services, dict(services=entries(False, 1400)))
        assert again["changed"] is False, again
    finally:
        if monitor is not None and monitor.poll() is None:
            monitor.kill()
            monitor.wait()
        gone = run_module(services, dict(services=[dict(e, state="absent") for e in entries(False, None)]))
        assert gone.get("failed") is not True, gone
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
