"""The hosts' architectures and Pythons, and the role's isolated_service_wheel_dir, checked where the
action isolated_service_wheels takes them. A wheel_dir that is no directory, or a directory without
pyforkexec's wheel, failed two tasks later in the check of the services (``Task failed: [Errno 2] No
such file or directory: '/x'``, or the check script's ``no pyforkexec-*.whl in ...``), naming no
variable."""

from __future__ import annotations

from ansible_collections.pyforkexec.isolation.plugins.action.isolated_service_wheels import (
    host_problems,
    wheel_dir_problem,
)


def test_a_wheel_dir_that_is_no_directory_is_refused_naming_the_variable(tmp_path):
    assert wheel_dir_problem(str(tmp_path / "nope")) == (
        f"isolated_service_wheel_dir: {str(tmp_path / 'nope')!r} is not a directory of the controller")
    (tmp_path / "file").write_text("")
    assert wheel_dir_problem(str(tmp_path / "file")).startswith("isolated_service_wheel_dir: ")


def test_a_wheel_dir_without_pyforkexecs_wheel_is_refused(tmp_path):
    (tmp_path / "pyroute2-0.7.0-py3-none-any.whl").write_text("")
    assert wheel_dir_problem(str(tmp_path)) == (
        f"isolated_service_wheel_dir: {tmp_path} holds no pyforkexec wheel (pyforkexec-*.whl)")
    (tmp_path / "pyforkexec-1.0-cp39-abi3-linux_x86_64.whl").write_text("")
    assert wheel_dir_problem(str(tmp_path)) is None


def test_a_hosts_architecture_or_python_that_would_name_another_directory_is_refused():
    """The build copies the sources to SCRATCH/MACHINE and fetches pip into WHEELS/pip-PYTHON: a
    machine of "../x" (what a host's look reported, unchecked) wrote outside them."""
    assert host_problems(["x86_64", "aarch64", "armv7l"], ["3.9", "3.11"]) == []
    assert host_problems(["../x", "x86_64\n", ""], ["3.11/..", "3"]) == [
        "machines[0]: '../x' is not an architecture (uname -m: letters, digits and '_')",
        "machines[1]: 'x86_64\\n' is not an architecture (uname -m: letters, digits and '_')",
        "machines[2]: '' is not an architecture (uname -m: letters, digits and '_')",
        "pythons[0]: '3.11/..' is not a Python version (X.Y)",
        "pythons[1]: '3' is not a Python version (X.Y)",
    ]


def test_a_wheel_dir_refilled_with_other_wheels_is_named_otherwise(tmp_path):
    """A host's runtime records the name of the wheels it was installed from, and the role takes a
    runtime of the same name for this release's (absent and check mode run this release's modules in
    it). By the directory's name alone, the same directory refilled with the next release's wheels
    named the release before's runtime as this one's."""
    from ansible_collections.pyforkexec.isolation.plugins.plugin_utils.wheel_sources import given_name

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "pyforkexec-1.0-cp39-abi3-linux_x86_64.whl").write_bytes(b"release 1")
    first = given_name(str(wheels))
    assert first.startswith("wheels-") and given_name(str(wheels) + "/") == first
    (wheels / "pyforkexec-1.0-cp39-abi3-linux_x86_64.whl").write_bytes(b"release 1, rebuilt")
    rebuilt = given_name(str(wheels))
    (wheels / "pyforkexec-1.0-cp39-abi3-linux_x86_64.whl").rename(wheels / "pyforkexec-1.1-cp39-abi3.whl")
    assert len({first, rebuilt, given_name(str(wheels))}) == 3
