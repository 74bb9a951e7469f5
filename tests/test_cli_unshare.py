"""``pyforkexec unshare`` run as a user runs it, beside util-linux unshare(1) where it is installed."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from helpers.cli import PYFORKEXEC, Background, both, ns_link, pfe, run, run_as, util_linux, wait_for
from helpers.forked import NOBODY, run_in_fork
from helpers.marks import needs_root
from helpers.procs import mount_tags
from helpers.sysutil import MS_PRIVATE, MS_REC, MS_SHARED, make_root_shared, mount, unshare
from helpers.timens import time_namespace_entered_at_clone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyforkexec import CLONE_NEWNS

pytestmark = needs_root
NS = ("cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts")
SHOW_NS = "for n in " + " ".join(NS) + "; do readlink /proc/self/ns/$n; done"


def differing(out: str) -> set[str]:
    """The namespace types whose link in ``out`` (SHOW_NS output) differs from this process's."""
    links = out.split()
    assert len(links) == len(NS), out
    return {n for n, link in zip(NS, links) if link != ns_link(n)}


def test_every_namespace_option_gives_new_namespaces_as_util_linux() -> None:
    args = ("--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup", "--time", "--user", "--fork",
            "sh", "-c", SHOW_NS)
    ours, theirs = both("unshare", *args)
    assert ours.returncode == theirs.returncode == 0, ours.stderr + theirs.stderr
    assert differing(ours.stdout) == set(NS)
    assert differing(theirs.stdout) == set(NS)


@pytest.mark.parametrize("option,name", [("-m", "mnt"), ("-u", "uts"), ("-i", "ipc"), ("-n", "net"),
                                         ("-C", "cgroup"), ("-U", "user")])
def test_one_namespace_only(option: str, name: str) -> None:
    ours, theirs = both("unshare", option, "sh", "-c", SHOW_NS)
    assert differing(ours.stdout) == differing(theirs.stdout) == {name}


def test_pid_without_fork_keeps_the_command_outside_and_its_first_child_is_pid_1() -> None:
    # The first child is the new namespace's init: once it exits, the namespace takes no new process.
    ours, theirs = both("unshare", "--pid", "sh", "-c", 'echo $$; sh -c "echo \\$\\$"')
    for res in (ours, theirs):
        assert res.returncode == 0, res.stderr
        outer, first_child = res.stdout.split()
        assert (outer != "1", first_child) == (True, "1")


def test_pid_with_fork_makes_the_command_pid_1() -> None:
    ours, theirs = both("unshare", "--pid", "--fork", "sh", "-c", "echo $$")
    assert ours.stdout == theirs.stdout == "1\n"


def test_map_root_user_maps_as_util_linux() -> None:
    script = "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups"
    ours, theirs = both("unshare", "--map-root-user", "sh", "-c", script)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    lines = ours.stdout.splitlines()
    assert lines[:2] == ["0", "0"]
    assert lines[2].split() == ["0", str(os.geteuid()), "1"]
    assert lines[-1] == "deny"


def _as_nobody(argv: list[str]) -> tuple[int, str, str]:
    res = run(argv)
    return res.returncode, res.stdout, res.stderr


def test_map_root_user_as_an_unprivileged_user() -> None:
    script = "id -u; cat /proc/self/uid_map /proc/self/gid_map; hostname inside; hostname"
    argv = ["unshare", "-r", "-u", "sh", "-c", script]
    code, out, err = run_in_fork(_as_nobody, [PYFORKEXEC, *argv], uid=NOBODY)
    assert code == 0, err
    ucode, uout, _ = run_in_fork(_as_nobody, [util_linux("unshare"), *argv[1:]], uid=NOBODY)
    assert (code, out) == (ucode, uout)
    lines = out.splitlines()
    assert lines[0] == "0"
    assert lines[1].split() == ["0", str(NOBODY), "1"]
    assert lines[-1] == "inside"


def both_as_nobody(*args: str) -> str:
    """``unshare ARGS`` run by uid 65534 through both tools: both succeed alike; the output."""
    ours = run_in_fork(_as_nobody, [PYFORKEXEC, "unshare", *args], uid=NOBODY)
    theirs = run_in_fork(_as_nobody, [util_linux("unshare"), *args], uid=NOBODY)
    assert ours[0] == 0, ours[2]
    assert ours[:2] == theirs[:2]
    return ours[1]


def test_unprivileged_fork_pid_and_mount_proc() -> None:
    # The shell's own glob and echo: no other process exists in the namespace while /proc is read.
    out = both_as_nobody("-r", "--pid", "--fork", "--mount-proc", "sh", "-c", "echo $$; echo /proc/[0-9]*")
    assert out.split() == ["1", "/proc/1"]


def test_unprivileged_mapped_to_a_non_root_uid_keeps_no_capabilities() -> None:
    out = both_as_nobody("--map-user=1000", "--map-group=1000", "-m", "-p", "-f", "--mount-proc",
                         "sh", "-c", "id -u; grep -E '^Cap(Inh|Prm|Eff|Amb)' /proc/self/status")
    assert out.splitlines()[0] == "1000"


def test_hostname_is_isolated() -> None:
    before = socket.gethostname()
    ours, theirs = both("unshare", "--uts", "sh", "-c", "hostname isolated-$$; hostname")
    assert ours.stdout.startswith("isolated-") and theirs.stdout.startswith("isolated-")
    assert socket.gethostname() == before


