"""A service's own /etc/hosts and /etc/resolv.conf (module_utils/name_files.py; podman's --add-host,
--no-hosts, --dns, --dns-search, --dns-option): real services, which report what they read from
inside their own namespaces (the two files, their hostname looked up with getaddrinfo, getent hosts
of the extra names); the files' check mode, diff, idempotence and removal; malformed values and what
cannot hold refused before anything changes, naming the option."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import files as files_util
from ansible_collections.pyforkexec.isolation.plugins.module_utils import name_files
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
from ansible_collections.pyforkexec.isolation.plugins.modules import service, services

# Reports, as JSON in the file argv[1], what it reads and resolves from inside its namespaces, then
# waits for its stop (as PID 1 of its PID namespace, SIGTERM ends it through its handler).
REPORT = r"""
import json, os, signal, socket, subprocess, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
out = {}
for path in ("/etc/hosts", "/etc/resolv.conf"):
    with open(path) as f:
        out[path] = f.read()
out["hostname"] = name = socket.gethostname()
began = time.monotonic()
try:
    out["own"] = sorted({found[4][0] for found in socket.getaddrinfo(name, None)})
except OSError as e:
    out["own"] = str(e)
out["own_seconds"] = time.monotonic() - began
out["getent"] = {n: subprocess.run(["getent", "hosts", n], capture_output=True, text=True).stdout.split()
                 for n in sys.argv[2:]}
with open(sys.argv[1] + ".part", "w") as f:
    json.dump(out, f)
os.rename(sys.argv[1] + ".part", sys.argv[1])
while True:
    time.sleep(60)
"""
# The generated /etc/hosts is bound over the one the service reads, which must exist: a minimal root
# (debootstrap's minbase) has none, and there the default is left out and etc_hosts refused.
needs_etc_hosts = pytest.mark.skipif(not os.path.isfile("/etc/hosts"),
                                     reason="this machine has no /etc/hosts to bind a service's own over")
TAG = os.getpid() % 1000
NET = f"10.97.{TAG % 250}"


@pytest.fixture
def name(run_module):
    """New service names (h137-...), each removed after the test with whatever it was wired into."""
    counter = iter(range(100))
    made = []

    def new():
        made.append(f"h137-{os.getpid() % 100000}-{next(counter)}")
        return made[-1]

    yield new
    for each in made:
        gone = run_module(services, dict(services=[dict(name=each, state="absent", stop_timeout=0)]))
        assert gone.get("failed") is not True, gone
        if os.path.exists(f"/run/netns/{each}"):  # (wired: its entry removes its namespace)
            wired = dict(name=each, state="absent", netns=each, wiring=dict(), stop_timeout=0)
            gone = run_module(services, dict(services=[wired]))
            assert gone.get("failed") is not True, gone


def _report(path, *names, wait=60.0):
    deadline = time.monotonic() + wait
    while not path.exists():
        assert time.monotonic() < deadline, "the service never reported"
        time.sleep(0.02)
    report = json.loads(path.read_text())
    path.unlink()
    return report


def _wired(made, report, n, **extra):
    """A services entry wired into its own namespace (a veth with address NET.n, no bridge), in new
    pid, mount and uts namespaces, with hostname web-N."""
    wiring = dict(veths=[dict(name="eth0", peer=f"h137p{TAG}x{n}", addresses=[f"{NET}.{n}/24"])])
    return dict(dict(name=made, argv=["python3", "-c", REPORT, str(report), *extra.pop("lookup", [])],
                     manager="direct", namespaces=["pid", "mount", "uts"], hostname=f"web-{n}",
                     mounts=[dict(type="proc", target="/proc")], netns=made, wiring=wiring, start_check=0),
                **extra)


def _files(made):
    """The service's spec and its name resolution files."""
    return [paths.spec_path(made), paths.hosts_path(made), paths.resolv_path(made)]


def _lines(text):
    return [line for line in text.splitlines() if line and not line.startswith("#")]


@needs_etc_hosts
def test_a_wired_service_gets_its_own_hosts_file_and_finds_its_name_without_dns(run_module, name, tmp_path):
    made, report = name(), tmp_path / "report"
    entry = _wired(made, report, 2)
    planned = run_module(services, dict(services=[entry]), check_mode=True, diff=True)
    assert planned["services"][made]["actions"] == [f"write {paths.hosts_path(made)}",
                                                    f"write {paths.spec_path(made)}", "start"], planned
    assert not os.path.exists(paths.hosts_path(made))
    done = run_module(services, dict(services=[entry]), diff=True)
    assert done.get("failed") is not True, done
    assert done["services"][made]["actions"] == planned["services"][made]["actions"]
    seen = _report(report)
    assert _lines(seen["/etc/hosts"]) == ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
                                          f"{NET}.2\tweb-2"], seen
    assert seen["own"] == [f"{NET}.2"] and seen["own_seconds"] < 1.0, seen
    with open("/etc/resolv.conf") as f:
        assert seen["/etc/resolv.conf"] == f.read()  # no dns option: the host's, as it is
    with open(paths.hosts_path(made)) as f:
        assert f.read() == seen["/etc/hosts"]
    assert os.stat(paths.hosts_path(made)).st_mode & 0o777 == 0o644
    diff = {d["before_header"]: d for d in done["diff"]}
    assert diff[f"{made}: {paths.hosts_path(made)}"]["after"] == seen["/etc/hosts"], done["diff"]
    again = run_module(services, dict(services=[entry]))
    assert again["changed"] is False, again
    assert again["services"][made]["pid"] == done["services"][made]["pid"]


