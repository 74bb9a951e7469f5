"""Mounts made in a mount namespace of a user namespace other than the caller's: the kernel does not
lock them (MNT_LOCK_* is for mounts copied into a less privileged user namespace), so a program
holding CAP_SYS_ADMIN there could undo them. Such a spawn is refused before any process exists
(validate.check_mounts_hold) unless the program cannot hold CAP_SYS_ADMIN: then its attempt to
remount or unmount fails (EPERM), seen here from inside, as root and as an unprivileged uid."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers.ext import kernel_has_mount_setattr, userns
from helpers.marks import needs_root
from helpers.procs import children, output

from pyforkexec import CLONE_NEWNS, CLONE_NEWPID, Credential, SysProcAttr, SysProcIDMap
from pyforkexec.sandbox.caps import Capabilities
from pyforkexec.sandbox.landlock import Landlock, LandlockPath, landlock_abi
from pyforkexec.sandbox.mounts import MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, Mount
from pyforkexec.validate import check_spawn

pytestmark = needs_root
PY = sys.executable
RULE = "would not hold"
# The program's attempt: remount the target read-write (a bind's flags), then unmount it; prints errnos.
UNDO = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
d = sys.argv[1].encode()
out = []
for call in (lambda: libc.mount(None, d, None, 32 | 4096, None), lambda: libc.umount2(d, 0)):
    out.append(0 if call() == 0 else ctypes.get_errno())
print(*out)
"""


@pytest.fixture(params=["root", "unprivileged"])
def as_user(request: pytest.FixtureRequest, unprivileged: Callable[..., Any]) -> Callable[..., Any]:
    if request.param == "root":
        return lambda fn, *a: fn(*a)
    return unprivileged


@pytest.fixture
def target(world_dir: Path, request: pytest.FixtureRequest) -> str:
    d = world_dir / f"hold-{request.node.name.replace('[', '-').rstrip(']')}"
    d.mkdir(exist_ok=True)
    d.chmod(0o777)
    (d / "file").write_text("host\n")
    return str(d)


def refusal(sys_attr_of: Callable[[], SysProcAttr]) -> str:
    """The ValueError check_spawn gives the SysProcAttr built (as the caller whose ids it maps)."""
    before = children()
    try:
        check_spawn(PY, [PY, "-c", "pass"], _proc(sys_attr_of()))
    except ValueError as e:
        assert children() == before
        return str(e)
    return ""


def _proc(s: SysProcAttr) -> Any:
    from pyforkexec import ProcAttr

    return ProcAttr(sys=s)


def undo(sys_attr_of: Callable[[], SysProcAttr], target: str) -> list[int]:
    """The errnos of the program's remount and umount of ``target`` (0: it succeeded)."""
    return [int(x) for x in output([PY, "-c", UNDO, target], sys_attr_of()).split()]


# --- each escape class is refused, naming its field -------------------------------------------------


def test_a_read_only_bind_in_a_new_user_namespace_is_refused(
    as_user: Callable[..., Any], target: str
) -> None:
    msg = as_user(
        refusal, lambda: userns(flags=CLONE_NEWNS, mounts=[Mount.bind(target, target, readonly=True)])
    )
    assert msg.startswith("SysProcAttr.mounts[0]: ") and RULE in msg and "CAP_SYS_ADMIN" in msg
    assert "no_new_privs" in msg and "Landlock" in msg


def test_a_tmpfs_masking_a_path_is_refused(as_user: Callable[..., Any], target: str) -> None:
    msg = as_user(refusal, lambda: userns(flags=CLONE_NEWNS, mounts=[Mount.tmpfs(target, mkdir=False)]))
    assert msg.startswith("SysProcAttr.mounts[0]: ") and RULE in msg


def test_readonly_root_is_refused(as_user: Callable[..., Any]) -> None:
    msg = as_user(refusal, lambda: userns(flags=CLONE_NEWNS, readonly_root=True))
    assert msg.startswith("SysProcAttr.readonly_root: ") and RULE in msg


def test_an_idmapped_bind_is_refused(target: str) -> None:
    msg = refusal(
        lambda: userns(flags=CLONE_NEWNS, mounts=[Mount.bind(target, target, readonly=True, idmap=True)])
    )
    assert msg.startswith("SysProcAttr.mounts[0]: ") and RULE in msg


def test_the_rule_in_unshareflags_and_a_propagation_change_alone(target: str) -> None:
    unshared = SysProcAttr(
        unshareflags=int(userns().cloneflags) | CLONE_NEWNS,
        uid_mappings=[SysProcIDMap(0, os.getuid(), 1)],
        gid_mappings=[SysProcIDMap(0, os.getgid(), 1)],
        mounts=[Mount.bind(target, target, readonly=True)],
    )
    assert RULE in refusal(lambda: unshared)
    assert refusal(lambda: userns(flags=CLONE_NEWNS, mounts=[Mount(None, "/", None, "rprivate")])) == ""


