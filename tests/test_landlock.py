"""SysProcAttr.landlock: each filesystem right, port rule and scope allowed and denied, seen from inside
the child (as root and as uid 65534); best effort on a simulated older kernel; strict refusing; the
ruleset's fd never reaching the program; the LANDLOCK error location."""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import socket
import stat
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional

import pytest
from helpers.attempt import attempt
from helpers.forked import run_in_fork
from helpers.leaks import open_fds
from helpers.marks import needs_root
from helpers.procs import capture, output, status_fields

from pyforkexec import (
    ChildError,
    ErrorLocation,
    Landlock,
    LandlockPath,
    LandlockPort,
    ProcAttr,
    SysProcAttr,
    fork_exec,
    landlock_abi,
)
from pyforkexec.sandbox import kernel_fds
from pyforkexec.sandbox.landlock import ABI_ENV, check_landlock

ABI = landlock_abi()
pytestmark = [needs_root, pytest.mark.skipif(ABI < 1, reason="Landlock is not enabled on this kernel")]
PYTHON = "/usr/bin/python3"  # the system's: its files are under the system paths the base policy reads
SYSTEM = [LandlockPath(p, ["read", "execute"]) for p in ("/usr", "/bin", "/lib", "/lib64", "/etc")
          if os.path.exists(p)]
NOBODY = 65534

# Runs one action on each directory given, printing "ok" or the errno's name, one line each.
ACTION = r"""
import errno, fcntl, os, socket, stat, sys, termios
def run(d):
    try:
        {body}
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
for d in sys.argv[1:]:
    print(run(d), flush=True)
"""


@dataclass(frozen=True)
class Right:
    name: str
    body: str  # Python statements acting on directory ``d``
    setup: Callable[[str], None] = lambda d: None
    needs: tuple[str, ...] = ()  # rights granted on both directories so that only ``name`` differs
    allowed: str = "ok"
    denied: str = "EACCES"
    root_only: bool = False  # the action needs a capability uid 65534 lacks


def _file(d: str) -> None:
    with open(os.path.join(d, "f"), "w") as f:
        f.write("data")
    os.chmod(os.path.join(d, "f"), 0o666)


def _program(d: str) -> None:
    shutil.copy("/bin/true", os.path.join(d, "prog"))
    os.chmod(os.path.join(d, "prog"), 0o755)


def _subdir(d: str) -> None:
    os.mkdir(os.path.join(d, "sub"))
    os.chmod(os.path.join(d, "sub"), 0o777)


def _two_dirs(d: str) -> None:
    for sub in ("a", "b"):
        os.mkdir(os.path.join(d, sub))
        os.chmod(os.path.join(d, sub), 0o777)
    _file(os.path.join(d, "a"))


# In a forked copy (so the loop goes on), exec the program; a refused exec is the copy's exit status.
EXECUTE = ("pid = os.fork()\n        if pid == 0:\n            try:\n"
           "                os.execv(d + '/prog', ['prog'])\n"
           "            finally:\n                os._exit(127)\n"
           "        _, st = os.waitpid(pid, 0)\n        if st: raise OSError(errno.EACCES, 'exec')")
RIGHTS = [
    Right("execute", EXECUTE, _program, ("read_file",)),
    Right("write_file", "os.close(os.open(d + '/f', os.O_WRONLY))", _file),
    Right("read_file", "os.close(os.open(d + '/f', os.O_RDONLY))", _file),
    Right("read_dir", "os.listdir(d)"),
    Right("remove_dir", "os.rmdir(d + '/sub')", _subdir),
    Right("remove_file", "os.unlink(d + '/f')", _file),
    Right("make_char", "os.mknod(d + '/c', stat.S_IFCHR | 0o600, os.makedev(1, 3))", root_only=True),
    Right("make_dir", "os.mkdir(d + '/new')"),
    Right("make_reg", "os.mknod(d + '/new', stat.S_IFREG | 0o600)"),
    Right("make_sock", "socket.socket(socket.AF_UNIX).bind(d + '/s')"),
    Right("make_fifo", "os.mkfifo(d + '/p')"),
    Right("make_block", "os.mknod(d + '/b', stat.S_IFBLK | 0o600, os.makedev(7, 0))", root_only=True),
    Right("make_sym", "os.symlink('x', d + '/l')"),
    Right("refer", "os.rename(d + '/a/f', d + '/b/f')", _two_dirs, ("make_reg", "remove_file"),
          denied="EXDEV"),
    Right("truncate", "os.truncate(d + '/f', 0)", _file, ("write_file",)),
]
NEED = {"refer": 2, "truncate": 3, "ioctl_dev": 5}


