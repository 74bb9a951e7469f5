#!/usr/bin/python
# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
module: service
short_description: A long-running service in Linux namespaces, under systemd or a pyforkexec daemon
version_added: 0.1.0
description:
  - Declares a namespaced service on the managed host. The module writes the service's launch spec,
    C(/etc/pyforkexec/NAME.json), the document C(pyforkexec exec --spec) runs, built from O(argv), O(user),
    O(group), O(env), O(chdir) and the isolation options, and validated by pyforkexec before anything starts.
  - With O(manager=systemd) it also writes the unit C(/etc/systemd/system/pyforkexec-NAME.service), rendered
    with jinja2, whose C(ExecStart) is that launcher; reloads systemd; and starts, stops, enables the unit.
    The O(cgroup) limits become the unit's C(MemoryMax=), C(MemorySwapMax=), C(CPUQuota=) (with
    C(CPUQuotaPeriodSec=) for a period other than 100 ms, systemd 242 or later), C(CPUWeight=) and
    C(TasksMax=). systemd skips a limit it cannot write in cgroup v2 with a log line only, so each is
    refused first, on the managed host and in check mode too, nothing written or started, unless systemd
    runs in its unified mode (cgroup2 mounted at C(/sys/fs/cgroup), not a hybrid or legacy cgroup v1 layout)
    and its root offers the limit's controller (C(cgroup.controllers)); the failure names the option and the
    controller.
  - With O(manager=direct), for hosts whose PID 1 is not systemd (a container, a CI runner), it runs
    C(python -m pyforkexec.daemon) detached instead, with the pid file C(/run/pyforkexec/NAME.pid), the log
    file C(/var/log/pyforkexec/NAME.log) and the O(restart) policy. One daemon runs per service, found as
    the process holding an abstract unix socket named after its pid file, whatever became of the pid file
    (removed by hand, C(/run) cleaned). That name held by another user's process (any local user can bind
    an abstract name) is not the daemon and keeps none from starting; the daemon starts without it, says so
    in its log, and is found by its pid file's lock for that run. The O(cgroup) limits apply to a cgroup
    C(pyforkexec/NAME) (or O(cgroup.path)), the service's own. Once its process ends, whatever it left in
    the cgroup is killed and the cgroup removed, as systemd ends a unit. So a O(cgroup.path) that another
    service's own cgroup is, is inside or holds, or that holds processes the service did not start, fails
    the task before anything changes.
    Without O(cgroup) the service still runs in its own cgroup C(pyforkexec/NAME), with no limits, wherever
    the host has a cgroup v2 hierarchy the module may write (a hybrid layout's C(/sys/fs/cgroup/unified)
    too), so that a stop also ends what it started and detached (a double fork, C(setsid)); on a host
    without one the stop ends the service's process group only.
  - A second run with the same arguments changes nothing; a changed argument rewrites the spec (and unit)
    and restarts the service.
  - A running service whose joined namespace, O(netns) or a O(join) by path, was made again under its path
    since the service started (C(ip netns del) and C(add), the M(pyforkexec.isolation.netns) module's
    V(absent) then V(present)) runs in the old one, which no path names any more; the run restarts it into
    the one the path names now (the C(joined namespaces) entry of C(--diff)), in check mode says it would.
  - "A bind holds the file it was made from, and the kernel takes a bind away once the file it is mounted
    on is removed. So a file bound into the service at its start (its own C(/etc/hosts) and
    C(/etc/resolv.conf), the files of C(/etc/netns/NETNS/)) replaced on the host by a rename (an editor,
    M(ansible.builtin.copy), a DHCP client rewriting C(/etc/resolv.conf)) leaves the service reading the old
    text, or the host's file in place of its own. The next run finds what the service sees there other than
    the file bound, and restarts it (the C(bound files) entry of C(--diff)); until then it reads that."
author:
  - pyforkexec developers (@pyforkexec)
