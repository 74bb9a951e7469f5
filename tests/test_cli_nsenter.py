"""``pyforkexec nsenter`` joins the namespaces of a running process, beside util-linux nsenter(1)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.cli import PYFORKEXEC, Background, both, ns_link, pfe, run, run_as, util_linux, wait_for
from helpers.forked import NOBODY, run_in_fork
from helpers.marks import needs_root
from unit.plugins import pid_reuse

pytestmark = needs_root
NS = ("cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts")
# Links read by a child of the shell: in every namespace the shell is in (the pid one included).
SHOW_NS = "for n in " + " ".join(NS) + "; do readlink /proc/self/ns/$n; done"


def _container(*extra: str, cwd: str = "/") -> Background:
    """A process in new user/mount/uts/ipc/net/pid/cgroup/time namespaces (made by util-linux), with
    hostname ``target``; it is killed with the launcher."""
    argv = [util_linux("unshare"), "--map-root-user", "--mount", "--uts", "--ipc", "--net", "--pid",
            "--cgroup", "--time", "--fork", "--kill-child", "--mount-proc", *extra, "sh", "-c",
            f"cd {cwd}; hostname target; export MARK=from-target; echo ready; exec sleep 60"]
    bg = Background(argv)
    assert bg.readline() == "ready"
    return bg


@pytest.fixture
def container() -> Iterator[int]:
    bg = _container()
    try:
        yield bg.child()
    finally:
        bg.stop()


def links_of(pid: int) -> list[str]:
    return [ns_link(n, pid) for n in NS]


def test_all_joins_every_namespace_of_the_target(container: int) -> None:
    script = SHOW_NS + "; hostname; id -u"
    ours, theirs = both("nsenter", "--target", str(container), "--all", "sh", "-c", script)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    lines = ours.stdout.split()
    assert lines[:len(NS)] == links_of(container)
    assert lines[len(NS):] == ["target", "0"]


def test_the_command_is_inside_the_pid_namespace(container: int) -> None:
    ours, theirs = both("nsenter", "-t", str(container), "-a", "sh", "-c", "echo $$; cat /proc/1/comm")
    assert ours.returncode == 0, ours.stderr
    first, comm = ours.stdout.split()
    assert int(first) > 1 and comm == "sleep"
    assert theirs.stdout.split()[1] == "sleep"


def test_no_fork_leaves_the_command_outside_the_pid_namespace(container: int) -> None:
    script = 'readlink /proc/$$/ns/pid; readlink /proc/$$/ns/pid_for_children'
    ours, theirs = both("nsenter", "-t", str(container), "--pid", "--no-fork", "sh", "-c", script)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout == f"{ns_link('pid')}\n{ns_link('pid', container)}\n"


@pytest.mark.parametrize("option,name", [("-u", "uts"), ("-n", "net"), ("-i", "ipc"), ("-C", "cgroup"),
                                         ("-T", "time"), ("-U", "user")])
def test_one_namespace(container: int, option: str, name: str) -> None:
    ours, theirs = both("nsenter", "-t", str(container), option, "sh", "-c", SHOW_NS)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    joined = dict(zip(NS, ours.stdout.split()))
    assert joined[name] == ns_link(name, container)
    assert {n for n in NS if joined[n] != ns_link(n)} == {name}


def test_mount_namespace(container: int) -> None:
    # The target's /proc belongs to its pid namespace, whose pid 1 is the target.
    ours, theirs = both("nsenter", "-t", str(container), "-m", "cat", "/proc/1/comm")
    assert ours.stdout == theirs.stdout == "sleep\n"
    assert run(["cat", "/proc/1/comm"]).stdout != "sleep\n"


def test_user_namespace_sets_root_unless_preserve_credentials(container: int) -> None:
    t = str(container)
    ours, theirs = both("nsenter", "-t", t, "-U", "-u", "sh", "-c", "id -u; id -g")
    assert ours.stdout == theirs.stdout == "0\n0\n"
    ours, theirs = both("nsenter", "-t", t, "-U", "--preserve-credentials", "sh", "-c", "id -u")
    assert ours.stdout == theirs.stdout
    assert ours.returncode == 0, ours.stderr


def test_setns_file_of_a_named_netns(netns: str) -> None:
    ours, theirs = both("nsenter", f"--net={netns}", "readlink", "/proc/self/ns/net")
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout == f"net:[{os.stat(netns).st_ino}]\n"


def test_unprivileged_user_enters_its_own_container() -> None:
    def inside() -> tuple[int, str, str]:
        bg = _container()
        try:
            t = str(bg.child())
            res = run([PYFORKEXEC, "nsenter", "-t", t, "-U", "-u", "-m", "-p", "sh", "-c",
                       "id -u; hostname; cat /proc/1/comm"])
            return res.returncode, res.stdout, res.stderr
        finally:
            bg.stop()

    code, out, err = run_in_fork(inside, uid=NOBODY)
    assert code == 0, err
    assert out == "0\ntarget\nsleep\n"


def test_target_working_directory_and_root() -> None:
    bg = _container(cwd="/tmp")
    try:
        t = str(bg.child())
        ours, theirs = both("nsenter", "-t", t, "-m", "-U", "--wd", "--root", "pwd")
        assert ours.returncode == 0, ours.stderr
        assert ours.stdout == theirs.stdout == "/tmp\n"
    finally:
        bg.stop()


@pytest.mark.parametrize("args", [["--mount=/proc/self/ns/mnt"], ["-t", "SELF", "-m"], ["-a", "-t", "SELF"]],
                         ids=" ".join)
def test_joining_our_own_mount_namespace_moves_to_its_root(tmp_path: Path, args: list[str]) -> None:
    """setns(CLONE_NEWNS) sets the root and working directory to the namespace's root, even one's own."""
    args = [str(os.getpid()) if a == "SELF" else a for a in args]  # this process shares our namespaces
    ours, theirs = both("nsenter", *args, "pwd", cwd=tmp_path)
    assert (ours.returncode, ours.stderr) == (0, "")
    assert ours.stdout == theirs.stdout == "/\n"


def test_joining_our_own_mount_namespace_leaves_a_chroot(tmp_path: Path) -> None:
    """A chrooted caller (a copy of / whose /tmp is an empty tmpfs, in a mount namespace of its own):
    the program runs at the namespace's root, where the marker file in /tmp is seen, as nsenter's does."""
    root, marker = tmp_path / "root", tmp_path / "marker"
    root.mkdir()
    marker.touch()
    check = f"test -e {marker} && echo namespace root || echo chroot"

    def chrooted(command: str) -> str:
        script = (f"mount --rbind / {root} && mount -t tmpfs pfe-test {root}/tmp && "
                  f"exec chroot {root} {command} sh -c '{check}'")
        res = run([util_linux("unshare"), "--mount", "sh", "-c", script])
        assert res.returncode == 0, res
        return res.stdout

    assert chrooted("") == "chroot\n"
    join = "--mount=/proc/self/ns/mnt"
    ours, theirs = chrooted(f"{PYFORKEXEC} nsenter {join}"), chrooted(f"{util_linux('nsenter')} {join}")
    assert ours == theirs == "namespace root\n"


def test_target_environment(container: int) -> None:
    # (util-linux 2.38 has no --env; newer releases do.)
    res = pfe("nsenter", "-t", str(container), "-u", "--env", "sh", "-c", 'echo "$MARK"')
    assert res.stdout == "from-target\n"


def test_wdns(container: int) -> None:
    ours = pfe("nsenter", "-t", str(container), "-m", "-U", "--wdns=/proc", "pwd")
    assert ours.stdout == "/proc\n", ours.stderr
    reference = util_linux("nsenter")
    if "--wdns" not in run([reference, "--help"]).stdout:  # 2.38 has it, 2.36 (Debian 11) not
        pytest.skip(f"{run([reference, '--version']).stdout.strip()} has no --wdns to compare with")
    theirs = run([reference, "-t", str(container), "-m", "-U", "--wdns=/proc", "pwd"])
    assert theirs.stdout == ours.stdout


def test_join_cgroup(container: int, cgroup_dir: tuple[str, str]) -> None:
    path, shown = cgroup_dir
    with open(os.path.join(path, "cgroup.procs"), "w") as f:
        f.write(str(container))
    try:
        res = pfe("nsenter", "-t", str(container), "--join-cgroup", "-u", "cat", "/proc/self/cgroup")
    finally:
        with open(os.path.join(os.path.dirname(path), "cgroup.procs"), "w") as f:
            f.write(str(container))  # out again, so that the fixture can remove the cgroup
    assert res.returncode == 0, res.stderr
    assert f"0::{shown}\n" in res.stdout


def test_exit_status_and_missing_program(container: int) -> None:
    t = str(container)
    ours, theirs = both("nsenter", "-t", t, "-u", "sh", "-c", "exit 9")
    assert ours.returncode == theirs.returncode == 9
    ours, theirs = both("nsenter", "-t", t, "-u", "/nonexistent")
    assert ours.returncode == theirs.returncode == 127


def _gone_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid  # no longer exists


def test_a_target_that_does_not_exist_is_a_setup_failure() -> None:
    pid = _gone_pid()
    res = pfe("nsenter", "-t", str(pid), "-u", "true")
    assert res.returncode == 125
    assert str(pid) in res.stderr


def test_no_namespace_is_a_usage_error() -> None:
    # As newer util-linux releases (2.38 then runs the program unchanged).
    res = pfe("nsenter", "-t", "1", "true")
    assert res.returncode == 1
    assert "no namespace specified" in res.stderr


def test_target_given_twice_the_last_one_counts(container: int) -> None:
    # util-linux's getopt loop keeps the last --target (a repeated -t is no usage error there).
    gone, t = str(_gone_pid()), str(container)
    ours, theirs = both("nsenter", "-t", gone, "-t", t, "-u", "hostname")
    assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
    assert ours.stdout == theirs.stdout == "target\n"
    ours, theirs = both("nsenter", "-t", t, "--target", gone, "-u", "hostname")
    assert (ours.returncode, theirs.returncode) == (125, 1)  # util-linux: no usage/set-up difference
    assert ours.stdout == theirs.stdout == ""
    assert gone in ours.stderr and gone in theirs.stderr


@pytest.mark.parametrize("args,words", [
    (["-t", "abc", "-u"], "--target"),
    (["-u"], "no target PID"),
    (["-t", "1", "-u", "--setuid=x"], "--setuid"),
    (["--wd=/", "--wdns=/", "-t", "1", "-u"], "--wd"),
    (["--frobnicate"], "--frobnicate"),
])
def test_bad_options_exit_1(args: list[str], words: str) -> None:
    ours, theirs = both("nsenter", *args, "true")
    assert ours.returncode == theirs.returncode == 1, (ours.stderr, theirs.stderr)
    assert words in ours.stderr


@pytest.mark.parametrize("by", ["target", "file"])
def test_a_user_namespace_that_denies_setgroups_leaves_no_supplementary_group(container: int,
                                                                            by: str) -> None:
    """The container's user namespace denies setgroups (util-linux's -r): entered by its file as well
    as by --target, the command runs with no supplementary group, as nsenter's, which drops them
    before it enters (here the launcher does); it failed at setgroups by file, and by --target kept
    the caller's."""
    with open(f"/proc/{container}/setgroups") as f:
        assert f.read().strip() == "deny"
    user = ["-t", str(container), "-U"] if by == "target" else [f"--user=/proc/{container}/ns/user"]
    script = "id -u; grep '^Groups:' /proc/self/status"
    args = ["nsenter", *user, f"--net=/proc/{container}/ns/net", "sh", "-c", script]
    with_a_group = ["setpriv", "--groups=100", "--"]  # a caller with a supplementary group to drop
    ours = run([*with_a_group, PYFORKEXEC, *args])
    theirs = run([*with_a_group, util_linux("nsenter"), *args[1:]])
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout and ours.stdout.split() == ["0", "Groups:"]


