"""Signals injected at every point of the parent's side of a spawn, deterministically.

A tracer counts the events (each line, or each bytecode) that pyforkexec's own frames execute during
one call and, on the k-th, sends this process SIGINT (KeyboardInterrupt) or SIGTERM (whose handler
here raises), or both; k runs over every event of an undisturbed call. Python runs the handler at its
next check, which may be between any two bytecodes: after os.open returned but before its fd was
stored, after clone returned but before its pid was. Whatever the point, the call either returns (its
result is then the caller's, and the test reaps it) or raises, and then: no child of the call exists,
no fd is open that was not before, the calling thread is in its own namespaces with its own hostname
and cwd, the signal handlers are the caller's, no cgroup is left behind, and nothing hangs.

PFE_INJECT_STRIDE=1 (the default) tries every point; a larger stride samples them.
"""

from __future__ import annotations

import contextlib
import dis
import gc
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from helpers.caches import forget_checked_spawns, forget_plans
from helpers.forked import run_in_fork
from helpers.leaks import differences, snapshot
from helpers.procs import children
from helpers.terminal import in_a_terminal
from unit.plugins import pid_reuse

import pyforkexec as fe

# Each test sweeps thousands of spawns: minutes on a loaded machine, beyond the suite's default timeout.
pytestmark = pytest.mark.timeout(900)

PACKAGE = str(Path(fe.__file__).parent)
# Python runs a signal handler where its eval loop checks (after a call, at a backward jump, at a
# function's start), never just before a return, nor at an instruction of no line (those Python adds
# around an except clause: PUSH_EXC_INFO, which saves the exception being handled, and the COPY,
# POP_EXCEPT, RERAISE that restore it; an exception a tracer raises there leaves the caller handling
# the one the clause caught, sys.exc_info() stale): a tracer that raises there would be testing itself.
# What the tests call (start: Prepared.start; clone: clone_fn's, a pid); their results are the caller's.
PUBLIC = {"fork_exec", "start_process", "run", "start", "clone"}
RETURNS = {dis.opmap[name] for name in ("RETURN_VALUE", "RETURN_CONST") if name in dis.opmap}
STRIDE = int(os.environ.get("PFE_INJECT_STRIDE", "1"))
MEASURES = 5  # runs whose shortest is a path's length
TRIES = 10  # runs a point is tried in before it counts as unreached (past the end of a shorter run)
UNREACHED_SHARE = 0.05  # of a path's points, at most, beyond the end of every run that tried them
TRUE = "/bin/true"


class Injected(Exception):
    """Raised by the test's SIGTERM handler."""


def _raise_injected(signum: int, frame: object) -> None:
    raise Injected(signum)


@pytest.fixture(autouse=True)
def sigterm_raises() -> Iterator[None]:
    old = signal.signal(signal.SIGTERM, _raise_injected)
    yield
    signal.signal(signal.SIGTERM, old)


def _traced(call: Callable[[], Any], at: int, signals: tuple[int, ...], opcodes: bool,
            returned: list[Any], fired: Optional[list[int]] = None) -> int:
    """Run ``call`` with ``signals`` sent at event ``at`` (0: never) of pyforkexec's frames; what the
    outermost pyforkexec frame returns is appended to ``returned`` as it returns (a handler may
    still raise in the caller's frame before the caller could store it, and the test must reap it).
    ``at`` is appended to ``fired`` once the signals are sent. Returns the number of events seen; the
    call's exception propagates."""
    seen, me = 0, os.getpid()

    def local(frame: Any, event: str, arg: object) -> Any:
        nonlocal seen
        if event == "opcode" and (frame.f_code.co_code[frame.f_lasti] in RETURNS or frame.f_lineno is None):
            return local  # no handler runs there (only a tracer could raise): not a point
        if event in ("line", "opcode"):
            seen += 1
            # (a clone(fn) child runs pyforkexec's frames too, traced and counted on from the clone:
            # the signals are the caller's, never the child's)
            if seen == at and os.getpid() == me:
                if fired is not None:
                    fired.append(at)
                for sig in signals:
                    os.kill(os.getpid(), sig)
        elif event == "return" and frame.f_code.co_name in PUBLIC and arg is not None:
            returned.append(arg)
        return local

    def on_call(frame: Any, event: str, arg: object) -> Any:
        # A finalizer (a garbage collection may run one anywhere) is left alone: Python drops an
        # exception raised in it, signal or not, so a point there tests CPython, not us.
        if not frame.f_code.co_filename.startswith(PACKAGE) or frame.f_code.co_name == "__del__":
            return None
        frame.f_trace_opcodes = opcodes
        return local

    sys.settrace(on_call)
    try:
        call()
    finally:
        sys.settrace(None)
    return seen


Kept = Callable[[list[BaseException]], list[str]]  # drops the exceptions a sweep kept: what that did wrong


def _drop(raised: list[BaseException]) -> list[str]:
    """The default ``kept`` of _sweep: the kept exceptions dropped and collected."""
    raised.clear()
    gc.collect()
    return []


