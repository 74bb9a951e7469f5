"""Process (start_process's result) and run(), against real children."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest
from helpers.marks import needs_root
from helpers.procs import children, fd_count

from pyforkexec import (
    CLONE_NEWUTS,
    ChildError,
    ErrorLocation,
    ProcAttr,
    Process,
    SysProcAttr,
    TimeoutExpired,
    run,
    start_process,
)

pytestmark = needs_root


@pytest.fixture(params=[False, True], ids=["no-pidfd", "pidfd"])
def pidfd(request: pytest.FixtureRequest) -> bool:
    return request.param


@pytest.fixture(autouse=True)
def _no_leftovers():
    """Every test must reap what it started and close what it opened."""
    fds, kids = fd_count(), children()
    yield
    assert (fd_count(), children()) == (fds, kids)


def sh(script: str, pidfd: bool = False) -> Process:
    return start_process("/bin/sh", ["sh", "-c", script], ProcAttr(sys=SysProcAttr(pidfd=pidfd)))


def sleeper(pidfd: bool) -> Process:
    return start_process("/bin/sleep", ["sleep", "60"], ProcAttr(sys=SysProcAttr(pidfd=pidfd)))


def test_wait_returns_the_exit_status(pidfd: bool) -> None:
    proc = sh("exit 3", pidfd)
    assert proc.returncode is None
    assert proc.wait() == 3
    assert proc.returncode == 3
    assert proc.wait() == 3  # again, without a second waitpid


def test_poll(pidfd: bool) -> None:
    proc = sleeper(pidfd)
    assert proc.poll() is None and proc.returncode is None
    proc.kill()
    assert proc.wait() == -signal.SIGKILL
    assert proc.poll() == -signal.SIGKILL


@pytest.mark.parametrize(
    ("action", "sig"),
    [("terminate", signal.SIGTERM), ("kill", signal.SIGKILL), ("send_signal", signal.SIGUSR1)],
)
def test_signals_give_a_negative_returncode(pidfd: bool, action: str, sig: int) -> None:
    proc = sleeper(pidfd)
    if action == "send_signal":
        proc.send_signal(sig)
    else:
        getattr(proc, action)()
    assert proc.wait() == -sig


def test_send_signal_after_wait_is_a_no_op(pidfd: bool) -> None:
    proc = sh("exit 0", pidfd)
    assert proc.wait() == 0
    proc.send_signal(signal.SIGKILL)
    proc.kill()
    assert proc.returncode == 0


def test_wait_timeout(pidfd: bool) -> None:
    proc = sleeper(pidfd)
    with pytest.raises(TimeoutExpired):
        proc.wait(timeout=0.05)
    assert proc.returncode is None and proc.poll() is None
    proc.kill()
    assert proc.wait(timeout=60) == -signal.SIGKILL


def test_context_manager_waits(pidfd: bool) -> None:
    with sh("exit 5", pidfd) as proc:
        pass
    assert proc.returncode == 5


def test_pidfd_is_closed_after_wait() -> None:
    proc = sleeper(True)
    fd = proc.pidfd
    assert fd is not None and os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[pidfd]"
    proc.terminate()
    proc.wait()
    assert proc.pidfd is None
    with pytest.raises(FileNotFoundError):
        os.readlink(f"/proc/self/fd/{fd}")


def test_without_pidfd_there_is_none() -> None:
    proc = sh("exit 0")
    assert proc.pidfd is None
    assert proc.wait() == 0


def test_concurrent_waiters_agree(pidfd: bool) -> None:
    # Up to 1000 rounds, stopping at the first failure: the race window is narrow.
    failures: list[BaseException] = []
    for _ in range(1000):
        if failures:
            break
        proc = sleeper(pidfd)
        codes: list[int] = []

        def waiter(proc: Process = proc, codes: list[int] = codes) -> None:
            try:
                codes.append(proc.wait())
            except BaseException as e:
                failures.append(e)

        threads = [threading.Thread(target=waiter) for _ in range(8)]
        for t in threads:
            t.start()
        proc.kill()
        for t in threads:
            t.join()
        proc.wait()
        assert all(code == -signal.SIGKILL for code in codes)
    assert failures == []


# ---- run() ------------------------------------------------------------------------------------------


def test_run_capture_output() -> None:
    res = run(["sh", "-c", "echo out; echo err >&2; exit 2"], capture_output=True)
    assert isinstance(res, subprocess.CompletedProcess)
    assert (res.args, res.returncode, res.stdout, res.stderr) == \
        (["sh", "-c", "echo out; echo err >&2; exit 2"], 2, b"out\n", b"err\n")


def test_run_text() -> None:
    res = run(["echo", "hi"], capture_output=True, text=True)
    assert res.stdout == "hi\n" and res.stderr == ""


def test_run_without_capture_has_no_output() -> None:
    res = run(["true"])
    assert (res.returncode, res.stdout, res.stderr) == (0, None, None)


def test_run_input_larger_than_a_pipe() -> None:
    data = os.urandom(1 << 20)
    res = run(["cat"], input=data, capture_output=True)
    assert res.stdout == data


def test_run_text_input() -> None:
    assert run(["cat"], input="héllo", capture_output=True, text=True).stdout == "héllo"


def test_run_timeout_kills_and_reaps() -> None:
    with pytest.raises(subprocess.TimeoutExpired) as info:
        run(["sleep", "60"], timeout=0.2)
    assert info.value.cmd == ["sleep", "60"]
    # _no_leftovers then checks that the killed child was reaped


def test_run_timeout_with_captured_output() -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        run(["sh", "-c", "echo started; exec sleep 60"], capture_output=True, timeout=0.2)


def test_run_check() -> None:
    with pytest.raises(subprocess.CalledProcessError) as info:
        run(["sh", "-c", "echo why; exit 3"], check=True, capture_output=True)
    err = info.value
    assert (err.returncode, err.cmd) == (3, ["sh", "-c", "echo why; exit 3"])
    assert (err.output, err.stderr) == (b"why\n", b"")
    assert run(["true"], check=True).returncode == 0


def test_run_signal_returncode() -> None:
    assert run(["sh", "-c", "kill -9 $$"]).returncode == -signal.SIGKILL


def test_run_looks_up_argv0_in_the_given_path(world_dir: Path, probe: str, tmp_path: Path) -> None:
    res = run([Path(probe).name, "pwd"], env={"PATH": str(Path(probe).parent)}, cwd=str(tmp_path),
              capture_output=True, text=True)
    assert res.stdout == f"{tmp_path.resolve()}\n"


def test_run_env_is_exact() -> None:
    res = run(["/usr/bin/env"], env={"ONLY": "this"}, capture_output=True, text=True)
    assert res.stdout == "ONLY=this\n"


def test_run_command_not_found() -> None:
    with pytest.raises(ChildError) as info:
        run(["pyforkexec-no-such-command"])
    assert (info.value.errno, info.value.location) == (errno.ENOENT, ErrorLocation.EXECVE)


def test_run_with_sys() -> None:
    res = run(["readlink", "/proc/self/ns/uts"], sys=SysProcAttr(cloneflags=CLONE_NEWUTS),
              capture_output=True, text=True)
    assert res.stdout.strip() != os.readlink("/proc/self/ns/uts")


def test_run_stdout_to_a_file_and_devnull(tmp_path: Path) -> None:
    with open(tmp_path / "out", "wb") as f:
        run(["sh", "-c", "echo to-file; echo gone >&2"], stdout=f, stderr=subprocess.DEVNULL)
    assert (tmp_path / "out").read_bytes() == b"to-file\n"


def test_run_stdin_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "in").write_bytes(b"from file\n")
    with open(tmp_path / "in", "rb") as f:
        assert run(["cat"], stdin=f, capture_output=True).stdout == b"from file\n"
