# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""The action pyforkexec.isolation.isolated_service_arguments (documented in plugins/modules/): the role
isolated_service's variables checked, before ansible-core's own check of its argument_specs, for the
values that check raises on instead of reporting, or spends minutes on (module_utils/arguments.py: a
list holding null where a dict is expected, a number where a dict of sub-options is, an infinite or huge
int), and the errors that check reports in an entry of a list, said with the entry's path
(``isolated_service_services[1].network``) where it names none. Run by the role
isolated_service_arguments, isolated_service's dependency: a role's dependencies run before its first
task, which is ansible-core's validate_argument_spec (playbook/role/__init__.py,
``_prepend_validation_task``), and nothing of the role itself can run before that. The values are read
as validate_argument_spec reads them: each variable of the argument spec that is defined, templated."""

from __future__ import annotations

from ansible_collections.pyforkexec.isolation.plugins.module_utils import arguments
from ansible_collections.pyforkexec.isolation.plugins.plugin_utils import (
    argument_specs,
    role_action,
    role_problems,
)

ARGSPEC = dict(
    argument_specs=dict(type="path", required=True),  # the role's meta/argument_specs.yml
    # the ansible_python_interpreter this task gets; where the task sets one in its vars, another value
    # is one that overrides a task's vars
    interpreter=dict(type="raw"),
)


class ActionModule(role_action.RoleAction):
    ARGSPEC = ARGSPEC
    _requires_connection = False

    def act(self, result, args):
        options = argument_specs.options(args["argument_specs"])
        task_vars = self._task_vars
        values = self._templar.template({name: task_vars[name] for name in options if name in task_vars})
        set_here = self._task.vars.get("ansible_python_interpreter")
        if set_here is not None:
            problems = role_problems.interpreter_problems(
                str(args["interpreter"]), set_here, values.get("isolated_service_venv"))
            if problems:
                return dict(result, failed=True, msg="\n".join(problems))
        found = arguments.refusal(options, values)
        if found is not None:
            return dict(result, failed=True, msg=found)
        # what ansible-core's check would report without naming the entry (which service?), named
        located = argument_specs.located_errors(options, values)
        if located:
            return dict(result, failed=True, msg="\n".join(located))
        return dict(result, changed=False, msg="no value ansible-core's argument check would raise on")

    def run(self, tmp=None, task_vars=None):
        self._task_vars = task_vars or {}  # act() reads the variables as validate_argument_spec does
        return super().run(tmp, task_vars)
