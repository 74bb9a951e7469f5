"""examples/sandbox.py and examples/sandbox.json: the bubblewrap-like sandbox, run for real."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers.marks import needs_root

from pyforkexec import spec as specmod
from pyforkexec.sandbox.caps import check_capabilities
from pyforkexec.sandbox.cgroup import CgroupError, find_cgroup2
from pyforkexec.sandbox.mounts import check_mounts
from pyforkexec.sandbox.rlimits import check_rlimits

pytestmark = needs_root
EXAMPLES = Path(__file__).parent.parent / "examples"
PROBE = """#!/bin/sh
echo "host=$(hostname)"; echo "uid=$(id -u)"; echo "pid=$$"; echo "pwd=$(pwd)"
echo "root=$(ls / | tr '\\n' ' ')"
touch /x 2>/dev/null && echo "rootfs=writable" || echo "rootfs=read-only"
echo data > /tmp/x && echo "tmp=writable"
sed -n 's/^\\(CapEff\\|CapBnd\\|NoNewPrivs\\|Seccomp\\):\t*/\\1=/p' /proc/self/status
echo "net=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ' ')"
unshare -U true 2>/dev/null && echo "unshare=worked" || echo "unshare=refused"
echo "cgroup=$(grep '^0::' /proc/self/cgroup | cut -c4-)"
"""
ROOT = {"bin", "dev", "etc", "lib", "proc", "sbin", "tmp", "usr"} | {"lib64"} & set(os.listdir("/"))


def limits_available() -> bool:
    try:
        with open(os.path.join(find_cgroup2(), "cgroup.controllers")) as f:
            return {"memory", "pids"} <= set(f.read().split())
    except CgroupError:
        return False


def sandbox_module() -> Any:
    spec = importlib.util.spec_from_file_location("sandbox_example", EXAMPLES / "sandbox.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def facts(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines())


def run_sandbox(script: str, cgroup: bool) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(EXAMPLES / "sandbox.py"), *([] if cgroup else ["--no-cgroup"]), script]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def check_facts(out: str, extra: str = "sandbox") -> dict[str, str]:
    f = facts(out)
    want = {"host": "sandbox", "uid": "65534", "pid": "1", "pwd": "/tmp", "rootfs": "read-only",
            "tmp": "writable", "unshare": "refused", "net": "lo "}
    assert {k: f[k] for k in want} == want
    assert set(f["root"].split()) == ROOT | {extra}
    assert (f["CapEff"], f["CapBnd"], f["NoNewPrivs"], f["Seccomp"]) == ("0" * 16, "0" * 16, "1", "2")
    return f


@pytest.fixture
def probe_script(world_dir: Path) -> Path:
    path = world_dir / f"probe-{os.getpid()}.sh"
    path.write_text(PROBE)
    path.chmod(0o755)
    return path


def test_sandbox_py(probe_script: Path) -> None:
    cgroup = limits_available()
    res = run_sandbox(str(probe_script), cgroup)
    assert res.returncode == 0, res.stderr
    f = check_facts(res.stdout)
    if cgroup:
        assert f["cgroup"].startswith("/pyforkexec-sandbox/")


def test_sandbox_py_says_why_without_cgroup_v2_limits(probe_script: Path) -> None:
    if limits_available():
        pytest.skip("memory and pids are available in cgroup v2 here")
    res = run_sandbox(str(probe_script), cgroup=True)
    assert res.returncode == 125
    assert "--no-cgroup" in res.stderr and "controllers are not available" in res.stderr


def unprivileged_run(script: str) -> tuple[int, str, str]:
    res = run_sandbox(script, cgroup=False)
    return res.returncode, res.stdout, res.stderr


def test_sandbox_py_unprivileged(unprivileged: Callable[..., Any], probe_script: Path) -> None:
    code, out, err = unprivileged(unprivileged_run, str(probe_script))
    assert code == 0, err
    check_facts(out)


# ---- the same through pyforkexec exec --spec ---------------------------------------------------------


def test_sandbox_json_is_the_same_sandbox() -> None:
    loaded = specmod.load_spec(json.loads((EXAMPLES / "sandbox.json").read_text()))
    specmod.check(loaded)
    got = loaded.attr.sys
    want = sandbox_module().sandbox(Path("/x/script"), 256 << 20, 64, cgroup=True)
    assert got is not None
    for name in ("cloneflags", "hostname", "pivot_root", "readonly_root", "no_new_privs", "pdeathsig",
                 "credential"):
        assert getattr(got, name) == getattr(want, name), name
    assert check_rlimits("r", got.rlimits) == check_rlimits("r", want.rlimits)
    assert check_capabilities("c", got.capabilities) == check_capabilities("c", want.capabilities)
    assert check_mounts("m", got.mounts[:-1], b"/mnt") == check_mounts("m", want.mounts[:-1], b"/mnt")
    assert list(got.seccomp.deny) == list(want.seccomp.deny)
    assert (got.cgroup.memory_max, got.cgroup.memory_swap_max, got.cgroup.pids_max) == (256 << 20, 0, 64)


def test_sandbox_json_through_the_cli(probe_script: Path, tmp_path: Path) -> None:
    doc = json.loads((EXAMPLES / "sandbox.json").read_text())
    if not limits_available():
        del doc["sys"]["cgroup"]  # this machine has no memory/pids in cgroup v2
    (tmp_path / "spec.json").write_text(json.dumps(doc))
    cmd = [sys.executable, "-m", "pyforkexec", "exec", "--spec", str(tmp_path / "spec.json"), "--",
           f"/work/{probe_script.name}"]  # /work is the current directory, read-only
    res = subprocess.run(cmd, cwd=probe_script.parent, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    check_facts(res.stdout, extra="work")
