"""The role's absent with isolated_service_remove_runtime removes the virtualenv only once no service
runs from it: its look for daemons (roles/isolated_service/tasks/absent.yml), run here as the task runs
it, against a real daemon of this virtualenv."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml
from helpers.daemon import Daemon

REPO = Path(__file__).resolve().parent.parent
TASK = "Look for services that still run from the virtualenv"


def _look_argv(venv: str) -> list[str]:
    """The task's command, its template (the virtualenv) filled in with ``venv``."""
    tasks = yaml.safe_load((REPO / "roles" / "isolated_service" / "tasks" / "absent.yml").read_text())
    argv = next(t for t in tasks if t.get("name") == TASK)["ansible.builtin.command"]["argv"]
    assert argv[-1] == "{{ isolated_service_venv }}"
    return [*argv[:-1], venv]


def test_a_daemon_whose_pid_file_was_removed_keeps_its_virtualenv(tmp_path: Path) -> None:
    """The look went through /run/pyforkexec/*.pid: a daemon whose pid file was removed by hand was not
    seen, and the virtualenv it runs from was removed under it (its next exec back from the waiter
    fails, and its service is killed). Daemons are looked for among the processes now."""
    venv = os.path.dirname(os.path.dirname(sys.executable))  # the daemon runs VENV/bin/python
    d = Daemon(tmp_path, ["sleep", "60"])
    try:
        assert d.ready.startswith("ok ")
        d.pid_file.unlink()
        out = subprocess.run(_look_argv(venv), capture_output=True, text=True, check=True).stdout
        assert f"daemon t (pid {d.proc.pid})" in out.splitlines(), out
        elsewhere = subprocess.run(_look_argv(str(tmp_path / "other-venv")), capture_output=True, text=True,
                                   check=True).stdout
        assert f"(pid {d.proc.pid})" not in elsewhere, elsewhere
    finally:
        d.proc.send_signal(signal.SIGTERM)
        d.wait()
