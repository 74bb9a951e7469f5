"""``pyforkexec netns up FILE`` and ``down NAME`` on the real kernel: the namespace, its veth, bridge,
addresses, route and sysctl appear, a second ``up`` changes nothing, ``down`` removes what it made."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import pfe, run
from helpers.marks import needs_root

pytestmark = needs_root
PID = os.getpid() % 100000


def ip(*args: str) -> Any:
    """``ip -j ARGS`` as parsed JSON."""
    res = run(["ip", "-j", *args])
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout or "[]")


@pytest.fixture
def names() -> Iterator[dict[str, str]]:
    """Unique netns, bridge and veth names for this test (cleaned up whatever happens)."""
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (ip) is not installed")
    pytest.importorskip("pyroute2", reason="pyforkexec netns needs pyroute2 (the net extra)")
    found = dict(netns=f"pfe-cli-{PID}", bridge=f"pfecb{PID}", peer=f"pfecv{PID}")
    yield found
    pfe("netns", "down", found["netns"])
    for link in (found["peer"], found["bridge"]):
        run(["ip", "link", "del", link])


def document(tmp_path: Path, names: dict[str, str], **changes: Any) -> str:
    doc = dict(
        name=names["netns"],
        bridges=[dict(name=names["bridge"], addresses=["10.213.7.1/24"])],
        veths=[dict(name="eth0", peer=names["peer"], bridge=names["bridge"], mtu=1400,
                    addresses=["10.213.7.2/24", "fd13:7::2/64"])],
        gateway=["10.213.7.1"],
        routes=[dict(dst="10.214.0.0/16", gateway="10.213.7.254", metric=7)],
        sysctls={"net.ipv4.ip_forward": 1},
    )
    doc.update(changes)
    path = tmp_path / f"{names['netns']}.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_up_creates_the_topology_then_changes_nothing(tmp_path: Path, names: dict[str, str]) -> None:
    path = document(tmp_path, names)
    first = pfe("netns", "up", path)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == f"create_netns {names['netns']}"
    assert f"create_veth eth0 {names['peer']}" in lines and "sysctl net.ipv4.ip_forward 1" in lines
    ns = names["netns"]
    assert ns in [n["name"] for n in ip("netns", "list")]
    inside = {link["ifname"]: link for link in ip("-n", ns, "address", "show")}
    assert inside["lo"]["operstate"] == "UNKNOWN" and "UP" in inside["lo"]["flags"]
    assert inside["eth0"]["mtu"] == 1400
    assert {a["local"] for a in inside["eth0"]["addr_info"]} >= {"10.213.7.2", "fd13:7::2"}
    host_end = ip("link", "show", names["peer"])[0]
    assert host_end["master"] == names["bridge"] and host_end["mtu"] == 1400
    bridge = ip("address", "show", names["bridge"])[0]
    assert "10.213.7.1" in {a["local"] for a in bridge["addr_info"]}
    routes = {(r["dst"], r.get("gateway")) for r in ip("-n", ns, "route", "show")}
    assert {("default", "10.213.7.1"), ("10.214.0.0/16", "10.213.7.254")} <= routes
    forwarding = run(["ip", "netns", "exec", ns, "cat", "/proc/sys/net/ipv4/ip_forward"])
    assert forwarding.stdout.strip() == "1"
    second = pfe("netns", "up", path)
    assert (second.returncode, second.stdout, second.stderr) == (0, "", "")


def test_up_applies_only_what_differs_and_check_changes_nothing(tmp_path: Path,
                                                                names: dict[str, str]) -> None:
    assert pfe("netns", "up", document(tmp_path, names)).returncode == 0
    changed = document(tmp_path, names, sysctls={"net.ipv4.ip_forward": 0}, routes=[])
    planned = pfe("netns", "--check", "up", changed)
    assert planned.returncode == 0, planned.stderr
    assert planned.stdout.splitlines() == ["del_route 10.214.0.0/16 via 10.213.7.254 dev eth0 metric 7",
                                           "sysctl net.ipv4.ip_forward 0"]
    assert pfe("netns", "up", changed).stdout == planned.stdout  # check mode changed nothing
    assert pfe("netns", "up", changed).stdout == ""


def test_down_removes_the_netns_its_veth_and_the_unused_bridge(tmp_path: Path,
                                                               names: dict[str, str]) -> None:
    assert pfe("netns", "up", document(tmp_path, names)).returncode == 0
    down = subprocess.run([sys.executable, "-m", "pyforkexec", "netns", "down", names["netns"]],
                          capture_output=True, text=True, timeout=30)
    assert down.returncode == 0, down.stderr
    assert down.stdout.splitlines() == [f"del_veth {names['peer']}", f"del_bridge {names['bridge']}",
                                        f"delete_netns {names['netns']}"]
    assert names["netns"] not in [n["name"] for n in ip("netns", "list")]
    links = [link["ifname"] for link in ip("link", "show")]
    assert names["peer"] not in links and names["bridge"] not in links
    again = pfe("netns", "down", names["netns"])
    assert (again.returncode, again.stdout) == (0, "")


def test_down_keeps_a_bridge_another_port_still_uses(tmp_path: Path, names: dict[str, str]) -> None:
    assert pfe("netns", "up", document(tmp_path, names)).returncode == 0
    other = f"pfeco{PID}"
    assert run(["ip", "link", "add", other, "type", "veth", "peer", "name", f"pfecp{PID}"]).returncode == 0
    try:
        assert run(["ip", "link", "set", other, "master", names["bridge"]]).returncode == 0
        down = pfe("netns", "down", names["netns"])
        assert down.returncode == 0 and f"del_bridge {names['bridge']}" not in down.stdout
        assert ip("link", "show", names["bridge"])[0]["ifname"] == names["bridge"]
    finally:
        run(["ip", "link", "del", other])


@pytest.mark.parametrize(("doc", "error"), [
    ({"name": "x", "veths": [{"name": "eth0", "peer": "p", "mtu": "big"}]},
     "veths[0].mtu: expected an integer"),
    ({"name": "x", "sysctls": {"kernel.pid_max": 100}}, "sysctls: kernel.pid_max: only net.* sysctls"),
    ({"name": "x", "vethz": []}, "vethz: unknown field"),
    ({"name": "x", "sysctls": {"net.ipv4.ip_forward": 1, "net/ipv4/ip_forward": 0}},
     "sysctls: net.ipv4.ip_forward and net/ipv4/ip_forward name the same sysctl"),
    ({"name": "x", "sysctls": {"net.ipv4.ip_forward": 1, "net.ipv4..ip_forward": 1}},
     "sysctls: net.ipv4..ip_forward: has an empty name"),
])
def test_a_bad_document_exits_1_naming_the_option(tmp_path: Path, doc: dict, error: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    res = pfe("netns", "up", str(path))
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.startswith(f"pyforkexec: {path}: {error}"), res.stderr


def test_usage_errors_exit_1(tmp_path: Path) -> None:
    assert pfe("netns").returncode == 1
    assert pfe("netns", "sideways", "x").returncode == 1
    res = pfe("netns", "up", str(tmp_path / "missing.json"))
    assert res.returncode == 1 and "cannot read" in res.stderr
    res = pfe("netns", "down", "../etc")
    assert res.returncode == 1 and "is not a valid netns name" in res.stderr


def test_a_document_from_a_closed_standard_input_is_a_read_error() -> None:
    res = pfe("netns", "up", "-", preexec_fn=lambda: os.close(0))  # <&-
    assert (res.returncode, res.stdout) == (1, ""), res
    assert res.stderr == "pyforkexec: -: cannot read standard input: Bad file descriptor\n"


def test_a_link_in_the_way_exits_125(tmp_path: Path, names: dict[str, str]) -> None:
    made = run(["ip", "link", "add", names["peer"], "type", "veth", "peer", "name", f"pfecp{PID}"])
    assert made.returncode == 0, made.stderr  # a host link that is not ours, where the veth would go
    res = pfe("netns", "up", document(tmp_path, names))
    assert res.returncode == 125
    assert f"host link {names['peer']} exists and was not made by pyforkexec" in res.stderr
    assert names["netns"] not in [n["name"] for n in ip("netns", "list")]  # refused before any change


# `netns up DOC` in a process that gets SIGTERM (default action, as systemd's stop of a boot unit or
# timeout(1) send it) in the middle of the plan: when the kernel module's function WHERE is called.
_TERMINATED_UP = """
import os, signal, sys
from pyforkexec.netns import kernel
from pyforkexec.cli.netns import main
real = getattr(kernel, sys.argv[2])
def where(*args, **kw):
    os.kill(os.getpid(), signal.SIGTERM)
    return real(*args, **kw)
