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
  - A change keeps what the old and the new topology have in common, even for a moment. A link gets its new
    addresses before it loses the old ones; the routes change after that, and a destination routed before
    and after always has a route. A route whose destination and metric stay (the kernel's key for a route;
    no metric is the kernel's own, 0 for IPv4, 1024 for IPv6) but whose gateway or dev changes is replaced
    at once (C(replace_route) in the actions); a route with a new destination or metric is added while the
    old one is still there, and only then are the routes that go deleted. The routes the kernel takes
    itself with a link or an address change (below) go first, and so do IPv6 routes through a link whose
    MTU goes below 1280; but when the new topology routes the same destination through a link both have
    (a veth removed, or left without IPv4, and its routes moved to the other one), the new route is put in
    place (replacing the old one when the key matches) before the old link goes, the address that reaches
    its gateway first. Not when the new route's link is made by the change (the destination is without a
    route from the old link's removal until it is added), nor when its gateway is reachable only after;
    an IPv4 address that is the first (primary) of its subnet on the link hands the subnet to one of its
    secondaries when it goes (C(promote_secondaries) is set on the link for that deletion and put back
    after; without it the kernel deletes the secondaries, and the routes through them, with the primary).
    The kernel removes a link's IPv4 routes with its last IPv4 address; those still listed are added back
    (the actions show both).
  - The host ends of the veths and the bridges the module creates carry an interface alias starting with
    C(pyforkexec.isolation), so that later runs and O(state=absent) know which links are theirs; so does the
    C(lo) of a namespace it creates. A namespace made otherwise (C(ip netns add)) is wired as asked, and
    O(state=absent) removes what the module made in it but leaves the namespace.
  - The planning and the kernel side live in the pyforkexec library (C(pyforkexec.netns.converge)), which
    the command C(pyforkexec netns up FILE) also runs; O(persist=true) uses it to bring the namespace back
    at boot, since C(/run/netns) and the links are gone after a reboot.
author:
  - pyforkexec developers (@pyforkexec)
requirements:
  - pyroute2 in that Python (the role C(pyforkexec.isolation.isolated_service) installs it)
  - Linux, as root
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - pyforkexec.isolation.install
options:
  name:
    description:
      - The namespace name (C(/run/netns/NAME)).
      - A C(/run/netns/NAME) that is there but is no network namespace (an ordinary file whose mount went
        away, or was made in another mount namespace; a directory) fails the task, whatever O(state), and is
        left as it is.
    type: str
    required: true
  state:
    description:
      - V(present) creates and wires the namespace.
      - V(absent) removes the veths made for it, the bridges made by this module that no other port uses, and
        the namespace if the module made it.
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
      - A bridge named by O(veths[].bridge) but not listed here is created without addresses when missing,
        and otherwise used as it is, its addresses (another namespace's gateway, say) left alone.
      - A bridge this module created that a veth of the namespace leaves (moved to another bridge, or no
        longer listed), and that has no other port then, is removed, as V(absent) removes the bridges it
        empties (it would otherwise stay on the host, with its addresses, for good).
      - A bridge the module creates gets a random locally administered MAC address of its own, which it keeps
        whatever ports come and go. The kernel would otherwise give it its smallest port's, and another one
        when that port goes, leaving every namespace on the bridge that cached the old one (for its gateway)
        unable to reach the host for up to a minute. A bridge made by an earlier version is pinned at the MAC
        it has (action C(pin_bridge_mac)); a bridge the module did not create is left as it is.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The bridge's interface name.
        type: str
        required: true
      addresses:
        description:
          - Its addresses with prefix length (V(10.0.0.1/24), V(fd00::1/64); without one the full length, as
            C(ip address add) takes it); others are removed, but those that another namespace declaring
            the bridge lists (each run records what its namespace declares, under C(/run/pyforkexec-netns));
            an address goes once no namespace on the bridge declares it. An O(bridges[].mtu) other than
            the one another namespace declares, or an IPv6 address it lists with another prefix length,
            fails the task before anything changes.
          - A new address whose subnet overlaps that of an address another host link has (V(eth0)'s, another
            bridge's) fails the task before anything changes, as C(podman network create) refuses a subnet
            already used on the host. The host would route the subnet to both links, and which one wins would
            change as either goes down or comes back. A /32 or /128 and link-local addresses route no subnet.
        type: list
        elements: str
        default: []
      mtu:
        description:
          - Its MTU (68 to 65535, at least 1280 with IPv6 addresses).
          - Unset, the kernel gives the bridge its smallest port's MTU.
        type: int
  veths:
    description:
      - Veth pairs between the namespace and the host.
      - For each address it adds inside the namespace, the module drops the host's neighbour entry for that
        address (unless it is permanent or noarp), and the links announce their addresses (C(arp_notify) and
        C(ndisc_notify) are 1 for each veth the module makes, and for C(all) in a namespace it creates), once
        more when their bridge port forwards. When the address was another link's until then (a namespace
        removed and made again, or another one taking its address), the host's and the other namespaces'
        entries still named the old link's MAC, and they would not reach the new one for up to a minute.
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
        description: MTU of both ends (68 to 65535, at least 1280 with IPv6 addresses or routes).
        type: int
      mac:
        description: MAC address of the end inside.
        type: str
      peer_mac:
        description: MAC address of the host end.
        type: str
      addresses:
        description:
          - Addresses of the end inside, with prefix length (without one the full length); others are removed.
          - An IPv6 address has one prefix length on a link.
          - An IPv6 address is added without duplicate address detection (C(nodad), as Docker adds a
            container's), so that what starts in the namespace right after can bind it; without that it
            stays tentative, and a bind fails with C(Cannot assign requested address), for a second or two.
            As for IPv4, the addresses declared are taken to be unique on their bridge.
        type: list
        elements: str
        default: []
      peer_addresses:
        description:
          - Addresses of the host end, with prefix length (without one the full length); others are removed.
          - A subnet another host link has is refused, as for a bridge's O(bridges[].addresses).
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
        description: Destination network (V(10.1.0.0/16); one with host bits set, V(10.1.0.1/16), is refused,
          as C(ip route) refuses it) or V(default).
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
  persist:
    description:
      - Whether the namespace comes back at boot.
      - V(true) with O(state=present) writes the options (all but O(state) and O(persist), defaults filled
        in) to C(/etc/pyforkexec/netns/NAME.json), atomically, mode 0644. When PID 1 is systemd it also
        installs the template unit C(/etc/systemd/system/pyforkexec-netns@.service), reloads systemd when
        that file changed, and enables and starts C(pyforkexec-netns@NAME.service). At boot that unit runs
        C(PYTHON -m pyforkexec netns up /etc/pyforkexec/netns/NAME.json) (PYTHON is the interpreter that
        ran this module), before C(network-pre.target); a unit of M(pyforkexec.isolation.service) whose
        O(pyforkexec.isolation.service#module:netns) is NAME wants it and starts after it.
      - Starting the instance here runs C(netns up), which finds nothing to change after the module, so a
        unit that cannot work fails this task rather than the next boot. Stopping it changes nothing.
      - V(false) removes what V(true) wrote, as O(state=absent) always does (the instance is stopped and
        disabled, the options file removed, and the template unit and the directory once no namespace is
        persisted any more). Unset leaves the persisted configuration as it is.
      - Without systemd as PID 1 only the options file is written; another init can run
        C(python -m pyforkexec netns up FILE) at boot.
    type: bool
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the namespace's topology before and after, as the kernel shows it (in check mode, as
        the kernel will show it, but for the MAC addresses it draws for new links).
      - With O(persist) set, or when persisted files are removed, it is a list of the topology's diff
        followed by one per file written or removed.
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

- name: The same, brought back at boot by pyforkexec-netns@web.service
  pyforkexec.isolation.netns:
    name: web
    bridges:
      - name: pfe-br0
        addresses: [10.42.0.1/24]
    veths:
      - {name: eth0, peer: veth-web, bridge: pfe-br0, addresses: [10.42.0.10/24]}
    gateway: [10.42.0.1]
    persist: true

- name: Run a service in it
  pyforkexec.isolation.service:
    name: web
    argv: [python3, -m, http.server, "8080"]
    netns: web

- name: Remove the namespace, its veths, the bridge once nothing else uses it, and its boot unit
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
rewired:
  description:
    - Whether an action changed the namespace itself (made or removed it, or changed its links, addresses,
      routes or sysctls), rather than only the host's side of its wiring (a bridge, its addresses, the host
      end of a veth).
    - A process running in the namespace sees only the first kind. Notify a restart on this rather than on
      C(changed) (the M(pyforkexec.isolation.services) module restarts a service so); a new address
      on a bridge that several namespaces share then restarts none of their services.
  returned: always
  type: bool
  sample: true
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
    routes: [default via 10.42.0.1 dev eth0]
    sysctls: {net.ipv4.ip_forward: "1"}
persist:
  description: Where the boot-time restoration lives (whether or not it is in place).
  returned: always
  type: dict
  contains:
    config:
      description: The options file that C(pyforkexec netns up) reads at boot.
      type: str
      sample: /etc/pyforkexec/netns/web.json
    unit:
      description: The systemd template unit; null when PID 1 is not systemd.
      type: str
      sample: /etc/systemd/system/pyforkexec-netns@.service
    instance:
      description: The unit that restores this namespace; null when PID 1 is not systemd.
      type: str
      sample: pyforkexec-netns@web.service
    enabled:
      description: Whether the namespace is persisted after the run (its options file exists).
      type: bool
      sample: true
"""

from ansible_collections.pyforkexec.isolation.plugins.module_utils import deps, quick_exit
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
from ansible_collections.pyforkexec.isolation.plugins.module_utils.arguments import AnsibleModule
from ansible_collections.pyforkexec.isolation.plugins.module_utils.files import Files
from ansible_collections.pyforkexec.isolation.plugins.module_utils.netns_args import ARGSPEC
from ansible_collections.pyforkexec.isolation.plugins.module_utils.netns_persist import persistence

__all__ = ["ARGSPEC", "main"]  # ARGSPEC: the role's controller-side check validates with it


def main():
    quick_exit.skip_final_collection()
    module = AnsibleModule(argument_spec=ARGSPEC, supports_check_mode=True)
    deps.require(module, "pyforkexec", "pyroute2")
    netns = deps.pyforkexec.netns
    params = module.params
    name = params["name"]
    present = params["state"] == "present"
    # The namespace and its options file under the lock of the collection's modules (the services
    # module persists namespaces too): between a converge and its write, another run's converge and
    # write of the same namespace put one run's options in the kernel and the other's in the file, which
    # the next boot then brought back. (Not the netns lock: the boot unit a persist starts waits for it.)
    try:
        with paths.converge_lock():
            try:
                done = netns.converge(name, params if present else None, check=module.check_mode)
            except netns.ModelError as e:
                module.fail_json(msg=str(e))
            except netns.ApplyError as e:
                undone = " (what this run had made of the namespace is removed again)" if e.undone else ""
                module.fail_json(msg=f"{e}{undone}", actions=e.actions, changed=bool(e.done))
            files = Files(module)
            try:
                persist = persistence(files, params, present, module.run_command)
            except (netns.OptionsError, paths.ServiceError, OSError) as e:
                module.fail_json(msg=f"persist: {e}", actions=done.actions + files.actions)
    except paths.LockWedged as e:  # (only the lock's wait raises it: before anything changed)
        module.fail_json(msg=str(e))
    actions = done.actions + files.actions
    result = dict(changed=bool(actions), actions=actions, rewired=done.rewired, netns=done.netns,
                  topology=done.after, persist=persist)
    if module._diff:
        header = f"netns {name}"
        diff = dict(before=done.before, after=done.after, before_header=header, after_header=header)
        result["diff"] = [diff, *files.diff] if params["persist"] is not None or files.diff else diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
