# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""The action pyforkexec.isolation.isolated_service_check (documented in plugins/modules/): the role
isolated_service's check of its services with the modules' own validation and the pyforkexec the hosts
will get, run on the controller (the role's files/check_services.py, in a process of the controller's
Python) unless the same check already passed there (plugin_utils/check_cache.py). Nothing on the host
is touched."""

from __future__ import annotations

import json
import os
import subprocess

from ansible.errors import AnsibleActionFail
from ansible_collections.pyforkexec.isolation.plugins.plugin_utils import check_cache, role_action

ARGSPEC = dict(
    script=dict(type="path", required=True),
    python=dict(type="path", required=True),
    wheels=dict(type="path", required=True),
    networks=dict(type="list", elements="dict", required=True),
    services=dict(type="list", elements="dict", required=True),
    cache=dict(type="path", required=True),
)
# check_services.py's exit status when this controller cannot import the hosts' pyforkexec wheel
ONLY_ON_THE_HOST = 3
UNPACKED = "unpacked"  # check_services.py --unpacked: a directory of the cache, beside the passes' keys


class ActionModule(role_action.RoleAction):
    ARGSPEC = ARGSPEC
    EXISTING = dict(script="file", wheels="directory")

    def act(self, result, args):
        request = dict(wheels=args["wheels"], networks=args["networks"], services=args["services"])
        check_key = check_cache.key(args["script"], request, args["python"])
        result.update(changed=False, problems=[], cached=check_cache.passed(args["cache"], check_key))
        if result["cached"]:
            return result
        try:
            done = subprocess.run(  # the wheel unpacked and compiled once, beside the recorded passes
                [args["python"], args["script"], "--unpacked", os.path.join(args["cache"], UNPACKED)],
                input=json.dumps(request),
                capture_output=True,
                text=True,
                check=False,
            )
        except OSError as e:
            raise AnsibleActionFail(f"python: {args['python']!r} cannot be run ({e.strerror})") from None
        if done.returncode == ONLY_ON_THE_HOST:
            result["warnings"] = [done.stderr.strip()]
            return result
        if done.returncode != 0:
            raise AnsibleActionFail(
                f"{args['script']} failed (exit status {done.returncode}): {done.stderr[-2000:]}"
            )
        result["problems"] = json.loads(done.stdout)
        if result["problems"]:
            return dict(result, failed=True, msg="\n".join(result["problems"]))
        check_cache.record_pass(args["cache"], check_key)
        return result
