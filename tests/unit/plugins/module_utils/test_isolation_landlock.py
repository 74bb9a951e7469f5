"""The landlock option and a mount's idmap: what build_sysprocattr makes of them, what it refuses, the
report of what this kernel enforces, and every pyforkexec message (validation, spawn, child step)
naming the option the user wrote."""

from __future__ import annotations

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import isolation as iso

import pyforkexec as fe
from pyforkexec.sandbox.landlock import ABI_ENV

SYSTEM = dict(path="/usr", access=["read", "execute"])


@pytest.fixture
def params(validate_args):
    return lambda **options: validate_args(iso.ISOLATION_ARGSPEC, options,
                                           mutually_exclusive=iso.ISOLATION_MUTUALLY_EXCLUSIVE)


@pytest.fixture
def built(params):
    """built(**options) -> the checked Built for ["true"]; built(on_host=False, ...) the controller's."""
    return lambda on_host=True, **options: iso.build_and_check(params(**options), ["true"], on_host=on_host)


@pytest.fixture
def refused(built):
    def message(**options):
        with pytest.raises(iso.IsolationError) as e:
            built(**options)
        return str(e.value)

    return message


def test_the_option_becomes_a_landlock_policy(built, tmp_path):
    option = dict(paths=[SYSTEM, dict(path=str(tmp_path), access=["read", "write"])],
                  ports=[dict(port=8080, access=["bind"])], scopes=["signal"])
    policy = built(landlock=option).attr.sys.landlock
    assert policy == fe.Landlock(
        paths=[fe.LandlockPath("/usr", ["read", "execute"]),
               fe.LandlockPath(str(tmp_path), ["read", "write"])],
        ports=[fe.LandlockPort(8080, ["bind"])], scopes=["signal"], mode="best_effort")
    assert built().attr.sys.landlock is None


@pytest.mark.parametrize(("landlock", "option"), [
    (dict(paths=[SYSTEM, dict(path="/usr", access=["read", "bogus"])]), "landlock.paths[1].access[1]"),
    (dict(paths=[SYSTEM, dict(path="/usr", access=[])]), "landlock.paths[1].access"),
    (dict(paths=[dict(path="/nonexistent-pfe", access=["read"])]), "landlock.paths[0].path"),
    (dict(paths=[SYSTEM, dict(path="usr", access=["read"])]), "landlock.paths[1].path"),
    (dict(paths=[dict(path="/etc/hostname", access=["read_dir"])]), "landlock.paths[0].access"),
    (dict(ports=[dict(port=80, access=["bind"]), dict(port=70000, access=["bind"])]),
     "landlock.ports[1].port"),
    (dict(ports=[dict(port=80, access=["listen"])]), "landlock.ports[0].access[0]"),
    (dict(scopes=["signal", "ptrace"]), "landlock.scopes[1]"),
])
def test_a_refused_policy_names_the_entry(refused, landlock, option):
    assert refused(landlock=landlock).startswith(option + ": ")


def test_strict_mode_refuses_naming_the_right_the_kernel_lacks(refused, built, monkeypatch):
    monkeypatch.setenv(ABI_ENV, "2")
    if fe.landlock_abi() != 2:
        pytest.skip("this kernel's Landlock ABI is below 2")
    policy = dict(paths=[SYSTEM], ports=[dict(port=8080, access=["bind", "connect"])], mode="strict")
    assert refused(landlock=policy) == (
        "landlock.ports[0].access: bind needs Landlock ABI 4, this kernel has 2: strict mode enforces "
        "every right or refuses (pyforkexec: SysProcAttr.landlock.ports[0].access)")
    # away from the host (the role's controller) the host's kernel decides: only the names are checked
    assert built(on_host=False, landlock=policy).attr.sys.landlock.mode == "best_effort"


