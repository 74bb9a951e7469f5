# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""The sources of pyforkexec in the collection at argv[1], for tasks/wheels.yml on the controller:
prints {"paths": [...], "checksums": [...]}, the files relative to it sorted by path (ignoring case, as
Jinja sorts) and their SHA-1 (as ansible.builtin.find's checksum): the build files at its top, and the
package with its subpackages. Run through a pipe lookup, it costs no module round trip."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import sys

# The version comes from galaxy.yml (a checkout) or MANIFEST.json (an installed collection).
PATTERNS = ("*.py", "*.c", "*.h", "pyproject.toml", "README.md", "MANIFEST.in", "galaxy.yml", "MANIFEST.json")


def wanted(name):
    return not name.startswith(".") and any(fnmatch.fnmatch(name, p) for p in PATTERNS)


def files_in(top, names):
    return [os.path.join(top, n) for n in names if wanted(n) and os.path.isfile(os.path.join(top, n))]


def sources(root):
    found = files_in(root, os.listdir(root))
    for top, _dirs, names in os.walk(os.path.join(root, "pyforkexec")):
        found += files_in(top, names)
    return sorted(found, key=str.lower)  # as Jinja sorts (tasks/wheels.yml sorted find results so)


def sha1(path):
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()  # a cache key, as find's checksum


def main():
    root = os.path.abspath(sys.argv[1])
    files = sources(root)
    paths = [os.path.relpath(p, root) for p in files]
    print(json.dumps(dict(paths=paths, checksums=[sha1(p) for p in files])))


if __name__ == "__main__":
    main()
