"""Pipes made for a child are made under FORK_LOCK, held until the child's ends are closed in the
parent: a child another thread forks meanwhile without exec (clone(fn), os.fork, multiprocessing)
must not keep a copy of them, or the caller would wait for that child's end to see EOF.

Each test makes another thread clone a child that does not exec (it lives until the test lets it go,
or 60 s) at the moment the call has made its pipes, and checks that the call returned while that child
still lived (or before it was cloned at all): the call did not wait for it."""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
from types import FrameType
from typing import Any, Callable, Optional

from pyforkexec import clone, run, run_process

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
