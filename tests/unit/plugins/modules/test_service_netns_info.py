"""The service, netns and namespace_info modules run in-process: argument handling, check mode and
diffs, and refusals that leave nothing behind. (Real services and namespaces: tests/integration.)"""

from __future__ import annotations

import dataclasses
import json
import os
import pwd
import socket

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service as svc
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
from ansible_collections.pyforkexec.isolation.plugins.modules import namespace_info, netns, service


def test_service_check_mode_shows_the_spec_it_would_write(run_module, unique_name):
    name = unique_name()
    result = run_module(service, dict(name=name, argv=["sleep", "60"], manager="direct", namespaces=["uts"],
                                      hostname=name, env=dict(A="1")), check_mode=True, diff=True)
    assert result["changed"] is True and result["state"] == "started" and result["pid"] is None
    assert result["actions"] == [f"write /etc/pyforkexec/{name}.json", "start"]
    spec = json.loads(result["diff"][0]["after"])
    # its own cgroup, where this host has a cgroup v2 hierarchy (as systemd gives each unit one)
    own = {} if svc.default_own_cgroup(name) is None else \
        dict(cgroup=dict(path=f"pyforkexec/{name}", kill_remaining=True))
    assert spec == dict(version=1, argv=["sleep", "60"], proc=dict(env=["A=1"]),
                        sys=dict(cloneflags=["CLONE_NEWUTS"], hostname=name, **own))
    assert result["diff"][0]["before"] == "" and result["diff"][-1]["after"] == "started\n"
    assert not os.path.exists(paths.spec_path(name))


def test_service_user_and_group_become_the_credential(run_module, unique_name):
    result = run_module(service, dict(name=unique_name(), argv=["id"], manager="direct", user="nobody"),
                        check_mode=True, diff=True)
    nobody = pwd.getpwnam("nobody")
    assert json.loads(result["diff"][0]["after"])["sys"]["credential"] == dict(
        uid=nobody.pw_uid, gid=nobody.pw_gid, groups=sorted(set(os.getgrouplist("nobody", nobody.pw_gid))))
    failed = run_module(service, dict(name="x", argv=["id"], user="nobody", credential=dict(uid=0)))
    assert failed["failed"] is True and "mutually exclusive: user|credential" in failed["msg"]


def test_service_refuses_invalid_options_before_writing(run_module, unique_name):
    name = unique_name()
    result = run_module(service, dict(name=name, argv=["true"], manager="direct",
                                      mounts=[dict(type="proc", target="/proc")]))
    assert result["failed"] is True and result["msg"].startswith("mounts: needs a new mount namespace")
    assert not os.path.exists(paths.spec_path(name))
    bad = run_module(service, dict(name="../x", argv=["true"], manager="direct"))
    assert bad["failed"] is True and bad["msg"].startswith("name: '../x' is not a valid service name")
    missing = run_module(service, dict(name=name, manager="direct"))
    assert "state is started but all of the following are missing: argv" in missing["msg"]


@pytest.mark.skipif(paths.systemd_booted(), reason="PID 1 is systemd here")
def test_service_manager_systemd_needs_systemd_as_pid_1(run_module, unique_name):
    result = run_module(service, dict(name=unique_name(), argv=["true"], manager="systemd"))
    assert result["failed"] is True and result["msg"].startswith("manager=systemd: PID 1 is not systemd")


def test_service_absent_of_nothing_changes_nothing(run_module, unique_name):
    result = run_module(service, dict(name=unique_name(), state="absent", manager="direct"))
    assert result["changed"] is False and result["actions"] == [] and result["state"] == "stopped"


def test_netns_check_mode_plans_without_touching_the_kernel(run_module, unique_name):
    name = unique_name()
    veth = dict(name="eth0", peer=f"pfeu{os.getpid() % 10000}", addresses=["10.99.0.2/24"])
    result = run_module(netns, dict(name=name, veths=[veth], gateway=["10.99.0.1"]), check_mode=True,
                        diff=True)
    assert result["changed"] is True and result["actions"][:2] == [f"create_netns {name}", "link_up ns lo"]
    assert result["diff"]["before"] == dict(netns=None)
    assert result["diff"]["after"]["routes"] == ["default via 10.99.0.1 dev eth0"]  # where the kernel puts it
    assert result["netns"]["inode"] is None and not os.path.exists(f"/run/netns/{name}")


def test_netns_refusals_name_the_option(run_module, unique_name):
    result = run_module(netns, dict(name=unique_name(), sysctls={"kernel.hostname": "x"}))
    assert result["msg"].startswith("sysctls: kernel.hostname: only net.* sysctls")
    result = run_module(netns, dict(name=unique_name(), veths=[dict(name="eth0")]))
    assert result["failed"] is True and "missing required arguments: peer found in veths" in result["msg"]


def test_namespace_info_of_this_process(run_module):
    result = run_module(namespace_info, dict(pid=os.getpid()))
    assert result["changed"] is False and result["pid"] == os.getpid()
    assert all(ns["same_as_host"] for ns in result["namespaces"].values())
    assert result["hostname"] == socket.gethostname()
    assert "lo" in result["net"]["links"] and "127.0.0.1/8" in result["net"]["addresses"]


def test_namespace_info_of_what_does_not_exist(run_module, unique_name):
    msg = run_module(namespace_info, dict(netns=unique_name()))["msg"]
    assert msg.startswith("netns: no network namespace")
    msg = run_module(namespace_info, dict(service=unique_name(), manager="direct"))["msg"]
    assert msg.endswith("is not running (manager direct)")
    msg = run_module(namespace_info, dict(pid=1, netns="x"))["msg"]
    assert "mutually exclusive: pid|service|netns" in msg


def test_netns_options_are_the_library_options_plus_state_and_persist():
    from pyforkexec.netns import options as netns_options

    options = {k: v for k, v in netns.ARGSPEC.items() if k not in ("state", "persist")}
    assert list(options) == [f.name for f in dataclasses.fields(netns_options.Options)]
    for spec, cls in ((options["bridges"], netns_options.Bridge), (options["veths"], netns_options.Veth),
                      (options["routes"], netns_options.Route)):
        assert list(spec["options"]) == [f.name for f in dataclasses.fields(cls)]


def test_netns_persist_in_check_mode_plans_the_options_file(run_module, unique_name):
    name = unique_name()
    veth = dict(name="eth0", peer=f"pfp{os.getpid() % 100000}", addresses=["10.98.0.2/24"])
    result = run_module(netns, dict(name=name, veths=[veth], gateway=["10.98.0.1"], persist=True),
                        check_mode=True, diff=True)
    config = f"/etc/pyforkexec/netns/{name}.json"
    assert f"write {config}" in result["actions"] and result["persist"]["config"] == config
    assert result["persist"]["enabled"] is True
    topology, written = result["diff"][:2]
    assert topology["before"] == dict(netns=None) and written["after_header"] == config
    assert json.loads(written["after"])["gateway"] == ["10.98.0.1"]
    assert not os.path.exists(config)
