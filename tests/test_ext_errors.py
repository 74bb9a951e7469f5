"""Every extension step's failure that can be provoked from outside, with its errno, location and index.

Each case asserts what test_child_errors.expect does: errno, location, index, filename, the str()
format, no zombie, no leaked fd. Extension locations that cannot be reached from outside, and why:
- SETHOSTNAME, SETDOMAINNAME: validation requires a new UTS namespace, in which the child always has
  CAP_SYS_ADMIN (its own user namespace gives it too), and checks the length.
- UMOUNT_OLDROOT: right after a successful pivot_root(".", "."), "." is the old root's mount.
- NO_NEW_PRIVS: prctl(PR_SET_NO_NEW_PRIVS, 1) cannot fail.
- SECCOMP: validation bounds the program; without CAP_SYS_ADMIN the step sets no_new_privs and retries.
- MOUNT_ROOT (mount_propagation): as Go's step, see test_child_errors.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers.ext import SANDBOX_NS, kernel_has_mount_setattr, new_root
from helpers.forked import run_in_fork
from helpers.marks import needs_root
from helpers.procs import namespace_holder
from test_child_errors import (
    SECBIT_NO_CAP_AMBIENT_RAISE,
    expect,
    provoke,
    unused_fd,
    with_securebits,
)

from pyforkexec import CLONE_NEWNS, ErrorLocation, SetNS, SysProcAttr
from pyforkexec.sandbox.caps import Capabilities
from pyforkexec.sandbox.mounts import Mount
from pyforkexec.sandbox.rlimits import Rlimit

pytestmark = needs_root
L = ErrorLocation
NET_BIND, NET_RAW = 10, 13


def test_setns_ebadf_closed_fd_names_the_entry(elsewhere: Callable[[str], str]) -> None:
    sys = SysProcAttr(setns=[SetNS(elsewhere("uts")), SetNS(unused_fd())])
    expect(provoke(sys), errno.EBADF, L.SETNS, 1)


def test_mount_enoent_missing_target_without_mkdir(tmp_path: Path) -> None:
    mounts = [Mount.tmpfs(str(tmp_path / "a")), Mount.tmpfs(str(tmp_path / "missing"), mkdir=False)]
    expect(provoke(SysProcAttr(cloneflags=CLONE_NEWNS, mounts=mounts)), errno.ENOENT, L.MOUNT, 1)


def test_mount_enodev_unknown_filesystem(tmp_path: Path) -> None:
    mounts = [Mount("x", str(tmp_path), "no-such-fs")]
    expect(provoke(SysProcAttr(cloneflags=CLONE_NEWNS, mounts=mounts)), errno.ENODEV, L.MOUNT, 0)


def test_mkdir_erofs_under_a_read_only_mount(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    # tmp_path has no submounts: before 5.12 (no mount_setattr) a non-recursive bind, since a recursive
    # read-only one refuses there.
    bind = Mount.bind(str(tmp_path), str(ro), readonly=True, recursive=kernel_has_mount_setattr())
    mounts = [bind, Mount.tmpfs(str(ro / "new" / "sub"))]
    expect(provoke(SysProcAttr(cloneflags=CLONE_NEWNS, mounts=mounts)), errno.EROFS, L.MKDIR, 1)


@contextlib.contextmanager
def a_plain_dir_elsewhere(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A mount namespace held by a sleeping process, with a tmpfs at tmp_path/t and in it the plain
    directory tmp_path/t/plain (a directory, no mount point); yields (that namespace's file, the
    directory). Joined, it is a new root the parent cannot look at before the join (validate's
    mount-point check is not made then), so the child's own step meets it: the way to reach the
    kernel's refusals of a new root that is no mount point, which are refused before any process
    otherwise (test_ext_mounts)."""
    where = tmp_path / "t"
    mounts = [Mount.tmpfs(str(where)), Mount.tmpfs(str(where / "plain" / "below"), mkdir=True)]
    with namespace_holder(SysProcAttr(cloneflags=CLONE_NEWNS, mounts=mounts)) as path:
        yield path("mnt"), str(where / "plain")


