"""The artifacts a user installs, used the way a user without a checkout would: the wheel and the sdist
(``python -m build``) and the collection tarball (``ansible-galaxy collection build``) are built from this
checkout, then installed from those files only, into a fresh virtualenv and a fresh collections path,
and the example playbook of the installed collection deploys its two services on this machine (the role
builds pyforkexec's wheel from the sources the tarball carries) and removes them again."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from helpers.marks import needs_root

REPO = Path(__file__).resolve().parent.parent
VERSION = re.search(r"^version:\s*(\S+)", (REPO / "galaxy.yml").read_text(), re.M).group(1)
GALAXY = Path(sys.executable).parent / "ansible-galaxy"

pytestmark = [
    needs_root,
    pytest.mark.skipif(importlib.util.find_spec("build") is None, reason="python -m build is not installed"),
    pytest.mark.skipif(not GALAXY.exists(), reason="ansible-galaxy is not installed beside this Python"),
    pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler"),
    pytest.mark.timeout(900),
]


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kwargs)
    assert proc.returncode == 0, f"{argv}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", dist, REPO])
    run([GALAXY, "collection", "build", "--output-path", dist, REPO])
    return {
        "sdist": dist / f"pyforkexec-{VERSION}.tar.gz",
        "wheel": next(dist.glob(f"pyforkexec-{VERSION}-cp39-abi3-linux_*.whl")),
        "collection": dist / f"pyforkexec-isolation-{VERSION}.tar.gz",
    }


@pytest.fixture(scope="module")
def installed(artifacts: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A fresh virtualenv with the wheel (and pyroute2: pyforkexec[net]) and ansible-core, a fresh
    collections path with the tarball."""
    where = tmp_path_factory.mktemp("installed")
    venv, collections = where / "venv", where / "collections"
    run([sys.executable, "-m", "venv", venv])
    ansible_core = run([sys.executable, "-m", "pip", "show", "ansible-core"]).stdout
    ansible_version = re.search(r"^Version: (\S+)", ansible_core, re.M).group(1)
    run([venv / "bin/python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         f"{artifacts['wheel']}[net]", f"ansible-core=={ansible_version}"])
    # Only the fresh path is consulted: a copy the user installed before (~/.ansible/collections) made
    # ansible-galaxy answer "already installed" and install nothing here.
    run([venv / "bin/ansible-galaxy", "collection", "install", "-p", collections, artifacts["collection"]],
        env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections)))
    return {"where": where, "venv": venv, "collections": collections}


def clean_env(installed: dict[str, Path]) -> dict[str, str]:
    """This machine's environment without anything that would lead to the checkout."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANSIBLE_", "PYTHON", "VIRTUAL_ENV", "MOLECULE_"))}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(installed["collections"]),
               ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
               PATH=f"{installed['venv'] / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}")
    return env


def test_sdist_builds_the_same_version(artifacts: dict[str, Path]) -> None:
    listing = run(["tar", "-tzf", artifacts["sdist"]]).stdout.split()
    top = f"pyforkexec-{VERSION}/"
    needed = ("galaxy.yml", "setup.py", "pyproject.toml", "pyforkexec/child/_child.c", "pyforkexec/_clone.c")
    assert {top + path for path in needed} <= set(listing)


def test_wheel_imports_from_the_virtualenv_only(installed: dict[str, Path]) -> None:
    probe = ("import json, pyforkexec, pyforkexec.child._child as c; "
             "print(json.dumps([pyforkexec.__file__, pyforkexec.__version__, c.__file__]))")
    module, version, extension = json.loads(run([installed["venv"] / "bin/python", "-c", probe],
                                                cwd=installed["where"], env=clean_env(installed)).stdout)
    assert module.startswith(f"{installed['venv']}/")
    assert extension.endswith(".abi3.so")
    assert version == VERSION


def supervisor_command(name: str) -> list[str]:
    """The command that supervises service ``name``: its systemd unit's ExecStart where it has one, else
    its pyforkexec daemon's (pid file)."""
    unit = Path(f"/etc/systemd/system/pyforkexec-{name}.service")
    if unit.exists():
        return [word for line in unit.read_text().splitlines() if line.startswith("ExecStart=")
                for word in line.removeprefix("ExecStart=").split()]
    daemon = Path(f"/run/pyforkexec/{name}.pid").read_text().split()[0]
    return Path(f"/proc/{daemon}/cmdline").read_text().split("\0")


def test_installed_collection_runs_the_example_playbook(installed: dict[str, Path]) -> None:
    collection = installed["collections"] / "ansible_collections/pyforkexec/isolation"
    manifest = json.loads((collection / "MANIFEST.json").read_text())["collection_info"]
    assert manifest["version"] == VERSION
    assert not collection.is_symlink()
    tag = uuid.uuid4().hex[:4]
    prefix, subnet, venv = f"a{tag}", f"10.79.{int(tag, 16) % 250 + 1}", f"/opt/pyforkexec-{tag}"
    argv = [installed["venv"] / "bin/ansible-playbook", "-i", "localhost,", "-c", "local",
            "-e", f"isolated_http_prefix={prefix}", "-e", f"isolated_http_subnet={subnet}",
            "-e", f"isolated_service_venv={venv}",
            "-e", f"isolated_service_wheel_cache={installed['where'] / 'wheel-cache'}",
            collection / "playbooks/isolated_http.yml"]
    # The play's tasks run with the installed virtualenv's Python, the role's with its own (venv), where
    # the services run: an extra var (-e ansible_python_interpreter) would override the role's.
    env = dict(clean_env(installed), ANSIBLE_PYTHON_INTERPRETER=str(installed["venv"] / "bin/python"))
    try:
        out = run(argv, cwd=installed["where"], env=env).stdout
        for web, last in (("web1", 11), ("web2", 12)):
            assert f"hello from {prefix}-{web}: pid 1, uid 0" in out
            assert f"at {subnet}.{last}" in out
            assert f"{venv}/bin/python" in supervisor_command(f"{prefix}-{web}")
        # The wheel the role built came from the installed collection's own sources.
        built = list((installed["where"] / "wheel-cache").glob(f"*/pyforkexec-{VERSION}-cp39-abi3-*.whl"))
        assert built, "the role built no wheel from the installed collection"
    finally:
        run([*argv, "-e", "isolated_service_state=absent"], cwd=installed["where"], env=env)
    assert not Path(venv).exists()
