"""The forkexec module run in-process with real arguments: real commands in real namespaces."""

from __future__ import annotations

import os
import time

import pytest
from ansible_collections.pyforkexec.isolation.plugins.modules import forkexec


@pytest.fixture
def run(run_module):
    return lambda check_mode=False, **args: run_module(forkexec, args, check_mode=check_mode)


def test_a_command_in_a_new_uts_namespace(run):
    result = run(argv=["hostname"], namespaces=["uts"], hostname="pfe-unit")
    assert result["changed"] is True and result["rc"] == 0
    assert result["stdout"] == "pfe-unit\n" and result["stdout_lines"] == ["pfe-unit"]
    assert isinstance(result["pid"], int) and result["pid"] != os.getpid()
    assert result["cmd"] == ["hostname"]


def test_cmd_is_split_like_a_shell_would(run):
    result = run(cmd="printf '%s|' 'a b' c", inherit_env=False, env=dict(PATH="/usr/bin:/bin"))
    assert result["stdout"] == "a b|c|"


def test_the_environment_is_the_module_one_plus_env_or_only_env(run):
    assert run(argv=["env"], inherit_env=False, env=dict(A="1", B="two words"))["stdout_lines"] == [
        "A=1", "B=two words"]
    assert "PFE_UNIT=x" in run(argv=["env"], env=dict(PFE_UNIT="x"))["stdout_lines"]


def test_stdin_chdir_and_stderr(run, tmp_path):
    result = run(argv=["sh", "-c", "cat; pwd; echo oops >&2"], stdin="hello", chdir=str(tmp_path))
    assert result["stdout_lines"] == ["hello", str(tmp_path)] and result["stderr"] == "oops\n"


def test_check_mode_validates_without_running(run, tmp_path):
    marker = tmp_path / "ran"
    result = run(check_mode=True, argv=["touch", str(marker)], namespaces=["uts"], hostname="x")
    assert result["changed"] is True and "rc" not in result
    assert not marker.exists()
    failed = run(check_mode=True, argv=["touch", str(marker)], hostname="x")
    assert failed["failed"] is True and failed["msg"].startswith("hostname: needs a new UTS namespace")


def test_an_invalid_combination_fails_before_anything_runs(run, tmp_path):
    marker = tmp_path / "ran"
    result = run(argv=["touch", str(marker)], uid_map=[dict(container_id=0, host_id=0)])
    assert result["failed"] is True
    assert result["msg"].startswith("uid_map: id mappings need CLONE_NEWUSER in cloneflags or unshareflags")
    assert not marker.exists()


def test_argv_and_cmd_exclude_each_other(run):
    result = run(argv=["true"], cmd="true")
    assert result["failed"] is True and "mutually exclusive: argv|cmd" in result["msg"]


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check mode"])
def test_a_null_argv_is_not_a_command(run, check_mode):
    # Ansible's required_one_of takes argv: null as given; it was read as cmd, split from None (which
    # shlex reads from standard input) and refused as "cmd: the command is empty".
    result = run(check_mode=check_mode, argv=None)
    assert result["failed"] is True
    assert result["msg"] == "argv or cmd: one of them is needed, with a value (null is none)"


def test_a_child_failure_names_the_step(run):
    # (with a mount, the program could be there for the child: only its execve tells)
    result = run(argv=["/nonexistent/pfe-program"], namespaces=["mount"],
                 mounts=[dict(type="tmpfs", target="/mnt")])
    assert result["failed"] is True
    assert result["child_error"] == dict(errno=2, errno_name="ENOENT", location="execve", index=0,
                                         filename="/nonexistent/pfe-program")
    assert result["msg"] == "fork/exec /nonexistent/pfe-program: no such file or directory (at execve)"


@pytest.mark.parametrize(("args", "message"), [
    (dict(argv=["/nonexistent/pfe-program"]), 'argv: "/nonexistent/pfe-program": no such file or directory'),
    (dict(argv=["/"]), 'argv: "/": permission denied'),
    (dict(argv=["/proc/version"]), 'argv: "/proc/version": permission denied'),  # (mode 0444)
    (dict(cmd="pfe-no-such-program -x"), 'cmd: "pfe-no-such-program": executable file not found in $PATH'),
    (dict(argv=["true"], inherit_env=False, env=dict(PATH="/nonexistent")),
     'argv: "true": executable file not found in $PATH'),
])
@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check mode"])
def test_a_program_not_there_or_not_executable_is_refused_before_any_process(run, args, message, check_mode):
    """As ``pyforkexec exec --spec`` refuses it (pyforkexec.spec.find_program): the run made a child
    that failed at execve, its message naming no option, where check mode had said it would run."""
    result = run(check_mode=check_mode, **args)
    assert result["failed"] is True and result["msg"].startswith(message), result
    assert "child_error" not in result and result.get("pid") is None


