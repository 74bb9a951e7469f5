"""The caller's arguments as plain data, each value read once, before any check looks at them.

The checks and the steps read a field more than once (a test, then its bytes; a comparison, then a
hash; a flag scan, then the parse), and a value of the caller's own type may answer each read
differently: a subclass of str or bytes with its own ``__eq__``, ``__hash__``, ``__bool__`` or
``encode``, an int with its own operators, a list whose ``!=`` or iteration lies, a record subclass
whose field is a property. Checked one way and used another, such a value runs the child without the
isolation that passed the check. So ``plain`` rebuilds the arguments once, at the start of
check_spawn, out of values of the builtin types themselves: each str, bytes, int or float of a
subclass becomes the builtin one it holds (read by the builtin's own method, never the subclass's),
each list or tuple a tuple of the items it holds (another sequence: of its items, read once), each
public record (``SysProcAttr``, ``Mount``, ``Cgroup``...) of a subclass an object of the record's own
class built from its fields read once, and a path object the str or bytes its ``__fspath__``
gives. Every check and step then reads that copy. What is already plain is returned as it is (the
common case copies nothing); what is not data (a callable, a file object, an fd holder) is kept for
its own check.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from itertools import compress
from operator import attrgetter, is_
from typing import Any, Callable

from .attrs import Credential, ProcAttr, SetNS, SysProcAttr, SysProcIDMap
from .checks import fail
from .flags import CloneFlags
from .sandbox.caps import Capabilities
from .sandbox.cgroup import Cgroup
from .sandbox.landlock import Landlock, LandlockPath, LandlockPort
from .sandbox.mounts import Mount
from .sandbox.rlimits import Rlimit
from .sandbox.seccomp import SeccompFilter

RECORDS = (ProcAttr, SysProcAttr, SysProcIDMap, Credential, SetNS, Mount, Rlimit, Cgroup, Capabilities,
           Landlock, LandlockPath, LandlockPort, SeccompFilter)
_ATOMS = frozenset({int, bool, str, bytes, float, type(None), CloneFlags})  # (an enum has no subclasses)
# Records nest a few levels (ProcAttr > SysProcAttr > Landlock > paths > LandlockPath > access);
# deeper than this is no argument of ours: it is left as given, for the field's check to refuse.
MAX_DEPTH = 12
_is_atom = _ATOMS.__contains__
_is_false = False.__eq__


def _fields(record: type) -> tuple[tuple[str, ...], Callable[[object], tuple[Any, ...]]]:
    names = tuple(f.name for f in dataclasses.fields(record) if f.init)
    return names, attrgetter(*names) if len(names) > 1 else (lambda obj: (getattr(obj, names[0]),))


_READERS = {record: _fields(record) for record in RECORDS}


Where = Any  # a field's name, kept as (where, key) pairs until an error needs it spelt out (_label)


def plain(value: object, where: Where = None, depth: int = 0) -> Any:
    """``value`` as plain data (see above); ``value`` itself when it is plain already. ``where``: the
    field that holds it, named by the one error this raises: a path object whose ``__fspath__``
    fails (TypeError) cannot be read once, so it is refused here rather than asked again later."""
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind in _READERS:
        return _record(kind, value, where, depth)
    if (kind is tuple or kind is list) and depth < MAX_DEPTH:  # (the exact ones first: the common case)
        return _items(value, value, where, depth)  # type: ignore[arg-type]
    if isinstance(value, int):  # bool has no subclasses
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)  # a str of the same characters, whatever the subclass says
    if isinstance(value, bytes):
        return bytes.__getitem__(value, slice(None))  # the bytes held, by bytes' own slicing
    if depth >= MAX_DEPTH:
        return value
    if isinstance(value, list):  # what it holds, by list's own iteration, not the subclass's
        return tuple(_items(tuple(list.__iter__(value)), None, where, depth))
    if isinstance(value, tuple):
        return tuple(_items(tuple(tuple.__iter__(value)), None, where, depth))
    if isinstance(value, Sequence) and not isinstance(value, (bytearray, memoryview)):
        return tuple(_items(tuple(value), None, where, depth))  # read once
    record = next((r for r in kind.__mro__ if r in _READERS), None)
    if record is not None:
        return _record(record, value, where, depth)
    if isinstance(value, os.PathLike):
        try:
            path = os.fspath(value)
        except Exception as e:
            fail(_label(where), f"{kind.__name__}.__fspath__() failed ({type(e).__name__}: {e})", TypeError)
        return plain(path, where, depth + 1)
    return value  # not data: a callable, a file object... checked by its field


def _items(items: Sequence[Any], same: object, where: Where, depth: int,
           field: Callable[[int], Where] | None = None) -> Any:
    """``items`` made plain: ``same`` when each item is plain already, else a tuple (a list: a copy).
    ``field(i)`` names item ``i`` (a record's field); else it is ``where[i]``."""
    types = tuple(map(type, items))
    if _ATOMS.issuperset(types):  # the common case, decided in C
        return same if same is not None else items
    made = list(items)
    for i in compress(range(len(made)), map(_is_false, map(_is_atom, types))):
        made[i] = plain(made[i], (where, i) if field is None else field(i), depth + 1)
    if same is not None and all(map(is_, made, items)):
        return same
    return tuple(made)


def _record(record: type, value: object, where: Where, depth: int) -> Any:
    names, read = _READERS[record]
    given = read(value)
    if depth >= MAX_DEPTH:
        return value
    if type(value) is record and _ATOMS.issuperset(map(type, given)):  # the common case, in C
        return value
    made = _items(given, value if type(value) is record else None, where, depth,
                  lambda i: _field(record, where, names[i]))
    return made if made is value else record(**dict(zip(names, made)))


def _field(record: type, where: Where, name: str) -> Where:
    if record is ProcAttr and name == "sys":
        return "SysProcAttr"  # (as the checks name its fields)
    return (where if where is not None else record.__name__, "." + name)


def _label(where: Where) -> str:
    """``where`` spelt out: SysProcAttr.mounts[6].target."""
    parts = []
    while isinstance(where, tuple):
        where, key = where
        parts.append(f"[{key}]" if isinstance(key, int) else key)
    return (where or "value") + "".join(reversed(parts))
