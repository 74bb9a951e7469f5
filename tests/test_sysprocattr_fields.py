"""One test (or a few) per SysProcAttr and ProcAttr field, each proving the effect from inside the child."""

from __future__ import annotations

import fcntl
import os
import signal
import termios
from pathlib import Path
from typing import Callable

import pytest
from helpers import sysutil
from helpers.forked import run_in_fork
from helpers.marks import needs_root
from helpers.procs import (
    cap_set,
    capture,
    child_stat,
    children,
    fd_count,
    fd_table,
    mount_tags,
    ns_links,
    output,
    status_fields,
    tty_nr,
    wait_code,
)
from helpers.timens import time_namespace_entered_at_clone

from pyforkexec import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWTIME,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    Credential,
    ProcAttr,
    SetNS,
    SysProcAttr,
    SysProcIDMap,
    fork_exec,
    start_process,
)

pytestmark = needs_root

CAT = "/usr/bin/cat"
CAP_SYS_TIME, CAP_SYSLOG = 25, 34
NS_FLAGS = {
    "mnt": CLONE_NEWNS,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "net": CLONE_NEWNET,
    "pid": CLONE_NEWPID,
    "user": CLONE_NEWUSER,
    "cgroup": CLONE_NEWCGROUP,
    "time": CLONE_NEWTIME,
}


def child_status(sys: SysProcAttr) -> dict[str, str]:
    return status_fields(output([CAT, "/proc/self/status"], sys))


def child_ns_links(sys: SysProcAttr, names: tuple[str, ...]) -> dict[str, str]:
    out = output(["/usr/bin/readlink", *(f"/proc/self/ns/{n}" for n in names)], sys)
    return dict(zip(names, out.split()))


# ---- chroot ----------------------------------------------------------------------------------------


def test_chroot(tiny_root: Path) -> None:
    sys = SysProcAttr(chroot=str(tiny_root))
    assert output(["/probe", "cat", "/marker"], sys, dir="/") == "inside the tiny root\n"
    assert output(["/probe", "pwd"], sys, dir="/") == "/\n"


def test_chroot_without_dir_keeps_cwd_outside_the_root(tiny_root: Path) -> None:
    # Go behaviour 3, kept: chroot does not chdir, so the cwd lies outside the new root.
    res = capture(["/probe", "pwd"], SysProcAttr(chroot=str(tiny_root)), dir=None)
    assert (res.returncode, res.out) == (1, "getcwd: No such file or directory\n")


# ---- credential ------------------------------------------------------------------------------------


def test_credential() -> None:
    st = child_status(SysProcAttr(credential=Credential(uid=1234, gid=2345, groups=(3, 4))))
    assert st["Uid"].split() == ["1234"] * 4
    assert st["Gid"].split() == ["2345"] * 4
    assert st["Groups"].split() == ["3", "4"]


def test_credential_no_setgroups_keeps_groups() -> None:
    extra = 4242
    before = os.getgroups()
    os.setgroups([*before, extra])  # give the parent a group the child must keep
    try:
        cred = Credential(uid=1234, gid=2345, no_setgroups=True)
        st = child_status(SysProcAttr(credential=cred))
    finally:
        os.setgroups(before)
    assert st["Uid"].split() == ["1234"] * 4
    assert sorted(map(int, st["Groups"].split())) == sorted({*before, extra})


def test_credential_groups_with_no_setgroups_are_refused() -> None:
    """Go drops the groups silently and the child keeps the caller's (privileged ones included)."""
    before = children()
    cred = Credential(uid=1234, gid=2345, groups=(7,), no_setgroups=True)
    with pytest.raises(ValueError, match=r"^SysProcAttr\.credential\.groups: would not be set"):
        child_status(SysProcAttr(credential=cred))
    assert children() == before


@pytest.mark.parametrize(("field", "sys"), [("pgid", SysProcAttr(pgid=12345)),
                                            ("ctty", SysProcAttr(ctty=2, setsid=True))])
def test_a_terminal_field_its_flag_does_not_use_is_refused(field: str, sys: SysProcAttr) -> None:
    with pytest.raises(ValueError, match=rf"^SysProcAttr\.{field}: is used only with"):
        child_status(sys)


# ---- ptrace ----------------------------------------------------------------------------------------


