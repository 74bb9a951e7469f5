"""What the subcommands share: exit statuses, the command to run, ids, signals, and running it.

Exit statuses (as env(1), podman and util-linux's errexec): the command's own status when it ran;
127 when the program does not exist; 126 when it exists but cannot be executed; 125 when setting up
the child failed before execve (a step of the child, or the launcher's own preparation); 1 for a
usage error.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import signal
import stat
import sys
from collections.abc import Sequence
from typing import Callable, NoReturn, Optional

from . import __version__
from .attrs import ProcAttr
from .cli_options import HELP, VERSION, Command, Parsed, UsageError
from .errors import ChildError, ErrorLocation
from .forkexec import environ_entries, start_process
from .process import Process
from .supervise import exit_like, run_as_parent

EXIT_SETUP, EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND = 125, 126, 127
PROG = "pyforkexec"


class SetupError(Exception):
    """A failure of the launcher itself before the child exists: message, exit status 125."""


def exit_status(err: ChildError) -> int:
    """The launcher's exit status for a child that failed before execve."""
    if err.location != ErrorLocation.EXECVE:
        return EXIT_SETUP
    return EXIT_NOT_FOUND if err.errno == errno.ENOENT else EXIT_CANNOT_EXECUTE


def die(message: str, code: int = EXIT_SETUP) -> NoReturn:
    print(f"{PROG}: {message}", file=sys.stderr)
    raise SystemExit(code)


def parse_or_fail(cmd: Command, argv: Sequence[str]) -> Parsed:
    """Parses argv, handling --help and --version; a usage error exits 1."""
    try:
        parsed = cmd.parse(argv)
    except UsageError as e:
        cmd.fail(str(e))
    if parsed.has(HELP.long):
        print(cmd.help_text())
        raise SystemExit(0)
    if parsed.has(VERSION.long):
        print(f"{cmd.prog} {__version__}")
        raise SystemExit(0)
    return parsed


def inherited_files() -> list[Optional[int]]:
    """The fds this process was given without close-on-exec, as ProcAttr.files: util-linux's command
    inherits them too (socket activation, ``3>file``). Call before opening anything."""
    fds = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if os.get_inheritable(fd):
                fds.append(fd)
        except OSError:  # the fd of the listdir itself, closed by now
            continue
    top = max([2, *fds])
    return [fd if fd in fds else None for fd in range(top + 1)]


def environ_list() -> list[bytes]:
    return list(environ_entries())


def find_program(name: str, path: Optional[str], root: str = "") -> Optional[str]:
    """execvp's search of ``name`` in ``path`` (inside ``root`` when given); None when not found.

    A name with a slash is used as is. As execvp does, a file found but not executable is returned
    when nothing better exists, so that execve reports EACCES rather than ENOENT.
    """
    if "/" in name:
        return name
    denied = None
    for d in (path if path is not None else os.defpath).split(os.pathsep):
        candidate = os.path.join(d or ".", name)
        try:
            st = os.stat(os.path.join(root, candidate.lstrip("/")) if root else candidate)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        if os.access(os.path.join(root, candidate.lstrip("/")) if root else candidate, os.X_OK):
            return candidate
        denied = denied or candidate
    return denied


def program_and_argv(rest: Sequence[str]) -> tuple[Optional[str], list[str]]:
    """The command after the options, or util-linux's default: ``$SHELL`` as a login shell."""
    if rest:
        return None, list(rest)
    shell = os.environ.get("SHELL") or "/bin/sh"
    return shell, ["-" + os.path.basename(shell)]


def resolve_program(rest: Sequence[str], root: str = "") -> tuple[str, list[str]]:
    """(argv0, argv) for fork_exec: the command looked up in $PATH; exits 127 when it is not found."""
    argv0, argv = program_and_argv(rest)
    if argv0 is None:
        found = find_program(argv[0], os.environ.get("PATH"), root)
        if found is None:
            die(f'exec: "{argv[0]}": executable file not found in $PATH', EXIT_NOT_FOUND)
        argv0 = found
    return argv0, argv


def setgroups_denied(pid: int | str = "self") -> bool:
    """Whether setgroups(2) is denied in the user namespace of ``pid`` (no groups can exist there)."""
    try:
        with open(f"/proc/{pid}/setgroups") as f:
            return f.read().strip() == "deny"
    except OSError:
        return False


def parse_uint(cmd: Command, option: str, value: Optional[str], what: str = "number") -> int:
    try:
        n = int(value or "", 10)
    except ValueError:
        cmd.fail(f"{option}: failed to parse {what} '{value}'")
    if not 0 <= n <= 2**32 - 2:
        cmd.fail(f"{option}: {what} out of range: '{value}'")
    return n


def parse_id(cmd: Command, option: str, value: Optional[str], kind: str) -> int:
    """A uid (``kind`` "uid") or gid given as a number or as a name of this host's passwd/group."""
    if value and not value.isdigit():
        lookup = (lambda n: pwd.getpwnam(n).pw_uid) if kind == "uid" else (lambda n: grp.getgrnam(n).gr_gid)
        try:
            return lookup(value)
        except KeyError:
            cmd.fail(f"{option}: unknown {'user' if kind == 'uid' else 'group'} '{value}'")
    return parse_uint(cmd, option, value, kind)


def parse_signal(cmd: Command, option: str, value: str) -> int:
    """``SIGKILL``, ``KILL``, ``kill`` or ``9``."""
    if value.isdigit() and 0 < int(value) < signal.NSIG:
        return int(value)
    name = value.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    sig = getattr(signal.Signals, name, None) if name.isidentifier() else None
    if not isinstance(sig, signal.Signals):
        cmd.fail(f"{option}: unknown signal: {value}")
    return int(sig)


def spawn_and_wait(argv0: str, argv: Sequence[str], attr: ProcAttr, *,
                   before: Optional[Callable[[], None]] = None) -> NoReturn:
    """Start the command, stay its parent (signals forwarded), and exit as it exited.

    ``before()`` runs in the launcher just before the spawn (e.g. to join a pid namespace). A child
    that fails before execve is reported with the step that failed, and the launcher exits
    125/126/127. The child is started with start_process, whose Process removes the cgroup
    (SysProcAttr.cgroup) it created once the child is reaped.
    """

    def spawn() -> Process:
        if before is not None:
            before()
        return start_process(argv0, list(argv), attr)

    try:
        code = run_as_parent(spawn)
    except ChildError as e:
        report_child_error(e)
    except OSError as e:  # CgroupError (no cgroup v2, a controller missing), a setns path, an fd
        die(os_error_message(e))
    except SetupError as e:
        die(str(e))
    except (ValueError, TypeError) as e:  # refused by validation: a combination the options allow
        die(str(e))
    exit_like(code)


def os_error_message(err: OSError) -> str:
    """``SysProcAttr.cgroup: Not a directory: /sys/fs/cgroup/x``, rather than a traceback or a repr."""
    message = err.strerror or str(err)
    name = None if err.filename is None else os.fsdecode(err.filename)
    return message if name is None or name in message else f"{message}: {name}"


def report_child_error(err: ChildError) -> NoReturn:
    """Exit 125/126/127 for a child that failed before execve. A failure of the launcher's own part
    (a SysProcAttr.sync callable raising SetupError) is reported with that error's message."""
    if err.location == ErrorLocation.SYNC_READ and isinstance(err.__cause__, SetupError):
        die(str(err.__cause__))
    die(str(err), exit_status(err))
