"""SysProcAttr.seccomp and no_new_privs: the filter in force in the child, and the BPF it compiles to."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers.ext import bpf, userns
from helpers.marks import needs_root
from helpers.procs import capture, output, status_fields

from pyforkexec import ProcAttr, SysProcAttr, fork_exec
from pyforkexec.sandbox import syscalls as sc
from pyforkexec.sandbox.seccomp import ACTIONS, SeccompFilter, check_seccomp

pytestmark = needs_root
PYTHON = "/usr/bin/python3"
MKDIR = """import os, sys
try:
    os.mkdir(sys.argv[1])
except OSError as e:
    print(e.errno)
else:
    print('made')"""


def mkdir_errno(sys: SysProcAttr, path: Path) -> str:
    return output([PYTHON, "-c", MKDIR, str(path)], sys).strip()


def status(sys: SysProcAttr) -> dict[str, str]:
    return status_fields(output(["/usr/bin/cat", "/proc/self/status"], sys))


def test_denied_call_fails_with_the_configured_errno(tmp_path: Path) -> None:
    sys = SysProcAttr(seccomp=SeccompFilter(deny=["mkdir", "mkdirat"], errno=errno.EROFS))
    assert mkdir_errno(sys, tmp_path / "x") == str(errno.EROFS)
    assert not (tmp_path / "x").exists()
    assert mkdir_errno(SysProcAttr(), tmp_path / "y") == "made"


def test_default_errno_with_an_allow_list(tmp_path: Path) -> None:
    everything = set(sc.table(sc.machine())) - {"mkdir", "mkdirat"}
    f = SeccompFilter(default_action="errno", errno=errno.ENOSYS, allow=sorted(everything))
    assert mkdir_errno(SysProcAttr(seccomp=f), tmp_path / "x") == str(errno.ENOSYS)


def test_kill_process() -> None:
    sys = SysProcAttr(seccomp=SeccompFilter(deny=["getppid"], deny_action="kill_process"))
    res = capture([PYTHON, "-c", "import os; os.getppid(); print('alive')"], sys)
    assert (res.returncode, res.out) == (-signal.SIGSYS, "")


def test_log_allows() -> None:
    sys = SysProcAttr(seccomp=SeccompFilter(deny=["getppid"], deny_action="log"))
    assert output([PYTHON, "-c", "import os; print(os.getppid() > 0)"], sys) == "True\n"


def test_root_keeps_no_new_privs_off_unless_asked() -> None:
    st = status(SysProcAttr(seccomp=SeccompFilter(deny=["ptrace"])))
    assert (st["Seccomp"], st["Seccomp_filters"], st["NoNewPrivs"]) == ("2", "1", "0")
    assert status(SysProcAttr(no_new_privs=True))["NoNewPrivs"] == "1"


def unprivileged_status(with_userns: bool) -> dict[str, str]:
    f = SeccompFilter(deny=["ptrace"])
    return status(userns(seccomp=f) if with_userns else SysProcAttr(seccomp=f))


@pytest.mark.parametrize(("with_userns", "nnp"), [(False, "1"), (True, "0")], ids=["plain", "in-userns"])
def test_no_new_privs_is_forced_only_without_cap_sys_admin(unprivileged: Callable[..., Any],
                                                           with_userns: bool, nnp: str) -> None:
    # seccomp asks for CAP_SYS_ADMIN in the caller's own user namespace, which a new one gives
    st = unprivileged(unprivileged_status, with_userns)
    assert (st["Seccomp"], st["NoNewPrivs"]) == ("2", nnp)


X32 = """
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(void) { long r = syscall(0x40000000 | SYS_getpid); printf("x32 returned %ld\\n", r); return 0; }
"""


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the x32 ABI exists on x86_64 only")
def test_x32_system_calls_kill_the_process(tmp_path: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    (tmp_path / "x32.c").write_text(X32)
    subprocess.run([cc, "-o", str(tmp_path / "x32"), str(tmp_path / "x32.c")], check=True)
    assert capture([str(tmp_path / "x32")]).returncode == 0  # without a filter: ENOSYS or a pid
    sys = SysProcAttr(seccomp=SeccompFilter(deny=["ptrace"]))
    assert capture([str(tmp_path / "x32")], sys).returncode == -signal.SIGSYS


# ---- the program -----------------------------------------------------------------------------------

LD, JEQ, JGE, RET = 0x20, 0x15, 0x35, 0x06


def test_program_for_aarch64() -> None:
    prog = bpf(check_seccomp("f", SeccompFilter(deny=["mount"], errno=5), arch="aarch64"))
    assert prog == [(LD, 0, 0, 4), (JEQ, 1, 0, 0xC00000B7), (RET, 0, 0, ACTIONS["kill_process"]),
                    (LD, 0, 0, 0), (JEQ, 0, 1, 40), (RET, 0, 0, 0x50005), (RET, 0, 0, ACTIONS["allow"])]


def test_program_for_x86_64_checks_the_x32_bit() -> None:
    prog = bpf(check_seccomp("f", SeccompFilter(default_action="kill_thread", allow=["execve", "exit"]),
                             arch="x86_64"))
    assert prog[:6] == [(LD, 0, 0, 4), (JEQ, 1, 0, 0xC000003E), (RET, 0, 0, ACTIONS["kill_process"]),
                        (LD, 0, 0, 0), (JGE, 0, 1, 0x40000000), (RET, 0, 0, ACTIONS["kill_process"])]
    assert prog[6:] == [(JEQ, 0, 1, 59), (RET, 0, 0, ACTIONS["allow"]), (JEQ, 0, 1, 60),
                        (RET, 0, 0, ACTIONS["allow"]), (RET, 0, 0, 0)]


def test_names_of_another_architecture_are_skipped() -> None:
    # "open" exists on x86_64 only; an unknown name is an error
    assert len(bpf(check_seccomp("f", SeccompFilter(deny=["open", "mount"]), arch="aarch64"))) == 7
    with pytest.raises(ValueError, match=r"^f\.deny\[1\]: unknown system call 'opne'"):
        check_seccomp("f", SeccompFilter(deny=["open", "opne"]))


# What arm64's asm/unistd.h defines before it includes the generic table (Linux 6.1-6.10).
ARM64_WANTS = ("RENAMEAT", "NEW_STAT", "SET_GET_RLIMIT", "TIME32_SYSCALLS", "SYS_CLONE3", "MEMFD_SECRET")


def test_the_aarch64_table_names_each_call_as_the_kernel_does() -> None:
    """aarch64's call 79 was listed as ``fstatat`` (Go's name, the kernel's __NR3264_fstatat) where the
    kernel, strace and libseccomp say ``newfstatat``, x86_64's name for the same call: so ``deny:
    [newfstatat]`` was skipped on aarch64 as another architecture's call, and the call stayed allowed.
    Every __NR_ name of the kernel's generic table (as arm64 builds it) is in ours, with its number."""
    import re

    gcc = shutil.which("gcc")
    header = Path("/usr/include/asm-generic/unistd.h")
    if gcc is None or not header.exists():
        pytest.skip("needs gcc and the kernel's generic headers (linux-libc-dev) to read the table")
    defines = subprocess.run(
        [gcc, "-E", "-dM", "-D__BITS_PER_LONG=64", *(f"-D__ARCH_WANT_{w}" for w in ARM64_WANTS),
         "-x", "c", "-"],
        input=f"#include <{header}>\n", capture_output=True, text=True, check=True).stdout
    macros = dict(re.findall(r"^#define (__NR\w+) (\S+)$", defines, re.M))

    def number(macro: str) -> Any:
        while macro in macros:
            macro = macros[macro]
        return int(macro) if macro.isdigit() else None

    kernel = {m[len("__NR_"):]: number(m) for m in macros
              if m.startswith("__NR_") and m != "__NR_syscalls" and number(m) is not None}
    ours = sc.table("aarch64")
    assert len(kernel) > 250
    assert {name: nr for name, nr in kernel.items() if ours.get(name) != nr} == {}
    assert "fstatat" not in ours and sc.known_anywhere("newfstatat")
    deny = bpf(check_seccomp("f", SeccompFilter(deny=["newfstatat"]), arch="aarch64"))
    assert (JEQ, 0, 1, 79) in deny


