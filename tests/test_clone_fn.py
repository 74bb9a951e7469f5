"""pyforkexec.clone(fn, flags, *args): a Python callable in a child made by clone(2), on the real kernel."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers import sysutil
from helpers.attempt import Attempt, attempt
from helpers.forked import load_outcome, outcome_bytes, run_in_fork
from helpers.leaks import assert_unchanged, snapshot
from helpers.marks import needs_root
from helpers.procs import children, fd_count
from unit.plugins import pid_reuse

import pyforkexec as pf
from pyforkexec import CLONE_NEWPID, CLONE_NEWUSER, CLONE_NEWUTS, clone, wait_clone
from pyforkexec.clone_fn import describe

pytestmark = needs_root
SIGCHLD = int(signal.SIGCHLD)
EXAMPLE = Path(__file__).parent.parent / "examples" / "clone_uts.py"


@contextlib.contextmanager
def reaped(pid: int) -> Iterator[int]:
    """Makes sure the child ``pid`` is reaped (with __WALL, spelled out) even when the test fails, so
    that its exit signal arrives while the test's signal set-up is still in place."""
    try:
        yield pid
    finally:
        with contextlib.suppress(ChildProcessError):  # already reaped
            os.waitpid(pid, 0x40000000)


def in_clone(fn: Callable[..., Any], flags: int, *args: Any) -> tuple[int, Any]:
    """Runs fn(*args) in clone(..., flags); returns (the child's exit code, fn's result or exception)."""
    r, w = os.pipe()

    def child() -> int:
        os.close(r)
        view = memoryview(outcome_bytes(fn, *args))
        while view:
            view = view[os.write(w, view):]
        return 0

    try:
        pid = clone(child, flags)
    finally:
        os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    code = wait_clone(pid)
    assert data, f"the cloned child reported nothing (exit code {code})"
    return code, data


def result_of(fn: Callable[..., Any], flags: int, *args: Any) -> Any:
    code, data = in_clone(fn, flags, *args)
    assert code == 0
    return load_outcome(data)


def rename_host(name: str) -> tuple[str, int]:
    socket.sethostname(name)
    return os.uname().nodename, os.getuid()


HOST = f"clone-{os.getpid()}"  # the children's hostname; unique per test run


def test_child_in_new_uts_namespace_renames_only_its_own_host() -> None:
    before = os.uname().nodename
    name, _ = result_of(rename_host, CLONE_NEWUTS | SIGCHLD, HOST)
    assert name == HOST != before
    assert os.uname().nodename == before


def test_without_a_new_uts_namespace_the_rename_is_shared() -> None:
    # the control of the test above, in a fork with a UTS namespace of its own so the host keeps its name
    def shared() -> str:
        sysutil.unshare(CLONE_NEWUTS)
        result_of(rename_host, SIGCHLD, HOST)
        return os.uname().nodename

    assert run_in_fork(shared) == HOST


def test_args_are_passed() -> None:
    assert result_of(lambda *a: a, SIGCHLD, 1, "two", [3]) == (1, "two", [3])


def child_exits(value: Any) -> Any:
    if isinstance(value, BaseException):
        raise value
    return value


@pytest.mark.parametrize(("value", "code"), [
    (None, 0), (0, 0), (3, 3), (255, 255), (256, 0), (-1, 255), (True, 1),
    (2**31, 0), (2**63 - 1, 255), (-2**63, 0), (2**63, 255), (2**100, 255), (-2**100, 255),
    (SystemExit(7), 7), (SystemExit(None), 0), (SystemExit("bye"), 1), (SystemExit(2**100), 255),
    (ValueError("boom"), 1), (KeyboardInterrupt(), -signal.SIGINT), ("not a status", 1),
], ids=repr)
def test_exit_status_is_the_return_value(value: Any, code: int, capfd: pytest.CaptureFixture[str]) -> None:
    pid = clone(child_exits, SIGCHLD, value)
    assert wait_clone(pid) == code
    err = capfd.readouterr().err
    if isinstance(value, (ValueError, KeyboardInterrupt)):
        assert "Traceback (most recent call last)" in err
        assert type(value).__name__ in err
    elif isinstance(value, (str, SystemExit)) and code == 1:
        assert str(value) in err


@pytest.mark.parametrize("value", ["None", "0", "3", "256", "-1", "True", "2**31", "2**63 - 1", "-2**63",
                                   "2**63", "-2**63 - 1", "2**100", "-2**100", "'bye'"])
