"""The ``pyforkexec`` command: util-linux-style ``unshare`` and ``nsenter``, ``flags``, ``exec``, ``netns``.

Each subcommand lives in the module of its name (cli/unshare.py, cli/nsenter.py, ...) and is imported
only when used, so the launcher starts fast. Whatever fails ends in failure.run_command: one line on
stderr and the documented status (1 for a usage error or bad input, as util-linux; the statuses of a
launched command are described in failure.py), never a traceback.
"""

from __future__ import annotations

import _signal  # the C module: the signal module costs the enum module (issue 15)
import sys

# A Ctrl-C while the command's modules are imported ends it by SIGINT, silently, as run_command ends
# it later: not a traceback from the middle of an import. Python's own handler is back before the
# command runs (dispatch). A SIGINT the caller ignores stays ignored. Only in the command's own
# process (the console script, python -m pyforkexec): a program that imports this package (a test of
# its parsers) keeps its Ctrl-C as it was.
_RUN_AS = sys.argv[0].replace("\\", "/").rsplit("/", 2)[-2:] if sys.argv and sys.argv[0] else []
_THE_COMMAND = _RUN_AS[-1:] == ["pyforkexec"] or _RUN_AS == ["pyforkexec", "__main__.py"]
_QUIET_START = _THE_COMMAND and _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler
if _QUIET_START:
    _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
# A launcher waits for its program: with SIGCHLD ignored (its caller's), the kernel would reap the
# program itself, and the wait would hang or find no child (util-linux's unshare and nsenter wait as
# well). The program starts with SIGCHLD at its default then.
if _THE_COMMAND and _signal.getsignal(_signal.SIGCHLD) == _signal.SIG_IGN:
    _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)

from collections.abc import Sequence  # noqa: E402
from typing import Optional  # noqa: E402

from .._startup import defer_inspect  # noqa: E402

defer_inspect()  # before a subcommand imports the public dataclasses: see _startup.py

from .failure import PROG, run_command, sigint_handler  # noqa: E402
from .options import UsageError  # noqa: E402

SUBCOMMANDS = {
    "unshare": "run a program in new namespaces (util-linux unshare)",
    "nsenter": "run a program in the namespaces of a process (util-linux nsenter)",
    "flags": "decode or encode clone flags, grouped and explained",
    "exec": "run one process from a JSON/YAML spec (the service launcher)",
    "netns": "create, update or remove a named network namespace from a JSON document",
}

USAGE = "\n".join([
    "",
    "Usage:",
    " pyforkexec <command> [options] [<program> [<argument>...]]",
    "",
    "Start processes in Linux namespaces with pyforkexec (Go's syscall.ForkExec for Python).",
    "",
    "Commands:",
    *(f" {name:<9} {text}" for name, text in SUBCOMMANDS.items()),
    "",
    "Run 'pyforkexec <command> --help' for the options of a command.",
    "",
])


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The console script: returns the exit status (the launcher of a command may end by its signal)."""
    try:
        # The command's own process ends when this returns: a Ctrl-C stays noted (run_command); a
        # program that calls main() has Python's handler back.
        return run_command(dispatch, list(sys.argv[1:] if argv is None else argv), last=_THE_COMMAND)
    finally:
        _loud_again()  # a command that failed before dispatch got that far: as Python left it


def dispatch(args: Sequence[str]) -> object:
    if not args:
        raise UsageError("no command given", PROG, getopt=True)
    if args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if args[0] in ("-V", "--version"):
        from .. import __version__  # importlib.metadata: only for the command that prints it

        print(f"pyforkexec {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name.startswith("-") or name not in SUBCOMMANDS:
        from .values import shown  # only to quote a wrong word: values.py imports re, pwd, grp

    if name.startswith("-"):
        raise UsageError(f"unrecognized option {shown(name)}", PROG, getopt=True)
    if name not in SUBCOMMANDS:
        raise UsageError(f"unknown command {shown(name)}", PROG, getopt=True)
    module = f"{__package__}.{name}"
    __import__(module)  # not importlib.import_module: importlib (and warnings) would cost the start
    _loud_again()
    return sys.modules[module].main(rest)


def _loud_again() -> None:
    """SIGINT's Python handler back (see _QUIET_START): from here a Ctrl-C is run_command's to handle
    (its handler: a Ctrl-C raises KeyboardInterrupt once, and is noted while the command ends)."""
    if _QUIET_START and _signal.getsignal(_signal.SIGINT) == _signal.SIG_DFL:
        _signal.signal(_signal.SIGINT, sigint_handler())
