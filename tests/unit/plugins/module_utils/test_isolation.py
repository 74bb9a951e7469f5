"""The shared isolation options: Ansible's argument validation, then the translation into a real
pyforkexec SysProcAttr and pyforkexec's own validation, whose refusals name the module option."""

from __future__ import annotations

import os
import pwd
import time

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import isolation as iso

import pyforkexec as fe
from pyforkexec import ns_pins

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # the dev extra has it; the example-based tests run without it
    st = None

EXAMPLES = int(os.environ.get("PFE_HYPOTHESIS_EXAMPLES", "25"))
RANDOM = "PFE_HYPOTHESIS_EXAMPLES" in os.environ  # else a fixed seed: CI runs the same examples each time


@pytest.fixture
def attr(validate_args):
    """attr(**options) -> the validated ProcAttr for ["true"] with those isolation options."""

    def build(argv=("true",), cgroup_path="pyforkexec/unit", **options):
        params = validate_args(iso.ISOLATION_ARGSPEC, options,
                               mutually_exclusive=iso.ISOLATION_MUTUALLY_EXCLUSIVE)
        return iso.build_and_check(params, list(argv), cgroup_path=cgroup_path).attr

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
    assert refused(cloneflags=["CLONE_VM"]).startswith("cloneflags: CLONE_VM is refused")
    assert refused(cloneflags=["bogus"]).startswith("cloneflags: ")


def test_netns_must_exist_and_excludes_a_new_network_namespace(refused):
    assert refused(netns="pfe-ut-nonet") == ("netns: no network namespace /run/netns/pfe-ut-nonet "
                                             "(create it with pyforkexec.isolation.netns)")
    assert refused(netns="../etc") == ("netns: '../etc' is not a name of /run/netns (join a namespace file "
                                       "with join: [{path: FILE}])")
    assert refused(netns="/proc/1/ns/net").startswith("netns: '/proc/1/ns/net' is not a name of /run/netns")
    assert refused(netns="a\0b").startswith("netns: 'a\\x00b' is not a name of /run/netns")
    assert refused(netns="x", namespaces=["net"]).startswith("netns: joins an existing network namespace")


def test_join_a_process_joins_the_namespaces_it_does_not_share(attr):
    with fe.start_process("/bin/sleep", ["sleep", "60"], fe.ProcAttr(
            sys=fe.SysProcAttr(cloneflags=fe.CLONE_NEWUTS | fe.CLONE_NEWIPC))) as proc:
        try:
            pins = {kind: _pins_of(proc.pid, kind) for kind in ("uts", "ipc")}
            sys = attr(join=[dict(pid=proc.pid)]).sys
            chosen = attr(join=[dict(pid=proc.pid, namespaces=["uts"])]).sys
        finally:
            proc.kill()
    # Each pinned to the namespace and the process: a service restarting after that pid is reused fails
    # closed rather than join whatever process has the pid by then.
    uts, ipc = (f"/proc/{proc.pid}/ns/{kind}" for kind in ("uts", "ipc"))
    assert list(sys.setns) == [fe.SetNS(uts, int(fe.CLONE_NEWUTS), **pins["uts"]),
                               fe.SetNS(ipc, int(fe.CLONE_NEWIPC), **pins["ipc"])]
    assert list(chosen.setns) == [fe.SetNS(uts, int(fe.CLONE_NEWUTS), **pins["uts"])]


def _pins_of(pid, kind):
    """What the collection pins a join of process ``pid``'s namespace of ``kind`` by: its inode, the
    kernel's id of it where the kernel has ids, and the process's start time."""
    path = f"/proc/{pid}/ns/{kind}"
    pins = {"inode": os.stat(path).st_ino, "process_start": ns_pins.process_start(str(pid))}
    if ns_pins.ns_id_of(path) is not None:
        pins["ns_id"] = ns_pins.ns_id_of(path)
    return pins


def test_a_join_path_to_a_thread_is_pinned_by_the_thread_s_start(attr):
    """A join path under /proc/PID/task/TID/ names one thread's namespace: its TID goes to the next
    thread made once it ends, of the same process too, whose namespaces may be others while the
    process's start stays. It was pinned by the start of process PID; it is pinned by the thread's,
    which pyforkexec reads through the thread's own /proc directory."""
    import ctypes
    import threading

    release, ready, box = threading.Event(), threading.Event(), {}

    def in_own_netns():
        box["made"] = ctypes.CDLL(None, use_errno=True).unshare(int(fe.CLONE_NEWNET)) == 0
        box["tid"] = threading.get_native_id()
        ready.set()
        release.wait()

    time.sleep(0.05)  # (some clock ticks after the process started: a test runs in a fork of its own)
    thread = threading.Thread(target=in_own_netns)
    thread.start()
    try:
        ready.wait()
        assert box["made"]
        thread_dir = f"{os.getpid()}/task/{box['tid']}"
        path = f"/proc/{thread_dir}/ns/net"
        entry, = attr(join=[dict(path=path)]).sys.setns
        assert entry.target == path
        assert entry.process_start == ns_pins.process_start(thread_dir)
        assert entry.process_start != ns_pins.process_start(str(os.getpid()))
    finally:
        release.set()
        thread.join()


