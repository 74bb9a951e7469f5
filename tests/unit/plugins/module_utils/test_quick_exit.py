"""A module's interpreter ends without its final search for reference cycles (quick_exit), and nothing
a module relies on at its end is lost with it: its output, its atexit functions, its closed files."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import quick_exit

MODULES = Path(quick_exit.__file__).resolve().parents[1] / "modules"

# A reference cycle kept by a global until the interpreter clears the modules, whose finalizer says so;
# an atexit function registered after the call (atexit runs last in, first out); a file written and
# closed; the result on stdout, flushed, as exit_json leaves it.
PROGRAM = """
import atexit, os, sys
from ansible_collections.pyforkexec.isolation.plugins.module_utils import quick_exit

class Cycle:
    def __del__(self):
        os.write(1, b"cycle collected\\n")

kept = Cycle()
kept.self = kept
if sys.argv[1] == "quick":
    quick_exit.skip_final_collection()
atexit.register(lambda: os.write(1, b"atexit ran\\n"))
with open(sys.argv[2], "w") as f:
    f.write("whole\\n" * 1000)
print('{"changed": false}', flush=True)
sys.exit(0)
"""


def _run(tmp_path: Path, how: str) -> tuple[list[str], str]:
    written = tmp_path / f"{how}.txt"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", PROGRAM, how, str(written)], env=env, capture_output=True,
                         text=True, timeout=60, check=True)
    return out.stdout.splitlines(), written.read_text()


@pytest.mark.parametrize("how", ["quick", "plain"])
def test_the_final_collection_is_skipped_and_nothing_else(tmp_path, how):
    lines, written = _run(tmp_path, how)
    assert lines[0] == '{"changed": false}' and "atexit ran" in lines
    assert written == "whole\n" * 1000
    # Without the call, the interpreter's last collection finalizes the cycle (the test can tell).
    assert ("cycle collected" in lines) is (how == "plain")


def _main_first_call(path: Path) -> str | None:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef) and node.name == "main":
            first = node.body[0]
            return ast.unparse(first.value) if isinstance(first, ast.Expr) else None
    return None


@pytest.mark.parametrize("path", sorted(p for p in MODULES.glob("*.py") if "def main" in p.read_text()),
                         ids=lambda p: p.stem)
def test_every_module_main_skips_the_final_collection_first(path):
    assert _main_first_call(path) == "quick_exit.skip_final_collection()"