def _sweep(call: Callable[[], Any], release: Callable[[Any], None], signals: tuple[int, ...],
           opcodes: bool = False, cgroup_roots: tuple[str, ...] = (), kept: Kept = _drop,
           forget: Callable[[], bool] = forget_checked_spawns, stride: int = 1) -> dict[str, int]:
    """Inject at every event of ``call``, cold and warm; check the invariants after each. Returns counts.

    A call's later runs are shorter than its first: fork_exec and start_process remember a spawn's
    checks and plans at its second sight (pyforkexec/checked.py), a Prepared its plan. ``forget()``
    forgets them, returning whether there was anything to forget. The COLD path is swept with them
    forgotten before each injection (a first call's: every check, the plan compiled), the WARM path
    with them remembered (the call ran twice first: a hot loop's path); a call that nothing
    remembers has one path, swept once. A point counts only if its signals were sent: a sweep whose
    points outran its path fails instead of passing. (A path's length is its shortest of MEASURES
    runs: a loop that waits for the child or reads its pipes may turn once more or less. A point whose
    signals were not sent is tried again, up to TRIES times. A run that did not send them was
    undisturbed, and its length, shorter than the point (else the tracer missed it: the sweep fails),
    is a real length of the path: a point no run reached counts as past a shorter run's end
    ("unreached"). That is allowed only at the path's tail, beyond the shortest length seen, and for
    at most UNREACHED_SHARE of its points (at least one): more means the measure was wrong, and the
    sweep fails. Without it, a point four events before the end of run(capture_output=True)'s 738
    failed the sweep once in CI with ten tries.) ``stride`` (or PFE_INJECT_STRIDE, the larger)
    samples the points.

    After each point: what the call returned is released, the call's exceptions (kept, with their
    tracebacks, alive past the snapshot, as a REPL's sys.last_value keeps them) are handed to
    ``kept``, which drops them and returns what their collection did wrong, nothing may have
    reached sys.unraisablehook (a finalizer's exception, dropped by Python), and the caller handles
    no exception (sys.exc_info())."""
    returned: list[Any] = []
    unraisable: list[Any] = []
    counts = {"points": 0, "fired": 0, "raised": 0, "returned": 0, "unreached": 0}
    stride = max(stride, STRIDE)

    def run(reset: Optional[Callable[[], object]]) -> int:
        if reset is not None:
            reset()
        returned.clear()
        total = _traced(call, 0, (), opcodes, returned)
        for result in returned:
            release(result)
        return total

    old_hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    gc.collect()
    gc.freeze()  # the test session's objects: each point's collection then only looks at the sweep's own
    try:
        forget()
        run(None), run(None)  # first sight, second: from the third call on, the spawn is remembered
        paths: list[tuple[str, Optional[Callable[[], object]]]] = [("warm", None)]
        if forget():
            paths.insert(0, ("cold", forget))
        else:
            paths = [("the one path", None)]
        for name, reset in paths:
            total = min(run(reset) for _ in range(MEASURES))
            counts[f"{name} events"] = total
            _sweep_path(name, call, release, signals, opcodes, cgroup_roots, kept, reset, total, stride,
                        unraisable, counts)
    finally:
        gc.unfreeze()
        sys.unraisablehook = old_hook
    assert counts["fired"] + counts["unreached"] == counts["points"] and counts["fired"] > 0, counts
    return counts


def _sweep_path(name: str, call: Callable[[], Any], release: Callable[[Any], None], signals: tuple[int, ...],
                opcodes: bool, cgroup_roots: tuple[str, ...], kept: Kept,
                reset: Optional[Callable[[], object]], total: int, stride: int, unraisable: list[Any],
                counts: dict[str, int]) -> None:
    """One path of _sweep: its points 1, 1 + stride, ... up to ``total``; ``reset`` before each call."""
    assert total > 10, f"the tracer saw no pyforkexec frames ({name})"
    returned: list[Any] = []
    raised: list[BaseException] = []
    fired: list[int] = []
    shortest = total  # the shortest run seen on this path
    unreached: list[int] = []
    points = range(1, total + 1, stride)
    for at in points:
        counts["points"] += 1
        for _ in range(TRIES):  # tried again while a shorter run ended before the point
            length = -1
            if reset is not None:
                reset()
            before = snapshot(cgroup_roots)
            returned.clear()
            fired.clear()
            calling = True
            for _ in range(4):  # the call, then any signal still pending: each raises at most once
                try:
                    if calling:
                        calling = False
                        length = _traced(call, at, signals, opcodes, returned, fired)
                    len(())  # a call: a handler still pending runs here at the latest
                    break
                except (KeyboardInterrupt, Injected) as e:
                    raised.append(e)
                    continue
            for result in returned:
                release(result)
            # Mount-table lines are left out: the table is the machine's, and other tests' netns mounts
            # come and go in it; none of these calls mounts anything (test_fail_closed checks that).
            diff = [d for d in differences(before, snapshot(cgroup_roots)) if not d.startswith("mounts:")]
            diff += kept(raised)
            diff += [f"unraisable in {u.object!r}: {u.exc_type.__name__}: {u.exc_value}" for u in unraisable]
            unraisable.clear()
            if sys.exc_info()[1] is not None:
                diff.append(f"the caller is left handling {sys.exc_info()[1]!r}")
            assert not diff, f"signals {signals} at event {at} of {total} ({name}): " + "; ".join(diff)
            if fired:
                break
            # Not sent: an undisturbed run, which ended before the point (else the tracer missed it).
            assert 0 <= length < at, f"signals {signals} at event {at} of {total} ({name}): not sent in a " \
                f"run of {length} events"
            shortest = min(shortest, length)
        if fired:
            counts["fired"] += 1
            counts["returned" if returned else "raised"] += 1
        else:
            counts["unreached"] += 1
            unreached.append(at)
    where = f"signals {signals}, {name} path of {total} events (runs down to {shortest})"
    assert all(at > shortest for at in unreached), f"{where}: unreached inside every run: {unreached}"
    if len(unreached) > max(1, int(UNREACHED_SHARE * len(points))):
        pytest.fail(f"{where}: {len(unreached)} of {len(points)} points reached by none of {TRIES} runs "
                    f"({unreached[:5]}...): the call took a shorter path than its measure")


