"""The inverse of load: a spec document from (argv0, argv, ProcAttr), defaults left out, flags as names."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import MISSING
from typing import Any, Optional

from ..attrs import ProcAttr
from .document import SpecError, join_path
from .fds import fd_refusal, flag_refusal
from .load import VERSION
from .named import named_of


def _dump_value(value: Any, path: str) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _dump_dataclass(value, path)
    if isinstance(value, (list, tuple)):
        return [_dump_value(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {k: _dump_value(v, f"{path}.{k}") for k, v in value.items()}
    if value is None or isinstance(value, (bool, str, float)):
        return value
    if isinstance(value, int):
        return int(value)
    if hasattr(value, "fileno"):  # an fd of proc.files given as a file object: its number
        try:
            fd = value.fileno()
        except (OSError, ValueError) as e:  # closed: "I/O operation on closed file"
            raise SpecError(path, f"cannot be written to a spec: {type(value).__name__}.fileno() failed: "
                            f"{e}") from None
        if isinstance(fd, int) and not isinstance(fd, bool):
            return fd
    raise SpecError(path, f"cannot be written to a spec ({type(value).__name__})")


def _default(f: dataclasses.Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def _dump_dataclass(obj: Any, path: str, skip: Sequence[str] = ()) -> dict:
    out = {}
    cls = type(obj)
    written = [f for f in dataclasses.fields(obj) if f.init and f.name not in skip
               and (_default(f) is MISSING or not _same(getattr(obj, f.name), _default(f)))]
    given = {f.name for f in written}
    for f in written:
        value = getattr(obj, f.name)
        refused = fd_refusal(cls, f, value) or flag_refusal(cls, f, value, given)
        if refused is not None:  # load would refuse it: no document stands for this attr
            raise SpecError(join_path(path, f.name), f"cannot be written to a spec: {refused}")
        named = named_of(cls, f)
        if named is not None and isinstance(value, int) and not isinstance(value, bool):
            out[f.name] = named[1](int(value))
        else:
            out[f.name] = _dump_value(value, join_path(path, f.name))
    return out


def _same(value: Any, default: Any) -> bool:
    if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)):
        return list(value) == list(default)
    return bool(value == default)


def dump(argv0: Optional[str], argv: Sequence[str], attr: Optional[ProcAttr] = None, *,
         wait: bool = True) -> dict:
    """The document that ``load`` turns back into (argv0, argv, attr); JSON-serializable."""
    doc: dict[str, Any] = {"version": VERSION, "argv": [os.fsdecode(a) for a in argv]}
    if argv0 is not None and argv0 != doc["argv"][0]:
        doc["argv0"] = os.fsdecode(argv0)
    attr = attr if attr is not None else ProcAttr()
    proc = _dump_dataclass(attr, "proc", skip=("sys",))
    if proc:
        doc["proc"] = proc
    if attr.sys is not None:
        doc["sys"] = _dump_dataclass(attr.sys, "sys")
    if not wait:
        doc["wait"] = False
    return doc
