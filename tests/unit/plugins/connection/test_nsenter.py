"""The nsenter connection plugin driven as Ansible drives it (loaded by its name, options set, then
connect, exec_command, put_file, fetch_file), on real processes in their own namespaces."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.playbook.play_context import PlayContext
from ansible.plugins.loader import connection_loader

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="nsenter into another process's namespaces needs root"),
    pytest.mark.skipif(shutil.which("nsenter") is None or shutil.which("unshare") is None,
                       reason="util-linux nsenter and unshare are not installed"),
]


@pytest.fixture
def target(tmp_path):
    """A process in its own UTS, network and mount namespaces, with a 64 KiB tmpfs of its own on
    ``tmp_path/small`` (the host's directory stays empty)."""
    small = tmp_path / "small"
    small.mkdir()
    proc = subprocess.Popen(["unshare", "--uts", "--net", "--mount", "--propagation", "private", "sh", "-c",
                             f"mount -t tmpfs -o size=64k none {small} && echo ready && exec sleep 60"],
                            stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"ready\n"
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def pid_target():
    """The first process of a new PID namespace (and UTS, network and mount ones): nsenter forks to
    enter it, and what it leaves behind goes to that process, which reaps nothing."""
    proc = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "--uts", "--net", "--mount",
                             "sh", "-c", "echo ready && exec sleep 60"], stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"ready\n"
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, check=True)
    first = [int(p) for p in children.stdout.split()]
    assert len(first) == 1
    yield first[0]
    proc.kill()
    proc.wait()


def connect(target, **options):
    conn = connection_loader.get("pyforkexec.isolation.nsenter", PlayContext(), None)
    conn.set_options(direct={"remote_addr": str(target), **options})
    conn._connect()
    return conn


def holding(text):
    """The live processes whose command line holds ``text`` (a zombie's is empty)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if text.encode() in f.read():
                        found.append(int(name))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return found


def runs(text, program):
    """Whether a process of ``program`` holding ``text`` in its command line runs."""
    for pid in holding(text):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read() == f"{program}\n":
                    return True
        except (FileNotFoundError, ProcessLookupError):
            continue
    return False


def until_none_hold(text, timeout=30):
    """The processes holding ``text`` once none does, or ``timeout`` seconds later (a process sent
    SIGKILL is gone only once it was scheduled to die)."""
    deadline = time.monotonic() + timeout
    while (found := holding(text)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def as_a_worker(action, ready, *args):
    """Run ``action(*args)`` in a child process that does what Ansible's worker does: a session of its
    own, and on SIGINT (WorkerProcess._term) the signal passed on to its process group, then os._exit.
    Once ``ready()`` holds (polled from a thread, 10 s at most) the child gets a SIGINT. Returns the
    child's wait status."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setsid()

            def term(signum, frame):
                signal.signal(signum, signal.SIG_DFL)
                os.killpg(os.getpid(), signum)
                os.kill(os.getpid(), signum)
                os._exit(1)

            def interrupt():
                deadline = time.monotonic() + 10
                while not ready() and time.monotonic() < deadline:
                    time.sleep(0.05)
                os.kill(os.getpid(), signal.SIGINT)

            signal.signal(signal.SIGINT, term)
            threading.Thread(target=interrupt, daemon=True).start()
            action(*args)
        finally:
            os._exit(3)
    return os.waitpid(pid, 0)[1]


@pytest.mark.parametrize("kind", ["target", "pid_target"])
def test_a_command_that_traps_sigint_dies_with_the_worker(kind, request):
    """A Ctrl-C of ansible-playbook: the worker passes SIGINT on to its group and exits, and no
    exception runs in the connection. A command that ignores SIGINT, and its child, are killed all the
    same, not left running in the target."""
    target = request.getfixturevalue(kind)
    pid = target if isinstance(target, int) else target.pid
    tag = f"606.{os.getpid()}{len(kind)}"
    command = f"trap '' INT HUP TERM; sleep {tag}; echo"

    def run():
        conn = connect(pid)
        conn.exec_command(command)

    def started():
        return runs(f"sleep {tag}", "sleep")

    status = as_a_worker(run, started)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGINT
    assert until_none_hold(f"sleep {tag}") == [], "left running"


