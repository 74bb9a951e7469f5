"""fork_exec and start_process remember the spawns they checked, by value (pyforkexec/checked.py).

What must hold: a call answers exactly as a first call with the same arguments would, whatever the
caller did to its objects since an earlier call, and whatever type an equal value has. The property
test remembers a drawn spawn, then turns the very same objects into another drawn spawn in place,
and compares the answer with that other spawn's answer on first sight. The other tests pin each
kind of change by what the child itself sees, the type checks that equal values of another type
must still meet, what is never remembered, and the bound.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional

import pytest
import test_property_api as prop_api
from helpers.forked import run_in_fork
from helpers.leaks import assert_unchanged, snapshot
from helpers.marks import needs_root
from hypothesis import given, settings
from test_prepared import _sync_kills, _traced, as_euid, outcome, readonly_root_mapped_from
from test_property_api import POOL, USERS, Tally, _run, spawn_args
from test_property_api import world as world  # a fixture

import pyforkexec as pf
from pyforkexec import ChildError, ProcAttr, SysProcAttr, SysProcIDMap
from pyforkexec import checked as checked_mod
from pyforkexec.forkexec import checked_spawn

TRUE = "/bin/true"


def remembered(argv0: Any, argv: Any, attr: Any) -> bool:
    """Whether a call with these arguments now would reuse a remembered spawn."""
    try:
        key = checked_mod.spawn_key(argv0, argv, attr)
    except checked_mod.NotPlain:
        return False
    return isinstance(checked_spawn.entries.get(key), tuple)


@pytest.fixture(autouse=True)
def forget() -> None:
    checked_spawn.clear()


def _output(argv: list[str], attr: ProcAttr, w: int, r: int) -> bytes:
    """Run argv with stdout on the pipe (w), three times over: the third is a remembered one."""
    outs = []
    for _ in range(3):
        pid = pf.fork_exec(argv[0], argv, attr)
        _, status = os.waitpid(pid, 0)
        assert status == 0
        outs.append(os.read(r, 65536))
    assert len(set(outs)) == 1, outs
    return outs[0]


def _in_place(target: Any, source: Any) -> None:
    """Make ``target`` (a ProcAttr) equal to ``source`` without replacing the objects the caller holds."""
    sys_target = target.sys
    vars(target).update(vars(source))
    if type(sys_target) is SysProcAttr and type(source.sys) is SysProcAttr:
        vars(sys_target).update(vars(source.sys))
        target.sys = sys_target


def test_a_remembered_spawn_follows_the_callers_later_changes() -> None:
    r, w = os.pipe()
    try:
        env = ["X=before"]
        attr = ProcAttr(env=env, files=[0, w, 2])
        argv = ["/bin/sh", "-c", 'echo "$X $(pwd)"']
        assert _output(argv, attr, w, r) == f"before {os.getcwd()}\n".encode()
        assert remembered(argv[0], argv, attr)
        env[0] = "X=after"  # the caller's own list, changed in place
        assert _output(argv, attr, w, r) == f"after {os.getcwd()}\n".encode()
        attr.dir = "/"  # a field rebound
        assert _output(argv, attr, w, r) == b"after /\n"
        argv[2] = "echo changed"  # argv too
        assert _output(argv, attr, w, r) == b"changed\n"
    finally:
        os.close(r)
        os.close(w)


@needs_root
def test_changed_maps_groups_and_hostname_reach_the_child() -> None:
    r, w = os.pipe()
    try:
        maps = [SysProcIDMap(0, 0, 1)]
        groups = [0]
        sys_attr = SysProcAttr(cloneflags=pf.CLONE_NEWUSER | pf.CLONE_NEWUTS, hostname="first",
                               uid_mappings=maps, gid_mappings=[SysProcIDMap(0, 0, 1)],
                               gid_mappings_enable_setgroups=True, credential=pf.Credential(0, 0, groups))
        attr = ProcAttr(files=[0, w, 2], sys=sys_attr)
        argv = ["/bin/sh", "-c", 'echo "$(hostname) $(cat /proc/self/uid_map)"']
        assert _output(argv, attr, w, r).split() == [b"first", b"0", b"0", b"1"]
        assert remembered(argv[0], argv, attr)
        maps[0] = SysProcIDMap(0, 12345, 1)  # a list of the caller's, changed in place
        sys_attr.hostname = "second"
        assert _output(argv, attr, w, r).split() == [b"second", b"0", b"12345", b"1"]
        groups.append(4242)  # inside a frozen Credential: a gid the namespace does not map
        with pytest.raises(ChildError) as failed:
            pf.fork_exec(argv[0], argv, attr)
        assert failed.value.location == pf.ErrorLocation.SETGROUPS
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize(("field", "good", "bad", "message"), [
    ("pgid", 0, False, "SysProcAttr.pgid: must be an int, not bool"),
    ("setsid", False, 0, "SysProcAttr.setsid: must be True or False, not int"),
    ("pdeathsig", 1, True, "SysProcAttr.pdeathsig: must be an int, not bool"),
    ("uid_mappings", [SysProcIDMap(0, os.getuid(), 1)], [SysProcIDMap(0, os.getuid(), True)],
     "SysProcAttr.uid_mappings[0].size: must be an int, not bool"),
])
def test_an_equal_value_of_another_type_is_checked_again(field: str, good: Any, bad: Any,
                                                          message: str) -> None:
    sys_attr = SysProcAttr(cloneflags=pf.CLONE_NEWUSER)
    setattr(sys_attr, field, good)
    attr = ProcAttr(sys=sys_attr)
    for _ in range(3):
        os.waitpid(pf.fork_exec(TRUE, [TRUE], attr), 0)
    assert remembered(TRUE, [TRUE], attr)
    setattr(sys_attr, field, bad)
    assert bad == good  # equal values: only their types tell them apart
    before = snapshot()
    with pytest.raises(TypeError) as refused:
        pf.fork_exec(TRUE, [TRUE], attr)
    assert str(refused.value) == message
    assert_unchanged(before)


class _Sneaky(SysProcAttr):
    """A record whose field the caller's own code answers: the full path reads the property (plain.py)."""

    @property  # type: ignore[misc]  # shadows the field on purpose
    def pdeathsig(self) -> Any:
        return "a property's"


