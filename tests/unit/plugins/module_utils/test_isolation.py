"""The shared isolation options: Ansible's argument validation, then the translation into a real
pyforkexec SysProcAttr and pyforkexec's own validation, whose refusals name the module option."""

from __future__ import annotations

import os
import pwd

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import isolation as iso

import pyforkexec as fe


@pytest.fixture
def attr(validate_args):
    """attr(**options) -> the validated ProcAttr for ["true"] with those isolation options."""

    def build(argv=("true",), cgroup_path="pyforkexec/unit", **options):
        params = validate_args(iso.ISOLATION_ARGSPEC, options,
                               mutually_exclusive=iso.ISOLATION_MUTUALLY_EXCLUSIVE)
        return iso.build_and_check(params, list(argv), cgroup_path=cgroup_path)

    return build


@pytest.fixture
def refused(attr):
    def message(**options):
        with pytest.raises(iso.IsolationError) as e:
            attr(**options)
        return str(e.value)

    return message


def test_no_options_is_a_plain_spawn(attr):
    sys = attr().sys
    assert sys.cloneflags == 0 and sys.unshareflags == 0 and list(sys.setns) == [] and sys.mounts == []
    assert sys.credential is None and sys.cgroup is None and sys.uid_mappings is None


def test_namespaces_become_cloneflags_and_raw_names_add_to_them(attr):
    sys = attr(namespaces=["uts", "pid"], cloneflags=["newipc", "CLONE_NEWNS"],
               unshareflags=["CLONE_NEWNET"]).sys
    assert sys.cloneflags == fe.CLONE_NEWUTS | fe.CLONE_NEWPID | fe.CLONE_NEWIPC | fe.CLONE_NEWNS
    assert sys.unshareflags == fe.CLONE_NEWNET


@pytest.mark.parametrize("name", iso.NAMESPACE_NAMES)
def test_every_namespace_name_is_a_clone_flag(attr, name):
    assert attr(namespaces=[name]).sys.cloneflags == int(getattr(fe, iso.NAMESPACE_FLAGS[name]))


def test_a_hostname_without_a_new_uts_namespace_is_refused_with_the_rule(refused):
    msg = refused(hostname="box")
    assert msg.startswith("hostname: needs a new UTS namespace")
    assert msg.endswith("(pyforkexec: SysProcAttr.hostname)")


def test_a_hostname_with_a_new_uts_namespace_is_accepted(attr):
    assert attr(namespaces=["uts"], hostname="box", domainname="lan").sys.hostname == "box"


def test_id_maps_need_a_user_namespace(refused, attr):
    msg = refused(uid_map=[dict(container_id=0, host_id=1000)])
    assert msg.startswith("uid_map: id mappings need CLONE_NEWUSER")
    sys = attr(namespaces=["user"], uid_map=[dict(container_id=0, host_id=1000, size=10)],
               gid_map=[dict(container_id=0, host_id=1000)], setgroups="allow").sys
    assert sys.uid_mappings == [fe.SysProcIDMap(0, 1000, 10)]
    assert sys.gid_mappings == [fe.SysProcIDMap(0, 1000, 1)]
    assert sys.gid_mappings_enable_setgroups is True


def test_overlapping_maps_are_refused_by_pyforkexec(refused):
    msg = refused(namespaces=["user"], uid_map=[dict(container_id=0, host_id=1000, size=10),
                                                dict(container_id=5, host_id=5000, size=1)])
    assert msg.startswith("uid_map: mappings 0 and 1 overlap in container_id")


def test_map_root_user_maps_the_module_user_to_root(attr):
    sys = attr(namespaces=["user"], map_root_user=True).sys
    assert sys.uid_mappings == [fe.SysProcIDMap(0, os.geteuid(), 1)]
    assert sys.gid_mappings == [fe.SysProcIDMap(0, os.getegid(), 1)]


def test_map_root_user_and_uid_map_are_mutually_exclusive(attr):
    with pytest.raises(ValueError, match=r"mutually exclusive: map_root_user\|uid_map"):
        attr(namespaces=["user"], map_root_user=True, uid_map=[dict(container_id=0, host_id=0)])


def test_refused_and_unknown_clone_flags(refused):
    assert refused(cloneflags=["CLONE_VM"]).startswith("namespaces/cloneflags: CLONE_VM is refused")
    assert refused(cloneflags=["bogus"]).startswith("cloneflags: ")


