"""The running daemon's command line, compared with the wanted one for idempotency, is read in each
shape it takes: as started, back in Python after its waiter, and as pyforkexec-waiter while its
service runs (the daemon's own command line after ``--``). A real daemon: tests/integration."""

from __future__ import annotations

import os
import subprocess

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_direct as direct

WANTED = ["/venv/bin/python", "-m", "pyforkexec.daemon", "--name", "web", "--restart", "always"]


@pytest.mark.parametrize("cmdline", [
    WANTED,
    [*WANTED[:3], "--ready-fd", "7", *WANTED[3:]],
    [*WANTED, "--ready-fd", "7", "--start-lock-fd", "3"],  # (the daemon's first start: service_direct.start)
    [*WANTED, "--resume", '{"pid": 1}', "--waited", "run", "--exited-at", "5"],
    ["/site/pyforkexec/service/pyforkexec-waiter", "4242", "10000", "--", *WANTED, "--resume", "{}"],
])
def test_the_daemon_s_argv_is_read_in_each_of_its_shapes(cmdline):
    assert direct.daemon_argv_of(cmdline) == WANTED


def test_another_program_s_argv_is_kept_whole():
    other = ["/usr/bin/python3", "-m", "http.server", "--", "x"]
    assert direct.daemon_argv_of(other) == other


def test_a_process_gone_has_no_argv(dead_pid):
    assert direct.running_argv(dead_pid) is None
    assert direct.running_argv(os.getpid())[0]  # and a live one has its own


# As PID 1 of a PID namespace that kept the host's /proc (as a container may): the command line of a
# child, by its pid there (a daemon's pid file names its pid there).
_ARGV_WITH_THE_HOST_S_PROC = r"""
import json, os, subprocess
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_direct as direct
with subprocess.Popen(["sleep", "60"]) as child:
    try:
        argv = direct.running_argv(child.pid)
    finally:
        child.kill()
print(json.dumps({"pid": os.getpid(), "self": os.readlink("/proc/self"), "argv": argv}))
"""


def test_a_process_s_argv_is_its_own_where_proc_is_another_pid_namespace_s(in_pid_namespace):
    """/proc/PID/cmdline of the pid (this namespace's) was another process's in /proc (the host's):
    a running daemon read so would be taken for gone, or for one started otherwise."""
    answer = in_pid_namespace(_ARGV_WITH_THE_HOST_S_PROC, mount_proc=False)
    assert answer["pid"] == 1 and answer["self"] != "1"  # the case: /proc is not the namespace's
    assert answer["argv"] == ["sleep", "60"]


def test_a_process_reaped_between_the_open_and_the_read_has_no_argv(monkeypatch):
    """The kernel's answer to a read of /proc/PID/cmdline once PID is reaped (ESRCH), for a file opened
    before: what a daemon that exits at that moment gives (here the open is done first, then the reap)."""
    child = subprocess.Popen(["sleep", "60"])
    opened = open(f"/proc/{child.pid}/cmdline", "rb")  # noqa: SIM115  # handed to running_argv below
    child.kill()
    child.wait()
    monkeypatch.setattr(direct, "open", lambda *args, **kwargs: opened, raising=False)
    assert direct.running_argv(child.pid) is None
    assert opened.closed


# Execs itself (the same command line) COUNT times, as the daemon execs the waiter and back.
_EXEC_LOOP = """
import os, sys
left = int(os.environ["COUNT"])
if left:
    with open("/proc/self/cmdline", "rb") as f:
        argv = f.read().split(b"\\0")[:-1]
    os.execve(sys.executable, argv, dict(os.environ, COUNT=str(left - 1)))
"""


def test_a_command_line_read_while_its_process_execs_is_read_again():
    """/proc/PID/cmdline reads empty while PID execs: a daemon read then (the daemon execs at each start
    and end of its service) had the command line [], so that a converge restarted it ("daemon_argv"
    differs) and a stop did not know its stop timeout. Every read of a process that execs itself over
    and over gives its command line."""
    import sys

    argv = [sys.executable, "-S", "-c", _EXEC_LOOP, "--name", "loop"]
    proc = subprocess.Popen(argv, env=dict(os.environ, COUNT="200"))
    seen = []
    try:
        while proc.poll() is None:
            seen.append(direct.running_argv(proc.pid))
    finally:
        proc.kill()
        proc.wait()
    assert seen and [got for got in seen if got not in (argv, None)] == []


