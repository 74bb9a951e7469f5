"""``pyforkexec exec --spec``: the service launcher, and the spec documents (pyforkexec.spec)."""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.cli import PYFORKEXEC, Background, counted, ns_link, pfe, run, util_linux, wait_for
from helpers.forked import NOBODY
from helpers.marks import needs_root

from pyforkexec import (
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    ChildError,
    Credential,
    ProcAttr,
    SetNS,
    SysProcAttr,
    SysProcIDMap,
    landlock_abi,
    spec,
    start_process,
)
from pyforkexec.sandbox.cgroup import CgroupError, find_cgroup2

pytestmark = needs_root
ENV = ["PATH=/usr/bin:/bin"]


def write(tmp_path: Path, doc: object, name: str = "spec.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc) if name.endswith(".json") else str(doc))
    return str(path)


def doc(argv: list[str], **sys: object) -> dict:
    d: dict = {"version": 1, "argv": argv, "proc": {"env": ENV}}
    if sys:
        d["sys"] = sys
    return d


def test_runs_a_namespaced_process(tmp_path: Path) -> None:
    path = write(tmp_path, doc(["sh", "-c", "readlink /proc/self/ns/uts; id -u; cat /proc/self/uid_map"],
                               cloneflags=["CLONE_NEWUTS", "newuser"], uid_mappings=[[0, 0, 1]],
                               gid_mappings=[{"container_id": 0, "host_id": 0, "size": 1}]))
    res = pfe("exec", "--spec", path)
    assert res.returncode == 0, res.stderr
    uts, uid, uid_map = res.stdout.splitlines()
    assert uts != ns_link("uts")
    assert uid == "0" and uid_map.split() == ["0", "0", "1"]


def test_yaml_and_stdin(tmp_path: Path) -> None:
    text = "version: 1\nargv: [sh, -c, 'echo $0 $1', yaml, doc]\nsys:\n  cloneflags: newuts|newpid\n"
    assert pfe("exec", "--spec", write(tmp_path, text, "s.yaml")).stdout == "yaml doc\n"
    assert pfe("exec", "--spec", "-", input=text).stdout == "yaml doc\n"
    assert pfe("exec", "--spec", "-", input=json.dumps(doc(["echo", "json"]))).stdout == "json\n"


def test_extra_arguments_are_appended(tmp_path: Path) -> None:
    path = write(tmp_path, doc(["echo", "a"]))
    assert pfe("exec", "--spec", path, "--", "b", "c").stdout == "a b c\n"


def test_environment_is_inherited_when_absent(tmp_path: Path) -> None:
    path = write(tmp_path, {"version": 1, "argv": ["sh", "-c", 'echo "$MARK"']})
    assert pfe("exec", "--spec", path, env={**os.environ, "MARK": "inherited"}).stdout == "inherited\n"


def test_check_prints_ok_and_starts_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = write(tmp_path, doc(["touch", str(marker)], cloneflags=CLONE_NEWUTS))
    res = pfe("exec", "--spec", path, "--check")
    assert (res.returncode, res.stdout) == (0, "OK\n")
    assert not marker.exists()


@pytest.mark.parametrize("bad,message", [
    ({"sys": {"cloneflagz": 1}}, "spec: sys.cloneflagz: unknown field (did you mean cloneflags?)"),
    ({"sys": {"uid_mappings": [{"container_id": 0, "host_id": 0, "size": "one"}]}},
     'spec: sys.uid_mappings[0].size: expected an integer, got the string "one"'),
    ({"sys": {"uid_mappings": [{"container_id": 0, "host_id": 0}]}},
     "spec: sys.uid_mappings[0].size: missing (a required field)"),
    ({"sys": {"setsid": 1}}, "spec: sys.setsid: expected a boolean, got an integer"),
    ({"sys": {"cloneflags": ["CLONE_NEWFOO"]}}, "spec: sys.cloneflags: "),
    ({"sys": {"pdeathsig": "SIGNOPE"}}, "spec: sys.pdeathsig: unknown signal 'SIGNOPE'"),
    ({"sys": {"credential": {"uid": 0, "gid": 0, "grups": []}}},
     "spec: sys.credential.grups: unknown field (did you mean groups?)"),
    ({"sys": {"uid_mappings": [[0, 0, 1]]}}, "spec: sys.uid_mappings: id mappings need CLONE_NEWUSER"),
    ({"sys": {"cloneflags": ["CLONE_VM"]}}, "spec: sys.cloneflags: CLONE_VM is refused"),
    ({"proc": {"files": [0, 1, "x"]}}, "spec: proc.files[2]: expected "),
    ({"proc": {"sys": {}}}, "spec: proc.sys: unknown field"),
    ({"sys": {"sync": "hook"}}, "spec: sys.sync: cannot be given in a spec"),
    ({"argv": []}, "spec: argv: expected a non-empty list of strings"),
    ({"version": 2}, "spec: version: unsupported version 2"),
    ({"wiat": False}, "spec: wiat: unknown field (did you mean wait?)"),
])
def test_errors_name_the_field(tmp_path: Path, bad: dict, message: str) -> None:
    d = {**doc(["true"]), **bad}
    res = pfe("exec", "--spec", write(tmp_path, d), "--check")
    assert res.returncode == 1
    assert res.stderr.startswith(f"pyforkexec: {message}"), res.stderr
    assert pfe("exec", "--spec", write(tmp_path, d)).returncode == 1  # the same without --check


def test_check_refuses_what_the_start_refuses(tmp_path: Path) -> None:
    """CLONE_PARENT with "wait": true: the start (start_process) refuses it, but --check, which ran only
    check_spawn's rules and not the entry point's, printed OK; the start's message named fork_exec, not
    the spec's field and its remedy. Now both refuse it alike, before any process."""
    d = {**doc(["true"]), "sys": {"cloneflags": "CLONE_PARENT"}}
    path = write(tmp_path, d)
    checked, started = pfe("exec", "--spec", path, "--check"), pfe("exec", "--spec", path)
    for res in (checked, started):
        assert (res.returncode, res.stdout) == (1, ""), res
        assert res.stderr.startswith("pyforkexec: spec: sys.cloneflags: CLONE_PARENT "), res.stderr
        assert '"wait": false' in res.stderr and "fork_exec" not in res.stderr, res.stderr
    assert checked.stderr == started.stderr
    res = pfe("exec", "--spec", write(tmp_path, {**d, "wait": False}), "--check")  # fork_exec's: allowed
    assert (res.returncode, res.stdout) == (0, "OK\n"), res


@pytest.mark.parametrize(("credential", "field", "kind"), [
    ({"uid": 1, "gid": 0}, "sys.credential.uid: 1", "uid"),
    ({"uid": 0, "gid": 7}, "sys.credential.gid: 7", "gid"),
    ({"uid": 0, "gid": 0, "groups": [0, 9]}, "sys.credential.groups[1]: 9", "gid")])
def test_check_refuses_a_credential_its_new_user_namespace_does_not_map(tmp_path: Path, credential: dict,
                                                                       field: str, kind: str) -> None:
    """A credential id the new user namespace's maps do not map: the kernel refuses it at the child's
    setuid, setgid or setgroups (EINVAL), so the start could never succeed, and --check printed OK (a
    service module's check mode said it would start, and its run stopped the running service first).
    Both refuse it now, naming the field, before any process exists."""
    one = [[0, 65534, 1]]
    d = {**doc(["true"], cloneflags=["CLONE_NEWUSER"], uid_mappings=one, gid_mappings=one,
               gid_mappings_enable_setgroups=True, credential=credential)}
    path = write(tmp_path, d)
    checked, started = pfe("exec", "--spec", path, "--check"), pfe("exec", "--spec", path)
    for res in (checked, started):
        assert (res.returncode, res.stdout) == (1, ""), res
        assert res.stderr == (f"pyforkexec: spec: {field} is not an id of the child's new user namespace "
                              f"(CLONE_NEWUSER): its {kind} map does not map it, and the kernel refuses an "
                              "unmapped id (EINVAL); map it, or give an id the maps map\n"), res.stderr
    mapped = write(tmp_path, {**d, "sys": {**d["sys"], "credential": {"uid": 0, "gid": 0, "groups": [0]}}})
    assert pfe("exec", "--spec", mapped).returncode == 0


@pytest.mark.parametrize(("flags", "maps", "field", "kind"), [
    ({"cloneflags": ["CLONE_NEWUSER"]}, {}, "sys.credential.uid: 0", "uid"),
    ({"cloneflags": ["CLONE_NEWUSER"]}, {"uid_mappings": [[0, 65534, 1]]}, "sys.credential.gid: 0", "gid"),
    ({"unshareflags": ["CLONE_NEWUSER"]}, {"gid_mappings": [[0, os.getegid(), 1]]}, "sys.credential.uid: 0",
     "uid")])
def test_check_refuses_a_credential_in_a_new_user_namespace_without_its_map(
        tmp_path: Path, flags: dict, maps: dict, field: str, kind: str) -> None:
    """(h144) A new user namespace whose uid or gid map is not given maps no id: the child's setuid or
    setgid of any credential fails (EINVAL; its setgroups first, EPERM, until a gid map is written),
    and --check printed OK for a spec that could never start. Both refuse it now, naming the field."""
    path = write(tmp_path, doc(["true"], **flags, **maps, credential={"uid": 0, "gid": 0}))
    checked, started = pfe("exec", "--spec", path, "--check"), pfe("exec", "--spec", path)
    for res in (checked, started):
        assert (res.returncode, res.stdout) == (1, ""), res
        assert res.stderr == (f"pyforkexec: spec: {field} is not an id of the child's new user namespace "
                              f"(CLONE_NEWUSER): no {kind} map is given, and a namespace without one maps no "
                              f"id; the kernel refuses an unmapped one (EINVAL); give a {kind} map that maps "
                              "it\n"), res.stderr


def test_missing_version_and_duplicate_keys(tmp_path: Path) -> None:
    res = pfe("exec", "--spec", "-", "--check", input='{"argv": ["true"]}')
    assert "spec: version: missing" in res.stderr
    res = pfe("exec", "--spec", "-", "--check", input='{"version": 1, "argv": ["true"], "argv": ["x"]}')
    assert "spec: argv: duplicate key" in res.stderr


def test_exit_statuses(tmp_path: Path) -> None:
    assert pfe("exec", "--spec", write(tmp_path, doc(["sh", "-c", "exit 3"]))).returncode == 3
    res = pfe("exec", "--spec", write(tmp_path, doc(["/nonexistent"])))  # refused before the start
    assert (res.returncode, res.stderr) == (127, 'pyforkexec: exec: "/nonexistent": no such file or '
                                                 'directory\n')
    tmpfs = {"target": "/mnt", "fstype": "tmpfs", "source": "t"}  # mounts could bring it: the start tells
    res = pfe("exec", "--spec", write(tmp_path, doc(["/nonexistent"], cloneflags=["newns"], mounts=[tmpfs])))
    assert (res.returncode, res.stderr) == (127, "pyforkexec: fork/exec /nonexistent: no such file or "
                                                 "directory (at execve)\n")
    d = doc(["true"])
    d["proc"]["dir"] = "/nonexistent"
    res = pfe("exec", "--spec", write(tmp_path, d))  # refused before the start (dir-missing.json)
    assert (res.returncode, res.stderr.split(": ")[:3]) == (1, ["pyforkexec", "spec", "proc.dir"]), res
    d = doc(["true"], cloneflags=["newns"], mounts=[tmpfs])
    d["proc"]["dir"] = "/nonexistent"
    res = pfe("exec", "--spec", write(tmp_path, d))
    assert res.returncode == 125
    assert res.stderr.startswith("pyforkexec: spec: proc.dir: fork/exec "), res.stderr
    assert res.stderr.endswith(": no such file or directory (at chdir)\n"), res.stderr


def test_a_failing_step_names_the_field_of_the_spec_that_asked_for_it(tmp_path: Path) -> None:
    d = doc(["true"], cloneflags=["newuser", "newns"],
            uid_mappings=[{"container_id": 0, "host_id": os.getuid(), "size": 1}],
            gid_mappings=[{"container_id": 0, "host_id": os.getgid(), "size": 1}],
            mounts=[{"target": "/tmp", "fstype": "tmpfs", "source": "t"},
                    {"target": "/tmp/no/such/dir", "fstype": "tmpfs", "source": "t", "mkdir": False}],
            capabilities={"keep": []})  # (else refused: the program could undo the mounts)
    # (a target missing here is refused before any process; under the list's own tmpfs it is not looked at)
    for wait in (True, False):  # staying its parent, and detached
        d["wait"] = wait
        res = pfe("exec", "--spec", write(tmp_path, d))
        assert res.returncode == 125, res.stderr
        blamed = "pyforkexec: spec: sys.mounts[1] (/tmp/no/such/dir): fork/exec "
        assert res.stderr.startswith(blamed), res.stderr
        assert res.stderr.endswith("(at mount)\n"), res.stderr


def test_signals_are_forwarded_and_the_status_returned(tmp_path: Path) -> None:
    d = doc(["sh", "-c", "trap 'exit 7' TERM; echo ready; while :; do sleep 0.05; done"],
            cloneflags=["newuts"], pdeathsig="SIGKILL")
    bg = Background([PYFORKEXEC, "exec", "--spec", write(tmp_path, d)])
    try:
        assert bg.readline() == "ready"
        bg.proc.send_signal(signal.SIGTERM)
        assert bg.proc.wait(30) == 7
    finally:
        bg.stop()


def test_wait_false_prints_the_pid(tmp_path: Path) -> None:
    d = doc(["sleep", "60"])
    d["wait"] = False
    d["proc"]["files"] = [0, None, None]  # not our pipes: run() waits for them to close
    res = pfe("exec", "--spec", write(tmp_path, d))
    assert res.returncode == 0, res.stderr
    pid = int(res.stdout)
    with open(f"/proc/{pid}/cmdline") as f:
        assert f.read() == "sleep\x0060\x00"
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not _alive(pid), "the detached child to die")


