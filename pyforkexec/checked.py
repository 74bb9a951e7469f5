"""The spawns fork_exec and start_process have checked, remembered by value for the next equal call.

A loop that calls ``fork_exec(argv0, argv, attr)`` again and again with the same arguments would check
them and compile their plan on every call: more Python than the rest of the spawn (issue 16). So each
call first takes a snapshot of its arguments (``snapshot``): a deep copy made of tuples, with the exact
type of every value beside it, so that ``1`` and ``True``, a list and a tuple, a str and a subclass of
str all differ. Equal snapshots are equal arguments, and the checks are a function of the arguments
and of this process's euid and egid (validate.check_ids), which the key holds beside the snapshots
(spawn_key), so an equal call would pass them again and compile the same plan: it reuses what was
made for that key (``prepare()``'s work: private arguments, checked, with their plans).

What is remembered is a function of its snapshot alone: the arguments are rebuilt from the snapshot
(``thaw``: immutable plain data, nobody else's), and those are checked and planned, never the
caller's objects a second time. A caller whose own thread changes its ``attr`` while the call runs
(after the snapshot) makes its own spawn see one or the other value, as any read of a changing
object does; what it leaves behind for later equal calls, of any thread, is what the snapshot says.
Nothing can make a remembered spawn stale either, as nothing it holds is the caller's: a caller who
changes its ``attr`` afterwards makes a different snapshot. What is not remembered, and always takes
the full path:
- arguments with anything the snapshot does not know as plain data (an object with fileno(), a
  callable, a path object, a subclass of a record or of str, a Mount or any other sandbox record, a
  record with attributes beyond its fields or not in their order);
- spawns whose checks read this process's state, not only the values: SysProcAttr.exec_fd (checked
  open) and use_landlock (landlock_fd checked to be a ruleset);
- spawns that open anything in the parent (forkexec.opens_nothing: namespaces to join, the sandbox's
  sync socket, cgroup, Landlock ruleset).
A spawn is remembered the second time its snapshot is seen, so that a caller whose every call differs
pays for the snapshot only, not for the rebuilt copy too. At most SIZE spawns are remembered, the
oldest forgotten first.
"""

from __future__ import annotations

import contextlib
import os
from itertools import compress
from typing import Any, Callable, Generic, Optional, TypeVar, Union

from .attrs import Credential, ProcAttr, SysProcAttr, SysProcIDMap
from .checks import fail
from .flags import CloneFlags
from .validate import SpawnArgs, check_attr, check_spawn

SIZE = 64
_ATOMS = frozenset({int, bool, str, bytes, type(None), CloneFlags})  # immutable, compared by value
_RECORDS = frozenset({ProcAttr, SysProcAttr, SysProcIDMap, Credential})  # plain fields, in vars()
_FIELDS = {kind: tuple(kind.__dataclass_fields__) for kind in _RECORDS}  # what vars() of one must hold
_is_atom = _ATOMS.__contains__
_is_false = False.__eq__  # operator.not_ for bools, without importing operator
_SEEN = object()  # a snapshot seen once: remembered at its second sight

Snapshot = Union[int, bool, str, bytes, None, tuple]
Plans = TypeVar("Plans")


class NotPlain(Exception):
    """A value snapshot() does not take: the call is checked in full, and not remembered."""


def snapshot(value: object) -> Snapshot:
    """``value`` as hashable data equal for equal values of equal types only: an atom as itself, a list,
    tuple or record as (its type, its items' snapshots, its items' types). Raises NotPlain otherwise."""
    kind = type(value)
    if kind in _ATOMS:
        return value  # type: ignore[return-value]  # one of Snapshot's atoms
    if kind is list or kind is tuple:
        items = tuple(value)  # type: ignore[call-overload]  # a list or tuple
    elif kind in _RECORDS:
        fields = vars(value)
        if tuple(fields) != _FIELDS[kind]:  # thaw() gives the items to the fields in their order
            raise NotPlain(f"{kind.__name__} with other attributes than its fields, in their order")
        items = tuple(fields.values())
    else:
        raise NotPlain(kind.__name__)
    types = tuple(map(type, items))
    if _ATOMS.issuperset(types):
        return (kind, items, types)
    nested = list(items)
    for i in compress(range(len(nested)), map(_is_false, map(_is_atom, types))):  # in C up to here
        item = nested[i]
        if type(item) is not tuple or item:  # an empty tuple is equal to nothing else: kept as is
            nested[i] = snapshot(item)
    return (kind, tuple(nested), types)


def spawn_key(argv0: object, argv: object, attr: object) -> Snapshot:
    """What a spawn is remembered by: the snapshots of its arguments, and the euid and egid the checks
    read besides them (validate.check_ids). Raises NotPlain as snapshot() does."""
    return (snapshot(argv0), snapshot(argv), snapshot(attr), os.geteuid(), os.getegid())