@needs_etc_hosts
def test_a_wired_service_in_its_own_user_namespace_gets_it_too(run_module, name):
    """As the role runs services: a user namespace whose root is an unprivileged host account, without
    capabilities. Its child makes the read-only bind of a root-owned file in a mount namespace its user
    namespace owns, and the service reads it there."""
    made, out = name(), tempfile.mkdtemp(prefix="h137-")
    try:
        os.chmod(out, 0o777)
        report = Path(out) / "report"
        entry = _wired(made, report, 4, namespaces=["user", "pid", "mount", "uts", "ipc"],
                       uid_map=[dict(container_id=0, host_id=65534)],
                       gid_map=[dict(container_id=0, host_id=65534)],
                       credential=dict(uid=0, gid=0), capabilities=dict(keep=[]), no_new_privs=True)
        entry["argv"][0] = "/usr/bin/python3"
        done = run_module(services, dict(services=[entry]))
        assert done.get("failed") is not True, done
        assert done["services"][made]["namespaces"]["user"]["same_as_host"] is False
        seen = _report(report)
        assert f"{NET}.4\tweb-4" in _lines(seen["/etc/hosts"]), seen
        assert seen["own"] == [f"{NET}.4"] and seen["own_seconds"] < 1.0, seen
    finally:
        shutil.rmtree(out)


@needs_etc_hosts
def test_no_hosts_leaves_the_default_out_and_the_change_restarts_once(run_module, name, tmp_path):
    """An existing wired service (here: one with no_hosts) gets the generated file at its next run:
    its spec changes (one mount more), so it restarts once, shown in the diff; then nothing changes."""
    made, report = name(), tmp_path / "report"
    first = run_module(services, dict(services=[_wired(made, report, 3, no_hosts=True)]))
    assert first.get("failed") is not True, first
    seen = _report(report)
    with open("/etc/hosts") as f:
        assert seen["/etc/hosts"] == f.read()
    assert not os.path.exists(paths.hosts_path(made))
    entry = _wired(made, report, 3)
    planned = run_module(services, dict(services=[entry]), check_mode=True, diff=True)
    done = run_module(services, dict(services=[entry]), diff=True)
    for result in (planned, done):
        assert result["services"][made]["actions"] == [f"write {paths.hosts_path(made)}",
                                                       f"write {paths.spec_path(made)}", "restart"], result
    assert [d["before_header"] for d in planned["diff"]] == [d["before_header"] for d in done["diff"]]
    assert f"{NET}.3\tweb-3" in _lines(_report(report)["/etc/hosts"])
    assert run_module(services, dict(services=[entry]))["changed"] is False
    # and back: the file goes with the mount, the service restarts once more
    back = run_module(services, dict(services=[_wired(made, report, 3, no_hosts=True)]))
    assert back["services"][made]["actions"] == [f"write {paths.spec_path(made)}",
                                                 f"remove {paths.hosts_path(made)}", "restart"], back
    assert not os.path.exists(paths.hosts_path(made))


@needs_etc_hosts
def test_extra_hosts_and_dns_options_are_what_the_service_reads(run_module, name, tmp_path):
    made, report = name(), tmp_path / "report"
    args = dict(name=made, argv=["python3", "-c", REPORT, str(report), "db.h137", "cache"], manager="direct",
                namespaces=["mount", "uts"], hostname="h137-host", start_check=0,
                etc_hosts={"db.h137": "10.1.2.3", "cache": ["10.1.2.4", "fd00::4"]},
                dns=["192.0.2.53", "2001:db8::53"], dns_search=["example.test", "h137.test"],
                dns_options=["ndots:2", "timeout:1", "attempts:1", "rotate"])
    planned = run_module(service, args, check_mode=True, diff=True)
    files = _files(made)
    assert planned["actions"] == [*(f"write {f}" for f in files[1:]), f"write {files[0]}", "start"], planned
    assert not any(os.path.exists(f) for f in files)
    done = run_module(service, args, diff=True)
    assert done.get("failed") is not True and done["actions"] == planned["actions"], done
    assert [d["after"] for d in done["diff"][0:2]] == [d["after"] for d in planned["diff"][0:2]]
    seen = _report(report)
    assert _lines(seen["/etc/hosts"]) == [
        "127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", "127.0.1.1\th137-host",
        "10.1.2.4\tcache", "fd00::4\tcache", "10.1.2.3\tdb.h137"], seen
    assert _lines(seen["/etc/resolv.conf"]) == [
        "nameserver 192.0.2.53", "nameserver 2001:db8::53", "search example.test h137.test",
        "options ndots:2 timeout:1 attempts:1 rotate"], seen
    assert seen["own"] == ["127.0.1.1"] and seen["getent"]["db.h137"] == ["10.1.2.3", "db.h137"], seen
    assert seen["getent"]["cache"][1] == "cache", seen
    with open("/etc/hosts") as f:  # the host's are untouched
        assert "db.h137" not in f.read()
    assert run_module(service, args)["changed"] is False
    # a changed entry: the file is rewritten and the service restarted, shown in the diff
    changed = dict(args, etc_hosts=dict(args["etc_hosts"], **{"db.h137": "10.1.2.9"}))
    planned = run_module(service, changed, check_mode=True, diff=True)
    assert planned["actions"] == [f"write {paths.hosts_path(made)}", "restart"], planned
    done = run_module(service, changed, diff=True)
    assert done["actions"] == planned["actions"] and done["main_pid"] is not None, done
    assert done["diff"][0]["before_header"] == paths.hosts_path(made)
    assert "10.1.2.3\tdb.h137" in done["diff"][0]["before"]
    assert "10.1.2.9\tdb.h137" in done["diff"][0]["after"]
    assert _report(report)["getent"]["db.h137"] == ["10.1.2.9", "db.h137"]
    # dropped: both files go with their mounts
    plain = {k: v for k, v in changed.items() if not k.startswith(("etc_hosts", "dns"))}
    done = run_module(service, plain)
    assert done["actions"] == [f"write {files[0]}", *(f"remove {f}" for f in files[1:]), "restart"], done
    assert not os.path.exists(files[1]) and not os.path.exists(files[2])
    with open("/etc/hosts") as f:
        assert _report(report)["/etc/hosts"] == f.read()
    # removal: no file is left
    run_module(service, dict(args, state="absent"))  # (with them again: then the service is removed)
    assert not any(os.path.exists(f) for f in files)


