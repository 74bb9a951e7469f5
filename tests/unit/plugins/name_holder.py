"""A process holding an abstract unix socket name, as a daemon holds its own
(pyforkexec.service.singleton) or as any local process can bind one first: the tests of who holds a
daemon's name share it (the repository's tests and the collection's; plain Python, no Ansible, which is
why it lives here, as pid_reuse does)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Optional

# Binds the name (argv[1]), says so, sleeps. No pyforkexec imported: it may run as another user, who
# cannot read this Python's packages.
_HOLD = """
import socket, sys, time
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.bind("\\0" + sys.argv[1])
print("bound", flush=True)
time.sleep(600)
"""


@contextlib.contextmanager
def holding(name: str, user: Optional[int] = None) -> Iterator[subprocess.Popen[str]]:
    """A process (of uid ``user``, with its group and no others; this one's user if None) that holds
    the abstract name ``name`` once this yields it; killed and reaped at the end."""
    ids = {} if user is None else dict(user=user, group=user, extra_groups=[])
    proc = subprocess.Popen([sys.executable, "-S", "-c", _HOLD, name], stdout=subprocess.PIPE, text=True,
                            cwd="/", **ids)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "bound\n"
        yield proc
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
