"""SysProcAttr.restrict_suid_sgid: under an idmapped bind (on by default) the program cannot give a file
a set-user-ID or set-group-ID mode by any system call that sets or creates one, which, stored as host
root's, would be a set-user-ID root program for any host user; a plain mode still works. Off
(False), it can; a caller's SeccompFilter allowing everything does not lift it; CAP_SETFCAP (a file
capability stored for host root) is refused with it. As uid 65534 (no idmap then: the kernel refuses
one), restrict_suid_sgid=True stops the owner of a file from making it set-user-ID."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from typing import Optional

import pytest
from helpers.forked import NOBODY, run_in_fork
from helpers.leaks import assert_unchanged, snapshot
from helpers.marks import needs_root
from helpers.procs import capture
from helpers.seccomp_denied import spawn_with_seccomp_denied

from pyforkexec import (
    CLONE_NEWNS,
    CLONE_NEWUSER,
    Credential,
    ErrorLocation,
    Mount,
    SysProcAttr,
    SysProcIDMap,
)
from pyforkexec.sandbox import syscalls
from pyforkexec.sandbox.caps import Capabilities
from pyforkexec.sandbox.seccomp import SeccompFilter

pytestmark = needs_root
BASE = 100000
MAPS = {"uid_mappings": [SysProcIDMap(0, BASE, 65536)], "gid_mappings": [SysProcIDMap(0, BASE, 65536)]}
NAMES = ("chmod", "fchmod", "fchmodat", "fchmodat2", "open", "openat", "creat", "mknod", "mknodat", "openat2",
         "io_uring_setup")
# Run by the program in the directory given: each system call by its number (no C library choosing
# another), "ok" or the errno's name (or "absent" on an architecture without it) for each case.
PROBE = r"""
import ctypes, errno, json, os, stat, sys
nr, d = json.loads(sys.argv[1]), sys.argv[2]
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
AT_FDCWD, O_TMPFILE = -100, 0o20000000 | os.O_DIRECTORY
out = {}
def call(case, name, *args):
    if name not in nr:
        out[case] = "absent"
        return
    args = [ctypes.c_char_p(a) if isinstance(a, bytes) else ctypes.c_long(a) for a in args]
    r = libc.syscall(ctypes.c_long(nr[name]), *args)
    out[case] = "ok" if r >= 0 else errno.errorcode[ctypes.get_errno()]
def p(name):
    return os.path.join(d, name).encode()
for bits, m in (("suid", 0o4755), ("sgid", 0o2755)):
    f = p("file-" + bits)
    os.close(os.open(f, os.O_CREAT | os.O_WRONLY, 0o644))
    call("chmod " + bits, "chmod", f, m)
    fd = os.open(f, os.O_RDONLY)
    call("fchmod " + bits, "fchmod", fd, m)
    os.close(fd)
    call("fchmodat " + bits, "fchmodat", AT_FDCWD, f, m)
    call("fchmodat2 " + bits, "fchmodat2", AT_FDCWD, f, m, 0)
    call("open O_CREAT " + bits, "open", p("open-" + bits), os.O_CREAT | os.O_WRONLY, m)
    call("openat O_CREAT " + bits, "openat", AT_FDCWD, p("openat-" + bits), os.O_CREAT | os.O_WRONLY, m)
    call("openat O_TMPFILE " + bits, "openat", AT_FDCWD, d.encode(), O_TMPFILE | os.O_RDWR, m)
    call("creat " + bits, "creat", p("creat-" + bits), m)
    call("mknod " + bits, "mknod", p("mknod-" + bits), stat.S_IFREG | m, 0)
    call("mknodat " + bits, "mknodat", AT_FDCWD, p("mknodat-" + bits), stat.S_IFREG | m, 0)
call("chmod 0644", "fchmodat", AT_FDCWD, p("file-suid"), 0o644)
call("openat O_CREAT 0644", "openat", AT_FDCWD, p("plain"), os.O_CREAT | os.O_WRONLY, 0o644)
call("openat no O_CREAT, mode 04755", "openat", AT_FDCWD, p("plain"), os.O_RDONLY, 0o4755)
call("openat2", "openat2", AT_FDCWD, p("plain"), 0, 0)
call("io_uring_setup", "io_uring_setup", 1, 0)
os.mkdir(p("dir"), 0o6755)  # mkdir needs no rule: the kernel keeps no set-id bit of its mode
out["mkdir 06755 mode"] = oct(stat.S_IMODE(os.stat(p("dir")).st_mode) & 0o6000)
print(json.dumps(out))
"""
# An io_uring opens files by IORING_OP_OPENAT without a system call a filter sees (io_uring_enter
# only): this creates argv[1] with mode 04755 that way (raw rings, by mmap), or says why not.
URING = r"""
import ctypes, mmap, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
params = ctypes.create_string_buffer(120)
fd = libc.syscall(425, 4, params)
if fd < 0:
    print("io_uring_setup", os.strerror(ctypes.get_errno())); sys.exit(0)
