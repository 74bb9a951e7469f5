"""Idmapped bind mounts (Mount.bind(..., idmap=...)): ownership seen from inside the child and from
the host, idmapped to the child's own user namespace or to another one (path or fd); the errors at
IDMAP (the parent's mount_setattr) and MOVE_MOUNT (the child's attach)."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest
from helpers.forked import run_in_fork
from helpers.leaks import assert_unchanged, open_fds, snapshot
from helpers.marks import needs_root
from helpers.procs import output

from pyforkexec import (
    CLONE_NEWNS,
    CLONE_NEWUSER,
    ChildError,
    Credential,
    ErrorLocation,
    Mount,
    ProcAttr,
    SysProcAttr,
    SysProcIDMap,
    fork_exec,
    start_process,
)
from pyforkexec.sandbox.caps import Capabilities

pytestmark = needs_root
BASE = 100000  # the child's root is host uid/gid 100000
MAPS = {"uid_mappings": [SysProcIDMap(0, BASE, 65536)], "gid_mappings": [SysProcIDMap(0, BASE, 65536)]}
# What the child sees of a file, then what it creates: "uid:gid" lines.
SCRIPT = "stat -c %u:%g /mnt/host-root; touch /mnt/made && stat -c %u:%g /mnt/made"


@pytest.fixture
def shared() -> Iterator[str]:
    """A host directory owned by root (0755 would keep the child's root out without an idmap), with a
    file owned by host root."""
    d = tempfile.mkdtemp(prefix="pfe-idmap-")
    os.chmod(d, 0o755)
    with open(os.path.join(d, "host-root"), "w"):
        pass
    try:
        yield d
    finally:
        shutil.rmtree(d)


def in_userns(shared: str, idmap: object, uid: int = 0) -> SysProcAttr:
    return SysProcAttr(cloneflags=CLONE_NEWUSER | CLONE_NEWNS, credential=Credential(uid, uid), **MAPS,
                       mounts=[Mount.bind(shared, "/mnt", mkdir=False, idmap=idmap)],
                       capabilities=Capabilities())  # (else the program could undo them)


def host_owner(path: str) -> str:
    st = os.stat(path)
    return f"{st.st_uid}:{st.st_gid}"


def test_idmapped_to_the_childs_own_user_namespace(shared: str) -> None:
    before = open_fds()
    out = output(["/bin/sh", "-c", SCRIPT], in_userns(shared, True))
    assert out.splitlines() == ["0:0", "0:0"]  # host root is the child's root, both ways
    assert host_owner(os.path.join(shared, "made")) == "0:0"
    assert open_fds() == before  # the detached tree and the helper's namespace fd are closed


def test_a_user_creates_files_as_its_own_ids(shared: str) -> None:
    os.chmod(shared, 0o777)
    out = output(["/bin/sh", "-c", SCRIPT], in_userns(shared, True, uid=1000))
    assert out.splitlines() == ["0:0", "1000:1000"]
    assert host_owner(os.path.join(shared, "made")) == "1000:1000"  # stored as the child's own ids


def test_without_idmap_host_ids_show_through(shared: str) -> None:
    """The comparison: a plain bind shows host root as the overflow id, and what the child's root
    makes belongs to host uid 100000."""
    os.chmod(shared, 0o777)
    out = output(["/bin/sh", "-c", SCRIPT], in_userns(shared, None))
    assert out.splitlines() == ["65534:65534", "0:0"]
    assert host_owner(os.path.join(shared, "made")) == f"{BASE}:{BASE}"


@pytest.mark.parametrize("by", ["path", "fd"])
def test_idmapped_to_another_user_namespace(shared: str, by: str) -> None:
    """A child without a user namespace of its own, the mount idmapped to one mapping 0 -> 100000:
    host root's file shows as 100000, and what host uid 100000 creates is stored as 0."""
    holder = start_process("/bin/sleep", ["sleep", "60"],
                           ProcAttr(sys=SysProcAttr(cloneflags=CLONE_NEWUSER, **MAPS)))
    ns = f"/proc/{holder.pid}/ns/user"
    fd = os.open(ns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.chmod(shared, 0o777)
        sys = SysProcAttr(cloneflags=CLONE_NEWNS, credential=Credential(BASE, BASE),
                          mounts=[Mount.bind(shared, "/mnt", mkdir=False, idmap=ns if by == "path" else fd)])
        assert output(["/bin/sh", "-c", SCRIPT], sys).splitlines() == [f"{BASE}:{BASE}", f"{BASE}:{BASE}"]
        assert host_owner(os.path.join(shared, "made")) == "0:0"
    finally:
        os.close(fd)
        holder.kill()
        holder.wait()


def test_a_filesystem_without_idmap_support_fails_at_idmap() -> None:
    with pytest.raises(ChildError) as info:
        fork_exec("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(
            cloneflags=CLONE_NEWUSER | CLONE_NEWNS, **MAPS,
            mounts=[Mount.tmpfs("/tmp"), Mount.bind("/proc", "/mnt", idmap=True)],
            capabilities=Capabilities())))
    e = info.value
    assert (e.errno, e.location, e.index, e.field) == (errno.EINVAL, ErrorLocation.IDMAP, 1, "sys.mounts[1]")


def test_a_missing_target_fails_at_move_mount(shared: str) -> None:
    sys = in_userns(shared, True)
    sys.mounts = [Mount.bind(shared, "/nonexistent-pfe", mkdir=False, idmap=True)]
    with pytest.raises(ChildError) as info:
        fork_exec("/bin/true", ["true"], ProcAttr(sys=sys))
    e = info.value
    assert (e.errno, e.location, e.field) == (errno.ENOENT, ErrorLocation.MOVE_MOUNT, "sys.mounts[0]")


def _unprivileged(shared: str) -> tuple[int, int, str]:
    sys = SysProcAttr(cloneflags=CLONE_NEWUSER | CLONE_NEWNS, uid_mappings=[SysProcIDMap(0, 65534, 1)],
                      gid_mappings=[SysProcIDMap(0, 65534, 1)],
                      mounts=[Mount.bind(shared, "/mnt", mkdir=False, idmap=True)],
                      capabilities=Capabilities())
    try:
        fork_exec("/bin/true", ["true"], ProcAttr(sys=sys))
    except ChildError as e:
        return e.errno, int(e.location), str(e.field)
    return 0, 0, ""


def test_unprivileged_callers_are_refused_at_idmap(shared: str) -> None:
    """Idmapping a host filesystem needs CAP_SYS_ADMIN over it: uid 65534 gets EPERM, naming the mount."""
    got = run_in_fork(_unprivileged, shared, uid=65534)
    assert got == (errno.EPERM, ErrorLocation.IDMAP, "sys.mounts[0]")


@pytest.mark.parametrize("idmap", ["fd 0", "/proc/self/ns/net", "/etc/hostname", "/nonexistent/pfe-userns",
                                   "/proc/self/ns/user"])
def test_an_idmap_that_is_no_user_namespace_is_refused_before_any_process(shared: str, idmap: str) -> None:
    """An idmap names a user namespace: an fd (a JSON 0 meant as false is fd 0) or a path that is none
    is a ValueError naming the mount's idmap, not a start that fails at IDMAP."""
    before = snapshot()
    target: object = 0 if idmap == "fd 0" else idmap
    with pytest.raises(ValueError, match=r"^SysProcAttr\.mounts\[0\]\.idmap: "):
        fork_exec("/bin/true", ["true"], ProcAttr(sys=in_userns(shared, target)))
    assert_unchanged(before)