requirements:
  - jinja2 in that Python, for O(manager=systemd)
  - Linux, as root
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - pyforkexec.isolation.install
  - pyforkexec.isolation.isolation
options:
  name:
    description:
      - The service name (letters, digits, V(_), V(.), V(@), V(-)).
    type: str
    required: true
  argv:
    description:
      - The command and its arguments. C(argv[0]) is looked up in C(PATH) when the service starts, unless it
        contains C(/); with O(rootfs), give the path inside the new root.
      - Required unless O(state=absent) or O(state=stopped).
    type: list
    elements: str
  user:
    description:
      - The user the service runs as, a name or id, with its supplementary groups (as systemd's C(User=)).
      - Mutually exclusive with O(credential).
    type: str
  group:
    description:
      - The group the service runs as; by default the primary group of O(user).
    type: str
  env:
    description:
      - The service's environment. Without it the service gets the launcher's (C(PATH) and C(LANG)).
    type: dict
  chdir:
    description:
      - The service's working directory, an absolute path (from the new root, with O(rootfs)).
    type: path
  restart:
    description:
      - When the service is started again after it exited, as systemd's C(Restart=). V(on-failure)
        restarts it after an exit status other than 0 or a death by a signal other than C(SIGHUP),
        C(SIGINT), C(SIGTERM) and C(SIGPIPE) (clean ends, as for systemd).
    type: str
    choices: [always, on-failure, "no"]
    default: on-failure
  stop_timeout:
    description:
      - Seconds between the stop signal (O(stop_signal), SIGTERM by default) and SIGKILL when the service
        stops (its daemon's C(--stop-timeout), its unit's C(TimeoutStopSec=)); V(10) when the service is
        started without it.
      - "With O(state=stopped) or O(state=absent) it is the grace this stop gives (RV(stop_timeout)):
        without it, the one the service runs with, as C(systemctl stop) uses the unit's in force. With
        O(manager=direct) the module kills the service (SIGKILL, with its process group) when a shorter
        one than its daemon's ends, and the daemon a few seconds later if it lingers; a longer one than
        its daemon's cannot be given (the daemon kills the service first) and is refused before
        anything stops: restart the service with it first. Under systemd a value other than the loaded
        unit's is refused likewise, unless O(state=stopped) rewrites the unit with it (O(argv) given)."
      - A restart stops the running daemon with the new value when it is shorter, else with its own.
    type: int
  stop_signal:
    description:
      - The signal a stop sends the service, SIGKILL following it after O(stop_timeout) (its daemon's
        C(--stop-signal), its unit's C(KillSignal=); systemd's C(KillSignal=), podman's C(--stop-signal),
        docker's C(STOPSIGNAL)); C(SIGCONT) follows it too, for a service stopped by C(SIGSTOP), as systemd
        does.
      - "A service that is PID 1 of its own PID namespace (O(namespaces) with V(pid)) never gets a signal it
        does not handle: the kernel drops it. One that ends on C(SIGINT) only (C(python3 -m http.server),
        which stops on its C(KeyboardInterrupt)) waits out the whole O(stop_timeout) at each stop, removal
        and restart with the default C(SIGTERM); give it V(SIGINT)."
      - "One of C(SIGTERM) (the default), C(SIGINT), C(SIGQUIT), C(SIGHUP), C(SIGUSR1) and C(SIGUSR2), the
        signals a service's launcher under systemd passes on to it (C(KillSignal=) goes to the unit's main
        process, the launcher), under either manager alike; by name, with or without C(SIG), in any case
        (V(SIGINT), V(INT), V(int)), or by number (V(2)). Any other value fails the task before anything
        changes. C(SIGKILL) is refused: it is what follows the stop signal (give a short O(stop_timeout))."
      - "Changing it restarts a running service, as O(stop_timeout) does (its daemon's arguments, its unit
        file; the C(daemon) entry of C(--diff) shows the change with O(manager=direct))."
      - "With O(state=stopped) or O(state=absent), a value other than the one the service runs with (its
        daemon's, the loaded unit's) is refused before anything stops: the stop sends that one. Under systemd
        O(state=stopped) with O(argv) rewrites the unit with it first."
    type: str
  restart_sec:
    description:
      - Seconds between the end of the service and its restart (O(restart)), as systemd's C(RestartSec=)
        and with its default. Under either manager, more than 5 starts within 10 seconds stop the
        restarts (systemd's start limit, which the pyforkexec daemon applies too).
    type: float
    default: 0.1
  start_check:
    description:
      - How a start by this task is checked before the task reports the service started.
      - "First its process must have execed. Under systemd the unit is C(Type=notify) and the launcher sends
        C(READY=1) only after the service's C(execve), so C(systemctl start) waits for it and fails with
        the spawn (a missing program, a refused mount or id map, a strict O(landlock) policy...). The
        pyforkexec daemon likewise answers the module only after the C(execve)."
      - "Then the service must stay up for O(start_check) seconds (a container health check's start
        period, systemd's C(ExecStartPost=) wait). Its process and its parent (the launcher, or the
        daemon) are watched, and either ending within the window fails the start at once; at its end the
        parent must be the same, with systemd's C(NRestarts) unchanged. A service that exits within the
        window fails its start even when O(restart) would start it again."
      - A start that fails fails the task, with a message naming the service and the cause (the
        launcher's error from the journal and the unit's result and exit status, or the daemon's log
        line and the service's last output; RV(journal) or RV(log) hold the lines), and the service is
        stopped, so that its restart policy does not go on retrying it.
      - V(0) skips the window (for a service that is meant to exit quickly); the C(execve) is still
        waited for. Only starts and restarts made by this task are checked, and never in check mode.
    type: float
    default: 0.5
  description:
    description:
      - The unit's C(Description=) (O(manager=systemd)).
      - Nothing shows it with O(manager=direct), where it is ignored with a warning (as O(enabled)).
    type: str
  state:
    description:
      - V(started) and V(stopped) are idempotent; V(restarted) always restarts it.
      - V(absent) stops the service and removes its spec, unit, pid file and log, and its own C(/etc/hosts)
        and C(/etc/resolv.conf) (O(etc_hosts), O(dns)).
    type: str
    choices: [started, stopped, restarted, absent]
    default: started
  enabled:
    description:
      - Whether the unit starts at boot (O(manager=systemd)).
      - Nothing starts services at boot with O(manager=direct).
    type: bool
  manager:
    description:
      - V(auto) picks V(systemd) when PID 1 is systemd, else V(direct) (and says so in a warning).
    type: str
    choices: [auto, systemd, direct]
    default: auto
  etc_hosts:
    description:
      - "The service's own C(/etc/hosts), with these entries besides its generated lines (podman's
        C(--add-host), C(podman_container)'s C(etc_hosts)): a dict of host names to an address or a list
        of addresses (V({db.internal: 10.0.0.5, cache: [10.0.0.6, fd00::6]})). V({}) asks for the generated
        file alone."
      - "The generated file has C(localhost) on C(127.0.0.1) and C(::1), then the service's hostname
        (O(hostname), else the host's) on its own addresses, those of its C(wiring) in the
        M(pyforkexec.isolation.services) module, else on C(127.0.1.1); then the entries, by name. An entry
        of C(localhost) or of the hostname stands in place of its generated line (the resolver answers a
        name from its first line). Looking up its own name never asks a resolver its network namespace may
        not reach (Python's C(socket.getfqdn()), which C(http.server) calls at its bind, waited out the
        resolver's timeouts)."
      - "The module writes it to C(/etc/pyforkexec/NAME.hosts), atomically, and the spec bind-mounts it
        read-only over C(/etc/hosts) (inside O(rootfs) with one) after the service's O(mounts), in its own
        mount namespace: it needs one (V(mount) in O(namespaces), or C(CLONE_NEWNS) in O(cloneflags) or
        O(unshareflags)), not one copied from a mount namespace of O(join) (what the service reads there is
        that namespace's, which the run does not look into: refused, and the default left out), and
        C(/etc/hosts) must be a file where the service sees it (its symlinks followed inside its root).
        With O(mount_propagation) V(shared) or V(unchanged), where this host's mount of it is shared (as
        systemd makes C(/)), the bind would be made on the host's too: refused, and the default left out.
        A change of it is a change of the service (its diff, a restart); it is removed
        with the service, or once no option asks for it. O(mounts) may not mount C(/etc/hosts) too, nor a
        directory above it or above where its links lead (C(/etc); a tmpfs on C(/run) where it is a link
        into C(/run)): what the service has there is that mount's, which the host cannot tell."
      - "A service that the M(pyforkexec.isolation.services) module wires into its own network namespace
        (C(wiring)), with a mount namespace of its own, gets the generated file without this option (as
        podman gives each container one); O(no_hosts) leaves it out. A mount of C(/etc/hosts) in O(mounts),
        or of a directory above it or above where its links lead (C(/etc)), or a root without the file,
        leaves it out too."
      - Names are dot-separated labels of letters, digits, V(-) and V(_) (not starting with V(-)), 63
        characters each and 253 in all, each once whatever its case (the resolver reads them without
        case), the last label no number (V(5) or V(1.2.3.4) read as addresses and are never looked up);
        addresses are IPv4 or IPv6, without a zone. Any other value fails the task before anything
        changes, naming the entry.
    type: dict
  no_hosts:
    description:
      - "No generated C(/etc/hosts) (podman's C(--no-hosts)): the service reads the one of its root (the
        host's without O(rootfs)), even when it is wired into its own network namespace. Refused with
        O(etc_hosts)."
    type: bool
    default: false
  dns:
    description:
      - "The name servers of the service's own C(/etc/resolv.conf) (its C(nameserver) lines; podman's
        C(--dns)), at most 3 (the resolver reads no more), IPv4 or IPv6 addresses (an IPv6 one may have a
        zone: an interface name or index), each once (V(::1) and V(0::1) are one). V([]) gives none: the
        resolver then asks C(127.0.0.1) of the service's own network namespace, which fails at once where
        nothing listens."
      - "With O(dns), O(dns_search) or O(dns_options), the module writes the service's
        C(/etc/resolv.conf) to C(/etc/pyforkexec/NAME.resolv.conf) and the spec bind-mounts it read-only
        over the file the service reads as C(/etc/resolv.conf), its symlinks followed inside its root
        (C(/run/systemd/resolve/stub-resolv.conf) where it is systemd-resolved's link), after its
        O(mounts), as O(etc_hosts) is; it needs a mount namespace of the service's own likewise. A kind of
        line none of the three options gives is the host's, as this run reads the host's
        C(/etc/resolv.conf): its change there rewrites the file, and restarts the service, at the next run.
        In a network namespace other than the host's (V(net) in O(namespaces), C(CLONE_NEWNET), O(netns)),
        the host's loopback name servers (systemd-resolved's C(127.0.0.53)) are left out, as podman does:
        that namespace's loopback has no such server; with only those, O(dns) must be given."
    type: list
    elements: str
  dns_search:
    description:
      - "The search domains of the service's own C(/etc/resolv.conf) (its C(search) line; podman's
        C(--dns-search)), each once whatever its case; V([.]) or V([]) for none (written C(search .), as
        systemd-resolved writes it: with no C(search) line glibc would search the hostname's domain). See
        O(dns)."
    type: list
    elements: str
  dns_options:
    description:
      - "The resolver options of the service's own C(/etc/resolv.conf) (its C(options) line; podman's
        C(--dns-option), C(podman_container)'s C(dns_option)): words of C(resolv.conf(5)), each once
        (V(rotate), V(edns0), V(single-request), V(use-vc), V(trust-ad)...), V(ndots:N) (0 to 15),
        V(timeout:N) (1 to 30), V(attempts:N) (1 to 5); V([]) for none. See O(dns)."
    type: list
    elements: str
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows the spec and unit files, its own C(/etc/hosts) and C(/etc/resolv.conf), and the
      service's state.
  platform:
    platforms: linux
notes:
  - The service's own process is the child of the launcher (systemd's C(MainPID)) or of the daemon; RV(pid)
    is that process, RV(main_pid) its parent.
  - The launcher and the daemon run with the Python that runs this module (C(ansible_python_interpreter)).
  - A service must stay in the foreground (a program that forks into the background and exits ends its
    start check); set O(start_check=0) for one meant to exit within the window.
  - "A service that joins a named network namespace (O(netns)) with a mount namespace of its own sees the
    files of iproute2's C(/etc/netns/NETNS/) as C(ip netns exec NETNS) shows them: each entry bound over
    C(/etc/ENTRY) (read-write, as it binds them), before the service's own C(/etc/hosts) and
    C(/etc/resolv.conf) (O(etc_hosts), O(dns)), which win over them; a C(hosts) there stands in place of the
    generated default. An entry the service has no C(/etc/ENTRY) for (a file, or a directory for a
    directory), or a dangling symlink, fails the task before anything changes, where C(ip netns exec)
    warns and goes on. The
    entries are listed at each run: one added or removed changes the spec, and restarts the service."
seealso:
  - module: pyforkexec.isolation.forkexec
  - module: pyforkexec.isolation.netns
  - module: pyforkexec.isolation.namespace_info
  - plugin: pyforkexec.isolation.nsenter
    plugin_type: connection
"""

EXAMPLES = r"""
- name: A web server in its own PID, mount, UTS and IPC namespaces, inside the netns "web"
  pyforkexec.isolation.service:
    name: web
    argv: [python3, -m, http.server, "8080", --directory, /srv/www]
    user: www-data
    netns: web
    namespaces: [pid, mount, uts, ipc]
    hostname: web
    mounts:
      - {type: proc, target: /proc}
      - {type: tmpfs, target: /tmp, size: 64m}
    cgroup: {memory_max: 256M, pids_max: 64}
    capabilities: {keep: []}
    no_new_privs: true
    restart: always
    stop_signal: SIGINT  # as PID 1 of its namespace, http.server ignores SIGTERM: each stop would wait 10 s
    etc_hosts: {}  # its own /etc/hosts with its hostname: http.server's bind looks it up (else ~10 s)
    enabled: true
    landlock:  # it may read the system and /srv/www, bind 8080, and nothing else
      paths:
        - {path: /usr, access: [read, execute]}
        - {path: /etc, access: [read]}
        - {path: /srv/www, access: [read]}
      ports: [{port: 8080, access: [bind]}]
  register: web

- name: A worker with its own /etc/hosts and /etc/resolv.conf, bind-mounted in its mount namespace
  pyforkexec.isolation.service:
    name: worker
    argv: [/usr/local/bin/worker]
    netns: web
    namespaces: [pid, mount, uts]
    hostname: worker
    mounts: [{type: proc, target: /proc}]
    etc_hosts: {db.internal: 10.77.0.5, cache.internal: [10.77.0.6, "fd77::6"]}
    dns: [10.77.0.1]
    dns_search: [internal]
    dns_options: [ndots:1, timeout:1, attempts:2]

- name: Say what this host's kernel could not enforce (best effort)
  ansible.builtin.debug:
    msg: "{{ web.landlock.dropped }}"
  when: web.landlock.dropped | length > 0

- name: Stop it
  pyforkexec.isolation.service:
    name: web
    state: stopped

- name: Remove it, and everything the module wrote for it
  pyforkexec.isolation.service:
    name: web
    state: absent
"""

RETURN = r"""
stop_timeout:
  description: The grace, in seconds from the stop signal (O(stop_signal)) to SIGKILL, that this run's stop of
    the running service gave it (or, in check mode, would give).
  returned: when the task stopped or restarted a running service
  type: float
  sample: 10
state:
  description: Whether the service runs after the task.
  returned: always
  type: str
  sample: started
manager:
  description: The manager in charge (O(manager=auto) resolved).
  returned: always
  type: str
  sample: direct
pid:
  description: The service's process, null when it does not run.
  returned: always
  type: int
  sample: 4242
main_pid:
  description: Its parent, the launcher under systemd or the pyforkexec daemon; null when it does not run.
  returned: always
  type: int
  sample: 4241
namespaces:
  description:
    - The namespaces of RV(pid) by type, and whether each is the host's (PID 1's).
    - Empty when the service does not run.
  returned: always
  type: dict
  sample: {pid: {inode: 4026532301, path: /proc/4242/ns/pid, same_as_host: false}}
