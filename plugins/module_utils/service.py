# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""The service module's logic: its argument spec, the checks of its options (which the role
isolated_service also runs on its controller, roles/isolated_service/files/check_services.py), the
files it writes and the actions that bring the service where it is wanted (``Service``), and ``run``,
the whole of one run of the module."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import shlex
import signal
import sys
import time

from ansible_collections.pyforkexec.isolation.plugins.module_utils import (
    deps,
    name_files,
    pidfds,
    service_direct,
    service_stale,
)
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_start_check as start_check
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_systemd as systemd
from ansible_collections.pyforkexec.isolation.plugins.module_utils.files import Files, sweep_stale
from ansible_collections.pyforkexec.isolation.plugins.module_utils.files import read as files_read
from ansible_collections.pyforkexec.isolation.plugins.module_utils.isolation import (
    ISOLATION_ARGSPEC,
    ISOLATION_MUTUALLY_EXCLUSIVE,
    IsolationError,
    build_and_check,
    canonical_attr,
    cgroup_limits,
    environment_entries,
    landlock_report,
    landlock_warning,
)

ARGSPEC = dict(
    name=dict(type="str", required=True),
    argv=dict(type="list", elements="str"),
    user=dict(type="str"),
    group=dict(type="str"),
    env=dict(type="dict"),
    chdir=dict(type="path"),
    restart=dict(type="str", default="on-failure", choices=["always", "on-failure", "no"]),
    stop_timeout=dict(type="int"),  # DEFAULT_STOP_TIMEOUT, or for a stop the one in force (Service.grace)
    stop_signal=dict(type="str"),  # DEFAULT_STOP_SIGNAL, or for a stop the one in force (check_stop)
    restart_sec=dict(type="float", default=0.1),
    start_check=dict(type="float", default=0.5),
    description=dict(type="str"),
    state=dict(type="str", default="started", choices=["started", "stopped", "restarted", "absent"]),
    enabled=dict(type="bool"),
    manager=dict(type="str", default="auto", choices=["auto", "systemd", "direct"]),
    **name_files.ARGSPEC,
    **ISOLATION_ARGSPEC,
)


MAX_START_CHECK = 3600  # the task waits that long
DEFAULT_STOP_TIMEOUT = 10
DEFAULT_STOP_SIGNAL = "SIGTERM"
MUTUALLY_EXCLUSIVE = [("user", "credential"), ("group", "credential"), *ISOLATION_MUTUALLY_EXCLUSIVE]
REQUIRED_IF = [("state", "started", ["argv"]), ("state", "restarted", ["argv"])]


def check_options(params):
    """The service's name, and the options besides the isolation ones that only their use would
    refuse (a daemon or unit that never starts); raises ServiceError naming the option."""
    name = paths.check_name(params["name"])
    paths.check_files(name)
    if not 0 <= params["restart_sec"] <= 86400:
        raise paths.ServiceError(f"restart_sec: must be 0 to 86400 seconds, got {params['restart_sec']:g}")
    if not 0 <= params["start_check"] <= MAX_START_CHECK:
        raise paths.ServiceError(f"start_check: must be 0 to {MAX_START_CHECK} seconds, "
                                 f"got {params['start_check']:g}")
    most = _daemon_most("--stop-timeout")
    # the daemon's range (systemd takes any)
    if params["stop_timeout"] is not None and not 0 <= params["stop_timeout"] <= most:
        raise paths.ServiceError(f"stop_timeout: must be 0 to {most} seconds, got {params['stop_timeout']}")
    stop_signal(params)
    name_files.check(params)
    argv = params.get("argv")
    if argv is None and params["state"] in ("started", "restarted"):
        # Ansible's required_if counts an option given as null (a variable that came out null) as given:
        # the run wrote no spec, started a daemon that could not read one, and named nothing.
        raise paths.ServiceError(f"argv: is null: state {params['state']} needs the command to run")
    if argv is not None and (not argv or not argv[0].strip()):
        what = "an empty list" if not argv else "an empty argv[0]"
        raise paths.ServiceError(f"argv: {what} names no program to run")
    chdir = params.get("chdir")
    if chdir and not chdir.startswith("/"):
        # (relative to whatever directory its daemon or systemd starts it from: systemd's
        # WorkingDirectory= refuses one too)
        raise paths.ServiceError(f"chdir: {chdir!r} is not an absolute path: give the service's working "
                                 "directory from / (from the new root, with rootfs)")
    return name


def stop_timeout(params):
    """The stop timeout the service is set up with (its daemon's --stop-timeout, its unit's
    TimeoutStopSec)."""
    return DEFAULT_STOP_TIMEOUT if params["stop_timeout"] is None else params["stop_timeout"]


