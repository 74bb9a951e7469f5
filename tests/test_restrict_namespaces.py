"""SysProcAttr.restrict_namespaces (systemd's RestrictNamespaces=): the program cannot make or join a
namespace of a type outside the mask, by unshare, clone (the flags of a fork), clone3 or setns, even
as root with every capability, and a caller's SeccompFilter allowing everything does not lift it;
with a type allowed, that type still works and no other. Plain programs (fork, threads, subprocess,
posix_spawn, whose glibc tries clone3 first) are unaffected. As uid 65534 (no_new_privs comes with the
filter) its user namespaces are refused too. A filter that cannot be installed fails the spawn at
SECCOMP index 2 naming the field; a mask with another bit is refused naming the field."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest
from helpers.forked import NOBODY, run_in_fork
from helpers.leaks import assert_unchanged, snapshot
from helpers.marks import needs_root
from helpers.procs import capture
from helpers.seccomp_denied import spawn_with_seccomp_denied

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
    ErrorLocation,
    ProcAttr,
    SetNS,
    SysProcAttr,
    SysProcIDMap,
    spec,
)
from pyforkexec.flags import NAMESPACE_FLAGS, NAMESPACE_MASK
from pyforkexec.sandbox import syscalls
from pyforkexec.sandbox.caps import Capabilities
from pyforkexec.sandbox.seccomp import SeccompFilter

pytestmark = needs_root
TYPES = ("user", "net", "mnt", "uts", "ipc", "pid", "cgroup", "time")
FLAGS = {name: int(NAMESPACE_FLAGS[name]) for name in TYPES}
# Run by the program: each system call by its number (no C library choosing another) in a forked
# child, so that what one case makes does not change the next; "ok" or the errno's name per case.
PROBE = r"""
import ctypes, errno, json, os, signal, struct, subprocess, sys, threading
nr, flags = json.loads(sys.argv[1]), json.loads(sys.argv[2])
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
out = {}
def forked(case, fn):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            got = fn()
        except BaseException as e:
            got = repr(e)
        os.write(w, got.encode())
        os._exit(0)
    os.close(w)
    out[case] = os.read(r, 200).decode()
    os.close(r)
    os.waitpid(pid, 0)
def result(r):
    return "ok" if r >= 0 else errno.errorcode[ctypes.get_errno()]
def raw(name, *args):
    r = libc.syscall(ctypes.c_long(nr[name]), *(ctypes.c_long(a) for a in args))
    if r == 0 and name in ("clone", "clone3"):
        os._exit(0)  # the new process: a copy of this one, on its stack
    if r > 0 and name in ("clone", "clone3"):
        os.waitpid(r, 0)
    return result(r)
def clone3(f):
    args = ctypes.create_string_buffer(struct.pack("=8Q", f, 0, 0, 0, signal.SIGCHLD, 0, 0, 0), 64)
    r = libc.syscall(ctypes.c_long(nr["clone3"]), args, ctypes.c_long(64))
    if r == 0:
        os._exit(0)
    if r > 0:
        os.waitpid(r, 0)
    return result(r)
for name, f in flags.items():
    forked("unshare " + name, lambda: raw("unshare", f))
    forked("libc unshare " + name, lambda: result(libc.unshare(f)))
    if name != "time":  # CLONE_NEWTIME is in clone's exit-signal byte: only clone3 and unshare take it
        forked("clone " + name, lambda: raw("clone", f | signal.SIGCHLD, 0, 0, 0, 0))
forked("clone3 user", lambda: clone3(flags["user"]))
forked("clone3 plain", lambda: clone3(0))
forked("clone plain", lambda: raw("clone", signal.SIGCHLD, 0, 0, 0, 0))
def setns(path, t):
    fd = os.open(path, os.O_RDONLY)
    return result(libc.setns(fd, t))
forked("setns net", lambda: setns("/proc/self/ns/net", flags["net"]))
forked("setns net as 0", lambda: setns("/proc/self/ns/net", 0))
forked("setns uts", lambda: setns("/proc/self/ns/uts", flags["uts"]))
def pidfd_setns(t):
    fd = libc.syscall(ctypes.c_long(nr["pidfd_open"]), ctypes.c_long(os.getpid()), ctypes.c_long(0))
    return result(libc.setns(fd, t)) if fd >= 0 else "pidfd_open " + result(fd)
forked("setns pidfd net+uts", lambda: pidfd_setns(flags["net"] | flags["uts"]))
forked("setns pidfd net", lambda: pidfd_setns(flags["net"]))
def plain():
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()
    pid = os.fork()
    if pid == 0:
        os._exit(3)
    forked_code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    sub = subprocess.run(["/bin/sh", "-c", "exit 4"]).returncode
    spawned = os.posix_spawn("/bin/sh", ["sh", "-c", "exit 5"], {})
    spawn_code = os.waitstatus_to_exitcode(os.waitpid(spawned, 0)[1])
    return "ok" if (forked_code, sub, spawn_code) == (3, 4, 5) else repr((forked_code, sub, spawn_code))
