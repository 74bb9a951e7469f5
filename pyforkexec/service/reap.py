"""``python -m pyforkexec.service.reap PID [CGROUP] --waited HOW --exited-at MS``: where
pyforkexec-waiter sends a launcher back once its child exited (supervise.py): reap the child, remove
its cgroup (CGROUP: the JSON of cgroup.handover_record, if it has one), and exit as it did. Without
a cgroup the waiter does that itself (``forward-exit``) and comes here only if it failed. The
waiter's signals arrive blocked; should the waiter have failed before the exit (HOW ``error``), the
child is supervised here."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn, Optional

from ..process import Process
from .exit import exit_like
from .supervise import Supervisor


def main(argv: Optional[Sequence[str]] = None) -> NoReturn:
    if signal.getsignal(signal.SIGCHLD) == signal.SIG_IGN:  # (see cli/__init__.py: it reaps its child)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    args = list(sys.argv[1:] if argv is None else argv)
    pid = int(args[0])
    if len(args) > 1 and not args[1].startswith("--"):  # a cgroup to remove: only then its module
        from ..sandbox.cgroup import process_from_record

        proc = process_from_record(pid, json.loads(args[1]))
    else:  # the waiter failed (a child without a cgroup is reaped by the waiter itself)
        proc = Process(pid)
    sup = Supervisor()
    with sup.handlers():
        sup.started(proc)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {*sup.signals, signal.SIGCHLD})  # ours are installed
        code = sup.wait()
    exit_like(code)


if __name__ == "__main__":
    main()