def test_exit_status_as_python_reads_sys_exit(value: str) -> None:
    """The status is the one Python's own exit gives for sys.exit(value): a huge int is no success
    (2**100 exited 0, its low byte; CPython reads it as -1 for not fitting a C long: 255)."""
    python = subprocess.run([sys.executable, "-c", f"import sys; sys.exit({value})"], capture_output=True)
    assert wait_clone(clone(child_exits, SIGCHLD, eval(value))) == python.returncode
    assert wait_clone(clone(child_exits, SIGCHLD, SystemExit(eval(value)))) == python.returncode


def test_a_keyboard_interrupt_ends_the_child_by_sigint_as_python_does(
        capfd: pytest.CaptureFixture[str]) -> None:
    """An uncaught KeyboardInterrupt ends Python by SIGINT (its traceback printed first), so that a
    shell sees a Ctrl-C; the child exited 1. Pid 1 of a new PID namespace ignores its own SIGINT:
    it exits 130, as Python's fallback."""
    python = subprocess.run([sys.executable, "-c", "raise KeyboardInterrupt"], capture_output=True)
    assert python.returncode == -signal.SIGINT
    assert wait_clone(clone(child_exits, SIGCHLD, KeyboardInterrupt())) == -signal.SIGINT
    assert "KeyboardInterrupt" in capfd.readouterr().err
    assert wait_clone(clone(child_exits, SIGCHLD | CLONE_NEWPID, KeyboardInterrupt())) == 128 + signal.SIGINT


def test_the_child_never_returns_into_the_caller() -> None:
    me = os.getpid()
    r, w = os.pipe()
    for value in (None, 5, SystemExit(2), KeyboardInterrupt(), GeneratorExit()):
        pid = clone(child_exits, SIGCHLD, value)
        os.write(w, b"%d\n" % os.getpid())  # a child that came back here would write its own pid
        if os.getpid() != me:
            os._exit(99)
        assert wait_clone(pid) in (0, 1, 2, 5, -signal.SIGINT)
    os.close(w)
    with os.fdopen(r) as f:
        assert set(f.read().split()) == {str(me)}


@pytest.mark.parametrize("exit_signal", [signal.SIGUSR1, 0, signal.SIGCHLD], ids=lambda s: f"signal{int(s)}")
def test_the_low_byte_is_the_exit_signal(exit_signal: int) -> None:
    if len(os.listdir("/proc/self/task")) > 1:  # a process-directed signal: another thread takes it
        pytest.skip("another thread of this process (pytest-xdist's) would take the exit signal")
    fired: list[int] = []
    watched = {signal.SIGUSR1, signal.SIGCHLD}
    old_handler = signal.signal(signal.SIGUSR1, lambda signum, frame: fired.append(signum))
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    try:
        assert not watched & signal.sigpending()
        with reaped(clone(lambda: 0, CLONE_NEWUTS | exit_signal)) as pid:
            if exit_signal != signal.SIGCHLD:  # a "clone child": invisible to a wait without __WALL
                with pytest.raises(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
            assert wait_clone(pid) == 0
        assert watched & signal.sigpending() == ({exit_signal} if exit_signal else set())
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)  # delivers and runs the handler now
        signal.signal(signal.SIGUSR1, old_handler)
    assert fired == ([signal.SIGUSR1] if exit_signal == signal.SIGUSR1 else [])


def test_wait_clone_nohang() -> None:
    r, w = os.pipe()
    pid = clone(lambda: os.read(r, 1) and 4, CLONE_NEWUTS)  # exit signal 0: only __WALL sees it
    os.close(r)
    try:
        assert wait_clone(pid, nohang=True) is None
    finally:
        os.write(w, b"x")
        os.close(w)
    assert wait_clone(pid) == 4


OWN = object()  # the pid of the test's own (exited, unreaped) child


