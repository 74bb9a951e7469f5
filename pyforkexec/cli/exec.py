"""``pyforkexec exec --spec FILE``: run one process from a spec document (see spec.py), as a launcher.

``--check`` loads and validates the document completely (pyforkexec's own checks included) without
starting anything, and prints OK. ``--schema`` prints the JSON Schema of the documents. Arguments
after the options are appended to the spec's argv (``ExecStart=pyforkexec exec --spec web.json -- -v``).

A ``sys.landlock`` policy in best-effort mode that this kernel cannot enforce in full is reported on
standard error, one line per dropped right (``pyforkexec: landlock (best effort, ABI 2):
sys.landlock.paths[1].access: truncate needs Landlock ABI 3, this kernel has 2``), by ``--check`` and
before every start; in strict mode the check refuses the spec instead.

Under a service manager that listens (``NOTIFY_SOCKET``, a systemd ``Type=notify`` unit) the launcher
sends ``READY=1`` once the process has execed, never before: a spawn that fails fails the unit's start
(service/notify.py).

With ``"wait": true`` the launcher stays the parent and removes the ``sys.cgroup`` directory it
created once the process is reaped; with false the directory stays with the detached process.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from collections.abc import Sequence
from typing import NoReturn, Optional

from .. import spec as specmod
from ..errors import ChildError
from ..forkexec import drop_own_groups_for, fork_exec
from ..sandbox.landlock import landlock_abi
from ..service.exit import exit_like
from ..service.notify import Notifier
from ..service.supervise import Supervisor
from .failure import EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, Failure, WriteError, die, exit_status
from .launch import environ_list, inherited_files, spawn_and_wait
from .options import HELP, NONE, REQUIRED, VERSION, Command, Opt, parse_or_fail

CMD = Command(
    prog="pyforkexec exec",
    usage="--spec <file>|- [--check] [-- <argument>...]",
    summary="Run one process described by a JSON or YAML spec (see docs/cli.md), staying its parent.",
    options=(
        Opt("spec", "s", REQUIRED, "file", "the spec document (.json, .yaml/.yml; - reads standard input)"),
        Opt("check", "", NONE, "", "validate the spec completely and print OK; start nothing"),
        Opt("schema", "", NONE, "", "print the JSON Schema of spec documents"),
        HELP,
        VERSION,
    ),
)


def program(spec: specmod.Spec) -> str:
    """argv0, or argv[0] looked up in the PATH the process gets (inside its chroot, if any); one not
    there (127) or not executable (126) ends the launcher as execve would, before any process."""
    try:
        return specmod.find_program(spec, os.environ.get("PATH"))
    except specmod.ProgramError as e:
        status = EXIT_NOT_FOUND if e.errno == errno.ENOENT else EXIT_CANNOT_EXECUTE
        die(f'exec: "{e.program}": {e.reason}', status)


def blame_field(spec: specmod.Spec, err: BaseException) -> Optional[BaseException]:
    """A child that failed at a step some field of the spec asked for: the field's path first, as the
    spec's own errors name it (``spec: sys.mounts[1] (/srv): fork/exec ...: (at mount)``)."""
    if not isinstance(err, ChildError):
        return None
    blamed = spec.blame(err)
    return None if blamed is None else Failure(blamed, exit_status(err))


def report_landlock(spec: specmod.Spec) -> None:
    """What a best-effort Landlock policy loses on this kernel, on standard error (a journal line)."""
    policy = spec.attr.sys.landlock if spec.attr.sys is not None else None
    if policy is None:
        return
    try:
        abi = landlock_abi()
    except OSError:  # the start refuses the policy, naming sys.landlock
        return
    for line in policy.plan(abi).dropped:
        print(f"pyforkexec: landlock (best effort, ABI {abi}): sys.landlock.{line}", file=sys.stderr)


def main(argv: Sequence[str]) -> NoReturn:
    notifier = Notifier.from_environ()  # first: the process's environment must not carry it on
    parsed = parse_or_fail(CMD, argv)
    if parsed.has("schema"):
        print(json.dumps(specmod.schema(), indent=2))
        raise SystemExit(0)
    path = parsed.last("spec")
    if path is None:
        CMD.fail("--spec: the spec file is required")
    # A SpecError (a ValueError: bad input) ends in run_command with status 1, like a bad option value.
    spec = specmod.read(path)
    spec.argv += parsed.rest
    if not spec.files_given:  # the default: the standard streams this launcher has (closed: closed)
        spec.attr.files = inherited_files()[:3]
    specmod.check(spec)
    drop_own_groups_for(spec.attr.sys)  # (root: a launcher of its own drops what the child may not keep)
    specmod.check_on_host(spec)
    report_landlock(spec)
    argv0 = program(spec)
    if parsed.has("check"):
        print("OK")
        raise SystemExit(0)
    attr = spec.attr
    if attr.env is None:
        attr.env = environ_list()
    if spec.wait:
        spawn_and_wait(argv0, spec.argv, attr, blame=lambda e: blame_field(spec, e), started=notifier.ready)
    # Detached: the process outlives the launcher, and so does a cgroup made for it. A ChildError or
    # an OSError (CgroupError, a setns path that does not exist) ends in run_command (125/126/127).
    # A signal that ended the launcher once the program had started and before its pid was out (a
    # service manager's stop, a Ctrl-C) left a program running that nobody was told of: the signals a
    # launcher forwards are held (caught, as a waiting launcher catches them) until the pid is printed,
    # and then end it as they would have.
    held = Supervisor()
    with held.handlers():
        try:
            pid = fork_exec(argv0, spec.argv, attr)
        except ChildError as e:
            raise blame_field(spec, e) or e from None
        notifier.ready(pid)
        try:
            if sys.stdout is None:  # closed when Python started: print() would say nothing, and exit 0
                raise WriteError(OSError(errno.EBADF, os.strerror(errno.EBADF)))
            print(pid, flush=True)
        except WriteError as e:  # not 125: the program runs, and a supervisor must not start a second one
            die(f"{e}; the program runs, pid {pid}", e.status)
        except BrokenPipeError as e:  # nor ended by SIGPIPE, saying nothing of the program it started
            die(f"write error: {e.strerror}; the program runs, pid {pid}", WriteError(e).status)
    if held.early:
        exit_like(-held.early[0])
    raise SystemExit(0)