def stop_signal(params):
    """The stop signal the service is set up with, by its name (``SIGINT``: its daemon's --stop-signal,
    its unit's KillSignal=), from a name in any case, with or without SIG (``int``), or a number (``2``),
    as systemd and podman take it. Raises ServiceError naming the option for a value that is no signal,
    or one of the signals that the launcher of a manager=systemd service does not pass on to it (the
    unit's KillSignal= goes to that launcher, its main process, with KillMode=mixed): the same values
    under either manager, so that moving a service from one to the other never refuses its task."""
    given = params["stop_signal"]
    if given is None:
        return DEFAULT_STOP_SIGNAL
    from pyforkexec import signames  # pylint: disable=import-outside-toplevel
    from pyforkexec.service.supervise import FORWARDED  # pylint: disable=import-outside-toplevel

    signo = signames.parse(given)
    allowed = [signames.name(s) for s in FORWARDED]
    if signo is None or signo not in FORWARDED:
        what = repr(given) if signo is None else signames.name(signo)
        why = " (SIGKILL is what follows it after stop_timeout)" if signo == signal.SIGKILL else ""
        raise paths.ServiceError(
            f"stop_signal: must be one of {', '.join(allowed)} (by name, with or without SIG, in any case, "
            f"or by number: the signals a service's launcher passes on to it), got {what}{why}")
    return signames.name(signo)


def _daemon_most(option):
    """The largest value the pyforkexec daemon takes for ``option`` (its RANGES)."""
    from pyforkexec.service.daemon import RANGES  # pylint: disable=import-outside-toplevel

    return next(most for name, _least, most in RANGES if name == option)


def unit_text(jinja2, params, name, python):
    """The systemd unit of the service whose launcher runs with ``python``; raises UnitError or
    IsolationError naming the option."""
    limits = cgroup_limits(params["cgroup"]) if params["cgroup"] else None
    return systemd.render_unit(jinja2, name, systemd.launcher_argv(python, name), params["restart"],
                               stop_timeout(params), systemd.resource_directives(limits),
                               params["description"], netns=params["netns"],
                               restart_sec=params["restart_sec"], stop_signal=stop_signal(params))


def launch_attr(params, name, manager, on_host=True, netns_made=False, names=None):
    """The service's ProcAttr, validated by pyforkexec (an isolation.Built); ``on_host`` false checks
    the arguments away from their host, leaving out what only it knows (the role isolated_service, on
    its controller, before it changes anything); ``netns_made``: its netns is made by this run (the
    services module), not looked for; ``names``: its name resolution files (a name_files.Plan, bind-
    mounted after its mounts), by default those its options ask for. Raises IsolationError (UnitError:
    a limit systemd would not enforce on this host; NameFileError) naming the option."""
    names = name_files.plan(params, name, on_host=on_host) if names is None else names
    env = None if params["env"] is None else environment_entries(params["env"])
    if manager != "direct" and params["cgroup"] and params["cgroup"]["path"]:
        raise IsolationError("cgroup.path: with manager=systemd the service's cgroup is its unit's")
    # pyforkexec checks the cgroup limits under either manager; under systemd they are the unit's
    # directives, and the spec has no cgroup of its own.
    built = build_and_check(params, params["argv"], env=env, chdir=params["chdir"],
                            cgroup_path=f"pyforkexec/{name}", on_host=on_host, netns_made=netns_made,
                            cgroup_on_host=on_host and manager == "direct", host_checks=on_host,
                            inherited_path=service_direct.DAEMON_ENV["PATH"], extra_mounts=names.mounts())
    if manager != "direct":
        built.attr.sys.cgroup = None
        if on_host and params["cgroup"]:  # systemd's own cgroup, whose limits it may silently skip
            systemd.check_host_limits(cgroup_limits(params["cgroup"]))
    elif built.attr.sys.cgroup is not None:
        # The service's cgroup is its own: once its process has been reaped, what it left there (in
        # its process group or not) is killed and the directory removed, as systemd ends a unit.
        built.attr.sys.cgroup = dataclasses.replace(built.attr.sys.cgroup, kill_remaining=True)
    elif on_host:
        built.attr.sys.cgroup = default_own_cgroup(name)
    return built


def default_own_cgroup(name):
    """The cgroup a manager=direct service without the cgroup option runs in, as systemd puts each unit
    in one: ``pyforkexec/NAME``, no limits, kill_remaining, so that a stop (or the daemon's end) also
    ends what the service started and detached (a double fork, setsid), which its process group does
    not hold. None when this host has no cgroup v2 hierarchy this process may write (the daemon then
    stops the service's process group only, as before)."""
    cgroup = deps.pyforkexec.Cgroup(path=f"pyforkexec/{name}", kill_remaining=True)
    try:
        deps.pyforkexec.sandbox.cgroup.check_host(cgroup)
    except OSError:
        return None
    return cgroup