def test_ptrace_stops_with_sigtrap_at_exec() -> None:
    pid = fork_exec("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(ptrace=True)))
    _, status = os.waitpid(pid, 0)
    assert os.WIFSTOPPED(status) and os.WSTOPSIG(status) == signal.SIGTRAP
    sysutil.ptrace_detach(pid)
    assert wait_code(pid) == 0


# ---- sessions and process groups --------------------------------------------------------------------


def test_setsid() -> None:
    st = child_stat(SysProcAttr(setsid=True))
    assert st.session == st.pid and st.pgrp == st.pid


def test_without_setsid_the_session_is_inherited() -> None:
    st = child_stat(SysProcAttr())
    assert (st.session, st.pgrp) == (os.getsid(0), os.getpgrp())


def test_setpgid_zero_makes_a_new_group() -> None:
    st = child_stat(SysProcAttr(setpgid=True))
    assert st.pgrp == st.pid and st.session == os.getsid(0)


def test_setpgid_joins_an_existing_group() -> None:
    leader = fork_exec("/bin/sleep", ["sleep", "60"], ProcAttr(sys=SysProcAttr(setpgid=True)))
    try:
        st = child_stat(SysProcAttr(setpgid=True, pgid=leader))
    finally:
        os.kill(leader, signal.SIGKILL)
        wait_code(leader)
    assert st.pgrp == leader


# ---- terminals (a pty; a forked session leader owns it where a controlling terminal is needed) ----


def test_setctty_makes_the_tty_controlling() -> None:
    master, slave = os.openpty()
    try:
        st = child_stat(SysProcAttr(setsid=True, setctty=True, ctty=0), stdin=slave)
        assert (st.session, st.tty_nr, st.tpgid) == (st.pid, tty_nr(slave), st.pid)
    finally:
        os.close(slave)
        os.close(master)


def test_setctty_uses_a_child_fd() -> None:
    # ctty names the child's fd 3, which is the parent's pty slave at some other number.
    master, slave = os.openpty()
    null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = child_stat(SysProcAttr(setsid=True, setctty=True, ctty=3), stdin=null, extra=[slave])
        assert st.tty_nr == tty_nr(slave)
    finally:
        for fd in (null, slave, master):
            os.close(fd)


def in_terminal_session(fn: Callable[[int, int], object]) -> object:
    """Runs fn(master, slave) in a forked session leader whose controlling terminal is a new pty."""

    def leader() -> object:
        master, slave = os.openpty()
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        return fn(master, slave)

    return run_in_fork(leader)


def test_noctty_detaches_the_controlling_terminal() -> None:
    def both(master: int, slave: int) -> tuple[int, int, int]:
        kept = child_stat(SysProcAttr(), stdin=slave).tty_nr
        dropped = child_stat(SysProcAttr(noctty=True), stdin=slave).tty_nr
        return kept, dropped, tty_nr(slave)

    kept, dropped, tty = in_terminal_session(both)
    assert kept == tty and dropped == 0


def test_foreground_with_a_new_group() -> None:
    def fg(master: int, slave: int) -> tuple[object, int]:
        st = child_stat(SysProcAttr(foreground=True, ctty=slave), stdin=slave)
        return st, os.tcgetpgrp(master)

    st, master_pgrp = in_terminal_session(fg)
    assert st.pgrp == st.pid and st.tpgid == st.pid and master_pgrp == st.pid


def test_foreground_with_an_existing_group() -> None:
    def fg(master: int, slave: int) -> tuple[int, object, int]:
        leader = fork_exec("/bin/sleep", ["sleep", "60"], ProcAttr(sys=SysProcAttr(setpgid=True)))
        try:
            st = child_stat(SysProcAttr(foreground=True, ctty=slave, pgid=leader), stdin=slave)
            return leader, st, os.tcgetpgrp(master)
        finally:
            os.kill(leader, signal.SIGKILL)
            wait_code(leader)

    leader, st, master_pgrp = in_terminal_session(fg)
    assert st.pgrp == leader and st.tpgid == leader and master_pgrp == leader


# ---- pdeathsig ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("credential", [None, Credential(uid=65534, gid=65534)], ids=["root", "setuid"])
def test_pdeathsig(credential: Credential | None) -> None:
    # Go sets it after setuid because a credential change clears it; both must deliver the signal.
    def subreaper() -> int:
        sysutil.prctl(sysutil.PR_SET_CHILD_SUBREAPER, 1)  # the orphan is reparented to us
        r, w = os.pipe()
        middle = os.fork()
        if middle == 0:
            try:
                attr = ProcAttr(sys=SysProcAttr(pdeathsig=signal.SIGUSR1, credential=credential))
                os.write(w, str(fork_exec("/bin/sleep", ["sleep", "60"], attr)).encode())
            finally:
                os._exit(0)
        os.close(w)
        with os.fdopen(r) as f:
            grandchild = int(f.read())
        assert wait_code(middle) == 0
        return wait_code(grandchild)

    assert run_in_fork(subreaper) == -signal.SIGUSR1


# ---- cloneflags and unshareflags: namespaces ------------------------------------------------------


@pytest.mark.parametrize("name", list(NS_FLAGS))
def test_cloneflags_namespace(name: str) -> None:
    parent = ns_links()
    child = child_ns_links(SysProcAttr(cloneflags=NS_FLAGS[name]), tuple(parent))
    assert {n for n in parent if parent[n] != child[n]} == {name}


@pytest.mark.parametrize("name", [n for n in NS_FLAGS if n != "pid"])
def test_unshareflags_namespace(name: str) -> None:
    # unshare(CLONE_NEWTIME) moves only children, but execve then enters time_for_children (Linux 6.2
    # on: the change that made execve switch also stopped a CLONE_VM clone from entering at once).
    if name == "time" and time_namespace_entered_at_clone():
        pytest.skip(f"Linux {os.uname().release} enters a new time namespace at clone, not execve (< 6.2)")
    parent = ns_links()
    child = child_ns_links(SysProcAttr(unshareflags=NS_FLAGS[name]), tuple(parent))
    assert {n for n in parent if parent[n] != child[n]} == {name}


def test_unshareflags_newpid_moves_only_the_children() -> None:
    # Go behaviour 12: the child keeps its pid namespace; its first child is pid 1 of the new one.
    # readlink is the shell's first child; "; true" stops dash from exec'ing it in place.
    script = "readlink /proc/self/ns/pid /proc/$$/ns/pid; true"
    first_child_ns, own_ns = output(["/bin/sh", "-c", script], SysProcAttr(unshareflags=CLONE_NEWPID)).split()
    assert own_ns == os.readlink("/proc/self/ns/pid") != first_child_ns


def _root_tags(sys: SysProcAttr) -> set[str]:
    sysutil.make_root_shared()
    return mount_tags(output([CAT, "/proc/self/mountinfo"], sys))


@pytest.mark.parametrize(
    ("sys", "tags"),
    [
        (SysProcAttr(), {"shared"}),
        (SysProcAttr(unshareflags=CLONE_NEWNS), set()),  # Go remounts / MS_REC|MS_PRIVATE
        (SysProcAttr(unshareflags=CLONE_NEWNS | CLONE_NEWUSER,
                     uid_mappings=[SysProcIDMap(0, 0, 1)], gid_mappings=[SysProcIDMap(0, 0, 1)]), set()),
        # Go behaviour 11 (no remount: a shared /, the program's mounts reach the host) is "unchanged";
        # the default makes any new mount namespace's / private
        (SysProcAttr(cloneflags=CLONE_NEWNS), set()),
        (SysProcAttr(cloneflags=CLONE_NEWNS, mount_propagation="unchanged"), {"shared"}),
        (SysProcAttr(cloneflags=CLONE_NEWNS | CLONE_NEWUSER), set()),
        (SysProcAttr(cloneflags=CLONE_NEWNS | CLONE_NEWUSER, mount_propagation="unchanged"), {"master"}),
    ],
    ids=["no-ns", "unshare-newns", "unshare-newns-newuser", "clone-newns", "clone-newns-go",
         "clone-newns-newuser", "clone-newns-newuser-go"],
)
def test_mount_propagation_of_root(sys: SysProcAttr, tags: set[str]) -> None:
    assert run_in_fork(_root_tags, sys) == tags


# ---- user namespace mappings ---------------------------------------------------------------------


def _map_lines(text: str) -> list[tuple[int, int, int]]:
    return [tuple(map(int, line.split())) for line in text.splitlines()]  # type: ignore[misc]


def test_uid_and_gid_mappings() -> None:
    uids = [SysProcIDMap(0, 100000, 1000), SysProcIDMap(1000, 0, 1)]
    gids = [SysProcIDMap(0, 200000, 10), SysProcIDMap(10, 0, 1), SysProcIDMap(11, 300000, 5)]
    sys = SysProcAttr(cloneflags=CLONE_NEWUSER, uid_mappings=uids, gid_mappings=gids)
    uid_out = output([CAT, "/proc/self/uid_map"], sys)
    gid_out = output([CAT, "/proc/self/gid_map"], sys)
    assert _map_lines(uid_out) == [(m.container_id, m.host_id, m.size) for m in uids]
    assert _map_lines(gid_out) == [(m.container_id, m.host_id, m.size) for m in gids]
    # host uid 0 is container uid 1000; the child runs as the mapped root id, which is 1000 inside
    st = child_status(sys)
    assert st["Uid"].split() == ["1000"] * 4


@pytest.mark.parametrize("enable", [False, True])
def test_gid_mappings_enable_setgroups(enable: bool) -> None:
    sys = SysProcAttr(cloneflags=CLONE_NEWUSER, uid_mappings=[SysProcIDMap(0, 0, 1)],
                      gid_mappings=[SysProcIDMap(0, 0, 1)], gid_mappings_enable_setgroups=enable)
    assert output([CAT, "/proc/self/setgroups"], sys).strip() == ("allow" if enable else "deny")


def test_unshare_newuser_writes_setgroups_deny() -> None:
    sys = SysProcAttr(unshareflags=CLONE_NEWUSER, uid_mappings=[SysProcIDMap(0, 0, 1)],
                      gid_mappings=[SysProcIDMap(0, 0, 1)])
    assert output([CAT, "/proc/self/setgroups"], sys).strip() == "deny"
    assert _map_lines(output([CAT, "/proc/self/uid_map"], sys)) == [(0, 0, 1)]


# ---- ambient capabilities ------------------------------------------------------------------------


def ambient_caps_status(userns: bool) -> dict[str, str]:
    """Go's testAmbientCaps setup: nobody with CAP_SYS_TIME and CAP_SYSLOG, optionally in a userns."""
    sys = SysProcAttr(credential=Credential(uid=65534, gid=65534), ambient_caps=[CAP_SYS_TIME, CAP_SYSLOG])
    if userns:
        sys.cloneflags = CLONE_NEWUSER
        sys.uid_mappings = [SysProcIDMap(65534, os.getuid(), 1)]
        sys.gid_mappings = [SysProcIDMap(65534, os.getgid(), 1)]
    return child_status(sys)


def assert_ambient(st: dict[str, str]) -> None:
    assert st["Uid"].split() == ["65534"] * 4
    for field in ("CapAmb", "CapInh", "CapPrm", "CapEff"):
        assert cap_set(st[field]) == {CAP_SYS_TIME, CAP_SYSLOG}, field


def test_ambient_caps_as_root() -> None:
    assert_ambient(ambient_caps_status(userns=False))


def test_ambient_caps_in_a_user_namespace_as_an_unprivileged_user(unprivileged) -> None:
    assert_ambient(unprivileged(ambient_caps_status, True))


# ---- cgroup, pidfd, setns ---------------------------------------------------------------------------


def test_use_cgroup_fd(cgroup_dir: tuple[str, str]) -> None:
    path, rel = cgroup_dir
    fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        out = output([CAT, "/proc/self/cgroup"], SysProcAttr(use_cgroup_fd=True, cgroup_fd=fd))
    finally:
        os.close(fd)
    assert f"0::{rel}" in out.splitlines()


def test_pidfd() -> None:
    proc = start_process("/bin/sleep", ["sleep", "60"], ProcAttr(sys=SysProcAttr(pidfd=True)))
    try:
        assert proc.pidfd is not None
        assert os.readlink(f"/proc/self/fd/{proc.pidfd}") == "anon_inode:[pidfd]"
        with open(f"/proc/self/fdinfo/{proc.pidfd}") as f:
            assert status_fields(f.read())["Pid"] == str(proc.pid)
        sysutil.pidfd_send_signal(proc.pidfd, signal.SIGTERM)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    assert proc.wait() == -signal.SIGTERM


def test_pidfd_with_fork_exec_is_closed() -> None:
    # fork_exec returns only the pid, as Go's ForkExec does; the pidfd must not stay open
    before = fd_count()
    pid = fork_exec("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(pidfd=True)))
    assert fd_count() == before
    assert wait_code(pid) == 0


def test_setns_by_path(netns: str) -> None:
    want = f"net:[{os.stat(netns).st_ino}]"
    assert want != os.readlink("/proc/self/ns/net")
    sys = SysProcAttr(setns=[SetNS(netns, CLONE_NEWNET)])
    assert child_ns_links(sys, ("net",))["net"] == want


def test_setns_by_fd(netns: str) -> None:
    fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        links = child_ns_links(SysProcAttr(setns=[SetNS(fd)]), ("net", "uts"))
    finally:
        os.close(fd)
    assert links == {"net": f"net:[{os.stat(netns).st_ino}]", "uts": os.readlink("/proc/self/ns/uts")}


# ---- ProcAttr: dir, env, files --------------------------------------------------------------------


def test_dir(tmp_path: Path, probe: str) -> None:
    assert output([probe, "pwd"], dir=str(tmp_path)) == f"{tmp_path.resolve()}\n"


def test_relative_argv0_resolves_against_dir(tmp_path: Path, probe: str) -> None:
    (tmp_path / "p").symlink_to(probe)
    assert output(["./p", "pwd"], dir=str(tmp_path)) == f"{tmp_path.resolve()}\n"


def test_env_is_exact() -> None:
    # passed verbatim, as Go does: order kept, duplicates and entries without "=" included
    env = ["B=two words", "A=1", "EMPTY=", "A=2", "NOEQUALS"]
    assert output(["/usr/bin/env"], env=env).splitlines() == env


def test_env_none_is_empty_for_fork_exec() -> None:
    assert output(["/usr/bin/env"], env=None) == ""


def test_env_none_is_the_environment_for_start_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYFORKEXEC_TEST_MARK", "present")
    r, w = os.pipe()
    try:
        proc = start_process("/usr/bin/env", ["env"], ProcAttr(files=[0, w, 2]))
    finally:
        os.close(w)
    with os.fdopen(r) as f:
        lines = f.read().splitlines()
    assert proc.wait() == 0
    assert sorted(lines) == sorted(f"{k}={v}" for k, v in os.environ.items())


def test_files_pipe_to_stdout_and_passed_fds(tmp_path: Path, probe: str) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("A\n")
    b.write_text("B\n")
    fa = os.open(a, os.O_RDONLY | os.O_CLOEXEC)
    fb = os.open(b, os.O_RDONLY | os.O_CLOEXEC)
    try:
        # child fd 3 = b and fd 4 = a, whatever their parent numbers are (Go's dup3 passes)
        out = output([probe, "cat", "/proc/self/fd/3", "/proc/self/fd/4"], extra=[fb, fa])
    finally:
        os.close(fa)
        os.close(fb)
    assert out == "B\nA\n"


def test_files_swap(tmp_path: Path, probe: str) -> None:
    # files[fa] = fb and files[fb] = fa: the child must move one of them out of the way first.
    (tmp_path / "a").write_text("A\n")
    (tmp_path / "b").write_text("B\n")
    fa = os.open(tmp_path / "a", os.O_RDONLY | os.O_CLOEXEC)
    fb = os.open(tmp_path / "b", os.O_RDONLY | os.O_CLOEXEC)
    lo, hi = sorted((fa, fb))
    extra: list[object] = [None] * (hi - 2)
    extra[lo - 3], extra[hi - 3] = hi, lo
    try:
        out = output([probe, "cat", f"/proc/self/fd/{lo}", f"/proc/self/fd/{hi}"], extra=extra)
    finally:
        os.close(fa)
        os.close(fb)
    assert out == ("B\nA\n" if lo == fa else "A\nB\n")


def test_files_same_number_clears_cloexec(tmp_path: Path, probe: str) -> None:
    (tmp_path / "f").write_text("F\n")
    fd = os.open(tmp_path / "f", os.O_RDONLY | os.O_CLOEXEC)
    extra: list[object] = [None] * (fd - 3) + [fd]
    try:
        out = output([probe, "cat", f"/proc/self/fd/{fd}"], extra=extra)
    finally:
        os.close(fd)
    assert out == "F\n"


def test_files_lists_exactly_the_child_fds(probe: str) -> None:
    # An inheritable parent fd must not reach the child; None leaves fd 0 closed.
    leak = os.open("/dev/null", os.O_RDONLY)
    os.set_inheritable(leak, True)
    try:
        res = capture([probe, "fds"], stdin=None, extra=[None, 1])
        table = fd_table(res.out)
        table_none_stdin = fd_table(output_with_closed_stdin(probe))
    finally:
        os.close(leak)
    assert res.returncode == 0
    assert set(table) == {0, 1, 2, 4}
    assert table[0] == "/dev/null" and table[1] == table[2] and table[1].startswith("pipe:")
    assert table[4] == os.readlink("/proc/self/fd/1")
    assert set(table_none_stdin) == {1, 2}


def output_with_closed_stdin(probe: str) -> str:
    r, w = os.pipe()
    try:
        pid = fork_exec(probe, [probe, "fds"], ProcAttr(files=[None, w, w]))
    finally:
        os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    assert wait_code(pid) == 0
    return out


def test_files_accepts_file_objects(tmp_path: Path) -> None:
    with open(tmp_path / "out", "w") as f:
        pid = fork_exec("/bin/echo", ["echo", "via fileno"], ProcAttr(files=[0, f, 2]))
        assert wait_code(pid) == 0
    assert (tmp_path / "out").read_text() == "via fileno\n"
