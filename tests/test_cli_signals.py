"""Signals at every point of a launcher's ending path, deterministically.

A failed start of ``pyforkexec unshare --uts=FILE PROGRAM`` (its execve fails after the launcher bound
the namespace on FILE) is run in a forked copy of one process for each point k: a tracer counts the
line events pyforkexec's own frames execute from the bind on and, on the k-th, sends the launcher
SIGTERM (its default action ends it) or SIGINT (Python's KeyboardInterrupt), or both; k runs over every
event of an undisturbed run. Whatever the point, the bind of the program that never ran is undone.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.marks import needs_root

pytestmark = [needs_root, pytest.mark.timeout(600)]

# argv: the signals (comma-separated numbers), then the command line. Prints one JSON line per point:
# [k, how the copy ended (a status, or the negated signal), whether the bind was left, its stderr].
SWEEP = r"""
import json, os, resource, signal, sys
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGXCPU, SIGSYS... end a copy without a core file
sys.argv[0] = "/x/pyforkexec/__main__.py"  # the command itself (cli/__init__.py: _THE_COMMAND)
from pathlib import Path
import pyforkexec
from pyforkexec.cli import main
from pyforkexec.cli import unshare

PACKAGE = str(Path(pyforkexec.__file__).parent)
storm = sys.argv[1].startswith("+")  # from the k-th event on, the signals again and again (see flood)
signals = [int(s) for s in sys.argv[1].lstrip("+").split(",")]
argv = sys.argv[2:]
target = next(a.split("=", 1)[1] for a in argv if a.startswith("--uts="))
bind = unshare.bind_namespace_files
state = {"bound": False, "seen": 0, "at": 0}

def bound_then_count(*args):
    bind(*args)
    state["bound"] = True

unshare.bind_namespace_files = bound_then_count

def flood():
    # The signals sent to this process in a loop, for at most two seconds, by a thread that blocks them
    # itself (they reach the main thread, as a storm from outside would); no tracer from here on, so
    # Python runs the handlers where the main thread's code checks for them.
    import threading, time
    def send():
        signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        end = time.monotonic() + 2
        while time.monotonic() < end:
            for sig in signals:
                os.kill(os.getpid(), sig)
            time.sleep(0.0002)
    threading.Thread(target=send, daemon=True).start()
    sys.settrace(None)
    frame = sys._getframe(1)
    while frame is not None:
        frame.f_trace = None
        frame = frame.f_back

def local(frame, event, arg):
    if event == "line" and state["bound"]:
        state["seen"] += 1
        if state["seen"] == state["at"]:
            if storm:
                flood()
                return None
            old = signal.pthread_sigmask(signal.SIG_BLOCK, signals)  # both sent before either acts
            for sig in signals:
                os.kill(os.getpid(), sig)
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
    return local

def on_call(frame, event, arg):
    if not frame.f_code.co_filename.startswith(PACKAGE) or frame.f_code.co_name == "__del__":
        return None
    return local

def bound():
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)

def one(at):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.dup2(w, 2)
        state["at"] = at
        status = 99  # an exception left the command: the interpreter's traceback, and its status 1
        try:
            sys.settrace(on_call)
            status = main(argv)
        except BaseException:  # what the interpreter would print, had it escaped the command
            sys.settrace(None)
            import traceback
            os.write(2, traceback.format_exc().encode())
        finally:
            sys.settrace(None)
            os._exit(status)
    os.close(w)
    err = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        err += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    left = bound()
    if left:
        os.system(f"umount -l {target}")
    return code, left, err.decode(errors="replace")

import io
real_stdout = os.dup(1)
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # the copies' stdout; the count of events comes on a pipe
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.dup2(w, 1)
    os.close(r)
    state["at"] = 0
    try:
        sys.settrace(on_call)
        main(argv)
    finally:
        sys.settrace(None)
        os.write(1, f"{state['seen']}\n".encode())
        os._exit(0)
os.close(w)
total = int(os.read(r, 100).split()[0])
os.waitpid(pid, 0)
if bound():
    os.system(f"umount -l {target}")
for at in range(1, total + 1):
    code, left, err = one(at)
    os.write(real_stdout, (json.dumps([at, code, left, err]) + "\n").encode())
"""


def sweep(tmp_path: Path, signals: tuple[int, ...], storm: bool = False) -> list[list]:
    target = tmp_path / "uts"
    target.touch()
    program = tmp_path / "prog"  # found and executable, but its execve fails: after the bind
    program.write_text("#!/nonexistent-pfe-interpreter\n")
    program.chmod(0o755)
    argv = [sys.executable, "-c", SWEEP, "+" * storm + ",".join(str(int(s)) for s in signals), "unshare",
            f"--uts={target}", str(program)]
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=500, check=False)
    finally:
        with open("/proc/self/mountinfo") as f:
            if any(line.split()[4] == str(target) for line in f):
                subprocess.run(["umount", "-l", str(target)], check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    points = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(points) > 20, res  # the path was traced
    return points


@pytest.mark.parametrize("signals", [(signal.SIGTERM,), (signal.SIGINT,), (signal.SIGINT, signal.SIGTERM)],
                         ids=["TERM", "INT", "INT+TERM"])
def test_a_signal_anywhere_after_the_bind_of_a_program_that_never_ran_leaves_no_bind(
        tmp_path: Path, signals: tuple[int, ...]) -> None:
    """--uts=FILE binds the namespace before the execve, which fails; the launcher undoes the bind.
    It undid it after run_as_parent had put the caller's handlers back: a SIGTERM there ended it by
    the default action, a SIGINT by a KeyboardInterrupt, and the file stayed bound to a namespace no
    program used. The undo runs before the handlers are the caller's again now."""
    points = sweep(tmp_path, signals)
    left = [(at, code) for at, code, bound, _ in points if bound]
    assert not left, f"binds left at {len(left)} of {len(points)} points: {left[:10]}"


