"""How every subcommand ends: one line on stderr and an exit status, never a traceback.

Exit statuses (as env(1), podman and util-linux's errexec): the command's own status when it ran;
127 when the program does not exist; 126 when it exists but cannot be executed; 125 when setting up
the child failed before execve (a step of the child, or the launcher's own preparation); 1 for a
usage error or bad input (an option value, a spec document).

Every failure of every subcommand ends in ``run_command``: whatever was raised becomes one line on
stderr (a command line getopt refuses ends with util-linux's pointer to ``--help``) and its exit
status. Subcommands raise (``die``, ``Command.fail``, or the library's own exceptions) rather than
print.

Every command goes through this module, so it imports only what every command needs (issue 15): the
child's errors (``errors``: enums) are imported where a failure needs them, and ``exit_like`` comes
from its own module, without the supervisor (``service/supervise.py``) and the process and cgroup
modules behind it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Callable, NoReturn, TextIO

from .._text import printable
from ..service.exit import exit_like
from .options import USAGE_EXIT, UsageError

if TYPE_CHECKING:
    from ..errors import ChildError

EXIT_SETUP, EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND = 125, 126, 127


PROG = "pyforkexec"


MAX_LINE = 1000  # a message longer than this (a huge value quoted in it) is cut


class SetupError(Exception):
    """A failure of the launcher itself before the child exists: message, exit status 125. ``step``:
    the child's step it does in the child's stead (``setns``: a join the launcher makes itself, see
    nsenter), by which a command's blamer names the options behind it, as for the child's."""

    def __init__(self, message: str, step: str = ""):
        super().__init__(message)
        self.step = step


class Failure(Exception):
    """What a command reports: ``str()`` is the line printed after ``pyforkexec:``, and the exit status."""

    def __init__(self, message: str, status: int = EXIT_SETUP):
        super().__init__(message)
        self.status = status


class WriteError(Failure):
    """A write to standard output failed (a full disk, ``/dev/full``, EIO): util-linux's close_stdout
    message, ``write error: No space left on device``, and its status 1."""

    def __init__(self, err: OSError):
        super().__init__(f"write error: {err.strerror or err}", USAGE_EXIT)


class _CheckedStdout:
    """sys.stdout while a command runs: its write errors become WriteError, told from the launcher's
    own OSErrors (a cgroup, a namespace file), which are set-up failures (125). A closed pipe stays
    BrokenPipeError (run_command: the launcher ends by SIGPIPE, as a C tool does)."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        with _write_errors():
            return self._stream.write(text)

    def flush(self) -> None:
        with _write_errors():
            self._stream.flush()

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


@contextlib.contextmanager
def _write_errors() -> Iterator[None]:
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as e:
        raise WriteError(e) from None


def exit_status(err: ChildError) -> int:
    """The launcher's exit status for a child that failed before execve."""
    from ..errors import ErrorLocation

    if err.location != ErrorLocation.EXECVE:
        return EXIT_SETUP
    return EXIT_NOT_FOUND if err.errno == errno.ENOENT else EXIT_CANNOT_EXECUTE


def die(message: str, code: int = EXIT_SETUP) -> NoReturn:
    """End the command: ``pyforkexec: MESSAGE`` on stderr (by run_command) and exit status ``code``."""
    raise Failure(message, code)


def one_line(text: str, limit: int = MAX_LINE) -> str:
    """``text`` as one printable line: line breaks and other control or invisible characters (from a
    file name, an option value, a key) escaped as ``\\n``, ``\\x1b``, ...; cut at ``limit``."""
    out = printable(text)
    return out if len(out) <= limit else out[:limit - 3] + "..."


def explain(err: BaseException) -> tuple[str, int, str]:
    """(message, exit status, the command a usage error is of, else "")."""
    if isinstance(err, Failure):
        return str(err), err.status, ""
    if isinstance(err, UsageError):
        prog = err.prog or PROG
        # util-linux's second line ("Try '... --help' for more information."), on the same one
        hint = f"; try '{prog} --help' for more information" if err.getopt else ""
        return str(err) + hint, USAGE_EXIT, prog
    from ..errors import ChildError, ErrorLocation  # the error path only

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


def report(message: str, prog: str = "") -> None:
    """``PROG: message`` on stderr, one line (``prog``: a subcommand's, such as ``pyforkexec unshare``)."""
    try:
        if sys.stderr is not None:
            sys.stderr.write(f"{prog or PROG}: {one_line(message)}\n")
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