def test_a_python_command_runs_its_finally_blocks_on_a_ctrl_c(target, tmp_path):
    """A Ctrl-C (the worker exits): the command is sent SIGINT first, as Ansible's worker sends its own
    group (a module run by the local connection gets it), so that Python raises KeyboardInterrupt and
    runs its finally blocks: an AnsiballZ module removes its payload directory, a move its temporary
    file. The guard sent SIGTERM, which kills Python at once: every such module left those in the
    target."""
    marker = tmp_path / f"running-{os.getpid()}"
    program = (f"import os, time\nopen({str(marker)!r}, 'w').close()\n"
               f"try:\n    time.sleep(60)\nfinally:\n    os.remove({str(marker)!r})\n")

    def run():
        connect(target.pid).exec_command(f"exec {shlex.quote(sys.executable)} -c {shlex.quote(program)}")

    status = as_a_worker(run, marker.exists)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGINT
    assert until_none_hold(str(marker)) == [], "the command left running"
    assert not marker.exists(), "the command was killed before its finally block ran"


def test_an_interrupted_fetch_leaves_nothing_in_the_destination(target, tmp_path):
    """A Ctrl-C while a file is fetched (the worker exits, no exception runs): the destination
    directory is as it was, no part file in it, and dd is not left reading in the target."""
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "kept").write_text("precious\n")
    fifo = tmp_path / f"fifo-{os.getpid()}"
    os.mkfifo(fifo)
    feed = os.open(fifo, os.O_RDWR)  # never ends: dd keeps reading
    try:
        os.write(feed, b"x" * 4096)

        def fetch():
            conn = connect(target.pid)
            conn.fetch_file(str(fifo), str(dest / "kept"))

        def midway():  # dd reads, and what it read has had the time to reach the worker
            if not runs(f"if={fifo}", "dd"):
                return False
            time.sleep(0.2)
            return True

        status = as_a_worker(fetch, midway)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGINT
        assert until_none_hold(f"if={fifo}") == [], "dd left running"
    finally:
        os.close(feed)
    assert sorted(p.name for p in dest.iterdir()) == ["kept"]
    assert (dest / "kept").read_text() == "precious\n"


class Interrupted(Exception):
    """What the test's signal handler raises in the middle of communicate() (a task's timeout does)."""


@contextlib.contextmanager
def a_timeout_once(ready, after=lambda stopped: None):
    """The body must raise Interrupted: SIGALRM, whose handler raises it (as a task's timeout does),
    comes once ``ready()`` holds (or 10 s passed), from a thread that then runs ``after(stopped)``;
    ``stopped`` is set once the body has ended."""
    stopped = threading.Event()

    def interrupt():
        deadline = time.monotonic() + 10
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGALRM)
        after(stopped)

    def raise_interrupted(signum, frame):
        raise Interrupted()

    old = signal.signal(signal.SIGALRM, raise_interrupted)
    thread = threading.Thread(target=interrupt)
    thread.start()
    try:
        with pytest.raises(Interrupted):
            yield
    finally:
        stopped.set()
        thread.join()
        signal.signal(signal.SIGALRM, old)


def test_an_interrupted_command_is_killed_with_what_it_started(target):
    """A task's timeout raises in the middle of communicate(): nsenter and what it started in the
    target are killed and reaped, not left running there."""
    conn = connect(target.pid)
    marker = f"pfe-nsenter-ut-{os.getpid()}"
    started = []

    def running():
        found = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True, check=False)
        return found.stdout.split()

    try:
        with a_timeout_once(lambda: started.extend(running()) or started):  # once it runs in the target
            pid = os.getpid()
            # the pipes to nsenter closed first: nothing but nsenter keeps communicate() waiting
            conn.exec_command(f"exec >/dev/null 2>&1; sh -c 'sleep 30.{pid}; : {marker}' & sleep 31.{pid}")
    finally:
        conn.close()
    assert started, "the command never ran"
    # SIGKILL was sent to each before exec_command returned, but a process is gone only once it was
    # scheduled to die (under load, a while later): polled, not looked at once.
    assert until_none_hold(marker) == [], "left running"
    assert until_none_hold(f"sleep 30.{os.getpid()}") == until_none_hold(f"sleep 31.{os.getpid()}") == []


