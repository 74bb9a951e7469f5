"""The forkexec module's mounts option run for real in a new mount namespace: every sub-option of an
entry either holds, as the child's /proc/self/mountinfo shows it, or is refused naming it before
anything runs (check mode too)."""

from __future__ import annotations

import os

import pytest
from ansible_collections.pyforkexec.isolation.plugins.modules import forkexec

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting in a new mount namespace needs root")


@pytest.fixture
def run(run_module):
    return lambda check_mode=False, **args: run_module(forkexec, args, check_mode=check_mode)


def mountinfo(run, target, mounts, namespaces=("mount",), then=""):
    """The child's mountinfo line of ``target``: ``.mount`` (its per-mount options), ``.fs`` (its
    superblock options), and ``.then``, the output of ``then`` (a shell command run after it, its
    status echoed)."""
    import types

    script = f"grep ' {target} ' /proc/self/mountinfo | tail -1; {then or 'true'}; echo status=$?"
    result = run(argv=["sh", "-c", script], namespaces=list(namespaces), mounts=mounts)
    assert result.get("rc") == 0, result
    lines = result["stdout_lines"]
    fields = lines[0].split()
    return types.SimpleNamespace(mount=set(fields[5].split(",")), then=lines[1:],
                                 fs=set(fields[fields.index("-") + 3].split(",")))


def test_a_read_only_tmpfs_is_read_only(run):
    seen = mountinfo(run, "/mnt", [dict(type="tmpfs", target="/mnt", readonly=True)],
                     then="touch /mnt/x 2>/dev/null")
    assert "ro" in seen.mount and seen.then == ["status=1"]


def test_the_flags_of_a_tmpfs_proc_and_sysfs_hold(run):
    tmpfs = dict(type="tmpfs", target="/mnt", flags=["noexec", "noatime"])
    seen = mountinfo(run, "/mnt", [tmpfs], then="touch /mnt/x")
    assert {"rw", "noexec", "noatime", "nosuid", "nodev"} <= seen.mount and seen.then == ["status=0"]
    proc = dict(type="proc", target="/mnt", readonly=True)
    seen = mountinfo(run, "/mnt", [proc], namespaces=("mount", "pid"))
    assert "ro" in seen.mount
    seen = mountinfo(run, "/mnt", [dict(type="sysfs", target="/mnt", flags=["noatime"])],
                     namespaces=("mount", "net"))
    assert {"ro", "noatime"} <= seen.mount


def test_the_flags_of_a_bind_hold(run):
    bind = dict(source="/etc", target="/mnt", flags=["noexec", "nodev"])
    seen = mountinfo(run, "/mnt", [bind], then="test -w /mnt")
    assert {"rw", "noexec", "nodev"} <= seen.mount and seen.then == ["status=0"]
    seen = mountinfo(run, "/mnt", [dict(source="/etc", target="/mnt", flags=["nosuid", "ro"])])
    assert {"ro", "nosuid"} <= seen.mount


def test_the_options_of_a_tmpfs_and_a_proc_hold(run):
    seen = mountinfo(run, "/mnt", [dict(type="tmpfs", target="/mnt", size="2m", options="nr_inodes=100")])
    assert {"size=2048k", "nr_inodes=100"} <= seen.fs
    seen = mountinfo(run, "/mnt", [dict(type="proc", target="/mnt", options="hidepid=2")],
                     namespaces=("mount", "pid"))
    assert "hidepid=invisible" in seen.fs or "hidepid=2" in seen.fs


def test_a_sysfs_is_read_only_unless_asked_otherwise(run):
    seen = mountinfo(run, "/mnt", [dict(type="sysfs", target="/mnt")], namespaces=("mount", "net"))
    assert "ro" in seen.mount
    seen = mountinfo(run, "/mnt", [dict(type="sysfs", target="/mnt", readonly=False)],
                     namespaces=("mount", "net"))
    assert "rw" in seen.mount


@pytest.mark.parametrize("flags", [["slave"], ["private", "rec"]])
def test_a_mount_with_propagation_flags_only_is_a_new_mount(run, tmp_path, flags):
    """type mount with an fstype and only a propagation type in flags (or a tmpfs with flags [slave])
    changed the propagation of what was at the target instead: no tmpfs, the host's directory shown."""
    (tmp_path / "host-file").write_text("host\n")
    target = str(tmp_path)
    mount = dict(type="mount", fstype="tmpfs", source="hide", target=target, flags=flags, options="size=1m")
    seen = mountinfo(run, target, [mount], then=f"test -e {target}/host-file")
    assert "size=1024k" in seen.fs and seen.then == ["status=1"]
    seen = mountinfo(run, target, [dict(type="tmpfs", target=target, flags=flags[:1])],
                     then=f"test -e {target}/host-file")
    assert seen.then == ["status=1"]


