"""The systemd unit of a service: ExecStart quoting, resource directives from the cgroup limits, and
the rendered file (systemd itself reads it on a VM, in the molecule scenario)."""

from __future__ import annotations

import configparser
import json
import os
import shlex
import subprocess
import sys

import jinja2
import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_systemd as unit
from ansible_collections.pyforkexec.isolation.plugins.module_utils.isolation import cgroup_limits


@pytest.mark.parametrize(("arg", "word"), [
    ("plain", "plain"),
    ("/usr/bin/python3", "/usr/bin/python3"),
    ("two words", '"two words"'),
    ('say "hi"', '"say \\"hi\\""'),
    ("back\\slash", '"back\\\\slash"'),
    ("100%", "100%%"),
    ("$HOME", "$$HOME"),
    (";", '";"'),
    ("", '""'),
])
def test_systemd_quote(arg, word):
    assert unit.systemd_quote(arg) == word


def limits(**cgroup):
    return cgroup_limits(dict(dict(memory_max=None, memory_swap_max=None, cpu_max=None, cpu_weight=None,
                                   pids_max=None, io_max=None), **cgroup))


def test_resource_directives_from_cgroup_limits():
    assert unit.resource_directives(None) == []
    found = unit.resource_directives(limits(memory_max="256M", memory_swap_max="max", cpu_max="50%",
                                            cpu_weight=20, pids_max=64))
    assert found == [("MemoryMax", str(256 << 20)), ("MemorySwapMax", "infinity"), ("CPUQuota", "50%"),
                     ("CPUWeight", "20"), ("TasksMax", "64")]
    assert unit.resource_directives(limits(cpu_max="200000 100000")) == [("CPUQuota", "200%")]
    assert unit.resource_directives(limits(cpu_max="25000")) == [("CPUQuota", "25%")]
    assert unit.resource_directives(limits(cpu_max="max", pids_max="max")) == [("TasksMax", "infinity")]


def test_a_cpu_period_other_than_the_default_is_kept():
    """cpu.max "20000 50000" is 20 ms per 50 ms, as manager=direct writes it: CPUQuota=40% alone would
    be 40 ms per 100 ms (bursts twice as long)."""
    assert unit.resource_directives(limits(cpu_max="20000 50000")) == [
        ("CPUQuota", "40%"), ("CPUQuotaPeriodSec", "50ms")]
    assert unit.resource_directives(limits(cpu_max="1500 2500")) == [
        ("CPUQuota", "60%"), ("CPUQuotaPeriodSec", "2500us")]
    assert unit.resource_directives(limits(cpu_max="50000 100000")) == [("CPUQuota", "50%")]
    text = render(resources=unit.resource_directives(limits(cpu_max="20000 50000")))
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(text)
    assert parser["Service"]["CPUQuota"] == "40%"
    assert parser["Service"]["CPUQuotaPeriodSec"] == "50ms"


@pytest.mark.parametrize(("version", "refused"), [("systemd 241 (241)", True),
                                                  ("systemd 252 (252.39-1)", False)])
def test_a_cpu_period_is_refused_by_a_systemd_that_lacks_its_directive(version, refused):
    systemctl = unit.Systemctl(lambda argv: (0, version + "\n+PAM +AUDIT\n", ""))
    period = unit.resource_directives(limits(cpu_max="20000 50000"))
    if refused:
        with pytest.raises(unit.UnitError, match=r"cgroup\.cpu_max: .*CPUQuotaPeriodSec=.*systemd 241"):
            systemctl.check_directives(period)
    else:
        systemctl.check_directives(period)
    systemctl.check_directives(unit.resource_directives(limits(cpu_max="50%")))  # no period: no question


@pytest.mark.parametrize(("shown", "seconds"), [
    ("10s", 10), ("1min 30s", 90), ("500ms", 0.5), ("0", 0), ("2h 1min", 7260), ("infinity", None),
    ("", None)])
def test_the_stop_timeout_in_force_is_read_as_systemctl_shows_it(shown, seconds):
    assert unit.parse_timespan(shown) == seconds
    systemctl = unit.Systemctl(lambda argv: (0, f"TimeoutStopUSec={shown}\n", ""))
    assert systemctl.stop_timeout("web") == seconds


