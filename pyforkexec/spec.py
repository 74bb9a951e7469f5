"""Process specs: one process as a versioned JSON or YAML document, loaded into ProcAttr/SysProcAttr.

This is what ``pyforkexec exec --spec FILE`` runs (the ExecStart of a systemd unit for a namespaced
service) and what the Ansible collection writes. A document, version 1::

    {
      "version": 1,                      # required; the only version so far
      "argv": ["nginx", "-g", "daemon off;"],   # required, non-empty
      "argv0": "/usr/sbin/nginx",        # optional: the file executed; default argv[0], looked up
                                         #   in PATH (proc.env's, else the launcher's) if it has no "/"
      "proc": {                          # optional: ProcAttr without "sys"
        "dir": "/srv",                   #   working directory (default: the launcher's)
        "env": ["PATH=/usr/bin:/bin"],   #   "K=V" strings; absent or null: the launcher's environment
        "files": [0, 1, 2]               #   files[i] becomes fd i (null: closed); default [0, 1, 2]
      },
      "sys": {                           # optional: SysProcAttr, the field names of the Python API
        "cloneflags": ["CLONE_NEWUTS", "newpid"],    # flags: an int, a "a|b" string or a list of names
        "uid_mappings": [{"container_id": 0, "host_id": 1000, "size": 1}],
        "gid_mappings": [[0, 1000, 1]],  #   a nested dataclass: an object, or a list of its fields
        "credential": {"uid": 0, "gid": 0},
        "pdeathsig": "SIGTERM"           #   a signal: a number or a name
      },
      "wait": true                       # optional: see below
    }

The ``proc`` and ``sys`` objects are not listed here field by field: they are derived from the
dataclasses of attrs.py (``dataclasses.fields`` and the type hints), so every field SysProcAttr
gains, with its nested dataclasses, is accepted without a change here. ``pyforkexec exec
--schema`` prints the resulting JSON Schema. The rules of the derivation:

- ``int``, ``str``, ``bool``: JSON numbers, strings, booleans (a boolean is not a number);
- ``Optional[X]``: ``null`` or X; ``Union[A, B]``: the first arm that the JSON value's type fits;
- ``Sequence[X]``: a list of X; a dataclass: an object of its fields (unknown keys are errors,
  missing required fields too) or a list of its fields in order;
- int fields holding flags or signals (``cloneflags``, ``unshareflags``, ``SetNS.nstype``,
  ``pdeathsig``, and any field whose ``dataclasses.field`` metadata has a ``"parse"`` callable)
  also take names; callables (``sync``) and file objects cannot come from a document.

Errors name the path of the value: ``spec: sys.cloneflagz: unknown field (did you mean
cloneflags?)``, ``spec: sys.uid_mappings[0].size: expected an integer, got "one"``. ``check()`` then
runs pyforkexec's own validation (the checks fork_exec makes before any process exists), its
messages rewritten to the same paths (``SysProcAttr.x`` becomes ``sys.x``).

Before any field is read, the whole document is checked for what no field can hold
(``check_document``): more than MAX_DEPTH levels of nesting, more than MAX_VALUES values (a YAML
alias used over and over), keys that are not strings, integers beyond 64 bits (an integer of
thousands of digits is kept by the parsers as an out-of-range value, not a parse failure), numbers
that are not finite, YAML values JSON has no type for (timestamps, sets, binary). ``read`` takes at
most MAX_BYTES of UTF-8. Every failure of a document is a SpecError naming where it is.

``wait`` (default true) is how the launcher behaves: it stays the parent of the process, forwards
SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1 and SIGUSR2 to it, and exits as the process exits (its
status, or death by the same signal), which is what a service manager needs from an ExecStart
command (``Type=exec`` or ``simple``). With false it prints the pid and exits 0 once the process has
started (a detached process that the caller tracks itself).

``dump(argv0, argv, attr)`` is the inverse of ``load(doc) -> (argv0, argv, attr)``: fields at their
default are left out and flags are written as lists of names, so ``load(dump(...))`` gives equal
attributes and ``dump(*load(doc))`` is the normalized form of ``doc``.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import functools
import json
import math
import os
import re
import signal
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass
from typing import Any, Callable, Optional, Union

from . import validate as _validate
from .attrs import ProcAttr, SetNS, SysProcAttr
from .flags import CloneFlags

VERSION = 1
_TOP = ("version", "argv", "argv0", "proc", "sys", "wait")
_NoneType = type(None)
MAX_BYTES = 1 << 20  # a spec is a few hundred bytes; /dev/zero is not one
MAX_DEPTH = 32  # the deepest field is 6 levels down (sys.mounts[0].flags[0])
MAX_VALUES = 100_000
INT_MIN, INT_MAX = -(2**63), 2**64 - 1  # every int field is a C integer of at most 64 bits


class SpecError(ValueError):
    """A document that is not a valid spec; ``str()`` starts with ``spec: <path>:``."""

    def __init__(self, path: str, message: str):
        super().__init__(f"spec: {path}: {message}" if path else f"spec: {message}")
        self.path = path


_INT_RANGE = "the integer is out of range (at most 64 bits)"


class OutOfRange:
    """A value a parser read that no field can hold (an integer of 5,000 digits, NaN). The parsers
    return it rather than fail, so that ``check_document`` can name the field it was given for.
    ``kind`` is its JSON type as messages name it, ``problem`` what is wrong with it."""

    def __init__(self, kind: str, problem: str):
        self.kind = kind
        self.problem = problem

    def __repr__(self) -> str:
        return f"OutOfRange({self.kind!r}, {self.problem!r})"


def _not_a_number(text: str) -> str:
    return f"{text} is not a JSON number"


@dataclass
class Spec:
    """A loaded document: what to run, how, and whether the launcher waits for it."""

    argv: list[str]
    attr: ProcAttr
    argv0: Optional[str] = None
    wait: bool = True

    @property
    def program(self) -> str:
        return self.argv0 or self.argv[0]


# ---- named values of int fields -----------------------------------------------------------------


class _ItemError(ValueError):
    """A named value's parser refusing one item of a list: ``index`` extends the field's path."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


