#!/usr/bin/python
# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
module: netns
short_description: A named network namespace with veth pairs, bridges, addresses, routes and sysctls
version_added: 0.1.0
description:
  - Manages a named network namespace C(/run/netns/NAME), the same kind C(ip netns add) makes
    (C(ip netns exec) and C(ip -n NAME) see it), wired with pyroute2.
  - Inside it, loopback is up, and each veth pair has one end inside and the other on the host, optionally
    enslaved to a host bridge that the module creates if it does not exist.
  - Addresses (IPv4 and IPv6, several per link), MTU and MAC addresses, routes with a default gateway,
    and C(net.*) sysctls inside the namespace are declarative; each run adds what is missing, changes what
    differs, and removes the addresses and routes that are not listed, so a second run reports
    V(changed=false).
  - The host ends of the veths and the bridges the module creates carry an interface alias starting with
    C(pyforkexec.isolation), so that later runs and O(state=absent) know which links are theirs.
author:
  - pyforkexec developers (@pyforkexec)
requirements:
  - pyroute2 on the managed host's Python (C(pip install pyroute2))
  - pyforkexec on the managed host's Python, for O(sysctls)
  - Linux, as root
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  name:
    description:
      - The namespace name (C(/run/netns/NAME)).
    type: str
    required: true
  state:
    description:
      - V(present) creates and wires the namespace.
      - V(absent) removes the veths made for it, the bridges made by this module that no other port uses, and
        the namespace.
    type: str
    choices: [present, absent]
    default: present
  loopback:
    description:
      - Bring C(lo) up inside the namespace.
    type: bool
    default: true
  bridges:
    description:
      - Host bridges, created if missing; an existing bridge is used as is (and never deleted).
      - A bridge named by O(veths[].bridge) but not listed here is created without addresses.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The bridge's interface name.
        type: str
        required: true
      addresses:
        description: Its addresses with prefix length (V(10.0.0.1/24), V(fd00::1/64)); others are removed.
        type: list
        elements: str
        default: []
      mtu:
        description: Its MTU.
        type: int
  veths:
    description:
      - Veth pairs between the namespace and the host.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The name of the end inside the namespace (V(eth0)).
        type: str
        required: true
      peer:
        description: The name of the end on the host.
        type: str
        required: true
      bridge:
        description: A host bridge to enslave the host end to.
        type: str
      mtu:
        description: MTU of both ends.
        type: int
      mac:
        description: MAC address of the end inside.
        type: str
      peer_mac:
        description: MAC address of the host end.
        type: str
      addresses:
        description: Addresses of the end inside, with prefix length; others are removed.
        type: list
        elements: str
        default: []
      peer_addresses:
        description: Addresses of the host end, with prefix length; others are removed.
        type: list
        elements: str
        default: []
  routes:
    description:
      - Routes inside the namespace. Routes added by hand or by other tools (protocol C(boot) or C(static))
        that are not listed here or in O(gateway) are removed; the kernel's own routes are left alone.
    type: list
    elements: dict
    default: []
    suboptions:
      dst:
        description: Destination network (V(10.1.0.0/16)) or V(default).
        type: str
        required: true
      gateway:
        description: The next hop.
        type: str
      dev:
        description: The link inside the namespace (required without O(routes[].gateway)).
        type: str
      metric:
        description: Route metric.
        type: int
  gateway:
    description:
      - Default gateways inside the namespace, at most one IPv4 and one IPv6 (a shorthand for O(routes)
        with V(dst=default)).
    type: list
    elements: str
    default: []
  sysctls:
    description:
      - C(net.*) sysctls set inside the namespace (V(net.ipv4.ip_forward=1)); other sysctls are global and
        are refused.
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows the namespace's topology before and after.
  platform:
    platforms: linux
seealso:
  - module: pyforkexec.isolation.forkexec
  - module: pyforkexec.isolation.namespace_info
  - name: ip-netns(8)
    description: The iproute2 tool that sees the same namespaces.
    link: https://man7.org/linux/man-pages/man8/ip-netns.8.html
"""

EXAMPLES = r"""
- name: A namespace behind a host bridge, routed through it
  pyforkexec.isolation.netns:
    name: web
    bridges:
      - name: pfe-br0
        addresses: [10.42.0.1/24, "fd42::1/64"]
    veths:
      - name: eth0
        peer: veth-web
        bridge: pfe-br0
        mtu: 1400
        addresses: [10.42.0.10/24, "fd42::10/64"]
    gateway: [10.42.0.1, "fd42::1"]
    sysctls:
      net.ipv4.ip_forward: 1