def test_a_join_path_to_a_process_is_pinned_however_it_is_spelled(attr, tmp_path):
    """A join path that leads to a process's /proc/PID/ns file by another spelling than /proc/PID/
    (//proc/PID, /proc/./PID, a symlink to it) was not pinned by inode: a service's later start joined
    whatever process had that PID by then. Each is that process's /proc/PID/ns file now, pinned to it
    and its namespace: a start after it ended fails; a /run/netns-like name (a namespace bound on a
    file) still means what it names at the start."""
    flags = fe.ProcAttr(sys=fe.SysProcAttr(cloneflags=fe.CLONE_NEWNET))
    with fe.start_process("/bin/sleep", ["sleep", "60"], flags) as a, \
            fe.start_process("/bin/sleep", ["sleep", "60"], flags) as b:
        try:
            meant = fe.SetNS(f"/proc/{a.pid}/ns/net", int(fe.CLONE_NEWNET), **_pins_of(a.pid, "net"))
            link = tmp_path / "net"
            link.symlink_to(f"/proc/{a.pid}/ns/net")
            for path in (f"//proc/{a.pid}/ns/net", f"/proc/./{a.pid}/ns/net", f"/proc/../proc/{a.pid}/ns/net",
                         str(link)):
                assert list(attr(join=[dict(path=path)]).sys.setns) == [meant], path
            pinned = attr(join=[dict(path=str(link))]).sys
            link.unlink()
            link.symlink_to(f"/proc/{b.pid}/ns/net")  # the path leads to another namespace now
            joined = fe.run(["readlink", "/proc/self/ns/net"], sys=pinned, capture_output=True, text=True)
            assert joined.stdout.strip() == os.readlink(f"/proc/{a.pid}/ns/net")  # the one meant
            bound = tmp_path / "bound"
            bound.touch()
            assert os.system(f"mount --bind /proc/{a.pid}/ns/net {bound}") == 0
            try:
                assert [entry.inode for entry in attr(join=[dict(path=str(bound))]).sys.setns] == [None]
            finally:
                os.system(f"umount {bound}")
            a.kill()
            a.wait()
            with pytest.raises(fe.ChildError) as stale:
                fe.start_process("/bin/true", ["true"], fe.ProcAttr(sys=pinned)).wait()
            assert stale.value.location == fe.ErrorLocation.SETNS
        finally:
            a.kill()
            b.kill()


def test_join_a_path_takes_one_type_at_most(attr, refused, elsewhere):
    assert list(attr(join=[dict(path=elsewhere("uts"), namespaces=["uts"])]).sys.setns) == [
        fe.SetNS(elsewhere("uts"), int(fe.CLONE_NEWUTS), **_pins_of(elsewhere.pid, "uts"))]
    assert refused(join=[dict(path=elsewhere("uts"), namespaces=["uts", "net"])]).startswith(
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
    # getpwnam()/getgrnam() raise ValueError for a NUL: the message was "embedded null byte", no option
    assert refused(credential=dict(uid="0\0")) == (
        "credential.uid: contains a NUL byte, which no user name holds: '0\\x00'")
    assert refused(credential=dict(uid=0, groups=["root", "x\0y"])).startswith(
        "credential.groups[1]: contains a NUL byte")
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
        "capabilities.keep[0]: unknown capability 'bogus' (pyforkexec: SysProcAttr.capabilities.keep[0])")


def test_seccomp_errno_by_name_and_unknown_calls(attr, refused):
    sys = attr(seccomp=dict(deny=["mkdir"], errno="EACCES")).sys
    assert sys.seccomp.errno == 13 and list(sys.seccomp.deny) == ["mkdir"]
    assert refused(seccomp=dict(deny=["mkdir"], errno="ENOPE")) == "seccomp.errno: unknown errno 'ENOPE'"
    assert refused(seccomp=dict(deny=["no_such_call"])).startswith("seccomp.deny[0]: unknown system call")