@pytest.fixture
def scratch() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="pfe-landlock-")
    os.chmod(d, 0o777)  # uid 65534's children work here too
    try:
        yield d
    finally:
        shutil.rmtree(d)


def _dirs(scratch: str, setup: Callable[[str], None]) -> tuple[str, str]:
    allowed, denied = os.path.join(scratch, "allowed"), os.path.join(scratch, "denied")
    for d in (allowed, denied):
        os.mkdir(d)
        os.chmod(d, 0o777)
        setup(d)
    return allowed, denied


def act(body: str, targets: Sequence[str], landlock: Optional[Landlock], **kw: object) -> list[str]:
    sys = SysProcAttr(landlock=landlock, **kw)  # type: ignore[arg-type]
    return output([PYTHON, "-I", "-c", ACTION.format(body=body), *targets], sys).split()


def right_matrix(right: Right, scratch: str) -> list[str]:
    allowed, denied = _dirs(scratch, right.setup)
    paths = [*SYSTEM, LandlockPath(allowed, [right.name, *right.needs])]
    if right.needs:
        paths.append(LandlockPath(denied, list(right.needs)))
    return act(right.body, [allowed, denied], Landlock(paths=paths))


@pytest.mark.parametrize("right", RIGHTS, ids=lambda r: r.name)
def test_each_fs_right_allowed_and_denied(right: Right, scratch: str) -> None:
    if NEED.get(right.name, 1) > ABI:
        pytest.skip(f"{right.name} needs Landlock ABI {NEED[right.name]}, this kernel has {ABI}")
    assert right_matrix(right, scratch) == [right.allowed, right.denied]


def _as_nobody(scratch: str) -> dict[str, list[str]]:
    return {r.name: right_matrix(r, os.path.join(scratch, r.name)) for r in RIGHTS
            if not r.root_only and NEED.get(r.name, 1) <= ABI}


def test_each_fs_right_as_an_unprivileged_user(scratch: str) -> None:
    """As uid 65534 (no CAP_SYS_ADMIN: no_new_privs, which landlock implies, is what allows it)."""
    for r in RIGHTS:
        os.mkdir(os.path.join(scratch, r.name))
        os.chmod(os.path.join(scratch, r.name), 0o777)
    got = run_in_fork(_as_nobody, scratch, uid=NOBODY)
    assert got == {name: [r.allowed, r.denied] for name, r in ((r.name, r) for r in RIGHTS) if name in got}
    assert len(got) >= 10


