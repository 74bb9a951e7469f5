"""The role's look at a host (plugin_utils/host_probe.py), run as the action sends it: the file's source
as ``python -c`` with the host's Python, here this machine's."""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import pwd
import subprocess
import sys

from ansible_collections.pyforkexec.isolation.plugins.plugin_utils import host_probe


def _probe(venv, accounts=(), roots=()):
    with open(host_probe.__file__) as f:
        source = f.read()
    done = subprocess.run(
        [sys.executable, "-c", source, str(venv), json.dumps(list(accounts)), json.dumps(list(roots))],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def test_it_reads_python_accounts_and_roots(tmp_path):
    root = pwd.getpwuid(0)
    found = _probe(
        tmp_path / "venv", ["root", "pfe-no-such-account"], [str(tmp_path), str(tmp_path / "nope")]
    )
    assert found["version"] == "{}.{}".format(*sys.version_info[:2])
    assert found["machine"] == platform.machine()
    assert found["passwd"] == {
        "root": [root.pw_passwd, "0", str(root.pw_gid), root.pw_gecos, root.pw_dir, root.pw_shell]
    }
    assert found["rootfs"] == {str(tmp_path): True, str(tmp_path / "nope"): False}
    assert found["systemd"] == os.path.isdir("/run/systemd/system")
    assert (found["venv"], found["venv_ok"], found["wheels"]) == (False, False, None)


def test_a_virtualenv_is_ok_when_its_python_finds_what_the_modules_import(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')  # this interpreter, with its packages
    python.chmod(0o755)
    (venv / "wheels.source").write_text("0123abcd\n")
    found = _probe(venv)
    assert found["venv"] and found["wheels"] == "0123abcd"
    has = all(importlib.util.find_spec(m) for m in ("pyforkexec", "pyroute2"))
    assert found["venv_ok"] == bool(has)
    assert found["jinja2"] == (importlib.util.find_spec("jinja2") is not None)
    python.write_text("#!/bin/sh\nexit 1\n")  # a broken virtualenv
    assert _probe(venv)["venv_ok"] is False