def test_a_failing_chdir_names_its_step(run, tmp_path):
    result = run(argv=["/bin/true"], chdir=str(tmp_path / "missing"))
    assert result["child_error"]["location"] == "chdir" and result["child_error"]["errno_name"] == "ENOENT"


def test_a_non_zero_status_fails_with_the_output(run):
    result = run(argv=["sh", "-c", "echo out; exit 3"])
    assert result["failed"] is True and result["rc"] == 3 and result["stdout"] == "out\n"
    assert result["msg"] == "non-zero return code"


def test_timeout_kills_the_command(run):
    result = run(argv=["sleep", "30"], timeout=0.2)
    assert result["failed"] is True
    assert result["msg"].startswith("the command did not exit within 0.2 seconds")


@pytest.mark.parametrize("isolation", [{}, dict(namespaces=["pid"])], ids=["process group", "pid namespace"])
def test_timeout_kills_what_the_command_started_too(run, tmp_path, isolation):
    """Not the command's first process alone: a child it started (here a sleep that records its pid)
    is killed with it, rather than left running after the task failed."""
    marker = tmp_path / "grandchild"
    duration = f"300.{os.getpid()}{time.monotonic_ns() % 10**6}"  # this test's sleep alone has it
    script = f"sleep {duration} & echo $! > {marker}; wait"
    result = run(argv=["sh", "-c", script], timeout=0.5, **isolation)
    assert result["failed"] is True and "it was killed, with the processes it started" in result["msg"]
    pid = int(marker.read_text())
    if isolation.get("namespaces"):  # its pid inside the namespace: look for the sleep by its duration
        pid = None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _sleeping(pid, duration):
        time.sleep(0.05)
    assert not _sleeping(pid, duration)


def _sleeping(pid, duration):
    """Whether the test's ``sleep DURATION`` still runs (by pid, or any with that command line)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or (pid is not None and int(entry) != pid):
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if f.read() == b"sleep\x00" + duration.encode() + b"\x00":
                    with open(f"/proc/{entry}/stat") as stat:
                        if stat.read().rsplit(")", 1)[1].split()[0] != "Z":
                            return True
        except OSError:
            continue
    return False


def test_creates_and_removes_skip_like_the_command_module(run, tmp_path):
    result = run(argv=["false"], creates=str(tmp_path))
    assert result["changed"] is False and result["skipped"] is True and result["msg"].endswith("exists")
    result = run(argv=["false"], removes=str(tmp_path / "missing"))
    assert result["changed"] is False and result["msg"].endswith("does not exist")
    # os.path.exists() is False for a path with a NUL: creates ran the command, removes skipped it
    for option in ("creates", "removes"):
        result = run(argv=["false"], **{option: f"{tmp_path}/x\0y"})
        assert result["failed"] is True and "rc" not in result, result
        assert result["msg"].startswith(f"{option}: contains a NUL byte"), result


def test_a_user_namespace_with_root_mapped(run):
    result = run(argv=["sh", "-c", "id -u; cat /proc/self/uid_map"], namespaces=["user"], map_root_user=True)
    assert result["stdout_lines"][0] == "0"
    assert result["stdout_lines"][1].split() == ["0", str(os.geteuid()), "1"]


def test_a_join_target_that_does_not_exist_fails_before_anything_runs(run, tmp_path, dead_pid, elsewhere):
    """Not the host's namespaces instead (issue 11): the task fails naming the entry."""
    marker = tmp_path / "ran"
    uts = dict(path=elsewhere("uts"))
    for join, option in (([dict(pid=dead_pid)], "join[0].pid"),
                         ([dict(path="/nonexistent")], "join[0].path"),
                         ([uts, dict(pid=dead_pid, namespaces=["net"])], "join[1].pid")):
        result = run(argv=["touch", str(marker)], join=join)
        assert result["failed"] is True and result["msg"].startswith(option + ": ")
        assert not marker.exists()


