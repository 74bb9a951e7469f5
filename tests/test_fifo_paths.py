"""A FIFO named where a namespace file is expected (a setns target, a mount's idmap, nsenter's
--net=FILE, a spec's sys.setns) was opened with a blocking open(2), which waits for a writer that
never comes: validation, the spawn and the CLI hung before any process existed. Each case runs in a
process of its own with a timeout, and must end with the refusal a regular file gets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import PYFORKEXEC, counted
from helpers.marks import needs_root

pytestmark = needs_root
TIMEOUT = 60  # a hang, not a speed: the fixed code answers at once

API = {
    "setns": ("SysProcAttr(setns=[SetNS(target=F)])",
              "ChildError fork/exec /bin/true: invalid argument (at setns)"),
    "setns-typed": ("SysProcAttr(setns=[SetNS(target=F, nstype=CLONE_NEWNET)])",
                    "ChildError fork/exec /bin/true: invalid argument (at setns)"),
    "idmap": ("SysProcAttr(cloneflags=CLONE_NEWNS, mounts=[Mount.bind('/tmp', '/mnt', idmap=F)])",
              "ValueError SysProcAttr.mounts[0].idmap: {fifo} is not a user namespace"),
}


@pytest.fixture
def fifo(tmp_path: Path) -> str:
    path = tmp_path / "ns"
    os.mkfifo(path)
    return str(path)


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT,
                          check=False)


@pytest.mark.parametrize("case", sorted(API))
def test_the_api_refuses_a_fifo_without_waiting_for_a_writer(fifo: str, case: str) -> None:
    attr, expected = API[case]
    res = _python(f"""
import os
from pyforkexec import *
from pyforkexec.sandbox.mounts import Mount
F = {fifo!r}
try:
    fork_exec("/bin/true", ["true"], ProcAttr(sys={attr}))
    print("started")
except Exception as e:
    print(type(e).__name__, e)
try:
    os.waitpid(-1, os.WNOHANG)
    print("a child was left")
except ChildProcessError:
    pass
""")
    assert (res.returncode, res.stdout) == (0, expected.format(fifo=fifo) + "\n"), res.stderr


def test_nsinfo_takes_a_fifo_for_no_namespace(fifo: str) -> None:
    code = f"from pyforkexec import nsinfo; F = {fifo!r}; print(nsinfo.nstype(F), nsinfo.is_callers(F))"
    res = _python(code)
    assert (res.returncode, res.stdout) == (0, "0 False\n"), res.stderr


def test_nsenter_with_a_fifo_as_the_namespace_file(fifo: str) -> None:
    res = subprocess.run([PYFORKEXEC, "nsenter", f"--net={fifo}", "true"], capture_output=True, text=True,
                         timeout=TIMEOUT, check=False)
    assert (res.returncode, res.stdout) == (125, ""), res.stderr
    assert res.stderr == f"pyforkexec: --net={fifo}: fork/exec /usr/bin/true: invalid argument (at setns)\n"


@pytest.mark.parametrize("where", ["setns", "idmap"])
def test_a_spec_naming_a_fifo_is_refused_with_no_process(tmp_path: Path, fifo: str, where: str) -> None:
    sys_ = {"setns": [{"target": fifo}]} if where == "setns" else {
        "cloneflags": ["newns"], "mounts": [{"source": "/tmp", "target": "/mnt", "flags": ["MS_BIND"],
                                             "idmap": fifo}]}
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"version": 1, "argv": ["true"], "sys": sys_}))
    res = counted([PYFORKEXEC, "exec", "--spec", str(spec)])
    assert (res.returncode, res.stdout, res.processes) == (1, "", 1), res.stderr
    field = "sys.setns[0]" if where == "setns" else "sys.mounts[0].idmap"
    rule = "is not a namespace file" if where == "setns" else "is not a user namespace"
    assert res.stderr.startswith(f"pyforkexec: spec: {field}: {fifo} {rule}"), res.stderr
