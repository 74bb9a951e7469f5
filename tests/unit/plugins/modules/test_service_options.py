"""The service module names the option the user wrote in every refusal, and writes nothing (issue 11)."""

from __future__ import annotations

import os

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service as svc
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
from ansible_collections.pyforkexec.isolation.plugins.modules import service


@pytest.mark.parametrize(("args", "option"), [
    (dict(user="pfe-ut-nouser"), "user"),
    (dict(user="4294967295"), "user"),
    (dict(user="nobody", group="pfe-ut-nogroup"), "group"),
    (dict(credential=dict(uid=-5)), "credential.uid"),
    (dict(stop_timeout=-1), "stop_timeout"),
    (dict(stop_signal="SIGKILL"), "stop_signal"),
    (dict(stop_signal="STOP"), "stop_signal"),
    (dict(stop_signal="NOSUCH"), "stop_signal"),
    (dict(stop_signal="0"), "stop_signal"),
    (dict(stop_signal="WINCH"), "stop_signal"),  # a signal the launcher under systemd does not pass on
    (dict(env={"A=B": "1"}), "env.A=B"),
    (dict(env={"A": "x\0y"}), "env.A"),
    (dict(namespaces=["mount"], mounts=[dict(type="dev", target="/dev"), dict(type="tmpfs", target="t")]),
     "mounts[1].target"),
    (dict(cgroup=dict(cpu_weight=0)), "cgroup.cpu_weight"),
])
def test_a_refusal_names_the_option_and_writes_nothing(run_module, unique_name, args, option):
    name = unique_name()
    result = run_module(service, dict(dict(name=name, argv=["sleep", "60"], manager="direct"), **args))
    assert result["failed"] is True and result["msg"].startswith(option + ": ")
    assert not os.path.exists(paths.spec_path(name))


@pytest.mark.parametrize("given", ["SIGINT", "INT", "int", "SigInt", "2"])
def test_a_stop_signal_is_taken_by_name_or_number_and_named_one_way(validate_args, given):
    """As systemd's KillSignal= and podman's --stop-signal take it; one spelling on the host (the daemon's
    arguments, the unit), so that another spelling of the same signal changes nothing."""
    params = validate_args(svc.ARGSPEC, dict(name="x", argv=["true"], stop_signal=given))
    assert svc.stop_signal(params) == "SIGINT"
    assert svc.stop_signal(validate_args(svc.ARGSPEC, dict(name="x", argv=["true"]))) == "SIGTERM"


@pytest.mark.parametrize("state", ["started", "restarted"])
@pytest.mark.parametrize("check_mode", [True, False])
def test_a_null_argv_is_refused_before_anything_starts(run_module, unique_name, state, check_mode):
    """Ansible's required_if takes argv given as null (a variable that came out null) as given: check
    mode planned a start, and the run wrote no spec and started a daemon that failed to read one."""
    name = unique_name()
    args = dict(name=name, argv=None, manager="direct", state=state)
    result = run_module(service, args, check_mode=check_mode)
    assert result["failed"] is True
    assert result["msg"] == f"argv: is null: state {state} needs the command to run"
    assert not os.path.exists(paths.spec_path(name)) and not os.path.exists(paths.log_file(name))


@pytest.mark.parametrize("state", ["started", "stopped"])
@pytest.mark.parametrize("check_mode", [True, False])
def test_a_relative_chdir_is_refused_before_anything_is_written(run_module, unique_name, state, check_mode):
    """With a mount namespace the host-side check cannot tell a relative chdir wrong (mounts could
    make it), but it is relative to whatever the daemon (or systemd) starts the service from: check
    mode promised a start that then failed at chdir, and state=stopped wrote a spec no start could
    run."""
    name = unique_name()
    args = dict(name=name, argv=["sleep", "60"], manager="direct", state=state, chdir="tmp",
                namespaces=["pid", "mount"], mounts=[dict(type="proc", target="/proc")])
    result = run_module(service, args, check_mode=check_mode)
    assert result["failed"] is True and result["msg"].startswith("chdir: 'tmp' is not an absolute path")
    assert not os.path.exists(paths.spec_path(name))


def test_under_systemd_the_limits_are_checked_though_the_spec_has_no_cgroup(validate_args):
    params = validate_args(svc.ARGSPEC, dict(name="x", argv=["true"], cgroup=dict(memory_max="64M")))
    assert svc.launch_attr(params, "x", "systemd", on_host=False).attr.sys.cgroup is None
    params = validate_args(svc.ARGSPEC, dict(name="x", argv=["true"], cgroup=dict(cpu_weight=0)))
    with pytest.raises(svc.IsolationError, match=r"^cgroup.cpu_weight: must be between 1 and 10000"):
        svc.launch_attr(params, "x", "systemd")


