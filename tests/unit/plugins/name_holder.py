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

# Binds the name (argv[1]), says so, sleeps. With argv[4] a uid, it becomes that user (its group, no
# others) first: started by this one's, whose interpreter that user may not be able to reach (a
# checkout's venv under /root), with its modules imported before. With argv[3] a uid, a child of that
# uid makes and binds the socket, and hands it to this process. With argv[2] "in-flight", the socket is
# sent in a message to a socket pair's other end, which nobody reads, and closed: bound still, in no
# process's fds. No pyforkexec imported.
_HOLD = """
import os, socket, sys, time
if sys.argv[4]:
    os.setgroups([])
    os.setgid(int(sys.argv[4]))
    os.setuid(int(sys.argv[4]))
if sys.argv[3]:
    ends = socket.socketpair()
    if os.fork() == 0:
        os.setgroups([])
        os.setgid(int(sys.argv[3]))
        os.setuid(int(sys.argv[3]))
        made = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        made.bind("\\0" + sys.argv[1])
        socket.send_fds(ends[1], [b"."], [made.fileno()])
        os._exit(0)
    sock = socket.socket(fileno=socket.recv_fds(ends[0], 1, 1)[1][0])
    os.wait()
else:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind("\\0" + sys.argv[1])
if sys.argv[2] == "in-flight":
    ends = socket.socketpair()
    socket.send_fds(ends[0], [b"."], [sock.fileno()])
    sock.close()
print("bound", flush=True)
time.sleep(600)
"""


@contextlib.contextmanager
def holding(name: str, user: Optional[int] = None, in_flight: bool = False,
            made_by: Optional[int] = None) -> Iterator[subprocess.Popen[str]]:
    """A process (of uid ``user``, with its group and no others; this one's user if None) that holds
    the abstract name ``name`` once this yields it (``in_flight``: its socket in a message it sent and
    nobody reads, in none of its fds; ``made_by``: a socket a child of that uid made and handed to it);
    killed and reaped at the end (the name released then)."""
    argv = [sys.executable, "-S", "-c", _HOLD, name, "in-flight" if in_flight else "held",
            "" if made_by is None else str(made_by), "" if user is None else str(user)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd="/")
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "bound\n"
        yield proc
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
