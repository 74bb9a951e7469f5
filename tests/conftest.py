"""Fixtures of the core suite: an unprivileged runner, a static probe, a tiny root, a cgroup, a netns."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers.forked import NOBODY, run_in_fork

HELPERS = Path(__file__).parent / "helpers"

# The commands the suite starts see a user's environment, whatever the developer's: with
# PYTHONUNBUFFERED set (some CI images and containers set it), a write error that only shows when
# Python flushes its buffered stdout at exit went unseen here and failed in a fresh root.
os.environ.pop("PYTHONUNBUFFERED", None)


@pytest.fixture(scope="session", autouse=True)
def keyboard_interrupt_on_sigint() -> Iterator[None]:
    """Python turns SIGINT into KeyboardInterrupt only if SIGINT was not ignored when it started, and a
    shell starts its background jobs (`cmd &`, nohup) with SIGINT ignored. The suite's signal tests are
    about a KeyboardInterrupt at any point, and its children should see what an interactive start
    gives them: Python's own handler for the whole session, wherever the suite was started from."""
    before = signal.getsignal(signal.SIGINT)
    if before == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.fixture
def unprivileged() -> Callable[..., Any]:
    """``unprivileged(fn, *args)`` runs fn in a forked child as uid/gid 65534 without groups, which
    reaches the venv, the package and examples/ even in a checkout under /root (helpers.forked)."""

    def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if os.geteuid() != 0:  # the suite run unprivileged (the guests' second pass): only root drops
            return run_in_fork(fn, *args, **kwargs)
        return run_in_fork(fn, *args, uid=NOBODY, gid=NOBODY, **kwargs)

    return run


@pytest.fixture(scope="session")
def world_dir() -> Iterator[Path]:
    """A 0755 scratch dir that uid 65534 can traverse (pytest's tmp_path is 0700)."""
    d = Path(tempfile.mkdtemp(prefix="pyforkexec-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def probe(world_dir: Path) -> str:
    """tests/helpers/probe.c built statically, so that it also runs inside an empty chroot."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the static probe")
    out = world_dir / "probe"
    proc = subprocess.run([cc, "-static", "-O2", "-o", str(out), str(HELPERS / "probe.c")],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot link a static probe (libc.a missing?): {proc.stderr.strip()}")
    return str(out)


@pytest.fixture
def tiny_root(tmp_path: Path, probe: str) -> Path:
    """A root with nothing but /probe and /marker."""
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy2(probe, root / "probe")
    (root / "marker").write_text("inside the tiny root\n")
    return root


def _cgroup2_mount() -> str | None:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[fields.index("-") + 1] == "cgroup2":
                return fields[4]
    return None


@pytest.fixture
def cgroup_dir() -> Iterator[tuple[str, str]]:
    """A fresh cgroup v2 directory: (absolute path, path as /proc/PID/cgroup shows it)."""
    mnt = _cgroup2_mount()
    if mnt is None:
        pytest.skip("no cgroup2 hierarchy mounted")
    with open("/proc/self/cgroup") as f:
        own = next((line[3:].strip() for line in f if line.startswith("0::")), None)
    if own is None:
        pytest.skip("this process has no cgroup v2 membership")
    name = f"pyforkexec-test-{uuid.uuid4().hex[:8]}"
    path = os.path.join(mnt + own.rstrip("/"), name)
    try:
        os.mkdir(path)
    except OSError as e:
        pytest.skip(f"cannot create a cgroup: {e}")
    yield path, os.path.join(own, name)
    os.rmdir(path)


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace made by ``ip netns add``; yields its /run/netns path."""
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (ip) is not installed")
    name = f"pyfe-{uuid.uuid4().hex[:8]}"
    proc = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"ip netns add failed: {proc.stderr.strip()}")
    yield f"/run/netns/{name}"
    subprocess.run(["ip", "netns", "del", name], check=True)


@pytest.fixture
def elsewhere() -> Iterator[Callable[[str], str]]:
    """A sleeping process in uts, ipc, net and mount namespaces of its own (and a user namespace of its
    own when the tests do not run as root: the one that owns them); yields ``path(kind)``, the file of
    its namespace of that kind (``/proc/PID/ns/uts``): a join target that is not the caller's own."""
    from helpers.procs import namespace_holder

    import pyforkexec as fe

    flags = fe.CLONE_NEWUTS | fe.CLONE_NEWIPC | fe.CLONE_NEWNET | fe.CLONE_NEWNS
    if os.geteuid() != 0:
        flags |= fe.CLONE_NEWUSER
    with namespace_holder(fe.SysProcAttr(cloneflags=flags)) as path:
        yield path

