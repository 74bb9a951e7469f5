"""namespace_info names the option whose target is no namespace (issue 11)."""

from __future__ import annotations

import os

import pytest
from ansible_collections.pyforkexec.isolation.plugins.modules import namespace_info


def test_namespace_info_of_a_netns_name_whose_namespace_is_gone(run_module, unique_name):
    """A file in /run/netns that is not a namespace (its mount went away) is no network namespace."""
    name = unique_name()
    os.makedirs("/run/netns", exist_ok=True)
    path = f"/run/netns/{name}"
    open(path, "w").close()
    try:
        result = run_module(namespace_info, dict(netns=name, net=False))
    finally:
        os.unlink(path)
    assert result["failed"] is True and result["msg"].startswith(f"netns: {path} is not a namespace")


def test_landlock_status_says_what_is_observable_of_a_process(run_module):
    """The kernel shows no process's Landlock domain: namespace_info says so, with what it can see
    (NoNewPrivs, which pyforkexec sets with a policy, and the kernel's ABI); a pid has no spec document."""
    import pyforkexec as fe

    if fe.landlock_abi() < 1:
        pytest.skip("Landlock is not enabled on this kernel")
    policy = fe.Landlock(paths=[fe.LandlockPath(p, ["read", "execute"]) for p in ("/usr", "/lib", "/lib64")
                                if os.path.exists(p)])
    confined = fe.start_process("/bin/sleep", ["sleep", "60"],
                                fe.ProcAttr(sys=fe.SysProcAttr(landlock=policy)))
    free = fe.start_process("/bin/sleep", ["sleep", "60"], fe.ProcAttr())
    try:
        seen = {p.pid: run_module(namespace_info, dict(pid=p.pid, net=False))["landlock"]
                for p in (confined, free)}
    finally:
        for p in (confined, free):
            p.kill()
            p.wait()
    assert seen[confined.pid] == dict(observable=False, abi=fe.landlock_abi(), no_new_privs=True, policy=None)
    assert seen[free.pid]["no_new_privs"] is False


def test_landlock_status_of_a_service_is_its_spec_document_policy(tmp_path, monkeypatch):
    """For a service, the policy of its spec document and what this kernel enforces of it; a document
    written after the process started is flagged."""
    import json
    import time

    from ansible_collections.pyforkexec.isolation.plugins.module_utils import landlock_status
    from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths

    import pyforkexec as fe

    monkeypatch.setattr(paths, "SPEC_DIR", str(tmp_path))  # where the module finds the documents
    policy = fe.Landlock(paths=[fe.LandlockPath("/usr", ["read", "execute"])],
                         ports=[fe.LandlockPort(8080, ["bind"])])
    doc = fe.spec.dump(None, ["/bin/sleep", "60"], fe.ProcAttr(sys=fe.SysProcAttr(landlock=policy)))
    (tmp_path / "pfe-ut.json").write_text(json.dumps(doc))
    time.sleep(0.05)
    with fe.start_process("/bin/sleep", ["sleep", "60"], fe.ProcAttr()) as proc:
        try:
            before = landlock_status.status(proc.pid, "pfe-ut")
            time.sleep(0.05)
            (tmp_path / "pfe-ut.json").write_text(json.dumps(doc))
            after = landlock_status.status(proc.pid, "pfe-ut")
        finally:
            proc.kill()
    assert before["policy"] == dict(paths=[dict(path="/usr", access=["read", "execute"])],
                                    ports=[dict(port=8080, access=["bind"])], scopes=[], mode="best_effort")
    assert before["spec_newer_than_process"] is False and after["spec_newer_than_process"] is True
    assert before["dropped"] == ([] if fe.landlock_abi() >= 4 else [
        f"landlock.ports[0].access: bind needs Landlock ABI 4, this kernel has {fe.landlock_abi()}"])


@pytest.mark.parametrize("pid", [0, -1])
def test_a_pid_that_is_no_process_id_is_named_as_the_pid(run_module, pid):
    result = run_module(namespace_info, dict(pid=pid, net=False))
    assert result["failed"] is True and result["msg"] == f"pid: {pid} is not a process id (1 or more)"


def test_a_pid_above_pid_max_is_named_as_the_pid(run_module):
    result = run_module(namespace_info, dict(pid=999999999, net=False))
    assert result["failed"] is True
    assert result["msg"].startswith("pid: 999999999 is not a process id (at most "), result["msg"]


