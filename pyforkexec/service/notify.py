"""sd_notify(3) for the launcher: ``READY=1`` once its child has execed, for ``Type=notify`` units.

Under ``Type=exec`` systemd reports a unit started as soon as the launcher itself is running, so a
service whose spawn then fails (a missing program, a refused mount, a strict Landlock policy) or
that dies at once looks started to whoever ran ``systemctl start``. Under ``Type=notify`` the start
waits for ``READY=1`` from the main process, and fails if it exits first: the launcher sends it only
after ``start_process`` returned, that is after the child's ``execve`` succeeded.

``NOTIFY_SOCKET`` is taken out of the launcher's environment before the child's is built from it
(``sd_notify``'s ``unset_environment``): the notification is the launcher's to send, and the unit's
``NotifyAccess=main`` would ignore the child's anyway.
"""

from __future__ import annotations

import contextlib
import os
from typing import Optional

NOTIFY_SOCKET = "NOTIFY_SOCKET"


class Notifier:
    """Where to send notifications (None: not run by a service manager that listens)."""

    def __init__(self, address: Optional[str]) -> None:
        self.address = address

    @classmethod
    def from_environ(cls) -> Notifier:
        """The manager's socket, removed from ``os.environ`` (so that no child inherits it)."""
        return cls(os.environ.pop(NOTIFY_SOCKET, None) or None)

    def ready(self, pid: int) -> bool:
        """``READY=1`` with the child's pid in ``STATUS=``; whether it was sent. A manager that cannot
        be told is not an error here: it fails the start itself when its timeout passes."""
        return self.send(f"READY=1\nSTATUS=started {pid}\n")

    def send(self, message: str) -> bool:
        if self.address is None:
            return False
        import socket  # only under a service manager: a launcher's start-up imports what it uses

        # An address starting with @ is in the abstract namespace (a leading NUL byte).
        address = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        kind = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, kind) as sock:
            sock.sendto(message.encode(), address)
            return True
        return False
