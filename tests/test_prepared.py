"""prepare(): a Prepared spawns as fork_exec/start_process do with the attr of prepare() time.

The property test draws the same hostile (argv0, argv, attr) as test_property_api and compares, per
example, fork_exec(argv0, argv, attr) with prepare(argv0, argv, attr).fork_exec() (start_process with
.start()): refused with the same exception and message, or a ChildError with the same errno, step,
index and field, or a program that ran and exited alike; nothing left behind. The other tests pin
what makes a Prepared safe to keep: the caller's later changes to its attr have no effect, per-spawn
values (pipes, our pid after os.fork) are fresh, and a signal at any point loses nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any, Callable, Optional

import pytest
import test_property_api as prop_api
import test_signal_injection as inject
from helpers import sysutil
from helpers.caches import forget_plans
from helpers.forked import run_in_fork
from helpers.leaks import assert_unchanged, snapshot
from helpers.marks import needs_root
from hypothesis import given, settings
from test_property_api import POOL, USERS, Tally, _run, spawn_args
from test_property_api import world as world  # a fixture
from test_signal_injection import signals as signals  # a fixture
from test_signal_injection import sigterm_raises as sigterm_raises  # an autouse fixture

import pyforkexec as pf
from pyforkexec import ChildError, ProcAttr, SysProcAttr, SysProcIDMap

TRUE = "/bin/true"
Outcome = tuple[Any, ...]


def _finish_pid(pid: int, traced: bool) -> Outcome:
    """Reap; the exit status, unless it had to be killed (a traced child stops at exec)."""
    if traced:
        os.kill(pid, signal.SIGKILL)
    while True:
        _, status = os.waitpid(pid, 0)
        if not os.WIFSTOPPED(status):
            return ("ran", None if traced else status)


def _finish_process(proc: pf.Process, traced: bool) -> Outcome:
    if traced:
        prop_api._reap_process(proc)
        return ("ran", None)
    return ("ran", proc.wait())


def outcome(call: Callable[[], Any], traced: bool, sync_kills: bool) -> Outcome:
    """What a spawn did, in terms two spawns of the same request must agree on. A sync callable that
    kills the child races with its release: the spawn fails at the sync step, or returns a child that
    dies of the SIGKILL, by timing alone."""
    killed = ("killed by its sync callable",)
    try:
        result = call()
    except ChildError as e:
        if sync_kills and e.location == pf.ErrorLocation.SYNC_READ:
            return killed
        return ("child_error", e.errno, e.location, e.index, e.field)
    except pf.CgroupError as e:
        return ("cgroup_error", type(e), str(e))
    except (ValueError, TypeError) as e:
        return ("refused", type(e), str(e))
    if isinstance(result, pf.Process):
        done = _finish_process(result, traced)
        return killed if sync_kills and done[1] == -signal.SIGKILL else done
    done = _finish_pid(result, traced)
    return killed if sync_kills and done[1] is not None and os.WIFSIGNALED(done[1]) else done


def _traced(attr: Any) -> bool:
    return getattr(getattr(attr, "sys", None), "ptrace", False) is True


def _sync_kills(attr: Any) -> bool:
    return getattr(getattr(getattr(attr, "sys", None), "sync", None), "__name__", "") == "kills"


# The rules of one entry point (forkexec.entry_refusal: fork_exec's pid, start_process's Process), which
# prepare() cannot apply before it knows which call spawns.
_ENTRY_RULES = ("SysProcAttr.cgroup.kill_remaining: happens once the child has been reaped",
                "SysProcAttr.cloneflags: CLONE_PARENT makes the child our parent's")


def _checked_per_spawn(message: str) -> bool:
    return (message.startswith(("SysProcAttr.setns[", *_ENTRY_RULES)) or "RLIMIT_NOFILE is" in message)


PAIRS = {"fork_exec": (pf.fork_exec, pf.Prepared.fork_exec), "start": (pf.start_process, pf.Prepared.start)}


@needs_root
@USERS
@pytest.mark.parametrize("api", list(PAIRS))
def test_prepared_spawns_as_the_direct_call(api: str, uid: Optional[int],
                                            world: tuple[str, str, str]) -> None:
    direct, prepared_call = PAIRS[api]

    def body() -> Tally:
        tally = Tally()

        @settings(prop_api.SETTINGS, max_examples=max(1, prop_api.EXAMPLES // 2))
        @given(spawn_args())
        def prop(args: tuple[Any, Any, Any]) -> None:
            argv0, argv, attr = args
            traced, kills, kept = _traced(attr), _sync_kills(attr), getattr(attr, "sys", None)
            before = snapshot([POOL.cgroup_root])
            expected = outcome(lambda: direct(argv0, argv, attr), traced, kills)
            prop_api._remove_kept_cgroup(kept, api == "fork_exec")
            try:
                prepared = pf.prepare(argv0, argv, attr)
            except pf.CgroupError as e:
                got: Outcome = ("cgroup_error", type(e), str(e))
            except (ValueError, TypeError) as e:
                got = ("refused", type(e), str(e))
            else:
                # What prepared.py makes per spawn is checked per spawn: the joins' targets, opened
                # then (a join of the caller's own namespace), and the RLIMIT_NOFILE room for the fds
                # the child gets; so are the rules of the entry point. The prepared call refuses
                # those, not prepare(): the same error, before any process (got == expected below).
                assert expected[0] != "refused" or _checked_per_spawn(str(expected[2])), \
                    f"prepare() accepted what {api} refused: {expected}"
                got = outcome(lambda: prepared_call(prepared), traced, kills)
                prop_api._remove_kept_cgroup(kept, api == "fork_exec")
            assert got == expected
            tally.ran += expected[0] in ("ran", "killed by its sync callable")
            tally.child_error += expected[0] == "child_error"
            tally.refused += expected[0] == "refused"
            tally.cgroup_error += expected[0] == "cgroup_error"
            assert_unchanged(before)

        prop()
        return tally

    _run(body, uid, world)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks)


def _shell_output(spawn: Callable[[], int], r: int, w: int) -> tuple[int, bytes]:
    pid = spawn()
    os.close(w)
    out = _read_all(r)
    os.close(r)
    return os.waitpid(pid, 0)[1], out


@needs_root
def test_changing_the_attr_after_prepare_changes_nothing(tmp_path: Any) -> None:
    r, w = os.pipe()
    env = ["X=before"]
    groups = [0]
    maps = [SysProcIDMap(0, 0, 1)]
    attr = ProcAttr(env=env, dir=str(tmp_path), files=[0, w, 2], sys=SysProcAttr(
        cloneflags=pf.CLONE_NEWUTS | pf.CLONE_NEWUSER, hostname="prepared", uid_mappings=maps,
        gid_mappings=[SysProcIDMap(0, 0, 1)], gid_mappings_enable_setgroups=True,
        credential=pf.Credential(0, 0, groups)))
    script = 'echo "$X $(hostname) $(pwd) $(id -u)"'
    prepared = pf.prepare("/bin/sh", ["sh", "-c", script], attr)
    # every kind of change a caller could make: rebinding fields, mutating lists it passed
    env[0] = "X=after"
    env.append("Y=1")
    groups.append(12345)
    maps[0] = SysProcIDMap(0, 12345, 1)
    attr.dir = "/"
    attr.files = [0, 1, 2]
    assert attr.sys is not None
    attr.sys.hostname = "changed"
    attr.sys.cloneflags = 0
    attr.sys.credential = None
    attr.sys = None
    status, out = _shell_output(prepared.fork_exec, r, w)
    assert status == 0 and out == f"before prepared {tmp_path} 0\n".encode(), out
    with pytest.raises(AttributeError):
        prepared._args = None  # type: ignore[misc]


def test_prepare_refuses_what_fork_exec_refuses() -> None:
    bad = ProcAttr(sys=SysProcAttr(cloneflags=pf.CLONE_NEWUSER, uid_mappings=[]))
    with pytest.raises(ValueError) as direct:
        pf.fork_exec(TRUE, ["true"], bad)
    with pytest.raises(ValueError) as prepared:
        pf.prepare(TRUE, ["true"], bad)
    assert str(prepared.value) == str(direct.value)
    assert str(direct.value).startswith("SysProcAttr.uid_mappings")


def readonly_root_mapped_from(host_id: int) -> ProcAttr:
    """A read-only root in a new user namespace whose one mapped id is ``host_id``, under no_new_privs:
    it holds for a program of a uid other than 0 there, so it depends on the caller's euid. A caller
    of euid ``host_id`` gives its program uid 0 there (and CAP_SYS_ADMIN over the mount namespace):
    the kernel would let it remount / read-write, so the spawn is refused (check_mounts_hold)."""
    maps = [SysProcIDMap(container_id=0, host_id=host_id, size=1)]
    return ProcAttr(sys=SysProcAttr(cloneflags=pf.CLONE_NEWUSER | pf.CLONE_NEWNS, readonly_root=True,
                                    no_new_privs=True, uid_mappings=maps, gid_mappings=maps))


def as_euid(uid: int, call: Callable[[], Any]) -> Any:
    """``call()`` with this (forked) process's euid and egid ``uid``: what a root daemon that switches
    ids (seteuid) does between spawns."""
    os.setegid(uid)
    os.seteuid(uid)
    sysutil.prctl(sysutil.PR_SET_DUMPABLE, 1)  # (an id change clears it: the parent could not write maps)
    return call()


def _prepared_then_other_ids() -> str:
    prepared = pf.prepare(TRUE, ["true"], readonly_root_mapped_from(1000))  # as root: it holds
    assert os.waitpid(prepared.fork_exec(), 0)[1] == 0
    with pytest.raises(ValueError) as refused:
        as_euid(1000, prepared.fork_exec)
    return str(refused.value)


@needs_root
def test_a_prepared_spawn_is_checked_again_under_other_ids() -> None:
    # prepare() checked the read-only root as root; spawned as euid 1000, the same spawn would not
    # hold: the checks that read the ids are made again, before any process.
    message = run_in_fork(_prepared_then_other_ids)
    assert message.startswith("SysProcAttr.readonly_root: would not hold"), message


def test_a_failing_child_reports_the_same_step_each_time(tmp_path: Any) -> None:
    attr = ProcAttr(dir=str(tmp_path / "missing"))
    with pytest.raises(ChildError) as direct:
        pf.fork_exec(TRUE, ["true"], attr)
    prepared = pf.prepare(TRUE, ["true"], attr)
    before = snapshot()
    for _ in range(3):
        with pytest.raises(ChildError) as again:
            prepared.fork_exec()
        assert (again.value.errno, again.value.location, again.value.index, again.value.field) == \
            (direct.value.errno, direct.value.location, direct.value.index, direct.value.field) == \
            (direct.value.errno, pf.ErrorLocation.CHDIR, 0, "proc.dir")
    assert_unchanged(before)


@needs_root
def test_fresh_pipes_each_spawn_even_when_their_numbers_move() -> None:
    """The map pipe's fds are steps' arguments: a plan compiled for other numbers must not be reused."""
    attr = ProcAttr(sys=SysProcAttr(cloneflags=pf.CLONE_NEWUSER, uid_mappings=[SysProcIDMap(0, 0, 1)],
                                    gid_mappings=[SysProcIDMap(0, 0, 1)]))
    prepared = pf.prepare(TRUE, ["true"], attr)
    before = snapshot()
    held: list[int] = []
    try:
        for _ in range(4):
            assert os.waitpid(prepared.fork_exec(), 0)[1] == 0
            held.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))  # the next pipe gets other fds
    finally:
        for fd in held:
            os.close(fd)
    assert_unchanged(before)


def _spawn_in_forked_child(prepared: pf.Prepared) -> int:
    pid = os.fork()
    if pid == 0:
        status = 1
        with contextlib.suppress(BaseException):
            status = os.waitpid(prepared.fork_exec(), 0)[1]
        os._exit(0 if status == 0 else 1)
    return os.waitpid(pid, 0)[1]


def test_pdeathsig_checks_the_parent_of_each_spawn() -> None:
    """Our pid is read per spawn: in an os.fork child, the spawn's parent is that child, and the
    pdeathsig step's check (the parent still alive?) must compare with it, not with prepare()'s pid."""
    prepared = pf.prepare(TRUE, ["true"], ProcAttr(sys=SysProcAttr(pdeathsig=signal.SIGKILL)))
    assert os.waitpid(prepared.fork_exec(), 0)[1] == 0
    assert _spawn_in_forked_child(prepared) == 0


def test_start_inherits_the_environment_of_prepare_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PFE_PREPARED", "then")
    r, w = os.pipe()
    prepared = pf.prepare("/bin/sh", ["sh", "-c", 'echo "$PFE_PREPARED"'], ProcAttr(files=[0, w, 2]))
    monkeypatch.setenv("PFE_PREPARED", "now")
    proc = prepared.start()
    os.close(w)
    assert _read_all(r) == b"then\n" and proc.wait() == 0
    os.close(r)


@pytest.mark.timeout(900)  # test_signal_injection's sweep: minutes on a loaded machine, as there
def test_every_signal_point_of_a_prepared_spawn_loses_nothing() -> None:
    """test_signal_injection's sweep, at every bytecode of the prepared vfork path."""
    prepared = pf.prepare(TRUE, ["true"], ProcAttr(files=[0, 1, 2]))
    counts = inject._sweep(prepared.fork_exec, inject._reap_pid, (signal.SIGINT,), opcodes=True,
                           forget=lambda: forget_plans(prepared))
    assert counts["raised"] > 0