def test_a_bare_namespace_option_takes_the_targets_over_a_file_in_any_order(container: int) -> None:
    """nsenter (util-linux 2.38) opens the target's namespace for every type given bare once all options
    are read: it replaces a --TYPE=FILE of that type, before or after it. util-linux 2.41 (Debian 13)
    lets the file win instead: there ours is checked alone."""
    other = _container()
    file_wins = []
    try:
        theirs_file = f"--net=/proc/{other.child()}/ns/net"
        for args in (["-n", theirs_file], [theirs_file, "-n"]):
            ours, theirs = both("nsenter", "-t", str(container), *args, "readlink", "/proc/self/ns/net")
            assert ours.returncode == theirs.returncode == 0, ours.stderr + theirs.stderr
            assert ours.stdout.strip() == ns_link("net", container), args
            if theirs.stdout.strip() == ns_link("net", other.child()):
                file_wins.append(args)
            else:
                assert theirs.stdout == ours.stdout, args
    finally:
        other.stop()
    if file_wins:
        version = run([util_linux("nsenter"), "--version"]).stdout.strip()
        pytest.skip(f"{version} lets --net=FILE win over a bare -n ({file_wins}): ours checked alone")


@pytest.mark.parametrize("option", ["--net", "--uts", "--ipc", "--mount", "--pid", "--cgroup", "--user"])
def test_a_file_of_our_own_namespace_as_util_linux_takes_it(option: str) -> None:
    """A join of one's own namespace changes nothing, and util-linux lets it through (setns of one's
    own user namespace fails: EINVAL). pyforkexec refuses a join of the caller's own namespace (the
    program would run where it is, as if no join had been asked), so the command line leaves such a
    file out: the same status as util-linux, the same namespaces."""
    name = {"--mount": "mnt"}.get(option, option[2:])
    script = f"readlink /proc/self/ns/{name}"
    ours, theirs = both("nsenter", f"{option}=/proc/self/ns/{name}", "--", "sh", "-c", script)
    expected = 1 if option == "--user" else 0
    assert ours.returncode == theirs.returncode == expected, ours.stderr + theirs.stderr
    assert ours.stdout == theirs.stdout
    if option == "--user":
        assert len(ours.stderr.splitlines()) == 1


