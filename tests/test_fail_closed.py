"""Fail closed: an isolation that cannot hold stops the spawn before any process exists, and a child
that fails is a ChildError naming its step, whatever the timing.

Each test here reproduces a way the spawn used to fail open or report the wrong thing (issue 11).
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import resource
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest
from helpers.forked import run_in_fork
from helpers.leaks import open_fds
from helpers.marks import needs_root
from helpers.procs import capture, namespace_holder
from helpers.terminal import in_a_terminal

import pyforkexec as fe

TRUE = "/bin/true"
ROOT = os.geteuid() == 0


def _mountinfo() -> str:
    with open("/proc/self/mountinfo") as f:
        return f.read()


def _own(kind: str) -> str:
    return f"/proc/self/ns/{kind}"


def _spawn(sys: fe.SysProcAttr) -> int:
    proc = fe.start_process(TRUE, ["true"], fe.ProcAttr(files=[0, 1, 2], sys=sys))
    return proc.wait()


def _no_new_child() -> Iterator[None]:
    before = set(os.listdir("/proc"))
    yield
    # A process this test created would be a zombie of ours until reaped: none may exist.
    mine = str(os.getpid())
    for name in set(os.listdir("/proc")) - before:
        try:
            with open(f"/proc/{name}/stat") as f:
                assert f.read().rsplit(")", 1)[1].split()[1] != mine, f"a child {name} was created"
        except (FileNotFoundError, ProcessLookupError):  # gone before the open, or before the read
            pass


no_new_child = pytest.fixture(_no_new_child)


# --- a join of the caller's own namespace -------------------------------------------------------------

OWN_KINDS = {"uts": fe.CLONE_NEWUTS, "ipc": fe.CLONE_NEWIPC, "net": fe.CLONE_NEWNET, "mnt": fe.CLONE_NEWNS,
             "pid": fe.CLONE_NEWPID, "user": fe.CLONE_NEWUSER, "cgroup": fe.CLONE_NEWCGROUP}


def _own_join_refusals() -> list[str]:
    """The message of every shape of a join of this process's own namespace, each of which must be
    refused before any process exists: the program would run in the caller's namespace as though no
    join had been asked (a /run/netns name bound to the host's, a process that shares the host's)."""
    shapes = [[fe.SetNS(_own(kind))] for kind in OWN_KINDS]  # the type read from the file
    shapes += [[fe.SetNS(_own(kind), flag)] for kind, flag in OWN_KINDS.items()]  # the type given
    shapes.append([fe.SetNS(_own("pid"), fe.CLONE_NEWPID, for_children=True)])
    fds = [os.open(_own("net"), os.O_RDONLY | os.O_CLOEXEC), os.pidfd_open(os.getpid())]
    shapes += [[fe.SetNS(fds[0])], [fe.SetNS(fds[1], fe.CLONE_NEWUTS | fe.CLONE_NEWNET)]]
    bound = tempfile.NamedTemporaryFile(prefix="own-net-")  # noqa: SIM115  # closed below
    messages = []
    root = os.geteuid() == 0
    try:
        if root:  # a name that outlived its namespace: ip netns's file bound over the host's one
            os.system(f"mount --bind {_own('net')} {bound.name}")
            shapes.append([fe.SetNS(bound.name)])
        before = open_fds()
        for setns in shapes:
            try:
                _spawn(fe.SysProcAttr(setns=setns))
            except (ValueError, fe.ChildError) as e:
                messages.append(f"{type(e).__name__}: {e}")
            else:
                messages.append(f"ran: {setns}")
        assert open_fds() == before
    finally:
        if root:
            os.system(f"umount {bound.name} 2>/dev/null")
        bound.close()
        for fd in fds:
            os.close(fd)
    return messages


@pytest.mark.parametrize("who", ["root", "nobody"])
def test_join_of_the_callers_own_namespace_is_refused(who: str, no_new_child: None,
                                                      unprivileged: Callable[..., object]) -> None:
    if who == "root" and not ROOT:
        pytest.skip("needs root")
    messages = _own_join_refusals() if who == "root" else unprivileged(_own_join_refusals)
    for message in messages:
        assert message.startswith("ValueError: SysProcAttr.setns[0]: names the caller's own namespace "
                                  "(CLONE_NEW"), message
    assert len(messages) == 2 * len(OWN_KINDS) + 3 + (who == "root")


def test_a_join_of_the_own_namespace_among_others_names_its_entry(elsewhere: Callable[[str], str]) -> None:
    """A join of another process's uts namespace is fine; the own net namespace beside it is not.
    Unprivileged, the holder's namespaces belong to its user namespace, which is joined first."""
    user = [] if ROOT else [fe.SetNS(elsewhere("user"))]
    with pytest.raises(ValueError, match=rf"^SysProcAttr\.setns\[{len(user) + 1}\]: names the caller's own "
                       r"namespace \(CLONE_NEWNET\)"):
        _spawn(fe.SysProcAttr(setns=[*user, fe.SetNS(elsewhere("uts")), fe.SetNS(_own("net"))]))
    assert _spawn(fe.SysProcAttr(setns=[*user, fe.SetNS(elsewhere("uts")), fe.SetNS(elsewhere("net"))])) == 0


# --- a join that replaces the namespace cloneflags creates -------------------------------------------

@pytest.mark.parametrize("nstype", [0, fe.CLONE_NEWUTS], ids=["type from the fd", "type given"])
def test_join_of_own_uts_with_hostname_is_refused(nstype: int, no_new_child: None) -> None:
    """CLONE_NEWUTS, then a join of this host's uts namespace: hostname would rename the host."""
    hostname = os.uname().nodename
    sys = fe.SysProcAttr(cloneflags=fe.CLONE_NEWUTS | (0 if ROOT else fe.CLONE_NEWUSER),
                         setns=[fe.SetNS(_own("uts"), nstype)], hostname="renamed")
    with pytest.raises(ValueError, match=r"^SysProcAttr\.setns\[0\]: .*CLONE_NEWUTS"):
        _spawn(sys)
    assert os.uname().nodename == hostname


@pytest.mark.skipif(not ROOT, reason="mounting needs root (or a user namespace the join would leave)")
@pytest.mark.parametrize("field", ["mounts", "readonly_root", "mount_propagation"])
def test_join_of_own_mount_namespace_is_refused(field: str, tmp_path: os.PathLike,
                                                no_new_child: None) -> None:
    """CLONE_NEWNS, then a join of this process's mount namespace: mounts, the read-only root and the
    propagation change would land on this process's tree."""
    values = {"mounts": {"mounts": [fe.Mount("tmpfs", str(tmp_path), "tmpfs")]},
              "readonly_root": {"readonly_root": True}, "mount_propagation": {"mount_propagation": "slave"}}
    before = _mountinfo()
    sys = fe.SysProcAttr(cloneflags=fe.CLONE_NEWNS, setns=[fe.SetNS(_own("mnt"))], **values[field])
    with pytest.raises(ValueError, match=r"^SysProcAttr\.setns\[0\]: .*CLONE_NEWNS"):
        _spawn(sys)
    assert _mountinfo() == before


def test_join_through_a_pidfd_mask_is_refused(no_new_child: None) -> None:
    """A pidfd joins several types at once: a type cloneflags creates is refused the same way."""
    pidfd = os.pidfd_open(os.getpid())
    try:
        sys = fe.SysProcAttr(cloneflags=fe.CLONE_NEWUTS | fe.CLONE_NEWUSER,
                             setns=[fe.SetNS(pidfd, fe.CLONE_NEWUTS | fe.CLONE_NEWIPC)], hostname="x")
        with pytest.raises(ValueError, match=r"^SysProcAttr\.setns\[0\]"):
            _spawn(sys)
    finally:
        os.close(pidfd)


@needs_root  # namespaces only root may create or join here
def test_unshare_after_the_join_is_a_new_namespace(tmp_path: os.PathLike,
                                                   elsewhere: Callable[[str], str]) -> None:
    """unshareflags runs after the joins: joining and then unsharing is allowed, and the hostname
    lands in the new namespace, not the joined one."""
    out = tmp_path / "name"
    joined = _hostname_in(elsewhere("uts"))
    with open(out, "w") as f:
        attr = fe.ProcAttr(files=[0, f.fileno(), 2], sys=fe.SysProcAttr(
            unshareflags=fe.CLONE_NEWUTS, setns=[fe.SetNS(elsewhere("uts"))], hostname="inner"))
        proc = fe.start_process("/bin/hostname", ["hostname"], attr)
        assert proc.wait() == 0
    assert out.read_text().strip() == "inner"
    assert _hostname_in(elsewhere("uts")) == joined


def _hostname_in(uts: str) -> str:
    r, w = os.pipe()
    try:
        proc = fe.start_process("/bin/hostname", ["hostname"], fe.ProcAttr(
            files=[0, w, 2], sys=fe.SysProcAttr(setns=[fe.SetNS(uts)])))
    finally:
        os.close(w)
    with os.fdopen(r) as f:
        name = f.read().strip()
    assert proc.wait() == 0
    return name


# --- a join target that cannot be opened --------------------------------------------------------------

@pytest.mark.parametrize("target", ["/nonexistent", "/proc/999999999/ns/uts"])
def test_unopenable_join_target_is_a_setns_error_naming_the_entry(target: str, no_new_child: None,
                                                                 elsewhere: Callable[[str], str]) -> None:
    """The child never runs in the caller's namespaces instead: the spawn fails at setns, with the
    entry's own index even though user namespaces are joined first."""
    entries = [fe.SetNS(elsewhere("uts")), fe.SetNS(target), fe.SetNS(elsewhere("user"))]
    with pytest.raises(fe.ChildError) as info:
        _spawn(fe.SysProcAttr(setns=entries))
    assert info.value.location == fe.ErrorLocation.SETNS
    assert info.value.index == 1 and info.value.errno == errno.ENOENT


# --- a failing child is a ChildError, never a BrokenPipeError ----------------------------------------

