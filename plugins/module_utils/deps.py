# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""Imports of the managed host's Python libraries, and the failure that says how to install them.

Modules import what they need from here, so that a missing library becomes one clear
``missing_required_lib`` failure (naming the interpreter and how to get the library there) instead of a
traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
import sysconfig
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
# Where the role pyforkexec.isolation.isolated_service puts the virtualenv, and the examples say to.
VENV = "/opt/pyforkexec"
_ROLE = "The role pyforkexec.isolation.isolated_service does all of this for a host."


def in_virtualenv():
    return sys.prefix != sys.base_prefix


def externally_managed():
    """Whether this Python's distribution forbids pip installs into it (PEP 668: Debian 12's does)."""
    return os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))


def install_hint(name, executable=None, virtualenv=None, managed=None):
    """How to get library ``name`` into the Python ``executable`` (this one by default) runs: never a
    pip install into a system Python, and pyforkexec, which is not on PyPI, from a wheel built from the
    project's checkout."""
    executable = executable or sys.executable
    virtualenv = in_virtualenv() if virtualenv is None else virtualenv
    managed = externally_managed() if managed is None else managed
    system = f"{executable} is not a virtualenv" + (" and is externally managed (PEP 668)" if managed else "")
    system += (f": make one (python3 -m venv {VENV}), install it there, and set ansible_python_interpreter "
               f"to {VENV}/bin/python")
    if name == "pyforkexec":
        wheel = ("pyforkexec is not published on PyPI: build its wheel from the project's checkout, on a "
                 "machine with a C compiler and the hosts' architecture (python3 -m build --wheel, or "
                 "python3 -m pip wheel --no-deps --wheel-dir dist .), and copy dist/pyforkexec-*.whl here")
        if virtualenv:
            return f"{wheel}; install it into this virtualenv: {executable} -m pip install ./pyforkexec-*.whl"
        return f"{wheel}; {system} ({VENV}/bin/python -m pip install ./pyforkexec-*.whl pyroute2). {_ROLE}"
    requirement = _LIBRARIES[name][1]
    if virtualenv:
        return f"Install it into this virtualenv: {executable} -m pip install '{requirement}'"
    return f"{system} ({VENV}/bin/python -m pip install '{requirement}'). {_ROLE}"


def require(module, *names, reason=None):
    """Fail the module if any of the named libraries cannot be imported on the managed host."""
    for name in names:
        error, url = _LIBRARIES[name][0], _LIBRARIES[name][2]
        if error is not None:
            msg = missing_required_lib(name, reason=reason, url=url).rstrip(".")
            module.fail_json(msg=f"{msg}. {install_hint(name)}", exception=error)
