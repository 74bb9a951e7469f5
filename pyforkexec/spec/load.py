"""A process spec from a document: the top-level fields (version, argv, argv0, proc, sys, wait),
from parsed data (``load_spec``), bytes (``loads``) or a file (``read``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional

from .._text import printable
from ..attrs import ProcAttr, SysProcAttr
from ..errors import ChildError
from .document import (
    NULL_RULE,
    SpecError,
    check_document,
    convert,
    did_you_mean,
    join_path,
    json_type,
    load_dataclass,
    parse_bytes,
    read_document,
)

if TYPE_CHECKING:  # checkers see the standard decorator; see _dataclass.py
    from dataclasses import dataclass
else:
    from .._dataclass import dataclass

VERSION = 1


TOP_FIELDS = ("version", "argv", "argv0", "proc", "sys", "wait")


@dataclass
class Spec:
    """A loaded document: what to run, how, and whether the launcher waits for it."""

    argv: list[str]
    attr: ProcAttr
    argv0: Optional[str] = None
    wait: bool = True
    files_given: bool = True  # whether the document gave proc.files (else ProcAttr's default, 0 1 2)

    @property
    def program(self) -> str:
        return self.argv0 or self.argv[0]

    def blame(self, err: BaseException) -> Optional[str]:
        """A child's failure at a step some field of this spec asked for, that field first, as the
        spec's own errors name fields, with the path of a join's or a mount's target (``spec:
        sys.setns[0] (/run/netns/web): fork/exec ...``), or a cgroup that could not be set up as
        ``exec --spec``'s check says it (``spec: sys.cgroup: ...``); None for another error, or a step
        no field asks for (execve). One line: a path quoted escaped (``printable``), as in a SpecError."""
        if isinstance(err, OSError) and not isinstance(err, ChildError):
            from ..sandbox.cgroup import CgroupError  # (loaded already if err is one)

            if isinstance(err, CgroupError):
                from .check import cgroup_refusal

                return str(cgroup_refusal(err))
            return None
        if not isinstance(err, ChildError) or err.field is None:
            return None
        field = err.field
        entries = {"sys.setns": "setns", "sys.mounts": "mounts"}.get(field.split("[")[0])
        if entries is not None and self.attr.sys is not None:
            items = getattr(self.attr.sys, entries)
            target = items[err.index].target if 0 <= err.index < len(items) else None
            if isinstance(target, str):
                field = f"{field} ({target})"
        return printable(f"spec: {field}: {err}")  # one line, as SpecError's: the daemon logs it as it is


def load_spec(doc: object) -> Spec:
    """A Spec from a parsed document (a dict); SpecError names what is wrong."""
    if not isinstance(doc, dict):
        raise SpecError("", f"the document must be an object, got {json_type(doc)}")
    check_document(doc)
    for key in doc:
        if key not in TOP_FIELDS:
            raise SpecError(join_path("", key, dotted=False),
                            "unknown field" + did_you_mean(str(key), TOP_FIELDS))
    if "version" not in doc:
        raise SpecError("version", f"missing: give \"version\": {VERSION}")
    version = doc["version"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise SpecError("version", f"expected the integer {VERSION}, got {json_type(version)}")
    if version != VERSION:
        raise SpecError("version", f"unsupported version {version} (this pyforkexec reads version {VERSION})")
    argv = doc.get("argv")
    if not isinstance(argv, list) or not argv:
        raise SpecError("argv", f"expected a non-empty list of strings, got "
                        f"{'an empty list' if argv == [] else json_type(argv)}")
    argv = list(convert(argv, Sequence[str], "argv"))  # argv[i]: expected a string
    argv0 = convert(doc.get("argv0"), Optional[str], "argv0")
    if argv0 == "":
        raise SpecError("argv0", "must not be empty: leave it out to run argv[0]")
    wait = convert(doc.get("wait", True), bool, "wait")
    for key in ("proc", "sys"):  # ``sys:`` left empty in YAML would run the program with no isolation
        if key in doc and doc[key] is None:
            raise SpecError(key, NULL_RULE)
    proc = doc.get("proc")
    if proc is not None and not isinstance(proc, dict):  # an object of ProcAttr's fields but sys
        raise SpecError("proc", f"expected a ProcAttr object, got {json_type(proc)}")
    attr = load_dataclass(ProcAttr, proc or {}, "proc", skip=("sys",))
    attr.sys = convert(doc.get("sys"), Optional[SysProcAttr], "sys")
    return Spec(argv=argv, attr=attr, argv0=argv0, wait=wait, files_given="files" in (proc or {}))


def load(doc: object) -> tuple[str, list[str], ProcAttr]:
    """(argv0, argv, attr) from a parsed document; argv0 defaults to argv[0] (not searched in PATH)."""
    spec = load_spec(doc)
    return spec.program, spec.argv, spec.attr


def read(path: str) -> Spec:
    """Read and load a spec file (``-``: standard input): at most MAX_BYTES of UTF-8."""
    return load_spec(read_document(path))


def loads(data: bytes, filename: str = "-") -> Spec:
    """A Spec from the bytes of a document (``filename`` tells JSON from YAML, as for ``read``)."""
    return load_spec(parse_bytes(data, filename))