def test_a_name_server_respelled_is_no_change(run_module, name):
    """dns names each server by its address (check refuses ::1 and 0::1 together as one server), but the
    file was written as spelled: 2001:DB8:0::53 for 2001:db8::53 rewrote it and restarted the service
    (etc_hosts and dns_options were written in one spelling already). Now each is written as ipaddress
    spells it, the zone kept."""
    made = name()
    args = dict(name=made, argv=["sleep", "600"], manager="direct", namespaces=["mount"], start_check=0,
                stop_timeout=0, dns=["2001:db8::53", "fe80::1%lo", "192.0.2.53"])
    started = run_module(service, args)
    assert started.get("failed") is not True, started
    with open(paths.resolv_path(made)) as f:
        assert [line for line in _lines(f.read()) if line.startswith("nameserver")] == [
            "nameserver 2001:db8::53", "nameserver fe80::1%lo", "nameserver 192.0.2.53"]
    respelled = dict(args, dns=["2001:DB8:0::53", "FE80:0::1%lo", "192.0.2.53"])
    assert run_module(service, respelled, check_mode=True)["actions"] == []
    again = run_module(service, respelled)
    assert again["changed"] is False and again["pid"] == started["pid"], again


@needs_etc_hosts
def test_an_entry_of_localhost_or_of_its_hostname_is_what_the_service_resolves(run_module, name, tmp_path):
    """An etc_hosts entry stands in place of the generated line of its name: the resolver answers a
    name from its first line, and the generated one (127.0.1.1, 127.0.0.1) came first and hid it."""
    made, report = name(), tmp_path / "report"
    args = dict(name=made, argv=["python3", "-c", REPORT, str(report), "localhost", "h140-host"],
                manager="direct", namespaces=["mount", "uts"], hostname="h140-host", start_check=0,
                etc_hosts={"LocalHost": "10.1.2.5", "h140-host": ["10.1.2.6", "fd00::6"]}, stop_timeout=0)
    done = run_module(service, args)
    assert done.get("failed") is not True, done
    seen = _report(report)
    assert _lines(seen["/etc/hosts"]) == ["::1\tip6-localhost ip6-loopback", "10.1.2.5\tLocalHost",
                                          "10.1.2.6\th140-host", "fd00::6\th140-host"], seen
    assert seen["getent"]["localhost"] == ["10.1.2.5", "LocalHost"], seen
    assert seen["getent"]["h140-host"][1:] == ["h140-host"], seen
    assert seen["own"] == ["10.1.2.6", "fd00::6"], seen


def test_a_mount_over_etc_leaves_the_default_out(run_module, name, tmp_path):
    """What the service has under a mount of /etc (or /) is that mount's: the default bind is left out
    rather than fail its start where the mount has no hosts file."""
    made = name()
    etc = tmp_path / "etc"
    etc.mkdir()
    entry = _wired(made, tmp_path / "report", 5, mounts=[dict(type="proc", target="/proc"),
                                                         dict(type="bind", source=str(etc), target="/etc")])
    planned = run_module(services, dict(services=[entry]), check_mode=True)
    assert planned["services"][made]["actions"] == [f"write {paths.spec_path(made)}", "start"], planned


def test_a_failed_first_start_leaves_no_file(run_module, name):
    made = name()
    args = dict(name=made, argv=["sh", "-c", "exit 3"], manager="direct", namespaces=["mount"], start_check=5,
                etc_hosts={"db": "10.0.0.1"}, dns=["192.0.2.1"])
    failed = run_module(service, args)
    assert failed["failed"] is True, failed
    assert not any(os.path.exists(f) for f in _files(made))


@needs_etc_hosts
def test_removal_takes_the_files_away(run_module, name, tmp_path):
    made = name()
    args = dict(name=made, argv=["sleep", "600"], manager="direct", namespaces=["mount"], start_check=0,
                etc_hosts={}, dns=[], stop_timeout=0)
    done = run_module(service, args)
    assert done.get("failed") is not True, done
    files = [paths.hosts_path(made), paths.resolv_path(made)]
    assert all(os.path.exists(f) for f in files)
    with open(files[1]) as f:
        assert _lines(f.read()) == _lines_of_host_resolv_but_servers()
    planned = run_module(service, dict(name=made, state="absent"), check_mode=True, diff=True)
    assert all(f"remove {f}" in planned["actions"] for f in files), planned
    assert all(os.path.exists(f) for f in files)
    gone = run_module(service, dict(name=made, state="absent"))
    assert all(f"remove {f}" in gone["actions"] for f in files), gone
    assert not any(os.path.exists(f) for f in files)


