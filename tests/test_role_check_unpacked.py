"""The role's controller check (roles/isolated_service/files/check_services.py) keeps the hosts' wheel
unpacked and compiled once per content: what it imports, where, and that concurrent checks (one per
host under forks) and an unwritable cache still give each check a whole copy."""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "roles/isolated_service/files/check_services.py"


def _load():
    spec = importlib.util.spec_from_file_location("check_services_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_services = _load()


def _wheel(directory: Path, value: int) -> Path:
    path = directory / f"pyforkexec-0.{value}.0-cp39-abi3-linux_x86_64.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("fakepkg/__init__.py", f"VALUE = {value}\n")
        wheel.writestr("fakepkg/part.py", "def f():\n    return 'part'\n")
    return path


def _scratch_left(cache: Path) -> list[str]:
    return [n for n in os.listdir(cache) if n.startswith(".unpacking-")] if cache.exists() else []


def test_the_wheel_is_unpacked_and_compiled_once_per_content(tmp_path):
    cache = tmp_path / "unpacked"
    wheel = _wheel(tmp_path, 1)
    with check_services.unpacked(str(wheel), str(cache)) as first:
        assert Path(first).parent == cache
        assert (Path(first) / "fakepkg/__init__.py").read_text() == "VALUE = 1\n"
        compiled = list((Path(first) / "fakepkg/__pycache__").glob("*.pyc"))
        assert sorted(p.name.split(".")[0] for p in compiled) == ["__init__", "part"]
        made = os.stat(first).st_ino
    assert os.path.isdir(first), "kept for the next check"
    with check_services.unpacked(str(wheel), str(cache)) as again:
        assert again == first and os.stat(again).st_ino == made
    # the same name with another content (a rebuilt wheel) is another directory
    rebuilt = tmp_path / "rebuilt"
    rebuilt.mkdir()
    other = _wheel(rebuilt, 1)
    with zipfile.ZipFile(other, "a") as wheel:
        wheel.writestr("fakepkg/extra.py", "")
    with check_services.unpacked(str(other), str(cache)) as third:
        assert third != first and (Path(third) / "fakepkg/extra.py").exists()
    assert not _scratch_left(cache)


def _unpack_in_child(args):
    wheel, cache = args
    with check_services.unpacked(wheel, cache) as directory:
        return directory, (Path(directory) / "fakepkg/part.py").read_text()


def test_concurrent_checks_each_get_the_whole_directory(tmp_path):
    cache = tmp_path / "unpacked"
    wheel = _wheel(tmp_path, 2)
    with multiprocessing.get_context("fork").Pool(6) as pool:
        seen = pool.map(_unpack_in_child, [(str(wheel), str(cache))] * 12)
    assert {directory for directory, _ in seen} == {str(next(cache.iterdir()))}
    assert {text for _, text in seen} == {"def f():\n    return 'part'\n"}
    assert not _scratch_left(cache)


@pytest.mark.parametrize("cache", ["none", "a file"])
def test_without_a_writable_cache_a_temporary_directory_is_used_and_removed(tmp_path, cache):
    wheel = _wheel(tmp_path, 3)
    where = None
    if cache == "a file":
        where = tmp_path / "not-a-directory"
        where.write_text("")
    with check_services.unpacked(str(wheel), None if where is None else str(where)) as directory:
        assert (Path(directory) / "fakepkg/__init__.py").read_text() == "VALUE = 3\n"
        assert not Path(directory).is_relative_to(tmp_path)
    assert not os.path.exists(directory)


def test_the_scratch_of_a_killed_check_is_removed_by_the_next(tmp_path):
    """A check killed (SIGKILL: the controller's Ctrl-C twice, an OOM kill) while it unpacked left its
    scratch directory, a whole unpacked wheel, in the cache for good: no later check removed it. Now
    the next check that unpacks removes those of checks that ended, and not a running one's."""
    cache = tmp_path / "unpacked"
    cache.mkdir()
    child = multiprocessing.get_context("fork").Process(target=os._exit, args=(0,))
    child.start()
    child.join()
    (cache / f".unpacking-{child.pid}-abc123" / "fakepkg").mkdir(parents=True)  # (its pid ended)
    running = cache / f".unpacking-{os.getpid()}-def456"
    running.mkdir()
    with check_services.unpacked(str(_wheel(tmp_path, 1)), str(cache)):
        assert _scratch_left(cache) == [running.name]