def test_mounts_need_a_mount_namespace(refused):
    msg = refused(mounts=[dict(type="tmpfs", target="/tmp")])
    assert msg.startswith("mounts: needs a new mount namespace")


def test_only_a_bind_under_a_new_root_can_be_optional(attr, refused, tmp_path):
    binds = [dict(type="bind", source=str(tmp_path / "missing"), target="/a", optional=True),
             dict(type="bind", source="/etc", target="/b", readonly=True, optional=True)]
    on_tmpfs = [dict(type="tmpfs", target="/"), *binds]  # bubblewrap's root: a tmpfs, on which it is safe
    mounts = attr(namespaces=["mount"], rootfs=str(tmp_path), mounts=on_tmpfs).sys.mounts
    assert [m for m in mounts if m.optional] == [
        fe.Mount.bind(str(tmp_path / "missing"), "/a", optional=True),
        fe.Mount.bind("/etc", "/b", readonly=True, optional=True)]
    msg = refused(namespaces=["mount"], rootfs=str(tmp_path), mounts=binds)  # in the root directory itself
    assert msg.startswith("mounts[0].optional: its target is in the bind mount of mounts[0] (/)"), msg
    msg = refused(namespaces=["mount"], mounts=[dict(type="tmpfs", target="/tmp", optional=True)])
    assert msg.startswith("mounts[0].optional: only a bind mount can be optional, not a tmpfs"), msg
    mount = dict(type="mount", source="none", target="/run", fstype="tmpfs", optional=True)
    msg = refused(namespaces=["mount"], mounts=[mount])
    assert "mounts[0].optional" in msg and "only a bind mount can be optional" in msg, msg
    msg = refused(namespaces=["mount"], mounts=binds)  # no new root: a bind left out hides nothing
    assert msg.startswith("mounts[0].optional: needs a new root"), msg


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
    assert refused(rlimits=dict(bogus=1)).startswith("rlimits.bogus: unknown resource 'bogus'")
    assert refused(rlimits=dict(nofile=[1, 2, 3])) == "rlimits.nofile: expected [soft, hard], got 3 values"


def test_cgroup_limits_take_human_sizes_and_cpu_percentages(attr, refused):
    cg = attr(cgroup=dict(memory_max="256M", cpu_max="50%", pids_max="max", cpu_weight=50)).sys.cgroup
    assert cg == fe.Cgroup(path="pyforkexec/unit", memory_max=256 << 20, cpu_max="50000 100000",
                           pids_max="max", cpu_weight=50)
    assert attr(cgroup=dict(path="a/b", memory_max=1000)).sys.cgroup.path == "a/b"
    assert refused(cgroup=dict(memory_max="lots")).startswith("cgroup.memory_max: expected bytes, 'max'")
    assert refused(cgroup=dict(cpu_weight=0)).startswith("cgroup.cpu_weight: must be between 1 and 10000")


def test_without_cgroup_the_limits_are_left_to_the_caller(validate_args):
    params = validate_args(iso.ISOLATION_ARGSPEC, dict(cgroup=dict(memory_max="1G")))
    assert iso.build_and_check(params, ["true"], with_cgroup=False).attr.sys.cgroup is None


def test_environment_and_directory_go_to_procattr(validate_args):
    params = validate_args(iso.ISOLATION_ARGSPEC, {})
    attr = iso.build_and_check(params, ["true"], env=["A=1"], chdir="/tmp").attr
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


# ---- join and netns targets must be namespaces that exist (issue 11) --------------------------------


