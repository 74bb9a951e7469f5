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


def options(path: str, entry_point: str = "main") -> dict[str, Any]:
    """The ``options`` of ``entry_point`` in the argument_specs file at ``path``."""
    with open(path, "rb") as f:
        return yaml.load(f, Loader=_LOADER)["argument_specs"][entry_point]["options"]
