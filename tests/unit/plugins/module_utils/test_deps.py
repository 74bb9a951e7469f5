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


def test_pyroute2_and_jinja2_are_imported_on_first_use_only():
    """A module run that needs neither (a service without a network, a direct manager) does not pay for
    their imports: a fresh interpreter importing deps has pyforkexec, and neither of them until asked."""
    import subprocess

    code = ("import sys\n"
            "from ansible_collections.pyforkexec.isolation.plugins.module_utils import deps\n"
            "print('pyforkexec' in sys.modules, 'pyroute2' in sys.modules, 'jinja2' in sys.modules)\n"
            "print((deps.PYROUTE2_IMPORT_ERROR is None) == (deps.pyroute2 is not None),\n"
            "      deps.pyroute2 is sys.modules.get('pyroute2'), deps.jinja2 is sys.modules.get('jinja2'),\n"
            "      deps.JINJA2_IMPORT_ERROR is None)\n"
            "try:\n"
            "    deps.nothing\n"
            "except AttributeError as e:\n"
            "    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    first, asked, missing = done.stdout.splitlines()
    assert first == "True False False"
    assert asked == "True True True True"  # imported once asked for (jinja2 is ansible-core's)
    assert "has no attribute 'nothing'" in missing


def test_a_missing_library_is_reported_when_required(monkeypatch):
    failures = []

    class Module:
        def fail_json(self, **kwargs):
            failures.append(kwargs)

    monkeypatch.setitem(deps._loaded, "pyroute2", (None, "Traceback ...\nModuleNotFoundError: pyroute2\n"))
    deps.require(Module(), "pyroute2", reason="to read links")
    assert len(failures) == 1
    assert "pyroute2" in failures[0]["msg"] and "to read links" in failures[0]["msg"]
    assert failures[0]["exception"].endswith("ModuleNotFoundError: pyroute2\n")
    assert deps.PYROUTE2_IMPORT_ERROR.startswith("Traceback") and deps.pyroute2 is None
