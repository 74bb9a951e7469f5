"""SysProcAttr.sync: a parent-side callable run with the child's pid once the child is set up."""

from __future__ import annotations

import errno
import os
import sys as pysys
from pathlib import Path

import pytest
from helpers.ext import userns
from helpers.marks import needs_root
from helpers.procs import capture, children, fd_count, output

from pyforkexec import CLONE_NEWNS, CLONE_NEWUTS, ChildError, ErrorLocation, ProcAttr, SysProcAttr, fork_exec
from pyforkexec.sandbox.mounts import Mount

pytestmark = needs_root


def test_runs_with_the_set_up_child_before_exec(tmp_path: Path) -> None:
    note, seen = tmp_path / "note", {}

    def sync(pid: int) -> None:
        seen["exe"] = os.readlink(f"/proc/{pid}/exe")  # not exec'd yet: still this interpreter
        seen["uts"] = os.readlink(f"/proc/{pid}/ns/uts")
        seen["pid"] = pid
        note.write_text("written by sync\n")

    res = capture(["/usr/bin/cat", str(note)], SysProcAttr(cloneflags=CLONE_NEWUTS, hostname="s", sync=sync))
    assert (res.returncode, res.out) == (0, "written by sync\n")
    assert seen["pid"] == res.pid
    assert os.path.realpath(seen["exe"]) == os.path.realpath(pysys.executable)
    assert seen["uts"] != os.readlink("/proc/self/ns/uts")


def test_with_the_id_map_handshake() -> None:
    pids = []
    assert output(["/usr/bin/id", "-u"], userns(sync=pids.append)) == "0\n"
    assert len(pids) == 1


def test_a_raising_callable_kills_the_child(tmp_path: Path) -> None:
    fds, kids = fd_count(), children()

    def sync(pid: int) -> None:
        raise ValueError("not today")

    with pytest.raises(ChildError) as info:
        fork_exec("/usr/bin/touch", ["touch", str(tmp_path / "ran")], ProcAttr(sys=SysProcAttr(sync=sync)))
    e = info.value
    assert (e.errno, e.location, e.index) == (errno.ECANCELED, ErrorLocation.SYNC_READ, 0)
    assert isinstance(e.__cause__, ValueError)
    assert str(e) == "fork/exec /usr/bin/touch: operation canceled (at sync_read)"
    assert not (tmp_path / "ran").exists()
    assert (fd_count(), children()) == (fds, kids)


def test_base_exceptions_propagate_as_they_are(tmp_path: Path) -> None:
    fds, kids = fd_count(), children()

    def sync(pid: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fork_exec("/usr/bin/touch", ["touch", str(tmp_path / "ran")], ProcAttr(sys=SysProcAttr(sync=sync)))
    assert not (tmp_path / "ran").exists()
    assert (fd_count(), children()) == (fds, kids)


def test_not_called_when_the_child_fails_first(tmp_path: Path) -> None:
    called = []
    sys = SysProcAttr(cloneflags=CLONE_NEWNS, mounts=[Mount.tmpfs(str(tmp_path / "missing"), mkdir=False)],
                      sync=called.append)
    with pytest.raises(ChildError) as info:
        fork_exec("/bin/true", ["true"], ProcAttr(sys=sys))
    assert (info.value.errno, info.value.location, called) == (errno.ENOENT, ErrorLocation.MOUNT, [])