class _LyingDict(dict):  # type: ignore[type-arg]
    """A __dict__ whose own len() and iteration raise: no snapshot or check may call them."""

    def __len__(self) -> int:
        raise RuntimeError("the caller's len() ran")

    def __iter__(self) -> Any:
        raise RuntimeError("the caller's iteration ran")


def _swap_dir_and_env(argv: list[str], attr: ProcAttr) -> None:
    # env and dir trade values and places in vars(): each place holds the very same object as before
    fields = vars(attr)
    names, values = list(fields), list(fields.values())
    names[0], names[1] = names[1], names[0]
    fields.clear()
    fields.update(zip(names, values))


def _move_last_arg_to_env(argv: list[str], attr: ProcAttr) -> None:
    # the same strings one after the other (argv's, then env's), one fewer in argv and one more in env
    assert attr.env is not None
    attr.env.insert(0, argv.pop())  # type: ignore[attr-defined]  # the test's own list


def _sneaky_class(argv: list[str], attr: ProcAttr) -> None:
    assert attr.sys is not None
    attr.sys.__class__ = _Sneaky


def _lying_dict(argv: list[str], attr: ProcAttr) -> None:
    assert attr.sys is not None
    attr.sys.__dict__ = _LyingDict(vars(attr.sys))


def _equal_size_of_another_type(argv: list[str], attr: ProcAttr) -> None:
    assert attr.sys is not None and attr.sys.uid_mappings is not None
    object.__setattr__(attr.sys.uid_mappings[0], "size", True)  # a frozen record, changed in place


