"""Resource limits set in the child (prlimit64) before it changes credentials.

``Rlimit("nofile", 1024, 4096)``: the resource by name (``"RLIMIT_NOFILE"``, ``"nofile"``) or number,
then the soft and hard limits; -1, ``resource.RLIM_INFINITY``, ``"unlimited"`` or ``"infinity"`` mean
no limit. They are set while the child still has the caller's privileges, so a root caller may raise
a hard limit for a child that then runs as another user. RLIMIT_NOFILE is the exception, as Go's own
restored limit: set after the fd passes (only a raised hard limit is set before), so a limit below the
fds the set-up uses limits the program and not the set-up.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Union

from ..checks import check_int, check_list, fail

if TYPE_CHECKING:  # checkers see the standard decorator; see _dataclass.py
    from dataclasses import dataclass
else:
    from .._dataclass import dataclass

# asm-generic/resource.h (x86_64 and aarch64 alike).
RESOURCES = (
    "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS", "RLIMIT_NPROC",
    "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS", "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
)
RLIM_INFINITY = 2**64 - 1  # the kernel's value; -1 and "unlimited" are accepted for it
_UNLIMITED = ("unlimited", "infinity")
Limit = Union[int, str]


@dataclass(frozen=True)
class Rlimit:
    """One resource limit: ``resource`` by name or number, ``soft`` <= ``hard``."""

    resource: Union[int, str]
    soft: Limit
    hard: Limit


def resource_number(field: str, value: object) -> int:
    if isinstance(value, str):
        # ASCII only: str.upper() makes a name of other strings (U+FB01, the ligature fi, in "no\ufb01le")
        name = value.upper() if value.isascii() else value
        name = name if name.startswith("RLIMIT_") else f"RLIMIT_{name}"
        if name not in RESOURCES:
            fail(field, f"unknown resource {value!r} (one of {', '.join(RESOURCES)})")
        return RESOURCES.index(name)
    return check_int(field, value, 0, len(RESOURCES) - 1)


def limit_value(field: str, value: object) -> int:
    if isinstance(value, str):
        if value.lower() not in _UNLIMITED:
            fail(field, f"must be a number, -1, 'unlimited' or 'infinity', got {value!r}")
        return RLIM_INFINITY
    if isinstance(value, bool) or not isinstance(value, int):  # before == -1, which -1.0 passes
        fail(field, f"must be an int, -1, 'unlimited' or 'infinity', not {type(value).__name__}", TypeError)
    value = int.__int__(value)  # its value: a subclass's __eq__ is never asked (validate.py)
    if value == -1:
        return RLIM_INFINITY
    return check_int(field, value, 0, RLIM_INFINITY)


def check_rlimits(field: str, rlimits: object) -> tuple[tuple[int, int, int], ...]:
    """(resource, soft, hard) for each entry; a resource given twice is refused."""
    out: list[tuple[int, int, int]] = []
    for i, r in enumerate(check_list(field, rlimits, "Rlimit")):
        f = f"{field}[{i}]"
        if not isinstance(r, Rlimit):
            fail(f, f"must be an Rlimit, not {type(r).__name__}", TypeError)
        res = resource_number(f"{f}.resource", r.resource)
        soft, hard = limit_value(f"{f}.soft", r.soft), limit_value(f"{f}.hard", r.hard)
        if soft > hard:
            fail(f, f"soft limit {r.soft} is above the hard limit {r.hard}")
        if any(res == seen for seen, _, _ in out):
            fail(f, f"{RESOURCES[res]} is already set by an earlier entry")
        out.append((res, soft, hard))
    return tuple(out)


def encode_rlimit(soft: int, hard: int) -> bytes:
    """The struct rlimit64 the child's prlimit64 step sets."""
    return struct.pack("=QQ", soft, hard)
