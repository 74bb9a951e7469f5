"""Bad input raises ValueError/TypeError naming the field, before any process exists
(helpers.attempt proves no process was created)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import pytest
from helpers.attempt import Attempt, attempt
from helpers.marks import needs_root

import pyforkexec as pf
from pyforkexec import Credential, ProcAttr, SetNS, SysProcAttr, SysProcIDMap, fork_exec, run, start_process

pytestmark = needs_root
TRUE = "/bin/true"
NEWUSER = pf.CLONE_NEWUSER


def maps(*lines: tuple[int, int, int]) -> list[SysProcIDMap]:
    return [SysProcIDMap(*line) for line in lines]


def S(**kw: Any) -> ProcAttr:
    """A ProcAttr around SysProcAttr(**kw)."""
    return ProcAttr(sys=SysProcAttr(**kw))


@dataclass
class Case:
    id: str
    field: str  # the message must start with "<field>: "
    attr: ProcAttr | None = None
    argv0: Any = TRUE
    argv: Any = ("true",)
    rule: str = ""  # a phrase the message must contain
    kind: type = ValueError


USERNS = {"cloneflags": NEWUSER}
CLOSED = open(os.devnull, "rb")  # noqa: SIM115 - closed right away: a closed file object
CLOSED.close()
CASES = [
    # NUL bytes (Go returns EINVAL before forking)
    Case("nul-argv0", "argv0", argv0="/bin/tr\0ue", rule="NUL"),
    Case("nul-argv", "argv[1]", argv=["true", "a\0b"], rule="NUL"),
    Case("nul-env", "ProcAttr.env[1]", ProcAttr(env=["A=1", "B=\0"]), rule="NUL"),
    Case("nul-dir", "ProcAttr.dir", ProcAttr(dir="/tmp\0x"), rule="NUL"),
    Case("nul-chroot", "SysProcAttr.chroot", S(chroot="/\0x"), rule="NUL"),
    Case("nul-setns", "SysProcAttr.setns[0].target", S(setns=[SetNS("/run\0")]), rule="NUL"),
    Case("argv-str", "argv", argv="true", kind=TypeError),
    Case("env-not-str", "ProcAttr.env[0]", ProcAttr(env=[1]), kind=TypeError),
    Case("sys-type", "ProcAttr.sys", ProcAttr(sys="x"), kind=TypeError),  # type: ignore[arg-type]
    # clone(2)'s EINVAL combinations
    Case("newns-fs", "SysProcAttr.cloneflags", S(cloneflags=pf.CLONE_NEWNS | pf.CLONE_FS),
         rule="CLONE_NEWNS cannot be combined with CLONE_FS"),
    Case("newuser-fs", "SysProcAttr.cloneflags", S(cloneflags=NEWUSER | pf.CLONE_FS),
         rule="CLONE_NEWUSER cannot be combined with CLONE_FS"),
    Case("newuser-parent", "SysProcAttr.cloneflags", S(cloneflags=NEWUSER | pf.CLONE_PARENT),
         rule="CLONE_NEWUSER cannot be combined with CLONE_PARENT"),
    Case("newpid-parent", "SysProcAttr.cloneflags", S(cloneflags=pf.CLONE_NEWPID | pf.CLONE_PARENT),
         rule="CLONE_NEWPID cannot be combined with CLONE_PARENT"),
    Case("newipc-sysvsem", "SysProcAttr.cloneflags", S(cloneflags=pf.CLONE_NEWIPC | pf.CLONE_SYSVSEM),
         rule="CLONE_NEWIPC cannot be combined with CLONE_SYSVSEM"),
    Case("newuser-thread", "SysProcAttr.cloneflags",
         S(cloneflags=NEWUSER | pf.CLONE_THREAD | pf.CLONE_SIGHAND)),
    Case("newpid-thread", "SysProcAttr.cloneflags", S(cloneflags=pf.CLONE_NEWPID | pf.CLONE_THREAD)),
    Case("sighand-without-vm", "SysProcAttr.cloneflags", S(cloneflags=pf.CLONE_SIGHAND)),
    Case("thread-without-sighand", "SysProcAttr.cloneflags", S(cloneflags=pf.CLONE_THREAD)),
    Case("exit-signal-byte", "SysProcAttr.cloneflags", S(cloneflags=17)),
    Case("unknown-clone-bit", "SysProcAttr.cloneflags", S(cloneflags=1 << 40), rule="unknown"),
    Case("negative-cloneflags", "SysProcAttr.cloneflags", S(cloneflags=-1)),
    Case("unshare-vm", "SysProcAttr.unshareflags", S(unshareflags=pf.CLONE_VM)),
    Case("unshare-unknown", "SysProcAttr.unshareflags", S(unshareflags=1 << 40), rule="unknown"),
    # the footguns of Go (reference notes)
    *(Case(f"refused-{name}", "SysProcAttr.cloneflags", S(cloneflags=getattr(pf, name)), rule="refused")
      for name in ("CLONE_VM", "CLONE_VFORK", "CLONE_FILES", "CLONE_SETTLS", "CLONE_PARENT_SETTID",
                   "CLONE_CHILD_SETTID", "CLONE_CHILD_CLEARTID", "CLONE_PIDFD", "CLONE_CLEAR_SIGHAND",
                   "CLONE_INTO_CGROUP")),
    Case("fs-with-dir", "SysProcAttr.cloneflags",
         ProcAttr(dir="/tmp", sys=SysProcAttr(cloneflags=pf.CLONE_FS))),
    Case("fs-with-chroot", "SysProcAttr.cloneflags", S(cloneflags=pf.CLONE_FS, chroot="/")),
    Case("uid-maps-without-newuser", "SysProcAttr.uid_mappings", S(uid_mappings=maps((0, 0, 1))),
         rule="CLONE_NEWUSER"),
    Case("gid-maps-without-newuser", "SysProcAttr.gid_mappings", S(gid_mappings=maps((0, 0, 1)))),
    Case("ambient-cap-64", "SysProcAttr.ambient_caps[0]", S(ambient_caps=[64])),
    Case("ambient-cap-beyond-last", "SysProcAttr.ambient_caps[1]", S(ambient_caps=[0, 1000])),
    Case("ambient-cap-negative", "SysProcAttr.ambient_caps[0]", S(ambient_caps=[-1])),
    # ids
    Case("uid-negative", "SysProcAttr.credential.uid", S(credential=Credential(uid=-1, gid=0))),
    Case("uid-no-change-value", "SysProcAttr.credential.uid", S(credential=Credential(uid=2**32 - 1, gid=0))),
    Case("uid-overflow", "SysProcAttr.credential.uid", S(credential=Credential(uid=2**32, gid=0))),
    Case("gid-negative", "SysProcAttr.credential.gid", S(credential=Credential(uid=0, gid=-1))),
    Case("group-overflow", "SysProcAttr.credential.groups[1]",
         S(credential=Credential(uid=0, gid=0, groups=(1, 2**32)))),
    Case("uid-str", "SysProcAttr.credential.uid", S(credential=Credential(uid="0", gid=0)), kind=TypeError),
    Case("uid-bool", "SysProcAttr.credential.uid", S(credential=Credential(uid=True, gid=0)), kind=TypeError),
    Case("credential-type", "SysProcAttr.credential", S(credential=(0, 0)), kind=TypeError),
    # id mappings
    Case("map-container-negative", "SysProcAttr.uid_mappings[0].container_id",
         S(**USERNS, uid_mappings=maps((-1, 0, 1)))),
    Case("map-host-overflow", "SysProcAttr.gid_mappings[1].host_id",
         S(**USERNS, gid_mappings=maps((0, 0, 1), (1, 2**32, 1)))),
    Case("map-size-zero", "SysProcAttr.uid_mappings[0].size", S(**USERNS, uid_mappings=maps((0, 0, 0)))),
    Case("map-end-overflow", "SysProcAttr.uid_mappings[0]",
         S(**USERNS, uid_mappings=maps((0, 2**32 - 2, 2)))),
    Case("map-overlap-container", "SysProcAttr.uid_mappings",
         S(**USERNS, uid_mappings=maps((0, 0, 10), (5, 100, 1))), rule="overlap"),
    Case("map-overlap-host", "SysProcAttr.gid_mappings",
         S(**USERNS, gid_mappings=maps((0, 0, 10), (20, 9, 1))), rule="overlap"),
    Case("map-too-many", "SysProcAttr.uid_mappings",
         S(**USERNS, uid_mappings=maps(*((i, i, 1) for i in range(341)))), rule="340"),
    Case("map-longer-than-a-page", "SysProcAttr.gid_mappings",  # 200 lines of 24 bytes: EINVAL (h144)
         S(**USERNS, gid_mappings=maps(*((4_000_000_000 + i, 4_000_000_000 + i, 1) for i in range(200)))),
         rule="page"),
    Case("map-type", "SysProcAttr.uid_mappings[0]", S(**USERNS, uid_mappings=[(0, 0, 1)]), kind=TypeError),
    Case("map-empty-list", "SysProcAttr.uid_mappings", S(**USERNS, uid_mappings=[])),
    # files
    Case("fd-negative", "ProcAttr.files[1]", ProcAttr(files=[0, -2, 2])),
    Case("fd-overflow", "ProcAttr.files[0]", ProcAttr(files=[2**31, 1, 2])),
    Case("fd-type", "ProcAttr.files[2]", ProcAttr(files=[0, 1, "2"]), kind=TypeError),
    Case("files-str", "ProcAttr.files", ProcAttr(files="012"), kind=TypeError),
    # terminals
    Case("setctty-without-setsid", "SysProcAttr.setctty", S(setctty=True), rule="setsid"),
    Case("setctty-and-foreground", "SysProcAttr.setctty", S(setsid=True, setctty=True, foreground=True)),
    Case("ctty-beyond-files", "SysProcAttr.ctty", S(setsid=True, setctty=True, ctty=3)),
    Case("ctty-closed-slot", "SysProcAttr.ctty",
         ProcAttr(files=[None, 1, 2], sys=SysProcAttr(setsid=True, setctty=True, ctty=0))),
    Case("foreground-negative-ctty", "SysProcAttr.ctty", S(foreground=True, ctty=-1)),
    Case("pgid-negative", "SysProcAttr.pgid", S(setpgid=True, pgid=-1)),
    # the rest
    Case("pdeathsig-65", "SysProcAttr.pdeathsig", S(pdeathsig=65)),
    Case("pdeathsig-negative", "SysProcAttr.pdeathsig", S(pdeathsig=-1)),
    Case("cgroup-fd-negative", "SysProcAttr.cgroup_fd", S(use_cgroup_fd=True, cgroup_fd=-1)),
    Case("setns-nstype", "SysProcAttr.setns[0].nstype", S(setns=[SetNS(0, pf.CLONE_VM)])),
    Case("setns-fd-negative", "SysProcAttr.setns[0].target", S(setns=[SetNS(-1)])),
    Case("setns-entry-type", "SysProcAttr.setns[0]", S(setns=["/run/netns/x"]), kind=TypeError),
    # issue 11: every argument and field for type and range, before any process
    Case("attr-int", "attr", 5, rule="ProcAttr", kind=TypeError),
    Case("attr-sysprocattr", "attr", SysProcAttr(), rule="ProcAttr", kind=TypeError),  # type: ignore[arg-type]
    Case("attr-dict", "attr", {}, kind=TypeError),  # type: ignore[arg-type]
    Case("groups-int", "SysProcAttr.credential.groups", S(credential=Credential(0, 0, groups=5)),
         rule="list", kind=TypeError),
    Case("groups-str", "SysProcAttr.credential.groups", S(credential=Credential(0, 0, groups="12")),
         kind=TypeError),
    Case("no-setgroups-int", "SysProcAttr.credential.no_setgroups",
         S(credential=Credential(0, 0, no_setgroups=1)), kind=TypeError),
    *(Case(f"{name}-int", f"SysProcAttr.{name}", S(**{name: 1}), rule="True or False", kind=TypeError)
      for name in ("ptrace", "setsid", "setpgid", "setctty", "noctty", "foreground",
                   "gid_mappings_enable_setgroups", "use_cgroup_fd", "pidfd")),
    Case("ctty-str-unused", "SysProcAttr.ctty", S(ctty="0"), kind=TypeError),
    Case("ctty-str-setctty", "SysProcAttr.ctty", S(setsid=True, setctty=True, ctty="0"), kind=TypeError),
    Case("cgroup-fd-str-unused", "SysProcAttr.cgroup_fd", S(cgroup_fd="3"), kind=TypeError),
    Case("chroot-none", "SysProcAttr.chroot", S(chroot=None), kind=TypeError),
    Case("chroot-surrogate", "SysProcAttr.chroot", S(chroot="/\ud800"), rule="encoded"),
    Case("ambient-none", "SysProcAttr.ambient_caps", S(ambient_caps=None), kind=TypeError),
    Case("ambient-str", "SysProcAttr.ambient_caps", S(ambient_caps="12"), kind=TypeError),
    Case("argv0-surrogate", "argv0", argv0="/bin/tr\ud800ue", rule="encoded"),
    Case("argv-surrogate", "argv[0]", argv=["\udfff"], rule="encoded"),
    Case("env-surrogate", "ProcAttr.env[0]", ProcAttr(env=["A=\ud800"]), rule="encoded"),
    Case("dir-falsy-int", "ProcAttr.dir", ProcAttr(dir=0), kind=TypeError),  # type: ignore[arg-type]
    Case("dir-surrogate", "ProcAttr.dir", ProcAttr(dir="/\ud800"), rule="encoded"),
    Case("files-closed-file-object", "ProcAttr.files[1]", ProcAttr(files=[0, CLOSED, 2]),
         rule="closed file"),
    Case("files-float", "ProcAttr.files[0]", ProcAttr(files=[0.0]), rule="float", kind=TypeError),
    # terminal settings that always fail in the child
    Case("setsid-foreground", "SysProcAttr.foreground", S(setsid=True, foreground=True), rule="EPERM"),
    Case("setsid-noctty", "SysProcAttr.noctty", S(setsid=True, noctty=True), rule="ENOTTY"),
    Case("noctty-no-files", "SysProcAttr.noctty", ProcAttr(files=[], sys=SysProcAttr(noctty=True)),
         rule="EBADF"),
    Case("noctty-closed-0", "SysProcAttr.noctty", ProcAttr(files=[None, 1, 2], sys=SysProcAttr(noctty=True)),
         rule="EBADF"),
    Case("noctty-minus-1", "SysProcAttr.noctty", ProcAttr(files=[-1], sys=SysProcAttr(noctty=True)),
         rule="EBADF"),
    Case("newpid-pgid", "SysProcAttr.pgid", S(cloneflags=pf.CLONE_NEWPID, setpgid=True, pgid=5),
         rule="CLONE_NEWPID"),
    # user namespace combinations that always fail in the child
    Case("newuser-twice", "SysProcAttr.unshareflags", S(cloneflags=NEWUSER, unshareflags=NEWUSER),
         rule="EPERM"),
    Case("unshare-user-maps-range", "SysProcAttr.uid_mappings",
         S(unshareflags=NEWUSER, uid_mappings=maps((0, 0, 2))), rule="EPERM"),
    Case("unshare-user-maps-other-id", "SysProcAttr.uid_mappings",
         S(unshareflags=NEWUSER, uid_mappings=maps((0, 1, 1))), rule="euid"),
    Case("unshare-user-maps-gid", "SysProcAttr.gid_mappings",
         S(unshareflags=NEWUSER, gid_mappings=maps((0, 0, 1), (5, 5, 1))), rule="EPERM"),
    Case("unshare-user-maps-setgroups", "SysProcAttr.gid_mappings_enable_setgroups",
         S(unshareflags=NEWUSER, uid_mappings=maps((0, 0, 1)), gid_mappings=maps((0, 0, 1)),
           gid_mappings_enable_setgroups=True), rule="setgroups denied"),
    Case("clone-uts-unshare-user-hostname", "SysProcAttr.hostname",
         S(cloneflags=pf.CLONE_NEWUTS, unshareflags=NEWUSER, hostname="x"),
         rule="CLONE_NEWUTS in unshareflags"),
    Case("clone-ns-unshare-user-mounts", "SysProcAttr.mounts",
         S(cloneflags=pf.CLONE_NEWNS, unshareflags=NEWUSER, mount_propagation="unchanged",
           mounts=[pf.Mount.tmpfs("/mnt")]), rule="CLONE_NEWNS in unshareflags"),
    Case("clone-ns-unshare-user-readonly", "SysProcAttr.readonly_root",
         S(cloneflags=pf.CLONE_NEWNS, unshareflags=NEWUSER, readonly_root=True), rule="EPERM"),
    # Go's landlock fields with values the kernel always refuses
    Case("landlock-no-fd-no-flags", "SysProcAttr.landlock_fd", S(use_landlock=True, landlock_fd=-1),
         rule="EBADF"),
    Case("landlock-no-fd-other-flags", "SysProcAttr.landlock_fd",
         S(use_landlock=True, landlock_fd=-1, landlock_flags=1 | 4), rule="EBADF"),
    Case("landlock-unknown-flags", "SysProcAttr.landlock_flags",
         S(use_landlock=True, landlock_fd=-1, landlock_flags=1 << 20), rule="EINVAL"),
    # a pivot_root that can never succeed
    Case("pivot-root-slash", "SysProcAttr.pivot_root", S(cloneflags=pf.CLONE_NEWNS, pivot_root="/"),
         rule="EBUSY"),
    Case("pivot-root-slash-dot", "SysProcAttr.pivot_root", S(cloneflags=pf.CLONE_NEWNS, pivot_root="//."),
         rule="EBUSY"),
    Case("newpid-foreground-pgid", "SysProcAttr.pgid", S(cloneflags=pf.CLONE_NEWPID, foreground=True, pgid=7),
         rule="CLONE_NEWPID"),
]
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_refused_before_any_process(case: Case) -> None:
    got = attempt(fork_exec, case.argv0, case.argv, case.attr)
    assert (got.kind, got.processes) == (case.kind.__name__, 0), got.message
    assert re.match(f"{re.escape(case.field)}: ", got.message), got.message
    assert case.rule in got.message


def test_the_probe_sees_a_process() -> None:
    # the probe itself must be able to fail: a valid spawn moves ns_last_pid
    assert attempt(fork_exec, TRUE, ["true"], None) == Attempt("none", "", 1)


def test_start_process_validates_too() -> None:
    got = attempt(start_process, TRUE, ["true"], S(cloneflags=pf.CLONE_VM))
    assert (got.kind, got.processes) == ("ValueError", 0)
    assert got.message.startswith("SysProcAttr.cloneflags: ")


def test_run_validates_too() -> None:
    got = attempt(run, ["true"], sys=SysProcAttr(credential=Credential(uid=-1, gid=0)))
    assert (got.kind, got.processes) == ("ValueError", 0)
    assert got.message.startswith("SysProcAttr.credential.uid: ")
    got = attempt(run, "true")
    assert (got.kind, got.processes) == ("TypeError", 0)