@pytest.fixture
def zombie_pid():
    """The pid of a process that has exited but is not reaped: /proc/PID exists, its namespaces do not."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split()[2] == "Z":
                break
        time.sleep(0.005)
    yield pid
    os.waitpid(pid, 0)


@pytest.fixture
def stale_netns():
    """A name in /run/netns whose file is not a namespace (what a netns whose mount went away leaves)."""
    name = f"pfe-ut-stale-{os.getpid()}"
    os.makedirs(iso.NETNS_DIR, exist_ok=True)
    path = os.path.join(iso.NETNS_DIR, name)
    open(path, "w").close()
    yield name
    os.unlink(path)


def test_a_join_target_that_is_no_namespace_is_refused_naming_the_entry(refused, dead_pid, zombie_pid,
                                                                        tmp_path, elsewhere):
    def ok():  # a new dict each time: Ansible's validation fills the defaults in
        return dict(path=elsewhere("uts"))

    assert refused(join=[dict(pid=dead_pid)]) == f"join[0].pid: no process {dead_pid}"
    assert refused(join=[ok(), dict(pid=dead_pid, namespaces=["net"])]) == (
        f"join[1].pid: no process {dead_pid}")
    assert refused(join=[dict(pid=0)]) == "join[0].pid: no process 0"
    assert refused(join=[ok(), ok(), dict(pid=zombie_pid)]).startswith(
        f"join[2].pid: no namespace to join at /proc/{zombie_pid}/ns/mnt")
    assert refused(join=[dict(path="/nonexistent")]) == (
        "join[0].path: no namespace to join at /nonexistent: No such file or directory")
    assert refused(join=[ok(), dict(path=str(tmp_path))]).startswith(
        f"join[1].path: {tmp_path} is not a namespace")
    assert refused(join=[dict(path="/proc/self/ns/net", namespaces=["uts"])]) == (
        "join[0].namespaces: /proc/self/ns/net is a net namespace, not uts")


def test_a_netns_name_without_a_namespace_behind_it_is_refused(refused, stale_netns):
    assert refused(netns=stale_netns).startswith(f"netns: /run/netns/{stale_netns} is not a namespace")
    assert refused(netns="..").startswith("netns: '..' is not a name of /run/netns")


def test_a_join_by_path_records_its_type_and_user_namespaces_come_first(attr, elsewhere):
    with fe.start_process("/bin/sleep", ["sleep", "60"], fe.ProcAttr(sys=fe.SysProcAttr(
            cloneflags=fe.CLONE_NEWUSER | fe.CLONE_NEWUTS, uid_mappings=[fe.SysProcIDMap(0, 0, 1)],
            gid_mappings=[fe.SysProcIDMap(0, 0, 1)]))) as proc:
        user, uts = (f"/proc/{proc.pid}/ns/{kind}" for kind in ("user", "uts"))
        try:
            pins = {kind: _pins_of(proc.pid, kind) for kind in ("user", "uts")}
            sys = attr(join=[dict(path=elsewhere("ipc")), dict(pid=proc.pid)]).sys
        finally:
            proc.kill()
    ipc = elsewhere("ipc")
    assert list(sys.setns) == [fe.SetNS(user, int(fe.CLONE_NEWUSER), **pins["user"]),
                               fe.SetNS(ipc, int(fe.CLONE_NEWIPC), **_pins_of(elsewhere.pid, "ipc")),
                               fe.SetNS(uts, int(fe.CLONE_NEWUTS), **pins["uts"])]


def test_pyforkexec_names_of_setns_entries_become_the_join_entry(validate_args, elsewhere):
    """pyforkexec names a setns target it cannot open SysProcAttr.setns[i] (its index in the sorted
    list): the message names the join entry or netns it came from."""
    user = elsewhere("user")
    params = validate_args(iso.ISOLATION_ARGSPEC, dict(join=[dict(path=elsewhere("uts")), dict(path=user)]))
    built = iso.build_and_check(params, ["true"])
    error = OSError(2, f"SysProcAttr.setns[0]: No such file or directory: {user}")
    assert built.explain(error) == (f"join[1]: No such file or directory: {user} "
                                    "(pyforkexec: SysProcAttr.setns[0])")
    assert built.explain(OSError(2, "No such file or directory"), context="could not start true") == (
        "could not start true: No such file or directory")


@pytest.mark.parametrize(("location", "index", "option"), [
    ("ID_MAP_WRITE", 0, "uid_map"), ("ID_MAP_WRITE", 1, "setgroups"), ("UNSHARE_USER_READ", 2, "gid_map"),
    ("MOUNT", -1, "mounts[0]"), ("MKDIR", 0, "mounts[1]"), ("SETUID", 0, "credential.uid"),
    ("SETNS", 0, "netns"), ("PRLIMIT", 0, "rlimits.nofile"), ("CHDIR", 0, "chdir"),
])
def test_a_child_error_names_the_option_of_its_step(validate_args, location, index, option):
    """pyforkexec's step and index, whatever the entries before expand to (a dev mount is several
    pyforkexec mounts): index -1 is the last pyforkexec mount of mounts[0], 0 the first of mounts[1]."""
    params = validate_args(iso.ISOLATION_ARGSPEC, dict(
        namespaces=["user", "mount"], uid_map=[dict(container_id=0, host_id=0)],
        gid_map=[dict(container_id=0, host_id=0)], credential=dict(uid=0, gid=0), rlimits=dict(nofile=64),
        mounts=[dict(type="dev", target="/dev"), dict(type="tmpfs", target="/tmp")],
        capabilities=dict(keep=[])))  # (keeping CAP_SYS_ADMIN, the program could undo the mounts)
    built = iso.build_and_check(params, ["true"])
    built.origins.add("sys.setns[0]", "netns")  # as a netns option records it (no netns to join here)
    if location in ("MOUNT", "MKDIR"):
        index += len(fe.minimal_dev("/dev"))
    error = fe.ChildError(1, getattr(fe.ErrorLocation, location), index, "/usr/bin/true")
    assert built.explain(error) == f"{option}: {error}"
    assert built.explain(fe.ChildError(2, fe.ErrorLocation.EXECVE, 0, "/x")) == str(
        fe.ChildError(2, fe.ErrorLocation.EXECVE, 0, "/x"))


def test_a_join_target_gone_before_the_spawn_fails_naming_the_entry(validate_args):
    """The process exits between the module's check and the spawn: pyforkexec cannot open its
    namespace (a ChildError at its setns step, or an OSError naming SysProcAttr.setns[i]), and the
    failure names join[0]."""
    with fe.start_process("/bin/sleep", ["sleep", "60"],
                          fe.ProcAttr(sys=fe.SysProcAttr(cloneflags=fe.CLONE_NEWUTS))) as proc:
        params = validate_args(iso.ISOLATION_ARGSPEC, dict(join=[dict(pid=proc.pid)]))
        built = iso.build_and_check(params, ["true"])
        proc.kill()
    with pytest.raises(OSError) as e:
        fe.run(["true"], sys=built.attr.sys)
    located = isinstance(e.value, fe.ChildError) and e.value.location == fe.ErrorLocation.SETNS
    if not located and "SysProcAttr.setns[" not in str(e.value):
        pytest.skip("this pyforkexec does not say which setns target it cannot open")
    assert built.explain(e.value).startswith("join[0]: ")


# ---- every option error names the option the user wrote (issue 11) -----------------------------------

MAX_ID = 2**32 - 2


@pytest.mark.parametrize(("options", "option"), [
    (dict(credential=dict(uid=-5)), "credential.uid"),
    (dict(credential=dict(uid=MAX_ID + 1, gid=0)), "credential.uid"),
    (dict(credential=dict(uid="4294967295", gid=0)), "credential.uid"),
    (dict(credential=dict(uid=0, gid=-1)), "credential.gid"),
    (dict(credential=dict(uid=0, groups=[0, -1])), "credential.groups[1]"),
    (dict(credential=dict(uid=0, groups=["pfe-nogroup"])), "credential.groups[0]"),
    (dict(namespaces=["user"], uid_map=[dict(container_id=0, host_id=1000),
                                        dict(container_id=1, host_id=-1)]), "uid_map[1].host_id"),
    (dict(namespaces=["user"], gid_map=[dict(container_id=0, host_id=1000, size=0)]), "gid_map[0].size"),
    (dict(namespaces=["mount"], mounts=[dict(type="dev", target="/dev"), dict(type="tmpfs", target="tmp")]),
     "mounts[1].target"),
    (dict(namespaces=["mount"], mounts=[dict(type="proc", target="/proc"), dict(type="dev", target="dev")]),
     "mounts[1].target"),
    (dict(namespaces=["mount"], mounts=[dict(type="mount", source="x", target="/x", fstype="tmpfs",
                                             flags=["bogus"])]), "mounts[0].flags"),
    (dict(rlimits=dict(nofile=1024, core="lots")), "rlimits.core"),
    (dict(cgroup=dict(pids_max=-3)), "cgroup.pids_max"),
    (dict(capabilities=dict(keep=["chown"], ambient=["bogus"])), "capabilities.ambient[0]"),
    (dict(seccomp=dict(default_action="errno", allow=["read", "bogus"])), "seccomp.allow[1]"),
    (dict(namespaces=["uts"], hostname="h" * 65), "hostname"),
    (dict(cloneflags=["CLONE_NEWUSER", "CLONE_FS"]), "cloneflags"),
    (dict(join=[dict(path="/nonexistent")]), "join[0].path"),
])
def test_an_option_error_names_the_option_the_user_wrote(refused, options, option):
    assert refused(**options).startswith(option + ": ")


def test_the_service_module_user_and_group_are_named_for_the_credential_they_make(validate_args):
    spec = dict(iso.ISOLATION_ARGSPEC, user=dict(type="str"), group=dict(type="str"))
    for options, option in ((dict(user="pfe-nouser"), "user"), (dict(user="4294967295"), "user"),
                            (dict(user="nobody", group="pfe-nogroup"), "group")):
        with pytest.raises(iso.IsolationError) as e:
            iso.build_and_check(validate_args(spec, options), ["true"])
        assert str(e.value).startswith(option + ": ")


if st is not None:
    _BAD_ID = st.one_of(st.integers(max_value=-1), st.integers(min_value=MAX_ID + 1, max_value=2**40))

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not RANDOM,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(data=st.data())
    def test_any_bad_entry_is_named_by_its_own_index(refused, data, dead_pid, elsewhere):
        """One bad value at any position of a list option (or any key of rlimits): the message names
        that entry, whatever the entries before it expand to in pyforkexec."""
        n = data.draw(st.integers(0, 4), label="good entries")
        i = data.draw(st.integers(0, n), label="bad index")
        kind = data.draw(st.sampled_from(["groups", "uid_map", "mounts", "join", "rlimits"]), label="option")
        if kind == "groups":
            groups = data.draw(st.lists(st.integers(0, MAX_ID), min_size=n, max_size=n))
            groups.insert(i, data.draw(_BAD_ID))
            options, option = dict(credential=dict(uid=0, groups=groups)), f"credential.groups[{i}]"
        elif kind == "uid_map":
            maps = [dict(container_id=10 * k, host_id=100000 + 10 * k, size=1) for k in range(n)]
            maps.insert(i, dict(container_id=1000, host_id=data.draw(_BAD_ID), size=1))
            options, option = dict(namespaces=["user"], uid_map=maps), f"uid_map[{i}].host_id"
        elif kind == "mounts":
            good = [dict(type="dev", target="/dev"), dict(type="proc", target="/proc"),
                    dict(type="tmpfs", target="/tmp"), dict(type="bind", source="/etc", target="/mnt")]
            mounts = [dict(m) for m in data.draw(st.lists(st.sampled_from(good), min_size=n, max_size=n))]
            mounts.insert(i, dict(data.draw(st.sampled_from(good)), target="relative/x"))
            options, option = dict(namespaces=["mount"], mounts=mounts), f"mounts[{i}].target"
        elif kind == "join":
            good = [dict(path=elsewhere("uts")), dict(path=elsewhere("ipc")), dict(pid=elsewhere.pid)]
            joins = [dict(j) for j in data.draw(st.lists(st.sampled_from(good), min_size=n, max_size=n))]
            bad = data.draw(st.sampled_from([dict(pid=dead_pid), dict(path="/nonexistent/ns"),
                                             dict(path="/etc/hostname")]))
            joins.insert(i, bad)
            options, option = dict(join=joins), f"join[{i}].{'pid' if 'pid' in bad else 'path'}"
        else:
            names = data.draw(st.lists(st.sampled_from(["core", "nofile", "nproc", "stack", "cpu"]),
                                       min_size=n + 1, max_size=n + 1, unique=True))
            limits = {name: 1024 for name in names}
            limits[names[i]] = data.draw(st.sampled_from(["lots", -7, [1, 2, 3]]))
            options, option = dict(rlimits=limits), f"rlimits.{names[i]}"
        assert refused(**options).startswith(option + ": ")


# As PID 1 of a PID namespace that kept the host's /proc (as a container may): a join of a child's
# namespaces, the child given by its pid there.
_JOIN_WITH_THE_HOST_S_PROC = r"""
import json, os, subprocess
from ansible_collections.pyforkexec.isolation.plugins.module_utils import isolation as iso
proc = subprocess.Popen(["unshare", "--uts", "--ipc", "sh", "-c",
                         "readlink /proc/self/ns/uts && exec sleep 60"], stdout=subprocess.PIPE, text=True)
