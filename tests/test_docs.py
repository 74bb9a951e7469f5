"""What the documentation tells a reader to run or to open holds: the Python code blocks of the
READMEs and docs/ run as written, and every file of the repository they name (a link, a path in
backticks, the program of a shell block's command) exists."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.marks import needs_root

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "roles").glob("*/README.md"),
               ROOT / "molecule" / "README.md", ROOT / "benchmarks" / "README.md"])
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
TOP = tuple(p.name + "/" for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith("."))
# Paths the docs name that are not in a checkout, each for its reason.
NOT_IN_TREE = {
    "benchmarks/results/build/",  # made by the benchmarks (git-ignored)
    "extensions/molecule/",  # where molecule would look; the project has none (molecule/README.md says why)
    "meta/argument_specs.yml",  # any role's, named in general (roles/isolated_service_arguments/README.md)
}


def _blocks(doc: Path, language: str) -> list[tuple[int, str]]:
    text = doc.read_text()
    return [(text[:m.start()].count("\n") + 2, m.group(2))
            for m in BLOCK.finditer(text) if m.group(1) == language]


def _named_paths(doc: Path) -> set[str]:
    """The repository paths ``doc`` names: relative links, paths in backticks starting at a top-level
    directory, and the program of each command of its shell blocks."""
    text = doc.read_text()
    names = {m.group(1) for m in re.finditer(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", text) if "://" not in m.group(1)}
    for m in re.finditer(r"`\.?/?([^`\s]+)`", text):
        path = m.group(1).rstrip(".,:;")
        if path.startswith(TOP):
            names.add(path)
    for _, block in _blocks(doc, "sh"):
        for line in block.splitlines():
            words = [w for w in line.split("#")[0].split() if "=" not in w]  # (VAR=value assignments)
            for word in words[:2]:  # the program, or the script a .venv/bin/python runs
                # (not .venv/: scripts/test makes it)
                if word.startswith(("./", "scripts/", "benchmarks/", "examples/")):
                    names.add(word)
    # placeholders (pyforkexec/NAME, X.Y) and globs name no one file
    return {n for n in names if not re.search(r"[*<>{}$~]|\b[A-Z][A-Z.]+\b", n)} - NOT_IN_TREE


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_repository_path_a_doc_names_exists(doc: Path) -> None:
    missing = sorted(n for n in _named_paths(doc)
                     if not (doc.parent / n).exists() and not (ROOT / n.removeprefix("./")).exists())
    assert not missing, f"{doc.relative_to(ROOT)} names what the repository does not have: {missing}"


@needs_root
@pytest.mark.parametrize("doc", [d for d in DOCS if _blocks(d, "python")],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_the_python_blocks_of_a_doc_run_as_written(doc: Path, tmp_path: Path) -> None:
    # One interpreter per document, its blocks in order: as a reader pastes them into one session.
    script = "\n".join(f"# {doc.name}:{line}\n{code}" for line, code in _blocks(doc, "python"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def _spec_documents() -> list:
    """The spec documents the docs show (``exec --spec``): each JSON block of docs/cli.md that is one (a
    ``"sys"`` fragment completed into a minimal one), and the example of pyforkexec.spec's docstring."""
    import json

    import pyforkexec.spec

    found = []
    for line, block in _blocks(ROOT / "docs" / "cli.md", "json"):
        doc = json.loads(block if block.lstrip().startswith("{") else "{" + block + "}")
        if "sys" in doc:
            found.append(pytest.param({"version": 1, "argv": ["true"], **doc}, id=f"docs/cli.md:{line}"))
    example = pyforkexec.spec.__doc__.split("version 1::")[1].split("The ``proc``")[0]
    found.append(pytest.param(json.loads(re.sub(r"#.*", "", example)), id="pyforkexec.spec docstring"))
    return found


