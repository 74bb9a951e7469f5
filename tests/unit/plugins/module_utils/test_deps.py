"""The failure of a module whose library is missing says how to really get it there (issue 11): pyforkexec
from a wheel built from the checkout (it is not on PyPI), and nothing pip-installed into a system Python."""

from __future__ import annotations

import os
import sys

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import deps

SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.mark.parametrize("name", ["pyforkexec", "pyroute2", "jinja2"])
@pytest.mark.parametrize("managed", [True, False])
def test_a_system_python_is_never_pip_installed_into(name, managed):
    hint = deps.install_hint(name, SYSTEM_PYTHON, virtualenv=False, managed=managed)
    assert f"{SYSTEM_PYTHON} -m pip" not in hint
    assert f"python3 -m venv {deps.VENV}" in hint
    assert f"ansible_python_interpreter to {deps.VENV}/bin/python" in hint
    assert ("externally managed (PEP 668)" in hint) is managed


@pytest.mark.parametrize("virtualenv", [True, False])
def test_pyforkexec_comes_from_a_wheel_built_from_the_checkout(virtualenv):
    hint = deps.install_hint("pyforkexec", "/opt/x/bin/python", virtualenv=virtualenv, managed=False)
    assert "not published on PyPI" in hint and "python3 -m build --wheel" in hint
    assert "pip install pyforkexec" not in hint and "pip install 'pyforkexec'" not in hint
    assert "./pyforkexec-*.whl" in hint


def test_a_virtualenv_gets_its_own_pip_command():
    assert deps.install_hint("pyroute2", "/opt/x/bin/python", virtualenv=True, managed=False) == (
        "Install it into this virtualenv: /opt/x/bin/python -m pip install 'pyroute2>=0.7'")


def test_this_interpreter_is_seen_as_it_is():
    assert deps.in_virtualenv() is (sys.prefix != sys.base_prefix)
    marker = os.path.join(__import__("sysconfig").get_path("stdlib"), "EXTERNALLY-MANAGED")
    assert deps.externally_managed() is os.path.exists(marker)