uts = proc.stdout.readline().strip()
try:
    entries = iso._join_entries("join[0]", dict(pid=proc.pid, path=None, namespaces=None), True)
    answer = {"joined": sorted(f"{os.path.basename(path)}:[{pin['inode']}]" for path, _type, pin in entries)}
except iso.IsolationError as e:
    answer = {"error": str(e)}
proc.kill()
proc.wait()
print(json.dumps(dict(answer, pid=os.getpid(), self=os.readlink("/proc/self"), uts=uts)))
"""


def test_a_join_of_a_pid_joins_its_namespaces_where_proc_is_another_pid_namespace_s(in_pid_namespace):
    """join: [{pid}] read the namespaces in /proc/PID, the host's, where the pid (this namespace's)
    numbers another process: that one's (the host's) were taken for the ones to join."""
    answer = in_pid_namespace(_JOIN_WITH_THE_HOST_S_PROC, mount_proc=False)
    assert answer["pid"] == 1 and answer["self"] != "1"  # the case: /proc is not the namespace's
    assert answer.get("error") is None
    assert len(answer["joined"]) == 2 and answer["uts"] in answer["joined"]  # ipc and uts: its own


# As PID 1 of a PID namespace of its own: a process in UTS and IPC namespaces of its own, joined by its
# pid. Right after the kinds it does not share are read, it is killed (and reaped), and the next fork
# gets its number (ns_last_pid, in this namespace only): another process, in UTS and IPC namespaces of
# its own too (other ones: the target's are held open meanwhile). Which inodes the join pins, or the
# refusal.
_JOIN_OF_A_PID_REUSED_MID_READ = r"""
import json, os, signal, subprocess, time
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.pyforkexec.isolation.plugins.module_utils import isolation as iso
import pyforkexec.nsinfo as nsinfo
from pid_reuse import in_own_uts_and_ipc as in_own_namespaces

