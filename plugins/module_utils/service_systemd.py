# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""manager: systemd: the unit file (rendered with jinja2 on the managed host) and systemctl.

The unit's ExecStart is the launcher, ``python -m pyforkexec exec --spec FILE``, which stays the parent
of the service's process and passes SIGTERM on to it (``KillMode=mixed``). The unit is
``Type=notify``: the launcher sends ``READY=1`` once the service's process has execed, so ``systemctl
start`` waits for that and fails when the spawn does (``Type=exec`` would report the launcher's own
exec as the start: service_start_check). The cgroup limits of the
isolation options become the unit's resource directives: systemd owns a unit's cgroup, and
``check_host_limits`` refuses those it would not enforce on this host.
"""

from __future__ import annotations

import re

from ansible_collections.pyforkexec.isolation.plugins.module_utils import deps
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths

UNIT_TEMPLATE = """\
# Managed by Ansible (pyforkexec.isolation.service): change the task, not this file.
[Unit]
Description={{ description }}
Wants=network-online.target
After=network-online.target
{% if netns_unit %}
# its network namespace, restored at boot when the netns module persisted it (Wants: a namespace made
# another way has no such unit, and must not keep the service from starting)
Wants={{ netns_unit }}
After={{ netns_unit }}
{% endif %}

[Service]
Type=notify
NotifyAccess=main
ExecStart={{ exec_start | map('systemd_quote') | join(' ') }}
Restart={{ restart }}
RestartSec={{ '%g' % restart_sec }}
KillMode=mixed
TimeoutStopSec={{ stop_timeout }}
{% if stop_signal != 'SIGTERM' %}
KillSignal={{ stop_signal }}
{% endif %}
{% for key, value in resources %}
{{ key }}={{ value }}
{% endfor %}

