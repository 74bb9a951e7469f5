"""A module run killed (SIGKILL) at one of its mutating system calls: a run traced whole gives the
mutating calls it makes, in order, and a run killed at the N-th of them stops there, before that call
does anything (a fatal signal pending at a ptrace syscall-entry stop skips the call).

Or interrupted there, by another signal (``signum``): SIGINT, a user's Ctrl-C, sent to the module's
process group as a terminal sends it (what the module started and did not detach gets it too); SIGTERM,
to the module's process. Unlike SIGKILL, the call at which it arrives still runs: one that completes
(most) does all it does, and the signal comes on its return; one that blocks (a wait, a read of a pipe)
returns EINTR, and Python, which retries a call interrupted so (PEP 475), first runs the signal's
handler. SIGINT's (Python's default) raises KeyboardInterrupt in the main thread at its next bytecode
(its call is then not retried): the module's ``except``/``finally`` blocks, context managers and
rollbacks run, from wherever that thread was; a module that does not catch it ends by SIGINT (as
Python ends on an uncaught KeyboardInterrupt). SIGTERM's (the default action: no handler) ends the
process once that call returns, running no Python, as SIGKILL but one call later. Shared by the
collection's kill-anywhere tests; plain Python (no Ansible), as name_holder is; run as a script, it is
the tracer (ptrace: it waits for any child, so it is a process of its own, never the test's).

Not strace's fault injection (``-e inject=SET:signal=KILL:when=N``): strace counts per syscall and per
tracee, so that a module that works in threads (the services module applies its entries in threads)
had most of its threads' calls out of reach (when=N of a thread's N-th pidfd_send_signal killed the
main thread's N-th, made earlier): the restart of a changed service, its stop and its spec's write,
could not be killed between. Here the count is over the calls of all the module's threads, in the
order they make them; the processes the module starts (daemons, children) are not traced.

x86_64 only (the syscall numbers and registers below); elsewhere ``supported()`` says why not.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
from typing import NamedTuple

# What changes the host: files, directories, cgroups (file writes), signals, processes, netlink (links,
# addresses, routes), sysctls (/proc/sys writes), mounts. A kill before any other call (a read, a
# stat) leaves the host as the kill before the next mutating call leaves it. Opens count when they
# may create the file (O_CREAT). x86_64 numbers (asm/unistd_64.h).
MUTATING = {
    1: "write", 2: "open", 18: "pwrite64", 20: "writev", 44: "sendto", 46: "sendmsg", 49: "bind",
    56: "clone", 57: "fork", 58: "vfork", 62: "kill", 76: "truncate", 77: "ftruncate", 82: "rename",
    83: "mkdir", 84: "rmdir", 85: "creat", 86: "link", 87: "unlink", 88: "symlink", 90: "chmod",
    91: "fchmod", 92: "chown", 93: "fchown", 94: "lchown", 133: "mknod", 165: "mount", 166: "umount2",
    188: "setxattr", 190: "fsetxattr", 234: "tgkill", 257: "openat", 258: "mkdirat", 259: "mknodat",
    260: "fchownat", 263: "unlinkat", 264: "renameat", 265: "linkat", 266: "symlinkat", 268: "fchmodat",
    272: "unshare", 285: "fallocate", 296: "pwritev", 307: "sendmmsg", 316: "renameat2", 328: "pwritev2",
    424: "pidfd_send_signal", 435: "clone3",
}
# Where a run waits (a daemon's report, a process's end, a lock): SIGINT there interrupts the wait
# (EINTR), and KeyboardInterrupt comes from inside it, where no mutating call's point reaches.
WAITING = {7: "poll", 23: "select", 61: "wait4", 73: "flock", 232: "epoll_wait", 247: "waitid",
           270: "pselect6", 271: "ppoll", 281: "epoll_pwait"}
# The register of an open's flags: open's 2nd argument (rsi), openat's 3rd (rdx).
_OPEN_FLAGS = {2: 13, 257: 12}
_ORIG_RAX = 15  # user_regs_struct: the syscall number at a syscall stop

PTRACE_TRACEME, PTRACE_SYSCALL, PTRACE_GETREGS, PTRACE_SETOPTIONS, PTRACE_DETACH = 0, 24, 12, 0x4200, 17
PTRACE_O_TRACESYSGOOD, PTRACE_O_TRACECLONE, PTRACE_O_TRACEEXEC, PTRACE_O_EXITKILL = 1, 8, 16, 0x100000
_WALL = 0x40000000


def supported():
    """None where the tracer works, else why not."""
    if platform.machine() != "x86_64" or sys.platform != "linux":
        return f"the tracer knows x86_64 Linux's syscalls only, not {sys.platform} {platform.machine()}'s"
    return None


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.restype = ctypes.c_long
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    return libc


def _tgid(tid):
    try:
        with open(f"/proc/{tid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("Tgid:"))
    except (OSError, StopIteration):
        return None


def trace(argv, kill_at, signum=signal.SIGKILL, counted="mutating"):
    """Run ``argv``, counting its threads' mutating calls (``counted`` "waiting": its waits, WAITING,
    instead); send it ``signum`` at the ``kill_at``-th (0:
    never; SIGINT to its process group, which it leads). The calls counted (their names, up to the one
    the signal came at: the last), its wait status and its pid (its process group's id)."""
    libc = _libc()
    pid = os.fork()
    if pid == 0:  # (the child: traced from its execve on)
        try:
            if libc.ptrace(PTRACE_TRACEME, 0, None, None) != 0:
                os._exit(126)  # (a seccomp policy, a container: not stopped, or nobody would see it)
            os.setpgid(0, 0)  # (a group of its own, as a shell makes for a command: SIGINT goes to it)
            os.kill(os.getpid(), signal.SIGSTOP)
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    status = os.waitpid(pid, _WALL)[1]  # its SIGSTOP
    if not os.WIFSTOPPED(status):
        raise OSError(f"ptrace(PTRACE_TRACEME) refused here (status {status:#x})")
    options = PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL
    libc.ptrace(PTRACE_SETOPTIONS, pid, None, options)
    libc.ptrace(PTRACE_SYSCALL, pid, None, None)
    regs, names = (ctypes.c_ulong * 27)(), MUTATING if counted == "mutating" else WAITING
    calls, in_call, known, killed = [], {}, {pid}, False
    while True:
        tid, status = os.waitpid(-1, _WALL)
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            in_call.pop(tid, None)
            if tid == pid:
                return calls, status, pid
            continue
        sig, deliver = os.WSTOPSIG(status), 0
        if tid not in known:  # a new tracee (TRACECLONE), at its first stop
            known.add(tid)
            if _tgid(tid) != pid:  # a process the module started with clone (not a thread): not ours
                libc.ptrace(PTRACE_DETACH, tid, None, None)
                continue
        elif sig == signal.SIGTRAP | 0x80:  # a syscall stop: entry and exit alternate
            entering = in_call[tid] = not in_call.get(tid, False)
            if entering and not killed and libc.ptrace(PTRACE_GETREGS, tid, None, regs) == 0:
                number = regs[_ORIG_RAX]
                flags = _OPEN_FLAGS.get(number)
                if number in names and (flags is None or regs[flags] & os.O_CREAT):
                    calls.append(names[number])
                    if len(calls) == kill_at:  # (SIGKILL: this call is skipped; another: it runs)
                        if signum == signal.SIGINT:
                            os.killpg(pid, signum)
                        else:
                            os.kill(pid, signum)  # the thread group
                        killed = True
        elif sig != signal.SIGTRAP and status >> 16 == 0:  # a signal for the tracee (not a ptrace event)
            deliver = sig
        libc.ptrace(PTRACE_SYSCALL, tid, None, deliver)


def _main():
    report, kill_at, signum, counted, argv = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], \
        sys.argv[5:]
    calls, status, pid = trace(argv, kill_at, signum, counted)
    with open(report, "w") as f:
        json.dump(dict(pid=pid, calls=calls, signal=os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                       code=os.WEXITSTATUS(status) if os.WIFEXITED(status) else None), f)
    sys.exit(0)


