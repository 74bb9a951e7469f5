"""The id maps of ``unshare``'s --map-* options, computed as util-linux computes them.

``--map-users``/``--map-groups`` take ``inner:outer:count`` (or util-linux 2.38's
``outer,inner,count``), ``auto`` (the caller's first /etc/subuid range mapped from 0), ``subids``
(that range mapped to itself) or ``all`` (every id of the current namespace, to itself). A single
``--map-user``/``--map-group`` id combined with ranges is carved out of them, as util-linux does,
so that no two lines overlap.

A range the kernel would refuse (a count of 0, ids beyond 4294967294, two ranges that overlap) is
refused when its option is read, naming the option and the mapping as written, never a line of the
computed map (which the carving renumbers).
"""

from __future__ import annotations

import pwd
import re
from typing import Optional

from .._record import Value
from ..attrs import SysProcIDMap
from ..checks import MAX_ID

NO_ID = 2**32 - 1  # util-linux's (uid_t)-1: "no single id", or "inner start not chosen yet"


class Range(Value):
    """``count`` ids from ``outer`` (the parent namespace's) mapped to those from ``inner``: one line of
    a map (a key of Request.origin)."""

    __slots__ = ("count", "inner", "outer")

    def __init__(self, outer: int, inner: int, count: int):
        self.outer = outer
        self.inner = inner
        self.count = count

    def as_map(self) -> SysProcIDMap:
        return SysProcIDMap(container_id=self.inner, host_id=self.outer, size=self.count)


def _number(digits: str) -> int:
    # ASCII digits only (the pattern); more than 20 of them is out of range anyway, and int() of
    # thousands of digits would raise.
    return int(digits) if len(digits) <= 20 else 2**64


def parse_range(text: str) -> Optional[Range]:
    """``inner:outer:count`` or ``outer,inner,count``; None when neither."""
    m = re.fullmatch(r"([0-9]+):([0-9]+):([0-9]+)", text)
    if m:
        return Range(outer=_number(m[2]), inner=_number(m[1]), count=_number(m[3]))
    m = re.fullmatch(r"([0-9]+),([0-9]+),([0-9]+)", text)
    if m:
        return Range(outer=_number(m[1]), inner=_number(m[2]), count=_number(m[3]))
    return None


def range_problem(r: Range, inner_chosen: bool = True) -> Optional[str]:
    """Why the kernel would refuse this range as a line of a map (None: it would not), in the words
    of the option. ``inner_chosen`` False: a subid range whose inner start is picked later (NO_ID)."""
    if r.count < 1:
        return "count must be at least 1"
    for side, start in (("inner", r.inner), ("outer", r.outer)):
        if side == "inner" and not inner_chosen:
            start = 0
        if start > MAX_ID:
            return f"{side} id must be at most {MAX_ID}"
        if start + r.count > MAX_ID + 1:
            return f"{side} id + count must be at most {MAX_ID + 1}"
    return None


def overlap(a: Range, b: Range) -> Optional[str]:
    """The side ("inner" or "outer") on which two ranges share ids, which one map cannot have."""
    for side in ("inner", "outer"):
        start_a, start_b = (0 if x == NO_ID and side == "inner" else x for x in (getattr(a, side),
                                                                                 getattr(b, side)))
        if start_a < start_b + b.count and start_b < start_a + a.count:
            return side
    return None


def read_subid_range(path: str, uid: int, identity: bool) -> Range:
    """The first range of /etc/subuid or /etc/subgid owned by ``uid`` (by name or number)."""
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        raise ValueError(f"you (user {uid}) don't exist") from None
    with open(path) as f:
        for line in f:
            owner, _, rest = line.strip().partition(":")
            if owner not in (name, str(uid)):
                continue
            start, _, count = rest.partition(":")
            try:
                outer, n = int(start), int(count)
            except ValueError:
                raise ValueError(f"failed to parse subid map line {line.strip()!r} in {path}") from None
            return Range(outer=outer, inner=outer if identity else NO_ID, count=n)
    raise ValueError(f'no line matching user "{name}" in {path}')


def read_kernel_map(path: str) -> list[Range]:
    """Every id of the current namespace mapped to itself (``--map-users=all``), as prepended."""
    ranges: list[Range] = []
    with open(path) as f:
        for line in f:
            fields = line.split()
            if len(fields) == 3:
                ranges.insert(0, Range(outer=int(fields[0]), inner=int(fields[0]), count=int(fields[2])))
    return ranges


def add_single(chain: list[Range], outer: int, inner: int) -> list[Range]:
    """util-linux's add_single_map_range: map ``outer`` to ``inner`` (NO_ID: none) and cut both ids
    out of the ranges of ``chain`` (a list in util-linux's prepend order)."""
    if inner == NO_ID:
        outer = NO_ID
    out: list[Range] = []
    for m in chain:
        count = m.count
        if m.inner == NO_ID:  # an automatic inner start is 0 from here on, as util-linux makes it
            m = Range(m.outer, 0, m.count)
        if inner != NO_ID and (m.outer <= outer <= m.outer + count or m.inner <= inner <= m.inner + count):
            count -= 1
        outer_off = min(outer - m.outer if outer > m.outer else 0, count)
        inner_off = min(inner - m.inner if inner > m.inner else 0, count)
        lo = Range(m.outer, m.inner, min(inner_off, outer_off))
        mid_outer = lo.outer + lo.count
        mid_outer += mid_outer == outer
        mid_inner = lo.inner + lo.count
        mid_inner += mid_inner == inner
        mid = Range(mid_outer, mid_inner, abs(outer_off - inner_off))
        hi_outer = mid.outer + mid.count
        hi_outer += hi_outer == outer
        hi_inner = mid.inner + mid.count
        hi_inner += hi_inner == inner
        hi = Range(hi_outer, hi_inner, count - lo.count - mid.count)
        for part in (hi, mid, lo):  # each prepended, as util-linux inserts them
            if part.count:
                out.insert(0, part)
    if inner != NO_ID:
        out.insert(0, Range(outer=outer, inner=inner, count=1))
    return out