@pytest.mark.parametrize("name", ["../x", "", "123", "a b"])
def test_a_bad_service_name_is_named_as_the_service(run_module, name):
    result = run_module(namespace_info, dict(service=name, net=False))
    assert result["failed"] is True
    assert result["msg"].startswith(f"service: {name!r} is not a valid service name"), result["msg"]


@pytest.mark.parametrize(("name", "error"), [
    ("", "netns: is empty: give the name of a network namespace of /run/netns"),
    ("../netns/x", "netns: '../netns/x' is not the name of an entry of /run/netns (it has a '/'"),
    ("..", "netns: '..' is not the name of an entry of /run/netns"),
    ("a/b", "netns: 'a/b' is not the name of an entry of /run/netns"),
])
def test_a_netns_that_is_no_name_of_run_netns_is_refused(run_module, name, error):
    result = run_module(namespace_info, dict(netns=name, net=False))
    assert result["failed"] is True and result["msg"].startswith(error), result["msg"]


def _state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_a_process_that_ended_is_named_not_shown_as_a_traceback(run_module):
    """A zombie (or a process that ends while it is read) has no namespaces left: the message was the
    helper process's Python traceback."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        while _state(pid) != "Z":
            pass
        result = run_module(namespace_info, dict(pid=pid, net=False))
    finally:
        os.waitpid(pid, 0)
    assert result["failed"] is True
    assert result["msg"].startswith(f"pid: process {pid} has ended, its namespaces are gone"), result["msg"]
    assert "Traceback" not in result["msg"]


@pytest.mark.parametrize("given", ["pid", "service", "netns"])
def test_a_target_given_as_null_is_no_target(run_module, given):
    """Ansible's required_one_of takes an option given as null (a variable that came out null) as
    given: netns: null was read as a service named None, and named the service option."""
    result = run_module(namespace_info, {given: None, "net": False})
    assert result["failed"] is True
    assert result["msg"] == "pid, service or netns: one of them is needed, with a value (null is none)"


def _forked_then_exec(after):
    """A child of this process still running this program (as a launcher's child is before its execve);
    it execs sleep after ``after`` seconds (never, for None). Its pid, and a function that ends it."""
    import signal
    import time

    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            if after is None:
                time.sleep(60)
            else:
                time.sleep(after)
                os.execv("/bin/sleep", ["sleep", "60"])
        finally:
            os._exit(0)

    def end():
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)

    return pid, end


def test_a_service_process_still_being_set_up_is_described_once_it_runs_its_program():
    """Looked up just after a restart, a service's process may still be its daemon's copy being set up,
    not yet with the service's hostname (the molecule scenario read the host's, once under load):
    it is described once it has executed its program."""
    import time

    pid, end = _forked_then_exec(0.3)
    try:
        began = time.monotonic()
        namespace_info.wait_for_its_program(pid, "service")
        assert time.monotonic() - began >= 0.25
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert f.read().split(b"\0")[0] == b"sleep"
    finally:
        end()


def test_a_service_process_that_never_runs_its_program_fails_the_task(monkeypatch):
    monkeypatch.setattr(namespace_info, "SETTING_UP_WAIT", 0.3)
    pid, end = _forked_then_exec(None)
    try:
        with pytest.raises(namespace_info.paths.ServiceError, match=f"service: process {pid} has not"):
            namespace_info.wait_for_its_program(pid, "service")
    finally:
        end()
    with pytest.raises(namespace_info.paths.ServiceError, match=f"service: .*{pid}"):  # ended: named
        namespace_info.wait_for_its_program(pid, "service")


# As PID 1 of a PID namespace that kept the host's /proc (as a container may): namespace_info of a child
# in a UTS namespace of its own, given by its pid there.
_INFO_WITH_THE_HOST_S_PROC = r"""
import contextlib, io, json, os, subprocess
from ansible.module_utils.testing import patch_module_args
from ansible_collections.pyforkexec.isolation.plugins.modules import namespace_info
proc = subprocess.Popen(["unshare", "--uts", "sh", "-c", "hostname h128-info && echo ready && exec sleep 60"],
                        stdout=subprocess.PIPE)
proc.stdout.readline()
out = io.StringIO()
with patch_module_args(dict(pid=proc.pid, net=False)), contextlib.redirect_stdout(out):
    with contextlib.suppress(SystemExit):
        namespace_info.main()
