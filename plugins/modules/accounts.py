#!/usr/bin/python
# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
module: accounts
short_description: Create or remove the system accounts of several services in one call
version_added: 0.1.0
description:
  - Makes every account of O(names) that does not exist (O(state=present)), or removes every one of them
    that it made (O(state=absent)), with shadow-utils' C(useradd) and C(userdel), in one module run.
  - The accounts it makes carry the comment (GECOS) C(pyforkexec service account); O(state=absent) removes
    those only, and leaves an account made otherwise (C(nobody), C(www-data), one made by hand) as it is.
  - An account that exists is used as it is (O(shell), O(home) and O(system) apply to the ones it creates).
    A new account gets a group of its own name, or that group when it already exists; O(state=absent)
    removes such a group only if it made it with the account.
  - An account it made that an interrupted C(useradd) left without its group (a gid no group has) gets
    that group, with that gid; one it made whose primary group is another's is refused, naming it.
  - Runs of it on one host take turns, with a lock of their own on C(/etc/.pwd.lock) beside C(useradd)'s.
    C(useradd) looks whether a name is taken before it locks the account files, and two of one name at
    once both succeeded, the second replacing the first's ids.
  - The role M(pyforkexec.isolation.isolated_service) uses it for its services' accounts, where a loop of
    M(ansible.builtin.user) would be one module run per service.
author:
  - pyforkexec developers (@pyforkexec)
requirements:
  - C(useradd) and C(userdel) (Debian's C(passwd) package), as root
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  names:
    description:
      - The accounts' names (lower case letters, digits, C(_) and C(-), at most 32, not starting with a digit
        or C(-)). A name given twice counts once.
    type: list
    elements: str
    required: true
  state:
    description:
      - V(present) creates the missing accounts, V(absent) removes the existing ones.
    type: str
    choices: [present, absent]
    default: present
  shell:
    description: The login shell of the accounts it creates.
    type: str
    default: /usr/sbin/nologin
  home:
    description: The home directory of the accounts it creates (not created).
    type: str
    default: /nonexistent
  system:
    description: Whether the accounts it creates are system accounts (ids from the system range).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    details:
      - A removal is refused, before any account goes, while a process runs as one of the accounts. In
        check mode a process under a pyforkexec daemon does not count, as a run that removes its service
        (the role does) stops it before the account goes.
  diff_mode:
    support: full
  platform:
    platforms: linux
seealso:
  - module: ansible.builtin.user
"""

EXAMPLES = r"""
- name: The accounts of three services
  pyforkexec.isolation.accounts:
    names: [svc-web1, svc-web2, svc-db]

- name: Remove them
  pyforkexec.isolation.accounts:
    names: [svc-web1, svc-web2, svc-db]
    state: absent
"""

RETURN = r"""
changed_names:
  description: The accounts created (O(state=present)) or removed (O(state=absent)), or that would be in
    check mode.
  returned: always
  type: list
  elements: str
  sample: [svc-web2]
results:
  description:
    - For O(state=present), each account of O(names) as it is after the call, with the keys of
      M(ansible.builtin.user)'s result (an account check mode would create has no uid yet).
  returned: always
  type: list
  elements: dict
  sample:
    - {name: svc-web1, uid: 998, group: 996, home: /nonexistent, shell: /usr/sbin/nologin, changed: true}
"""

import contextlib

from ansible_collections.pyforkexec.isolation.plugins.module_utils import accounts, quick_exit
from ansible_collections.pyforkexec.isolation.plugins.module_utils.arguments import AnsibleModule

ARGSPEC = dict(
    names=dict(type="list", elements="str", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    shell=dict(type="str", default="/usr/sbin/nologin"),
    home=dict(type="str", default="/nonexistent"),
    system=dict(type="bool", default=True),
)


def main():
    quick_exit.skip_final_collection()
    module = AnsibleModule(argument_spec=ARGSPEC, supports_check_mode=True)
    p = module.params
    present = p["state"] == "present"
    try:
        names = accounts.check_names(p["names"])
        if present:
            accounts.check_paths(shell=p["shell"], home=p["home"])
    except accounts.AccountError as e:
        module.fail_json(msg=str(e))
    # (check mode changes nothing: no other run's look is to be kept from seeing it halfway)
    with contextlib.nullcontext() if module.check_mode else accounts.database_lock():
        changing, before, results = _converge(module, names, present)
    after = [n for n in names if (n in before or n in changing) and not (n in changing and not present)]
    module.exit_json(changed=bool(changing), changed_names=changing, results=results,
                     diff=dict(before={"accounts": before}, after={"accounts": after}))


def _converge(module, names: list[str], present: bool) -> tuple[list, list, list]:
    """What changes, the names there before, the results (the accounts as they are after)."""
    p = module.params
    done: list[str] = []
    meanwhile: list[str] = []  # made (removed) by another tool at the same time: as though before this run
    try:
        changing = accounts.plan(names, p["state"])
        accounts.check_root(changing, present)
        before = [n for n in names if accounts.entry(n) is not None]  # of the names: those there now
        if p["state"] == "absent":
            accounts.check_unused(changing, supervised_stop=module.check_mode)
        for name in [] if module.check_mode else changing:
            converged = (accounts.create(module.run_command, name, p["shell"], p["home"], p["system"])
                         if present else accounts.remove(module.run_command, name))
            (done if converged else meanwhile).append(name)
        if not module.check_mode:
            changing = done
        before = [n for n in names if (n in before) != (n in meanwhile)]
    except accounts.AccountError as e:  # (what was changed before it is said: the run changed the host)
        module.fail_json(msg=str(e), changed=bool(done), changed_names=done)
    results = [dict({k: v for k, v in (accounts.entry(n) or {"name": n}).items() if k != "ours"},
                    changed=n in changing) for n in names if present]
    return changing, before, results


if __name__ == "__main__":
    main()
