"""Go 1.23's syscall/exec_linux_test.go (and TestForkExecNilArgv of exec_unix_test.go), ported.

Each test carries its Go counterpart's name. Where Go's test skips as root or as non-root, both
sides run here: root directly, the unprivileged side in a child forked as uid/gid 65534. Go's
helper processes (the test binary re-executed) are replaced by /usr/bin tools or the static probe.

Not ported: TestPidFDClone3 (pyforkexec always uses clone3, so TestPidFD covers it).
The Go footguns of the reference notes where pyforkexec differs are at the end: each is refused
with ValueError before any process exists.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers import sysutil
from helpers.forked import NOBODY, run_in_fork
from helpers.marks import needs_root
from helpers.procs import cap_set, capture, children, fd_count, output, status_fields, wait_code

from pyforkexec import (
    CLONE_FS,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWTIME,
    CLONE_NEWUSER,
    CLONE_SIGHAND,
    CLONE_THREAD,
    ChildError,
    Credential,
    ErrorLocation,
    ProcAttr,
    SysProcAttr,
    SysProcIDMap,
    fork_exec,
    start_process,
)

pytestmark = needs_root
CAP_SYS_TIME, CAP_SYSLOG = 25, 34
WHOAMI = "/usr/bin/whoami"


def whoami_newuser(uid: int, gid: int, setgroups: bool) -> SysProcAttr:
    """Go's whoamiNEWUSER: CLONE_NEWUSER mapping 0 to the caller's uid and gid."""
    return SysProcAttr(cloneflags=CLONE_NEWUSER, uid_mappings=[SysProcIDMap(0, uid, 1)],
                       gid_mappings=[SysProcIDMap(0, gid, 1)], gid_mappings_enable_setgroups=setgroups)


def clone_newuser_and_remap(setgroups: bool) -> str:
    return output([WHOAMI], whoami_newuser(os.getuid(), os.getgid(), setgroups))


@pytest.mark.parametrize("setgroups", [False, True])
def test_CloneNEWUSERAndRemap(setgroups: bool) -> None:
    assert clone_newuser_and_remap(setgroups) == "root\n"


def test_CloneNEWUSERAndRemap_unprivileged(unprivileged: Callable[..., Any]) -> None:
    assert unprivileged(clone_newuser_and_remap, False) == "root\n"
    # as non-root, setgroups=true needs a gid_map the kernel refuses: a permission error
    with pytest.raises(ChildError) as info:
        unprivileged(clone_newuser_and_remap, True)
    err = info.value
    assert (err.errno, err.location, err.index) == (errno.EPERM, ErrorLocation.UNSHARE_USER_READ, 2)


def empty_cred_groups_disable_setgroups() -> int:
    sys = whoami_newuser(os.getuid(), os.getgid(), False)
    sys.credential = Credential(uid=0, gid=0)
    return capture([WHOAMI], sys).returncode


def test_EmptyCredGroupsDisableSetgroups() -> None:
    assert empty_cred_groups_disable_setgroups() == 0


def test_EmptyCredGroupsDisableSetgroups_unprivileged(unprivileged: Callable[..., Any]) -> None:
    assert unprivileged(empty_cred_groups_disable_setgroups) == 0


def test_Unshare() -> None:
    with open("/proc/net/dev") as f:
        orig = f.read().strip().splitlines()
    if len(orig) <= 3:  # two header lines and lo
        pytest.skip("not enough network interfaces to test unshare with")
    out = output(["/usr/bin/cat", "/proc/net/dev"], SysProcAttr(unshareflags=CLONE_NEWNET))
    lines = out.strip().splitlines()
    assert any(line.strip().startswith("lo:") for line in lines)
    assert len(lines) < len(orig)


def test_GroupCleanup() -> None:
    out = output(["/usr/bin/id"], SysProcAttr(credential=Credential(uid=0, gid=0)))
    assert out.strip() == "uid=0(root) gid=0(root) groups=0(root)"


def group_cleanup_user_namespace() -> str:
    uid, gid = os.getuid(), os.getgid()
    sys = SysProcAttr(cloneflags=CLONE_NEWUSER, credential=Credential(uid=uid, gid=gid),
                      uid_mappings=[SysProcIDMap(0, uid, 1)], gid_mappings=[SysProcIDMap(0, gid, 1)])
    return output(["/usr/bin/id"], sys)


def test_GroupCleanupUserNamespace() -> None:
    assert group_cleanup_user_namespace().startswith("uid=0(root) gid=0(root) groups=0(root)")


def test_GroupCleanupUserNamespace_unprivileged(unprivileged: Callable[..., Any]) -> None:
    # Credential(65534, 65534) inside a namespace where only 0 is mapped: setgid(65534) is EINVAL
    with pytest.raises(ChildError) as info:
        unprivileged(group_cleanup_user_namespace)
    assert (info.value.errno, info.value.location) == (errno.EINVAL, ErrorLocation.SETGID)


def test_GroupCleanupUserNamespace_unprivileged_mapped_credential(unprivileged: Callable[..., Any]) -> None:
    def run() -> str:
        sys = SysProcAttr(cloneflags=CLONE_NEWUSER, credential=Credential(uid=0, gid=0),
                          uid_mappings=[SysProcIDMap(0, NOBODY, 1)],
                          gid_mappings=[SysProcIDMap(0, NOBODY, 1)])
        return output(["/usr/bin/id"], sys)

    # setgroups is skipped (setgroups denied, no groups); the child has no supplementary groups
    assert unprivileged(run).strip() == "uid=0(root) gid=0(root) groups=0(root)"


def unshare_mount_namespace(probe: str, d: str, chroot: str = "") -> tuple[str, bool]:
    """Go's TestUnshareMountNameSpace(Chroot): the child mounts proc on d; is d still busy after?

    Runs under a shared / (as systemd leaves it), where only the MS_PRIVATE remount keeps the
    child's mount from propagating back (Go issue 19661).
    """
    sysutil.make_root_shared()
    target = "/" if chroot else d
    out = output([probe, "mount-proc", target], SysProcAttr(unshareflags=CLONE_NEWNS, chroot=chroot))
    try:
        if chroot:
            os.remove(os.path.join(chroot, "probe"))
        os.rmdir(d)
    except OSError:
        return out, False
    return out, True


def test_UnshareMountNameSpace(tmp_path: Path, probe: str) -> None:
    d = tmp_path / "mnt"
    d.mkdir()
    assert run_in_fork(unshare_mount_namespace, probe, str(d)) == ("", True)


def test_UnshareMountNameSpaceChroot(tmp_path: Path, probe: str) -> None:
    d = tmp_path / "root"
    d.mkdir()
    shutil.copy2(probe, d / "probe")
    assert run_in_fork(unshare_mount_namespace, "/probe", str(d), str(d)) == ("", True)


def unshare_uid_gid_mapping(probe: str) -> str:
    sys = SysProcAttr(unshareflags=CLONE_NEWNS | CLONE_NEWUSER, gid_mappings_enable_setgroups=False,
                      uid_mappings=[SysProcIDMap(0, os.getuid(), 1)],
                      gid_mappings=[SysProcIDMap(0, os.getgid(), 1)])
    return output([probe, "chroot", "/tmp"], sys)


def test_UnshareUidGidMapping(unprivileged: Callable[..., Any], probe: str) -> None:
    # Go runs it unprivileged only; the child needs the namespace's CAP_SYS_CHROOT
    assert unprivileged(unshare_uid_gid_mapping, probe) == ""


def test_UnshareUidGidMapping_as_root(probe: str) -> None:
    assert unshare_uid_gid_mapping(probe) == ""


def test_UseCgroupFD(cgroup_dir: tuple[str, str]) -> None:
    path, rel = cgroup_dir
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        out = output(["/usr/bin/cat", "/proc/self/cgroup"], SysProcAttr(use_cgroup_fd=True, cgroup_fd=fd))
    finally:
        os.close(fd)
    assert out.strip().endswith(rel.rsplit("/", 1)[-1])


def test_CloneTimeNamespace() -> None:
    child = output(["/usr/bin/readlink", "/proc/self/ns/time"], SysProcAttr(cloneflags=CLONE_NEWTIME)).strip()
    assert child != os.readlink("/proc/self/ns/time")


def pid_fd(userns: bool) -> int:
    sys = SysProcAttr(pidfd=True, cloneflags=CLONE_NEWUSER if userns else 0)
    # A test run started in the background (`cmd &` without job control) inherits SIGINT ignored, and
    # an ignored signal stays ignored across execve (as in Go): handle it here so the child gets the
    # default action, whatever the run was started from.
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = start_process("/usr/bin/sleep", ["sleep", "3600"], ProcAttr(sys=sys))
    finally:
        signal.signal(signal.SIGINT, old)
    try:
        assert proc.pidfd is not None
        sysutil.pidfd_send_signal(proc.pidfd, signal.SIGINT)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc.wait()


def test_PidFD() -> None:
    assert pid_fd(userns=False) == -signal.SIGINT


def test_PidFDWithUserNS() -> None:
    assert pid_fd(userns=True) == -signal.SIGINT


def test_PidFDWithUserNS_unprivileged(unprivileged: Callable[..., Any]) -> None:
    assert unprivileged(pid_fd, True) == -signal.SIGINT


def ambient_caps(userns: bool) -> set[int]:
    """Go's testAmbientCaps: nobody gets CAP_SYS_TIME and CAP_SYSLOG; returns its effective set."""
    sys = SysProcAttr(credential=Credential(uid=NOBODY, gid=NOBODY), ambient_caps=[CAP_SYS_TIME, CAP_SYSLOG])
    if userns:
        sys.cloneflags = CLONE_NEWUSER
        sys.uid_mappings = [SysProcIDMap(NOBODY, os.getuid(), 1)]
        sys.gid_mappings = [SysProcIDMap(NOBODY, os.getgid(), 1)]
    st = status_fields(output(["/usr/bin/cat", "/proc/self/status"], sys))
    assert st["Uid"].split() == [str(NOBODY)] * 4
    return cap_set(st["CapEff"])


