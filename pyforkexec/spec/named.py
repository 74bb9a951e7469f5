"""Int fields that also take names: clone flags (``["CLONE_NEWUTS", "newpid"]``) and signals
(``"SIGTERM"``), read from and written to documents. A field opts in by its ``dataclasses.field``
metadata (``parse``/``dump``) or by a row of ``_NAMED``."""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

from .. import signames
from ..attrs import SetNS, SysProcAttr
from ..flags import CloneFlags


class ItemError(ValueError):
    """A named value's parser refusing one item of a list: ``index`` extends the field's path, and the
    loader adds the JSON type of ``value`` to the message."""

    def __init__(self, index: int, message: str, value: object):
        super().__init__(message)
        self.index = index
        self.value = value


def parse_flags(value: object) -> int:
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            if isinstance(v, bool) or not isinstance(v, (str, int)):
                raise ItemError(i, "expected a flag name or number", v)
            if isinstance(v, str) and not v.strip():  # joined, it would name no flag: none at all
                raise ItemError(i, "an empty string names no flag", v)
        value = ",".join(str(v) for v in value)
    elif isinstance(value, str) and not value.strip():  # as "newuts||" is refused: an empty flag
        raise ValueError("an empty string names no flag: give [] or 0 for none")
    if not isinstance(value, str):
        raise TypeError("expected an integer, a flag name string or a list of flag names")
    return int(CloneFlags.parse(value))


def _parse_signal(value: object) -> int:
    if not isinstance(value, str):
        raise TypeError("expected a signal number or name")
    found = signames.number(value)
    if found is None:
        raise ValueError(f"unknown signal {value!r}")
    return found


def _dump_signal(value: int) -> object:
    """A signal's name; a number that is none (which the loader takes, and the checks refuse) as the
    number, which loads back (its name would be the digits, which name no signal)."""
    name = signames.name(value) if value else None
    return name if name is not None and signames.number(name) == value else value


def _dump_flags(value: int) -> object:
    if CloneFlags.unknown_bits(value) or not value:
        return value
    return [f.name for f in CloneFlags.split(value)]


# (dataclass, field) -> (parse a non-int JSON value, dump an int). A field's metadata "parse"/"dump"
# take precedence, so a new flags field can declare its names where it is defined.
Named = tuple[Callable[[object], int], Callable[[int], object]]


_NAMED: dict[tuple[type, str], Named] = {
    (SysProcAttr, "cloneflags"): (parse_flags, _dump_flags),
    (SysProcAttr, "unshareflags"): (parse_flags, _dump_flags),
    (SetNS, "nstype"): (parse_flags, _dump_flags),
    (SysProcAttr, "pdeathsig"): (_parse_signal, _dump_signal),
}


def named_of(cls: type, f: dataclasses.Field) -> Optional[Named]:
    parse = f.metadata.get("parse")
    if parse is not None:
        return parse, f.metadata.get("dump", lambda v: v)
    return _NAMED.get((cls, f.name))
