"""``dataclass`` for the public types (attrs.py, sandbox/*): real dataclasses, without ``exec`` at import.

``dataclasses.dataclass`` writes the source of each class's ``__init__``, ``__repr__``, ``__eq__``,
``__hash__`` and (frozen) ``__setattr__``/``__delattr__`` and compiles it with ``exec`` when the class
is defined: ~0.2-0.3 ms per class, paid again by every command line call, service start and daemon
restart, each a new interpreter (issue 15). This decorator lets ``dataclasses`` do everything else
(fields, defaults, ``__dataclass_fields__``, ``__match_args__``), so ``dataclasses.fields``,
``replace``, ``asdict`` and ``is_dataclass`` work as before, and gives the class those methods as
plain functions over its fields, with a dataclass's behaviour: keyword or positional arguments in
field order, defaults and default factories, a repr naming every field, equality field by field
between objects of the same class (``field(repr=, compare=, hash=)`` honoured), a frozen class's
hash of its fields and ``FrozenInstanceError`` on assignment; a mutable one is unhashable.
``__dataclass_params__`` says what the class has (init, repr, eq, frozen as given). Only what the
public types use is supported: no ``order``, ``__post_init__``, ``InitVar``, ``kw_only`` or
dataclass bases (each is refused). ``inspect.signature`` of the class gives the standard one (the
fields, their annotations and defaults), built when asked; that of ``cls.__init__`` itself is
``(self, *args, **kwargs)``.
"""

from __future__ import annotations

import _thread
import dataclasses
from collections.abc import Callable
from dataclasses import MISSING, FrozenInstanceError
from operator import attrgetter
from typing import Any, Optional, TypeVar

T = TypeVar("T", bound=type)

_OWN = ("__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__", "__post_init__",
        "__signature__")


def dataclass(cls: T | None = None, /, *, frozen: bool = False) -> Any:
    """``@dataclass`` or ``@dataclass(frozen=True)``, as ``dataclasses.dataclass`` with its defaults."""

    def wrap(cls: T) -> T:
        return _build(cls, frozen)

    return wrap if cls is None else wrap(cls)


def _names(names: list[str]) -> str:  # as CPython's argument errors: 'a', 'a' and 'b', 'a', 'b', and 'c'
    quoted = [repr(n) for n in names]
    if len(quoted) == 1:
        return quoted[0]
    return ", ".join(quoted[:-1]) + ("," if len(quoted) > 2 else "") + " and " + quoted[-1]


_REQUIRED, _FACTORY = object(), object()  # in an instance's first __dict__: no value yet


def _getter(names: tuple[str, ...]) -> Callable[[object], tuple[object, ...]]:
    """The tuple of those fields of an object (attrgetter: in C; it returns a bare value for one name)."""
    if len(names) > 1:
        return attrgetter(*names)
    return lambda obj: tuple([getattr(obj, name) for name in names])


class _FactoryDefault:
    def __repr__(self) -> str:  # how the standard dataclass's signature shows a default_factory
        return "<factory>"


class _Signature:
    """``cls.__signature__``, which ``inspect.signature`` reads first: the standard dataclass's, made
    (with ``inspect``) only when asked. None for a subclass: inspect then looks at its own ``__init__``."""

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def __get__(self, obj: object, owner: Optional[type] = None) -> object:
        if owner is not self.cls:
            return None
        import inspect

        param = inspect.Parameter
        return inspect.Signature([
            param(f.name, param.POSITIONAL_OR_KEYWORD, annotation=f.type,
                  default=(f.default if f.default is not MISSING else
                           _FactoryDefault() if f.default_factory is not MISSING else param.empty))
            for f in dataclasses.fields(self.cls)
        ], return_annotation=None)


