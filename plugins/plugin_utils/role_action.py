# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""What the role isolated_service's actions (plugins/action/isolated_service_*.py) share: they run on
the controller, in check mode as out of it, and check their arguments against their ARGSPEC, as a
module's are, before ``act``."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible_collections.pyforkexec.isolation.plugins.plugin_utils.argument_specs import SpecsError


class RoleAction(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    ARGSPEC: dict[str, Any] = {}

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        validation = ArgumentSpecValidator(self.ARGSPEC).validate(self._task.args)
        if validation.error_messages:
            raise AnsibleActionFail("; ".join(validation.error_messages))
        try:
            return self.act(result, validation.validated_parameters)
        except SpecsError as e:  # (an option that names a file: the message names it)
            raise AnsibleActionFail(str(e)) from None

    def act(self, result: dict, args: dict) -> dict:
        raise NotImplementedError
