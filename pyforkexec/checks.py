"""The small checks every validator shares: each failure names the field it is about.

A message reads ``SysProcAttr.mounts[2].target: must be an absolute path``; ValueError for a bad
value, TypeError for a value of the wrong type.
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()  # os.fsencode's

MAX_FD = 2**31 - 1
MAX_ID = 2**32 - 2  # (uid_t)-1 means "no change" to the kernel
PID_MAX = 2**31 - 1  # pid_t

# How a caller's path to a namespace file (a setns target, a mount's idmap, nsenter's --net=FILE) is
# opened: a FIFO named there would block open(2) for ever until some program opened it for writing
# (no namespace file is one: non-blocking, it opens at once and is refused as no namespace), and a
# tty would become the controlling terminal of a process that has none.
NS_OPEN = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


def fail(field: str, rule: str, kind: type = ValueError) -> NoReturn:
    raise kind(f"{field}: {rule}")


def check_int(field: str, value: object, lo: int, hi: int) -> int:
    if type(value) is int and lo <= value <= hi:  # the common case, decided without the calls below
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        fail(field, f"must be an int, not {type(value).__name__}", TypeError)
    # A plain int of its value, compared and returned: a subclass's own operators, __int__ or
    # __format__ (which may say anything) are never asked again (and IntFlag arithmetic is ~50x slower
    # on the hot path).
    value = int.__int__(value)
    if not lo <= value <= hi:
        fail(field, f"must be between {lo} and {hi}, got {value}")
    return value


def check_pid(field: str, value: object) -> int:
    """One process's pid: 1 to PID_MAX. 0 and -1 (and -pgid) mean a process group or every process
    to kill(2) and waitpid(2), and a bool is refused (True would be pid 1)."""
    return check_int(field, value, 1, PID_MAX)


def check_bool(field: str, value: object) -> bool:
    if not isinstance(value, bool):
        fail(field, f"must be True or False, not {type(value).__name__}", TypeError)
    return value


def check_choice(field: str, value: object, choices: Sequence[str]) -> str:
    if not isinstance(value, str):
        fail(field, f"must be a string, not {type(value).__name__}", TypeError)
    value = str.__str__(value)  # the characters held: a subclass's __eq__ or __hash__ is never asked
    if value not in choices:
        fail(field, f"must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return value


def check_list(field: str, value: object, what: str) -> Sequence:
    """A list or tuple (not a string, which is a sequence of characters): ``value`` itself, or for a
    sequence of the caller's type a tuple of what it holds, read once (the checks and the steps then
    use that: such a sequence could answer otherwise when read again)."""
    if type(value) is list or type(value) is tuple:  # the common case, without the ABC's isinstance
        return value
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        fail(field, f"must be a list of {what}, not {type(value).__name__}", TypeError)
    return tuple(value)


def check_real(field: str, value: object, lo: float, hi: float) -> float:
    """A finite int or float (not bool) in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail(field, f"must be a number, not {type(value).__name__}", TypeError)
    value = int.__int__(value) if isinstance(value, int) else float.__float__(value)  # as check_int
    if not lo <= value <= hi:  # also refuses NaN
        fail(field, f"must be between {lo} and {hi}, got {value}")
    return value


def check_open_fd(field: str, fd: int) -> int:
    """``fd`` is open in this process. Only for fds the parent itself uses before the child exists
    (exec_fd, which it duplicates); an fd only the child uses (ProcAttr.files, setns, cgroup_fd) is
    left to fail at the child's step, as in Go, with the ChildError naming that step."""
    try:
        fcntl.fcntl(fd, fcntl.F_GETFD)
    except OSError:
        fail(field, f"fd {fd} is not open in this process")
    return fd


def check_fileno(field: str, value: object) -> int:
    """An fd given as an int or as an object with fileno() (a file, a socket); a closed file object
    (whose fileno() raises) is refused here."""
    if isinstance(value, int) and not isinstance(value, bool):
        fd = value
    else:
        method = getattr(value, "fileno", None)
        if not callable(method):
            fail(field, f"must be an fd or have a fileno() method, not {type(value).__name__}", TypeError)
        try:
            fd = method()
        except (OSError, ValueError) as e:  # a closed file object: "I/O operation on closed file"
            fail(field, f"{type(value).__name__}.fileno() failed: {e}")
        except Exception as e:  # the caller's own object misbehaving: still this field's error
            fail(field, f"{type(value).__name__}.fileno() failed ({type(e).__name__}: {e})", TypeError)
        if isinstance(fd, bool) or not isinstance(fd, int):
            fail(field, f"{type(value).__name__}.fileno() returned {type(fd).__name__}, not an int",
                 TypeError)
    return check_int(field, fd, 0, MAX_FD)


def to_bytes(field: str, value: object) -> bytes:
    """A str/bytes/PathLike as bytes without NUL (Go returns EINVAL for a NUL byte)."""
    if type(value) is bytes:  # the common cases first, as os.fsencode would encode them
        if b"\0" not in value:
            return value
    elif type(value) is str and "\0" not in value:
        try:
            return value.encode(_FS_ENCODING, _FS_ERRORS)
        except UnicodeEncodeError:
            pass  # the general path below names the position
    if not isinstance(value, (str, bytes, os.PathLike)):
        fail(field, f"must be str, bytes or a path, not {type(value).__name__}", TypeError)
    try:
        value = os.fspath(value)  # (a path object's, asked once) then the str or bytes held, as the
        # builtin holds them: a subclass's own encode, __bool__ or __eq__ is never asked
        value = str.__str__(value) if isinstance(value, str) else bytes.__getitem__(value, slice(None))
        data = os.fsencode(value)
    except UnicodeEncodeError as e:  # a lone surrogate that surrogateescape cannot turn into a byte
        fail(field, f"cannot be encoded to bytes ({e.reason} at position {e.start})")
    except TypeError as e:  # a PathLike whose __fspath__ returns neither str nor bytes
        fail(field, str(e), TypeError)
    if b"\0" in data:
        fail(field, "contains a NUL byte")
    return data


def to_abspath(field: str, value: object) -> bytes:
    data = to_bytes(field, value)
    if not data.startswith(b"/"):
        fail(field, f"must be an absolute path, got {os.fsdecode(data)!r}")
    return data