spec_path:
  description: The launch spec.
  returned: always
  type: str
  sample: /etc/pyforkexec/web.json
unit_path:
  description: The systemd unit.
  returned: when O(manager=systemd)
  type: str
  sample: /etc/systemd/system/pyforkexec-web.service
pid_file:
  description: The daemon's pid file.
  returned: when O(manager=direct)
  type: str
  sample: /run/pyforkexec/web.pid
log_file:
  description: The service's standard output and error, and the daemon's messages.
  returned: when O(manager=direct)
  type: str
  sample: /var/log/pyforkexec/web.log
landlock:
  description:
    - What this host's kernel enforces of O(landlock) each time the service starts. In best-effort mode
      the rights in RV(landlock.dropped) are not restricted (and a warning says so); in strict mode the
      task failed before anything was written or started instead.
  returned: when O(landlock) is set and O(argv) given
  type: dict
  contains:
    abi:
      description: The kernel's Landlock ABI version (0 - no Landlock).
      type: int
      sample: 2
    mode:
      description: O(landlock.mode).
      type: str
      sample: best_effort
    enforced:
      description: Whether the kernel enforces any of the policy.
      type: bool
      sample: true
    dropped:
      description: Each right the kernel cannot enforce, named as its option.
      type: list
      elements: str
      sample: ["landlock.ports[0].access: bind needs Landlock ABI 4, this kernel has 2"]
