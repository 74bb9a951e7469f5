"""The role's argument_specs as plugin_utils/argument_specs.py reads them (libyaml's safe loader where
PyYAML has it): the same options as PyYAML's pure-Python safe loader reads, and no Python object built
from a tag, whichever loader reads the file."""

from __future__ import annotations

import os

import pytest
import yaml
from ansible_collections.pyforkexec.isolation.plugins.plugin_utils import argument_specs

ROLE_SPECS = os.path.join(os.path.dirname(argument_specs.__file__), os.pardir, os.pardir, "roles",
                          "isolated_service", "meta", "argument_specs.yml")
LOADERS = [yaml.SafeLoader] + ([yaml.CSafeLoader] if hasattr(yaml, "CSafeLoader") else [])


@pytest.mark.parametrize("loader", LOADERS, ids=lambda loader: loader.__name__)
def test_the_options_are_the_safe_loaders(monkeypatch, loader):
    with open(ROLE_SPECS) as f:
        expected = yaml.safe_load(f)["argument_specs"]["main"]["options"]
    monkeypatch.setattr(argument_specs, "_LOADER", loader)
    assert argument_specs.options(ROLE_SPECS) == expected
    assert "isolated_service_services" in expected


@pytest.mark.parametrize("loader", LOADERS, ids=lambda loader: loader.__name__)
def test_a_python_tag_is_refused(monkeypatch, tmp_path, loader):
    path = tmp_path / "argument_specs.yml"
    path.write_text("argument_specs:\n  main:\n    options: !!python/object/apply:os.getpid []\n")
    monkeypatch.setattr(argument_specs, "_LOADER", loader)
    with pytest.raises(argument_specs.SpecsError, match=r"\(ConstructorError: could not determine a "):
        argument_specs.options(str(path))


def test_libyaml_is_used_where_pyyaml_has_it():
    assert argument_specs._LOADER is getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@pytest.mark.parametrize(("text", "why"), [
    (None, "(No such file or directory)"), ("", "(TypeError: 'NoneType' object is not subscriptable)"),
    ("{{{ : [", "(ParserError: while parsing a flow node did not find expected node content"),
    ("argument_specs: {other: {options: {}}}", "(KeyError: 'main')"), ("- 1", "(TypeError: list indices"),
    ("argument_specs: {main: {short_description: x}}", "(KeyError: 'options')"),
    ("argument_specs: {main: {options: [1]}}", ": the options of main are not a dictionary of "),
    ("argument_specs: {main: {options: {x: 5}}}", ": the options of main are not a dictionary of "),
])
def test_a_file_that_is_not_a_roles_argument_specs_is_named(tmp_path, text, why):
    """Given to the actions isolated_service_arguments and isolated_service_plan, such a file failed
    the task with the reading's bare exception (``Task failed: 'main'``), naming neither the option
    nor the file."""
    path = tmp_path / "argument_specs.yml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(argument_specs.SpecsError) as refused:
        argument_specs.options(str(path))
    assert str(refused.value).startswith(f"argument_specs: {str(path)!r}") and why in str(refused.value)
