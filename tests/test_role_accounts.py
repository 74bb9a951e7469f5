"""The accounts the role isolated_service makes for its services, on this machine: a service whose
``user`` changes runs as the new account, and the one the role made for the old user goes with the
converge that leaves it unused (it stayed on the host for good); an account made otherwise stays.

Runs the role (``-c local``, the daemon as manager) with a wheel built from this checkout, as
test_role_validation.py does."""

from __future__ import annotations

import grp
import importlib.metadata
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.marks import needs_root
from test_role_validation import PID, PLAYBOOK, _host, collections, run_role, wheels

# Three or four role runs per test, ~20 s each when quiet: beyond the suite's 120 s under load (a hang
# guard, not a speed check).
pytestmark = [needs_root, pytest.mark.timeout(600),
              pytest.mark.skipif(not os.path.exists(PLAYBOOK), reason="no ansible-core in this venv")]
__all__ = ["collections", "wheels"]  # the fixtures, shared with test_role_validation.py

SERVICE = f"pfe-ra{PID}"
OLD, NEW, BY_HAND = f"pfe-ra{PID}-old", f"pfe-ra{PID}-new", f"pfe-ra{PID}-hand"


def _exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _runs_as(name: str) -> str:
    """The account the service's process runs as, seen from the host."""
    with open(f"/run/pyforkexec/{name}.pid") as f:
        daemon = int(f.readline())
    with open(f"/proc/{daemon}/task/{daemon}/children") as f:
        child = int(f.read().split()[0])
    return pwd.getpwuid(os.stat(f"/proc/{child}").st_uid).pw_name


@pytest.fixture(scope="module")
def wheel_dir(wheels: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pyforkexec's wheel beside pyroute2's (the version of this venv), which pyforkexec[net] needs."""
    out = tmp_path_factory.mktemp("wheels")
    for wheel in wheels.glob("*.whl"):
        shutil.copy(wheel, out)
    version = importlib.metadata.version("pyroute2")
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                    "--no-deps", "--only-binary", ":all:", "--dest", str(out), f"pyroute2=={version}"],
                   check=True, capture_output=True)
    return out


@pytest.fixture
def converge(tmp_path: Path, wheel_dir: Path, collections: Path) -> Iterator:
    """converge(user, state="present"): one run of the role for SERVICE as ``user``; its output."""
    runs = iter(range(100))

    def run(user: str, state: str = "present", remove_runtime: bool = False, check: bool = False) -> str:
        host = _host(tmp_path / "venv", wheel_dir)
        host.update(isolated_service_state=state, isolated_service_remove_runtime=remove_runtime,
                    isolated_service_services=[dict(name=SERVICE, user=user, argv=["/bin/sleep", "1000"],
                                                    namespaces=["user", "uts", "ipc"],
                                                    restart="always")])
        return run_role(tmp_path / f"run{next(runs)}", collections, host, check)

    try:
        yield run
    finally:
        run(NEW, "absent", remove_runtime=True)
        for name in (OLD, NEW, BY_HAND):
            subprocess.run(["userdel", name], capture_output=True)


def test_a_services_old_account_goes_when_its_user_changes(converge) -> None:
    converge(OLD)
    assert _runs_as(SERVICE) == OLD
    converge(NEW)
    assert _runs_as(SERVICE) == NEW
    assert _exists(NEW) and not _exists(OLD), "the account made for the old user is left"
    converge(OLD)  # and back: the account made in between goes in turn
    assert _runs_as(SERVICE) == OLD and not _exists(NEW)


def test_an_account_made_by_hand_stays_when_its_service_moves_off_it(converge) -> None:
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", BY_HAND],
                   check=True)
    converge(BY_HAND)
    converge(NEW)
    assert _runs_as(SERVICE) == NEW and _exists(BY_HAND)


def test_check_mode_says_which_ids_its_diffs_cannot_know(converge) -> None:
    converge(OLD)
    log = converge(NEW, check=True)
    assert f"check mode: the accounts {NEW} do not exist yet" in " ".join(log.split())
    assert not _exists(NEW) and _runs_as(SERVICE) == OLD


def test_check_mode_before_the_runtime_exists_says_what_a_run_would_do(converge, tmp_path) -> None:
    """A first run previewed: no virtualenv yet, so the services module cannot run; the role says what a
    run would do (tasks/prepare.yml) and makes nothing."""
    log = " ".join(converge(NEW, check=True).split())
    assert (f"check mode: {tmp_path / 'venv'} does not exist yet, so the services module cannot run in it; "
            f"a run would install it, then wire and declare (or remove) {SERVICE}") in log
    assert not (tmp_path / "venv").exists() and not _exists(NEW)


def test_an_account_left_half_made_gets_its_group_before_its_service_runs(converge) -> None:
    """An interrupted useradd of the role's accounts task left NEW in /etc/passwd without its group (a
    gid no group had: the next useradd's group would take it). The next converge took NEW as there,
    never ran the accounts task, and started the service mapped to that gid. Now the look names each
    account's primary group, and the accounts task makes NEW's group with its gid before the service.
    (Made here as useradd then groupdel --force, in ids no other useradd takes meanwhile.)"""
    ids = [f"-K{key}_{value}" for key in ("SYS_UID", "SYS_GID") for value in ("MIN=59000", "MAX=59999")]
    subprocess.run(["useradd", *ids, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    "--home-dir", "/nonexistent", "--user-group", "--comment", "pyforkexec service account",
                    NEW], check=True)
    subprocess.run(["groupdel", "--force", NEW], check=True)
    gid = pwd.getpwnam(NEW).pw_gid
    converge(NEW)
    assert grp.getgrgid(gid).gr_name == NEW and pwd.getpwnam(NEW).pw_gid == gid
    assert _runs_as(SERVICE) == NEW