def test_a_fetch_interrupted_by_a_timeout_stops_the_transfer(target, tmp_path):
    """A task's timeout raises in the middle of fetch_file's copy: the transfer is stopped there, dd
    killed, the destination left as it was. It was waited for instead (communicate() in a finally),
    reading the rest of the source into memory: a source that never ends (here a FIFO this test holds
    open; /dev/zero, a growing log) kept the task running, its memory growing, past its timeout."""
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "kept").write_text("precious\n")
    fifo = tmp_path / f"fifo-{os.getpid()}"
    os.mkfifo(fifo)
    feed = os.open(fifo, os.O_RDWR)  # held: dd keeps reading until this test closes it
    os.write(feed, b"x" * 4096)
    conn = connect(target.pid)
    released = []

    def release(stopped):
        if not stopped.wait(30):  # still transferring: end the source, so that the test ends
            released.append(True)
            os.close(feed)

    try:
        with a_timeout_once(lambda: runs(f"if={fifo}", "dd"), after=release):
            conn.fetch_file(str(fifo), str(dest / "kept"))
    finally:
        if not released:
            os.close(feed)
        conn.close()
    assert not released, "the fetch went on after the timeout, until its source ended"
    assert until_none_hold(f"if={fifo}") == [], "dd left running"
    assert sorted(p.name for p in dest.iterdir()) == ["kept"]
    assert (dest / "kept").read_text() == "precious\n"


def test_a_python_command_runs_its_finally_blocks_on_a_timeout(target, tmp_path):
    """A task's timeout raises in the middle of exec_command(): the command is stopped as on a Ctrl-C,
    SIGINT first, so that a module runs its finally blocks (its payload directory, a move's temporary
    file removed). Each process below nsenter was sent SIGKILL alone: every such module left those
    in the target."""
    marker = tmp_path / f"running-{os.getpid()}"
    program = (f"import os, time\nopen({str(marker)!r}, 'w').close()\n"
               f"try:\n    time.sleep(60)\nfinally:\n    os.remove({str(marker)!r})\n")
    conn = connect(target.pid)
    try:
        with a_timeout_once(marker.exists):
            conn.exec_command(f"exec {shlex.quote(sys.executable)} -c {shlex.quote(program)}")
    finally:
        conn.close()
    assert until_none_hold(str(marker)) == [], "the command left running"
    assert not marker.exists(), "the command was killed before its finally block ran"


def test_a_timeout_kills_what_left_the_command_s_group_below_it(target):
    """A task's timeout: what the command started in a session of its own (out of the group the guard
    signals) is killed too, as it was below the command when the timeout came. Stopped gently first,
    the command ended, its setsid'd child went to the target's init, out of reach, and ran on."""
    conn = connect(target.pid)
    mark = f"{os.getpid()}{threading.get_ident() % 1000}"

    try:
        with a_timeout_once(lambda: runs(f"300.{mark}", "sleep")):
            conn.exec_command(f"exec >/dev/null 2>&1; setsid sleep 300.{mark} & sleep 301.{mark}")
    finally:
        conn.close()
    assert until_none_hold(f"300.{mark}") == [], "the setsid'd process left running"
    assert until_none_hold(f"301.{mark}") == []


def test_a_file_that_does_not_fit_is_not_left_in_part(target, tmp_path):
    big = tmp_path / "big"
    big.write_bytes(os.urandom(256 * 1024))
    conn = connect(target.pid)
    try:
        with pytest.raises(AnsibleError, match="failed to transfer"):
            conn.put_file(str(big), str(tmp_path / "small" / "big"))
        rc, out, err = conn.exec_command(f"ls -A {tmp_path / 'small'}")
        assert (rc, out) == (0, b""), err
    finally:
        conn.close()