setattr(kernel, sys.argv[2], where)
main(["up", sys.argv[1]])
"""


@pytest.mark.parametrize("where", ["create", "veth_alias", "_local_mac"])
def test_a_sigterm_during_up_ends_it_once_the_plan_is_carried_out(tmp_path: Path, names: dict[str, str],
                                                                  where: str) -> None:
    """Cut between a link and the alias that makes it ours, the link was refused by every later
    converge as "not made by pyforkexec", and down left it; cut between two actions, the namespace
    was half-made. The ending signals wait for the plan: the process ends by the signal with the
    topology as planned (here: the namespace made and marked, the bridge, the veth)."""
    path = document(tmp_path, names)
    killed = run([sys.executable, "-c", _TERMINATED_UP, path, where], cwd="/")
    assert killed.returncode == -15, killed.stderr  # ended by the signal, once the plan was done
    checked = pfe("netns", "--check", "up", path)
    assert (checked.returncode, checked.stdout) == (0, ""), checked
    lo = ip("-n", names["netns"], "-d", "link", "show", "lo")[0]
    assert lo.get("ifalias", "").startswith("pyforkexec")
    assert pfe("netns", "down", names["netns"]).returncode == 0
    assert names["peer"] not in {link["ifname"] for link in ip("link", "show")}
    assert not os.path.exists(f"/run/netns/{names['netns']}")


_TERMINATED_FAILING_UP = """
import os, signal, sys
from pyforkexec.netns import kernel
from pyforkexec.cli.netns import main
kernel._trial_writes = lambda trial: None  # as a kernel that refuses the namespace's own write only
real = kernel.veth_alias
def where(*args):
    os.kill(os.getpid(), signal.SIGTERM)
    return real(*args)