def test_netns_must_exist_and_excludes_a_new_network_namespace(refused):
    assert refused(netns="pfe-ut-nonet") == ("netns: no network namespace /run/netns/pfe-ut-nonet "
                                             "(create it with pyforkexec.isolation.netns)")
    assert refused(netns="../etc").startswith("netns: no network namespace")
    assert refused(netns="x", namespaces=["net"]).startswith("netns: joins an existing network namespace")


def test_join_a_process_joins_the_namespaces_it_does_not_share(attr):
    with fe.start_process("/bin/sleep", ["sleep", "60"], fe.ProcAttr(
            sys=fe.SysProcAttr(cloneflags=fe.CLONE_NEWUTS | fe.CLONE_NEWIPC))) as proc:
        try:
            sys = attr(join=[dict(pid=proc.pid)]).sys
            chosen = attr(join=[dict(pid=proc.pid, namespaces=["uts"])]).sys
        finally:
            proc.kill()
    assert list(sys.setns) == [fe.SetNS(f"/proc/{proc.pid}/ns/uts", int(fe.CLONE_NEWUTS)),
                               fe.SetNS(f"/proc/{proc.pid}/ns/ipc", int(fe.CLONE_NEWIPC))]
    assert list(chosen.setns) == [fe.SetNS(f"/proc/{proc.pid}/ns/uts", int(fe.CLONE_NEWUTS))]


def test_join_a_path_takes_one_type_at_most(attr, refused):
    assert list(attr(join=[dict(path="/proc/self/ns/uts", namespaces=["uts"])]).sys.setns) == [
        fe.SetNS("/proc/self/ns/uts", int(fe.CLONE_NEWUTS))]
    assert refused(join=[dict(path="/proc/self/ns/uts", namespaces=["uts", "net"])]).startswith(
        "join[0].namespaces: a namespace file is of one type")


def test_join_needs_a_pid_or_a_path(attr):
    with pytest.raises(ValueError, match="one of the following is required: pid, path"):
        attr(join=[dict(namespaces=["uts"])])


def test_credential_by_name_takes_the_primary_group(attr, refused):
    nobody = pwd.getpwnam("nobody")
    cred = attr(credential=dict(uid="nobody")).sys.credential
    assert cred == fe.Credential(uid=nobody.pw_uid, gid=nobody.pw_gid, groups=[], no_setgroups=False)
    cred = attr(credential=dict(uid=1234, gid="0", groups=["root", 5])).sys.credential
    assert (cred.uid, cred.gid, list(cred.groups)) == (1234, 0, [0, 5])
    assert refused(credential=dict(uid="pfe-nouser")) == "credential.uid: no such user: 'pfe-nouser'"
    assert refused(credential=dict(uid=4242424)).startswith("credential.gid: needed: uid 4242424 has no")


def test_credential_for_user_sets_the_supplementary_groups_as_initgroups():
    root = iso.credential_for_user("root")
    assert (root.uid, root.gid) == (0, 0)
    assert list(root.groups) == sorted(set(os.getgrouplist("root", 0)))
    assert iso.credential_for_user("0", "nogroup").gid != 0


def test_capabilities_and_no_new_privs(attr, refused):
    sys = attr(capabilities=dict(keep=["net_bind_service", "CAP_CHOWN"], ambient=["net_bind_service"]),
               no_new_privs=True).sys
    assert sys.capabilities == fe.Capabilities(keep=["net_bind_service", "CAP_CHOWN"],
                                               ambient=["net_bind_service"], drop=[], drop_all_others=True)
    assert sys.no_new_privs is True
    assert refused(capabilities=dict(keep=["bogus"])) == (
        "capabilities: unknown capability 'bogus' (pyforkexec: SysProcAttr.capabilities.keep[0])")


def test_seccomp_errno_by_name_and_unknown_calls(attr, refused):
    sys = attr(seccomp=dict(deny=["mkdir"], errno="EACCES")).sys
    assert sys.seccomp.errno == 13 and list(sys.seccomp.deny) == ["mkdir"]
    assert refused(seccomp=dict(deny=["mkdir"], errno="ENOPE")) == "seccomp.errno: unknown errno 'ENOPE'"
    assert refused(seccomp=dict(deny=["no_such_call"])).startswith("seccomp: unknown system call")


def test_mounts_need_a_mount_namespace(refused):
    msg = refused(mounts=[dict(type="tmpfs", target="/tmp")])
    assert msg.startswith("mounts: needs a new mount namespace")