def test_a_caller_that_cannot_drop_its_groups_fails_as_nsenter_does(world_dir: Path) -> None:
    """uid 65534 with the supplementary group 4 enters, with -U, a user namespace that denies setgroups:
    util-linux's nsenter cannot drop the group (before the join it is no root, after it setgroups is
    denied) and fails; ours ran the command with group 4 kept, which still opened the host's files of
    that group. Now it fails too, before any process; --preserve-credentials keeps them knowingly."""
    as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}"]
    holder = Background([*as_nobody, "--clear-groups", util_linux("unshare"), "-r", "sleep", "60"], cwd="/")
    try:
        wait_for(lambda: _user_ns_of(holder.proc.pid) != ns_link("user"), "the holder's user namespace")
        secret = world_dir / "adm-only"
        secret.write_text("secret\n")
        os.chown(secret, 0, 4)
        secret.chmod(0o640)
        args = ["-t", str(holder.proc.pid), "-U", "cat", str(secret)]
        preserve = [PYFORKEXEC, "nsenter", "--preserve-credentials", *args]
        ours, theirs, kept = run_as(NOBODY, [
            [*as_nobody, "--groups=4", PYFORKEXEC, "nsenter", *args],
            [*as_nobody, "--groups=4", util_linux("nsenter"), *args],
            [*as_nobody, "--groups=4", *preserve]], cwd="/")
        assert theirs.returncode == ours.returncode == 1 and "secret" not in ours.stdout, ours
        assert ours.stderr.startswith("pyforkexec nsenter: setgroups failed: ")
        assert len(ours.stderr.splitlines()) == 1
        assert kept.returncode == 0 and kept.stdout == "secret\n", kept
    finally:
        holder.stop()


