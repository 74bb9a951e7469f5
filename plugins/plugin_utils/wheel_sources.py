# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""The wheels the role isolated_service installs on its hosts, named after everything they are built
from: pyforkexec's sources in the collection (the build files at its top, and the package with its
subpackages), the requirements, the hosts' Python versions and architectures, the platform tags and
pip's options. A directory of that name with a ``.complete`` mark is a finished build that later runs
reuse (roles/isolated_service/tasks/wheels_build.yml makes it)."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os

# The version comes from galaxy.yml (a checkout) or MANIFEST.json (an installed collection).
PATTERNS = ("*.py", "*.c", "*.h", "pyproject.toml", "README.md", "MANIFEST.in", "galaxy.yml", "MANIFEST.json")
COMPLETE = ".complete"


def _wanted(name: str) -> bool:
    return not name.startswith(".") and any(fnmatch.fnmatch(name, p) for p in PATTERNS)


def _files_in(top: str, names: list[str]) -> list[str]:
    return [os.path.join(top, n) for n in names if _wanted(n) and os.path.isfile(os.path.join(top, n))]


def sources(root: str) -> list[str]:
    """pyforkexec's sources in the collection at ``root``, relative to it, sorted ignoring case."""
    found = _files_in(root, os.listdir(root))
    for top, _dirs, names in os.walk(os.path.join(root, "pyforkexec")):
        found += _files_in(top, names)
    return sorted((os.path.relpath(p, root) for p in found), key=str.lower)


def _sha1(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()  # a cache key, not a signature


def directory(
    cache: str,
    root: str,
    requirements: list[str],
    pythons: list[str],
    machines: list[str],
    platforms: list[str],
    pip_args: list[str],
) -> tuple[str, list[str]]:
    """The wheel directory under ``cache`` for these sources and hosts, and the sources' paths."""
    paths = sources(root)
    checksums = [_sha1(os.path.join(root, p)) for p in paths]
    key = json.dumps([paths, checksums, requirements, pythons, machines, platforms, pip_args])
    return os.path.join(cache, hashlib.sha256(key.encode()).hexdigest()[:16]), paths


def finished(wheels: str) -> bool:
    return os.path.exists(os.path.join(wheels, COMPLETE))