def test_a_stop_returns_only_once_the_service_is_reaped():
    """A zombie still counts as its user's process (userdel refuses to remove the account): the stop
    waits until the service's process is reaped, not only exited. Here it is reaped 0.2 s after its
    exit, by another thread; the wait must not return before that."""
    import threading
    import time

    pid = os.fork()
    if pid == 0:
        os._exit(0)
    fd = os.pidfd_open(pid)
    reaped = threading.Event()

    def reap_later():
        time.sleep(0.2)
        os.waitpid(pid, 0)
        reaped.set()

    thread = threading.Thread(target=reap_later)
    thread.start()
    try:
        direct._reaped([fd], time.monotonic() + 30)
        assert reaped.is_set()
    finally:
        thread.join()
        os.close(fd)


def _cpus(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(line.split(":", 1)[1].strip() for line in f if line.startswith("Cpus_allowed_list:"))


def test_a_daemon_started_from_a_pinned_worker_gets_pid_1_s_cpus():
    """mitogen pins an Ansible worker of a 2- or 3-CPU controller to one CPU, and a module run from it
    inherits the pin: a daemon (and its service) started from there must not keep it, as systemd gives
    a unit its manager's CPUs. A stand-in for the daemon (which only says it started) is started from a
    thread pinned to one CPU; it runs on PID 1's CPUs, and the thread is pinned again after."""
    import sys
    import threading

    try:
        pid1 = os.sched_getaffinity(1)
    except OSError as e:
        pytest.skip(f"PID 1's CPU affinity cannot be read here: {e}")
    if len(pid1 & os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs that both this process and PID 1 may run on")
    one = {min(pid1 & os.sched_getaffinity(0))}
    stand_in = [sys.executable, "-c",
                "import os, sys, time; fd = int(sys.argv[-1]); os.write(fd, b'ok %d\\n' % os.getpid()); "
                "time.sleep(60)"]
    found = {}

    def pinned():
        os.sched_setaffinity(0, one)
        pid = direct.start("affinity-test", stand_in, timeout=30)
        try:
            found["daemon"] = os.sched_getaffinity(pid)
            found["after"] = os.sched_getaffinity(0)
        finally:
            os.kill(pid, 9)
            os.waitpid(pid, 0)

    thread = threading.Thread(target=pinned)  # the test's own thread keeps its CPUs
    thread.start()
    thread.join()
    assert found == {"daemon": pid1, "after": one}


# What the scripts below share: the stop's own helpers, and their daemons' pid files in the test's
# directory (argv[2]); each stand-in daemon holds its name and locks its pid file as
# pyforkexec.service.daemon does (the stop takes a process for the daemon only while it holds that
# name: paths.is_daemon). A child forked by a daemon closes both.
_PRELUDE = r"""
import json, os, signal, sys, time
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_direct as direct
from pid_reuse import bystander_on, killed, sleeper
from pyforkexec.service import singleton
from pyforkexec.service.daemon import lock_pid_file

direct.paths.RUN_DIR = sys.argv[2]

def as_daemon(name):
    path = direct.paths.pid_file(name)
    return [singleton.claim(path), lock_pid_file(path)]
"""


def _in_pid_namespace(in_pid_namespace, script, name, tmp_path):
    """``script`` (after _PRELUDE) run as PID 1 of a PID namespace of its own; its JSON answer."""
    return in_pid_namespace(_PRELUDE + script, f"{name}-{os.getpid()}", str(tmp_path))


# Inside a PID namespace of its own (PID 1 there): a daemon that ignores SIGTERM, with a service that
# ignores it too. The stop kills the service at the end of its grace; the daemon reaps it, and the next
# process it forks gets the service's pid (ns_last_pid steers it, in this namespace only): a bystander,
# which must outlive the stop's last phase (the daemon's SIGKILL, STOP_MARGIN later).
_REUSED_PID = r"""
def daemon(report):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    held = as_daemon(sys.argv[1])
    service = sleeper(close=held)
    os.write(report, b"%d\n" % service)
    os.waitpid(service, 0)
    bystander = bystander_on(service, close=held)
    os.write(report, b"%d\n" % bystander)
    while True:
        time.sleep(600)

r, w = os.pipe()
main = os.fork()
if main == 0:
    os.close(r)
    daemon(w)
os.close(w)
report = os.fdopen(r)
service = int(report.readline())  # (its daemon locked the pid file before)
direct.stop_all([(sys.argv[1], main, 0.2)])
bystander = int(report.readline())
print(json.dumps({"reused": bystander == service, "bystander_alive": not killed(bystander)}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a PID namespace whose next pid it steers")
def test_the_last_kill_of_a_stop_never_reaches_a_process_that_reused_a_pid(in_pid_namespace, tmp_path):
    """A daemon that survived SIGTERM, its grace and STOP_MARGIN was SIGKILLed with its service by pid
    number, although the stop held a pidfd for each: the service, killed (and reaped by its daemon)
    STOP_MARGIN earlier, had left its pid free, and the SIGKILL went to whatever process had it by
    then. Every signal of the stop goes through a pidfd now."""
    answer = _in_pid_namespace(in_pid_namespace, _REUSED_PID, "h105-reused-pid", tmp_path)
    assert answer == {"reused": True, "bystander_alive": True}


# Inside a PID namespace of its own (PID 1 there): a daemon that ignores SIGTERM, whose service is
# listed in /proc by the stop, then exits and is reaped by the daemon before the stop opens its pidfd.
# The listing is the real one; right after it, the next fork gets the listed pid (ns_last_pid, in this
# namespace only) and makes a session of its own: a bystander, this process's child, not the daemon's.
_SERVICE_PID_REUSED = r"""
r, w = os.pipe()
main = os.fork()
if main == 0:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    held = as_daemon(sys.argv[1])
    service = sleeper(close=held)
    os.write(w, b".")
    os.waitpid(service, 0)
    while True:
        time.sleep(600)
os.read(r, 1)
listed, seen = direct.paths.workload_pid, {}

def steered(pid, wait=0.0, exited=False):
    found = listed(pid, wait, exited)
    if found is not None and not seen:
        seen["listed"] = found
        os.kill(found, signal.SIGKILL)
        while os.path.exists(f"/proc/{found}"):  # until its daemon reaped it
            time.sleep(0.001)
        seen["bystander"] = bystander_on(found, session=True)
    return found

direct.paths.workload_pid = steered
direct.STOP_MARGIN = 0.5  # the daemon's SIGKILL comes sooner: the bystander is looked at after it
direct.stop_all([(sys.argv[1], main, 0.2)])
reused = seen["listed"] == seen["bystander"]
print(json.dumps({"reused": reused, "bystander_alive": not killed(seen["bystander"])}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a PID namespace whose next pid it steers")
def test_a_stop_never_takes_a_process_that_reused_the_listed_service_pid_for_the_service(
        in_pid_namespace, tmp_path):
    """The stop read the service's pid in /proc (the daemon's child) and opened a pidfd on it: a
    service that exited and was reaped between the two had left its number to any process, and the
    pidfd, with the SIGKILL at the grace's end (to its group too), went to that one. The pidfd is kept
    only when /proc, read after the open, shows the daemon's child."""
    answer = _in_pid_namespace(in_pid_namespace, _SERVICE_PID_REUSED, "h108-service-pid", tmp_path)
    assert answer == {"reused": True, "bystander_alive": True}


# Inside a PID namespace of its own (PID 1 there): a daemon found by its name (as the module finds it,
# before its stop), which then ends (killed here, reaped by this process, its parent)
# before the stop opens its pidfd. Its pid file stays, naming it. The next fork gets its pid
# (ns_last_pid, in this namespace only): a bystander, which SIGTERM would end.
_DAEMON_PID_REUSED = r"""
r, w = os.pipe()
main = os.fork()
if main == 0:
    held = as_daemon(sys.argv[1])
    os.write(w, b".")
    while True:
        time.sleep(600)
os.read(r, 1)
read = direct.paths.daemon_pid(sys.argv[1])
os.kill(main, signal.SIGKILL)
os.waitpid(main, 0)
bystander = bystander_on(main)
direct.stop_all([(sys.argv[1], read, 0.2)])
alive = not killed(bystander)
print(json.dumps({"read": read == main, "reused": bystander == main, "bystander_alive": alive}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a PID namespace whose next pid it steers")
def test_a_stop_never_signals_a_process_that_reused_the_daemon_s_pid(in_pid_namespace, tmp_path):
    """The callers find the daemon's pid, and the stop opened a pidfd on that number and sent SIGTERM
    through it: a daemon that ended between the two had left its number to any process, which was sent
    SIGTERM (and waited for, killed at the grace's end). The pidfd's process is taken for the daemon only
    while it holds the daemon's name, read after the open."""
    answer = _in_pid_namespace(in_pid_namespace, _DAEMON_PID_REUSED, "h109-daemon-pid", tmp_path)
    assert answer == {"read": True, "reused": True, "bystander_alive": True}


# Inside a PID namespace of its own: a daemon that ignores SIGTERM (its stop ends in SIGKILL), given to
# the stop twice under its name; the pidfds the stop opens are counted in /proc/self/fd.
_TWICE = r"""
r, w = os.pipe()
main = os.fork()
if main == 0:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    held = as_daemon(sys.argv[1])
    os.write(w, b".")
    while True:
        time.sleep(600)
os.close(w)
os.read(r, 1)
os.close(r)
direct.STOP_MARGIN = 0.1

def open_fds():  # the listing's own fd is in it, closed by the end of the listing: left out
    return {fd: os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
            if os.path.lexists(f"/proc/self/fd/{fd}")}

before = open_fds()
direct.stop_all([(sys.argv[1], main, 0.1), (sys.argv[1], main, 0.1)])
after = open_fds()
os.waitpid(main, 0)
print(json.dumps({"left": [target for fd, target in after.items() if fd not in before]}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a PID namespace of its own")
def test_a_daemon_given_twice_to_a_stop_leaves_no_pidfd_open(in_pid_namespace, tmp_path):
    """The stop keyed its pidfds by the service's name: the same name given twice opened a second pidfd
    on the daemon, which took the first's place, and the first was never closed. Each name is stopped
    once."""
    assert _in_pid_namespace(in_pid_namespace, _TWICE, "h116-twice", tmp_path) == {"left": []}


# Inside a PID namespace of its own (PID 1 there): service A's daemon, found by its name as a converge
# finds it, ends (killed, reaped by this process) before its command line is read, and the next fork
# gets its number (ns_last_pid, in this namespace only): another service's daemon (B's: its name held,
# its pid file locked), started with its own --stop-timeout and --stop-signal.
_ANOTHER_DAEMON_ON_THE_PID = r"""
import subprocess

def daemon(name, argv=()):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        held = as_daemon(name)
        for fd in held:
            os.set_inheritable(fd, True)
        os.set_inheritable(w, True)
        code = f"import os, time; os.write({w}, b'.'); time.sleep(600)"
        os.execv(sys.executable, [sys.executable, "-c", code, "-m", "pyforkexec.daemon", "--name", name,
                                  *argv])
    os.close(w)
    os.read(r, 1)
    os.close(r)
    return pid

a, b = sys.argv[1], sys.argv[1] + "-b"
main = daemon(a)
found = direct.paths.daemon_pid(a)
os.kill(main, signal.SIGKILL)
os.waitpid(main, 0)
with open("/proc/sys/kernel/ns_last_pid", "w") as f:
    f.write(str(main - 1))
other = daemon(b, ["--stop-timeout", "77", "--stop-signal", "SIGINT"])
print(json.dumps({"found": found == main, "reused": other == main,
                  "argv": direct.daemon_running_argv(a, found),
                  "stop_timeout": direct.running_stop_timeout(a, found),
                  "stop_signal": direct.running_stop_signal(a, found),
                  "its_own": direct.running_stop_timeout(b, other)}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a PID namespace whose next pid it steers")
def test_a_daemon_s_command_line_is_never_read_in_a_process_that_reused_its_pid(in_pid_namespace, tmp_path):
    """A converge found the daemon, then read its command line by that number (to compare it with the
    wanted one, for the diff, for the --stop-timeout and --stop-signal in force): a daemon that ended
    in between, its number given to another service's daemon, had that one's arguments shown as its own
    and its stop timeout taken. The command line counts only if the process still holds the daemon's
    name after the read."""
    for _attempt in range(5):  # (the next fork takes the freed number almost always: the premise)
        answer = _in_pid_namespace(in_pid_namespace, _ANOTHER_DAEMON_ON_THE_PID, "h160-argv", tmp_path)
        if answer["reused"]:
            break
    assert answer["found"] and answer["reused"]
    assert answer["its_own"] == 77.0  # (the stranger's, read as its own daemon's)
    assert (answer["argv"], answer["stop_timeout"], answer["stop_signal"]) == (None, None, None), answer
