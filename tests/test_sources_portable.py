"""The sources load on every Python a managed host may run (the guests': 3.9 to 3.13), not only on
this machine's. Python 3.13's compiler strips a docstring's indentation through UTF-8, so a docstring
holding a lone surrogate (a ``\\ud800`` escape written unescaped) fails the import there
("surrogates not allowed") though 3.11 loads it: the trixie guest's services module failed so.

What a managed host imports (the package, the collection's modules and module_utils) is also held to
Python 3.9's grammar (Debian 11), never evaluates an ``X | Y`` annotation (3.10's), and imports no
module Python 3.12 or 3.13 removed (Debian 13 has 3.13)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from helpers.forked import REPO

SOURCES = sorted(p for top in ("pyforkexec", "plugins", "benchmarks", "scripts", "tests", "molecule")
                 for p in (REPO / top).rglob("*.py"))
# What runs on a managed host, on its own Python (3.9 on Debian 11 to 3.13 on Debian 13).
ON_HOSTS = sorted(p for top in ("pyforkexec", "plugins/module_utils", "plugins/modules")
                  for p in (REPO / top).rglob("*.py"))
# Removed from the standard library by Python 3.12 (distutils, imp, asynchat, asyncore, smtpd) and 3.13
# (PEP 594's dead batteries, lib2to3).
REMOVED_MODULES = {
    "distutils", "imp", "asynchat", "asyncore", "smtpd", "aifc", "audioop", "cgi", "cgitb", "chunk", "crypt",
    "imghdr", "mailcap", "msilib", "nis", "nntplib", "ossaudiodev", "pipes", "sndhdr", "spwd", "sunau",
    "telnetlib", "uu", "xdrlib", "lib2to3",
}


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


def _name(path: Path) -> str:
    return str(path.relative_to(REPO))


def _annotations(tree: ast.Module) -> list[ast.expr]:
    out: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            out += [arg.annotation for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]
                    if arg is not None and arg.annotation is not None]
            out += [node.returns] if node.returns is not None else []
        elif isinstance(node, ast.AnnAssign):
            out.append(node.annotation)
    return out


def _has_union_operator(annotation: ast.expr) -> bool:
    return any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr) for n in ast.walk(annotation))


@pytest.mark.parametrize("path", ON_HOSTS, ids=_name)
def test_what_a_host_imports_is_python_3_9(path: Path) -> None:
    """Python 3.9's grammar (no ``match``, no ``except*``); 3.11's parser checks it with feature_version."""
    try:
        ast.parse(path.read_text(encoding="utf-8"), str(path), feature_version=(3, 9))
    except SyntaxError as e:
        pytest.fail(f"{_name(path)}:{e.lineno}: not Python 3.9: {e.msg}")


@pytest.mark.parametrize("path", ON_HOSTS, ids=_name)
def test_what_a_host_imports_never_evaluates_a_union_operator(path: Path) -> None:
    """``X | Y`` between types is Python 3.10's: an annotation holding it must stay a string (``from
    __future__ import annotations``), and a dataclass of the package must not hold it at all, as the
    spec loader evaluates the package's dataclass fields with typing.get_type_hints
    (spec.document.hints_of): on 3.9 that raises TypeError."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    deferred = any(isinstance(n, ast.ImportFrom) and n.module == "__future__"
                   and any(a.name == "annotations" for a in n.names) for n in tree.body)
    unions = [a for a in _annotations(tree) if _has_union_operator(a)]
    assert deferred or not unions, f"{_name(path)}:{unions[0].lineno}: X | Y without annotations deferred"
    if _name(path).startswith("pyforkexec/"):
        for node in ast.walk(tree):
            decorators = [ast.unparse(d) for d in getattr(node, "decorator_list", [])]
            if isinstance(node, ast.ClassDef) and any("dataclass" in d for d in decorators):
                for field in node.body:
                    assert not (isinstance(field, ast.AnnAssign) and _has_union_operator(field.annotation)), (
                        f"{_name(path)}:{field.lineno}: {node.name}'s field: Optional/Union, not X | Y")


@pytest.mark.parametrize("path", ON_HOSTS, ids=_name)
def test_what_a_host_imports_imports_no_removed_module(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
        for name in names:
            assert name.split(".")[0] not in REMOVED_MODULES, (
                f"{_name(path)}:{node.lineno}: {name} is gone from Python 3.13's standard library")


def test_host_sources_found() -> None:
    assert len(ON_HOSTS) > 50 and any(p.parts[-2] == "modules" for p in ON_HOSTS)