@pytest.mark.parametrize("namespaces", [["mount", "net"], ["mount"]])
def test_the_hosts_loopback_nameservers_are_left_out_in_another_network_namespace(
        run_module, name, tmp_path, monkeypatch, namespaces):
    """systemd-resolved's 127.0.0.53 (or a local dnsmasq on ::1) is on the host's loopback: a service in
    a network namespace of its own, whose loopback has no such server, gets the host's other ones; with
    none left, the option that copies them is refused before anything changes. In the host's network
    namespace they are kept."""
    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 127.0.0.53\nnameserver ::1\nnameserver 10.0.0.1\nsearch host.test\n")
    monkeypatch.setattr(name_files, "HOST_RESOLV_CONF", str(host))
    made = name()
    args = dict(name=made, argv=["sleep", "600"], manager="direct", namespaces=namespaces, start_check=0,
                dns_options=["ndots:2"], stop_timeout=0)
    planned = run_module(service, args, check_mode=True, diff=True)
    after = next(d["after"] for d in planned["diff"] if d.get("after_header") == paths.resolv_path(made))
    servers = ["10.0.0.1"] if "net" in namespaces else ["127.0.0.53", "::1", "10.0.0.1"]
    assert _lines(after) == [*(f"nameserver {s}" for s in servers), "search host.test", "options ndots:2"]
    host.write_text("nameserver 127.0.0.53\n")
    refused = run_module(service, args, check_mode=True)
    if "net" in namespaces:
        assert refused["failed"] is True and refused["msg"] == (
            "dns_options: copies this host's nameservers into the service's resolv.conf, but they are on "
            "this host's loopback (127.0.0.53), which the service's network namespace cannot reach: give "
            "dns"), refused
    else:
        assert refused.get("failed") is not True, refused
    assert not any(os.path.exists(f) for f in _files(made))


@pytest.mark.parametrize("search", [[], ["."]])
def test_no_search_domains_is_written_so_that_glibc_searches_none(run_module, name, search):
    """Without a search line glibc searches the domain of the hostname: "no search domains" is
    ``search .``, as systemd-resolved writes it, which glibc takes as the root (the name as it is)."""
    made = name()
    args = dict(name=made, argv=["sleep", "600"], manager="direct", namespaces=["mount", "uts"],
                hostname="web.h137.test", start_check=0, dns=["192.0.2.53"], dns_search=search)
    planned = run_module(service, args, check_mode=True, diff=True)
    after = next(d["after"] for d in planned["diff"] if d.get("after_header") == paths.resolv_path(made))
    assert [line for line in _lines(after) if not line.startswith("options")] == [
        "nameserver 192.0.2.53", "search ."], planned


def _lines_of_host_resolv_but_servers():
    with open("/etc/resolv.conf") as f:
        return [line for line in _lines(f.read()) if not line.startswith("nameserver")]