[Install]
WantedBy=multi-user.target
"""


class UnitError(ValueError):
    """An option that the unit cannot express; ``str()`` starts with the option."""


def systemd_quote(arg):
    """One ExecStart word: % and $ escaped (specifiers, variables), quoted when it has blanks or quotes."""
    arg = str(arg).replace("%", "%%").replace("$", "$$")
    if arg and not re.search(r"[\s\"'\\;]", arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


DEFAULT_CPU_PERIOD = 100000  # µs: the kernel's and systemd's period of cpu.max
CPU_PERIOD_DIRECTIVE, CPU_PERIOD_SINCE = "CPUQuotaPeriodSec", 242  # the systemd version that has it


def _infinity(value):
    return "infinity" if value == "max" else str(value)


def resource_directives(limits):
    """[(directive, value)] for isolation.cgroup_limits(...); UnitError for what systemd lacks."""
    if not limits:
        return []
    out = []
    if limits.get("memory_max") is not None:
        out.append(("MemoryMax", _infinity(limits["memory_max"])))
    if limits.get("memory_swap_max") is not None:
        out.append(("MemorySwapMax", _infinity(limits["memory_swap_max"])))
    cpu = limits.get("cpu_max")
    if cpu is not None and cpu != "max":
        quota, *period = cpu.split()
        if quota != "max":
            period = int(period[0]) if period else DEFAULT_CPU_PERIOD
            out.append(("CPUQuota", f"{int(quota) * 100 / period:g}%"))
            if period != DEFAULT_CPU_PERIOD:  # else the quota would be enforced per 100 ms
                span = f"{period // 1000}ms" if period % 1000 == 0 else f"{period}us"
                out.append((CPU_PERIOD_DIRECTIVE, span))
    if limits.get("cpu_weight") is not None:
        out.append(("CPUWeight", str(limits["cpu_weight"])))
    if limits.get("pids_max") is not None:
        out.append(("TasksMax", _infinity(limits["pids_max"])))
    if limits.get("io_max"):
        raise UnitError("cgroup.io_max: not supported with manager=systemd (systemd's IO*BandwidthMax= "
                        "take device paths): set it in a drop-in, or use manager=direct")
    return out


def check_host_limits(limits):
    """UnitError naming the first limit of ``limits`` (isolation.cgroup_limits) that systemd would not
    enforce on this host, with its controller. systemd writes cgroup v2 limits (memory.max, cpu.max,
    pids.max) only in its unified mode, cgroup2 mounted at /sys/fs/cgroup (the mount pyforkexec's
    find_cgroup2 picks first); under a hybrid or legacy hierarchy it maps some onto cgroup v1 files
    with other meanings, never applies MemorySwapMax=, and skips what v1 lacks with a log line only.
    In unified mode a controller the root does not offer its children (cgroup.controllers, pyforkexec's
    check_available: the one manager=direct asks) is skipped the same way: either way the service would
    run without its limit."""
    cgroup = deps.pyforkexec.sandbox.cgroup
    for field, value in (limits or {}).items():
        if value is None:
            continue
        option, controller = f"cgroup.{field}", cgroup.LIMITS[field][1]
        try:
            root = cgroup.find_cgroup2()
        except cgroup.CgroupError:
            root = None
        if root != paths.SYSTEMD_UNIFIED_ROOT:
            where = "no cgroup v2 is mounted (a legacy cgroup v1 layout)" if root is None else \
                f"cgroup v2 is at {root}, not {paths.SYSTEMD_UNIFIED_ROOT} (a hybrid cgroup v1/v2 layout)"
            raise UnitError(f"{option}: needs the {controller} controller of cgroup v2, which systemd uses "
                            f"only in its unified mode; here {where}, so systemd would not enforce the "
                            "limit as set: boot with systemd.unified_cgroup_hierarchy=1, use "
                            "manager=direct where this host's cgroup v2 has the controller, or leave the "
                            "limit out")
        try:
            cgroup.check_available(root, [controller], field=option)
        except cgroup.CgroupError as e:
            raise UnitError(f"{e.strerror}: systemd would skip the limit, and the service run without it "
                            "(use manager=direct where this host's cgroup v2 has the controller, or leave "
                            "the limit out)") from None


def render_unit(jinja2, name, exec_start, restart, stop_timeout, resources, description=None, netns=None,
                restart_sec=0.1, stop_signal="SIGTERM"):
    """The unit file text. ``jinja2`` is the module (the caller checked it can be imported); ``netns``:
    the named network namespace the service joins, whose boot-time unit it then wants and follows;
    ``stop_signal`` its KillSignal=, written only when not systemd's default (SIGTERM): the units
    written before the option stay as they are, their services not restarted for a line that changes
    nothing."""
    description = description or f"pyforkexec service {name}"
    if "\n" in description:
        raise UnitError("description: must be one line")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, keep_trailing_newline=True,
                             autoescape=False)
    env.filters["systemd_quote"] = systemd_quote
    return env.from_string(UNIT_TEMPLATE).render(
        description=description, exec_start=exec_start, restart=restart, restart_sec=restart_sec,
        stop_timeout=stop_timeout, stop_signal=stop_signal,
        resources=resources, netns_unit=paths.netns_unit_name(netns) if netns else None)


def launcher_argv(python, name):
    return [python, "-m", "pyforkexec", "exec", "--spec", paths.spec_path(name)]


_SPAN_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1, "min": 60, "h": 3600, "d": 86400, "w": 604800,
               "M": 2629800, "y": 31557600}


def parse_timespan(text):
    """Seconds of a systemd time span as ``systemctl show`` prints it ("1min 30s", "500ms"); None for
    "infinity" or what it cannot read."""
    total, text = 0.0, text.strip()
    if not text or text == "infinity":
        return None
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]*)", text):
        if (unit or "s") not in _SPAN_UNITS:
            return None
        total += float(number) * _SPAN_UNITS[unit or "s"]
    return total


class Systemctl:
    """systemctl through ``run(argv) -> (rc, stdout, stderr)`` (AnsibleModule.run_command); a name
    becomes its unit with ``unit_name`` (a service's by default)."""

    def __init__(self, run, unit_name=paths.unit_name):
        self.run = run
        self.unit_name = unit_name

    def _ok(self, *args):
        rc, out, err = self.run(["systemctl", *args])
        if rc != 0:
            detail = err.strip() or out.strip()
            raise paths.ServiceError(f"systemctl {' '.join(args)} failed ({rc}): {detail}")
        return out

    def is_active(self, name):
        return self.run(["systemctl", "is-active", "--quiet", self.unit_name(name)])[0] == 0

    def is_enabled(self, name):
        return self.run(["systemctl", "is-enabled", "--quiet", self.unit_name(name)])[0] == 0

    def show(self, name, *properties):
        """{property: value} of the unit (``systemctl show``); {} when systemctl fails."""
        rc, out = self.run(["systemctl", "show", *(f"--property={p}" for p in properties),
                            self.unit_name(name)])[:2]
        if rc != 0:
            return {}
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, name, since, lines=10):
        """The unit's last ``lines`` journal messages since ``since`` (seconds since the epoch, a
        second earlier at most): the launcher's error, systemd's word on the exit."""
        rc, out = self.run(["journalctl", "--unit", self.unit_name(name), f"--since=@{int(since)}",
                            "--output=cat", f"--lines={lines}", "--no-pager", "--quiet"])[:2]
        return out.splitlines() if rc == 0 else []

    def version(self):
        """systemd's version (``systemctl --version``'s first line), or None when it cannot be told."""
        rc, out = self.run(["systemctl", "--version"])[:2]
        match = re.match(r"systemd (\d+)", out) if rc == 0 else None
        return int(match.group(1)) if match else None

    def check_directives(self, resources):
        """UnitError naming the option when this host's systemd lacks a directive of ``resources``
        (an older one would skip it with a log line: the limit would silently not hold)."""
        if any(key == CPU_PERIOD_DIRECTIVE for key, _value in resources):
            version = self.version()
            if version is not None and version < CPU_PERIOD_SINCE:
                raise UnitError(f"cgroup.cpu_max: a period other than 100000 needs {CPU_PERIOD_DIRECTIVE}=, "
                                f"which systemd {version} lacks (since {CPU_PERIOD_SINCE}): give a "
                                f"percentage or QUOTA 100000, or use manager=direct")

    def stop_timeout(self, name):
        """The TimeoutStopSec in force for the loaded unit (what a stop now gives it), or None."""
        return parse_timespan(self.show(name, "TimeoutStopUSec").get("TimeoutStopUSec", ""))

    def stop_signal(self, name):
        """The KillSignal in force for the loaded unit (what a stop now sends), by name, or None."""
        shown = self.show(name, "KillSignal").get("KillSignal", "")
        if not shown.strip().isdigit():
            return None
        from pyforkexec import signames  # pylint: disable=import-outside-toplevel

        return signames.name(int(shown))

    def daemon_reload(self):
        self._ok("daemon-reload")

    def action(self, verb, name):
        self._ok(verb, self.unit_name(name))