@pytest.mark.parametrize("doc", _spec_documents())
def test_the_spec_documents_the_docs_show_are_valid(doc: dict, tmp_path: Path) -> None:
    import json

    from pyforkexec import spec

    # The examples' data directories (/srv/...) are made under tmp_path: a Landlock rule's path must exist.
    text = json.dumps(doc)
    for path in set(re.findall(r'"/srv/([^"]+)"', text)):
        (tmp_path / "srv" / path).mkdir(parents=True, exist_ok=True)
    doc = json.loads(text.replace('"/srv/', f'"{tmp_path}/srv/'))
    spec.check(spec.load_spec(doc))  # what `exec --spec --check` checks before it looks at this host


ROLE = ROOT / "roles" / "isolated_service"


def _role_variables() -> dict:
    import yaml

    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    return specs["argument_specs"]["main"]["options"]


def test_the_role_defaults_are_the_ones_its_argument_specs_document() -> None:
    import yaml

    specs = _role_variables()
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert set(defaults) == set(specs)
    for name, value in defaults.items():
        documented = specs[name].get("default")
        if isinstance(value, str) and "{{" in value and value != documented:
            # computed by a template: the description says from which environment variables
            description = specs[name]["description"]
            description = description if isinstance(description, str) else " ".join(description)
            for var in re.findall(r"lookup\('ansible\.builtin\.env', '(\w+)'", value):
                assert f"${var}" in description, f"{name}: its default reads ${var}, unsaid"
        else:
            assert documented == value, name


