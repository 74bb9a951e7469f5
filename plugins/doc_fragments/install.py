# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""Where every module of the collection finds pyforkexec on the managed host."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options: {}
requirements:
  - pyforkexec in the managed host's Python, best a virtualenv that C(ansible_python_interpreter) points to.
    pyforkexec is not on PyPI; install the wheel built from its checkout (C(python -m build --wheel)) into
    that virtualenv, or let the role C(pyforkexec.isolation.isolated_service) build and install it
    (C(/opt/pyforkexec)); that Python also runs what the modules start
"""