proc.kill()
proc.wait()
result = json.loads(out.getvalue())
print(json.dumps({"pid": os.getpid(), "self": os.readlink("/proc/self"), "child": proc.pid,
                  "result": {k: result.get(k) for k in ("msg", "pid", "hostname")},
                  "uts_own": result.get("namespaces", {}).get("uts", {}).get("same_as_host") is False}))
"""


def test_a_process_is_described_by_its_pid_where_proc_is_another_pid_namespace_s(in_pid_namespace):
    """The pid (this namespace's, as kill takes it) was read in /proc, the host's, where it numbers
    another process: that one was described (the host's kthreadd, for a child pid 2)."""
    answer = in_pid_namespace(_INFO_WITH_THE_HOST_S_PROC, mount_proc=False)
    assert answer["pid"] == 1 and answer["self"] != "1"  # the case: /proc is not the namespace's
    assert answer["result"] == {"msg": None, "pid": answer["child"], "hostname": "h128-info"}
    assert answer["uts_own"]


# As PID 1 of a PID namespace of its own (its /proc): namespace_info of a child in UTS and network
# namespaces of its own, which ends right after its hostname was read, its pid going to a sleeper in
# the host's namespaces (pid_reuse.bystander_on) before the rest (cgroup, network view) is read.
_INFO_OF_A_PID_REUSED_MID_CALL = r"""
import contextlib, io, json, subprocess
import pyforkexec.nsinfo as nsinfo
from ansible.module_utils.testing import patch_module_args
from ansible_collections.pyforkexec.isolation.plugins.modules import namespace_info
from pid_reuse import bystander_on

proc = subprocess.Popen(["unshare", "--uts", "--net", "sh", "-c",
                         "hostname h151-info && echo ready && exec sleep 60"], stdout=subprocess.PIPE)
proc.stdout.readline()
read_hostname, seen = nsinfo.hostname, {}

def then_reused(pid):
    name = read_hostname(pid)
    if not seen:
        proc.kill()
        proc.wait()
        seen["bystander"] = bystander_on(proc.pid)
    return name

nsinfo.hostname = then_reused
out = io.StringIO()
with patch_module_args(dict(pid=proc.pid, net=True)), contextlib.redirect_stdout(out):
    with contextlib.suppress(SystemExit):
        namespace_info.main()
result = json.loads(out.getvalue())
print(json.dumps({"reused": seen["bystander"] == proc.pid, "pid": proc.pid,
                  "failed": result.get("failed", False), "msg": result.get("msg")}))
"""


def test_a_process_that_ends_mid_call_and_whose_pid_is_reused_is_not_described(in_pid_namespace):
    """The facts were read from /proc by number, one after the other: a process that ended between
    two reads, its pid given to another process, was described as a mix of both (its own hostname and
    UTS namespace, the newcomer's network, the host's links). The process is pinned by a pidfd while it
    is described; if it ended meanwhile the task fails, naming it."""
    for _attempt in range(5):  # (the next fork takes the freed number almost always: the premise)
        answer = in_pid_namespace(_INFO_OF_A_PID_REUSED_MID_CALL)
        if answer["reused"]:
            break
    assert answer["reused"]
    assert answer["failed"] is True, answer
    said = f"pid: process {answer['pid']} ended while it was described"
    assert answer["msg"].startswith(said), answer["msg"]


def test_a_process_that_ends_before_its_landlock_status_is_read_is_named(run_module, monkeypatch):
    """Ended after its network view was read, before its NoNewPrivs was: the message was a bare
    "[Errno 2] No such file or directory: '/proc/N/status'", naming no option."""
    import subprocess

    from ansible_collections.pyforkexec.isolation.plugins.module_utils import landlock_status

    proc = subprocess.Popen(["unshare", "--uts", "sh", "-c", "echo ready && exec sleep 60"],
                            stdout=subprocess.PIPE)
    proc.stdout.readline()
    status = landlock_status.status

    def after_its_end(*args):
        proc.kill()
        proc.wait()
        return status(*args)

    monkeypatch.setattr(landlock_status, "status", after_its_end)
    try:
        result = run_module(namespace_info, dict(pid=proc.pid, net=False))
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait()
    assert result["failed"] is True
    assert result["msg"].startswith(f"pid: process {proc.pid} "), result["msg"]


def test_a_thread_s_id_is_refused_naming_its_process(run_module, thread_id):
    """A thread's id was described as a process (its own namespaces, which may differ from its
    process's: a thread may join a network namespace alone); now refused, naming the process."""
    result = run_module(namespace_info, dict(pid=thread_id, net=False))
    assert result["failed"] is True
    assert result["msg"] == (f"pid: {thread_id} is the id of a thread of process {os.getpid()}, not of a "
                             "process: give the process's pid")


def test_a_process_whose_main_thread_exited_is_not_said_to_have_ended(run_module, main_thread_gone):
    result = run_module(namespace_info, dict(pid=main_thread_gone, net=False))
    assert result["failed"] is True
    assert result["msg"] == (f"pid: process {main_thread_gone}: its main thread has exited (its other "
                             "threads run on), and the kernel shows its namespaces no more")


def test_a_service_s_process_whose_main_thread_exited_is_not_said_to_have_ended(main_thread_gone):
    """The same for a service's process (looked up, then checked to have started its program): its
    zombie state in /proc was read as its end."""
    with pytest.raises(namespace_info.paths.ServiceError) as failed:
        namespace_info.describe_process(main_thread_gone, "service", "web", False,
                                        confirm=lambda: main_thread_gone)
    assert str(failed.value) == (f"service: process {main_thread_gone}: its main thread has exited (its "
                                 "other threads run on), and the kernel shows its namespaces no more")


def test_a_netns_name_made_again_while_it_is_described_is_described_as_one_namespace(
        run_module, monkeypatch, unique_name):
    """The name was read three times (its type, its inode, then its links): removed and made again
    between the inode and the links (ip netns delete, add), it gave one namespace's inode and the
    other's links. It is opened once and read through that."""
    import subprocess

    from ansible_collections.pyforkexec.isolation.plugins.module_utils import deps

    name = unique_name()
    subprocess.run(["ip", "netns", "add", name], check=True)
    kernel = deps.pyforkexec.netns.kernel
    view = kernel.net_view_of

    def made_again(path):
        subprocess.run(["ip", "netns", "delete", name], check=True)
        subprocess.run(["ip", "netns", "add", name], check=True)
        subprocess.run(["ip", "-n", name, "link", "add", "h151a", "type", "veth", "peer", "name", "h151b"],
                       check=True)
        return view(path)

    monkeypatch.setattr(kernel, "net_view_of", made_again)
    try:
        first = os.stat(f"/run/netns/{name}").st_ino
        result = run_module(namespace_info, dict(netns=name))
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)
    assert result["namespaces"]["net"]["inode"] == first
    assert sorted(result["net"]["links"]) == ["lo"], result["net"]["links"]


# As PID 1 of a PID namespace of its own: namespace_info of a service whose process (a child in a UTS
# namespace of its own) ends right after it was looked up, its pid going to a program of the host's
# namespaces (started with ns_last_pid steered), and the service's new process found by a second look-up.
_INFO_OF_A_SERVICE_WHOSE_PID_IS_REUSED = r"""
import contextlib, io, json, subprocess
from ansible.module_utils.testing import patch_module_args
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths
from ansible_collections.pyforkexec.isolation.plugins.modules import namespace_info

def uts_child():
    proc = subprocess.Popen(["unshare", "--uts", "sh", "-c",
                             "hostname h151-svc && echo ready && exec sleep 60"], stdout=subprocess.PIPE)
    proc.stdout.readline()
    return proc

old, new, seen = uts_child(), uts_child(), {}

def looked_up(target, manager="auto", run=None):
    if seen:
        return new.pid
    old.kill()
    old.wait()
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(old.pid - 1))
    seen["bystander"] = subprocess.Popen(["sleep", "60"]).pid
    return old.pid

service_paths.resolve_pid = looked_up
out = io.StringIO()
with patch_module_args(dict(service="h151-svc", net=False)), contextlib.redirect_stdout(out):
    with contextlib.suppress(SystemExit):
        namespace_info.main()
result = json.loads(out.getvalue())
print(json.dumps({"reused": seen["bystander"] == old.pid, "pid": old.pid,
                  "failed": result.get("failed", False), "msg": result.get("msg"),
                  "hostname": result.get("hostname")}))
"""


def test_a_service_whose_pid_goes_to_another_process_before_it_is_pinned_is_not_described(in_pid_namespace):
    """A service's process was looked up, then pinned: one that ended between the two, its number
    given to another program, was described as the service (the host's hostname). It is looked up
    again once pinned, as the nsenter connection does."""
    for _attempt in range(5):
        answer = in_pid_namespace(_INFO_OF_A_SERVICE_WHOSE_PID_IS_REUSED)
        if answer["reused"]:
            break
    assert answer["reused"]
    assert answer["failed"] is True, answer
    assert answer["msg"].startswith(f"service: process {answer['pid']} ended while it was looked up")


# Under a seccomp filter refusing landlock_create_ruleset with EPERM (a container's): namespace_info of
# this process, and the Landlock report of a policy, as JSON.
_LANDLOCK_REFUSED = r"""
import contextlib, io, json, os
from ansible.module_utils.testing import patch_module_args
from ansible_collections.pyforkexec.isolation.plugins.module_utils import isolation
from ansible_collections.pyforkexec.isolation.plugins.modules import namespace_info
import pyforkexec as fe
out = io.StringIO()
with patch_module_args(dict(pid=os.getpid(), net=False)), contextlib.redirect_stdout(out):
    with contextlib.suppress(SystemExit):
        namespace_info.main()
result = json.loads(out.getvalue())
try:
    report = isolation.landlock_report(fe.Landlock(paths=[fe.LandlockPath("/usr", ["read_file"])]))
except isolation.IsolationError as e:
    report = f"IsolationError: {e}"
print(json.dumps({"msg": result.get("msg"), "abi": result.get("landlock", {}).get("abi", "absent"),
                  "report": report}))
"""


def test_a_landlock_abi_this_process_may_not_read_is_unknown_not_0(child_env):
    """Under a seccomp filter that refuses landlock_create_ruleset (EPERM: not "no Landlock"), the
    library raises rather than say ABI 0 (a best-effort policy would restrict nothing): namespace_info
    said nothing then (a traceback) of any process; it says abi null now, and a policy's report names
    the option."""
    import errno
    import json
    import sys

    import pyforkexec as fe

    deny = fe.SeccompFilter(default_action="allow", deny=["landlock_create_ruleset"], errno=errno.EPERM)
    got = fe.run([sys.executable, "-c", _LANDLOCK_REFUSED], sys=fe.SysProcAttr(seccomp=deny), env=child_env,
                 capture_output=True, text=True)
    assert got.returncode == 0, got.stderr
    answer = json.loads(got.stdout)
    assert answer["msg"] is None and answer["abi"] is None
    assert answer["report"].startswith("IsolationError: landlock: Landlock's ABI version cannot be read "
                                       "(landlock_create_ruleset: Operation not permitted"), answer["report"]


def test_each_namespace_is_told_by_the_kernel_s_id_and_the_process_by_its_start(run_module, unique_name):
    """The inode number of a namespace is given to the next one made once it is freed: a caller that
    pins a later join by what namespace_info said needs what is never given again, the kernel's id of
    the namespace and the process's start time (SetNS.ns_id and .process_start)."""
    import subprocess

    import pyforkexec as fe
    from pyforkexec import ns_pins

    proc = fe.start_process("/bin/sleep", ["sleep", "60"], fe.ProcAttr(sys=fe.SysProcAttr(
        cloneflags=fe.CLONE_NEWUTS | fe.CLONE_NEWNET)))
    name = unique_name()
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        seen = run_module(namespace_info, dict(pid=proc.pid, net=False))
        named = run_module(namespace_info, dict(netns=name, net=False))
        ids = {kind: ns_pins.ns_id_of(f"/proc/{proc.pid}/ns/{kind}") for kind in ("uts", "net", "mnt")}
        named_id = ns_pins.ns_id_of(f"/run/netns/{name}")
        started = ns_pins.process_start(str(proc.pid))
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)
        proc.kill()
        proc.wait()
    assert {kind: seen["namespaces"][kind]["id"] for kind in ("uts", "net", "mount")} == \
        {"uts": ids["uts"], "net": ids["net"], "mount": ids["mnt"]}
    assert seen["process_start"] == started
    assert named["namespaces"]["net"]["id"] == named_id and named["process_start"] is None
    if named_id is not None:  # (a kernel with namespace ids: Linux 6.18)
        assert len({ids["uts"], ids["net"], named_id}) == 3