def test_a_refused_setns_names_the_join_entry(run, elsewhere):
    """The child joins a user namespace first (join[1]), and holds no capability from there over the
    net namespace of join[0], owned by this host's user namespace: setns refuses it, and the message
    names join[0] although pyforkexec joined it second."""
    import pyforkexec as fe

    with fe.start_process("/bin/sleep", ["sleep", "60"], fe.ProcAttr(sys=fe.SysProcAttr(
            cloneflags=fe.CLONE_NEWNET))) as net:
        try:
            join = [dict(path=f"/proc/{net.pid}/ns/net"), dict(path=elsewhere("user"))]
            result = run(argv=["true"], join=join)
        finally:
            net.kill()
    assert result["child_error"]["location"] == "setns"
    assert result["msg"] == "join[0]: fork/exec /usr/bin/true: operation not permitted (at setns)"


def test_a_failing_step_names_the_option_that_asked_for_it(run):
    """A bind whose source the host lacks when the command starts: the child's mount step fails."""
    result = run(argv=["true"], namespaces=["user", "mount"], map_root_user=True, capabilities=dict(keep=[]),
                 mounts=[dict(source="/nonexistent-pfe-source", target="/mnt")])
    assert result["child_error"]["location"] == "mount"
    assert result["msg"].startswith("mounts[0]: fork/exec ")


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check mode"])
def test_mounts_the_program_could_undo_are_refused_with_the_librarys_rule(run, tmp_path, check_mode):
    """In a new user namespace, root there keeping CAP_SYS_ADMIN could remount a read-only bind
    read-write (the kernel does not lock mounts made there): refused before anything runs, with the
    library's message naming the option; keeping no capabilities, it runs."""
    marker = tmp_path / "ran"
    ro = [dict(source=str(tmp_path), target=str(tmp_path), flags=["ro"])]
    result = run(check_mode=check_mode, argv=["touch", str(marker)], namespaces=["user", "mount"],
                 map_root_user=True, capabilities=dict(keep=["CAP_SYS_ADMIN"]), mounts=ro)
    assert result["failed"] is True and result["msg"].startswith("mounts[0]: would not hold: "), result
    assert "drop CAP_SYS_ADMIN" in result["msg"] and not marker.exists()
    result = run(check_mode=check_mode, argv=["sh", "-c", f"mount -o remount,bind,rw {tmp_path} 2>/dev/null"
                                              " && echo undone || echo held"],
                 namespaces=["user", "mount"], map_root_user=True, capabilities=dict(keep=[]), mounts=ro)
    assert not result.get("failed"), result
    assert check_mode or result["stdout"].strip() == "held"


def test_a_spawn_that_would_always_fail_is_refused_naming_the_option(run):
    """unshare(CLONE_NEWUSER) of a process that already made a user namespace at clone (whose maps are
    never written: EPERM in the child) is refused before any process."""
    result = run(argv=["true"], namespaces=["user"], unshareflags=["CLONE_NEWUSER"],
                 uid_map=[dict(container_id=0, host_id=50000)], gid_map=[dict(container_id=0, host_id=50000)])
    assert "child_error" not in result
    assert result["msg"].startswith("unshareflags: CLONE_NEWUSER with CLONE_NEWUSER in cloneflags")


@pytest.mark.parametrize(("args", "option"), [
    (dict(credential=dict(uid=-5)), "credential.uid"),
    (dict(credential=dict(uid="\u0660")), "credential.uid"),  # another script's zero: no root
    (dict(credential=dict(uid=0, gid=0, groups=["\u0660"])), "credential.groups[0]"),
    (dict(credential=dict(uid="\u00b2")), "credential.uid"),
    (dict(seccomp=dict(deny=["mount"], errno="\u00b2")), "seccomp.errno"),
    (dict(credential=dict(uid=0, gid=2**32)), "credential.gid"),
    (dict(env={"A=B": "1"}), "env.A=B"),
    (dict(timeout=-1), "timeout"),
    (dict(timeout=float("inf")), "timeout"),
    (dict(timeout=float("nan")), "timeout"),
    (dict(timeout=1e300), "timeout"),  # beyond what run() (and Process.wait) accept
    (dict(argv=[]), "argv"),
])
def test_an_option_error_names_the_option_the_user_wrote(run, args, option):
    result = run(**{"argv": ["true"], **args})
    assert result["failed"] is True and result["msg"].startswith(option + ": ")