def _refused_and_reaped_nothing(pid: object, kwargs: dict) -> tuple[str, str, int]:
    """As pid 1 of a new PID namespace with a private mount and UTS namespace (the leak check sees
    only this test): a child that has exited, wait_clone with ``pid``, and what it raised; the leak
    check passes only if the child is still a zombie, and then it is waited for (its code returned)."""
    sysutil.unshare(int(pf.CLONE_NEWNS | pf.CLONE_NEWUTS))
    sysutil.mount(None, "/", None, sysutil.MS_REC | sysutil.MS_PRIVATE)
    own = clone(lambda: 3, SIGCHLD)
    os.waitid(os.P_PID, own, os.WEXITED | os.WNOWAIT)  # a zombie that waitpid(-1) would take
    before = snapshot([])
    try:
        wait_clone(own if pid is OWN else pid, **kwargs)  # type: ignore[arg-type]
        raised = ("none", "")
    except Exception as e:
        raised = (type(e).__name__, str(e))
    try:
        assert_unchanged(before)
    finally:
        code = wait_clone(own)
    return (*raised, code)


@pytest.mark.parametrize(("pid", "kwargs", "kind", "field"), [
    (-1, {}, ValueError, "pid"),  # waitpid(-1): any child
    (0, {}, ValueError, "pid"),  # waitpid(0): any child in this process group
    (-2, {}, ValueError, "pid"),  # waitpid(-2): the children in process group 2
    (2**31, {}, ValueError, "pid"),
    (True, {}, TypeError, "pid"),  # would be pid 1
    ("x", {}, TypeError, "pid"),
    (1.0, {}, TypeError, "pid"),
    (OWN, {"nohang": 1}, TypeError, "nohang"),
    (OWN, {"nohang": None}, TypeError, "nohang"),
], ids=["-1", "0", "-2", "2**31", "True", "str", "float", "nohang-int", "nohang-none"])
def test_wait_clone_refuses_a_bad_argument_and_reaps_nothing(pid: object, kwargs: dict, kind: type,
                                                             field: str) -> None:
    """wait_clone(-1) or (0) would reap whichever child exited first (another Process's status lost):
    a pid that is not one process, or a value of the wrong type, is refused naming its field, and
    the child that had exited is still there to be waited for."""
    got_kind, message, code = run_in_fork(_refused_and_reaped_nothing, pid, kwargs, pidns=True)
    assert (got_kind, code) == (kind.__name__, 3), message
    assert message.startswith(field + ": "), message


def test_killed_child_reads_as_negative_signal() -> None:
    pid = clone(lambda: os.kill(os.getpid(), signal.SIGKILL), SIGCHLD)
    assert wait_clone(pid) == -signal.SIGKILL


def test_new_pid_namespace_child_is_pid_1() -> None:
    assert result_of(lambda: (os.getpid(), os.getppid()), CLONE_NEWPID | SIGCHLD) == (1, 0)


@pytest.mark.parametrize("detached", [False, True], ids=["", "detached"])
def test_clone_parent_makes_a_sibling(detached: bool) -> None:
    """From a forked child F, CLONE_PARENT makes the new process a child of F's parent (this process).
    With CLONE_DETACHED too (which the kernel ignores): the clone's own CLONE_PIDFD made it EINVAL."""
    extra = pf.CLONE_DETACHED if detached else 0

    def from_f() -> tuple[int, str]:
        pid = clone(lambda: None if os.getppid() == me else 1, pf.CLONE_PARENT | extra | SIGCHLD)
        try:
            wait_clone(pid)
        except ChildProcessError as e:
            return pid, type(e).__name__
        return pid, "waited"

    me = os.getpid()
    pid, outcome = run_in_fork(from_f)
    assert outcome == "ChildProcessError"
    assert wait_clone(pid) == 0


def test_clone_fs_shares_the_working_directory(tmp_path: Path) -> None:
    def from_fork() -> str:
        assert wait_clone(clone(os.chdir, pf.CLONE_FS | SIGCHLD, str(tmp_path))) == 0
        return os.getcwd()

    assert run_in_fork(from_fork) == str(tmp_path)


def test_unprivileged_user_and_uts_namespaces(unprivileged: Callable[..., Any]) -> None:
    def as_nobody() -> tuple[str, int, str]:
        with pytest.raises(PermissionError) as refused:
            clone(lambda: 0, CLONE_NEWUTS | SIGCHLD)
        name, uid = result_of(rename_host, CLONE_NEWUSER | CLONE_NEWUTS | SIGCHLD, HOST)
        return name, uid, str(refused.value)

    name, uid, refused = unprivileged(as_nobody)
    assert (name, uid) == (HOST, 65534)  # unmapped in its new user namespace: the overflow uid
    assert "clone(CLONE_NEWUTS|SIGCHLD): Operation not permitted" in refused