- name: Run a service in it
  pyforkexec.isolation.service:
    name: web
    argv: [python3, -m, http.server, "8080"]
    netns: web

- name: Remove the namespace, its veths, and the bridge once nothing else uses it
  pyforkexec.isolation.netns:
    name: web
    state: absent
"""

RETURN = r"""
netns:
  description: The namespace.
  returned: always
  type: dict
  contains:
    name:
      description: Its name.
      type: str
      sample: web
    path:
      description:
        - Its bind mount, for C(setns), C(nsenter --net=PATH) or
          O(pyforkexec.isolation.forkexec#module:netns).
      type: str
      sample: /run/netns/web
    inode:
      description: Its inode (as C(ls -i /run/netns/web) and C(/proc/PID/ns/net) show); null once removed.
      type: int
      sample: 4026532297
actions:
  description: What the module did (or would do in check mode), one line per change.
  returned: always
  type: list
  elements: str
  sample: [create_netns web, link_up ns lo, create_veth eth0 veth-web, add_addr ns eth0 10.42.0.10/24]
topology:
  description: The topology after the run, as the diff shows it.
  returned: always
  type: dict
  sample:
    netns: web
    loopback_up: true
    bridges: {pfe-br0: {mtu: 1500, up: true, addresses: [10.42.0.1/24]}}
    veths:
      eth0: {peer: veth-web, bridge: pfe-br0, mtu: 1400, mac: "02:42:0a:2a:00:0a",
             peer_mac: "6e:1b:22:8c:1a:01", addresses: [10.42.0.10/24], peer_addresses: [], up: true}
    routes: [default via 10.42.0.1]
    sysctls: {net.ipv4.ip_forward: "1"}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pyforkexec.isolation.plugins.module_utils import deps, netns_kernel, nsinfo
from ansible_collections.pyforkexec.isolation.plugins.module_utils.netns_model import (
    ModelError,
    describe,
    desired,
    plan_absent,
    plan_present,
    simulate,
    view,
)

ARGSPEC = dict(
    name=dict(type="str", required=True),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    loopback=dict(type="bool", default=True),
    bridges=dict(type="list", elements="dict", default=[], options=dict(
        name=dict(type="str", required=True),
        addresses=dict(type="list", elements="str", default=[]),
        mtu=dict(type="int"),
    )),
    veths=dict(type="list", elements="dict", default=[], options=dict(
        name=dict(type="str", required=True),
        peer=dict(type="str", required=True),
        bridge=dict(type="str"),
        mtu=dict(type="int"),
        mac=dict(type="str"),
        peer_mac=dict(type="str"),
        addresses=dict(type="list", elements="str", default=[]),
        peer_addresses=dict(type="list", elements="str", default=[]),
    )),
    routes=dict(type="list", elements="dict", default=[], options=dict(
        dst=dict(type="str", required=True),
        gateway=dict(type="str"),
        dev=dict(type="str"),
        metric=dict(type="int"),
    )),
    gateway=dict(type="list", elements="str", default=[]),
    sysctls=dict(type="dict", default={}),
)


def main():
    module = AnsibleModule(argument_spec=ARGSPEC, supports_check_mode=True)
    deps.require(module, "pyroute2")
    params = module.params
    if params["sysctls"]:
        deps.require(module, "pyforkexec", reason="to set sysctls inside the namespace")
    name = params["name"]
    present = params["state"] == "present"
    try:
        wanted = desired(params) if present else None
        observed = netns_kernel.observe(name, wanted)
        actions = plan_present(observed, wanted) if present else plan_absent(observed, name)
    except ModelError as e:
        module.fail_json(msg=str(e))
    before = view(observed)
    if actions and not module.check_mode:
        try:
            netns_kernel.apply(name, actions)
        except netns_kernel.ApplyError as e:
            module.fail_json(msg=str(e), actions=[describe(a) for a in actions])
        final = netns_kernel.observe(name, wanted)
    elif present:
        final = simulate(observed, wanted, actions) if actions else observed
    else:
        final = dict(observed, exists=False)
    after = view(final)
    path = netns_kernel.netns_path(name)
    result = dict(
        changed=bool(actions),
        actions=[describe(a) for a in actions],
        netns=dict(name=name, path=path, inode=nsinfo.inode(path) if final["exists"] else None),
        topology=after,
    )
    if module._diff:
        header = f"netns {name}"
        result["diff"] = dict(before=before, after=after, before_header=header, after_header=header)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
