"""Command-line options parsed as util-linux parses them (getopt_long with a leading ``+``).

argparse differs from util-linux in ways a user notices: ``--mount /bin/sh`` would take ``/bin/sh`` as
the optional argument of ``--mount``, options after the program would be read as ours, and a bad
option exits 2. Here, as with getopt_long: an optional argument must be attached (``--mount=FILE``,
``-mFILE``), the first non-option ends the options (the rest is the command), ``--`` ends them too,
short options bundle (``-fpr``), a long option may be abbreviated when unambiguous, and every usage
error exits 1 naming the option (reported by cli_common.run_command, as util-linux does: one line
util-linux's pointer to ``--help`` on the same line for what getopt itself refuses).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn, Optional

NONE, REQUIRED, OPTIONAL = "none", "required", "optional"
USAGE_EXIT = 1  # util-linux exits 1 on a bad option or value (argparse would exit 2)


class UsageError(Exception):
    """A bad option or option value; ``str()`` names the option. ``prog`` is the command it is of
    (empty: the parser's caller knows it); ``getopt``: a command line getopt itself refuses (an
    unknown, ambiguous or incomplete option), whose report points to ``--help``, as util-linux's does."""

    def __init__(self, message: str, prog: str = "", getopt: bool = False):
        super().__init__(message)
        self.prog = prog
        self.getopt = getopt


# Plain classes, not dataclasses: the command line starts an interpreter at every call, and each
# dataclass compiles its methods at import (issue 15; tests/test_startup_imports.py).
class Opt:
    """One option: ``--long``, ``-s``, whether it takes an argument, and its help line."""

    __slots__ = ("arg", "help", "long", "metavar", "short", "short_arg")

    def __init__(self, long: str, short: str = "", arg: str = NONE, metavar: str = "", help: str = "",
                 short_arg: Optional[str] = None):
        self.long = long
        self.short = short
        self.arg = arg  # NONE, REQUIRED or OPTIONAL
        # The short form's, where getopt's string differs from the long option's (util-linux unshare:
        # "--mount[=FILE]" but "-m" alone, so that "-rmpf" is -r -m -p -f).
        self.short_arg = arg if short_arg is None else short_arg
        self.metavar = metavar
        self.help = help

    def __repr__(self) -> str:
        return f"Opt({self.spelling})"

    @property
    def dest(self) -> str:
        return self.long.replace("-", "_")

    @property
    def spelling(self) -> str:
        """The option as a message names it: ``--map-user``."""
        return f"--{self.long}"

    def synopsis(self) -> str:
        long = f"--{self.long}"
        if self.arg == REQUIRED:
            long += f" <{self.metavar}>"
        elif self.arg == OPTIONAL:
            long += f"[=<{self.metavar}>]"
        return f"-{self.short}, {long}" if self.short else f"    {long}"


class Parsed:
    """The options given, in order, as (Opt, argument or None), and the command that follows them."""

    __slots__ = ("given", "rest")

    def __init__(self, given: list[tuple[Opt, Optional[str]]], rest: list[str]):
        self.given = given
        self.rest = rest

    def has(self, long: str) -> bool:
        return any(o.long == long for o, _ in self.given)

    def values(self, long: str) -> list[Optional[str]]:
        return [v for o, v in self.given if o.long == long]

    def last(self, long: str, default: Optional[str] = None) -> Optional[str]:
        vals = self.values(long)
        return vals[-1] if vals else default


class Command:
    """A subcommand's options and help text."""

    __slots__ = ("options", "permute", "prog", "sections", "summary", "usage")

    def __init__(self, prog: str, usage: str, summary: str, options: tuple[Opt, ...],
                 sections: tuple[tuple[str, tuple[str, ...]], ...] = (), permute: bool = False):
        self.prog = prog  # "pyforkexec unshare"
        self.usage = usage  # after the prog: "[options] [<program> [<argument>...]]"
        self.summary = summary
        self.options = options
        self.sections = sections  # (title, long names) for --help grouping
        # Options after the operands too (GNU getopt's default), for a command that runs no program.
        self.permute = permute

    def parse(self, argv: Sequence[str]) -> Parsed:
        return parse(self.options, argv, self.permute)

    def help_text(self) -> str:
        by_long = {o.long: o for o in self.options}
        groups = self.sections or (("Options", tuple(by_long)),)
        lines = ["", "Usage:", f" {self.prog} {self.usage}", "", self.summary, ""]
        for title, names in groups:
            if title:
                lines.append(f"{title}:")
            for name in names:
                o = by_long[name]
                syn = o.synopsis()
                lines.append(f" {syn:<30} {o.help}" if len(syn) <= 30 else f" {syn}\n {'':<30} {o.help}")
            lines.append("")
        return "\n".join(lines)

    def fail(self, message: str) -> NoReturn:
        """A usage error of this command: reported as util-linux does, exit status 1."""
        raise UsageError(message, self.prog)