ALWAYS_REFUSED = (
    pf.CLONE_VM, pf.CLONE_THREAD, pf.CLONE_SIGHAND, pf.CLONE_VFORK, pf.CLONE_FILES, pf.CLONE_SETTLS,
    pf.CLONE_PARENT_SETTID, pf.CLONE_CHILD_SETTID, pf.CLONE_CHILD_CLEARTID, pf.CLONE_PIDFD,
)
REFUSED = [
    *((flag | SIGCHLD, f"{flag.name} is refused: ") for flag in ALWAYS_REFUSED),
    (pf.CLONE_VM, "CLONE_VM is refused: a Python child cannot share this interpreter's memory"),
    (pf.CLONE_CLEAR_SIGHAND, "CLONE_CLEAR_SIGHAND is refused: clone3 only"),
    (pf.CLONE_INTO_CGROUP, "CLONE_INTO_CGROUP is refused: clone3 only"),
    (pf.CLONE_NEWTIME | SIGCHLD, "CLONE_NEWTIME shares this byte"),
    (65, "65 is no signal"),
    (1 << 40, "unknown clone flag bits 0x10000000000"),
    (CLONE_NEWPID | pf.CLONE_PARENT | SIGCHLD, "CLONE_NEWPID cannot be combined with CLONE_PARENT"),
    (CLONE_NEWUSER | pf.CLONE_FS | SIGCHLD, "CLONE_NEWUSER cannot be combined with CLONE_FS"),
]


@pytest.mark.parametrize(("flags", "rule"), REFUSED, ids=[describe(flags) for flags, _ in REFUSED])
def test_refused_flags_raise_before_any_process_exists(flags: int, rule: str) -> None:
    got = attempt(clone, lambda: 0, flags)
    assert (got.kind, got.processes) == ("ValueError", 0), got.message
    assert got.message.startswith("flags: ")
    assert rule in got.message


@pytest.mark.parametrize(("fn", "flags", "message"), [
    (lambda: 0, True, "flags: must be an int, not bool"),
    (lambda: 0, "CLONE_NEWUTS", "flags: must be an int, not str"),
    (lambda: 0, -1, "flags: must be between 0 and"),
    ("not callable", SIGCHLD, "fn: must be callable, not str"),
], ids=["bool", "str", "negative", "fn"])
def test_bad_arguments_raise_before_any_process_exists(fn: Any, flags: Any, message: str) -> None:
    got = attempt(clone, fn, flags)
    assert got.processes == 0
    assert got.kind in ("TypeError", "ValueError")
    assert got.message.startswith(message)


def test_the_probe_sees_a_clone() -> None:
    assert attempt(clone, lambda: 0, SIGCHLD) == Attempt("none", "", 1)


def test_two_hundred_clones_leave_no_fd_and_no_zombie() -> None:
    fds, kids = fd_count(), children()
    old = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
        for i in range(200):
            flags = (CLONE_NEWUTS | SIGCHLD, CLONE_NEWUTS | signal.SIGUSR2, 0)[i % 3]
            with reaped(clone(lambda: None, flags)) as pid:
                assert wait_clone(pid) == 0
    finally:
        signal.signal(signal.SIGUSR2, old)
    assert (fd_count(), children()) == (fds, kids)


def test_clone_from_a_worker_thread() -> None:
    # as after os.fork, the cloning thread is the child's only and main thread
    def from_thread() -> int | None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the multi-threaded warning
            pid = clone(lambda: 0 if threading.current_thread() is threading.main_thread() else 9, SIGCHLD)
        return wait_clone(pid)

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(from_thread).result() == 0


def test_multithreaded_warning_mirrors_os_fork() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        with warnings.catch_warnings(record=True) as by_fork:
            warnings.simplefilter("always")
            pid = os.fork()
            if pid == 0:
                os._exit(0)
        os.waitpid(pid, 0)
        with warnings.catch_warnings(record=True) as by_clone:
            warnings.simplefilter("always")
            assert wait_clone(clone(lambda: 0, SIGCHLD)) == 0
    finally:
        stop.set()
        thread.join()
    fork_kinds = [w.category for w in by_fork]
    assert [w.category for w in by_clone] == fork_kinds
    if sys.version_info >= (3, 12):
        assert fork_kinds == [DeprecationWarning]
        assert re.search(r"multi-threaded, use of clone\(\)", str(by_clone[0].message))
        assert by_clone[0].filename == __file__


