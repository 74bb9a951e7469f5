"""Documents of dataclasses: JSON or YAML text parsed within limits, then loaded into a dataclass
field by field, every error a SpecError naming the path of the value (``sys.uid_mappings[0].size``).

Shared by the process specs (``spec.load``) and the netns options (``netns.options``). The rules of
the derivation from the type hints are described in the package's docstring (``pyforkexec.spec``).
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import json
import math
import os
import re
import stat
import sys
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING
from typing import Any, Optional, Union

from .. import fd_ready
from .._text import printable
from .fds import fd_refusal, flag_refusal
from .named import ItemError, named_of

MAX_BYTES = 1 << 20  # a spec is a few hundred bytes; /dev/zero is not one


MAX_DEPTH = 32  # the deepest field is 6 levels down (sys.mounts[0].flags[0])


MAX_VALUES = 100_000


INT_MIN, INT_MAX = -(2**63), 2**64 - 1  # every int field is a C integer of at most 64 bits


class SpecError(ValueError):
    """A document that is not a valid spec; ``str()`` starts with ``spec: <path>:``, and is one line:
    what it quotes of the document or the host (a path with a newline) is escaped, as the command
    line prints it, for every caller (a module's ``msg``, a daemon's log line)."""

    def __init__(self, path: str, message: str):
        super().__init__(printable(f"spec: {path}: {message}" if path else f"spec: {message}"))
        self.path = path


_INT_RANGE = "the integer is out of range (at most 64 bits)"


class OutOfRange:
    """A value a parser read that no field can hold (an integer of 5,000 digits, NaN, a YAML 1.1
    octal, the value of a key given twice). The parsers return it rather than fail, so that
    ``check_document`` can name the field it was given for (``sys.mounts[0].target``, where the parser
    knows only the key ``target``). ``kind`` is its JSON type as messages name it, ``problem`` what is
    wrong with it."""

    def __init__(self, kind: str, problem: str):
        self.kind = kind
        self.problem = problem

    def __repr__(self) -> str:
        return f"OutOfRange({self.kind!r}, {self.problem!r})"


def _not_a_number(text: str) -> str:
    return f"{text} is not a JSON number"


NoneType = type(None)


def json_type(value: object) -> str:
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
    datetime = sys.modules.get("datetime")  # loaded by YAML, the only source of such values
    if datetime is not None and isinstance(value, datetime.date):  # a datetime too (a subclass)
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
    if hint is NoneType:
        return "null"
    if hint is bool:
        return "a boolean"
    if hint is int:
        return "an integer"
    if hint is str:
        return "a string"
    if hint is float:
        return "a number"
    if is_sequence(hint):
        return f"a list of ({_describe(args[0])})" if args else "a list"
    if dataclasses.is_dataclass(hint):
        return f"a {hint.__name__} object"
    return getattr(hint, "__name__", str(hint))


def is_sequence(hint: Any) -> bool:
    origin = typing.get_origin(hint) or hint
    return isinstance(origin, type) and issubclass(origin, Sequence) and not issubclass(origin, (str, bytes))


def is_mapping(hint: Any) -> bool:
    origin = typing.get_origin(hint) or hint
    return isinstance(origin, type) and issubclass(origin, Mapping)


def _fits(hint: Any, value: object) -> bool:
    """Whether a JSON value has the type an arm of a Union expects (no conversion attempted)."""
    if hint is Any:
        return True
    if hint is NoneType:
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
    if is_mapping(hint):
        return isinstance(value, dict)
    if is_sequence(hint):
        return isinstance(value, list)
    if typing.get_origin(hint) is typing.Literal:
        return value in typing.get_args(hint)
    return False


@functools.cache
def _representable(hint: Any) -> bool:
    """Whether a document can hold a value of this type (not a callable, a file object): whether the
    schema has a place for it. (Imported here: the schema is derived with this module's helpers.)"""
    from .schema import schema_of

    return schema_of(hint, None) is not None


def convert(value: object, hint: Any, path: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is not None and not _representable(hint):
        raise SpecError(path, "cannot be given in a spec (it takes a Python object)")
    if origin is Union:
        for arm in args:
            if _fits(arm, value):
                return convert(value, arm, path)
        raise SpecError(path, f"expected {_describe(hint)}, got {json_type(value)}")
    if not _fits(hint, value):
        raise SpecError(path, f"expected {_describe(hint)}, got {json_type(value)}")
    if dataclasses.is_dataclass(hint):
        return load_dataclass(hint, value, path)
    if is_mapping(hint):
        vhint = args[1] if len(args) == 2 else Any
        return {k: convert(v, vhint, join_path(path, k)) for k, v in value.items()}  # type: ignore[union-attr]
    if is_sequence(hint):
        item = args[0] if args else Any
        return tuple(convert(v, item, f"{path}[{i}]") for i, v in enumerate(value))  # type: ignore[arg-type]
    return value


def hints_of(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def load_dataclass(cls: type, value: object, path: str, skip: Sequence[str] = ()) -> Any:
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
            raise SpecError(join_path(path, key, dotted=False),
                            "unknown field" + did_you_mean(str(key), names))
    hints = hints_of(cls)
    kwargs = {}
    for f in fields:
        sub = join_path(path, f.name)
        if f.name not in value:
            if f.default is MISSING and f.default_factory is MISSING:
                raise SpecError(sub, "missing (a required field)")
            continue
        raw = value[f.name]
        if raw is None and f.default is None and not getattr(cls, "null_is_unset", False):
            raise SpecError(sub, NULL_RULE)
        if raw == "" and f.default in ("", None) and not getattr(cls, "null_is_unset", False):
            # "" is Go's "none" for chroot and dir: a template that came out empty would drop the root
            raise SpecError(sub, "is empty: leave the key out for none")
        refused = fd_refusal(cls, f, raw) or flag_refusal(cls, f, raw, value)
        if refused is not None:
            raise SpecError(sub, refused)
        named = named_of(cls, f)
        if named is not None and raw is not None and not (isinstance(raw, int) and not isinstance(raw, bool)):
            try:
                kwargs[f.name] = named[0](raw)
            except ItemError as e:
                raise SpecError(f"{sub}[{e.index}]", f"{e}, got {json_type(e.value)}") from None
            except (TypeError, ValueError) as e:
                raise SpecError(sub, str(e)) from None
        else:
            kwargs[f.name] = convert(raw, hints[f.name], sub)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise SpecError(path, str(e)) from None


# A field whose default is None (no policy, no new root, no limit) may be left out but not given as
# null: an empty YAML value (``seccomp:``, ``pivot_root:``, ``memory_max:``) is null, which would run
# the program without the isolation its author was about to write.
NULL_RULE = "is null: leave the key out for none (in YAML an empty value is null, not an empty value)"


# Dots inside a mapping's key read well (sysctls.net.ipv4.ip_forward); a key of dots alone, or at its
# ends, would read as no key at all: those are quoted. So is a dotted key where a field's name is
# expected (an unknown field "a.b" would read as the field a).
_PLAIN_KEY = r"[A-Za-z0-9_:/@+-]+(?:\.[A-Za-z0-9_:/@+-]+)*"  # compiled (cached by re) at its first use
_PLAIN_WORD = r"[A-Za-z0-9_:/@+-]+"


def join_path(path: str, name: object, dotted: bool = True) -> str:
    """``path.name``; a key that is not a plain word (a space, a newline, a quote in it; a dot unless
    ``dotted``, a mapping's key; not a string at all) is written as JSON, ``path["a b"]``, so that the
    path reads as one token."""
    text = name if isinstance(name, str) else str(name)
    if re.fullmatch(_PLAIN_KEY if dotted else _PLAIN_WORD, text):
        return f"{path}.{text}" if path else text
    return f"{path}[{json.dumps(text)}]"


def did_you_mean(key: str, names: Sequence[str]) -> str:
    import difflib  # only on an error: not on the start of every launch

    close = difflib.get_close_matches(key, names, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def check_document(doc: object, path: str = "") -> None:
    """Refuses, naming where it is, what no field of any document can hold: nesting deeper than
    MAX_DEPTH, more than MAX_VALUES values, keys that are not strings, integers beyond 64 bits,
    numbers that are not finite, values JSON has no type for, strings and keys that are not text (half a
    surrogate pair). Iterative: no depth breaks it."""
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
                    raise SpecError(where, f"keys must be strings, got {json_type(key)} ({key!r:.40})")
                _check_text(key, where, "a key")
            stack.extend((v, join_path(where, k), depth + 1) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            if depth >= MAX_DEPTH:
                raise SpecError(where, f"nested more than {MAX_DEPTH} levels deep")
            stack.extend((value[i], f"{where}[{i}]", depth + 1) for i in reversed(range(len(value))))
        elif isinstance(value, str):
            _check_text(value, where)
        elif value is None or isinstance(value, bool):
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
            raise SpecError(where, f"expected a JSON value, got {json_type(value)}")


# A surrogate that is no byte of a file name decoded with surrogateescape (U+DC80..U+DCFF, which a
# document written by spec.dump holds for a non-UTF-8 name): half of a UTF-16 pair, from a JSON or YAML
# escape ("\ud800"). No text or bytes are that: str.encode fails on it wherever the value goes (a link's
# name, a path), far from the document and without a path.
_NOT_TEXT = re.compile("[\ud800-\udc7f\udd00-\udfff]")


def _check_text(text: str, where: str, what: str = "the string") -> None:
    found = None if text.isascii() else _NOT_TEXT.search(text)
    if found is not None:
        raise SpecError(where, f"{what} holds {json.dumps(found[0])} at position {found.start()}, half of a "
                        "UTF-16 surrogate pair, which is not text")


def _json_int(text: str) -> object:
    # int() refuses more than 4300 digits (CVE-2020-10735) with a ValueError that would abort the
    # parse without a path; a 64-bit field never needs more than 20.
    return int(text) if len(text) <= 100 else OutOfRange("an integer", _INT_RANGE)


def _json_float(text: str) -> object:
    value = float(text)
    return value if math.isfinite(value) else OutOfRange("a number", _number_range(text))


def _number_range(text: str) -> str:
    """1e400: Python reads it as infinity, which no field holds (nor a JSON number says)."""
    shown = text if len(text) <= 40 else f"{text[:37]}..."
    return f"the number {shown} is out of range (beyond a 64-bit float)"


def _json_constant(text: str) -> object:
    return OutOfRange("a number", _not_a_number(text))  # NaN, Infinity: Python's json reads them


def _nested_too_deeply(where: str) -> SpecError:
    return SpecError("", f"{where}: nested more than {MAX_DEPTH} levels deep")


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def parse_text(text: str, filename: str = "-") -> object:
    """The document in ``text``: JSON, or YAML for .yaml/.yml files (and stdin that is not JSON)."""
    where = display_name(filename)
    if filename.endswith((".yaml", ".yml")):
        return _yaml(text, where)

    def no_duplicates(pairs: list[tuple[str, object]]) -> dict:
        out: dict = {}
        for k, v in pairs:
            out[k] = _duplicate(v, "") if k in out else v
        return out

    try:
        return json.loads(text, object_pairs_hook=no_duplicates, parse_int=_json_int,
                          parse_constant=_json_constant, parse_float=_json_float)
    except (json.JSONDecodeError, RecursionError) as e:
        if filename == "-" or not filename.endswith(".json"):
            try:
                return _yaml(text, where)
            except SpecError:
                pass
        if isinstance(e, RecursionError):
            raise _nested_too_deeply(where) from None
        raise SpecError("", f"{where}: not valid JSON: {e}") from None


_MERGE = "<<"  # a YAML merge key, as a path names it (sys["<<"])


def _duplicate(value: object, where: str) -> OutOfRange:
    """The value of a key given twice (``where``: the line, in YAML): kept so that check_document names
    the key's whole path, which the parser, at one object, does not know."""
    return OutOfRange(json_type(value), f"duplicate key{where}")


def display_name(filename: str) -> str:
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
            text = str(node.value).replace("_", "")
            if ":" in text or re.fullmatch(r"[-+]?0[0-9]+", text):
                # YAML 1.1's base 60 (1:40 is 100) and leading-zero octal (0750 is 488), which YAML 1.2
                # and JSON read otherwise or not at all: a uid or a mode silently not what was written.
                form = "base 60" if ":" in text else "octal (YAML 1.2 reads it as decimal)"
                return OutOfRange("an integer", f"{node.value} is a YAML 1.1 {form} number (line "
                                  f"{node.start_mark.line + 1}): write the number in decimal, or quote it")
            try:
                return super().construct_yaml_int(node)
            except ValueError:
                digits = re.sub(r"[-+_]", "", str(node.value))
                if not digits.isdigit():
                    raise
                return OutOfRange("an integer", _INT_RANGE)

        def construct_yaml_float(self, node: Any) -> object:
            value = super().construct_yaml_float(node)
            text = str(node.value)
            if not math.isfinite(value) and "inf" not in text.lower() and "nan" not in text.lower():
                return OutOfRange("a number", _number_range(text))  # 1.0e+400, not .inf: out of range
            return value

        def construct_object(self, node: Any, deep: bool = False) -> Any:
            try:
                return super().construct_object(node, deep=deep)
            except (LookupError, AttributeError):
                # SafeConstructor reads a scalar tagged by hand through a table or a regex match it
                # assumes fits: "!!bool y" is a KeyError, "!!int ''" an IndexError, "!!timestamp x"
                # an AttributeError (on the match that failed). Said as the marked YAML error it is.
                text = str(node.value)
                shown = json.dumps(text if len(text) <= 40 else text[:40] + "...")
                tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
                raise yaml.constructor.ConstructorError(None, None, f"{shown} is not a {tag} value",
                                                        node.start_mark) from None

        def construct_mapping(self, node: Any, deep: bool = False) -> dict:
            seen: set = set()
            duplicates: dict = {}  # key: the line it is given again on (the first such line)
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    # given twice too: PyYAML merges both, the values of the last winning, where the
                    # first asked for a namespace the last leaves out (one merge of a list is the form)
                    key = _MERGE
                else:
                    key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # unhashable: the constructor reports it
                    continue
                if duplicate:
                    duplicates.setdefault(key, key_node.start_mark.line + 1)
                seen.add(key)
            conflicts = {} if _MERGE in duplicates else self._merged_twice(node)  # (that said first)
            mapping = super().construct_mapping(node, deep=deep)
            for key, line in duplicates.items():  # (merge keys are gone from the mapping by now)
                mapping[key] = _duplicate(mapping.get(key, {}), f" (line {line})")
            for key, (first, second) in conflicts.items():
                if key in mapping and key not in duplicates and key not in seen:  # (a key of its own wins)
                    mapping[key] = OutOfRange(json_type(mapping[key]), (
                        f"given by two mappings of a merge (lines {first} and {second}), which YAML "
                        "libraries resolve differently (the merge spec takes the first, PyYAML 6.0.4 "
                        "the last): give it once"))
            return mapping

        def _merged_twice(self, node: Any) -> dict:
            """The keys that more than one mapping merged into ``node`` gives (``<<: [*a, *b]``), with
            the lines of the first two: which one a document then asks for depends on the parser."""
            givers: dict = {}
            found: dict = {}
            for key_node, value_node in node.value:
                if key_node.tag != "tag:yaml.org,2002:merge":
                    continue
                subs = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for sub in subs:
                    if not isinstance(sub, yaml.MappingNode):
                        continue  # flatten_mapping refuses it, marked
                    self.flatten_mapping(sub)  # its own merges first (done once: they are removed)
                    for sub_key, _ in sub.value:
                        try:
                            key = self.construct_object(sub_key, deep=True)
                            hash(key)
                        except TypeError:
                            continue
                        given = givers.setdefault(key, sub_key)
                        if given is not sub_key and key not in found:  # (one anchor merged twice: one key)
                            found[key] = (given.start_mark.line + 1, sub_key.start_mark.line + 1)
            return found

    Loader.add_constructor("tag:yaml.org,2002:int", Loader.construct_yaml_int)
    Loader.add_constructor("tag:yaml.org,2002:float", Loader.construct_yaml_float)
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


def _read_to_end(fd: int, limit: int) -> bytes:
    """What ``fd`` holds up to its end (or ``limit`` bytes). A non-blocking descriptor (a caller's pipe
    may be one) is waited on rather than read as what it has so far: a document cut short would run
    a program without the isolation of the part still to come."""
    chunks, size = [], 0
    while size < limit:
        try:
            chunk = os.read(fd, limit - size)
        except BlockingIOError:
            fd_ready.readable([fd])
            continue
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def read_document(path: str) -> object:
    """The document in a file (``-``: standard input): at most MAX_BYTES of UTF-8, parsed as
    ``parse_text`` parses (the caller checks it: ``check_document`` once it knows it is an object)."""
    try:
        if path == "-":
            if sys.stdin is None:  # fd 0 was closed when Python started (``<&-``): read(0) would say so
                raise OSError(errno.EBADF, os.strerror(errno.EBADF))
            data = _read_to_end(sys.stdin.fileno(), MAX_BYTES + 1)
        else:
            # Non-blocking: a FIFO no program has open for writing would block open(2) for ever (a
            # launcher or the daemon hung at its start); opened so, it reads as empty at once, and a
            # writer that is there (a shell's <(...)) is waited on by _read_to_end. No controlling
            # terminal taken from a tty named as the spec either.
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
            try:
                data = _read_to_end(fd, MAX_BYTES + 1)
                if not data and stat.S_ISFIFO(os.fstat(fd).st_mode):
                    raise SpecError("", f"{display_name(path)}: a FIFO with no writer: nothing to read")
            finally:
                os.close(fd)
    except OSError as e:
        raise SpecError("", f"cannot read {display_name(path)}: {e.strerror}") from None
    return parse_bytes(data, path)


def parse_bytes(data: bytes, filename: str = "-") -> object:
    """The document in ``data`` (``filename`` tells JSON from YAML)."""
    where = display_name(filename)
    if len(data) > MAX_BYTES:
        raise SpecError("", f"{where}: larger than {MAX_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SpecError("", f"{where}: not valid UTF-8 (byte {e.object[e.start]:#04x} at offset {e.start})") \
            from None
    return parse_text(text, filename)
