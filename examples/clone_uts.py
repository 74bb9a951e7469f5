"""The clone(2) man page's example in Python: a child in a new UTS namespace renames its host.

    python examples/clone_uts.py box42            # as root: CLONE_NEWUTS needs CAP_SYS_ADMIN
    python examples/clone_uts.py --user box42     # unprivileged: CLONE_NEWUSER|CLONE_NEWUTS

The child sets its own hostname and prints it; after the child has exited the parent prints its
own, unchanged. With ``--user`` the child is also in a new user namespace, which gives it the
capabilities it needs over its new UTS namespace without any privilege on the host. ``--hold N``
keeps the child (and so its namespace) alive for N seconds, as the C example's sleep(200) does, so
that you can look at it (``nsenter --target PID --uts hostname``). The exit status is the child's.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time

import pyforkexec as fe


def say(line: str) -> None:
    """One write per line, so that the parent's and the child's lines never cut into each other."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def child_func(hostname: str, hold: float) -> int:
    """Runs in the cloned child; its return value is the child's exit status."""
    socket.sethostname(hostname)  # changes the hostname in the child's UTS namespace only
    say(f"uts.nodename in child:  {os.uname().nodename}")
    time.sleep(hold)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("hostname", help="the child's new hostname")
    parser.add_argument("--user", action="store_true", help="add CLONE_NEWUSER, to run without root")
    parser.add_argument("--hold", type=float, default=0.0, metavar="SECONDS",
                        help="keep the child and its namespace alive this long")
    args = parser.parse_args(argv)

    flags = fe.CLONE_NEWUTS | signal.SIGCHLD  # SIGCHLD: an ordinary child that os.waitpid sees
    if args.user:
        flags |= fe.CLONE_NEWUSER
    try:
        pid = fe.clone(child_func, flags, args.hostname, args.hold)
    except PermissionError as e:
        hint = "" if args.user else " (run as root, or add --user)"
        print(f"{parser.prog}: {e.strerror}{hint}", file=sys.stderr)
        return 1
    say(f"clone() returned {pid}")

    code = fe.wait_clone(pid)
    say(f"uts.nodename in parent: {os.uname().nodename}")
    say(f"child has terminated with status {code}")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