OPTIONS_ONLY = "filesystem options apply to a tmpfs, a proc or a mount only, not a"


@pytest.mark.parametrize(("mount", "message"), [
    (dict(source="/etc", flags=["nosiud"]), "mounts[0].flags: unknown mount flag 'nosiud'"),
    (dict(type="tmpfs", flags=["nosiud"]), "mounts[0].flags: unknown mount flag 'nosiud'"),
    (dict(source="/etc", flags=["rbind"]), "mounts[0].flags: MS_BIND|MS_REC cannot be given to a bind"),
    (dict(type="tmpfs", flags=["remount"]), "mounts[0].flags: MS_REMOUNT cannot be given to a tmpfs"),
    (dict(type="tmpfs", flags=["ro"], readonly=False), "mounts[0].flags: ro contradicts readonly false"),
    (dict(source="/etc", options="noexec"), f"mounts[0].options: {OPTIONS_ONLY} bind"),
    (dict(type="sysfs", options="x"), f"mounts[0].options: {OPTIONS_ONLY} sysfs"),
    (dict(type="dev", readonly=True), "mounts[0].readonly: only readonly false (the default) applies"),
    (dict(type="dev", flags=["noexec"]), "mounts[0].flags: only a bind, a tmpfs, a proc, a sysfs or a mount"),
    (dict(type="dev", options="size=1m"), f"mounts[0].options: {OPTIONS_ONLY} dev"),
    (dict(type="tmpfs", source="/etc"), "mounts[0].source: only a bind or a mount has a source, not a tmpfs"),
    (dict(type="proc", source="proc"), "mounts[0].source: only a bind or a mount has a source, not a proc"),
    (dict(source="/etc", fstype="ext4"), "mounts[0].fstype: only a mount names its filesystem type"),
    (dict(type="proc", size="1m"), "mounts[0].size: only a tmpfs has a size, not a proc"),
    (dict(source="/etc", mode="755"), "mounts[0].mode: only a tmpfs has a mode, not a bind"),
    (dict(type="tmpfs", recursive=False), "mounts[0].recursive: only a bind mount is recursive or not"),
    (dict(type="mount", fstype="tmpfs", source="x", recursive=False),
     "mounts[0].recursive: only a bind mount is recursive or not, not a mount"),
    (dict(type="tmpfs", idmap=True), "mounts[0].idmap: only a bind mount can be idmapped, not a tmpfs"),
    (dict(type="proc", optional=True), "mounts[0].optional: only a bind mount can be optional, not a proc"),
    (dict(type="tmpfs", size="1m", options="size=2m"), "mounts[0].options: size= is given by mounts[0].size"),
    (dict(type="mount", source="/etc", fstype="tmpfs", flags=["bind"]),
     "mounts[0].fstype: a bind mount (MS_BIND) takes no fstype"),
    (dict(type="mount", source="/etc", flags=["bind"], options="noexec"),
     "mounts[0].options: a bind mount (MS_BIND) takes no data"),
    (dict(type="mount", source="x", flags=["slave"]), "mounts[0].source: a propagation change (flags of"),
    (dict(type="mount", source="/etc", flags=["remount", "bind", "ro"]),
     "mounts[0].source: a remount with MS_BIND"),
    (dict(type="mount", source="x"), "mounts[0].fstype: a new mount needs a filesystem type"),
    (dict(type="mount", flags=["remount", "bind", "rec", "ro"]), "mounts[0].flags: MS_REC with MS_REMOUNT"),
    (dict(type="mount", flags=["remount", "ro"]), "mounts[0].flags: MS_REMOUNT without MS_BIND changes"),
    (dict(type="tmpfs", size="0"), "mounts[0]: size=0: tmpfs reads 0 as no limit"),
    (dict(type="tmpfs", options="nr_inodes=0"), "mounts[0]: nr_inodes=0: tmpfs reads 0 as no limit"),
    (dict(type="mount", source="ramfs", fstype="ramfs", options="size=1m"),
     "mounts[0].options: size=: ramfs takes mode= only"),
])
@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check mode"])
def test_a_sub_option_that_would_not_hold_is_refused_before_anything_runs(
        run, tmp_path, mount, message, check_mode):
    marker = tmp_path / "ran"
    result = run(check_mode=check_mode, argv=["touch", str(marker)], namespaces=["mount"],
                 mounts=[dict(dict(target="/mnt"), **mount)])
    assert result.get("failed") is True and result["msg"].startswith(message), result
    assert not marker.exists()


def test_a_dev_honours_mkdir(run, tmp_path):
    result = run(argv=["true"], namespaces=["mount"],
                 mounts=[dict(type="dev", target=str(tmp_path / "missing" / "dev"), mkdir=False)])
    assert result.get("failed") is True and result["msg"].startswith("mounts[0]"), result
    assert result["child_error"]["location"] == "mount", result