def _user_ns_of(pid: int) -> str:
    try:
        return ns_link("user", pid)
    except OSError:
        return ""



def test_a_target_whose_mount_namespace_cannot_be_opened_is_named_not_root() -> None:
    """-m into a zombie (its namespaces are gone): the message named --root, which was not given;
    util-linux names the namespace file, and so does this now."""
    holder = Background(["sh", "-c", "sleep 0 & echo $!; exec sleep 60"], cwd="/")
    try:
        zombie = int(holder.readline())
        wait_for(lambda: _state(zombie) == "Z", "a zombie")
        res = pfe("nsenter", "-t", str(zombie), "-m", "true")
        assert res.returncode == 125 and "--root" not in res.stderr, res
        cannot = (f"pyforkexec: --target={zombie}: cannot open /proc/{zombie}/ns/mnt: No such file or "
                  "directory\n")
        assert res.stderr == cannot, res
        res = pfe("nsenter", "-t", str(zombie), "--all", "true")
        assert (res.returncode, res.stderr) == (125, cannot), res
    finally:
        holder.stop()


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


@pytest.mark.parametrize(("where", "command", "shown"), [
    ("root/usr", "pwd", "/usr\n"),  # under the new root: seen there as /usr
    ("work", "ls", "h60-marker\n"),  # outside it: the program still starts there (nsenter's fchdir)
])
def test_wd_without_the_mount_namespace_is_found_before_the_root(
        container: int, tmp_path: Path, where: str, command: str, shown: str) -> None:
    """nsenter opens --wd where it is called, before the chroot, and fchdir()s to it after: with no
    mount namespace entered, -r ROOT -w DIR starts the program in the host's DIR. Here it was looked
    for inside ROOT (ROOT/DIR) and the child failed at chdir (status 125)."""
    root, work = tmp_path / "root", tmp_path / "work"
    root.mkdir()
    work.mkdir()
    (work / "h60-marker").touch()
    wd = tmp_path / where

    def enter(nsenter: str) -> tuple[int, str, str]:
        # ROOT: a copy of / (in a mount namespace of the caller's own), where ROOT/DIR does not exist
        script = f"mount --rbind / {root} && exec {nsenter} -t {container} -u -r{root} -w{wd} {command}"
        res = run([util_linux("unshare"), "--mount", "sh", "-c", script])
        return res.returncode, res.stdout, res.stderr

    ours, theirs = enter(f"{PYFORKEXEC} nsenter"), enter(util_linux("nsenter"))
    assert ours == (0, shown, ""), ours
    assert theirs[:2] == ours[:2]