def test_child_failing_before_the_map_handshake_is_a_setns_error(tmp_path: os.PathLike) -> None:
    """The child fails its setns (a regular file) before it reads the maps: the parent's map write
    meets a dead child, and what surfaces is the child's own error, every time."""
    regular = tmp_path / "plain"
    regular.write_text("")
    sys = fe.SysProcAttr(cloneflags=fe.CLONE_NEWUSER, setns=[fe.SetNS(str(regular), fe.CLONE_NEWNET)],
                         uid_mappings=[fe.SysProcIDMap(0, os.getuid(), 1)],
                         gid_mappings=[fe.SysProcIDMap(0, os.getgid(), 1)])
    for _ in range(50):
        with pytest.raises(fe.ChildError) as info:
            _spawn(sys)
        assert info.value.location == fe.ErrorLocation.SETNS


def test_sync_callable_that_kills_the_child_is_a_sync_error() -> None:
    """A sync callable that kills the child: a ChildError at the sync step, every time."""
    def kill(pid: int) -> None:
        os.kill(pid, signal.SIGKILL)
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)

    fds = set(open_fds())
    for _ in range(100):
        with pytest.raises(fe.ChildError) as info:
            _spawn(fe.SysProcAttr(sync=kill))
        assert info.value.location == fe.ErrorLocation.SYNC_READ
    assert set(open_fds()) == fds


# --- out of fds ---------------------------------------------------------------------------------------

def _open_fds(limit: int) -> set[int]:
    out = set()
    for fd in range(limit):
        try:
            os.fstat(fd)
            out.add(fd)
        except OSError:
            pass
    return out


def _exhaust_then_spawn(soft: int, free: int, field: str) -> str:
    """In a forked copy: RLIMIT_NOFILE ``soft``, all but ``free`` fds taken, spawn with ``field``;
    the outcome and how many fds it leaked."""
    exe = os.open(TRUE, os.O_RDONLY | os.O_CLOEXEC)
    sys = fe.SysProcAttr(exec_fd=exe) if field == "exec_fd" else fe.SysProcAttr(sync=lambda pid: None)
    attr = fe.ProcAttr(files=[0, 1, 2], sys=sys)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    while len(_open_fds(soft)) < soft - free:
        os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    before = _open_fds(soft)
    try:
        os.waitpid(fe.fork_exec(TRUE, ["true"], attr), 0)
        outcome = "ran"
    except OSError as e:
        outcome = f"{errno.errorcode.get(e.errno or 0)}: {e.strerror}"
    except ValueError as e:  # the extra fds would have to go beyond the limit: the files ask too much
        outcome = f"ValueError: {e}"
    return f"{outcome}; leaked {len(_open_fds(soft) - before)}"


@pytest.mark.parametrize("field", ["exec_fd", "sync"])
def test_out_of_fds_is_emfile_naming_the_field_and_leaks_nothing(field: str) -> None:
    """With few fds allowed or free, the spawn runs, or fails EMFILE (naming the field where the
    field's own copy is what could not be had), or is refused naming ProcAttr.files when the extra
    fds would have to go beyond the limit; it leaves exactly the fds it found."""
    outcomes = [run_in_fork(_exhaust_then_spawn, soft, free, field)
                for soft in (8, 10, 12, 16, 64) for free in range(0, 8)]
    for outcome in outcomes:
        assert outcome.endswith("; leaked 0"), outcome
        assert outcome.startswith(("ran;", "EMFILE:", "ValueError: ProcAttr.files: ")), outcome
        if outcome.startswith("EMFILE") and "SysProcAttr" in outcome:
            assert f"SysProcAttr.{field}: " in outcome, outcome
    assert any(o.startswith("ran") for o in outcomes), outcomes
    assert any(o.startswith(f"EMFILE: SysProcAttr.{field}") for o in outcomes), outcomes


# --- CLONE_PARENT -------------------------------------------------------------------------------------

def test_clone_parent_makes_a_sibling() -> None:
    """Go runs CLONE_PARENT (clone3 refuses it with an exit signal): the child is this process's
    parent's, here the test process's, which reaps it."""
    r, w = os.pipe()
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "ppid")
        middle = os.fork()
        if middle == 0:
            try:
                pid = fe.fork_exec("/bin/sh", ["sh", "-c", f'echo $PPID > {out}'], fe.ProcAttr(
                    files=[0, 1, 2], sys=fe.SysProcAttr(cloneflags=fe.CLONE_PARENT)))
                os.write(w, str(pid).encode())
            finally:
                os._exit(0)
        os.close(w)
        with os.fdopen(r) as f:
            grandchild = int(f.read() or "0")
        os.waitpid(middle, 0)
        assert grandchild > 0
        _, status = os.waitpid(grandchild, 0)  # ours to reap: CLONE_PARENT made it our child
        assert os.waitstatus_to_exitcode(status) == 0
        with open(out) as f:
            assert int(f.read()) == os.getpid()


# --- a saved join target that names another namespace by now -----------------------------------------

@needs_root  # namespaces only root may create or join here
def test_join_with_the_wrong_inode_is_refused(elsewhere: Callable[[str], str]) -> None:
    """A /proc/PID/ns path saved for later (a service's restart) names another namespace once the PID
    is reused: with ``inode`` the join fails at setns (ESTALE) instead of joining that one."""
    uts = elsewhere("uts")
    inode = os.stat(uts).st_ino
    with pytest.raises(fe.ChildError) as info:
        _spawn(fe.SysProcAttr(setns=[fe.SetNS(uts, fe.CLONE_NEWUTS, inode + 1)]))
    got = (info.value.location, info.value.index, info.value.errno)
    assert got == (fe.ErrorLocation.SETNS, 0, errno.ESTALE)
    assert _spawn(fe.SysProcAttr(setns=[fe.SetNS(uts, fe.CLONE_NEWUTS, inode)])) == 0


def test_join_by_pid_after_the_pid_is_gone_fails_closed() -> None:
    """The path of a process that exited names nothing, and with its inode nothing else either."""
    holder = fe.start_process("/bin/sleep", ["sleep", "60"], fe.ProcAttr(
        files=[0, 1, 2], sys=fe.SysProcAttr(cloneflags=fe.CLONE_NEWUTS | (0 if ROOT else fe.CLONE_NEWUSER))))
    path = f"/proc/{holder.pid}/ns/uts"
    entry = fe.SetNS(path, fe.CLONE_NEWUTS, os.stat(path).st_ino)
    holder.kill()
    holder.wait()
    with pytest.raises(fe.ChildError) as info:
        _spawn(fe.SysProcAttr(setns=[entry]))
    assert info.value.location == fe.ErrorLocation.SETNS


@pytest.mark.parametrize("sys", [fe.SysProcAttr(sync=lambda pid: None), fe.SysProcAttr(pidfd=True)],
                         ids=["sync socket and error pipe", "nothing of its own"])
def test_a_closed_fd_in_files_fails_even_where_the_spawn_reuses_its_number(sys: fe.SysProcAttr,
                                                                          no_new_child: None) -> None:
    """files names an fd the caller closed: the spawn's own pipe took its number, and the child got
    that pipe as its fd 3, where a spawn that opens nothing fails at the fd pass."""
    fd = os.open("/dev/null", os.O_RDONLY)
    os.close(fd)
    fds = open_fds()
    with pytest.raises(fe.ChildError) as e:
        fe.start_process(TRUE, ["true"], fe.ProcAttr(files=[0, 1, 2, fd], sys=sys))
    assert (e.value.errno, e.value.index) == (errno.EBADF, 3)
    assert e.value.location in (fe.ErrorLocation.FCNTL, fe.ErrorLocation.DUP3)
    assert open_fds() == fds


# --- pdeathsig's check compares with the parent the child sees ----------------------------------------

def _ran_with_pdeathsig(sys: fe.SysProcAttr, api: str) -> int:
    """The exit status of ``sh -c 'exit 7'`` started with pdeathsig and ``sys``: 7 when it ran."""
    attr, argv = fe.ProcAttr(files=[0, 1, 2], sys=sys), ["sh", "-c", "exit 7"]
    if api == "start_process":
        return fe.start_process("/bin/sh", argv, attr).wait()
    if api == "fork_exec":
        pid = fe.fork_exec("/bin/sh", argv, attr)
    else:
        pid = fe.prepare("/bin/sh", argv, attr).fork_exec()
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@needs_root  # the holder's PID namespace, joined
@pytest.mark.parametrize("api", ["fork_exec", "start_process", "prepare"])
def test_pdeathsig_in_a_joined_pid_namespace_runs_the_program(api: str) -> None:
    """Born in a joined PID namespace, the child sees its parent (outside) as pid 0: Go's check "the
    parent is gone already" compared that with our pid and killed the child before execve, while the
    spawn reported success. The check compares with what the child sees while we live."""
    holder = fe.start_process("/bin/sleep", ["sleep", "60"], fe.ProcAttr(sys=fe.SysProcAttr(
        cloneflags=fe.CLONE_NEWPID)))
    try:
        sys = fe.SysProcAttr(pdeathsig=signal.SIGTERM, setns=[fe.SetNS(f"/proc/{holder.pid}/ns/pid")])
        assert _ran_with_pdeathsig(sys, api) == 7
        new = fe.SysProcAttr(pdeathsig=signal.SIGTERM, cloneflags=fe.CLONE_NEWPID)
        assert _ran_with_pdeathsig(new, api) == 7
    finally:
        holder.kill()
        holder.wait()


def _pdeathsig_with_clone_parent() -> int:
    """In a child of ours (so that its child, our grandchild, is ours to reap): fork_exec with
    CLONE_PARENT and pdeathsig, then the status of the program it started."""
    pid = fe.fork_exec("/bin/sh", ["sh", "-c", "exit 7"], fe.ProcAttr(files=[0, 1, 2], sys=fe.SysProcAttr(
        cloneflags=fe.CLONE_PARENT, pdeathsig=signal.SIGTERM)))
    return pid