@pytest.mark.parametrize("users", ["--map-users=1:100000:1000", "--map-users=100000,1,1000"])
def test_map_users_ranges_and_a_single_id(users: str) -> None:
    # util-linux 2.38 runs newuidmap(1) for ranges even as root (and knows only outer,inner,count);
    # these are the lines util-linux's add_single_map_range computes.
    res = pfe("unshare", users, "--map-groups=1:100000:1000", "--map-root-user",
              "cat", "/proc/self/uid_map", "/proc/self/gid_map")
    assert res.returncode == 0, res.stderr
    expected = [["0", "0", "1"], ["1", "100000", "1000"]] * 2
    assert [line.split() for line in res.stdout.splitlines()] == expected


def test_map_user_carved_out_of_a_range() -> None:
    res = pfe("unshare", "--map-users=0:100000:10", "--map-user=5", "cat", "/proc/self/uid_map")
    assert res.returncode == 0, res.stderr
    lines = sorted(tuple(int(x) for x in line.split()) for line in res.stdout.splitlines())
    assert lines == [(0, 100000, 5), (5, 0, 1), (6, 100005, 4)]


def test_setuid_setgid() -> None:
    ours, theirs = both("unshare", "--uts", "--setuid", "65534", "--setgid", "65534", "sh", "-c",
                        "id -u; id -g; id -G")
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout == "65534\n65534\n65534\n"


def test_root_and_wd(tiny_root: Path) -> None:
    (tiny_root / "sub").mkdir()
    ours, theirs = both("unshare", "--uts", f"--root={tiny_root}", "--wd=/sub", "/probe", "pwd")
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout == "/sub\n"


def test_mount_proc_shows_the_new_pid_namespace() -> None:
    script = "echo $$; cat /proc/1/comm; grep ' /proc ' /proc/self/mountinfo | wc -l"
    ours, theirs = both("unshare", "--mount", "--pid", "--fork", "--mount-proc", "sh", "-c", script)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    assert ours.stdout.split()[:2] == ["1", "sh"]


def test_a_relative_mount_proc_from_a_relative_wd(tmp_path: Path) -> None:
    """util-linux changes to --wd, then mounts proc there: both relative to where it was started."""
    (tmp_path / "w1" / "proc").mkdir(parents=True)
    script = "pwd; grep -c \" $(pwd)/proc \" /proc/self/mountinfo"
    ours, theirs = both("unshare", "-pf", "--wd=w1", "--mount-proc=proc", "sh", "-c", script, cwd=tmp_path)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == f"{tmp_path}/w1\n1\n"
    if theirs.returncode != 0 and "umount proc failed" in theirs.stderr:  # 2.36 (Debian 11): EINVAL
        version = run([util_linux("unshare"), "--version"]).stdout.strip()
        pytest.skip(f"{version} fails it: {theirs.stderr.strip()}")
    assert theirs.stdout == ours.stdout


def _in_a_removed_directory(where: Path, *argv: str) -> subprocess.CompletedProcess:
    """``argv`` run from the directory ``where``, made for it and removed before it starts."""
    where.mkdir()
    return run(["sh", "-c", 'cd "$1" && rmdir "$1" && shift && exec "$@"', "sh", str(where), *argv])


@pytest.mark.parametrize("proc", ["", "=/proc"])
def test_mount_proc_from_a_removed_directory(tmp_path: Path, proc: str) -> None:
    """Started in a directory that was removed: util-linux mounts the absolute /proc and runs, where
    ours read the current directory for it and failed with a bare 'No such file or directory'. A
    relative DIR is taken from there: both fail, ours naming the option."""
    args = ("--fork", "--pid", f"--mount-proc{proc}", "cat", "/proc/1/comm")
    ours = _in_a_removed_directory(tmp_path / "gone", PYFORKEXEC, "unshare", *args)
    theirs = _in_a_removed_directory(tmp_path / "gone", util_linux("unshare"), *args)
    assert (ours.returncode, ours.stdout, ours.stderr) == (0, "cat\n", "")
    assert theirs.returncode == 0 and theirs.stdout == ours.stdout, theirs.stderr
    ours = _in_a_removed_directory(tmp_path / "gone", PYFORKEXEC, "unshare", "-pf", "--mount-proc=proc",
                                   "true")
    assert ours.returncode == 125
    assert ours.stderr.startswith("pyforkexec: --mount-proc=proc: ") and ours.stderr.count("\n") == 1, \
        ours.stderr


def _propagation(mode: str) -> tuple[set[str], set[str]]:
    make_root_shared()
    argv = ["unshare", "--mount", f"--propagation={mode}", "cat", "/proc/self/mountinfo"]
    ours, theirs = run([PYFORKEXEC, *argv]), run([util_linux("unshare"), *argv[1:]])
    assert ours.returncode == 0, ours.stderr
    return mount_tags(ours.stdout), mount_tags(theirs.stdout)


@pytest.mark.parametrize("mode,tags", [("private", set()), ("slave", {"master"}), ("shared", {"shared"}),
                                       ("unchanged", {"shared"})])
def test_propagation(mode: str, tags: set[str]) -> None:
    ours, theirs = run_in_fork(_propagation, mode)
    assert ours == theirs == tags


def _proc_mounts_after(tool: list[str], mode: str) -> tuple[int, int]:
    """(proc mounts at /proc inside, at /proc here afterwards) for --mount-proc with ``mode``, in a
    mount namespace whose / is shared in a peer group of its own (a leak stays in this fork)."""
    unshare(CLONE_NEWNS)
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount(None, "/", None, MS_REC | MS_SHARED)
    argv = [*tool, "--mount", f"--propagation={mode}", "--pid", "--fork", "--mount-proc", "sh", "-c",
            "grep -c ' /proc .* - proc ' /proc/self/mountinfo"]
    res = run(argv)
    assert res.returncode == 0, res.stderr
    with open("/proc/self/mountinfo") as f:
        here = sum(" /proc " in line and " - proc " in line for line in f)
    return int(res.stdout), here