@pytest.mark.skipif(ABI < 5, reason="ioctl_dev needs Landlock ABI 5")
def test_ioctl_dev_on_a_device_file() -> None:
    """TCGETS on /dev/null: ENOTTY when the ioctl reaches the driver, EACCES when Landlock stops it."""
    body = "fcntl.ioctl(os.open('/dev/null', os.O_RDONLY), termios.TCGETS, bytes(64))"
    allowed = Landlock(paths=[*SYSTEM, LandlockPath("/dev/null", ["read_file", "ioctl_dev"])])
    denied = Landlock(paths=[*SYSTEM, LandlockPath("/dev/null", ["read_file"])])
    assert act(body, ["-"], allowed) == ["ENOTTY"]
    assert act(body, ["-"], denied) == ["EACCES"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(ABI < 4, reason="TCP port rules need Landlock ABI 4")
def test_port_rules_bind_and_connect() -> None:
    ok_port, other = _free_port(), _free_port()
    bind = "socket.socket().bind(('127.0.0.1', int(d)))"
    assert act(bind, [str(ok_port), str(other)], Landlock(ports=[LandlockPort(ok_port, ["bind"])])) \
        == ["ok", "EACCES"]
    with socket.socket() as a, socket.socket() as b:
        for s in (a, b):
            s.bind(("127.0.0.1", 0))
            s.listen()
        pa, pb = a.getsockname()[1], b.getsockname()[1]
        connect = "socket.create_connection(('127.0.0.1', int(d))).close()"
        policy = Landlock(ports=[LandlockPort(pa, ["connect"])])
        assert act(connect, [str(pa), str(pb)], policy) == ["ok", "EACCES"]
        # a bind rule alone restricts connect too: both TCP rights are handled once any port rule is given
        assert act(connect, [str(pa)], Landlock(ports=[LandlockPort(pa, ["bind"])])) == ["EACCES"]


@pytest.mark.skipif(ABI < 6, reason="scopes need Landlock ABI 6")
def test_scopes_signal_and_abstract_unix_socket() -> None:
    kill = "os.kill(int(d), 0)"
    me = str(os.getpid())
    assert act(kill, [me], Landlock(scopes=["signal"])) == ["EPERM"]
    assert act(kill, [me], Landlock(scopes=["abstract_unix_socket"])) == ["ok"]
    name = f"pfe-landlock-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind("\0" + name)
        server.listen()
        connect = "socket.socket(socket.AF_UNIX).connect('\\0' + d)"
        assert act(connect, [name], Landlock(scopes=["abstract_unix_socket"])) == ["EPERM"]
        assert act(connect, [name], Landlock(scopes=["signal"])) == ["ok"]


def test_no_path_rule_leaves_files_alone_and_sets_no_new_privs() -> None:
    policy = Landlock(scopes=["signal"]) if ABI >= 6 else Landlock(ports=[LandlockPort(1, ["bind"])])
    out = output(["/bin/cat", "/proc/self/status"], SysProcAttr(landlock=policy))
    assert status_fields(out)["NoNewPrivs"] == "1"


def test_the_ruleset_fd_never_reaches_the_program() -> None:
    before = open_fds()
    policy = Landlock(paths=[*SYSTEM, LandlockPath("/proc", ["read"])])
    script = "import os\nfor n in os.listdir('/proc/self/fd'):\n    try:\n" \
             "        print(n, os.readlink('/proc/self/fd/' + n))\n    except FileNotFoundError:\n" \
             "        pass  # listdir's own fd, closed by now"
    links = output([PYTHON, "-I", "-c", script], SysProcAttr(landlock=policy), extra=[0] * 8)
    assert "landlock" not in links, links
    assert sorted(int(line.split()[0]) for line in links.splitlines()) == list(range(11)), links
    assert open_fds() == before


def test_best_effort_on_a_simulated_older_kernel(scratch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """$PYFORKEXEC_LANDLOCK_ABI=2: truncate (ABI 3) is not handled, so the real kernel lets the child
    truncate where it may only write; with this kernel's own ABI it refuses."""
    if ABI < 3:
        pytest.skip("the kernel must know truncate to show the difference")
    allowed, _ = _dirs(scratch, _file)
    policy = Landlock(paths=[*SYSTEM, LandlockPath(allowed, ["read", "write_file"])])
    truncate = "os.truncate(d + '/f', 0)"
    assert act(truncate, [allowed], policy) == ["EACCES"]
    monkeypatch.setenv(ABI_ENV, "2")
    assert landlock_abi() == 2
    assert act(truncate, [allowed], policy) == ["ok"]
    effective, dropped = Landlock(paths=[LandlockPath(allowed, ["write"])]).plan(2)
    unrestricted = "this kernel has 2: it is not restricted anywhere"
    assert dropped == ("paths[0].access: truncate needs Landlock ABI 3, this kernel has 2",
                       f"paths: truncate needs Landlock ABI 3, {unrestricted}",
                       f"paths: ioctl_dev needs Landlock ABI 5, {unrestricted}")
    assert "truncate" not in effective.paths[0].access and "write_file" in effective.paths[0].access


def test_strict_refuses_a_kernel_that_leaves_a_right_unrestricted_outside_the_rules(
        scratch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A policy that allows only reading (no rule names truncate) still denies truncate everywhere; an
    ABI 2 kernel cannot, so any file the caller may write can be emptied: strict refuses (it ran)."""
    if ABI < 5:
        pytest.skip("the kernel must know truncate and ioctl_dev to enforce the policy itself")
    allowed, _ = _dirs(scratch, _file)
    policy = Landlock(paths=[*SYSTEM, LandlockPath(allowed, ["read"])], mode="strict")
    truncate = "os.truncate(d + '/f', 0)"
    assert act(truncate, [allowed], policy) == ["EACCES"]
    for abi, right in (("2", "truncate"), ("4", "ioctl_dev")):
        monkeypatch.setenv(ABI_ENV, abi)
        with pytest.raises(ValueError, match=rf"^SysProcAttr\.landlock\.paths: {right} needs Landlock ABI"):
            act(truncate, [allowed], policy)
    dropped = Landlock(paths=[LandlockPath(allowed, ["read"])]).plan(1).dropped
    assert dropped[-1].startswith("paths: ioctl_dev")  # refer, which ABI 1 denies everywhere, is no loss


def test_ports_and_scopes_dropped_below_their_abi(monkeypatch: pytest.MonkeyPatch) -> None:
    if ABI < 4:
        pytest.skip("the kernel must know port rules to show the difference")
    port = _free_port()
    bind = "socket.socket().bind(('127.0.0.1', int(d)))"
    policy = Landlock(ports=[LandlockPort(1, ["bind"])], scopes=["signal"])
    monkeypatch.setenv(ABI_ENV, "3")
    assert act(bind, [str(port)], policy) == ["ok"]
    assert policy.plan(3).dropped == ("ports[0].access: bind needs Landlock ABI 4, this kernel has 3",
                                      "scopes: signal needs Landlock ABI 6, this kernel has 3")
    assert policy.plan(0).effective == Landlock(mode="best_effort")
    monkeypatch.setenv(ABI_ENV, "99")
    assert landlock_abi() == ABI  # the variable lowers the ABI, never raises it


def test_strict_refuses_before_any_process(scratch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ABI_ENV, "2")
    policy = Landlock(paths=[*SYSTEM, LandlockPath(scratch, ["read", "truncate"])], mode="strict")
    got = attempt(fork_exec, "/bin/true", ["true"], ProcAttr(sys=SysProcAttr(landlock=policy)))
    n = len(SYSTEM)
    assert (got.kind, got.processes) == ("ValueError", 0)
    assert got.message.startswith(f"SysProcAttr.landlock.paths[{n}].access: truncate needs Landlock ABI 3, "
                                  "this kernel has 2"), got.message
    monkeypatch.delenv(ABI_ENV)
    assert capture(["/bin/true"], SysProcAttr(landlock=policy)).returncode == 0


def test_the_ruleset_numbers_rules_as_the_caller_did_when_an_earlier_rule_was_dropped(
        scratch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Best effort on ABI 2 leaves paths[n] (truncate only) with no right at all, so it is not in the
    ruleset; what the spawn builds, and any error it reports, must still call the rules after it by
    the caller's numbers (paths[n + 1], ports[1])."""
    monkeypatch.setenv(ABI_ENV, "3")
    policy = Landlock(paths=[*SYSTEM, LandlockPath(scratch, ["ioctl_dev"]), LandlockPath(scratch, ["read"])],
                      ports=[LandlockPort(80, ["bind"])])
    monkeypatch.setenv(ABI_ENV, "2")
    resolved = check_landlock("SysProcAttr.landlock", policy)
    n = len(SYSTEM)
    assert [i for i, _, _ in resolved.paths] == [*range(n), n + 1]
    assert resolved.ports == ()  # ABI 2 has no network rights: the port rule is dropped too
    assert any(line.startswith(f"paths[{n}].access: ioctl_dev") for line in resolved.dropped)


def _restrict_self_16_times() -> tuple[int, int, int, Optional[str]]:
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
    for _ in range(16):  # the kernel's limit of nested Landlock domains
        fd = kernel_fds.landlock_create_ruleset(0, 1, 0)  # handles TCP bind only
        assert libc.syscall(kernel_fds.SYS_LANDLOCK_RESTRICT_SELF, fd, 0) == 0
        os.close(fd)
    try:
        fork_exec("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(landlock=Landlock(ports=[
            LandlockPort(80, ["bind"])]))))
    except ChildError as e:
        return e.errno, int(e.location), e.index, e.field
    return 0, 0, 0, None


