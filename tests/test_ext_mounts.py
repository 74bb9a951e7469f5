"""SysProcAttr.mounts, mount_propagation, pivot_root and readonly_root, seen from inside the child."""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import subprocess
from collections import Counter
from pathlib import Path
from sys import executable as PYTHON
from typing import Any, Callable

import pytest
from helpers import sysutil
from helpers.ext import (
    HOST_DIRS,
    SANDBOX_NS,
    by_target,
    install_seccomp,
    kernel_has_mount_setattr,
    new_root,
    parse_mountinfo,
    userns,
)
from helpers.forked import NOBODY, run_in_fork
from helpers.forked import _drop_privileges as drop_privileges
from helpers.marks import needs_root
from helpers.procs import capture, children, output

import pyforkexec as fe
from pyforkexec import CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, ChildError, ErrorLocation, SysProcAttr
from pyforkexec.sandbox.caps import Capabilities
from pyforkexec.sandbox.mount_table import found_in_root
from pyforkexec.sandbox.mounts import (
    DEV_NODES,
    MS_BIND,
    MS_MOVE,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_SHARED,
    Mount,
    minimal_dev,
    parse_mount_flags,
)
from pyforkexec.sandbox.seccomp import SeccompFilter, check_seccomp

pytestmark = needs_root
CAT = "/usr/bin/cat"
NO_CAPS = Capabilities()  # mounts of a new user namespace hold only when the program cannot undo them
SH = "/bin/sh"


DEV_ORDER = ["/dev", *(f"/dev/{n}" for n in DEV_NODES), "/dev/shm"]


def mountinfo(sys: SysProcAttr) -> dict[str, Any]:
    return by_target(output([CAT, "/proc/self/mountinfo"], sys))


# ---- flags ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [MS_BIND | MS_REC | MS_RDONLY, "MS_BIND|MS_REC|MS_RDONLY", "rbind,ro",
                                   ["bind", "MS_REC", "Rdonly"], ("ro", "rbind")])
def test_parse_mount_flags(value: object) -> None:
    assert parse_mount_flags(value) == MS_BIND | MS_REC | MS_RDONLY


def test_parse_mount_flags_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"^mounts\[0\]\.flags: unknown mount flag 'MS_BOUND'"):
        parse_mount_flags("MS_BOUND|MS_REC", "mounts[0].flags")
    with pytest.raises(TypeError, match=r"^flags\[1\]: must be an MS_\* name, not int"):
        parse_mount_flags(["bind", 4])


# ---- mounts, without a new root -----------------------------------------------------------------------


