#!/usr/bin/python
# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
module: namespace_info
short_description: Facts about the Linux namespaces of a process, a pyforkexec service or a named netns
version_added: 0.1.0
description:
  - Reports the namespaces of a process (O(pid)), of a service of M(pyforkexec.isolation.service)
    (O(service)), or a named network namespace (O(netns)), the inode of each and whether it is the host's,
    with the process's uid and gid maps, hostname and cgroup, and the links, addresses and routes of its
    network namespace.
  - Values that only exist inside a namespace (the hostname of a UTS namespace, the links of a network
    namespace) are read by a short-lived child that joins it.
  - "Landlock (RV(landlock)): the kernel exposes no process's Landlock domain (Linux 6.1 to 6.18 -
    C(/proc/PID/status) has no Landlock line and C(/proc/PID/attr/) no C(landlock) directory; from Linux
    6.15 a domain only shows in audit records of what it denies). What is observable is reported as such -
    the kernel's Landlock ABI and the process's C(NoNewPrivs), which a Landlock domain requires (it does
    not prove one). For O(service), the policy its spec document asks for and what this kernel enforces of
    it, which is what the service was started with unless the document changed after it started
    (RV(landlock.spec_newer_than_process))."
author:
  - pyforkexec developers (@pyforkexec)
requirements:
  - pyroute2 in that Python, for O(net=true)
  - Linux, as root (or the owner of the process)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - pyforkexec.isolation.install
options:
  pid:
    description:
      - A process id; a thread's id (not its process's) is refused, naming the process.
      - A process that ends while it is described fails the task (what was read may be partly that of
        another process, given its number since).
    type: int
  service:
    description:
      - The name of a service of M(pyforkexec.isolation.service); its process is the one described.
      - A process its launcher or daemon is still setting up (just after a start or a restart, before it
        has executed the service's program) is not yet in all its namespaces, nor has its hostname; it is
        described once it has executed the program, waited for up to 5 seconds, else the task fails.
    type: str
  netns:
    description:
      - The name of a network namespace in C(/run/netns).
    type: str
  manager:
    description:
      - Where to look O(service) up; V(auto) tries the pyforkexec daemon's pid file, then systemd.
    type: str
    choices: [auto, systemd, direct]
    default: auto
  net:
    description:
      - Report the links, addresses and routes of the network namespace.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: linux
seealso:
  - module: pyforkexec.isolation.service
  - module: pyforkexec.isolation.netns
"""

EXAMPLES = r"""
- name: The namespaces of the service "web"
  pyforkexec.isolation.namespace_info:
    service: web
  register: web

- name: Its PID and network namespaces are its own
  ansible.builtin.assert:
    that:
      - not web.namespaces.pid.same_as_host
      - not web.namespaces.net.same_as_host
      - web.hostname == "web"

- name: The addresses of a named network namespace
  pyforkexec.isolation.namespace_info:
    netns: web
  register: ns
"""

RETURN = r"""
pid:
  description: The process described; null for O(netns).
  returned: always
  type: int
  sample: 4242
namespaces:
  description:
    - Each namespace by type (only V(net) for O(netns)), with its inode, the kernel's id of it (C(id), never
      given to another namespace, unlike the inode number; null on a kernel without namespace ids, before
      Linux 6.18), path and whether it is the host's.
    - A later join of one can be pinned by C(id) and RV(process_start) (pyforkexec's C(SetNS.ns_id) and
      C(SetNS.process_start)); the collection's own O(pyforkexec.isolation.service#module:join) pins itself.
  returned: always
  type: dict
  sample:
    net: {inode: 4026532297, id: 1610930, path: /proc/4242/ns/net, same_as_host: false}
    uts: {inode: 4026531838, id: 1, path: /proc/4242/ns/uts, same_as_host: true}
process_start:
  description:
    - The described process's start time (C(/proc/PID/stat) field 22, clock ticks after boot), which a process
      that takes its pid later does not have; null for O(netns).
  returned: always
  type: int
  sample: 5798571
uid_map:
  description: The process's uid map (C(/proc/PID/uid_map)).
  returned: when describing a process
  type: list
  elements: dict
  sample: [{container_id: 0, host_id: 0, size: 4294967295}]
gid_map:
  description: The process's gid map.
  returned: when describing a process
  type: list
  elements: dict
  sample: [{container_id: 0, host_id: 0, size: 4294967295}]
hostname:
  description: The hostname in the process's UTS namespace.
  returned: when describing a process
  type: str
  sample: web
cgroup:
  description: The process's cgroup v2 path, null without cgroup v2.
  returned: when describing a process
  type: str
  sample: /system.slice/pyforkexec-web.service