actions:
  description: What the module did (or would do in check mode).
  returned: always
  type: list
  elements: str
  sample: [write /etc/pyforkexec/web.json, start]
log:
  description:
    - The last lines of the log file, to tell why the service did not start; after a failed O(start_check),
      those written since the start.
  returned: on failure, with O(manager=direct)
  type: list
  elements: str
  sample:
    - "2025-01-01 12:00:00 pyforkexec-daemon[web]: start failed: fork/exec /srv/web: permission denied
      (at execve)"
journal:
  description: The unit's journal since the start (the launcher's error, systemd's word on the exit).
  returned: when a start failed, with O(manager=systemd)
  type: list
  elements: str
  sample:
    - "pyforkexec: fork/exec /srv/web: no such file or directory (at execve)"
    - "pyforkexec-web.service: Main process exited, code=exited, status=127/n/a"
"""

from ansible_collections.pyforkexec.isolation.plugins.module_utils import deps, quick_exit
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service as svc
from ansible_collections.pyforkexec.isolation.plugins.module_utils.arguments import AnsibleModule


def main():
    quick_exit.skip_final_collection()
    module = AnsibleModule(argument_spec=svc.ARGSPEC, mutually_exclusive=svc.MUTUALLY_EXCLUSIVE,
                           required_if=svc.REQUIRED_IF, supports_check_mode=True)
    deps.require(module, "pyforkexec")
    try:
        module.exit_json(**svc.run(module))
    except svc.ERRORS as e:
        module.fail_json(msg=str(e), **svc.failure_details(module.params, e))


if __name__ == "__main__":
    main()
