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
    The O(cgroup) limits become the unit's C(MemoryMax=), C(CPUQuota=), C(CPUWeight=) and C(TasksMax=).
  - With O(manager=direct), for hosts whose PID 1 is not systemd (a container, a CI runner), it runs
    C(python -m pyforkexec.daemon) detached instead, with the pid file C(/run/pyforkexec/NAME.pid), the log
    file C(/var/log/pyforkexec/NAME.log) and the O(restart) policy; the O(cgroup) limits apply to a cgroup
    C(pyforkexec/NAME) (or O(cgroup.path)).
  - A second run with the same arguments changes nothing; a changed argument rewrites the spec (and unit)
    and restarts the service.
author:
  - pyforkexec developers (@pyforkexec)
requirements:
  - pyforkexec in the managed host's Python, best a virtualenv that C(ansible_python_interpreter) points to.
    pyforkexec is not on PyPI; install the wheel built from its checkout (C(python -m build --wheel)) into
    that virtualenv, or let the role C(pyforkexec.isolation.isolated_service) build and install it
    (C(/opt/pyforkexec)); that Python runs the launcher
  - jinja2 in that Python, for O(manager=systemd)
  - Linux, as root
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
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
      - The service's working directory.
    type: path
  restart:
    description:
      - When the service is started again after it exited, as systemd's C(Restart=).
    type: str
    choices: [always, on-failure, "no"]
    default: on-failure
  stop_timeout:
    description:
      - Seconds between SIGTERM and SIGKILL when the service stops.
    type: int
    default: 10
  description:
    description:
      - The unit's C(Description=).
    type: str
  state:
    description:
      - V(started) and V(stopped) are idempotent; V(restarted) always restarts it.
      - V(absent) stops the service and removes its spec, unit, pid file and log.
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
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows the spec and unit files, and the service's state.
  platform:
    platforms: linux
notes:
  - The service's own process is the child of the launcher (systemd's C(MainPID)) or of the daemon; RV(pid)
    is that process, RV(main_pid) its parent.
  - The launcher and the daemon run with the Python that runs this module (C(ansible_python_interpreter)).
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
    enabled: true

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
actions:
  description: What the module did (or would do in check mode).
  returned: always
  type: list
  elements: str
  sample: [write /etc/pyforkexec/web.json, start]
log:
  description: The last lines of the log file, to tell why the service did not start.
  returned: on failure, with O(manager=direct)
  type: list
  elements: str
  sample:
    - "2025-01-01 12:00:00 pyforkexec-daemon[web]: start failed: fork/exec /srv/web: permission denied
      (at execve)"