def test_a_failed_fetch_leaves_the_destination_as_it_was(target, tmp_path):
    kept = tmp_path / "kept"
    kept.write_text("precious\n")
    conn = connect(target.pid)
    try:
        for dest in (kept, tmp_path / "new"):
            with pytest.raises(AnsibleError, match="failed to transfer"):
                conn.fetch_file("/nonexistent-pfe", str(dest))
        with pytest.raises(AnsibleError):
            conn.fetch_file("/etc/hostname", str(tmp_path / "no-such-dir" / "x"))
        conn.fetch_file("/etc/hostname", str(tmp_path / "hostname"))
        (tmp_path / "hostname").write_text("replaced\n")
        conn.fetch_file("/etc/hostname", str(tmp_path / "hostname"))  # over an existing file
    finally:
        conn.close()
    assert kept.read_text() == "precious\n"
    assert (tmp_path / "hostname").read_text() != "replaced\n"
    umask = os.umask(0o22)
    os.umask(umask)
    assert (tmp_path / "hostname").stat().st_mode & 0o7777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostname", "kept", "small"]  # no part file


def test_a_target_in_the_hosts_namespaces_is_unreachable():
    host = subprocess.Popen(["sleep", "60"])
    try:
        with pytest.raises(AnsibleConnectionFailure, match="has none of its own mount, net, pid, ipc"):
            connect(host.pid)
    finally:
        host.kill()
        host.wait()


@pytest.mark.parametrize("exe", ["/nonexistent/nsenter", "", "/etc/passwd", "/usr/bin", "no/such/nsenter"])
def test_an_nsenter_exe_that_is_no_executable_file_is_refused_naming_it(target, exe):
    """An absolute path was taken as it was, unchecked: the connection connected, and each command's
    exec failed in the guard, which Ansible reported as "Failed to create temporary directory"; an
    empty one read " not found". Refused on connect now, naming the option and what it must be."""
    with pytest.raises(AnsibleConnectionFailure, match=r"nsenter_exe: .* is not an executable file"):
        connect(target.pid, nsenter_exe=exe)


def test_an_empty_executable_is_refused_naming_it(target):
    with pytest.raises(AnsibleConnectionFailure, match="executable: empty"):
        connect(target.pid, executable="")


def test_an_empty_namespaces_list_is_refused(target):
    with pytest.raises(AnsibleConnectionFailure, match="namespaces: an empty list enters nothing"):
        connect(target.pid, namespaces=[])


