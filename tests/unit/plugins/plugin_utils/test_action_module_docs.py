"""The modules that are action plugins (plugins/action/NAME.py, documented by plugins/modules/NAME.py):
their DOCUMENTATION's options are the action's ARGSPEC, name for name, with its types, elements,
choices, defaults and required. ansible-test's validate-modules compares a module's documentation
with the argument spec of its own main(), which these modules do not have."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

KEYS = ("type", "elements", "choices", "default", "required")
ACTIONS = sorted(p.stem for p in (Path(__file__).resolve().parents[4] / "plugins" / "action").glob("*.py")
                 if p.stem != "__init__")


def _shape(spec):
    """An argument spec (or a documented option) reduced to what both must say alike."""
    out = {"type": spec.get("type") or "str"}
    for key in KEYS[1:]:
        value = spec.get(key)
        if key == "choices" and value is not None:
            value = list(value)
        if value not in (None, False):
            out[key] = value
    subs = spec.get("options") or spec.get("suboptions")
    if subs:
        out["options"] = {name: _shape(sub) for name, sub in subs.items()}
    return out


@pytest.mark.parametrize("name", ACTIONS)
def test_the_documented_options_are_the_action_s_argument_spec(name):
    action = importlib.import_module(f"ansible_collections.pyforkexec.isolation.plugins.action.{name}")
    module = importlib.import_module(f"ansible_collections.pyforkexec.isolation.plugins.modules.{name}")
    documented = yaml.safe_load(module.DOCUMENTATION).get("options") or {}
    spec = action.ActionModule.ARGSPEC
    assert sorted(documented) == sorted(spec), "documented options differ from the accepted ones"
    for option, rules in spec.items():
        assert _shape(documented[option]) == _shape(rules), option
