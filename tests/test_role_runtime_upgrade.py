"""Upgrading the runtime of the role isolated_service never takes the running services' restart
machinery away: the role installed pyforkexec into the virtualenv in place (``pip install
--force-reinstall``) while daemons ran from it, and a daemon whose service ended meanwhile execed
VENV/bin/python into half a runtime (ImportError: the daemon died, its service was gone). Each install
now makes a new runtime beside the old one and swaps the link isolated_service_venv in one rename.

Runs the role (``-c local``) as test_role_accounts.py does, against a real daemon of another play
crash-looping from the virtualenv (its program ends at once, it is restarted at once: it execs the
virtualenv's Python all the time), from a virtualenv of the layout before (the old role's commands)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.marks import needs_root
from test_role_accounts import wheel_dir
from test_role_validation import (
    PID,
    PLAYBOOK,
    _cleanup,
    _host,
    _service,
    collections,
    run_role,
    traces,
    wheels,
)

pytestmark = [needs_root, pytest.mark.timeout(600),
              pytest.mark.skipif(not os.path.exists(PLAYBOOK), reason="no ansible-core in this venv")]
__all__ = ["collections", "wheel_dir", "wheels"]  # the fixtures, shared with test_role_validation.py

NAME = f"pfe-ru{PID}"


def _old_layout(venv: Path, wheels: Path) -> None:
    """The virtualenv as the role made it before: a directory, installed in place."""
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run(["/usr/bin/python3", "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                    "--quiet", "--disable-pip-version-check", "--no-index", "--force-reinstall",
                    "--find-links", str(wheels), "pyforkexec[net]"], check=True, capture_output=True)


class CrashLooper:
    """A daemon of the virtualenv whose service ends at once and is restarted at once, without limit."""

    def __init__(self, tmp_path: Path, venv: Path) -> None:
        self.log, spec = tmp_path / "looper.log", tmp_path / "looper.json"
        spec.write_text('{"version": 1, "argv": ["/bin/true"]}')
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # its own runtime only
        self.proc = subprocess.Popen(
            [str(venv / "bin" / "python"), "-m", "pyforkexec.daemon", "--name", NAME, "--spec", str(spec),
             "--pid-file", str(tmp_path / "looper.pid"), "--log-file", str(self.log), "--foreground",
             "--restart", "always", "--restart-sec", "0.01", "--start-limit-burst", "0"],
            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd="/")

    def starts(self) -> int:
        return self.log.read_text().count(": started ") if self.log.exists() else 0

    def still_restarting(self) -> bool:
        """Whether the daemon lives and starts its service again (polled: a hang guard, not a timing)."""
        before = self.starts()
        for _ in range(600):
            if self.proc.poll() is not None:
                return False
            if self.starts() > before:
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> str:
        """Stops it if it still runs; its stderr (a traceback when it died)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        return self.proc.stderr.read()


@pytest.fixture
def converge(tmp_path: Path, wheel_dir: Path, collections: Path) -> Iterator:
    """converge(**vars): one run of the role (no services of its own) for the virtualenv tmp_path/venv."""
    runs = iter(range(100))

    def run(check: bool = False, **variables: object) -> str:
        host = _host(tmp_path / "venv", wheel_dir)  # isolated_service_wheel_dir: every run installs
        host.update(variables)
        return run_role(tmp_path / f"run{next(runs)}", collections, host, check)

    yield run