# option values -> the start of the message (after "services[NAME]: " for the services module)
REFUSED = [
    (dict(etc_hosts={"bad name": "10.0.0.1"}), "etc_hosts.bad name: 'bad name' is not a host name"),
    (dict(etc_hosts={"db": "10.0.0.300"}), "etc_hosts.db: '10.0.0.300' is not an IPv4 or IPv6 address"),
    (dict(etc_hosts={"db": "010.0.0.1"}), "etc_hosts.db: '010.0.0.1' is not an IPv4 or IPv6 address"),
    (dict(etc_hosts={"db": ["10.0.0.1", "nope"]}), "etc_hosts.db[1]: 'nope' is not an IPv4 or IPv6 address"),
    (dict(etc_hosts={"db": []}), "etc_hosts.db: is an empty list"),
    (dict(etc_hosts={"db": None}), "etc_hosts.db: expected an IPv4 or IPv6 address, got NoneType"),
    (dict(etc_hosts={"db": "fe80::1%eth0"}), "etc_hosts.db: 'fe80::1%eth0' has a zone"),
    (dict(etc_hosts={"db#x": "10.0.0.1"}), "etc_hosts.db#x: 'db#x' is not a host name"),
    (dict(etc_hosts={"-db": "10.0.0.1"}), "etc_hosts.-db: '-db' is not a host name"),
    (dict(etc_hosts={"5": "10.0.0.1"}), "etc_hosts.5: '5' reads as an IPv4 address, not a host name"),
    (dict(etc_hosts={"1.2.3.4": "10.0.0.1"}), "etc_hosts.1.2.3.4: '1.2.3.4' reads as an IPv4 address"),
    (dict(etc_hosts={"db.08": "10.0.0.1"}), "etc_hosts.db.08: 'db.08' reads as an IPv4 address"),
    (dict(etc_hosts={"0x10": "10.0.0.1"}), "etc_hosts.0x10: '0x10' reads as an IPv4 address"),
    (dict(etc_hosts={"a" * 64: "10.0.0.1"}), f"etc_hosts.{'a' * 64}: '{'a' * 64}' is not a host name"),
    (dict(etc_hosts={"db": "10.0.0.1"}, no_hosts=True), "no_hosts: true contradicts etc_hosts"),
    (dict(etc_hosts={"db": "10.0.0.1", "DB": "10.0.0.2"}), "etc_hosts.db: is the name etc_hosts.DB gives"),
    (dict(dns=["192.0.2.1"] * 2), "dns: 192.0.2.1 is given twice"),
    (dict(dns=["::1", "0::1"]), "dns: 0::1 is given twice (as ::1 too)"),
    (dict(dns=["FE80::1%eth0", "fe80::1%eth0"]), "dns: fe80::1%eth0 is given twice (as FE80::1%eth0 too)"),
    (dict(dns_search=["a.test", "A.test."]), "dns_search[1]: 'A.test.' is the domain dns_search[0] gives"),
    (dict(dns=["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]), "dns: 4 servers given"),
    (dict(dns=["dns.example"]), "dns[0]: 'dns.example' is not an IPv4 or IPv6 address"),
    (dict(dns=["fe80::1%eth0\nnameserver 192.0.2.9"]), "dns[0]: 'fe80::1%eth0\\nnameserver 192.0.2.9' has a "
                                                       "zone that is no interface name or index"),
    (dict(dns=["fe80::1%eth0 x"]), "dns[0]: 'fe80::1%eth0 x' has a zone that is no interface name or index"),
    (dict(dns=["fe80::1%" + "e" * 16]), f"dns[0]: 'fe80::1%{'e' * 16}' has a zone that is no interface name"),
    (dict(dns=["192.0.2.1 192.0.2.2"]), "dns[0]: '192.0.2.1 192.0.2.2' is not an IPv4 or IPv6 address"),
    (dict(dns_search=["bad domain"]), "dns_search[0]: 'bad domain' is not a domain"),
    (dict(dns_search=["ok.test", "x\nnameserver 1.2.3.4"]), "dns_search[1]: "),
    (dict(dns_search=[".", "ok.test"]), "dns_search: '.' (no search domains) cannot be given with domains"),
    (dict(dns_options=["ndots:16"]), "dns_options[0]: ndots takes a whole number from 0 to 15"),
    (dict(dns_options=["timeout:0"]), "dns_options[0]: timeout takes a whole number from 1 to 30"),
    (dict(dns_options=["attempts:x"]), "dns_options[0]: attempts takes a whole number from 1 to 5"),
    (dict(dns_options=["rotate:1"]), "dns_options[0]: 'rotate:1' is not a resolv.conf option"),
    (dict(dns_options=["frobnicate"]), "dns_options[0]: 'frobnicate' is not a resolv.conf option"),
    (dict(dns_options=["ndots:1", "ndots:2"]), "dns_options[1]: ndots is given by dns_options[0] too"),
    (dict(namespaces=["mount", "uts"], hostname="web\n10.0.0.9 db", etc_hosts={}),
     "hostname: 'web\\n10.0.0.9 db' cannot be written in the service's generated /etc/hosts"),
    (dict(namespaces=[], etc_hosts={}), "etc_hosts: needs a mount namespace of the service's own"),
    (dict(namespaces=["uts"], dns=["192.0.2.1"]), "dns: needs a mount namespace of the service's own"),
    (dict(namespaces=["pid"], dns_options=["rotate"]), "dns_options: needs a mount namespace"),
    (dict(mounts=[dict(type="bind", source="/etc/hosts", target="/etc/hosts/")], etc_hosts={}),
     "etc_hosts: mounts[0] mounts /etc/hosts already, which etc_hosts generates"),
]


REFUSED_IDS = [f"{said.split(':')[0]}-{i}" for i, (_options, said) in enumerate(REFUSED)]


@pytest.mark.parametrize(("options", "said"), REFUSED, ids=REFUSED_IDS)
@pytest.mark.parametrize("module", [service, services])
@pytest.mark.parametrize("check_mode", [True, False])
def test_bad_values_are_refused_naming_the_option_before_anything_changes(
        run_module, name, options, said, module, check_mode):
    made = name()
    args = dict(dict(name=made, argv=["sleep", "600"], manager="direct", namespaces=["mount"], start_check=0),
                **options)
    result = run_module(module, args if module is service else dict(services=[args]), check_mode=check_mode)
    assert result["failed"] is True, result
    start = said if module is service else f"services[{made}]: {said}"
    assert result["msg"].startswith(start), result["msg"]
    assert not any(os.path.exists(f) for f in _files(made))


def _rootfs(tmp_path, hosts=None, resolv=None):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "run" / "resolve").mkdir(parents=True)
    for path, what in (("etc/hosts", hosts), ("etc/resolv.conf", resolv)):
        if what == "file":
            (root / path).write_text("")
        elif what is not None:
            os.symlink(what, root / path)
    return root


@pytest.mark.parametrize(("resolv", "said"), [
    (None, "dns: /etc/resolv.conf is not there in its root "),
    ("/run/resolve/stub.conf", "dns: /etc/resolv.conf (it leads to /run/resolve/stub.conf) is not there in "
                               "its root "),
    ("resolv.conf", "dns: /etc/resolv.conf is a symlink loop in its root "),
    ("../run/resolve", "dns: /etc/resolv.conf (it leads to /run/resolve) is a directory in its root "),
])
def test_a_target_the_service_does_not_have_as_a_file_is_refused(run_module, name, tmp_path, resolv, said):
    made = name()
    root = _rootfs(tmp_path, hosts="file", resolv=resolv)
    args = dict(name=made, argv=["/bin/sh"], manager="direct", namespaces=["mount"], rootfs=str(root),
                dns=["192.0.2.1"])
    result = run_module(service, args, check_mode=True)
    assert result["failed"] is True and result["msg"].startswith(said), result


def test_a_symlinked_resolv_conf_is_bound_where_it_leads_in_the_root(run_module, name, tmp_path):
    """/etc/resolv.conf -> /run/resolve/stub.conf (systemd-resolved's layout) inside the new root: the
    bind goes on the file it leads to there, found inside the root (an absolute link is the root's)."""
    made = name()
    root = _rootfs(tmp_path, hosts="file", resolv="/run/resolve/stub.conf")
    (root / "run" / "resolve" / "stub.conf").write_text("nameserver 127.0.0.53\n")
    args = dict(name=made, argv=["/bin/sh"], manager="direct", namespaces=["mount"], rootfs=str(root),
                dns=["192.0.2.1"], state="stopped")
    run_module(service, args)
    try:
        with open(paths.spec_path(made)) as f:
            mounts = json.load(f)["sys"]["mounts"]
        binds = {m["target"]: m["source"] for m in mounts}
        assert binds["/run/resolve/stub.conf"] == paths.resolv_path(made), mounts
        assert binds["/etc/hosts"] == paths.hosts_path(made) if "/etc/hosts" in binds else True
    finally:
        run_module(service, dict(name=made, state="absent"))


@pytest.fixture
def netns_etc(name):
    """A service name, and its /etc/netns/NAME/ (iproute2's files of that namespace), removed after."""
    made = name()
    directory = Path("/etc/netns") / made
    directory.mkdir(parents=True)
    yield made, directory
    shutil.rmtree(directory)
    with contextlib.suppress(OSError):
        os.rmdir("/etc/netns")  # (if the test made it, and no one else has a file there)


@needs_etc_hosts
def test_the_etc_netns_files_of_its_namespace_are_bound_as_ip_netns_exec_binds_them(
        run_module, netns_etc, tmp_path):
    """ip netns exec NAME binds each /etc/netns/NAME/X over /etc/X: a service joining NAME sees them too.
    Its hosts file stands in place of the generated default; an option given wins over its file."""
    made, directory = netns_etc
    (directory / "hosts").write_text("127.0.0.1\tlocalhost\n10.9.9.9\tfrom-netns web-6\n")
    (directory / "resolv.conf").write_text("nameserver 192.0.2.77\n")
    report = tmp_path / "report"
    entry = _wired(made, report, 6, lookup=["from-netns"])
    done = run_module(services, dict(services=[entry]))
    assert done.get("failed") is not True, done
    assert done["services"][made]["actions"] == [f"write {paths.spec_path(made)}", "start"], done
    seen = _report(report)
    assert seen["/etc/hosts"] == (directory / "hosts").read_text(), seen
    assert seen["/etc/resolv.conf"] == "nameserver 192.0.2.77\n", seen
    assert seen["getent"]["from-netns"] == ["10.9.9.9", "from-netns", "web-6"], seen
    assert run_module(services, dict(services=[entry]))["changed"] is False
    given = dict(entry, dns=["192.0.2.88"])  # over the namespace's resolv.conf
    done = run_module(services, dict(services=[given]))
    assert done["services"][made]["actions"] == [f"write {paths.resolv_path(made)}",
                                                 f"write {paths.spec_path(made)}", "restart"], done
    assert _lines(_report(report)["/etc/resolv.conf"]) == ["nameserver 192.0.2.88"]
    # an entry the service has no file for: refused before anything changes (ip netns exec warns only)
    (directory / "h137-nothing").write_text("")
    refused = run_module(services, dict(services=[given]), check_mode=True)
    assert refused["failed"] is True, refused
    said = (f"services[{made}]: netns: /etc/h137-nothing is not there: {directory}/h137-nothing is bound "
            "over it as ip netns exec binds it")
    assert refused["msg"].startswith(said), refused


def test_under_a_read_only_new_root_the_files_are_bound_where_its_links_lead(run_module, name, tmp_path):
    """A new root (pivot_root) made read-only after its mounts: /etc/hosts is the root's file, and its
    /etc/resolv.conf a link to ../run/resolve/stub.conf (systemd-resolved's layout), followed inside the
    root; the binds stay (their own read-only mounts) and the service reads both from its root."""
    made = name()
    root = _rootfs(tmp_path, hosts="file", resolv="../run/resolve/stub.conf")
    (root / "run" / "resolve" / "stub.conf").write_text("nameserver 127.0.0.53\n")
    for link in ("bin", "lib", "lib64", "sbin"):
        os.symlink(f"usr/{link}", root / link)
    for directory in ("usr", "out", "tmp"):
        (root / directory).mkdir()
    out = tmp_path / "out"
    out.mkdir()
    args = dict(name=made, argv=["/usr/bin/python3", "-c", REPORT, "/out/report", "db"], manager="direct",
                namespaces=["mount", "uts"], hostname="rooted", rootfs=str(root), readonly_root=True,
                mounts=[dict(type="bind", source="/usr", target="/usr", readonly=True),
                        dict(type="bind", source=str(out), target="/out")],
                etc_hosts={"db": "10.1.2.3"}, dns=["192.0.2.1"], start_check=0, stop_timeout=1)
    done = run_module(service, args)
    assert done.get("failed") is not True, done
    seen = _report(out / "report")
    assert seen["getent"]["db"] == ["10.1.2.3", "db"] and seen["own"] == ["127.0.1.1"], seen
    assert _lines(seen["/etc/resolv.conf"]) == ["nameserver 192.0.2.1"], seen
    assert (root / "etc" / "hosts").read_text() == ""  # the root's own files are untouched
    assert (root / "run" / "resolve" / "stub.conf").read_text() == "nameserver 127.0.0.53\n"
    assert run_module(service, args)["changed"] is False


@pytest.mark.parametrize("check_mode", [True, False])
def test_a_file_under_one_of_its_mounts_is_refused_for_an_option_and_left_out_by_default(
        run_module, name, tmp_path, check_mode):
    """/etc/resolv.conf -> /run/resolve/stub.conf in the root, and a tmpfs on /run in mounts: the file
    the service reads is the tmpfs's (none), which the host's root cannot tell. The run failed at the
    start, naming a field of the spec, after it had written the files (and stopped a running service);
    now the option is refused before anything changes, naming the mount, and the default left out."""
    made = name()
    root = _rootfs(tmp_path, hosts="/run/resolve/hosts", resolv="/run/resolve/stub.conf")
    for each in ("stub.conf", "hosts"):
        (root / "run" / "resolve" / each).write_text("")
    (root / "var").mkdir()
    os.symlink("../run", root / "var" / "run")
    mounts = [dict(type="tmpfs", target="/var/run")]  # (its target is /run in the root)
    args = dict(name=made, argv=["/bin/sh"], manager="direct", namespaces=["mount"], rootfs=str(root),
                mounts=mounts, start_check=0)
    for option, value in (("dns", ["192.0.2.1"]), ("dns_options", ["rotate"]), ("etc_hosts", {})):
        refused = run_module(service, dict(args, **{option: value}), check_mode=check_mode)
        assert refused["failed"] is True, refused
        target = "/etc/hosts" if option == "etc_hosts" else "/etc/resolv.conf"
        file = "hosts" if option == "etc_hosts" else "stub.conf"
        said = f"{option}: mounts[0] mounts /run, over /run/resolve/{file} (on the way from {target}): "
        assert refused["msg"].startswith(said), refused
        assert not any(os.path.exists(f) for f in _files(made))
    entry = dict(_wired(made, tmp_path / "report", 7), rootfs=str(root), mounts=mounts)
    planned = run_module(services, dict(services=[entry]), check_mode=True)
    assert planned["services"][made]["actions"] == [f"write {paths.spec_path(made)}", "start"], planned


@pytest.mark.parametrize("check_mode", [True, False])
def test_a_dangling_link_in_etc_netns_is_refused_before_anything_changes(run_module, netns_etc, check_mode):
    """ip netns exec warns about an entry of /etc/netns/NAME/ it cannot bind and goes on: the run planned
    the service as if it had none, then failed its start (naming sys.mounts[0]) after writing its spec."""
    made, directory = netns_etc
    os.symlink("/nonexistent-h140", directory / "hosts")
    entry = _wired(made, Path("/nonexistent-h140"), 8)
    refused = run_module(services, dict(services=[entry]), check_mode=check_mode)
    assert refused["failed"] is True, refused
    said = f"services[{made}]: netns: {directory}/hosts is a dangling symlink: nothing to bind over"
    assert refused["msg"].startswith(said), refused
    assert not any(os.path.exists(f) for f in _files(made))


@pytest.fixture
def other_mount_namespace():
    """A process in a mount namespace of its own whose /etc is an empty tmpfs (no hosts, no
    resolv.conf), stopped after the test."""
    held = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                             "mount -t tmpfs h140 /etc && exec sleep 600"])
    try:
        deadline = time.monotonic() + 10
        while os.stat(f"/proc/{held.pid}/ns/mnt").st_ino == os.stat("/proc/self/ns/mnt").st_ino \
                or os.path.exists(f"/proc/{held.pid}/root/etc/hosts"):
            assert time.monotonic() < deadline and held.poll() is None, "its mount namespace never came"
            time.sleep(0.02)
        yield held.pid
    finally:
        held.kill()
        held.wait()


