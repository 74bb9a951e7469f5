# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""Imports of the managed host's Python libraries, and the failure that says how to install them.

Modules import what they need from here, so that a missing library becomes one clear
``missing_required_lib`` failure (naming the interpreter and the pip command) instead of a traceback.
"""

from __future__ import annotations

import importlib
import sys
import traceback

from ansible.module_utils.basic import missing_required_lib


def _load(*names):
    """(the first module, None), or (None, the traceback) when one of ``names`` cannot be imported."""
    try:
        loaded = [importlib.import_module(n) for n in names]
    except ImportError:
        return None, traceback.format_exc()
    return loaded[0], None


# The submodules the modules use become attributes of the package: deps.pyforkexec.netns.converge.
pyforkexec, PYFORKEXEC_IMPORT_ERROR = _load("pyforkexec", "pyforkexec.spec", "pyforkexec.netns",
                                            "pyforkexec.nsinfo")
pyroute2, PYROUTE2_IMPORT_ERROR = _load("pyroute2")
jinja2, JINJA2_IMPORT_ERROR = _load("jinja2")

# library -> (import error, pip requirement, where it is documented)
_LIBRARIES = {
    "pyforkexec": (PYFORKEXEC_IMPORT_ERROR, "pyforkexec", None),
    "pyroute2": (PYROUTE2_IMPORT_ERROR, "pyroute2>=0.7", "https://pyroute2.org"),
    "jinja2": (JINJA2_IMPORT_ERROR, "jinja2", "https://jinja.palletsprojects.com"),
}


def require(module, *names, reason=None):
    """Fail the module if any of the named libraries cannot be imported on the managed host."""
    for name in names:
        error, requirement, url = _LIBRARIES[name]
        if error is not None:
            msg = missing_required_lib(name, reason=reason, url=url).rstrip(".")
            hint = f". Install it with: {sys.executable} -m pip install '{requirement}'"
            module.fail_json(msg=msg + hint, exception=error)
