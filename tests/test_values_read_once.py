"""A value of the caller's type (an int, list or path subclass whose operators, iteration, formatting
or truth say something else than its value) is checked as what it holds, and the steps use what was
checked, read once: never a refused value that reaches the kernel, nor a check judged on one answer
and a step run on another. Real spawns, as root and as uid 65534."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from helpers.forked import run_in_fork
from helpers.leaks import assert_unchanged, snapshot
from helpers.marks import needs_root
from helpers.procs import capture, output
from hypothesis import given, settings
from hypothesis import strategies as st

from pyforkexec import (
    CLONE_FS,
    CLONE_NEWUSER,
    Credential,
    ProcAttr,
    SysProcAttr,
    SysProcIDMap,
    fork_exec,
    prepare,
)


class LyingInt(int):
    """Every comparison says yes: a range check made with its operators passes whatever it holds."""

    def __le__(self, other: object) -> bool:
        return True

    def __ge__(self, other: object) -> bool:
        return True

    def __lt__(self, other: object) -> bool:
        return False


class FormattedInt(int):
    """Formats as other text (a uid_map line written with an f-string)."""

    def __format__(self, spec: str) -> str:
        return "0 0 65536\n70000"


class FlipList(list):
    """Iterates as ``first`` once, as ``then`` afterwards."""

    def __init__(self, first: list, then: list):
        super().__init__(first)
        self.then, self.reads = then, 0

    def __iter__(self) -> Any:
        self.reads += 1
        return list.__iter__(self) if self.reads == 1 else iter(self.then)


class EmptyLooking(str):
    """A path that says it is empty (len 0, false) and holds one."""

    def __len__(self) -> int:
        return 0

    def __bool__(self) -> bool:
        return False


class FalsePath:
    """An os.PathLike that tests false."""

    def __init__(self, path: str):
        self.path = path

    def __fspath__(self) -> str:
        return self.path

    def __bool__(self) -> bool:
        return False


def _ids(sys: SysProcAttr) -> str:
    return output(["/bin/sh", "-c", "echo $(id -u) $(id -G); cat /proc/self/uid_map"], sys)


@needs_root
@pytest.mark.parametrize(("sys", "field"), [
    (SysProcAttr(credential=Credential(LyingInt(2**32), 65534)), "SysProcAttr.credential.uid"),
    (SysProcAttr(credential=Credential(65534, 65534, [LyingInt(2**32 + 4)])),
     "SysProcAttr.credential.groups[0]"),
    (SysProcAttr(ambient_caps=[LyingInt(-1)]), "SysProcAttr.ambient_caps[0]"),
    (SysProcAttr(ambient_caps=[LyingInt(6137)]), "SysProcAttr.ambient_caps[0]"),
    (SysProcAttr(cloneflags=CLONE_NEWUSER, uid_mappings=[SysProcIDMap(0, LyingInt(2**33), 1)]),
     "SysProcAttr.uid_mappings[0].host_id"),
    (SysProcAttr(pdeathsig=LyingInt(99)), "SysProcAttr.pdeathsig"),
], ids=["uid", "group", "cap-negative", "cap-huge", "map", "pdeathsig"])
def test_an_int_subclass_is_checked_as_its_value(sys: SysProcAttr, field: str) -> None:
    """Its comparisons said it was in range: 2**32 then ran as uid 0 (setuid truncates), a capability
    of -1 was a Python error naming nothing."""
    before = snapshot()
    with pytest.raises(ValueError, match="^" + re.escape(f"{field}: must be between")):
        fork_exec("/bin/true", ["true"], ProcAttr(sys=sys))
    assert_unchanged(before)


@needs_root
def test_the_steps_use_the_values_checked() -> None:
    """Groups checked as [65534] were set as [0]; a map checked as 0 -> 70000 was written as the
    whole id range by its __format__. Each runs as what was checked, from a prepared spawn too."""
    groups = SysProcAttr(credential=Credential(65534, 65534, FlipList([65534], [0])))
    assert _ids(groups).splitlines()[0] == "65534 65534"
    mapped = SysProcAttr(cloneflags=CLONE_NEWUSER, uid_mappings=[SysProcIDMap(FormattedInt(0), 70000, 1)])
    assert _ids(mapped).splitlines()[1:] == ["         0      70000          1"]
    flipped = SysProcAttr(cloneflags=CLONE_NEWUSER, uid_mappings=FlipList([SysProcIDMap(0, 70000, 1)],
                                                                          [SysProcIDMap(0, 0, 65536)]))
    assert _ids(flipped).splitlines()[1:] == ["         0      70000          1"]
    prepared = prepare("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(
        credential=Credential(65534, 65534, FlipList([65534], [0])))))
    pid = prepared.fork_exec()
    assert os.waitpid(pid, 0)[1] == 0


def _clone_fs_refused(which: str, path: object) -> str:
    before = os.getcwd(), os.stat("/").st_ino
    attr = ProcAttr(dir=path) if which == "dir" else ProcAttr()
    if which == "chroot":
        attr.sys = SysProcAttr(cloneflags=CLONE_FS, chroot=path)
    else:
        attr.sys = SysProcAttr(cloneflags=CLONE_FS)
    try:
        fork_exec("/bin/true", ["true"], attr)
    except ValueError as e:
        outcome = str(e)
    else:
        outcome = "ran"
    assert (os.getcwd(), os.stat("/").st_ino) == before, "the caller's working directory or root moved"
    return outcome


@pytest.mark.parametrize("uid", [0, 65534], ids=["root", "nobody"])
@pytest.mark.parametrize(("which", "path"), [("dir", EmptyLooking("/tmp")), ("dir", FalsePath("/tmp")),
                                             ("chroot", FalsePath("/"))],
                         ids=["str-len-0", "pathlike", "chroot"])
def test_clone_fs_is_judged_on_the_path_the_step_uses(uid: int, which: str, path: object) -> None:
    """A dir or chroot that tested false passed the CLONE_FS rule, and the child then moved the
    caller's own working directory (or root: the whole process was chrooted)."""
    if uid and os.geteuid():
        pytest.skip("uid 65534 is run from root")
    if which == "chroot" and uid:
        pytest.skip("chroot needs CAP_SYS_CHROOT")
    outcome = run_in_fork(_clone_fs_refused, which, path, uid=uid or None)  # (a move would be the fork's)
    assert outcome.startswith("SysProcAttr.cloneflags: CLONE_FS with ProcAttr.dir or chroot"), outcome