def test_every_signal_point_of_a_prepared_start_with_maps_loses_nothing(
        signals: tuple[int, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    """The map handshake, the error pipe and a pidfd, through Prepared.start (whose result the sweep
    hands back to be waited on once it returned)."""
    monkeypatch.setattr(inject, "PUBLIC", inject.PUBLIC | {"start"})
    prepared = pf.prepare(TRUE, ["true"], ProcAttr(files=[0, 1, 2], sys=inject._userns(pidfd=True)))
    counts = inject._sweep(prepared.start, inject._wait, signals, forget=lambda: forget_plans(prepared))
    assert counts["raised"] > 0


class _LockedPath:
    """A PathLike of the caller's own that deepcopy cannot copy (it holds a lock)."""

    def __init__(self, path: str) -> None:
        import threading

        self.path, self.lock = path, threading.Lock()

    def __fspath__(self) -> str:
        return self.path


@pytest.mark.parametrize("where", ["dir", "chroot"])
def test_a_value_prepare_cannot_copy_is_an_error_naming_its_field(where: str) -> None:
    """prepare() keeps a copy of the attributes no later change reaches: a value that cannot be copied
    is a TypeError naming its field, not deepcopy's own error naming none."""
    attr = (ProcAttr(dir=_LockedPath("/")) if where == "dir"
            else ProcAttr(sys=SysProcAttr(chroot=_LockedPath("/"))))  # type: ignore[arg-type]
    field = "ProcAttr.dir" if where == "dir" else "SysProcAttr.chroot"
    with pytest.raises(TypeError, match=rf"^{field}: cannot be copied \(TypeError: "):
        pf.prepare(TRUE, ["true"], attr)
