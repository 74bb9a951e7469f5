"""The ``pyforkexec`` command: util-linux-style ``unshare`` and ``nsenter``, ``flags``, ``exec``, ``netns``.

Each subcommand lives in its own module (cli_unshare, cli_nsenter, cli_flags, cli_exec, cli_netns) and is
imported only when used, so the launcher starts fast. Whatever fails ends in cli_common.run_command:
one line on stderr and the documented status (1 for a usage error or bad input, as util-linux; the
statuses of a launched command are described in cli_common), never a traceback.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Optional

from . import __version__
from .cli_common import PROG, run_command, shown
from .cli_options import UsageError

SUBCOMMANDS = {
    "unshare": ("cli_unshare", "run a program in new namespaces (util-linux unshare)"),
    "nsenter": ("cli_nsenter", "run a program in the namespaces of a process (util-linux nsenter)"),
    "flags": ("cli_flags", "decode or encode clone flags, grouped and explained"),
    "exec": ("cli_exec", "run one process from a JSON/YAML spec (the service launcher)"),
    "netns": ("cli_netns", "create, update or remove a named network namespace from a JSON document"),
}

USAGE = "\n".join([
    "",
    "Usage:",
    " pyforkexec <command> [options] [<program> [<argument>...]]",
    "",
    "Start processes in Linux namespaces with pyforkexec (Go's syscall.ForkExec for Python).",
    "",
    "Commands:",
    *(f" {name:<9} {text}" for name, (_, text) in SUBCOMMANDS.items()),
    "",
    "Run 'pyforkexec <command> --help' for the options of a command.",
    "",
])


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The console script: returns the exit status (the launcher of a command may end by its signal)."""
    return run_command(dispatch, list(sys.argv[1:] if argv is None else argv))


def dispatch(args: Sequence[str]) -> object:
    if not args:
        raise UsageError("no command given", PROG)
    if args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if args[0] in ("-V", "--version"):
        print(f"pyforkexec {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name.startswith("-"):
        raise UsageError(f"unrecognized option {shown(name)}", PROG)
    if name not in SUBCOMMANDS:
        raise UsageError(f"unknown command {shown(name)}", PROG)
    module = importlib.import_module(f".{SUBCOMMANDS[name][0]}", __package__)
    return module.main(rest)