def test_the_sweep_allows_a_shorter_tail_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A call whose runs end a little before its measure leaves the last points unreached: counted,
    not failed; one whose runs end far before it (more than UNREACHED_SHARE of the points) fails."""
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", __file__)  # the tracer follows _loop's frames
    for short, fails in ((1, False), (30, True)):
        runs = [0]

        def call(short: int = short, runs: list[int] = runs) -> None:
            runs[0] += 1
            _loop(100 - (short if runs[0] > 2 + MEASURES else 0))  # two first sights, then the measures

        if fails:
            with pytest.raises(pytest.fail.Exception, match="shorter path than its measure"):
                _sweep(call, _no_release, (signal.SIGINT,), forget=lambda: False)
        else:
            counts = _sweep(call, _no_release, (signal.SIGINT,), forget=lambda: False)
            assert 0 < counts["unreached"] <= UNREACHED_SHARE * counts["points"], counts


def _loop(n: int) -> None:
    for _ in range(n):
        pass


def _reap_pid(pid: int) -> None:
    os.waitpid(pid, 0)


def _wait(proc: fe.Process) -> None:
    proc.wait()


def _no_release(result: object) -> None:
    pass


SIGNAL_SETS = {
    "SIGINT": (signal.SIGINT,),
    "SIGTERM": (signal.SIGTERM,),
    "two at once": (signal.SIGINT, signal.SIGTERM),
}


@pytest.fixture(params=list(SIGNAL_SETS))
def signals(request: pytest.FixtureRequest) -> tuple[int, ...]:
    return SIGNAL_SETS[request.param]


def _userns(**kw: Any) -> fe.SysProcAttr:
    return fe.SysProcAttr(
        cloneflags=fe.CLONE_NEWUSER | fe.CLONE_NEWUTS | kw.pop("cloneflags", 0),
        uid_mappings=[fe.SysProcIDMap(0, os.getuid(), 1)],
        gid_mappings=[fe.SysProcIDMap(0, os.getgid(), 1)], **kw)


def test_fork_exec_every_opcode() -> None:
    """The plainest spawn (a vfork child, no pipes), at every bytecode."""
    attr = fe.ProcAttr(files=[0, 1, 2])
    counts = _sweep(lambda: fe.fork_exec(TRUE, ["true"], attr), _reap_pid, (signal.SIGINT,), opcodes=True)
    assert counts["raised"] > 0


@pytest.mark.parametrize("sigs", ["SIGINT", "two at once"])
@pytest.mark.parametrize("directory", [None, "/nonexistent-dir"], ids=["execs", "fails"])
def test_spawn_without_a_hold_every_opcode(directory: Optional[str], sigs: str) -> None:
    """A spawn that opens nothing (its maps written by the child, no pidfd) takes no signal hold:
    the C call records the child before any handler can run, and reaps it itself when it fails
    (chdir). At every bytecode, one signal or two at once: the child is handed over, or killed and
    reaped, or the ChildError raised, and nothing else is left. (Prepared: fork_exec's path without
    the validation's bytecodes, which the other tests sweep.)"""
    prepared = fe.prepare(TRUE, ["true"], fe.ProcAttr(dir=directory, files=[0, 1, 2], sys=_userns()))

    def call() -> Any:
        if directory is None:
            return prepared.fork_exec()
        with pytest.raises(fe.ChildError):
            prepared.fork_exec()
        return None

    counts = _sweep(call, _reap_pid if directory is None else _no_release, SIGNAL_SETS[sigs], opcodes=True,
                    forget=lambda: forget_plans(prepared))
    assert counts["raised"] > 0


def test_start_process_with_maps_and_pidfd(signals: tuple[int, ...]) -> None:
    """The map handshake, the error pipe and a pidfd: every line."""
    attr = fe.ProcAttr(files=[0, 1, 2], sys=_userns(pidfd=True, hostname="inject"))
    counts = _sweep(lambda: fe.start_process(TRUE, ["true"], attr), _wait, signals)
    assert counts["raised"] > 0


@pytest.mark.parametrize("entry", ["start_process", "prepared"])
def test_start_process_without_a_hold_leaves_no_process_owning_the_pid(
        entry: str, signals: tuple[int, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    """start_process of a spawn that opens nothing (maps written by the child, no pidfd) runs without a
    signal hold, its Process built with signals live. Interrupted inside Process.__init__, the undo
    killed and reaped the child, but the half-built Process, collected later, printed "Exception
    ignored in Process.__del__ ... no attribute '_lock'"; and one with its lock, kept by a traceback
    (a REPL's sys.last_value), ran waitid on the reaped pid when collected and could put it in
    _active, to be reaped by number later (by then maybe another child of ours). Every line: nothing
    reaches sys.unraisablehook, and the kept traceback's collection waits for, signals and queues
    nothing (the sweep checks sys.unraisablehook after each point)."""
    from pyforkexec import process

    attr = fe.ProcAttr(files=[0, 1, 2], sys=_userns())
    prepared = fe.prepare(TRUE, ["true"], attr)
    acted: list[str] = []
    collecting = [False]

    def spy(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*a: Any) -> Any:
            if collecting[0]:
                acted.append(f"{name}{a}")
            return real(*a)
        return call

    for mod, name in ((os, "waitid"), (os, "waitpid"), (os, "kill"), (signal, "pidfd_send_signal")):
        monkeypatch.setattr(mod, name, spy(name, getattr(mod, name)))

    def collect(raised: list[BaseException]) -> list[str]:
        acted.clear()
        collecting[0] = True
        try:
            _drop(raised)
        finally:
            collecting[0] = False
        problems = [f"the collection of a kept traceback called {call}" for call in acted]
        problems += [f"left in _active: {proc!r}" for proc in process._active]
        process._active.clear()
        return problems

    if entry == "start_process":
        counts = _sweep(lambda: fe.start_process(TRUE, ["true"], attr), _wait, signals, kept=collect)
    else:
        counts = _sweep(prepared.start, _wait, signals, kept=collect, forget=lambda: forget_plans(prepared))
    assert counts["raised"] > 0


def test_sync_and_exec_fd(signals: tuple[int, ...]) -> None:
    """The sync socket (the caller's callable runs with its signals live) and an exec fd copy."""
    seen: list[int] = []
    fd = os.open(TRUE, os.O_RDONLY | os.O_CLOEXEC)
    try:
        attr = fe.ProcAttr(files=[0, 1, 2], sys=fe.SysProcAttr(sync=seen.append, exec_fd=fd))

        def call() -> fe.Process:
            try:
                return fe.start_process(TRUE, ["true"], attr)
            except fe.ChildError as e:  # an Exception from the callable is reported as the sync step's
                if isinstance(e.__cause__, Injected) and e.location == fe.ErrorLocation.SYNC_READ:
                    raise e.__cause__ from None
                raise

        counts = _sweep(call, _wait, signals)
    finally:
        os.close(fd)
    assert counts["raised"] > 0 and seen


@pytest.mark.skipif(fe.landlock_abi() < 1, reason="Landlock is not enabled here")
def test_landlock_ruleset_and_idmapped_mount(tmp_path: Path) -> None:
    """The parent's Landlock ruleset and rule-path fds, the idmap helper (a spawn inside the spawn) and
    the detached mount tree: every line, with both signals at once (each set costs a minute here)."""
    signals = SIGNAL_SETS["two at once"]
    attr = fe.ProcAttr(files=[0, 1, 2], sys=_userns(
        cloneflags=fe.CLONE_NEWNS, mounts=[fe.Mount.bind(str(tmp_path), "/mnt", mkdir=False, idmap=True)],
        landlock=fe.Landlock(paths=[fe.LandlockPath("/usr", ["read", "execute"])]),
        capabilities=fe.Capabilities()))  # (keeping CAP_SETFCAP with an idmap is refused)
    counts = _sweep(lambda: fe.fork_exec(TRUE, ["true"], attr), _reap_pid, signals)
    assert counts["raised"] > 0


@pytest.mark.skipif(os.geteuid() != 0, reason="an idmapped mount needs CAP_SYS_ADMIN over the filesystem")
def test_a_mount_idmapped_to_a_user_namespace_by_path(tmp_path: Path) -> None:
    """The check of an idmap given as a user namespace's path opens it to tell its type: no fd of it is
    left, whatever the point (the spawn opens it again for the child)."""
    maps = dict(uid_mappings=[fe.SysProcIDMap(0, 100000, 1)], gid_mappings=[fe.SysProcIDMap(0, 100000, 1)])
    holder = fe.start_process("/bin/sleep", ["sleep", "300"], fe.ProcAttr(
        files=[0, 1, 2], sys=fe.SysProcAttr(cloneflags=fe.CLONE_NEWUSER, **maps)))
    try:
        attr = fe.ProcAttr(files=[0, 1, 2], sys=fe.SysProcAttr(cloneflags=fe.CLONE_NEWNS, mounts=[
            fe.Mount.bind(str(tmp_path), "/mnt", mkdir=False, idmap=f"/proc/{holder.pid}/ns/user")]))
        counts = _sweep(lambda: fe.start_process(TRUE, ["true"], attr), _wait, SIGNAL_SETS["two at once"])
        assert counts["raised"] > 0
    finally:
        holder.kill()
        holder.wait()


@pytest.fixture
def uts_holder() -> Iterator[int]:
    """A process in a UTS and network namespace of its own, to join."""
    proc = fe.start_process("/bin/sleep", ["sleep", "300"], fe.ProcAttr(
        files=[0, 1, 2], sys=fe.SysProcAttr(cloneflags=fe.CLONE_NEWUTS | fe.CLONE_NEWNET, hostname="held")))
    yield proc.pid
    proc.kill()
    proc.wait()


@pytest.mark.skipif(os.geteuid() != 0, reason="the parent joins a namespace only root may enter")
def test_parent_joins_namespaces_and_returns(uts_holder: int, signals: tuple[int, ...]) -> None:
    """With CLONE_NEWUSER, the calling thread itself joins the target's uts and net namespaces around
    clone: whatever the point of the interruption, it is back in its own (the snapshot compares the
    thread's namespaces and hostname)."""
    joins = [fe.SetNS(f"/proc/{uts_holder}/ns/uts"), fe.SetNS(f"/proc/{uts_holder}/ns/net")]
    attr = fe.ProcAttr(files=[0, 1, 2], sys=fe.SysProcAttr(
        cloneflags=fe.CLONE_NEWUSER, setns=joins,
        uid_mappings=[fe.SysProcIDMap(0, 0, 1)], gid_mappings=[fe.SysProcIDMap(0, 0, 1)]))
    counts = _sweep(lambda: fe.start_process(TRUE, ["true"], attr), _wait, signals)
    assert counts["raised"] > 0


@pytest.mark.skipif(os.geteuid() != 0, reason="the child joins a namespace only root may enter")
def test_a_shared_propagation_with_a_join_looked_at(uts_holder: int, tmp_path: Path) -> None:
    """mount_propagation shared with mounts: the check opens each join's target to tell whether the
    new mount namespace is copied from a joined one, and reads the caller's mount table; no fd of
    either is left, whatever the point."""
    attr = fe.ProcAttr(files=[0, 1, 2], sys=fe.SysProcAttr(
        cloneflags=fe.CLONE_NEWNS, setns=[fe.SetNS(f"/proc/{uts_holder}/ns/net")],
        mounts=[fe.Mount.tmpfs(str(tmp_path))], mount_propagation="shared"))
    counts = _sweep(lambda: fe.start_process(TRUE, ["true"], attr), _wait, SIGNAL_SETS["two at once"])
    assert counts["raised"] > 0


@pytest.fixture
def mnt_holder() -> Iterator[int]:
    """A process in a mount namespace of its own (private: a join of it may mount with shared)."""
    proc = fe.start_process("/bin/sleep", ["sleep", "300"], fe.ProcAttr(
        files=[0, 1, 2], sys=fe.SysProcAttr(cloneflags=fe.CLONE_NEWNS)))
    yield proc.pid
    proc.kill()
    proc.wait()


@pytest.mark.skipif(os.geteuid() != 0, reason="the child joins a namespace only root may enter")
def test_a_shared_propagation_with_a_joined_mount_namespace(mnt_holder: int, tmp_path: Path) -> None:
    """mount_propagation shared with mounts after a join of a mount namespace: the check finds a process
    in it and reads that one's mount table; no fd is left, whatever the point."""
    attr = fe.ProcAttr(files=[0, 1, 2], sys=fe.SysProcAttr(
        unshareflags=fe.CLONE_NEWNS, setns=[fe.SetNS(f"/proc/{mnt_holder}/ns/mnt", fe.CLONE_NEWNS)],
        mounts=[fe.Mount.tmpfs(str(tmp_path))], mount_propagation="shared"))
    counts = _sweep(lambda: fe.start_process(TRUE, ["true"], attr), _wait, SIGNAL_SETS["two at once"])
    assert counts["raised"] > 0


def test_cgroup_created_and_removed(cgroup_dir: tuple[str, str], signals: tuple[int, ...]) -> None:
    """A cgroup made for the child is removed whenever the spawn is undone."""
    path, _ = cgroup_dir
    attr = fe.ProcAttr(files=[0, 1, 2], sys=fe.SysProcAttr(cgroup=fe.Cgroup(os.path.join(path, "leaf"))))
    counts = _sweep(lambda: fe.start_process(TRUE, ["true"], attr), _wait, signals, cgroup_roots=(path,))
    assert counts["raised"] > 0


def test_run_capture_output(signals: tuple[int, ...]) -> None:
    """run(): the child is killed and reaped whatever the point, its pipes closed."""
    counts = _sweep(lambda: fe.run([TRUE], capture_output=True), _no_release, signals)
    assert counts["raised"] > 0


def test_run_with_a_timeout_that_expires(signals: tuple[int, ...]) -> None:
    """run() whose timeout expires: a signal as its except clause began (entered by the timeout, not by
    a signal: nothing held) left the clause before the kill, and the child ran on, unreaped."""
    def call() -> None:
        with pytest.raises(subprocess.TimeoutExpired):
            fe.run(["/bin/sleep", "30"], timeout=0.001)

    counts = _sweep(call, _no_release, signals)
    assert counts["raised"] > 0


def test_run_with_kill_group_and_a_timeout_that_expires(signals: tuple[int, ...]) -> None:
    """run(kill_group=True) whose timeout expires: the group's kill comes before the reap, held with it;
    the child is killed and reaped whatever the point."""
    def call() -> None:
        with pytest.raises(subprocess.TimeoutExpired):
            fe.run(["/bin/sleep", "30"], sys=fe.SysProcAttr(setpgid=True), timeout=0.001, kill_group=True)

    counts = _sweep(call, _no_release, signals)
    assert counts["raised"] > 0


PF_EXITING = 0x4  # include/linux/sched.h: set as do_exit starts, after the fatal signal was dequeued


def _session_left(sid: int) -> list[str]:
    """The processes of session ``sid`` still running: neither exited, nor exiting (PF_EXITING in the
    flags of /proc/PID/stat: a SIGKILL dequeued leaves no pending bit, and the exit that follows,
    unmapping memory and closing files, shows the state R or D), nor with a SIGKILL on its way."""
    left = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{name}/status") as f:
                status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        except (FileNotFoundError, ProcessLookupError):
            continue
        pending = int(status["SigPnd"], 16) | int(status["ShdPnd"], 16)
        if int(fields[3]) == sid and fields[0] not in "ZX" and not int(fields[6]) & PF_EXITING \
                and not pending & (1 << (signal.SIGKILL - 1)):
            left.append(f"{name} {status['Name']}")
    return left


def test_run_with_kill_group_leaves_nothing_of_the_childs_group(tmp_path: Path) -> None:
    """run(kill_group=True), SIGINT at every line of pyforkexec's: whatever the point, once the child
    exists, what it started in its group (its session: setsid) is killed with it, and nothing is left
    (no child, no fd). The child writes its pid (its session's id) first, then starts a grandchild."""
    marker = tmp_path / "sid"
    argv = ["/bin/sh", "-c", f"echo $$ > {marker}; sleep 600 & wait"]

    def call() -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            fe.run(argv, sys=fe.SysProcAttr(setsid=True), timeout=0.05, kill_group=True, capture_output=True)

    def group_left() -> list[str]:
        sid = marker.read_text().strip() if marker.exists() else ""
        left = _session_left(int(sid)) if sid else []
        deadline = time.monotonic() + 2  # the few instructions between a SIGKILL's dequeue and PF_EXITING
        while left and time.monotonic() < deadline:  # (a process left running stays: sleep 600)
            time.sleep(0.01)
            left = _session_left(int(sid))
        for entry in left:  # (a failure leaves nothing running either)
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.split()[0]), signal.SIGKILL)
        marker.unlink(missing_ok=True)
        return left

    lengths = []
    for _ in range(MEASURES):
        lengths.append(_traced(call, 0, (), False, []))
        assert group_left() == [], "the timeout left the child's group running"
    total = min(lengths)
    fired: list[int] = []
    for at in range(1, total + 1, STRIDE):
        before = snapshot(())
        with contextlib.suppress(KeyboardInterrupt):
            _traced(call, at, (signal.SIGINT,), False, [], fired)
            len(())  # a handler still pending runs here at the latest
        assert group_left() == [], f"SIGINT at line {at} of {total} left the child's group running"
        diff = [d for d in differences(before, snapshot(())) if not d.startswith("mounts:")]  # (other tests')
        assert diff == [], f"SIGINT at line {at} of {total}"
    assert fired, "no point was reached"


def _kill_and_wait(proc: fe.Process) -> None:
    proc.kill()
    proc.wait()


PIDFD = fe.ProcAttr(files=[0, 1, 2], sys=fe.SysProcAttr(pidfd=True))


def test_wait_with_a_pidfd(signals: tuple[int, ...]) -> None:
    """Process.wait() of a pidfd: it selects on a copy of the pidfd (another waiter may close the
    pidfd meanwhile). A handler's exception at the line of the finally that closed the copy, before the
    close, left it open (event 816 of 900: an anon_inode:[pidfd] left behind)."""
    def call() -> None:
        fe.start_process("/bin/sleep", ["sleep", "0.01"], PIDFD).wait()

    counts = _sweep(call, _kill_and_wait, signals)
    assert counts["raised"] > 0


def test_with_a_process_with_a_pidfd(signals: tuple[int, ...]) -> None:
    """``with start_process(...):`` waits for the process at the block's end, through the same copy."""
    def call() -> None:
        with fe.start_process("/bin/sleep", ["sleep", "0.01"], PIDFD):
            pass

    counts = _sweep(call, _kill_and_wait, signals)
    assert counts["raised"] > 0


@pytest.mark.parametrize("attr", [fe.ProcAttr(files=[0, 1, 2]), PIDFD], ids=["by-pid", "pidfd"])
def test_a_wait_that_times_out_then_kill_and_wait(signals: tuple[int, ...], attr: fe.ProcAttr) -> None:
    """wait(timeout) that expires, kill(), wait() and poll() on one Process, as Popen's callers do: at
    every line, the Process stays whole (its release kills and reaps it) and returns the signal's
    status once reaped (h149: 4,800 points, nothing found)."""
    def call() -> None:
        proc = fe.start_process("/bin/sleep", ["sleep", "30"], attr)
        with contextlib.suppress(fe.TimeoutExpired):
            proc.wait(0.001)
        proc.kill()
        assert proc.wait() == -signal.SIGKILL
        assert proc.poll() == -signal.SIGKILL

    counts = _sweep(call, _kill_and_wait, signals)
    assert counts["raised"] > 0


def _wait_clone(pid: int) -> None:
    fe.wait_clone(pid)


def test_clone_fn_with_namespaces(signals: tuple[int, ...]) -> None:
    """clone(fn) into a new user and UTS namespace: the child is returned, or killed and reaped, and
    nothing else is left (h149: 696 points, nothing found)."""
    flags = fe.CLONE_NEWUSER | fe.CLONE_NEWUTS | signal.SIGCHLD
    counts = _sweep(lambda: fe.clone(int, flags), _wait_clone, signals)
    assert counts["raised"] > 0


_FOREGROUND_SWEEP = r"""
import contextlib, os, signal, sys
sys.path.insert(0, {tests!r})
import test_signal_injection as t
import pyforkexec as fe
signal.signal(signal.SIGTERM, t._raise_injected)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTTOU])  # (our own tcsetpgrp below, after a failure)
fd = os.open(os.ttyname(0), os.O_RDWR)
own, pidfd, kill = os.getpgrp(), sys.argv[1] == "pidfd", sys.argv[2] == "kill"
attr = fe.ProcAttr(files=[0, 1, 2], sys=fe.SysProcAttr(foreground=True, ctty=fd, pidfd=pidfd))

def call():
    argv = ["sleep", "30"] if kill else ["true"]
    proc = fe.start_process("/bin/" + argv[0], argv, attr)
    if kill:
        proc.kill()
    proc.wait()

total = min(t._traced(call, 0, (), False, []) for _ in range(t.MEASURES))
bad, fired = [], []
for at in range(1, total + 1, t.STRIDE):
    returned = []
    with contextlib.suppress(KeyboardInterrupt, t.Injected):
        with contextlib.suppress(KeyboardInterrupt, t.Injected):
            t._traced(call, at, (signal.SIGINT, signal.SIGTERM), False, returned, fired)
        len(())  # the second handler, still pending
    for proc in returned:
        proc.kill()
        proc.wait()
    if os.tcgetpgrp(fd) != own:
        bad.append(at)
        os.tcsetpgrp(fd, own)
print("RESULT", total, len(fired), bad[:10], flush=True)
"""


@pytest.mark.parametrize("kill", ["exits", "kill"])
@pytest.mark.parametrize("pidfd", ["by-pid", "pidfd"])
def test_a_foreground_process_gives_the_terminal_back_whatever_the_point(pidfd: str, kill: str) -> None:
    """start_process with SysProcAttr.foreground, then wait() (after kill()), in a session of its own on
    a new pty: SIGINT and SIGTERM (raising) at every line, the spawn undone or the Process reaped by
    the release, and the terminal's foreground is the caller's group after each (h149)."""
    script = _FOREGROUND_SWEEP.format(tests=str(Path(__file__).parent))
    total, fired, *bad = in_a_terminal(script, pidfd, kill)
    assert int(fired) > 100 // STRIDE, (total, fired)  # (not all: a wait loop may turn less than measured)
    assert bad == ["[]"], f"the caller is in the background of its terminal after the points {bad}"


def test_run_with_a_pidfd_and_a_timeout_that_expires(signals: tuple[int, ...]) -> None:
    """run() with SysProcAttr(pidfd=True) whose timeout expires: the kill's wait goes through the copy."""
    def call() -> None:
        with pytest.raises(subprocess.TimeoutExpired):
            fe.run(["/bin/sleep", "30"], sys=fe.SysProcAttr(pidfd=True), timeout=0.001)

    counts = _sweep(call, _no_release, signals)
    assert counts["raised"] > 0


def test_a_signal_while_signalling_leaves_the_process_usable() -> None:
    """Process.kill(): a handler's exception as ``with self._lock`` released it kept the lock, and
    every later wait(), poll() or kill() of that Process blocked for good. send_group_signal() too."""
    proc = fe.start_process("/bin/sleep", ["sleep", "30"],  # a group of its own: send_group_signal's
                            fe.ProcAttr(files=[0, 1, 2], sys=fe.SysProcAttr(setpgid=True)))
    try:
        total = _traced(lambda: proc.send_signal(0), 0, (), False, [])
        for at in range(1, total + 1):
            with contextlib.suppress(KeyboardInterrupt):
                _traced(lambda: proc.send_signal(0), at, (signal.SIGINT,), False, [])
                len(())  # a handler still pending runs here at the latest
            assert not proc._lock.locked(), f"SIGINT at event {at} of {total} kept the Process's lock"
        total = _traced(lambda: proc.send_group_signal(0), 0, (), False, [])
        for at in range(1, total + 1):
            with contextlib.suppress(KeyboardInterrupt):
                _traced(lambda: proc.send_group_signal(0), at, (signal.SIGINT,), False, [])
                len(())
            assert not proc._lock.locked(), f"SIGINT at event {at} of {total} kept the Process's lock"
    finally:  # by pid: with the lock kept, the Process's own kill() and wait() would block for good
        os.kill(proc.pid, signal.SIGKILL)
        os.waitpid(proc.pid, 0)


def _sleep_alone() -> None:
    """A clone() child's fn: it keeps no fd of the caller's (run_in_fork's pipe), then sleeps."""
    os.closerange(3, 1 << 16)
    time.sleep(600)


def _clone_parent_sweep(signals: tuple[int, ...]) -> dict[str, Any]:
    """In a forked caller (its parent, the test, gets the siblings): clone(fn, CLONE_PARENT) with
    ``signals`` at every line of pyforkexec's, fn sleeping. Whatever the point, no fd is left open; a
    sibling returned is killed here by its pid (its parent, the test, has not reaped it)."""
    def call() -> None:
        fe.clone(_sleep_alone, fe.CLONE_PARENT | signal.SIGCHLD)

    fds = sorted(os.listdir("/proc/self/fd"))
    lengths = []
    for _ in range(MEASURES):
        returned: list[Any] = []
        lengths.append(_traced(call, 0, (), False, returned))
        for pid in returned:
            os.kill(pid, signal.SIGKILL)
    total = min(lengths)
    leaked, raised, fired = [], 0, []
    for at in range(1, total + 1, STRIDE):
        returned: list[Any] = []
        try:
            _traced(call, at, signals, False, returned, fired)
            len(())  # a handler still pending runs here at the latest
        except (KeyboardInterrupt, Injected):
            raised += 1
        for pid in returned:
            os.kill(pid, signal.SIGKILL)
        gc.collect()
        if sorted(os.listdir("/proc/self/fd")) != fds:
            leaked.append(at)
    return {"points": total, "fired": len(fired), "raised": raised, "leaked": leaked}


@pytest.mark.parametrize("signals", [(signal.SIGINT,), (signal.SIGINT, signal.SIGTERM)],
                         ids=["SIGINT", "both"])
def test_clone_parent_kills_its_sibling_and_leaves_no_fd(signals: tuple[int, ...]) -> None:
    """clone(CLONE_PARENT) takes a pidfd of the sibling (CLONE_PIDFD) for its undo: at every line, the
    pidfd is closed, and the sibling is either returned or killed through it (none of this process's
    children, the siblings, is left running: each exited, or has a SIGKILL on its way)."""
    answer = run_in_fork(_clone_parent_sweep, signals)
    siblings = children()
    running = [pid for pid in siblings if not pid_reuse.killed(pid)]
    for pid in siblings:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert (answer["leaked"], running) == ([], [])
    assert answer["fired"] > 0 and answer["raised"] > 0, answer


def test_failing_child(signals: tuple[int, ...]) -> None:
    """A child that fails (chdir) is reaped and its error read whatever the interruption."""
    attr = fe.ProcAttr(dir="/nonexistent-dir", files=[0, 1, 2], sys=_userns())

    def call() -> None:
        with pytest.raises(fe.ChildError):
            fe.start_process(TRUE, ["true"], attr)

    _sweep(call, _no_release, signals)


def test_no_deadlock_when_interrupted_after_clone() -> None:
    """In a separate process (a hang fails the test instead of stopping the suite): SIGINT right
    after clone, at each event up to the error pipe's close, never leaves finish() waiting."""
    code = f"""
import os, signal, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import test_signal_injection as t
import pyforkexec as fe
attr = fe.ProcAttr(files=[0, 1, 2], sys=t._userns())
signal.signal(signal.SIGTERM, t._raise_injected)
t._sweep(lambda: fe.start_process({TRUE!r}, ["true"], attr), t._wait, (signal.SIGINT,), opcodes=True)
print("done")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "done", proc.stderr[-2000:]


def test_other_threads_are_not_held() -> None:
    """Only the main thread runs Python signal handlers, so only it holds them back: a spawn from
    another thread neither swaps handlers nor delays a signal for the main thread."""
    errors: list[BaseException] = []

    def spawn() -> None:
        try:
            for _ in range(50):
                os.waitpid(fe.fork_exec(TRUE, ["true"], fe.ProcAttr(files=[0, 1, 2])), 0)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    thread = threading.Thread(target=spawn)
    thread.start()
    handler = signal.getsignal(signal.SIGINT)
    thread.join()
    assert not errors and signal.getsignal(signal.SIGINT) is handler


# ---- real signals, two at once, from another thread ---------------------------------------------
# The tracer above sends its signals from its own callback, whose frames are Python too: a handler may
# run there rather than where a real one would. Here another thread sends SIGINT and SIGTERM together
# at a random moment while this thread spawns in a loop: both are tripped at once, and the second
# handler runs at the first check after the first one's exception, in the undo.

SLEEP = "/bin/sleep"


def _spawned_during_two_signals(spawn: Callable[[], Any], rounds: int, monkeypatch: pytest.MonkeyPatch,
                                ) -> list[str]:
    """What ``rounds`` rounds left: a child (running or a zombie) or an fd the caller was never given."""
    from pyforkexec import forkexec as fx

    handed: list[Any] = []  # recorded at the hand-over, inside the library, before its frame returns
    for name in ("pid_only", "process"):
        real = getattr(fx._Spawn, name)
        monkeypatch.setattr(fx._Spawn, name, lambda self, real=real: handed.append(real(self)) or handed[-1])
    rng, go, sent = random.Random(7), threading.Event(), threading.Event()
    delay = [0.0]

    def sender() -> None:
        while go.wait() and delay[0] >= 0:
            go.clear()
            time.sleep(delay[0])
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)
            sent.set()

    threading.Thread(target=sender, daemon=True).start()
    left: list[str] = []
    try:
        for _ in range(rounds):
            before = snapshot(())
            handed.clear()
            sent.clear()
            delay[0] = rng.uniform(0, 0.003)
            go.set()
            for _ in range(4):  # the loop, then what is still pending: each signal raises once
                try:
                    if not sent.is_set():
                        while True:
                            spawn()
                    sent.wait()
                    len(())
                    break
                except (KeyboardInterrupt, Injected):
                    continue
            for result in handed:  # given to the caller: its to end (unless the undo ended it already)
                with contextlib.suppress(OSError):
                    if isinstance(result, int):
                        os.kill(result, signal.SIGKILL)
                        os.waitpid(result, 0)
                    else:
                        result.kill()
                        result.wait()
            left += differences(before, snapshot(()))
    finally:
        delay[0] = -1.0
        go.set()
    return left


@pytest.mark.parametrize("kind", ["fork_exec", "prepared", "pidfd", "run"])
def test_two_real_signals_at_once_leave_nothing(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGINT and SIGTERM together: the second handler ran at the entry of the undo's first call and
    left the clause before it (100 of 100 spawns without a hold left their child running)."""
    attr = fe.ProcAttr(files=[0, 1, 2], sys=fe.SysProcAttr(pidfd=kind == "pidfd"))
    prepared = fe.prepare(SLEEP, ["sleep", "30"], attr)
    spawn = {"fork_exec": lambda: fe.fork_exec(SLEEP, ["sleep", "30"], attr), "prepared": prepared.fork_exec,
             "pidfd": prepared.start,
             "run": lambda: fe.run([SLEEP, "30"], capture_output=True, timeout=30)}[kind]
    if kind == "run":
        fe.run(["/bin/true"])  # imports pyforkexec.run_process now: a signal in an import is the import
        # machinery's
    assert _spawned_during_two_signals(spawn, 40, monkeypatch) == []


def test_a_ctrl_c_that_comes_with_the_exception_an_undo_handles_is_raised_after_it() -> None:
    """run()'s timeout enters its except clause with a SIGINT pending: CPython runs the handler at the
    entry of the first Python function called there, Hold.start (by seize), whose exception seize
    keeps aside so that the undo runs whole. It used to drop it: the caller got TimeoutExpired and
    the Ctrl-C was gone (a caller that retries on timeouts never stopped). Now it is raised once the
    undo is done."""
    fired = []

    def tracer(frame, event, arg):  # runs the handler where CPython would: start()'s entry
        caller = frame.f_back
        if event == "call" and frame.f_code.co_name == "start" and caller is not None \
                and caller.f_code.co_name == "run" and sys.exc_info()[0] is not None:
            sys.settrace(None)
            fired.append(True)
            signal.getsignal(signal.SIGINT)(signal.SIGINT, frame)  # default_int_handler: raises
        return None

    before = snapshot(())
    sys.settrace(tracer)
    try:
        with pytest.raises(KeyboardInterrupt):
            fe.run([SLEEP, "5"], timeout=0.1)
    finally:
        sys.settrace(None)
    assert fired, "run() no longer starts a hold in its except clause: move the signal"
    assert differences(before, snapshot(())) == []


def test_a_ctrl_c_recorded_while_the_hold_is_installed_is_not_raised_by_a_later_call() -> None:
    """SIGINT and SIGTERM together just after the hold swapped SIGINT's handler and before SIGTERM's:
    SIGINT was recorded, SIGTERM's own handler raised, and the failed install left the recorded SIGINT
    with no hold to deliver it: Process.wait() (its held()) raised Injected, and the Ctrl-C came out of
    the next pyforkexec call, any time later. Now it is sent again as the install fails: it is raised
    at once, and the next call is not interrupted."""
    from pyforkexec import _signals

    fired: list[bool] = []

    def after_the_sigint_swap(frame: Any, event: str, arg: Any) -> None:
        if (not fired and event == "c_return" and frame.f_code is _signals._install.__code__
                and getattr(arg, "__name__", "") == "signal"
                and signal.getsignal(signal.SIGINT) is _signals._record):
            fired.append(True)
            sys.setprofile(None)
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)

    attr = fe.ProcAttr(files=[0, 1, 2])
    raised: list[type] = []
    before = snapshot(())
    proc = fe.start_process(TRUE, ["true"], attr)
    sys.setprofile(after_the_sigint_swap)
    try:
        for _ in range(3):  # the call, then what is still pending
            try:
                if not raised:
                    proc.wait()
                len(())
                break
            except (KeyboardInterrupt, Injected) as e:
                raised.append(type(e))
    finally:
        sys.setprofile(None)
    assert fired, "the hold no longer swaps handlers with signal.signal: move the signals"
    assert KeyboardInterrupt in raised, raised
    proc.wait()
    fe.start_process(TRUE, ["true"], attr).wait()  # raises nothing left over
    assert _signals._pending == [] and differences(before, snapshot(())) == []
