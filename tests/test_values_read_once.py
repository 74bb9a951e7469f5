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
from helpers.procs import output

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
    mounts = [Mount("/", "/", "none", NoBind(0x1000 | 0x4000)),
              Mount.bind("/nonexistent-pfe", str(secret), optional=True, mkdir=False)]
    with pytest.raises(ValueError, match=re.escape("SysProcAttr.mounts[1].optional: its target is in the")):
        fork_exec("/bin/true", ["true"],
                  ProcAttr(sys=SysProcAttr(cloneflags=CLONE_NEWNS, pivot_root=str(root), mounts=mounts)))
    lying = SysProcAttr(rlimits=[Rlimit("fsize", MinusOne(1 << 20), MinusOne(1 << 20))])
    plain = SysProcAttr(rlimits=[Rlimit("fsize", 1 << 20, 1 << 20)])
    shown = output(["/bin/sh", "-c", "ulimit -f"], lying).strip()
    assert shown == output(["/bin/sh", "-c", "ulimit -f"], plain).strip() and shown != "unlimited"