@pytest.mark.parametrize("mode", ["shared", "unchanged", "slave"])
def test_mount_proc_does_not_propagate_to_the_caller(mode: str) -> None:
    # util-linux makes the existing /proc mount private before mounting proc over it.
    ours = run_in_fork(_proc_mounts_after, [PYFORKEXEC, "unshare"], mode)
    theirs = run_in_fork(_proc_mounts_after, [util_linux("unshare")], mode)
    assert ours == theirs == (2, 1)


def test_time_offsets() -> None:
    args = ("--time", "--monotonic", "1000", "--boottime=2000", "cat", "/proc/self/timens_offsets")
    ours, theirs = both("unshare", *args)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    assert [line.split()[:2] for line in ours.stdout.splitlines()] == [["monotonic", "1000"],
                                                                       ["boottime", "2000"]]


ENTERED_AT_CLONE = (f"Linux {os.uname().release} moves a child sharing its parent's memory into its new "
                    "time namespace at clone (before 6.2), which fixes the offsets: --fork with offsets "
                    "is refused")


def test_time_offsets_as_an_unprivileged_user_with_fork() -> None:
    # The launcher writes the offsets of a time namespace that its user namespace owns.
    if time_namespace_entered_at_clone():
        pytest.skip(ENTERED_AT_CLONE)
    out = both_as_nobody("-r", "-T", "-p", "-f", "--boottime", "77", "sh", "-c",
                         "echo $$; cat /proc/self/timens_offsets")
    assert out.split()[:7] == ["1", "monotonic", "0", "0", "boottime", "77", "0"]


@pytest.mark.parametrize("uid", [None, NOBODY], ids=["root", "unprivileged"])
def test_time_offsets_with_fork_fail_closed_where_the_child_enters_the_namespace_at_clone(
        uid: int | None) -> None:
    # Fail closed: the offsets cannot be written, so the program must not run; the message says why.
    if not time_namespace_entered_at_clone():
        pytest.skip(f"Linux {os.uname().release} moves the child into its time namespace at execve")
    argv = [PYFORKEXEC, "unshare", *(["-r"] if uid is not None else []), "-T", "-p", "-f", "--boottime", "77",
            "sh", "-c", "echo ran"]
    status, out, err = run_in_fork(_as_nobody, argv, uid=uid) if uid is not None else _as_nobody(argv)
    assert (status, out) == (125, ""), err
    assert "--boottime=77: failed to write" in err and "entered its new time namespace at clone" in err, err


def test_persist_a_time_namespace_with_its_offsets(tmp_path: Path) -> None:
    outputs = []
    for tool in ([PYFORKEXEC, "unshare"], [util_linux("unshare")]):
        target = tmp_path / f"time-{len(outputs)}"
        target.touch()
        res = run([*tool, f"--time={target}", "--monotonic=500", "true"])
        try:
            assert res.returncode == 0, res.stderr
            argv = [util_linux("nsenter"), f"--time={target}", "cat", "/proc/self/timens_offsets"]
            outputs.append(run(argv))
        finally:
            subprocess.run(["umount", str(target)], check=False)
    ours, theirs = outputs
    assert ours.stdout == theirs.stdout
    assert ours.stdout.split()[:3] == ["monotonic", "500", "0"]


def test_a_missing_persist_file_is_refused_before_any_process() -> None:
    # util-linux finds out at its mount, once the child exists (status 1 there too)
    ours, theirs = both("unshare", "--uts=/nonexistent/uts", "sh", "-c", "echo ran")
    assert (ours.returncode, theirs.returncode) == (1, 1)
    assert ours.stdout == theirs.stdout == ""
    assert ours.stderr == ("pyforkexec unshare: --uts=/nonexistent/uts: cannot bind the namespace on "
                           "/nonexistent/uts: No such file or directory\n")
    assert re.fullmatch(r"unshare: mount /proc/\d+/ns/uts on /nonexistent/uts failed: "
                        r"No such file or directory\n", theirs.stderr), theirs.stderr


def test_a_failed_persist_kills_the_child_and_exits_125_naming_the_option() -> None:
    # nobody may not mount in this mount namespace: the bind fails once the child exists
    fd, target = tempfile.mkstemp(prefix="pfe-persist-", dir="/tmp")  # a file nobody can find
    os.close(fd)
    os.chmod(target, 0o644)
    drop = [util_linux("setpriv"), f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    try:
        res, = run_as(NOBODY, [[*drop, PYFORKEXEC, "unshare", "--user", f"--uts={target}", "sh", "-c",
                                "echo ran"]])
    finally:
        subprocess.run(["umount", target], check=False, capture_output=True)  # (were it bound after all)
        os.unlink(target)
    assert (res.returncode, res.stdout) == (125, "")
    assert re.fullmatch(rf"pyforkexec: --uts={target}: mount /proc/\d+/ns/uts on {target} failed: "
                        r"Operation not permitted\n", res.stderr), res.stderr


def test_kill_child_when_the_launcher_dies(tmp_path: Path) -> None:
    argv = [PYFORKEXEC, "unshare", "--pid", "--kill-child", "sh", "-c", "echo ready; exec sleep 60"]
    with Background(argv) as bg:
        assert bg.readline() == "ready"
        child = bg.child()
        bg.proc.kill()
        bg.proc.wait()
        wait_for(lambda: not os.path.exists(f"/proc/{child}"), f"child {child} to be killed")


@pytest.mark.parametrize("name,number", [
    ("RTMIN+1", signal.SIGRTMIN + 1), ("SIGRTMAX-1", signal.SIGRTMAX - 1), ("sigrtmin+0", signal.SIGRTMIN),
    ("KILL", signal.SIGKILL)])
def test_kill_child_signal_names_as_util_linux(name: str, number: int) -> None:
    """util-linux's names, real-time ones included: the child's parent-death signal (PR_GET_PDEATHSIG)."""
    prctl = ("import ctypes; s = ctypes.c_int(); ctypes.CDLL(None).prctl(2, ctypes.byref(s)); "
             "print(s.value)")
    ours, theirs = both("unshare", f"--kill-child={name}", sys.executable, "-c", prctl)
    assert (ours.returncode, ours.stdout, ours.stderr) == (0, f"{number}\n", ""), ours
    assert (theirs.returncode, theirs.stdout) == (0, f"{number}\n"), theirs


def _started(argv: list[str]) -> Background:
    bg = Background(argv)
    assert bg.readline() == "ready"
    return bg


def test_sigterm_reaches_a_child_that_traps_it() -> None:
    bg = _started([PYFORKEXEC, "unshare", "--uts", "--fork", "sh", "-c",
                   "trap 'exit 7' TERM; echo ready; while :; do sleep 0.05; done"])
    try:
        bg.proc.send_signal(signal.SIGTERM)
        assert bg.proc.wait(30) == 7
    finally:
        bg.stop()


@pytest.mark.parametrize("fork", [True, False])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1])
def test_untrapped_signal_ends_the_launcher_with_the_same_signal(fork: bool, sig: int) -> None:
    bg = _started([PYFORKEXEC, "unshare", "--uts", *(["--fork"] if fork else []), "sh", "-c",
                   "echo ready; exec sleep 60"])
    try:
        bg.proc.send_signal(sig)
        assert bg.proc.wait(30) == -sig
    finally:
        bg.stop()


