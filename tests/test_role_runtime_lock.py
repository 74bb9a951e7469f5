"""The runtime lock of the role isolated_service (roles/isolated_service/files/runtime_switch.py and
runtime_pin.py) is root's alone: flock takes any open file, a read-only one too, and runtime.lock was
0644, so a process of any account (a service's: the runtime is in its view of the host's files, with a
read-only root and no capability too) held it exclusively, and every Python of the runtime in use (the
modules of the next converge, each daemon back from its waiter, each systemd launcher) waited for it in
runtime_pin.py for ever: one service stopped the restarts and converges of all. Found by h161."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.lock_holder import hold_as_nobody, release
from helpers.marks import needs_root

FILES = Path(__file__).resolve().parent.parent / "roles" / "isolated_service" / "files"

pytestmark = needs_root


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A directory any account can search (pytest's own is root's alone), as /opt is."""
    path = Path(tempfile.mkdtemp(prefix="pfe-rtlock-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def _switch(venv: Path, runtime: Path) -> dict:
    out = subprocess.run(["/usr/bin/python3", str(FILES / "runtime_switch.py"), str(venv), str(runtime)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def test_no_other_account_can_hold_the_runtime_lock(host_dir: Path) -> None:
    venv = host_dir / "venv"
    runtimes = host_dir / "venv.runtimes"
    old, new = runtimes / "r0", runtimes / "r1"
    old.mkdir(parents=True)
    new.mkdir()
    # a runtime in use that the role switched to before (its lock 0644) and still runs a Python of
    venv.symlink_to("venv.runtimes/r0")
    (old / "runtime.lock").touch(mode=0o644)
    (old / "runtime.lock").chmod(0o644)
    held = os.open(old / "runtime.lock", os.O_RDONLY)
    try:
        fcntl.flock(held, fcntl.LOCK_SH)
        assert _switch(venv, new)["switched"] is True
    finally:
        os.close(held)
    assert oct((new / "runtime.lock").stat().st_mode & 0o777) == oct(0o600)
    assert oct((old / "runtime.lock").stat().st_mode & 0o777) == oct(0o600)  # made before: tightened
    pid, said = hold_as_nobody([str(new / "runtime.lock")])
    try:
        # A Python of the runtime pins itself to it (its .pth): it must not wait on another account's lock.
        pin = FILES / "runtime_pin.py"
        script = f"import sys; sys.prefix = {str(venv)!r}; exec(open({str(pin)!r}).read())"
        started = time.monotonic()
        pinned = subprocess.run(["/usr/bin/python3", "-c", script], timeout=10, check=False)  # (hung: raises)
        took = time.monotonic() - started
    finally:
        release(pid)
    assert said == ["EACCES"], said  # not "held"
    assert pinned.returncode == 0 and took < 5, took
