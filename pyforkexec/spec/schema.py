"""The JSON Schema of spec documents, derived from the same dataclasses and type hints as the loader."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence
from dataclasses import MISSING
from typing import Any, Optional, Union

from ..attrs import ProcAttr, SysProcAttr
from .document import NoneType, hints_of, is_mapping, is_sequence
from .fds import takes_fd
from .load import VERSION
from .named import LIST_PARSERS, named_of


def schema_of(hint: Any, defs: Optional[dict[str, Any]]) -> Optional[dict]:
    """The JSON Schema of a type hint; None for what a document cannot hold (callables, objects).
    The dataclasses met on the way are defined in ``defs``; with ``defs`` None they are not (the
    loader's question, whether there is a schema at all, which a dataclass always has): their
    fields' type hints are not evaluated, at each load, for nothing."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:
        arms = [s for s in (schema_of(a, defs) for a in args if a is not NoneType) if s is not None]
        if not arms:
            return None  # e.g. Optional[Callable]: only its default, None, could be written
        return {"anyOf": arms + ([{"type": "null"}] if NoneType in args else [])}
    simple = {NoneType: "null", bool: "boolean", int: "integer", float: "number", str: "string"}
    if hint in simple:
        return {"type": simple[hint]}
    if hint is Any:
        return {}
    if dataclasses.is_dataclass(hint):  # an object of its fields, or a list of them in order
        if defs is not None:
            _dataclass_schema(hint, defs)
        return {"anyOf": [{"$ref": f"#/$defs/{hint.__name__}"},
                          {"$ref": f"#/$defs/{hint.__name__}{_POSITIONAL}"}]}
    if is_mapping(hint):
        item = schema_of(args[1], defs) if len(args) == 2 else {}
        return {"type": "object", "additionalProperties": item or {}}
    if is_sequence(hint):
        item = schema_of(args[0], defs) if args else {}
        return {"type": "array", "items": item or {}}
    if typing.get_origin(hint) is typing.Literal:
        return {"enum": list(args)}
    return None


def _no_fd(prop: dict) -> dict:
    """A field's schema without the fd numbers a document cannot give (spec.fds): its integers
    negative only."""
    if prop.get("type") == "integer":
        return {**prop, "maximum": -1}
    if "anyOf" in prop:
        return {**prop, "anyOf": [_no_fd(arm) for arm in prop["anyOf"]]}
    return prop


_POSITIONAL = ".positional"  # $defs/X.positional: the list form of dataclass X


def _dataclass_schema(cls: type, defs: dict[str, Any], skip: Sequence[str] = ()) -> dict:
    if cls.__name__ in defs:
        return defs[cls.__name__]
    entry: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {}}
    defs[cls.__name__] = entry
    hints = hints_of(cls)
    required = []
    in_order: list[dict] = []  # what each position of the list form holds
    for f in dataclasses.fields(cls):
        if not f.init or f.name in skip:
            continue
        hint = hints[f.name]
        if f.default is None and typing.get_origin(hint) is Union:  # null refused: leave the key out
            hint = Union[tuple(a for a in typing.get_args(hint) if a is not NoneType)]  # type: ignore[assignment]
        prop = schema_of(hint, defs)
        if prop is not None and takes_fd(cls, f.name):
            prop = _no_fd(prop)
        if prop is None:  # a Python object (sync): only its default, None, which a document leaves out
            prop = {"not": {}}
            entry["properties"][f.name] = prop
            in_order.append(prop)
            continue
        named = named_of(cls, f)
        if named is not None:
            alternatives = [prop, {"type": "string"}]
            if named[0] in LIST_PARSERS:
                alternatives.append({"type": "array", "items": {"type": ["string", "integer"]}})
            prop = {"anyOf": alternatives}
        entry["properties"][f.name] = prop
        in_order.append(prop)
        if f.default is MISSING and f.default_factory is MISSING:
            required.append(f.name)
    names = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in skip]
    defs[cls.__name__ + _POSITIONAL] = {
        "type": "array", "prefixItems": in_order, "items": False,
        "minItems": max([1, *(names.index(n) + 1 for n in required)]),
    }
    if required:
        entry["required"] = required
    if cls.__doc__:
        entry["description"] = cls.__doc__.strip().splitlines()[0]
    return entry


def schema() -> dict:
    """The JSON Schema (2020-12) of a version-1 document, derived from the dataclasses."""
    defs: dict[str, Any] = {}
    proc = dict(_dataclass_schema(ProcAttr, {}, skip=("sys",)))
    proc["type"] = "object"
    _dataclass_schema(SysProcAttr, defs)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "pyforkexec process spec",
        "type": "object",
        "additionalProperties": False,
        "required": ["version", "argv"],
        "properties": {
            "version": {"const": VERSION},
            "argv": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "argv0": {"type": ["string", "null"]},
            "proc": proc,
            "sys": schema_of(SysProcAttr, defs),
            "wait": {"type": "boolean", "default": True},
        },
        "$defs": defs,
    }