def test_wd_without_the_mount_namespace_keeps_relative_paths_of_the_caller(container: int,
                                                                           tmp_path: Path) -> None:
    """The launcher moves to --wd itself: a relative --root is still taken from where it was called."""
    (tmp_path / "root").mkdir()
    script = (f"mount --rbind / root && exec {PYFORKEXEC} nsenter -t {container} -u -rroot "
              f"-w{tmp_path}/root/usr pwd")
    res = run([util_linux("unshare"), "--mount", "sh", "-c", script], cwd=tmp_path)
    assert (res.returncode, res.stdout, res.stderr) == (0, "/usr\n", ""), res


def _mapped_root() -> Background:
    """A process that is root in a user namespace of its own, mapped to the host's uid/gid 1000."""
    bg = Background([PYFORKEXEC, "unshare", "--map-users=0:1000:2000", "--map-groups=0:1000:2000",
                     "-S0", "-G0", "sh", "-c", "echo ready; exec sleep 60"], cwd="/")
    assert bg.readline() == "ready"
    return bg


def test_follow_takes_the_ids_the_targets_user_namespace_sees() -> None:
    """-S/-G follow with -U: the target is uid 0 in its user namespace (1000 on the host); the command
    ran there as uid 1000 (host 2000), the host's view of the target's ids, not 0 as nsenter's."""
    bg = _mapped_root()
    try:
        t = str(bg.child())
        for user in (["-U"], [f"--user=/proc/{t}/ns/user"], ["--all"]):
            res = pfe("nsenter", "-t", t, *user, "-S", "follow", "-G", "follow", "sh", "-c", "id -u; id -g")
            assert (res.returncode, res.stdout, res.stderr) == (0, "0\n0\n", ""), (user, res)
        # without the user namespace, the ids are the host's
        res = pfe("nsenter", "-t", t, "-u", "-S", "follow", "-G", "follow", "sh", "-c", "id -u; id -g")
        assert (res.returncode, res.stdout) == (0, "1000\n1000\n"), res
    finally:
        bg.stop()