def test_a_shell_sees_128_plus_the_signal() -> None:
    script = f'{PYFORKEXEC} unshare --fork sh -c \'kill -TERM $$\'; echo "status $?"'
    assert run(["sh", "-c", script]).stdout == "status 143\n"
    ul = util_linux("unshare")
    theirs = run(["sh", "-c", script.replace(f"{PYFORKEXEC} unshare", ul)]).stdout
    if theirs == "status 0\n":  # util-linux 2.36 (Debian 11) exits 0; 2.38 dies of it
        pytest.skip(f"{run([ul, '--version']).stdout.strip()} exits 0 when the child dies of a signal")
    assert theirs == "status 143\n"


# The launchers a caller's ignored signal goes through: unshare (with and without --fork) and nsenter.
IGNORING_LAUNCHERS = [["unshare", "--uts"], ["unshare", "--uts", "--fork"],
                      ["nsenter", "--net=/proc/self/ns/net"]]
# Where the launcher has no terminal it hands its child over to pyforkexec-waiter; with one, it waits
# in Python: the same rule holds for both ways.
WITH_TERMINAL = {"no terminal": lambda cmd: ["setsid", "-w", "sh", "-c", cmd],
                 "terminal": lambda cmd: [util_linux("script"), "-qec", cmd, "/dev/null"]}


@pytest.mark.parametrize("terminal", WITH_TERMINAL)
@pytest.mark.parametrize("launcher", IGNORING_LAUNCHERS, ids=" ".join)
def test_a_signal_the_caller_ignores_stays_ignored_for_the_program(launcher: list[str],
                                                                   terminal: str) -> None:
    """``trap '' INT HUP``, ``nohup``: the program inherits SIG_IGN, as util-linux's program does."""
    program = "sh -c 'kill -INT $$; kill -HUP $$; echo survived'"
    script = f"trap '' INT HUP; {{}} {' '.join(launcher)} {program}; echo \"status $?\""
    ours = run(WITH_TERMINAL[terminal](script.format(PYFORKEXEC)), stdin=subprocess.DEVNULL)
    theirs = run(WITH_TERMINAL[terminal](script.format("")), stdin=subprocess.DEVNULL)
    expected = "survived\nstatus 0\n"
    assert ours.stdout.replace("\r", "") == theirs.stdout.replace("\r", "") == expected, (ours, theirs)


@pytest.mark.parametrize("terminal", WITH_TERMINAL)
def test_a_signal_the_launcher_ignores_is_not_passed_on(terminal: str) -> None:
    """``nohup pyforkexec unshare PROGRAM &`` and a hang-up: the launcher ignores SIGHUP as its caller
    asked, rather than pass it on to a program that handles it (the launcher is its parent)."""
    program = ("import os, signal, time; "
               "signal.signal(signal.SIGHUP, lambda *a: print('got HUP', flush=True)); "
               "print('ready', os.getppid(), flush=True); time.sleep(1); print('done', flush=True)")
    cmd = f"trap '' HUP; exec {PYFORKEXEC} unshare --uts {sys.executable} -c \"{program}\""
    with Background(WITH_TERMINAL[terminal](cmd), stdin=subprocess.DEVNULL) as bg:
        ready, launcher = bg.readline().split()
        assert ready == "ready"
        os.kill(int(launcher), signal.SIGHUP)
        assert bg.proc.wait(30) == 0
        assert bg.proc.stdout is not None
        assert bg.proc.stdout.read().replace("\r", "") == "done\n"


def test_exit_status_of_the_command() -> None:
    ours, theirs = both("unshare", "--uts", "sh", "-c", "exit 42")
    assert ours.returncode == theirs.returncode == 42


def test_exit_127_when_the_program_does_not_exist() -> None:
    ours, theirs = both("unshare", "--uts", "/nonexistent/prog")
    assert ours.returncode == theirs.returncode == 127
    assert ours.stderr == "pyforkexec: fork/exec /nonexistent/prog: no such file or directory (at execve)\n"
    res = pfe("unshare", "--uts", "no-such-command-anywhere")
    assert res.returncode == 127
    assert "no-such-command-anywhere" in res.stderr