@pytest.fixture
def dirs_target(tmp_path):
    """(pid, top): a process in its own mount namespace whose working directory ``top`` is a tmpfs of its
    own (the host's directory stays empty), holding a file ``a`` and the directories ``d``, ``a b`` and
    ``$(touch ran)``: names a shell splits, or runs, where they are not quoted."""
    top = tmp_path / "t"
    top.mkdir()
    script = (f"mount -t tmpfs -o size=1m none {top} && cd {top} && echo kept > a "
              "&& mkdir d 'a b' '$(touch ran)' && echo ready && exec sleep 60")
    proc = subprocess.Popen(["unshare", "--uts", "--net", "--mount", "--propagation", "private", "sh", "-c",
                             script], stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"ready\n"
    yield proc.pid, top
    proc.kill()
    proc.wait()


DIRS = [".", "./$(touch ran)", "./a", "./a b", "./d"]  # what dirs_target holds, as ``find . | sort`` lists it


def listing(conn, path):
    """``find . | sort`` of ``path`` in the target."""
    rc, out, err = conn.exec_command(f"cd {shlex.quote(str(path))} && find . | sort")
    assert rc == 0, err
    return out.decode().split("\n")[:-1]


@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
@pytest.mark.parametrize("directory", ["d", "a b", "$(touch ran)"])
def test_an_interrupted_put_leaves_no_part_file_and_touches_nothing_else(dirs_target, tmp_path, shell,
                                                                         directory):
    """A Ctrl-C while a file is put (the worker exits, the guard stops the transfer with SIGTERM): the
    shell's trap removes the new file, and nothing else. Every such put left its part file: the
    worker's pipes being closed, the shell's report of dd's death ("Terminated") killed it by SIGPIPE
    before its trap ran. And the trap had the quoted path inside single quotes: for a directory ``a b``
    it read ``trap 'rm -f /t/a' 'b/...; exit 1' ...``, which sh (dash) refused ("bad trap": the part
    file stayed) and bash set (removing the file ``/t/a`` instead); for ``$(touch ran)`` the target ran
    the command as the trap was set."""
    if not os.access(shell, os.X_OK):
        pytest.skip(f"no {shell} here")
    pid, top = dirs_target
    src = tmp_path / "src"
    os.mkfifo(src)  # the source: a FIFO that this process holds open and never writes, so dd blocks
    dest = top / directory / "f"
    part = f"{dest.parent}/.nsenter-put-"

    def put():
        conn = connect(pid, executable=shell)
        conn.put_file(str(src), str(dest))

    def filling():  # the dd that writes the new file (made already, by the one before it)
        return any(p in holding("conv=notrunc") for p in holding(f"of={part}")) and runs(f"of={part}", "dd")

    held = os.open(src, os.O_RDWR | os.O_CLOEXEC)
    try:
        status = as_a_worker(put, filling)
    finally:
        os.close(held)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGINT
    # the shell too (its trap runs once dd is gone), which names the part file in its command line
    assert until_none_hold(part) == [], "the transfer left running"
    conn = connect(pid)
    try:
        assert listing(conn, top) == DIRS  # no part file left, nothing removed, nothing run
        assert conn.exec_command(f"cat {top}/a")[1] == b"kept\n"
    finally:
        conn.close()


def test_a_put_interrupted_by_a_timeout_leaves_no_part_file(dirs_target, tmp_path):
    """A task's timeout raises in the middle of put_file's communicate(), the worker going on: the
    transfer is stopped, and the new file beside the destination removed, as on a Ctrl-C. Every such
    put left its part file (each process of the transfer was sent SIGKILL alone: the shell's trap,
    which removes it, never ran), in the target's directory, out of Ansible's temporary one."""
    pid, top = dirs_target
    src = tmp_path / "src"
    os.mkfifo(src)  # the source: a FIFO that this process holds open and never writes, so dd blocks
    part = f"{top}/d/.nsenter-put-"

    def filling():  # the dd that writes the new file (made already, by the one before it)
        return any(p in holding("conv=notrunc") for p in holding(f"of={part}")) and runs(f"of={part}", "dd")

    held = os.open(src, os.O_RDWR | os.O_CLOEXEC)
    conn = connect(pid)
    try:
        with a_timeout_once(filling):
            conn.put_file(str(src), f"{top}/d/f")
    finally:
        os.close(held)
    try:
        assert until_none_hold(part) == [], "the transfer left running"
        assert listing(conn, top) == DIRS  # no part file left, nothing removed
        assert conn.exec_command(f"cat {top}/a")[1] == b"kept\n"
    finally:
        conn.close()


@pytest.mark.parametrize("planted", ["../a", "../made-through-the-link"])
def test_a_link_planted_at_the_new_file_s_name_is_never_written_through(dirs_target, tmp_path, monkeypatch,
                                                                        planted):
    """A process in the target that knows the name of a put's new file (it was the worker's pid and a
    Python id; it is random now, but the shell's command line shows it once the put runs) puts a
    symlink there: dd of= followed it, writing the file it names (or creating one where it points),
    and mv then made the destination that link. The new file is created exclusively now: the put
    fails, writes nothing, and removes nothing it did not make (the link stays)."""
    pid, top = dirs_target
    src = tmp_path / "src"
    src.write_bytes(b"new\n")
    conn = connect(pid)
    try:
        monkeypatch.setattr(sys.modules[type(conn).__module__], "_part_name", lambda: ".nsenter-put-known")
        assert conn.exec_command(f"ln -s {planted} {top}/d/.nsenter-put-known")[0] == 0
        with pytest.raises(AnsibleError, match=r"(?s)failed to transfer.*File exists"):
            conn.put_file(str(src), f"{top}/d/f")
        assert listing(conn, top) == [*DIRS, "./d/.nsenter-put-known"]
        assert conn.exec_command(f"cat {top}/a")[1] == b"kept\n"
        monkeypatch.undo()
        conn.put_file(str(src), f"{top}/d/f")  # under a name of its own (the link left where it was)
        assert conn.exec_command(f"cat {top}/d/f")[1] == b"new\n"
        assert listing(conn, top) == [*DIRS, "./d/.nsenter-put-known", "./d/f"]
    finally:
        conn.close()


@pytest.mark.parametrize("dest", ["d", "d/", "link"])
def test_a_put_onto_a_directory_fails_and_leaves_it_as_it_was(dirs_target, tmp_path, dest):
    """mv moves a file onto a directory (or a link to one) into it: the put succeeded, with the
    file in the directory under its temporary name, and the destination was not written."""
    pid, top = dirs_target
    src = tmp_path / "src"
    src.write_bytes(b"new\n")
    conn = connect(pid)
    try:
        assert conn.exec_command(f"ln -s d {top}/link")[0] == 0
        with pytest.raises(AnsibleError, match=r"is a directory"):
            conn.put_file(str(src), f"{top}/{dest}")
        assert listing(conn, top) == [*DIRS, "./link"]
    finally:
        conn.close()


def test_a_fetch_onto_a_directory_fails_as_a_transfer_and_leaves_it_as_it_was(target, tmp_path):
    """The file's install raised IsADirectoryError out of fetch_file (Ansible reports that as an
    unexpected failure, with its traceback), not the AnsibleError of a failed transfer."""
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "kept").write_text("precious\n")
    conn = connect(target.pid)
    try:
        with pytest.raises(AnsibleError, match=r"failed to transfer /etc/hostname to .*dest: .*Is a dir"):
            conn.fetch_file("/etc/hostname", str(dest))
    finally:
        conn.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "small"]  # no part file
    assert [p.name for p in dest.iterdir()] == ["kept"]