@pytest.mark.parametrize("check_mode", [True, False])
def test_a_joined_mount_namespace_is_not_looked_into_so_the_files_are_refused(
        run_module, name, tmp_path, other_mount_namespace, check_mode):
    """join of another mount namespace, then unshareflags CLONE_NEWNS (a copy of it): the files the
    service reads are that namespace's. The run looked at this host's /etc/hosts, planned the bind,
    wrote the files and failed the start (sys.mounts[0]: no file there); now the options are refused
    before anything changes, naming the join, and the default left out."""
    made = name()
    join = [dict(pid=other_mount_namespace, namespaces=["mount"])]
    args = dict(name=made, argv=["/bin/sleep", "600"], manager="direct", join=join,
                unshareflags=["CLONE_NEWNS"], start_check=0, stop_timeout=0)
    for option, value in (("etc_hosts", {}), ("dns", ["192.0.2.1"])):
        refused = run_module(service, dict(args, **{option: value}), check_mode=check_mode)
        assert refused["failed"] is True, refused
        assert refused["msg"].startswith(f"{option}: join[0] joins a mount namespace: "), refused
        assert not any(os.path.exists(f) for f in _files(made))
    entry = dict(_wired(made, tmp_path / "report", 9), join=join, namespaces=["pid", "uts"],
                 unshareflags=["CLONE_NEWNS"])
    planned = run_module(services, dict(services=[entry]), check_mode=True)
    assert planned["services"][made]["actions"] == [f"write {paths.spec_path(made)}", "start"], planned