def test_exit_126_when_the_program_cannot_be_executed(tmp_path: Path) -> None:
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    ours, theirs = both("unshare", "--uts", str(script))
    assert ours.returncode == theirs.returncode == 126
    assert ours.stderr == f"pyforkexec: fork/exec {script}: permission denied (at execve)\n"


def test_exit_125_names_the_option_and_the_failed_step() -> None:
    ours, theirs = both("unshare", "--uts", "--wd=/nonexistent", "true")
    assert ours.returncode == 125
    assert ours.stderr == ("pyforkexec: --wd=/nonexistent: fork/exec /usr/bin/true: no such file or "
                           "directory (at chdir)\n")
    assert theirs.returncode == 1  # util-linux does not tell set-up failures from usage errors


def test_exit_125_from_the_proc_mount() -> None:
    res = pfe("unshare", "--mount", "--mount-proc=/nonexistent", "true")
    assert res.returncode == 125
    assert res.stderr == ("pyforkexec: --mount-proc=/nonexistent: fork/exec /usr/bin/true: no such file or "
                          "directory (at mount)\n")


@pytest.mark.parametrize("args,option", [
    (["--setuid", "abc"], "--setuid"),
    (["--setgid=x"], "--setgid"),
    (["--propagation", "sideways"], "--propagation"),
    (["--setgroups", "maybe"], "--setgroups"),
    (["--kill-child=NOSUCHSIG"], "--kill-child"),
    (["--kill-child=RTMIN+31"], "--kill-child"),  # past SIGRTMAX
    (["--kill-child=RTMAX+1"], "--kill-child"),
    (["--kill-child=RTMIN+x"], "--kill-child"),
    (["--map-users=1-2-3"], "--map-users"),
    (["--map-user=no-such-user-x"], "--map-user"),
    (["--monotonic", "soon", "-T"], "--monotonic"),
    (["--monotonic", "5"], "--monotonic"),
    (["--bogus"], "--bogus"),
    (["-Z"], "'Z'"),
])
def test_bad_options_exit_1_naming_the_option(args: list[str], option: str) -> None:
    ours, theirs = both("unshare", *args, "true")
    assert ours.returncode == theirs.returncode == 1, (ours.stderr, theirs.stderr)
    assert option in ours.stderr
    assert ours.stderr.startswith("pyforkexec unshare: ")
    assert ours.stdout == ""


def test_a_map_refused_as_a_whole_names_the_options_as_given() -> None:
    # Each range is fine alone; only the whole (341 lines, beyond the kernel's 340) is refused, by the
    # library, about a field the user never wrote: the message leads with the options.
    ranges = [f"--map-users={i}:{100000 + i}:1" for i in range(341)]
    res = pfe("unshare", *ranges, "true")
    assert (res.returncode, res.stdout) == (1, ""), res.stderr
    assert res.stderr.splitlines() == [
        "pyforkexec unshare: --map-users=0:100000:1 --map-users=1:100001:1 --map-users=2:100002:1 (and 338 "
        "more): refused: SysProcAttr.uid_mappings: at most 340 mappings, got 341"]


def test_missing_option_argument_exits_1() -> None:
    ours, theirs = both("unshare", "--wd")
    assert ours.returncode == theirs.returncode == 1
    assert "--wd" in ours.stderr


def test_setgroups_allow_conflicts_with_map_group() -> None:
    ours, theirs = both("unshare", "--map-root-user", "--setgroups=allow", "true")
    assert ours.returncode == theirs.returncode == 1
    assert "--setgroups=allow" in ours.stderr


def test_options_stop_at_the_program() -> None:
    res = pfe("unshare", "-u", "echo", "-r", "--fork")
    assert (res.returncode, res.stdout) == (0, "-r --fork\n")


def test_default_program_is_the_login_shell() -> None:
    env = {**os.environ, "SHELL": "/bin/sh"}
    ours, theirs = both("unshare", "--uts", input="echo $0\n", env=env)
    assert ours.stdout == theirs.stdout == "-sh\n"


def test_inherited_fds_reach_the_command(tmp_path: Path) -> None:
    out = tmp_path / "fd3"
    script = f'exec 3>{out}; exec {PYFORKEXEC} unshare --uts sh -c "echo through-fd >&3"'
    assert run(["sh", "-c", script]).returncode == 0
    assert out.read_text() == "through-fd\n"


def test_persist_a_namespace_to_a_file(tmp_path: Path) -> None:
    target = tmp_path / "uts"
    target.touch()
    res = pfe("unshare", f"--uts={target}", "hostname", f"persisted-{os.getpid()}")
    try:
        assert res.returncode == 0, res.stderr
        joined = run([util_linux("nsenter"), f"--uts={target}", "hostname"])
        assert joined.stdout == f"persisted-{os.getpid()}\n"
    finally:
        subprocess.run(["umount", str(target)], check=False)


@pytest.mark.parametrize("program", ["/etc/passwd", "/nonexistent/pfe-program"])
def test_a_persisted_namespace_whose_program_never_ran_is_unbound(tmp_path: Path, program: str) -> None:
    """--uts=FILE binds the namespace before execve; the execve failed, and the file stayed bound to a
    namespace no program used (util-linux 2.38 leaves it too)."""
    target = tmp_path / "uts"
    target.touch()
    res = pfe("unshare", f"--uts={target}", program)
    try:
        assert res.returncode in (126, 127), res
        with open("/proc/self/mountinfo") as f:
            assert f" {target} " not in f.read()
    finally:
        subprocess.run(["umount", str(target)], check=False, capture_output=True)


