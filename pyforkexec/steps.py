"""The step list the C child runs: one packed struct per step, and the bytes steps point to.

A step is ``op, loc, index, refs, nr, a[6]`` (struct "=iiiiq6q" in _child.c). Bit j of ``refs`` marks
``a[j]`` as a Blob: the child gets a pointer to those bytes. ``loc`` and ``index`` are what a failure
of the step reports (ErrorLocation and which entry of a list field).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Union

from . import _child
from .errors import ErrorLocation

OPS, SYS, CONST = _child.OPS, _child.SYS, _child.CONST
STEP = struct.Struct("=iiiiq6q")
assert STEP.size == CONST["STEP_SIZE"], "steps.py and _child.c disagree on the step layout"


class Blob(bytes):
    """A step argument passed by address: the child gets a pointer to these bytes."""


Arg = Union[int, Blob]


def cstr(data: bytes) -> Blob:
    return Blob(data + b"\0")


@dataclass
class Builder:
    steps: list[bytes] = field(default_factory=list)
    blobs: list[bytes] = field(default_factory=list)

    def add(self, op: str, loc: ErrorLocation, *args: Arg, nr: int = 0, index: int = 0) -> None:
        refs, values = 0, []
        for j, a in enumerate(args):
            if isinstance(a, Blob):
                refs |= 1 << j
                self.blobs.append(a)
                a = len(self.blobs) - 1
            values.append(a)
        values += [0] * (6 - len(values))
        self.steps.append(STEP.pack(OPS[op], loc, index, refs, nr, *values))

    def syscall(self, loc: ErrorLocation, name: str, *args: Arg, index: int = 0) -> None:
        self.add("SYSCALL", loc, *args, nr=SYS[name], index=index)