kernel.veth_alias = where
main(["up", sys.argv[1]])
"""


def test_a_sigterm_during_a_failing_first_up_waits_for_its_undo(tmp_path: Path,
                                                                names: dict[str, str]) -> None:
    """The first converge fails at a sysctl, after the SIGTERM came: the signal was delivered when the
    apply raised, before the undo, and the namespace and its veth stayed half-made."""
    path = document(tmp_path, names, sysctls={"net.ipv4.tcp_syn_retries": 999})
    killed = run([sys.executable, "-c", _TERMINATED_FAILING_UP, path], cwd="/")
    assert killed.returncode == -15, killed.stderr
    assert not os.path.exists(f"/run/netns/{names['netns']}")
    assert not {names["peer"], names["bridge"]} & {link["ifname"] for link in ip("link", "show")}


def test_a_veth_left_unmarked_by_a_kill_is_taken_back(tmp_path: Path, names: dict[str, str]) -> None:
    """SIGKILL (which nothing blocks) between a veth's creation and its alias: every later up refused
    its host end as "not made by pyforkexec", and down left it and the namespace. A veth whose other
    end is the namespace's declared link (with the declared peer name) is ours by construction: up marks
    it. (Undeclared, one of others into the namespace stays theirs: down leaves it, and the namespace.)"""
    path = document(tmp_path, names)
    assert pfe("netns", "up", path).returncode == 0
    assert run(["ip", "link", "set", "dev", names["peer"], "alias", ""]).returncode == 0  # as killed
    again = pfe("netns", "up", path)
    assert again.returncode == 0 and again.stdout.splitlines()[0] == f"mark_veth {names['peer']} eth0", again
    assert pfe("netns", "--check", "up", path).stdout == ""
    assert pfe("netns", "down", names["netns"]).returncode == 0
    assert names["peer"] not in {link["ifname"] for link in ip("link", "show")}
    assert not os.path.exists(f"/run/netns/{names['netns']}")