# Inside a PID namespace of its own (PID 1 there): _kill_tree of a child of ours (the guard's place)
# whose own child is listed in /proc, then exits and is reaped before the kill reaches it (its parent
# ignores SIGCHLD: the kernel reaps it, stopped parent or not). The listing is the real one; right
# after it, the next fork gets the listed pid (ns_last_pid, in this namespace only): a bystander,
# this process's child, nothing of the tree's.
_TREE_PID_REUSED = r"""
import json, os, signal, time
from ansible_collections.pyforkexec.isolation.plugins.connection import nsenter
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths
from pid_reuse import bystander_on, killed

r, w = os.pipe()
root = os.fork()
if root == 0:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    if os.fork() == 0:
        time.sleep(600)
        os._exit(0)
    os.write(w, b".")
    while True:
        time.sleep(600)
os.read(r, 1)
children, seen = service_paths.children, {}

def steered(pid):
    found = children(pid)
    if pid == root and found and not seen:
        seen["listed"] = found[0]
        os.kill(found[0], signal.SIGKILL)
        while os.path.exists(f"/proc/{found[0]}"):  # until the kernel reaped it
            time.sleep(0.001)
        seen["bystander"] = bystander_on(found[0])
    return found

service_paths.children = steered
nsenter._kill_tree(root)
status = os.waitpid(root, 0)[1]
root_killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
print(json.dumps({"root_killed": root_killed, "reused": seen["listed"] == seen["bystander"],
                  "bystander_alive": not killed(seen["bystander"], stopped=True)}))
"""


def test_killing_a_command_s_tree_never_reaches_a_process_that_reused_a_listed_pid(in_pid_namespace):
    """_kill_tree stopped, then killed, each process it found below nsenter by its pid number: one
    that exited and was reaped between the listing and the signal had left its number to any process,
    which was stopped and killed in its place. Each goes through a pidfd confirmed to be its listed
    parent's child now."""
    for _attempt in range(5):  # (the next fork took the freed number in 3 runs of 4, not always: its premise)
        answer = in_pid_namespace(_TREE_PID_REUSED)
        if answer["reused"]:
            break
    assert answer == {"root_killed": True, "reused": True, "bystander_alive": True}