def _run_out(argv: list[str], attr: ProcAttr, r: int) -> tuple[str, ...]:
    try:
        _, status = os.waitpid(pf.fork_exec(argv[0], argv, attr), 0)
    except (TypeError, ValueError, RuntimeError) as e:
        return (type(e).__name__, str(e))
    return ("ran", str(status), os.read(r, 65536).decode())


@pytest.mark.parametrize(("change", "answer"), [
    (_swap_dir_and_env, ("TypeError", "ProcAttr.dir: must be str, bytes or a path, not list")),
    (_move_last_arg_to_env, ("ran", "0", f"/bin/sh x {os.getcwd()}\n")),
    (_sneaky_class, ("TypeError", "SysProcAttr.pdeathsig: must be an int, not str")),
    (_lying_dict, ("ran", "0", f"zero x {os.getcwd()}\n")),  # as before: no code of the caller's ran
    (_equal_size_of_another_type,
     ("TypeError", "SysProcAttr.uid_mappings[0].size: must be an int, not bool")),
])
def test_the_last_calls_own_objects_changed_in_place_answer_as_a_first_call(change: Callable[..., None],
                                                                            answer: tuple[str, ...]) -> None:
    """fork_exec finds the spawn of the call before without a snapshot when it gets the very same objects
    holding the very same objects (checked.Seen). Changes that keep every value object in its place,
    or that only code of the caller's could tell, must still answer as a first call with them does."""
    r, w = os.pipe()
    try:
        argv = ["/bin/sh", "-c", 'echo "$0 $X $(pwd)"', "zero"]
        attr = ProcAttr(dir=None, env=["X=x"], files=[0, w, 2], sys=SysProcAttr(
            cloneflags=pf.CLONE_NEWUSER, uid_mappings=[SysProcIDMap(0, os.geteuid(), 1)]))
        first = [_run_out(argv, attr, r) for _ in range(3)]
        assert first[0] == first[2] == ("ran", "0", f"zero x {os.getcwd()}\n")
        assert checked_spawn.seen is not None and checked_spawn.seen.holds(argv[0], argv, attr)
        change(argv, attr)
        assert _run_out(argv, attr, r) == answer
        checked_spawn.clear()
        assert _run_out(argv, attr, r) == answer  # a first call with these objects: the same
    finally:
        os.close(r)
        os.close(w)


def _exec_fd() -> ProcAttr:
    return ProcAttr(sys=SysProcAttr(exec_fd=os.open(TRUE, os.O_RDONLY | os.O_CLOEXEC)))


def test_spawns_whose_checks_read_the_process_are_never_remembered(tmp_path: Any) -> None:
    attr = _exec_fd()
    assert attr.sys is not None and attr.sys.exec_fd is not None
    try:
        for _ in range(3):
            os.waitpid(pf.fork_exec(TRUE, [TRUE], attr), 0)
        assert not remembered(TRUE, [TRUE], attr)
    finally:
        os.close(attr.sys.exec_fd)
    # the fd is closed now: the check that reads the process refuses it
    with pytest.raises(ValueError, match=r"^SysProcAttr.exec_fd: fd \d+ is not open"):
        pf.fork_exec(TRUE, [TRUE], attr)
    with open(tmp_path / "out", "w") as out:  # a file object: not plain data
        file_attr = ProcAttr(files=[0, out, 2])
        for _ in range(3):
            os.waitpid(pf.fork_exec(TRUE, [TRUE], file_attr), 0)
        assert not remembered(TRUE, [TRUE], file_attr)
    assert not checked_spawn.entries


def _remembered_then_other_ids(same_objects: bool) -> str:
    attr, argv = readonly_root_mapped_from(1000), ["true"]
    for _ in range(2):  # as root: it holds; the second call remembers it
        assert os.waitpid(pf.fork_exec(TRUE, argv, attr), 0)[1] == 0
    assert remembered(TRUE, argv, attr) and checked_spawn.seen is not None
    if not same_objects:  # an equal argv in another list: found by its key, not as the last call's
        argv = ["true"]
    with pytest.raises(ValueError) as refused:
        as_euid(1000, lambda: pf.fork_exec(TRUE, argv, attr))
    return str(refused.value)