def test_an_empty_cmd_is_named_cmd(run):
    assert run(cmd=" ")["msg"] == "cmd: the command is empty"
    assert run(cmd="echo 'x")["msg"] == "cmd: No closing quotation (as a shell would split it)"


@pytest.mark.parametrize(("args", "option"), [
    (dict(netns=""), "netns"),
    (dict(join=[dict(path="")]), "join[0].path"),
    (dict(hostname="", namespaces=["uts"]), "hostname"),
    (dict(namespaces=["mount"], mounts=[dict(source="", target="/mnt")]), "mounts[0].source"),
    (dict(chdir=""), "chdir"),
    (dict(env=dict(TOKEN=None)), "env.TOKEN"),
    (dict(env=dict(TOKEN=[1, 2])), "env.TOKEN"),
])
@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check mode"])
def test_an_empty_value_is_refused_not_read_as_not_given(run, tmp_path, args, option, check_mode):
    """``netns: ""`` (a template whose variable came out empty) read as "no netns": the command ran in
    the host's network namespace, and the task succeeded. Every empty isolation value is refused naming
    its option, before anything runs; a null env value is no "None" string."""
    marker = tmp_path / "ran"
    result = run(check_mode=check_mode, argv=["touch", str(marker)], **args)
    assert result["failed"] is True and result["msg"].startswith(option + ": "), result
    assert not marker.exists()


@pytest.mark.parametrize("args", [
    dict(capabilities=dict(drop_all_others=False)),
    dict(capabilities=dict(drop_all_others=False, drop=[])),
    dict(seccomp={}),
    dict(landlock={}),
], ids=["capabilities", "capabilities drop []", "seccomp", "landlock"])
@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check mode"])
def test_a_restriction_that_restricts_nothing_is_refused(run, tmp_path, args, check_mode):
    """``capabilities: {drop_all_others: false}`` with no drop kept every capability and ran the
    command as though restricted, where ``seccomp: {}`` and ``landlock: {}`` were refused."""
    marker = tmp_path / "ran"
    result = run(check_mode=check_mode, argv=["touch", str(marker)], **args)
    option = next(iter(args))
    assert result.get("failed") is True and result["msg"].startswith(f"{option}: restricts nothing"), result
    assert not marker.exists()


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check mode"])
def test_groups_in_a_user_namespace_that_denies_setgroups_are_refused_first(run, tmp_path, check_mode):
    """credential.groups where the child's new user namespace denies setgroups (setgroups: deny, the
    default) failed only after the child existed (EPERM at setgroups); refused first, naming it. With
    setgroups allow they are set; without groups the credential runs as before."""
    marker = tmp_path / "ran"
    maps = dict(uid_map=[dict(container_id=0, host_id=0, size=10)],
                gid_map=[dict(container_id=0, host_id=0, size=10)])
    result = run(check_mode=check_mode, argv=["touch", str(marker)], namespaces=["user"],
                 credential=dict(uid=1, gid=1, groups=[5]), **maps)
    assert result.get("failed") is True, result
    assert result["msg"].startswith("credential.groups: cannot be set: the child's new user namespace denies "
                                    "setgroups"), result
    assert not marker.exists()
    if check_mode:
        return
    result = run(argv=["id", "-G"], namespaces=["user"], credential=dict(uid=1, gid=1, groups=[5]),
                 setgroups="allow", **maps)
    assert result.get("rc") == 0 and result["stdout"].split() == ["1", "5"], result
    result = run(argv=["id", "-u"], namespaces=["user"], credential=dict(uid=1, gid=1), **maps)
    assert result.get("rc") == 0 and result["stdout"].split() == ["1"], result


# ---- landlock (issue 13) -----------------------------------------------------------------------------

def _landlock_abi():
    import pyforkexec

    return pyforkexec.landlock_abi()


# The system's own files: enough to run the system's sh and python3.
SYSTEM_RULES = [dict(path=p, access=["read", "execute"]) for p in ("/usr", "/bin", "/lib", "/lib64", "/etc")
                if os.path.exists(p)]