def test_follow_of_ids_the_targets_user_namespace_does_not_map_is_refused() -> None:
    """A target that entered a user namespace keeping the host's root (nsenter --preserve-credentials)
    has ids that namespace does not map: there is no uid to follow, and nothing starts."""
    bg = _mapped_root()
    inner = None
    try:
        inner = Background([util_linux("nsenter"), "-t", str(bg.child()), "-U", "--preserve-credentials",
                            "sh", "-c", "echo ready; exec sleep 60"], cwd="/")
        assert inner.readline() == "ready"
        t = str(inner.proc.pid)
        for given, named in ((["-S", "follow"], "--setuid=follow"),
                             (["-G", "follow", "-S0"], "--setgid=follow")):
            res = pfe("nsenter", "-t", t, "-U", *given, "sh", "-c", "echo ran")
            assert (res.returncode, res.stdout) == (1, ""), res
            assert named in res.stderr and len(res.stderr.splitlines()) == 1, res
    finally:
        if inner is not None:
            inner.stop()
        bg.stop()


@pytest.mark.parametrize("option", ["--pid=/proc/self/ns/net", "--time=/etc/hostname", "--pid=/nonexistent"])
def test_a_join_the_launcher_makes_names_its_option(option: str) -> None:
    """The pid and time namespaces are joined by the launcher itself: a failure there said only
    ``setns /proc/self/ns/net: Invalid argument``, where a join by the child names the option
    (``--net=/nonexistent: ... (at setns)``). Now it names it too, and still fails closed (125)."""
    res = pfe("nsenter", option, "sh", "-c", "echo ran")
    assert (res.returncode, res.stdout) == (125, ""), res
    assert res.stderr.startswith(f"pyforkexec: {option}: ") and len(res.stderr.splitlines()) == 1, res


def test_a_launcher_join_of_a_zombie_names_the_target() -> None:
    """-p of a zombie in a pid namespace of its own: the launcher's setns fails (its namespaces are gone)
    and says which options asked, as the child's join of its net namespace does."""
    holder = Background([util_linux("unshare"), "--pid", "--fork", "--mount-proc", "sh", "-c",
                         "sleep 0 & echo $!; exec sleep 60"], cwd="/")
    try:
        holder.readline()  # (the zombie's pid inside its namespace): the shell runs
        inside = holder.child()
        wait_for(lambda: len(Path(f"/proc/{inside}/task/{inside}/children").read_text().split()) == 1,
                 "the zombie's pid")
        zombie = int(Path(f"/proc/{inside}/task/{inside}/children").read_text())
        wait_for(lambda: _state(zombie) == "Z", "a zombie")
        for given, shown in ((["-p"], "--pid"), (["-n", "-p"], "--net --pid")):
            res = pfe("nsenter", "-t", str(zombie), *given, "sh", "-c", "echo ran")
            assert (res.returncode, res.stdout) == (125, ""), res
            assert res.stderr.startswith(f"pyforkexec: --target={zombie} {shown}: "), res
    finally:
        holder.stop()


@pytest.mark.parametrize("args", [["-p{missing}", "--pid"], ["--pid", "--pid={missing}"],
                                  ["--pid={missing}", "--pid=/proc/{t}/ns/pid"], ["-u{missing}", "-u"],
                                  ["-p{missing}", "--version"], ["-u{missing}", "-u", "--help"]],
                         ids=" ".join)
def test_a_namespace_file_is_opened_as_its_option_is_read(container: int, tmp_path: Path,
                                                          args: list[str]) -> None:
    """nsenter opens each FILE as it reads ``-pFILE``/``--pid=FILE`` (a short option's attached value
    is its FILE): one that cannot be opened fails the command though a later option of its type
    replaces it, and before a later --version or --help answers. The launcher dropped a replaced
    FILE unopened (the target's was joined, the command ran) and answered --version first. Its
    status is the one of a FILE it cannot join (125, set-up), where nsenter exits 1."""
    missing = str(tmp_path / "missing")
    argv = [a.format(missing=missing, t=container) for a in args]
    ours, theirs = both("nsenter", "-t", str(container), *argv, "sh", "-c", "echo ran")
    assert (ours.returncode, theirs.returncode) == (125, 1), (ours.stderr, theirs.stderr)
    assert ours.stdout == theirs.stdout == ""
    option = "--pid" if argv[0].startswith(("-p", "--pid")) else "--uts"
    why = f"cannot open {missing}: No such file or directory\n"
    assert (ours.stderr, theirs.stderr) == (f"pyforkexec: {option}={missing}: {why}", f"nsenter: {why}")


