# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""The wheels the role isolated_service installs on its hosts, named after everything they are built
from: pyforkexec's sources in the collection (the build files at its top, and the package with its
subpackages), the requirements, the hosts' Python versions and architectures, the platform tags and
pip's options. A directory of that name with a ``.complete`` mark is a finished build that later runs
reuse (roles/isolated_service/tasks/wheels_build.yml makes it).

One directory serves every host of a play, so it holds wheels for each Python and architecture among
them; ``for_host`` names the ones a host can install (its interpreter's wheel tags, as pip matches
them), so that a host is sent those files only: each is a round trip of its own.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os

# The version comes from galaxy.yml (a checkout) or MANIFEST.json (an installed collection).
PATTERNS = ("*.py", "*.c", "*.h", "pyproject.toml", "README.md", "MANIFEST.in", "galaxy.yml", "MANIFEST.json")
COMPLETE = ".complete"
# Built from (the wheel's description) but not in its name: an edit of the documentation alone makes
# no new wheel, which every host would install again and restart its services for.
DOCS_ONLY = ("README.md",)


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
    keyed = [p for p in paths if p not in DOCS_ONLY]
    checksums = [_sha1(os.path.join(root, p)) for p in keyed]
    key = json.dumps([keyed, checksums, requirements, pythons, machines, platforms, pip_args])
    return os.path.join(cache, hashlib.sha256(key.encode()).hexdigest()[:16]), paths


def given_name(wheel_dir: str) -> str:
    """The name of the ready wheels of ``wheel_dir`` (isolated_service_wheel_dir), which a host's runtime
    records as the wheels it was installed from: the directory's name and its files' checksums. By its
    name alone, a directory refilled with another release's wheels named the runtime of the release
    before as this one's (an absent, a check mode ran this release's modules in it)."""
    files = sorted(os.path.relpath(os.path.join(top, n), wheel_dir)
                   for top, _dirs, names in os.walk(wheel_dir) for n in names if not n.startswith("."))
    key = json.dumps([files, [_sha1(os.path.join(wheel_dir, f)) for f in files]])
    return f"{os.path.basename(os.path.normpath(wheel_dir))}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def finished(wheels: str) -> bool:
    return os.path.exists(os.path.join(wheels, COMPLETE))


def _tags(python: str, machine: str, platforms: list[str]) -> set:
    """The wheel tags CPython ``python`` (X.Y) on Linux ``machine`` accepts, for the platform tags the
    wheels were fetched with (the role's isolated_service_wheel_platforms) and a local build's."""
    from packaging.tags import compatible_tags, cpython_tags  # see for_host

    version = tuple(int(part) for part in python.split("."))[:2]
    plats = [f"linux_{machine}", *(f"{p}_{machine}" for p in platforms)]
    interpreter = f"cp{version[0]}{version[1]}"
    return set(cpython_tags(version, platforms=plats)) | set(compatible_tags(version, interpreter, plats))


def _wheel(name: str):
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename  # see for_host

    try:
        return parse_wheel_filename(name)
    except InvalidWheelFilename:
        return None


def for_host(
    wheels: str,
    machine: str,
    python: str,
    platforms: list[str],
    pip: bool,
    every: bool = False,
) -> list[str]:
    """The files of the wheel directory ``wheels`` a host gets, relative to it, sorted: the wheels at its
    top that CPython ``python`` on ``machine`` can install (all of them with ``every``: a directory the
    user gave, whose tags are not the role's to judge), and with ``pip`` the newest pip wheel of
    ``pip-PYTHON/`` (run from its file where the host's pip lacks --python).

    Wheel names and tags are read with ``packaging``, pip's own library, which ansible-core requires; it is
    imported on use, since ansible-test's import check loads the plugins without ansible-core's
    requirements."""
    accepted = _tags(python, machine, platforms)
    chosen = []
    for name in sorted(os.listdir(wheels)):
        parsed = _wheel(name) if os.path.isfile(os.path.join(wheels, name)) else None
        if parsed is not None and (every or accepted & parsed[3]):
            chosen.append(name)
    pip_dir = os.path.join(wheels, f"pip-{python}")
    if pip and os.path.isdir(pip_dir):
        found = [(parsed[1], name) for name in os.listdir(pip_dir)
                 if (parsed := _wheel(name)) is not None and parsed[0] == "pip"]
        if found:
            chosen.append(f"pip-{python}/{max(found)[1]}")
    return chosen
