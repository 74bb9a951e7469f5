"""What the kernel says about a process's namespaces (pyforkexec.nsinfo, which the collection's
namespace_info and service modules report), on real processes."""

from __future__ import annotations

import os
import socket

import pytest
from helpers.marks import needs_root

import pyforkexec as fe
from pyforkexec import nsinfo


@needs_root  # namespaces only root may create or join here
def test_this_process_shares_every_namespace_with_the_host():
    found = nsinfo.namespaces(os.getpid())
    assert {"user", "pid", "net", "mount", "uts", "ipc", "cgroup"} <= set(found)
    assert all(ns["same_as_host"] for ns in found.values())
    assert found["mount"]["path"] == f"/proc/{os.getpid()}/ns/mnt"
    assert nsinfo.differing(os.getpid()) == []
    assert nsinfo.hostname(os.getpid()) == socket.gethostname()


@needs_root  # namespaces only root may create or join here
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