"""

import json
import os
import sys

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pyforkexec.isolation.plugins.module_utils import deps, service_direct
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_systemd as systemd
from ansible_collections.pyforkexec.isolation.plugins.module_utils.files import Files
from ansible_collections.pyforkexec.isolation.plugins.module_utils.isolation import (
    ISOLATION_ARGSPEC,
    ISOLATION_MUTUALLY_EXCLUSIVE,
    IsolationError,
    build_and_check,
    cgroup_limits,
    environment_entries,
)

ARGSPEC = dict(
    name=dict(type="str", required=True),
    argv=dict(type="list", elements="str"),
    user=dict(type="str"),
    group=dict(type="str"),
    env=dict(type="dict"),
    chdir=dict(type="path"),
    restart=dict(type="str", default="on-failure", choices=["always", "on-failure", "no"]),
    stop_timeout=dict(type="int", default=10),
    description=dict(type="str"),
    state=dict(type="str", default="started", choices=["started", "stopped", "restarted", "absent"]),
    enabled=dict(type="bool"),
    manager=dict(type="str", default="auto", choices=["auto", "systemd", "direct"]),
    **ISOLATION_ARGSPEC,
)


MUTUALLY_EXCLUSIVE = [("user", "credential"), ("group", "credential"), *ISOLATION_MUTUALLY_EXCLUSIVE]
REQUIRED_IF = [("state", "started", ["argv"]), ("state", "restarted", ["argv"])]


def check_options(params):
    """The service's name, and the options besides the isolation ones that only their use would
    refuse (a daemon or unit that never starts); raises ServiceError naming the option."""
    name = paths.check_name(params["name"])
    if params["stop_timeout"] < 0:
        raise paths.ServiceError(f"stop_timeout: must be 0 or more seconds, got {params['stop_timeout']}")
    return name


def unit_text(jinja2, params, name, python):
    """The systemd unit of the service whose launcher runs with ``python``; raises UnitError or
    IsolationError naming the option."""
    limits = cgroup_limits(params["cgroup"]) if params["cgroup"] else None
    return systemd.render_unit(jinja2, name, systemd.launcher_argv(python, name), params["restart"],
                               params["stop_timeout"], systemd.resource_directives(limits),
                               params["description"], netns=params["netns"])


def launch_attr(params, name, manager, on_host=True):
    """The service's ProcAttr, validated by pyforkexec (an isolation.Built); ``on_host`` false checks
    the arguments away from their host, leaving out what only it knows (the role isolated_service, on
    its controller, before it changes anything). Raises IsolationError naming the option."""
    env = None if params["env"] is None else environment_entries(params["env"])
    if manager != "direct" and params["cgroup"] and params["cgroup"]["path"]:
        raise IsolationError("cgroup.path: with manager=systemd the service's cgroup is its unit's")
    # pyforkexec checks the cgroup limits under either manager; under systemd they are the unit's
    # directives, and the spec has no cgroup of its own.
    built = build_and_check(params, params["argv"], env=env, chdir=params["chdir"],
                            cgroup_path=f"pyforkexec/{name}", on_host=on_host)
    if manager != "direct":
        built.attr.sys.cgroup = None
    return built


class Service:
    """One run of the module: the wanted files, what runs, and the actions between them."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.name = check_options(self.params)
        self.manager = self._manager()
        self.systemctl = systemd.Systemctl(module.run_command)
        self.actions = []
        self.diff = []
        self.files = Files(module, self.actions, self.diff)
        self.was_running = False

    def _manager(self):
        wanted, booted = self.params["manager"], paths.systemd_booted()
        if wanted == "systemd" and not booted:
            raise paths.ServiceError("manager=systemd: PID 1 is not systemd on this host (a container or "
                                     "a CI runner?): use manager=direct, or auto")
        if wanted == "auto":
            if booted:
                return "systemd"
            name = self.params["name"]
            self.module.warn(f"PID 1 is not systemd: service {name} runs under manager=direct "
                             f"(a detached pyforkexec daemon, pid file {paths.pid_file(name)})")
            return "direct"
        return wanted

    # ---- the files ------------------------------------------------------------------------------

    def spec_text(self):
        p = self.params
        attr = launch_attr(p, self.name, self.manager).attr
        doc = deps.pyforkexec.spec.dump(None, p["argv"], attr)
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"

    def unit_text(self):
        deps.require(self.module, "jinja2", reason="to render the systemd unit")
        return unit_text(deps.jinja2, self.params, self.name, sys.executable)

    def wanted_files(self):
        if self.params["argv"] is None:
            return {}
        files = {paths.spec_path(self.name): (self.spec_text(), 0o600)}
        if self.manager == "systemd":
            files[paths.unit_path(self.name)] = (self.unit_text(), 0o644)
        return files

    def sync_files(self, files):
        """Write the files that differ; whether any did."""
        written = [self.files.sync(path, text, mode) for path, (text, mode) in files.items()]
        return any(written)

    # ---- the process ----------------------------------------------------------------------------

    def main_pid(self):
        if self.manager == "direct":
            return paths.locked_pid(paths.pid_file(self.name))
        return paths.systemd_main_pid(self.name, self.module.run_command)

    def daemon_argv(self):
        return service_direct.daemon_argv(self.name, sys.executable, self.params["restart"],
                                          self.params["stop_timeout"])

    def do(self, verb):
        self.actions.append(verb)
        if self.module.check_mode:
            return
        if self.manager == "systemd":
            self.systemctl.action(verb, self.name)
            return
        main = self.main_pid()
        if verb in ("stop", "restart") and main is not None:
            service_direct.stop(self.name, main, self.params["stop_timeout"])
        if verb in ("start", "restart"):
            service_direct.start(self.name, self.daemon_argv())

    def converge(self):
        state = self.params["state"]
        files_changed = self.sync_files(self.wanted_files())
        if files_changed and self.manager == "systemd":
            self.actions.append("daemon-reload")
            if not self.module.check_mode:
                self.systemctl.daemon_reload()
        main = self.main_pid()
        running = self.was_running = main is not None
        stale = (running and self.manager == "direct"
                 and service_direct.running_argv(main) != self.daemon_argv())
        if state == "stopped":
            if running:
                self.do("stop")
        elif state == "restarted" or (running and (files_changed or stale)):
            self.do("restart" if running else "start")
        elif not running:
            self.do("start")
        self.sync_enabled()
        return state != "stopped"

    def sync_enabled(self):
        enabled = self.params["enabled"]
        if enabled is None:
            return
        if self.manager == "direct":
            if enabled:
                self.module.warn("enabled: nothing starts services at boot with manager=direct; ignored")
            return
        if self.systemctl.is_enabled(self.name) != enabled:
            self.do("enable" if enabled else "disable")

    def remove(self):
        """state=absent: stop it under either manager, then remove every file written for it."""
        main = paths.locked_pid(paths.pid_file(self.name))
        self.was_running = main is not None
        if main is not None:
            self.actions.append("stop")
            if not self.module.check_mode:
                service_direct.stop(self.name, main, self.params["stop_timeout"])
        unit = paths.unit_path(self.name)
        booted = paths.systemd_booted()
        if booted and self.systemctl.is_active(self.name):
            self.manager, self.was_running = "systemd", True
            self.do("stop")
        if booted and os.path.exists(unit) and self.systemctl.is_enabled(self.name):
            self.manager = "systemd"
            self.do("disable")
        for path in (paths.spec_path(self.name), unit, paths.pid_file(self.name)):
            self.files.remove(path)
        self.files.remove(paths.log_file(self.name), with_diff=False)
        if booted and f"remove {unit}" in self.actions:
            self.actions.append("daemon-reload")
            if not self.module.check_mode:
                self.systemctl.daemon_reload()

    def result(self, running_wanted):
        main = self.main_pid()
        if self.module.check_mode:  # what would run: nothing was started or stopped
            state = "started" if running_wanted else "stopped"
        else:
            state = "started" if main is not None else "stopped"
        pid = paths.workload_pid(main, wait=5.0 if self.manager == "systemd" else 0.0)
        namespaces = deps.pyforkexec.nsinfo.namespaces(pid) if pid is not None else {}
        out = dict(
            changed=bool(self.actions), actions=self.actions, state=state, manager=self.manager,
            main_pid=main, pid=pid, namespaces=namespaces,
            spec_path=paths.spec_path(self.name),
        )
        if self.manager == "systemd":
            out["unit_path"] = paths.unit_path(self.name)
        else:
            out.update(pid_file=paths.pid_file(self.name), log_file=paths.log_file(self.name))
        return out


def daemon_log(params):
    """The end of the daemon's log, for a failure under manager=direct."""
    try:
        name = paths.check_name(params["name"])
    except paths.ServiceError:
        return {}
    return {} if params["manager"] == "systemd" else dict(log=service_direct.log_tail(name))


def main():
    module = AnsibleModule(
        argument_spec=ARGSPEC,
        mutually_exclusive=MUTUALLY_EXCLUSIVE,
        required_if=REQUIRED_IF,
        supports_check_mode=True,
    )
    deps.require(module, "pyforkexec")
    try:
        service = Service(module)
        if module.params["state"] == "absent":
            service.remove()
            running = False
        else:
            running = service.converge()
        result = service.result(running)
    except (IsolationError, paths.ServiceError, systemd.UnitError) as e:
        module.fail_json(msg=str(e), **daemon_log(module.params))
    if module._diff:
        before = "started" if service.was_running else "stopped"
        state = dict(before_header="state", before=f"{before}\n", after_header="state",
                     after=f"{result['state']}\n")
        result["diff"] = [*service.diff, state]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
