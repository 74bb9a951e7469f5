"""SysProcAttr.rlimits: /proc/self/limits and ulimit inside the child."""

from __future__ import annotations

import errno
import resource
import struct
import subprocess
import sys

import pytest
from helpers.forked import run_in_fork
from helpers.marks import needs_root
from helpers.procs import output, status_fields

from pyforkexec import ChildError, Credential, ErrorLocation, ProcAttr, SysProcAttr, fork_exec, start_process
from pyforkexec.child.plan import PlanInputs, compile_plan
from pyforkexec.sandbox.extensions import check_extensions
from pyforkexec.sandbox.rlimits import RLIM_INFINITY, Rlimit, check_rlimits

pytestmark = needs_root
NOBODY = 65534
CAP_SYS_RESOURCE = 24


def limits(sys: SysProcAttr) -> dict[str, tuple[str, str]]:
    """/proc/self/limits of the child as {"Max open files": ("64", "128"), ...}."""
    out = {}
    for line in output(["/usr/bin/cat", "/proc/self/limits"], sys).splitlines()[1:]:
        name, soft, hard = line[:26].strip(), *line[26:].split()[:2]
        out[name] = (soft, hard)
    return out


def test_limits_as_the_child_sees_them() -> None:
    sys = SysProcAttr(rlimits=[Rlimit("nofile", 64, 128), Rlimit("RLIMIT_CORE", 0, 0),
                               Rlimit(resource.RLIMIT_CPU, "unlimited", -1),
                               Rlimit("fsize", 1 << 20, 1 << 21)])
    got = limits(sys)
    assert got["Max open files"] == ("64", "128")
    assert got["Max core file size"] == ("0", "0")
    assert got["Max cpu time"] == ("unlimited", "unlimited")
    assert got["Max file size"] == (str(1 << 20), str(1 << 21))


def test_ulimit() -> None:  # dash's ulimit: -p is RLIMIT_NPROC
    sys = SysProcAttr(rlimits=[Rlimit("nofile", 100, 200), Rlimit("nproc", 50, 60)])
    assert output(["/bin/sh", "-c", "ulimit -n; ulimit -Hn; ulimit -p"], sys).split() == ["100", "200", "50"]


def raised_for_nobody() -> dict[str, tuple[str, str]]:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 4096))  # this process may no longer exceed 4096
    sys = SysProcAttr(credential=Credential(uid=NOBODY, gid=NOBODY), rlimits=[Rlimit("nofile", 2048, 8192)])
    return limits(sys)


def has_cap_sys_resource() -> bool:
    with open("/proc/self/status") as f:
        return bool(int(status_fields(f.read())["CapEff"], 16) >> CAP_SYS_RESOURCE & 1)


def test_limits_are_set_before_the_credential_change() -> None:
    # raising a hard limit needs CAP_SYS_RESOURCE: the child still has it when it sets rlimits
    if not has_cap_sys_resource():
        pytest.skip("this process lacks CAP_SYS_RESOURCE (the machine withholds it): no hard limit to raise")
    assert run_in_fork(raised_for_nobody)["Max open files"] == ("2048", "8192")


def test_nproc_is_in_force_at_the_credential_change() -> None:
    # setuid() into a user who is over RLIMIT_NPROC marks the process, and its execve then fails
    # with EAGAIN; that takes the limit to be set before setuid, as here
    nobody = Credential(uid=NOBODY, gid=NOBODY)
    with start_process("/bin/sleep", ["sleep", "60"], ProcAttr(sys=SysProcAttr(credential=nobody))) as other:
        try:
            with pytest.raises(ChildError) as info:
                fork_exec("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(
                    credential=nobody, rlimits=[Rlimit("nproc", 0, 0)])))
        finally:
            other.kill()
    assert (info.value.errno, info.value.location) == (errno.EAGAIN, ErrorLocation.EXECVE)


@pytest.mark.parametrize(("value", "encoded"), [(-1, RLIM_INFINITY), ("unlimited", RLIM_INFINITY),
                                                (resource.RLIM_INFINITY, RLIM_INFINITY), (7, 7)])
def test_limit_values(value: object, encoded: int) -> None:
    assert check_rlimits("r", [Rlimit("as", value, value)]) == ((resource.RLIMIT_AS, encoded, encoded),)


def test_a_low_nofile_limits_the_program_not_the_fd_passes() -> None:
    # fd 3 from the parent's fd 0: Go's first fd pass moves it above every fd of ProcAttr.files (its
    # nextfd, here the parent's fds above 2, so 4 or more) before the second places it; like Go's own
    # RLIMIT_NOFILE, the limit is set after them: sh has fd 4 for libc
    assert output(["/bin/sh", "-c", "ulimit -n; ulimit -Hn"], SysProcAttr(rlimits=[Rlimit("nofile", 5, 6)]),
                  extra=[0]).split() == ["5", "6"]


def test_the_spec_check_agrees_with_the_start(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = tmp_path / "spec.json"
    spec.write_text('{"version":1,"argv":["/bin/true"],"proc":{"files":[0,2,1]},'
                    '"sys":{"rlimits":[["nofile",1,1]]}}')
    for args in (["--check"], []):
        res = subprocess.run([sys.executable, "-m", "pyforkexec", "exec", *args, "--spec", str(spec)],
                             capture_output=True, text=True)
        # /bin/true's loader, and not the set-up, finds no fd for libc: 127, the program's failure
        assert res.returncode == (0 if args else 127), res.stderr
        assert "proc.files" not in res.stderr


def nofile_blobs(parent: tuple[int, int], soft: int, hard: int) -> list[tuple[int, int]]:
    attr = SysProcAttr(rlimits=[Rlimit("nofile", soft, hard)])
    sandbox = check_extensions(attr, 0, 0)
    plan = compile_plan(PlanInputs(attr, 0, 0, (0, 1, 2), b"", b"", sandbox=sandbox, nofile=parent))
    return [struct.unpack("=QQ", b) for b in plan.blobs if len(b) == 16]


def test_nofile_raises_its_hard_limit_early_only_when_asked_above_the_parents() -> None:
    # raised before the credential change (its privileges), the parent's soft limit kept for the set-up
    assert nofile_blobs((1024, 4096), 2048, 8192) == [(1024, 8192), (2048, 8192)]
    assert nofile_blobs((1024, 4096), 1, 1) == [(1, 1)]


@pytest.mark.parametrize("name", ["no\ufb01le", "nof\u0131le", "\u017ftack", "RLIMIT_NOF\u0131LE",
                                  "loc\u212as"])
def test_a_resource_name_is_its_ascii_spelling_only(name: str) -> None:
    """str.upper() turned other strings into a resource's name ("no\ufb01le", with the ligature fi, into
    NOFILE; a dotless i into I): a name no man page spells was set as that limit."""
    with pytest.raises(ValueError, match=r"^SysProcAttr\.rlimits\[0\]\.resource: unknown resource "):
        check_rlimits("SysProcAttr.rlimits", [Rlimit(name, 1, 1)])
    assert check_rlimits("SysProcAttr.rlimits", [Rlimit("NoFile", 1, 1)]) == ((7, 1, 1),)