RESTART_IF_OUTDATED = "restart-if-outdated"
# What a wanted state does to a service that runs, or does not.
TRANSITIONS = {
    "started": {"running": RESTART_IF_OUTDATED, "stopped": "start"},
    "restarted": {"running": "restart", "stopped": "start"},
    "stopped": {"running": "stop", "stopped": None},
}
# What makes a running service out of date (docker's ``comparisons``): each is a comparison of what
# runs with what is wanted, given the service, its main pid (None: not running) and whether a file it
# reads was rewritten by this run.
COMPARISONS = {
    # the spec document or the unit: what the process was started from
    "files": lambda service, main, files_changed: files_changed or service.pending,
    # a daemon started with other arguments (restart policy, stop timeout, another venv's Python)
    "daemon_argv": lambda service, main, files_changed: (
        main is not None and service.manager == "direct"
        and service_direct.daemon_running_argv(service.name, main) != service.daemon_argv()),
    # what it runs in or with changed under it: its network namespace rewired, its runtime reinstalled
    # (the services module sets ``changed_under``; the service module never does)
    "changed_under": lambda service, main, files_changed: main is not None and bool(service.changed_under),
    # a namespace it joins by path (its netns) made again since it started: it runs in the old one
    "joins": lambda service, main, files_changed: bool(service.moved_joins),
    # a file bound into it at its start that it no longer sees there (service_stale.binds)
    "binds": lambda service, main, files_changed: bool(service.replaced_binds),
}


def _spec_text(argv, attr):
    """A service's launch spec, as its file holds it."""
    return json.dumps(deps.pyforkexec.spec.dump(None, argv, attr), indent=2, sort_keys=True) + "\n"