def _parse_flags(value: object) -> int:
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            if isinstance(v, bool) or not isinstance(v, (str, int)):
                raise _ItemError(i, f"expected a flag name or number, got {_json_type(v)}")
        value = ",".join(str(v) for v in value)
    if not isinstance(value, str):
        raise TypeError("expected an integer, a flag name string or a list of flag names")
    return int(CloneFlags.parse(value))


def _parse_signal(value: object) -> int:
    if not isinstance(value, str):
        raise TypeError("expected a signal number or name")
    name = value.upper() if value.upper().startswith("SIG") else "SIG" + value.upper()
    if name not in signal.Signals.__members__:
        raise ValueError(f"unknown signal {value!r}")
    return int(signal.Signals[name])


def _dump_flags(value: int) -> object:
    if CloneFlags.unknown_bits(value) or not value:
        return value
    return [f.name for f in CloneFlags.split(value)]


# (dataclass, field) -> (parse a non-int JSON value, dump an int). A field's metadata "parse"/"dump"
# take precedence, so a new flags field can declare its names where it is defined.
Named = tuple[Callable[[object], int], Callable[[int], object]]
_NAMED: dict[tuple[type, str], Named] = {
    (SysProcAttr, "cloneflags"): (_parse_flags, _dump_flags),
    (SysProcAttr, "unshareflags"): (_parse_flags, _dump_flags),
    (SetNS, "nstype"): (_parse_flags, _dump_flags),
    (SysProcAttr, "pdeathsig"): (_parse_signal, lambda v: signal.Signals(v).name if v else v),
}


def _named(cls: type, f: dataclasses.Field) -> Optional[Named]:
    parse = f.metadata.get("parse")
    if parse is not None:
        return parse, f.metadata.get("dump", lambda v: v)
    return _NAMED.get((cls, f.name))


# ---- loading ------------------------------------------------------------------------------------