def _build(cls: T, frozen: bool) -> T:
    own = [name for name in _OWN if name in vars(cls)]
    if own or any(dataclasses.is_dataclass(base) for base in cls.__mro__[1:]):
        what = own or "dataclass bases"
        raise TypeError(f"{cls.__qualname__}: this dataclass decorator does not support {what}")
    cls = dataclasses.dataclass(cls, init=False, repr=False, eq=False)  # type: ignore[assignment]
    fields = dataclasses.fields(cls)
    if any(not f.init or getattr(f, "kw_only", False) is True for f in fields):
        raise TypeError(f"{cls.__qualname__}: this dataclass decorator supports only plain init fields")
    params = cls.__dataclass_params__  # type: ignore[attr-defined]
    params.init = params.repr = params.eq = True
    params.frozen = frozen
    qualname = cls.__qualname__
    names = tuple(f.name for f in fields)
    shown_names = tuple(f.name for f in fields if f.repr)
    compared = tuple(f.name for f in fields if f.compare)
    hashed = tuple(f.name for f in fields if (f.compare if f.hash is None else f.hash))
    # (name, default or MISSING, default_factory or MISSING), in field order
    table = tuple((f.name, f.default, f.default_factory) for f in fields)
    required = [f.name for f in fields if f.default is MISSING and f.default_factory is MISSING]
    seen = set(names)
    most = len(names) + 1  # self counts, as in CPython's messages
    takes = (f"{most} positional argument{'s' if most > 1 else ''}" if len(required) == len(names)
             else f"from {len(required) + 1} to {most} positional arguments")
    # Every field in field order, with its default, or a marker for a required one or a default factory:
    # an instance's __dict__ starts as a copy, so its order is the fields' order, as a dataclass's is.
    template = {name: (_REQUIRED if default is MISSING and factory is MISSING else
                       _FACTORY if factory is not MISSING else default) for name, default, factory in table}
    factories = tuple((name, factory) for name, _, factory in table if factory is not MISSING)

    def __init__(self: object, *args: object, **kwargs: object) -> None:
        if len(args) > len(names):
            raise TypeError(f"{qualname}.__init__() takes {takes} but {len(args) + 1} were given")
        values = dict(template)  # in C from here, for the common call
        values.update(zip(names, args))
        if kwargs:
            if args or not kwargs.keys() <= seen:
                given = names[:len(args)]
                for key in kwargs:
                    if key in given:
                        raise TypeError(f"{qualname}.__init__() got multiple values for argument {key!r}")
                    if key not in seen:
                        raise TypeError(f"{qualname}.__init__() got an unexpected keyword argument {key!r}")
            values.update(kwargs)
        if len(args) < len(required):  # the required fields come first: some not given by position
            missing = [name for name in required if values[name] is _REQUIRED]
            if missing:
                raise TypeError(f"{qualname}.__init__() missing {len(missing)} required positional argument"
                                f"{'s' if len(missing) > 1 else ''}: {_names(missing)}")
        for name, factory in factories:
            if values[name] is _FACTORY:
                values[name] = factory()
        vars(self).update(values)  # as setattr per field would, without a frozen class's __setattr__

    compared_of, hashed_of = _getter(compared), _getter(hashed)

    running: set[tuple[int, int]] = set()  # reprs under way, per object and thread (a cycle shows "...")

    def __repr__(self: object) -> str:
        key = (id(self), _thread.get_ident())
        if key in running:
            return "..."
        running.add(key)
        try:
            shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in shown_names)
        finally:
            running.discard(key)
        return f"{type(self).__qualname__}({shown})"

    def __eq__(self: object, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return compared_of(self) == compared_of(other)

    methods: dict[str, Any] = {"__init__": __init__, "__repr__": __repr__, "__eq__": __eq__}
    if frozen:
        def __hash__(self: object) -> int:
            return hash(hashed_of(self))

        def __setattr__(self: object, name: str, value: object) -> None:
            if type(self) is cls or name in seen:
                raise FrozenInstanceError(f"cannot assign to field {name!r}")
            super(cls, self).__setattr__(name, value)  # type: ignore[arg-type]

        def __delattr__(self: object, name: str) -> None:
            if type(self) is cls or name in seen:
                raise FrozenInstanceError(f"cannot delete field {name!r}")
            super(cls, self).__delattr__(name)  # type: ignore[arg-type]

        methods.update(__hash__=__hash__, __setattr__=__setattr__, __delattr__=__delattr__)
    else:
        methods["__hash__"] = None  # eq without frozen: unhashable, as a dataclass
    for name, method in methods.items():
        if method is not None:
            method.__qualname__ = f"{qualname}.{name}"
            method.__module__ = cls.__module__
        setattr(cls, name, method)
    cls.__signature__ = _Signature(cls)  # type: ignore[attr-defined]
    return cls
