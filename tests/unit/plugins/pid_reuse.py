"""A freed pid steered onto a bystander, inside a PID namespace of a test's own: the pieces the tests of
kills by pid number share (the repository's tests and the collection's, both of which run scripts as
PID 1 of such a namespace; there /proc/sys/kernel/ns_last_pid steers the next fork, in that namespace
only). Plain Python, no Ansible: under ansible-test it sits in the collection's copy of
tests/unit/plugins, which is why it lives here and not in tests/helpers.

The scripts ``run`` starts have this file's directory on their PYTHONPATH: ``import pid_reuse``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))


def killed(pid: int, stopped: bool = False) -> bool:
    """Whether the child ``pid`` exited, or has a SIGKILL on its way (pending: sent, not yet acted on);
    with ``stopped``, a SIGSTOP on its way or acted on counts too. Its exit is not reaped."""
    if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
        return True
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    pending = int(fields["SigPnd"], 16) | int(fields["ShdPnd"], 16)
    hit = 1 << (signal.SIGKILL - 1)
    states = "Z"
    if stopped:
        hit |= 1 << (signal.SIGSTOP - 1)
        states += "Tt"
    return fields["State"][0] in states or bool(pending & hit)


def sleeper(session: bool = False, close: Iterable[int] = ()) -> int:
    """Fork a child that closes ``close``, makes a session of its own with ``session``, then sleeps
    (600 s); returns its pid once it has done all but the sleep."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            for fd in close:
                os.close(fd)
            if session:
                os.setsid()
            os.write(w, b".")
            time.sleep(600)
        finally:
            os._exit(0)
    os.close(w)
    os.read(r, 1)
    os.close(r)
    return pid


def stand_in(hold: Callable[[], list[int]]) -> tuple[int, int]:
    """A stand-in daemon: a child that holds the fds ``hold()`` opens in it (a daemon's name and locked
    pid file, as pyforkexec.service.daemon holds them) and forks its service, a sleeper that closes
    them, which it reaps once it ends; (the daemon's pid, the service's), once both run."""
    r, w = os.pipe()
    daemon = os.fork()
    if daemon == 0:
        try:
            os.close(r)
            held = hold()
            os.write(w, b"%d\n" % sleeper(close=held))
            os.wait()
            time.sleep(600)
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        service = int(f.readline())
    return daemon, service


def bystander_on(pid: int, session: bool = False, close: Iterable[int] = ()) -> int:
    """A sleeper (see ``sleeper``) forked as the next process of this PID namespace, given the freed
    ``pid`` unless another fork comes between; returns its pid, for the caller to compare."""
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(pid - 1))
    return sleeper(session, close)


def in_own_uts_and_ipc() -> subprocess.Popen:
    """A sleeper in UTS and IPC namespaces of its own (made by util-linux unshare), once it is in them."""
    proc = subprocess.Popen(["unshare", "--uts", "--ipc", "sleep", "600"])
    while os.stat(f"/proc/{proc.pid}/ns/uts").st_ino == os.stat("/proc/self/ns/uts").st_ino:
        time.sleep(0.001)  # (until unshare has made them)
    return proc


def run(script: str, *args: str, env: dict[str, str] | None = None, mount_proc: bool = True) -> Any:
    """``script`` run by this Python as PID 1 of a PID namespace of its own, with ``args`` as its argv
    and ``env`` (this process's by default) with this file's directory ahead on PYTHONPATH: its JSON
    answer (its one line on stdout). It must exit 0; the test skips without util-linux unshare. Without
    ``mount_proc`` it keeps this process's /proc, where it and its children have other numbers (as in a
    container that kept the host's /proc)."""
    import pytest

    if shutil.which("unshare") is None:
        pytest.skip("needs util-linux unshare")
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (HERE, env.get("PYTHONPATH")) if p)
    proc = ["--mount-proc"] if mount_proc else []
    res = subprocess.run(["unshare", "--pid", "--fork", *proc, sys.executable, "-c", script, *args],
                         capture_output=True, text=True, timeout=120, check=False, env=env)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)
