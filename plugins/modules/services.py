#!/usr/bin/python
# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
module: services
short_description: A host's namespaced services and their network namespaces, in one module call
version_added: 0.1.0
description:
  - Declares several services at once, each as M(pyforkexec.isolation.service) declares one, with the
    network namespace it runs in wired as M(pyforkexec.isolation.netns) wires one. One call plans them all
    and applies them in one process, where a task loop over those two modules costs a module round trip
    per service.
  - Every entry is checked first (the service module's checks, pyforkexec's validation of its launch spec,
    the netns module's model of its C(wiring)); one refused entry fails the task before
    anything changes.
  - Then the entries in state C(absent) are removed (the service, then its namespace, its veths
    and the bridges no other port uses, unless another entry wants one, which is never removed, not even
    for a moment), and the others applied in order, each its namespace wired and
    then the service brought to its state. Where PID 1 is not systemd, a service under C(manager=direct)
    starts as soon as its own namespace is wired, while the next one is wired. A running service whose
    namespace this run rewired (made it again, or changed its links, addresses, routes or sysctls; the
    netns module's RV(pyforkexec.isolation.netns#module:rewired)), or that is named in O(restart), is
    restarted (once, and not when its own files changed and restarted it already). A change on the
    host's side only (a bridge it shares, its addresses, the host end of its veth) restarts nothing.
  - Each service started or restarted by the run passes its C(start_check) (see
    M(pyforkexec.isolation.service)). The run starts them all, then waits one window for all of them; one
    that did not start, or did not stay up, is stopped and fails with the cause.
  - An entry that fails to apply is reported in RV(services) and the others still apply (they do not
    depend on each other); the task then fails naming each failed service. A service whose namespace
    could not be wired is neither started nor restarted.
author:
  - pyforkexec developers (@pyforkexec)
requirements:
  - pyroute2 in that Python, for entries with C(wiring)
  - jinja2 in that Python, for entries with C(manager=systemd)
  - Linux, as root
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - pyforkexec.isolation.install
options:
  services:
    description:
      - The services, each a dict of the options of M(pyforkexec.isolation.service) (C(name), C(argv),
        C(state), C(manager), the isolation options...), checked by that module's argument spec (its
        defaults, choices and rules), and C(wiring).
      - C(wiring) is a dict of the options of M(pyforkexec.isolation.netns) but its C(name), which is
        the entry's C(netns) (required with it), and its C(state), which follows the entry's C(state)
        (C(absent) removes the namespace, its veths and the bridges no other port uses; refused, before
        anything changes, while a service that stays joins that namespace). Without it the namespace
        C(netns) names is not managed here and must exist.
      - A namespace this module wired for a service (recorded in C(/etc/pyforkexec/NAME.netns)) that
        the service will not be wired into after the run (its C(netns) renamed, its C(wiring) dropped,
        or the entry removed without one) is removed first, with its veths and persistence, when no
        other service on the host joins it or is wired into it (RV(services.netns_left)). One that
        another service still joins stays, and stays recorded (the file lists each such namespace,
        even once the service is removed), and a later run with the entry removes it once nothing joins
        it. A namespace a service only joins (C(netns) without C(wiring), another task's) is never
        removed here.
      - An entry with C(wiring) and a mount namespace of its own gets a generated C(/etc/hosts) by default
        (C(localhost), and its hostname on the addresses of its wiring's veths), bind-mounted over the one it
        reads, as podman gives each container one; C(no_hosts) leaves it out, C(etc_hosts) adds entries (see
        M(pyforkexec.isolation.service)'s O(pyforkexec.isolation.service#module:etc_hosts)).
      - Names are unique, and so are the namespaces that entries wire.
    type: list
    elements: dict
    required: true
  restart:
    description:
      - Services restarted when they run and this run did not already start or restart them (the role
        isolated_service names all of them after it reinstalled the runtime they run with).
    type: list
    elements: str
    default: []
notes:
  - An entry's refused option fails the task, before anything changes, with a message that starts with
    C(services[NAME]) and names the option.
attributes:
  check_mode:
    support: full
    details: Nothing is written, wired, started or stopped; each service's result is what would be.
  diff_mode:
    support: full
    details:
      - For each service, its namespace's topology before and after and its persisted files, then its
        spec and unit files and its state, each header starting with the service's name.
  platform:
    platforms: linux
seealso:
  - module: pyforkexec.isolation.service
  - module: pyforkexec.isolation.netns
"""

EXAMPLES = r"""
- name: Two web servers, each in its own namespaces and network namespace
  pyforkexec.isolation.services:
    services:
      - {name: web1, argv: [python3, -m, http.server, "8080"], netns: web1,
         wiring: {veths: [{name: eth0, peer: veth-web1, addresses: [10.42.0.11/24]}]}}
      - {name: web2, argv: [python3, -m, http.server, "8080"], netns: web2,
         wiring: {veths: [{name: eth0, peer: veth-web2, addresses: [10.42.0.12/24]}]}}
  register: web

- name: Say where web1 runs
  ansible.builtin.debug:
    msg: "{{ web.services.web1.pid }}"

- name: Remove them and their namespaces
  pyforkexec.isolation.services:
    services:
      - {name: web1, state: absent, netns: web1, wiring: {}}
      - {name: web2, state: absent, netns: web2, wiring: {}}
"""

RETURN = r"""
services:
  description:
    - Each service's result by name, with the keys of M(pyforkexec.isolation.service)'s (C(state),
      C(pid)...) and C(netns).
  returned: always
  type: dict
  contains:
    changed:
      description: Whether the service or its namespace changed.
      type: bool
    actions:
      description: The service's actions, as M(pyforkexec.isolation.service) returns them.
      type: list
      elements: str
    state:
      description: Whether the service runs after the task.
      type: str
      sample: started
    manager:
      description: The manager in charge.
      type: str
      sample: direct
    pid:
      description: The service's process, null when it does not run.
      type: int
    main_pid:
      description: Its parent (the launcher or the daemon), null when it does not run.
      type: int
    namespaces:
      description: The namespaces of its C(pid), as the service module returns them.
      type: dict
    landlock:
      description: What the kernel enforces of its landlock option, as the service module returns it.
      type: dict
    spec_path:
      description: The launch spec.
      type: str
    unit_path:
      description: The systemd unit, with manager systemd.
      type: str
    pid_file:
      description: The daemon's pid file, with manager direct.
      type: str
    log_file:
      description: The daemon's log file, with manager direct.
      type: str
    stop_timeout:
      description: The grace, in seconds from the stop signal to SIGKILL, that this run's stop of the running
        service gave it (or, in check mode, would give).
      type: float
      returned: when the task stopped or restarted the running service
    diff:
      description: This service's changes (its files and its namespace's), each a C(before)/C(after)
        pair with headers; the task's C(diff) holds them all, each header prefixed with the service's name.
      type: list
      elements: dict
      returned: in diff mode
    netns:
      description:
        - Its namespace's C(actions), C(netns), C(topology) and C(persist), as M(pyforkexec.isolation.netns)
          returns them.
      type: dict
      returned: for an entry with C(wiring)
    netns_left:
      description:
        - "The actions that removed the namespaces its service left, each C(netns NAME: ACTION)."
      type: list
      elements: str
      returned: when its service left a namespace
    failed:
      description: True when this service failed to apply (the task fails then).
      type: bool
      returned: on its failure
    msg:
      description: Why it failed, starting with the option or action, or with C(service NAME) for a start
        that failed its C(start_check).
      type: str
      returned: on its failure
    log:
      description: The daemon's log lines (C(manager=direct)), those since the start after a failed start.
      type: list
      elements: str
      returned: on its failure, with C(manager=direct)
    journal:
      description: The unit's journal since the start, when a start failed (C(manager=systemd)).
      type: list
      elements: str
      returned: when its start failed, with C(manager=systemd)
  sample:
    web1: {changed: true, actions: [write /etc/pyforkexec/web1.json, start], state: started,
           manager: direct, pid: 4242, main_pid: 4241, namespaces: {}, spec_path: /etc/pyforkexec/web1.json,
           pid_file: /run/pyforkexec/web1.pid, log_file: /var/log/pyforkexec/web1.log,
           netns: {actions: [create_netns web1],
                   netns: {name: web1, path: /run/netns/web1, inode: 4026532297}}}
"""

from ansible_collections.pyforkexec.isolation.plugins.module_utils import deps, quick_exit, services
from ansible_collections.pyforkexec.isolation.plugins.module_utils.arguments import AnsibleModule


def main():
    quick_exit.skip_final_collection()
    module = AnsibleModule(argument_spec=services.ARGSPEC, supports_check_mode=True)
    deps.require(module, "pyforkexec")
    if any(entry.get("wiring") is not None for entry in module.params["services"]):
        deps.require(module, "pyroute2")
    try:
        result, failure = services.run(module)
    except services.PlanError as e:
        module.fail_json(msg=str(e))
    if failure is not None:
        module.fail_json(msg=failure, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