landlock:
  description:
    - The process's Landlock status, as far as it can be known from outside it (see the description).
  returned: when describing a process
  type: dict
  contains:
    observable:
      description: Whether the kernel shows the process's Landlock domain; always false on the kernels known.
      type: bool
      sample: false
    abi:
      description:
        - This kernel's Landlock ABI version (0 - no Landlock).
        - V(null) when the kernel would not tell this module's process (a seccomp filter refusing
          C(landlock_create_ruleset), as a container's may).
      type: int
      sample: 7
    no_new_privs:
      description: C(NoNewPrivs) of C(/proc/PID/status) (needed by a Landlock domain; not a proof of one).
      type: bool
      sample: true
    policy:
      description:
        - For O(service), the O(pyforkexec.isolation.service#module:landlock) policy of its spec document
          (null without one); null for O(pid).
      type: dict
      sample: {paths: [{path: /usr, access: [read, execute]}], ports: [], scopes: [], mode: best_effort}
    mode:
      description: The policy's mode.
      returned: with a policy
      type: str
      sample: best_effort
    enforced:
      description: Whether this kernel enforces any of the policy.
      returned: with a policy
      type: bool
      sample: true
    dropped:
      description: The rights of the policy this kernel cannot enforce (in best-effort mode, not restricted).
      returned: with a policy
      type: list
      elements: str
      sample: ["landlock.ports[0].access: bind needs Landlock ABI 4, this kernel has 2"]
    spec_path:
      description: The spec document the policy was read from.
      returned: for O(service)
      type: str
      sample: /etc/pyforkexec/web.json
    spec_newer_than_process:
      description: Whether that document was written after the process started (the policy may not be its).
      returned: for O(service)
      type: bool
      sample: false
net:
  description: The network namespace's links, addresses (all links) and routes added to its main table.
  returned: when O(net=true)
  type: dict
  sample:
    links:
      lo: {kind: null, up: true, mtu: 65536, mac: "00:00:00:00:00:00", master: null, addresses: [127.0.0.1/8]}
    addresses: [127.0.0.1/8, "::1/128"]
    routes: [{dst: default, gateway: 10.42.0.1, dev: eth0, metric: null}]
"""

import os
import time

from ansible_collections.pyforkexec.isolation.plugins.module_utils import (
    deps,
    landlock_status,
    ns_target,
    pidfds,
    quick_exit,
)
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
from ansible_collections.pyforkexec.isolation.plugins.module_utils.arguments import AnsibleModule
from ansible_collections.pyforkexec.isolation.plugins.module_utils.isolation import (
    IsolationError,
)

ARGSPEC = dict(
    pid=dict(type="int"),
    service=dict(type="str"),
    netns=dict(type="str"),
    manager=dict(type="str", default="auto", choices=["auto", "systemd", "direct"]),
    net=dict(type="bool", default=True),
)


def describe_netns(name, with_net):
    netns_kernel, nsinfo = deps.pyforkexec.netns.kernel, deps.pyforkexec.nsinfo
    if not name:
        raise paths.ServiceError("netns: is empty: give the name of a network namespace of /run/netns")
    if "/" in name or name in (".", ".."):
        raise paths.ServiceError(f"netns: {name!r} is not the name of an entry of /run/netns (it has a "
                                 "'/', or is '.' or '..')")
    path = netns_kernel.netns_path(name)
    # Opened once, and read through that open file: a name removed and made again (ip netns delete,
    # add) between two reads by path gave one namespace's inode and another's links and routes.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        raise paths.ServiceError(f"netns: no network namespace {path}") from None
    except OSError as e:
        raise paths.ServiceError(f"netns: {path}: {e.strerror}") from None
    try:
        kind = nsinfo.fd_nstype(fd)
        if not kind:  # a file whose mount went away, or made in another mount namespace
            raise paths.ServiceError(f"netns: {path} is not a namespace (a /proc/PID/ns/* file, or a bind "
                                     "mount of one)")
        if kind != deps.pyforkexec.CLONE_NEWNET:
            raise paths.ServiceError(f"netns: {path} is not a network namespace")
        ino = os.fstat(fd).st_ino
        net = dict(inode=ino, id=deps.pyforkexec.ns_pins.ns_id(fd), path=path,
                   same_as_host=ino == nsinfo.host_inode("net"))
        facts = dict(pid=None, process_start=None, namespaces=dict(net=net))
        if with_net:
            facts["net"] = netns_kernel.net_view_of(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
    return facts


SETTING_UP_WAIT = 5.0  # seconds a service's process is given to execute its program (a restart's)


def wait_for_its_program(pid, option, pidfd=None):
    """Until process ``pid``, a service's (pinned by ``pidfd``, or None), has executed its program:
    before that it is its launcher's copy being set up, maybe not yet in all its namespaces, without its
    hostname (read then, a restarted service showed the host's). ServiceError when it ends, or stays so
    for SETTING_UP_WAIT seconds."""
    deadline = time.monotonic() + SETTING_UP_WAIT
    try:
        while ns_target.not_exec_yet(pid, pidfd):
            if time.monotonic() > deadline:
                raise paths.ServiceError(f"{option}: process {pid} has not started the service's program "
                                         f"{SETTING_UP_WAIT:g}s after it was found: its launcher is still "
                                         "setting it up")
            time.sleep(0.01)
    except ns_target.TargetGone as e:
        raise paths.ServiceError(f"{option}: {e}") from None


def describe_process(pid, option, service, with_net, confirm=None):
    """The facts of process ``pid`` (given as ``option``), read from /proc one after the other: it is
    pinned meanwhile (its pidfd, and its start time), and if it ended before the last read, what was
    read may be partly another process's, given its number since: ServiceError, naming it.

    ``confirm``: for a pid looked up (a service's), a function that looks it up again once it is
    pinned: the pid may have gone to another process between the look-up and the pin."""
    try:  # (None on a kernel without pidfds: its start time alone, below)
        fd = ns_target.open_pidfd(pid)
    except ns_target.TargetGone as e:  # no such process, or a thread's id
        raise paths.ServiceError(f"{option}: {e}") from None
    try:
        if confirm is not None and confirm() != pid:
            raise paths.ServiceError(f"{option}: process {pid} ended while it was looked up (the service "
                                     "restarted?): its number may be another process's")
        # Read in /proc by the number it gives the process: a pid (a service's daemon's, or given) is
        # this PID namespace's, which /proc may number otherwise (a container's host's /proc).
        where = pidfds.in_proc(pid, fd)
        if where is None or not deps.pyforkexec.nsinfo.pid_exists(where):
            raise paths.ServiceError(f"{option}: no process {pid}")
        if option == "service":
            wait_for_its_program(where, option, fd)
        try:
            started = ns_target.stat_field(where, 19)
            facts = dict(deps.pyforkexec.nsinfo.describe(where, with_net), pid=pid,
                         process_start=int(started))
            facts["landlock"] = landlock_status.status(where, service)
        except (FileNotFoundError, ns_target.TargetGone) as e:  # ended (a zombie's namespaces are gone)
            if ns_target.main_thread_gone(where, fd):
                raise paths.ServiceError(f"{option}: process {pid}: {ns_target.MAIN_THREAD_GONE}") from None
            said = f"{e.filename}: {e.strerror}" if isinstance(e, FileNotFoundError) else str(e)
            raise paths.ServiceError(f"{option}: process {pid} has ended, its namespaces are gone "
                                     f"({said})") from None
        if ns_target.has_ended(fd, where, started):
            raise paths.ServiceError(f"{option}: process {pid} ended while it was described: what was "
                                     "read may be partly another process's, given its number since")
        return facts
    finally:
        if fd is not None:
            os.close(fd)


def main():
    quick_exit.skip_final_collection()
    module = AnsibleModule(
        argument_spec=ARGSPEC,
        mutually_exclusive=[("pid", "service", "netns")],
        required_one_of=[("pid", "service", "netns")],
        supports_check_mode=True,
    )
    params = module.params
    deps.require(module, "pyforkexec", reason="to join namespaces")
    if params["net"]:
        deps.require(module, "pyroute2", reason="to read links, addresses and routes (or set net: false)")
    with_net = deps.pyforkexec.netns.kernel.net_view_of if params["net"] else None
    try:
        if all(params[option] is None for option in ("pid", "service", "netns")):
            # Ansible's required_one_of counts an option given as null (a variable that came out null)
            # as given: it was read as a service named None.
            raise paths.ServiceError("pid, service or netns: one of them is needed, with a value (null is "
                                     "none)")
        if params["netns"] is not None:
            facts = describe_netns(params["netns"], params["net"])
        else:
            option = "pid" if params["pid"] is not None else "service"
            if option == "pid" and params["pid"] <= 0:
                raise paths.ServiceError(f"pid: {params['pid']} is not a process id (1 or more)")
            if option == "pid" and params["pid"] > paths.PID_MAX:
                raise paths.ServiceError(f"pid: {params['pid']} is not a process id (at most "
                                         f"{paths.PID_MAX}, the kernel's pid_max limit)")
            if option == "service":  # (a name of digits alone would be taken for a pid)
                paths.check_name(params["service"], "service")
            pid = paths.resolve_pid(params[option], params["manager"], module.run_command)
            confirm = None if option == "pid" else (
                lambda: paths.resolve_pid(params[option], params["manager"], module.run_command))
            facts = describe_process(pid, option, params["service"], with_net, confirm)
    except (paths.ServiceError, IsolationError, OSError, RuntimeError, ValueError) as e:
        module.fail_json(msg=str(e))
    module.exit_json(changed=False, **facts)


if __name__ == "__main__":
    main()