def inodes(pid):
    return [os.stat(f"/proc/{pid}/ns/{kind}").st_ino for kind in ("uts", "ipc")]

target = in_own_namespaces()
theirs, seen, differing = inodes(target.pid), {}, nsinfo.differing
# Held open here: a namespace freed gives its inode number to the next one made (the stranger's)
held = [os.open(f"/proc/{target.pid}/ns/{kind}", os.O_RDONLY) for kind in ("uts", "ipc")]

def then_reused(where, *args):
    kinds = differing(where, *args)
    if not seen:
        target.kill()
        target.wait()
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(target.pid - 1))
        seen["stranger"] = in_own_namespaces()
    return kinds

nsinfo.differing = then_reused
params = ArgumentSpecValidator(iso.ISOLATION_ARGSPEC, mutually_exclusive=iso.ISOLATION_MUTUALLY_EXCLUSIVE
                               ).validate({"join": [{"pid": target.pid}]}).validated_parameters
try:
    pinned, msg = [e.inode for e in iso.build_and_check(params, ["true"]).attr.sys.setns], None
except iso.IsolationError as e:
    pinned, msg = None, str(e)
stranger = seen["stranger"]
print(json.dumps({"reused": stranger.pid == target.pid, "target": theirs, "stranger": inodes(stranger.pid),
                  "pinned": pinned, "msg": msg}))