@pytest.mark.skipif(_landlock_abi() < 1, reason="Landlock is not enabled on this kernel")
def test_a_landlock_policy_denies_a_write_beneath_a_read_only_rule(run, tmp_path):
    data, other = tmp_path / "data", tmp_path / "other"
    data.mkdir()
    other.mkdir()
    script = ('echo ok > "$1/written" && echo wrote; '
              'if echo no > "$2/written" 2>/dev/null; then echo "other writable"; '
              'else echo "other denied"; fi; cat "$2/../data/written"')
    policy = dict(paths=[*SYSTEM_RULES, dict(path=str(data), access=["read", "write"]),
                         dict(path=str(other), access=["read"])])
    result = run(argv=["sh", "-c", script, "sh", str(data), str(other)], landlock=policy)
    assert result["rc"] == 0, result
    # other/.. is tmp_path, beneath no rule: reading data/written through it is allowed by data's rule
    assert result["stdout_lines"] == ["wrote", "other denied", "ok"]
    assert not (other / "written").exists() and (data / "written").read_text() == "ok\n"
    assert result["landlock"]["abi"] == _landlock_abi() and result["landlock"]["enforced"] is True


@pytest.mark.skipif(_landlock_abi() < 1, reason="Landlock is not enabled on this kernel")
def test_a_read_outside_every_rule_is_refused_with_eacces(run, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s")
    code = ("import sys\ntry:\n    open(sys.argv[1]).read()\nexcept OSError as e:\n    print(e.errno)\n")
    result = run(argv=["/usr/bin/python3", "-c", code, str(secret)], landlock=dict(paths=SYSTEM_RULES))
    assert result["stdout"] == "13\n"  # EACCES


@pytest.mark.skipif(_landlock_abi() < 1, reason="Landlock is not enabled on this kernel")
@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check mode"])
def test_a_landlock_policy_that_denies_running_its_command_is_refused(run, tmp_path, check_mode):
    """A policy with no rule letting execve read and execute the command (here: /usr/bin holds no
    rule) passed check mode and failed at execve; refused now, check mode too, naming the option,
    before anything runs."""
    marker = tmp_path / "ran"
    policy = dict(paths=[dict(path="/usr/lib", access=["read", "execute"]),
                         dict(path=str(tmp_path), access=["read", "write"])])
    result = run(check_mode=check_mode, argv=["/usr/bin/touch", str(marker)], landlock=policy)
    assert result.get("failed") and result["msg"].startswith(
        'landlock: "/usr/bin/touch": permission denied: sys.landlock denies executing the program '
        "/usr/bin/touch: no rule allows execute and read_file on it"), result
    assert not marker.exists()


def test_best_effort_on_an_older_kernel_reports_and_warns(run, monkeypatch):
    from pyforkexec.sandbox.landlock import ABI_ENV

    monkeypatch.setenv(ABI_ENV, "2")
    if _landlock_abi() != 2:
        pytest.skip("this kernel's Landlock ABI is below 2")
    from ansible.module_utils.basic import AnsibleModule

    warned = []  # in-process, Ansible shows a module's warnings on the controller's display
    monkeypatch.setattr(AnsibleModule, "warn", lambda self, message, **kwargs: warned.append(message))
    result = run(argv=["true"], landlock=dict(paths=SYSTEM_RULES, ports=[dict(port=8080, access=["bind"])]))
    assert result["rc"] == 0
    assert result["landlock"]["dropped"] == [
        "landlock.ports[0].access: bind needs Landlock ABI 4, this kernel has 2",
        "landlock.paths: truncate needs Landlock ABI 3, this kernel has 2: it is not restricted anywhere",
        "landlock.paths: ioctl_dev needs Landlock ABI 5, this kernel has 2: it is not restricted anywhere"]
    assert len(warned) == 1 and "Landlock ABI 2" in warned[0] and "landlock.ports[0].access" in warned[0]


def test_strict_mode_fails_before_anything_runs_naming_the_right(run, tmp_path, monkeypatch):
    from pyforkexec.sandbox.landlock import ABI_ENV

    monkeypatch.setenv(ABI_ENV, "2")
    if _landlock_abi() != 2:
        pytest.skip("this kernel's Landlock ABI is below 2")
    marker = tmp_path / "ran"
    result = run(argv=["touch", str(marker)], landlock=dict(
        paths=[*SYSTEM_RULES, dict(path=str(tmp_path), access=["write"])], mode="strict"))
    assert result["failed"] is True and not marker.exists()
    assert result["msg"].startswith(
        f"landlock.paths[{len(SYSTEM_RULES)}].access: truncate needs Landlock ABI 3")


@pytest.fixture
def host_netns_name():
    """A /run/netns name bound to this host's own network namespace (a name that outlived its namespace
    and was bound again, by hand or by another tool), removed after."""
    if os.geteuid() != 0:
        pytest.skip("binding a namespace file needs root")
    name = f"pfe-ut-host-{os.getpid()}"
    path = os.path.join("/run/netns", name)
    os.makedirs("/run/netns", exist_ok=True)
    open(path, "w").close()
    try:
        assert os.system(f"mount --bind /proc/self/ns/net {path}") == 0
        yield name
    finally:
        os.system(f"umount {path} 2>/dev/null")
        os.unlink(path)


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check mode"])
def test_a_join_that_lands_in_the_hosts_own_namespace_is_refused(run, tmp_path, host_netns_name, check_mode):
    """Each way a join can name this host's own namespaces fails, naming the option, before anything
    runs (and check mode says so too): the command would otherwise run on the host, as if no join had
    been asked."""
    marker = tmp_path / "ran"
    with open("/dev/null") as f:  # any process of this host: all its namespaces are the host's
        import subprocess

        sleeper = subprocess.Popen(["sleep", "60"], stdin=f)
    try:
        cases = [(dict(netns=host_netns_name), f"netns: /run/netns/{host_netns_name} is this host's own "
                  "net namespace"),
                 (dict(join=[dict(path="/proc/self/ns/net")]), "join[0].path: /proc/self/ns/net is this "
                  "host's own net namespace"),
                 (dict(join=[dict(pid=sleeper.pid, namespaces=["uts"])]), f"join[0].namespaces: "
                  f"/proc/{sleeper.pid}/ns/uts is this host's own uts namespace"),
                 (dict(join=[dict(pid=sleeper.pid)]), f"join[0].pid: process {sleeper.pid} is in this "
                  "host's namespaces: nothing to join")]
        for options, message in cases:
            result = run(check_mode=check_mode, argv=["touch", str(marker)], **options)
            assert result.get("failed") is True and result["msg"].startswith(message), (options, result)
            assert not marker.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check mode"])
def test_two_joins_of_one_type_that_name_different_namespaces_are_refused(run, tmp_path, check_mode):
    """Two entries (netns or join) that join different namespaces of one type: the command ran in the
    last one joined alone (setns to it left the first), the earlier entry's join not holding, and check
    mode said "would run". Refused now naming the later entry, before anything runs; the same namespace
    named twice still runs."""
    if os.geteuid() != 0:
        pytest.skip("joining another process's namespaces needs root")
    import subprocess

    marker = tmp_path / "ran"
    holders = [subprocess.Popen(["unshare", "--net", "--uts", "sleep", "60"]) for _holder in range(2)]
    try:
        a, b = (holder.pid for holder in holders)
        for pid in (a, b):  # (unshare execs sleep once its namespaces are made)
            while os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net"):
                time.sleep(0.01)
        cases = [(dict(join=[dict(path=f"/proc/{a}/ns/net"), dict(path=f"/proc/{b}/ns/net")]),
                  f"join[1]: joins another net namespace (/proc/{b}/ns/net) than join[0] does"),
                 (dict(join=[dict(pid=a), dict(path=f"/proc/{b}/ns/uts")]),
                  f"join[1]: joins another uts namespace (/proc/{b}/ns/uts) than join[0] does"),
                 (dict(join=[dict(pid=a), dict(pid=b)]), "join[1]: joins another net namespace")]
        for options, message in cases:
            result = run(check_mode=check_mode, argv=["touch", str(marker)], **options)
            assert result.get("failed") is True and result["msg"].startswith(message), (options, result)
            assert not marker.exists()
        same = run(check_mode=check_mode, argv=["touch", str(marker)],
                   join=[dict(pid=a), dict(path=f"/proc/{a}/ns/net")])
        assert not same.get("failed"), same
        assert marker.exists() is not check_mode
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check mode"])
def test_a_credential_the_new_user_namespace_does_not_map_is_refused_before_anything_runs(run, tmp_path,
                                                                                          check_mode):
    """credential.uid outside uid_map (root of the namespace is 0 here, uid 1 has no mapping): the kernel
    refuses it at the child's setuid, so the run could never succeed, and check mode said "would run".
    Refused now naming the option, in check mode too (pyforkexec's spec check: needs its fix)."""
    marker = tmp_path / "ran"
    one = [dict(container_id=0, host_id=65534, size=1)]
    result = run(check_mode=check_mode, argv=["touch", str(marker)], namespaces=["user"], uid_map=one,
                 gid_map=one, credential=dict(uid=1, gid=0, no_setgroups=True))
    assert result.get("failed") is True, result
    assert result["msg"].startswith("credential.uid: 1 is not an id of the child's new user namespace "
                                    "(CLONE_NEWUSER): its uid map does not map it"), result["msg"]
    assert "child_error" not in result and not marker.exists()


def _root_controllers():
    from pyforkexec.sandbox import cgroup

    try:
        with open(os.path.join(cgroup.find_cgroup2(), "cgroup.controllers")) as f:
            return set(f.read().split())
    except (OSError, cgroup.CgroupError):
        return None


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check mode"])
def test_a_cgroup_limit_this_host_cannot_enforce_fails_before_anything_runs(run, tmp_path, check_mode):
    """A memory limit where the host's cgroup2 offers no memory controller (a hybrid cgroup v1/v2
    host): refused naming the option, in check mode too, instead of "every option validated"."""
    controllers = _root_controllers()
    if controllers is None or "memory" in controllers:
        pytest.skip("this host's cgroup2 root offers the memory controller (or there is no cgroup2): "
                    "nothing to refuse")
    marker = tmp_path / "ran"
    result = run(check_mode=check_mode, argv=["touch", str(marker)], cgroup=dict(memory_max="64M"))
    assert result.get("failed") is True, result
    assert result["msg"].startswith("cgroup: the memory controller is not available in "), result["msg"]
    assert not marker.exists()


@pytest.mark.parametrize(("value", "says"), [
    ("0.5%", "0.5% is below 1%"), ("0%", "0% is below 1%"), ("-5%", "expected 'max'"),
    ("nan%", "expected 'max'"), ("inf%", "expected 'max'"), ("1e400%", "expected 'max'"),
    ("\u0661\u0660%", "expected 'max'"), ("1_0%", "expected 'max'"),
])
def test_a_cpu_percentage_is_refused_unless_the_kernel_sets_it_as_written(run, tmp_path, value, says):
    """A percentage below 1% was raised to 1% (0.5% ran with twice the CPU asked), a negative one too,
    "nan%" and "inf%" ended the module with a Python error, and float() took "1_0" and Arabic-Indic
    digits: each now fails the module naming cgroup.cpu_max, before anything runs."""
    marker = tmp_path / "ran"
    for check_mode in (True, False):
        result = run(check_mode=check_mode, argv=["touch", str(marker)], cgroup=dict(cpu_max=value))
        assert result.get("failed") is True, result
        assert result["msg"].startswith(f"cgroup.cpu_max: {says}"), result["msg"]
        assert not marker.exists()


@pytest.mark.parametrize(("option", "value", "says"), [
    ("pids_max", 1.5, "expected bytes as an integer"), ("pids_max", "2.5", "2.5 is not a whole number"),
    ("memory_max", "1.7K", "1.7K is not a whole number"),
    ("memory_swap_max", 0.5, "expected bytes as an integer"),
])
def test_a_size_that_is_no_whole_number_is_refused_not_rounded(run, tmp_path, option, value, says):
    """human_to_bytes rounded a fraction: pids_max 1.5 (or "2.5") ran with 2 (3) processes allowed, more
    than asked; "1.7K" became 1741 bytes. Refused now, naming the option, before anything runs."""
    marker = tmp_path / "ran"
    for check_mode in (True, False):
        result = run(check_mode=check_mode, argv=["touch", str(marker)], cgroup={option: value})
        assert result.get("failed") is True, result
        assert result["msg"].startswith(f"cgroup.{option}: {says}"), result["msg"]
        assert not marker.exists()


@pytest.mark.parametrize(("args", "option"), [
    (dict(argv=["/nonexistent/pfe-prog"]), "argv"),
    (dict(argv=["true"], chdir="/nonexistent/pfe-dir"), "chdir"),
])
def test_check_mode_foresees_what_the_start_would_find_missing(run, args, option):
    """Check mode said "would run" for a program or working directory that is not there; the run then
    failed."""
    checked, real = run(check_mode=True, **args), run(**args)
    assert checked["failed"] is True and real["failed"] is True, (checked, real)
    assert checked["msg"].startswith(f"{option}: "), checked["msg"]


def test_a_nofile_limit_below_the_set_up_fds_limits_only_the_program(run):
    """RLIMIT_NOFILE 1 was validated by check mode, then the run failed at the fd passes naming proc.files
    (no option of the module): it is set after them, and /bin/true's loader finds no fd for libc."""
    args = dict(argv=["/bin/true"], rlimits=dict(nofile=dict(soft=1, hard=1)))
    assert run(check_mode=True, **args).get("failed") is not True
    result = run(**args)
    assert result.get("failed") is not True or "proc.files" not in result["msg"], result
    assert result["rc"] == 127 and "libc" in result["stderr"], result


@pytest.fixture
def named_netns(unique_name):
    """The path of a network namespace made for the test in /run/netns (removed after)."""
    import subprocess

    name = unique_name()
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)