def test_python_dash_m_runs_the_same_command() -> None:
    res = run([sys.executable, "-m", "pyforkexec", "unshare", "--uts", "sh", "-c", SHOW_NS])
    assert res.returncode == 0, res.stderr
    assert differing(res.stdout) == {"uts"}


def test_keep_caps_raises_the_ambient_set() -> None:
    ours, theirs = both("unshare", "--map-user=1000", "--keep-caps", "grep", "CapAmb", "/proc/self/status")
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    assert int(ours.stdout.split()[1], 16) != 0


def test_keep_caps_with_a_setuid_to_another_uid_keeps_none() -> None:
    """util-linux switches the uid first, then raises what is left: a uid other than 0 has nothing
    left, and the command runs without capabilities (pyforkexec kept all of them). Compared with
    util-linux where one uid of the namespace is the caller's (its newuidmap is not needed)."""
    status = ("sh", "-c", "id -u; grep -E '^Cap(Prm|Eff|Amb)' /proc/self/status")
    ours, theirs = both("unshare", "--map-root-user", "--keep-caps", *status)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout and int(ours.stdout.split()[-1], 16) != 0  # root: all kept
    res = pfe("unshare", "--map-users=0,0,10", "--map-groups=0,0,10", "--keep-caps", "-S", "5", "-G", "5",
              *status)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[0] == "5" and set(res.stdout.split()[2::2]) == {"0000000000000000"}


def test_setgid_where_setgroups_is_denied() -> None:
    # util-linux fails on setgroups(2) here; the groups cannot exist in this namespace, so it is skipped.
    res = pfe("unshare", "--map-root-user", "--setgid=0", "id", "-g")
    assert (res.returncode, res.stdout) == (0, "0\n")


@pytest.mark.parametrize("bundle", ["-rmpf", "-fpr", "-Ur", "-Urmpf", "-mpf"])
def test_short_namespace_options_bundle_and_take_no_file(bundle: str, tmp_path: Path) -> None:
    """util-linux's short namespace options take no file: ``-rmpf`` is -r -m -p -f. Read as -m with
    the file "pf", the pid namespace, the fork and the root map were dropped, the namespace bound onto
    ./pf, and the program ran in the caller's PID namespace."""
    for name in ("pf", "r", "mpf", "rmpf"):  # what a file argument would have been bound onto
        (tmp_path / name).touch()
    script = "[ $$ = 1 ] && echo pid1 || echo not-pid1; id -u; " + SHOW_NS
    ours, theirs = both("unshare", bundle, "sh", "-c", script, cwd=tmp_path)
    assert ours.returncode == theirs.returncode == 0, ours.stderr + theirs.stderr
    assert ours.stdout.splitlines()[:2] == theirs.stdout.splitlines()[:2]
    assert differing("\n".join(ours.stdout.splitlines()[2:])) == \
        differing("\n".join(theirs.stdout.splitlines()[2:]))
    with open("/proc/self/mountinfo") as f:
        assert str(tmp_path) not in f.read()  # no namespace bound in the caller's mounts
    assert pfe("unshare", "-mFILE", "true").returncode == 1  # -m -F...: no such option


@pytest.mark.parametrize("maps", [["-U"], ["--map-user=0"], ["--map-root-user"]])
def test_setgroups_deny_holds_with_or_without_a_gid_map(maps: list[str]) -> None:
    """Without a gid map the core writes no setgroups file: the launcher writes "deny" itself, as
    util-linux does, rather than leave setgroups(2) allowed in the namespace. Root's and nobody's."""
    args = [*maps, "--setgroups", "deny", "cat", "/proc/self/setgroups"]
    ours = pfe("unshare", *args)
    assert (ours.returncode, ours.stdout) == (0, "deny\n"), ours.stderr
    nobody = run_in_fork(_as_nobody, [PYFORKEXEC, "unshare", *args], uid=NOBODY)
    assert nobody[:2] == (0, "deny\n"), nobody[2]
    if "--map-root-user" not in maps:  # util-linux 2.38 fails writing it twice there
        assert run([util_linux("unshare"), *args]).stdout == "deny\n"
        assert both_as_nobody(*args) == "deny\n"


def test_setgroups_deny_without_a_user_namespace_is_refused() -> None:
    ours, theirs = both("unshare", "--setgroups", "deny", "true")
    assert ours.returncode == theirs.returncode == 1
    assert ours.stderr.splitlines()[0] == \
        "pyforkexec unshare: --setgroups: needs a new user namespace (--user, or a map option)"


# Any bundle of the short options util-linux's unshare takes without a value, in any order, against
# util-linux itself: the same namespaces new, the same pid 1 or not, the same ids.
BUNDLE_LETTERS = "mnuipCTUrf"
BUNDLE_EXAMPLES = int(os.environ.get("PFE_HYPOTHESIS_EXAMPLES") or "20")


@settings(max_examples=BUNDLE_EXAMPLES, deadline=None, database=None,
          derandomize=os.environ.get("PFE_HYPOTHESIS_EXAMPLES") is None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.permutations(BUNDLE_LETTERS).flatmap(
    lambda letters: st.integers(1, len(letters)).map(lambda n: "".join(letters[:n]))))
def test_any_bundle_of_short_options_is_util_linux_s(bundle: str) -> None:
    script = "[ $$ = 1 ] && echo pid1 || echo not-pid1; id -u; " + SHOW_NS
    ours, theirs = both("unshare", f"-{bundle}", "sh", "-c", script)
    # -p without -f: the program's first child is the namespace's init, and its end the namespace's
    # (the next fork fails), in both
    assert ours.returncode == theirs.returncode, (bundle, ours.stderr, theirs.stderr)
    assert ours.stdout.splitlines()[:2] == theirs.stdout.splitlines()[:2], bundle
    if ours.returncode == 0:
        assert differing("\n".join(ours.stdout.splitlines()[2:])) == \
            differing("\n".join(theirs.stdout.splitlines()[2:])), bundle


