"""What the subcommands share: exit statuses, the command to run, ids, signals, and running it.

Exit statuses (as env(1), podman and util-linux's errexec): the command's own status when it ran;
127 when the program does not exist; 126 when it exists but cannot be executed; 125 when setting up
the child failed before execve (a step of the child, or the launcher's own preparation); 1 for a
usage error or bad input (an option value, a spec document).

Every failure of every subcommand ends in ``run_command``: whatever was raised becomes one line on
stderr (a usage error adds util-linux's ``Try '... --help'`` line) and its exit status, never a
traceback. Subcommands raise (``die``, ``Command.fail``, or the library's own exceptions) rather
than print.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import re
import signal
import stat
import sys
from collections.abc import Mapping, Sequence
from typing import Callable, NoReturn, Optional

from . import __version__
from .attrs import ProcAttr
from .cli_options import HELP, USAGE_EXIT, VERSION, Command, Opt, Parsed, UsageError
from .errors import ChildError, ErrorLocation
from .forkexec import environ_entries, start_process
from .process import Process
from .supervise import exit_like, run_as_parent
from .validate import MAX_ID

EXIT_SETUP, EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND = 125, 126, 127
PROG = "pyforkexec"
MAX_LINE = 1000  # a message longer than this (a huge value quoted in it) is cut


class SetupError(Exception):
    """A failure of the launcher itself before the child exists: message, exit status 125."""


class Failure(Exception):
    """What a command reports: ``str()`` is the line printed after ``pyforkexec:``, and the exit status."""

    def __init__(self, message: str, status: int = EXIT_SETUP):
        super().__init__(message)
        self.status = status


def exit_status(err: ChildError) -> int:
    """The launcher's exit status for a child that failed before execve."""
    if err.location != ErrorLocation.EXECVE:
        return EXIT_SETUP
    return EXIT_NOT_FOUND if err.errno == errno.ENOENT else EXIT_CANNOT_EXECUTE


def die(message: str, code: int = EXIT_SETUP) -> NoReturn:
    """End the command: ``pyforkexec: MESSAGE`` on stderr (by run_command) and exit status ``code``."""
    raise Failure(message, code)


# ---- the one place every failure ends -----------------------------------------------------------


def one_line(text: str, limit: int = MAX_LINE) -> str:
    """``text`` as one printable line: line breaks and other control or invisible characters (from a
    file name, an option value, a key) escaped as ``\\n``, ``\\x1b``, ...; cut at ``limit``."""
    out = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return out if len(out) <= limit else out[:limit - 3] + "..."


def explain(err: BaseException) -> tuple[str, int, str]:
    """(message, exit status, the command whose --help a usage error points to, else "")."""
    if isinstance(err, Failure):
        return str(err), err.status, ""
    if isinstance(err, UsageError):
        return str(err), USAGE_EXIT, err.prog or PROG
    if isinstance(err, ChildError):
        if err.location == ErrorLocation.SYNC_READ and isinstance(err.__cause__, SetupError):
            return str(err.__cause__), EXIT_SETUP, ""  # the launcher's part (a sync callable) failed
        return str(err), exit_status(err), ""
    if isinstance(err, SetupError):
        return str(err), EXIT_SETUP, ""
    if isinstance(err, OSError):  # CgroupError (no cgroup v2, a controller missing), a path, an fd
        return os_error_message(err), EXIT_SETUP, ""
    if isinstance(err, (ValueError, TypeError)):  # bad input (SpecError included), refused before any process
        return str(err), USAGE_EXIT, ""
    # Not a failure any caller anticipated: still one line, as a failure of the launcher itself.
    return f"internal error: {type(err).__name__}: {err}", EXIT_SETUP, ""


def report(message: str, usage_of: str = "") -> None:
    """``PROG: message`` on stderr, and for a usage error util-linux's pointer to --help."""
    lines = [f"{usage_of or PROG}: {one_line(message)}"]
    if usage_of:
        lines.append(f"Try '{usage_of} --help' for more information.")
    try:
        if sys.stderr is not None:
            sys.stderr.write("".join(line + "\n" for line in lines))
            sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed: nowhere left to tell
        pass