def test_pdeathsig_with_clone_parent_runs_the_program() -> None:
    """With CLONE_PARENT the child's parent is ours: the check compares with our parent's pid."""
    r, w = os.pipe()
    middle = os.fork()
    if middle == 0:  # the caller: its CLONE_PARENT child is this test's child, a sibling of the caller
        try:
            os.write(w, str(_pdeathsig_with_clone_parent()).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        sibling = int(f.read())
    assert os.waitpid(middle, 0)[1] == 0
    assert os.waitstatus_to_exitcode(os.waitpid(sibling, 0)[1]) == 7


def test_a_closed_fd_with_an_inode_is_a_setns_error(no_new_child: None) -> None:
    """The inode check reads the fd: a closed one is the EBADF the child's setns would have met."""
    fd = os.open("/dev/null", os.O_RDONLY)
    os.close(fd)
    with pytest.raises(fe.ChildError) as info:
        _spawn(fe.SysProcAttr(setns=[fe.SetNS(fd, fe.CLONE_NEWUTS, 12345)]))
    got = (info.value.location, info.value.index, info.value.errno)
    assert got == (fe.ErrorLocation.SETNS, 0, errno.EBADF)


def _spawn_with_groups(groups: list[int], **sys: object) -> object:
    """In a forked root process whose supplementary groups are ``groups``: a child in a new user
    namespace (0 mapped to 100000, setgroups denied) that sets Credential(0, 0) without groups. Its
    /proc/self/status Groups line, or the refusal."""
    os.setgroups(groups)
    r, w = os.pipe()
    attr = fe.SysProcAttr(cloneflags=fe.CLONE_NEWUSER, credential=fe.Credential(0, 0, (), **sys),
                          uid_mappings=[fe.SysProcIDMap(0, 100000, 1)],
                          gid_mappings=[fe.SysProcIDMap(0, 100000, 1)])
    def children() -> str:
        with open(f"/proc/self/task/{os.getpid()}/children") as f:
            return f.read()

    try:
        before = children()
        try:
            proc = fe.start_process("/bin/grep", ["grep", "^Groups:", "/proc/self/status"],
                                    fe.ProcAttr(files=[0, w, 2], sys=attr))
        except ValueError as e:
            return ("refused", str(e), children() == before)
        os.close(w)
        w = -1
        with os.fdopen(r, closefd=False) as f:
            out = f.read()
        return ("ran", proc.wait(), out.split()[1:])
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


@needs_root
def test_a_credential_without_groups_never_keeps_the_callers_groups_silently() -> None:
    """Go skips setgroups for a Credential without groups where the new user namespace denies it
    (Go behaviour 10): the child kept the caller's supplementary groups (here 4, adm), which still
    open the host's files of that group. Refused naming the field, before any process; with
    no_setgroups they are kept knowingly, and a group the child's own gid maps to is no leak."""
    kind, message, no_child = run_in_fork(_spawn_with_groups, [4, 27])
    assert kind == "refused" and no_child
    assert message.startswith("SysProcAttr.credential.groups: is empty (no supplementary groups), but the "
                              "child's user namespace denies setgroups") and "groups 4, 27," in message
    assert run_in_fork(_spawn_with_groups, [4], no_setgroups=True) == ("ran", 0, ["65534"])
    assert run_in_fork(_spawn_with_groups, [100000]) == ("ran", 0, ["0"])
    assert run_in_fork(_spawn_with_groups, []) == ("ran", 0, [])


@pytest.mark.parametrize("where", ["cloneflags", "unshareflags"])
def test_groups_in_a_new_user_namespace_that_denies_setgroups_are_refused_first(
        where: str, no_new_child: None) -> None:
    """Credential groups where the child's new user namespace denies setgroups (gid_mappings without
    gid_mappings_enable_setgroups): the kernel refuses setgroups there, and the spawn failed only in
    the child (EPERM at SETGROUPS), as Go's does. Refused naming the field, before any process."""
    maps = [fe.SysProcIDMap(0, 0, 10)]
    attr = fe.SysProcAttr(credential=fe.Credential(1, 1, (5,)), uid_mappings=maps, gid_mappings=maps,
                          **{where: fe.CLONE_NEWUSER})
    with pytest.raises(ValueError, match=r"^SysProcAttr\.credential\.groups: cannot be set: the child's new "
                       r"user namespace denies setgroups"):
        _spawn(attr)
    if where == "cloneflags" and os.geteuid() == 0:  # allowed (root writes "allow"), they are set
        attr.gid_mappings_enable_setgroups = True
        out = capture(["/usr/bin/id", "-G"], attr)
        assert out.returncode == 0 and out.out.split() == ["1", "5"], out


# --- a join fd the caller's other threads can change ---------------------------------------------------

def _swapped_after_the_checks(fd: int, replacement: int) -> Callable[..., object]:
    """A trace function that, once the spawn has opened and checked its joins (the first line of
    start_spawn after ``open_joins``), makes ``fd`` another file as a thread of the caller's could
    (dup2), before anything joins it."""
    import ast
    import inspect
    import textwrap

    from pyforkexec import forkexec

    lines, first = inspect.getsourcelines(forkexec.start_spawn)
    # The first line of the statement after the one that calls open_joins (however it is wrapped).
    statements = [node for node in ast.walk(ast.parse(textwrap.dedent("".join(lines))))
                  if isinstance(node, ast.stmt)]
    call = next(node for node in statements if not isinstance(node, (ast.FunctionDef, ast.With))
                and "open_joins(" in ast.unparse(node))
    after = first - 1 + min(node.lineno for node in statements if node.lineno > call.end_lineno)

    def trace(frame: object, event: str, arg: object) -> object:
        code = frame.f_code  # type: ignore[attr-defined]
        if code is not forkexec.start_spawn.__code__:
            return None
        def line(frame: object, event: str, arg: object) -> object:
            if event == "line" and frame.f_lineno == after:  # type: ignore[attr-defined]
                os.dup2(replacement, fd)
            return line
        return line
    return trace


@needs_root  # a join of a uts namespace not owned by the caller's user namespace
def test_a_join_fd_swapped_after_its_checks_still_joins_what_was_checked(
        elsewhere: Callable[[str], str]) -> None:
    """The fd of a SetNS is checked (not the caller's own, its inode) and then joined: the spawn joins
    its own copy, so a caller's fd number made another file in between (here: the caller's own uts)
    changes nothing; joined by number, the program ran in the caller's namespace."""
    import sys as _sys

    theirs = os.open(elsewhere("uts"), os.O_RDONLY)
    own = os.open(_own("uts"), os.O_RDONLY)
    r, w = os.pipe()
    try:
        _sys.settrace(_swapped_after_the_checks(theirs, own))
        try:
            proc = fe.start_process("/bin/readlink", ["readlink", "/proc/self/ns/uts"], fe.ProcAttr(
                files=[0, w, 2], sys=fe.SysProcAttr(setns=[fe.SetNS(theirs, fe.CLONE_NEWUTS)])))
        finally:
            _sys.settrace(None)
        os.close(w)
        w = -1
        assert proc.wait() == 0
        with os.fdopen(r, closefd=False) as out:
            ran_in = out.read().strip()
        assert os.stat(_own("uts")).st_ino != os.stat(elsewhere("uts")).st_ino
        assert ran_in == os.readlink(elsewhere("uts")), "the program ran in the namespace swapped in"
        assert os.fstat(theirs).st_ino == os.stat(_own("uts")).st_ino  # the swap did happen
    finally:
        for fd in (theirs, own, r, w):
            if fd >= 0:
                os.close(fd)


def test_a_fileno_that_raises_anything_is_refused_naming_the_field(no_new_child: None) -> None:
    """A file object whose fileno() raises an exception of its own is that field's TypeError."""
    class Broken:
        def fileno(self) -> int:
            raise RuntimeError("boom")

    with pytest.raises(TypeError, match=r"ProcAttr\.files\[1\].*RuntimeError: boom"):
        fe.fork_exec(TRUE, ["true"], fe.ProcAttr(files=[0, Broken(), 2]))


def test_a_join_of_a_time_namespace_is_refused_before_any_process(no_new_child: None) -> None:
    """The kernel lets only a process that shares its memory with no other join a time namespace: the
    child (sharing the caller's until execve) always failed at setns with EUSERS, "too many users",
    after it was cloned. Refused naming the entry and why, before any process."""
    if not os.path.exists("/proc/self/ns/time"):
        pytest.skip("this kernel has no time namespaces")
    holder = fe.start_process("/bin/sleep", ["sleep", "60"], fe.ProcAttr(files=[0, 1, 2], sys=fe.SysProcAttr(
        cloneflags=fe.CLONE_NEWTIME | (0 if ROOT else fe.CLONE_NEWUSER))))
    try:
        with pytest.raises(ValueError, match=r"^SysProcAttr\.setns\[0\]: joins a time namespace.*EUSERS"):
            _spawn(fe.SysProcAttr(setns=[fe.SetNS(f"/proc/{holder.pid}/ns/time")]))
    finally:
        holder.kill()
        holder.wait()


@needs_root  # a mount namespace to join that is not the caller's own
@pytest.mark.parametrize("kind", ["mnt", "user"])
def test_a_mount_or_user_join_with_clone_fs_is_refused_before_any_process(
        kind: str, elsewhere: Callable[[str], str], no_new_child: None) -> None:
    """The kernel refuses setns of a mount or user namespace to a process that shares its fs_struct
    (CLONE_FS): the child failed at setns with EINVAL after it was cloned."""
    holder = None
    if kind == "user":
        holder = fe.start_process("/bin/sleep", ["sleep", "60"], fe.ProcAttr(
            files=[0, 1, 2], sys=fe.SysProcAttr(cloneflags=fe.CLONE_NEWUSER)))
    target = elsewhere(kind) if holder is None else f"/proc/{holder.pid}/ns/user"
    try:
        with pytest.raises(ValueError, match=r"^SysProcAttr\.setns\[0\]: joins a (mount|user) namespace.*"
                                             r"CLONE_FS"):
            _spawn(fe.SysProcAttr(cloneflags=fe.CLONE_FS, setns=[fe.SetNS(target)]))
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()


# --- spawns whose inputs alone make the child fail (or made it, against Go) ----------------------------

@pytest.fixture
def in_userns() -> Iterator[Callable[[str], str]]:
    """A sleeping process in a user namespace of its own, with mount, cgroup and PID namespaces it owns;
    yields ``path(kind)``, the file of its namespace of that kind."""
    flags = fe.CLONE_NEWUSER | fe.CLONE_NEWNS | fe.CLONE_NEWCGROUP | fe.CLONE_NEWPID
    one = [fe.SysProcIDMap(0, os.geteuid(), 1)]
    with namespace_holder(fe.SysProcAttr(cloneflags=flags, uid_mappings=one,
                                         gid_mappings=[fe.SysProcIDMap(0, os.getegid(), 1)])) as path:
        yield path


NOT_SHARED = ["/bin/sh", "-c", "! grep -q ' shared:' /proc/self/mountinfo"]


@needs_root  # CLONE_NEWNS in cloneflags
def test_a_mount_namespace_of_cloneflags_then_leaving_the_user_namespace_runs_as_in_go(
        in_userns: Callable[[str], str]) -> None:
    """Go runs these (it makes / private only for unshareflags CLONE_NEWNS); the default propagation
    step used to run after the child had left the user namespace owning the mount namespace, and fail
    (MOUNT_ROOT EPERM). Now / is made private first, and is."""
    for sys in (fe.SysProcAttr(cloneflags=fe.CLONE_NEWNS, unshareflags=fe.CLONE_NEWUSER),
                fe.SysProcAttr(cloneflags=fe.CLONE_NEWNS, setns=[fe.SetNS(in_userns("user"))]),
                fe.SysProcAttr(cloneflags=fe.CLONE_NEWNS, unshareflags=fe.CLONE_NEWUSER,
                               mount_propagation="slave")):
        proc = fe.start_process(NOT_SHARED[0], NOT_SHARED, fe.ProcAttr(files=[0, 1, 2], sys=sys))
        assert proc.wait() == 0, sys


@needs_root  # CLONE_NEWNS/NEWUTS in cloneflags
@pytest.mark.parametrize("extra", [{"cloneflags": fe.CLONE_NEWUTS, "hostname": "x"},
                                   {"cloneflags": fe.CLONE_NEWNS, "mount_propagation": "unchanged",
                                    "mounts": [fe.Mount.tmpfs("/mnt")]}], ids=["hostname", "mounts"])
def test_a_step_on_a_namespace_of_cloneflags_after_a_user_join_is_refused(
        extra: dict, in_userns: Callable[[str], str], no_new_child: None) -> None:
    field = "hostname" if "hostname" in extra else "mounts"
    with pytest.raises(ValueError, match=rf"^SysProcAttr\.{field}: .*setns\[0\], a join of a user namespace"):
        _spawn(fe.SysProcAttr(setns=[fe.SetNS(in_userns("user"))], **extra))


@pytest.mark.parametrize(("kind", "for_children"), [("mnt", False), ("cgroup", False), ("pid", True)])
def test_a_join_the_child_makes_from_a_new_user_namespace_is_refused(
        kind: str, for_children: bool, in_userns: Callable[[str], str], no_new_child: None) -> None:
    """From the user namespace CLONE_NEWUSER makes, the child's own setns always failed (EPERM)."""
    one = [fe.SysProcIDMap(0, os.geteuid(), 1)]
    sys = fe.SysProcAttr(cloneflags=fe.CLONE_NEWUSER, uid_mappings=one,
                         setns=[fe.SetNS(in_userns(kind), for_children=for_children)])
    with pytest.raises(ValueError, match=r"^SysProcAttr\.setns\[0\]: joins a namespace .* the child must "
                       r"join itself"):
        _spawn(sys)


def test_a_pidfd_mask_with_mount_and_a_new_user_namespace_is_refused(
        in_userns: Callable[[str], str], no_new_child: None) -> None:
    pid = int(in_userns("user").split("/")[2])
    pidfd = os.pidfd_open(pid)
    try:
        sys = fe.SysProcAttr(cloneflags=fe.CLONE_NEWUSER,
                             setns=[fe.SetNS(pidfd, fe.CLONE_NEWNS | fe.CLONE_NEWNET)])
        with pytest.raises(ValueError, match=r"^SysProcAttr\.setns\[0\]: joins a namespace"):
            _spawn(sys)
    finally:
        os.close(pidfd)


@needs_root  # CLONE_NEWPID in unshareflags
def test_a_pid_join_for_children_with_unshare_newpid_is_refused(
        in_userns: Callable[[str], str], no_new_child: None) -> None:
    sys = fe.SysProcAttr(unshareflags=fe.CLONE_NEWPID,
                         setns=[fe.SetNS(in_userns("pid_for_children"), for_children=True)])
    with pytest.raises(ValueError, match=r"^SysProcAttr\.setns\[0\]\.for_children: .*EINVAL"):
        _spawn(sys)


# --- a mount on the program's own / -------------------------------------------------------------------
# A process's root is a mount it holds, not a path: a mount made on / stacks over it, and the program,
# still rooted in the mount below, sees the host's tree as if nothing had been mounted.


@needs_root
@pytest.mark.parametrize("target", ["/", "//", "/.", "/proc/self/root"])
@pytest.mark.parametrize("kind", ["tmpfs", "bind"])
def test_a_mount_on_the_programs_own_root_without_a_new_root_is_refused(
        kind: str, target: str, tmp_path: os.PathLike, no_new_child: None) -> None:
    mount = (fe.Mount("tmpfs", target, fstype="tmpfs") if kind == "tmpfs"
             else fe.Mount(str(tmp_path), target, flags="MS_BIND"))
    with pytest.raises(ValueError, match=r"^SysProcAttr\.mounts\[0\]\.target: is the program's / and there "
                       r"is no new root"):
        _spawn(fe.SysProcAttr(cloneflags=fe.CLONE_NEWNS, mounts=[mount]))


@needs_root
def test_a_remount_or_propagation_change_of_the_programs_root_acts_on_it() -> None:
    # (what the program's / is: these change that mount itself, not one stacked over it)
    remount = fe.Mount(None, "/", flags="MS_REMOUNT|MS_BIND|MS_RDONLY")
    private = fe.Mount(None, "/", flags="MS_REC|MS_PRIVATE")
    probe = f"/.pfe-root-remounted-{os.getpid()}"  # in / itself: /tmp may be a mount of its own
    try:
        res = capture(["/bin/sh", "-c", f"touch {probe} 2>/dev/null; echo $?"],
                      fe.SysProcAttr(cloneflags=fe.CLONE_NEWNS, mounts=[private, remount]))
        assert res.out.strip() == "1", res  # / is read-only for the program
        assert not os.path.exists(probe)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(probe)


# --- the caller's terminal after a spawn with foreground (h144) ---------------------------------------
# The child makes its group the terminal's foreground one before its other steps. A later step that
# failed, a spawn undone (an exception, a KeyboardInterrupt) or run() done used to leave the terminal's
# foreground to a group of no live process: the caller, now in the background of its own terminal,
# is stopped by SIGTTIN at its next read. Run in a session of its own on a pty, whose foreground
# process group the script prints before and after.

_FOREGROUND_SCRIPT = r'''
import os, signal, sys
import pyforkexec as fe
mode = sys.argv[1]
fd = os.open(os.ttyname(0), os.O_RDWR)
before, error = os.tcgetpgrp(fd), ""
sys_attr = fe.SysProcAttr(foreground=True, ctty=fd)
attr = fe.ProcAttr(files=[0, 1, 2], sys=sys_attr)
def interrupt(*_):
    raise KeyboardInterrupt
try:
    if mode == "child_error":
        fe.fork_exec("/nonexistent", ["x"], attr)
    elif mode == "child_error_pidfd":
        sys_attr.pidfd = True
        fe.start_process("/nonexistent", ["x"], attr)
    elif mode == "sync_raises":
        sys_attr.sync = lambda pid: 1 / 0
        fe.start_process("/bin/true", ["true"], attr)
    elif mode == "sync_interrupted":
        sys_attr.sync = lambda pid: interrupt()
        fe.start_process("/bin/true", ["true"], attr)
    elif mode == "joined_group":
        leader = fe.start_process("/bin/sleep", ["sleep", "30"],
                                  fe.ProcAttr(sys=fe.SysProcAttr(setpgid=True)))
        try:
            sys_attr.pgid = leader.pid
            fe.fork_exec("/nonexistent", ["x"], attr)
        finally:
            leader.kill()
            leader.wait()
    elif mode == "new_pid_namespace":  # pgid 1: the child's own group there
        sys_attr.cloneflags, sys_attr.pgid = fe.CLONE_NEWUSER | fe.CLONE_NEWPID, 1
        fe.start_process("/nonexistent", ["x"], attr)
    elif mode == "run":
        fe.run(["/bin/true"], sys=sys_attr)
    elif mode == "start_wait":
        fe.start_process("/bin/true", ["true"], attr).wait()
    elif mode == "start_pidfd_wait":
        sys_attr.pidfd = True
        fe.start_process("/bin/true", ["true"], attr).wait()
    elif mode == "start_kill_wait":
        proc = fe.start_process("/bin/sleep", ["sleep", "30"], attr)
        proc.kill()
        proc.wait()
    elif mode == "start_poll":
        proc = fe.start_process("/bin/true", ["true"], attr)
        while proc.poll() is None:
            pass
    elif mode == "start_with":
        with fe.start_process("/bin/true", ["true"], attr):
            pass
    elif mode == "start_with_raises":
        with fe.start_process("/bin/sleep", ["sleep", "30"], attr) as proc:
            signal.signal(signal.SIGALRM, interrupt)
            signal.setitimer(signal.ITIMER_REAL, 0.2)
            proc.wait()
            signal.setitimer(signal.ITIMER_REAL, 0)
    elif mode == "prepared_start_wait":
        fe.prepare("/bin/true", ["true"], attr).start().wait()
    elif mode == "start_wait_timeout":
        proc = fe.start_process("/bin/sleep", ["sleep", "0.3"], attr)
        try:
            proc.wait(0.01)
        except fe.TimeoutExpired:
            pass
        proc.wait()
    elif mode == "joined_group_reaped_first":  # a pipeline's second process ends before its leader
        sys_attr.pidfd = True
        leader = fe.start_process("/bin/sleep", ["sleep", "30"], attr)
        try:
            joined = fe.ProcAttr(files=[0, 1, 2],
                                 sys=fe.SysProcAttr(foreground=True, ctty=fd, pgid=leader.pid))
            fe.start_process("/bin/true", ["true"], joined).wait()
            if os.tcgetpgrp(fd) != leader.pid:
                error = "given_back_while_the_leader_runs"
        finally:
            leader.kill()
            leader.wait()
    elif mode == "start_reaped_by_another":
        proc = fe.start_process("/bin/true", ["true"], attr)
        os.waitpid(-1, 0)
        try:
            proc.wait()
        except ChildProcessError:
            pass
    elif mode == "run_timeout":
        fe.run(["/bin/sleep", "30"], sys=sys_attr, timeout=0.2)
    elif mode == "run_interrupted":
        signal.signal(signal.SIGALRM, interrupt)
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        fe.run(["/bin/sleep", "30"], sys=sys_attr)
except BaseException as e:
    error = type(e).__name__
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTTOU])
print("RESULT", before, os.tcgetpgrp(fd), os.getpgrp(), error, flush=True)
'''


@pytest.mark.parametrize(("mode", "error"), [
    ("child_error", "ChildError"), ("child_error_pidfd", "ChildError"), ("sync_raises", "ChildError"),
    ("sync_interrupted", "KeyboardInterrupt"), ("joined_group", "ChildError"),
    ("new_pid_namespace", "ChildError"), ("run", ""),
    ("run_timeout", "TimeoutExpired"), ("run_interrupted", "KeyboardInterrupt"),
    # start_process's Process gives the terminal back at its reap, as run() does (h149)
    ("start_wait", ""), ("start_pidfd_wait", ""), ("start_kill_wait", ""), ("start_poll", ""),
    ("start_with", ""), ("start_with_raises", "KeyboardInterrupt"), ("prepared_start_wait", ""),
    ("start_wait_timeout", ""), ("start_reaped_by_another", ""), ("joined_group_reaped_first", "")])
def test_foreground_terminal_given_back(mode: str, error: str) -> None:
    fields = in_a_terminal(_FOREGROUND_SCRIPT, mode)
    before, after, own = map(int, fields[:3])
    assert (fields[3] if len(fields) > 3 else "") == error, fields
    assert before == own and after == own, f"the terminal's foreground is {after}, not the caller's {own}"


# --- setctty on the caller's own controlling terminal (h144) -------------------------------------------
# Go's TIOCSCTTY passes 1: with CAP_SYS_ADMIN the child's new session takes the terminal from the
# session whose controlling terminal it is. Given the caller's own, the caller's session was left with
# no controlling terminal for good (as root; unprivileged, a ChildError at IOCTL after the clone). Now
# refused before any process, naming ctty; a terminal of the child's own (a new pty) still becomes its
# controlling terminal.

_SETCTTY_SCRIPT = r'''
import os, pty, sys
import pyforkexec as fe
fd = os.open(os.ttyname(0), os.O_RDWR)
def has_ctty():
    try:
        os.close(os.open("/dev/tty", os.O_RDWR))
        return True
    except OSError:
        return False
before, error = has_ctty(), ""
attr = fe.SysProcAttr(setsid=True, setctty=True, ctty=0)
try:
    fe.start_process("/bin/true", ["true"], fe.ProcAttr(files=[fd, 1, 2], sys=attr)).wait()
except ValueError as e:
    error = str(e).split(":")[0]
master, slave = pty.openpty()  # a terminal of the child's own: its controlling terminal
r, w = os.pipe()
p = fe.start_process("/bin/sh", ["sh", "-c", "tty <&0 >&3 && (: </dev/tty) && echo ok >&3"],
                     fe.ProcAttr(files=[slave, 1, 2, w], sys=attr))
os.close(w)
own = b""
while chunk := os.read(r, 100):
    own += chunk
own = own.decode().split()
print("RESULT", before, has_ctty(), error or "-", p.wait(), own[-1] if own else "-", flush=True)
'''


def test_setctty_does_not_take_the_caller_s_controlling_terminal() -> None:
    assert in_a_terminal(_SETCTTY_SCRIPT) == ["True", "True", "SysProcAttr.ctty", "0", "ok"]


# --- a uid/gid map longer than a page (h144) -----------------------------------------------------------
# The kernel takes a map in one write shorter than a page (EINVAL otherwise). Maps of up to 340 lines
# whose lines made a page or more passed the checks and failed in the child (ChildError at the map
# write): a refusal the arguments decide, now made before any process exists. Around the boundary,
# each verdict agrees with the kernel's, and a map taken is the map the child has.

def _map_of_length(total: int) -> list[fe.SysProcIDMap]:
    """Lines "c c 1\n" with 10-digit ids (24 bytes each), and for a total not a multiple of 24 a last one
    of 14 to 17 bytes after 4080 (170 lines): ``total`` bytes in all."""
    lines, rest = divmod(total, 24) if total % 24 == 0 else (170, total - 4080)
    maps = [fe.SysProcIDMap(4_000_000_000 + 10 * i, 4_000_000_000 + 10 * i, 1) for i in range(lines)]
    if rest:  # 2d + 4 bytes for d-digit ids and size 1, 2d + 5 for size 10
        digits, size = (rest - 4) // 2, 1 if rest % 2 == 0 else 10
        maps.append(fe.SysProcIDMap(10 ** (digits - 1), 10 ** (digits - 1), size))
    return maps


@needs_root
@pytest.mark.parametrize("total", [4008, 4094, 4095, 4096, 4097, 4200])
def test_a_map_of_a_page_or_more_is_refused_before_the_child(total: int) -> None:
    from pyforkexec.child.plan import format_id_maps

    maps = _map_of_length(total)
    assert len(format_id_maps(maps)) == total
    attrs = fe.SysProcAttr(cloneflags=fe.CLONE_NEWUSER, uid_mappings=maps)
    if total >= 4096:
        with _no_new_child_here(), pytest.raises(ValueError, match=r"^SysProcAttr\.uid_mappings: .*page"):
            fe.start_process("/bin/cat", ["cat"], fe.ProcAttr(sys=attrs))
        return
    got = capture(["/bin/cat", "/proc/self/uid_map"], attrs).out
    assert sorted(tuple(map(int, ln.split())) for ln in got.splitlines()) == \
        sorted((m.container_id, m.host_id, m.size) for m in maps)  # (the kernel sorts a long map)


_no_new_child_here = contextlib.contextmanager(_no_new_child)


# --- credentials, maps and capabilities, generated (h144) ----------------------------------------------
# Random SysProcAttrs of credential, uid/gid maps (cloneflags or unshareflags CLONE_NEWUSER, or none),
# setgroups, ambient_caps or capabilities, and no_new_privs. Each spawn is refused (ValueError or
# TypeError, no child), fails (ChildError, its child reaped), or runs a program whose /proc/self/status
# and maps are exactly those asked for: ids, supplementary groups, the five capability sets,
# no_new_privs, uid_map, gid_map and setgroups. No fd stays behind either way.

_STATUS_SCRIPT = ("cat /proc/self/status; echo ==; cat /proc/self/uid_map; echo ==; cat /proc/self/gid_map; "
                  "echo ==; cat /proc/self/setgroups")


def _generated_attr(rng: random.Random, euid: int, egid: int) -> dict:
    from pyforkexec.sandbox.caps import Capabilities, cap_last_cap

    caps = [0, 5, 10, 12, 13, 21, 38, cap_last_cap()]
    kw: dict = {}
    mode = rng.choice(["none", "clone", "clone", "unshare"])
    uidm = gidm = None
    if mode != "none":
        if mode == "clone" and euid == 0 and rng.random() < 0.7:  # ranges only a privileged writer may map
            def extents() -> list[fe.SysProcIDMap]:
                out, inner, outer = [], 0, rng.choice([0, 100000, 4000000000])
                for _ in range(rng.randint(1, 3)):
                    size = rng.choice([1, 10, 1000, 65536])
                    out.append(fe.SysProcIDMap(inner, outer, size))
                    inner, outer = inner + size + rng.choice([0, 5]), outer + size + rng.choice([0, 7])
                return out
            uidm, gidm = extents(), extents()
        else:  # one id, the caller's own
            inner = rng.choice([0, 0, 1000, 65534])
            uidm = [fe.SysProcIDMap(inner, euid, 1)] if rng.random() < 0.9 else None
            gidm = [fe.SysProcIDMap(rng.choice([0, inner]), egid, 1)] if rng.random() < 0.9 else None
        kw.update(uid_mappings=uidm, gid_mappings=gidm)
        if gidm is not None and rng.random() < 0.3:
            kw["gid_mappings_enable_setgroups"] = True
        kw["cloneflags" if mode == "clone" else "unshareflags"] = fe.CLONE_NEWUSER

    def some_id(maps: list[fe.SysProcIDMap] | None) -> int:
        if maps and rng.random() < 0.8:
            m = rng.choice(maps)
            return m.container_id + rng.randrange(m.size)
        return rng.choice([0, 1, 1000, 65534])

    if rng.random() < 0.7:
        groups = [] if rng.random() < 0.4 else sorted({some_id(gidm) for _ in range(rng.randint(1, 4))})
        kw["credential"] = fe.Credential(some_id(uidm), some_id(gidm), groups,
                                         not groups and rng.random() < 0.2)
    r = rng.random()
    if r < 0.3:
        kw["ambient_caps"] = sorted(rng.sample(caps, rng.randint(1, 3)))
    elif r < 0.45:
        kw["capabilities"] = Capabilities(drop_all_others=False, drop=rng.sample(caps, rng.randint(1, 3)))
    elif r < 0.6:
        keep = rng.sample(caps, rng.randint(0, 4))
        kw["capabilities"] = Capabilities(keep=keep, ambient=[c for c in keep if rng.random() < 0.5])
    if rng.random() < 0.4:
        kw["no_new_privs"] = True
    return kw


def _expected_status(kw: dict, own: dict[str, str]) -> dict:
    """What /proc/self/status shows for the spawn of ``kw`` by this process (its status ``own``)."""
    from pyforkexec.sandbox.caps import cap_last_cap, check_capabilities

    def mapped(maps: list[fe.SysProcIDMap] | None, host: int) -> int:
        for m in maps or ():
            if m.host_id <= host < m.host_id + m.size:
                return m.container_id + host - m.host_id
        return 65534  # the overflow id

    newns = bool((kw.get("cloneflags", 0) | kw.get("unshareflags", 0)) & fe.CLONE_NEWUSER)
    cred, uidm, gidm = kw.get("credential"), kw.get("uid_mappings"), kw.get("gid_mappings")
    uid, gid = ((cred.uid, cred.gid) if cred else (mapped(uidm, os.geteuid()), mapped(gidm, os.getegid()))
                if newns else (os.geteuid(), os.getegid()))
    kept = cred is None or cred.no_setgroups or (
        gidm is not None and not kw.get("gid_mappings_enable_setgroups") and not cred.groups)
    own_groups = {int(g) for g in own["Groups"].split()}
    groups = ({mapped(gidm, g) for g in own_groups} if newns else own_groups) if kept else set(cred.groups)
    ambient = sum(1 << c for c in kw.get("ambient_caps", ()))
    # a new user namespace starts with a full bounding set
    bounding = (1 << (cap_last_cap() + 1)) - 1 if newns else int(own["CapBnd"], 16)
    if kw.get("capabilities") is not None:
        plan = check_capabilities("capabilities", kw["capabilities"])
        bounding &= plan.keep
        ambient |= sum(1 << c for c in plan.ambient)
    setgroups = None
    if newns and gidm is not None:
        setgroups = "allow" if kw.get("gid_mappings_enable_setgroups") and kw.get("cloneflags") else "deny"
    return {"uid": uid, "gid": gid, "groups": groups, "ambient": ambient, "bounding": bounding,
            "nnp": int(bool(kw.get("no_new_privs"))), "newns": newns, "setgroups": setgroups}


def _differences(kw: dict, out: str, own: dict[str, str]) -> list[str]:
    parts = out.split("==\n")
    st = {k: v.strip() for k, _, v in (ln.partition(":") for ln in parts[0].splitlines()) if v}
    want = _expected_status(kw, own)
    bad = []
    for name in ("Uid", "Gid"):
        if st[name].split() != [str(want[name.lower()])] * 4:
            bad.append(f"{name} {st[name]}")
    if {int(g) for g in st["Groups"].split()} != want["groups"]:
        bad.append(f"Groups {st['Groups']} != {sorted(want['groups'])}")
    inh, prm, eff, bnd, amb = (int(st[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"))
    if (amb, bnd) != (want["ambient"], want["bounding"]):
        bad.append(f"CapAmb {amb:x} CapBnd {bnd:x}")
    # root's execve: the bounding set, inheritable and ambient; anyone else's: the ambient set only
    permitted = (want["bounding"] | inh | amb) if want["uid"] == 0 else want["ambient"]
    if prm != permitted or (want["uid"] != 0 and eff != permitted):
        bad.append(f"CapPrm {prm:x} CapEff {eff:x}")
    if int(st["NoNewPrivs"]) != want["nnp"]:
        bad.append(f"NoNewPrivs {st['NoNewPrivs']}")
    if want["newns"]:
        for text, key in ((parts[1], "uid_mappings"), (parts[2], "gid_mappings")):
            maps = kw.get(key)
            if maps is not None and sorted(tuple(map(int, ln.split())) for ln in text.splitlines()) != \
                    sorted((m.container_id, m.host_id, m.size) for m in maps):
                bad.append(f"{key} {text!r}")
        if want["setgroups"] is not None and parts[3].strip() != want["setgroups"]:
            bad.append(f"setgroups {parts[3].strip()}")
    return bad


def _generated_spawns(first: int, count: int) -> tuple[dict[str, int], list[str]]:
    """Outcomes by kind, and each case that broke a rule."""
    from helpers.procs import children

    with open("/proc/self/status") as f:
        own = {k: v.strip() for k, _, v in (ln.partition(":") for ln in f.read().splitlines()) if v}
    kinds: dict[str, int] = {}
    broken = []
    for seed in range(first, first + count):
        kw = _generated_attr(random.Random(seed), os.geteuid(), os.getegid())
        fds, kids = open_fds(), children()
        r, w = os.pipe()
        try:
            attr = fe.ProcAttr(env=["PATH=/bin:/usr/bin"], files=[0, w, 2], sys=fe.SysProcAttr(**kw))
            proc = fe.start_process("/bin/sh", ["sh", "-c", _STATUS_SCRIPT], attr)
        except (ValueError, TypeError, fe.ChildError) as e:
            kind, bad = type(e).__name__, []
        else:
            os.close(w)
            w = -1
            with os.fdopen(os.dup(r), "rb") as f:
                out = f.read().decode()
            kind = "ran"
            code = proc.wait()
            bad = _differences(kw, out, own) + ([f"exit {code}"] if code else [])
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)
        if kind != "ran" and children() != kids:
            bad.append("a child left")
        if open_fds() != fds:
            bad.append("an fd left")
        kinds[kind] = kinds.get(kind, 0) + 1
        if bad:
            broken.append(f"seed {seed}: {kw}: {'; '.join(bad)}")
    return kinds, broken


@pytest.mark.parametrize("who", ["caller", "unprivileged"])
def test_generated_credentials_maps_and_capabilities_hold_exactly(who: str, unprivileged: Callable) -> None:
    count = 150
    kinds, broken = (_generated_spawns(0, count) if who == "caller"
                     else unprivileged(_generated_spawns, 1000, count))
    assert not broken, "\n".join(broken[:10])
    assert sum(kinds.values()) == count and kinds.get("ran", 0) >= count // 5, kinds


# --- without /proc (a chroot, `umount /proc`): what cannot be checked is refused ------------------------

def _spawns_without_proc(other_user: str, other_net: str) -> list[str]:
    """In a mount namespace of its own whose /proc is detached: each spawn's error, or "ran". The
    namespace files are opened while /proc is still there."""
    from helpers.sysutil import MS_PRIVATE, MS_REC, mount
    from helpers.sysutil import unshare as unshare_now

    own_net = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    other = os.open(other_net, os.O_RDONLY | os.O_CLOEXEC)
    other_userns = os.open(other_user, os.O_RDONLY | os.O_CLOEXEC)
    own_userns = os.open("/proc/self/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    pidfd = os.pidfd_open(os.getpid())
    unshare_now(fe.CLONE_NEWNS)
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    import ctypes

    assert ctypes.CDLL(None, use_errno=True).umount2(b"/proc", 2) == 0  # MNT_DETACH
    assert not os.path.exists("/proc/self")
    bind = {"cloneflags": fe.CLONE_NEWNS | fe.CLONE_NEWUSER, "uid_mappings": [fe.SysProcIDMap(0, 0, 1)],
            "gid_mappings": [fe.SysProcIDMap(0, 0, 1)]}
    attrs = [fe.SysProcAttr(setns=[fe.SetNS(own_net)]), fe.SysProcAttr(setns=[fe.SetNS(other)]),
             fe.SysProcAttr(setns=[fe.SetNS(pidfd, fe.CLONE_NEWNET)]),
             fe.SysProcAttr(setns=[fe.SetNS(other, fe.CLONE_NEWNET)]),
             fe.SysProcAttr(**bind, mounts=[fe.Mount.bind("/tmp", "/mnt", idmap=own_userns)]),
             fe.SysProcAttr(**bind, mounts=[fe.Mount.bind("/tmp", "/mnt", idmap=other_userns)])]
    from pyforkexec.sandbox import caps

    caps.CAP_NAMES = caps.CAP_NAMES[:30]  # a table older than the kernel: must not be what counts
    said = [f"cap_last_cap {caps.cap_last_cap.__wrapped__()}"]
    for sys in attrs:
        try:
            said.append(f"ran {_spawn(sys)}")
        except Exception as e:  # reported whole
            said.append(f"{type(e).__name__}: {e}")
        with contextlib.suppress(ChildProcessError):  # (raised: no child was made)
            said[-1] += f" (a child {os.waitpid(-1, os.WNOHANG)})"
    return said


@needs_root  # a mount namespace whose /proc is detached
def test_a_join_or_idmap_whose_rule_needs_proc_is_refused_without_it(
        elsewhere: Callable[[str], str], in_userns: Callable[[str], str]) -> None:
    """Whether a join names the caller's own namespace is read from /proc/thread-self/ns: without
    /proc the check passed (its stat failed, taken for a type the kernel lacks), and a join of the
    caller's own network namespace ran the program in it as though joined elsewhere. Now refused,
    naming the entry, before any process; the same for an idmap's "not the own user namespace" rule
    (an OSError naming no field before). The last capability, which drop_all_others drops up to, was
    the last of the names pyforkexec knows: a newer kernel's would have been kept."""
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    said = run_in_fork(_spawns_without_proc, in_userns("user"), elsewhere("net"))
    assert said.pop(0) == f"cap_last_cap {last}"  # (asked of the kernel: PR_CAPBSET_READ)
    joins = "cannot be told without /proc (/proc/thread-self/ns/net: No such file or directory)"
    idmap = ("is this process's own user namespace cannot be told without /proc (/proc/thread-self/ns/user: "
             "No such file or directory)")
    assert [s.split(": ", 2)[:2] for s in said] == [["ValueError", "SysProcAttr.setns[0]"]] * 4 + \
        [["ValueError", "SysProcAttr.mounts[0].idmap"]] * 2, said
    assert all(joins in s for s in said[:4]) and all(idmap in s for s in said[4:]), said


# --- a calling thread with an fd table of its own (unshare(CLONE_FILES)) ------------------------------

def _join_from_a_thread_with_its_own_fd_table(other_net: str) -> str:
    """fd 77 is another network namespace's file in the main thread's table, and a pidfd of this process
    (in the caller's own network namespace) in the calling thread's own table: the join's outcome."""
    import ctypes
    import threading

    os.dup2(os.open(other_net, os.O_RDONLY | os.O_CLOEXEC), 77)
    said = []

    def thread() -> None:
        assert ctypes.CDLL(None, use_errno=True).unshare(0x400) == 0  # CLONE_FILES
        os.dup2(os.pidfd_open(os.getpid()), 77)
        try:
            said.append(f"ran {_spawn(fe.SysProcAttr(setns=[fe.SetNS(77, fe.CLONE_NEWNET)]))}")
        except (ValueError, fe.ChildError) as e:
            said.append(f"{type(e).__name__}: {e}")

    t = threading.Thread(target=thread)
    t.start()
    t.join()
    return said[0]


@needs_root  # a join of a network namespace not owned by the caller's user namespace
def test_a_join_fd_of_a_thread_with_its_own_fd_table_is_checked_as_that_thread_has_it(
        elsewhere: Callable[[str], str]) -> None:
    """Whether a join's fd is a pidfd was read in /proc/self/fd, the main thread's table: the calling
    thread's own fd (a pidfd of a process in the caller's namespaces) was taken for the namespace file
    the main thread has at that number, its pinning and own-namespace checks skipped, and the child
    joined the caller's own network namespace. The calling thread's table is read now."""
    assert run_in_fork(_join_from_a_thread_with_its_own_fd_table, elsewhere("net")) == (
        "ValueError: SysProcAttr.setns[0]: names the caller's own namespace (CLONE_NEWNET): the program "
        "would run in it as if no join had been asked; leave the entry out to run there")


# --- without close_range(CLOSE_RANGE_CLOEXEC) (before Linux 5.11: Debian 11; a container's seccomp) -----

# Run under a seccomp filter that fails close_range with argv[1]'s errno: fd 900 is inheritable, above
# the soft RLIMIT_NOFILE (lowered to 100 after it was opened), and each way of starting the program
# reports whether the program has it: as the caller's uid (the fds listed in /proc/self/fd), as uid
# 65534 (which may not read /proc/self/fd after the uid change: every fd up to the hard limit), with
# a plain directory bound at /proc whose self/fd lists nothing (the same: only procfs's list counts)
# and under a Landlock policy without /proc (the same).
_FD_ABOVE_THE_LIMIT = r"""
import os, resource, shutil, sys, tempfile
import pyforkexec as fe
from pyforkexec.sandbox.landlock import landlock_abi
os.dup2(os.open("/etc/hostname", os.O_RDONLY), 900, inheritable=True)
resource.setrlimit(resource.RLIMIT_NOFILE, (100, 4096))
R = ["read_file", "execute", "read_dir"]
tree = [p for p in ("/usr", "/lib", "/lib64", "/bin", "/etc") if os.path.exists(p)]
ways = {"listed": fe.SysProcAttr(), "as 65534": fe.SysProcAttr(credential=fe.Credential(65534, 65534))}
fake = tempfile.mkdtemp(prefix="pfe-fake-proc-")  # (an empty self/fd: a rootfs's /proc, a plain directory)
os.makedirs(fake + "/self/fd")
ways["fake /proc"] = fe.SysProcAttr(cloneflags=fe.CLONE_NEWNS, mounts=[fe.Mount.bind(fake, "/proc")])
if landlock_abi() >= 1:
    ways["landlock"] = fe.SysProcAttr(landlock=fe.Landlock(paths=[fe.LandlockPath(p, R) for p in tree]))
probe = "import os, sys\ntry:\n    os.fstat(900)\nexcept OSError:\n    sys.exit(0)\nsys.exit(9)"
for name, attr in ways.items():  # (the system's python3: uid 65534 may not reach a virtualenv's)
    print(name, fe.run(["/usr/bin/python3", "-I", "-c", probe], sys=attr).returncode)
shutil.rmtree(fake)
"""


@needs_root  # the credential change
@pytest.mark.parametrize("refusal", [errno.ENOSYS, errno.EINVAL, errno.EPERM],
                         ids=["ENOSYS", "EINVAL", "EPERM"])
def test_without_close_range_no_fd_above_the_files_reaches_the_program(refusal: int) -> None:
    """Where close_range(CLOSE_RANGE_CLOEXEC) is refused, every fd up to the soft RLIMIT_NOFILE was
    marked close-on-exec: one above it (the limit lowered after the fd was opened) reached the program,
    a file of the caller in an isolated program; a container's EPERM failed every spawn at CLOSE_FDS.
    The open fds are read from /proc/self/fd now (as CPython's _posixsubprocess does), or without it
    every fd up to the hard limit."""
    import sys

    deny = fe.SeccompFilter(default_action="allow", deny=["close_range"], errno=refusal)
    got = fe.run([sys.executable, "-c", _FD_ABOVE_THE_LIMIT], sys=fe.SysProcAttr(seccomp=deny),
                 capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert got.returncode == 0, got.stderr
    assert got.stdout.splitlines()[:3] == ["listed 0", "as 65534 0", "fake /proc 0"], got.stdout
    assert set(got.stdout.splitlines()[3:]) <= {"landlock 0"}, got.stdout


# --- a seccomp filter of the caller refusing landlock_create_ruleset -----------------------------------

_LANDLOCK_POLICY = r"""
import os, sys
import pyforkexec as fe
R = ["read_file", "execute", "read_dir"]
tree = [p for p in ("/usr", "/lib", "/lib64", "/bin") if os.path.exists(p)]
policy = fe.Landlock(paths=[fe.LandlockPath(p, R) for p in tree])
try:
    got = fe.run(["/usr/bin/cat", "/etc/hostname"], sys=fe.SysProcAttr(landlock=policy), capture_output=True)
    print("ran", got.returncode)
except ValueError as e:
    print(str(e).split(": ")[0], "refused")
"""


@pytest.mark.skipif(fe.landlock_abi() < 1, reason="this kernel has no Landlock")
@pytest.mark.parametrize("refusal", [errno.EPERM, errno.EINVAL], ids=["EPERM", "EINVAL"])
def test_a_landlock_abi_the_kernel_will_not_tell_is_no_abi_0(refusal: int) -> None:
    """Any refusal of landlock_create_ruleset(VERSION) was taken for a kernel without Landlock (ABI 0),
    whose best-effort plan restricts nothing: under a seccomp filter failing it with EPERM or EINVAL
    (not what a kernel without Landlock says: ENOSYS, EOPNOTSUPP) the program read every file the
    policy denies. Refused now, naming the field; the same for exec --spec and --check."""
    import sys

    deny = fe.SeccompFilter(default_action="allow", deny=["landlock_create_ruleset"], errno=refusal)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    got = fe.run([sys.executable, "-c", _LANDLOCK_POLICY], sys=fe.SysProcAttr(seccomp=deny),
                 capture_output=True, text=True, env=env)
    assert (got.returncode, got.stdout, got.stderr) == (0, "SysProcAttr.landlock refused\n", "")
    with tempfile.NamedTemporaryFile("w", suffix=".json") as spec:
        spec.write('{"version": 1, "argv": ["/usr/bin/cat", "/etc/hostname"], "sys": {"landlock": {"paths": '
                   '[{"path": "/usr", "access": ["read_file", "execute", "read_dir"]}]}}}')
        spec.flush()
        for check in ([], ["--check"]):
            got = fe.run([sys.executable, "-m", "pyforkexec", "exec", "--spec", spec.name, *check],
                         sys=fe.SysProcAttr(seccomp=deny), capture_output=True, text=True, env=env)
            assert (got.returncode, got.stdout) == (1, ""), (check, got)
            assert got.stderr.startswith("pyforkexec: spec: sys.landlock: Landlock's ABI version cannot be "
                                         "read") and got.stderr.count("\n") == 1, (check, got.stderr)


# --- a seccomp filter of the caller refusing prlimit64 (which getrlimit calls) -------------------------

_WITHOUT_PRLIMIT = r"""
import sys, tempfile
sys.path.insert(0, "tests")
import pyforkexec as fe
from helpers.ext import new_root
with tempfile.TemporaryDirectory() as root:
    for attr in (fe.SysProcAttr(rlimits=[fe.Rlimit("CORE", 0, 0)]),
                 fe.SysProcAttr(cloneflags=fe.CLONE_NEWNS | fe.CLONE_NEWPID, mounts=new_root(),
                                pivot_root=root)):
        try:
            print("ran", fe.run(["/bin/true"], sys=attr).returncode)
        except OSError as e:
            print(e.strerror.split(": ")[0])
"""


@needs_root  # a new root
def test_a_rlimit_nofile_the_kernel_will_not_tell_names_the_field() -> None:
    """Under a seccomp filter refusing prlimit64, a spawn whose plan needs this process's RLIMIT_NOFILE
    (rlimits, mounts under a new root) failed before any process with a bare OSError (ENOSYS) naming
    nothing; it names the field now."""
    import sys

    deny = fe.SeccompFilter(default_action="allow", deny=["prlimit64"], errno=errno.ENOSYS)
    got = fe.run([sys.executable, "-c", _WITHOUT_PRLIMIT], sys=fe.SysProcAttr(seccomp=deny),
                 capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert (got.returncode, got.stdout, got.stderr) == (0, "SysProcAttr.rlimits\nSysProcAttr.mounts\n", "")


# --- a wait out of fds, or with fds numbered past FD_SETSIZE ------------------------------------------

def _children() -> list[str]:
    from helpers.leaks import children

    return sorted(children().values())


def _with_free_fds(free: int, call: Callable[[], object]) -> str:
    """In a forked copy: every fd up to the top taken, ``free`` left under RLIMIT_NOFILE, ``call()``:
    "ran" or its OSError ("<type> <errno>: <strerror>"), then "; fds [...]": the fds it left open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    top = max(open_fds()) + 1
    while os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC) < top:
        pass
    before = open_fds()
    resource.setrlimit(resource.RLIMIT_NOFILE, (top + 1 + free, hard))
    try:
        call()
        outcome = "ran"
    except OSError as e:  # ChildError included
        outcome = f"{type(e).__name__} {errno.errorcode.get(e.errno or 0)}: {e.strerror}"
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return f"{outcome}; fds {sorted(open_fds().items() - before.items())}"


def _run_out_of_fds(free: int, cgroup: str) -> str:
    """run() with a pidfd (and a cgroup when one is named) out of fds: the outcome and what it left."""
    sys = fe.SysProcAttr(pidfd=True, cgroup=fe.Cgroup(cgroup) if cgroup else None)
    fe.run(["/bin/true"], sys=sys)  # imports and caches made while fds are still to be had
    # (still running at the first wait)
    outcome = _with_free_fds(free, lambda: fe.run(["/bin/sleep", "0.3"], sys=sys, timeout=10))
    left = cgroup and os.path.isdir(fe.Cgroup(cgroup).fs_path())
    return f"{outcome}; children {_children()}; cgroup left {left}"


@pytest.mark.parametrize("with_cgroup", [False, True], ids=["pidfd", "pidfd+cgroup"])
def test_run_out_of_fds_for_its_wait_still_reaps_its_child(with_cgroup: bool) -> None:
    """The wait of a process with a pidfd took a copy of the pidfd (F_DUPFD) and raised EMFILE without
    one: run()'s undo then failed in its own kill and reap, leaving the child unreaped (a zombie), its
    pidfd open and its cgroup behind. A wait needs no fd: out of them it looks every few milliseconds."""
    cgroup = f"pfe-wait-{os.getpid()}" if with_cgroup else ""
    if with_cgroup:
        if os.geteuid() != 0:
            pytest.skip("creating a cgroup at the root of the hierarchy needs root")
        try:
            fe.sandbox.cgroup.find_cgroup2()
        except OSError as e:
            pytest.skip(f"no cgroup v2: {e}")
    outcomes = [run_in_fork(_run_out_of_fds, free, cgroup) for free in range(6)]
    for outcome in outcomes:
        kind = outcome.partition(";")[0].partition(":")[0]
        assert kind in ("ran", "OSError EMFILE", "ChildError EMFILE", "CgroupError EMFILE"), outcomes
        assert outcome.endswith(f"; fds []; children []; cgroup left {cgroup and False}"), outcomes
    assert outcomes[-1].startswith("ran;"), outcomes


def _past_fd_setsize() -> list[str]:
    """In a forked copy: more than FD_SETSIZE (1024) fds open, so that every new one is numbered past
    it; a wait, a run() and a join of a pidfd's namespace."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard < 2048:
        return ["skip: the hard RLIMIT_NOFILE is below 2048"]
    resource.setrlimit(resource.RLIMIT_NOFILE, (2048, hard))
    while os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC) < 1100:
        pass
    out = []
    proc = fe.start_process("/bin/sleep", ["sleep", "0.5"], fe.ProcAttr(  # running at the wait
        files=[0, 1, 2], sys=fe.SysProcAttr(pidfd=True, cloneflags=fe.CLONE_NEWUTS, hostname="pfe-h159")))
    pidfd = os.pidfd_open(proc.pid)
    for what, call in [
        ("setns", lambda: fe.run(["/bin/hostname"], capture_output=True, sys=fe.SysProcAttr(
            setns=[fe.SetNS(pidfd, fe.CLONE_NEWUTS)])).stdout.decode().strip()),
        ("wait", lambda: proc.wait(10)),
        ("run", lambda: fe.run(["/bin/sleep", "0.2"], sys=fe.SysProcAttr(pidfd=True), timeout=10).returncode),
    ]:
        try:
            out.append(f"{what}: {call()}")
        except Exception as e:
            out.append(f"{what}: {type(e).__name__}: {e}")
    return out


def test_fds_numbered_past_fd_setsize_are_waited_on() -> None:
    """select.select takes no fd numbered 1024 or more (ValueError): with that many files open, the
    wait of a process with a pidfd raised and could never be made, run() with a pidfd failed, so did
    a join of a pidfd's namespaces (SetNS), naming nothing. poll(2) takes any fd."""
    outcome = run_in_fork(_past_fd_setsize)
    if outcome[0].startswith("skip"):
        pytest.skip(outcome[0])
    assert outcome == ["setns: pfe-h159", "wait: 0", "run: 0"]


_NET_TARGET: list[int] = []  # (of the forked copy that runs the spawns: the first call opens it)


def _join_by_the_parent() -> None:
    """A net namespace joined with CLONE_NEWUSER: the parent's thread joins it around clone (joins.py)."""
    if not _NET_TARGET:
        with namespace_holder(fe.SysProcAttr(cloneflags=fe.CLONE_NEWNET)) as ns:
            _NET_TARGET.append(os.open(ns("net"), os.O_RDONLY | os.O_CLOEXEC))
    target = _NET_TARGET[0]
    fe.start_process(TRUE, ["true"], fe.ProcAttr(files=[0, 1, 2], sys=fe.SysProcAttr(
        cloneflags=fe.CLONE_NEWUSER, uid_mappings=[fe.SysProcIDMap(0, 0, 1000)],
        gid_mappings=[fe.SysProcIDMap(0, 0, 1000)], setns=[fe.SetNS(target, fe.CLONE_NEWNET)]))).wait()


_NAMED_SPAWNS = {
    "run(stdin, stdout, stderr)": lambda: fe.run(["/bin/cat"], input=b"x", stdout=subprocess.PIPE,
                                                          stderr=subprocess.PIPE),
    "run(DEVNULL)": lambda: fe.run(["/bin/true"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL),
    # maps of more than the caller's own id: the parent writes them (root), the map pipe releases the child
    "uid_mappings": lambda: fe.start_process(TRUE, ["true"], fe.ProcAttr(files=[0, 1, 2], sys=fe.SysProcAttr(
        cloneflags=fe.CLONE_NEWUSER, uid_mappings=[fe.SysProcIDMap(0, 0, 1000)],
        gid_mappings=[fe.SysProcIDMap(0, 0, 1000)]))).wait(),
    "setns by the parent": _join_by_the_parent,
}


def _named_out_of_fds(spawn: str, free: int) -> str:
    call = _NAMED_SPAWNS[spawn]
    call()  # imports and caches made while fds are still to be had
    return _with_free_fds(free, call)


@pytest.mark.parametrize("spawn", sorted(_NAMED_SPAWNS))
def test_out_of_fds_names_what_could_not_be_opened(spawn: str) -> None:
    """Out of fds, the pipes of a spawn (the child's error pipe, the uid/gid map pipe) and run()'s
    stream pipes and /dev/null failed with a bare EMFILE, "Too many open files" and nothing else (the
    CLI printed "pyforkexec: Too many open files"); each names what it was for now."""
    if spawn in ("uid_mappings", "setns by the parent") and os.geteuid() != 0:
        pytest.skip("maps of more than one's own id need root")
    outcomes = [run_in_fork(_named_out_of_fds, spawn, free) for free in range(10)]
    bare = os.strerror(errno.EMFILE)
    assert outcomes[-1] == "ran; fds []", outcomes
    for outcome in outcomes:
        assert outcome.endswith("; fds []"), outcomes
        assert outcome.partition(": ")[2] != f"{bare}; fds []", outcomes  # (a ChildError says "(at clone)")
        assert outcome.startswith(("ran", "OSError EMFILE: ", "ChildError EMFILE: ")), outcomes
    assert any(o.startswith("OSError") for o in outcomes), outcomes


def _inotify_opens(path: str) -> int:
    """An inotify fd that reads an event at each open of ``path``, an execve's included."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
    if fd < 0 or libc.inotify_add_watch(fd, os.fsencode(path), 0x20) < 0:  # IN_OPEN
        raise OSError(ctypes.get_errno(), "inotify")
    return fd


def _run_execs(free: int, program: str, newns: bool) -> str:
    """run() of ``program`` out of fds: the outcome, and whether it was exec'd (opened: inotify)."""
    sys = fe.SysProcAttr(cloneflags=fe.CLONE_NEWNS) if newns else None
    fe.run([program], sys=sys)  # imports and caches made while fds are still to be had
    watch = _inotify_opens(program)
    outcome = _with_free_fds(free, lambda: fe.run([program], sys=sys, timeout=10))
    try:
        execed = bool(os.read(watch, 4096))
    except BlockingIOError:
        execed = False
    return f"{outcome.partition('; fds')[0]}; exec'd: {execed}"


@pytest.mark.parametrize("newns", [False, True], ids=["plain", "CLONE_NEWNS"])
def test_run_out_of_fds_fails_before_the_program_or_not_at_all(tmp_path: Path, newns: bool) -> None:
    """run() made the selector of its pipes (an epoll fd, made even without a pipe) once the child had
    exec'd: out of fds it raised EMFILE after the program started (then killed it), which the caller
    took for a program that never ran. It is made before the child now, and only for pipes."""
    if newns and os.geteuid() != 0:
        pytest.skip("a mount namespace of its own needs root")
    program = str(tmp_path / "true")
    shutil.copy(TRUE, program)
    outcomes = [run_in_fork(_run_execs, free, program, newns) for free in range(8)]
    for outcome in outcomes:
        assert outcome == "ran; exec'd: True" or outcome.endswith("; exec'd: False"), outcomes
    assert outcomes[-1] == "ran; exec'd: True", outcomes
