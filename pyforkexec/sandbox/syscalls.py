"""System call names and numbers for seccomp filters, per architecture.

The checked-in tables (_syscall_table.py) cover x86_64 and aarch64 up to Linux 6.17; a name they lack
is looked up in the installed kernel headers of the running architecture, so a newer system call
can be named once the headers know it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import cache

from . import _syscall_table

# linux/audit.h: the seccomp_data.arch value of each architecture.
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
X32_SYSCALL_BIT = 0x40000000  # x86_64's x32 ABI: same AUDIT_ARCH, numbers with this bit set
_TABLES = {"x86_64": _syscall_table.X86_64, "aarch64": _syscall_table.AARCH64}
_HEADERS = {
    "x86_64": ("/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/include/asm/unistd_64.h"),
    "aarch64": ("/usr/include/aarch64-linux-gnu/asm/unistd_64.h", "/usr/include/asm-generic/unistd.h"),
}


def machine() -> str:
    return os.uname().machine


@cache
def table(arch: str) -> Mapping[str, int]:
    """{name: number} of ``arch``: the checked-in table, plus what the headers add on this machine."""
    if arch not in _TABLES:
        raise ValueError(f"no system call table for {arch!r} (pyforkexec supports {', '.join(_TABLES)})")
    out = {name: int(nr) for name, _, nr in (w.partition(":") for w in "".join(_TABLES[arch]).split())}
    if arch == machine():
        for name, nr in _header_numbers(arch).items():
            out.setdefault(name, nr)
    return out


def _header_numbers(arch: str) -> dict[str, int]:
    for path in _HEADERS[arch]:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        found = {m[1]: int(m[2]) for m in re.finditer(r"^#define __NR_(\w+)\s+(\d+)\s*$", text, re.M)}
        if found:
            return found
    return {}


def known_anywhere(name: str) -> bool:
    return any(name in table(arch) for arch in _TABLES)
