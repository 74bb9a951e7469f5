#!/usr/bin/python
# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT

# The action plugin of the same name (plugins/action/isolated_service_plan.py) does the work; this file
# documents it.

from __future__ import annotations

DOCUMENTATION = r"""
module: isolated_service_plan
short_description: The role isolated_service's checks of its variables, look at the host and plan
version_added: 0.1.0
description:
  - Used by the role P(pyforkexec.isolation.isolated_service#role) before it changes anything. Checks the
    rules across its variables' fields and entries, looks at the host in one command of O(base_python)
    (its version, machine and pip, the virtualenv O(venv), whether PID 1 is systemd, the cgroup v2
    controllers, the services' accounts and new roots), and makes each service's arguments of the
    M(pyforkexec.isolation.services) module.
  - Fails, naming each service, network or variable and its field, on what the role would refuse.
  - The checks and the plan run on the controller; the host only runs the look, which reads and changes
    nothing.
author:
  - pyforkexec developers (@pyforkexec)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  services:
    description: The role's C(isolated_service_services).
    type: list
    elements: dict
    required: true
  networks:
    description: The role's C(isolated_service_networks).
    type: list
    elements: dict
    required: true
  defaults:
    description: The defaults of the services' C(state), C(create_user), C(namespaces) and C(manager).
    type: dict
    required: true
  venv:
    description: The role's C(isolated_service_venv).
    type: str
    required: true
  base_python:
    description: The role's C(isolated_service_base_python), which runs the look at the host.
    type: str
    required: true
  state:
    description: The role's C(isolated_service_state); with V(absent) only the plan is made.
    type: str
    choices: [present, absent]
    required: true
  cgroup_required:
    description: The role's C(isolated_service_cgroup_required).
    type: bool
    default: true
  host:
    description:
      - What an earlier look at the host found (RV(host)); given, the host is not looked at again, and the
        plan is made again with the accounts of O(created).
    type: dict
  created:
    description:
      - The results of the M(pyforkexec.isolation.accounts) task that created the services' accounts since
        (each with C(name), C(uid) and C(group)), with O(host).
    type: list
    elements: dict
    default: []
  variables:
    description:
      - The names of the C(isolated_service_*) variables the play defines; one the role does not take (a
        misspelt one, O(argument_specs) does not list) is refused, naming it.
    type: list
    elements: str
    default: []
  argument_specs:
    description:
      - The role's C(meta/argument_specs.yml), which lists the variables it takes, and O(variables) are
        checked against. Without it the role takes none, so give both or neither.
    type: path
attributes:
  check_mode:
    support: full
    details: It changes nothing in either mode.
  diff_mode:
    support: none
  platform:
    platforms: linux
seealso:
  - module: pyforkexec.isolation.services
"""

EXAMPLES = r"""
- name: Plan two services as the role does
  pyforkexec.isolation.isolated_service_plan:
    services: [{name: web, user: web, argv: [python3, -m, http.server]}]
    networks: []
    defaults: {state: started, create_user: true, namespaces: [user, pid, mount, uts, ipc], manager: auto}
    venv: /opt/pyforkexec
    base_python: /usr/bin/python3
    state: present
  register: planned
"""

RETURN = r"""
host:
  description: What the look at the host found.
  returned: after the look
  type: dict
plan:
  description:
    - Each service's C(name), C(state), C(account), C(cgroup_missing), C(cgroup), C(service) (the
      M(pyforkexec.isolation.service) module's arguments), C(netns) (the M(pyforkexec.isolation.netns)
      module's, with a network) and C(entry) (its entry of M(pyforkexec.isolation.services)).
  returned: after the look
  type: list
  elements: dict
new_accounts:
  description: The accounts the role will create (their ids are placeholders in the plan).
  returned: after the look
  type: list
  elements: str
gone_accounts:
  description:
    - The accounts to remove after the services converge (with O(state=absent), once they are all
      removed), that no service to be kept runs as, and that the spec of no service outside the run
      uses. Those the role created for the services in state C(absent), and those the accounts module
      made that a service of the run ran as before its C(user) changed, or before its removal (not
      those when a spec on the host cannot be read).
  returned: after the look
  type: list
  elements: str
jinja2_needed:
  description: Whether a service runs under systemd, whose units need jinja2 on the host.
  returned: after the look
  type: bool
"""