def thaw(snap: Snapshot) -> Any:
    """The value ``snap`` is the snapshot of, made anew: new lists, tuples and records (an equal
    value of the same types, sharing nothing mutable with anyone)."""
    if type(snap) is not tuple:
        return snap  # an atom
    kind, items, types = snap  # type: ignore[misc]  # a container's snapshot
    values = [item if _is_atom(t) or (t is tuple and item == ()) else thaw(item)
              for item, t in zip(items, types)]
    if kind is list:
        return values
    if kind is tuple:
        return tuple(values)
    return kind(*values)  # a record: its fields in order (snapshot checked vars())


def _frozen_copy(attr: ProcAttr, files: tuple[int, ...]) -> ProcAttr:
    """A deep copy of an already checked ``attr``, ``files`` as the numbers they resolved to. The
    callables (SysProcAttr.sync) are the caller's own: deepcopy would copy a bound method's object."""
    import copy  # not on a command's start path: only a spawn remembered or prepared needs it

    sys_attr = attr.sys if attr.sys is not None else SysProcAttr()
    keep: dict[int, object] = {} if sys_attr.sync is None else {id(sys_attr.sync): sys_attr.sync}
    memo = dict(keep)

    def deep(field: str, value: object, memo: dict[int, object]) -> Any:
        try:
            return copy.deepcopy(value, memo)
        except Exception as e:  # a value of the caller's own type (a PathLike holding a lock...)
            if isinstance(value, SysProcAttr):  # name the field that holds it (a new memo: the failed
                for name in value.__dataclass_fields__:  # copy left its half-made objects in that one)
                    deep(f"SysProcAttr.{name}", getattr(value, name), dict(keep))
            fail(field, f"cannot be copied ({type(e).__name__}: {e}): prepare() and a remembered spawn keep "
                 "a copy of the attributes that no later change reaches; give plain values (str, bytes, "
                 "int) instead", TypeError)

    return ProcAttr(dir=deep("ProcAttr.dir", attr.dir, memo), env=deep("ProcAttr.env", attr.env, memo),
                    files=files, sys=deep("ProcAttr.sys", sys_attr, memo))


def checked_copy(args: SpawnArgs, attr: object) -> SpawnArgs:
    """``args`` (check_spawn of the caller's ``attr``) checked again on a private frozen copy of
    ``attr``: what prepare() and a remembered spawn keep, which no later change of the caller's reaches."""
    return check_spawn(args.path, args.argv, _frozen_copy(check_attr(attr), args.files))


def _checks_read_state(args: SpawnArgs) -> bool:
    """Whether the checks of ``args`` read this process's state besides the values (see above)."""
    return args.sys.exec_fd is not None or args.sys.use_landlock


class CheckedSpawns(Generic[Plans]):
    """check_spawn and the plans of a spawn that opens nothing, remembered by snapshot (see above).

    ``plans(args)`` makes those plans (forkexec.AlonePlans), or returns None for a spawn that opens
    something in the parent: that one is not remembered."""

    __slots__ = ("entries", "plans")

    def __init__(self, plans: Callable[[SpawnArgs], Optional[Plans]]) -> None:
        self.plans = plans
        self.entries: dict[Snapshot, object] = {}

    def __call__(self, argv0: object, argv: object, attr: object) -> tuple[SpawnArgs, Optional[Plans]]:
        try:
            key: Optional[Snapshot] = spawn_key(argv0, argv, attr)
        except (NotPlain, RecursionError):
            key = None
        entry = self.entries.get(key) if key is not None else None
        if entry is not None and entry is not _SEEN:
            return entry  # type: ignore[return-value]  # what the branch below kept
        # every check (the errors name the caller's fields); a snapshot taken: plain values only
        args = check_spawn(argv0, argv, attr, is_plain=key is not None)
        plans = self.plans(args)
        if key is None or plans is None or _checks_read_state(args):
            return args, plans
        if entry is None:  # first sight
            self._keep(key, _SEEN)
            return args, plans
        # kept: the checks and plans of the snapshot's own values, rebuilt, not of the caller's objects
        # read again (its thread may change them meanwhile: the entry would say other values than its key)
        try:
            frozen = check_spawn(*map(thaw, key[:3]), is_plain=True)  # type: ignore[index]  # spawn_key's
        except Exception:  # the snapshot's values fail a check the caller's passed: they
            return args, plans  # were changed meanwhile; the next call with that snapshot is checked in full
        frozen_plans = self.plans(frozen)
        if frozen_plans is not None and not _checks_read_state(frozen):
            self._keep(key, (frozen, frozen_plans))
        return args, plans

    def _keep(self, key: Snapshot, entry: object) -> None:
        entries = self.entries
        if key not in entries and len(entries) >= SIZE:
            with contextlib.suppress(KeyError, StopIteration):  # another thread took it first
                del entries[next(iter(entries))]  # the oldest
        entries[key] = entry