def test_the_c_child_and_the_tables_agree() -> None:
    from pyforkexec.child import _child

    table = sc.table(sc.machine())
    assert {name: table[name] for name in _child.SYS} == _child.SYS


def test_a_filter_that_restricts_nothing_is_refused() -> None:
    """``seccomp: {}`` in a spec (an empty YAML mapping): the default allows every call and nothing is
    denied; it ran the program as though filtered."""
    with pytest.raises(ValueError, match=r"^SysProcAttr\.seccomp: restricts nothing"):
        fork_exec("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(seccomp=SeccompFilter())))


def test_a_filter_left_with_nothing_on_this_architecture_or_an_unused_errno_is_refused() -> None:
    """``deny: ["open"]`` on aarch64 (x86_64's name only) was skipped to a filter that denies nothing;
    an ``errno`` no action returns was dropped. Both refused naming the field, before any process."""
    assert "open" not in sc.table("aarch64") and sc.known_anywhere("open")
    with pytest.raises(ValueError, match=r"^f\.deny: restricts nothing on aarch64"):
        check_seccomp("f", SeccompFilter(deny=["open"]), arch="aarch64")
    with pytest.raises(ValueError, match=r"^SysProcAttr\.seccomp\.errno: is returned by no action"):
        fork_exec("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(seccomp=SeccompFilter(
            deny=["mount"], errno=22, deny_action="kill_process"))))
    check_seccomp("f", SeccompFilter(deny=["mount"], errno=22))  # the deny action's errno
    check_seccomp("f", SeccompFilter(default_action="errno", allow=["execve", "exit_group"], errno=38))