# Every signal whose default action ends a process (SIGKILL aside), but SIGINT and SIGTERM, swept above.
STOPS_OR_NOTHING = {signal.SIGKILL, signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU,
                    signal.SIGCHLD, signal.SIGCONT, signal.SIGURG, signal.SIGWINCH}
OTHER_ENDING = tuple(sorted(int(s) for s in signal.valid_signals()
                            if s not in STOPS_OR_NOTHING | {signal.SIGINT, signal.SIGTERM}
                            and not 32 <= s < signal.SIGRTMIN))  # (glibc's own, never sent)


@pytest.mark.parametrize("signals", [
    *[(s,) for s in (signal.SIGALRM, signal.SIGPIPE, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2,
                     signal.SIGVTALRM, signal.SIGXCPU, signal.SIGRTMIN)],
    OTHER_ENDING,
], ids=[*(signal.Signals(s).name[3:] if s in signal.Signals._value2member_map_ else "RTMIN"
          for s in (signal.SIGALRM, signal.SIGPIPE, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2,
                    signal.SIGVTALRM, signal.SIGXCPU, signal.SIGRTMIN)), "all-at-once"])
def test_a_signal_that_would_end_the_launcher_leaves_no_bind_either(tmp_path: Path,
                                                                    signals: tuple[int, ...]) -> None:
    """A signal the launcher leaves to its default action (SIGALRM, SIGVTALRM, SIGXCPU, a real-time
    one: it forwards SIGHUP, SIGUSR1 and SIGUSR2, and Python ignores SIGPIPE) ended it at once while
    the spawn went on after the bind, and the file stayed bound to a namespace whose program never
    ran. Such a signal waits from the bind until the spawn is done (and a failed one undone): then it
    ends the launcher as it would have, or the failure is reported (127). All of them at once, last:
    the first one the kernel delivers, whichever is not held back, would end it."""
    points = sweep(tmp_path, signals)
    left = [(at, code) for at, code, bound, _ in points if bound]
    assert not left, f"binds left at {len(left)} of {len(points)} points: {left[:10]}"
    wrong = [(at, code, err) for at, code, _, err in points
             if "Traceback" in err or code not in (127, *(-s for s in signals))]
    assert not wrong, f"{len(wrong)} of {len(points)} points: {wrong[:3]}"


@pytest.mark.parametrize("storm", [False, True], ids=["once", "storm"])
@pytest.mark.parametrize("signals", [(signal.SIGINT,), (signal.SIGINT, signal.SIGTERM)],
                         ids=["INT", "INT+TERM"])
def test_a_ctrl_c_anywhere_in_the_ending_prints_one_line_never_a_traceback(
        tmp_path: Path, signals: tuple[int, ...], storm: bool) -> None:
    """The launcher's failure ends in run_command, which reports it: a Ctrl-C while it did (the
    report, the restore of stdout, main's last lines), or a second one while the first was handled (a
    storm of them: thousands a second), raised KeyboardInterrupt where nothing caught it, and
    CPython's traceback came from pyforkexec's frames. A Ctrl-C raises once now, and one that comes
    while the command ends is noted: it ends by SIGINT, after the one line of its report if any."""
    points = sweep(tmp_path, signals, storm)
    wrong = [(at, code, err) for at, code, _, err in points
             if "Traceback" in err or err.count("\n") > 1 or code not in (127, *(-s for s in signals))]
    assert not wrong, f"{len(wrong)} of {len(points)} points: {wrong[:3]}"
    said = {err for _, code, _, err in points if err}
    assert all(line.startswith(("pyforkexec unshare: ", "pyforkexec: ")) for line in said), said


def test_a_program_that_runs_a_command_has_its_ctrl_c_back() -> None:
    """run_command notes a Ctrl-C once the command has ended, for the command's own process, which
    ends then; a program that calls main() (a test, a tool of its own) gets Python's handler back."""
    script = ("import signal, sys; from pyforkexec.cli import main; main(['flags', '0x1']); "
              "main(['flags', '--bogus']); print(signal.getsignal(signal.SIGINT).__name__)")
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         check=False)
    assert (res.returncode, res.stdout.splitlines()[-1:]) == (0, ["default_int_handler"]), res


def test_the_program_of_a_launcher_that_binds_starts_with_no_signal_blocked(tmp_path: Path) -> None:
    """The launcher holds back the signals that would end it from its bind on (defer_ending): after the
    clone, so that the program does not start with them blocked (the child restores the clone's mask)."""
    target = tmp_path / "uts"
    target.touch()
    try:
        res = subprocess.run([sys.executable, "-m", "pyforkexec", "unshare", f"--uts={target}", "grep",
                              "SigBlk:", "/proc/self/status"], capture_output=True, text=True, timeout=60,
                             check=False)
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False, capture_output=True)
    assert (res.returncode, res.stdout.split()) == (0, ["SigBlk:", "0000000000000000"]), res
