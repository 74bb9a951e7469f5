"""Concurrent spawns into cgroups that share a parent (issue 11): threads of this process, other Python
processes and the CLI launcher create and remove ``a/b{i}`` under one ``a`` at the same time.

Every spawn must succeed (no ENOENT because another spawn removed ``a`` while this one created its
leaf), nothing may be left behind once all have finished (a parent its creator had to leave, as
someone else still used it, is removed by the last one out), a cgroup pyforkexec did not create is
kept, and no directory fd stays open. ``PYFORKEXEC_RACE_ROUNDS`` runs more rounds.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest
from helpers.marks import needs_root
from helpers.procs import fd_count

from pyforkexec import ProcAttr, SysProcAttr, run, start_process
from pyforkexec.sandbox.cgroup import Cgroup, CgroupError, find_cgroup2

pytestmark = needs_root
ROUNDS = int(os.environ.get("PYFORKEXEC_RACE_ROUNDS", "3"))
THREADS, PROCS = 6, 2
TRUE = "/bin/true"
REPO = Path(__file__).resolve().parent.parent
# Where spawn j of worker i goes; {p} is the round's unique prefix.
LAYOUTS = {
    "siblings": ("{p}/b{i}", 10),
    "nested": ("{p}/m/b{i}", 10),  # two shared levels
    "same-leaf": ("{p}/b", 10),  # everyone in one directory
    "churn": ("{p}-{j}/b{i}", 30),  # a shared parent per spawn index: made and removed all the time
}

# Another process doing what the threads do: prints one line per failed spawn.
WORKER = """
import sys
from pyforkexec import Cgroup, SysProcAttr, run
template, prefix, i, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for j in range(count):
    path = template.format(p=prefix, i=i, j=j)
    try:
        res = run(["/bin/true"], sys=SysProcAttr(cgroup=Cgroup(path)))
        if res.returncode:
            print(f"{path}: exit {res.returncode}")
    except Exception as e:
        print(f"{path}: {e!r}")
"""

# prepare() and cleanup() alone, as a spawn does them around clone (no child: many more per second,
# so the windows between one spawn's mkdir and another's rmdir are hit often).
PREPARER = """
import os, sys, threading
from pyforkexec.sandbox.cgroup import Cgroup, check_cgroup, prepare
template, prefix, w, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def work(t):
    for k in range(count):
        path = template.format(p=prefix, i=f"{w}-{t}", j=k % 3)
        try:
            handle = prepare(check_cgroup("SysProcAttr.cgroup", Cgroup(path)))
        except Exception as e:
            print(f"{path}: {e!r}")
            continue
        try:  # until close(), the directory must stay the one prepared
            if os.fstat(handle.fd).st_ino != os.stat(handle.path).st_ino:
                print(f"{path}: replaced while prepared")
        except OSError as e:
            print(f"{path}: removed while prepared: {e!r}")
        handle.close()
        handle.cleanup()