def test_io_max_is_refused_with_the_alternative():
    with pytest.raises(unit.UnitError, match=r"cgroup\.io_max: not supported with manager=systemd"):
        unit.resource_directives(limits(io_max=["8:0 rbps=1000"]))


# Each cgroup limit with a value, and the controller it needs.
HOST_LIMITS = [(dict(memory_max="64M"), "memory"), (dict(memory_swap_max="0"), "memory"),
               (dict(cpu_max="50%"), "cpu"), (dict(cpu_weight=20), "cpu"), (dict(pids_max=64), "pids")]


def _cgroup2_mounts():
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split(" - ")[1].split()[0] == "cgroup2"]


@pytest.mark.parametrize(("cgroup", "controller"), HOST_LIMITS)
def test_a_limit_systemd_would_not_enforce_on_this_host_is_refused(cgroup, controller):
    """systemd skips, with a log line only, a limit whose cgroup v2 controller its hierarchy lacks (and
    on a hybrid or legacy one writes none in cgroup v2): the unit would start its service without it.
    Asked of this host's real cgroup tree: refused here (hybrid, v2 at /sys/fs/cgroup/unified with no
    such controller), naming the option and the controller, unless systemd's unified hierarchy offers it."""
    (field,) = cgroup
    if "/sys/fs/cgroup" not in _cgroup2_mounts():
        with pytest.raises(unit.UnitError, match=rf"^cgroup\.{field}: needs the {controller} controller of "
                           r"cgroup v2, which systemd uses only in its unified mode; here "):
            unit.check_host_limits(limits(**cgroup))
        return
    with open("/sys/fs/cgroup/cgroup.controllers") as f:
        offered = f.read().split()
    if controller in offered:
        unit.check_host_limits(limits(**cgroup))
    else:
        with pytest.raises(unit.UnitError, match=rf"^cgroup\.{field}: the {controller} controller is not "
                           r"available in /sys/fs/cgroup "):
            unit.check_host_limits(limits(**cgroup))


def test_no_limit_asks_nothing_of_the_host():
    unit.check_host_limits(None)
    unit.check_host_limits(limits())


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting cgroup2 in a new mount namespace needs root")
@pytest.mark.skipif(not _cgroup2_mounts(), reason="no cgroup v2 hierarchy on this host")
def test_in_unified_mode_the_root_must_offer_the_controller():
    """systemd's unified layout (cgroup2 at /sys/fs/cgroup), made real in a private mount namespace
    with this host's cgroup2 mounted there: the check follows that hierarchy's cgroup.controllers."""
    code = """if True:
        import json, subprocess, sys
        subprocess.run(["mount", "-t", "cgroup2", "none", "/sys/fs/cgroup"], check=True)
        from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_systemd as unit
        from ansible_collections.pyforkexec.isolation.plugins.module_utils.isolation import cgroup_limits
        base = dict(memory_max=None, memory_swap_max=None, cpu_max=None, cpu_weight=None, pids_max=None,
                    io_max=None)
        out = {}
        for field, value in json.loads(sys.argv[1]):
            try:
                unit.check_host_limits(cgroup_limits(dict(base, **{field: value})))
                out[field] = None
            except unit.UnitError as e:
                out[field] = str(e)
        out["offered"] = open("/sys/fs/cgroup/cgroup.controllers").read().split()
        print(json.dumps(out))
    """
    asked = [next(iter(cgroup.items())) for cgroup, _controller in HOST_LIMITS]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, "-c", code,
                           json.dumps(asked)], capture_output=True, text=True, env=env, check=True)
    found = json.loads(done.stdout)
    for cgroup, controller in HOST_LIMITS:
        (field,) = cgroup
        if controller in found["offered"]:
            assert found[field] is None, found
        else:
            assert found[field].startswith(f"cgroup.{field}: the {controller} controller is not available "
                                           "in /sys/fs/cgroup "), found


def render(**kw):
    args = dict(name="web", exec_start=unit.launcher_argv("/opt/venv/bin/python", "web"),
                restart="on-failure", stop_timeout=10, resources=[])
    args.update(kw)
    return unit.render_unit(jinja2, **args)


