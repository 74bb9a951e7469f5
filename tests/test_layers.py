"""The package's layers, as docs/architecture.md draws them: each folder imports only from the layers
below it, and no module reaches into another's private names. A move that breaks a rule fails here
rather than in a reader's head."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pyforkexec"

# Who may import a layer: a module of the layer itself, or one of these.
IMPORTERS = {
    "pyforkexec.cli": ("pyforkexec.__main__",),
    "pyforkexec.service": ("pyforkexec.cli", "pyforkexec.daemon"),
    "pyforkexec.netns": ("pyforkexec.cli",),
    "pyforkexec.spec": ("pyforkexec.cli", "pyforkexec.service", "pyforkexec.netns.options"),
    # The child's plan and its C are loaded by the spawn and by what opens namespaces; never by the
    # sandbox concepts, which are dataclasses and checks. _signals takes one parent-side C call from
    # _child (seize: no Python frame may come between an except clause and its hold).
    "pyforkexec.child": ("pyforkexec.forkexec", "pyforkexec.nsinfo", "pyforkexec.cli.nsenter",
                         "pyforkexec._signals"),
}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, str]]:
    """(the module imported, the name taken from it, or "") for each import of ``path``, absolute."""
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.extend((a.name, "") for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            out.extend((base, a.name) for a in node.names)
    return out


MODULES = sorted(PACKAGE.rglob("*.py"))


def _within(module: str, layer: str) -> bool:
    return module == layer or module.startswith(layer + ".")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_imports_only_the_layers_below_it(path: Path) -> None:
    module = _module(path)
    for imported, name in _imports(path):
        full = f"{imported}.{name}" if name else imported
        for layer, allowed in IMPORTERS.items():
            if (_within(imported, layer) or _within(full, layer)) and not _within(module, layer):
                assert any(_within(module, a) for a in allowed), f"{module} imports {full} ({layer})"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_takes_another_modules_private_names(path: Path) -> None:
    for imported, name in _imports(path):
        if imported.startswith("pyforkexec") and name.startswith("_") and not name.startswith("__"):
            # a private module (_child, _clone, _signals, _syscall_table) is imported whole
            assert (PACKAGE.parent / imported.replace(".", "/") / f"{name}.py").exists() \
                or list((PACKAGE.parent / imported.replace(".", "/")).glob(f"{name}.c")), \
                f"{_module(path)} takes {imported}.{name}"


def test_the_rules_name_real_layers() -> None:
    for layer, allowed in IMPORTERS.items():
        for name in (layer, *allowed):
            path = PACKAGE.parent / name.replace(".", "/")
            assert path.is_dir() or path.with_suffix(".py").exists(), name