@pytest.mark.parametrize("args,status", [
    (["-t", "abc", "--version"], 1), (["-t", "1", "-u", "-S", "x", "--help"], 1), (["-Vt", "abc"], 0),
    (["--version", "-t", "abc"], 0), (["--version", "--frobnicate"], 0), (["-t", "0", "--version"], 0),
    (["-t", "1", "-p", "-u", "--version"], 0), (["-hX"], 0),
], ids=lambda v: " ".join(v) if isinstance(v, list) else str(v))
def test_version_and_help_answer_where_they_are_read(args: list[str], status: int) -> None:
    """As nsenter's getopt loop: a bad value before --version or --help fails first, nothing after them
    is read (a bad option neither), nor what is checked once all are read (no namespace, pid 0)."""
    ours, theirs = both("nsenter", *args)
    assert ours.returncode == theirs.returncode == status, (ours.stderr, theirs.stderr)
    assert bool(ours.stdout) == bool(theirs.stdout) == (status == 0)
    assert bool(ours.stderr) == bool(theirs.stderr) == (status != 0)


def test_a_target_of_0_given_before_another_is_replaced(container: int) -> None:
    """Only the last --target counts: a first one of 0 failed at once (``invalid pid '0'``)."""
    ours, theirs = both("nsenter", "-t", "0", "-t", str(container), "-u", "hostname")
    assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
    assert ours.stdout == theirs.stdout == "target\n"


# As PID 1 of a PID namespace of its own: a launcher (a forked ``pyforkexec nsenter``, in this process)
# whose target, its child, is killed and reaped once the launcher has read what it reads of it by number
# (its --wd, --root, --env: right after they are read, as its credential is worked out), and the next
# fork gets the freed number (ns_last_pid, in this namespace only): a stranger, in another directory,
# with another environment. The command prints where it runs and what it was given.
_TARGET_REUSED_MID_COMMAND = r"""
import json, os, signal, sys
from pyforkexec.cli import nsenter
from pyforkexec.cli.failure import run_command

base, options = sys.argv[1], sys.argv[2:]

def sleeper_in(where, mark):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.chdir(where)
        os.environ["MARK"] = mark
        os.set_inheritable(w, True)
        os.dup2(w, 9)  # (sh takes fds up to 9 only, and the launcher holds more open by now)
        os.execv("/bin/sh", ["sh", "-c", "echo >&9; exec sleep 600 >/dev/null 2>&1"])
    os.close(w)
    os.read(r, 1)
    os.close(r)
    return pid

for name in ("target", "stranger"):
    os.makedirs(os.path.join(base, name), exist_ok=True)
out_r, out_w = os.pipe()
launcher = os.fork()
if launcher == 0:
    os.dup2(out_w, 1)
    os.dup2(out_w, 2)
    target = sleeper_in(os.path.join(base, "target"), "target")
    seen, credential = {}, nsenter.credential

    def then_reused(r):
        given = credential(r)
        if not seen:
            os.kill(target, signal.SIGKILL)
            os.waitpid(target, 0)
            with open("/proc/sys/kernel/ns_last_pid", "w") as f:
                f.write(str(target - 1))
            seen["stranger"] = sleeper_in(os.path.join(base, "stranger"), "stranger")
            print("reused" if seen["stranger"] == target else "missed", flush=True)
        return given

    nsenter.credential = then_reused
    os._exit(run_command(nsenter.main, [f"--target={target}", "--net=/proc/self/ns/net", *options, "--",
                                        "/bin/sh", "-c", "echo ran in $(pwd) with MARK=$MARK"]))
os.close(out_w)
with os.fdopen(out_r) as f:
    said = f.read().splitlines()
_, status = os.waitpid(launcher, 0)
print(json.dumps({"said": said, "status": os.waitstatus_to_exitcode(status)}))
"""


