# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""The options of a role's entry point, read from its meta/argument_specs.yml.

Read with PyYAML's libyaml loader where PyYAML was built with it (``yaml.CSafeLoader``, the same safe
schema): the pure-Python SafeLoader took ~33 ms for isolated_service's 480 lines, and two tasks of every
run of the role read them (the actions isolated_service_arguments and isolated_service_plan); libyaml
takes ~6 ms. Without libyaml, the pure-Python loader reads the same document."""

from __future__ import annotations

from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class SpecsError(ValueError):
    """The file is not a role's argument_specs (unreadable, not YAML, without the entry point's
    options); the message names the option that gave it (``argument_specs``) and the file."""


def options(path: str, entry_point: str = "main") -> dict[str, Any]:
    """The ``options`` of ``entry_point`` in the argument_specs file at ``path``: a dict of dicts, else
    SpecsError (it was the KeyError, TypeError or OSError of the reading, alone: ``Task failed:
    'main'``)."""
    try:
        with open(path, "rb") as f:
            found = yaml.load(f, Loader=_LOADER)["argument_specs"][entry_point]["options"]
    except (OSError, yaml.YAMLError, KeyError, TypeError, IndexError) as e:
        why = e.strerror if isinstance(e, OSError) else f"{type(e).__name__}: {' '.join(str(e).split())}"
        raise SpecsError(f"argument_specs: {path!r} is not a role's meta/argument_specs.yml with the options "
                         f"of its {entry_point} entry point ({why})") from None
    if not isinstance(found, dict) or not all(isinstance(o, dict) for o in found.values()):
        raise SpecsError(f"argument_specs: {path!r}: the options of {entry_point} are not a dictionary of "
                         "dictionaries")
    return found


# The checks across a list-of-dicts or dict option's sub-options (argument_specs' required_if...).
_CONSTRAINTS = ("mutually_exclusive", "required_together", "required_one_of", "required_if", "required_by")


def located_errors(options: dict[str, Any], values: dict[str, Any], where: str = "") -> list[str]:
    """ansible-core's errors in ``values`` (the role's variables, templated) against ``options``, each
    prefixed with the path of the entry it is about (``isolated_service_services[1].network: ...``),
    the deepest entry that has one. ansible-core's own check of argument_specs names the option's path
    without the entries (``found in 'isolated_service_services -> landlock -> paths'``,
    ``isolated_service_services.network.routess``): which service, which path? Errors of a variable
    itself (no entry to name) are left to that check, which names the variable."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    found = []
    for name, option in options.items():
        sub, value = option.get("options"), values.get(name)
        if not sub or value is None:
            continue
        path = f"{where}.{name}" if where else name
        if option.get("type") == "list" and isinstance(value, list):
            entries = [(f"{path}[{i}]", item) for i, item in enumerate(value)]
        elif option.get("type", "str") == "dict" and isinstance(value, dict):
            entries = [(path, value)]
        else:
            continue
        constraints = {key: option[key] for key in _CONSTRAINTS if option.get(key)}
        for entry_path, entry in entries:
            if not isinstance(entry, dict):
                continue
            errors = ArgumentSpecValidator(sub, **constraints).validate(entry).error_messages
            if errors:
                found += located_errors(sub, entry, entry_path) or [f"{entry_path}: {e}" for e in errors]
    return found
