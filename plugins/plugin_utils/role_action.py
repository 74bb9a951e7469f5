# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""What the role isolated_service's actions (plugins/action/isolated_service_*.py) share: they run on
the controller, in check mode as out of it, and check their arguments against their ARGSPEC, as a
module's are, before ``act``."""

from __future__ import annotations

import os
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible_collections.pyforkexec.isolation.plugins.plugin_utils.argument_specs import SpecsError


def shape_problems(args: dict, existing: dict[str, str], keys: dict[str, tuple]) -> list[str]:
    """What the actions' code would fail on with a bare exception (``Task failed: [Errno 2] ...``,
    ``Task failed: 'state'``), each naming the option: a path of ``existing`` (option: "file" or
    "directory") that is not one on the controller, a dict of ``keys`` (option: its keys) without one."""
    found = [
        f"{option}: {args[option]!r} is not a {kind} of the controller"
        for option, kind in existing.items()
        if not (os.path.isfile if kind == "file" else os.path.isdir)(args[option] or "")
    ]
    return found + [
        f"{option}: has no {key}"
        for option, needed in keys.items()
        if args[option] is not None
        for key in needed
        if key not in args[option]
    ]


class RoleAction(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    ARGSPEC: dict[str, Any] = {}
    EXISTING: dict[str, str] = {}  # options that name a file or directory of the controller: which
    KEYS: dict[str, tuple] = {}  # dict options: the keys the action reads

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        validation = ArgumentSpecValidator(self.ARGSPEC).validate(self._task.args)
        if validation.error_messages:
            raise AnsibleActionFail("; ".join(validation.error_messages))
        problems = shape_problems(validation.validated_parameters, self.EXISTING, self.KEYS)
        if problems:
            raise AnsibleActionFail("; ".join(problems))
        try:
            return self.act(result, validation.validated_parameters)
        except SpecsError as e:  # (an option that names a file: the message names it)
            raise AnsibleActionFail(str(e)) from None

    def act(self, result: dict, args: dict) -> dict:
        raise NotImplementedError
