# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""Which checks of the role isolated_service's services already passed on this controller.

The check (roles/isolated_service/files/check_services.py) is a function of its request (the wheels'
directory, the networks, the plan), of the pyforkexec wheel it imports, of the collection's module code
and of Ansible's argument validation: nothing of a host. So a pass is recorded under a key made of all
of those, and a later run with the same key has nothing new to check. Only passes are recorded: a
refusal is checked again each time, so its message is always the check's own."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re

from ansible import __version__ as ansible_version
from ansible_collections.pyforkexec.isolation.plugins.plugin_utils import writers

# plugins/: the module code the check imports (module_utils/, modules/)
_PLUGINS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _files(directory: str) -> list[str]:
    return sorted(os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".py"))


def key(script: str, request: dict, python: str) -> str:
    """The key of a check of ``request`` by ``script`` with ``python``."""
    digest = hashlib.sha256()
    for path in [
        script,
        *_files(os.path.join(_PLUGINS, "module_utils")),
        *_files(os.path.join(_PLUGINS, "modules")),
    ]:
        with open(path, "rb") as f:
            digest.update(path.encode() + b"\0" + hashlib.sha256(f.read()).digest())
    wheels = request["wheels"]
    for name in sorted(os.listdir(wheels)):  # the wheels by name, size and time: a rebuilt one differs
        st = os.stat(os.path.join(wheels, name))
        digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    digest.update(json.dumps([ansible_version, python, request], sort_keys=True).encode())
    return digest.hexdigest()


def passed(cache: str, check_key: str) -> bool:
    return os.path.exists(os.path.join(cache, check_key))


# A record being written: KEY.PID, PID the writer's (the worker of the controller that runs the action).
WRITING = re.compile(r"[0-9a-f]{64}\.(?P<pid>[0-9]{1,7})")


def record_pass(cache: str, check_key: str) -> None:
    """Records the pass (atomically: a concurrent run reads the file whole or not at all; an
    interrupted one leaves no temporary file behind, and the one of a writer killed before its rename
    is removed here)."""
    os.makedirs(cache, exist_ok=True)
    for name in writers.of_ended(cache, WRITING):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(cache, name))
    path = os.path.join(cache, check_key)
    tmp = f"{path}.{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write("[]\n")
        os.replace(tmp, path)
    except BaseException:  # (a Ctrl-C of the controller between the two)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
