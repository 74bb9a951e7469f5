"""Int fields that also take names: clone flags (``["CLONE_NEWUTS", "newpid"]``), namespace types
(``restrict_namespaces: ["net", "user"]``) and signals (``"SIGTERM"``), read from and written to
documents. A field opts in by its ``dataclasses.field``
metadata (``parse``/``dump``) or by a row of ``_NAMED``."""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

from .. import signames
from ..attrs import SetNS, SysProcAttr
from ..flags import NAMESPACE_FLAGS, NAMESPACE_MASK, NAMESPACE_PROC_FILES, CloneFlags


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


def parse_namespaces(value: object) -> int:
    """Namespace types as util-linux and systemd name them (``["net", "user"]``, ``"net,user"``; ``[]``:
    none), or as clone flags (``newnet``, ``CLONE_NEWNET``, a number)."""
    if isinstance(value, bool):
        raise TypeError("expected a list of namespace types (cgroup, ipc, mnt, net, pid, time, user, uts; "
                        "[] for none), not a boolean")
    text = isinstance(value, str)
    if text:
        value = [v.strip() for v in value.replace("|", ",").split(",")] if value.strip() else value
    if isinstance(value, (list, tuple)):
        items: list[object] = []
        for i, v in enumerate(value):
            if isinstance(v, str) and v.lower() in NAMESPACE_FLAGS:
                items.append(int(NAMESPACE_FLAGS[v.lower()]))
            elif isinstance(v, str) and v.strip() and not _is_clone_flag(v):
                rule = "unknown namespace type (cgroup, ipc, mnt, net, pid, time, user, uts)"
                if text:
                    raise ValueError(f"{rule}: {v!r}")
                raise ItemError(i, rule, v)
            else:
                items.append(v)
        value = items
    return parse_flags(value)


def _is_clone_flag(name: str) -> bool:
    try:
        CloneFlags.parse(name)
    except ValueError:
        return False
    return True


def _dump_namespaces(value: int) -> object:
    if value & ~NAMESPACE_MASK:
        return value
    return [NAMESPACE_PROC_FILES[f] for f in CloneFlags.split(value)]


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
    (SysProcAttr, "restrict_namespaces"): (parse_namespaces, _dump_namespaces),
    (SysProcAttr, "pdeathsig"): (_parse_signal, _dump_signal),
}


# The parsers that take a list of names (the schema offers an array for their fields).
LIST_PARSERS = (parse_flags, parse_namespaces)


def named_of(cls: type, f: dataclasses.Field) -> Optional[Named]:
    parse = f.metadata.get("parse")
    if parse is not None:
        return parse, f.metadata.get("dump", lambda v: v)
    return _NAMED.get((cls, f.name))
