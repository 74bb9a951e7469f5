"""Running the command a subcommand built: what it inherits, which program, and staying its parent."""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from typing import Callable, NoReturn, Optional

from ..attrs import ProcAttr
from ..errors import ChildError
from ..forkexec import environ_entries, start_process
from ..lookpath import find_program
from ..process import Process
from ..service.exit import exit_like
from ..service.supervise import run_as_parent
from ..validate import cap_last_cap
from .blame import Restate
from .failure import EXIT_NOT_FOUND, EXIT_SETUP, die


def inherited_files() -> list[Optional[int]]:
    """The fds this process was given without close-on-exec, as ProcAttr.files: util-linux's command
    inherits them too (socket activation, ``3>file``). Call before opening anything."""
    fds = [fd for fd in _open_fds() if _inheritable(fd)]
    top = max([2, *fds])
    return [fd if fd in fds else None for fd in range(top + 1)]


def _open_fds() -> list[int]:
    """The fds open here: listed in /proc/self/fd, or, without /proc (a chroot, a mount namespace that
    unmounted it) or where the listing misses a standard fd that is open (not a procfs there), every
    number below the hard RLIMIT_NOFILE asked in turn, as util-linux's command gets them all."""
    try:
        listed = [int(name) for name in os.listdir("/proc/self/fd")]
    except (OSError, ValueError):
        listed = None
    if listed is not None and all(fd in listed for fd in range(3) if _inheritable(fd) is not None):
        return listed
    import resource

    top = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if top == resource.RLIM_INFINITY:
        top = 1 << 20  # fs.nr_open's ceiling: no fd can be numbered above it
    return [fd for fd in range(top) if _inheritable(fd) is not None]


def _inheritable(fd: int) -> Optional[bool]:
    """Whether ``fd`` lacks close-on-exec; None when it is not open (the listdir's own fd by now)."""
    try:
        return os.get_inheritable(fd)
    except OSError:
        return None


def environ_list() -> list[bytes]:
    return list(environ_entries())


def program_and_argv(rest: Sequence[str]) -> tuple[Optional[str], list[str]]:
    """The command after the options, or util-linux's default: ``$SHELL`` as a login shell."""
    if rest:
        return None, list(rest)
    shell = os.environ.get("SHELL") or "/bin/sh"
    return shell, ["-" + os.path.basename(shell)]


def resolve_program(rest: Sequence[str], root: str = "", shown_root: str = "") -> tuple[str, list[str]]:
    """(argv0, argv) for fork_exec: the command looked up in $PATH inside ``root`` (``shown_root``: as
    the user named it); exits 125 when the root is no directory (as util-linux, which fails to change
    into it, before any lookup), 127 when the command is not found."""
    argv0, argv = program_and_argv(rest)
    if root and not os.path.isdir(root):
        try:
            os.stat(root)
            why = os.strerror(errno.ENOTDIR)
        except OSError as e:
            why = e.strerror
        die(f"--root: cannot change root directory to '{shown_root or root}': {why}", EXIT_SETUP)
    if argv0 is None:
        found = find_program(argv[0], os.environ.get("PATH"), root)
        if found is None:
            die(f'exec: "{argv[0]}": executable file not found in $PATH', EXIT_NOT_FOUND)
        argv0 = found
    return argv0, argv


def kept_caps(keep: bool, userns: bool, setuid: Optional[int]) -> list[int]:
    """util-linux's --keep-caps: with a user namespace, every capability stays raised, as an ambient
    one, for the command; none when the command is switched to a uid other than 0 there (``setuid``):
    util-linux sets the uid first, and that uid has no capability left to raise."""
    if not (keep and userns) or (setuid is not None and setuid != 0):
        return []
    return list(range(min(cap_last_cap(), 63) + 1))


def setgroups_denied(pid: int | str = "self") -> bool:
    """Whether setgroups(2) is denied in the user namespace of ``pid`` (no groups can exist there)."""
    try:
        with open(f"/proc/{pid}/setgroups") as f:
            return f.read().strip() == "deny"
    except OSError:
        return False


def killed_in_spawn(err: BaseException) -> int:
    """The signal the child died of before its execve, when the launcher got it too meanwhile (a
    terminal's Ctrl-C, a ``kill -- -PGID``: sent to the whole process group); else the first
    signal the launcher got while it undid what it made for the failed start (see run_as_parent),
    which ends it as that signal would have a moment later; else 0. The spawn finds the child gone
    (ESRCH, at the handshake it never answered) without its status: the signal is the one the
    launcher itself got."""
    signals: tuple[int, ...] = ()
    if isinstance(err, ChildError) and err.errno == errno.ESRCH:
        signals = getattr(err, "signals_in_spawn", ())
    signals = signals or getattr(err, "signals_in_undo", ())
    return signals[0] if signals else 0


def spawn_and_wait(argv0: str, argv: Sequence[str], attr: ProcAttr, *,
                   before: Optional[Callable[[], None]] = None, blame: Optional[Restate] = None,
                   started: Optional[Callable[[int], object]] = None) -> NoReturn:
    """Start the command, stay its parent (signals forwarded), and exit as it exited.

    ``before()`` runs in the launcher just before the spawn (e.g. to join a pid namespace). A child
    that fails before execve raises ChildError with the step that failed (run_command: exit
    125/126/127); that, a SetupError of ``before()`` doing a child's step (a join), and the library's
    refusal of a field (ValueError/TypeError, before any process), is restated by ``blame`` (see
    blamer) with the options behind it. ``blame`` runs for every failure of the spawn, before a
    signal can end the launcher (see run_as_parent's ``failed``): it also undoes what the command
    made for a program that never ran. The child is started
    with start_process, whose Process removes the cgroup (SysProcAttr.cgroup) it created once the
    child is reaped. ``started(pid)`` runs once it has execed (see run_as_parent).
    """

    def spawn() -> Process:
        if before is not None:
            before()
        return start_process(argv0, list(argv), attr)

    restated: list[Optional[BaseException]] = []

    def failed(e: BaseException) -> None:
        # blame undoes what the launcher made (--TYPE=FILE binds) while run_as_parent's handlers still
        # record a Ctrl-C or SIGTERM: one that came after they were back ended the launcher (SIGTERM's
        # default action, a KeyboardInterrupt) before the undo
        restated.append(blame(e) if blame is not None else None)

    try:
        code = run_as_parent(spawn, started, failed=failed)
    except Exception as e:  # what blame restates: a ChildError, a SetupError, a refused field
        signo = killed_in_spawn(e)
        if signo:  # a terminal's Ctrl-C to the whole group: both end by it, silently, as util-linux's
            exit_like(-signo)
        if not restated or restated[0] is None:
            raise
        raise restated[0] from None
    exit_like(code)
