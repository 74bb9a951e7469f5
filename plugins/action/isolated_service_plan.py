# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""The action pyforkexec.isolation.isolated_service_plan (documented in plugins/modules/): the role
isolated_service's checks of its variables, its look at the host and its plan, in one task. The checks
and the plan are Python on the controller (plugin_utils/role_problems.py, role_plan.py); the look at the
host is one command of the host's own Python (plugin_utils/host_probe.py), with no module round trip.
Nothing on the host changes, in check mode as out of it."""

from __future__ import annotations

import json
import shlex

from ansible.errors import AnsibleActionFail
from ansible_collections.pyforkexec.isolation.plugins.plugin_utils import (
    argument_specs,
    host_probe,
    role_action,
    role_plan,
    role_problems,
)

ARGSPEC = dict(
    services=dict(type="list", elements="dict", required=True),
    networks=dict(type="list", elements="dict", required=True),
    defaults=dict(type="dict", required=True),
    venv=dict(type="str", required=True),
    base_python=dict(type="str", required=True),
    state=dict(type="str", required=True, choices=["present", "absent"]),
    cgroup_required=dict(type="bool", default=True),
    host=dict(type="dict"),
    created=dict(type="list", elements="dict", default=[]),
    variables=dict(type="list", elements="str", default=[]),  # the isolated_service_* ones defined
    argument_specs=dict(type="path"),  # the role's meta/argument_specs.yml: the variables it takes
)


def _known_variables(path: str | None) -> list[str]:
    """The variables the role takes, from its argument_specs (none known without the file)."""
    if path is None:
        return []
    return list(argument_specs.options(path))


def _probe_source() -> str:
    with open(host_probe.__file__) as f:
        return f.read()


class ActionModule(role_action.RoleAction):
    ARGSPEC = ARGSPEC
    KEYS = dict(
        defaults=("state", "create_user", "namespaces", "manager"),  # (vars/main.yml's, every service's)
        host=("version", "passwd", "systemd", "cgroup2", "controllers", "rootfs"),  # (the look's)
    )

    def _probe(self, base_python: str, venv: str, accounts: list[str], roots: list[str],
               links: list[str]) -> dict:
        command = " ".join(
            shlex.quote(word)
            for word in (base_python, "-c", _probe_source(), venv, json.dumps(accounts), json.dumps(roots),
                         json.dumps(links))
        )
        done = self._low_level_execute_command(command, sudoable=True)
        if done["rc"] != 0:
            raise AnsibleActionFail(
                f"the look at the host with {base_python} failed (exit status {done['rc']}): "
                f"{done.get('stderr', '').strip() or done.get('stdout', '').strip()}"
            )
        try:
            return json.loads(done["stdout"])
        except ValueError:
            raise AnsibleActionFail(
                f"the look at the host with {base_python} printed no JSON: {done['stdout'][-500:]}"
            ) from None

    def act(self, result, args):
        # (a null field is one left out, as argument_specs reads it; the required ones are named)
        services = role_problems.unset_nulls(args["services"])
        networks = role_problems.unset_nulls(args["networks"])
        known = _known_variables(args["argument_specs"])
        problems = role_problems.unknown_variables(args["variables"], known)
        problems += role_problems.variable_problems(
            args["venv"], args["base_python"], networks, services, args["defaults"].get("namespaces", []),
            args["state"],
        )
        if problems:
            return dict(result, failed=True, msg="\n".join(problems))
        every = role_plan.with_defaults(services, args["defaults"])
        kept = [svc for svc in every if svc["state"] != "absent"]
        accounts = list(dict.fromkeys(svc["user"] for svc in every if "user" in svc))
        roots = list(dict.fromkeys(svc["rootfs"] for svc in kept if svc.get("rootfs") is not None))
        if args["host"] is None:
            links = role_problems.host_link_names(kept)
            host = self._probe(args["base_python"], args["venv"], accounts, roots, links)
        else:  # planned again: the host as it was looked at, with the accounts created since (each in
            # its group: the accounts module made it whole or refused it)
            created = role_plan.created_passwd(args["created"])
            host = dict(
                args["host"],
                passwd=dict(args["host"]["passwd"], **created),
                primary_groups=dict(args["host"].get("primary_groups") or {}, **{n: n for n in created}),
            )
        result["host"] = host
        if tuple(int(n) for n in host["version"].split(".")) < (3, 9):
            return dict(
                result,
                failed=True,
                msg=(
                    f"{args['base_python']} is Python {host['version']}: pyforkexec needs 3.9 or later (set "
                    "isolated_service_base_python)"
                ),
            )
        if args["state"] == "absent":  # only removed: the ids of the accounts do not matter
            passwd: dict[str, list] = {}
            new_accounts: list[str] = []
        else:
            problems = role_problems.host_problems(kept, host)
            if problems:  # the plan needs what they refuse (a manager, an account)
                return dict(result, failed=True, msg="\n".join(problems))
            passwd, new_accounts = role_plan.passwd_with_placeholders(host["passwd"], kept,
                                                                      host.get("primary_groups"))
        planned = role_plan.plan(every, networks, passwd, host)
        if args["state"] == "present":
            problems += role_plan.plan_problems(planned, new_accounts, host, args["cgroup_required"])
        result.update(
            plan=planned,
            new_accounts=new_accounts,
            # (state absent: every service goes, whatever its own state says)
            gone_accounts=role_plan.gone_accounts(every if args["state"] == "present" else
                                                  [dict(svc, state="absent") for svc in every], host),
            jinja2_needed=role_plan.jinja2_needed(kept, host),
            changed=False,
        )
        if problems:
            return dict(result, failed=True, msg="\n".join(problems))
        notes = role_plan.cgroup_notes(planned, args["cgroup_required"]) if args["state"] == "present" else []
        if notes:
            result["warnings"] = notes
        result["msg"] = f"{len(planned)} services planned"
        return result