# The launcher in a Python of its own, with a stop signal sent to it once fork_exec has started the
# program and before the pid is printed: where systemd's stop or a Ctrl-C may come.
STOPPED_AFTER_START = r"""
import os, sys
sys.argv[0] = "/x/pyforkexec/__main__.py"  # the command itself (cli/__init__.py: _THE_COMMAND)
from pyforkexec.cli import exec as cli_exec, main
started = cli_exec.fork_exec

def fork_exec(*args, **kwargs):
    pid = started(*args, **kwargs)
    os.kill(os.getpid(), int(sys.argv[1]))
    return pid

cli_exec.fork_exec = fork_exec
sys.exit(main(["exec", "--spec", sys.argv[2]]))
"""


@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_wait_false_stopped_once_the_program_started_still_prints_its_pid(tmp_path: Path, signo: int) -> None:
    """A launcher with "wait": false ended by a stop signal between the start of its program and the
    print of its pid (2 of 120 SIGTERMs at random points of a start, h155's sweep): the program ran on,
    detached, and nobody was told its pid (status -15, nothing on stdout). The signal is held until
    the pid is out, then ends the launcher as it would have."""
    d = doc(["sleep", "60"])
    d["wait"] = False
    mark = f"PFE_STOPPED_AFTER_START={uuid.uuid4()}".encode()
    d["proc"].update(files=[0, None, None], env=[*ENV, mark.decode()])
    res = run([sys.executable, "-c", STOPPED_AFTER_START, str(int(signo)), write(tmp_path, d)])
    running = [int(p) for p in os.listdir("/proc") if p.isdigit() and _environ_has(p, mark)]
    try:
        assert "Traceback" not in res.stderr, res.stderr
        assert (res.returncode, res.stdout.split()) == (-signo, [str(pid) for pid in running]), res
    finally:
        for pid in running:
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: not _alive(pid), "the detached child to die")  # noqa: B023


def _environ_has(pid: str, entry: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return entry in f.read().split(b"\0")
    except OSError:
        return False


@pytest.mark.parametrize("stdout", ["full", "closed pipe"])
def test_wait_false_a_pid_it_cannot_print_is_no_failed_start(tmp_path: Path, stdout: str) -> None:
    """The pid written to a full device, or to a pipe nobody reads: the process runs all the same, so
    the launcher must not exit 125, nor end by SIGPIPE (a supervisor would start a second copy); it
    exits 1 with the write error and the pid."""
    d = doc(["sleep", "60"])
    d["wait"] = False
    d["proc"]["files"] = [0, None, None]
    d["argv"] = ["sleep", f"60.{os.getpid()}{len(stdout)}"]  # to find it whatever the launcher said
    r, w = os.pipe()
    os.close(r)
    with open("/dev/full", "w") if stdout == "full" else os.fdopen(w, "w") as out:
        res = pfe("exec", "--spec", write(tmp_path, d), stdout=out, stderr=subprocess.PIPE,
                  capture_output=False)
    if stdout == "full":
        os.close(w)
    started = [int(p) for p in run(["pgrep", "-fx", " ".join(d["argv"])]).stdout.split()]
    for pid in started:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not any(map(_alive, started)), "the detached child to die")
    assert (res.returncode, res.stdout) == (1, None), res
    runs = f"the program runs, pid {started[0]}"
    error = "No space left on device" if stdout == "full" else "Broken pipe"
    assert res.stderr == f"pyforkexec: write error: {error}; {runs}\n"


def test_a_schema_it_cannot_write_is_a_write_error() -> None:
    """--schema is longer than the output buffer: the write fails in the middle of the command."""
    with open("/dev/full", "w") as full:
        res = pfe("exec", "--schema", stdout=full, stderr=subprocess.PIPE, capture_output=False)
    assert (res.returncode, res.stderr) == (1, "pyforkexec: write error: No space left on device\n")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # reaped before the open, or between it and the read
        return False


def test_schema_lists_every_field_a_document_can_hold() -> None:
    res = pfe("exec", "--schema")
    schema = json.loads(res.stdout)
    props = schema["$defs"]["SysProcAttr"]["properties"]
    for f in dataclasses.fields(SysProcAttr):
        assert f.name in props, f.name
    assert props["sync"] == {"not": {}}  # a callable: only its default, None, which a document leaves out
    assert schema["properties"]["proc"]["properties"].keys() == {"dir", "env", "files"}