def _json_type(value: object) -> str:
    """How a message names a value of a document: its JSON type (a string is quoted, cut when long)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return f"the string {json.dumps(value if len(value) <= 40 else value[:40])}" + (
            "..." if len(value) > 40 else "")
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, OutOfRange):
        return value.kind
    if isinstance(value, (datetime.date, datetime.datetime)):
        return "a YAML timestamp"
    if isinstance(value, (set, frozenset)):
        return "a YAML set"
    if isinstance(value, (bytes, bytearray)):
        return "YAML binary data"
    return type(value).__name__


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:
        return " or ".join(_describe(a) for a in args)
    if hint is _NoneType:
        return "null"
    if hint is bool:
        return "a boolean"
    if hint is int:
        return "an integer"
    if hint is str:
        return "a string"
    if hint is float:
        return "a number"
    if _is_sequence(hint):
        return f"a list of ({_describe(args[0])})" if args else "a list"
    if dataclasses.is_dataclass(hint):
        return f"a {hint.__name__} object"
    return getattr(hint, "__name__", str(hint))


def _is_sequence(hint: Any) -> bool:
    origin = typing.get_origin(hint) or hint
    return isinstance(origin, type) and issubclass(origin, Sequence) and not issubclass(origin, (str, bytes))


def _is_mapping(hint: Any) -> bool:
    origin = typing.get_origin(hint) or hint
    return isinstance(origin, type) and issubclass(origin, Mapping)


def _fits(hint: Any, value: object) -> bool:
    """Whether a JSON value has the type an arm of a Union expects (no conversion attempted)."""
    if hint is Any:
        return True
    if hint is _NoneType:
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if dataclasses.is_dataclass(hint):
        return isinstance(value, (dict, list))
    if _is_mapping(hint):
        return isinstance(value, dict)
    if _is_sequence(hint):
        return isinstance(value, list)
    if typing.get_origin(hint) is typing.Literal:
        return value in typing.get_args(hint)
    return False


@functools.cache
def _representable(hint: Any) -> bool:
    """Whether a document can hold a value of this type (not a callable, a file object)."""
    return _schema_of(hint, {}) is not None


def _convert(value: object, hint: Any, path: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is not None and not _representable(hint):
        raise SpecError(path, "cannot be given in a spec (it takes a Python object)")
    if origin is Union:
        for arm in args:
            if _fits(arm, value):
                return _convert(value, arm, path)
        raise SpecError(path, f"expected {_describe(hint)}, got {_json_type(value)}")
    if not _fits(hint, value):
        raise SpecError(path, f"expected {_describe(hint)}, got {_json_type(value)}")
    if dataclasses.is_dataclass(hint):
        return _load_dataclass(hint, value, path)
    if _is_mapping(hint):
        vhint = args[1] if len(args) == 2 else Any
        return {k: _convert(v, vhint, _join(path, k)) for k, v in value.items()}  # type: ignore[union-attr]
    if _is_sequence(hint):
        item = args[0] if args else Any
        return tuple(_convert(v, item, f"{path}[{i}]") for i, v in enumerate(value))  # type: ignore[arg-type]
    return value


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _load_dataclass(cls: type, value: object, path: str, skip: Sequence[str] = ()) -> Any:
    fields = [f for f in dataclasses.fields(cls) if f.init and f.name not in skip]
    if isinstance(value, list):  # positional: the fields in order
        if not value:  # nothing given where fields are expected: not "every field at its default"
            raise SpecError(path, f"expected a {cls.__name__} object or a list of its fields, "
                            "got an empty list")
        if len(value) > len(fields):
            raise SpecError(path, f"{cls.__name__} has {len(fields)} fields, got a list of {len(value)}")
        value = {f.name: v for f, v in zip(fields, value)}
    assert isinstance(value, dict)
    names = [f.name for f in fields]
    for key in value:
        if key not in names:
            raise SpecError(_join(path, key), "unknown field" + _did_you_mean(str(key), names))
    hints = _hints(cls)
    kwargs = {}
    for f in fields:
        sub = _join(path, f.name)
        if f.name not in value:
            if f.default is MISSING and f.default_factory is MISSING:
                raise SpecError(sub, "missing (a required field)")
            continue
        raw = value[f.name]
        named = _named(cls, f)
        if named is not None and raw is not None and not (isinstance(raw, int) and not isinstance(raw, bool)):
            try:
                kwargs[f.name] = named[0](raw)
            except _ItemError as e:
                raise SpecError(f"{sub}[{e.index}]", str(e)) from None
            except (TypeError, ValueError) as e:
                raise SpecError(sub, str(e)) from None
        else:
            kwargs[f.name] = _convert(raw, hints[f.name], sub)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise SpecError(path, str(e)) from None


# Dots inside a key read well (sysctls.net.ipv4.ip_forward); a key of dots alone, or at its ends, would
# read as no key at all: those are quoted.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_:/@+-]+(?:\.[A-Za-z0-9_:/@+-]+)*")


def _join(path: str, name: object) -> str:
    """``path.name``; a key that is not a plain word (a space, a newline, a quote in it; not a
    string at all) is written as JSON, ``path["a b"]``, so that the path reads as one token."""
    text = name if isinstance(name, str) else str(name)
    if _PLAIN_KEY.fullmatch(text):
        return f"{path}.{text}" if path else text
    return f"{path}[{json.dumps(text)}]"


def _did_you_mean(key: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, names, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def check_document(doc: object, path: str = "") -> None:
    """Refuses, naming where it is, what no field of any document can hold: nesting deeper than
    MAX_DEPTH, more than MAX_VALUES values, keys that are not strings, integers beyond 64 bits,
    numbers that are not finite, values JSON has no type for. Iterative: no depth breaks it."""
    stack: list[tuple[object, str, int]] = [(doc, path, 0)]
    count = 0
    while stack:
        value, where, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise SpecError(where, f"the document holds more than {MAX_VALUES} values")
        if isinstance(value, dict):
            if depth >= MAX_DEPTH:
                raise SpecError(where, f"nested more than {MAX_DEPTH} levels deep")
            for key in value:
                if not isinstance(key, str):  # a YAML key; the path names the object that holds it
                    raise SpecError(where, f"keys must be strings, got {_json_type(key)} ({key!r:.40})")
            stack.extend((v, _join(where, k), depth + 1) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            if depth >= MAX_DEPTH:
                raise SpecError(where, f"nested more than {MAX_DEPTH} levels deep")
            stack.extend((value[i], f"{where}[{i}]", depth + 1) for i in reversed(range(len(value))))
        elif value is None or isinstance(value, (bool, str)):
            continue
        elif isinstance(value, int):
            if not INT_MIN <= value <= INT_MAX:
                raise SpecError(where, _INT_RANGE)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise SpecError(where, _not_a_number(json.dumps(value)))
        elif isinstance(value, OutOfRange):
            raise SpecError(where, value.problem)
        else:
            raise SpecError(where, f"expected a JSON value, got {_json_type(value)}")


def load_spec(doc: object) -> Spec:
    """A Spec from a parsed document (a dict); SpecError names what is wrong."""
    if not isinstance(doc, dict):
        raise SpecError("", f"the document must be an object, got {_json_type(doc)}")
    check_document(doc)
    for key in doc:
        if key not in _TOP:
            raise SpecError(_join("", key), "unknown field" + _did_you_mean(str(key), _TOP))
    if "version" not in doc:
        raise SpecError("version", f"missing: give \"version\": {VERSION}")
    version = doc["version"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise SpecError("version", f"expected the integer {VERSION}, got {_json_type(version)}")
    if version != VERSION:
        raise SpecError("version", f"unsupported version {version} (this pyforkexec reads version {VERSION})")
    argv = doc.get("argv")
    if not isinstance(argv, list) or not argv:
        raise SpecError("argv", f"expected a non-empty list of strings, got "
                        f"{'an empty list' if argv == [] else _json_type(argv)}")
    argv = list(_convert(argv, Sequence[str], "argv"))  # argv[i]: expected a string
    argv0 = _convert(doc.get("argv0"), Optional[str], "argv0")
    wait = _convert(doc.get("wait", True), bool, "wait")
    proc = doc.get("proc")
    if proc is not None and not isinstance(proc, dict):  # an object of ProcAttr's fields but sys
        raise SpecError("proc", f"expected a ProcAttr object or null, got {_json_type(proc)}")
    attr = _load_dataclass(ProcAttr, proc or {}, "proc", skip=("sys",))
    attr.sys = _convert(doc.get("sys"), Optional[SysProcAttr], "sys")
    return Spec(argv=argv, attr=attr, argv0=argv0, wait=wait)


def load(doc: object) -> tuple[str, list[str], ProcAttr]:
    """(argv0, argv, attr) from a parsed document; argv0 defaults to argv[0] (not searched in PATH)."""
    spec = load_spec(doc)
    return spec.program, spec.argv, spec.attr


def _json_int(text: str) -> object:
    # int() refuses more than 4300 digits (CVE-2020-10735) with a ValueError that would abort the
    # parse without a path; a 64-bit field never needs more than 20.
    return int(text) if len(text) <= 100 else OutOfRange("an integer", _INT_RANGE)


def _json_constant(text: str) -> object:
    return OutOfRange("a number", _not_a_number(text))  # NaN, Infinity: Python's json reads them


def _nested_too_deeply(where: str) -> SpecError:
    return SpecError("", f"{where}: nested more than {MAX_DEPTH} levels deep")


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def parse_text(text: str, filename: str = "-") -> object:
    """The document in ``text``: JSON, or YAML for .yaml/.yml files (and stdin that is not JSON)."""
    where = _display(filename)
    if filename.endswith((".yaml", ".yml")):
        return _yaml(text, where)

    def no_duplicates(pairs: list[tuple[str, object]]) -> dict:
        out: dict = {}
        for k, v in pairs:
            if k in out:
                raise SpecError(_join("", k), "duplicate key")
            out[k] = v
        return out

    try:
        return json.loads(text, object_pairs_hook=no_duplicates, parse_int=_json_int,
                          parse_constant=_json_constant)
    except (json.JSONDecodeError, RecursionError) as e:
        if filename == "-" or not filename.endswith(".json"):
            try:
                return _yaml(text, where)
            except SpecError:
                pass
        if isinstance(e, RecursionError):
            raise _nested_too_deeply(where) from None
        raise SpecError("", f"{where}: not valid JSON: {e}") from None


def _display(filename: str) -> str:
    return "standard input" if filename == "-" else filename


_LOADER: Optional[type] = None


def _yaml_loader() -> type:
    """yaml.SafeLoader, but for what it cannot tell as a path: an integer too long for int() becomes
    OutOfRange (check_document names its field), and a key given twice is an error, as in JSON
    (a merge key, ``<<``, still overrides as YAML means it to)."""
    global _LOADER
    if _LOADER is not None:
        return _LOADER
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_yaml_int(self, node: Any) -> object:
            try:
                return super().construct_yaml_int(node)
            except ValueError:
                digits = re.sub(r"[-+_]", "", str(node.value))
                if not digits.isdigit():
                    raise
                return OutOfRange("an integer", _INT_RANGE)

        def construct_mapping(self, node: Any, deep: bool = False) -> dict:
            seen: set = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # unhashable: the constructor reports it
                    continue
                if duplicate:
                    raise SpecError(_join("", key), f"duplicate key (line {key_node.start_mark.line + 1})")
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    Loader.add_constructor("tag:yaml.org,2002:int", Loader.construct_yaml_int)
    _LOADER = Loader
    return Loader


def _yaml(text: str, where: str = "standard input") -> object:
    try:
        import yaml
    except ImportError:
        raise SpecError("", "YAML specs need PyYAML: install it into pyforkexec's virtualenv "
                        "(pip install pyyaml)") from None
    try:
        return yaml.load(text, Loader=_yaml_loader())  # a SafeLoader: no Python objects
    except SpecError:
        raise
    except RecursionError:
        raise _nested_too_deeply(where) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        what = "; ".join(_one_line(x) for x in (e.context, e.problem) if x)
        raise SpecError("", f"{where}: not valid YAML: {what}{at}") from None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as e:
        # ValueError: a scalar YAML resolves but cannot construct (2001-13-45, !!int 'x')
        raise SpecError("", f"{where}: not valid YAML: {_one_line(str(e))}") from None


def read(path: str) -> Spec:
    """Read and load a spec file (``-``: standard input): at most MAX_BYTES of UTF-8."""
    try:
        if path == "-":
            import sys

            data = sys.stdin.buffer.read(MAX_BYTES + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise SpecError("", f"cannot read {_display(path)}: {e.strerror}") from None
    return loads(data, path)


def loads(data: bytes, filename: str = "-") -> Spec:
    """A Spec from the bytes of a document (``filename`` tells JSON from YAML, as for ``read``)."""
    where = _display(filename)
    if len(data) > MAX_BYTES:
        raise SpecError("", f"{where}: larger than {MAX_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SpecError("", f"{where}: not valid UTF-8 (byte {e.object[e.start]:#04x} at offset {e.start})") \
            from None
    return load_spec(parse_text(text, filename))


# ---- checking -----------------------------------------------------------------------------------

_PREFIXES = (("SysProcAttr.", "sys."), ("ProcAttr.sys", "sys"), ("ProcAttr.", "proc."))


def _spec_path(message: str) -> str:
    for old, new in _PREFIXES:
        if message.startswith(old):
            return new + message[len(old):]
    return message


def check(spec: Spec) -> None:
    """pyforkexec's validation of what fork_exec would be given, before any process exists.

    Raises SpecError with the field's path in the document."""
    try:
        argv0 = spec.argv0
        if argv0 is None:  # the program is argv[0], and its errors name argv[0]
            argv0 = _validate.to_bytes_list("argv", spec.argv)[0] if spec.argv else b""
        _validate.check_spawn(argv0, spec.argv, spec.attr)
    except (ValueError, TypeError) as e:
        field, sep, rule = _spec_path(str(e)).partition(": ")
        raise SpecError(field if sep else "", rule if sep else field) from None


