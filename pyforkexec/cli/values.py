"""Option values as util-linux reads them: numbers (strtoul's rules), ids and names, signals, paths.

Each parser fails through ``Command.fail`` (a usage error, exit status 1) naming the option and quoting
the value.
"""

from __future__ import annotations

import grp
import pwd
import re
import signal
from typing import Optional

from .. import signames
from ..checks import MAX_ID
from .options import Command

MAX_PID = 2**31 - 1  # pid_t


# strtoul's number: C-locale blanks, a sign, ASCII digits (int() would also take "1_000" and
# non-ASCII digits).
_NUMBER = r"[ \t\n\v\f\r]*([+-]?)([0-9]+)"  # compiled (and cached by re) at its first use


def shown(value: Optional[str], limit: int = 64) -> str:
    """An option value as a message quotes it: ``'abc'``, cut when long."""
    text = value or ""
    return f"'{text}'" if len(text) <= limit else f"'{text[:limit]}...'"


def parse_int(cmd: Command, option: str, value: Optional[str], what: str, lo: int, hi: int) -> int:
    """A decimal number in [lo, hi], as util-linux's strtoul_or_err/strtos64_or_err read it."""
    m = re.fullmatch(_NUMBER, value or "")
    if m is None or (m[1] == "-" and lo >= 0):
        cmd.fail(f"{option}: failed to parse {what} {shown(value)}")
    digits = m[2].lstrip("0")
    n = int(m[1] + (digits or "0")) if len(digits) <= 20 else (hi + 1 if m[1] != "-" else lo - 1)
    if not lo <= n <= hi:
        cmd.fail(f"{option}: {what} out of range: {shown(value)}")
    return n


def parse_uint(cmd: Command, option: str, value: Optional[str], what: str = "number",
               hi: int = MAX_ID) -> int:
    return parse_int(cmd, option, value, what, 0, hi)


def parse_id(cmd: Command, option: str, value: Optional[str], kind: str) -> int:
    """A uid (``kind`` "uid") or gid given as a number or as a name of this host's passwd/group."""
    if value and not re.fullmatch(_NUMBER, value):
        lookup = (lambda n: pwd.getpwnam(n).pw_uid) if kind == "uid" else (lambda n: grp.getgrnam(n).gr_gid)
        try:
            found = lookup(value)
        except (KeyError, ValueError):  # ValueError: a name with a NUL byte
            cmd.fail(f"{option}: unknown {'user' if kind == 'uid' else 'group'} {shown(value)}")
        if not 0 <= found <= MAX_ID:
            cmd.fail(f"{option}: {kind} of {shown(value)} out of range: {found}")
        return found
    return parse_uint(cmd, option, value, kind)


def parse_signal(cmd: Command, option: str, value: str) -> int:
    """``SIGKILL``, ``KILL``, ``kill`` or ``9``; a real-time signal as util-linux names it, ``RTMIN+N``
    or ``RTMAX-N`` (``SIGRTMIN+1``: 35 with glibc)."""
    if re.fullmatch(_NUMBER, value):
        return parse_int(cmd, option, value, "signal number", 1, signal.NSIG - 1)
    sig = signames.number(value)
    if sig is None:
        cmd.fail(f"{option}: unknown signal: {shown(value)}")
    return sig


def nonempty(cmd: Command, option: str, value: Optional[str], what: str = "path") -> Optional[str]:
    """A path option's value; an empty one (``--root=``) is refused rather than taken as "not given",
    as util-linux fails on it too (it cannot open or chdir to "")."""
    if value == "":
        cmd.fail(f"{option}: an empty {what}")
    return value
