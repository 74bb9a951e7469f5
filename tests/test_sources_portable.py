"""The sources load on every Python a managed host may run (the guests': 3.9 to 3.13), not only on
this machine's. Python 3.13's compiler strips a docstring's indentation through UTF-8, so a docstring
holding a lone surrogate (a ``\\ud800`` escape written unescaped) fails the import there
("surrogates not allowed") though 3.11 loads it: the trixie guest's services module failed so."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from helpers.forked import REPO

SOURCES = sorted(p for top in ("pyforkexec", "plugins", "benchmarks", "scripts", "tests", "molecule")
                 for p in (REPO / top).rglob("*.py"))


def _docstrings(tree: ast.Module) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc is not None:
                out.append((getattr(node, "lineno", 1), doc))
    return out


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_docstrings_are_utf8(path: Path) -> None:
    for line, doc in _docstrings(ast.parse(path.read_text(encoding="utf-8"))):
        try:
            doc.encode("utf-8")
        except UnicodeEncodeError as e:
            pytest.fail(f"{path.relative_to(REPO)}:{line}: a docstring holds {doc[e.start]!r}, which "
                        "Python 3.13 cannot compile: escape its backslash")


def test_sources_found() -> None:
    assert len(SOURCES) > 50