@pytest.mark.skipif(ABI < 4, reason="needs port rules (ABI 4) for a restriction that leaves files alone")
def test_a_seventeenth_domain_fails_at_landlock() -> None:
    assert run_in_fork(_restrict_self_16_times) == (errno.E2BIG, ErrorLocation.LANDLOCK, 0, "sys.landlock")


def test_rule_paths_are_opened_as_the_parent_sees_them(scratch: str) -> None:
    """A rule's directory bind-mounted elsewhere in the child carries its rule (Landlock ties rules to
    inodes): the child reads it at the new place, and nothing else."""
    allowed, _ = _dirs(scratch, _file)
    from pyforkexec import CLONE_NEWNS, Mount

    policy = Landlock(paths=[*SYSTEM, LandlockPath(allowed, ["read"])])
    out = output([PYTHON, "-I", "-c", "print(open('/mnt/f').read())"],
                 SysProcAttr(cloneflags=CLONE_NEWNS, mounts=[Mount.bind(allowed, "/mnt", mkdir=False)],
                             landlock=policy))
    assert out == "data\n"
    assert stat.S_ISDIR(os.stat(allowed).st_mode)


def test_plan_names_what_it_does_not_know_and_counts_each_right_once() -> None:
    with pytest.raises(ValueError, match=r"^paths\[0\]\.access\[1\]: unknown access right 'fly'"):
        Landlock(paths=[LandlockPath("/usr", ["read", "fly"])]).plan(ABI)
    effective, dropped = Landlock(paths=[LandlockPath("/usr", ["read", "read_file", "read"])],
                                  scopes=["signal", "signal"]).plan(6)
    assert effective.paths[0].access == ("read_file", "read_dir") and effective.scopes == ("signal",)
    assert dropped == ()