def test_a_root_that_is_no_directory_is_named_not_the_command(tmp_path: Path) -> None:
    """util-linux fails to change into it; the lookup of the command inside it used to answer first
    (127, "executable file not found in $PATH"), naming neither --root nor the reason."""
    (tmp_path / "file").write_text("")
    cases = ((tmp_path / "none", "No such file or directory"), (tmp_path / "file", "Not a directory"))
    for root, why in cases:
        res = pfe("unshare", f"--root={root}", "pwd")
        said = f"pyforkexec: --root: cannot change root directory to '{root}': {why}\n"
        assert (res.returncode, res.stderr) == (125, said)


def test_setgid_in_a_user_namespace_never_keeps_the_callers_groups(world_dir: Path) -> None:
    """-r --setgid 0 as uid 65534 with the supplementary group 4: util-linux fails (setgroups is denied
    in the new user namespace); ours ran the program with group 4 kept (it read a file only group 4
    may). Refused before any process."""
    secret = world_dir / "adm-only"
    secret.write_text("secret\n")
    os.chown(secret, 0, 4)
    secret.chmod(0o640)
    as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--groups=4"]
    args = ["-r", "--setgid", "0", "cat", str(secret)]
    ours, theirs = run_as(NOBODY, [[*as_nobody, PYFORKEXEC, "unshare", *args],
                                   [*as_nobody, util_linux("unshare"), *args]], cwd="/")
    assert theirs.returncode == ours.returncode == 1 and "secret" not in ours.stdout, ours
    assert "--setgid" in ours.stderr and len(ours.stderr.splitlines()) == 1



@needs_root
@pytest.mark.parametrize("maps,shown", [
    (["-r"], "--map-root-user"),
    (["-r", "--setgroups=deny"], "--map-root-user --setgroups=deny"),
    (["--map-users=0:0:10", "--map-groups=0:0:10", "--setgroups=deny"], "--setgroups=deny"),
])
def test_setgid_that_would_keep_the_callers_groups_is_refused_in_the_options_terms(maps: list[str],
                                                                                   shown: str) -> None:
    """A caller with supplementary groups, -G0 where setgroups is denied: refused (the groups would be
    kept), but in the library's words ("SysProcAttr.credential.groups ... set credential.no_setgroups"),
    which no option of the command line spells. Now the options behind it and what to do about them."""
    res = run(["setpriv", "--groups=5,6", "--", PYFORKEXEC, "unshare", *maps, "-G0", "echo", "ran"])
    assert (res.returncode, res.stdout) == (1, ""), res
    assert len(res.stderr.splitlines()) == 1, res
    assert res.stderr.startswith(f"pyforkexec unshare: {shown} --setgid=0: refused: setgroups is denied"), res
    assert "credential" not in res.stderr and "--setgroups=allow" in res.stderr, res
    kept = run(["setpriv", "--groups=5,6", "--", PYFORKEXEC, "unshare", *maps, "echo", "ran"])
    assert (kept.returncode, kept.stdout) == (0, "ran\n"), kept  # without --setgid: kept, as util-linux


def test_an_automatic_range_loses_the_id_a_single_map_takes_as_util_linux_does() -> None:
    """--map-auto (or --map-users=auto) with -r or --map-user: util-linux's add_single_map_range takes
    the carved-out id off the range whose inner start is automatic too (65535 and 65530 ids left);
    ours kept one more (65536, 65531). The lines util-linux 2.38 writes for a subuid range of 65536."""
    from pyforkexec.cli.idmaps import NO_ID, Range, add_single

    def lines(ranges: list[Range]) -> list[tuple[int, int, int]]:  # as uid_map shows them
        return sorted((r.inner, r.outer, r.count) for r in ranges)

    auto = [Range(outer=100000, inner=NO_ID, count=65536)]
    assert lines(add_single(auto, 0, 0)) == [(0, 0, 1), (1, 100000, 65535)]
    assert lines(add_single(auto, 0, 5)) == [(0, 100000, 5), (5, 0, 1), (6, 100005, 65530)]