def _rich_attr() -> ProcAttr:
    return ProcAttr(dir="/tmp", env=("A=1",), files=(0, 1, 2, None), sys=SysProcAttr(
        cloneflags=CLONE_NEWUSER | CLONE_NEWUTS | CLONE_NEWPID, unshareflags=CLONE_NEWNS | CLONE_NEWNET,
        uid_mappings=(SysProcIDMap(0, 1000, 1), SysProcIDMap(1, 100000, 65536)),
        gid_mappings=(SysProcIDMap(0, 1000, 1),), credential=Credential(0, 0, (1, 2), True),
        setns=(SetNS("/run/netns/x", CLONE_NEWNET), SetNS("/proc/1/ns/uts")), pdeathsig=int(signal.SIGTERM),
        ambient_caps=(10, 12), setsid=True, chroot="/srv"))


@pytest.mark.parametrize("signo", [-1, 65, 1 << 40, int(signal.SIGRTMIN) + 2, int(signal.SIGKILL)])
def test_a_pdeathsig_that_is_no_signal_dumps_as_the_number_it_loaded_as(signo: int) -> None:
    """The loader takes any integer for pdeathsig (the checks refuse one that is no signal); dump wrote
    such a number as its digits in a string ("-1"), which the loader refuses as an unknown signal
    name: spec.load(spec.dump(x)) failed for what spec.load had given (found by a load/dump round trip
    of 3000 generated documents, 40 failed, all of this kind). A number that is no signal is dumped
    as the number now; a signal still by its name."""
    doc_ = {"version": 1, "argv": ["true"], "sys": {"pdeathsig": signo}}
    loaded = spec.load(doc_)
    dumped = spec.dump(*loaded)
    assert spec.load(json.loads(json.dumps(dumped))) == loaded
    assert isinstance(dumped["sys"]["pdeathsig"], str) == (signo in (int(signal.SIGRTMIN) + 2, 9))


def test_dump_and_load_round_trip() -> None:
    attr = _rich_attr()
    d = spec.dump("/bin/sh", ["sh", "-c", "true"], attr)
    assert json.loads(json.dumps(d)) == d
    assert d["sys"]["cloneflags"] == ["CLONE_NEWUTS", "CLONE_NEWUSER", "CLONE_NEWPID"]
    assert d["sys"]["pdeathsig"] == "SIGTERM"
    argv0, argv, loaded = spec.load(d)
    assert (argv0, argv) == ("/bin/sh", ["sh", "-c", "true"])
    assert loaded == attr
    assert spec.dump(argv0, argv, loaded) == d


FD_FIELDS = [  # (sys as a document, the path named): every field where the API takes an fd of the caller
    ({"setns": [{"target": 0}]}, "sys.setns[0].target"),
    ({"setns": [[7, "newnet"]]}, "sys.setns[0].target"),
    ({"cloneflags": ["newns", "newuser"], "mounts": [{"source": "/usr", "target": "/mnt", "flags": "bind",
                                                      "idmap": 2}]}, "sys.mounts[0].idmap"),
    ({"use_cgroup_fd": True, "cgroup_fd": 0}, "sys.cgroup_fd"),
    ({"use_landlock": True, "landlock_fd": 3}, "sys.landlock_fd"),
    ({"exec_fd": 0}, "sys.exec_fd"),
]


@pytest.mark.parametrize(("sys_doc", "field"), FD_FIELDS, ids=[f for _, f in FD_FIELDS])
def test_an_fd_number_in_a_document_is_refused_at_load(sys_doc: dict, field: str) -> None:
    # What reads a document (a launcher, the daemon, a module) did not open the fd its author meant:
    # refused by load itself, before any check of the host or start (the daemon starts after load).
    with pytest.raises(spec.SpecError) as raised:
        spec.load_spec({"version": 1, "argv": ["/bin/true"], "sys": sys_doc})
    assert raised.value.path == field
    assert "is an fd number, which a document cannot give" in str(raised.value)


FD_FLAGS = [  # (sys as a document, the path named): a flag whose fd field a document leaves out
    ({"use_cgroup_fd": True}, "sys.use_cgroup_fd"),
    ({"use_landlock": True, "no_new_privs": True}, "sys.use_landlock"),
]


@pytest.mark.parametrize(("sys_doc", "field"), FD_FLAGS, ids=[f for _, f in FD_FLAGS])
def test_a_flag_whose_fd_a_document_cannot_give_is_refused_at_load_and_dump(sys_doc: dict,
                                                                            field: str) -> None:
    """``use_cgroup_fd: true`` alone loaded, passed --check, and started the program in the cgroup of
    fd 0, the launcher's stdin: whatever cgroup directory the launcher was started with, or EBADF at
    clone (exit 125) for a terminal; dump wrote such a document for SysProcAttr(use_cgroup_fd=True)."""
    with pytest.raises(spec.SpecError) as raised:
        spec.load_spec({"version": 1, "argv": ["/bin/true"], "sys": sys_doc})
    assert raised.value.path == field
    assert "which is left out: it would be fd 0 of the process reading the document" in str(raised.value)
    with pytest.raises(spec.SpecError) as raised:
        spec.dump(None, ["true"], ProcAttr(sys=SysProcAttr(**sys_doc)))
    assert raised.value.path == field
    unset = {name: False for name in sys_doc}
    loaded = spec.load_spec({"version": 1, "argv": ["/bin/true"], "sys": unset})
    assert not loaded.attr.sys.use_cgroup_fd and not loaded.attr.sys.use_landlock


def test_a_path_where_an_fd_could_be_loads_and_dump_refuses_an_fd() -> None:
    loaded = spec.load_spec({"version": 1, "argv": ["/bin/true"],
                             "sys": {"setns": [{"target": "/proc/1/ns/net"}], "landlock_fd": -1}})
    assert loaded.attr.sys.setns[0].target == "/proc/1/ns/net" and loaded.attr.sys.landlock_fd == -1
    with pytest.raises(spec.SpecError) as raised:  # no document stands for it: load would refuse it
        spec.dump(None, ["true"], ProcAttr(sys=SysProcAttr(setns=[SetNS("/run/netns/x"), SetNS(4)])))
    assert raised.value.path == "sys.setns[1].target"


FD_FILE_FIELDS = [  # (SysProcAttr's fields, given an open file where "FILE" is; the path dump names)
    ({"setns": ["FILE"]}, "sys.setns[0].target"),
    ({"use_cgroup_fd": True, "cgroup_fd": "FILE"}, "sys.cgroup_fd"),
    ({"use_landlock": True, "landlock_fd": "FILE"}, "sys.landlock_fd"),
    ({"exec_fd": "FILE"}, "sys.exec_fd"),
]


@pytest.mark.parametrize(("fields", "field"), FD_FILE_FIELDS, ids=[f for _, f in FD_FILE_FIELDS])
def test_dump_refuses_a_file_object_where_an_fd_of_the_caller_goes(fields: dict, field: str) -> None:
    """dump wrote a file object in such a field as its fd number ({"exec_fd": 3}), a document that
    load refuses: dump -> load failed (found by a dump/load round trip of 2000 SysProcAttrs drawn from
    test_property_api's strategies). dump refuses it now, naming the field, as it refuses the number."""
    with open("/proc/self/ns/net", "rb") as f:
        attrs = {k: f if v == "FILE" else v for k, v in fields.items()}
        if "setns" in attrs:
            attrs["setns"] = [SetNS(f)]
        with pytest.raises(spec.SpecError) as raised:
            spec.dump(None, ["true"], ProcAttr(sys=SysProcAttr(**attrs)))
    assert raised.value.path == field
    assert "is an open file of this process, which a document cannot give" in str(raised.value)


def test_dump_names_the_field_of_a_closed_file() -> None:
    # ValueError("I/O operation on closed file") came out of dump, without the field
    with open("/dev/null") as f:
        pass
    with pytest.raises(spec.SpecError) as raised:
        spec.dump(None, ["true"], ProcAttr(files=[0, f, 2]))
    assert raised.value.path == "proc.files[1]" and "fileno() failed" in str(raised.value)
    with open("/dev/null") as g:  # an open one is its fd, as proc.files takes it
        assert spec.dump(None, ["true"], ProcAttr(files=[0, g, 2]))["proc"]["files"] == [0, g.fileno(), 2]


def test_a_blamed_failure_quotes_the_target_in_one_line(tmp_path: Path) -> None:
    # The daemon logs Spec.blame's text as it is: a join target's newline would forge a log line.
    odd = tmp_path / "h111-a\nb\x1b[31m"
    odd.touch()  # a file, not a namespace: the start fails at setns (no check_on_host before it here)
    loaded = spec.load_spec({"version": 1, "argv": ["/bin/true"], "sys": {"setns": [{"target": str(odd)}]}})
    with pytest.raises(ChildError) as raised:
        start_process(loaded.program, loaded.argv, loaded.attr)
    blamed = loaded.blame(raised.value)
    assert blamed is not None and blamed.startswith("spec: sys.setns[0] (") and blamed.isprintable(), blamed
    assert "h111-a\\nb\\x1b[31m" in blamed