@pytest.mark.parametrize(("policy", "abi", "error", "field"), [
    (Landlock(paths=[LandlockPath("/tmp", [["read"]])]), 6, TypeError, "paths[0].access[0]"),
    (Landlock(paths=[LandlockPath("/tmp", None)]), 6, TypeError, "paths[0].access"),  # type: ignore[arg-type]
    (Landlock(paths=[None]), 6, TypeError, "paths[0]"),  # type: ignore[list-item]
    (Landlock(ports=5), 6, TypeError, "ports"),  # type: ignore[arg-type]
    (Landlock(ports=[LandlockPort(70000, ["bind"])]), 6, ValueError, "ports[0].port"),
    (Landlock(scopes=[["signal"]]), 6, TypeError, "scopes[0]"),  # type: ignore[list-item]
    (Landlock(mode="lax"), 6, ValueError, "mode"),
    (Landlock(), "6", TypeError, "abi"),
    (Landlock(), -1, ValueError, "abi"),
])
def test_plan_checks_what_it_is_given_naming_the_field(policy: Landlock, abi: Any, error: type,
                                                       field: str) -> None:
    """plan() is public: a policy built of the wrong types is an error naming the field, as a spawn's
    checks name it, and never an AttributeError or "unhashable type" from inside."""
    with pytest.raises(error) as info:
        policy.plan(abi)
    assert type(info.value) is error and str(info.value).startswith(field + ": "), info.value


def test_a_rule_on_a_file_landlock_takes_none_on_names_the_path() -> None:
    """A namespace file is on nsfs, which Landlock takes no rule on (EBADFD from landlock_add_rule):
    a ValueError naming the rule's path before any process, not a bare OSError."""
    policy = Landlock(paths=[*SYSTEM, LandlockPath("/proc/self/ns/uts", ["execute"])])
    with pytest.raises(ValueError, match=rf"^SysProcAttr\.landlock\.paths\[{len(SYSTEM)}\]\.path: "
                                         "/proc/self/ns/uts is on a filesystem Landlock takes no rule on"):
        act("pass", [], policy)