def test_fork_hooks_run_in_the_child_and_the_parent() -> None:
    # in a fork: at-fork hooks cannot be unregistered
    def hooks_seen() -> tuple[list[str], bytes]:
        events: list[str] = []
        r, w = os.pipe()
        os.register_at_fork(before=lambda: events.append("before"),
                            after_in_parent=lambda: events.append("parent"),
                            after_in_child=lambda: os.write(w, b"child"))
        assert wait_clone(clone(lambda: 0, SIGCHLD)) == 0
        os.close(w)
        with os.fdopen(r, "rb") as f:
            return events, f.read()

    assert run_in_fork(hooks_seen) == (["before", "parent"], b"child")


def example(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, **kw)


def check_example_output(done: subprocess.CompletedProcess[str], name: str) -> None:
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()  # the child's line may come before or after "clone() returned"
    assert any(re.fullmatch(r"clone\(\) returned [0-9]+", line) for line in lines[:2])
    assert f"uts.nodename in child:  {name}" in lines
    parent = f"uts.nodename in parent: {os.uname().nodename}"
    assert lines[-2:] == [parent, "child has terminated with status 0"]


def test_example_script_as_root() -> None:
    check_example_output(example(HOST), HOST)
    assert os.uname().nodename != HOST


def test_example_script_unprivileged_with_user_flag(unprivileged: Callable[..., Any]) -> None:
    done = unprivileged(example, "--user", HOST)
    check_example_output(done, HOST)
    refused = unprivileged(example, HOST)
    assert refused.returncode == 1
    assert "Operation not permitted (run as root, or add --user)" in refused.stderr


BUFFERED_SCRIPT = """
import signal, pyforkexec
print("parent before clone")
pid = pyforkexec.clone(print, signal.SIGCHLD, "child")
assert pyforkexec.wait_clone(pid) == 0
"""


def test_buffered_output_is_neither_lost_nor_doubled() -> None:
    # stdout on a pipe is block-buffered: the parent's pending line must not be copied into the child,
    # and the child's line must be flushed before it exits
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    done = subprocess.run([sys.executable, "-c", BUFFERED_SCRIPT], capture_output=True, text=True, env=env)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "parent before clone\nchild\n"


PRINTED_MEANWHILE_SCRIPT = """
import os, signal, sys, pyforkexec
stream = getattr(sys, sys.argv[1])
# Run as the clone starts (PyOS_BeforeFork), after clone() flushed the streams: what another thread of
# the caller may print at that moment, deterministically
os.register_at_fork(before=lambda: stream.write("printed meanwhile"))
pid = pyforkexec.clone(lambda: 0, signal.SIGCHLD)
assert pyforkexec.wait_clone(pid) == 0
"""


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_output_buffered_after_the_flush_is_not_written_by_the_child(stream: str) -> None:
    """clone() flushes the standard streams before the clone, but another thread may print between
    that flush and the clone: the child then held those bytes in its copy of the buffer and wrote them
    at its exit, and the caller wrote them too (20 lines of 1,355 twice in 500 clones with a thread
    printing meanwhile). The child now drops what its buffers held at its birth (h149)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    done = subprocess.run([sys.executable, "-c", PRINTED_MEANWHILE_SCRIPT, stream], capture_output=True,
                          text=True, env=env)
    assert done.returncode == 0, done.stderr
    out = done.stderr if stream == "stderr" else done.stdout
    assert out == "printed meanwhile", (done.stdout, done.stderr)


REPLACED_STDOUT_SCRIPT = """
import io, signal, sys, pyforkexec
sys.stdout = io.StringIO()
sys.__stdout__.write("parent before clone\\n")
pid = pyforkexec.clone(lambda: sys.__stdout__.write("child\\n") and 0, signal.SIGCHLD)
assert pyforkexec.wait_clone(pid) == 0
"""


def test_the_original_stdout_is_flushed_too_when_sys_stdout_is_replaced() -> None:
    """With sys.stdout replaced (contextlib.redirect_stdout, a capture), what fn wrote to the original
    (sys.__stdout__) was never flushed by the child, which _exits: lost (h149)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    done = subprocess.run([sys.executable, "-c", REPLACED_STDOUT_SCRIPT], capture_output=True, text=True,
                          env=env)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "parent before clone\nchild\n"


