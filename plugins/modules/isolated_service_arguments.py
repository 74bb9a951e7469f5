#!/usr/bin/python
# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT

# The action plugin of the same name (plugins/action/isolated_service_arguments.py) does the work; this
# file documents it.

from __future__ import annotations

DOCUMENTATION = r"""
module: isolated_service_arguments
short_description: The role isolated_service's first check of its variables
version_added: 0.1.0
description:
  - Used by the role P(pyforkexec.isolation.isolated_service#role), through its dependency
    P(pyforkexec.isolation.isolated_service_arguments#role), before ansible-core checks the role's
    argument specs.
  - Reads each variable of the argument specs in O(argument_specs) and fails with one line naming the
    variable's path and the rule for a value that ansible-core's check would fail on without naming it
    (a list holding null or a boolean where a dictionary is expected, a number or a list where a
    dictionary of sub-options is) or would spend minutes on (an infinite integer, or one of more than 20
    digits).
  - Fails too, with one line per entry, for what ansible-core's check reports in an entry of a list
    without naming it (an unknown or misspelled field, a value of the wrong type or outside its choices,
    a missing required field), each line naming the entry's path (C(isolated_service_services[1].network))
    before ansible-core's message.
  - Every other value is left to ansible-core's check.
  - Fails first, naming C(ansible_python_interpreter) and what to set instead, where the task sets
    C(ansible_python_interpreter) in its own vars and O(interpreter) is another value, set where it
    overrides a task's vars (extra vars, C(set_fact), role or include parameters). It would override the
    role's own task vars too, and run its M(pyforkexec.isolation.services) module, and so the services,
    with that Python instead of the virtualenv's.
author:
  - pyforkexec developers (@pyforkexec)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  argument_specs:
    description: The role's C(meta/argument_specs.yml); the options of its C(main) entry point are checked.
    type: path
    required: true
  interpreter:
    description:
      - The C(ansible_python_interpreter) the task gets, templated; checked
        only where the task sets one in its own vars.
    type: raw
attributes:
  check_mode:
    support: full
    details: It changes nothing, in either mode.
  diff_mode:
    support: none
  platform:
    platforms: linux
seealso:
  - module: pyforkexec.isolation.isolated_service_plan
"""

EXAMPLES = r"""
- name: Check the variables of isolated_service as its dependency does
  pyforkexec.isolation.isolated_service_arguments:
    argument_specs: "{{ role_path }}/../isolated_service/meta/argument_specs.yml"
"""

RETURN = r"""
msg:
  description: The variable's path and the rule it breaks, or that none does.
  returned: always
  type: str
"""