def _same_as_written(path, text):
    """``text``, or the spec file at ``path`` when it is the same service in another spelling (one
    written before specs held one spelling, canonical_attr): that text stays, and its service is not
    restarted for a spelling. A file this pyforkexec cannot read as a spec is replaced."""
    written = files_read(path)
    if written is None or written == text:
        return text
    spec = deps.pyforkexec.spec
    try:
        found = spec.loads(written.encode(), path)
        again = _spec_text(found.argv, canonical_attr(found.attr))
    except (spec.SpecError, ValueError, TypeError, OSError):
        return text
    return written if again == text else text


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
        self.left_cgroup = None  # a killed daemon's cgroup, found before this run rewrites the spec
        self.cgroup_checked = False  # check_own_cgroup made already (the services module's plan, batch-wide)
        self.new = False  # declared by this run: no spec before (converge)
        self.pending = False  # its files were rewritten since it last started (paths.pending_path)
        # An earlier run's mark, read before this run writes one of its own (the services module marks
        # a running service before it rewires its namespace): only that one is a cause no diff shows.
        self.cut_off = os.path.exists(paths.pending_path(self.name))
        self.landlock = None  # what this kernel enforces of the landlock option (landlock_report)
        self.changed_under = []  # why it must restart though its files did not change (COMPARISONS)
        self.netns_made = False  # its netns is made by this run before it starts (the services module)
        # Its own addresses when it is wired into its own network namespace (the services module's
        # wiring: then it gets a generated /etc/hosts by default, name_files.plan), else None.
        self.wired = None
        self.names = None  # its name resolution files (name_files.Plan), once spec_text decided them
        self.watch = None  # a start of this run within its start check (service_start_check.Watch)
        self.stop_grace = None  # the grace (s) this run's stop of the running service gave it, reported
        self.moved_joins = []  # the namespaces it joins made again since it started (service_stale.joins)
        self.replaced_binds = []  # the files bound into it replaced since it started (service_stale.binds)
        if self.params["state"] in ("stopped", "absent"):
            self.check_stop()

    def _manager(self):
        manager = paths.resolve_manager(self.params["manager"])
        if self.params["manager"] == "auto" and manager == "direct":
            name = self.params["name"]
            self.module.warn(f"PID 1 is not systemd: service {name} runs under manager=direct "
                             f"(a detached pyforkexec daemon, pid file {paths.pid_file(name)})")
        return manager

    # ---- the files ------------------------------------------------------------------------------

    def spec_text(self):
        p = self.params
        self.names = name_files.plan(p, self.name, self.wired)
        attr = launch_attr(p, self.name, self.manager, netns_made=self.netns_made, names=self.names).attr
        self.landlock = landlock_report(attr.sys.landlock)
        return _same_as_written(paths.spec_path(self.name), _spec_text(p["argv"], canonical_attr(attr)))

    def unit_text(self):
        deps.require(self.module, "jinja2", reason="to render the systemd unit")
        if importlib.util.find_spec("pyforkexec.service.notify") is None:
            # Its launcher would never send READY=1: every start would hang until systemd's timeout.
            raise systemd.UnitError("manager=systemd: the pyforkexec in this Python predates Type=notify "
                                    "units (READY=1 once the service has execed): install this collection's "
                                    "pyforkexec (the role isolated_service does)")
        if self.params["cgroup"]:
            self.systemctl.check_directives(systemd.resource_directives(cgroup_limits(self.params["cgroup"])))
        return unit_text(deps.jinja2, self.params, self.name, sys.executable)

    def wanted_files(self):
        if self.params["argv"] is None:
            return {}
        spec = self.spec_text()  # (decides self.names)
        # The name files before the spec that binds them: its daemon reads the spec again at each start
        # of the service (its restart policy), and a run cut between the two left one it could not start.
        files = {**self.names.wanted(), paths.spec_path(self.name): (spec, 0o600)}
        if self.manager == "systemd":
            files[paths.unit_path(self.name)] = (self.unit_text(), 0o644)
        elif self.params["description"] is not None:  # as enabled: said, not silently dropped
            self.module.warn(f"description: only a systemd unit shows it (its Description=), nothing does "
                             f"with manager=direct; ignored for service {self.name}")
        return files

    def sync_files(self, files):
        """Write the files that differ, and remove the name resolution files a spec written now no
        longer mounts; whether any did."""
        written = [self.files.sync(path, text, mode) for path, (text, mode) in files.items()]
        if paths.spec_path(self.name) in files:
            written += [self.files.remove(path) for path in self.name_file_paths() if path not in files]
        return any(written)

    def name_file_paths(self):
        """The service's own /etc/hosts and /etc/resolv.conf on this host (name_files)."""
        return [paths.hosts_path(self.name), paths.resolv_path(self.name)]

    # ---- the process ----------------------------------------------------------------------------

    def main_pid(self):
        return paths.main_pid(self.name, self.manager, self.module.run_command)[1]

    def daemon_argv(self):
        return service_direct.daemon_argv(self.name, sys.executable, self.params["restart"],
                                          stop_timeout(self.params), self.params["restart_sec"],
                                          stop_signal(self.params))

    def do(self, verb):
        self.actions.append(verb)
        if self.module.check_mode:
            return
        starting = verb in ("start", "restart")
        since, log_offset = time.time(), self._log_size()
        if self.manager == "systemd":
            if verb in ("stop", "restart") and self.stop_grace is None:
                self.stop_grace = self.systemctl.stop_timeout(self.name)  # (reloaded: the unit's now)
            try:
                self.systemctl.action(verb, self.name)
            except paths.ServiceError:
                if not starting:
                    raise
                failed = start_check.systemd_failure(self.name, self.systemctl, since)
                self.stop_failed()
                raise failed from None
            if starting:
                self.watch_systemd(since)
            return
        main = self.main_pid()
        if verb in ("stop", "restart") and main is not None:
            self.stop_grace = self.grace(main, restarting=verb == "restart")
            service_direct.stop(self.name, main, self.stop_grace)
        if starting:
            pid = service_direct.start(self.name, self.daemon_argv())
            if self.params["start_check"] > 0:
                self.watch = start_check.Watch(self.name, "direct", self.main_pid(), pid,
                                               self.params["start_check"], log_offset=log_offset)

    def _log_size(self):
        try:
            return os.path.getsize(paths.log_file(self.name)) if self.manager == "direct" else 0
        except FileNotFoundError:
            return 0

    def watch_systemd(self, since):
        """The unit is started (its launcher said READY=1): watch it through its start check."""
        if self.params["start_check"] <= 0:
            return
        unit = self.systemctl.show(self.name, "MainPID", "NRestarts")
        main = int(unit["MainPID"]) if unit.get("MainPID", "0").isdigit() and unit["MainPID"] != "0" else None
        pid = paths.workload_pid(main, wait=1.0)
        self.watch = start_check.Watch(self.name, "systemd", main, pid, self.params["start_check"],
                                       restarts=unit.get("NRestarts"), since=since)

    def stop_failed(self):
        """Stop the service whose start failed, so that its restart policy does not go on retrying what
        the task reports failed (best effort: the task fails with the start's cause either way); one
        this run declared (it had no spec before) is not left declared: its spec and unit go again
        (its log stays, with the cause)."""
        self.actions.append("stop")
        swept = True  # nothing of it is left where only its spec tells where
        with contextlib.suppress(paths.ServiceError, OSError):
            if self.manager == "systemd":
                self.systemctl.run(["systemctl", "stop", paths.unit_name(self.name)])
            else:
                main = self.main_pid()
                if main is not None:  # (started by this run, with its stop_timeout)
                    service_direct.stop(self.name, main, stop_timeout(self.params))
                else:  # its daemon died (SIGKILL, the OOM killer): what it left in its own cgroup goes
                    swept = False
                    path = service_direct.own_cgroup(self.name)
                    if path is not None and not self.module.check_mode:
                        service_direct.sweep_cgroup(self.name, path)
                    swept = True
        if not self.module.check_mode:
            paths.clear_pending(self.name)  # stopped: what starts next starts from the files
        if self.new and swept and not self.module.check_mode:
            with contextlib.suppress(OSError, paths.ServiceError, systemd.UnitError):
                # (a daemon killed outright leaves its pid file: stale, no daemon holds it now)
                pid_file = paths.pid_file(self.name) if self.manager == "direct" else None
                for path in (paths.spec_path(self.name), *self.name_file_paths(), paths.unit_path(self.name),
                             pid_file):
                    if path is not None:
                        self.files.remove(path, with_diff=path != pid_file)
                if self.manager == "systemd":
                    self.systemctl.daemon_reload()

    def converge(self, files=None):
        """Bring the service to its state, from ``files`` (wanted_files(), computed here when None);
        whether it is to run.

        Files rewritten for a service that runs are marked (paths.pending_path) before they are
        written, and the mark goes once the service has been restarted (or stopped) from them: a run
        interrupted in between (a Ctrl-C, a kill) leaves the mark, and the next run restarts the
        service even though its files no longer differ."""
        state = self.params["state"]
        self.new = not os.path.exists(paths.spec_path(self.name))
        files = self.wanted_files() if files is None else files
        if state != "stopped" and not self.cgroup_checked:
            self.check_own_cgroup(files)
        self.pending = os.path.exists(paths.pending_path(self.name))
        main = self.main_pid()  # (writing the files changes no process)
        # Where a daemon killed outright left the service's processes: read from the spec before the
        # files are rewritten (the new one may have no cgroup, or another).
        self.left_cgroup = service_direct.own_cgroup(self.name) if main is None and self.manager == "direct" \
            else None
        self.was_running = main is not None
        if state != "stopped" and self.left_cgroup is not None \
                and self.left_cgroup != self.wanted_own_cgroup(files):
            # The start is from a spec that no longer names that cgroup (its cgroup option dropped or
            # moved): its daemon, which empties only its own, would leave what is there for good.
            # Swept before the files are rewritten: should that fail, the spec still names it.
            self.sweep()
        if self.was_running and not self.module.check_mode and not self.pending and self.files.differ(files):
            paths.mark_pending(self.name)
            self.pending = True
        files_changed = self.sync_files(files)
        if files_changed and self.manager == "systemd":
            self.actions.append("daemon-reload")
            if not self.module.check_mode:
                self.systemctl.daemon_reload()
        # What it was started with, by paths its files still name: only files it was started from tell
        # (with files rewritten, or pending, it restarts from them anyway).
        started_from_files = main is not None and not files_changed and not self.pending
        self.moved_joins, self.replaced_binds = self.stale(main, files) if started_from_files else ([], [])
        outdated = [name for name, differs in COMPARISONS.items() if differs(self, main, files_changed)]
        verb = TRANSITIONS[state]["running" if main is not None else "stopped"]
        if verb == RESTART_IF_OUTDATED:
            verb = "restart" if outdated else None
        if verb == "restart":
            self.diff += self.unseen_causes(main, outdated, files_changed)
        if verb is not None:
            self.do(verb)
        elif main is None and state == "stopped":
            self.sweep()
        if not self.module.check_mode and (verb is not None or main is None):
            paths.clear_pending(self.name)  # what runs, if anything, is started from the files
        self.sync_enabled()
        return state != "stopped"

    def stale(self, main, files):
        """(joins, binds) of the running service (main pid ``main``) that its paths now name otherwise
        (service_stale.of_running): the namespaces the spec in ``files`` joins by path, made again since
        it started; the files bound into it, replaced since."""
        spec = files.get(paths.spec_path(self.name))
        sys_attr = deps.pyforkexec.spec.loads(spec[0].encode()).attr.sys if spec is not None else None
        mounts = [] if self.names is None else [(m.source, m.target) for _option, m in self.names.mounts()]
        return service_stale.of_running(self.main_pid, main, sys_attr, mounts)

    def unseen_causes(self, main, outdated, files_changed):
        """Diff entries for the causes of a restart that no file's diff shows: the daemon's arguments
        (in no file), files an earlier run rewrote and was cut off before restarting it (pending), the
        runtime reinstalled under it. (A rewired namespace has its own diff, from the services module.)"""
        unseen = []
        if "daemon_argv" in outdated:
            running = service_direct.daemon_running_argv(self.name, main) or []
            unseen.append(dict(before_header="daemon", before=shlex.join(running) + "\n",
                               after_header="daemon", after=shlex.join(self.daemon_argv()) + "\n"))
        if "files" in outdated and not files_changed and self.cut_off:
            unseen.append(dict(before_header="started from", after_header="started from",
                               before="older files than the host's (a run rewrote them and was cut off "
                                      "before it restarted the service)\n",
                               after="the host's files\n"))
        if "joins" in outdated:
            moved = self.moved_joins
            unseen.append(dict(before_header="joined namespaces", after_header="joined namespaces",
                               before="".join(f"{path}: [{running or '?'}] (made again since the service "
                                              "started)\n" for path, running, _now in moved),
                               after="".join(f"{path}: [{now}]\n" for path, _running, now in moved)))
        if "binds" in outdated:
            replaced = self.replaced_binds
            unseen.append(dict(before_header="bound files", after_header="bound files",
                               before="".join(f"{target}: [{seen}] (not the file bound there at its start: "
                                              "it, or the file it was bound over, was replaced since)\n"
                                              for target, seen, _source, _now in replaced),
                               after="".join(f"{target}: {source} [{now}]\n"
                                             for target, _seen, source, now in replaced)))
        if "runtime" in self.changed_under:
            unseen.append(dict(before_header="runtime", after_header="runtime",
                               before="the runtime before this run reinstalled it\n",
                               after="the runtime reinstalled\n"))
        return unseen

    def check_own_cgroup(self, files, batch=None):
        """Before anything changes: the service's own cgroup (killed whole, with what is below it, at
        its starts and stops) must be no other service's, nor inside or around one (cgroup.path), and
        may hold no processes but what this service left (a daemon killed outright): a start would
        kill them, a stop remove the directory. ``batch``: {service: its own cgroup once this run is
        done (None: none)} of the services a services module run converges together, in place of what
        their specs say now."""
        self.cgroup_checked = True
        wanted = self.wanted_own_cgroup(files)
        if wanted is None:
            return
        others = dict(service_direct.others_own_cgroups(self.name), **(batch or {}))
        others.pop(self.name, None)
        for other, path in sorted((o, p) for o, p in others.items() if p is not None):
            if os.path.commonpath([wanted, path]) in (wanted, path):
                how = "is" if wanted == path else "contains" if path.startswith(wanted) else "is inside"
                raise paths.ServiceError(
                    f"cgroup.path: {wanted} {how} service {other}'s own cgroup ({path}): a service's own "
                    "cgroup is killed whole, with the cgroups below it, when it starts and stops; give each "
                    "service a path of its own, outside the others'")
        left = deps.pyforkexec.sandbox.cgroup.members(wanted)
        if left and wanted not in (service_direct.default_own_cgroup(self.name),
                                   service_direct.own_cgroup(self.name)):
            raise paths.ServiceError(
                f"cgroup.path: {wanted} already holds processes that this service did not start (pids "
                f"{' '.join(left[:10])}): its start would kill them, its stop remove the cgroup; give the "
                "service a path of its own")

    def wanted_own_cgroup(self, files):
        """The cgroup directory the service started from ``files`` would run in as its own, or None."""
        wanted = files.get(paths.spec_path(self.name))  # (text, mode)
        if wanted is None:
            return None
        try:
            return service_direct.own_cgroup_of(deps.pyforkexec.spec.loads(wanted[0].encode()))
        except (OSError, ValueError):  # no cgroup2 here: the start reports it
            return None

    def sweep(self):
        """With no daemon running (manager direct): what one killed outright (SIGKILL, the OOM killer)
        left of the service, its own cgroup and what is still in it (its service died with it, not what
        that had started), is stopped and removed, as the daemon's stop would have ("stop" when
        processes were left, else "remove cgroup PATH"), and its pid file, which names a dead process
        (or, once its pid is reused, another one), goes as the daemon's stop removes it ("remove PATH")."""
        path = self.left_cgroup
        if path is None and self.manager == "direct":
            path = service_direct.own_cgroup(self.name)
        if path is not None:
            self.was_running = self.was_running or bool(deps.pyforkexec.sandbox.cgroup.members(path))
            self.actions.append("stop" if self.was_running else f"remove cgroup {path}")
            if not self.module.check_mode:
                service_direct.sweep_cgroup(self.name, path)
        pid_file = paths.pid_file(self.name)
        # (a start rewrites it, absent removes it with the other files)
        if self.manager == "direct" and self.params["state"] == "stopped" and paths.stale_pid_file(pid_file):
            self.actions.append(f"remove {pid_file}")
            if not self.module.check_mode:
                paths.remove_stale_pid_file(pid_file)

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

    def daemon(self):
        """(name, main pid, grace) of its pyforkexec daemon when one runs (grace: see grace()), else
        None. Raises ServiceError when the stop cannot give the grace asked."""
        main = paths.daemon_pid(self.name)
        if main is None:
            return None
        self.stop_grace = self.grace(main)
        return (self.name, main, self.stop_grace)

    def grace(self, main, restarting=False):
        """The seconds from SIGTERM to SIGKILL the stop of its running daemon ``main`` gives the service:
        the task's stop_timeout, else the one the daemon was started with (as systemd's stop uses the
        unit's TimeoutStopSec in force). The module kills the service at the task's value
        (service_direct.stop_all); a longer one than the daemon's own cannot be given (the daemon kills
        it first): refused (ServiceError), but for a restart, which starts the daemon with the new one
        and gives the old one its own (reported)."""
        given, in_force = self.params["stop_timeout"], service_direct.running_stop_timeout(self.name, main)
        if given is None:
            return in_force if in_force is not None else DEFAULT_STOP_TIMEOUT
        if in_force is None or given <= in_force:
            return given
        if restarting:
            return in_force
        raise paths.ServiceError(
            f"stop_timeout: service {self.name} runs with stop_timeout {in_force:g} (its daemon kills it "
            f"that long after SIGTERM): a stop cannot give it {given}; restart it with stop_timeout {given} "
            f"first, or leave stop_timeout out to stop it with its own")

    def check_stop(self):
        """state stopped or absent: refuse, before anything changes, a stop_timeout the stop of what runs
        cannot give (grace(); under systemd, a value other than the loaded unit's TimeoutStopSec, which
        the stop uses, unless this run rewrites the unit with it), or a stop_signal other than the one
        the stop sends (its daemon's --stop-signal; the loaded unit's KillSignal, unless rewritten)."""
        main = paths.daemon_pid(self.name)
        given_signal = None if self.params["stop_signal"] is None else stop_signal(self.params)
        if main is not None:  # a pyforkexec daemon (manager direct; absent stops one under either)
            self.grace(main)
            in_force = service_direct.running_stop_signal(self.name, main)
            if given_signal is not None and in_force is not None and in_force != given_signal:
                raise paths.ServiceError(
                    f"stop_signal: service {self.name} runs with stop_signal {in_force} (its daemon sends it "
                    f"at a stop): a stop cannot send {given_signal}; restart it with stop_signal "
                    f"{given_signal} first, or leave stop_signal out to stop it with its own")
        given = self.params["stop_timeout"]
        rewritten = self.params["state"] == "stopped" and self.params["argv"] is not None
        if self.manager == "direct" or (given is None and given_signal is None) or rewritten \
                or not paths.systemd_booted():
            return
        if not self.systemctl.is_active(self.name):
            return
        unit = paths.unit_name(self.name)
        in_force = self.systemctl.stop_timeout(self.name) if given is not None else None
        if in_force is not None and abs(in_force - given) > 1e-6:
            raise paths.ServiceError(
                f"stop_timeout: unit {unit} is loaded with "
                f"TimeoutStopSec={in_force:g}, which systemctl stop uses: a stop cannot give it {given}; "
                f"give its argv (state=stopped rewrites the unit with it), or leave stop_timeout out")
        in_force = self.systemctl.stop_signal(self.name) if given_signal is not None else None
        if in_force is not None and in_force != given_signal:
            raise paths.ServiceError(
                f"stop_signal: unit {unit} is loaded with KillSignal={in_force}, which systemctl stop "
                f"sends: a stop cannot send {given_signal}; give its argv (state=stopped rewrites the unit "
                f"with it), or leave stop_signal out")

    def remove(self, stopped=None):
        """state=absent: stop it under either manager, then remove every file written for it.
        ``stopped``: its daemon() that the caller stopped already (with others, service_direct.stop_all)."""
        daemon = self.daemon() if stopped is None else stopped
        self.was_running = daemon is not None
        if daemon is not None:
            self.actions.append("stop")
            if not self.module.check_mode and stopped is None:
                service_direct.stop_all([daemon])
        else:
            self.sweep()  # (before its spec, which names its cgroup, goes)
        unit = paths.unit_path(self.name)
        booted = paths.systemd_booted()
        if booted and self.systemctl.is_active(self.name):
            self.manager, self.was_running = "systemd", True
            self.do("stop")
        if booted and os.path.exists(unit) and self.systemctl.is_enabled(self.name):
            self.manager = "systemd"
            self.do("disable")
        # A daemon removes its own pid file as it stops: check mode, which stops none, does not list it.
        pid_file = None if daemon is not None and self.module.check_mode else paths.pid_file(self.name)
        for path in (paths.spec_path(self.name), *self.name_file_paths(), unit, pid_file):
            if path is not None:
                self.files.remove(path)
        if not self.module.check_mode:
            paths.clear_pending(self.name)
            with contextlib.suppress(FileNotFoundError):  # the services module's record of its wiring
                os.unlink(paths.wired_netns_path(self.name))
            sweep_stale(paths.wired_netns_path(self.name))  # (its temporary file, of a killed write)
        self.files.remove(paths.log_file(self.name), with_diff=False)
        if booted and f"remove {unit}" in self.actions:
            self.actions.append("daemon-reload")
            if not self.module.check_mode:
                self.systemctl.daemon_reload()

    def result(self, running_wanted):
        # The service's process and its namespaces read while it is pinned: a number found may be
        # another process's by the read (paths.read_workload).
        main, pid, namespaces = paths.read_workload(self.main_pid, _namespaces_of,
                                                    wait=5.0 if self.manager == "systemd" else 0.0)
        if self.module.check_mode:  # what would run: nothing was started or stopped
            state = "started" if running_wanted else "stopped"
        else:
            state = "started" if main is not None else "stopped"
        namespaces = namespaces or {}
        out = dict(
            changed=bool(self.actions), actions=self.actions, state=state, manager=self.manager,
            main_pid=main, pid=pid, namespaces=namespaces,
            spec_path=paths.spec_path(self.name),
        )
        if self.landlock is not None:
            out["landlock"] = self.landlock
        if self.stop_grace is not None:  # (what the stop of this run gave, or in check mode would)
            out["stop_timeout"] = self.stop_grace
        if self.manager == "systemd":
            out["unit_path"] = paths.unit_path(self.name)
        else:
            out.update(pid_file=paths.pid_file(self.name), log_file=paths.log_file(self.name))
        return out