def _match_long(options: Sequence[Opt], name: str) -> Opt:
    exact = [o for o in options if o.long == name]
    if exact:
        return exact[0]
    prefixed = [o for o in options if o.long.startswith(name)]
    if len(prefixed) == 1:
        return prefixed[0]
    if not prefixed:
        raise UsageError(f"unrecognized option '--{name}'")
    names = ", ".join(f"'--{o.long}'" for o in prefixed)
    raise UsageError(f"option '--{name}' is ambiguous; possibilities: {names}")


def parse(options: Sequence[Opt], argv: Sequence[str], permute: bool = False) -> Parsed:
    """getopt_long(argc, argv, "+...", ...) over ``options``; raises UsageError. It stops at --help or
    --version (ANSWERS, then the last one given), as util-linux's getopt loop exits there: what comes
    after, a bad option too, is never read. With ``permute`` (getopt_long without "+"), an operand
    does not end the options: the operands are collected, in order, until ``--``."""
    shorts = {o.short: o for o in options if o.short}
    given: list[tuple[Opt, Optional[str]]] = []
    operands: list[str] = []
    i, args = 0, list(argv)
    while i < len(args):
        tok = args[i]
        if tok == "--":
            return Parsed(given, operands + args[i + 1:])
        if not tok.startswith("-") or tok == "-":
            if not permute:
                break
            operands.append(tok)
            i += 1
            continue
        i += 1
        if tok.startswith("--"):
            name, eq, value = tok[2:].partition("=")
            opt = _match_long(options, name)
            if opt.arg == NONE and eq:
                raise UsageError(f"option '--{opt.long}' doesn't allow an argument")
            if opt.arg == REQUIRED and not eq:
                if i == len(args):
                    raise UsageError(f"option '--{opt.long}' requires an argument")
                value, i = args[i], i + 1
            given.append((opt, value if (eq or opt.arg == REQUIRED) else None))
            if opt.long in ANSWERS:
                return Parsed(given, [])
            continue
        j = 1
        while j < len(tok):
            opt = shorts.get(tok[j])
            if opt is None:
                raise UsageError(f"invalid option -- '{tok[j]}'")
            attached = tok[j + 1:]
            if opt.short_arg == NONE:
                given.append((opt, None))
                if opt.long in ANSWERS:
                    return Parsed(given, [])
                j += 1
                continue
            if attached:
                given.append((opt, attached))
            elif opt.short_arg == REQUIRED:
                if i == len(args):
                    raise UsageError(f"option requires an argument -- '{opt.short}'")
                given.append((opt, args[i]))
                i += 1
            else:
                given.append((opt, None))
            break
    return Parsed(given, operands + args[i:])


HELP = Opt("help", "h", help="display this help")
VERSION = Opt("version", "V", help="display version")
ANSWERS = (HELP.long, VERSION.long)  # the options that answer and exit where they are read


def parse_or_fail(cmd: Command, argv: Sequence[str], in_order: bool = False) -> Parsed:
    """Parses argv; a usage error exits 1. --help and --version are answered here, unless the command
    reads its options ``in_order`` (util-linux's getopt loop: the values before them are read first,
    and a bad one fails), calling ``answer`` when its loop reaches one."""
    try:
        parsed = cmd.parse(argv)
    except UsageError as e:
        raise UsageError(str(e), cmd.prog, getopt=True) from None
    if not in_order and parsed.given and parsed.given[-1][0].long in ANSWERS:
        answer(cmd, parsed.given[-1][0])
    return parsed


def answer(cmd: Command, opt: Opt) -> NoReturn:
    """--help or --version (``opt``): print and exit 0."""
    if opt.long == HELP.long:
        print(cmd.help_text())
        raise SystemExit(0)
    from .. import __version__  # importlib.metadata: only for the option that prints it

    print(f"{cmd.prog} {__version__}")
    raise SystemExit(0)
