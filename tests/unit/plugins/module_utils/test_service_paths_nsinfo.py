"""Finding a service's process (pid files locked by their daemon, children of the main process) and
what the kernel says about a process's namespaces, on real processes."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import nsinfo
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths

import pyforkexec as fe


@pytest.mark.parametrize("name", ["web", "web-1.a_b", "tmpl@inst"])
def test_valid_names(name):
    assert paths.check_name(name) == name


@pytest.mark.parametrize("name", ["", "../x", "a/b", "-x", "a b", "x" * 300])
def test_invalid_names(name):
    with pytest.raises(paths.ServiceError, match="is not a valid service name"):
        paths.check_name(name)


def test_a_pid_file_counts_only_while_its_daemon_holds_the_lock(tmp_path):
    path = str(tmp_path / "x.pid")
    assert paths.locked_pid(path) is None
    with open(path, "w") as f:
        f.write("4242\n")
    assert paths.locked_pid(path) is None  # stale: nobody holds it
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as pyforkexec.daemon holds it
        assert paths.locked_pid(path) == 4242
    finally:
        os.close(fd)
    assert paths.locked_pid(path) is None


def test_the_service_process_is_the_main_process_child():
    with subprocess.Popen(["sleep", "60"]) as child:
        try:
            assert child.pid in paths.children(os.getpid())
            assert paths.workload_pid(child.pid) is None  # sleep has no child
        finally:
            child.kill()
    assert paths.workload_pid(None) is None


def test_resolve_pid_takes_numbers_as_pids_and_names_as_services():
    assert paths.resolve_pid(" 1234 ") == 1234
    with pytest.raises(paths.ServiceError, match="service pfe-ut-nothing is not running"):
        paths.resolve_pid("pfe-ut-nothing", "direct")
    with pytest.raises(paths.ServiceError, match="is not a valid service name"):
        paths.resolve_pid("../etc/passwd")


def test_the_files_of_a_service():
    assert paths.spec_path("web") == "/etc/pyforkexec/web.json"
    assert paths.unit_path("web") == "/etc/systemd/system/pyforkexec-web.service"
    assert paths.pid_file("web") == "/run/pyforkexec/web.pid"
    assert paths.log_file("web") == "/var/log/pyforkexec/web.log"


def test_this_process_shares_every_namespace_with_the_host():
    found = nsinfo.namespaces(os.getpid())
    assert {"user", "pid", "net", "mount", "uts", "ipc", "cgroup"} <= set(found)
    assert all(ns["same_as_host"] for ns in found.values())
    assert found["mount"]["path"] == f"/proc/{os.getpid()}/ns/mnt"
    assert nsinfo.differing(os.getpid()) == []
    assert nsinfo.hostname(os.getpid()) == socket.gethostname()


def test_a_namespaced_process_differs_where_it_was_given_new_namespaces():
    sys = fe.SysProcAttr(cloneflags=fe.CLONE_NEWUTS | fe.CLONE_NEWNET | fe.CLONE_NEWUSER, hostname="pfe-unit",
                         uid_mappings=[fe.SysProcIDMap(0, 0, 1)], gid_mappings=[fe.SysProcIDMap(0, 0, 1)])
    with fe.start_process("/bin/sleep", ["sleep", "60"], fe.ProcAttr(sys=sys)) as proc:
        try:
            found = nsinfo.namespaces(proc.pid)
            assert nsinfo.differing(proc.pid) == ["user", "net", "uts"]
            assert nsinfo.hostname(proc.pid) == "pfe-unit"
            assert nsinfo.id_map(proc.pid, "uid_map") == [dict(container_id=0, host_id=0, size=1)]
            assert nsinfo.cgroup(proc.pid) == nsinfo.cgroup(os.getpid())
        finally:
            proc.kill()
    assert [k for k, v in found.items() if not v["same_as_host"]] == ["user", "net", "uts"]


def _fail():
    raise ValueError("inside the namespace")


def test_run_in_namespaces_returns_results_and_reports_errors():
    assert nsinfo.run_in_namespaces([], os.getpid) != os.getpid()  # a child ran it
    with pytest.raises(RuntimeError, match="ValueError: inside the namespace"):
        nsinfo.run_in_namespaces([], _fail)