def _namespaces_of(pid):
    """The namespaces of the service's process ``pid`` (read in /proc by its number there: pidfds)."""
    where = pidfds.in_proc(pid)
    return deps.pyforkexec.nsinfo.namespaces(where) if where is not None else {}


def daemon_log(params):
    """The end of the daemon's log, for a failure under manager=direct."""
    try:
        name = paths.check_name(params["name"])
    except paths.ServiceError:
        return {}
    return {} if params["manager"] == "systemd" else dict(log=service_direct.log_tail(name))


def failure_details(params, error):
    """What the module's failure returns besides its message: the daemon's log (manager=direct), or
    what a failed start check found (its log or journal lines since the start)."""
    return {**daemon_log(params), **getattr(error, "details", {})}


# The errors that fail the module with their message (each starts with the option it is about).
ERRORS = (IsolationError, paths.ServiceError, systemd.UnitError)


def run(module):
    """One run of the module: the result for exit_json. Raises one of ERRORS."""
    with paths.converge_lock():
        return apply(Service(module))


def check_started(services):
    """Wait out the start checks of ``services`` (those this run started, together: one window for
    all); {name: StartCheckFailed} of those that did not stay up, stopped by now."""
    watched = [service for service in services if service.watch is not None]
    start_check.wait_all([service.watch for service in watched])
    failed = {}
    for service in watched:
        error = start_check.failure(service.watch, service.systemctl)
        service.watch = None
        if error is not None:
            service.stop_failed()
            failed[service.name] = error
    return failed