class OnceList(list):
    """Iterates as itself once, as empty afterwards."""

    reads = 0

    def __iter__(self) -> Any:
        self.reads += 1
        return list.__iter__(self) if self.reads == 1 else iter(())


class NoBind(int):
    """Mount flags whose ``&`` hides MS_BIND from the checks (the kernel gets the real bits)."""

    def __and__(self, other: object) -> int:
        return 0 if other == 4096 else int(self) & int(other)  # type: ignore[call-overload]

    __rand__ = __and__


class MinusOne(int):
    """Says it equals -1 (RLIM_INFINITY's spelling) whatever it holds."""

    def __eq__(self, other: object) -> bool:
        return other == -1 or int(self) == other

    __hash__ = int.__hash__


@needs_root
def test_extension_values_are_read_once_as_what_they_hold(tmp_path: Any) -> None:
    """A Landlock paths list read twice (its rules gone the second time) ran the program without the
    policy, in strict mode too; mount flags whose & hid MS_BIND let an optional bind over a bind of /
    pass; an rlimit equal to -1 by its __eq__ became unlimited."""
    from pyforkexec import Landlock, LandlockPath, Mount, Rlimit
    from pyforkexec.flags import CLONE_NEWNS

    secret = tmp_path / "secret"
    secret.write_text("secret\n")
    os.chmod(tmp_path, 0o755)
    policy = Landlock(paths=OnceList([LandlockPath("/usr", ["read", "execute"])]), mode="strict")
    out = output(["/bin/sh", "-c", f"/usr/bin/cat {secret} 2>&1 || true"], SysProcAttr(landlock=policy))
    assert "Permission denied" in out, out
    root = tmp_path / "root"
    root.mkdir()
    mounts = [Mount("/", "/", None, NoBind(0x1000 | 0x4000)),
              Mount.bind("/nonexistent-pfe", str(secret), optional=True, mkdir=False)]
    with pytest.raises(ValueError, match=re.escape("SysProcAttr.mounts[1].optional: its target is in the")):
        fork_exec("/bin/true", ["true"],
                  ProcAttr(sys=SysProcAttr(cloneflags=CLONE_NEWNS, pivot_root=str(root), mounts=mounts)))
    lying = SysProcAttr(rlimits=[Rlimit("fsize", MinusOne(1 << 20), MinusOne(1 << 20))])
    plain = SysProcAttr(rlimits=[Rlimit("fsize", 1 << 20, 1 << 20)])
    shown = output(["/bin/sh", "-c", "ulimit -f"], lying).strip()
    assert shown == output(["/bin/sh", "-c", "ulimit -f"], plain).strip() and shown != "unlimited"