def test_dump_leaves_defaults_out() -> None:
    expected = {"version": 1, "argv": ["true"], "sys": {}}
    assert spec.dump(None, ["true"], ProcAttr(sys=SysProcAttr())) == expected


def test_loading_is_derived_from_the_dataclasses() -> None:
    # Whatever fields SysProcAttr has (the isolation extensions add some), a document may set each
    # one that holds plain data: the loader has no list of them.
    names = {f.name for f in dataclasses.fields(SysProcAttr)}
    if "hostname" not in names:
        pytest.skip("SysProcAttr has no hostname field yet")
    _, _, attr = spec.load({"version": 1, "argv": ["true"], "sys": {"hostname": "h", "cloneflags": "newuts"}})
    assert attr.sys is not None and attr.sys.hostname == "h"


def test_a_spec_with_an_extension_field_runs(tmp_path: Path) -> None:
    if "hostname" not in {f.name for f in dataclasses.fields(SysProcAttr)}:
        pytest.skip("SysProcAttr has no hostname field yet")
    path = write(tmp_path, doc(["hostname"], cloneflags=["newuts"], hostname="from-spec"))
    assert pfe("exec", "--spec", path).stdout == "from-spec\n"


def test_python_dash_m(tmp_path: Path) -> None:
    path = write(tmp_path, doc(["echo", "module"]))
    assert run([sys.executable, "-m", "pyforkexec", "exec", "--spec", path]).stdout == "module\n"


def test_usage_errors_exit_1(tmp_path: Path) -> None:
    assert pfe("exec").returncode == 1
    res = pfe("exec", "--spec", str(tmp_path / "missing.json"), "--check")
    assert res.returncode == 1 and "cannot read" in res.stderr
    assert pfe("exec", "--sepc", "x").returncode == 1


@pytest.mark.parametrize("check", [[], ["--check"]])
def test_spec_from_a_closed_standard_input_is_a_read_error(check: list[str]) -> None:
    res = pfe("exec", "--spec", "-", *check, preexec_fn=lambda: os.close(0))  # <&-
    assert (res.returncode, res.stdout) == (1, ""), res
    assert res.stderr == "pyforkexec: spec: cannot read standard input: Bad file descriptor\n"


# ---- sys.cgroup: created for the process, removed by the launcher once it has reaped it ------------

EXAMPLES = Path(__file__).parent.parent / "examples"


def cgroup_root() -> str:
    try:
        return find_cgroup2()
    except CgroupError as e:
        pytest.skip(str(e))


@pytest.fixture
def cgroup_name() -> Iterator[str]:
    """A fresh top-level cgroup name; whatever a failed test left below it is removed."""
    name = f"pyforkexec-cli-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield name
    top = os.path.join(cgroup_root(), name)
    for path in (os.path.join(top, "spec"), top):
        if os.path.isdir(path):
            os.rmdir(path)


