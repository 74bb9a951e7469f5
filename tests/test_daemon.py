"""pyforkexec.daemon, the service runner of the collection's manager=direct: pid file and its lock,
readiness report, restart policies and their start limit, stopping. Real processes, --foreground so
that the test is the daemon's parent and can wait for it."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import wait_for
from helpers.daemon import Daemon
from helpers.lock_holder import hold_as_nobody, release
from helpers.marks import needs_root
from unit.plugins import name_holder, pid_reuse, sigint_only

from pyforkexec.service import daemon, singleton


@needs_root  # namespaces only root may create or join here
def test_the_daemon_reports_the_start_holds_its_pid_file_and_stops_on_sigterm(tmp_path: Path) -> None:
    d = Daemon(tmp_path, ["sleep", "60"], "--stop-timeout", "30",
               sys_attr={"cloneflags": ["CLONE_NEWUTS"], "hostname": "pfe-daemon"})
    try:
        assert d.ready.startswith("ok ")
        child = int(d.ready.split()[1])
        assert d.pid_file.read_text() == f"{d.proc.pid}\n"
        with open(d.pid_file) as f, pytest.raises(BlockingIOError):
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        with open(f"/proc/{d.proc.pid}/task/{d.proc.pid}/children") as f:
            assert f.read().split() == [str(child)]
        assert os.getpgid(child) == child  # a process group of its own
    finally:
        d.proc.send_signal(signal.SIGTERM)
    assert d.wait() == 0
    assert not d.pid_file.exists()
    assert d.log_lines() == [f"started {child}", f"stopping: SIGTERM to {child}",
                             f"{child} killed by SIGTERM", "stopped"]


def test_on_failure_restarts_until_the_start_limit(tmp_path: Path) -> None:
    d = Daemon(tmp_path, ["sh", "-c", "exit 3"], "--restart", "on-failure", "--start-limit-burst", "3",
               "--start-limit-interval", "600")
    assert d.ready.startswith("ok ")
    assert d.wait() == 3
    lines = d.log_lines()
    restarts = [x for x in lines if x.startswith("restarting")]
    assert restarts == ["restarting in 0.01s (restart=on-failure)"] * 2
    assert lines[-2:] == ["3 starts within 600s: giving up", "stopped"]


def _stopped_after_starts(d: Daemon, starts: int) -> None:
    """Wait until ``d`` has started its service ``starts`` times and still restarts it, then stop it
    (SIGTERM), which it must end with status 0."""
    assert d.ready.startswith("ok ")
    try:
        wait_for(lambda: d.proc.poll() is not None or
                 sum(x.startswith("started") for x in d.log_lines()) >= starts, f"{starts} starts")
        assert d.proc.poll() is None, d.log_lines()  # still restarting
    finally:
        d.proc.send_signal(signal.SIGTERM)
    assert d.wait() == 0


def test_a_start_limit_burst_of_0_is_no_start_limit(tmp_path: Path) -> None:
    """As systemd's StartLimitBurst=0 (and as --start-limit-interval 0 already was): no start limit.
    It gave up at the first restart ("0 starts within 10s: giving up")."""
    d = Daemon(tmp_path, ["sh", "-c", "exit 3"], "--restart", "on-failure", "--start-limit-burst", "0",
               "--restart-sec", "0.05")
    _stopped_after_starts(d, 9)
    lines = d.log_lines()
    assert not any("giving up" in x for x in lines), lines
    assert lines[-1] == "stopped", lines
    assert not d.pid_file.exists()
    started = [int(x.split()[1]) for x in lines if x.startswith("started")]
    assert len(started) >= 9
    assert not [pid for pid in started if os.path.exists(f"/proc/{pid}")], "a service process is left"


def test_on_failure_does_not_restart_a_clean_exit_and_no_never_restarts(tmp_path: Path) -> None:
    assert Daemon(tmp_path, ["true"], "--restart", "on-failure").wait() == 0
    d = Daemon(tmp_path, ["false"], "--restart", "no")
    assert d.wait() == 1
    assert not any(x.startswith("restarting") for x in d.log_lines())


@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGKILL])
def test_on_failure_takes_a_death_by_sigterm_for_a_clean_end(tmp_path: Path, signo: int) -> None:
    """systemd's Restart=on-failure does not restart a service ended by SIGHUP, SIGINT, SIGTERM or
    SIGPIPE (asked to end: clean); the daemon restarted it as a failure. Other signals still fail."""
    d = Daemon(tmp_path, ["sh", "-c", f"kill -{int(signo)} $$"], "--restart", "on-failure",
               "--start-limit-burst", "2")
    assert d.wait() == 128 + signo  # the service's status, restarted or not
    started = sum(x.startswith("started") for x in d.log_lines())
    assert started == (1 if signo == signal.SIGTERM else 2), d.log.read_text()


def test_always_restarts_a_clean_exit(tmp_path: Path) -> None:
    d = Daemon(tmp_path, ["true"], "--restart", "always", "--start-limit-burst", "2")
    assert d.wait() == 1
    assert sum(x.startswith("started") for x in d.log_lines()) == 2


def test_a_first_start_that_fails_is_reported_and_not_retried(tmp_path: Path) -> None:
    d = Daemon(tmp_path, ["/nonexistent/pfe-daemon-prog"], "--restart", "always")
    assert d.ready == "error fork/exec /nonexistent/pfe-daemon-prog: no such file or directory (at execve)"
    assert d.wait() == 1
    assert not d.pid_file.exists()


def test_a_failed_start_names_the_field_and_its_target(tmp_path: Path) -> None:
    """A namespace to join that is gone (a netns deleted under a service): the start fails (nothing runs
    in the daemon's own namespace instead), and the ready message and the log name the spec's entry and
    its path, not only the program and the step."""
    missing = str(tmp_path / "no-such-netns")
    d = Daemon(tmp_path, ["/bin/true"], sys_attr={"setns": [{"target": missing}]})
    expected = f"spec: sys.setns[0] ({missing}): fork/exec /bin/true: no such file or directory (at setns)"
    assert d.ready == f"error {expected}"
    assert d.wait() == 1
    assert f"start failed: {expected}" in d.log_lines()


@needs_root  # joining a namespace file
def test_a_start_pyforkexec_refuses_is_a_failed_start_not_a_traceback(tmp_path: Path) -> None:
    """A start that pyforkexec refuses when it opens the spec's joins (a ValueError: a namespace file
    that names the daemon's own namespace by then, as a /run/netns name bound again to the host's
    after a first start): the daemon ended with a traceback in its log, no ready message and no start
    counted, where another failed start is a "start failed" line and its restart policy. The refusal is
    that line now (the ready message for a first start), and the daemon stops as for any failed start."""
    d = Daemon(tmp_path, ["/bin/true"], "--restart", "always",
               sys_attr={"setns": [{"target": "/proc/self/ns/net"}]})
    expected = ("SysProcAttr.setns[0]: names the caller's own namespace (CLONE_NEWNET): the program would "
                "run in it as if no join had been asked; leave the entry out to run there")
    assert d.ready == f"error {expected}"
    assert d.wait() == 1
    assert d.log_lines() == [f"start failed: {expected}", "stopped"]
    assert "Traceback" not in d.log.read_text()
    assert not d.pid_file.exists()


def test_a_name_or_an_error_with_a_newline_is_one_log_line_and_one_ready_line(tmp_path: Path) -> None:
    """A --name and a program path (quoted by the start's error) holding a newline and an escape: each
    log line, and the ready message, is one line with them escaped, where a line of the input's own
    making (``forged ...``) stood in the log as if the daemon had written it."""
    program = "/nonexistent/pfe-daemon\nforged: started 1\x1b[2J"
    d = Daemon(tmp_path, [program], "--name", "t\nforged")
    shown = ("fork/exec /nonexistent/pfe-daemon\\nforged: started 1\\x1b[2J: no such file or directory"
             " (at execve)")
    assert d.ready == f"error {shown}"
    assert d.wait() == 1
    lines = d.log.read_text().splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        f"pyforkexec-daemon[t\\nforged]: start failed: {shown}", "pyforkexec-daemon[t\\nforged]: stopped"]


def test_a_cgroup_the_host_cannot_give_is_reported_as_exec_spec_reports_it(tmp_path: Path) -> None:
    """A controller the cgroup v2 root does not offer: the daemon's ready message and log said the
    CgroupError's own text (``[Errno 95] SysProcAttr.cgroup: ...``); they name the spec's field as
    ``pyforkexec exec --spec`` does for the same document, in the same words."""
    from pyforkexec.sandbox.cgroup import find_cgroup2

    with open(os.path.join(find_cgroup2(), "cgroup.controllers")) as f:
        offered = f.read().split()
    missing = [c for c in ("pids", "memory", "cpu") if c not in offered]
    if not missing:
        pytest.skip("the cgroup v2 root offers pids, memory and cpu: no controller to miss")
    limit = {"memory": {"memory_max": 1 << 30}, "pids": {"pids_max": 5}, "cpu": {"cpu_weight": 10}}
    cgroup = {"path": f"pyforkexec/pfe-daemon-{os.getpid()}", **limit[missing[0]]}
    d = Daemon(tmp_path, ["/bin/sleep", "1000"], sys_attr={"cgroup": cgroup})
    assert d.wait() == 1
    said = subprocess.run([sys.executable, "-m", "pyforkexec", "exec", "--spec", str(d.spec)],
                          capture_output=True, text=True, timeout=60)
    assert said.returncode == 1 and said.stderr.startswith("pyforkexec: spec: sys.cgroup: "), said.stderr
    expected = said.stderr.removeprefix("pyforkexec: ").rstrip("\n")
    assert d.ready == f"error {expected}"
    assert d.log_lines() == [f"start failed: {expected}", "stopped"]
    assert not d.pid_file.exists()


def test_an_invalid_spec_is_reported(tmp_path: Path) -> None:
    d = Daemon(tmp_path, ["true"], sys_attr={"hostname": "x"})
    assert d.ready.startswith("error spec: sys.hostname: needs a new UTS namespace")
    assert d.wait() == 1


def test_a_second_daemon_on_the_same_pid_file_refuses_to_start(tmp_path: Path) -> None:
    first = Daemon(tmp_path, ["sleep", "60"])
    try:
        second = Daemon(tmp_path, ["sleep", "60"])
        assert second.ready == f"error already running (pid {first.proc.pid}, which holds @{_name(first)})"
        assert second.wait() != 0
    finally:
        first.proc.send_signal(signal.SIGTERM)
        first.wait()


@needs_root  # a process of another user
def test_no_other_account_can_hold_the_pid_file_s_lock(tmp_path: Path) -> None:
    """The pid file was 0644, and flock takes a read-only file: a process of any account (a service's,
    whatever its isolation: /run is in its view) held the lock of one its daemon left when killed outright,
    and the next daemon was refused as "already running" (so was the collection's converge of it), for as
    long as that process lived. It is its owner's alone, one left by an earlier daemon (0644) too."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "d.pid").write_text("1\n")  # an earlier pyforkexec's daemon's, killed outright
    (tmp_path / "run" / "d.pid").chmod(0o644)
    first = Daemon(tmp_path, ["sleep", "60"])
    assert first.ready.startswith("ok "), first.ready
    first.proc.kill()  # outright: its pid file stays
    first.wait()
    assert first.pid_file.exists()
    assert oct(first.pid_file.stat().st_mode & 0o777) == oct(daemon.PID_FILE_MODE)
    run = os.open(tmp_path / "run", os.O_RDONLY | os.O_DIRECTORY)  # (from it: tmp_path is root's alone)
    try:
        pid, said = hold_as_nobody(["d.pid"], dir_fd=run)
    finally:
        os.close(run)
    try:
        second = Daemon(tmp_path, ["sleep", "60"])
        try:
            assert (said, second.ready.split()[0]) == (["EACCES"], "ok"), (said, second.ready)
        finally:
            if second.proc.poll() is None:
                second.proc.send_signal(signal.SIGTERM)
            second.wait()
    finally:
        release(pid)

def _name(d: Daemon) -> str:
    return singleton.name(str(d.pid_file))


def test_a_second_daemon_is_refused_though_the_first_s_pid_file_was_removed(tmp_path: Path) -> None:
    """The pid file's lock alone kept a daemon single: one removed by hand (rm, a cleaned /run) while its
    daemon ran let a second daemon lock a new file there and start a second copy of the service (and
    whoever looked by the file found the second only). The daemon holds its name (an abstract unix
    socket) while it lives, the service never: the second is refused and the first runs on, found by
    its name; the name goes with the daemon."""
    first, started = Daemon(tmp_path, ["sleep", "60"]), []
    try:
        assert first.ready.startswith("ok ")
        service = int(first.ready.split()[1])
        first.pid_file.unlink()
        started.append(Daemon(tmp_path, ["sleep", "60"]))
        second = started[0]
        assert second.ready == f"error already running (pid {first.proc.pid}, which holds @{_name(first)})"
        assert second.wait() == 1
        assert not first.pid_file.exists() and first.proc.poll() is None
        inode = singleton.bound_inode(str(first.pid_file))
        assert inode is not None and singleton.holder(str(first.pid_file)) == first.proc.pid
        assert not singleton.holds(service, inode)
    finally:
        for d in (first, *started):  # (a second one that started: stopped too)
            if d.proc.poll() is None:
                d.proc.send_signal(signal.SIGTERM)
            d.wait()
    assert singleton.bound_inode(str(first.pid_file)) is None


@needs_root  # a process of another user
@pytest.mark.parametrize("in_flight", [False, True], ids=["held", "in-flight"])
@pytest.mark.parametrize("waiter", [[], ["--no-waiter"]], ids=["waiter", "python"])
def test_another_user_s_process_holding_the_name_does_not_keep_the_daemon_from_starting(
        tmp_path: Path, waiter: list[str], in_flight: bool) -> None:
    """Any local user could bind a daemon's name (@pyforkexec-daemon:PID_FILE) first, and the daemon then
    refused to start ("already running"): an unprivileged user kept root's service from running. A name
    whose socket another user made is no daemon: the daemon starts, says once in its log that the name
    is held by that process, its pid file's lock alone keeping it single (a second daemon is still
    refused while the file is there), stops as usual, and never touches the squatter. Once the squatter
    is gone, the daemon takes the name at its service's next end. So too for a name whose socket no
    process holds (sent in a message nobody reads): its socket's owner tells whose it is."""
    pid_file = tmp_path / "run" / "d.pid"
    with name_holder.holding(singleton.name(str(pid_file)), user=65534, in_flight=in_flight) as squatter:
        who = "no process seen here, uid 65534's socket" if in_flight else \
            f"process {squatter.pid} of uid 65534"
        d = Daemon(tmp_path, ["sh", "-c", "sleep 0.05"], "--restart", "always", "--start-limit-burst", "0",
                   *waiter)
        try:
            assert d.ready.startswith("ok "), d.ready
            wait_for(lambda: d.proc.poll() is not None or
                     sum(x.startswith("started") for x in d.log_lines()) >= 3, "3 starts")
            assert d.proc.poll() is None, d.log_lines()
            assert pid_file.read_text() == f"{d.proc.pid}\n"
            held = [x for x in d.log_lines() if "is held by" in x]
            assert held == [f"the daemon's name @{singleton.name(str(pid_file))} is held by {who}, not a "
                            "daemon: starting without it, its pid file's lock alone keeping it single; one "
                            "daemon per service if its pid file is removed is not guaranteed for this run"]
            assert singleton.held_by(str(pid_file)) == (None if in_flight else squatter.pid, 65534)
            second = Daemon(tmp_path, ["sh", "-c", "sleep 0.05"])  # (the same spec: it rewrites the file)
            assert second.ready.startswith("error already running"), second.ready
            assert second.wait() == 1
        except BaseException:
            d.proc.kill()
            d.wait()
            raise
        assert squatter.poll() is None
        squatter.kill()
        squatter.wait()
        try:
            wait_for(lambda: d.proc.poll() is not None or singleton.holder(str(pid_file)) == d.proc.pid,
                     "the name taken")
            assert d.proc.poll() is None, d.log_lines()
        finally:
            d.proc.send_signal(signal.SIGTERM)
        assert d.wait() == 0
    assert d.log_lines()[-1] == "stopped" and not pid_file.exists()


@pytest.mark.parametrize("waiter", [[], ["--no-waiter"]], ids=["waiter", "python"])
def test_the_daemon_holds_its_name_across_restarts_and_its_service_never_does(tmp_path: Path,
                                                                              waiter: list[str]) -> None:
    """The name's socket goes through the daemon's execs (the waiter and back) and restarts, and never
    to a service (close-on-exec): a service holding it would keep a second daemon out after its own."""
    d = Daemon(tmp_path, ["sh", "-c", "sleep 0.05"], "--restart", "always", "--start-limit-burst", "0",
               *waiter)
    path = str(d.pid_file)
    try:
        wait_for(lambda: d.proc.poll() is not None or
                 sum(x.startswith("started") for x in d.log_lines()) >= 4, "4 starts")
        assert d.proc.poll() is None, d.log_lines()
        assert singleton.holder(path) == d.proc.pid
        inode = singleton.bound_inode(path)
        assert inode is not None
        with open(f"/proc/{d.proc.pid}/task/{d.proc.pid}/children") as f:
            assert not any(singleton.holds(int(pid), inode) for pid in f.read().split())
    finally:
        d.proc.send_signal(signal.SIGTERM)
    assert d.wait() == 0
    assert singleton.bound_inode(path) is None


def test_program_lookup_uses_the_spec_path_inside_its_new_root(tmp_path: Path) -> None:
    from pyforkexec import spec as specmod

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "tool").write_text("#!/bin/sh\n")
    (tmp_path / "bin" / "tool").chmod(0o755)
    doc = {"version": 1, "argv": ["tool"], "proc": {"env": ["PATH=/bin"]},
           "sys": {"pivot_root": str(tmp_path)}}
    assert daemon.Daemon.program(specmod.load_spec(doc)) == "/bin/tool"
    doc["argv"] = ["not-there"]
    assert daemon.Daemon.program(specmod.load_spec(doc)) == "not-there"


def test_a_daemon_killed_outright_takes_its_service_along(tmp_path: Path) -> None:
    # In its own PID namespace (as a service usually is), and in a new session of its own, so that
    # nothing but the parent-death signal can end it when the daemon dies.
    d = Daemon(tmp_path, ["sleep", "600"], sys_attr={"cloneflags": ["CLONE_NEWPID", "CLONE_NEWUSER"],
                                                     "uid_mappings": [[0, os.getuid(), 1]],
                                                     "gid_mappings": [[0, os.getgid(), 1]], "setsid": True})
    assert d.ready.startswith("ok ")
    child = int(d.ready.split()[1])
    pidfd = os.pidfd_open(child)
    try:
        d.proc.kill()
        d.wait()
        assert select.select([pidfd], [], [], 10)[0], "the service outlived its daemon"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
        os.close(pidfd)


def test_a_spec_s_own_pdeathsig_is_kept(tmp_path: Path) -> None:
    mark = tmp_path / "mark"
    script = f"trap 'echo TERM > {mark}; exit 0' TERM; echo up > {mark}; while :; do sleep 0.05; done"
    d = Daemon(tmp_path, ["sh", "-c", script], sys_attr={"pdeathsig": "SIGTERM", "setsid": True})
    assert d.ready.startswith("ok ")
    child = int(d.ready.split()[1])
    wait_for(mark.exists, "the service to start")
    pidfd = os.pidfd_open(child)
    try:
        d.proc.kill()
        d.wait()
        assert select.select([pidfd], [], [], 10)[0], "the service outlived its daemon"
        assert mark.read_text() == "TERM\n"  # its own signal, not the daemon's default SIGKILL
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
        os.close(pidfd)


# ---- the command line: read without argparse in its plain form, argparse's for everything else -------

BASE = ["--name", "web", "--spec", "/etc/w.json", "--pid-file", "/run/w.pid", "--log-file", "/var/log/w"]
PLAIN = [
    BASE,
    [*BASE, "--restart", "on-failure", "--restart-sec", "0.5", "--stop-timeout", "3", "--start-limit-burst",
     "7", "--start-limit-interval", "1e1", "--ready-fd", "5", "--foreground", "--no-waiter"],
    [*BASE, "--ready-fd", "5", "--start-lock-fd", "4"],
    [*BASE, "--stop-signal", "SIGINT"], [*BASE, "--stop-signal", "rtmin+2"], [*BASE, "--stop-signal", "10"],
    [*BASE, "--restart", "always", "--resume", '{"pid": 12, "pid_fd": 4, "log_fd": 3, "starts": [1.5]}',
     "--waited", "stop", "--exited-at", "123456"],
    ["--log-file", "", "--name", "x y", "--spec", "s", "--pid-file", "p", "--name", "again", "--restart-sec",
     "inf", "--foreground", "--foreground"],  # empty values, a repeated option: the last one wins
]
NOT_PLAIN = [
    [],
    BASE[:-2],  # a required option missing
    [*BASE, "--restart", "sometimes"],  # not a choice
    [*BASE, "--waited", "later"],
    [*BASE, "--stop-signal", "NOSUCH"],  # no signal
    [*BASE, "--restart-sec", "soon"],  # not a number
    [*BASE, "--start-limit-burst", "1.5"],
    [*BASE, "--resume", "{not json"],
    [*BASE, "--resume", '{"pid": 12, "log_fd": 3}'],  # a state without its pid file's fd
    [*BASE, "--ready-fd", "-1"],  # a value starting with -: argparse's rules
    [*BASE, "--ready-fd"],  # no value
    [*BASE, "--restart=always"],  # the = form
    [*BASE, "--fore"],  # an abbreviation
    [*BASE, "extra"],  # a positional argument
    [*BASE, "--help"],
]


@pytest.mark.parametrize("argv", PLAIN)
def test_the_plain_command_line_reads_as_argparse_reads_it(argv: list[str]) -> None:
    plain = daemon._parse_plain(argv)
    assert plain is not None
    assert vars(plain) == vars(daemon.argument_parser().parse_args(argv))
    assert vars(daemon.parse_args(argv)) == vars(plain)


@pytest.mark.parametrize("argv", NOT_PLAIN)
def test_any_other_command_line_is_argparse_s(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert daemon._parse_plain(argv) is None
    try:
        expected = vars(daemon.argument_parser().parse_args(argv))
    except SystemExit as e:  # an error (status 2) or --help (0), in argparse's words
        said = capsys.readouterr()
        with pytest.raises(SystemExit) as got:
            daemon.parse_args(argv)
        assert got.value.code == e.code
        assert capsys.readouterr() == said
    else:
        assert vars(daemon.parse_args(argv)) == expected


# --resume states the daemon cannot go on from, and the key its refusal names. Only the waiter writes
# --resume; these gave a traceback (KeyError, TypeError) once the daemon was already taking over.
STATE = {"pid": 12, "pid_fd": 4, "log_fd": 3, "name_fd": 5, "starts": [1.5, 2],
         "cgroup": {"path": "/sys/fs/cgroup/x", "created": {"/sys/fs/cgroup/x": 7}, "remove": True,
                    "root": "", "kill": False}}
BAD_STATES = [
    ("not JSON", "{"), ("a JSON object", "[1]"), ("a JSON object", "null"), ("pid", "{}"),
    *((key, json.dumps({k: v for k, v in STATE.items() if k != key})) for key in ("pid", "pid_fd", "log_fd",
                                                                                  "starts")),
    *((key, json.dumps({**STATE, key: value})) for key, value in (
        ("pid", 0), ("pid", True), ("pid", "12"), ("pid", 1.0), ("pid_fd", -1), ("log_fd", None),
        ("name_fd", -2), ("name_fd", False), ("starts", {}), ("starts", ["1"]), ("starts", [True]),
        ("cgroup", []), ("cgroup", {"path": "/x"}), ("cgroup", {**STATE["cgroup"], "created": {"/x": -1}}),
        ("cgroup", {**STATE["cgroup"], "remove": 1}), ("cgroup", {**STATE["cgroup"], "root": None}))),
    ("starts", '{"pid": 12, "pid_fd": 4, "log_fd": 3, "starts": [NaN]}'),
]


@pytest.mark.parametrize(("key", "state"), BAD_STATES)
def test_a_resume_state_the_daemon_cannot_go_on_from_is_refused_naming_its_key(
        key: str, state: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as got:
        daemon.parse_args([*BASE, "--resume", state, "--waited", "run"])
    assert got.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("python -m pyforkexec.daemon: error: argument --resume: ") and key in last, last


def test_the_daemon_s_own_resume_state_is_taken() -> None:
    assert daemon.resume_state(json.dumps(STATE)) == STATE
    assert daemon.resume_state(json.dumps({**STATE, "cgroup": None})) == {**STATE, "cgroup": None}
    old = {k: v for k, v in STATE.items() if k != "name_fd"}  # a daemon from before the name's fd
    assert daemon.resume_state(json.dumps(old)) == old


@pytest.mark.parametrize(("state", "said"), [
    ({"pid": 1, "pid_fd": 1, "log_fd": 2, "starts": []}, "--resume: pid 1: not a child of this process"),
    ({"pid": 1, "pid_fd": 1, "log_fd": 987, "starts": []}, "--resume: log_fd 987: Bad file descriptor"),
    ({"pid": 1, "pid_fd": 986, "log_fd": 2, "starts": []}, "--resume: pid_fd 986: Bad file descriptor"),
    ({"pid": 1, "pid_fd": 1, "log_fd": 2, "name_fd": 985, "starts": []},
     "--resume: name_fd 985: Bad file descriptor"),
], ids=["not-a-child", "log-fd", "pid-fd", "name-fd"])
def test_a_resume_state_naming_what_this_process_has_not_is_refused(tmp_path: Path, state: dict[str, object],
                                                                     said: str) -> None:
    """A well-formed state whose fds are not open or whose pid is no child of the daemon's process: one
    line naming it, status 1, nothing taken over (was a traceback: EBADF, ECHILD)."""
    argv = ["--name", "t", "--spec", str(tmp_path / "s.json"), "--pid-file", str(tmp_path / "d.pid"),
            "--log-file", str(tmp_path / "d.log"), "--foreground", "--resume", json.dumps(state),
            "--waited", "run"]
    got = subprocess.run([sys.executable, "-m", "pyforkexec.daemon", *argv], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=60)
    assert (got.returncode, got.stderr) == (1, f"python -m pyforkexec.daemon: {said}\n")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("waiter", [[], ["--no-waiter"]], ids=["waiter", "python"])
def test_a_stop_that_comes_as_the_service_exits_starts_nothing(tmp_path: Path, waiter: list[str]) -> None:
    """The service asks its daemon to stop and exits at once, so the SIGTERM arrives while (or just
    after) the service ends, with restart always and no delay: a stop is a stop, never a start after
    it (it was read only while the service still ran, and a restart came first)."""
    script = 'kill -TERM "$PPID"; exit 3'  # the daemon (or its waiter) is the service's parent
    for _ in range(5):
        d = Daemon(tmp_path, ["sh", "-c", script], "--restart", "always", "--restart-sec", "0", *waiter)
        assert d.ready.startswith("ok ")
        assert d.wait() == 0
        lines = d.log_lines()
        assert sum(x.startswith("started") for x in lines) == 1, lines
        assert lines[-1] == "stopped" and not any(x.startswith("restarting") for x in lines), lines
        d.log.unlink()


@pytest.mark.parametrize(("option", "value"), [
    ("--stop-timeout", "-1"), ("--stop-timeout", "nan"), ("--stop-timeout", "inf"), ("--restart-sec", "-0.5"),
    ("--start-limit-interval", "nan"), ("--start-limit-burst", "-1")])
def test_a_number_the_daemon_cannot_use_is_refused_before_anything_starts(tmp_path: Path, option: str,
                                                                          value: str) -> None:
    d = Daemon(tmp_path, ["sleep", "60"], option, value)
    assert d.ready.startswith(f"error {option}: must be from 0 to "), d.ready
    stderr = d.proc.stderr.read().decode()
    assert d.wait() == 1
    assert stderr.splitlines() == [f"python -m pyforkexec.daemon: {d.ready[len('error '):]}"]
    assert not d.pid_file.exists()


@pytest.mark.parametrize("which", ["pid file", "log file"])
def test_a_file_the_daemon_cannot_open_is_one_line_and_an_error_on_the_ready_fd(tmp_path: Path,
                                                                                which: str) -> None:
    """A pid or log file that is a directory (or that it may not write) was a Python traceback, and
    the module waiting on the ready fd got nothing but its end."""
    (tmp_path / ("run/d.pid" if which == "pid file" else "d.log")).mkdir(parents=True)
    d = Daemon(tmp_path, ["sleep", "60"])
    option = "--pid-file" if which == "pid file" else "--log-file"
    path = d.pid_file if which == "pid file" else d.log
    assert d.ready == f"error {option} {path}: Is a directory", d.ready
    stderr = d.proc.stderr.read().decode()
    assert d.wait() == 1
    assert stderr.splitlines() == [f"python -m pyforkexec.daemon: {d.ready[len('error '):]}"]


def test_a_log_file_that_is_a_fifo_without_a_reader_is_refused_at_once(tmp_path: Path) -> None:
    """A FIFO at the log's path (made by hand) blocked the daemon's open until a reader came: its start
    said nothing, and the collection's module waited out its start timeout (30 s) before it killed it.
    Refused at once now, naming the file."""
    log, spec = tmp_path / "d.log", tmp_path / "s.json"
    os.mkfifo(log)
    spec.write_text(json.dumps({"version": 1, "argv": ["sleep", "60"]}))
    r, w = os.pipe()
    argv = [sys.executable, "-m", "pyforkexec.daemon", "--name", "t", "--spec", str(spec), "--pid-file",
            str(tmp_path / "d.pid"), "--log-file", str(log), "--ready-fd", str(w), "--foreground"]
    proc = subprocess.Popen(argv, pass_fds=(w,), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(w)
    try:
        ready = None
        if select.select([r], [], [], 10)[0]:
            ready = os.read(r, 4096).decode().strip()
    finally:
        os.close(r)
        if ready is None:  # (blocked: never reports)
            proc.kill()
        stderr = proc.communicate(timeout=60)[1].decode()
    assert ready == f"error --log-file {log}: No such device or address", "the daemon blocked on the FIFO"
    assert proc.returncode == 1
    assert stderr.splitlines() == [f"python -m pyforkexec.daemon: {ready[len('error '):]}"]
    assert not (tmp_path / "d.pid").exists()


def test_a_daemon_that_locked_a_pid_file_another_one_unlinked_takes_the_file_there(tmp_path: Path) -> None:
    """A stopping daemon unlinks its pid file while it holds it: a daemon that opened that file just
    before locks a file no longer at the path. It must go to the file at the path (and find it locked
    by a daemon that came meanwhile), not run as a second copy with nothing on disk to say so."""
    path = tmp_path / "d.pid"
    path.write_text("1\n")
    stale = os.open(path, os.O_RDWR)  # the stopping daemon's file, about to be unlinked
    fcntl.flock(stale, fcntl.LOCK_EX)
    os.unlink(path)
    now = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # a daemon that came meanwhile holds the new one
    fcntl.flock(now, fcntl.LOCK_EX)
    os.write(now, b"4242\n")
    try:
        real_open = os.open
        calls: list[str] = []

        def first_the_unlinked_file(p: str, flags: int, mode: int = 0o777) -> int:
            # the first open finds the stopping daemon's file (a dup of it); later ones, the path's
            calls.append(p)
            return os.dup(stale) if len(calls) == 1 else real_open(p, flags, mode)

        fcntl.flock(stale, fcntl.LOCK_UN)  # the stopping daemon closes it
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(daemon.os, "open", first_the_unlinked_file)
            with pytest.raises(SystemExit, match=r"already running \(pid 4242, "):
                daemon.lock_pid_file(str(path))
        assert len(calls) == 2
    finally:
        os.close(stale)
        os.close(now)


def test_a_spec_s_own_files_are_refused_rather_than_ignored(tmp_path: Path) -> None:
    """Under the daemon the service gets /dev/null and its log as 0, 1 and 2: a spec that asks for
    other files is refused naming proc.files, rather than run without them."""
    d = Daemon(tmp_path, ["true"], proc={"files": [None, None, None]})
    assert d.ready.startswith("error spec: proc.files: a service under the daemon gets /dev/null"), d.ready
    assert d.wait() == 1


@pytest.mark.parametrize(("fields", "message"), [
    (dict(top={"wait": False}), "error spec: wait: a service under the daemon is supervised by it"),
    (dict(sys_attr={"pidfd": True}), "error spec: sys.pidfd: would give the launcher a pidfd"),
])
def test_a_spec_field_the_daemon_ignores_is_refused(tmp_path: Path, fields: dict, message: str) -> None:
    """``"wait": false`` (detach) was supervised anyway, ``sys.pidfd`` did nothing: each refused
    naming it, and no service started."""
    marker = tmp_path / "ran"
    d = Daemon(tmp_path, ["/usr/bin/touch", str(marker)], **fields)
    assert d.ready.startswith(message), d.ready
    assert d.wait() == 1 and not marker.exists()


def test_a_sigterm_right_after_the_pid_file_is_locked_is_a_stop(tmp_path: Path) -> None:
    """SIGTERM comes the moment the pid file is locked, before the daemon's handlers are in: its
    default action used to end the daemon there, the pid file left behind with a dead pid. Blocked
    until the handlers are in, it is a stop like any other: no service is left, nor the file."""
    spec, pid_file = tmp_path / "s.json", tmp_path / "d.pid"
    spec.write_text(json.dumps({"version": 1, "argv": ["/bin/sleep", "60"]}))
    script = f"""
import os, signal, sys
from pyforkexec.service import daemon, singleton
def tracer(frame, event, arg):
    if frame.f_code.co_name == "lock_pid_file" and event == "return":
        sys.settrace(None)
        os.kill(os.getpid(), signal.SIGTERM)
    return tracer if frame.f_code.co_name == "lock_pid_file" else None
sys.settrace(tracer)
sys.exit(daemon.main(["--name", "t", "--spec", {str(spec)!r}, "--pid-file", {str(pid_file)!r},
                      "--log-file", {str(tmp_path / "d.log")!r}, "--foreground"]))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode != -signal.SIGTERM, "killed by the signal's default action"
    assert not pid_file.exists(), f"pid file left (status {proc.returncode}): {proc.stderr}"
    assert (tmp_path / "d.log").read_text().rstrip().endswith("stopped")


def test_a_log_line_that_cannot_be_written_does_not_end_the_daemon() -> None:
    """A full disk under the log: the daemon's log() raised ENOSPC right after the start, the daemon
    died, and its service with it (pdeathsig), reported as "did not start: no reason given"."""
    args = daemon.parse_args(["--name", "t", "--spec", "s.json", "--pid-file", "d.pid",
                              "--log-file", "d.log"])
    r, w = os.pipe()
    os.close(r)  # a write to this pipe fails (EPIPE: Python ignores SIGPIPE), as a full disk's (ENOSPC)
    try:
        daemon.Daemon(args, w).log("started 1")  # no OSError
    finally:
        os.close(w)


def test_a_service_killed_by_a_real_time_signal_is_restarted(tmp_path: Path) -> None:
    """A real-time signal has no name of its own: the daemon's log line raised ValueError ("35 is not a
    valid Signals"), the daemon died, and the service was never restarted."""
    import signal

    d = Daemon(tmp_path, ["sh", "-c", "kill -s RTMIN+1 $$ 2>/dev/null || kill -35 $$"], "--restart",
               "on-failure", "--start-limit-burst", "2", "--start-limit-interval", "600")
    assert d.wait() == 128 + signal.SIGRTMIN + 1  # given up at the start limit, as its service ended
    killed = [x for x in d.log_lines() if " killed by " in x]
    assert len(killed) == 2 and all(x.endswith("killed by SIGRTMIN+1") for x in killed), d.log_lines()


@pytest.mark.parametrize("waiter", [[], ["--no-waiter"]], ids=["waiter", "python"])
def test_the_start_limit_counts_the_starts_before_the_next_one_not_before_the_exit(tmp_path: Path,
                                                                                   waiter: list[str]) -> None:
    """Starts at least --restart-sec 0.5 apart: never more than 2 within any 0.9 s, so a burst of 2 is
    never reached (systemd checks its start limit when the start comes, after RestartSec). The daemon
    counted the starts within the interval before the exit, as if the next start came then: it gave up
    at the second exit ("2 starts within 0.9s: giving up")."""
    d = Daemon(tmp_path, ["sh", "-c", "exit 3"], "--restart", "always", "--restart-sec", "0.5",
               "--start-limit-burst", "2", "--start-limit-interval", "0.9", *waiter)
    _stopped_after_starts(d, 4)
    assert not any("giving up" in x for x in d.log_lines()), d.log_lines()


@pytest.mark.parametrize("waiter", [[], ["--no-waiter"]], ids=["waiter", "python"])
def test_a_stop_reaches_a_stopped_service_at_once(tmp_path: Path, waiter: list[str]) -> None:
    """A service stopped by SIGSTOP: the stop's SIGTERM stayed pending until the stop timeout's SIGKILL,
    so it never had the chance to end cleanly. systemd follows the stop signal with SIGCONT; so does
    the daemon now, and the service dies of the SIGTERM."""
    d = Daemon(tmp_path, ["sleep", "1000"], "--stop-timeout", "30", *waiter)
    assert d.ready.startswith("ok ")
    child = int(d.ready.split()[1])
    try:
        os.kill(child, signal.SIGSTOP)
        stat = Path(f"/proc/{child}/stat")
        wait_for(lambda: stat.read_text().rsplit(") ", 1)[1][0] == "T", "the service stopped")
    finally:
        d.proc.send_signal(signal.SIGTERM)
    assert d.wait() == 0
    assert d.log_lines()[-2:] == [f"{child} killed by SIGTERM", "stopped"], d.log_lines()


_SIGINT_ONLY = sigint_only.PROGRAM  # (PID 1 of its own PID namespace, it ends on SIGINT only)
_OWN_PID_NAMESPACE = {"cloneflags": ["CLONE_NEWPID", "CLONE_NEWUSER"], "uid_mappings": [[0, os.getuid(), 1]],
                      "gid_mappings": [[0, os.getgid(), 1]]}


@pytest.mark.parametrize("waiter", [[], ["--no-waiter"]], ids=["waiter", "python"])
@pytest.mark.parametrize(("given", "sent"), [
    ([], "SIGTERM"), (["--stop-signal", "SIGINT"], "SIGINT"), (["--stop-signal", "int"], "SIGINT"),
    (["--stop-signal", "2"], "SIGINT")])
def test_a_stop_sends_the_stop_signal(tmp_path: Path, waiter: list[str], given: list[str], sent: str) -> None:
    """A PID 1 that handles SIGINT only: by default the stop's SIGTERM is lost and the stop waits out
    --stop-timeout (then SIGKILL); with --stop-signal SIGINT (by name in any case, or by number) it
    ends by itself at once."""
    mark = tmp_path / "mark"
    d = Daemon(tmp_path, [sys.executable, "-c", _SIGINT_ONLY, str(mark)], "--stop-timeout", "1", *given,
               *waiter, sys_attr=_OWN_PID_NAMESPACE)
    assert d.ready.startswith("ok "), d.ready
    child = int(d.ready.split()[1])
    try:
        wait_for(lambda: mark.exists() and mark.read_text() == "up", "the service's handler")
    finally:
        d.proc.send_signal(signal.SIGTERM)
    assert d.wait() == 0
    ended = ([f"{child} exited with status 0"] if sent == "SIGINT" else
             [f"{child} still running 1s after SIGTERM: SIGKILL", f"{child} killed by SIGKILL"])
    assert d.log_lines() == [f"started {child}", f"stopping: {sent} to {child}", *ended, "stopped"]
    assert mark.read_text() == ("interrupted" if sent == "SIGINT" else "up")


@pytest.mark.parametrize(("value", "said"), [
    ("SIGKILL", "--stop-signal: SIGKILL cannot be a stop signal: the stop sends it after --stop-timeout"),
    ("9", "--stop-signal: SIGKILL cannot be a stop signal"),
    ("stop", "--stop-signal: SIGSTOP cannot be a stop signal: it ends no process")])
def test_a_stop_signal_that_cannot_stop_the_service_is_refused_before_anything_starts(
        tmp_path: Path, value: str, said: str) -> None:
    d = Daemon(tmp_path, ["sleep", "60"], "--stop-signal", value)
    assert d.ready.startswith(f"error {said}"), d.ready
    stderr = d.proc.stderr.read().decode()
    assert d.wait() == 1
    assert stderr.splitlines() == [f"python -m pyforkexec.daemon: {d.ready[len('error '):]}"]
    assert not d.pid_file.exists()


@pytest.mark.parametrize("value", ["NOSUCH", "0", "65", "SIGRTMIN+99", ""])
def test_a_stop_signal_that_is_no_signal_is_refused(tmp_path: Path, value: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        daemon.parse_args([*BASE, "--stop-signal", value])
    assert e.value.code == 2
    assert f"argument --stop-signal: invalid stop_signal value: {value!r}" in capsys.readouterr().err


# Inside a PID namespace of its own: the daemon's supervise() of a service that leads its process
# group and exits at once. The Process's reap is the real one; right after it, the next fork gets the
# service's pid (ns_last_pid, in this namespace only) and makes it a session of its own: a bystander
# whose group has the id the service's group had, started at the moment a busy host may start one.
_GROUP_AFTER_REAP = r"""
import json, os
from types import SimpleNamespace
from pid_reuse import bystander_on, killed
from pyforkexec.process import Process
from pyforkexec.service import daemon, singleton

class Reaped(Process):
    bystander = None

    def _reap(self, options):
        code = super()._reap(options)
        if code is not None and self.bystander is None:
            self.bystander = bystander_on(self.pid, session=True)
        return code

r, w = os.pipe()
service = os.fork()
if service == 0:
    os.setpgid(0, 0)
    os.write(w, b".")
    os._exit(3)
os.read(r, 1)
proc = Reaped(service)
args = SimpleNamespace(ready_fd=-1, start_lock_fd=-1, stop_timeout=5.0, name="h105-group")
code = daemon.Daemon(args, os.open(os.devnull, os.O_WRONLY)).supervise(proc)
alive = not killed(proc.bystander)
print(json.dumps({"code": code, "reused": proc.bystander == service, "bystander_alive": alive}))
"""


@needs_root  # a PID namespace whose next pid it steers
def test_the_group_kill_after_a_service_s_exit_never_reaches_a_group_that_reused_its_id() -> None:
    """supervise() reaped the service, then SIGKILLed its process group by number (what it left
    behind): once the service was reaped the number was free, and a process given it that had made
    a session of its own was killed with its group. The group is killed before the reap now, while
    the exited service still holds the number."""
    assert pid_reuse.run(_GROUP_AFTER_REAP) == {"code": 3, "reused": True, "bystander_alive": True}


# A daemon of a pyforkexec from before the name, as its waiter hands it back to this one: its log and
# locked pid file open, its service (here a child that exits at once) to reap, a state without the
# name's fd. argv: spec, pid file, log. The process execs the daemon (the same pid, the same child).
_HANDED_BACK = r"""
import json, os, sys
from pyforkexec.service.daemon import lock_pid_file
spec, pid_file, log = sys.argv[1:4]
log_fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
pid_fd = lock_pid_file(pid_file)
for fd in (log_fd, pid_fd):  # kept across the exec, as the waiter keeps them
    os.set_inheritable(fd, True)
service = os.fork()
if service == 0:
    os._exit(0)
state = {"pid": service, "pid_fd": pid_fd, "log_fd": log_fd, "starts": [], "cgroup": None}
os.execv(sys.executable, [sys.executable, "-m", "pyforkexec.daemon", "--name", "t", "--spec", spec,
                          "--pid-file", pid_file, "--log-file", log, "--restart", "always", "--foreground",
                          "--resume", json.dumps(state), "--waited", "run"])
"""


def test_a_daemon_handed_back_by_a_waiter_from_before_the_name_takes_it(tmp_path: Path) -> None:
    """A daemon started before an upgrade holds no name; its waiter execs the upgraded daemon at its
    service's next end. That one takes the name then, so that no second daemon starts beside it."""
    spec, pid_file, log = tmp_path / "s.json", tmp_path / "d.pid", tmp_path / "d.log"
    spec.write_text(json.dumps({"version": 1, "argv": ["sleep", "60"]}))
    proc = subprocess.Popen([sys.executable, "-c", _HANDED_BACK, str(spec), str(pid_file), str(log)],
                            stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: proc.poll() is not None or "started" in (log.read_text() if log.exists() else ""),
                 "a start")
        assert proc.poll() is None, log.read_text()
        assert singleton.holder(str(pid_file)) == proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert singleton.bound_inode(str(pid_file)) is None


def test_the_way_back_from_the_waiter_drops_what_the_first_start_alone_uses():
    """--ready-fd and --start-lock-fd name fds of the first start (closed once it is reported): the
    command line the daemon comes back from its waiter with has neither (nor a stale fd number)."""
    assert daemon.wanted_argv([*BASE, "--ready-fd", "5", "--start-lock-fd", "4", "--restart", "always",
                               "--resume", "{}", "--waited", "run"]) == [*BASE, "--restart", "always"]


def _ignored(pid: int) -> set[int]:
    with open(f"/proc/{pid}/status") as f:
        mask = int(next(line for line in f if line.startswith("SigIgn:")).split()[1], 16)
    return {signo for signo in range(1, 65) if mask & 1 << (signo - 1)}


def test_signals_its_starter_ignored_are_not_ignored_by_the_service(tmp_path: Path) -> None:
    """Started by a process that ignores SIGQUIT and SIGALRM (a non-interactive shell's background job
    ignores SIGINT and SIGQUIT), the daemon passed those SIG_IGN on to its service, across its execve:
    a stop with --stop-signal SIGQUIT waited out the whole --stop-timeout, and systemd starts every
    service with no signal ignored."""
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGQUIT, signal.SIGALRM, signal.SIGINT)}
    try:
        d = Daemon(tmp_path, ["sleep", "60"], "--stop-signal", "SIGQUIT", "--stop-timeout", "30")
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    try:
        assert d.ready.startswith("ok "), d.ready
        service = int(d.ready.split()[1])
        assert _ignored(service) == set()
    finally:
        d.proc.send_signal(signal.SIGTERM)
    assert d.wait() == 0
    assert d.log_lines()[-2:] == [f"{service} killed by SIGQUIT", "stopped"]


@pytest.mark.parametrize(("starts", "then", "allowed"), [
    # (the starts so far, the next one and whether it may come: burst 2, interval 10 s)
    ([0, 9.8, 10.1], 10.3, True),  # 10.1 began a window (the first after 0's): 10.3 is its second
    ([0, 6, 10.5], 11, True),  # 10.5 began one too
    ([0, 9.8, 10.1, 10.3], 10.5, False),  # a third in 10.1's window
    ([0, 5], 9, False),  # a third within 10 s of the first
    ([0, 5], 10.5, True),
    ([0, 10.5, 15], 20.4, False),  # within the window 10.5 began
])
def test_the_start_limit_counts_as_systemd_counts_it(monkeypatch: pytest.MonkeyPatch, starts: list[float],
                                                      then: float, allowed: bool) -> None:
    """systemd's start limit (ratelimit_below) counts the starts of a window that begins at a start
    and lasts the interval; the first start after it begins the next. The daemon counted the starts
    within the interval before each start: it gave up a service that ran most of an interval before
    a few quick crashes (starts 0, 9.8, 10.1, then 10.3: two within the 10 s before it), where systemd
    goes on."""
    args = daemon.parse_args(["--name", "t", "--spec", "s.json", "--pid-file", "d.pid", "--log-file",
                              "d.log", "--restart", "always", "--start-limit-burst", "2",
                              "--start-limit-interval", "10"])
    r, w = os.pipe()
    clock = [0.0]
    monkeypatch.setattr(daemon.time, "monotonic", lambda: clock[0])
    try:
        d = daemon.Daemon(args, w)
        for i, t in enumerate(starts):
            clock[0] = t
            assert i == 0 or d.should_restart(3), (t, list(d.starts))
            d.starts.append(t)  # (as run() does at the start)
        clock[0] = then
        assert d.should_restart(3) is allowed and d.gave_up is not allowed, list(d.starts)
    finally:
        os.close(r)
        os.close(w)


def test_a_stop_signal_once_the_daemon_stopped_leaves_its_status_alone(tmp_path: Path) -> None:
    """A stop sent again as the daemon ends (a storm of SIGTERM and SIGINT: 1 of 40 runs) came after
    the interpreter's exit had put the signal's default action back: the daemon, which had stopped its
    service and said "stopped", ended killed by SIGTERM. Here the signal comes once main() is done,
    its default action put back as the interpreter's finalization does (--no-waiter: main() returns
    here, not in the daemon the waiter execs; the waiter's way back ends in the same main())."""
    spec, pid_file = tmp_path / "s.json", tmp_path / "d.pid"
    spec.write_text(json.dumps({"version": 1, "argv": ["/bin/true"]}))
    script = f"""
import os, signal, sys
from pyforkexec.service import daemon
code = daemon.main(["--name", "t", "--spec", {str(spec)!r}, "--pid-file", {str(pid_file)!r},
                    "--log-file", {str(tmp_path / "d.log")!r}, "--foreground", "--no-waiter"])
for signo in daemon.STOP_SIGNALS:
    signal.signal(signo, signal.SIG_DFL)
    os.kill(os.getpid(), signo)
sys.exit(code)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "d.log").read_text().rstrip().endswith("stopped")


def _nofile(n: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


def test_a_daemon_out_of_fds_refuses_in_one_line_and_leaves_no_pid_file(tmp_path: Path) -> None:
    """With few fds allowed (RLIMIT_NOFILE 5 to 12), the daemon's wake-up pipe and the /dev/null of its
    detach failed with a traceback; the detach's, once its pid file was written, left that file behind.
    Each way out is one line now, and the file goes with the daemon that wrote it."""
    (tmp_path / "s.json").write_text(json.dumps({"version": 1, "argv": ["/bin/true"]}))
    pid_file, outcomes = tmp_path / "d.pid", []
    for n in range(5, 13):
        proc = subprocess.run(
            [sys.executable, "-m", "pyforkexec.daemon", "--name", "t", "--spec", str(tmp_path / "s.json"),
             "--pid-file", str(pid_file), "--log-file", str(tmp_path / "d.log"), "--restart", "no"],
            preexec_fn=lambda n=n: _nofile(n), stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=60)
        outcomes.append((n, proc.returncode, proc.stderr))
        assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) <= 1, outcomes
        assert not pid_file.exists(), outcomes
    assert outcomes[-1][1] == 0, outcomes  # enough fds at last: it ran
    assert any("wake-up pipe" in err for _, _, err in outcomes), outcomes
    assert any("detach" in err for _, _, err in outcomes), outcomes