# Run inside a mount namespace of its own whose mounts are shared (as systemd makes a host's): the
# module's runs (argv[1]: their arguments, JSON), each followed by the mounts at /etc/hosts and
# /etc/resolv.conf there, then the service removed; the results as JSON on stdout.
IN_SHARED_NAMESPACE = r"""
import json, subprocess, sys
module = "ansible_collections.pyforkexec.isolation.plugins.modules.service"
out = []
for args in json.loads(sys.argv[1]) + [dict(name=json.loads(sys.argv[1])[0]["name"], state="absent")]:
    with open(sys.argv[2], "w") as f:
        json.dump(dict(ANSIBLE_MODULE_ARGS=args), f)
    ran = subprocess.run([sys.executable, "-m", module, sys.argv[2]], capture_output=True, text=True)
    with open("/proc/self/mountinfo") as f:
        binds = [line.split()[4] for line in f if line.split()[4] in ("/etc/hosts", "/etc/resolv.conf")]
    out.append(dict(result=json.loads(ran.stdout), binds=binds))
print(json.dumps(out))
"""


@needs_etc_hosts
@pytest.mark.parametrize("propagation", ["shared", "unchanged"])
def test_a_bind_that_would_reach_the_host_is_refused_and_the_default_left_out(
        run_module, name, tmp_path, child_env, propagation):
    """mount_propagation shared or unchanged, where the host's mount is shared: the service's mounts are
    peers of the host's, and its bind over /etc/hosts was made on the host's /etc/hosts too (which read
    the service's entries, and stayed mounted, deleted, once the service was removed). Now refused
    before anything changes, in check mode too, and the default left out. Run in a mount namespace of
    its own (shared inside), not to touch this host's."""
    made = name()
    runs = [dict(name=made, argv=["sleep", "600"], manager="direct", namespaces=["mount"], start_check=0,
                 stop_timeout=0, mount_propagation=propagation, **extra)
            for extra in (dict(etc_hosts={"db": "10.0.0.1"}, _ansible_check_mode=True),
                          dict(etc_hosts={"db": "10.0.0.1"}), dict(dns=["192.0.2.1"]))]
    ran = subprocess.run(["unshare", "--mount", "--propagation", "shared", sys.executable, "-c",
                          IN_SHARED_NAMESPACE, json.dumps(runs), str(tmp_path / "args.json")],
                         capture_output=True, text=True, env=child_env, timeout=120, check=False)
    assert ran.returncode == 0, ran.stderr
    seen = json.loads(ran.stdout)
    for run, option in zip(seen[:3], ("etc_hosts", "etc_hosts", "dns")):
        assert run["result"].get("failed") is True, run
        target = "/etc/hosts" if option == "etc_hosts" else "/etc/resolv.conf"
        said = f"{option}: its generated file is bound over {target}"
        assert run["result"]["msg"].startswith(said) and f"mount_propagation {propagation} keeps" in \
            run["result"]["msg"], run
        assert run["binds"] == [], run
    assert not any(os.path.exists(f) for f in _files(made))
    script = ("from ansible_collections.pyforkexec.isolation.plugins.module_utils import name_files\n"
              f"print(name_files.plan(dict(namespaces=['mount'], mount_propagation='{propagation}'), "
              "'h140', wired=['10.0.0.2']))")
    plan = subprocess.run(["unshare", "--mount", "--propagation", "shared", sys.executable, "-c", script],
                          capture_output=True, text=True, env=child_env, check=False)
    assert plan.stdout.strip() == "Plan(files=(), netns_etc=())", plan