INTERRUPTED_AT_BIRTH_SCRIPT = """
import signal, sys, pyforkexec
class Interrupted:  # a Ctrl-C as the child starts, before fn: raised where the child looks at its streams
    def write(self, text): return len(text)
    def flush(self): pass
    def fileno(self): raise KeyboardInterrupt
sys.stdout = Interrupted()
print(pyforkexec.wait_clone(pyforkexec.clone(lambda: 0, signal.SIGCHLD)), file=sys.__stdout__)
"""


def test_a_ctrl_c_before_fn_runs_ends_the_child_as_one_in_fn() -> None:
    """The child's first step (dropping the output it inherited) is inside the clause that reads fn's
    end: a KeyboardInterrupt there ends the child by SIGINT, as one in fn does, not by status 1 with
    an "Exception ignored" (h149)."""
    done = subprocess.run([sys.executable, "-c", INTERRUPTED_AT_BIRTH_SCRIPT], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (0, f"{-signal.SIGINT}\n"), done.stderr


def _signal_handlers() -> int:
    """In a clone child: 0 when its SIGTERM handler is still the one the caller installed."""
    return 0 if signal.getsignal(signal.SIGTERM) is _TERM_HANDLER else 1


def _TERM_HANDLER(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def test_the_child_has_the_callers_signal_handlers() -> None:
    """clone() holds the caller's handlers back while it makes the child (see the next test): the
    child, a copy made in the middle of that, gets them back before fn runs."""
    old = signal.signal(signal.SIGTERM, _TERM_HANDLER)
    try:
        assert wait_clone(clone(_signal_handlers, signal.SIGCHLD)) == 0
    finally:
        signal.signal(signal.SIGTERM, old)


def test_a_signal_whenever_clone_runs_leaves_no_child() -> None:
    """SIGALRM (its handler raises) at a random moment of each call: the child is the caller's (the
    pid returned), or killed and reaped; a handler that ran as the C call returned lost it (24 of 300
    calls left a zombie)."""
    import importlib
    import random

    clone_module = importlib.import_module("pyforkexec.clone_fn")

    old = signal.signal(signal.SIGALRM, _TERM_HANDLER)
    rng, interrupted, lost = random.Random(3), 0, []
    try:
        for _ in range(300):
            before = children()
            try:
                try:
                    signal.setitimer(signal.ITIMER_REAL, rng.uniform(1e-6, 0.004))
                    pid = clone(lambda: 0, signal.SIGCHLD)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                os.waitpid(pid, 0)
            except KeyboardInterrupt as e:
                interrupted += 1
                tb = e.__traceback__
                while tb is not None and tb.tb_next is not None and tb.tb_next.tb_frame.f_code is not \
                        _TERM_HANDLER.__code__:
                    tb = tb.tb_next
                inside = tb is not None and tb.tb_frame.f_code.co_filename == clone_module.__file__
                for child in children() - before:  # raised inside clone(): reaped by its undo already
                    lost.append(child) if inside else os.waitpid(child, 0)
    finally:
        signal.signal(signal.SIGALRM, old)
    assert lost == []
    assert interrupted > 0


def _sibling_reaped_before_the_undo() -> dict[str, Any]:
    """As PID 1 of a PID namespace of its own: a forked caller's clone(CLONE_PARENT) makes this
    process's child, which exits at once; a signal whose handler raises is held by clone() until the
    C call returned, so its undo kills the child it made. Before that, this process (the child's
    parent) reaped it, and the next fork got its pid (ns_last_pid, in this namespace only): a
    bystander. Which signal ended the bystander says whether the undo reached it: its SIGKILL, or
    this function's SIGTERM after it."""

    from pyforkexec import clone_fn

    to_parent, from_caller = os.pipe()
    from_parent, to_caller = os.pipe()
    caller = os.fork()
    if caller == 0:
        os.close(to_parent)
        os.close(to_caller)
        real = clone_fn._clone

        class Steered:
            @staticmethod
            def clone(flags: int, child: Callable[[], int]) -> Any:
                answer = real.clone(flags, child)
                os.write(from_caller, b"%d\n" % (answer if isinstance(answer, int) else answer[0]))
                os.read(from_parent, 1)  # reaped, and its pid given to the bystander
                os.kill(os.getpid(), signal.SIGUSR1)  # held: its handler raises once clone() lets go
                return answer

        clone_fn._clone = Steered  # type: ignore[assignment]
        signal.signal(signal.SIGUSR1, _TERM_HANDLER)
        try:
            clone(lambda: 0, pf.CLONE_PARENT | signal.SIGCHLD)
        except KeyboardInterrupt:
            os._exit(0)
        finally:
            os._exit(1)
    os.close(from_caller)
    os.close(from_parent)
    with os.fdopen(to_parent, "rb") as f:
        sibling = int(f.readline())
        os.waitpid(sibling, 0)
        bystander = pid_reuse.bystander_on(sibling)
        os.write(to_caller, b".")
        os.close(to_caller)
        caller_status = os.waitpid(caller, 0)[1]
    os.kill(bystander, signal.SIGTERM)  # (no effect once a SIGKILL came: the process is already ending)
    status = os.waitpid(bystander, 0)[1]
    return {"reused": bystander == sibling, "interrupted": os.waitstatus_to_exitcode(caller_status) == 0,
            "bystander_ended_by": signal.Signals(os.WTERMSIG(status)).name}


@needs_root
def test_the_undo_of_a_clone_parent_never_kills_a_process_that_reused_its_pid() -> None:
    """clone()'s undo (an exception after the child exists) SIGKILLed the child by its pid; with
    CLONE_PARENT the child is our parent's, which may have reaped it by then, and the kill reached the
    process given that number since. The clone takes a pidfd of the child (CLONE_PIDFD), and the
    undo kills through it."""
    answer = run_in_fork(_sibling_reaped_before_the_undo, pidns=True)
    assert answer == {"reused": True, "interrupted": True, "bystander_ended_by": "SIGTERM"}


def _live_sibling_after_the_close(pidns: bool) -> dict[str, Any]:
    """A forked caller's clone(CLONE_PARENT) makes this process's child, which lives on; a signal whose
    handler raises is held by clone() until after it closed the child's pidfd, so its undo opens one on
    the pid again, after checking the process there is still the child it made (its parent and start
    time). Which signal ended the child says whether the undo reached it: its SIGKILL, or this
    function's SIGTERM after it. With ``pidns`` (PID 1 of a PID namespace that kept the host's /proc:
    the check read the host's process of that number, or none) the check gave up, and the child of an
    interrupted call was left running."""
    from pyforkexec import clone_fn

    if pidns:
        sysutil.unshare(CLONE_NEWPID)
        init = os.fork()  # (PID 1 of the new namespace)
        if init:
            os._exit(os.waitstatus_to_exitcode(os.waitpid(init, 0)[1]) & 0xFF)
    to_parent, from_caller = os.pipe()
    caller = os.fork()
    if caller == 0:
        os.close(to_parent)
        real_clone, real_held = clone_fn._clone, clone_fn.held

        class Steered:
            @staticmethod
            def clone(flags: int, child: Callable[[], int]) -> Any:
                answer = real_clone.clone(flags, child)
                os.write(from_caller, b"%d\n" % (answer if isinstance(answer, int) else answer[0]))
                return answer

        @contextlib.contextmanager
        def steered_held() -> Iterator[None]:  # (the hold around the pidfd's close)
            with real_held():
                os.kill(os.getpid(), signal.SIGUSR1)  # held: its handler raises after the close
                yield

        clone_fn._clone, clone_fn.held = Steered, steered_held  # type: ignore[assignment]
        signal.signal(signal.SIGUSR1, _TERM_HANDLER)
        try:
            clone(lambda: signal.pause() or 0, pf.CLONE_PARENT | signal.SIGCHLD)
        except KeyboardInterrupt:
            os._exit(0)
        finally:
            os._exit(1)
    os.close(from_caller)
    with os.fdopen(to_parent, "rb") as f:
        sibling = int(f.readline())
    caller_status = os.waitpid(caller, 0)[1]
    with contextlib.suppress(ProcessLookupError):
        os.kill(sibling, signal.SIGTERM)  # (no effect once a SIGKILL came: the process is already ending)
    status = os.waitpid(sibling, 0)[1]
    return {"interrupted": os.waitstatus_to_exitcode(caller_status) == 0,
            "sibling_ended_by": signal.Signals(os.WTERMSIG(status)).name}


@needs_root
@pytest.mark.parametrize("pidns", [False, True], ids=["own-proc", "pidns-with-the-hosts-proc"])
def test_the_undo_of_a_clone_parent_after_its_pidfd_closed_kills_the_live_sibling(pidns: bool) -> None:
    answer = run_in_fork(_live_sibling_after_the_close, pidns)
    assert answer == {"interrupted": True, "sibling_ended_by": "SIGKILL"}
