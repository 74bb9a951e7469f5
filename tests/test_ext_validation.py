"""Bad extension fields raise ValueError/TypeError naming the field, before any process exists.

Uses helpers.attempt: each attempt runs as pid 1 of a new PID namespace and counts the
processes it created (none, for a refused spawn).
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

import pytest
from helpers.attempt import attempt
from helpers.marks import needs_root
from test_validation import Case

import pyforkexec as pf
from pyforkexec import ProcAttr, SysProcAttr, fork_exec
from pyforkexec.sandbox.caps import Capabilities
from pyforkexec.sandbox.cgroup import Cgroup
from pyforkexec.sandbox.extensions import check_extensions, has_extensions
from pyforkexec.sandbox.landlock import Landlock, LandlockPath, LandlockPort
from pyforkexec.sandbox.mounts import Mount
from pyforkexec.sandbox.rlimits import Rlimit
from pyforkexec.sandbox.seccomp import SeccompFilter

pytestmark = needs_root
NS, UTS = pf.CLONE_NEWNS, pf.CLONE_NEWUTS
CLOSED_FD = next(n for n in range(900, 2000) if not os.path.exists(f"/proc/self/fd/{n}"))


def S(**kw: Any) -> ProcAttr:
    return ProcAttr(sys=SysProcAttr(**kw))


def M(*mounts: Any, **kw: Any) -> ProcAttr:
    return S(cloneflags=NS, mounts=list(mounts), **kw)


def MC(f: str, rule: str, *mounts: Any, kind: type = ValueError) -> Case:
    """A mounts case whose message starts with SysProcAttr.mounts<f>."""
    return Case(f"mounts{f}", f"SysProcAttr.mounts{f}", M(*mounts), rule=rule, kind=kind)


def T(f: str, rule: str = "", kind: type = ValueError, **kw: Any) -> Case:
    """A case whose message starts with SysProcAttr.<f>."""
    return Case(f, f"SysProcAttr.{f}", S(**kw), rule=rule, kind=kind)


CASES = [
    # uts
    T("hostname", "CLONE_NEWUTS", hostname="box"),
    T("domainname", "CLONE_NEWUTS", domainname="box"),
    T("hostname", "at most 64 bytes", cloneflags=UTS, hostname="h" * 65),
    T("hostname", "NUL", cloneflags=UTS, hostname="a\0b"),
    T("hostname", "string", TypeError, cloneflags=UTS, hostname=b"box"),
    # mount namespace
    T("mount_propagation", "must be one of", cloneflags=NS, mount_propagation="rshared"),
    T("mount_propagation", "CLONE_NEWNS", mount_propagation="slave"),
    T("mounts", "CLONE_NEWNS", mounts=[Mount.tmpfs("/mnt")]),
    T("mounts", "list of Mount", TypeError, cloneflags=NS, mounts=Mount.tmpfs("/mnt")),
    MC("[0]", "must be a Mount", ("tmpfs", "/mnt"), kind=TypeError),
    MC("[1].target", "absolute", Mount.tmpfs("/a"), Mount.tmpfs("b")),
    MC("[0].target", "'..'", Mount.tmpfs("/a/../b")),
    MC("[0].flags", "nosuch", Mount("t", "/a", "tmpfs", "nosuid|nosuch")),
    MC("[0].flags", "unknown", Mount("t", "/a", "tmpfs", 1 << 30)),
    MC("[0].source", "needs a source", Mount(None, "/a", None, "bind")),
    MC("[0].source", "needs a source", Mount("", "/a", None, "bind")),  # (EINVAL in the child before)
    T("setns[0].target", "is empty", setns=[pf.SetNS("")]),
    MC("[0].fstype", "filesystem type", Mount("x", "/a")),
    MC("[0].data", "at most", Mount("t", "/a", "tmpfs", 0, "x" * 4096)),
    MC("[0].data", "string", Mount("t", "/a", "tmpfs", 0, b"size=1"), kind=TypeError),
    MC("[0].mkdir", "True or False", Mount("t", "/a", "tmpfs", 0, None, 1), kind=TypeError),
    T("pivot_root", "absolute", cloneflags=NS, pivot_root="root"),
    T("pivot_root", "chroot", cloneflags=NS, pivot_root="/root", chroot="/srv"),
    T("pivot_root", "CLONE_NEWNS", pivot_root="/root"),
    T("mount_propagation", "shared", cloneflags=NS, pivot_root="/root", mount_propagation="shared"),
    T("readonly_root", "CLONE_NEWNS", readonly_root=True),
    T("readonly_root", "True or False", TypeError, cloneflags=NS, readonly_root="yes"),
    # rlimits
    T("rlimits[0].resource", "unknown resource", rlimits=[Rlimit("nofiles", 1, 1)]),
    T("rlimits[0].resource", "between", rlimits=[Rlimit(16, 1, 1)]),
    T("rlimits[0]", "above the hard limit", rlimits=[Rlimit("nofile", 2, 1)]),
    T("rlimits[0].soft", "between", rlimits=[Rlimit("nofile", -2, 1)]),
    T("rlimits[0].hard", "'unlimited'", rlimits=[Rlimit("nofile", 1, "lots")]),
    T("rlimits[1]", "already set", rlimits=[Rlimit("nofile", 1, 1), Rlimit("RLIMIT_NOFILE", 1, 1)]),
    T("rlimits[0]", "must be an Rlimit", TypeError, rlimits=[("nofile", 1, 1)]),
    # cgroup
    T("cgroup", "must be a Cgroup", TypeError, cgroup="/sys/fs/cgroup/x"),
    T("cgroup.path", "'..'", cgroup=Cgroup("a/../../b")),
    T("cgroup.path", "below the root", cgroup=Cgroup("/")),
    T("cgroup.memory_max", "between", cgroup=Cgroup("x", memory_max=-1)),
    T("cgroup.memory_max", "'max'", cgroup=Cgroup("x", memory_max="lots")),
    T("cgroup.cpu_max", "QUOTA [PERIOD]", cgroup=Cgroup("x", cpu_max="50000/100000")),
    T("cgroup.cpu_weight", "between 1 and 10000", cgroup=Cgroup("x", cpu_weight=0)),
    T("cgroup.io_max", "MAJ:MIN", cgroup=Cgroup("x", io_max="8:0 rbps")),
    T("cgroup.io_max[1]", "MAJ:MIN", cgroup=Cgroup("x", io_max=["8:0 rbps=1", "sda wbps=1"])),
    T("cgroup.remove", "True or False", TypeError, cgroup=Cgroup("x", remove=0)),  # type: ignore[arg-type]
    T("cgroup", "use_cgroup_fd", cgroup=Cgroup("x"), use_cgroup_fd=True, cgroup_fd=3),
    # capabilities
    T("capabilities", "must be a Capabilities", TypeError, capabilities=["CAP_CHOWN"]),
    T("capabilities.keep[1]", "unknown capability", capabilities=Capabilities(keep=["chown", "CAP_FLY"])),
    T("capabilities.keep[0]", "between", capabilities=Capabilities(keep=[64])),
    T("capabilities.ambient", "must also be kept", capabilities=Capabilities(ambient=["CAP_CHOWN"])),
    T("capabilities.drop", "drop_all_others", capabilities=Capabilities(drop=["CAP_CHOWN"])),
    T("capabilities.keep", "drop_all_others=False",
      capabilities=Capabilities(keep=["CAP_CHOWN"], drop_all_others=False)),
    T("capabilities", "ambient_caps", capabilities=Capabilities(), ambient_caps=[1]),
    T("capabilities", "restricts nothing", capabilities=Capabilities(drop_all_others=False)),
    T("capabilities", "restricts nothing", capabilities=Capabilities(drop_all_others=False, drop=[])),
    # no_new_privs, seccomp
    T("no_new_privs", "True or False", TypeError, no_new_privs=1),
    T("seccomp", "must be a SeccompFilter", TypeError, seccomp=["ptrace"]),
    T("seccomp.default_action", "must be one of", seccomp=SeccompFilter(default_action="deny")),
    T("seccomp.errno", "between 1 and 4095", seccomp=SeccompFilter(deny=["ptrace"], errno=0)),
    T("seccomp.deny[0]", "unknown system call", seccomp=SeccompFilter(deny=["ptrace2"])),
    T("seccomp.deny[0]", "between", seccomp=SeccompFilter(deny=[-1])),
    T("seccomp.allow", "no effect", seccomp=SeccompFilter(allow=["read"])),
    T("seccomp.deny", "no effect", seccomp=SeccompFilter(default_action="errno", deny=["ptrace"],
                                                         allow=["execve"])),
    T("seccomp", "both allowed and denied",
      seccomp=SeccompFilter(default_action="kill_process", allow=["execve", "read"], deny=["read"])),
    T("seccomp", "blocks execve", seccomp=SeccompFilter(deny=["execve"])),
    T("seccomp", "blocks execveat", seccomp=SeccompFilter(deny=["execveat"]), exec_fd=0),
    T("seccomp", "at most 4096", seccomp=SeccompFilter(deny=list(range(2100)))),
    # landlock
    T("landlock", "must be a Landlock", TypeError, landlock={"paths": []}),
    T("landlock.mode", "must be one of", landlock=Landlock(mode="strictly")),
    T("landlock.paths[0]", "must be a LandlockPath", TypeError, landlock=Landlock(paths=["/usr"])),
    T("landlock.paths[0].access[1]", "unknown access right 'fly'",
      landlock=Landlock(paths=[LandlockPath("/usr", ["read", "fly"])])),
    T("landlock.paths[0].access", "at least one", landlock=Landlock(paths=[LandlockPath("/usr", [])])),
    T("landlock.paths[0].path", "No such file",
      landlock=Landlock(paths=[LandlockPath("/nonexistent", ["read"])])),
    T("landlock.paths[0].access", "read_dir applies beneath a directory",
      landlock=Landlock(paths=[LandlockPath("/etc/hostname", ["read_dir"])])),
    T("landlock.paths[0].access", "make_dir applies beneath a directory",
      landlock=Landlock(paths=[LandlockPath("/etc/hostname", ["read", "make_dir"])])),
    T("landlock.ports[0].port", "between 0 and 65535",
      landlock=Landlock(ports=[LandlockPort(65536, ["bind"])])),
    T("landlock.ports[0].access[0]", "unknown access right",
      landlock=Landlock(ports=[LandlockPort(80, ["read"])])),
    T("landlock.scopes[0]", "must be one of", landlock=Landlock(scopes=["signals"])),
    # idmapped mounts
    MC("[0].idmap", "CLONE_NEWUSER", Mount.bind("/usr", "/mnt", idmap=True)),
    MC("[0].idmap", "only a bind mount", Mount("tmpfs", "/mnt", "tmpfs", idmap=True)),
    MC("[0].idmap", "not open", Mount.bind("/usr", "/mnt", idmap=CLOSED_FD)),
    MC("[0].idmap", "must be True", Mount.bind("/usr", "/mnt", idmap=1.5), kind=TypeError),
    T("restrict_suid_sgid", "must be True or False", TypeError, restrict_suid_sgid=1),
    T("restrict_namespaces", "must be a mask of CLONE_NEW", TypeError, restrict_namespaces=False),
    T("restrict_namespaces", "no namespace type", restrict_namespaces=0x11),
    # sync, exec_fd
    T("sync", "callable", TypeError, sync="print"),
    T("exec_fd", "between", exec_fd=-1),
    T("exec_fd", "must be an int", TypeError, exec_fd="3"),
    # issue 11: types and encodings of every nested field
    T("exec_fd", "not open", exec_fd=CLOSED_FD),
    T("rlimits[0].soft", "not float", TypeError, rlimits=[Rlimit("nofile", -1.0, 1)]),
    MC("[0].data", "encoded", Mount("t", "/a", "tmpfs", 0, "size=\ud800")),
    MC("[0].source", "encoded", Mount("\udfff", "/a", "tmpfs")),
    MC("[0].target", "encoded", Mount.tmpfs("/\ud800")),
    T("hostname", "encoded", cloneflags=UTS, hostname="\ud800"),
    T("pivot_root", "encoded", cloneflags=NS, pivot_root="/\ud800"),
    T("cgroup.path", "encoded", cgroup=Cgroup("a\ud800")),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{i}-{c.id}" for i, c in enumerate(CASES)])
def test_refused_before_any_process(case: Case) -> None:
    got = attempt(fork_exec, case.argv0, case.argv, case.attr)
    assert (got.kind, got.processes) == (case.kind.__name__, 0), got.message
    assert re.match(f"{re.escape(case.field)}: ", got.message), got.message
    assert case.rule in got.message, got.message


EXAMPLES = {  # a non-default value of each extension field
    "hostname": "h", "domainname": "d", "mount_propagation": "slave", "mounts": [Mount.tmpfs("/x")],
    "pivot_root": "/r", "readonly_root": True, "rlimits": [Rlimit("core", 0, 0)], "cgroup": Cgroup("x"),
    "capabilities": Capabilities(), "landlock": Landlock(), "seccomp": SeccompFilter(), "sync": print,
    "exec_fd": 3, "restrict_suid_sgid": False, "restrict_namespaces": 0,
}


def test_every_extension_field_is_checked() -> None:
    names = [f.name for f in dataclasses.fields(SysProcAttr)]
    extensions = names[names.index("setns") + 1:]
    assert sorted(extensions) == sorted(EXAMPLES), "a new extension field needs a case here"
    for name in extensions:
        assert has_extensions(SysProcAttr(**{name: EXAMPLES[name]})), name
    assert not has_extensions(SysProcAttr()) and check_extensions(SysProcAttr(), 0, 0) is None


@pytest.mark.parametrize(("kw", "field"), [
    ({"cgroup_fd": 5}, "cgroup_fd"),
    ({"gid_mappings_enable_setgroups": True, "cloneflags": pf.CLONE_NEWUSER},
     "gid_mappings_enable_setgroups"),
])
def test_a_field_its_flag_does_not_use_is_refused(kw: dict, field: str) -> None:
    """Go reads cgroup_fd only with use_cgroup_fd, gid_mappings_enable_setgroups only with gid
    mappings: given alone, each was accepted and dropped."""
    with pytest.raises(ValueError, match=rf"^SysProcAttr\.{field}: is used only with"):
        fork_exec("/bin/true", ["true"], ProcAttr(sys=SysProcAttr(**kw)))
