"""Record and Value: the base of the library's internal data classes (a spawn's checked and encoded
arguments, its plan, the command line's requests).

They were dataclasses. A dataclass compiles its ``__init__``, ``__repr__`` and ``__eq__`` with ``exec``
when its module is imported, and every command line call, service start and daemon restart imports
them all again in a new interpreter (issue 15: start-up). These are plain classes instead: each
writes its ``__init__`` and lists its fields in ``__slots__``; this base gives what the dataclass
gave besides, from ``__slots__``: equality field by field between objects of the same class (the
plan cache compares a spawn's inputs by value, forkexec.PlanCache) and a repr naming every field.

``Record`` is mutable and unhashable, like a dataclass; ``Value`` is hashable by its fields, like a
frozen dataclass, and is not changed once made (nothing enforces it: the classes are internal).
The public classes (attrs.py, sandbox/*) stay dataclasses: ``dataclasses.fields`` and ``replace``
on them are API, and the spec loader walks their fields.
"""

from __future__ import annotations


class Record:
    __slots__ = ()

    def _fields(self) -> tuple[object, ...]:
        return tuple([getattr(self, name) for name in type(self).__slots__])

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Record)
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable: as a dataclass with eq and without frozen

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in type(self).__slots__)
        return f"{type(self).__qualname__}({shown})"


class Value(Record):
    __slots__ = ()

    def __hash__(self) -> int:
        return hash(self._fields())
