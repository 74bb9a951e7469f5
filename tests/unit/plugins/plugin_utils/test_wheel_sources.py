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


# A play's wheel directory: pyforkexec for two architectures, a pure dependency, a binary one for three
# Pythons and two architectures, pip's wheel per Python (two versions for 3.9), and what is not a wheel.
PLAY_WHEELS = [
    "pyforkexec-0.1.0-cp39-abi3-linux_x86_64.whl",
    "pyforkexec-0.1.0-cp39-abi3-linux_aarch64.whl",
    "pyroute2-0.9.7-py3-none-any.whl",
    *(f"markupsafe-3.0.4-cp{v}-cp{v}-manylinux2014_{m}.manylinux_2_17_{m}.manylinux_2_28_{m}.whl"
      for v in ("39", "311", "313") for m in ("x86_64", "aarch64")),
    "pip-3.9/pip-24.0-py3-none-any.whl",
    "pip-3.9/pip-26.0.1.post1-py3-none-any.whl",
    "pip-3.11/pip-26.3-py3-none-any.whl",
    ".complete",
    "notes.txt",
]
PLATFORMS = ["manylinux_2_28", "manylinux_2_17", "manylinux2014"]


def _play_wheels(root):
    for name in PLAY_WHEELS:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")
    return str(root)


def test_a_host_gets_the_wheels_its_python_and_architecture_install(tmp_path):
    wheels = _play_wheels(tmp_path)
    assert wheel_sources.for_host(wheels, "x86_64", "3.11", PLATFORMS, pip=False) == [
        "markupsafe-3.0.4-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl",
        "pyforkexec-0.1.0-cp39-abi3-linux_x86_64.whl",
        "pyroute2-0.9.7-py3-none-any.whl",
    ]
    assert wheel_sources.for_host(wheels, "aarch64", "3.13", PLATFORMS, pip=False) == [
        "markupsafe-3.0.4-cp313-cp313-manylinux2014_aarch64.manylinux_2_17_aarch64.manylinux_2_28_aarch64.whl",
        "pyforkexec-0.1.0-cp39-abi3-linux_aarch64.whl",
        "pyroute2-0.9.7-py3-none-any.whl",
    ]


def test_pip_is_the_newest_wheel_of_the_hosts_python_and_only_when_asked(tmp_path):
    wheels = _play_wheels(tmp_path)
    got = wheel_sources.for_host(wheels, "x86_64", "3.9", PLATFORMS, pip=True)
    assert got[-1] == "pip-3.9/pip-26.0.1.post1-py3-none-any.whl"  # by version, not by name
    assert [name for name in got if name.startswith("pip")] == [got[-1]]
    without = wheel_sources.for_host(wheels, "x86_64", "3.9", PLATFORMS, pip=False)
    assert not any(name.startswith("pip") for name in without)
    none_for_it = wheel_sources.for_host(wheels, "x86_64", "3.13", PLATFORMS, pip=True)  # no pip-3.13/
    assert not any(name.startswith("pip") for name in none_for_it)


def test_a_python_older_than_abi3s_floor_or_other_platform_tags_get_no_binary_wheel(tmp_path):
    wheels = _play_wheels(tmp_path)
    assert wheel_sources.for_host(wheels, "x86_64", "3.8", PLATFORMS, pip=False) == [
        "pyroute2-0.9.7-py3-none-any.whl"]
    # fetched for manylinux_2_28 and older: a host offered only musllinux tags gets the pure wheels
    assert wheel_sources.for_host(wheels, "x86_64", "3.11", ["musllinux_1_2"], pip=False) == [
        "pyforkexec-0.1.0-cp39-abi3-linux_x86_64.whl", "pyroute2-0.9.7-py3-none-any.whl"]


def test_every_wheel_of_a_directory_the_user_gave(tmp_path):
    wheels = _play_wheels(tmp_path)
    got = wheel_sources.for_host(wheels, "x86_64", "3.11", PLATFORMS, pip=True, every=True)
    top = sorted(n for n in PLAY_WHEELS if "/" not in n and n.endswith(".whl"))
    assert got == [*top, "pip-3.11/pip-26.3-py3-none-any.whl"]


def test_an_edit_of_the_documentation_alone_makes_no_new_wheel(tmp_path):
    """README.md is copied for the build (the wheel's description), but an edit of it alone names no
    new wheel: every host would install it again, and restart its services for it."""
    root = tmp_path / "collection"
    _collection(root)
    (root / "README.md").write_text("# pyforkexec\n")
    cache = str(tmp_path / "cache")
    first, paths = wheel_sources.directory(cache, str(root), **HOSTS)
    assert "README.md" in paths
    (root / "README.md").write_text("# pyforkexec, edited\n")
    assert wheel_sources.directory(cache, str(root), **HOSTS)[0] == first
    (root / "setup.py").write_text("# a build change\n")
    assert wheel_sources.directory(cache, str(root), **HOSTS)[0] != first