def test_AmbientCaps() -> None:
    assert ambient_caps(userns=False) >= {CAP_SYS_TIME, CAP_SYSLOG}


def test_AmbientCaps_unprivileged(unprivileged: Callable[..., Any]) -> None:
    # Go skips on this EPERM; the step is setgroups, the first one an ordinary user may not take
    with pytest.raises(ChildError) as info:
        unprivileged(ambient_caps, False)
    assert (info.value.errno, info.value.location) == (errno.EPERM, ErrorLocation.SETGROUPS)


def test_AmbientCapsUserns() -> None:
    assert ambient_caps(userns=True) >= {CAP_SYS_TIME, CAP_SYSLOG}


def test_AmbientCapsUserns_unprivileged(unprivileged: Callable[..., Any]) -> None:
    assert unprivileged(ambient_caps, True) >= {CAP_SYS_TIME, CAP_SYSLOG}


def test_ForkExecNilArgv() -> None:
    # Go only checks for no panic. Here: an empty argv execs (the kernel supplies argv[0] = ""), and
    # /dev/null, as Go's choice of program, fails cleanly at execve.
    assert wait_code(fork_exec("/bin/true", [])) == 0
    with pytest.raises(ChildError) as info:
        fork_exec("/dev/null", [])
    assert (info.value.errno, info.value.location) == (errno.EACCES, ErrorLocation.EXECVE)


