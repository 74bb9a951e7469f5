"""A passed check of the role's services is recorded under a key of everything it depends on
(plugin_utils/check_cache.py): the same request with the same wheels finds it; any change does not."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest
from ansible_collections.pyforkexec.isolation.plugins.plugin_utils import check_cache


def test_the_key_follows_the_request_the_wheels_and_the_script(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel = wheels / "pyforkexec-1.0-cp39-abi3-linux_x86_64.whl"
    wheel.write_bytes(b"one")
    script = tmp_path / "check.py"
    script.write_text("print([])\n")
    request = dict(wheels=str(wheels), networks=[], services=[dict(name="web")])
    first = check_cache.key(str(script), request, "/usr/bin/python3")
    assert check_cache.key(str(script), dict(request), "/usr/bin/python3") == first
    assert (
        check_cache.key(str(script), dict(request, services=[dict(name="api")]), "/usr/bin/python3") != first
    )
    assert check_cache.key(str(script), request, "/other/python3") != first
    wheel.write_bytes(b"rebuilt")
    second = check_cache.key(str(script), request, "/usr/bin/python3")
    assert second != first
    script.write_text("print(['x'])\n")
    assert check_cache.key(str(script), request, "/usr/bin/python3") != second


def test_a_pass_is_found_once_recorded(tmp_path):
    cache = tmp_path / "checked"
    assert not check_cache.passed(str(cache), "k")
    check_cache.record_pass(str(cache), "k")
    assert check_cache.passed(str(cache), "k")
    assert os.listdir(cache) == ["k"]


def test_a_record_interrupted_before_its_rename_leaves_no_file(tmp_path):
    # A Ctrl-C of the controller at the rename (raised there as the signal's handler would raise it)
    cache = tmp_path / "checked"

    def interrupt(frame, event, arg):
        if event == "c_call" and arg is os.replace:
            raise KeyboardInterrupt

    sys.setprofile(interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            check_cache.record_pass(str(cache), "k")
    finally:
        sys.setprofile(None)
    assert os.listdir(cache) == []
    assert not check_cache.passed(str(cache), "k")


def _writer_stopped_at_its_rename(cache, check_key, kill):
    """A process that records ``check_key`` and stops at the rename, its KEY.PID written: killed there
    (SIGKILL: no ``except`` runs) with ``kill``, else left waiting; its pid."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        def stop(frame, event, arg):
            if event == "c_call" and arg is os.replace:
                os.write(ready_w, b"x")
                if kill:
                    os.kill(os.getpid(), signal.SIGKILL)
                time.sleep(60)
        sys.setprofile(stop)
        try:
            check_cache.record_pass(cache, check_key)
        finally:
            os._exit(1)
    os.close(ready_w)
    assert os.read(ready_r, 1) == b"x"
    os.close(ready_r)
    if kill:
        assert os.waitpid(pid, 0)[1] & 0x7F == signal.SIGKILL
    return pid


def test_the_record_of_a_killed_writer_is_removed_and_not_that_of_a_running_one(tmp_path):
    """A controller killed between the write of KEY.PID and its rename left KEY.PID in the cache for
    good: the next record removes those of writers that ended, never one being written."""
    cache = str(tmp_path / "checked")
    running = _writer_stopped_at_its_rename(cache, "b" * 64, kill=False)
    try:
        killed = _writer_stopped_at_its_rename(cache, "a" * 64, kill=True)
        assert sorted(os.listdir(cache)) == ["a" * 64 + f".{killed}", "b" * 64 + f".{running}"]
        check_cache.record_pass(cache, "c" * 64)
        assert sorted(os.listdir(cache)) == ["b" * 64 + f".{running}", "c" * 64]
    finally:
        os.kill(running, signal.SIGKILL)
        os.waitpid(running, 0)
    check_cache.record_pass(cache, "d" * 64)
    assert sorted(os.listdir(cache)) == ["c" * 64, "d" * 64]