# Each of the classes below lies in one way only; plain() (pyforkexec/plain.py) takes the value it holds
# by the builtin's own method, and every check and step then reads that copy.
class FalsyBytes(bytes):
    def __bool__(self) -> bool:
        return False


class AlsoTmpfs(bytes):
    """An overlay that says it equals tmpfs too (an optional bind's tmpfs rule compares fstypes)."""

    def __eq__(self, other: object) -> bool:
        return other == b"tmpfs" or bytes(self) == other

    __hash__ = bytes.__hash__


class NeverDiffers(list):
    """A list that says it is not different from anything (``mounts != ()``)."""

    def __ne__(self, other: object) -> bool:
        return False


class HashesAs(str):
    """Equal to its text, hashed (a dict key) as another string."""

    def __new__(cls, text: str, hashed: str) -> HashesAs:
        made = super().__new__(cls, text)
        made.hashed = hashed
        return made

    def __eq__(self, other: object) -> bool:
        return str.__eq__(self, other)

    def __hash__(self) -> int:
        return hash(self.hashed)


class EncodesAs(str):
    """A limit whose text is checked and whose encode() says something else."""

    def encode(self, *args: object) -> bytes:  # type: ignore[override]
        return b"max"


class Flip:
    """A sequence read as ``first`` once and as ``then`` after (a scan, then the parse)."""

    def __init__(self, first: list, then: list):
        self.first, self.then, self.reads = first, then, 0

    def __len__(self) -> int:
        return len(self.first)

    def __getitem__(self, i: int) -> object:
        items = self.first if self.reads < len(self.first) else self.then
        self.reads += 1
        return items[i]


collections_abc_sequence = __import__("collections.abc").abc.Sequence
collections_abc_sequence.register(Flip)


def _hostname() -> str:
    with open("/etc/hostname") as f:
        return f.read().strip()


def _cat(path: str, sys: SysProcAttr) -> str:
    return output(["/bin/sh", "-c", f"cat {path} 2>&1 || true"], sys)


def _minimal_root(tmp_path: Any) -> tuple[str, list]:
    """An empty root with a tmpfs over it and the host's programs and libraries bound read-only."""
    from pyforkexec import Mount

    root = tmp_path / "root"
    root.mkdir()
    dirs = [d for d in ("/usr", "/bin", "/lib", "/lib64") if os.path.exists(d)]  # (symlinks: bound as such)
    return str(root), [Mount.tmpfs("/", mkdir=False)] + [Mount.bind(d, d, readonly=True) for d in dirs]


@needs_root
def test_a_chroot_of_the_callers_bytes_that_tests_false_holds(tmp_path: Any) -> None:
    """A bytes chroot that tested false ran the program in the host's root."""
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(OSError, match=r"\(at execve\)"):  # /bin/ls is not in the empty root
        fork_exec("/bin/ls", ["ls", "/"], ProcAttr(env=[], dir="/", sys=SysProcAttr(
            chroot=FalsyBytes(os.fsencode(empty)))))


@needs_root
def test_values_compared_by_their_own_operators_cannot_pass_a_rule(tmp_path: Any) -> None:
    """An overlay that said it equalled tmpfs let an optional bind be left out over the host's /etc;
    rlimits and mounts in a list whose != said "equal" were dropped whole."""
    from pyforkexec import Mount, Rlimit
    from pyforkexec.flags import CLONE_NEWNS

    root, mounts = _minimal_root(tmp_path)
    upper, work = tmp_path / "upper", tmp_path / "work"
    upper.mkdir()
    work.mkdir()
    overlay = Mount("overlay", "/etc", AlsoTmpfs(b"overlay"), [],
                    f"lowerdir=/etc,upperdir={upper},workdir={work}")
    hide = Mount.bind("/nonexistent-pfe", "/etc/hostname", optional=True)
    with pytest.raises(ValueError, match=re.escape("optional: its target is in the overlay mount")):
        fork_exec("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(
            cloneflags=CLONE_NEWNS, chroot=root, mounts=[*mounts, overlay, hide])))
    limited = SysProcAttr(rlimits=NeverDiffers([Rlimit("nofile", 7, 7)]))
    assert output(["/bin/sh", "-c", "ulimit -n"], limited).strip() == "7"
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("host secret\n")
    hidden = SysProcAttr(unshareflags=CLONE_NEWNS, mounts=NeverDiffers([Mount.tmpfs(str(secret))]))
    assert "host secret" not in _cat(f"{secret}/key", hidden)


