# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""The action pyforkexec.isolation.isolated_service_wheels (documented in plugins/modules/): on the
controller, in one task and no process, which wheels the role isolated_service's hosts get: the
directory named after their sources (plugin_utils/wheel_sources.py) and whether its build is finished,
or the given isolated_service_wheel_dir; and the refusal of hosts of an architecture the controller
cannot cross-build pyforkexec for. An unfinished build gets a scratch directory to build in, which the
action with ``finish`` renames into place (plugin_utils/wheel_build.py)."""

from __future__ import annotations

import glob
import os
import platform
import re
import shutil

from ansible_collections.pyforkexec.isolation.plugins.plugin_utils import (
    role_action,
    wheel_build,
    wheel_sources,
)

ARGSPEC = dict(
    root=dict(type="path", required=True),
    cache=dict(type="path", required=True),
    wheel_dir=dict(type="str", default=""),
    machines=dict(type="list", elements="str", required=True),
    pythons=dict(type="list", elements="str", required=True),
    requirements=dict(type="list", elements="str", required=True),
    platforms=dict(type="list", elements="str", required=True),
    pip_args=dict(type="list", elements="str", default=[]),
    finish=dict(type="str", default=""),
)


def cross_compiler_problems(machines: list[str], controller: str) -> list[str]:
    """pyforkexec's wheel for another architecture is cross-built (setup.py's PYFORKEXEC_TARGET): the
    controller needs that architecture's cross compiler and Python headers; the hosts never need one."""
    return [
        f"pyforkexec's wheel is built on the controller ({controller}); for the {m} hosts it needs the cross "
        f"compiler {m}-linux-gnu-gcc and that architecture's Python headers (Debian: gcc-{m}-linux-gnu and "
        "libpython3-dev:<arch>), or give isolated_service_wheel_dir with wheels for them"
        for m in machines
        if m != controller and shutil.which(f"{m}-linux-gnu-gcc") is None
    ]


# What the hosts' look reports (platform.machine(), "X.Y"): the build writes under directories named
# after them (the scratch's copy for each architecture, pip-X.Y/), which a "/" or ".." would leave.
MACHINE = re.compile(r"[A-Za-z0-9_]+")
PYTHON = re.compile(r"[0-9]+\.[0-9]+")


def host_problems(machines: list[str], pythons: list[str]) -> list[str]:
    """The hosts' architectures and Python versions that are none, each named."""
    return [
        f"{option}[{i}]: {value!r} is not {what}"
        for option, values, pattern, what in (
            ("machines", machines, MACHINE, "an architecture (uname -m: letters, digits and '_')"),
            ("pythons", pythons, PYTHON, "a Python version (X.Y)"),
        )
        for i, value in enumerate(values)
        if not pattern.fullmatch(value)
    ]


def wheel_dir_problem(wheel_dir: str) -> str | None:
    """Why the given wheels cannot be used, naming the variable: the checks and the hosts would fail on
    it later without naming it (``Task failed: [Errno 2] No such file or directory``)."""
    if not os.path.isdir(wheel_dir):
        return f"isolated_service_wheel_dir: {wheel_dir!r} is not a directory of the controller"
    if not glob.glob(os.path.join(glob.escape(wheel_dir), "pyforkexec-*.whl")):
        return f"isolated_service_wheel_dir: {wheel_dir} holds no pyforkexec wheel (pyforkexec-*.whl)"
    return None


class ActionModule(role_action.RoleAction):
    ARGSPEC = ARGSPEC
    EXISTING = dict(root="directory")

    def act(self, result, args):
        controller = platform.machine()
        result.update(changed=False, controller_machine=controller)
        if args["wheel_dir"]:
            problem = wheel_dir_problem(args["wheel_dir"])
            if problem is not None:
                return dict(result, failed=True, msg=problem)
            return dict(result, path=args["wheel_dir"], name=wheel_sources.given_name(args["wheel_dir"]),
                        paths=[], complete=True)
        problems = host_problems(args["machines"], args["pythons"]) or cross_compiler_problems(
            args["machines"], controller)
        if problems:
            return dict(result, failed=True, msg="\n".join(problems))
        path, paths = wheel_sources.directory(
            args["cache"],
            args["root"],
            args["requirements"],
            args["pythons"],
            args["machines"],
            args["platforms"],
            args["pip_args"],
        )
        result.update(path=path, name=os.path.basename(path), paths=paths)
        if args["finish"]:
            return dict(result, changed=wheel_build.finish(args["finish"], path), complete=True)
        if wheel_sources.finished(path):
            return dict(result, complete=True)
        # The scratch is named after the controller (ansible-playbook, whose worker runs this): a later
        # build removes it once that process has ended.
        return dict(result, complete=False, scratch=wheel_build.begin(args["cache"], os.getppid()))