stranger.kill()
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a PID namespace whose next pid it steers")
def test_a_join_by_pid_never_pins_the_namespaces_of_a_process_that_reused_the_pid(in_pid_namespace):
    """join: [{pid: N}] read the process's namespaces by its number, one after the other: a process that
    ended between the reads, its number given to another, had that one's namespaces' inodes pinned in
    the spec, and the service joined them at every start. The process is pinned (its pidfd) while they
    are read, and the option fails if it ended meanwhile."""
    for _attempt in range(5):  # (the next fork takes the freed number almost always: the premise)
        answer = in_pid_namespace(_JOIN_OF_A_PID_REUSED_MID_READ)
        if answer["reused"]:
            break
    assert answer["reused"] and answer["stranger"] != answer["target"]
    assert answer["pinned"] is None, answer
    assert answer["msg"].startswith("join[0].pid: process ") and "ended while its namespaces were read" in \
        answer["msg"], answer


# As PID 1 of a PID namespace of its own: a process in UTS and IPC namespaces of its own is joined by its
# pid (its UTS namespace), then killed; the next fork gets its number (ns_last_pid) and makes UTS and IPC
# namespaces of its own, until its UTS namespace has the target's inode number too (the kernel gives a
# freed one to the next namespace made). What the start of the pinned spec does then.
_JOIN_OF_A_PID_AND_INODE_REUSED = r"""
import json, os
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.pyforkexec.isolation.plugins.module_utils import isolation as iso
import pyforkexec as fe
from pid_reuse import in_own_uts_and_ipc as in_own_namespaces

target = in_own_namespaces()
meant = os.readlink(f"/proc/{target.pid}/ns/uts")
params = ArgumentSpecValidator(iso.ISOLATION_ARGSPEC, mutually_exclusive=iso.ISOLATION_MUTUALLY_EXCLUSIVE
                               ).validate({"join": [{"pid": target.pid, "namespaces": ["uts"]}]}
                                          ).validated_parameters
sys_attr = iso.build_and_check(params, ["true"]).attr.sys
target.kill()
target.wait()
for _try in range(500):
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(target.pid - 1))
    stranger = in_own_namespaces()
    if stranger.pid == target.pid and os.readlink(f"/proc/{stranger.pid}/ns/uts") == meant:
        break
    stranger.kill()
    stranger.wait()
else:
    print(json.dumps({"reused": False}))
    raise SystemExit(0)
try:
    done = fe.run(["readlink", "/proc/self/ns/uts"], sys=sys_attr, capture_output=True, text=True)
    outcome = "ran in " + done.stdout.strip()
except fe.ChildError as e:
    outcome = f"{e.errno_name} at {e.field}"
stranger.kill()
pins = [k for k in ("inode", "ns_id", "process_start") if getattr(sys_attr.setns[0], k) is not None]
print(json.dumps({"reused": True, "meant": meant, "outcome": outcome, "pins": pins}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a PID namespace whose next pid it steers")
def test_a_join_by_pid_is_not_fooled_by_a_stranger_with_the_pid_and_the_inode_number(in_pid_namespace):
    """join: [{pid: N}] was pinned by the namespace's inode alone, which the kernel gives to the next
    namespace made once it is freed: a stranger that took the pid and made a namespace was joined by
    the service's next start (the pin held). Pinned by the process's start time too, and by the
    kernel's namespace id where it has one: that start fails at setns (ESTALE)."""
    for _attempt in range(5):  # (other tests beside this one make namespaces too, taking the number)
        answer = in_pid_namespace(_JOIN_OF_A_PID_AND_INODE_REUSED)
        if answer["reused"]:
            break
    else:
        pytest.skip("the kernel did not give the freed pid and inode number to the stranger in 500 tries")
    assert answer["outcome"] == "ESTALE at sys.setns[0]", answer
    assert "process_start" in answer["pins"], answer