def test_the_rendered_unit():
    assert render(resources=[("MemoryMax", "1024"), ("TasksMax", "64")]) == """\
# Managed by Ansible (pyforkexec.isolation.service): change the task, not this file.
[Unit]
Description=pyforkexec service web
Wants=network-online.target
After=network-online.target

[Service]
Type=notify
NotifyAccess=main
ExecStart=/opt/venv/bin/python -m pyforkexec exec --spec /etc/pyforkexec/web.json
Restart=on-failure
RestartSec=0.1
KillMode=mixed
TimeoutStopSec=10
MemoryMax=1024
TasksMax=64

[Install]
WantedBy=multi-user.target
"""


def test_exec_start_splits_back_into_the_launcher_argv():
    argv = ["/opt/my venv/bin/python", "-m", "pyforkexec", "exec", "--spec", "/etc/pyforkexec/a b.json"]
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.read_string(render(exec_start=argv, restart="no", description="A 100% web"))
    assert shlex.split(parser["Service"]["ExecStart"]) == argv
    assert parser["Service"]["Restart"] == "no"
    assert parser["Unit"]["Description"] == "A 100% web"


def test_restart_sec_is_the_units_restart_delay():
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.read_string(render(restart_sec=2.5))
    assert parser["Service"]["RestartSec"] == "2.5"


def test_the_stop_signal_is_the_units_kill_signal():
    """KillSignal= (to the launcher, the unit's main process with KillMode=mixed, which passes it on);
    none for SIGTERM, systemd's default: a unit written before stop_signal reads the same, and its
    service is not restarted for a line that changes nothing."""
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.read_string(render(stop_signal="SIGINT"))
    assert parser["Service"]["KillSignal"] == "SIGINT"
    assert parser["Service"]["KillMode"] == "mixed"
    assert render(stop_signal="SIGTERM") == render()
    assert "KillSignal" not in render()


@pytest.mark.parametrize(("shown", "name"), [("15", "SIGTERM"), ("2", "SIGINT"), ("", None), ("x", None)])
def test_the_stop_signal_in_force_is_read_as_systemctl_shows_it(shown, name):
    systemctl = unit.Systemctl(lambda argv: (0, f"KillSignal={shown}\n", ""))
    assert systemctl.stop_signal("web") == name


def test_a_description_is_one_line():
    with pytest.raises(unit.UnitError, match="description: must be one line"):
        render(description="two\nlines")


def test_systemctl_runs_through_the_given_runner():
    calls = []

    def run(argv):
        calls.append(argv)
        return (0 if argv[1] != "is-enabled" else 1), "", ""

    ctl = unit.Systemctl(run)
    ctl.action("restart", "web")
    assert ctl.is_active("web") is True and ctl.is_enabled("web") is False
    assert calls == [["systemctl", "restart", "pyforkexec-web.service"],
                     ["systemctl", "is-active", "--quiet", "pyforkexec-web.service"],
                     ["systemctl", "is-enabled", "--quiet", "pyforkexec-web.service"]]
    with pytest.raises(unit.paths.ServiceError, match=r"systemctl daemon-reload failed \(1\): no bus"):
        unit.Systemctl(lambda argv: (1, "", "no bus\n")).daemon_reload()


def test_a_service_in_a_named_netns_wants_and_follows_its_boot_unit():
    text = render(netns="web-ns")
    assert "Wants=pyforkexec-netns@web-ns.service\nAfter=pyforkexec-netns@web-ns.service\n" in text
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read_string(text)
    assert parser["Unit"]["Description"] == "pyforkexec service web"
    assert "pyforkexec-netns@" not in render()  # no netns, no dependency


def test_systemctl_names_other_units_through_unit_name():
    calls = []
    ctl = unit.Systemctl(lambda argv: calls.append(argv) or (0, "", ""), unit_name=unit.paths.netns_unit_name)
    ctl.action("enable", "web")
    assert ctl.is_active("web")
    assert calls == [["systemctl", "enable", "pyforkexec-netns@web.service"],
                     ["systemctl", "is-active", "--quiet", "pyforkexec-netns@web.service"]]