class Run(NamedTuple):
    result: dict | None  # what it printed; None when nothing and it ended by the signal sent
    calls: list  # the names of the mutating calls it made, up to the one the signal came at
    killed: bool  # whether it ended by the signal sent
    left: list  # the pids of the processes left in its process group once it ended (not detached)


def run(module, args, pythonpath, kill_at=0, timeout=300, signum=signal.SIGKILL, counted="mutating"):
    """``module`` run with ``args`` as Ansible runs it (its arguments on stdin, ``pythonpath`` its
    PYTHONPATH), traced, sent ``signum`` at its ``kill_at``-th mutating call (0: never; ``counted``
    "waiting": its ``kill_at``-th wait). A run that
    does not end within ``timeout`` seconds is killed, and its result is a failure saying so (``hung``
    true)."""
    # No .pyc written (their writes would be kill points of the interpreter, not of the module), and one
    # hash seed (the order of sets), so that two runs make their calls in the same order.
    env = dict(os.environ, PYTHONPATH=pythonpath, PYTHONDONTWRITEBYTECODE="1", PYTHONHASHSEED="0")
    fd, report = tempfile.mkstemp(prefix="kill-sweep-")
    os.close(fd)
    try:
        tracer = [sys.executable, os.path.abspath(__file__), report, str(kill_at), str(int(signum)), counted]
        given = json.dumps({"ANSIBLE_MODULE_ARGS": args})
        try:
            done = subprocess.run([*tracer, sys.executable, "-m", module], input=given, capture_output=True,
                                  text=True, env=env, cwd="/", timeout=timeout, check=False)
        except subprocess.TimeoutExpired:  # (the tracer killed: PTRACE_O_EXITKILL kills the module)
            return Run(dict(failed=True, hung=True, msg=f"did not end within {timeout} s"), [], False, [])
        with open(report) as f:
            traced = json.load(f)
    finally:
        os.unlink(report)
    killed, left = traced["signal"] == signum, group_members(traced["pid"])
    try:
        result = json.loads(done.stdout)
    except ValueError:
        if killed:
            return Run(None, traced["calls"], True, left)
        result = dict(failed=True, msg=f"no result ({traced}): {done.stdout!r} {done.stderr!r}")
    return Run(result, traced["calls"], killed, left)


def group_members(pgid):
    """The pids of the live processes in process group ``pgid``."""
    found = []
    for entry in (e for e in os.listdir("/proc") if e.isdigit()):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry))
    return found


def sample(count, budget):
    """The kill points 1..``count``, every k-th of them (the first and last always) when there are more
    than ``budget``; PFE_KILL_SWEEP=all keeps every one. And the stride, for the test to say."""
    points = list(range(1, count + 1))
    if os.environ.get("PFE_KILL_SWEEP") == "all" or count <= budget:
        return points, 1
    stride = -(-count // budget)
    chosen = points[::stride]
    if chosen[-1] != points[-1]:
        chosen.append(points[-1])
    return chosen, stride


if __name__ == "__main__":
    _main()
