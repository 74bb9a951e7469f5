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
  record with attributes beyond its fields or not in their order, or a ``__dict__`` not a dict);
- spawns whose checks read this process's state, not only the values: SysProcAttr.exec_fd (checked
  open) and use_landlock (landlock_fd checked to be a ruleset);
- spawns that open anything in the parent (forkexec.opens_nothing: namespaces to join, the sandbox's
  sync socket, cgroup, Landlock ruleset).
A spawn is remembered the second time its snapshot is seen, so that a caller whose every call differs
pays for the snapshot only, not for the rebuilt copy too. At most SIZE spawns are remembered, the
oldest forgotten first.

The snapshot itself runs cold after each child's exec, a dozen Python calls and a tuple per list and
record: 20-35 µs a call with a user namespace's maps. A hot loop mostly passes the very same objects
again, unchanged. So the call that finds a remembered spawn keeps what its snapshot read (``Seen``: the
argument objects, each list and record walked, the objects they held), and the next call with the very
same argument objects compares, in a few C calls over all of them, that every one of those lists and
records holds the very same objects again (identity: an equal value of another type is another
object), the same number of them under the same names, and that the euid and egid are the same: then a
snapshot now would be equal, and the call takes the remembered spawn without one. Anything else takes
the snapshot. Nothing of the caller's is spawned from: only the key's entry, as above.
"""

from __future__ import annotations

import contextlib
import os
from itertools import chain, compress
from operator import is_
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


class Reads:
    """What snapshot() read of the mutable objects it walked: each list with the items it held, each
    record with its type, its ``__dict__`` and the names and values in it. A snapshot is a function of
    these reads alone (the atoms among the items are immutable), so a snapshot taken while every one of
    those objects holds the very same objects again would be equal (Seen.holds)."""

    __slots__ = ("dicts", "kinds", "list_items", "lists", "record_items", "record_names", "records")

    def __init__(self) -> None:
        self.lists: list[list[object]] = []
        self.list_items: list[tuple[object, ...]] = []
        self.records: list[object] = []
        self.kinds: list[type] = []
        self.dicts: list[dict[str, object]] = []
        self.record_names: list[tuple[str, ...]] = []
        self.record_items: list[tuple[object, ...]] = []


def snapshot(value: object, reads: Optional[Reads] = None) -> Snapshot:
    """``value`` as hashable data equal for equal values of equal types only: an atom as itself, a list,
    tuple or record as (its type, its items' snapshots, its items' types). Raises NotPlain otherwise.
    ``reads``, when given, collects what it read of the lists and records (Reads)."""
    kind = type(value)
    if kind in _ATOMS:
        return value  # type: ignore[return-value]  # one of Snapshot's atoms
    if kind is list or kind is tuple:
        items = tuple(value)  # type: ignore[call-overload]  # a list or tuple
        if reads is not None and kind is list:  # a tuple holds its items for good: nothing to watch
            reads.lists.append(value)  # type: ignore[arg-type]  # a list
            reads.list_items.append(items)
    elif kind in _RECORDS:
        fields = vars(value)
        if type(fields) is not dict:  # a __dict__ of the caller's own type: its reads could lie
            raise NotPlain(f"{kind.__name__} with a __dict__ of type {type(fields).__name__}")
        names = tuple(fields)
        if names != _FIELDS[kind]:  # thaw() gives the items to the fields in their order
            raise NotPlain(f"{kind.__name__} with other attributes than its fields, in their order")
        items = tuple(fields.values())
        if reads is not None:
            reads.records.append(value)
            reads.kinds.append(kind)
            reads.dicts.append(fields)
            reads.record_names.append(names)
            reads.record_items.append(items)
    else:
        raise NotPlain(kind.__name__)
    types = tuple(map(type, items))
    if _ATOMS.issuperset(types):
        return (kind, items, types)
    nested = list(items)
    for i in compress(range(len(nested)), map(_is_false, map(_is_atom, types))):  # in C up to here
        item = nested[i]
        if type(item) is not tuple or item:  # an empty tuple is equal to nothing else: kept as is
            nested[i] = snapshot(item, reads)
    return (kind, tuple(nested), types)


def spawn_key(argv0: object, argv: object, attr: object, reads: Optional[Reads] = None) -> Snapshot:
    """What a spawn is remembered by: the snapshots of its arguments, and the euid and egid the checks
    read besides them (validate.check_ids). Raises NotPlain as snapshot() does; ``reads`` see Reads."""
    return (snapshot(argv0, reads), snapshot(argv, reads), snapshot(attr, reads), os.geteuid(), os.getegid())


Entry = tuple[SpawnArgs, object]  # a remembered spawn: its checked arguments and plans


class Seen:
    """The arguments of the last call that found a remembered spawn, what their snapshot read (Reads),
    and that spawn. A call with the very same argument objects, whose records have the same types and
    ``__dict__`` objects, whose lists and records hold the same number of items, under the same names
    in the same order, each the very same object as then, made by the same euid and egid, has an equal
    key: holds() says so without taking it. Identity, not equality: an equal value of another type
    (1 and True) or in another object is another read, and such a call takes the key. Each step is one
    C call over all the items (no Python per item): the snapshot's walk runs cold after each child's
    exec, this far less.

    It keeps the caller's objects alive until a call with other ones replaces it (one call's worth);
    nothing of them is ever spawned from: the spawn is the remembered entry, made from the key."""

    __slots__ = ("argv", "argv0", "attr", "egid", "entry", "euid", "expected", "reads")

    def __init__(self, argv0: object, argv: object, attr: object, key: Snapshot, reads: Reads,
                 entry: Entry) -> None:
        self.argv0, self.argv, self.attr, self.entry, self.reads = argv0, argv, attr, entry, reads
        self.euid, self.egid = key[3], key[4]  # type: ignore[index]  # spawn_key's
        # made at the first call with these objects: a caller whose every call brings new ones never needs it
        self.expected: Optional[tuple[tuple[object, ...], ...]] = None

    def _expected(self) -> tuple[tuple[object, ...], ...]:
        reads = self.reads
        sizes = (*map(len, reads.list_items), *map(len, reads.record_names))
        items = (*chain.from_iterable(reads.record_names), *chain.from_iterable(reads.list_items),
                 *chain.from_iterable(reads.record_items))
        expected = self.expected = (tuple(reads.records), tuple(reads.kinds), tuple(reads.dicts),
                                    tuple(reads.lists), sizes, items)
        return expected

    def holds(self, argv0: object, argv: object, attr: object) -> bool:
        """Whether a snapshot of these arguments now would be the one this was made from (see above)."""
        if argv0 is not self.argv0 or argv is not self.argv or attr is not self.attr:
            return False
        records, kinds, dicts, lists, sizes, items = self.expected or self._expected()
        # By identity, and in this order, so that no code of the caller's runs: a __class__ reassigned
        # could give vars() its own, a __dict__ replaced (by one of a dict subclass) its own len() and
        # iteration, a name or value its own ==.
        if not all(map(is_, map(type, records), kinds)):
            return False
        fields = tuple(map(vars, records))
        if not all(map(is_, fields, dicts)) or (*map(len, lists), *map(len, fields)) != sizes:
            return False
        now = (*chain.from_iterable(fields), *chain.from_iterable(lists),
               *chain.from_iterable(map(dict.values, fields)))
        return len(now) == len(items) and all(map(is_, now, items)) \
            and os.geteuid() == self.euid and os.getegid() == self.egid


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

    __slots__ = ("entries", "plans", "seen")

    def __init__(self, plans: Callable[[SpawnArgs], Optional[Plans]]) -> None:
        self.plans = plans
        self.entries: dict[Snapshot, object] = {}
        self.seen: Optional[Seen] = None

    def clear(self) -> None:
        """Forget every remembered spawn: the next call of each is a first sight."""
        self.seen = None
        self.entries.clear()

    def __call__(self, argv0: object, argv: object, attr: object) -> tuple[SpawnArgs, Optional[Plans]]:
        seen = self.seen
        if seen is not None and seen.holds(argv0, argv, attr):
            return seen.entry  # type: ignore[return-value]  # a kept entry
        reads = Reads()
        try:
            key: Optional[Snapshot] = spawn_key(argv0, argv, attr, reads)
        except (NotPlain, RecursionError):
            key = None
        entry = self.entries.get(key) if key is not None else None
        if entry is not None and entry is not _SEEN:
            self.seen = Seen(argv0, argv, attr, key, reads, entry)  # type: ignore[arg-type]  # kept below
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
            kept = (frozen, frozen_plans)
            self._keep(key, kept)
            self.seen = Seen(argv0, argv, attr, key, reads, kept)
        return args, plans

    def _keep(self, key: Snapshot, entry: object) -> None:
        entries = self.entries
        if key not in entries and len(entries) >= SIZE:
            with contextlib.suppress(KeyError, StopIteration):  # another thread took it first
                del entries[next(iter(entries))]  # the oldest
        entries[key] = entry

