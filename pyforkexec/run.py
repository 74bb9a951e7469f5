"""run(): subprocess.run's shape on top of start_process, for namespaced commands."""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any, Optional, Union

from .attrs import ProcAttr, SysProcAttr
from .forkexec import start_process
from .process import Process, TimeoutExpired

PIPE, DEVNULL = subprocess.PIPE, subprocess.DEVNULL
Stream = Union[None, int, IO[Any]]


def _lookup(argv0: str, env: Optional[Mapping[str, str]]) -> str:
    if "/" in argv0:
        return argv0
    path = (env if env is not None else os.environ).get("PATH", os.defpath)
    return shutil.which(argv0, path=path) or argv0  # not found: execve reports ENOENT at its step


def _stream(spec: Stream, for_child_read: bool, parent: list[int], child: list[int]) -> Optional[int]:
    """The child's fd for one standard stream; the parent's end is appended to ``parent`` (else -1)."""
    if spec is None:
        parent.append(-1)
        return 0 if for_child_read else None
    if spec == PIPE:
        r, w = os.pipe2(os.O_CLOEXEC)
        parent.append(w if for_child_read else r)
        child.append(r if for_child_read else w)
        return child[-1]
    if spec == DEVNULL:
        fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        child.append(fd)
        parent.append(-1)
        return fd
    parent.append(-1)
    return spec if isinstance(spec, int) else spec.fileno()


def _communicate(proc: Process, fds: list[int], data: bytes, timeout: Optional[float]) -> tuple[bytes, bytes]:
    """Feed stdin and drain stdout/stderr until EOF, then wait; kill and reap on timeout."""
    stdin, stdout, stderr = fds
    out: dict[int, list[bytes]] = {stdout: [], stderr: []}
    deadline = None if timeout is None else time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        if stdin >= 0:
            if data:
                os.set_blocking(stdin, False)
                sel.register(stdin, selectors.EVENT_WRITE)
            else:
                os.close(stdin)
        for fd in (stdout, stderr):
            if fd >= 0:
                sel.register(fd, selectors.EVENT_READ)
        view = memoryview(data)
        while sel.get_map():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutExpired(proc.pid, timeout or 0)
            for key, _ in sel.select(left):
                fd = key.fd
                if fd == stdin:
                    try:
                        view = view[os.write(fd, view[:65536]):]
                    except BrokenPipeError:
                        view = view[:0]
                    if not view:
                        sel.unregister(fd)
                        os.close(fd)
                else:
                    chunk = os.read(fd, 65536)
                    if chunk:
                        out[fd].append(chunk)
                    else:
                        sel.unregister(fd)
    left = None if deadline is None else max(0.0, deadline - time.monotonic())
    proc.wait(left)
    return b"".join(out[stdout]), b"".join(out[stderr])


def run(argv: Sequence[str], *, sys: Optional[SysProcAttr] = None, env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None, input: Optional[Union[bytes, str]] = None, capture_output: bool = False,
        timeout: Optional[float] = None, check: bool = False, stdin: Stream = None, stdout: Stream = None,
        stderr: Stream = None, text: bool = False) -> subprocess.CompletedProcess:
    """Run argv (argv[0] looked up in PATH) with the given SysProcAttr and wait for it.

    Returns subprocess.CompletedProcess; raises subprocess.TimeoutExpired (after killing and reaping
    the child) and, with check, subprocess.CalledProcessError, as subprocess.run does.
    """
    if isinstance(argv, (str, bytes)):
        raise TypeError("argv: must be a list of strings, not a single string")
    if capture_output:
        if stdout is not None or stderr is not None:
            raise ValueError("capture_output: cannot be combined with stdout or stderr")
        stdout = stderr = PIPE
    if input is not None:
        if stdin is not None:
            raise ValueError("input: cannot be combined with stdin")
        stdin = PIPE
    data = input.encode() if isinstance(input, str) else (input or b"")
    parent: list[int] = []
    child: list[int] = []
    try:
        files = [_stream(stdin, True, parent, child), _stream(stdout, False, parent, child),
                 _stream(stderr, False, parent, child)]
        files = [f if f is not None else i for i, f in enumerate(files)]
        envp = None if env is None else [f"{k}={v}" for k, v in env.items()]
        attr = ProcAttr(dir=cwd, env=envp, files=files, sys=sys)
        proc = start_process(_lookup(argv[0], env), list(argv), attr)
    except BaseException:
        for fd in parent:
            if fd >= 0:
                os.close(fd)
        raise
    finally:
        for fd in child:
            os.close(fd)
    try:
        out, err = _communicate(proc, parent, data, timeout)
    except TimeoutExpired:
        proc.kill()
        proc.wait()
        raise subprocess.TimeoutExpired(list(argv), timeout or 0) from None
    finally:
        for fd in parent:
            with contextlib.suppress(OSError):
                os.close(fd)
    result_out: Any = (out.decode() if text else out) if stdout == PIPE else None
    result_err: Any = (err.decode() if text else err) if stderr == PIPE else None
    code = proc.returncode
    assert code is not None
    if check and code:
        raise subprocess.CalledProcessError(code, list(argv), result_out, result_err)
    return subprocess.CompletedProcess(list(argv), code, result_out, result_err)