sq_entries, cq_entries = struct.unpack_from("II", params, 0)
sq_off = struct.unpack_from("IIIIIIII", params, 40)
cq_off = struct.unpack_from("IIIIIIII", params, 80)
size = max(sq_off[6] + sq_entries * 4, cq_off[5] + cq_entries * 16)
ring = mmap.mmap(fd, size, offset=0)
sqes = mmap.mmap(fd, sq_entries * 64, offset=0x10000000)
path = ctypes.create_string_buffer(sys.argv[1].encode())
sqe = bytearray(64)
flags = os.O_CREAT | os.O_WRONLY  # opcode 18, IORING_OP_OPENAT: fd, addr (path), len (mode), open_flags
struct.pack_into("BBHiQQII", sqe, 0, 18, 0, 0, -100, 0, ctypes.addressof(path), 0o4755, flags)
struct.pack_into("Q", sqe, 32, 7)
sqes[0:64] = bytes(sqe)
tail = struct.unpack_from("I", ring, sq_off[1])[0]
mask = struct.unpack_from("I", ring, sq_off[2])[0]
struct.pack_into("I", ring, sq_off[6] + 4 * (tail & mask), 0)
struct.pack_into("I", ring, sq_off[1], tail + 1)
r = libc.syscall(426, fd, 1, 1, 1, None, 0)
ud, res = struct.unpack_from("Qi", ring, cq_off[5])
print("enter", r, "cqe", ud, res, oct(os.stat(sys.argv[1]).st_mode) if res >= 0 else os.strerror(-res))
"""
SET_ID_CASES = [f"{call} {bits}" for bits in ("suid", "sgid") for call in (
    "chmod", "fchmod", "fchmodat", "fchmodat2", "open O_CREAT", "openat O_CREAT", "openat O_TMPFILE", "creat",
    "mknod", "mknodat")]
PLAIN_CASES = ["chmod 0644", "openat O_CREAT 0644", "openat no O_CREAT, mode 04755"]


@pytest.fixture
def shared() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="h162-suid-")
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d)


def idmapped(shared: str, **kw: object) -> SysProcAttr:
    """The program as root of its own user namespace (0 -> 100000), without capabilities, the shared
    directory idmapped to it at /mnt: what it creates there is stored as host root's."""
    return SysProcAttr(cloneflags=CLONE_NEWUSER | CLONE_NEWNS, credential=Credential(0, 0), **MAPS,
                       mounts=[Mount.bind(shared, "/mnt", mkdir=False, idmap=True)],
                       capabilities=Capabilities(), **kw)


def probe(sys_attr: Optional[SysProcAttr], where: str) -> dict[str, str]:
    table = syscalls.table(syscalls.machine())
    numbers = {n: table[n] for n in NAMES if n in table}
    result = capture(["/usr/bin/python3", "-c", PROBE, json.dumps(numbers), where], sys_attr)
    assert result.returncode == 0, result.out
    return json.loads(result.out.splitlines()[-1])