def apply(service, files=None, stopped=None, check_start=True):
    """Bring ``service`` to its state (from ``files``, its wanted_files(), when given; ``stopped``: see
    Service.remove): its result for exit_json, with its diff in --diff mode. Raises one of ERRORS
    (StartCheckFailed for a start that did not stay up). ``check_start`` false leaves the start check
    to the caller (check_started, then report)."""
    try:
        if service.params["state"] == "absent":
            service.remove(stopped)
            running = False
        else:
            running = service.converge(files)
    except BaseException as e:
        if service.watch is not None:  # started, then failed (enabling it): not checked, its pidfds closed
            service.watch.close()
            service.watch = None
        if isinstance(e, ERRORS) and service.new and os.path.exists(paths.spec_path(service.name)):
            service.stop_failed()  # declared by this run, and failed to start: not left declared
        raise
    if check_start:
        failed = check_started([service])
        if failed:
            raise failed[service.name]
    return report(service, running)


def report(service, running):
    """``service``'s result for exit_json, with its diff in --diff mode."""
    module = service.module
    result = service.result(running)
    warning = landlock_warning(service.landlock)
    if warning:
        module.warn(f"{service.name}: {warning}")
    if module._diff:
        before = "started" if service.was_running else "stopped"
        state = dict(before_header="state", before=f"{before}\n", after_header="state",
                     after=f"{result['state']}\n")
        result["diff"] = [*service.diff, state]
    return result