def test_mount_types_translate_to_pyforkexec_mounts(attr):
    mounts = attr(namespaces=["mount"], mounts=[
        dict(type="tmpfs", target="/tmp", size="16m", mode="1777"),
        dict(type="proc", target="/proc"),
        dict(type="bind", source="/etc", target="/mnt", readonly=True),
        dict(type="mount", source="none", target="/run", fstype="tmpfs", flags=["nosuid"], options="size=1m"),
        dict(type="dev", target="/dev"),
    ]).sys.mounts
    assert mounts[0] == fe.Mount.tmpfs("/tmp", size="16m", mode="1777")
    assert mounts[1] == fe.Mount.proc("/proc")
    assert mounts[2] == fe.Mount.bind("/etc", "/mnt", readonly=True)
    assert mounts[3] == fe.Mount("none", "/run", "tmpfs", "nosuid", "size=1m", True)
    assert mounts[4:] == fe.minimal_dev("/dev")


def test_a_bind_mount_needs_a_source(attr):
    with pytest.raises(ValueError, match="type is bind but all of the following are missing: source"):
        attr(namespaces=["mount"], mounts=[dict(target="/mnt")])


def test_rootfs_is_bound_onto_itself_unless_a_mount_makes_the_new_root(attr, refused, tmp_path):
    sys = attr(namespaces=["mount"], rootfs=str(tmp_path), readonly_root=True,
               mounts=[dict(type="proc", target="/proc")]).sys
    assert sys.pivot_root == str(tmp_path) and sys.readonly_root is True
    assert sys.mounts == [fe.Mount.bind(str(tmp_path), "/"), fe.Mount.proc("/proc")]
    sys = attr(namespaces=["mount"], rootfs=str(tmp_path), mounts=[dict(type="tmpfs", target="/")]).sys
    assert sys.mounts == [fe.Mount.tmpfs("/")]
    assert refused(namespaces=["mount"], rootfs=str(tmp_path / "missing")) == (
        f"rootfs: {tmp_path / 'missing'} is not a directory")


def test_rlimits_take_one_value_a_pair_or_soft_and_hard(attr, refused):
    limits = attr(rlimits=dict(nofile=1024, nproc=[10, 20], core=dict(soft=0, hard="unlimited"))).sys.rlimits
    assert limits == [fe.Rlimit("core", 0, "unlimited"), fe.Rlimit("nofile", 1024, 1024),
                      fe.Rlimit("nproc", 10, 20)]
    assert refused(rlimits=dict(bogus=1)).startswith("rlimits: unknown resource 'bogus'")
    assert refused(rlimits=dict(nofile=[1, 2, 3])) == "rlimits.nofile: expected [soft, hard], got 3 values"


def test_cgroup_limits_take_human_sizes_and_cpu_percentages(attr, refused):
    cg = attr(cgroup=dict(memory_max="256M", cpu_max="50%", pids_max="max", cpu_weight=50)).sys.cgroup
    assert cg == fe.Cgroup(path="pyforkexec/unit", memory_max=256 << 20, cpu_max="50000 100000",
                           pids_max="max", cpu_weight=50)
    assert attr(cgroup=dict(path="a/b", memory_max=1000)).sys.cgroup.path == "a/b"
    assert refused(cgroup=dict(memory_max="lots")).startswith("cgroup.memory_max: expected bytes, 'max'")
    assert refused(cgroup=dict(cpu_weight=0)).startswith("cgroup: must be between 1 and 10000")


def test_without_cgroup_the_limits_are_left_to_the_caller(validate_args):
    params = validate_args(iso.ISOLATION_ARGSPEC, dict(cgroup=dict(memory_max="1G")))
    assert iso.build_and_check(params, ["true"], with_cgroup=False).sys.cgroup is None


def test_environment_and_directory_go_to_procattr(validate_args):
    params = validate_args(iso.ISOLATION_ARGSPEC, {})
    attr = iso.build_and_check(params, ["true"], env=["A=1"], chdir="/tmp")
    assert (attr.env, attr.dir) == (["A=1"], "/tmp")


@pytest.mark.parametrize(("message", "explained"), [
    ("spec: sys.uid_mappings[1].size: must be between 1 and 4294967295, got 0",
     "uid_map: must be between 1 and 4294967295, got 0 (pyforkexec: SysProcAttr.uid_mappings[1].size)"),
    ("spec: proc.dir: contains a NUL byte", "chdir: contains a NUL byte (pyforkexec: ProcAttr.dir)"),
    ("spec: argv[0]: contains a NUL byte", "argv: contains a NUL byte (pyforkexec: argv[0])"),
    ("something else entirely", "something else entirely"),
])
def test_explain_puts_the_module_option_first(message, explained):
    assert iso.explain(message) == explained