def test_the_role_readme_gives_each_variable_its_documented_default() -> None:
    import yaml

    specs = _role_variables()
    table = (ROLE / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(isolated_service_\w+)` \| `([^`|]*)` \|", table, re.M))
    assert set(rows) == set(specs)
    for name, shown in rows.items():
        documented = specs[name].get("default")
        if isinstance(documented, str) and documented.startswith("{{"):  # a variable, shown by its name
            assert f"{{{{ {shown} }}}}" == documented, name
        else:
            assert yaml.safe_load(shown) == documented, name


def test_the_fields_docs_cli_gives_netns_converge_are_its_result() -> None:
    from pyforkexec.netns import Converged

    text = " ".join((ROOT / "docs" / "cli.md").read_text().split())
    shown = re.search(r"`pyforkexec\.netns\.converge\([^`]*\)` returns `\(([^)`]*)\)`", text)
    assert shown and [f.strip() for f in shown.group(1).split(",")] == list(Converged._fields)


def _package_modules() -> dict[str, set[str]]:
    """The package's modules (and C extensions) by the names docs/architecture.md gives them: the
    file's stem (``joins``) and its path (``child/joins``)."""
    package = ROOT / "pyforkexec"
    names: dict[str, set[str]] = {}
    for path in package.rglob("*"):
        if path.suffix not in (".py", ".c") or path.name == "waiter.c" or "__pycache__" in path.parts:
            continue
        rel = path.relative_to(package).with_suffix("")
        rel = rel.parent if rel.name == "__init__" else rel
        if rel.parts:
            for key in (rel.name, rel.as_posix()):
                names.setdefault(key, set()).add(".".join(("pyforkexec", *rel.parts)))
    return names


def test_the_names_docs_architecture_md_gives_exist() -> None:
    """A ``module.name`` of docs/architecture.md (``validate.check_spawn``, ``child/joins.open_joins``)
    names a function, class or value of that module, or a method of a class of it (``steps.sethostname``:
    the Builder's)."""
    import importlib
    import inspect

    modules = _package_modules()
    text = (ROOT / "docs" / "architecture.md").read_text()
    missing = []
    for m in re.finditer(r"(?<![\w./-])((?:[a-z_]+/)*[a-z_][a-z_0-9]*)\.([A-Za-z_]\w*)\b", text):
        module, name = m.groups()
        if module not in modules or name in ("py", "c", "md"):
            continue
        holders = []
        for dotted in modules[module]:
            mod = importlib.import_module(dotted)
            holders += [mod, *(cls for _, cls in inspect.getmembers(mod, inspect.isclass)
                               if cls.__module__ == mod.__name__)]
        if not any(hasattr(holder, name) for holder in holders):
            missing.append(f"{module}.{name}")
    assert not missing, f"docs/architecture.md names what the package does not have: {missing}"


def test_the_role_readme_lists_every_key_of_isolated_service_status() -> None:
    import yaml

    tasks = yaml.safe_load((ROLE / "tasks" / "present.yml").read_text())
    record = next(task for task in tasks
                  if "isolated_service_status" in task.get("ansible.builtin.set_fact", {}))
    keys = record["vars"]["_isolated_service_status_keys"]
    text = " ".join((ROLE / "README.md").read_text().split())
    said = re.search(r"the fact `isolated_service_status` maps each service to (.*?\))", text)
    assert said, "README.md no longer says what isolated_service_status holds"
    assert sorted(set(re.findall(r"`(\w+)`", said.group(1))) & set(keys)) == sorted(keys)


def test_the_role_readme_has_a_row_for_each_field_of_a_service() -> None:
    import yaml

    fields = _role_variables()["isolated_service_services"]["options"]
    section = (ROLE / "README.md").read_text().split("### A service")[1].split("\n## ")[0]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            cells = line.split(" | ")
            for name in re.findall(r"`([a-z_]+)`", cells[0]):
                rows[name] = cells[1]
    assert sorted(rows) == sorted(fields)
    for name, shown in rows.items():  # a literal default is the one argument_specs gives, or describes
        value = shown.strip("`")
        if not re.fullmatch(r"`[^`]*`|[0-9.]+", shown) or value.startswith("isolated_service_"):
            continue
        if "default" in fields[name]:
            assert yaml.safe_load(value) == fields[name]["default"], name
        else:  # applied by the role's plan: the description says it
            assert f"V({value})" in str(fields[name]["description"]), name


def _service_examples() -> list:
    """The services the docs show running ``python3 -m http.server``, with the namespaces each gets: the
    service and services modules' EXAMPLES, and the role README's (the role's default namespaces)."""
    import ast

    import yaml

    found = []
    for module in ("service", "services"):
        tree = ast.parse((ROOT / "plugins" / "modules" / f"{module}.py").read_text())
        examples = next(node.value.value for node in tree.body if isinstance(node, ast.Assign)
                        and getattr(node.targets[0], "id", "") == "EXAMPLES")
        for task in yaml.safe_load(examples):
            args = task.get(f"pyforkexec.isolation.{module}") or {}
            for item in args.get("services", [args]):
                name = f"{module} {item.get('name')}"
                found.append(pytest.param(item, item.get("namespaces", []), id=name))
    defaults = _role_variables()["isolated_service_namespaces"]["default"]
    for _, block in _blocks(ROLE / "README.md", "yaml"):
        for play in yaml.safe_load(block) or []:
            for role in play.get("roles", []):
                for item in role.get("vars", {}).get("isolated_service_services", []):
                    name = f"role {item['name']}"
                    found.append(pytest.param(item, item.get("namespaces", defaults), id=name))
    return [p for p in found if "http.server" in (p.values[0].get("argv") or [])]


@pytest.mark.parametrize(("service", "namespaces"), _service_examples())
def test_an_http_server_the_docs_show_stops_and_answers_at_once(service: dict, namespaces: list) -> None:
    """PID 1 of its own PID namespace, ``http.server`` ends on SIGINT only: without ``stop_signal: SIGINT``
    each stop waits out ``stop_timeout`` (10 s) and kills it (the docs' own rule). In a joined network
    namespace with a mount namespace of its own (no generated /etc/hosts unless asked), its bind's
    ``getfqdn`` waits out the resolver's timeouts (10 s) before it answers, unless ``etc_hosts`` is set."""
    if "pid" in namespaces:
        assert str(service.get("stop_signal", "SIGTERM")).upper().removeprefix("SIG") in ("INT", "2")
    generated = "wiring" in service or "network" in service  # wired by services/the role: a generated one
    if service.get("netns") and "mount" in namespaces and not generated:
        assert "etc_hosts" in service