# A missing program under a filter that fails or kills what the child does after execve fails: its
# report on the error pipe (write) and its exit (exit_group, exit). Run in a session of its own, so
# that a child left spinning is killed with it.
AFTER_EXECVE = r"""
import sys
from pyforkexec import CLONE_NEWUSER, ChildError, ProcAttr, SeccompFilter, SysProcAttr, SysProcIDMap
from pyforkexec import fork_exec
f = SeccompFilter(**eval(sys.argv[1]))
kw = {"vfork": {}, "sync": dict(sync=lambda pid: None),
      "maps": dict(cloneflags=CLONE_NEWUSER, uid_mappings=[SysProcIDMap(0, 0, 1)],
                   gid_mappings=[SysProcIDMap(0, 0, 1)])}[sys.argv[2]]
try:
    pid = fork_exec("/nonexistent/h150", ["x"], ProcAttr(sys=SysProcAttr(seccomp=f, **kw)))
except ChildError as e:
    print(e)
else:
    print("started", pid)
"""


@pytest.mark.parametrize("mode", ["vfork", "sync", "maps"])
@pytest.mark.parametrize("spec", [
    dict(deny=["exit_group", "exit"]),
    dict(deny=["write", "exit_group", "exit"]),
    dict(default_action="errno", allow=["execve"]),
    dict(deny=["write"], deny_action="kill_process"),
    dict(default_action="trap", allow=["execve"])],
    ids=["exit-errno", "write-exit-errno", "allow-execve-only", "write-killed", "trap"])
def test_a_failed_execve_is_reported_whatever_the_filter_does_to_the_child_after_it(spec: dict,
                                                                                    mode: str) -> None:
    """The child installs the filter right before execve; when execve fails, it reports on the error
    pipe and exits. A filter failing exit_group with an errno made it retry for ever (100% CPU, and the
    vfork parent hung with it); one failing or killing the write (the pipe of sync or id maps) made
    fork_exec return the pid of a child that never ran the program. Each is the execve's error now."""
    proc = subprocess.Popen([sys.executable, "-c", AFTER_EXECVE, repr(spec), mode], stdout=subprocess.PIPE,
                            text=True, start_new_session=True, cwd=Path(__file__).parents[1])
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the spawn did not return")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert out == "fork/exec /nonexistent/h150: no such file or directory (at execve)\n", out
