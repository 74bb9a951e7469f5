# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""The forkexec module's logic: its argument spec and ``run``, one run of the module (the result for
exit_json, or a ``Failure`` for fail_json)."""

from __future__ import annotations

import datetime
import os
import shlex
import subprocess
import threading

from ansible_collections.pyforkexec.isolation.plugins.module_utils import deps
from ansible_collections.pyforkexec.isolation.plugins.module_utils.isolation import (
    ISOLATION_ARGSPEC,
    ISOLATION_MUTUALLY_EXCLUSIVE,
    IsolationError,
    build_and_check,
    check_on_host,
    check_program,
    environment_entries,
    landlock_report,
    landlock_warning,
)

ARGSPEC = dict(
    argv=dict(type="list", elements="str"),
    cmd=dict(type="str"),
    chdir=dict(type="path"),
    env=dict(type="dict", default={}),
    inherit_env=dict(type="bool", default=True),
    stdin=dict(type="str"),
    stdin_add_newline=dict(type="bool", default=True),
    timeout=dict(type="float", default=0),
    creates=dict(type="path"),
    removes=dict(type="path"),
    **ISOLATION_ARGSPEC,
)
MUTUALLY_EXCLUSIVE = [("argv", "cmd"), *ISOLATION_MUTUALLY_EXCLUSIVE]
REQUIRED_ONE_OF = [("argv", "cmd")]


class Failure(Exception):
    """The module fails: ``msg`` and the other fields of the result."""

    def __init__(self, msg, **fields):
        super().__init__(msg)
        self.msg, self.fields = msg, fields


def child_error(e):
    return dict(errno=e.errno, errno_name=e.errno_name, location=e.location.step, index=e.index,
                filename=e.filename)


def skip_reason(params):
    for option in ("creates", "removes"):
        # os.path.exists() is False for a path with a NUL: creates would always run, removes never
        if params[option] and "\0" in params[option]:
            raise Failure(f"{option}: contains a NUL byte, which no path holds: {params[option]!r}")
    if params["creates"] and os.path.exists(params["creates"]):
        return f"skipped, since {params['creates']} exists"
    if params["removes"] and not os.path.exists(params["removes"]):
        return f"skipped, since {params['removes']} does not exist"
    return None


def environment(params):
    env = dict(os.environ) if params["inherit_env"] else {}
    environment_entries(params["env"])  # refuses a name that would set another variable, a null value
    env.update({k: str(v) for k, v in params["env"].items()})
    return env


def run(params, check_mode, warn=lambda message: None):
    """One run of the module: the result for exit_json; ``warn`` gets each warning. Raises Failure."""
    command = "argv" if params["argv"] is not None else "cmd"
    if params["argv"] is None and params["cmd"] is None:
        # Ansible's required_one_of counts an option given as null as given; shlex.split(None) would
        # read the command from this module's standard input.
        raise Failure("argv or cmd: one of them is needed, with a value (null is none)")
    try:
        argv = params["argv"] if params["argv"] is not None else shlex.split(params["cmd"])
    except ValueError as e:  # shlex: an unclosed quote, a last backslash (no cmd: it is a list)
        raise Failure(f"cmd: {e} (as a shell would split it)") from None
    if not argv:
        raise Failure(f"{command}: the command is empty", cmd=argv)
    # pyforkexec.run()'s bound (Process.wait's): refused here, in check mode too, not at the start.
    if not 0 <= params["timeout"] <= threading.TIMEOUT_MAX:  # (NaN too)
        raise Failure(f"timeout: must be 0 (wait forever) or a number of seconds up to "
                      f"{threading.TIMEOUT_MAX}, got {params['timeout']}", cmd=argv)
    try:
        env = environment(params)
        built = build_and_check(params, argv, env=[f"{k}={v}" for k, v in env.items()], chdir=params["chdir"],
                                cgroup_path=f"pyforkexec/forkexec-{os.getpid()}", argv_option=command,
                                cgroup_on_host=True)
        sys_attr = built.attr.sys
    except IsolationError as e:
        raise Failure(str(e), cmd=argv) from None
    # What this kernel enforces of the Landlock policy (strict mode refused above what it cannot).
    landlock = landlock_report(sys_attr.landlock)
    reported = dict(landlock=landlock) if landlock else {}
    warning = landlock_warning(landlock)
    if warning:
        warn(warning)
    reason = skip_reason(params)
    if reason:
        return dict(changed=False, skipped=True, msg=reason, cmd=argv, rc=0, stdout="", stderr="", **reported)
    try:
        if check_mode:  # what the start would find on this host first (a working directory, the program)
            check_on_host(argv, built.attr, built.origins)
        else:  # the program, which the start finds only at execve (a process made, the option not named)
            check_program(argv, built.attr, built.origins)
    except IsolationError as e:
        raise Failure(str(e), cmd=argv) from None
    if check_mode:
        return dict(changed=True, msg="would run (check mode): every option validated", cmd=argv, **reported)

    pids = []
    sys_attr.sync = pids.append  # pyforkexec calls it with the child's pid just before execve
    fe = deps.pyforkexec
    # A timeout ends the whole command, not its first process alone: the command in a process group of
    # its own (PID 1 of a PID namespace takes its namespace with it), killed whole on timeout by run()
    # (kill_group): while the command is unreaped, as its pid, the group's id, is not another's yet.
    group = bool(params["timeout"]) and not (sys_attr.setsid or sys_attr.setpgid
                                             or sys_attr.cloneflags & fe.CLONE_NEWPID)
    if group:
        sys_attr.setpgid = True
    data = params["stdin"]
    if data is not None and params["stdin_add_newline"]:
        data += "\n"
    start = datetime.datetime.now()
    try:
        result = fe.run(argv, sys=sys_attr, env=env, cwd=params["chdir"], input=data,
                        stdin=None if data is not None else subprocess.DEVNULL, capture_output=True,
                        timeout=params["timeout"] or None, kill_group=group or sys_attr.setsid)
    except fe.ChildError as e:
        raise Failure(built.explain(e), cmd=argv, child_error=child_error(e), rc=None, **reported) from None
    except subprocess.TimeoutExpired:
        raise Failure(f"the command did not exit within {params['timeout']} seconds: it was killed, with "
                      "the processes it started", cmd=argv, pid=pids[0] if pids else None, rc=None,
                      **reported) from None
    except (OSError, ValueError, TypeError) as e:  # refused by pyforkexec at the spawn: a join target gone...
        raise Failure(built.explain(e, context=f"could not start {argv[0]}"), cmd=argv, **reported) from None
    end = datetime.datetime.now()
    stdout = result.stdout.decode("utf-8", "replace")
    stderr = result.stderr.decode("utf-8", "replace")
    out = dict(changed=True, cmd=argv, rc=result.returncode, pid=pids[0] if pids else None, stdout=stdout,
               stderr=stderr, stdout_lines=stdout.splitlines(), stderr_lines=stderr.splitlines(),
               start=str(start), end=str(end), delta=str(end - start), **reported)
    if result.returncode != 0:
        raise Failure("non-zero return code", **out)
    return out