def _status(code: object) -> int:
    """The exit status a SystemExit asks for (None: 0; a message: reported, 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    report(str(code))
    return 1


def run_command(command: Callable[[Sequence[str]], object], argv: Sequence[str]) -> int:
    """Runs a subcommand's ``main(argv)`` and returns its exit status; every failure it raises is
    reported by ``report`` with the status ``explain`` gives.

    Ctrl-C before the launcher supervises a child ends it by SIGINT, and a closed standard output
    (``pyforkexec flags | head -1``) by SIGPIPE, silently, as a C tool ends; stdout is flushed here
    so that this happens here rather than in the interpreter's exit.
    """
    try:
        try:
            status = _status(command(argv))
        except SystemExit as e:
            status = _status(e.code)
        if sys.stdout is not None:
            sys.stdout.flush()
        return status
    except KeyboardInterrupt:
        exit_like(-signal.SIGINT)
    except BrokenPipeError:
        _quiet_stdout()
        exit_like(-signal.SIGPIPE)
    except Exception as e:
        message, status, usage_of = explain(e)
        report(message, usage_of)
        return status


def _quiet_stdout() -> None:
    """Point fd 1 at /dev/null, so that the flush of what stays buffered cannot fail again."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError):
        pass


# ---- options --------------------------------------------------------------------------------------


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


MAX_PID = 2**31 - 1  # pid_t
# strtoul's number: C-locale blanks, a sign, ASCII digits (int() would also take "1_000" and
# non-ASCII digits).
_NUMBER = re.compile(r"[ \t\n\v\f\r]*([+-]?)([0-9]+)")


def shown(value: Optional[str], limit: int = 64) -> str:
    """An option value as a message quotes it: ``'abc'``, cut when long."""
    text = value or ""
    return f"'{text}'" if len(text) <= limit else f"'{text[:limit]}...'"


def parse_int(cmd: Command, option: str, value: Optional[str], what: str, lo: int, hi: int) -> int:
    """A decimal number in [lo, hi], as util-linux's strtoul_or_err/strtos64_or_err read it."""
    m = _NUMBER.fullmatch(value or "")
    if m is None or (m[1] == "-" and lo >= 0):
        cmd.fail(f"{option}: failed to parse {what} {shown(value)}")
    digits = m[2].lstrip("0")
    n = int(m[1] + (digits or "0")) if len(digits) <= 20 else (hi + 1 if m[1] != "-" else lo - 1)
    if not lo <= n <= hi:
        cmd.fail(f"{option}: {what} out of range: {shown(value)}")
    return n


def parse_uint(cmd: Command, option: str, value: Optional[str], what: str = "number",
               hi: int = MAX_ID) -> int:
    return parse_int(cmd, option, value, what, 0, hi)


def parse_id(cmd: Command, option: str, value: Optional[str], kind: str) -> int:
    """A uid (``kind`` "uid") or gid given as a number or as a name of this host's passwd/group."""
    if value and not _NUMBER.fullmatch(value):
        lookup = (lambda n: pwd.getpwnam(n).pw_uid) if kind == "uid" else (lambda n: grp.getgrnam(n).gr_gid)
        try:
            found = lookup(value)
        except (KeyError, ValueError):  # ValueError: a name with a NUL byte
            cmd.fail(f"{option}: unknown {'user' if kind == 'uid' else 'group'} {shown(value)}")
        if not 0 <= found <= MAX_ID:
            cmd.fail(f"{option}: {kind} of {shown(value)} out of range: {found}")
        return found
    return parse_uint(cmd, option, value, kind)


def parse_signal(cmd: Command, option: str, value: str) -> int:
    """``SIGKILL``, ``KILL``, ``kill`` or ``9``."""
    if _NUMBER.fullmatch(value):
        return parse_int(cmd, option, value, "signal number", 1, signal.NSIG - 1)
    name = value.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    sig = getattr(signal.Signals, name, None) if name.isidentifier() else None
    if not isinstance(sig, signal.Signals):
        cmd.fail(f"{option}: unknown signal: {shown(value)}")
    return int(sig)


