"""The role's wheel directory is named after pyforkexec's sources and the hosts (plugin_utils/
wheel_sources.py); a controller without a host architecture's cross compiler refuses those hosts."""

from __future__ import annotations

import platform

from ansible_collections.pyforkexec.isolation.plugins.action.isolated_service_wheels import (
    cross_compiler_problems,
)
from ansible_collections.pyforkexec.isolation.plugins.plugin_utils import wheel_sources

HOSTS = dict(
    requirements=["pyroute2>=0.7"],
    pythons=["3.11"],
    machines=["x86_64"],
    platforms=["manylinux_2_28"],
    pip_args=[],
)


def _collection(root):
    (root / "pyforkexec" / "child").mkdir(parents=True)
    (root / "pyforkexec" / "__init__.py").write_text("")
    (root / "pyforkexec" / "child" / "_child.c").write_text("int x;\n")
    (root / "pyforkexec" / "child" / "notes.txt").write_text("not a source\n")
    (root / "setup.py").write_text("")
    (root / "galaxy.yml").write_text("version: 1.0.0\n")
    (root / "plugins").mkdir()
    (root / "plugins" / "x.py").write_text("")  # not pyforkexec's


def test_the_sources_are_the_package_and_the_build_files(tmp_path):
    _collection(tmp_path)
    assert wheel_sources.sources(str(tmp_path)) == [
        "galaxy.yml",
        "pyforkexec/__init__.py",
        "pyforkexec/child/_child.c",
        "setup.py",
    ]


def test_the_directory_changes_with_a_source_or_a_host(tmp_path):
    root = tmp_path / "collection"
    _collection(root)
    cache = str(tmp_path / "cache")
    first, paths = wheel_sources.directory(cache, str(root), **HOSTS)
    assert first.startswith(cache + "/") and len(first) == len(cache) + 17 and paths
    assert wheel_sources.directory(cache, str(root), **HOSTS)[0] == first
    more_pythons = {**HOSTS, "pythons": ["3.9", "3.11"]}
    assert wheel_sources.directory(cache, str(root), **more_pythons)[0] != first
    (root / "pyforkexec" / "child" / "_child.c").write_text("int y;\n")
    assert wheel_sources.directory(cache, str(root), **HOSTS)[0] != first
    assert not wheel_sources.finished(first)
    (tmp_path / "cache" / first.rsplit("/", 1)[1]).mkdir(parents=True)
    (tmp_path / "cache" / first.rsplit("/", 1)[1] / ".complete").write_text("")
    assert wheel_sources.finished(first)


def test_hosts_of_another_architecture_need_its_cross_compiler():
    here = platform.machine()
    assert cross_compiler_problems([here], here) == []
    (problem,) = cross_compiler_problems([here, "pfe-nosucharch"], here)
    assert "for the pfe-nosucharch hosts it needs the cross compiler pfe-nosucharch-linux-gnu-gcc" in problem
