"""One ansible-playbook run on this host (-c local, forks 5, linear), timed from outside.

The controller's Python is the project's .venv, given as configuration (ANSIBLE_PYTHON_INTERPRETER), not
as an extra var: the role's own tasks then run on the host with the interpreter of the virtualenv it
installs, as they would anywhere.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Any, NamedTuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VENV = os.path.join(ROOT, ".venv")
COLLECTIONS = f"{VENV}/bench-collections:{VENV}/collections"  # what setup.sh makes
PODMAN_ENV = {"CONTAINERS_CONF": os.path.join(HERE, "containers.conf")}


class Run(NamedTuple):
    seconds: float
    changed: int
    log: str


def run(playbook: str, variables: dict[str, Any]) -> Run:
    """Run playbooks/PLAYBOOK.yml with ``variables`` as extra vars; raise with its output if it fails."""
    env = dict(os.environ, **PODMAN_ENV, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_FORKS="5",
               ANSIBLE_STRATEGY="linear", ANSIBLE_DEPRECATION_WARNINGS="false", ANSIBLE_NOCOLOR="1",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    with tempfile.NamedTemporaryFile("w", suffix=".json") as extra:
        json.dump(variables, extra)
        extra.flush()
        argv = [f"{VENV}/bin/ansible-playbook", "-i", "localhost,", "-c", "local",
                "-e", f"@{extra.name}",
                os.path.join(HERE, "playbooks", f"{playbook}.yml")]
        start = time.monotonic()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        seconds = time.monotonic() - start
    if done.returncode != 0:
        tail = f"{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
        raise RuntimeError(f"{playbook} failed ({done.returncode}):\n{tail}")
    changed = re.search(r"changed=(\d+)", done.stdout)
    return Run(seconds, int(changed.group(1)) if changed else -1, done.stdout)
