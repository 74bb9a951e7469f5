"""SysProcAttr.rlimits: /proc/self/limits and ulimit inside the child."""

from __future__ import annotations

import errno
import resource

import pytest
from helpers.forked import run_in_fork
from helpers.marks import needs_root
from helpers.procs import output, status_fields

from pyforkexec import ChildError, Credential, ErrorLocation, ProcAttr, SysProcAttr, fork_exec, start_process
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
