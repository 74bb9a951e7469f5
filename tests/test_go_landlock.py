"""Go 1.28's Landlock fields (golang/go#68595): use_landlock, landlock_fd, landlock_flags, no_new_privs.

The cases of Go's change, ported: NoNewPrivs is set in the child; UseLandlock restricts the child to
the caller's ruleset; with ExtraFiles over the ruleset's fd number the restriction still uses the
ruleset (golang/go#81057: it runs before the fd shuffle); UseLandlock false ignores LandlockFD, which
is refused here instead. Then the rules Go leaves to the kernel that are refused here, and the step's
error location.
"""

from __future__ import annotations

import errno
import os

import pytest
from helpers.forked import run_in_fork
from helpers.marks import needs_root
from helpers.procs import capture, output, status_fields

from pyforkexec import ChildError, ErrorLocation, ProcAttr, SysProcAttr, fork_exec, landlock_abi
from pyforkexec.sandbox import kernel_fds
from pyforkexec.sandbox.landlock import FS_RIGHTS, _known

pytestmark = [needs_root, pytest.mark.skipif(landlock_abi() < 1, reason="Landlock is not enabled here")]
READ_EXEC = FS_RIGHTS["read_file"][0] | FS_RIGHTS["read_dir"][0] | FS_RIGHTS["execute"][0]
SYSTEM = ("/usr", "/bin", "/lib", "/lib64", "/etc/ld.so.cache")


def ruleset(allow_etc: bool = False) -> int:
    """A ruleset handling every filesystem right, allowing reads and exec of the system directories
    (and of /etc when asked). The caller closes it."""
    fd = kernel_fds.landlock_create_ruleset(_known(FS_RIGHTS, landlock_abi()), 0, 0)
    for path in (*SYSTEM, *(("/etc",) if allow_etc else ())):
        if os.path.exists(path):
            pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            access = READ_EXEC if os.path.isdir(path) else FS_RIGHTS["read_file"][0]
            kernel_fds.landlock_add_path_rule(fd, pfd, access)
            os.close(pfd)
    return fd


def test_no_new_privs_is_set_in_the_child() -> None:
    out = output(["/bin/cat", "/proc/self/status"], SysProcAttr(no_new_privs=True))
    assert status_fields(out)["NoNewPrivs"] == "1"
    assert status_fields(output(["/bin/cat", "/proc/self/status"]))["NoNewPrivs"] == "0"


def test_use_landlock_restricts_the_child() -> None:
    """Denied what the ruleset does not allow (as root, with or without no_new_privs: CAP_SYS_ADMIN
    suffices), allowed what it does."""
    fd = ruleset()
    try:
        for nnp in (True, False):
            res = capture(["/bin/cat", "/etc/hostname"], SysProcAttr(use_landlock=True, landlock_fd=fd,
                                                                     no_new_privs=nnp))
            assert res.returncode == 1 and "Permission denied" in res.out, res.out
    finally:
        os.close(fd)
    fd = ruleset(allow_etc=True)
    try:
        with open("/etc/hostname") as f:
            assert output(["/bin/cat", "/etc/hostname"], SysProcAttr(use_landlock=True, landlock_fd=fd)) \
                == f.read()
    finally:
        os.close(fd)


def test_ruleset_fd_under_extra_files_is_still_the_ruleset() -> None:
    """golang/go#81057's regression test: files[landlock_fd] is another file; the child is still
    restricted by the ruleset, and the program gets that other file at that number."""
    fd = ruleset()
    null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        extra = [null] * (fd - 2)  # fds 3 .. fd of the child are /dev/null
        script = f"readlink /proc/self/fd/{fd}; cat /etc/hostname || echo denied"
        res = capture(["/bin/sh", "-c", script], SysProcAttr(use_landlock=True, landlock_fd=fd), extra=extra)
    finally:
        os.close(fd)
        os.close(null)
    assert res.out.splitlines() == ["/dev/null", "cat: /etc/hostname: Permission denied", "denied"], res.out


@pytest.mark.parametrize(("kw", "field"), [({"landlock_fd": 1 << 20}, "landlock_fd"),
                                           ({"landlock_flags": 1 << 31}, "landlock_flags")])
def test_use_landlock_false_with_landlock_fd_or_flags_is_refused(kw: dict, field: str) -> None:
    """Go's case: UseLandlock false ignores LandlockFD (and LandlockFlags), and the child runs without
    the ruleset it was given. Refused here instead, naming the field, before any process: a ruleset
    given and never applied is isolation asked for that would not hold."""
    with pytest.raises(ValueError, match=rf"^SysProcAttr\.{field}: is used only with use_landlock"):
        output(["/bin/cat", "/etc/hostname"], SysProcAttr(**kw))


@pytest.mark.parametrize(("kw", "rule"), [
    ({"landlock_fd": 0}, "not an open Landlock ruleset"),
    ({"landlock_fd": 1 << 20}, "not an open Landlock ruleset"),
    ({"landlock_fd": -2}, "between -1"),
    ({"landlock_flags": -1}, "between 0 and 4294967295"),
    ({"landlock_flags": 1 << 32}, "between 0 and 4294967295"),
])
def test_refused_before_any_process(kw: dict, rule: str) -> None:
    field = next(iter(kw))
    with pytest.raises(ValueError, match=rf"^SysProcAttr\.{field}: .*{rule}"):
        fork_exec("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(use_landlock=True, **kw)))


def test_unknown_flags_are_refused_before_any_process() -> None:
    # landlock_restrict_self refuses them (EINVAL) in the child, always: refused here, naming the field
    fd = ruleset()
    try:
        with pytest.raises(ValueError, match=r"^SysProcAttr\.landlock_flags: bits 0x80000000 .*EINVAL"):
            fork_exec("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(use_landlock=True, landlock_fd=fd,
                                                                      landlock_flags=1 << 31)))
    finally:
        os.close(fd)


def _unprivileged_without_no_new_privs() -> tuple[int, int, str]:
    fd = ruleset()
    try:
        fork_exec("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(use_landlock=True, landlock_fd=fd)))
    except ChildError as e:
        return e.errno, int(e.location), str(e.field)
    finally:
        os.close(fd)
    return 0, 0, ""


def test_unprivileged_needs_no_new_privs_as_in_go() -> None:
    """Go does not imply NoNewPrivs: without CAP_SYS_ADMIN, landlock_restrict_self says EPERM."""
    code, location, field = run_in_fork(_unprivileged_without_no_new_privs, uid=65534)
    assert (code, location, field) == (errno.EPERM, ErrorLocation.LANDLOCK_RESTRICT_SELF, "sys.landlock_fd")


def test_no_new_privs_runs_before_the_fd_shuffle() -> None:
    """NoNewPrivs moved to Go 1.28's place: it is set before the Landlock step and the fd passes, so a
    failing fd pass (a closed fd in files) happens after it; the order is the plan's."""
    from pyforkexec.child.plan import PlanInputs, compile_plan
    from pyforkexec.child.steps import STEP

    attr = SysProcAttr(no_new_privs=True, use_landlock=True, landlock_fd=-1, landlock_flags=4)
    plan = compile_plan(PlanInputs(attr, 0, 0, (0, 1, 2), b"", b""))
    locations = [STEP.unpack_from(plan.steps, i)[1] for i in range(0, len(plan.steps), STEP.size)]
    order = [ErrorLocation(x) for x in locations]
    assert order.index(ErrorLocation.NO_NEW_PRIVS) < order.index(ErrorLocation.LANDLOCK_RESTRICT_SELF) \
        < order.index(ErrorLocation.DUP3)
