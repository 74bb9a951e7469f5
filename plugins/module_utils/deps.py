# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""Imports of the managed host's Python libraries, and the failure that says how to install them.

Modules import what they need from here, so that a missing library becomes one clear
``missing_required_lib`` failure (naming the interpreter and how to get the library there) instead of a
traceback.

pyforkexec is imported with this module: every module that imports it uses it. pyroute2 and jinja2 are
imported on first use (``require``, or reading ``deps.pyroute2``, ``deps.jinja2`` or their
``*_IMPORT_ERROR``): ``import pyroute2`` alone takes ~0.25 s (its package imports every netlink family),
``import jinja2`` ~0.04 s, and most module runs need neither (a service without a network, a direct
manager, the role's check on the controller). pyforkexec's own network code imports pyroute2 where it
uses it.
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
                                            "pyforkexec.nsinfo", "pyforkexec.sandbox.cgroup",
                                            "pyforkexec.sandbox.caps", "pyforkexec.sandbox.rlimits",
                                            "pyforkexec.sandbox.mount_table", "pyforkexec.ns_pins")

# library -> (pip requirement, where it is documented)
_LIBRARIES = {
    "pyforkexec": ("pyforkexec", None),
    "pyroute2": ("pyroute2>=0.7", "https://pyroute2.org"),
    "jinja2": ("jinja2", "https://jinja.palletsprojects.com"),
}
_ON_FIRST_USE = ("pyroute2", "jinja2")
_loaded = {"pyforkexec": (pyforkexec, PYFORKEXEC_IMPORT_ERROR)}  # library -> (module, import error)


def _loaded_library(name):
    """(the library's module, None), or (None, the traceback of its import): imported when first asked."""
    if name not in _loaded:
        _loaded[name] = _load(name)
    return _loaded[name]


def __getattr__(attr):
    """deps.pyroute2, deps.jinja2 (None when missing) and deps.PYROUTE2_IMPORT_ERROR, deps.JINJA2_IMPORT_ERROR
    (None when importable): the import happens here, on first use (PEP 562)."""
    for name in _ON_FIRST_USE:
        if attr == name:
            return _loaded_library(name)[0]
        if attr == f"{name.upper()}_IMPORT_ERROR":
            return _loaded_library(name)[1]
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


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
    requirement = _LIBRARIES[name][0]
    if virtualenv:
        return f"Install it into this virtualenv: {executable} -m pip install '{requirement}'"
    return f"{system} ({VENV}/bin/python -m pip install '{requirement}'). {_ROLE}"


def require(module, *names, reason=None):
    """Fail the module if any of the named libraries cannot be imported on the managed host."""
    for name in names:
        error, url = _loaded_library(name)[1], _LIBRARIES[name][1]
        if error is not None:
            msg = missing_required_lib(name, reason=reason, url=url).rstrip(".")
            module.fail_json(msg=f"{msg}. {install_hint(name)}", exception=error)
