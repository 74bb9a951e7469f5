"""Spawning leaves nothing behind: no fds, no zombies, under load, from threads and from asyncio; nor
does the suite's unprivileged runner, which works wherever root cloned the checkout."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers import sysutil
from helpers.forked import NOBODY, REPO, run_in_fork
from helpers.marks import needs_root
from helpers.procs import children, fd_count, wait_code

from pyforkexec import (
    CLONE_NEWIPC,
    CLONE_NEWNS,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    ChildError,
    ErrorLocation,
    ProcAttr,
    SysProcAttr,
    SysProcIDMap,
    fork_exec,
    start_process,
)

pytestmark = needs_root
ECHO = "/bin/echo"


@pytest.mark.timeout(900)  # 10,000 spawns: beyond the suite's 120 s on a loaded machine (a hang guard)
def test_ten_thousand_spawns_leave_no_fd_and_no_zombie() -> None:
    fds, kids = fd_count(), children()
    for _ in range(10_000):
        pid = fork_exec("/bin/true", ["true"])
        assert wait_code(pid) == 0
    assert (fd_count(), children()) == (fds, kids)


def test_failed_spawns_leave_no_fd_and_no_zombie() -> None:
    fds, kids = fd_count(), children()
    for _ in range(500):
        try:
            fork_exec("/nonexistent", ["x"], ProcAttr(sys=SysProcAttr(cloneflags=CLONE_NEWUSER,
                                                                       uid_mappings=[SysProcIDMap(0, 0, 1)])))
        except ChildError as e:
            assert e.location == ErrorLocation.EXECVE
        else:
            raise AssertionError("exec of /nonexistent succeeded")
    assert (fd_count(), children()) == (fds, kids)


def echo_through_pipe(token: str, sys: SysProcAttr | None) -> str:
    """Spawns echo with its stdout on a fresh pipe and returns what came through."""
    r, w = os.pipe()
    try:
        pid = fork_exec(ECHO, [ECHO, token], ProcAttr(files=[0, w, 2], sys=sys))
    finally:
        os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    code = wait_code(pid)
    return out if code == 0 else f"exit {code}"


NAMESPACED = [
    SysProcAttr(cloneflags=CLONE_NEWUTS | CLONE_NEWIPC),
    SysProcAttr(cloneflags=CLONE_NEWUSER, uid_mappings=[SysProcIDMap(0, 0, 1)],
                gid_mappings=[SysProcIDMap(0, 0, 1)]),
    SysProcAttr(unshareflags=CLONE_NEWUTS),
]


def spawner(thread: int, count: int) -> list[tuple[str, str]]:
    """Each thread's spawns: every fifth one namespaced; returns (expected, got) pairs."""
    results = []
    for i in range(count):
        token = f"t{thread}-{i}"
        sys = NAMESPACED[i // 5 % len(NAMESPACED)] if i % 5 == 0 else None
        results.append((token + "\n", echo_through_pipe(token, sys)))
    return results


def test_sixteen_threads_spawning_at_once() -> None:
    fds, kids = fd_count(), children()
    with ThreadPoolExecutor(16) as pool:
        batches = list(pool.map(spawner, range(16), [200] * 16))
    pairs = [pair for batch in batches for pair in batch]
    assert len(pairs) == 16 * 200
    assert [got for _, got in pairs] == [want for want, _ in pairs]
    assert (fd_count(), children()) == (fds, kids)


def test_spawning_from_asyncio() -> None:
    async def main() -> tuple[list[str], list[int]]:
        loop = asyncio.get_running_loop()
        outs = asyncio.gather(
            *(loop.run_in_executor(None, echo_through_pipe, f"a{i}", None) for i in range(20))
        )

        async def with_process(i: int) -> int:
            proc = start_process("/bin/sh", ["sh", "-c", f"exit {i}"])
            return await asyncio.to_thread(proc.wait)

        codes = asyncio.gather(*(with_process(i) for i in range(20)))
        return list(await outs), list(await codes)

    fds, kids = fd_count(), children()
    outs, codes = asyncio.run(main())
    assert outs == [f"a{i}\n" for i in range(20)]
    assert codes == list(range(20))
    assert (fd_count(), children()) == (fds, kids)


def _import_as_nobody() -> tuple[int, str, str]:
    res = subprocess.run([sys.executable, "-c", "import pyforkexec; print(pyforkexec.__file__)"],
                         capture_output=True, text=True, timeout=60)
    return res.returncode, res.stdout, res.stderr


def _mountinfo() -> str:
    with open("/proc/self/mountinfo") as f:
        return f.read()


def _behind_a_0700_dir() -> tuple[tuple[int, str, str], bool]:
    """Puts the checkout where root's clones go (its parent mode 0700, as /root) in this forked child's
    own mount namespace, then runs the venv's python as uid 65534 from there."""
    parent = str(REPO.parent)
    sysutil.unshare(CLONE_NEWNS)
    sysutil.mount(None, "/", None, sysutil.MS_REC | sysutil.MS_PRIVATE)  # nothing of this reaches the host
    below = os.open(parent, os.O_PATH | os.O_DIRECTORY)
    sysutil.mount("tmpfs", parent, "tmpfs", 0, "mode=700")
    os.mkdir(REPO)
    sysutil.mount(f"/proc/self/fd/{below}/{REPO.name}", str(REPO), None, sysutil.MS_BIND | sysutil.MS_REC)
    # Shared, as systemd leaves a host: a mount the runner made in the dropped child would show here.
    sysutil.mount(None, "/", None, sysutil.MS_REC | sysutil.MS_SHARED)
    before = _mountinfo()
    outcome = run_in_fork(_import_as_nobody, uid=NOBODY)
    return outcome, _mountinfo() == before


def test_unprivileged_runner_reaches_a_checkout_under_a_0700_dir() -> None:
    if REPO.parent == REPO.parent.parent:
        pytest.skip("the checkout is at /: it has no parent directory to make 0700")
    (code, out, err), unchanged = run_in_fork(_behind_a_0700_dir)
    assert code == 0, err
    assert out.strip() == str(REPO / "pyforkexec" / "__init__.py")
    assert unchanged, "the dropped child's mounts propagated to its parent's mount namespace"
