"""Pipes made for a child are made under FORK_LOCK, held until the child's ends are closed in the
parent: a child another thread forks meanwhile without exec (clone(fn), os.fork, multiprocessing)
must not keep a copy of them, or the caller would wait for that child's end to see EOF.

Each test makes another thread clone a child that does not exec (it lives until the test lets it go,
or 60 s) at the moment the call has made its pipes, and checks that the call returned while that child
still lived (or before it was cloned at all): the call did not wait for it. run_in_namespaces forks
(at-fork hooks), so it cannot hold FORK_LOCK there without a lock-order deadlock: it reads its
result by length instead, and a test shows that deadlock is gone."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
from types import FrameType
from typing import Any, Callable, Optional

from helpers.marks import needs_root

from pyforkexec import clone, nsinfo, run, run_process

Trigger = Callable[[FrameType, str, Any], bool]


def _while_a_fork_comes(trigger: Trigger, call: Callable[[], Any]) -> tuple[Any, Optional[bool]]:
    """``call()``; at the profile event ``trigger`` accepts, another thread clones a child that does
    not exec (given up to a second). What call returned, and whether that child was alive when it
    returned (None: not cloned by then)."""
    release_r, release_w = os.pipe()

    def lingering() -> int:
        os.close(release_w)
        select.select([release_r], [], [], 60)
        return 0

    go, cloned = threading.Event(), threading.Event()
    pids: list[int] = []

    def cloner() -> None:
        go.wait(60)
        pids.append(clone(lingering, signal.SIGCHLD))
        cloned.set()

    fired: list[bool] = []

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if not fired and trigger(frame, event, arg):
            fired.append(True)
            go.set()
            cloned.wait(1)  # it clones now, unless the call holds FORK_LOCK here

    thread = threading.Thread(target=cloner)
    thread.start()
    alive: Optional[bool] = None
    try:
        sys.setprofile(profile)
        try:
            result = call()
        finally:
            sys.setprofile(None)
        if pids:
            alive = os.waitpid(pids[0], os.WNOHANG) == (0, 0)
        assert fired, "the trigger never fired: the call changed, move it"
    finally:
        go.set()
        os.close(release_w)
        thread.join(60)
        for pid in pids:
            if alive is not False:
                os.waitpid(pid, 0)
        os.close(release_r)
    return result, alive


def test_runs_pipes_are_not_copied_into_another_threads_fork() -> None:
    def made_pipes(frame: FrameType, event: str, arg: Any) -> bool:
        return event == "return" and frame.f_code is run_process._open_streams.__code__

    result, alive = _while_a_fork_comes(made_pipes, lambda: run(["/bin/echo", "hi"], capture_output=True))
    assert result.returncode == 0 and result.stdout == b"hi\n"
    assert alive is not False, "run() waited for the end of a child another thread forked"


@needs_root
def test_run_in_namespaces_pipe_is_not_copied_into_another_threads_fork() -> None:
    def made_pipe(frame: FrameType, event: str, arg: Any) -> bool:
        return event == "c_return" and arg is os.pipe and frame.f_code is nsinfo.run_in_namespaces.__code__

    result, alive = _while_a_fork_comes(made_pipe, lambda: nsinfo.run_in_namespaces(
        [("/proc/self/ns/uts", "uts")], os.getpid))
    assert result != os.getpid()
    assert alive is not False, "run_in_namespaces waited for the end of a child another thread forked"


# Another thread's fork that takes a hook's lock registered after FORK_LOCK's (hooks run "before" in
# reverse order: concurrent.futures registers one) and then waits for FORK_LOCK, while the call, had
# it held FORK_LOCK, forks and waits for that lock.
_LOCK_ORDER = """
import os, sys, threading
sys.path.insert(0, sys.argv[1])
import test_fork_lock as t
from pyforkexec import nsinfo
later = threading.Lock()  # a hook registered after FORK_LOCK's, as concurrent.futures.thread's is
os.register_at_fork(before=later.acquire, after_in_parent=later.release, after_in_child=later.release)
def made_pipe(frame, event, arg):
    return event == "c_return" and arg is os.pipe and frame.f_code is nsinfo.run_in_namespaces.__code__
result, alive = t._while_a_fork_comes(made_pipe, lambda: nsinfo.run_in_namespaces(
    [("/proc/self/ns/uts", "uts")], os.getpid))
print(result != os.getpid(), alive)
"""


@needs_root
def test_run_in_namespaces_holds_no_lock_across_its_fork() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([here, *sys.path]))
    try:
        out = subprocess.run([sys.executable, "-c", _LOCK_ORDER, here], capture_output=True, text=True,
                             timeout=60, env=env)
    except subprocess.TimeoutExpired:
        raise AssertionError("run_in_namespaces and another thread's fork deadlocked") from None
    assert out.returncode == 0 and out.stdout.split() == ["True", "True"], out.stdout + out.stderr
