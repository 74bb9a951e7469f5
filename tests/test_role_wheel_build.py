"""The role builds its hosts' wheels on the controller once (roles/isolated_service/tasks/wheels_build.yml)
into isolated_service_wheel_cache/HASH, which later runs reuse when it is marked finished. The build
wrote straight into that directory: an ansible-playbook killed midway left it with some wheels and no
mark, a truncated one among them possibly, which the next run's ``pip download`` reused ("File was
already downloaded"), and two runs at once mixed their files. Now the build writes in a scratch
directory beside it, named after the controller's process, renamed into place once finished; the next
build removes the scratch of a killed one.

Real ansible-playbook runs of the role's controller part (``tasks_from: controller``) on this machine,
one killed (Ctrl-C or SIGKILL of its process group: no ``always`` runs) once its build has written a
wheel. Needs
pip to fetch pyroute2 and pip (the index configured for this venv's pip)."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
pytestmark = pytest.mark.skipif(not os.path.exists(PLAYBOOK), reason="no ansible-core in this venv")


@pytest.fixture(scope="module")
def collections(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ANSIBLE_COLLECTIONS_PATH with this checkout as pyforkexec.isolation (scripts/lib/link-collection)."""
    dest = tmp_path_factory.mktemp("collections")
    subprocess.run([str(ROOT / "scripts/lib/link-collection"), str(dest)], check=True, capture_output=True)
    return dest


def _start(scratch: Path, collections: Path, cache: Path) -> subprocess.Popen:
    """ansible-playbook of the role's controller part, for one host of this machine's architecture and
    Python, in its own process group."""
    scratch.mkdir()
    planned = dict(host=dict(machine=platform.machine(), version="{}.{}".format(*sys.version_info[:2])),
                   jinja2_needed=False)
    host = dict(ansible_connection="local", ansible_python_interpreter=sys.executable,
                _isolated_service_planned=planned)
    inventory = dict(all=dict(hosts=dict(h=host)))
    playbook = [dict(hosts="all", gather_facts=False, tasks=[{
        "name": "the controller part",
        "ansible.builtin.include_role": dict(name="pyforkexec.isolation.isolated_service",
                                             tasks_from="controller"),
        "vars": dict(isolated_service_wheel_cache=str(cache)),
    }])]
    (scratch / "inventory.json").write_text(json.dumps(inventory))
    (scratch / "play.yml").write_text(json.dumps(playbook))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_NOCOLOR="1",
               ANSIBLE_RETRY_FILES_ENABLED="False")
    return subprocess.Popen([PLAYBOOK, "-i", "inventory.json", "play.yml"], env=env, cwd=scratch,
                            stdout=open(scratch / "ansible.log", "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _run(scratch: Path, collections: Path, cache: Path) -> str:
    run = _start(scratch, collections, cache)
    assert run.wait(timeout=600) == 0, (scratch / "ansible.log").read_text()[-3000:]
    return (scratch / "ansible.log").read_text()


def _wheels_written(cache: Path) -> bool:
    return cache.is_dir() and any(cache.rglob("*.whl"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_a_killed_build_leaves_no_wheels_and_its_scratch_is_removed_by_the_next(tmp_path, collections, sig):
    """Ctrl-C (SIGINT to the group: "User interrupted execution", the ``always`` does not run) or a
    SIGKILL of it."""
    cache = tmp_path / "cache"
    killed = _start(tmp_path / "killed", collections, cache)
    try:
        deadline = time.monotonic() + 300
        while not _wheels_written(cache) and killed.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert killed.poll() is None, (tmp_path / "killed/ansible.log").read_text()[-3000:]
        assert _wheels_written(cache), "no wheel written in 300 s"
    finally:
        os.killpg(killed.pid, sig)
        killed.wait(timeout=60)
    time.sleep(0.5)  # (its processes' ends)
    left = sorted(os.listdir(cache))
    # no directory of wheels: only the killed build's scratch, named after its controller
    assert [n for n in left if not n.startswith(".building-")] == [], left
    assert [n.split("-")[1] for n in left] == [str(killed.pid)]

    log = _run(tmp_path / "next", collections, cache)
    assert "Put the finished build in place" in log
    built = os.listdir(cache)
    assert len(built) == 1 and not built[0].startswith("."), built  # the killed one's scratch went
    wheels = cache / built[0]
    assert (wheels / ".complete").is_file()
    names = sorted(os.listdir(wheels))
    assert {n.split("-")[0] for n in names} >= {"pyforkexec", "pyroute2", "pip"}, names

    again = _run(tmp_path / "again", collections, cache)  # the finished build is reused: nothing built
    assert "Put the finished build in place" not in again
    assert os.listdir(cache) == built and sorted(os.listdir(wheels)) == names


def test_two_runs_building_the_same_wheels_at_once_keep_one_whole_build(tmp_path, collections):
    """Both find no finished build and build: the first to finish puts its build in place, the other
    keeps that one and removes its own (both runs succeed, the hosts of each get the same directory)."""
    cache = tmp_path / "cache"
    runs = [_start(tmp_path / name, collections, cache) for name in ("one", "two")]
    for run, name in zip(runs, ("one", "two")):
        assert run.wait(timeout=600) == 0, (tmp_path / name / "ansible.log").read_text()[-3000:]
    logs = [(tmp_path / name / "ansible.log").read_text() for name in ("one", "two")]
    # the task's outcome: "changed" where the build was put in place, "ok" where the other's was kept
    outcomes = [log.split("Put the finished build in place")[1].split("***\n", 1)[1].split(":")[0]
                for log in logs]
    assert sorted(outcomes) == ["changed", "ok"], outcomes
    built = os.listdir(cache)
    assert len(built) == 1 and not built[0].startswith("."), built
    assert (cache / built[0] / ".complete").is_file()
