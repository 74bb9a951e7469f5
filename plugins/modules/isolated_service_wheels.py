#!/usr/bin/python
# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT

# The action plugin of the same name (plugins/action/isolated_service_wheels.py) does the work; this
# file documents it.

from __future__ import annotations

DOCUMENTATION = r"""
module: isolated_service_wheels
short_description: The wheels the role isolated_service installs on its hosts
version_added: 0.1.0
description:
  - Used by the role P(pyforkexec.isolation.isolated_service#role) on the controller, once for the play.
    Names the directory of O(cache) where the wheels of pyforkexec and its dependencies for the hosts are
    built, after everything they are built from (pyforkexec's sources in O(root), O(requirements),
    O(pythons), O(machines), O(platforms), O(pip_args)), and says whether a finished build is there.
  - When none is, makes a scratch directory beside it to build in (RV(scratch)), after removing those of
    builds whose controller process has ended (killed before their own removal). With O(finish), renames
    that build into place whole, so that the cache only ever holds finished builds; of two builds at
    once, the first to finish is kept.
  - With O(wheel_dir), that directory is used as it is and nothing is built.
  - Fails, naming the architecture, when the controller lacks the cross compiler for hosts of another
    architecture than its own.
author:
  - pyforkexec developers (@pyforkexec)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  root:
    description: The collection, whose C(pyforkexec/) and build files the wheel is built from.
    type: path
    required: true
  cache:
    description: The role's C(isolated_service_wheel_cache).
    type: path
    required: true
  wheel_dir:
    description: The role's C(isolated_service_wheel_dir); empty to build.
    type: str
    default: ""
  machines:
    description: The hosts' architectures (C(uname -m)).
    type: list
    elements: str
    required: true
  pythons:
    description: The hosts' Python versions (C(3.11)).
    type: list
    elements: str
    required: true
  requirements:
    description: The dependencies whose wheels are fetched.
    type: list
    elements: str
    required: true
  platforms:
    description: The role's C(isolated_service_wheel_platforms).
    type: list
    elements: str
    required: true
  pip_args:
    description: The role's C(isolated_service_pip_args).
    type: list
    elements: str
    default: []
  finish:
    description:
      - A RV(scratch) this action returned, whose C(wheels/) holds a finished build (its C(.complete)
        written), to rename to RV(path) unless another build finished first. Empty to name the wheels.
    type: str
    default: ""
attributes:
  check_mode:
    support: full
    details: It changes the controller's cache only, also in check mode (the role needs the wheels).
  diff_mode:
    support: none
  platform:
    platforms: linux
seealso:
  - module: pyforkexec.isolation.isolated_service_plan
"""

EXAMPLES = r"""
- name: Name the wheels as the role does
  pyforkexec.isolation.isolated_service_wheels:
    root: "{{ role_path | dirname | dirname }}"
    cache: /root/.cache/pyforkexec/role-wheels
    machines: [x86_64]
    pythons: ["3.11"]
    requirements: [pyroute2>=0.7]
    platforms: [manylinux_2_28]
  run_once: true
  register: wheels
"""

RETURN = r"""
path:
  description: The directory of the wheels.
  returned: success
  type: str
name:
  description:
    - The last component of RV(path) (C(os.path.basename)), which the role records in the virtualenv
      as the wheels it was installed from, and compares in the conditions of tasks that most runs skip
      (with no Jinja filter there, a skipped task loads no filter plugin).
  returned: success
  type: str
paths:
  description: pyforkexec's sources, relative to O(root) (empty with O(wheel_dir)).
  returned: success
  type: list
  elements: str
complete:
  description: Whether a finished build is in RV(path) (always true with O(wheel_dir) or O(finish)).
  returned: success
  type: bool
scratch:
  description:
    - Where to build, when no finished build is there (RV(complete) false, no O(finish)), a new
      directory of O(cache), C(.building-PID-*) with PID the controller's. The build writes the wheels
      in its C(wheels/), then gives it to O(finish), and removes it in any case.
  returned: when RV(complete) is false
  type: str
controller_machine:
  description: The controller's architecture (C(uname -m)).
  returned: always
  type: str
"""