def _unraisable_unsaid(unraisable: object) -> None:
    """sys.unraisablehook of a command: nothing said (see run_command)."""


class _Interrupts:
    """SIGINT's Python handler while a command runs, in place of Python's own (default_int_handler).

    The command's first Ctrl-C raises KeyboardInterrupt, as Python's handler does: what the command
    holds is undone on the way out, and run_command ends it by SIGINT. From then on, and from the
    moment the command returned or raised, a Ctrl-C is noted instead (``noted``): a second one (a
    storm of them) cannot cut run_command's ending in two, where its KeyboardInterrupt would leave
    as a traceback; the command ends by SIGINT once that is done."""

    __slots__ = ("noted", "running")

    def __init__(self) -> None:
        self.running = True
        self.noted = False

    def __call__(self, signum: int, frame: object) -> None:
        if self.running:
            self.running = False
            raise KeyboardInterrupt
        self.noted = True


_last: _Interrupts | None = None  # the handler of the command this process runs (run_command(last=True))


def sigint_handler() -> Callable[[int, object], object]:
    """What a Ctrl-C runs once the command's quiet start is over (cli/__init__.py): the handler of the
    command this process runs, else Python's own."""
    return _last or signal.default_int_handler


def run_command(command: Callable[[Sequence[str]], object], argv: Sequence[str], *,
                last: bool = False) -> int:
    """Runs a subcommand's ``main(argv)`` and returns its exit status; every failure it raises is
    reported by ``report`` with the status ``explain`` gives.

    Ctrl-C before the launcher supervises a child ends it by SIGINT, and a closed standard output
    (``pyforkexec flags | head -1``) by SIGPIPE, silently, as a C tool ends; stdout is flushed here
    so that this happens here rather than in the interpreter's exit. A Ctrl-C raises once
    (_Interrupts): one that comes while the command ends (its report, a second one while the first
    is handled) ends it by SIGINT once the report is out. ``last``: this process ends when it
    returns (the console script), and a Ctrl-C stays noted until then; else Python's handler is
    back when it returns.
    """
    global _last
    stdout = sys.stdout
    if stdout is not None:
        sys.stdout = _CheckedStdout(stdout)  # type: ignore[assignment]
    # An error in a destructor (a library's event loop that failed to open, out of fds) would print a
    # traceback beside the one line the failure is: a command says nothing of it.
    sys.unraisablehook = _unraisable_unsaid
    interrupts = _Interrupts()
    if last:
        _last = interrupts
    # Not a SIGINT the caller ignores, nor the quiet start's default action (cli/__init__.py puts
    # sigint_handler() in place once it is over).
    ours = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if ours:
        signal.signal(signal.SIGINT, interrupts)
    status = EXIT_SETUP
    try:
        try:
            try:
                code = command(argv)
            finally:
                interrupts.running = False  # first: from here on a Ctrl-C is noted, never raised
            status = _status(code)
        except SystemExit as e:
            status = _status(e.code)
        if sys.stdout is not None:
            sys.stdout.flush()
    except KeyboardInterrupt:
        exit_like(-signal.SIGINT)
    except BrokenPipeError:
        _quiet_stdout()
        exit_like(-signal.SIGPIPE)
    except Exception as e:
        message, status, prog = explain(e)
        report(message, prog)
    finally:
        sys.stdout = stdout
        # What a failed write left buffered would fail again in the interpreter's exit, which then
        # says so and exits 120 instead of the status reported.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            try:
                stdout.flush()
            except OSError:
                _quiet_stdout()
    if interrupts.noted:  # a Ctrl-C while it ended: by SIGINT, as it would have a moment earlier
        exit_like(-signal.SIGINT)
    if ours and not last and signal.getsignal(signal.SIGINT) is interrupts:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return status


def _quiet_stdout() -> None:
    """Point fd 1 at /dev/null, so that the flush of what stays buffered cannot fail again."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError):
        pass


def os_error_message(err: OSError) -> str:
    """``SysProcAttr.cgroup: Not a directory: /sys/fs/cgroup/x``, rather than a traceback or a repr."""
    message = err.strerror or str(err)
    name = err.filename
    if isinstance(name, (str, bytes)):
        name = os.fsdecode(name)
    elif name is not None:
        name = str(name)
    return message if name is None or name in message else f"{message}: {name}"