def test_a_crash_looping_service_keeps_restarting_through_runtime_upgrades(tmp_path: Path, wheel_dir: Path,
                                                                            converge) -> None:
    venv, runtimes = tmp_path / "venv", tmp_path / "venv.runtimes"
    _old_layout(venv, wheel_dir)
    looper = CrashLooper(tmp_path, venv)
    try:
        assert looper.still_restarting(), looper.stop()
        for _ in range(3):  # the layout before moved to a runtime of its own, then two upgrades
            converge()
            assert looper.still_restarting(), f"the daemon died in a runtime upgrade: {looper.stop()[-2000:]}"
            assert venv.is_symlink() and venv.resolve().parent == runtimes
        before = sorted(runtimes.iterdir())
        converge(check=True)
        assert sorted(runtimes.iterdir()) == before and venv.is_symlink(), "check mode changed the runtimes"
    finally:
        err = looper.stop()
    assert "Traceback" not in err, err[-2000:]
    converge()  # nothing runs from the old runtimes now: they go
    assert [p.name for p in runtimes.iterdir()] == [venv.resolve().name]
    converge(isolated_service_state="absent", isolated_service_remove_runtime=True)
    assert not os.path.lexists(venv) and not runtimes.exists()


def test_a_converge_killed_while_installing_leaves_the_runtime_in_use(tmp_path: Path, converge) -> None:
    """A converge killed anywhere in the install (here: its runtime half made, as a kill during pip
    leaves it) leaves the link to the whole old runtime; the next converge removes the half-made one,
    but not a runtime a Python still runs from (it holds its lock), which goes once it ended."""
    converge()
    venv, runtimes = tmp_path / "venv", tmp_path / "venv.runtimes"
    first = venv.resolve()
    half = runtimes / "killed.abc123"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(half)], check=True)
    os.utime(half, (time.time() - 7200,) * 2)  # left by a converge killed two hours ago
    making = runtimes / "making.def456"  # another converge's, being made now: never switched to yet
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(making)], check=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = "import pyforkexec, sys; print(pyforkexec.__file__, flush=True); sys.stdin.read()"
    user = subprocess.Popen([str(venv / "bin" / "python"), "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env, cwd="/")
    try:
        # pinned: it imports from the runtime the link named, by its real path
        assert user.stdout.readline().startswith(f"{first}/")
        converge()
        assert not half.exists() and first.exists() and venv.resolve() != first
        assert making.exists(), "a runtime another converge is making was removed"
    finally:
        user.communicate("")
    switch = Path(__file__).resolve().parent.parent / "roles/isolated_service/files/runtime_switch.py"
    os.utime(making, (time.time() - 7200,) * 2)  # that converge was killed, long ago
    # the prune of tasks/present.yml
    subprocess.run(["/usr/bin/python3", str(switch), str(venv)], check=True, capture_output=True)
    assert [p.name for p in runtimes.iterdir()] == [venv.resolve().name]
    converge(isolated_service_state="absent", isolated_service_remove_runtime=True)
    assert not os.path.lexists(venv) and not runtimes.exists()


def test_absent_and_check_mode_over_the_runtime_of_the_release_before(tmp_path: Path, converge) -> None:
    """The modules import this release's library: over the runtime of the release before (which lacked
    pyforkexec.ns_pins), ``isolated_service_state: absent`` and a ``--check`` of the upgrade ran the
    services module in it, failed ("Failed to import the required Python library (pyforkexec)") and
    removed nothing. Check mode now says what a run would do; absent installs this release first, then
    removes everything. The release before's runtime is this one with what it lacked taken out and
    another wheels.source (what the role compares)."""
    service, bridge = _service(250)
    services = dict(isolated_service_services=[service], isolated_service_networks=[bridge])
    try:
        converge(**services)
        runtime = (tmp_path / "venv").resolve()
        (runtime / "wheels.source").write_text("pyforkexec-of-the-release-before\n")
        for lacked in runtime.glob("lib/python*/site-packages/pyforkexec/ns_pins.py"):
            lacked.unlink()
        log = converge(check=True, **services)
        assert "is a runtime of another release, so the services module cannot run in it" in log, log[-3000:]
        assert (tmp_path / "venv").resolve() == runtime, "check mode changed the runtime"
        converge(isolated_service_state="absent", isolated_service_remove_runtime=True, **services)
        assert traces(250) == [] and not os.path.lexists(tmp_path / "venv")
    finally:
        _cleanup(250)