@needs_etc_hosts
def test_a_run_cut_after_its_first_file_leaves_a_spec_whose_binds_are_there(run_module, name, monkeypatch):
    """The daemon reads the spec again at each start of the service (its restart policy): a run cut
    (a Ctrl-C between two files, a kill) after it wrote a spec that binds the new /etc/hosts and before
    it wrote the file left a spec the service could not start from, and the next crash of the running
    service left it down. The name files are written before the spec that binds them."""
    made = name()
    args = dict(name=made, argv=["sleep", "600"], manager="direct", namespaces=["mount"], start_check=0,
                stop_timeout=0, restart="always", restart_sec=0.1)
    first = run_module(service, args)
    assert first.get("failed") is not True, first
    real = files_util.write

    def cut(path, text, mode):
        real(path, text, mode)
        raise KeyboardInterrupt  # the run ends here, after its first file

    monkeypatch.setattr(files_util, "write", cut)
    with pytest.raises(KeyboardInterrupt):
        run_module(service, dict(args, etc_hosts={"db": "10.0.0.1"}))
    monkeypatch.undo()
    os.kill(first["pid"], signal.SIGKILL)  # the service dies; its daemon starts it again from the spec
    deadline, again = time.monotonic() + 10, None
    while again in (None, first["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
        again = paths.workload_pid(paths.main_pid(made, "direct")[1])
    assert again not in (None, first["pid"]), "the service did not start again from the spec on disk"
    done = run_module(service, dict(args, etc_hosts={"db": "10.0.0.1"}))  # the next run finishes it
    assert done.get("failed") is not True and "restart" in done["actions"], done


def _replace(path, text):
    """``path`` replaced as editors and Ansible's copy replace a file: a new one renamed over it."""
    new = path.with_name(path.name + ".h145-new")
    new.write_text(text)
    os.rename(new, path)


@needs_etc_hosts
@pytest.mark.parametrize("own", [False, True], ids=["its-file", "own-file-over-it"])
def test_a_bound_file_replaced_on_the_host_restarts_the_service_onto_what_is_asked(
        run_module, netns_etc, own):
    """A bind holds the file it was made from: /etc/netns/NAME/hosts replaced by a rename left the service
    reading the old text, and with etc_hosts given (its own file bound over that one) the kernel took the
    own file's mount away with the file it was mounted on, so the service read the namespace's file
    instead of the entries asked. Each run reported the service unchanged (its files were). Now the run
    compares what the service sees with what is bound, and restarts it (check mode says so)."""
    made, directory = netns_etc
    subprocess.run(["ip", "netns", "add", made], check=True)
    try:
        (directory / "hosts").write_text("127.0.0.1\tlocalhost\n10.9.9.1\tfirst.h145\n")
        extra = dict(etc_hosts={"own.h145": "10.9.9.3"}) if own else {}
        args = dict(name=made, argv=["sleep", "600"], manager="direct", namespaces=["mount"], netns=made,
                    start_check=0, stop_timeout=0, **extra)
        started = run_module(service, args)
        assert started.get("failed") is not True, started

        def seen(pid):
            with open(f"/proc/{pid}/root/etc/hosts") as f:
                return f.read()

        assert ("10.9.9.3\town.h145" in seen(started["pid"])) is own
        _replace(directory / "hosts", "127.0.0.1\tlocalhost\n10.9.9.2\tsecond.h145\n")
        planned = run_module(service, args, check_mode=True, diff=True)
        assert planned["actions"] == ["restart"], planned
        bound = [d for d in planned["diff"] if d["after_header"] == "bound files"]
        source = paths.hosts_path(made) if own else str(directory / "hosts")
        assert len(bound) == 1 and bound[0]["after"].startswith(f"/etc/hosts: {source} ["), planned["diff"]
        done = run_module(service, args)
        assert done["actions"] == ["restart"] and done["pid"] != started["pid"], done
        text = seen(done["pid"])
        assert ("10.9.9.3\town.h145" in text) is own and ("second.h145" in text) is not own, text
        assert run_module(service, args)["changed"] is False
    finally:
        run_module(service, dict(name=made, state="absent", stop_timeout=0))
        subprocess.run(["ip", "netns", "del", made], check=False)