@pytest.mark.parametrize("args", [dict(namespaces=["net"]), dict(cloneflags=["newnet"])],
                         ids=["namespaces", "cloneflags"])
@pytest.mark.parametrize("where", ["proc", "run-netns"])
@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check mode"])
def test_a_join_of_a_network_namespace_with_a_new_one_is_refused_in_check_mode_too(
        run, tmp_path, elsewhere, named_netns, args, where, check_mode):
    """Check mode said "would run (check mode): every option validated" for a join of a network
    namespace with a new one asked too, which the run refuses: its host checks left out every
    network namespace join, not only those of the netns option."""
    marker = tmp_path / "ran"
    path = elsewhere("net") if where == "proc" else named_netns
    result = run(check_mode=check_mode, argv=["touch", str(marker)], join=[dict(path=path)], **args)
    assert result.get("failed") is True, result
    rule = "join[0]: joins a namespace of a type cloneflags creates (CLONE_NEWNET)"
    assert result["msg"].startswith(rule), result["msg"]
    assert not marker.exists()


# Inside a PID namespace of its own (PID 1 there): the module's run() of a command with a timeout, which
# kills the command's process group. pyforkexec's reap of the command is the real one; right after it,
# the next fork gets the command's pid (ns_last_pid, in this namespace only) and makes a session of its
# own: a bystander whose group has the id the command's group had.
_GROUP_AFTER_TIMEOUT = r"""
import json
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.pyforkexec.isolation.plugins.module_utils import forkexec as fx
from pid_reuse import bystander_on, killed
from pyforkexec import process

reap, seen = process.Process._reap, {}

def steered(self, options):
    code = reap(self, options)
    if code is not None and not seen:
        seen["command"] = self.pid
        seen["bystander"] = bystander_on(self.pid, session=True)
    return code

process.Process._reap = steered
params = ArgumentSpecValidator(fx.ARGSPEC, mutually_exclusive=fx.MUTUALLY_EXCLUSIVE).validate(
    dict(argv=["sleep", "600"], timeout=0.2)).validated_parameters
try:
    fx.run(params, False)
    failed = None
except fx.Failure as e:
    failed = e.msg
timed_out = failed is not None and failed.startswith("the command did not exit")
print(json.dumps({"timed_out": timed_out, "reused": seen["bystander"] == seen["command"],
                  "bystander_alive": not killed(seen["bystander"])}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a PID namespace whose next pid it steers")
def test_a_timeout_s_group_kill_never_reaches_a_group_that_reused_the_command_s_id(in_pid_namespace):
    """On a timeout the module SIGKILLed the command's process group by the command's pid, after
    pyforkexec's run() had killed and reaped the command: the number was free by then, and a process
    given it that had made a session of its own was killed with its group. run() kills the group
    now (kill_group), before the reap."""
    answer = in_pid_namespace(_GROUP_AFTER_TIMEOUT)
    assert answer == {"timed_out": True, "reused": True, "bystander_alive": True}