def test_under_systemd_a_limit_this_host_would_not_enforce_is_refused(validate_args):
    """The module's path to its files (spec_text, check mode too, before anything is written or
    started) asks this host's real cgroup tree whether systemd would enforce each limit: here (a hybrid
    layout, v2 at /sys/fs/cgroup/unified without the memory controller) it would not."""
    params = validate_args(svc.ARGSPEC, dict(name="x", argv=["true"], cgroup=dict(memory_max="64M")))
    try:
        svc.systemd.check_host_limits(svc.cgroup_limits(params["cgroup"]))
    except svc.systemd.UnitError as e:
        refused = r"^cgroup\.memory_max: .*\bmemory controller"
        with pytest.raises(svc.systemd.UnitError, match=refused) as raised:
            svc.launch_attr(params, "x", "systemd")
        assert str(raised.value) == str(e)
    else:  # systemd's unified hierarchy offers the memory controller here
        assert svc.launch_attr(params, "x", "systemd").attr.sys.cgroup is None


def test_under_the_daemon_the_service_s_cgroup_ends_with_it(validate_args):
    """manager=direct: the service's cgroup is its own, and what it leaves there is killed when it
    ends (Cgroup.kill_remaining), as systemd ends a unit's control group."""
    params = validate_args(svc.ARGSPEC, dict(name="x", argv=["true"], cgroup=dict(path="pyforkexec-ut/x")))
    cgroup = svc.launch_attr(params, "x", "direct").attr.sys.cgroup
    assert cgroup.path == "pyforkexec-ut/x" and cgroup.kill_remaining is True


@pytest.fixture
def warned(monkeypatch):
    """The module's warnings (in-process, Ansible shows them on the controller's display)."""
    from ansible.module_utils.basic import AnsibleModule

    messages = []
    monkeypatch.setattr(AnsibleModule, "warn", lambda self, message, **kwargs: messages.append(message))
    return messages


def test_a_description_under_the_daemon_is_said_to_be_ignored(run_module, unique_name, warned):
    """description is the systemd unit's Description=: with manager=direct nothing showed it, and the
    task said nothing of that (enabled, which is as meaningless there, warns)."""
    name = unique_name()
    args = dict(name=name, argv=["sleep", "60"], manager="direct", description="the web front")
    try:
        result = run_module(service, args)
        assert result.get("failed") is not True and result["state"] == "started", result
        assert [m for m in warned if m.startswith("description: ")] == [
            f"description: only a systemd unit shows it (its Description=), nothing does with "
            f"manager=direct; ignored for service {name}"]
        warned.clear()
        run_module(service, dict(args, description=None))
        assert not [m for m in warned if m.startswith("description: ")]
    finally:
        gone = run_module(service, dict(name=name, state="absent"))
        assert gone.get("failed") is not True, gone


@pytest.mark.parametrize(("given", "argv", "refused"), [
    ("INT", None, True), ("TERM", None, False), (None, None, False), ("INT", ["sleep", "60"], False)])
def test_under_systemd_a_stop_with_another_stop_signal_than_the_loaded_unit_s_is_refused(
        validate_args, monkeypatch, given, argv, refused):
    """systemctl stop sends the loaded unit's KillSignal (here SIGTERM, as systemctl shows it: 15): a stop
    asked with another is refused before anything stops, unless state=stopped rewrites the unit with it
    (argv given). (PID 1 is not systemd here: systemctl answers as it would for an active unit.)"""
    params = validate_args(svc.ARGSPEC, dict(name="h131-sd", state="stopped", manager="systemd", argv=argv,
                                             stop_signal=given))
    asked = []

    def run(argv, **_kwargs):
        asked.append(argv)
        if argv[1] == "show":
            return 0, "KillSignal=15\n", ""
        return 0, "", ""  # is-active: active

    class Module:
        check_mode = True

        def __init__(self):
            self.params, self.run_command = params, run

        def warn(self, message):
            raise AssertionError(message)

    monkeypatch.setattr(paths, "systemd_booted", lambda: True)
    if refused:
        with pytest.raises(paths.ServiceError) as e:
            svc.Service(Module())
        assert str(e.value) == ("stop_signal: unit pyforkexec-h131-sd.service is loaded with "
                                "KillSignal=SIGTERM, which systemctl stop sends: a stop cannot send SIGINT; "
                                "give its argv (state=stopped rewrites the unit with it), or leave "
                                "stop_signal out")
    else:
        svc.Service(Module())
    assert all(a[1] in ("is-active", "show") for a in asked), asked  # nothing stopped or changed
