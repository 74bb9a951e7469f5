#!/usr/bin/python
# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT

# The action plugin of the same name (plugins/action/isolated_service_check.py) does the work; this file
# documents it.

from __future__ import annotations

DOCUMENTATION = r"""
module: isolated_service_check
short_description: The role isolated_service's check of its services with the modules' own code
version_added: 0.1.0
description:
  - Used by the role P(pyforkexec.isolation.isolated_service#role) before it changes anything. Runs
    O(script) with O(python) on the controller, which checks every service of O(services) and every
    network of O(networks) with the argument specs and validation of the M(pyforkexec.isolation.service)
    and M(pyforkexec.isolation.netns) modules and the pyforkexec wheel of O(wheels).
  - Fails with one line per refused value, naming the service or network and its field.
  - A check that passed is recorded in O(cache) under a key of the script, the wheels (names, sizes,
    times), the collection's module code, Ansible's version, O(python) and the request; the same check
    is not run again. A refusal is never recorded.
  - The pyforkexec wheel is unpacked and compiled to bytecode once per content, in O(cache)C(/unpacked/),
    and imported from there by later checks.
  - When O(python) cannot import the wheel (one for another architecture), it warns and passes, and the
    modules check the services on the host.
author:
  - pyforkexec developers (@pyforkexec)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  script:
    description: The role's C(files/check_services.py).
    type: path
    required: true
  python:
    description: The controller's Python that runs it (with Ansible).
    type: path
    required: true
  wheels:
    description: The directory of the wheels the hosts get.
    type: path
    required: true
  networks:
    description: The role's C(isolated_service_networks).
    type: list
    elements: dict
    required: true
  services:
    description: The plan of M(pyforkexec.isolation.isolated_service_plan).
    type: list
    elements: dict
    required: true
  cache:
    description: The controller directory where passed checks are recorded, and the wheel is kept unpacked.
    type: path
    required: true
attributes:
  check_mode:
    support: full
    details: It changes nothing on the host in either mode; a pass is recorded on the controller.
  diff_mode:
    support: none
  platform:
    platforms: linux
seealso:
  - module: pyforkexec.isolation.isolated_service_plan
"""

EXAMPLES = r"""
- name: Check the planned services as the role does
  pyforkexec.isolation.isolated_service_check:
    script: "{{ role_path }}/files/check_services.py"
    python: "{{ ansible_playbook_python }}"
    wheels: /root/.cache/pyforkexec/role-wheels/0123456789abcdef
    networks: []
    services: "{{ planned.plan }}"
    cache: /root/.cache/pyforkexec/role-wheels/checked
"""

RETURN = r"""
problems:
  description: What the modules refuse, one line each.
  returned: always
  type: list
  elements: str
cached:
  description: Whether the same check had passed before and was not run again.
  returned: always
  type: bool
"""