forked("fork, thread, subprocess, posix_spawn", plain)
print(json.dumps(out))
"""
PLAIN = "fork, thread, subprocess, posix_spawn"


def probe(sys_attr: Optional[SysProcAttr]) -> dict[str, str]:
    table = syscalls.table(syscalls.machine())
    numbers = {n: table[n] for n in ("unshare", "clone", "clone3", "pidfd_open")}
    result = capture(["/usr/bin/python3", "-c", PROBE, json.dumps(numbers), json.dumps(FLAGS)], sys_attr)
    assert result.returncode == 0, result.out
    return json.loads(result.out.splitlines()[-1])


def makes(got: dict[str, str], name: str) -> list[str]:
    """The results of every way of making a namespace of type ``name``."""
    cases = [f"unshare {name}", f"libc unshare {name}"] + ([f"clone {name}"] if name != "time" else [])
    return [got[c] for c in cases]


def test_without_the_restriction_root_makes_and_joins_every_type() -> None:
    """What the restriction stops (and the probe works): root makes each type by each call."""
    got = probe(SysProcAttr())
    assert {name: makes(got, name) for name in TYPES} == {name: ["ok"] * len(makes(got, name))
                                                         for name in TYPES}
    assert [got[c] for c in ("clone3 user", "clone3 plain", "setns net", "setns net as 0",
                             "setns pidfd net+uts", PLAIN)] == ["ok"] * 6


@pytest.mark.parametrize("seccomp", [None, SeccompFilter(default_action="allow", deny=["ptrace"])],
                         ids=["alone", "with an allow-all filter"])
def test_restrict_namespaces_0_refuses_every_type_to_root(seccomp: Optional[SeccompFilter]) -> None:
    got = probe(SysProcAttr(restrict_namespaces=0, seccomp=seccomp))
    assert {name: makes(got, name) for name in TYPES} == {name: ["EPERM"] * len(makes(got, name))
                                                         for name in TYPES}
    assert [got[c] for c in ("setns net", "setns net as 0", "setns uts", "setns pidfd net+uts")] == [
        "EPERM"] * 4
    assert (got["clone3 user"], got["clone3 plain"]) == ("ENOSYS", "ENOSYS")
    assert (got["clone plain"], got[PLAIN]) == ("ok", "ok")


def test_a_mask_allowing_net_lets_root_make_and_join_a_network_namespace_and_nothing_else() -> None:
    got = probe(SysProcAttr(restrict_namespaces=int(CLONE_NEWNET)))
    assert makes(got, "net") == ["ok"] * 3
    assert {name: makes(got, name) for name in TYPES if name != "net"} == {
        name: ["EPERM"] * len(makes(got, name)) for name in TYPES if name != "net"}
    assert (got["setns net"], got["setns pidfd net"]) == ("ok", "ok")
    assert [got[c] for c in ("setns net as 0", "setns uts", "setns pidfd net+uts")] == ["EPERM"] * 3
    assert got["clone3 user"] == "ENOSYS"
    assert got[PLAIN] == "ok"


def test_every_type_but_time_allowed_keeps_time_and_clone3_refused() -> None:
    """A time namespace is made by unshare or clone3 only: clone's 0x80 is its exit signal's, and a
    clone with every other type still works."""
    got = probe(SysProcAttr(restrict_namespaces=NAMESPACE_MASK & ~int(CLONE_NEWTIME)))
    assert makes(got, "time") == ["EPERM"] * 2
    assert {name: makes(got, name) for name in TYPES if name != "time"} == {
        name: ["ok"] * 3 for name in TYPES if name != "time"}
    assert (got["clone3 user"], got["clone3 plain"]) == ("ENOSYS", "ENOSYS")
    assert got[PLAIN] == "ok"


def test_every_type_allowed_installs_nothing() -> None:
    got = probe(SysProcAttr(restrict_namespaces=NAMESPACE_MASK))
    assert (got["clone3 user"], got["setns net as 0"], makes(got, "time")) == ("ok", "ok", ["ok"] * 2)


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"h164-rn-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


def _as_a_role_service(netns: str) -> SysProcAttr:
    """A role's service: its own user (0 -> 65534), pid, mount, uts and ipc namespaces, cgroup and time
    ones unshared, a network namespace joined by path, no capability, no_new_privs."""
    return SysProcAttr(
        cloneflags=CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC,
        unshareflags=CLONE_NEWCGROUP | CLONE_NEWTIME, setns=[SetNS(netns, int(CLONE_NEWNET))],
        uid_mappings=[SysProcIDMap(0, NOBODY, 1)], gid_mappings=[SysProcIDMap(0, NOBODY, 1)],
        credential=Credential(0, 0), hostname="h164", capabilities=Capabilities(), no_new_privs=True,
        restrict_namespaces=0)


def test_the_program_s_own_namespaces_and_joins_are_made_before_the_filter(netns: str) -> None:
    """Every step of the child that makes or joins a namespace runs before the filter: the spawn of a
    role's service starts, and the program then makes none (as root of its user namespace, where
    unrestricted it makes every type)."""
    got = probe(_as_a_role_service(netns))
    assert {name: makes(got, name) for name in TYPES} == {name: ["EPERM"] * len(makes(got, name))
                                                         for name in TYPES}
    assert got["clone3 user"] == "ENOSYS" and got[PLAIN] == "ok"
    unrestricted = _as_a_role_service(netns)
    unrestricted.restrict_namespaces = None
    assert makes(probe(unrestricted), "user") == ["ok"] * 3


def test_util_linux_unshare_is_refused() -> None:
    for argv in (["/usr/bin/unshare", "-U", "true"], ["/usr/bin/unshare", "-n", "true"],
                 ["/usr/bin/unshare", "--fork", "--pid", "true"]):
        result = capture(argv, SysProcAttr(restrict_namespaces=0))
        assert (result.returncode, "Operation not permitted" in result.out) == (1, True), (argv, result.out)
    assert capture(["/usr/bin/unshare", "-n", "true"], SysProcAttr(
        restrict_namespaces=int(CLONE_NEWNET))).returncode == 0
    assert capture(["/usr/bin/unshare", "-U", "true"], SysProcAttr(
        restrict_namespaces=int(CLONE_NEWNET))).returncode == 1


def _as_nobody(restrict: Optional[int]) -> dict[str, str]:
    return probe(SysProcAttr(restrict_namespaces=restrict))


@pytest.mark.parametrize("restrict", [None, 0, int(CLONE_NEWUSER)])
def test_as_uid_65534(restrict: Optional[int]) -> None:
    """An unprivileged program makes a user namespace (and, in it, the rest) unless restricted."""
    got = run_in_fork(_as_nobody, restrict, uid=NOBODY)
    user = "EPERM" if restrict == 0 else "ok"
    if restrict is None and got["unshare user"] != "ok":
        pytest.skip(f"this kernel refuses uid 65534 a user namespace ({got['unshare user']})")
    assert makes(got, "user") == [user] * 3
    assert got["clone3 user"] == ("ok" if restrict is None else "ENOSYS")
    assert got["unshare net"] == "EPERM"  # no capability here, restricted or not
    assert got[PLAIN] == "ok"


def test_a_filter_that_cannot_be_installed_fails_the_spawn_naming_the_field() -> None:
    got = run_in_fork(spawn_with_seccomp_denied, SysProcAttr(restrict_namespaces=0))
    assert got == (errno.EPERM, ErrorLocation.SECCOMP, 2, "sys.restrict_namespaces")


@pytest.mark.parametrize(("value", "kind", "rule"), [
    (True, TypeError, "must be a mask"), ("net", TypeError, "must be a mask"),
    (1, ValueError, "no namespace type"), (-1, ValueError, "no namespace type"),
    (int(CLONE_NEWNET) | 0x100, ValueError, r"0x100\)"),
])
def test_only_clone_new_bits_are_taken(value: object, kind: type, rule: str) -> None:
    before = snapshot()
    with pytest.raises(kind, match=r"^SysProcAttr\.restrict_namespaces: .*" + rule):
        capture(["/bin/true"], SysProcAttr(restrict_namespaces=value))  # type: ignore[arg-type]
    assert_unchanged(before)


def test_a_spec_names_the_types_and_dumps_them_back() -> None:
    got = spec.loads(json.dumps({"version": 1, "argv": ["/bin/true"],
                                 "sys": {"restrict_namespaces": ["net", "mount", "newuser"]}}).encode())
    assert got.attr.sys is not None
    assert got.attr.sys.restrict_namespaces == int(CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWUSER)
    assert spec.dump(None, ["/bin/true"], got.attr)["sys"] == {"restrict_namespaces": ["mnt", "user", "net"]}
    none = spec.dump(None, ["/bin/true"], ProcAttr(sys=SysProcAttr(restrict_namespaces=0)))
    assert none["sys"] == {"restrict_namespaces": []}
    assert spec.load_spec(none).attr.sys.restrict_namespaces == 0  # type: ignore[union-attr]


def test_exec_spec_runs_the_program_restricted(tmp_path: Path) -> None:
    """The command line: a spec's restriction reaches the program (util-linux's unshare refused)."""
    doc = {"version": 1, "argv": ["/usr/bin/unshare", "-U", "true"], "sys": {"restrict_namespaces": []}}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(doc))
    here = str(Path(__file__).resolve().parents[1])  # this checkout's package, first on sys.path
    check = subprocess.run([sys.executable, "-m", "pyforkexec", "exec", "--check", "--spec", str(path)],
                           cwd=here, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    ran = subprocess.run([sys.executable, "-m", "pyforkexec", "exec", "--spec", str(path)], cwd=here,
                         capture_output=True, text=True)
    assert (ran.returncode, "Operation not permitted" in ran.stderr) == (1, True), ran.stderr
    doc["sys"] = {"restrict_namespaces": ["user"]}
    path.write_text(json.dumps(doc))
    assert subprocess.run([sys.executable, "-m", "pyforkexec", "exec", "--spec", str(path)], cwd=here,
                          capture_output=True, text=True).returncode == 0


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
