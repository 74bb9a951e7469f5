"""The small checks every validator shares: each failure names the field it is about.

A message reads ``SysProcAttr.mounts[2].target: must be an absolute path``; ValueError for a bad
value, TypeError for a value of the wrong type.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NoReturn


def fail(field: str, rule: str, kind: type = ValueError) -> NoReturn:
    raise kind(f"{field}: {rule}")


def check_int(field: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        fail(field, f"must be an int, not {type(value).__name__}", TypeError)
    if not lo <= value <= hi:
        fail(field, f"must be between {lo} and {hi}, got {value}")
    return int(value)  # plain int: IntFlag arithmetic is ~50x slower on the hot path


def check_bool(field: str, value: object) -> bool:
    if not isinstance(value, bool):
        fail(field, f"must be True or False, not {type(value).__name__}", TypeError)
    return value


def check_choice(field: str, value: object, choices: Sequence[str]) -> str:
    if not isinstance(value, str):
        fail(field, f"must be a string, not {type(value).__name__}", TypeError)
    if value not in choices:
        fail(field, f"must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return value


def check_list(field: str, value: object, what: str) -> Sequence:
    """A list or tuple (not a string, which is a sequence of characters)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        fail(field, f"must be a list of {what}, not {type(value).__name__}", TypeError)
    return value


def to_bytes(field: str, value: object) -> bytes:
    """A str/bytes/PathLike as bytes without NUL (Go returns EINVAL for a NUL byte)."""
    if isinstance(value, (str, bytes, os.PathLike)):
        data = os.fsencode(value)
    else:
        fail(field, f"must be str, bytes or a path, not {type(value).__name__}", TypeError)
    if b"\0" in data:
        fail(field, "contains a NUL byte")
    return data


def to_abspath(field: str, value: object) -> bytes:
    data = to_bytes(field, value)
    if not data.startswith(b"/"):
        fail(field, f"must be an absolute path, got {os.fsdecode(data)!r}")
    return data