# ---- dumping ------------------------------------------------------------------------------------


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
    if hasattr(value, "fileno"):
        return value.fileno()
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
    for f in dataclasses.fields(obj):
        if not f.init or f.name in skip:
            continue
        value = getattr(obj, f.name)
        default = _default(f)
        if default is not MISSING and _same(value, default):
            continue
        named = _named(cls, f)
        if named is not None and isinstance(value, int) and not isinstance(value, bool):
            out[f.name] = named[1](int(value))
        else:
            out[f.name] = _dump_value(value, _join(path, f.name))
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


# ---- JSON Schema --------------------------------------------------------------------------------


def _schema_of(hint: Any, defs: dict[str, Any]) -> Optional[dict]:
    """The JSON Schema of a type hint; None for what a document cannot hold (callables, objects)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:
        arms = [s for s in (_schema_of(a, defs) for a in args if a is not _NoneType) if s is not None]
        if not arms:
            return None  # e.g. Optional[Callable]: only its default, None, could be written
        return {"anyOf": arms + ([{"type": "null"}] if _NoneType in args else [])}
    simple = {_NoneType: "null", bool: "boolean", int: "integer", float: "number", str: "string"}
    if hint in simple:
        return {"type": simple[hint]}
    if hint is Any:
        return {}
    if dataclasses.is_dataclass(hint):  # an object of its fields, or a list of them in order
        _dataclass_schema(hint, defs)
        return {"anyOf": [{"$ref": f"#/$defs/{hint.__name__}"},
                          {"$ref": f"#/$defs/{hint.__name__}{_POSITIONAL}"}]}
    if _is_mapping(hint):
        item = _schema_of(args[1], defs) if len(args) == 2 else {}
        return {"type": "object", "additionalProperties": item or {}}
    if _is_sequence(hint):
        item = _schema_of(args[0], defs) if args else {}
        return {"type": "array", "items": item or {}}
    if typing.get_origin(hint) is typing.Literal:
        return {"enum": list(args)}
    return None


_POSITIONAL = ".positional"  # $defs/X.positional: the list form of dataclass X


def _dataclass_schema(cls: type, defs: dict[str, Any], skip: Sequence[str] = ()) -> dict:
    if cls.__name__ in defs:
        return defs[cls.__name__]
    entry: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {}}
    defs[cls.__name__] = entry
    hints = _hints(cls)
    required = []
    in_order: list[dict] = []  # what each position of the list form holds
    for f in dataclasses.fields(cls):
        if not f.init or f.name in skip:
            continue
        prop = _schema_of(hints[f.name], defs)
        if prop is None:  # a Python object (sync): only null, its default, if the type allows it
            prop = {"type": "null"} if _NoneType in typing.get_args(hints[f.name]) else {"not": {}}
            entry["properties"][f.name] = prop
            in_order.append(prop)
            continue
        named = _named(cls, f)
        if named is not None:
            alternatives = [prop, {"type": "string"}]
            if named[0] is _parse_flags:
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
    proc["type"] = ["object", "null"]  # null: as if absent, as for sys
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
            "sys": _schema_of(Optional[SysProcAttr], defs),
            "wait": {"type": "boolean", "default": True},
        },
        "$defs": defs,
    }
