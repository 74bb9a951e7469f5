"""``pyforkexec exec --spec`` under a ``Type=notify`` unit: ``READY=1`` on ``NOTIFY_SOCKET`` once the
process has execed, never for a process that failed to start (pyforkexec/service/notify.py).

The manager's side is a real datagram socket bound here, as systemd binds its own: what the launcher
sends is what systemd would read."""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.cli import pfe
from helpers.marks import needs_root

pytestmark = needs_root
ENV = ["PATH=/usr/bin:/bin"]
NO_DIR = {"target": "/no/such/dir", "fstype": "tmpfs", "source": "t", "mkdir": False}
# missing under the list's own tmpfs: the spec's checks cannot look there, the child's mount fails
NO_DIR_INSIDE = {"target": "/mnt/no/such/dir", "fstype": "tmpfs", "source": "t", "mkdir": False}
TMPFS = {"target": "/mnt", "fstype": "tmpfs", "source": "t"}


class Manager:
    """The listening end of NOTIFY_SOCKET: ``address`` as the variable holds it."""

    def __init__(self, sock: socket.socket, address: str) -> None:
        self.sock = sock
        self.address = address

    def messages(self) -> list[str]:
        """Every datagram received so far (the launcher has exited: nothing more is coming)."""
        out = []
        self.sock.setblocking(False)
        while True:
            try:
                out.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return out


@pytest.fixture(params=["path", "abstract"])
def manager(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Manager]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        address = str(tmp_path / "notify")
        sock.bind(address)
    else:
        name = f"pyforkexec-test-{uuid.uuid4().hex}"
        sock.bind("\0" + name)
        address = "@" + name
    with sock:
        yield Manager(sock, address)


def _spec(tmp_path: Path, argv: list[str], **extra: object) -> str:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"version": 1, "argv": argv, "proc": {"env": ENV}, **extra}))
    return str(path)


def _launch(manager: Manager, spec: str):
    env = {"PATH": os.environ["PATH"], "NOTIFY_SOCKET": manager.address}
    return pfe("exec", "--spec", spec, env=env)


def test_ready_names_the_started_process_which_does_not_inherit_the_socket(tmp_path: Path,
                                                                          manager: Manager) -> None:
    # No proc.env: the process inherits the launcher's environment, less NOTIFY_SOCKET.
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"version": 1, "argv": ["sh", "-c", 'echo $$ "${NOTIFY_SOCKET-unset}"']}))
    res = _launch(manager, str(spec))
    assert res.returncode == 0, res.stderr
    pid, seen = res.stdout.split()
    assert seen == "unset"
    assert manager.messages() == [f"READY=1\nSTATUS=started {pid}\n"]


def test_ready_comes_with_a_detached_process_too(tmp_path: Path, manager: Manager) -> None:
    res = _launch(manager, _spec(tmp_path, ["true"], wait=False))
    assert res.returncode == 0, res.stderr
    assert manager.messages() == [f"READY=1\nSTATUS=started {int(res.stdout)}\n"]


@pytest.mark.parametrize("argv,extra,status,cause", [
    (["/nonexistent/program"], {}, 127, 'exec: "/nonexistent/program": no such file or directory'),
    (["/nonexistent/program"], {"sys": {"cloneflags": ["newns"], "mounts": [TMPFS]}}, 127,
     "no such file or directory (at execve)"),  # mounts could bring it: the start tells
    (["no-such-program-anywhere"], {}, 127, 'exec: "no-such-program-anywhere": executable file not found'),
    (["true"], {"sys": {"cloneflags": ["newns"], "mounts": [NO_DIR]}}, 1,
     "spec: sys.mounts[0].target: /no/such/dir does not exist here"),  # refused before the start
    (["true"], {"sys": {"cloneflags": ["newns"], "mounts": [TMPFS, NO_DIR_INSIDE]}}, 125,
     "spec: sys.mounts[1] (/mnt/no/such/dir): fork/exec"),
])
def test_no_ready_for_a_process_that_did_not_start(tmp_path: Path, manager: Manager, argv: list[str],
                                                   extra: dict, status: int, cause: str) -> None:
    for wait in (True, False):
        res = _launch(manager, _spec(tmp_path, argv, wait=wait, **extra))
        assert res.returncode == status, res.stderr
        assert cause in res.stderr
        assert manager.messages() == []