def set_id_files(d: str) -> list[str]:
    """What under ``d`` is set-user-ID or set-group-ID, as the host sees it (owner uid too)."""
    found = []
    for name in sorted(os.listdir(d)):
        st = os.lstat(os.path.join(d, name))
        if stat.S_ISREG(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            found.append(f"{name} uid {st.st_uid}")
    return found


def expected(results: dict[str, str], outcome: str, absent_ok: bool = True) -> list[str]:
    """The set-id cases whose result is not ``outcome`` (an architecture's missing calls aside)."""
    return [c for c in SET_ID_CASES if results[c] != outcome and not (absent_ok and results[c] == "absent")]


def test_an_idmapped_bind_refuses_every_set_id_mode_by_default(shared: str) -> None:
    got = probe(idmapped(shared), "/mnt")
    assert expected(got, "EPERM") == []
    assert [got[c] for c in PLAIN_CASES] == ["ok"] * 3
    assert (got["openat2"], got["io_uring_setup"]) == ("ENOSYS", "ENOSYS")
    assert got["mkdir 06755 mode"] == "0o0"
    assert set_id_files(shared) == []


def test_restrict_suid_sgid_false_leaves_set_id_root_files_on_the_host(shared: str) -> None:
    """What the restriction stops: the program's root, without any capability, leaves set-user-ID files
    of host root (the cases that create or change a mode all succeed)."""
    got = probe(idmapped(shared, restrict_suid_sgid=False), "/mnt")
    assert expected(got, "ok") == []
    assert (got["openat2"], got["io_uring_setup"]) != ("ENOSYS", "ENOSYS")  # (a null struct: EINVAL)
    assert "file-sgid uid 0" in set_id_files(shared)


def test_a_callers_filter_allowing_everything_keeps_the_restriction(shared: str) -> None:
    user = SeccompFilter(default_action="allow", deny=["ptrace"])
    got = probe(idmapped(shared, seccomp=user), "/mnt")
    assert expected(got, "EPERM") == []
    assert [got[c] for c in PLAIN_CASES] == ["ok"] * 3
    assert set_id_files(shared) == []


def test_install_m_4755_fails_and_leaves_no_set_id_file(shared: str) -> None:
    result = capture(["/bin/sh", "-c", "cp /bin/true /mnt/t && install -m 4755 /bin/true /mnt/i; "
                      "chmod u+s /mnt/t; chmod g+s /mnt/t; chmod 0700 /mnt/t && echo plain-ok"],
                     idmapped(shared))
    assert "plain-ok" in result.out
    assert result.out.count("Operation not permitted") >= 3, result.out
    assert set_id_files(shared) == []


@pytest.mark.parametrize("restrict", [None, False])
def test_an_io_uring_cannot_create_a_set_id_file(shared: str, restrict: Optional[bool]) -> None:
    """io_uring_setup fails with ENOSYS under the restriction: a ring's IORING_OP_OPENAT honours a set-id
    mode (without the restriction it leaves a set-user-ID root file) and no filter sees it."""
    sys_attr = idmapped(shared, restrict_suid_sgid=restrict)
    result = capture(["/usr/bin/python3", "-c", URING, "/mnt/ring"], sys_attr)
    if restrict is None:
        assert result.out.strip() == "io_uring_setup Function not implemented", result.out
        assert set_id_files(shared) == []
    else:
        assert result.out.split()[-1] == "0o104755", result.out
        assert set_id_files(shared) == ["ring uid 0"]


def test_keeping_cap_setfcap_with_an_idmapped_bind_is_refused(shared: str) -> None:
    before = snapshot()
    sys_attr = idmapped(shared)
    sys_attr.capabilities = Capabilities(keep=["CAP_SETFCAP"])
    refused = r"^SysProcAttr\.mounts\[0\]\.idmap: .*CAP_SETFCAP.*restrict_suid_sgid"
    with pytest.raises(ValueError, match=refused):
        capture(["/bin/true"], sys_attr)
    assert_unchanged(before)
    sys_attr.restrict_suid_sgid = False  # the caller's explicit choice: both allowed
    assert capture(["/bin/true"], sys_attr).returncode == 0
    sys_attr.restrict_suid_sgid = True
    with pytest.raises(ValueError, match="CAP_SETFCAP"):
        capture(["/bin/true"], sys_attr)


def test_a_non_root_program_with_no_new_privs_may_keep_cap_setfcap_bounded(shared: str) -> None:
    """(b): a uid other than 0 in the namespace under no_new_privs, CAP_SETFCAP not ambient, cannot
    hold it after exec: not refused."""
    os.chmod(shared, 0o777)
    sys_attr = idmapped(shared, no_new_privs=True)
    sys_attr.credential = Credential(1000, 1000)
    sys_attr.capabilities = Capabilities(keep=["CAP_SETFCAP"])
    got = probe(sys_attr, "/mnt")
    assert expected(got, "EPERM") == []


def _own_file_made_set_uid(d: str, restrict: Optional[bool]) -> dict[str, str]:
    return probe(SysProcAttr(restrict_suid_sgid=restrict), d)


@pytest.mark.parametrize("restrict", [True, False, None])
def test_as_uid_65534_restrict_suid_sgid_true_stops_an_owner(restrict: Optional[bool]) -> None:
    d = tempfile.mkdtemp(prefix="h162-suid-nobody-")
    try:
        os.chown(d, NOBODY, NOBODY)
        got = run_in_fork(_own_file_made_set_uid, d, restrict, uid=NOBODY)
        outcome = "EPERM" if restrict else "ok"  # no idmap: None is off
        assert [got[c] for c in ("chmod suid", "fchmodat suid", "openat O_CREAT suid", "mknodat suid")] == (
            [outcome] * 4 if got["chmod suid"] != "absent" else ["absent"] + [outcome] * 3)
        assert [got[c] for c in PLAIN_CASES] == ["ok"] * 3
        assert bool(set_id_files(d)) is not bool(restrict)
    finally:
        shutil.rmtree(d)


def test_a_filter_that_cannot_be_installed_fails_the_spawn_naming_the_field() -> None:
    got = run_in_fork(spawn_with_seccomp_denied, SysProcAttr(restrict_suid_sgid=True))
    assert got == (errno.EPERM, ErrorLocation.SECCOMP, 1, "sys.restrict_suid_sgid")


def test_true_and_false_are_the_only_values() -> None:
    with pytest.raises(TypeError, match=r"^SysProcAttr\.restrict_suid_sgid: "):
        capture(["/bin/true"], SysProcAttr(restrict_suid_sgid="yes"))  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