@pytest.mark.parametrize("options", [["--wd"], ["--env"], ["--root", "--wd"]], ids=" ".join)
def test_a_target_whose_number_is_reused_mid_command_is_never_read_as_it(tmp_path: Path,
                                                                          options: list[str]) -> None:
    """What the launcher took of the target by its number (/proc/PID/environ read; /proc/PID/cwd and
    root given as paths, which the child or the launcher resolved at the spawn) was the stranger's when
    the target ended and its number went to another process meanwhile: the command ran in the stranger's
    directory, with its environment. The target is pinned (a pidfd) once checked, its root and cwd held
    open, and what was read of it by number counts only if it still holds the number after the reads."""
    for _attempt in range(5):  # (the next fork takes the freed number almost always: the premise)
        answer = pid_reuse.run(_TARGET_REUSED_MID_COMMAND, str(tmp_path), *options)
        if answer["said"][:1] == ["reused"]:
            break
    said = answer["said"]
    assert said[0] == "reused", answer
    assert not any("stranger" in line for line in said[1:]), answer
    assert answer["status"] == 125 and len(said) == 2, answer
    assert re.fullmatch(r"pyforkexec: --target=(\d+): process \1 has ended \(its number may be another "
                        r"process's by now\): nothing runs in its place", said[1]), answer


_REUSE = str(Path(__file__).parent / "helpers" / "nsenter_reuse.py")


@pytest.mark.parametrize("uid", [None, NOBODY], ids=["root", "nobody"])
@pytest.mark.parametrize("mode", ["file", "mount"])
def test_a_namespace_is_the_one_named_when_checked_not_a_stranger_s_at_the_start(mode: str, uid) -> None:
    """The target ends after the launcher's last check of it and its PID goes to a stranger in a
    namespace of its own (helpers/nsenter_reuse.py). ``--net=/proc/T/ns/net`` was opened again by path
    at the start, and ``--target=T --mount`` (T in the launcher's mount namespace, which the launcher
    joins itself) too: the command ran in the stranger's namespace. Each is open from the option's read
    (as nsenter(1) holds its FILE) or the target's check on, and that is what is joined."""
    argv = ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, _REUSE, mode]
    if uid is not None:
        argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "unshare", "--user",
                "--map-root-user", *argv[1:]]
    for _attempt in range(3):  # (a test beside this one that forks may take the number)
        done, = run_as(NOBODY, [argv], timeout=60)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout.splitlines()[-1])
        if report["reused"]:
            break
    else:
        pytest.skip("the stranger did not get the target's PID in 3 tries")
    assert report["stranger"] != report["meant"], report
    assert report["said"] == [report["meant"]] and report["status"] == 0, report


def test_a_file_option_joins_what_the_file_named_when_read(tmp_path: Path) -> None:
    """``--net=FILE`` where FILE is a namespace bound on a file, bound anew (another namespace) after
    the option was read and before the start: nsenter(1) joins the one it opened at the option; the
    launcher opened FILE again at the start and joined the other."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    file = tmp_path / "h165ns"
    file.touch()
    made = [Background(["unshare", "--net", "sh", "-c", "echo ready; exec sleep 60"]) for _ in range(2)]
    try:
        first, second = (f"/proc/{bg.proc.pid}/ns/net" for bg in made)
        for bg in made:
            assert bg.readline() == "ready"

        def bind(source: str) -> None:
            assert libc.mount(source.encode(), str(file).encode(), None, 4096, None) == 0, ctypes.get_errno()

        bind(first)
        meant = os.readlink(first)
        script = (f"import os, sys\nsys.path.insert(0, {os.getcwd()!r})\nfrom pyforkexec.cli import nsenter\n"
                  "from pyforkexec.cli.failure import run_command\nreal = nsenter.spawn_and_wait\n"
                  "def rebound(*a, **k):\n    print('read', flush=True)\n    sys.stdin.readline()\n"
                  "    return real(*a, **k)\nnsenter.spawn_and_wait = rebound\n"
                  f"os._exit(run_command(nsenter.main, ['--net={file}', 'readlink', '/proc/self/ns/net']))\n")
        proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline() == "read\n"
            libc.umount2(str(file).encode(), 2)
            bind(second)
            out, err = proc.communicate("go\n", timeout=30)
        finally:
            proc.kill()
            proc.wait()
        assert (out, err, proc.returncode) == (meant + "\n", "", 0)
    finally:
        libc.umount2(str(file).encode(), 2)
        for bg in made:
            bg.stop()