def test_a_policy_that_restricts_nothing_is_refused() -> None:
    """An empty YAML mapping (``landlock: {}``), strict or not: no process runs believing it is
    restricted."""
    for policy in (Landlock(), Landlock(mode="strict")):
        with pytest.raises(ValueError, match=r"^SysProcAttr\.landlock: restricts nothing"):
            act("pass", [], policy)


LOADER = os.path.realpath("/lib64/ld-linux-x86-64.so.2" if os.path.exists("/lib64/ld-linux-x86-64.so.2")
                          else "/lib/ld-linux-aarch64.so.1")
# What a policy leaves the program in a scratch directory ("prog", a copy of /bin/true; "script",
# run by /bin/sh): each keeps one file execve or the dynamic loader opens from it, or a right on it.
RUN_POLICIES = {
    "everything": (lambda d: [*SYSTEM, LandlockPath(d, ["read_file", "execute"])], None),
    "program not executable": (lambda d: [*SYSTEM, LandlockPath(d, ["read_file"])], "executing the program"),
    "program not readable": (lambda d: [*SYSTEM, LandlockPath(d, ["execute"])], "executing the program"),
    "no dynamic loader": (lambda d: [LandlockPath(d, ["read_file", "execute"])],
                          "executing the dynamic loader"),
    "loader, no library": (lambda d: [LandlockPath(d, ["read_file", "execute"]),
                                      LandlockPath(LOADER, ["read_file", "execute"])],
                           "reading the shared library"),
    "loader executable only": (lambda d: [LandlockPath(d, ["read", "execute"]),
                                          LandlockPath(os.path.dirname(LOADER), ["read_dir"]),
                                          LandlockPath(LOADER, ["execute"])], "executing the dynamic loader"),
    "loader's rights from two rules": (lambda d: [LandlockPath(d, ["read", "execute"]),
                                                  LandlockPath(os.path.dirname(LOADER), ["read"]),
                                                  LandlockPath(LOADER, ["execute"])], None),
}


@pytest.mark.parametrize("program", ["prog", "script"])
@pytest.mark.parametrize("case", RUN_POLICIES)
def test_check_refuses_a_policy_that_keeps_its_program_from_starting(case: str, program: str,
                                                                     scratch: str) -> None:
    """find_program (exec --check, the start's launcher, the modules' check mode) refuses, naming
    sys.landlock, exactly the policies under which the program cannot start: execve opens the program,
    a script's interpreter and the dynamic loader to read and execute them, and the loader reads each
    library. Each start is the kernel's answer (a ChildError at execve, or the loader's 127)."""
    from pyforkexec import ProcAttr
    from pyforkexec.spec import ProgramError, Spec, find_program

    _program(scratch)
    with open(os.path.join(scratch, "script"), "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    os.chmod(os.path.join(scratch, "script"), 0o755)
    rules, reason = RUN_POLICIES[case]
    if program == "script" and not case.startswith(("everything", "program")):
        reason = "executing its interpreter"  # /bin/sh: the system's paths are not in the policy
    policy = Landlock(paths=rules(scratch))
    path = os.path.join(scratch, program)
    try:
        res = capture([path], SysProcAttr(landlock=policy))
        started = res.returncode == 0
    except ChildError as e:
        assert e.errno == errno.EACCES and e.location == ErrorLocation.EXECVE, e
        started = False
    spec = Spec(argv=[path], attr=ProcAttr(sys=SysProcAttr(landlock=policy)))
    if reason is None:
        assert started and find_program(spec, None) == path
        return
    assert not started
    with pytest.raises(ProgramError, match=rf"^spec: sys\.landlock: \"{path}\": permission denied: "
                                           rf"sys\.landlock denies {reason} .*: no rule allows") as info:
        find_program(spec, None)
    assert info.value.errno == errno.EACCES