@needs_root
@pytest.mark.parametrize("command", [["unshare", "-f", "-u"], ["unshare", "-u"]])
def test_a_launcher_started_with_sigchld_ignored_still_gives_the_programs_status(command: list[str]) -> None:
    """With SIGCHLD ignored (the caller's), the kernel reaped the program itself: the launcher hung for
    ever, or failed with "No child processes" (125, or a traceback), where util-linux exits 3."""
    ignoring = [sys.executable, "-c", "import os, signal, sys; signal.signal(signal.SIGCHLD, "
                "signal.SIG_IGN); os.execv(sys.argv[1], sys.argv[1:])"]
    res = subprocess.run([*ignoring, sys.executable, "-m", "pyforkexec", *command, "sh", "-c", "exit 3"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert (res.returncode, res.stderr) == (3, ""), res


# A child step that fails after the launcher bound --uts=FILE (the execve), then a
# SIGINT or SIGTERM to the launcher right as it starts to undo that bind.
SIGNAL_IN_THE_UNDO = """
import os, signal, sys
from pyforkexec import cli
from pyforkexec.cli import unshare
unbind = unshare.unbind_namespace_files
signo = int(sys.argv.pop(1))
def signalled_then_unbind(bound):
    os.kill(os.getpid(), signo)
    unbind(bound)
unshare.unbind_namespace_files = signalled_then_unbind
sys.exit(cli.main(sys.argv[1:]))
"""


@needs_root
@pytest.mark.parametrize("signo", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_a_failed_start_is_undone_waits_for_the_undo(tmp_path: Path, signo: int) -> None:
    """The launcher undid the --TYPE=FILE binds of a program that never ran after the signal handlers
    were back: a Ctrl-C or SIGTERM in between ended it (a KeyboardInterrupt, or the kernel's default
    action) with the bind left on the file. The undo now runs with those signals blocked; the launcher
    ends by the signal once it is done."""
    target = tmp_path / "uts"
    target.touch()
    program = tmp_path / "prog"  # found and executable, but its execve fails: after the bind
    program.write_text("#!/nonexistent-pfe-interpreter\n")
    program.chmod(0o755)
    res = run([sys.executable, "-c", SIGNAL_IN_THE_UNDO, str(int(signo)), "unshare", f"--uts={target}",
               str(program)])
    try:
        with open("/proc/self/mountinfo") as f:
            assert f" {target} " not in f.read()
        assert res.returncode in (-signo, 128 + signo), res
    finally:
        subprocess.run(["umount", str(target)], check=False, capture_output=True)


# Binds --uts=FILE as the launcher does, then Ctrl-C as a terminal sends it (to the whole process
# group), while the child still waits before its execve; returns once the child died of it.
CTRL_C_IN_THE_SPAWN = """
import os, signal, sys, time
from pyforkexec import cli
from pyforkexec.cli import unshare
bind = unshare.bind_namespace_files
def bind_then_ctrl_c(pid, *args):
    bind(pid, *args)
    os.killpg(0, signal.SIGINT)
    while open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.01)
unshare.bind_namespace_files = bind_then_ctrl_c
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("fork", [[], ["--fork"]])
def test_a_ctrl_c_before_the_execve_ends_by_sigint_silently(tmp_path: Path, fork: list[str]) -> None:
    """A terminal's Ctrl-C reaches the child waiting before its execve too, which dies of it: the
    launcher said 'fork/exec /usr/bin/true: no such process (at sync_read)' and exited 125.
    util-linux's unshare ends by the SIGINT (130), silently; the bind of a program that never ran is
    undone."""
    target = tmp_path / "uts"
    target.touch()
    res = run([sys.executable, "-c", CTRL_C_IN_THE_SPAWN, "unshare", f"--uts={target}", *fork, "true"],
              start_new_session=True)
    try:
        assert (res.returncode, res.stderr) == (-signal.SIGINT, "")
        with open("/proc/self/mountinfo") as f:
            assert f" {target} " not in f.read()
    finally:
        subprocess.run(["umount", str(target)], check=False, capture_output=True)


@pytest.mark.parametrize("args,status", [
    (["-S", "x", "--version"], 1), (["--kill-child=BAD", "--help"], 1), (["--propagation=bad", "-V"], 1),
    (["--map-users=x", "--version"], 1), (["--version", "--frobnicate"], 0), (["-Vx"], 0),
    (["--version", "-S", "x"], 0), (["--uts=/nonexistent/uts", "--version"], 0),
    (["--monotonic=1", "--version"], 0),
], ids=lambda v: " ".join(v) if isinstance(v, list) else str(v))
def test_version_and_help_answer_where_they_are_read(args: list[str], status: int) -> None:
    """As unshare's getopt loop: a bad value before --version or --help fails first (the launcher
    answered --version whatever came before it), nothing after them is read (a bad option neither),
    nor what is checked once all are read (a bind target, -T for --monotonic)."""
    ours, theirs = both("unshare", *args)
    assert ours.returncode == theirs.returncode == status, (ours.stderr, theirs.stderr)
    assert bool(ours.stdout) == bool(theirs.stdout) == (status == 0)
    assert bool(ours.stderr) == bool(theirs.stderr) == (status != 0)


def test_a_persist_file_a_later_one_replaces_is_not_looked_at(tmp_path: Path) -> None:
    """``--uts=A --uts=B`` binds B, as util-linux, which keeps the last FILE of a type: A, missing, was
    refused when it was read."""
    target = tmp_path / "uts"
    target.touch()
    args = ["--uts=/nonexistent/uts", f"--uts={target}", "hostname"]
    for argv in ([PYFORKEXEC, "unshare", *args], [util_linux("unshare"), *args]):
        try:
            res = run(argv)
            with open("/proc/self/mountinfo") as f:
                bound = any(line.split()[4] == str(target) for line in f)
        finally:
            subprocess.run(["umount", str(target)], check=False, capture_output=True)
        assert (res.returncode, bound) == (0, True), (argv, res.stderr)


@pytest.mark.parametrize("proc", ["none", "tmpfs", "empty dir"])
def test_without_proc_the_command_runs_with_the_fds_it_was_given_as_util_linux(proc: str) -> None:
    """A chroot or a mount namespace with /proc unmounted (or something else at /proc): util-linux's
    command runs and inherits what it was given; ours listed the fds in /proc/self/fd and failed (125)."""
    hide = {"none": "umount -l /proc",
            "tmpfs": "umount -l /proc && mount -t tmpfs pfe-noproc /proc",
            "empty dir": "umount -l /proc && mount -t tmpfs pfe-noproc /proc && mkdir -p /proc/self/fd"}[proc]
    command = "cat <&3; cat <&7; readlink /proc/1/ns/uts || echo no-proc"
    said = {}
    for name, unshare_cmd in (("ours", [PYFORKEXEC, "unshare"]), ("util-linux", [util_linux("unshare")])):
        script = f"{hide} && exec \"$@\" 3</etc/hostname 7</etc/os-release"
        said[name] = run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                          *unshare_cmd, "--uts", "--net", "sh", "-c", command])
    ours, theirs = said["ours"], said["util-linux"]
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout) == (
        0, Path("/etc/hostname").read_text() + Path("/etc/os-release").read_text() + "no-proc\n"), said