@pytest.mark.parametrize("limits", [True, False], ids=["sandbox-limits", "no-limits"])
def test_the_sandbox_cgroup_is_removed_after_the_process(tmp_path: Path, cgroup_name: str,
                                                         limits: bool) -> None:
    # examples/sandbox.json as it is but for a unique cgroup path; without its limits the cgroup needs
    # no controller, so creation and removal are tested on a hybrid cgroup v1/v2 machine too.
    root = cgroup_root()
    sandbox = json.loads((EXAMPLES / "sandbox.json").read_text())
    cgroup = sandbox["sys"]["cgroup"]
    if limits:
        with open(os.path.join(root, "cgroup.controllers")) as f:
            missing = {"memory", "pids"} - set(f.read().split())
        if missing:
            pytest.skip(f"the {', '.join(sorted(missing))} controller is not in cgroup v2 here (bound to v1)")
    sandbox["sys"]["cgroup"] = {**cgroup, "path": f"{cgroup_name}/spec"} if limits else \
        {"path": f"{cgroup_name}/spec"}
    res = pfe("exec", "--spec", write(tmp_path, sandbox), "--", "-c", "grep ^0:: /proc/self/cgroup",
              cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"0::/{cgroup_name}/spec\n"
    assert not os.path.exists(os.path.join(root, cgroup_name))


@pytest.mark.parametrize("wait", [True, False])
def test_a_cgroup_path_below_a_file_is_refused_naming_the_field(tmp_path: Path, wait: bool) -> None:
    root = cgroup_root()
    # below a file: mkdir would fail, so the host check refuses it before anything is made (it was a
    # start failure, exit 125). Detached, the launcher cannot remove it after: remove false
    d = doc(["true"], cgroup={"path": "cgroup.procs/x", "remove": wait})
    d["wait"] = wait
    res = pfe("exec", "--spec", write(tmp_path, d))
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr.startswith("pyforkexec: spec: sys.cgroup.path: names a file, not a cgroup directory: "
                                 f"{os.path.join(root, 'cgroup.procs')} ")


LANDLOCK_SYSTEM = [{"path": p, "access": ["read", "execute"]}
                   for p in ("/usr", "/bin", "/lib", "/lib64", "/etc") if os.path.exists(p)]


@pytest.mark.skipif(landlock_abi() < 3, reason="needs Landlock ABI 3 (truncate) on this kernel")
def test_a_landlock_policy_from_a_spec(tmp_path: Path) -> None:
    """exec --spec applies sys.landlock; --check refuses a strict policy this kernel (here: one made to
    look like ABI 2) cannot enforce, and reports what best effort drops."""
    data = tmp_path / "data"
    data.mkdir()
    policy = {"paths": [*LANDLOCK_SYSTEM, {"path": str(data), "access": ["read", "write"]}]}
    path = write(tmp_path, doc(["sh", "-c", f"echo x > {data}/ok && cat {data}/ok; echo y > {tmp_path}/no"],
                               landlock=policy))
    res = pfe("exec", "--spec", path)
    assert res.returncode == 2 and res.stdout == "x\n", res
    assert "Permission denied" in res.stderr and not (tmp_path / "no").exists()
    old = {**os.environ, "PYFORKEXEC_LANDLOCK_ABI": "2"}
    res = pfe("exec", "--check", "--spec", path, env=old)
    assert res.returncode == 0 and res.stdout == "OK\n", res
    n = len(LANDLOCK_SYSTEM)
    said = "pyforkexec: landlock (best effort, ABI 2): sys.landlock.paths"
    assert res.stderr == (f"{said}[{n}].access: truncate needs Landlock ABI 3, this kernel has 2\n"
                          f"{said}: truncate needs Landlock ABI 3, this kernel has 2: it is not restricted "
                          "anywhere\n"
                          f"{said}: ioctl_dev needs Landlock ABI 5, this kernel has 2: it is not restricted "
                          "anywhere\n")
    path = write(tmp_path, doc(["true"], landlock={**policy, "mode": "strict"}))
    res = pfe("exec", "--check", "--spec", path, env=old)
    assert res.returncode == 1 and res.stderr.startswith(
        f"pyforkexec: spec: sys.landlock.paths[{n}].access: truncate needs Landlock ABI 3, this kernel has 2")
    assert pfe("exec", "--check", "--spec", path).returncode == 0


@pytest.mark.skipif(landlock_abi() < 1, reason="Landlock is not enabled on this kernel")
@pytest.mark.parametrize("program", ["true", "/usr/bin/true"])
def test_check_refuses_a_landlock_policy_that_denies_running_the_program(tmp_path: Path,
                                                                        program: str) -> None:
    """A policy with no rule letting execve read and execute the program (nor its dynamic loader read
    its libraries) was OK to --check and failed the start at execve (126); both refuse it now, as
    execve would (126), naming sys.landlock, before any process. With the rights, both run it."""
    lib = {"path": "/usr/lib", "access": ["read", "execute"]}
    for paths, status in (([{"path": "/etc", "access": ["read"]}, lib], 126),
                          ([{"path": "/usr/bin", "access": ["execute"]}, lib], 126),
                          ([{"path": "/usr/bin", "access": ["read", "execute"]}, lib], 0)):
        path = write(tmp_path, doc([program], landlock={"paths": paths}))
        checked, started = pfe("exec", "--check", "--spec", path), pfe("exec", "--spec", path)
        assert checked.returncode == started.returncode == status, (paths, checked, started)
        if status:
            assert checked.stderr == started.stderr and checked.stderr.startswith(
                f'pyforkexec: exec: "{program}": permission denied: sys.landlock denies executing the '
                "program /usr/bin/true: no rule allows "), checked.stderr


@pytest.mark.parametrize("name", [
    "setsid-and-setpgid.json", "files-closed-fd.json", "cgroup-path-newline.json", "setns-own-namespace.json",
    "chroot-missing.json", "dir-missing.json", "bind-source-missing.json", "nofile-above-nr-open.json",
    "mount-target-missing.json", "mount-file-on-directory.json", "mount-filesystem-on-file.json",
    "mount-proc-pid-namespace-not-owned.json", "mount-sysfs-network-namespace-not-owned.json",
    "setns-not-a-namespace.json", "setns-wrong-type.json", "setns-wrong-inode.json",
    # passed --check and failed at the pivot_root step (ENOENT, ENOTDIR: found by h155's check/start sweep)
    "pivot-root-missing.json", "pivot-root-file.json",
    # best effort without Landlock (before Linux 5.13) makes no ruleset: its rules are read by no one
    pytest.param("landlock-rule-on-nsfs.json", marks=pytest.mark.skipif(
        landlock_abi() < 1, reason="Landlock is not enabled on this kernel"))])
def test_check_refuses_what_the_start_would_refuse(name: str) -> None:
    """``--check`` says OK only for a document whose start gets past everything this host can tell
    before a process exists: the same one-line refusal, naming the field, as the start's."""
    path = str(Path(__file__).parent / "corpus" / "specs" / name)
    checked, started = pfe("exec", "--spec", path, "--check"), pfe("exec", "--spec", path)
    assert checked.returncode == started.returncode == 1, checked.stderr + started.stderr
    assert checked.stdout == "" and checked.stderr == started.stderr
    assert checked.stderr.startswith("pyforkexec: spec: ") and len(checked.stderr.splitlines()) == 1


def test_check_refuses_a_cgroup_this_host_cannot_give(tmp_path: Path) -> None:
    """exec --check foresees what the start would refuse about sys.cgroup: a controller the cgroup v2
    root does not offer, a place this process cannot write (here: as uid 65534)."""
    root = find_cgroup2()
    with open(os.path.join(root, "cgroup.controllers")) as f:
        offered = f.read().split()
    shared = Path(tempfile.mkdtemp(prefix="pfe-cg-check-"))
    try:
        shared.chmod(0o755)
        spec = write(shared, doc(["true"], cgroup={"path": f"pfe-check-{uuid.uuid4().hex[:6]}"}))
        os.chmod(spec, 0o644)
        res = counted([PYFORKEXEC, "exec", "--check", "--spec", spec], uid=65534)
        assert (res.returncode, res.processes) == (1, 1), res
        assert res.stderr == f"pyforkexec: spec: sys.cgroup.path: {root} is not writable by this process\n"
    finally:
        shutil.rmtree(shared)
    missing = [c for c in ("memory", "pids", "cpu") if c not in offered]
    if missing:
        limit = {"memory": {"memory_max": 1 << 30}, "pids": {"pids_max": 10}, "cpu": {"cpu_weight": 10}}
        spec = write(tmp_path, doc(["true"], cgroup={"path": "pfe-check", **limit[missing[0]]}))
        res = counted([PYFORKEXEC, "exec", "--check", "--spec", spec])
        assert res.returncode == 1 and res.stderr.startswith(
            f"pyforkexec: spec: sys.cgroup: the {missing[0]} controller is not available in {root}"), res



def test_check_refuses_maps_this_process_may_not_write() -> None:
    """Without CAP_SETUID/CAP_SETGID (here: as uid 65534) the kernel lets the maps of a new user
    namespace map only the writer's own euid and egid, one line of size 1, the gid map with setgroups
    denied; --check printed OK for any other, whose start then failed (EPERM). Refused now naming the
    field; the maps it may write still pass."""
    shared = Path(tempfile.mkdtemp(prefix="pfe-map-check-"))
    try:
        shared.chmod(0o755)
        own = [[0, 65534, 1]]
        cases = [({"uid_mappings": [[0, 65534, 2]], "gid_mappings": own},
                  "sys.uid_mappings: maps other ids than this process's own euid (65534, one line of "
                  "size 1), which needs CAP_SETUID"),
                 ({"uid_mappings": own, "gid_mappings": [[0, 100000, 1]]},
                  "sys.gid_mappings: maps other ids than this process's own egid (65534, one line of "
                  "size 1), which needs CAP_SETGID"),
                 ({"uid_mappings": own, "gid_mappings": own, "gid_mappings_enable_setgroups": True},
                  "sys.gid_mappings_enable_setgroups: a gid map written without CAP_SETGID"),
                 ({"uid_mappings": own, "gid_mappings": own}, None)]
        for i, (maps, refusal) in enumerate(cases):
            spec = write(shared, doc(["true"], cloneflags=["CLONE_NEWUSER"], **maps), f"s{i}.json")
            os.chmod(spec, 0o644)
            res = counted([PYFORKEXEC, "exec", "--check", "--spec", spec], uid=65534)
            if refusal is None:
                assert (res.returncode, res.stdout) == (0, "OK\n"), res
            else:
                assert res.returncode == 1 and res.stderr.startswith(f"pyforkexec: spec: {refusal}"), res
    finally:
        shutil.rmtree(shared)


def test_a_spec_without_files_runs_with_the_launchers_closed_stdin(tmp_path: Path) -> None:
    """No proc.files: the default is the launcher's standard streams, and one it does not have is
    closed in the program too (as unshare and util-linux run it), not a refusal naming
    proc.files[0], which the document does not have. Given, a closed fd is still refused."""
    spec = write(tmp_path, doc(["sh", "-c", "echo ran; ls /proc/self/fd/0 2>/dev/null || echo no stdin"]))
    res = run([PYFORKEXEC, "exec", "--spec", spec], stdin=None, preexec_fn=lambda: os.close(0))
    assert (res.returncode, res.stdout) == (0, "ran\nno stdin\n"), res.stderr
    d = doc(["true"])
    d["proc"]["files"] = [0, 1, 2]
    given = write(tmp_path, d, "given.json")
    res = run([PYFORKEXEC, "exec", "--spec", given], preexec_fn=lambda: os.close(0))
    assert res.returncode == 1 and "proc.files[0]: fd 0 is not open" in res.stderr


def test_check_refuses_a_program_that_is_not_there(tmp_path: Path) -> None:
    """An absolute argv[0] (no new root, no mounts that could bring it): --check said OK, and the start
    then failed with 127."""
    spec = write(tmp_path, doc(["/nonexistent/pfe-program"]))
    for args in (["--check"], []):
        res = pfe("exec", *args, "--spec", spec)
        assert (res.returncode, res.stdout) == (127, ""), res
        assert res.stderr == 'pyforkexec: exec: "/nonexistent/pfe-program": no such file or directory\n'
    # relative to proc.dir (the child's working directory), and what execve refuses to run
    (tmp_path / "data").write_text("")
    cases = (("./pfe-missing", 127, "no such file or directory"), ("./data", 126, "permission denied"),
             (str(tmp_path), 126, "permission denied"))
    for program, status, why in cases:
        d = doc([program])
        d["proc"]["dir"] = str(tmp_path)
        spec = write(tmp_path, d)
        for args in (["--check"], []):
            res = pfe("exec", *args, "--spec", spec)
            assert (res.returncode, res.stderr) == (status, f'pyforkexec: exec: "{program}": {why}\n'), res


@pytest.fixture
def noexec_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory of this test's on a tmpfs of its own mounted noexec (the host's mounts untouched)."""
    where = tmp_path / "noexec"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "noexec,size=4m", "pfe-noexec", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def test_check_refuses_a_program_execve_cannot_open(tmp_path: Path, noexec_dir: Path) -> None:
    """A program that is there and executable, whose "#!" interpreter is not there, or that (or whose
    interpreter) is on a noexec mount: --check said OK, and the start failed at execve (127 "no such
    file or directory" of a file that is there, 126 "permission denied"); found by comparing --check
    with the start over 45 hand-drawn documents (2 of them). Both refuse it now, before any process, as
    execve would, saying why."""
    shutil.copy("/bin/true", noexec_dir / "true")
    script, via = tmp_path / "script", tmp_path / "via"
    script.write_text("#!/nonexistent/pfe-interp\n")
    via.write_text(f"#!{noexec_dir / 'true'}\n")
    script.chmod(0o755)
    via.chmod(0o755)
    on_noexec = f"{noexec_dir / 'true'} is on a noexec mount"
    missing = "no such file or directory: its interpreter /nonexistent/pfe-interp is not there"
    cases = ((str(script), 127, missing),
             (str(noexec_dir / "true"), 126, "permission denied: it is on a noexec mount"),
             (str(via), 126, f"permission denied: its interpreter {on_noexec}"))
    for program, status, why in cases:
        spec = write(tmp_path, doc([program]))
        for args in (["--check"], []):
            res = pfe("exec", *args, "--spec", spec)
            assert (res.returncode, res.stderr) == (status, f'pyforkexec: exec: "{program}": {why}\n'), res
    # found in PATH: a file there on a noexec mount is no executable for the lookup (access(X_OK))
    d = doc(["true"])
    d["proc"]["env"] = [f"PATH={noexec_dir}:/bin:/usr/bin"]
    assert pfe("exec", "--check", "--spec", write(tmp_path, d)).stdout == "OK\n"


def test_check_refuses_a_string_longer_than_execve_takes(tmp_path: Path) -> None:
    """An argument or environment string of MAX_ARG_STRLEN bytes (32 pages, with its NUL) or more,
    which a document of MAX_BYTES holds: --check said OK, and the start failed at execve with E2BIG
    (126) once the child existed (found by comparing --check with the start). Both refuse it now,
    naming the string; one byte shorter runs."""
    most = 32 * os.sysconf("SC_PAGE_SIZE")  # with the NUL
    for field, d in (("argv[1]", doc(["/bin/true", "x" * most])),
                     ("proc.env[1]", doc(["/bin/true"]))):
        if field.startswith("proc.env"):
            d["proc"]["env"] = [*ENV[:1], "A=" + "x" * (most - 2)]
        spec_path = write(tmp_path, d)
        for args in (["--check"], []):
            res = pfe("exec", *args, "--spec", spec_path)
            said = f"pyforkexec: spec: {field}: is {most} bytes long, and execve takes at most"
            assert res.returncode == 1 and res.stderr.startswith(said), res
    fits = write(tmp_path, doc(["/bin/true", "x" * (most - 1)]))
    assert pfe("exec", "--spec", fits).returncode == 0


def test_check_foresees_a_hard_limit_the_child_cannot_raise(tmp_path: Path) -> None:
    """prlimit64 raises a hard limit only with CAP_SYS_RESOURCE in the initial user namespace: --check
    said OK to a raise as uid 65534, or from a child in a new user namespace, and the start failed
    at PRLIMIT. A limit at or below the current hard one stays fine for both."""
    # One above the hard limit must stay within fs.nr_open (else the start refuses that first): where
    # the hard limit is nr_open already (root on Debian 11: 1048576), the commands run one lower.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
    lower = [] if hard < nr_open else [util_linux("prlimit"), f"--nofile={nr_open - 1}"]
    hard = min(hard, nr_open - 1)
    shared = Path(tempfile.mkdtemp(prefix="pfe-rlimit-check-"))
    try:
        shared.chmod(0o755)
        above = write(shared, doc(["true"], rlimits=[{"resource": "nofile", "soft": 64, "hard": hard + 1}]))
        within = write(shared, doc(["true"], rlimits=[{"resource": "nofile", "soft": 64, "hard": hard}]),
                       "within.json")
        for path in (above, within):
            os.chmod(path, 0o644)
        for args in (["--check"], []):
            res = counted([*lower, PYFORKEXEC, "exec", *args, "--spec", above], uid=65534)
            assert (res.returncode, res.processes) == (1, 1), res
            assert res.stderr == (f"pyforkexec: spec: sys.rlimits[0].hard: {hard + 1} is above this "
                                  f"process's hard limit ({hard}), and this process lacks CAP_SYS_RESOURCE "
                                  "to raise it\n")
            assert counted([*lower, PYFORKEXEC, "exec", *args, "--spec", within], uid=65534).returncode == 0
    finally:
        shutil.rmtree(shared)
    userns = write(tmp_path, doc(["true"], cloneflags=["CLONE_NEWUSER"], uid_mappings=[[0, 0, 1]],
                                 gid_mappings=[[0, 0, 1]],
                                 rlimits=[{"resource": "nofile", "soft": 64, "hard": hard + 1}]))
    for args in (["--check"], []):
        res = run([*lower, PYFORKEXEC, "exec", *args, "--spec", userns])
        assert res.returncode == 1 and res.stderr.startswith("pyforkexec: spec: sys.rlimits[0].hard: "), res
        assert "lacks CAP_SYS_RESOURCE" in res.stderr


def test_check_takes_paths_an_earlier_mount_or_a_joined_namespace_makes(tmp_path: Path) -> None:
    """Only a path that nothing could make is refused: a bind source under an earlier mount of the
    list, and an absolute program or a working directory that only a joined mount namespace has,
    start (the program finds them there)."""
    made = write(tmp_path, doc(["true"], cloneflags=["CLONE_NEWNS"], mounts=[
        {"source": None, "target": "/mnt", "fstype": "tmpfs"},
        {"source": "/mnt/pfe-made", "target": "/media", "flags": "bind", "mkdir": True}]))
    res = pfe("exec", "--check", "--spec", made)
    assert (res.returncode, res.stdout) == (0, "OK\n"), res
    # A mount namespace in which /pfe-only-there/bin/true exists (a tmpfs over the empty /mnt of a
    # directory made for it), held by a sleeping process.
    there = f"/tmp/pfe-only-{uuid.uuid4().hex[:8]}"
    script = (f"mkdir -p {there} && mount -t tmpfs tmpfs {there} && cd {there} && mkdir bin wd root && "
              f"cp /bin/true bin/ && mount --rbind / root && echo ready && exec sleep 60")
    with Background(["unshare", "--mount", "--propagation", "private", "sh", "-c", script]) as holder:
        assert holder.readline() == "ready"
        d = doc([f"{there}/bin/true"], setns=[{"target": f"/proc/{holder.proc.pid}/ns/mnt"}])
        d["proc"]["dir"] = f"{there}/wd"
        joined = write(tmp_path, d, "joined.json")
        join = [{"target": f"/proc/{holder.proc.pid}/ns/mnt"}]
        rooted = doc(["/bin/true"], setns=join, chroot=f"{there}/root")
        for spec_path in (joined, write(tmp_path, rooted, "rooted.json")):
            for args in (["--check"], []):
                res = pfe("exec", *args, "--spec", spec_path)
                assert res.returncode == 0, res
    os.rmdir(there)


def test_check_refuses_a_join_the_start_refuses(tmp_path: Path) -> None:
    """A join of a network namespace with CLONE_NEWNET in cloneflags, or for its children only: the
    start refused them (naming SysProcAttr's field) after --check said OK."""
    name = f"pfe-check-{uuid.uuid4().hex[:6]}"
    assert run(["ip", "netns", "add", name]).returncode == 0
    try:
        join = {"target": f"/run/netns/{name}"}
        cases = ((doc(["true"], cloneflags=["CLONE_NEWNET"], setns=[join]),
                  "sys.setns[0]: joins a namespace of a type cloneflags creates"),
                 (doc(["true"], setns=[dict(join, for_children=True)]),
                  "sys.setns[0].for_children: only a PID namespace"))
        for d, message in cases:
            spec_path = write(tmp_path, d)
            for args in (["--check"], []):
                res = pfe("exec", *args, "--spec", spec_path)
                assert res.returncode == 1 and res.stderr.startswith(f"pyforkexec: spec: {message}"), res
    finally:
        run(["ip", "netns", "del", name])


def test_check_looks_for_an_absolute_program_in_a_chroot_alone(tmp_path: Path) -> None:
    """A chroot (no mounts, no new root of pivot_root): an absolute program missing from it was OK for
    --check, and the start failed with 127 at execve; a program found by PATH was looked for there."""
    empty = tmp_path / "root"
    empty.mkdir()
    spec_path = write(tmp_path, doc(["/bin/true"], chroot=str(empty)))
    for args in (["--check"], []):
        res = pfe("exec", *args, "--spec", spec_path)
        assert res.returncode == 127 and res.stderr == (
            f'pyforkexec: exec: "/bin/true": no such file or directory (in the chroot {empty})\n'), res
    assert pfe("exec", "--check", "--spec", write(tmp_path, doc(["/bin/true"], chroot="/"))).returncode == 0


def _elf_loader(program: str) -> str:
    from pyforkexec.sandbox.landlock_exec import execve_files

    elf = execve_files(program)[1]
    if elf is None or elf.interp is None:
        pytest.skip(f"{program} is not a dynamically linked ELF program here")
    return elf.interp


def test_check_looks_for_the_loader_of_a_program_in_a_chroot_alone(tmp_path: Path) -> None:
    """A chroot holding the program but not its dynamic loader (nor a script's interpreter): --check
    said OK, and the start failed at execve with 127 "no such file or directory" of a program that is
    there (found by comparing --check with the start: 3 of 45 hand-drawn documents). Refused now by
    both, naming the loader; a link on the way (resolved in the chroot by the child) is not judged."""
    loader = _elf_loader("/bin/true")
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    shutil.copy("/bin/true", root / "bin" / "true")
    (root / "bin" / "script").write_text("#!/bin/pfe-missing-sh\n")
    (root / "bin" / "script").chmod(0o755)
    cases = (("/bin/true", f"its dynamic loader {loader}"),
             ("/bin/script", "its interpreter /bin/pfe-missing-sh"))
    for program, what in cases:
        spec_path = write(tmp_path, doc([program], chroot=str(root)))
        for args in (["--check"], []):
            res = pfe("exec", *args, "--spec", spec_path)
            why = f"no such file or directory: {what} is not in the chroot {root}"
            want = f'pyforkexec: exec: "{program}": {why}\n'
            assert (res.returncode, res.stderr) == (127, want), res
    by_path = doc(["true"], chroot=str(root))
    by_path["proc"]["env"] = ["PATH=/bin"]
    res = pfe("exec", "--check", "--spec", write(tmp_path, by_path))
    assert res.returncode == 127 and f"its dynamic loader {loader} is not in the chroot" in res.stderr, res
    # the loader's directory a link (as /lib64 -> usr/lib64 is): left to the start, not refused
    top = loader.strip("/").split("/")[0]
    (root / top).symlink_to(f"/{top}")
    res = pfe("exec", "--check", "--spec", write(tmp_path, doc(["/bin/true"], chroot=str(root))))
    assert res.stdout == "OK\n", res


def test_check_judges_a_join_of_an_fd_as_a_join_of_a_path() -> None:
    """An fd of the caller as a join target, in a Spec built in Python (a module's, which a document
    cannot give: see test_an_fd_number_in_a_document_is_refused_at_load): one that is no namespace,
    and the caller's own namespace, are refused by check_on_host as the path would be."""
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        cases = ((0, "sys.setns[0]: fd 0 is not a namespace file"),
                 (own, f"sys.setns[0]: fd {own} is this process's own namespace"))
        for fd, message in cases:
            built = spec.Spec(argv=["true"], attr=ProcAttr(sys=SysProcAttr(setns=[SetNS(fd)])))
            with pytest.raises(spec.SpecError) as raised:
                spec.check_on_host(built)
            assert str(raised.value).startswith(f"spec: {message}"), raised.value
    finally:
        os.close(own)


def test_check_foresees_a_step_this_process_lacks_the_capability_for() -> None:
    """As uid 65534, without a new user namespace: a chroot (CAP_SYS_CHROOT) and a credential
    (setgroups: CAP_SETGID) were OK for --check, and the start failed with EPERM (125)."""
    shared = Path(tempfile.mkdtemp(prefix="pfe-caps-check-"))
    try:
        shared.chmod(0o755)
        cases = ((doc(["/bin/true"], chroot="/"), "sys.chroot: needs CAP_SYS_CHROOT"),
                 (doc(["/bin/true"], credential={"uid": 65534, "gid": 65534}),
                  "sys.credential: setting groups needs CAP_SETGID"))
        for i, (d, message) in enumerate(cases):
            spec_path = write(shared, d, f"{i}.json")
            os.chmod(spec_path, 0o644)
            for args in (["--check"], []):
                res = counted([PYFORKEXEC, "exec", *args, "--spec", spec_path], uid=65534)
                assert (res.returncode, res.processes) == (1, 1), res
                assert res.stderr.startswith(f"pyforkexec: spec: {message}"), res
    finally:
        shutil.rmtree(shared)


def test_check_foresees_namespaces_and_capabilities_this_process_lacks_the_privilege_for() -> None:
    """As uid 65534, without a new user namespace: a new network namespace (CAP_SYS_ADMIN, also in
    cloneflags beside an unshared user namespace: clone makes it first), a bounding-set drop
    (CAP_SETPCAP) and an ambient capability not permitted were OK for --check, and the start failed
    with EPERM (125) at clone, capbset_drop or set_cap. With a new user namespace they stay OK."""
    shared = Path(tempfile.mkdtemp(prefix="pfe-caps-check-"))
    try:
        shared.chmod(0o755)
        newnet = "sys.cloneflags: CLONE_NEWNET: a new namespace other than a user namespace needs"
        cases = ((doc(["/bin/true"], cloneflags=["newnet"]), 1, newnet),
                 (doc(["/bin/true"], cloneflags=["newnet"], unshareflags=["newuser"]), 1, newnet),
                 (doc(["/bin/true"], unshareflags=["newuts"]), 1, "sys.unshareflags: CLONE_NEWUTS: a new"),
                 (doc(["/bin/true"], capabilities={"keep": []}), 1,
                  "sys.capabilities: dropping from the bounding set needs CAP_SETPCAP"),
                 (doc(["/bin/true"], ambient_caps=[12]), 1, "sys.ambient_caps[0]: CAP_NET_ADMIN is not"),
                 (doc(["/bin/true"], cloneflags=["newuser", "newnet"], uid_mappings=[[0, 65534, 1]],
                      capabilities={"keep": []}), 0, ""),
                 (doc(["/bin/true"], unshareflags=["newuser", "newuts"], ambient_caps=[12]), 0, ""))
        for i, (d, status, message) in enumerate(cases):
            spec_path = write(shared, d, f"{i}.json")
            os.chmod(spec_path, 0o644)
            for args in (["--check"], []):
                res = counted([PYFORKEXEC, "exec", *args, "--spec", spec_path], uid=65534)
                assert res.returncode == status, res
                assert res.stderr.startswith(f"pyforkexec: spec: {message}" if message else ""), res
                if status:
                    assert res.processes == 1, res
    finally:
        shutil.rmtree(shared)


def test_a_root_launcher_from_a_login_drops_its_groups_for_a_child_that_keeps_none(tmp_path: Path) -> None:
    """Root from an ssh login has group 0 (and others): a service in a user namespace that denies
    setgroups, asking for no groups, would have kept them. The launcher (and the daemon) drops its own
    first, as nsenter's does; the child has none."""
    d = doc(["grep", "^Groups:", "/proc/self/status"], cloneflags=["CLONE_NEWUSER"],
            uid_mappings=[[0, 100000, 1]], gid_mappings=[[0, 100000, 1]], credential={"uid": 0, "gid": 0})
    spec_path = write(tmp_path, d)
    for args in (["--check"], []):
        res = run(["setpriv", "--groups=0,4", PYFORKEXEC, "exec", *args, "--spec", spec_path])
        assert res.returncode == 0, res
    res = run(["setpriv", "--groups=0,4", PYFORKEXEC, "exec", "--spec", spec_path])
    assert res.stdout.split() == ["Groups:"], res


@needs_root
def test_a_spec_from_a_non_blocking_pipe_is_read_to_its_end() -> None:
    """stdin a non-blocking pipe (a caller's own): the document was read as far as it had come, and the
    program ran without the part still to come (here its new UTS namespace and hostname)."""
    import threading
    import time

    r, w = os.pipe()
    os.set_blocking(r, False)
    os.write(w, b"version: 1\nargv: [/bin/hostname]\n")

    def rest() -> None:
        time.sleep(0.5)
        os.write(w, b"sys: {cloneflags: [newuts], hostname: pfe-nonblocking}\n")
        os.close(w)

    later = threading.Thread(target=rest)
    later.start()
    try:
        res = subprocess.run([PYFORKEXEC, "exec", "--spec", "-"], stdin=r, capture_output=True, text=True,
                             timeout=60, check=False)
    finally:
        later.join()
        os.close(r)
    assert (res.returncode, res.stdout) == (0, "pfe-nonblocking\n"), res


@pytest.mark.parametrize("kind", ["directory", "symlink loop", "dangling symlink", "unreadable"])
def test_a_spec_path_that_is_no_readable_file_starts_nothing(tmp_path: Path, kind: str) -> None:
    # What --spec names may be no document at all: a directory, a link that leads nowhere, a file this
    # uid cannot read. One line naming the file and the reason, status 1, no process (h155's probe).
    path = tmp_path / "spec.json"
    uid = None
    if kind == "directory":
        path.mkdir()
    elif kind == "symlink loop":
        path.symlink_to(path.name)
    elif kind == "dangling symlink":
        path.symlink_to(tmp_path / "pfe-nonexistent.json")
    else:
        path.write_text(json.dumps(doc(["/bin/true"])))
        path.chmod(0o600)
        tmp_path.chmod(0o755)
        uid = NOBODY
    why = {"directory": "Is a directory", "symlink loop": "Too many levels of symbolic links",
           "dangling symlink": "No such file or directory", "unreadable": "Permission denied"}[kind]
    for args in (["--check"], []):
        res = counted((PYFORKEXEC, "exec", *args, "--spec", str(path)), uid)
        assert (res.returncode, res.stdout, res.processes) == (1, "", 1), res
        assert res.stderr == f"pyforkexec: spec: cannot read {path}: {why}\n", res.stderr


def test_a_fifo_without_a_writer_as_the_spec_is_refused_not_waited_on(tmp_path: Path) -> None:
    """A FIFO that no program writes to, named by --spec: open(2) blocked for ever (the launcher, or
    the daemon at a start, hung). Now it reads as empty at once and is refused in one line, with no
    process; a FIFO with a writer there (a shell's <(...)) is still read to its end."""
    fifo = tmp_path / "spec.json"
    os.mkfifo(fifo)
    res = counted([PYFORKEXEC, "exec", "--spec", str(fifo)])
    assert "Traceback" not in res.stderr, res.stderr
    assert (res.returncode, res.stdout) == (1, ""), res.stderr
    assert res.stderr == f"pyforkexec: spec: {fifo}: a FIFO with no writer: nothing to read\n"
    assert res.processes == 1

    w = os.open(fifo, os.O_RDWR)  # a writer (O_RDWR: a FIFO opens so without a reader)
    try:
        os.write(w, json.dumps(doc(["true"])).encode())
        with subprocess.Popen([PYFORKEXEC, "exec", "--spec", str(fifo), "--check"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) as proc:
            wait_for(lambda: _has_open(proc.pid, fifo), "the launcher to open the FIFO")
            os.close(w)
            w = -1
            out, err = proc.communicate(timeout=60)
    finally:
        if w >= 0:
            os.close(w)
    assert (proc.returncode, out) == (0, "OK\n"), err


def _has_open(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open (its document then outlives the writer's close)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                return True
        except OSError:
            pass
    return False


@pytest.mark.parametrize("closed", [1, 2])
def test_a_launcher_with_stdout_or_stderr_closed_exits_as_its_program(tmp_path: Path, closed: int) -> None:
    """With fd 1 or 2 closed when Python started, sys.stdout or sys.stderr is None: exiting as the
    program exited raised AttributeError (a traceback, status 1) instead of the program's status 3."""
    d = doc(["sh", "-c", "exit 3"])  # (a cgroup to remove: the launcher reaps the program itself)
    d.setdefault("sys", {})["cgroup"] = {"path": f"pyforkexec-closed-{os.getpid()}-{closed}"}
    res = pfe("exec", "--spec", write(tmp_path, d), preexec_fn=lambda: os.close(closed))
    assert res.returncode == 3, res


def test_wait_false_with_stdout_closed_says_where_the_pid_went(tmp_path: Path) -> None:
    """Detached, with fd 1 closed: the pid went nowhere and the launcher exited 0."""
    d = doc(["sleep", "60"])
    d["wait"] = False
    d["proc"]["files"] = [0, None, None]
    d["argv"] = ["sleep", f"60.{os.getpid()}9"]
    res = pfe("exec", "--spec", write(tmp_path, d), preexec_fn=lambda: os.close(1))
    started = [int(p) for p in run(["pgrep", "-fx", " ".join(d["argv"])]).stdout.split()]
    for pid in started:
        os.kill(pid, signal.SIGKILL)
    assert res.returncode == 1 and res.stderr.endswith(f"the program runs, pid {started[0]}\n"), res


def _on_terminal(argv: list[str], controlling: bool) -> subprocess.CompletedProcess:
    """``argv`` with a new pty's slave as its stdin, in a session of its own whose controlling terminal
    that pty is (``controlling``) or which has none."""
    import pty
    import termios

    master, slave = pty.openpty()
    try:
        def session() -> None:
            if controlling:
                import fcntl

                fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        return run(argv, stdin=slave, start_new_session=True, preexec_fn=session)
    finally:
        os.close(slave)
        os.close(master)


@pytest.mark.parametrize("sys_doc", [{"noctty": True}, {"foreground": True},
                                     {"setsid": True, "setctty": True}],
                         ids=["noctty", "foreground", "setctty"])
def test_check_foresees_a_terminal_ioctl_on_what_is_no_terminal(tmp_path: Path, sys_doc: dict) -> None:
    """noctty (TIOCNOTTY on the child's fd 0), foreground (TIOCSPGRP on ctty) and setctty (TIOCSCTTY)
    passed --check on a launcher whose stdin is no terminal, or a terminal that is not its controlling
    one, and the start failed in the child (ENOTTY at ioctl, status 125). Both refuse it now alike,
    naming the field; on the launcher's controlling terminal both run."""
    path = write(tmp_path, doc(["true"], **sys_doc))
    cases = [("no terminal", None), ("another terminal", False), ("its terminal", True)]
    for name, controlling in cases:
        if controlling is None:
            checked = pfe("exec", "--spec", path, "--check", stdin=subprocess.DEVNULL, start_new_session=True)
            started = pfe("exec", "--spec", path, stdin=subprocess.DEVNULL, start_new_session=True)
        else:
            checked = _on_terminal([PYFORKEXEC, "exec", "--spec", path, "--check"], controlling)
            started = _on_terminal([PYFORKEXEC, "exec", "--spec", path], controlling)
        setctty = "setctty" in sys_doc
        if setctty and controlling:  # (refused otherwise: it would take this session's terminal)
            assert (checked.returncode, started.returncode, checked.stderr) == (1, 1, started.stderr), name
            continue
        if (controlling and not setctty) or (setctty and controlling is not None):
            assert (checked.returncode, started.returncode) == (0, 0), (name, checked, started)
            continue
        field = next(f for f in ("noctty", "foreground", "setctty") if f in sys_doc)
        assert (checked.returncode, started.returncode) == (1, 1), (name, checked, started)
        assert checked.stderr == started.stderr, (name, checked.stderr, started.stderr)
        assert checked.stderr.startswith(f"pyforkexec: spec: sys.{field}: "), checked.stderr
        assert "ENOTTY" in checked.stderr and len(checked.stderr.splitlines()) == 1


@pytest.mark.parametrize("fstype,kind", [("proc", "newpid"), ("sysfs", "newnet"), ("mqueue", "newipc"),
                                         ("cgroup2", "newcgroup")])
def test_check_foresees_a_namespaced_filesystem_its_new_user_namespace_does_not_own(
        tmp_path: Path, fstype: str, kind: str) -> None:
    """proc, sysfs, mqueue and cgroup2 show a namespace of the mounting child; in a new user namespace
    the kernel mounts one only if that user namespace owns it (proc: a PID namespace made by clone).
    Without it, --check said OK and the start failed in the child (EPERM at mount, status 125). Now
    both refuse it alike; with the namespace made along, both run."""
    mapped = {"uid_mappings": [[0, os.getuid(), 1]], "gid_mappings": [[0, os.getgid(), 1]],
              "capabilities": {"keep": []}}  # (else refused: the program could undo the mounts)
    mount = {"source": fstype, "target": "/mnt", "fstype": fstype}
    lacking = doc(["true"], cloneflags=["newuser", "newns"], mounts=[mount], **mapped)
    late = doc(["true"], cloneflags=["newuser", "newns"], unshareflags=[kind], mounts=[mount], **mapped)
    early = doc(["true"], cloneflags=[kind], unshareflags=["newuser", "newns"], mounts=[mount], **mapped)
    owning = doc(["true"], cloneflags=["newuser", "newns", kind], mounts=[mount], **mapped)
    for name, d, runs in (("lacking", lacking, False), ("unshared after", late, kind != "newpid"),
                          ("cloned before", early, False), ("owning", owning, True)):
        path = write(tmp_path, d)
        checked, started = pfe("exec", "--spec", path, "--check"), pfe("exec", "--spec", path)
        if runs:
            assert (checked.returncode, started.returncode) == (0, 0), (name, checked, started)
            continue
        assert (checked.returncode, started.returncode) == (1, 1), (name, checked, started)
        assert checked.stderr == started.stderr, (name, checked.stderr, started.stderr)
        assert checked.stderr.startswith("pyforkexec: spec: sys.mounts[0].fstype: "), checked.stderr


@pytest.mark.parametrize("flags", ["remount|bind|ro", "private", "rslave"])
def test_check_foresees_a_remount_or_propagation_change_of_no_mount_point(tmp_path: Path, flags: str) -> None:
    """A remount or a change of propagation changes the mount at its target; a directory that is no
    mount point has none of its own, and the kernel refuses it (EINVAL) in the child, after --check
    said OK. Both refuse it now alike, naming the target; over a mount of the list there, both run."""
    target = tmp_path / "dir"
    target.mkdir()
    change = {"source": None, "target": str(target), "flags": flags}
    bare = doc(["true"], cloneflags=["newns"], mounts=[change])
    mounted = doc(["true"], cloneflags=["newns"],
                  mounts=[{"source": "tmpfs", "target": str(target), "fstype": "tmpfs"}, change])
    path = write(tmp_path, bare)
    checked, started = pfe("exec", "--spec", path, "--check"), pfe("exec", "--spec", path)
    assert (checked.returncode, started.returncode) == (1, 1), (checked, started)
    assert checked.stderr == started.stderr, (checked.stderr, started.stderr)
    assert checked.stderr.startswith(f"pyforkexec: spec: sys.mounts[0].target: {target} is a directory here, "
                                     "not a mount point"), checked.stderr
    path = write(tmp_path, mounted)
    checked, started = pfe("exec", "--spec", path, "--check"), pfe("exec", "--spec", path)
    assert (checked.returncode, started.returncode) == (0, 0), (checked, started)


def test_check_foresees_a_working_directory_missing_in_a_chroot(tmp_path: Path) -> None:
    """proc.dir with sys.chroot alone (no mounts, no joined mount namespace): the child enters an
    absolute one in the chroot and a relative one from the launcher's working directory, which the
    chroot leaves it in. --check looked at neither (a new root might make it), and the start failed
    in the child (ENOENT at chdir, status 125). Both refuse it alike now; a directory there runs."""
    root = tmp_path / "root"
    (root / "there").mkdir(parents=True)
    (tmp_path / "here").mkdir()
    true = shutil.which("true")
    assert true is not None
    shutil.copy(true, root / "true")  # (a static program is not needed: it is never executed when refused)
    for wd, runs in (("/there", None), ("/missing", False), ("here", None), ("missing", False)):
        d = {"version": 1, "argv": ["/true"], "proc": {"dir": wd}, "sys": {"chroot": str(root)}}
        path = write(tmp_path, d)
        checked = pfe("exec", "--spec", path, "--check", cwd=tmp_path)
        started = pfe("exec", "--spec", path, cwd=tmp_path)
        if runs is None:  # (whether /true runs in the bare root depends on its libraries: not the point;
            # its dynamic loader missing there, --check refuses the program: 127, after proc.dir passed)
            assert checked.returncode in (0, 127) and "proc.dir" not in checked.stderr, (wd, checked)
            assert "(at chdir)" not in started.stderr, (wd, started)
            continue
        assert (checked.returncode, started.returncode) == (1, 1), (wd, checked, started)
        assert checked.stderr == started.stderr, (wd, checked.stderr, started.stderr)
        assert checked.stderr.startswith(f"pyforkexec: spec: proc.dir: {wd} is not a directory "), \
            checked.stderr