def test_a_new_proc_read_write_is_a_view_and_runs_but_a_read_only_one_is_refused(
    as_user: Callable[..., Any],
) -> None:
    # util-linux's --mount-proc: the new PID namespace's view, unmounting it shows the proc that was there
    pid_ns = CLONE_NEWNS | CLONE_NEWPID
    assert as_user(refusal, lambda: userns(flags=pid_ns, mounts=[Mount.proc()])) == ""

    def ran() -> str:
        shell = ["/bin/sh", "-c", "echo $$; echo /proc/[0-9]*"]
        return output(shell, userns(flags=pid_ns, mounts=[Mount.proc()]))

    assert as_user(ran).split() == ["1", "/proc/1"]
    ro = Mount("proc", "/proc", "proc", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    msg = as_user(refusal, lambda: userns(flags=pid_ns, mounts=[Mount.proc("/tmp"), ro]))
    assert msg.startswith("SysProcAttr.mounts[1]: ") and RULE in msg


def test_the_callers_own_user_namespace_is_not_refused(target: str) -> None:
    # documented, not refused: root keeping CAP_SYS_ADMIN may undo them, as on the host
    assert (
        refusal(lambda: SysProcAttr(cloneflags=CLONE_NEWNS, mounts=[Mount.bind(target, target, True)])) == ""
    )


def test_what_keeps_cap_sys_admin_is_still_refused(target: str) -> None:
    ro = [Mount.bind(target, target, readonly=True)]
    for s in (
        userns(flags=CLONE_NEWNS, mounts=ro, capabilities=Capabilities(keep=["CAP_SYS_ADMIN"])),
        userns(
            flags=CLONE_NEWNS,
            mounts=ro,
            capabilities=Capabilities(drop=["CAP_NET_ADMIN"], drop_all_others=False),
        ),
        # a non-root uid without no_new_privs: a set-user-id program of the namespace's root
        SysProcAttr(
            cloneflags=int(userns().cloneflags) | CLONE_NEWNS,
            mounts=ro,
            uid_mappings=[SysProcIDMap(1000, os.getuid(), 1)],
            gid_mappings=[SysProcIDMap(1000, os.getgid(), 1)],
        ),
        # a non-root uid with CAP_SYS_ADMIN ambient
        SysProcAttr(
            cloneflags=int(userns().cloneflags) | CLONE_NEWNS,
            mounts=ro,
            no_new_privs=True,
            uid_mappings=[SysProcIDMap(1000, os.getuid(), 1)],
            gid_mappings=[SysProcIDMap(1000, os.getgid(), 1)],
            ambient_caps=[21],
        ),
        # uid 0 under no_new_privs: root of the namespace has every capability there
        userns(flags=CLONE_NEWNS, mounts=ro, no_new_privs=True),
    ):
        assert RULE in refusal(lambda s=s: s), s  # type: ignore[misc]


# --- each remedy: the spawn runs, and the program's remount and umount fail (EPERM) ----------------


def test_a_without_cap_sys_admin_the_mounts_hold(as_user: Callable[..., Any], target: str) -> None:
    for caps in (Capabilities(), Capabilities(drop=["CAP_SYS_ADMIN"], drop_all_others=False)):
        for mounts in ([Mount.bind(target, target, readonly=True)], [Mount.tmpfs(target, mkdir=False)]):
            got = as_user(
                undo, lambda m=mounts, c=caps: userns(flags=CLONE_NEWNS, mounts=m, capabilities=c), target
            )
            assert got == [errno.EPERM, errno.EPERM], (caps, mounts)
    got = as_user(
        undo, lambda: userns(flags=CLONE_NEWNS, readonly_root=True, capabilities=Capabilities()), "/"
    )
    assert got[0] == errno.EPERM


def test_b_a_non_root_uid_under_no_new_privs_the_mounts_hold(
    as_user: Callable[..., Any], target: str
) -> None:
    def attr() -> SysProcAttr:
        return SysProcAttr(
            cloneflags=int(userns().cloneflags) | CLONE_NEWNS,
            no_new_privs=True,
            uid_mappings=[SysProcIDMap(1000, os.getuid(), 1)],
            gid_mappings=[SysProcIDMap(1000, os.getgid(), 1)],
            mounts=[Mount.bind(target, target, readonly=True)],
        )

    assert as_user(undo, attr, target) == [errno.EPERM, errno.EPERM]

    def with_credential() -> SysProcAttr:
        s = attr()
        s.credential = Credential(uid=1000, gid=1000, no_setgroups=True)
        return s

    assert as_user(undo, with_credential, target) == [errno.EPERM, errno.EPERM]


@pytest.mark.skipif(landlock_abi() < 1, reason="this kernel has no Landlock")
def test_c_landlock_with_path_rules_the_mounts_hold(as_user: Callable[..., Any], target: str) -> None:
    policy = Landlock(paths=[LandlockPath("/", ["read", "execute"])])
    for mounts in ([Mount.bind(target, target, readonly=True)], [Mount.tmpfs(target, mkdir=False)]):
        # root of its namespace, every capability kept: Landlock alone denies mount and umount
        got = as_user(undo, lambda m=mounts: userns(flags=CLONE_NEWNS, mounts=m, landlock=policy), target)
        assert got == [errno.EPERM, errno.EPERM], mounts
    # a policy without path rules handles no file access: it is no remedy
    ports = Landlock(scopes=["signal"]) if landlock_abi() >= 6 else None
    if ports is not None:
        assert RULE in refusal(
            lambda: userns(
                flags=CLONE_NEWNS, landlock=ports, mounts=[Mount.bind(target, target, readonly=True)]
            )
        )


@pytest.mark.skipif(not kernel_has_mount_setattr(), reason="no mount_setattr (idmapped mounts)")
def test_an_idmapped_bind_without_cap_sys_admin_holds(target: str) -> None:
    got = undo(
        lambda: userns(
            flags=CLONE_NEWNS,
            capabilities=Capabilities(),
            mounts=[Mount.bind(target, target, readonly=True, idmap=True)],
        ),
        target,
    )
    assert got == [errno.EPERM, errno.EPERM]


def test_the_spec_and_its_check_refuse_it(tmp_path: Path, target: str) -> None:
    spec = tmp_path / "s.json"
    spec.write_text(
        '{"version": 1, "argv": ["/bin/true"], "sys": {"cloneflags": ["CLONE_NEWUSER", "CLONE_NEWNS"], '
        '"uid_mappings": [{"container_id": 0, "host_id": 0, "size": 1}], '
        '"gid_mappings": [{"container_id": 0, "host_id": 0, "size": 1}], '
        f'"mounts": [{{"source": "{target}", "target": "{target}", "flags": ["MS_BIND", "MS_RDONLY"]}}]}}}}'
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    for extra in ([], ["--check"]):
        r = subprocess.run(
            [PY, "-m", "pyforkexec", "exec", *extra, "--spec", str(spec)],
            env=env,
            capture_output=True,
            text=True,
        )
        assert r.returncode != 0 and "sys.mounts[0]: would not hold" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_joined_user_namespace_with_a_new_mount_namespace_is_refused(target: str) -> None:
    from pyforkexec import CLONE_NEWUSER, SetNS

    msg = refusal(
        lambda: SysProcAttr(
            setns=[SetNS("/proc/1/ns/user", CLONE_NEWUSER)],
            unshareflags=CLONE_NEWNS,
            mounts=[Mount.tmpfs(target, mkdir=False)],
        )
    )
    assert msg.startswith("SysProcAttr.mounts[0]: ") and "a user namespace it joins" in msg


def test_a_join_path_that_names_a_user_namespace_by_the_spawn_is_refused_then(
        target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule read a join's type (nstype 0) from its path, and the spawn opened the path again: a
    symlink that named a network namespace when the rule looked and a user namespace at the join (a
    swap by someone else in between, made here right after the rule's look) let the program run as
    root of the joined user namespace over mounts it could undo. The spawn applies the rule again
    with the types of the fds the child joins."""
    import time

    from helpers.cli import util_linux

    from pyforkexec import SetNS, fork_exec, nsinfo

    holder = subprocess.Popen([util_linux("unshare"), "--user", "--map-root-user", "--net", "sleep", "60"])
    try:
        mine = os.stat("/proc/self/ns/user").st_ino
        while os.stat(f"/proc/{holder.pid}/ns/user").st_ino == mine:
            time.sleep(0.01)
        link = tmp_path / "ns"
        link.symlink_to(f"/proc/{holder.pid}/ns/net")
        real = nsinfo.may_join

        def looked(entries: object, kind: int) -> bool:
            found = real(entries, kind)
            link.unlink()
            link.symlink_to(f"/proc/{holder.pid}/ns/user")  # swapped once the rule has looked
            return found

        monkeypatch.setattr(nsinfo, "may_join", looked)
        sys_attr = SysProcAttr(setns=[SetNS(str(link))], unshareflags=CLONE_NEWNS,
                               mounts=[Mount.bind(target, target, readonly=True)])
        before = children()
        refused = rf"^SysProcAttr\.mounts\[0\]: {RULE}: .* a user namespace it joins"
        with pytest.raises(ValueError, match=refused):
            pid = fork_exec(PY, [PY, "-c", UNDO, target], _proc(sys_attr))
            os.waitpid(pid, 0)  # (without the rule at the spawn: it ran, and undid the bind)
        assert children() == before
    finally:
        holder.kill()
        holder.wait()