def test_best_effort_reports_what_this_kernel_drops(built, monkeypatch):
    monkeypatch.setenv(ABI_ENV, "2")
    if fe.landlock_abi() != 2:
        pytest.skip("this kernel's Landlock ABI is below 2")
    option = dict(paths=[dict(path="/usr", access=["read", "write"])],
                  ports=[dict(port=8080, access=["bind"])], scopes=["signal"])
    policy = built(landlock=option).attr.sys.landlock
    report = iso.landlock_report(policy)
    assert report == dict(abi=2, mode="best_effort", enforced=True, dropped=[
        "landlock.paths[0].access: truncate needs Landlock ABI 3, this kernel has 2",
        "landlock.ports[0].access: bind needs Landlock ABI 4, this kernel has 2",
        "landlock.scopes: signal needs Landlock ABI 6, this kernel has 2",
        "landlock.paths: truncate needs Landlock ABI 3, this kernel has 2: it is not restricted anywhere",
        "landlock.paths: ioctl_dev needs Landlock ABI 5, this kernel has 2: it is not restricted anywhere"])
    assert iso.landlock_warning(report).startswith("landlock: this kernel (Landlock ABI 2) cannot enforce")
    monkeypatch.setenv(ABI_ENV, "0")
    assert iso.landlock_report(policy)["enforced"] is False
    assert iso.landlock_report(None) is None and iso.landlock_warning(None) is None


def test_the_controller_check_leaves_the_rule_paths_to_the_host(built, refused):
    missing = dict(path="/srv/pfe-not-here", access=["read"])
    assert refused(landlock=dict(paths=[missing])).startswith(
        "landlock.paths[0].path: /srv/pfe-not-here: No such file or directory")
    assert built(on_host=False, landlock=dict(paths=[missing])).attr.sys.landlock is not None
    with pytest.raises(iso.IsolationError) as e:
        built(on_host=False, landlock=dict(paths=[dict(missing, access=["read", "bogus"])]))
    assert str(e.value).startswith("landlock.paths[0].access[1]: unknown access right 'bogus'")


def test_spawn_and_child_errors_name_the_landlock_option(built):
    done = built(landlock=dict(paths=[SYSTEM, SYSTEM]))
    error = OSError(2, "SysProcAttr.landlock.paths[1].path: No such file or directory", "/usr")
    assert done.explain(error) == ("landlock.paths[1].path: No such file or directory: /usr "
                                   "(pyforkexec: SysProcAttr.landlock.paths[1].path)")
    child = fe.ChildError(7, fe.ErrorLocation.LANDLOCK, 0, "/usr/bin/true")
    assert done.explain(child) == f"landlock: {child}"


# ---- idmap ------------------------------------------------------------------------------------------

USERNS = dict(namespaces=["user", "mount"], uid_map=[dict(container_id=0, host_id=100000, size=1)],
              gid_map=[dict(container_id=0, host_id=100000, size=1)],
              capabilities=dict(keep=[]))  # (keeping CAP_SYS_ADMIN, the program could undo the mounts)


@pytest.mark.parametrize(("idmap", "made"), [
    (True, True), ("yes", True), (False, None), ("false", None), (None, None), ("other", "other"),
])
def test_idmap_takes_a_bool_or_a_user_namespace_path(built, tmp_path, elsewhere, idmap, made):
    if idmap == "other":  # another process's user namespace (this process's own is refused: the kernel would)
        idmap = made = elsewhere("user")
    mount = dict(source=str(tmp_path), target="/mnt", idmap=idmap)
    assert built(**USERNS, mounts=[mount]).attr.sys.mounts[0].idmap == made


def test_idmap_refusals_name_the_mount(refused, tmp_path):
    bind = dict(source=str(tmp_path), target="/mnt")
    assert refused(**USERNS, mounts=[bind, dict(bind, idmap="ns")]).startswith(
        "mounts[1].idmap: expected true")
    assert refused(**USERNS, mounts=[dict(type="tmpfs", target="/t", idmap=True)]).startswith(
        "mounts[0].idmap: only a bind mount can be idmapped, not a tmpfs")
    # pyforkexec's own rule: the command's own user namespace must exist, with maps
    assert refused(namespaces=["mount"], mounts=[dict(bind, idmap=True)]).startswith("mounts[0].idmap: ")


def test_an_idmap_step_failure_names_the_mount(built, tmp_path):
    idmapped = dict(source=str(tmp_path), target="/m", idmap=True)
    done = built(**USERNS, mounts=[dict(type="tmpfs", target="/t"), idmapped])
    for location in (fe.ErrorLocation.IDMAP, fe.ErrorLocation.MOVE_MOUNT):
        error = fe.ChildError(22, location, 1, "/usr/bin/true")
        assert done.explain(error) == f"mounts[1]: {error}"
