"""SysProcAttr.cgroup: the child is born in a cgroup v2 directory with limits, removed when done.

On a hybrid cgroup v1/v2 machine (systemd's /sys/fs/cgroup/unified) the memory, pids, cpu and io
controllers are bound to cgroup v1: the limit tests skip there, and the refusal is tested instead.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Callable, Optional

import pytest
from helpers.cli import wait_for
from helpers.forked import run_in_fork
from helpers.lock_holder import hold_as_nobody, release
from helpers.marks import needs_root
from helpers.procs import fd_count, wait_code
from hypothesis import given, settings
from hypothesis import strategies as st
from unit.plugins import pid_reuse

from pyforkexec import (
    ChildError,
    ErrorLocation,
    ProcAttr,
    SysProcAttr,
    _signals,
    fork_exec,
    process,
    run,
    start_process,
)
from pyforkexec.sandbox import cgroup as cgroup_mod
from pyforkexec.sandbox.cgroup import Cgroup, CgroupError, check_cgroup, find_cgroup2, prepare, remove_cgroup

pytestmark = needs_root
CAT = "/usr/bin/cat"


def root() -> str:
    try:
        return find_cgroup2()
    except CgroupError as e:
        pytest.skip(str(e))


def available() -> set[str]:
    with open(os.path.join(root(), "cgroup.controllers")) as f:
        return set(f.read().split())


def needs_controllers(*names: str) -> None:
    missing = set(names) - available()
    if missing:
        pytest.skip(f"the {', '.join(sorted(missing))} controller is not in cgroup v2 here (bound to v1)")


@pytest.fixture
def name() -> Iterator[str]:
    """A fresh cgroup name below the root; removed afterwards if a test left it."""
    name = f"pyforkexec-ext-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield name
    for sub in ("m/b", "m", "b", ""):
        path = os.path.join(root(), name, sub)
        if os.path.isdir(path):
            os.rmdir(path)


def in_cgroup(cg: Cgroup) -> str:
    """The child's cgroup v2 path, from its /proc/self/cgroup."""
    res = run([CAT, "/proc/self/cgroup"], sys=SysProcAttr(cgroup=cg), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return next(line[3:] for line in res.stdout.splitlines() if line.startswith("0::"))


# ---- finding the v2 hierarchy -------------------------------------------------------------------------

LINE = "{id} 1 0:{id} / {target} rw,nosuid,nodev,noexec,relatime shared:{id} - {fstype} {fstype} rw\n"


@pytest.mark.parametrize(("mounts", "found"), [
    ([("/sys/fs/cgroup", "cgroup2")], "/sys/fs/cgroup"),
    ([("/sys/fs/cgroup", "tmpfs"), ("/sys/fs/cgroup/memory", "cgroup"),
      ("/sys/fs/cgroup/unified", "cgroup2")], "/sys/fs/cgroup/unified"),
    ([("/mnt/my\\040cgroups", "cgroup2")], "/mnt/my cgroups"),
], ids=["unified", "hybrid", "elsewhere"])
def test_find_cgroup2(tmp_path: Path, mounts: list[tuple[str, str]], found: str) -> None:
    info = tmp_path / "mountinfo"
    info.write_text("".join(LINE.format(id=30 + i, target=t, fstype=f) for i, (t, f) in enumerate(mounts)))
    assert find_cgroup2(str(info)) == found


def test_no_cgroup2_says_so(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(LINE.format(id=30, target="/sys/fs/cgroup/memory", fstype="cgroup"))
    with pytest.raises(CgroupError, match=r"^\[Errno 2\] SysProcAttr\.cgroup: no cgroup v2 hierarchy is "):
        find_cgroup2(str(info))


def test_this_machine() -> None:
    with open("/proc/self/mountinfo") as f:
        v2 = [line.split()[4] for line in f if " - cgroup2 " in line]
    if not v2:
        pytest.skip("no cgroup2 mounted here")
    assert root() in v2


# ---- the child's cgroup ----------------------------------------------------------------------------------


def test_child_is_born_in_its_cgroup_which_is_removed_after(name: str) -> None:
    assert in_cgroup(Cgroup(name)) == f"/{name}"
    assert not os.path.exists(os.path.join(root(), name))


def test_a_process_never_waited_for_has_its_cgroup_removed_at_exit(name: str) -> None:
    """A Process with kill_remaining, its child exited but never waited for, still referenced when the
    interpreter exits from a cycle that only the last collection frees: its removal ran once the
    builtins were gone (NameError: name 'open' is not defined, ignored in __del__) and the directory
    stayed. The reap at exit runs it while the interpreter is whole."""
    script = f"""if True:
        import select, sys, time
        from pyforkexec import Cgroup, ProcAttr, SysProcAttr, start_process
        proc = start_process("/bin/sh", ["sh", "-c", "sleep 300 & exit 0"], ProcAttr(sys=SysProcAttr(
            cgroup=Cgroup({name!r}, kill_remaining=True), pidfd=True)))
        select.select([proc.pidfd], [], [], 10)  # exited: a zombie, not reaped
        class Cycle:
            pass
        kept = Cycle()
        kept.me, kept.proc = kept, proc
        import gc
        gc.disable()
        del kept, proc
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert not os.path.exists(os.path.join(root(), name))


@pytest.mark.parametrize("kill_remaining", [False, True])
def test_what_the_process_left_in_its_cgroup(name: str, tmp_path: Path, kill_remaining: bool) -> None:
    """The process starts a child in a session of its own (out of its process group) and exits.
    Without kill_remaining the child keeps the directory, which stays (in use); with it, the child is
    killed once the process is reaped, and the directory goes (systemd's KillMode=control-group)."""
    marker = tmp_path / "pid"
    script = f"setsid sleep 300 & echo $! > {marker}; exit 0"
    proc = start_process("/bin/sh", ["sh", "-c", script], ProcAttr(sys=SysProcAttr(
        cgroup=Cgroup(name, kill_remaining=kill_remaining))))
    assert proc.wait() == 0
    left = int(marker.read_text())
    path = os.path.join(root(), name)
    try:
        if kill_remaining:
            assert not os.path.exists(path)
            wait_for(lambda: not _alive(left), "the child it left to be killed")
        else:
            assert os.path.isdir(path) and _alive(left)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(left, signal.SIGKILL)
        wait_for(lambda: not _alive(left), "the child to go")
        remove_cgroup(path)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_nested_path_creates_and_removes_the_parents(name: str) -> None:
    assert in_cgroup(Cgroup(f"{name}/b")) == f"/{name}/b"
    assert not os.path.exists(os.path.join(root(), name))


def test_path_through_an_interface_file_is_refused_leaving_no_parent(name: str) -> None:
    """The parents made before mkdir meets an interface file (cgroup.procs of the cgroup just made)
    go again, and the error names the field and why, not only ENOTDIR."""
    with pytest.raises(CgroupError) as err:
        start_process("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(cgroup=Cgroup(f"{name}/cgroup.procs"))))
    assert not os.path.exists(os.path.join(root(), name))
    assert "cgroup.path: names a file, not a cgroup directory: " in str(err.value)


def test_check_host_foresees_every_interface_file_a_new_cgroup_has(name: str) -> None:
    """check_host (exec --check, a module's check mode) refused only cgroup.* names below a cgroup to
    make: "NEW/cpu.stat" or "NEW/memory.pressure" (files of every cgroup, of no controller) passed the
    check, and the start then failed on the file mkdir met."""
    files = sorted(f for f in os.listdir(root()) if not f.startswith("cgroup.")
                   and os.path.isfile(os.path.join(root(), f)))
    if not files:
        pytest.skip("the cgroup2 root here has no interface file outside cgroup.*")
    for file in files:
        cg = Cgroup(f"{name}/{file}")
        with pytest.raises(CgroupError, match=r"cgroup\.path: names a file, not a cgroup directory: "):
            cgroup_mod.check_host(cg)
        with pytest.raises(CgroupError, match=r"cgroup\.path: names a file, not a cgroup directory: "):
            start_process("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(cgroup=cg)))  # as the start
        assert not os.path.exists(os.path.join(root(), name))


def test_path_too_long_leaves_no_parent(name: str) -> None:
    """mkdir fails part way (ENAMETOOLONG) after making the first directories: they go again."""
    with pytest.raises(CgroupError):
        start_process("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(cgroup=Cgroup(
            name + "/" + "/".join(["y" * 200] * 25)))))
    assert not os.path.exists(os.path.join(root(), name))


def test_process_removes_it_once_reaped(name: str) -> None:
    proc = start_process("/bin/sleep", ["sleep", "60"], ProcAttr(sys=SysProcAttr(cgroup=Cgroup(name))))
    path = os.path.join(root(), name)
    assert proc.cgroup_path == path and os.path.isdir(path)  # type: ignore[attr-defined]
    with open(os.path.join(path, "cgroup.procs")) as f:
        assert f.read().split() == [str(proc.pid)]
    proc.kill()
    assert proc.wait() == -signal.SIGKILL
    assert not os.path.exists(path)


def test_existing_directory_is_reused_and_kept(cgroup_dir: tuple[str, str]) -> None:
    path, rel = cgroup_dir
    assert in_cgroup(Cgroup(path)) == rel  # an absolute path under the mount
    assert os.path.isdir(path)


@pytest.mark.parametrize("how", ["Cgroup", "use_cgroup_fd", "fork_exec"])
def test_a_cgroup_that_was_killed_once_runs_the_program_or_fails_at_clone(name: str, how: str) -> None:
    """Linux (6.18 still) kills a child that clone3 puts into a cgroup that cgroup.kill was ever
    written to, before it runs: the spawn returned a process that had died of SIGKILL (run: returncode
    -9, no output), as if the program had started and been killed. Now it is a ChildError at clone
    naming the cgroup's field; a kernel without the bug runs the program."""
    path = os.path.join(root(), name)
    os.mkdir(path)
    with open(os.path.join(path, "cgroup.kill"), "w") as f:
        f.write("1")
    before = fd_count()
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    sys_attr = SysProcAttr(cgroup=Cgroup(name)) if how == "Cgroup" else SysProcAttr(use_cgroup_fd=True,
                                                                                     cgroup_fd=fd)
    try:
        if how == "fork_exec":
            pid = fork_exec("/bin/true", ["true"], ProcAttr(sys=sys_attr))
            assert wait_code(pid) == 0
        else:
            res = run(["/bin/echo", "ran"], sys=sys_attr, capture_output=True, text=True)
            assert (res.returncode, res.stdout) == (0, "ran\n")
    except ChildError as e:
        field = "sys.cgroup" if how == "Cgroup" else "sys.cgroup_fd"
        assert (e.location, e.field) == (ErrorLocation.CLONE, field)
    finally:
        os.close(fd)
    assert fd_count() == before
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)
    assert os.path.isdir(path)  # an existing directory: left in place


def test_fork_exec_leaves_it_to_the_caller(name: str) -> None:
    cg = Cgroup(f"/{name}")  # a cgroup path, as /proc/PID/cgroup shows them
    pid = fork_exec("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(cgroup=cg)))
    assert os.path.isdir(cg.fs_path())
    assert wait_code(pid) == 0
    assert remove_cgroup(cg.fs_path()) and not os.path.exists(cg.fs_path())


def test_fork_exec_refuses_kill_remaining(name: str) -> None:
    """fork_exec returns a pid and never sees the child end: kill_remaining was accepted and nothing
    that the program left in the cgroup was ever killed. Refused naming the field, before any process
    or directory exists; start_process does it."""
    cg = Cgroup(f"{name}/k", kill_remaining=True)
    with pytest.raises(ValueError, match=r"^SysProcAttr\.cgroup\.kill_remaining: happens once the child"):
        fork_exec("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(cgroup=cg)))
    assert not os.path.exists(os.path.join(root(), name))
    proc = start_process("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(cgroup=cg)))
    assert proc.wait() == 0 and not os.path.exists(os.path.join(root(), name))


def test_failed_spawn_removes_it(name: str) -> None:
    with pytest.raises(ChildError) as info:
        fork_exec("/nonexistent", ["x"], ProcAttr(sys=SysProcAttr(cgroup=Cgroup(f"{name}/b"))))
    assert (info.value.errno, info.value.location) == (errno.ENOENT, ErrorLocation.EXECVE)
    assert not os.path.exists(os.path.join(root(), name))


# ---- limits ----------------------------------------------------------------------------------------------


def test_missing_controller_is_refused_with_the_reason(name: str) -> None:
    if "pids" in available():
        pytest.skip("the pids controller is available in cgroup v2 here")
    with pytest.raises(CgroupError, match=r"SysProcAttr\.cgroup: the pids controller is not available in "):
        fork_exec("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(cgroup=Cgroup(name, pids_max=10))))
    assert not os.path.exists(os.path.join(root(), name))


NUMBERED = ("memory_max", "memory_swap_max", "pids_max", "cpu_max")


@pytest.mark.parametrize("field", NUMBERED)
@pytest.mark.parametrize("value", ["\u0661\u0662", "\uff11\uff12", "1\u0660", "9223372036854775808",
                                   "18446744073709555712", "9" * 30])
def test_a_number_the_kernel_would_refuse_or_wrap_is_refused_before_anything_is_made(field: str,
                                                                                     value: str) -> None:
    """A limit in a string was checked with \\d (any script's digits: U+0661 was taken, and refused by
    the kernel only once the directory was made), and unbounded where the same int is refused past
    2^63 - 1: the kernel parses such a number by wrapping it around 2^64 (memory.max of 2^64 + 4096
    became 4096 bytes), a limit other than the one asked, with no error."""
    with pytest.raises(ValueError, match=rf"^SysProcAttr\.cgroup\.{field}: must be "):
        check_cgroup("SysProcAttr.cgroup", Cgroup("x", **{field: value}))
    if field == "cpu_max":
        with pytest.raises(ValueError, match=r"^SysProcAttr\.cgroup\.cpu_max: must be "):
            check_cgroup("SysProcAttr.cgroup", Cgroup("x", cpu_max=f"50000 {value}"))


@pytest.mark.parametrize("value", [18446744073710552, "18446744073710552 100000", "max 18446744073710552",
                                   2**63 - 1])
def test_a_cpu_max_the_kernel_would_wrap_into_a_smaller_quota_is_refused(value: object) -> None:
    """cpu.max is in microseconds, which the kernel (before 6.17) multiplies by 1000 in 64 bits
    unchecked: a quota of 18446744073710552 us, below the 2^63 - 1 every limit was checked against,
    became 1 ms per 100 ms (1% of a CPU) where it asked for no limit at all."""
    refused = r"^SysProcAttr\.cgroup\.cpu_max: must be at most 18446744073709551 "
    with pytest.raises(ValueError, match=refused):
        check_cgroup("SysProcAttr.cgroup", Cgroup("x", cpu_max=value))  # type: ignore[arg-type]


@pytest.mark.parametrize("line", ["\u0668:0 rbps=1", "8:0 wbps=18446744073709551617", "8:0 riops=1\u0660"])
def test_an_io_max_number_the_kernel_would_refuse_or_wrap_is_refused(line: str) -> None:
    with pytest.raises(ValueError, match=r"^SysProcAttr\.cgroup\.io_max\[0\]: must be "):
        check_cgroup("SysProcAttr.cgroup", Cgroup("x", io_max=[line]))


def test_a_limit_string_is_written_as_its_text_whatever_its_class_says() -> None:
    """A str subclass was written through its own encode(): checked as "100", written as anything."""

    class Sly(str):
        def encode(self, *args: object, **kwargs: object) -> bytes:  # type: ignore[override]
            return b"max"

    spec = check_cgroup("SysProcAttr.cgroup", Cgroup("x", pids_max=Sly("100"), io_max=[Sly("8:0 rbps=1")]))
    assert all(type(line) is str for _, lines in spec.writes for line in lines), spec.writes


_DIGITS = st.characters(categories=["Nd", "No"]) | st.sampled_from("0123456789 m")
_NUMBER_TEXT = st.one_of(st.text(alphabet=_DIGITS, max_size=25),
                         st.integers(0, 2**70).map(str))


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(field=st.sampled_from(NUMBERED), text=_NUMBER_TEXT)
def test_any_limit_text_is_refused_naming_the_field_or_written_as_the_kernel_reads_it(field: str,
                                                                                      text: str) -> None:
    """Generated: what the check takes is 'max' or ASCII numbers the kernel reads as written (no
    wrap past 64 bits, cpu.max's microseconds times 1000 included); the rest is a ValueError naming
    the field."""
    try:
        spec = check_cgroup("SysProcAttr.cgroup", Cgroup("x", **{field: text}))
    except ValueError as e:
        assert str(e).startswith(f"SysProcAttr.cgroup.{field}: "), e
        return
    (written,) = spec.writes[0][1]
    top = (2**64 - 1) // 1000 if field == "cpu_max" else 2**63 - 1
    for word in written.split(" "):
        assert word == "max" or (word.isascii() and word.isdigit() and int(word) <= top), written


@pytest.mark.parametrize("value", [0, 1, "0", "max", str(2**63 - 1), 2**63 - 1])
def test_the_bounds_themselves_are_taken(value: object) -> None:
    spec = check_cgroup("SysProcAttr.cgroup", Cgroup("x", memory_max=value, pids_max=value))  # type: ignore[arg-type]
    assert spec.writes == (("memory.max", (str(value),)), ("pids.max", (str(value),)))
    assert check_cgroup("SysProcAttr.cgroup", Cgroup("x", cpu_max="18446744073709551 1000000")).writes


def test_limits_are_written(name: str) -> None:
    needs_controllers("memory", "pids", "cpu")
    cg = Cgroup(name, memory_max=64 << 20, memory_swap_max=0, pids_max=16, cpu_max="50000 100000",
                cpu_weight=50)
    with start_process("/bin/sleep", ["sleep", "60"], ProcAttr(sys=SysProcAttr(cgroup=cg))) as proc:
        files = ("memory.max", "memory.swap.max", "pids.max", "cpu.max", "cpu.weight")
        values = [Path(root(), name, f).read_text().strip() for f in files]
        proc.kill()
    assert values == [str(64 << 20), "0", "16", "50000 100000", "50"]


def test_memory_max_kills_a_child_that_allocates_past_it(name: str) -> None:
    needs_controllers("memory")
    cg = Cgroup(name, memory_max=32 << 20, memory_swap_max=0)
    hog = "b = b'x' * (64 << 20); print('survived')"
    res = run(["/usr/bin/python3", "-c", hog], sys=SysProcAttr(cgroup=cg), capture_output=True)
    assert res.returncode == -signal.SIGKILL and b"survived" not in res.stdout


def test_pids_max_stops_forks(name: str) -> None:
    needs_controllers("pids")
    res = run(["/bin/sh", "-c", "(true) && echo forked"], sys=SysProcAttr(cgroup=Cgroup(name, pids_max=1)),
              capture_output=True, text=True)
    assert "forked" not in res.stdout and "fork" in res.stderr.lower()


def test_a_parent_with_processes_cannot_hand_controllers_down(cgroup_dir: tuple[str, str]) -> None:
    needs_controllers("pids")
    path, _ = cgroup_dir
    fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sleeper = start_process("/bin/sleep", ["sleep", "60"],
                                ProcAttr(sys=SysProcAttr(use_cgroup_fd=True, cgroup_fd=fd)))
    finally:
        os.close(fd)
    try:
        attr = ProcAttr(sys=SysProcAttr(cgroup=Cgroup(f"{path}/c", pids_max=1)))
        with pytest.raises(CgroupError, match="has processes of its own"):
            fork_exec("/bin/true", ["true"], attr)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not os.path.exists(f"{path}/c")


# ---- interrupted at any point ----------------------------------------------------------------------------


def interrupted(n: int, fn: Callable[[], object], *modules: object) -> bool:
    """Run fn with a real SIGINT sent to this process at its n-th line in ``modules``; False when fn
    ran fewer lines (every point has been tried). A KeyboardInterrupt it caused is swallowed."""
    files = {m.__file__ for m in modules}  # type: ignore[attr-defined]
    count, sent = 0, False

    def in_del(frame: Optional[FrameType]) -> bool:  # Python drops what a finalizer raises, signals too
        while frame is not None and frame.f_code.co_filename in files:
            if frame.f_code.co_name == "__del__":
                return True
            frame = frame.f_back
        return False

    def on_line(frame: FrameType, event: str, arg: object) -> object:
        nonlocal count, sent
        if event == "line" and not in_del(frame):
            if count == n:
                sent = True
                os.kill(os.getpid(), signal.SIGINT)  # handled right here, or held by pyforkexec
            count += 1
        return on_line

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.settrace(lambda frame, event, arg: on_line if frame.f_code.co_filename in files else None)
    try:
        fn()
    except KeyboardInterrupt:
        if not sent:
            raise
    finally:
        sys.settrace(None)
        signal.signal(signal.SIGINT, previous)
    return sent


def test_an_interrupted_prepare_leaves_nothing(name: str) -> None:
    """A KeyboardInterrupt at any line of prepare (after a mkdir, before the fd is kept...) removes
    what it made and closes what it opened; a prepare that completes hands all of it to the handle."""
    spec = check_cgroup("SysProcAttr.cgroup", Cgroup(f"{name}/m/b"))
    handles: list[cgroup_mod.CgroupHandle] = []
    n = 0
    fds = fd_count()
    while interrupted(n, lambda: handles.append(prepare(spec)), cgroup_mod, _signals):
        while handles:
            handles.pop().cleanup()
        assert not os.path.exists(os.path.join(root(), name)), f"left behind when interrupted at line {n}"
        assert fd_count() == fds, f"fd left open when interrupted at line {n}"
        n += 1
    assert n > 20 and handles  # the last run was not interrupted
    handles.pop().cleanup()


def test_an_interrupted_wait_still_removes_the_cgroup(name: str) -> None:
    """A KeyboardInterrupt anywhere in wait(): once the child is reaped its cgroup is gone."""
    n = 0
    while True:
        proc = start_process("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(cgroup=Cgroup(f"{name}/m/b"))))
        fds = fd_count()
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # exited: wait() does not block
        sent = interrupted(n, proc.wait, cgroup_mod, process, _signals)
        assert proc.wait() == 0  # as a caller would, after the interrupt
        assert not os.path.exists(os.path.join(root(), name)), f"left behind when interrupted at line {n}"
        assert fd_count() == fds, f"fd left open when interrupted at line {n}"
        if not sent:
            break
        n += 1
    assert n > 10


def test_no_proc_to_find_the_hierarchy_in_is_a_cgroup_error_naming_the_field(tmp_path: Path) -> None:
    """Without /proc (a chroot) the mount table cannot be read: a CgroupError naming the field, not a
    bare OSError naming a file."""
    with pytest.raises(CgroupError) as e:
        find_cgroup2(str(tmp_path / "mountinfo"))
    assert e.value.errno == errno.ENOENT
    assert e.value.strerror.startswith("SysProcAttr.cgroup: cannot read ")


def test_a_spawn_undone_after_its_execve_kills_what_its_child_started(name: str) -> None:
    """A Ctrl-C that the spawn holds until its end undoes it though the program runs: with
    kill_remaining, what the program already forked goes too, and so does the cgroup (cleanup of a
    failed spawn skipped the kill: the fork kept running there, and kept the directory)."""
    root()
    leaf = os.path.join(root(), name, "leaf")
    fired = []

    def tracer(frame: FrameType, event: str, arg: object) -> Optional[Callable]:
        if frame.f_code.co_name != "_spawn_checked":
            return None

        def local(frame: FrameType, event: str, arg: object) -> Optional[Callable]:
            if event == "line" and not fired and "out = result(spawn)" in _source_line(frame):
                fired.append(True)
                wait_for(lambda: len(_procs(leaf)) >= 2, "the program and its fork in the cgroup")
                os.kill(os.getpid(), signal.SIGINT)  # held by the spawn, raised at its end
            return local

        return local

    sys.settrace(tracer)
    try:
        with pytest.raises(KeyboardInterrupt):
            start_process("/bin/sh", ["sh", "-c", "sleep 1000 & exec sleep 1000"], ProcAttr(
                sys=SysProcAttr(pidfd=True, cgroup=Cgroup(f"{name}/leaf", kill_remaining=True))))
    finally:
        sys.settrace(None)
    assert fired, "the spawn no longer hands over with 'out = result(spawn)': move the interrupt"
    assert not os.path.isdir(leaf), f"left: the cgroup, with {_procs(leaf)}"


def _source_line(frame: FrameType) -> str:
    with open(frame.f_code.co_filename) as f:
        return f.readlines()[frame.f_lineno - 1]


def _procs(path: str) -> list[str]:
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            return f.read().split()
    except FileNotFoundError:
        return []


def test_a_cgroup_spawn_out_of_fds_removes_the_directories_it_made(name: str) -> None:
    """RLIMIT_NOFILE leaves 0, 1, 2... free fds: the spawn fails (EMFILE) until it fits, and each
    failure removes the directories it made, though their usual removal needs fds of its own (the
    directory and its turn lock), which the failure being undone had run out of. In a forked child:
    a process whose fds no earlier test's objects open or close meanwhile."""
    failures, left = run_in_fork(_spawns_out_of_fds, os.path.join(root(), name), name)
    assert failures > 0 and left == [], f"{failures} failed spawns, left: {left}"


def _spawns_out_of_fds(made: str, name: str) -> tuple[int, list[int]]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    top = max(int(fd) for fd in os.listdir("/proc/self/fd")) + 4
    while os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC) < top:  # every fd up to top taken (the lowest
        pass  # free number comes first; the forked child exits with them)
    failures, left = 0, []
    for extra in range(12):
        resource.setrlimit(resource.RLIMIT_NOFILE, (top + 1 + extra, hard))
        try:
            proc = start_process("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(
                pidfd=True, cgroup=Cgroup(f"{name}/leaf", kill_remaining=True))))
        except OSError as e:
            if e.errno != errno.EMFILE:
                raise
            failures += 1
            if os.path.isdir(made):
                left.append(extra)
            continue
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        assert proc.wait() == 0
        return failures, left
    raise AssertionError("no spawn fitted in 12 free fds")


def _delegate(path: str) -> None:
    """Make ``path`` and hand it to uid 65534 as systemd's Delegate=yes does: the directory and the
    files the kernel lists in /sys/kernel/cgroup/delegate (cgroup.kill is not one of them)."""
    os.mkdir(path)
    os.chown(path, 65534, 65534)
    with open("/sys/kernel/cgroup/delegate") as f:
        for filename in f.read().split():
            with contextlib.suppress(FileNotFoundError):
                os.chown(os.path.join(path, filename), 65534, 65534)


def _kill_remaining_as_nobody(init: str, target: str, marker: str) -> str:
    with open(os.path.join(init, "cgroup.procs"), "w") as f:  # (as root) into the delegated subtree
        f.write(str(os.getpid()))
    os.setgroups([])
    os.setresgid(65534, 65534, 65534)
    os.setresuid(65534, 65534, 65534)
    try:
        proc = start_process("/bin/sh", ["sh", "-c", f"setsid sleep 300 & echo $! > {marker}; exit 0"],
                             ProcAttr(sys=SysProcAttr(cgroup=Cgroup(target, kill_remaining=True))))
    except CgroupError as e:
        return str(e)
    proc.wait()
    return "ran"


def test_kill_remaining_where_cgroup_kill_is_not_writable_is_refused(name: str) -> None:
    """A cgroup delegated to an unprivileged user keeps cgroup.kill its parent's: kill_remaining wrote
    nothing there, gave up without a word, and what the program left ran on. Refused before the program
    runs instead (a leaf pyforkexec makes below it is the user's, cgroup.kill included)."""
    top = os.path.join(root(), name)
    _delegate(top)  # (the common parent of init and the target: the move of the child writes its procs)
    kill_file = os.path.join(top, "cgroup.kill")
    if not (os.path.exists("/sys/kernel/cgroup/delegate") and os.path.exists(kill_file)):
        pytest.skip("no cgroup.kill or /sys/kernel/cgroup/delegate here (Linux before 5.14)")
    init, target = os.path.join(top, "init"), os.path.join(top, "d")
    _delegate(init)
    _delegate(target)
    shared = Path(tempfile.mkdtemp(prefix="pfe-kill-"))  # (tmp_path's parents are root's only)
    shared.chmod(0o777)
    marker = shared / "pid"
    try:
        outcome = run_in_fork(_kill_remaining_as_nobody, init, f"{name}/d", str(marker))
        assert "SysProcAttr.cgroup.kill_remaining: " in outcome and "not writable" in outcome, outcome
        assert not marker.exists()
        ran = run_in_fork(_kill_remaining_as_nobody, init, f"{name}/d/leaf", str(marker))
        assert ran == "ran" and not os.path.exists(os.path.join(target, "leaf"))
        wait_for(lambda: not _alive(int(marker.read_text())), "what the program left to be killed")
    finally:
        if marker.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(marker.read_text()), signal.SIGKILL)
        for path in (os.path.join(target, "leaf"), target, init, top):
            with contextlib.suppress(FileNotFoundError):
                wait_for(lambda p=path: not cgroup_mod.members(p), "the cgroup to empty")
                os.rmdir(path)
        shutil.rmtree(shared)


def _leaving(name: str, marker: Path) -> process.Process:
    """A process in cgroup ``name`` (kill_remaining) that leaves a sleep behind, its pid in ``marker``."""
    return start_process("/bin/sh", ["sh", "-c", f"sleep 300 & echo $! > {marker}; exit 0"], ProcAttr(
        sys=SysProcAttr(pidfd=True, cgroup=Cgroup(name, kill_remaining=True))))


def _gone(marker: Path, path: str) -> None:
    with contextlib.suppress(ValueError, OSError):
        os.kill(int(marker.read_text()), signal.SIGKILL)
    wait_for(lambda: not _procs(path), "what the process left to go")
    remove_cgroup(path)


@pytest.mark.parametrize("call", ["wait", "poll"])
def test_no_waiter_returns_before_the_cgroup_is_removed(name: str, tmp_path: Path, call: str) -> None:
    """Two threads wait for one process with kill_remaining: the one that reaps it removes the cgroup
    (held here at kill_members until the other returns, or for 3 s). The other must not return the
    code while what the process left still runs in the cgroup: it waits for the removal, in poll()
    too (it returned at once, the returncode set before the removal)."""
    proc = _leaving(name, tmp_path / "pid")
    path = os.path.join(root(), name)
    cleaning, returned = threading.Event(), threading.Event()

    def hold_the_removal(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code is cgroup_mod.kill_members.__code__ and not cleaning.is_set():
            cleaning.set()
            returned.wait(3)

    codes = []

    def reaper() -> None:
        sys.setprofile(hold_the_removal)
        try:
            codes.append(proc.wait())
        finally:
            sys.setprofile(None)

    thread = threading.Thread(target=reaper)
    thread.start()
    try:
        assert cleaning.wait(60), "the reaping thread never removed the cgroup"
        code = proc.wait() if call == "wait" else proc.poll()
        left = _procs(path) if os.path.exists(path) else None
        returned.set()
        thread.join(60)
        assert code == 0 and codes == [0]
        assert left is None, f"returned with the cgroup still there, holding {left}"
    finally:
        returned.set()
        thread.join(60)
        _gone(tmp_path / "pid", path)


@pytest.mark.parametrize("interrupt", ["error", "sigint"])
def test_a_removal_cut_short_is_finished_by_the_next_wait(name: str, tmp_path: Path, interrupt: str) -> None:
    """The removal of the cgroup fails once (an error raised where it kills what is left), or a
    Ctrl-C comes then: nothing is lost. The Ctrl-C waits for the removal's end; after the error, the
    next wait() removes it (the handle was dropped before the removal: the sleep kept the cgroup)."""
    proc = _leaving(name, tmp_path / "pid")
    path = os.path.join(root(), name)
    fired = []

    def cut(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code is cgroup_mod.kill_members.__code__ and not fired:
            fired.append(True)
            if interrupt == "sigint":
                os.kill(os.getpid(), signal.SIGINT)
            else:
                raise OSError(errno.EIO, "injected")

    sys.setprofile(cut)
    try:
        with pytest.raises(KeyboardInterrupt if interrupt == "sigint" else OSError):
            proc.wait()
    finally:
        sys.setprofile(None)
    try:
        assert fired
        if interrupt == "sigint":
            assert not os.path.exists(path)
        assert proc.wait() == 0 and proc.poll() == 0
        assert not os.path.exists(path), f"left: the cgroup, with {_procs(path)}"
    finally:
        _gone(tmp_path / "pid", path)


# Inside a PID namespace of its own (PID 1 there): kill_members of a cgroup whose cgroup.kill cannot be
# written (a delegated cgroup's owner may not: each listed pid is killed instead). The member, this
# process's child, is listed, then exits and is reaped before its kill; the next fork gets its pid
# (ns_last_pid, in this namespace only): a bystander outside the cgroup.
_LISTED_PID_REUSED = r"""
import errno, json, os, signal, sys, time
from pid_reuse import bystander_on, killed
from pyforkexec.sandbox import cgroup as cgroup_mod

path = sys.argv[1]
r, w = os.pipe()
member = os.fork()
if member == 0:
    with open(os.path.join(path, "cgroup.procs"), "w") as f:
        f.write("0")
    os.write(w, b".")
    time.sleep(600)
    os._exit(0)
os.read(r, 1)
read, write, seen = cgroup_mod._read, cgroup_mod._write, {}

def refused(file, text):
    if file.endswith("cgroup.kill"):
        raise PermissionError(errno.EACCES, "delegated", file)
    write(file, text)

def steered(file):
    text = read(file)
    if file.endswith("cgroup.procs") and not seen:
        seen["listed"] = int(text.split()[0])
        os.kill(member, signal.SIGKILL)
        os.waitpid(member, 0)
        seen["bystander"] = bystander_on(member)
    return text

cgroup_mod._write, cgroup_mod._read = refused, steered
empty = cgroup_mod.kill_members(path)
reused = seen["listed"] == seen["bystander"] == member
print(json.dumps({"empty": empty, "reused": reused, "bystander_alive": not killed(seen["bystander"])}))
"""


def test_a_member_kill_by_pid_never_reaches_a_process_that_reused_a_listed_pid() -> None:
    """Where cgroup.kill cannot be written, kill_members SIGKILLed each pid cgroup.procs listed by
    number: a member that exited and was reaped between the read and the kill had left its number to
    any process, outside the cgroup, which was killed in its place. Each goes through a pidfd now,
    used only if its pid is listed again after the open."""
    if shutil.which("unshare") is None:
        pytest.skip("needs util-linux unshare")
    path = os.path.join(root(), f"h108-listed-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.mkdir(path)
    try:
        answer = pid_reuse.run(_LISTED_PID_REUSED, path)
    finally:
        wait_for(lambda: not _procs(path), "the cgroup to empty")
        os.rmdir(path)
    assert answer == {"empty": True, "reused": True, "bystander_alive": True}


# Inside a PID namespace of its own: kill_members of a cgroup whose cgroup.kill cannot be written, holding
# a process of the parent namespace, which cgroup.procs lists as 0 here.
_MEMBER_OF_ANOTHER_PID_NAMESPACE = r"""
import errno, json, os, sys
from pyforkexec.sandbox import cgroup as cgroup_mod

write = cgroup_mod._write

def refused(file, text):
    if file.endswith("cgroup.kill"):
        raise PermissionError(errno.EACCES, "delegated", file)
    write(file, text)

cgroup_mod._write = refused
listed = cgroup_mod._read(os.path.join(sys.argv[1], "cgroup.procs")).split()
try:
    answer = {"empty": cgroup_mod.kill_members(sys.argv[1], timeout=0.2)}
except OSError as e:
    answer = {"raised": e.strerror}
print(json.dumps({"listed": listed, **answer}))
"""


def test_a_member_in_another_pid_namespace_is_left_and_nothing_else_is_killed() -> None:
    """kill_members without cgroup.kill, run in a PID namespace, of a cgroup holding a process of the
    parent one: cgroup.procs lists it as 0, and the kill by pidfd raised EINVAL (pidfd_open(0); a
    kill by number, before it, was kill(0): its own process group). Such a member is left: the cgroup
    is not empty, said as such, and the member, beyond reach, runs on."""
    if shutil.which("unshare") is None:
        pytest.skip("needs util-linux unshare")
    path = os.path.join(root(), f"h113-other-ns-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.mkdir(path)
    outsider = subprocess.Popen(["sleep", "600"])
    try:
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(outsider.pid))
        answer = pid_reuse.run(_MEMBER_OF_ANOTHER_PID_NAMESPACE, path)
        running = outsider.poll() is None
    finally:
        outsider.kill()
        outsider.wait()
        wait_for(lambda: not _procs(path), "the cgroup to empty")
        os.rmdir(path)
    assert (answer, running) == ({"listed": ["0"], "empty": False}, True)


def test_another_account_cannot_hold_a_cgroups_locks(name: str) -> None:
    """A spawn into a directory and a removal of it take flocks on the directory and on its cgroup.procs,
    waiting for them, and the kernel makes those 0755 and 0644: a process of any account (a service's)
    held them, and each stop, restart and removal of the cgroups below that directory (every service's,
    under the shared parent pyforkexec/) hung for as long as it lived. The directories a spawn makes keep
    them to their owner: 0711 (their files still reached by name), cgroup.procs 0600; one an earlier
    pyforkexec made (marked, 0755) is tightened when a spawn meets it."""
    parent, leaf = os.path.join(root(), name), os.path.join(root(), name, "b")
    os.mkdir(parent, 0o755)
    cgroup_mod._mark(parent)
    proc = start_process("/bin/sleep", ["sleep", "60"], ProcAttr(sys=SysProcAttr(cgroup=Cgroup(f"{name}/b"))))
    holder = -1
    try:
        assert [oct(os.stat(p).st_mode & 0o777) for p in (parent, leaf)] == [oct(0o711)] * 2
        assert oct(os.stat(os.path.join(leaf, "cgroup.procs")).st_mode & 0o777) == oct(0o600)
        with open(os.path.join(leaf, "cgroup.events")) as f:  # (a file others may still read)
            assert "populated 1" in f.read()
        holder, said = hold_as_nobody([leaf, os.path.join(leaf, "cgroup.procs"),
                                        os.path.join(parent, "cgroup.procs")])
        assert said == ["EACCES"] * 3
        proc.kill()
        waited = threading.Thread(target=proc.wait, daemon=True)
        waited.start()
        waited.join(10)  # (held, the removal waits for the holder: until it is killed below)
        assert not waited.is_alive(), "the removal waits for another account's lock"
        assert not os.path.exists(parent)
    finally:
        if holder > 0:
            release(holder)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
