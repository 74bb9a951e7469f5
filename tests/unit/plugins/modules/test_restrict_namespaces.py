"""restrict_namespaces reaches the command: the forkexec module's and a service's (the spec the daemon
runs) cannot make a namespace of a type not listed (util-linux's unshare refused with EPERM), and can
of a type listed; unset, nothing is restricted."""

from __future__ import annotations

import json
import os
import time

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
from ansible_collections.pyforkexec.isolation.plugins.modules import forkexec, service

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="services and mount namespaces need root")


@pytest.mark.parametrize(("restrict", "argv", "rc"), [
    (None, ["unshare", "-U", "true"], 0),
    ([], ["unshare", "-U", "true"], 1),
    ([], ["unshare", "-n", "true"], 1),
    (["net"], ["unshare", "-n", "true"], 0),
    (["net"], ["unshare", "-U", "true"], 1),
    (["user", "pid", "net", "mount", "uts", "ipc", "cgroup", "time"], ["unshare", "-U", "true"], 0),
    ([], ["sh", "-c", "true & wait"], 0),
])
def test_the_forkexec_module_s_command_is_restricted(run_module, restrict, argv, rc):
    args = dict(argv=argv)  # root with every capability: only the restriction refuses
    if restrict is not None:
        args["restrict_namespaces"] = restrict
    result = run_module(forkexec, args)
    assert result["rc"] == rc, result
    if rc:
        assert "Operation not permitted" in result["stderr"], result


@pytest.mark.parametrize(("restrict", "said"), [([], "1"), (["user"], "0")])
def test_a_service_s_restriction_reaches_the_service(run_module, service_names, tmp_path, restrict, said):
    made, mark = service_names("h164"), tmp_path / "mark"
    os.chmod(tmp_path, 0o755)
    script = f"unshare -U true; echo $? > {mark}.new; mv {mark}.new {mark}; exec sleep 60"
    args = dict(name=made, argv=["/bin/sh", "-c", script], manager="direct", namespaces=["pid", "mount"],
                start_check=0, restrict_namespaces=restrict)
    result = run_module(service, args)
    assert result.get("failed") is not True and result["state"] == "started", result
    with open(paths.spec_path(made)) as f:
        assert json.load(f)["sys"]["restrict_namespaces"] == restrict
    deadline = time.monotonic() + 60
    while not mark.exists():
        assert time.monotonic() < deadline, "the service never ran its command"
        time.sleep(0.01)
    assert mark.read_text().strip() == said
