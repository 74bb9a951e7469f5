"""The systemd unit of a service: ExecStart quoting, resource directives from the cgroup limits, and
the rendered file (systemd itself reads it on a VM, in the molecule scenario)."""

from __future__ import annotations

import configparser
import shlex

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