# Inside a PID namespace that kept the host's /proc (as a container may): _kill_tree of a child of
# ours (the guard's place) with a child of its own, both sleeping. Whether each was killed is read in
# /proc by the number its pidfd's fdinfo gives (it exited, or a SIGKILL is on its way); then both are
# killed (the grandchild is this PID 1's child once its parent is gone) and reaped.
_TREE_WITH_THE_HOST_S_PROC = r"""
import json, os, signal, time
from ansible_collections.pyforkexec.isolation.plugins.connection import nsenter

def killed(fd):
    with open(f"/proc/self/fdinfo/{fd}") as f:
        now = int(next(line for line in f if line.startswith("Pid:")).split()[1])
    if now < 0:
        return True
    with open(f"/proc/{now}/status") as f:
        fields = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    pending = int(fields["SigPnd"], 16) | int(fields["ShdPnd"], 16)
    return fields["State"][0] == "Z" or bool(pending & (1 << (signal.SIGKILL - 1)))

r, w = os.pipe()
root = os.fork()
if root == 0:
    if os.fork() == 0:
        time.sleep(600)
        os._exit(0)
    os.write(w, b".")
    time.sleep(600)
    os._exit(0)
os.read(r, 1)
here = os.readlink("/proc/self")
with open(f"/proc/{here}/task/{here}/children") as f:
    (child,) = f.read().split()
with open(f"/proc/{child}/task/{child}/children") as f:
    (below,) = f.read().split()
with open(f"/proc/{below}/status") as f:  # its number here: the last of NSpid
    grandchild = int(next(line for line in f if line.startswith("NSpid:")).split()[-1])
fds = [os.pidfd_open(root), os.pidfd_open(grandchild)]
nsenter._kill_tree(root)
answer = {"pid": os.getpid(), "self": here, "killed": [killed(fd) for fd in fds]}
for fd in fds:
    signal.pidfd_send_signal(fd, signal.SIGKILL)
os.waitpid(root, 0)
os.waitpid(grandchild, 0)
print(json.dumps(answer))
"""


def test_killing_a_command_s_tree_where_proc_is_another_pid_namespace_s(in_pid_namespace):
    """_kill_tree read the parent of our child (and the children of each) in /proc by the numbers of
    this process's PID namespace, which /proc (the host's) gives other processes: the child was taken
    for another's, and nothing was killed (a task's timeout left nsenter and its command running)."""
    answer = in_pid_namespace(_TREE_WITH_THE_HOST_S_PROC, mount_proc=False)
    assert answer["pid"] == 1 and answer["self"] != "1"  # the case: /proc is not the namespace's
    assert answer["killed"] == [True, True]


def test_a_thread_s_id_is_refused_naming_its_process(thread_id):
    """A thread's id failed the connection as "[Errno 2] No such file or directory" (pidfd_open's)."""
    with pytest.raises(AnsibleConnectionFailure) as failed:
        connect(thread_id)
    assert str(failed.value) == (f"nsenter: {thread_id} is the id of a thread of process {os.getpid()}, "
                                 "not of a process: give the process's pid")


def test_a_process_whose_main_thread_exited_is_not_said_to_have_ended(main_thread_gone):
    """It was "process N has ended", of a process running on in its other threads."""
    with pytest.raises(AnsibleConnectionFailure) as failed:
        connect(main_thread_gone)
    assert str(failed.value) == (f"nsenter: process {main_thread_gone}: its main thread has exited (its "
                                 "other threads run on), and the kernel shows its namespaces no more: "
                                 "nothing to enter")


def test_reset_lets_the_target_go_and_the_next_command_pins_it_again(target, monkeypatch):
    """meta: reset_connection warned "Reset is not implemented for this connection" and kept the
    target's namespaces open; now they are closed, and the next command pins the target again."""
    from ansible.utils.display import Display

    warned = []
    monkeypatch.setattr(Display, "warning", lambda self, msg, *args, **kwargs: warned.append(msg))
    theirs = os.readlink(f"/proc/{target.pid}/ns/net")

    def held():
        found = []
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                found.append(os.readlink(f"/proc/self/fd/{fd}"))
        return theirs in found

    conn = connect(target.pid)
    assert held()
    conn.reset()
    assert warned == [] and not held()
    rc, out, _err = conn.exec_command("cat /proc/sys/kernel/hostname")
    conn.close()
    assert rc == 0 and out.strip() == subprocess.run(["nsenter", "-t", str(target.pid), "-u", "hostname"],
                                                     capture_output=True, check=True).stdout.strip()