@needs_root
def test_mount_flags_and_records_are_read_once(tmp_path: Any) -> None:
    """Flags read as private by the optional-bind scan and as shared by the parse; a Mount whose
    ``optional`` answered True to one check and False to another: each left an optional bind out
    where the host's /etc showed."""
    from pyforkexec import Mount
    from pyforkexec.flags import CLONE_NEWNS

    root, mounts = _minimal_root(tmp_path)
    (tmp_path / "x").mkdir()
    shared = [Mount.tmpfs("/x"), Mount(None, "/x", None, Flip(["private"], ["shared"])),
              Mount(str(tmp_path / "x"), "/y", None, "bind", mkdir=True),
              Mount("/etc", "/y/etc", None, "bind", mkdir=True),
              Mount.bind("/nonexistent-pfe", "/x/etc/hostname", optional=True)]
    attr = SysProcAttr(cloneflags=CLONE_NEWNS, chroot=root, mounts=[*mounts, *shared])
    try:
        shown = _cat("/x/etc/hostname", attr)
    except ValueError as e:
        shown = str(e)
    assert _hostname() not in shown.split(), shown

    class Answers(Mount):
        reads = 0

        def __getattribute__(self, name: str) -> Any:
            if name == "optional":
                type(self).reads += 1
                return type(self).reads % 2 == 1
            return object.__getattribute__(self, name)

    hide = Answers("/nonexistent-pfe", "/etc/hostname", None, "bind", None, False, None, True)
    attr = SysProcAttr(cloneflags=CLONE_NEWNS, chroot=root,
                       mounts=[*mounts, Mount.bind("/etc", "/etc", readonly=True), hide])
    try:
        shown = _cat("/etc/hostname", attr)
    except (ValueError, OSError) as e:
        shown = str(e)
    assert _hostname() not in shown.split(), shown


@needs_root
def test_choices_and_limits_are_the_text_checked(tmp_path: Any) -> None:
    """A propagation equal to 'private' and hashed as 'shared' made the child's mounts the host's; a
    seccomp default equal to 'errno' and hashed as 'allow' allowed every call; a memory limit checked
    as its text was written by its own encode()."""
    from pyforkexec import SeccompFilter
    from pyforkexec.flags import CLONE_NEWNS
    from pyforkexec.plain import plain
    from pyforkexec.sandbox.cgroup import Cgroup

    probe = tmp_path / "probe"
    probe.mkdir()
    attr = SysProcAttr(cloneflags=CLONE_NEWNS, mount_propagation=HashesAs("private", "shared"))
    shared_root = "grep -c ' / / .*shared' /proc/self/mountinfo || echo private"
    assert "private" in output(["/bin/sh", "-c", shared_root], attr)
    denied = SysProcAttr(seccomp=SeccompFilter(default_action=HashesAs("errno", "allow"),
                                               allow=["execve", "exit_group", "brk", "mmap", "munmap",
                                                      "arch_prctl", "access", "openat", "read", "close",
                                                      "fstat", "newfstatat", "mprotect", "pread64",
                                                      "set_tid_address", "set_robust_list", "rseq",
                                                      "prlimit64", "getrandom", "write", "exit"]))
    made = tmp_path / "made"
    assert "Operation not permitted" in capture(["/bin/mkdir", str(made)], denied).out
    assert not made.exists()
    # (this host's cgroup v2 may lack the memory controller: what the spawn would write is read here)
    limit = plain(Cgroup("pfe-x", memory_max=EncodesAs("1048576"))).memory_max
    assert type(limit) is str and limit.encode() == b"1048576"


class _SubInt(int):
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = int.__hash__


class _SubStr(str):
    def __str__(self) -> str:
        return "lie"

    def encode(self, *args: object) -> bytes:  # type: ignore[override]
        return b"lie"


class _SubBytes(bytes):
    def __bool__(self) -> bool:
        return False


class _SubFloat(float):
    def __float__(self) -> float:
        return -1.0


class _SubList(list):
    def __iter__(self) -> Any:
        return iter(())


_WRAP = {int: _SubInt, str: _SubStr, bytes: _SubBytes, float: _SubFloat}


def _exact(value: object) -> object:
    """``value`` as the builtin types' own methods read it (the reference plain() must agree with)."""
    if isinstance(value, list):
        return tuple(_exact(v) for v in list.__iter__(value))  # a list subclass: what it holds
    if isinstance(value, tuple):
        return tuple(_exact(v) for v in value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int.__add__(value, 0)
    if isinstance(value, float):
        return float.__add__(value, 0.0)
    if isinstance(value, str):
        return "".join([value])
    if isinstance(value, bytes):
        return b"".join([value])
    return value


def _all_exact(value: object) -> bool:
    if type(value) in (list, tuple):
        return all(_all_exact(v) for v in value)  # type: ignore[attr-defined]
    return type(value) in (int, bool, str, bytes, float, type(None))


_ATOM_VALUES = st.one_of(st.integers(-2**40, 2**40), st.text(max_size=5), st.binary(max_size=5),
                        st.floats(allow_nan=False), st.booleans(), st.none())
_PLAIN_VALUES = st.recursive(_ATOM_VALUES, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                                  st.tuples(inner, inner)), max_leaves=12)