@needs_root
@pytest.mark.parametrize("same_objects", [True, False])
def test_a_spawn_remembered_under_other_ids_is_checked_again(same_objects: bool) -> None:
    # The checks read the caller's euid and egid too (validate.check_ids): a spawn remembered as root
    # is not reused as euid 1000, where its read-only root would not hold.
    message = run_in_fork(lambda: _remembered_then_other_ids(same_objects))
    assert message.startswith("SysProcAttr.readonly_root: would not hold"), message


def test_at_most_size_spawns_are_remembered() -> None:
    attrs = [ProcAttr(env=[f"N={n}"]) for n in range(checked_mod.SIZE + 10)]
    for attr in attrs:
        for _ in range(2):
            os.waitpid(pf.fork_exec(TRUE, [TRUE], attr), 0)
    assert len(checked_spawn.entries) <= checked_mod.SIZE
    assert remembered(TRUE, [TRUE], attrs[-1]) and not remembered(TRUE, [TRUE], attrs[0])


def test_a_snapshot_tells_types_and_nesting_apart() -> None:
    snap = checked_mod.snapshot
    assert snap([1, 2]) != snap((1, 2)) and snap([1]) != snap([True]) and snap(["a"]) != snap([b"a"])
    assert snap(ProcAttr(env=["A=1"])) == snap(ProcAttr(env=["A=1"]))
    assert snap(ProcAttr(env=["A=1"])) != snap(ProcAttr(env=("A=1",)))
    assert snap(SysProcAttr(ctty=1)) != snap(SysProcAttr(ctty=True))
    for not_plain in (os.environ, object(), pf.Mount(None, "/x"), ProcAttr(sys=SysProcAttr(sync=print))):
        with pytest.raises(checked_mod.NotPlain):
            snap(not_plain)


def test_a_snapshot_thaws_into_an_equal_value_of_the_same_types() -> None:
    snap = checked_mod.snapshot
    attr = ProcAttr(env=["A=1"], files=(0, 1, 2), dir=b"/", sys=SysProcAttr(
        cloneflags=pf.CLONE_NEWUSER, uid_mappings=[SysProcIDMap(0, 0, 1)], credential=pf.Credential(0, 0, ()),
        ambient_caps=[], hostname="h"))
    for value in (attr, [["a", (1, True, ())], b"x"], ("x",), None, "s"):
        thawed = checked_mod.thaw(snap(value))
        assert snap(thawed) == snap(value) and thawed == value
    assert checked_mod.thaw(snap(attr)).sys is not attr.sys  # made anew
    extra = SysProcAttr()
    extra.other = 1  # type: ignore[attr-defined]
    reordered = SysProcAttr()
    del reordered.chroot
    reordered.chroot = ""  # the fields' values as before, in another order in vars()
    for not_plain in (extra, reordered):
        with pytest.raises(checked_mod.NotPlain, match="other attributes than its fields"):
            snap(ProcAttr(sys=not_plain))


