"""The role's wheels are built in a scratch directory beside the cache's wheels and renamed into place
finished (plugin_utils/wheel_build.py): the build wrote straight into the wheels' directory, so that a
kill of ansible-playbook midway left truncated wheels there that later runs reused, and two runs at
once mixed theirs. A killed build's scratch is removed by the next build, never a running one's."""

from __future__ import annotations

import os
import signal
import time

import pytest
from ansible_collections.pyforkexec.isolation.plugins.plugin_utils import wheel_build, wheel_sources

WHEEL = "pyforkexec-1.0-cp39-abi3-linux_x86_64.whl"


def _build(scratch, content):
    wheels = os.path.join(scratch, wheel_build.WHEELS)
    os.makedirs(os.path.join(wheels, "pip-3.11"))
    with open(os.path.join(wheels, WHEEL), "w") as f:
        f.write(content)
    with open(os.path.join(wheels, wheel_sources.COMPLETE), "w") as f:
        f.write("setup.py\n")


def _builder(cache, kill):
    """A process that begins a build in ``cache`` and writes half a wheel: then killed (SIGKILL, no
    ``finally`` runs) with ``kill``, else left running; (its pid, its scratch)."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            scratch = wheel_build.begin(cache, os.getpid())
            os.makedirs(os.path.join(scratch, wheel_build.WHEELS))
            with open(os.path.join(scratch, wheel_build.WHEELS, "pyroute2-0.9.7-py3-none-any.whl"), "w") as f:
                f.write("trunc")
            os.write(ready_w, scratch.encode())
            if kill:
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(60)
        finally:
            os._exit(1)
    os.close(ready_w)
    scratch = os.read(ready_r, 4096).decode()
    os.close(ready_r)
    if kill:
        assert os.waitpid(pid, 0)[1] & 0x7F == signal.SIGKILL
    return pid, scratch


def test_a_killed_builds_scratch_is_removed_by_the_next_build_and_a_running_ones_kept(tmp_path):
    cache = str(tmp_path / "cache")
    os.makedirs(os.path.join(cache, "checked"))
    running, theirs = _builder(cache, kill=False)
    try:
        killed, left = _builder(cache, kill=True)
        assert os.path.basename(left).startswith(f".building-{killed}-") and os.path.isdir(left)
        ours = wheel_build.begin(cache, os.getpid())
        assert sorted(os.listdir(cache)) == sorted(["checked", *map(os.path.basename, (theirs, ours))])
        assert os.listdir(ours) == []
    finally:
        os.kill(running, signal.SIGKILL)
        os.waitpid(running, 0)
    again = wheel_build.begin(cache, os.getpid())
    assert sorted(os.listdir(cache)) == sorted(["checked", os.path.basename(ours), os.path.basename(again)])


def test_the_first_build_to_finish_is_kept_whole_and_the_other_left_in_its_scratch(tmp_path):
    cache = str(tmp_path / "cache")
    wheels = os.path.join(cache, "0123456789abcdef")
    first, second = wheel_build.begin(cache, os.getpid()), wheel_build.begin(cache, os.getpid())
    _build(first, "first")
    _build(second, "second")
    assert not os.path.exists(wheels)
    assert wheel_build.finish(first, wheels) is True
    assert wheel_build.finish(second, wheels) is False
    assert sorted(os.listdir(wheels)) == [".complete", "pip-3.11", WHEEL]
    with open(os.path.join(wheels, WHEEL)) as f:
        assert f.read() == "first"
    assert os.listdir(first) == [] and os.listdir(second) == [wheel_build.WHEELS]


def test_an_unfinished_build_is_not_put_in_place(tmp_path):
    cache = str(tmp_path / "cache")
    scratch = wheel_build.begin(cache, os.getpid())
    os.makedirs(os.path.join(scratch, wheel_build.WHEELS))
    with pytest.raises(ValueError, match="holds no finished build"):
        wheel_build.finish(scratch, os.path.join(cache, "0123456789abcdef"))
    assert sorted(os.listdir(cache)) == [os.path.basename(scratch)]


def test_an_older_roles_half_build_in_place_is_replaced(tmp_path):
    """The role before this wrote in place: a build of it killed midway left the wheels' directory
    without its mark, which a build now replaces whole (its truncated wheels with it)."""
    cache = str(tmp_path / "cache")
    wheels = os.path.join(cache, "0123456789abcdef")
    os.makedirs(wheels)
    with open(os.path.join(wheels, "pyroute2-0.9.7-py3-none-any.whl"), "w") as f:
        f.write("trunc")
    scratch = wheel_build.begin(cache, os.getpid())
    _build(scratch, "whole")
    assert wheel_build.finish(scratch, wheels) is True
    assert sorted(os.listdir(wheels)) == [".complete", "pip-3.11", WHEEL]
    assert os.listdir(scratch) == []