def test_pivot_root_einval_not_a_mount_point(tmp_path: Path) -> None:
    with a_plain_dir_elsewhere(tmp_path) as (mnt, plain):
        # index 1: the pivot_root call itself (index 0 is the chdir into the new root)
        # (unshareflags: a new mount namespace inside the joined one, a copy this test may pivot in)
        sys = SysProcAttr(unshareflags=CLONE_NEWNS, setns=[SetNS(mnt)], pivot_root=plain)
        expect(provoke(sys), errno.EINVAL, L.PIVOT_ROOT, 1)


def test_pivot_root_enoent_missing_directory(tmp_path: Path) -> None:
    sys = SysProcAttr(cloneflags=CLONE_NEWNS, pivot_root=str(tmp_path / "missing"))
    expect(provoke(sys), errno.ENOENT, L.PIVOT_ROOT, 0)


def test_remount_ro_einval_chroot_not_a_mount_point(tmp_path: Path) -> None:
    with a_plain_dir_elsewhere(tmp_path) as (mnt, plain):
        sys = SysProcAttr(unshareflags=CLONE_NEWNS, setns=[SetNS(mnt)], chroot=plain, readonly_root=True)
        expect(provoke(sys), errno.EINVAL, L.REMOUNT_RO)


def test_prlimit_eperm_raising_a_hard_limit_unprivileged(unprivileged: Callable[..., Any]) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    with open("/proc/sys/fs/nr_open") as f:
        if hard >= int(f.read()):
            pytest.skip("the hard RLIMIT_NOFILE is already at its maximum")
    sys = SysProcAttr(rlimits=[Rlimit("core", 0, 0), Rlimit("nofile", 64, hard + 1)])
    expect(unprivileged(provoke, sys), errno.EPERM, L.PRLIMIT, 1)


def test_capbset_drop_eperm_without_cap_setpcap(unprivileged: Callable[..., Any]) -> None:
    expect(unprivileged(provoke, SysProcAttr(capabilities=Capabilities())), errno.EPERM, L.CAPBSET_DROP, 0)


def test_capset_eperm_ambient_not_permitted(unprivileged: Callable[..., Any]) -> None:
    caps = Capabilities(drop_all_others=False, ambient=["CAP_NET_BIND_SERVICE"])
    expect(unprivileged(provoke, SysProcAttr(capabilities=caps)), errno.EPERM, L.CAPSET)


def test_cap_ambient_eperm_when_raising_is_forbidden() -> None:
    caps = Capabilities(keep=[NET_BIND, NET_RAW], ambient=[NET_RAW, NET_BIND])
    failure = run_in_fork(with_securebits, SECBIT_NO_CAP_AMBIENT_RAISE, SysProcAttr(capabilities=caps))
    expect(failure, errno.EPERM, L.CAP_AMBIENT, NET_BIND)  # raised in number order


def test_execveat_eacces_not_executable(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a program\n")
    fd = os.open(tmp_path / "data", os.O_RDONLY | os.O_CLOEXEC)
    try:
        expect(provoke(SysProcAttr(exec_fd=fd)), errno.EACCES, L.EXECVEAT)
    finally:
        os.close(fd)


def test_execve_enoent_inside_the_new_root(tmp_path: Path) -> None:
    sys = SysProcAttr(cloneflags=SANDBOX_NS, mounts=new_root(), pivot_root=str(tmp_path))
    expect(provoke(sys, "/nonexistent"), errno.ENOENT, L.EXECVE, argv0="/nonexistent")


def test_readme_lists_every_location_in_order() -> None:
    text = (Path(__file__).parent.parent / "README.md").read_text()
    rows = [line.split("`")[1] for line in text.splitlines() if line.startswith("| `") and "` | `" in line]
    names = [n for n in rows if n in L.__members__]
    assert names == [loc.name for loc in sorted(L)]