def nonempty(cmd: Command, option: str, value: Optional[str], what: str = "path") -> Optional[str]:
    """A path option's value; an empty one (``--root=``) is refused rather than taken as "not given",
    as util-linux fails on it too (it cannot open or chdir to "")."""
    if value == "":
        cmd.fail(f"{option}: an empty {what}")
    return value


Blame = Mapping[str, Sequence[str]]
Restate = Callable[[BaseException], Optional[BaseException]]


def blamer(cmd: Command, parsed: Parsed, table: Blame) -> Restate:
    """What to tell when the library refuses a field the options set, or the child fails at a step
    they asked for: the options as the user gave them, then the library's own message.

    ``table`` maps what the library names to the long names of the options behind it: a field
    (``SysProcAttr.uid_mappings``: a ValueError/TypeError about it, or a part of it, becomes a usage
    error, status 1) or a child step (``at chdir``, ``at unshare_user_read[0]`` for one index: a
    ChildError keeps its status, 125/126/127). Each option value is checked when it is parsed; this
    is for what only the whole can refuse (an id map after carving, a mix of options) and for what
    the kernel refuses, so that ``SysProcAttr.uid_mappings[1]`` or ``(at chdir)`` is never all the
    user reads."""

    def given(longs: Sequence[str]) -> str:
        options = [spelling(o, v) for o, v in parsed.given if o.long in longs]
        if len(options) > 4:  # 341 --map-users: the rule after them must still fit on the line
            options[3:] = [f"(and {len(options) - 3} more)"]
        return " ".join(options)

    def restate(err: BaseException) -> Optional[BaseException]:
        if isinstance(err, ChildError):
            for key in (f"at {err.location.step}[{err.index}]", f"at {err.location.step}"):
                options = given(table.get(key, ()))
                if options:
                    return Failure(f"{options}: {err}", exit_status(err))
            return None
        if not isinstance(err, (ValueError, TypeError)):
            return None
        field = str(err).split(":", 1)[0]
        for name, longs in table.items():
            options = given(longs)
            if options and (field == name or field.startswith((name + ".", name + "["))):
                return UsageError(f"{options}: refused: {err}", cmd.prog)
        return None

    return restate


def spelling(opt: Opt, value: Optional[str]) -> str:
    """An option as the user gave it, in its long form: ``--map-users=0:0:10``, ``--fork``."""
    return opt.spelling if value is None else f"{opt.spelling}={value}"


def spawn_and_wait(argv0: str, argv: Sequence[str], attr: ProcAttr, *,
                   before: Optional[Callable[[], None]] = None, blame: Optional[Restate] = None) -> NoReturn:
    """Start the command, stay its parent (signals forwarded), and exit as it exited.

    ``before()`` runs in the launcher just before the spawn (e.g. to join a pid namespace). A child
    that fails before execve raises ChildError with the step that failed (run_command: exit
    125/126/127); that, and the library's refusal of a field (ValueError/TypeError, before any
    process), is restated by ``blame`` (see blamer) with the options behind it. The child is started
    with start_process, whose Process removes the cgroup (SysProcAttr.cgroup) it created once the
    child is reaped.
    """

    def spawn() -> Process:
        if before is not None:
            before()
        return start_process(argv0, list(argv), attr)

    try:
        code = run_as_parent(spawn)
    except (ChildError, ValueError, TypeError) as e:
        restated = blame(e) if blame is not None else None
        if restated is None:
            raise
        raise restated from None
    exit_like(code)


def os_error_message(err: OSError) -> str:
    """``SysProcAttr.cgroup: Not a directory: /sys/fs/cgroup/x``, rather than a traceback or a repr."""
    message = err.strerror or str(err)
    name = err.filename
    if isinstance(name, (str, bytes)):
        name = os.fsdecode(name)
    elif name is not None:
        name = str(name)
    return message if name is None or name in message else f"{message}: {name}"