def test_mounts_are_made_in_order_and_only_in_the_child(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    mounts = [
        Mount.tmpfs(str(a), size="1m", mode=0o700),
        # mkdir creates b and b/usr. /usr has no submounts: before 5.12 (no mount_setattr) bind it
        # non-recursively, since a recursive read-only bind refuses there.
        Mount.bind("/usr", str(b / "usr"), readonly=True, recursive=kernel_has_mount_setattr()),
        Mount(None, str(a), None, "MS_REMOUNT|MS_RDONLY|MS_NOSUID|MS_NODEV", "size=2m"),
    ]
    table = mountinfo(SysProcAttr(cloneflags=CLONE_NEWNS, mounts=mounts))
    assert table[str(a)].fstype == "tmpfs"
    assert {"ro", "nosuid", "nodev"} <= table[str(a)].options
    assert table[str(b / "usr")].root == "/usr" and "ro" in table[str(b / "usr")].options
    assert (b / "usr").is_dir()  # created on the shared filesystem, before the mount
    host = by_target(Path("/proc/self/mountinfo").read_text())
    assert str(a) not in host and str(b / "usr") not in host


def test_readonly_recursive_bind_covers_submounts(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "sub").mkdir(parents=True)
    mounts = [Mount.tmpfs(str(src / "sub")), Mount.bind(str(src), str(dst), readonly=True)]
    sys = SysProcAttr(cloneflags=CLONE_NEWNS, mounts=mounts)
    if not kernel_has_mount_setattr():
        # Before 5.12 only the top mount could be made read-only: the bind refuses (fail closed).
        with pytest.raises(ChildError) as refused:
            mountinfo(sys)
        e = refused.value
        assert (e.errno, e.location, e.index, e.field) == \
            (errno.ENOSYS, ErrorLocation.MOUNT, 1, "sys.mounts[1]")
        return
    table = mountinfo(sys)
    assert "ro" in table[str(dst)].options and "ro" in table[str(dst / "sub")].options
    assert "rw" in table[str(src / "sub")].options  # the source stays writable


def test_non_recursive_bind_leaves_submounts_out(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "sub").mkdir(parents=True)
    mounts = [Mount.tmpfs(str(src / "sub")), Mount.bind(str(src), str(dst), recursive=False)]
    table = mountinfo(SysProcAttr(cloneflags=CLONE_NEWNS, mounts=mounts))
    assert str(dst) in table and str(dst / "sub") not in table


def test_bind_of_a_file_creates_a_file_target(tmp_path: Path) -> None:
    target = tmp_path / "x" / "null"
    sys = SysProcAttr(cloneflags=CLONE_NEWNS, mounts=[Mount.bind("/dev/null", str(target))])
    assert output([SH, "-c", f"test -c {target} && echo char device"], sys) == "char device\n"
    assert target.is_file() and target.stat().st_size == 0


def test_an_optional_bind_is_made_when_its_source_exists_and_left_out_when_not(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")  # mount(2) follows it: missing too
    sys = sandbox(root, Mount.bind("/usr", "/present", readonly=True, recursive=False, optional=True),
                  Mount.bind(str(tmp_path / "no-such-source"), "/missing", optional=True),
                  Mount.bind(str(tmp_path / "dangling"), "/via-link", optional=True))
    table = mountinfo(sys)
    assert table["/present"].root == "/usr" and "ro" in table["/present"].options
    assert "/missing" not in table and "/via-link" not in table
    listing = set(output(["/usr/bin/ls", "-A", "/"], sys).split())
    assert "present" in listing and not {"missing", "via-link"} & listing  # left out: no target made


def test_errors_name_a_mount_by_its_place_in_the_list_with_optional_binds_left_out(tmp_path: Path) -> None:
    base = len(new_root())
    sys = sandbox(tmp_path, Mount.bind(str(tmp_path / "no-such-source"), "/a", optional=True),
                  Mount.tmpfs("/b"),
                  Mount.bind(str(tmp_path / "no-such-source"), "/c"))  # not optional: refused
    with pytest.raises(ChildError) as failed:
        mountinfo(sys)
    e = failed.value
    where = base + 2
    assert (e.errno, e.location, e.index, e.field) == (errno.ENOENT, ErrorLocation.MOUNT, where,
                                                       f"sys.mounts[{where}]")


@pytest.mark.parametrize(("mount", "error", "message"), [
    (Mount("tmpfs", "/tmp/x", "tmpfs", 0, None, False, None, True), ValueError,
     "SysProcAttr.mounts[0].optional: only a bind mount can be optional"),
    (Mount("/usr", "/tmp/x", None, MS_BIND, None, False, None, "yes"), TypeError,
     "SysProcAttr.mounts[0].optional"),
    # without a new root, a bind left out would leave its target as the host has it: not hidden
    (Mount.bind("/nonexistent-pfe", "/tmp", readonly=True, optional=True), ValueError,
     "SysProcAttr.mounts[0].optional: needs a new root (pivot_root or chroot) that is not this host's /"),
])
def test_optional_is_a_bool_of_a_bind_mount(mount: Mount, error: type, message: str) -> None:
    before = children()
    with pytest.raises(error, match=re.escape(message)):
        capture(["/bin/true"], SysProcAttr(cloneflags=CLONE_NEWNS, mounts=[mount]))
    assert children() == before  # refused before any process existed


def test_an_optional_bind_under_a_root_that_shows_the_host_is_refused(tmp_path: Path) -> None:
    """A new root that an earlier mount makes the host's / again (a bind of /), or one seen through a
    joined mount namespace: a bind left out there left its target as the host has it (the program
    read the host's /etc/hostname); refused before any process exists."""
    root = tmp_path / "root"
    root.mkdir()
    hide = Mount.bind("/nonexistent-pfe", "/etc/hostname", optional=True)
    before = children()
    for first in (Mount.bind("/", "/"), Mount.bind("//", "/", recursive=False)):
        sys = SysProcAttr(cloneflags=CLONE_NEWNS, chroot=str(root), mounts=[first, hide])
        with pytest.raises(ValueError, match=re.escape("SysProcAttr.mounts[1].optional: its target is in the "
                                                       "bind mount of mounts[0] (/), not on an empty tmpfs")):
            capture(["/bin/true"], sys)
    own_mounts = fe.ProcAttr(sys=SysProcAttr(cloneflags=CLONE_NEWNS))
    holder = fe.start_process("/bin/sleep", ["sleep", "60"], own_mounts)
    try:
        for nstype in (0, CLONE_NEWNS):
            sys = SysProcAttr(setns=[fe.SetNS(f"/proc/{holder.pid}/ns/mnt", nstype)], chroot=str(root),
                              cloneflags=CLONE_NEWNS, mounts=[hide])
            with pytest.raises(ValueError, match=re.escape("SysProcAttr.mounts[0].optional: cannot be used "
                                                           "with a joined mount namespace")):
                capture(["/bin/true"], sys)
    finally:
        holder.kill()
        holder.wait()
    assert children() == before
    # A tmpfs over the root, then a bind of / elsewhere: the root is no longer the host's. (Before 5.12,
    # no mount_setattr, a recursive read-only bind fails closed: the binds are made non-recursive there.)
    ro = dict(readonly=True, recursive=kernel_has_mount_setattr())
    made = [Mount.tmpfs("/"), Mount.bind("/usr", "/usr", **ro), Mount.bind("/lib", "/lib", **ro),
            Mount.bind("/lib64", "/lib64", optional=True, **ro), hide, Mount.bind("/", "/host", **ro)]
    sys = SysProcAttr(cloneflags=CLONE_NEWNS, chroot=str(root), mounts=made)
    result = capture(["/usr/bin/true"], sys)
    assert result.returncode == 0, result


def test_bind_with_propagation_flags_applies_them_after(tmp_path: Path) -> None:
    target = tmp_path / "t"
    mounts = [Mount("/usr", str(target), None, MS_BIND | MS_NOSUID | (1 << 17), None, True)]  # unbindable
    entry = mountinfo(SysProcAttr(cloneflags=CLONE_NEWNS, mounts=mounts))[str(target)]
    assert "nosuid" in entry.options and "unbindable" in entry.tags


@pytest.mark.parametrize("flags", ["slave", "rprivate", MS_REC | (1 << 17)])
def test_a_new_mount_with_propagation_flags_only_is_made_then_given_them(tmp_path: Path, flags: Any) -> None:
    """A Mount with an fstype whose flags are a propagation type only (with MS_REC or not) was run as
    a change of the propagation of the mount already at its target: the tmpfs asked for was never
    made, and the program saw the host's directory. It is a new mount, its propagation set after."""
    target = tmp_path / "t"
    target.mkdir()
    (target / "host-file").write_text("host\n")
    mounts = [Mount("pfe-new", str(target), "tmpfs", flags, "size=1m")]
    sys = SysProcAttr(cloneflags=CLONE_NEWNS, mounts=mounts)
    entry = mountinfo(sys)[str(target)]
    assert entry.fstype == "tmpfs" and entry.source == "pfe-new"
    assert output(["/bin/ls", "-A", str(target)], sys) == ""
    if flags == MS_REC | (1 << 17):
        assert "unbindable" in entry.tags


@pytest.mark.parametrize(("mount", "message"), [
    (Mount("/usr", "/t", "ext4", "bind"), "mounts[0].fstype: a bind mount (MS_BIND) takes no fstype"),
    (Mount("/usr", "/t", None, "rbind,ro", "noexec"), "mounts[0].data: a bind mount (MS_BIND) takes no data"),
    (Mount("/usr", "/t", "tmpfs", "move"), "mounts[0].fstype: a move (MS_MOVE) takes no fstype"),
    (Mount("/usr", "/t", None, "move", "size=1m"), "mounts[0].data: a move (MS_MOVE) takes no data"),
    (Mount(None, "/t", None, "move"), "mounts[0].source: a move (MS_MOVE) needs the mount to move"),
    (Mount("/usr", "/t", None, "remount,bind,ro"), "mounts[0].source: a remount with MS_BIND (a change"),
    (Mount(None, "/t", "tmpfs", "remount,bind,ro"), "mounts[0].fstype: a remount with MS_BIND (a change"),
    (Mount(None, "/t", None, "remount,bind,ro", "size=1m"), "mounts[0].data: a remount with MS_BIND (a"),
    (Mount("/dev/sda", "/t", None, "remount,ro"), "mounts[0].source: a remount (MS_REMOUNT) takes no source"),
    (Mount(None, "/t", "tmpfs", "remount,ro"), "mounts[0].fstype: a remount (MS_REMOUNT) takes no fstype"),
    (Mount("x", "/t", None, "slave"), "mounts[0].source: a propagation change (flags of a propagation type"),
    (Mount(None, "/t", None, "rprivate", "size=1m"), "mounts[0].data: a propagation change (flags of a"),
    (Mount(None, "/t", None, "ro,slave"), "mounts[0].fstype: a new mount needs a filesystem type"),
])
def test_a_mount_field_the_kernel_ignores_is_refused(mount: Mount, message: str) -> None:
    """mount(2) ignores the fields the kind of call its flags make does not use (a bind's fstype and
    options, a move's, a remount's source): given, each would not hold, so it is refused naming it."""
    before = children()
    with pytest.raises(ValueError, match=re.escape(f"SysProcAttr.{message}")):
        capture(["/bin/true"], SysProcAttr(cloneflags=CLONE_NEWNS, mounts=[mount]))
    assert children() == before



WRITE = "import sys\nfor p in sys.argv[1:]:\n    try:\n        open(p, 'w').close(); print(p, 'written')\n" \
    "    except OSError as e:\n        print(p, e.errno)\n"


def test_a_recursive_remount_is_refused_as_the_kernel_remounts_one_mount(tmp_path: Path) -> None:
    """mount(2) ignores MS_REC with MS_REMOUNT: "remount,bind,rec,ro" made the bind's top read-only and
    left its submounts writable (fail-open). Refused, naming the flags; the bind's own flags cover them."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "pfe-h139-sub", str(src / "sub")], check=True)
    try:
        files = [str(dst / "f"), str(dst / "sub" / "f")]
        asked = SysProcAttr(cloneflags=CLONE_NEWNS, mounts=[
            Mount.bind(str(src), str(dst)), Mount(None, str(dst), flags="remount,bind,rec,ro")])
        before = children()
        refusal = "SysProcAttr.mounts[1].flags: MS_REC with MS_REMOUNT"
        with pytest.raises(ValueError, match=re.escape(refusal)):
            capture([PYTHON, "-c", WRITE, *files], asked)
        assert children() == before
        bound = SysProcAttr(cloneflags=CLONE_NEWNS, mounts=[Mount.bind(str(src), str(dst), readonly=True)])
        assert output([PYTHON, "-c", WRITE, *files], bound) == "".join(
            f"{f} {errno.EROFS}\n" for f in files)
    finally:
        subprocess.run(["umount", str(src / "sub")], check=True)


def test_a_remount_of_a_filesystem_the_host_sees_is_refused(tmp_path: Path) -> None:
    """A remount without MS_BIND changes the superblock, which the host's mount shares: "remount,ro" of
    a host tmpfs made it read-only on the host, and it stayed so after the program. Only a tmpfs or
    ramfs the list itself mounted at that target (nothing mounted over it since) may be remounted."""
    host = tmp_path / "host"
    host.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "pfe-h139-host", str(host)], check=True)
    try:
        for mounts in ([Mount(None, str(host), flags="remount,ro")],
                       [Mount(None, str(host), flags="remount", data="size=2m")],
                       [Mount.tmpfs(str(host)), Mount.bind("/usr", str(host), recursive=False),
                        Mount(None, str(host), flags="remount,ro")],
                       [Mount.tmpfs(str(host / "a")), Mount.bind(str(tmp_path), str(tmp_path)),
                        Mount(None, str(host / "a"), flags="remount,ro")],
                       [Mount("/usr", str(host), flags="bind"), Mount(None, str(host), flags="remount,ro")]):
            before = children()
            with pytest.raises(ValueError, match=re.escape(f"SysProcAttr.mounts[{len(mounts) - 1}].flags: "
                                                           "MS_REMOUNT without MS_BIND changes")):
                capture(["/bin/true"], SysProcAttr(cloneflags=CLONE_NEWNS, mounts=mounts))
            assert children() == before
            (host / "still-writable").write_text("yes\n")  # (EROFS on the host without the check)
        # the list's own tmpfs, remounted with a mount of another target in between
        own = [Mount.tmpfs(str(host)), Mount.tmpfs(str(tmp_path / "other")),
               Mount(None, str(host), flags="remount,ro")]
        code = f"import os; print(os.statvfs({str(host)!r}).f_flag & os.ST_RDONLY)"
        flags = output([PYTHON, "-c", code], SysProcAttr(cloneflags=CLONE_NEWNS, mounts=own))
        assert flags == f"{os.ST_RDONLY}\n"
        (host / "still-writable").write_text("yes\n")
    finally:
        subprocess.run(["umount", str(host)], check=True)



def test_a_new_root_that_is_no_mount_point_is_refused_before_any_process(tmp_path: Path) -> None:
    """pivot_root(2) (EBUSY) and a read-only chroot (mount_setattr: EINVAL) need a mount point: on a
    plain directory the spawn failed in the child, after ``exec --check`` had said OK. Refused first,
    naming the field; the same directory bound onto itself (a first mount at /) or a mount point runs."""
    root = tmp_path / "root"
    root.mkdir()
    host = [d for d in ("usr", "lib", "lib64", "bin") if os.path.isdir(f"/{d}")]
    binds = [Mount.bind(f"/{d}", f"/{d}", readonly=True) for d in host if not os.path.islink(f"/{d}")]

    def populate() -> None:  # merged /usr: /lib64 -> usr/lib64 (links), else bind targets (mkdir)
        for d in host:
            if os.path.islink(f"/{d}"):
                (root / d).symlink_to(os.readlink(f"/{d}"))

    populate()
    code = "import os; print(os.statvfs('/').f_flag & os.ST_RDONLY)"
    for field, kw in (("pivot_root", dict(pivot_root=str(root))),
                      ("readonly_root", dict(chroot=str(root), readonly_root=True))):
        before = children()
        with pytest.raises(ValueError, match=re.escape(f"SysProcAttr.{field}: {root} is a directory, not a "
                                                       f"mount point, and {field} needs one")):
            capture(["/bin/true"], SysProcAttr(cloneflags=CLONE_NEWNS, mounts=binds, **kw))
        assert children() == before
        on_itself = [Mount.bind(str(root), "/", recursive=False), *binds]
        ro = SysProcAttr(cloneflags=CLONE_NEWNS, mounts=on_itself, **dict(kw, readonly_root=True))
        got = output(["/usr/bin/python3", "-c", code], ro, dir="/")
        assert got == f"{os.ST_RDONLY}\n"
    subprocess.run(["mount", "-t", "tmpfs", "pfe-h139-root", str(root)], check=True)
    try:
        populate()
        mounted = SysProcAttr(cloneflags=CLONE_NEWNS, mounts=binds, chroot=str(root), readonly_root=True)
        got = output(["/usr/bin/python3", "-c", code], mounted, dir="/")
        assert got == f"{os.ST_RDONLY}\n"
    finally:
        subprocess.run(["umount", str(root)], check=True)


@pytest.mark.parametrize(("mount", "message"), [
    (Mount.tmpfs("/t", size=0), "size=0: tmpfs reads 0 as no limit"),
    (Mount.tmpfs("/t", size="0k"), "size=0k: tmpfs reads 0 as no limit"),
    (Mount.tmpfs("/t", size="0%"), "size=0%: tmpfs reads 0 as no limit"),
    (Mount("tmpfs", "/t", "tmpfs", 0, "size=1m,size=0"), "size=0: tmpfs reads 0 as no limit"),
    (Mount("tmpfs", "/t", "tmpfs", 0, "nr_inodes=0"), "nr_inodes=0: tmpfs reads 0 as no limit"),
    (Mount("tmpfs", "/t", "tmpfs", 0, "nr_blocks=0"), "nr_blocks=0: tmpfs reads 0 as no limit"),
    (Mount.tmpfs("/t", size=2**64 - 1), f"size={2**64 - 1}: beyond what the kernel counts"),
    (Mount.tmpfs("/t", size="16e"), "size=16e: beyond what the kernel counts"),
    (Mount.tmpfs("/t", size=f"{2**60}%"), f"size={2**60}%: beyond what the kernel counts"),
    (Mount("ramfs", "/t", "ramfs", 0, "size=1m"), "size=: ramfs takes mode= only and ignores the rest"),
    (Mount("ramfs", "/t", "ramfs", 0, "mode=700,nr_inodes=5"), "nr_inodes=: ramfs takes mode= only"),
])
def test_a_size_the_kernel_reads_as_no_limit_is_refused(mount: Mount, message: str) -> None:
    """tmpfs reads a size, nr_blocks or nr_inodes of 0 as no limit at all, and wraps one beyond 64 bits
    (size=16e and 2**64-1 bytes were no limit); ramfs ignores every option but mode= (size=1m: none).
    The program ran with no limit where one was asked (statfs: 0 blocks): refused, naming the data."""
    before = children()
    with pytest.raises(ValueError, match=re.escape(f"SysProcAttr.mounts[0].data: {message}")):
        capture(["/bin/true"], SysProcAttr(cloneflags=CLONE_NEWNS, mounts=[mount]))
    assert children() == before


def test_a_small_tmpfs_size_holds() -> None:
    """The smallest sizes still taken are applied (statfs from inside: 1 block of 4 KiB, 3 inodes)."""
    t = "/tmp"
    small = Mount("tmpfs", t, "tmpfs", 0, "size=1,nr_inodes=3")
    sys_attr = SysProcAttr(cloneflags=CLONE_NEWNS, mounts=[small])
    got = output([PYTHON, "-c", f"import os; s = os.statvfs({t!r}); print(s.f_blocks, s.f_files)"],
                 sys_attr)
    assert got == "1 3\n"


# ---- propagation ------------------------------------------------------------------------------------


def shared_root() -> None:
    """A / that is shared, as systemd leaves it, but only in this forked process's own mount namespace:
    cut off from the host first, so that a child's mounts cannot propagate out to it."""
    sysutil.unshare(CLONE_NEWNS)
    sysutil.mount(None, "/", None, sysutil.MS_REC | sysutil.MS_PRIVATE)
    sysutil.mount(None, "/", None, sysutil.MS_REC | sysutil.MS_SHARED)


def root_tags(propagation: str, mounts: list[Mount], private: str = "") -> frozenset[str]:
    shared_root()
    if private:  # a mount of the caller's that is not shared: a copy of it cannot carry a mount back
        sysutil.mount("tmpfs", private, "tmpfs", 0)
        sysutil.mount(None, private, None, sysutil.MS_PRIVATE)
    sys = SysProcAttr(cloneflags=CLONE_NEWNS, mounts=mounts, mount_propagation=propagation)
    return mountinfo(sys)["/"].tags


@pytest.mark.parametrize(("propagation", "tags"), [("private", set()), ("slave", {"master"}),
                                                   ("shared", {"shared"}), ("unchanged", {"shared"})])
def test_mount_propagation_of_a_new_mount_namespace(tmp_path: Path, propagation: str, tags: set[str]) -> None:
    # the caller's / is shared (as systemd leaves it); the child's / is what mount_propagation says
    # (the list's tmpfs is on a private mount of the caller's: shared could not carry it back)
    assert run_in_fork(root_tags, propagation, [Mount.tmpfs(str(tmp_path))], str(tmp_path)) == tags


def spawn_seen_from_caller(propagation: str, mounts: list[Mount], cloneflags: int = CLONE_NEWNS,
                           target_mount: str = "", **kw: Any) -> tuple[str, list[str]]:
    """In a forked process whose / is shared (and, with ``target_mount``, a shared tmpfs mounted there):
    spawn ``sh -c true`` with ``mounts`` and say what came of it, and which mounts the caller had more
    once it ended."""
    shared_root()
    if target_mount:
        sysutil.mount("tmpfs", target_mount, "tmpfs", 0)
    before = _mount_points()
    try:
        fe.run([SH, "-c", "true"], sys=SysProcAttr(cloneflags=cloneflags, mounts=mounts,
                                                 mount_propagation=propagation, **kw))
        outcome = "ran"
    except ValueError as e:
        outcome = f"ValueError: {e}"
    return outcome, sorted((_mount_points() - before).elements())


def _mount_points(pid: object = "self") -> Counter[str]:
    return Counter(m.target for m in parse_mountinfo(Path(f"/proc/{pid}/mountinfo").read_text()))


@pytest.mark.parametrize("propagation", ["shared", "unchanged"])
def test_a_mount_reaching_the_callers_shared_mount_is_refused(tmp_path: Path, propagation: str) -> None:
    # shared or unchanged keeps the new namespace's / a peer of the caller's shared /: the list's tmpfs
    # would be made on the caller's too and stay after the program (util-linux's unshare does that)
    mounts = [Mount.bind("/etc", "/etc", readonly=True), Mount.tmpfs(str(tmp_path))]
    outcome, left = run_in_fork(spawn_seen_from_caller, propagation, mounts)
    assert outcome == (f"ValueError: SysProcAttr.mount_propagation: '{propagation}' keeps the new mount "
                       "namespace's mounts peers of this process's shared ones, so mounts[0] would be made "
                       "at /etc on this host too, and stay after the program: give 'slave' (the program "
                       "still sees this host's new mounts) or 'private', or cut that mount off first in the "
                       "list (a propagation change Mount(None, TARGET, None, \"rprivate\"))")
    assert left == []


@pytest.mark.parametrize(("propagation", "first"), [("slave", None), ("private", None),
                                                    ("shared", "rprivate"), ("unchanged", "private")])
def test_mounts_that_cannot_reach_the_caller_run(tmp_path: Path, propagation: str, first: str | None) -> None:
    # slave and private cut the copies off; a propagation change of the list at the caller's mount
    # first (as util-linux does for --mount-proc) cuts that one off; and the caller keeps nothing
    cut = [] if first is None else [Mount(None, str(tmp_path), None, first)]
    assert run_in_fork(spawn_seen_from_caller, propagation, [*cut, Mount.tmpfs(str(tmp_path))],
                       target_mount=str(tmp_path)) == ("ran", [])


def test_a_new_user_namespace_makes_the_copies_slaves(tmp_path: Path) -> None:
    # a mount namespace owned by a new user namespace is less privileged: the kernel makes its copies of
    # shared mounts slaves, whatever mount_propagation says afterwards
    maps = [fe.SysProcIDMap(0, 0, 1)]
    assert run_in_fork(spawn_seen_from_caller, "shared", [Mount.tmpfs(str(tmp_path))],
                       cloneflags=CLONE_NEWNS | fe.CLONE_NEWUSER, uid_mappings=maps, gid_mappings=maps,
                       capabilities=NO_CAPS) \
        == ("ran", [])


def spawn_in_chroot_seen_from_caller(root: str, private: str, target: str) -> tuple[str, list[str]]:
    """In a forked process whose / is shared, with a private tmpfs at ``private``: spawn with chroot
    ``root`` and a tmpfs at ``target`` (mount_propagation shared) and say what came of it (the program
    is not in the root: a start fails at its execve), and which mounts the caller had more after."""
    shared_root()
    sysutil.mount("tmpfs", private, "tmpfs", 0)
    sysutil.mount(None, private, None, sysutil.MS_PRIVATE)
    before = _mount_points()
    try:
        fe.run([SH, "-c", "true"], sys=SysProcAttr(cloneflags=CLONE_NEWNS, chroot=root,
                                                 mount_propagation="shared", mounts=[Mount.tmpfs(target)]))
        outcome = "ran"
    except (ValueError, ChildError) as e:
        outcome = f"{type(e).__name__}: {e}"
    return outcome, sorted((_mount_points() - before).elements())


def test_a_mount_through_a_link_of_the_new_root_is_looked_at_where_the_child_makes_it(tmp_path: Path) -> None:
    # The child finds a target inside the new root (RESOLVE_IN_ROOT): /data, a link in the root to
    # PRIVATE (absolute), is ROOT/PRIVATE for it, on the caller's shared /, not this host's PRIVATE (a
    # private tmpfs). Looked at on this host's tree, the tmpfs was let through and made on the
    # caller's / too (left there after the failed start).
    root, private = tmp_path / "root", tmp_path / "private"
    private.mkdir()
    (root / str(private).lstrip("/")).mkdir(parents=True)
    (root / "data").symlink_to(private)
    outcome, left = run_in_fork(spawn_in_chroot_seen_from_caller, str(root), str(private), "/data")
    assert outcome.startswith("ValueError: SysProcAttr.mount_propagation: 'shared' keeps the new mount "
                              "namespace's mounts peers of this process's shared ones, so mounts[0] would "
                              f"be made at {root}/data on this host too"), outcome
    assert left == []


def test_a_link_of_the_new_root_to_its_own_private_mount_is_let_through(tmp_path: Path) -> None:
    # The other way round: /data links to /inner, which this host has on its shared / but the root has
    # on the private tmpfs: no refusal (the start fails only for want of the program in the root),
    # and nothing reaches the caller. A '..' above the root stops at it, as in the child.
    root = tmp_path / "root"
    inner = root / "inner"
    inner.mkdir(parents=True)
    (root / "data").symlink_to("../../../../../../../inner")
    outcome, left = run_in_fork(spawn_in_chroot_seen_from_caller, str(root), str(inner), "/data")
    assert outcome.startswith("ChildError: "), outcome
    assert left == []


def spawn_in_joined_namespace(how: str, propagation: str, target: str,
                              private: str = "") -> tuple[str, list, list]:
    """In a forked process whose / is shared: a process in a mount namespace of its own whose mounts
    stay peers of this one's (unshare --propagation unchanged; with ``private``, a private tmpfs
    mounted there first); a spawn joins that namespace (``how``: by its /proc path, a pidfd, or an fd
    of its namespace file open when no process is left in the namespace), makes a new one with a
    tmpfs at ``target`` and ``propagation``. What came of it, and which mounts the caller and the
    joined namespace had more after."""
    shared_root()
    script = f"mount -t tmpfs none {private} && mount --make-private {private}; " if private else ""
    holder = subprocess.Popen(["unshare", "-m", "--propagation", "unchanged", "sh", "-c",
                               f"{script}echo ready; exec sleep 60"], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"ready\n"
        ns_file = f"/proc/{holder.pid}/ns/mnt"
        before, joined_before = _mount_points(), _mount_points(holder.pid)
        fd = None
        if how == "pidfd":
            fd = os.pidfd_open(holder.pid)
            entry = fe.SetNS(fd, CLONE_NEWNS)
        elif how == "fd":  # the namespace kept by an fd alone: its process gone, its table unreadable
            fd = os.open(ns_file, os.O_RDONLY)
            holder.kill()
            holder.wait()
            entry = fe.SetNS(fd, CLONE_NEWNS)
        else:
            entry = fe.SetNS(ns_file, CLONE_NEWNS)
        try:
            sys = SysProcAttr(setns=[entry], unshareflags=CLONE_NEWNS, mount_propagation=propagation,
                              mounts=[Mount.tmpfs(target)])
            fe.run([SH, "-c", "true"], sys=sys)
            outcome = "ran"
        except (ValueError, ChildError) as e:
            outcome = f"{type(e).__name__}: {e}"
        finally:
            if fd is not None:
                os.close(fd)
        gained = sorted((_mount_points() - before).elements())
        joined_gained = [] if how == "fd" else sorted((_mount_points(holder.pid) - joined_before).elements())
        return outcome, gained, joined_gained
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("how", ["path", "pidfd"])
def test_a_mount_reaching_a_joined_namespace_s_shared_mount_is_refused(tmp_path: Path, how: str) -> None:
    # The new mount namespace is a copy of the joined one, whose / here is a peer of the caller's: the
    # tmpfs was made in both and stayed there after the program.
    outcome, gained, joined_gained = run_in_fork(spawn_in_joined_namespace, how, "shared", str(tmp_path))
    assert outcome == (f"ValueError: SysProcAttr.mount_propagation: 'shared' keeps the new mount namespace's "
                       "mounts peers of the joined namespace's shared ones, so mounts[0] would be made at "
                       f"{tmp_path} on the joined mount namespace too, and stay after the program: give "
                       "'slave' (the program still sees the joined mount namespace's new mounts) or "
                       "'private', or cut that mount off first in the list (a propagation change "
                       "Mount(None, TARGET, None, \"rprivate\"))")
    assert (gained, joined_gained) == ([], [])


@pytest.mark.parametrize(("propagation", "private"), [("slave", False), ("shared", True)])
def test_a_mount_that_cannot_reach_the_joined_namespace_runs(tmp_path: Path, propagation: str,
                                                             private: bool) -> None:
    # slave cuts the copies off; and a target on a private mount of the joined namespace (one the
    # caller has as a plain directory on its shared /) cannot carry the mount back: the joined
    # namespace's own table is looked at, not the caller's
    got = run_in_fork(spawn_in_joined_namespace, "path", propagation, str(tmp_path),
                      str(tmp_path) if private else "")
    assert got == ("ran", [], [])


def test_a_joined_mount_namespace_whose_table_cannot_be_read_is_refused_with_shared(tmp_path: Path) -> None:
    outcome, gained, _ = run_in_fork(spawn_in_joined_namespace, "fd", "shared", str(tmp_path))
    assert outcome.startswith("ValueError: SysProcAttr.mount_propagation: 'shared' with mounts and a joined "
                              "mount namespace needs that namespace's mount table"), outcome
    assert gained == []


@pytest.mark.parametrize(("propagation", "tags"), [("private", set()), ("unchanged", {"shared"})])
def test_cloneflags_newns_without_mounts(propagation: str, tags: set[str]) -> None:
    # Go leaves / shared for cloneflags CLONE_NEWNS ("unchanged"); the default, "private", applies to a
    # new mount namespace with nothing to mount too: else what the program mounts reaches the host
    assert run_in_fork(root_tags, propagation, []) == tags
    assert run_in_fork(root_tags_by_default) == set()


def root_tags_by_default() -> frozenset[str]:
    sysutil.unshare(CLONE_NEWNS)
    sysutil.mount(None, "/", None, sysutil.MS_REC | sysutil.MS_PRIVATE)
    sysutil.mount(None, "/", None, sysutil.MS_REC | sysutil.MS_SHARED)
    return mountinfo(SysProcAttr(cloneflags=CLONE_NEWNS))["/"].tags


# ---- pivot_root, readonly_root ------------------------------------------------------------------------


def sandbox(root: Path, *extra: Mount, **kw: Any) -> SysProcAttr:
    return SysProcAttr(cloneflags=SANDBOX_NS, mounts=new_root(*extra), pivot_root=str(root), **kw)


HOST = [d for d in HOST_DIRS if os.path.exists(d)]


def test_pivot_root_leaves_only_the_new_mounts_and_the_old_root_is_gone(tmp_path: Path) -> None:
    sys = sandbox(tmp_path, *minimal_dev())
    entries = parse_mountinfo(output([CAT, "/proc/self/mountinfo"], sys))
    dev = {"/dev", "/dev/shm", *(f"/dev/{n}" for n in DEV_NODES)}
    assert [m.target for m in entries] == ["/", *HOST, "/proc", "/tmp", *sorted(dev, key=DEV_ORDER.index)]
    assert entries[0].fstype == "tmpfs" and "rw" in entries[0].options
    assert all("ro" in m.options for m in entries if m.target in HOST)
    listing = set(output(["/usr/bin/ls", "-A", "/"], sys).split())
    assert listing == {d[1:] for d in HOST} | {"proc", "tmp", "dev"}
    assert os.listdir(tmp_path) == []  # the host's directory was only a mount point


def test_readonly_root_keeps_submounts_writable(tmp_path: Path) -> None:
    script = "touch /new 2>&1; touch /tmp/new && echo tmp ok"
    out = output([SH, "-c", script], sandbox(tmp_path, readonly_root=True))
    assert "Read-only file system" in out and "tmp ok" in out


def test_readonly_root_without_a_new_root_is_the_namespace_root() -> None:
    sys = SysProcAttr(cloneflags=CLONE_NEWNS, readonly_root=True)
    res = capture([SH, "-c", "touch /pyforkexec-ro-test"], sys)
    assert res.returncode != 0 and "Read-only file system" in res.out
    assert not os.path.exists("/pyforkexec-ro-test")


def test_dir_is_inside_the_new_root(tmp_path: Path) -> None:
    # ProcAttr.dir is resolved after pivot_root, inside the new root
    assert output(["/usr/bin/pwd"], sandbox(tmp_path), dir="/tmp") == "/tmp\n"


# ---- the remount fallback for kernels before 5.12 (no mount_setattr) -------------------------------


def remount_tables(root: str, flagged: str, drop: bool) -> tuple[dict[str, Any], str]:
    """In a forked child: a nosuid,nodev,noexec tmpfs at ``flagged``, then mount_setattr made to fail
    with ENOSYS (as on Linux < 5.12), then (``drop``: as uid 65534 in a user namespace, where those
    flags are locked) a sandbox with ``flagged`` bound read-only and a read-only root."""
    sysutil.unshare(CLONE_NEWNS)
    sysutil.mount(None, "/", None, sysutil.MS_REC | sysutil.MS_PRIVATE)
    sysutil.mount("tmpfs", flagged, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    install_seccomp(check_seccomp("f", SeccompFilter(deny=["mount_setattr"], errno=errno.ENOSYS)))
    # Non-recursive binds: a remount changes the top mount only, which is all a recursive bind of a
    # tree without submounts needs (a recursive change refuses: the test below).
    mounts = [Mount.tmpfs("/", mode=0o755),
              *[Mount.bind(d, d, readonly=True, recursive=False) for d in HOST_DIRS if os.path.exists(d)],
              Mount.proc(), Mount.tmpfs("/tmp", mode=0o1777),
              Mount.bind(flagged, "/flagged", readonly=True, recursive=False)]
    if drop:
        drop_privileges(NOBODY, NOBODY)
        sys = userns(flags=SANDBOX_NS, mounts=mounts, pivot_root=root, readonly_root=True,
                     capabilities=NO_CAPS)
    else:
        sys = SysProcAttr(cloneflags=SANDBOX_NS, mounts=mounts, pivot_root=root, readonly_root=True)
    return mountinfo(sys), output([SH, "-c", "touch /x 2>&1 || true"], sys)


@pytest.mark.parametrize("drop", [False, True], ids=["root", "unprivileged-userns"])
def test_readonly_by_remount_when_mount_setattr_is_missing(world_dir: Path, drop: bool) -> None:
    root, flagged = world_dir / f"root-{os.getpid()}-{drop}", world_dir / f"flagged-{os.getpid()}-{drop}"
    root.mkdir()
    flagged.mkdir()
    try:
        table, out = run_in_fork(remount_tables, str(root), str(flagged), drop)
    finally:
        root.rmdir()
        flagged.rmdir()
    assert "ro" in table["/"].options and "Read-only file system" in out
    assert {"ro", "nosuid", "nodev", "noexec"} <= table["/flagged"].options  # kept by the remount


def recursive_readonly_without_mount_setattr(src: str, dst: str) -> tuple[int, int, int, str]:
    """In a forked child with mount_setattr failing ENOSYS (as before 5.12): a read-only recursive bind
    of a tree with a submount. The remount fallback could only make the top mount read-only."""
    install_seccomp(check_seccomp("f", SeccompFilter(deny=["mount_setattr"], errno=errno.ENOSYS)))
    mounts = [Mount.tmpfs(os.path.join(src, "sub")), Mount.bind(src, dst, readonly=True)]
    try:
        output([SH, "-c", "echo ran"], SysProcAttr(cloneflags=CLONE_NEWNS, mounts=mounts))
    except ChildError as e:
        return e.errno, int(e.location), e.index, e.field
    return 0, 0, 0, "ran"


def test_a_recursive_read_only_bind_fails_closed_without_mount_setattr(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "sub").mkdir(parents=True)
    got = run_in_fork(recursive_readonly_without_mount_setattr, str(src), str(dst))
    assert got == (errno.ENOSYS, int(ErrorLocation.MOUNT), 1, "sys.mounts[1]")


# ---- unprivileged: a user namespace gives mounts and pivot_root to uid 65534 ------------------------


def unprivileged_sandbox(root: str) -> tuple[dict[str, Any], str]:
    sys = userns(flags=SANDBOX_NS, mounts=new_root(*minimal_dev()), pivot_root=root, readonly_root=True,
                 capabilities=NO_CAPS)  # (else the program could undo them: test_mounts_hold.py)
    return mountinfo(sys), output([SH, "-c", "id -u; touch /x 2>&1; echo hi > /dev/null && echo dev ok"], sys)


def test_unprivileged_user_namespace_sandbox(unprivileged: Callable[..., Any], world_dir: Path) -> None:
    root = world_dir / f"root-{os.getpid()}"
    root.mkdir()
    try:
        table, out = unprivileged(unprivileged_sandbox, str(root))
    finally:
        root.rmdir()
    assert table["/"].fstype == "tmpfs" and "ro" in table["/"].options
    assert table["/proc"].fstype == "proc" and "ro" in table["/usr"].options
    assert out.splitlines()[0] == "0" and "Read-only file system" in out and "dev ok" in out


def test_mount_flags_from_names(tmp_path: Path) -> None:
    mounts = [Mount("tmpfs", str(tmp_path), "tmpfs", ["nosuid", "MS_NODEV", "ro"], "mode=700")]
    entry = mountinfo(SysProcAttr(cloneflags=CLONE_NEWNS | CLONE_NEWPID, mounts=mounts))[str(tmp_path)]
    assert {"ro", "nosuid", "nodev"} <= entry.options
    assert parse_mount_flags("nosuid|nodev") == MS_NOSUID | MS_NODEV


def test_sysfs_of_a_new_network_namespace(tmp_path: Path) -> None:
    target = tmp_path / "sys"
    sys = SysProcAttr(cloneflags=CLONE_NEWNS | CLONE_NEWNET, mounts=[Mount.sysfs(str(target))])
    entry = mountinfo(sys)[str(target)]
    assert entry.fstype == "sysfs" and {"ro", "nosuid", "nodev", "noexec"} <= entry.options
    assert output(["/usr/bin/ls", str(target / "class" / "net")], sys) == "lo\n"  # the new namespace's only


def test_mounts_are_inside_the_chroot(tiny_root: Path) -> None:
    sys = SysProcAttr(cloneflags=CLONE_NEWNS | CLONE_NEWPID, chroot=str(tiny_root), mounts=[Mount.proc()])
    table = by_target(output(["/probe", "cat", "/proc/self/mountinfo"], sys, dir="/"))
    assert table["/proc"].fstype == "proc"  # mountinfo paths are relative to the chroot
    assert (tiny_root / "proc").is_dir()


# ---- targets under a new root are found from inside it --------------------------------------------------
# An image's tree has symlinks (/var/run -> /run, /lib -> usr/lib, or one pointing anywhere): followed
# on the caller's side, a mount (or the directories made for it) would land outside the new root, and
# the path the program sees would stay as it was, writable say, while the program runs.


def _root_with_links(root: Path, outside: Path) -> None:
    """In ``root``: /data an absolute link to ``outside``'s path (inside the root: root/<that path>),
    /up a relative one to "..", /gone an absolute one to a path that only exists outside the root."""
    (root / str(outside).lstrip("/")).mkdir(parents=True)
    (root / "data").symlink_to(outside)
    (root / "up").symlink_to("..")
    (root / "gone").symlink_to(outside.parent / "ghost")


@pytest.mark.parametrize("new_root_by", ["chroot", "pivot_root"])
def test_a_mount_target_through_a_symlink_of_the_root_lands_inside_the_root(
        tiny_root: Path, tmp_path: Path, new_root_by: str) -> None:
    outside, src = tmp_path / "outside", tmp_path / "src"
    outside.mkdir()
    src.mkdir()
    (src / "file").write_text("from src\n")
    _root_with_links(tiny_root, outside)
    mounts = [Mount.bind(str(src), "/data", readonly=True), Mount.tmpfs("/up/made/here"), Mount.proc()]
    if new_root_by == "pivot_root":  # pivot_root needs a mount point: the root bound on itself
        mounts.insert(0, Mount(str(tiny_root), "/", None, "bind"))
    sys = SysProcAttr(cloneflags=SANDBOX_NS, mounts=mounts, **{new_root_by: str(tiny_root)})
    assert output(["/probe", "cat", "/data/file"], sys, dir="/") == "from src\n"  # where the program looks
    table = by_target(output(["/probe", "cat", "/proc/self/mountinfo"], sys, dir="/"))
    assert "ro" in table[str(outside)].options  # /data's target, as the root has it
    assert table["/made/here"].fstype == "tmpfs"  # /up is the root itself, from inside it
    assert (tiny_root / "made" / "here").is_dir()
    assert not (tmp_path / "made").exists() and os.listdir(outside) == []  # nothing on the caller's side


def test_a_mount_target_through_a_link_dangling_inside_the_root_fails_creating_nothing(
        tiny_root: Path, tmp_path: Path) -> None:
    _root_with_links(tiny_root, tmp_path / "outside")
    (tmp_path / "ghost").mkdir()  # there on the caller's side only
    sys = SysProcAttr(cloneflags=CLONE_NEWNS, chroot=str(tiny_root),
                      mounts=[Mount.proc(), Mount.tmpfs("/gone/x")])
    with pytest.raises(ChildError) as e:
        capture(["/probe", "pwd"], sys, dir="/")
    assert (e.value.errno, e.value.location, e.value.index) == (errno.ENOENT, ErrorLocation.MKDIR, 1)
    assert os.listdir(tmp_path / "ghost") == []


def _unprivileged_chroot_bind(root: str, src: str) -> str:
    mounts = [Mount.bind(src, "/data", readonly=True), Mount.proc()]
    sys = userns(flags=SANDBOX_NS, chroot=root, mounts=mounts, capabilities=NO_CAPS)
    return output(["/probe", "cat", "/data/file"], sys, dir="/")


def test_an_unprivileged_chroot_finds_its_targets_inside_the_root_too(
        unprivileged: Callable[..., Any], world_dir: Path, probe: str) -> None:
    base = world_dir / f"links-{os.getpid()}"
    root, src = base / "root", base / "src"
    try:
        for d in (root, root / "proc", src, base / "outside"):
            d.mkdir(parents=True)
        base.chmod(0o755)
        shutil.copy2(probe, root / "probe")
        (src / "file").write_text("from src\n")
        _root_with_links(root, base / "outside")
        for d in (root, src, *root.rglob("*")):
            if d.is_dir() and not d.is_symlink():
                d.chmod(0o755)
        assert unprivileged(_unprivileged_chroot_bind, str(root), str(src)) == "from src\n"
        assert os.listdir(base / "outside") == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize(("mount", "message"), [
    (Mount.tmpfs("/t", size="lots"), "SysProcAttr.mounts[0].data: size=lots: not a size tmpfs takes"),
    (Mount.tmpfs("/t", mode="999"), "SysProcAttr.mounts[0].data: mode=999: not a mode tmpfs takes"),
    (Mount.tmpfs("/t", mode=0o17777), "SysProcAttr.mounts[0].data: mode=17777: not a mode tmpfs takes"),
    (Mount("tmpfs", "/t", "tmpfs", 0, "nr_inodes=5%"), "SysProcAttr.mounts[0].data: nr_inodes=5%"),
])
def test_a_tmpfs_option_the_kernel_refuses_is_refused_first(mount: Mount, message: str) -> None:
    """A tmpfs size or mode the kernel refuses (EINVAL at the mount step, after a role had made the
    service's account and virtualenv) is refused naming the field, before any process."""
    before = children()
    with pytest.raises(ValueError, match=re.escape(message)):
        capture(["/bin/true"], SysProcAttr(cloneflags=CLONE_NEWNS, mounts=[mount]))
    assert children() == before


def test_an_optional_bind_that_would_leave_the_hosts_files_is_refused(tmp_path: Path) -> None:
    """Variants of a root that shows the host: / bound onto a directory of the root first, and that
    directory then bound onto the root; a target under an earlier bind of a host directory (/etc) or
    an overlay of one. Left out, the bind left the host's /etc/hostname readable."""
    root = tmp_path / "root"
    (root / "x").mkdir(parents=True)
    hide = Mount.bind("/nonexistent-pfe", "/etc/hostname", optional=True)
    cases = [
        ([Mount.bind("/", "/x"), Mount.bind(str(root / "x"), "/"), hide],
         "mounts[2].optional: its target is in the bind mount of mounts[1] (/)"),
        ([Mount.tmpfs("/"), Mount.bind("/etc", "/etc"), hide],
         "mounts[2].optional: its target is in the bind mount of mounts[1] (/etc), not on an empty tmpfs"),
        ([Mount.tmpfs("/"), Mount("overlay", "/etc", "overlay", 0, "lowerdir=/etc:/usr", True), hide],
         "mounts[2].optional: its target is in the overlay mount of mounts[1] (/etc), not on an empty"),
        # An overlay over the root whose lower layer is /; a bind of / moved onto the root.
        ([Mount("overlay", "/", "overlay", 0, "lowerdir=/x:/", False), hide],
         "mounts[1].optional: its target is in the overlay mount of mounts[0] (/)"),
        ([Mount.tmpfs("/"), Mount.bind("/", "/host", recursive=True), Mount(str(root / "host"), "/", None,
                                                                           MS_MOVE, None, False), hide],
         "mounts[3].optional: cannot be left out with a move or a shared mount in the list (mounts[2])"),
        # A bind flagged as a move too (the kernel makes it a bind, of / here).
        ([Mount("/", "/", None, MS_BIND | MS_REC | MS_MOVE, None, False), hide],
         "mounts[1].optional: cannot be left out with a move or a shared mount in the list (mounts[0])"),
        # A tmpfs moved with a bind under it; a root directory (whose mounts may show the host).
        ([Mount.tmpfs("/"), Mount.tmpfs("/a"), Mount.bind("/etc", "/a/etc"),
          Mount(str(root / "a"), "/b", None, MS_MOVE, None, True),
          Mount.bind("/nonexistent-pfe", "/b/etc/hostname", optional=True)],
         "mounts[4].optional: cannot be left out with a move or a shared mount in the list (mounts[3])"),

        # The target through a symlink of the root (/link -> /hosttmp) into a bind of a host directory.
        ([Mount.bind("/etc", "/hosttmp"), Mount.bind("/nonexistent-pfe", "/link/hostname", optional=True)],
         "mounts[1].optional: its target is in the new root's own directory, not on an empty tmpfs"),
    ]
    (root / "link").symlink_to("/hosttmp")
    before = children()
    for mounts, message in cases:
        with pytest.raises(ValueError, match=re.escape(f"SysProcAttr.{message}")):
            capture(["/bin/true"], SysProcAttr(cloneflags=CLONE_NEWNS, chroot=str(root), mounts=mounts))
    assert children() == before
    # A tmpfs over the bind hides what it showed: there the bind may be left out (non-recursive binds
    # before 5.12, as above).
    ro = dict(readonly=True, recursive=kernel_has_mount_setattr())
    hidden = [Mount.tmpfs("/"), Mount.bind("/usr", "/usr", **ro), Mount.bind("/lib", "/lib", **ro),
              Mount.bind("/lib64", "/lib64", optional=True, **ro), Mount.bind("/etc", "/etc", **ro),
              Mount.tmpfs("/etc"), hide]
    result = capture(["/usr/bin/cat", "/etc/hostname"], SysProcAttr(cloneflags=CLONE_NEWNS, chroot=str(root),
                                                                     mounts=hidden))
    assert result.returncode == 1 and "No such file" in result.out, result


def _root_device() -> str:
    """The block device this process's / is on, from mountinfo; "" when it is on none."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == "/":
                source = fields[fields.index("-") + 2]
    try:
        st = os.stat(source)
    except OSError:
        return ""
    return source if stat.S_ISBLK(st.st_mode) and st.st_rdev == os.stat("/").st_dev else ""


def test_an_optional_bind_under_a_disk_mount_is_refused(tmp_path: Path) -> None:
    """The filesystem of this / mounted again under the new root shows the host's files: an optional
    bind under it (or over the root with it) is refused, as under a bind."""
    device = _root_device()
    if not device:
        pytest.skip("this / is on no block device (a container's overlay)")
    with open("/proc/self/mountinfo") as f:
        fstype = next(line.split()[line.split().index("-") + 1] for line in f if line.split()[4] == "/")
    root = tmp_path / "root"
    root.mkdir()
    hide = Mount.bind("/nonexistent-pfe", "/host/etc/hostname", optional=True)
    disk = Mount(device, "/host", fstype, MS_RDONLY, None, True)
    with pytest.raises(ValueError, match=re.escape(f"SysProcAttr.mounts[2].optional: its target is in "
                                                   f"the {fstype} mount of mounts[1] (/host)")):
        capture(["/bin/true"], SysProcAttr(cloneflags=CLONE_NEWNS, chroot=str(root),
                                           mounts=[Mount.tmpfs("/"), disk, hide]))
    over_root = Mount(device, "/", fstype, MS_RDONLY, None, False)
    with pytest.raises(ValueError, match=re.escape(f"SysProcAttr.mounts[1].optional: its target is in the "
                                                   f"{fstype} mount of mounts[0] (/)")):
        capture(["/bin/true"], SysProcAttr(cloneflags=CLONE_NEWNS, chroot=str(root),
                                           mounts=[over_root, Mount.bind("/nonexistent-pfe", "/etc/hostname",
                                                                         optional=True)]))


def test_an_optional_bind_outside_a_tmpfs_of_the_list_is_refused(tmp_path: Path) -> None:
    """In a root directory (a mount of / under it, which the child's mount namespace copies, showed the
    host there), under a bind over the root (which may carry such mounts, or have them under its
    source), with a move or a shared mount in the list (which carry mounts along): the bind left out
    left the host's file readable. Only an empty tmpfs or ramfs of the list makes it safe to leave out."""
    root = tmp_path / "root"
    (root / "x").mkdir(parents=True)
    hide = Mount.bind("/nonexistent-pfe", "/x/etc/hostname", optional=True)
    cases = [
        ([hide], "mounts[0].optional: its target is in the new root's own directory"),
        ([Mount.bind(str(root), "/", recursive=False), hide], "mounts[1].optional: its target is in the bind "
                                                              "mount of mounts[0] (/)"),
        ([Mount.tmpfs("/"), Mount(None, "/x", None, MS_SHARED, None, True), hide],
         "mounts[2].optional: cannot be left out with a move or a shared mount in the list (mounts[1])"),
    ]
    for mounts, message in cases:
        with pytest.raises(ValueError, match=re.escape(f"SysProcAttr.{message}")):
            capture(["/bin/true"], SysProcAttr(cloneflags=CLONE_NEWNS, chroot=str(root), mounts=mounts))
    # A propagation change (no fstype: the child mounts nothing then) is no tmpfs.
    only = [Mount.bind("/etc", "/x/etc"), Mount(None, "/x/etc", None, MS_PRIVATE, None, False), hide]
    with pytest.raises(ValueError, match=re.escape("mounts[2].optional: its target is in the bind mount")):
        capture(["/bin/true"], SysProcAttr(cloneflags=CLONE_NEWNS, chroot=str(root), mounts=only))


def test_an_optional_bind_on_a_tmpfs_reached_through_a_symlink_is_refused(tmp_path: Path) -> None:
    """A tmpfs whose place is reached through a symlink (of the root directory, or of a bound host
    directory) lands elsewhere: a later bind at the real place covered the optional bind's target,
    which the path as written showed on the tmpfs, and the host's file was readable. The tmpfs must be
    on tmpfs mounts of the list up to one over the root."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "a").symlink_to("/x")
    links = tmp_path / "links"
    links.mkdir()
    (links / "t").symlink_to("/x")
    hide = Mount.bind("/nonexistent-pfe", "/a/hostname", optional=True)
    in_root = [Mount.tmpfs("/a"), Mount.bind("/etc", "/x"), hide]
    message = "mounts[2].optional: its target is in the tmpfs of mounts[0] (/a), which is in the new root's"
    with pytest.raises(ValueError, match=re.escape(message)):
        capture(["/bin/true"], SysProcAttr(cloneflags=CLONE_NEWNS, chroot=str(root), mounts=in_root))
    in_bind = [Mount.tmpfs("/"), Mount.bind(str(links), "/l"), Mount.tmpfs("/l/t"), Mount.bind("/etc", "/x"),
               Mount.bind("/nonexistent-pfe", "/l/t/hostname", optional=True)]
    message = "mounts[4].optional: its target is in the tmpfs of mounts[2] (/l/t), which is in the bind mount"
    with pytest.raises(ValueError, match=re.escape(message)):
        capture(["/bin/true"], SysProcAttr(cloneflags=CLONE_NEWNS, chroot=str(root), mounts=in_bind))


def _realpath_in_chroot(root: str, entries: dict[str, str | None], path: str) -> tuple[str, bool]:
    """Makes ``entries`` (a directory for None, else a link to that text) in ``root`` as a process
    chrooted there, so that no link of the tree leads a part of it outside the root, then says what
    that process finds at ``path`` (the kernel follows each link there), and whether its lookup ends
    in a loop of links."""
    os.chroot(root)
    for name, target in sorted(entries.items()):
        where = Path("/", name)
        try:
            where.parent.mkdir(parents=True, exist_ok=True)
            if target is None:
                where.mkdir(exist_ok=True)
            else:
                where.symlink_to(target)
        except OSError:  # a parent that is a link or exists as another kind: not made
            continue
    try:
        os.stat(path)
    except OSError as e:
        looped = e.errno == errno.ELOOP
    else:
        looped = False
    return os.path.realpath(path), looped


def test_found_in_root_agrees_with_a_chrooted_lookup(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Trees of directories and links (absolute, relative, '..' above the root, dangling), and paths
    through them: found_in_root gives what a process chrooted there finds (loops aside)."""
    hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed (dev extras)")
    st = hypothesis.strategies
    part = st.sampled_from(["a", "b", "c", "..", "."])
    rel = st.lists(part, min_size=1, max_size=4).map("/".join)
    link = st.one_of(rel, rel.map(lambda p: "/" + p))
    name = st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3).map("/".join)
    entries = st.dictionaries(name, st.one_of(st.none(), link), max_size=6)

    @hypothesis.settings(max_examples=60, deadline=None, database=None, derandomize=True,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(entries=entries, path=link.map(lambda p: p if p.startswith("/") else "/" + p))
    def check(entries: dict[str, str | None], path: str) -> None:
        root = tmp_path_factory.mktemp("in-root")
        seen, looped = run_in_fork(_realpath_in_chroot, str(root), entries, path)
        hypothesis.assume(not looped)
        assert found_in_root(bytes(root), path.encode()) == os.path.normpath(seen).encode()

    check()


def _spawn_from_a_thread_in_another_mount_namespace(where: str, propagation: str) -> tuple[str, bool]:
    """The process in a mount namespace with / private (B); a thread of it in another (A: unshare(CLONE_FS),
    setns) where ``where`` is a shared tmpfs. The thread spawns a tmpfs at ``where``/sub with
    ``propagation``: the outcome, and whether A gained the mount."""
    import threading

    libc = sysutil._libc
    sysutil.unshare(CLONE_NEWNS)  # A
    sysutil.mount(None, "/", None, sysutil.MS_REC | sysutil.MS_PRIVATE)
    sysutil.mount("tmpfs", where, "tmpfs", 0)
    sysutil.mount(None, where, None, sysutil.MS_SHARED)
    os.mkdir(f"{where}/sub")
    a = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    sysutil.unshare(CLONE_NEWNS)  # B: its copy of the tmpfs is A's peer until made private
    sysutil.mount(None, "/", None, sysutil.MS_REC | sysutil.MS_PRIVATE)
    said: dict[str, Any] = {}

    def thread() -> None:
        sysutil.unshare(0x200)  # CLONE_FS: a thread sharing its fs with others cannot change mount namespace
        assert libc.setns(a, CLONE_NEWNS) == 0
        try:
            sys = SysProcAttr(cloneflags=CLONE_NEWNS, mount_propagation=propagation,
                              mounts=[Mount.tmpfs(f"{where}/sub")])
            said["outcome"] = f"ran {fe.run([SH, '-c', 'true'], sys=sys).returncode}"
        except (ValueError, ChildError) as e:
            said["outcome"] = f"{type(e).__name__}: {e}"
        with open("/proc/thread-self/mountinfo") as f:
            said["gained"] = f" {where}/sub " in f.read()

    t = threading.Thread(target=thread)
    t.start()
    t.join()
    return said["outcome"], said["gained"]


@needs_root  # mount namespaces the test makes and a thread joins
@pytest.mark.parametrize("propagation", ["shared", "unchanged"])
def test_a_thread_in_another_mount_namespace_than_its_process_s_is_checked_against_its_own(
        tmp_path: Path, propagation: str) -> None:
    """The caller's mount table was read from /proc/self, its main thread's: a thread in another mount
    namespace (where the target was on a shared mount) spawned with 'shared'/'unchanged', the check
    looked at the main thread's private table, and the tmpfs was made in the thread's namespace too,
    left there after the program. The calling thread's table is read now (/proc/thread-self)."""
    outcome, gained = run_in_fork(_spawn_from_a_thread_in_another_mount_namespace, str(tmp_path), propagation)
    assert outcome.startswith(f"ValueError: SysProcAttr.mount_propagation: '{propagation}' keeps the new "
                              "mount namespace's mounts peers of this process's shared ones, so mounts[0] "
                              f"would be made at {tmp_path}/sub on this host too"), outcome
    assert not gained
