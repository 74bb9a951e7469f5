"""Every child error location that can be reached from outside, provoked once.

Each case asserts errno, location, index and filename, the ``str()`` format, that the failed child
was reaped (no zombie is left among this process's children) and that no fd leaked.

Locations that cannot be reached from outside, and why:
- SETSID: setsid() fails only for a process-group leader, and the new child is never one: its pid is
  fresh and cannot equal an existing pgid, and setpgid runs after setsid.
- SIGNAL_RESET: rt_sigaction/rt_sigprocmask with valid arguments cannot fail.
- PDEATHSIG: prctl(PR_SET_PDEATHSIG) fails only for an invalid signal, which validation refuses.
- CLOSE_FDS: close_range(CLOSE_RANGE_CLOEXEC) cannot fail on this kernel.
- SETRLIMIT: no field sets a limit yet.
"""

from __future__ import annotations

import errno
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers import sysutil
from helpers.forked import load_outcome, outcome_bytes, run_in_fork
from helpers.marks import needs_root
from helpers.procs import children, fd_count

from pyforkexec import (
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    ChildError,
    Credential,
    ErrorLocation,
    ProcAttr,
    SetNS,
    SysProcAttr,
    SysProcIDMap,
    fork_exec,
)

pytestmark = needs_root
L = ErrorLocation
TRUE = "/bin/true"
NOBODY = 65534
CAP_SYS_TIME, CAP_SYSLOG = 25, 34
PR_SET_SECUREBITS = 28
SECBIT_KEEP_CAPS_LOCKED = 1 << 5
SECBIT_NO_CAP_AMBIENT_RAISE = 1 << 6


@dataclass(frozen=True)
class Failure:
    """What fork_exec raised, plus what it left behind."""

    errno: int
    location: ErrorLocation
    index: int
    filename: str | None
    text: str
    is_oserror: bool
    new_children: frozenset[int]
    fd_delta: int


def provoke(sys: SysProcAttr, argv0: str = TRUE, *, dir: str | None = None,
            files: list[object] | None = None) -> Failure:
    """Runs fork_exec expecting a ChildError; picklable, so it also runs in forked children."""
    before_children, before_fds = children(), fd_count()
    attr = ProcAttr(dir=dir, sys=sys, files=[0, 1, 2] if files is None else files)
    try:
        pid = fork_exec(argv0, [argv0], attr)
    except ChildError as e:
        return Failure(e.errno, e.location, e.index, e.filename, str(e), isinstance(e, OSError),
                       frozenset(children() - before_children), fd_count() - before_fds)
    os.waitpid(pid, 0)
    raise AssertionError(f"fork_exec({argv0!r}) with {sys} succeeded")


def expect(failure: Failure, code: int, location: ErrorLocation, index: int = 0, argv0: str = TRUE) -> None:
    text = os.strerror(code)
    assert (errno.errorcode[failure.errno], failure.location, failure.index) == \
        (errno.errorcode[code], location, index)
    assert failure.filename == argv0 and failure.is_oserror
    assert failure.text == f"fork/exec {argv0}: {text[0].lower()}{text[1:]} (at {location.name.lower()})"
    assert failure.new_children == frozenset(), "the failed child was not reaped"
    assert failure.fd_delta == 0, "fds leaked"


def unused_fd(start: int = 900) -> int:
    fd = start
    while os.path.exists(f"/proc/self/fd/{fd}"):
        fd += 1
    return fd


def unused_pid() -> int:
    with open("/proc/sys/kernel/pid_max") as f:
        pid = int(f.read()) - 1
    while os.path.exists(f"/proc/{pid}"):
        pid -= 1
    return pid


def nobody(**kw: Any) -> Credential:
    return Credential(uid=kw.pop("uid", NOBODY), gid=kw.pop("gid", NOBODY), **kw)


# ---- CLONE -----------------------------------------------------------------------------------------


def test_clone_eperm_unprivileged_netns(unprivileged: Callable[..., Any]) -> None:
    expect(unprivileged(provoke, SysProcAttr(cloneflags=CLONE_NEWNET)), errno.EPERM, L.CLONE)