# ---- Go behaviours we refuse (reference notes, "Go behaviours worth knowing") ----------------------


def assert_refused(attr: ProcAttr, field: str) -> None:
    before_children, before_fds = children(), fd_count()
    with pytest.raises(ValueError, match=f"^{re.escape(field)}: "):
        fork_exec("/bin/true", ["true"], attr)
    assert (children(), fd_count()) == (before_children, before_fds)


def test_footgun1_mappings_without_CLONE_NEWUSER_deadlock_in_go() -> None:
    sys = SysProcAttr(uid_mappings=[SysProcIDMap(0, 0, 1)])
    assert_refused(ProcAttr(sys=sys), "SysProcAttr.uid_mappings")
    sys = SysProcAttr(gid_mappings=[SysProcIDMap(0, 0, 1)], cloneflags=CLONE_NEWNET)
    assert_refused(ProcAttr(sys=sys), "SysProcAttr.gid_mappings")


def test_footgun2_CLONE_FS_with_dir_moves_the_parent_cwd_in_go(tmp_path: Path) -> None:
    cwd = os.getcwd()
    attr = ProcAttr(dir=str(tmp_path), sys=SysProcAttr(cloneflags=CLONE_FS))
    assert_refused(attr, "SysProcAttr.cloneflags")
    assert os.getcwd() == cwd


def test_footgun2_CLONE_FS_without_dir_is_harmless() -> None:
    cwd = os.getcwd()
    assert wait_code(fork_exec("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(cloneflags=CLONE_FS)))) == 0
    assert os.getcwd() == cwd


def test_footgun4_ambient_caps_beyond_63_crash_go() -> None:
    assert_refused(ProcAttr(sys=SysProcAttr(ambient_caps=[CAP_SYS_TIME, 64])), "SysProcAttr.ambient_caps[1]")


@pytest.mark.parametrize(
    "flags", [CLONE_THREAD | CLONE_SIGHAND, CLONE_SIGHAND], ids=["THREAD|SIGHAND", "SIGHAND"]
)
def test_footgun5_thread_flags_replace_the_go_process(flags: int) -> None:
    assert_refused(ProcAttr(sys=SysProcAttr(cloneflags=flags)), "SysProcAttr.cloneflags")


def test_footgun6_pidfd_after_failed_exec_is_not_leaked() -> None:
    # Go sets *PidFD to -1 after closing it; here the pidfd never reaches the caller and is closed.
    before = fd_count()
    with pytest.raises(ChildError):
        start_process("/nonexistent", ["x"], ProcAttr(sys=SysProcAttr(pidfd=True)))
    assert fd_count() == before