@needs_root
def test_what_is_remembered_is_what_the_snapshot_says_whatever_the_caller_changes_meanwhile() -> None:
    """The caller's own thread flips its attr between the snapshot and the checks (a concurrent thread
    of its does it at any moment, as sys.setprofile here at the exact one). The spawn remembered for the
    snapshot (CLONE_NEWNET) must be a new network namespace for any later equal call, not the value the
    caller's object held a moment later (none: the host's)."""
    import sys

    from pyforkexec import validate

    host = os.readlink("/proc/self/ns/net")
    argv = ["/bin/sh", "-c", "readlink /proc/self/ns/net"]
    r, w = os.pipe()
    mine = SysProcAttr(cloneflags=pf.CLONE_NEWNET)
    attr = ProcAttr(files=[0, w, 2], sys=mine)
    key = checked_mod.spawn_key(argv[0], argv, attr)

    def flip(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is validate.check_spawn.__code__ \
                and frame.f_locals.get("attr") is attr:
            mine.cloneflags = 0

    try:
        os.waitpid(pf.fork_exec(argv[0], argv, attr), 0)  # first sight: not remembered yet
        assert os.read(r, 4096).strip().decode() != host
        sys.setprofile(flip)
        try:
            os.waitpid(pf.fork_exec(argv[0], argv, attr), 0)  # remembered, the caller's attr changed
        finally:
            sys.setprofile(None)
        assert mine.cloneflags == 0  # the flip did happen, after the snapshot
        assert os.read(r, 4096).strip().decode() == host  # the caller's own spawn: what its check read
        entry = checked_spawn.entries[key]
        assert isinstance(entry, tuple) and entry[0].cloneflags & pf.CLONE_NEWNET
        clean = ProcAttr(files=[0, w, 2], sys=SysProcAttr(cloneflags=pf.CLONE_NEWNET))
        assert remembered(argv[0], argv, clean)
        os.waitpid(pf.fork_exec(argv[0], argv, clean), 0)
        assert os.read(r, 4096).strip().decode() != host
    finally:
        os.close(r)
        os.close(w)


PAIRS = {"fork_exec": pf.fork_exec, "start_process": pf.start_process}


def _answer(call: Callable[[], Any], attr: Any) -> Any:
    return outcome(call, _traced(attr), _sync_kills(attr))


@needs_root
@USERS
@pytest.mark.parametrize("api", list(PAIRS))
def test_a_remembered_spawn_turned_into_another_answers_as_that_one(api: str, uid: Optional[int],
                                                                   world: tuple[str, str, str]) -> None:
    """Draw spawns A and B. B's answer on first sight is the reference. Then A is called three times (so
    that it is remembered when its arguments are plain), turned into B in place, and called again: the
    answer must be B's."""
    call = PAIRS[api]

    def body() -> Tally:
        tally, hits = Tally(), [0]

        @settings(prop_api.SETTINGS, max_examples=max(1, prop_api.EXAMPLES // 3))
        @given(spawn_args(), spawn_args())
        def prop(first: tuple[Any, Any, Any], second: tuple[Any, Any, Any]) -> None:
            argv0, argv, attr = first
            b_argv0, b_argv, b_attr = second
            before = snapshot([POOL.cgroup_root])
            checked_spawn.clear()
            expected = _answer(lambda: call(b_argv0, b_argv, b_attr), b_attr)
            prop_api._remove_kept_cgroup(getattr(b_attr, "sys", None), api == "fork_exec")
            checked_spawn.clear()
            for _ in range(3):
                _answer(lambda: call(argv0, argv, attr), attr)
                prop_api._remove_kept_cgroup(getattr(attr, "sys", None), api == "fork_exec")
            hits[0] += remembered(argv0, argv, attr)
            if isinstance(attr, ProcAttr) and isinstance(b_attr, ProcAttr):
                _in_place(attr, b_attr)
            else:
                attr = b_attr
            if isinstance(argv, list) and isinstance(b_argv, list):
                argv[:] = b_argv
            else:
                argv = b_argv
            got = _answer(lambda: call(b_argv0, argv, attr), attr)
            prop_api._remove_kept_cgroup(getattr(attr, "sys", None), api == "fork_exec")
            assert got == expected
            tally.ran += expected[0] == "ran"
            tally.child_error += expected[0] == "child_error"
            tally.refused += expected[0] == "refused"
            tally.cgroup_error += expected[0] == "cgroup_error"
            assert_unchanged(before)

        prop()
        assert hits[0] >= 5, f"only {hits[0]} drawn spawns were remembered: the property tested little"
        print(f"{hits[0]} remembered")
        return tally

    _run(body, uid, world)