# As PID 1 of a PID namespace (and mount namespace) of its own: a process in a mount namespace of its
# own, where a directory holds a namespace file bound to one network namespace, is joined by a path
# through its /proc directory (/proc/PID/root/DIR/x); then killed, and the next fork gets its number
# (ns_last_pid): a stranger in a mount namespace of its own where DIR/x is bound to another one. What
# the start of the spec then does, and the pins the join has.
_JOIN_THROUGH_A_PROCESS_S_ROOT = r"""
import json, os, subprocess, tempfile, time
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.pyforkexec.isolation.plugins.module_utils import isolation as iso
import pyforkexec as fe

where = tempfile.mkdtemp(prefix="h165root")

def holder():
    proc = subprocess.Popen(["unshare", "--net", "sleep", "600"])
    while os.stat(f"/proc/{proc.pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino:
        time.sleep(0.001)
    return proc

def boxed(net):
    script = (f"mount -t tmpfs none {where} && touch {where}/x && mount --bind /proc/{net.pid}/ns/net "
              f"{where}/x && echo ready && exec sleep 600")
    proc = subprocess.Popen(["unshare", "--mount", "sh", "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    return proc

meant, other = holder(), holder()
target = boxed(meant)
path = f"/proc/{target.pid}/root{where}/x"
params = ArgumentSpecValidator(iso.ISOLATION_ARGSPEC, mutually_exclusive=iso.ISOLATION_MUTUALLY_EXCLUSIVE
                               ).validate({"join": [{"path": path}]}).validated_parameters
sys_attr = iso.build_and_check(params, ["true"]).attr.sys
target.kill()
target.wait()
for _try in range(50):
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(target.pid - 1))
    stranger = boxed(other)
    if stranger.pid == target.pid:
        break
    stranger.kill()
    stranger.wait()
try:
    done = fe.run(["readlink", "/proc/self/ns/net"], sys=sys_attr, capture_output=True, text=True)
    outcome = "ran in " + done.stdout.strip()
except fe.ChildError as e:
    outcome = f"{e.errno_name} at {e.field}"
entry = sys_attr.setns[0]
print(json.dumps({"reused": stranger.pid == target.pid, "meant": os.readlink(f"/proc/{meant.pid}/ns/net"),
                  "other": os.readlink(f"/proc/{other.pid}/ns/net"), "outcome": outcome,
                  "pins": [k for k in ("inode", "ns_id", "process_start") if getattr(entry, k) is not None]}))
for proc in (stranger, meant, other):
    proc.kill()
os.rmdir(where)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a PID namespace whose next pid it steers")
def test_a_join_path_through_a_process_s_root_is_pinned_to_the_process(in_pid_namespace):
    """join: [{path: /proc/PID/root/...}] names a namespace file as process PID sees it (a container's
    /run/netns/NAME): the path went unpinned, as a name, and a service's later start, after PID went to
    a stranger, joined the namespace bound there in the stranger's view. Pinned to the process (its
    start time) and the namespace: that start fails at setns (ESTALE)."""
    for _attempt in range(3):
        answer = in_pid_namespace(_JOIN_THROUGH_A_PROCESS_S_ROOT)
        if answer["reused"]:
            break
    else:
        pytest.skip("the stranger did not get the target's pid in 50 tries")
    assert answer["outcome"] == "ESTALE at sys.setns[0]", answer
    assert {"inode", "process_start"} <= set(answer["pins"]), answer