threads = [threading.Thread(target=work, args=(t,)) for t in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""


def root() -> str:
    try:
        path = find_cgroup2()
    except CgroupError as e:
        pytest.skip(str(e))
    probe = os.path.join(path, f"pyforkexec-race-probe-{uuid.uuid4().hex[:8]}")
    try:
        os.mkdir(probe)
    except OSError as e:
        pytest.skip(f"cannot create a cgroup here: {e}")
    os.rmdir(probe)
    return path


def left_behind(base: str, prefix: str) -> list[str]:
    """The directories under ``base`` whose name starts with ``prefix``, deepest first."""
    found = [d for top in glob.glob(os.path.join(base, glob.escape(prefix) + "*"))
             for d, _, _ in os.walk(top)]
    return sorted((os.path.relpath(d, base) for d in found), key=lambda d: -d.count("/"))


@pytest.fixture
def prefix() -> Iterator[Callable[[], str]]:
    """Fresh unique names; whatever a failing test leaves under them is removed afterwards."""
    names: list[str] = []

    def make() -> str:
        names.append(f"pyforkexec-race-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        return names[-1]

    yield make
    base = find_cgroup2()
    for name in names:
        for d in left_behind(base, name):  # a cgroup tree is removed bottom-up, one rmdir each
            os.rmdir(os.path.join(base, d))


def spawn_many(template: str, p: str, i: int, count: int, errors: list[str]) -> None:
    for j in range(count):
        path = template.format(p=p, i=i, j=j)
        try:
            res = run([TRUE], sys=SysProcAttr(cgroup=Cgroup(path)))
            if res.returncode:
                errors.append(f"{path}: exit {res.returncode}")
        except Exception as e:
            errors.append(f"{path}: {e!r}")


def cli_spec(tmp: Path, path: str) -> str:
    spec = tmp / f"{path.replace('/', '_')}.json"
    spec.write_text(json.dumps({"version": 1, "argv": [TRUE], "sys": {"cgroup": {"path": path}}}))
    return str(spec)


def one_round(base: str, p: str, template: str, count: int, tmp: Path, cli: bool) -> list[str]:
    """THREADS threads and PROCS processes (and a CLI launcher) spawning at once; what went wrong."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "env": env, "text": True}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, template, p, str(i), str(count)], **out)
             for i in range(THREADS, THREADS + PROCS)]
    if cli:
        spec = cli_spec(tmp, template.format(p=p, i=THREADS + PROCS, j=0))
        procs.append(subprocess.Popen([sys.executable, "-m", "pyforkexec", "exec", "--spec", spec], **out))
    errors: list[str] = []
    threads = [threading.Thread(target=spawn_many, args=(template, p, i, count, errors))
               for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for proc in procs:
        text, _ = proc.communicate(timeout=60)
        errors += text.splitlines()
        if proc.returncode:
            errors.append(f"{proc.args[1:4]} exited {proc.returncode}")
    left = left_behind(base, p)
    if left:
        errors.append(f"left behind: {left}")
    return errors


@pytest.mark.timeout(90)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_concurrent_spawns_share_parents(prefix: Callable[[], str], tmp_path: Path, layout: str) -> None:
    base = root()
    template, count = LAYOUTS[layout]
    fds = fd_count()
    failed = []
    for n in range(ROUNDS):
        errors = one_round(base, prefix(), template, count, tmp_path, cli=n == 0)
        if errors:
            failed.append(f"round {n}: {len(errors)} failures, e.g. {errors[:3]}")
    assert not failed, "\n".join(failed)
    assert fd_count() == fds  # every directory fd closed


def test_the_last_one_out_removes_the_parent(prefix: Callable[[], str]) -> None:
    """A makes a and a/b; B joins with a/c; A leaves first (a stays: a/c is B's); B removes a."""
    base = root()
    a = prefix()
    first, second = (start_process("/bin/sleep", ["sleep", "60"], ProcAttr(sys=SysProcAttr(cgroup=cg)))
                     for cg in (Cgroup(f"{a}/b"), Cgroup(f"{a}/c")))
    first.kill()
    first.wait()
    assert left_behind(base, a) == [f"{a}/c", a]
    second.kill()
    second.wait()
    assert left_behind(base, a) == []


def test_a_parent_someone_else_made_is_kept(prefix: Callable[[], str]) -> None:
    """Guard for the rule above: an empty parent that pyforkexec did not create stays, whoever
    leaves it last, and so does one that a spawn with remove=False created."""
    base = root()
    mine, kept = prefix(), prefix()
    os.mkdir(os.path.join(base, mine))
    errors: list[str] = []
    threads = [threading.Thread(target=spawn_many, args=("{p}/b{i}", mine, i, 4, errors)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert run([TRUE], sys=SysProcAttr(cgroup=Cgroup(f"{kept}/x", remove=False))).returncode == 0
    assert run([TRUE], sys=SysProcAttr(cgroup=Cgroup(f"{kept}/y"))).returncode == 0
    assert not errors
    assert left_behind(base, mine) == [mine]
    assert left_behind(base, kept) == [f"{kept}/x", kept]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("template", ["{p}-{j}/b{i}", "{p}-{j}/m/b"], ids=["siblings", "same-leaf"])
def test_concurrent_prepares_keep_their_directory(prefix: Callable[[], str], template: str) -> None:
    """Processes of three threads each prepare and clean up, into three shared parents in turn."""
    base = root()
    p = prefix()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", PREPARER, template, p, str(w), str(50 * ROUNDS)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
             for w in range(4)]
    errors = [line for proc in procs for line in proc.communicate(timeout=80)[0].splitlines()]
    assert [proc.returncode for proc in procs] == [0] * len(procs), errors[-5:]
    assert not errors, f"{len(errors)} failures, e.g. {errors[:3]}"
    assert left_behind(base, p) == []