def _disguised(value: object, rng: Any) -> object:
    """``value`` with some of its atoms and lists made of the lying subclasses above."""
    if isinstance(value, (list, tuple)):
        items = [_disguised(v, rng) for v in value]
        return rng.choice([list, tuple, _SubList])(items)
    wrap = _WRAP.get(type(value))
    return wrap(value) if wrap is not None and rng.random() < 0.5 else value


@settings(max_examples=300, deadline=None)
@given(_PLAIN_VALUES, st.randoms(use_true_random=False))
def test_plain_takes_what_a_value_holds_by_the_builtins_own_methods(given_value: object, rng: Any) -> None:
    """Whatever a subclass says of itself, plain() gives builtin values equal to what it holds, and a
    value that is plain already is given back as it is (nothing copied)."""
    from pyforkexec.plain import plain

    value = _disguised(given_value, rng) if rng.random() < 0.8 else given_value
    made = plain(value)
    assert _all_exact(made) and _exact(made) == _exact(value)
    if _all_exact(value):
        assert made is value


class FailsOnce:
    """A path whose first ``__fspath__`` fails and whose later ones give each of ``paths`` in turn."""

    def __init__(self, *paths: str):
        self.paths, self.calls = list(paths), 0

    def __fspath__(self) -> str:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("not yet")
        return self.paths[min(self.calls - 2, len(self.paths) - 1)]


def test_a_path_that_cannot_be_read_once_is_refused_naming_its_field() -> None:
    """Kept as given after its first __fspath__ failed, a mount target was checked as one path (the
    optional bind's rule) and mounted as another: the host's file showed."""
    from pyforkexec import Mount
    from pyforkexec.flags import CLONE_NEWNS

    mounts = [Mount.tmpfs("/", mkdir=False),
              Mount.bind("/nonexistent-pfe", FailsOnce("/etc/hostname", "/tmp/x"), optional=True)]
    before = snapshot()
    with pytest.raises(TypeError, match=re.escape("SysProcAttr.mounts[1].target: FailsOnce.__fspath__() "
                                                  "failed (RuntimeError: not yet)")):
        fork_exec("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(cloneflags=CLONE_NEWNS, chroot="/tmp",
                                                                  mounts=mounts)))
    with pytest.raises(TypeError, match=r"^ProcAttr\.dir: FailsOnce\.__fspath__\(\) failed"):
        fork_exec("/bin/true", ["true"], ProcAttr(dir=FailsOnce("/")))
    assert_unchanged(before)


class SlowFloat(float):
    """A timeout whose own arithmetic adds a hundred times its value (a deadline computed with it)."""

    def __radd__(self, other: object) -> float:
        return float(other) + 100 * float(self)  # type: ignore[arg-type]


def test_run_and_process_read_their_arguments_once() -> None:
    """run() checked sys.ptrace on the caller's object and spawned from it again (a ptrace that read
    False, then True, left the child stopped at execve and run() waiting for ever); Process.wait's
    deadline was computed by the timeout's own arithmetic; Process(pid) took 0 or -1, a process
    group or every process to kill."""
    import time

    from pyforkexec import Process, TimeoutExpired, run, start_process

    class Flips(SysProcAttr):
        reads = 0

        def __getattribute__(self, name: str) -> Any:
            if name == "ptrace":
                type(self).reads += 1
                return type(self).reads > 1
            return object.__getattribute__(self, name)

    done = run(["/bin/true"], sys=Flips(), timeout=10)
    assert done.returncode == 0 and Flips.reads == 1
    proc = start_process("/bin/sleep", ["sleep", "60"], ProcAttr())
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutExpired):
            proc.wait(timeout=SlowFloat(0.3))
        # 0.3 s asked, 30.3 s by the subclass's arithmetic: the bound between them is far from both, so
        # that a loaded machine's slow wake-up is not taken for the wrong deadline (2 s of 3.3 were)
        assert time.monotonic() - started < 15
    finally:
        proc.kill()
        proc.wait()
    for pid in (0, -1, True):
        with pytest.raises((ValueError, TypeError), match=r"^pid: "):
            Process(pid)