def test_clone_ebadf_cgroup_fd_not_a_cgroup() -> None:
    fd = os.open("/tmp", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        failure = provoke(SysProcAttr(use_cgroup_fd=True, cgroup_fd=fd))
    finally:
        os.close(fd)
    expect(failure, errno.EBADF, L.CLONE, 1)  # index 1: the cgroup fd, not the clone flags
    assert ChildError(failure.errno, L.CLONE, 1).field == "sys.cgroup_fd"


def in_userns_without_room(fn: Callable[..., Failure], *args: Any) -> Failure:
    """Runs fn in a forked child inside a user namespace whose max_user_namespaces is 0."""

    def limited() -> Failure:
        sysutil.unshare(CLONE_NEWUSER)
        with open("/proc/sys/user/max_user_namespaces", "w") as f:
            f.write("0")
        return fn(*args)

    return run_in_fork(limited)


def test_clone_enospc_user_namespace_limit() -> None:
    expect(in_userns_without_room(provoke, SysProcAttr(cloneflags=CLONE_NEWUSER)), errno.ENOSPC, L.CLONE)


# ---- UNSHARE_USER_READ: the parent's map writes, reported through the map pipe ----------------


def unprivileged_maps(uid_host: int, gid_host: int, enable: bool = False) -> SysProcAttr:
    return SysProcAttr(cloneflags=CLONE_NEWUSER, uid_mappings=[SysProcIDMap(0, uid_host, 1)],
                       gid_mappings=[SysProcIDMap(0, gid_host, 1)], gid_mappings_enable_setgroups=enable)


@pytest.mark.parametrize(
    ("sys", "index"),
    [
        (unprivileged_maps(0, NOBODY), 0),  # uid 65534 may map only itself, not root
        (unprivileged_maps(NOBODY, 0), 2),
        (unprivileged_maps(NOBODY, NOBODY, enable=True), 2),  # an unprivileged gid_map needs "deny"
    ],
    ids=["uid_map", "gid_map", "gid_map-with-setgroups"],
)
def test_unshare_user_read_eperm(unprivileged: Callable[..., Any], sys: SysProcAttr, index: int) -> None:
    expect(unprivileged(provoke, sys), errno.EPERM, L.UNSHARE_USER_READ, index)


# ---- KEEPCAPS, SET_CAP -----------------------------------------------------------------------------


def with_securebits(bits: int, sys: SysProcAttr) -> Failure:
    sysutil.prctl(PR_SET_SECUREBITS, bits)
    return provoke(sys)


def test_keepcaps_eperm_when_locked() -> None:
    sys = SysProcAttr(ambient_caps=[CAP_SYS_TIME])
    expect(run_in_fork(with_securebits, SECBIT_KEEP_CAPS_LOCKED, sys), errno.EPERM, L.KEEPCAPS)


def test_set_cap_eperm_when_ambient_raise_is_forbidden() -> None:
    sys = SysProcAttr(ambient_caps=[CAP_SYS_TIME, CAP_SYSLOG])
    failure = run_in_fork(with_securebits, SECBIT_NO_CAP_AMBIENT_RAISE, sys)
    expect(failure, errno.EPERM, L.SET_CAP, CAP_SYS_TIME)
    assert ChildError(failure.errno, L.SET_CAP, CAP_SYS_TIME).field == "sys.ambient_caps"


def test_set_cap_eperm_unprivileged_capset(unprivileged: Callable[..., Any]) -> None:
    # one capset for all caps, before any PR_CAP_AMBIENT_RAISE: index 0
    failure = unprivileged(provoke, SysProcAttr(ambient_caps=[CAP_SYSLOG]))
    expect(failure, errno.EPERM, L.SET_CAP, 0)


# ---- SETPGID, IOCTL ------------------------------------------------------------------------------


def test_setpgid_eperm_no_such_group() -> None:
    expect(provoke(SysProcAttr(setpgid=True, pgid=unused_pid())), errno.EPERM, L.SETPGID)


def test_ioctl_enotty_setctty_on_a_non_tty() -> None:
    null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        failure = provoke(SysProcAttr(setsid=True, setctty=True, ctty=0), files=[null, 1, 2])
    finally:
        os.close(null)
    expect(failure, errno.ENOTTY, L.IOCTL, 2)  # the index names the field
    assert ChildError(failure.errno, L.IOCTL, 2).field == "sys.setctty"


def test_ioctl_enotty_noctty_on_a_non_tty() -> None:
    null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        failure = provoke(SysProcAttr(noctty=True), files=[null, 1, 2])
    finally:
        os.close(null)
    expect(failure, errno.ENOTTY, L.IOCTL, 1)
    assert ChildError(failure.errno, L.IOCTL, 1).field == "sys.noctty"


def test_ioctl_enotty_foreground_on_a_non_tty() -> None:
    null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        failure = provoke(SysProcAttr(foreground=True, ctty=null))
    finally:
        os.close(null)
    expect(failure, errno.ENOTTY, L.IOCTL)
    assert ChildError(failure.errno, L.IOCTL, 0).field == "sys.foreground"


# ---- UNSHARE, ID_MAP_WRITE, MOUNT_ROOT ---------------------------------------------------------


def test_unshare_eperm_unprivileged(unprivileged: Callable[..., Any]) -> None:
    expect(unprivileged(provoke, SysProcAttr(unshareflags=CLONE_NEWUTS)), errno.EPERM, L.UNSHARE)


def test_unshare_enospc_user_namespace_limit() -> None:
    expect(in_userns_without_room(provoke, SysProcAttr(unshareflags=CLONE_NEWUSER)), errno.ENOSPC, L.UNSHARE)


@pytest.mark.parametrize(
    ("uid_host", "gid_host", "enable", "index"),
    [(1, 0, False, 0), (0, 1, False, 2), (0, 0, True, 2)],
    ids=["uid_map-foreign-id", "gid_map-foreign-id", "gid_map-with-setgroups-allow"],
)
def test_id_map_write_eperm(uid_host: int, gid_host: int, enable: bool, index: int) -> None:
    # Go behaviour 9: after unshare(CLONE_NEWUSER) only the own euid/egid can be mapped, even by root
    # (ID_MAP_WRITE EPERM in the child): refused now before any process, naming the field.
    sys = SysProcAttr(unshareflags=CLONE_NEWUSER, uid_mappings=[SysProcIDMap(0, uid_host, 1)],
                      gid_mappings=[SysProcIDMap(0, gid_host, 1)], gid_mappings_enable_setgroups=enable)
    field = ["uid_mappings", None, "gid_mappings_enable_setgroups" if enable else "gid_mappings"][index]
    with pytest.raises(ValueError, match=rf"^SysProcAttr\.{field}: .*EPERM even as root"):
        provoke(sys)


def chrooted_into_a_plain_dir(path: str, sys: SysProcAttr) -> Failure:
    sysutil.unshare(CLONE_NEWNS)  # a private copy, to give the chroot a /proc
    sysutil.mount(None, "/", None, sysutil.MS_REC | sysutil.MS_PRIVATE)
    os.mkdir(os.path.join(path, "proc"))
    sysutil.mount("proc", os.path.join(path, "proc"), "proc", 0)
    os.chroot(path)
    os.chdir("/")
    return provoke(sys)


def test_mount_root_einval_when_root_is_not_a_mount(tmp_path: Path) -> None:
    # Inside a chroot to a plain directory, "/" is no mount point: the MS_PRIVATE remount fails.
    failure = run_in_fork(chrooted_into_a_plain_dir, str(tmp_path), SysProcAttr(unshareflags=CLONE_NEWNS))
    expect(failure, errno.EINVAL, L.MOUNT_ROOT)


# ---- CHROOT, SETGROUPS, SETGID, SETUID, CHDIR -----------------------------------------------------


def test_chroot_enoent() -> None:
    expect(provoke(SysProcAttr(chroot="/nonexistent-pyforkexec")), errno.ENOENT, L.CHROOT)


def test_chroot_eperm_unprivileged(unprivileged: Callable[..., Any]) -> None:
    expect(unprivileged(provoke, SysProcAttr(chroot="/")), errno.EPERM, L.CHROOT)


def test_setgroups_eperm_unprivileged(unprivileged: Callable[..., Any]) -> None:
    sys = SysProcAttr(credential=nobody(groups=(1,)))
    expect(unprivileged(provoke, sys), errno.EPERM, L.SETGROUPS)


def test_setgid_eperm_unprivileged(unprivileged: Callable[..., Any]) -> None:
    sys = SysProcAttr(credential=nobody(gid=0, no_setgroups=True))
    expect(unprivileged(provoke, sys), errno.EPERM, L.SETGID)


def test_setuid_eperm_unprivileged(unprivileged: Callable[..., Any]) -> None:
    sys = SysProcAttr(credential=nobody(uid=0, no_setgroups=True))
    expect(unprivileged(provoke, sys), errno.EPERM, L.SETUID)


def test_chdir_enotdir(tmp_path: Path) -> None:
    (tmp_path / "file").touch()
    expect(provoke(SysProcAttr(), dir=str(tmp_path / "file")), errno.ENOTDIR, L.CHDIR)


def test_chdir_eacces_after_setuid(world_dir: Path) -> None:
    # Go behaviour 14: chdir runs after setuid, so a root-only dir refuses the new user.
    private = world_dir / "root-only"
    private.mkdir(mode=0o700, exist_ok=True)
    expect(provoke(SysProcAttr(credential=nobody()), dir=str(private)), errno.EACCES, L.CHDIR)


# ---- DUP3, FCNTL ----------------------------------------------------------------------------------


def test_dup3_ebadf_closed_fd() -> None:
    expect(provoke(SysProcAttr(), files=[0, unused_fd(), 2]), errno.EBADF, L.DUP3, 1)


def test_dup3_ebadf_closed_fd_moved_up_in_the_first_pass() -> None:
    # files[fd + 1] = fd (< its index) is lifted above nextfd in Go's first pass, which fails
    fd = unused_fd()
    files: list[object] = [0, 1, 2] + [None] * (fd - 2) + [fd]
    expect(provoke(SysProcAttr(), files=files), errno.EBADF, L.DUP3, fd + 1)


def test_fcntl_ebadf_closed_fd_at_its_own_index() -> None:
    fd = unused_fd()
    files: list[object] = [0, 1, 2] + [None] * (fd - 3) + [fd]
    expect(provoke(SysProcAttr(), files=files), errno.EBADF, L.FCNTL, fd)


# ---- SETNS ------------------------------------------------------------------------------------------


def test_setns_einval_regular_file(tmp_path: Path) -> None:
    (tmp_path / "plain").touch()
    expect(provoke(SysProcAttr(setns=[SetNS(str(tmp_path / "plain"))])), errno.EINVAL, L.SETNS)


def test_setns_einval_wrong_type_names_the_entry(netns: str) -> None:
    sys = SysProcAttr(setns=[SetNS(netns, CLONE_NEWNET), SetNS(netns, CLONE_NEWUTS)])
    expect(provoke(sys), errno.EINVAL, L.SETNS, 1)


# ---- PTRACE_ME ------------------------------------------------------------------------------------

PTRACE_CONT = 7
PTRACE_SEIZE = 0x4206
PTRACE_O_TRACEFORK, PTRACE_O_TRACEVFORK, PTRACE_O_TRACECLONE = 2, 4, 8
PTRACE_O_EXITKILL = 0x100000
WALL = 0x40000000


def traced_provoke(sys: SysProcAttr) -> Failure:
    """provoke(sys) in a process we trace with fork/clone following, so its child starts traced."""
    go_r, go_w = os.pipe()
    res_r, res_w = os.pipe()
    victim = os.fork()
    if victim == 0:
        try:
            os.read(go_r, 1)
            os.write(res_w, outcome_bytes(provoke, sys))
        finally:
            os._exit(0)
    os.close(res_w)
    opts = PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE | PTRACE_O_EXITKILL
    sysutil.ptrace(PTRACE_SEIZE, victim, 0, opts)
    os.write(go_w, b"x")
    while True:  # let every tracee run on, passing real signals through
        pid, status = os.waitpid(-1, WALL)
        if pid == victim and not os.WIFSTOPPED(status):
            break
        if os.WIFSTOPPED(status):
            sig = os.WSTOPSIG(status)
            event_stop = status >> 16 or sig in (signal.SIGTRAP, signal.SIGSTOP)
            sysutil.ptrace(PTRACE_CONT, pid, 0, 0 if event_stop else sig)
    with os.fdopen(res_r, "rb") as f:
        return load_outcome(f.read())


def test_ptrace_me_eperm_when_already_traced() -> None:
    expect(run_in_fork(traced_provoke, SysProcAttr(ptrace=True)), errno.EPERM, L.PTRACE_ME)


# ---- EXECVE ----------------------------------------------------------------------------------------


def test_execve_enoent() -> None:
    expect(provoke(SysProcAttr(), "/nonexistent/prog"), errno.ENOENT, L.EXECVE, argv0="/nonexistent/prog")


def test_execve_argv0_is_not_searched_in_path() -> None:
    expect(provoke(SysProcAttr(), "true"), errno.ENOENT, L.EXECVE, argv0="true")


def test_execve_eacces_not_executable(tmp_path: Path) -> None:
    prog = tmp_path / "data"
    prog.write_text("#!/bin/sh\n")
    prog.chmod(0o644)
    expect(provoke(SysProcAttr(), str(prog)), errno.EACCES, L.EXECVE, argv0=str(prog))


def test_execve_enoexec_garbage(tmp_path: Path) -> None:
    prog = tmp_path / "garbage"
    prog.write_bytes(b"\x00\x01\x02 not a program\n")
    prog.chmod(0o755)
    expect(provoke(SysProcAttr(), str(prog)), errno.ENOEXEC, L.EXECVE, argv0=str(prog))
