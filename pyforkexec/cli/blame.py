"""Restating the library's refusals and the child's failures with the options behind them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Callable, Optional, Union

from ..errors import ChildError
from .failure import EXIT_SETUP, Failure, SetupError, exit_status
from .options import Command, Opt, Parsed, UsageError


class Rule:
    """A field's entry in a blame table that says the library's rule in the command's own terms:
    ``longs`` the options behind it, ``text`` what follows them, instead of the library's message,
    whose remedy names the Python API (``set credential.no_setgroups``), not an option. A plain
    class: the command's start-up compiles nothing (issue 15)."""

    __slots__ = ("longs", "text")

    def __init__(self, longs: Sequence[str], text: str):
        self.longs = longs
        self.text = text


Blame = Mapping[str, Union[Sequence[str], Rule]]


Restate = Callable[[BaseException], Optional[BaseException]]


def blamer(cmd: Command, parsed: Parsed, table: Blame) -> Restate:
    """What to tell when the library refuses a field the options set, or the child fails at a step
    they asked for: the options as the user gave them, then the library's own message.

    ``table`` maps what the library names to the long names of the options behind it: a field
    (``SysProcAttr.uid_mappings``: a ValueError/TypeError about it, or a part of it, becomes a usage
    error, status 1) or a child step (``at chdir``, ``at unshare_user_read[0]`` for one index: a
    ChildError keeps its status, 125/126/127; a SetupError of the launcher doing that step itself,
    125). Each option value is checked when it is parsed; this
    is for what only the whole can refuse (an id map after carving, a mix of options) and for what
    the kernel refuses, so that ``SysProcAttr.uid_mappings[1]`` or ``(at chdir)`` is never all the
    user reads. A field's entry may be a Rule: the options, then the command's own words for it.
    The first entry that matches counts: a part (``SysProcAttr.credential.groups``) goes before the
    whole."""

    def given(longs: Union[Sequence[str], Rule]) -> str:
        if isinstance(longs, Rule):
            longs = longs.longs
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
        if isinstance(err, SetupError):
            options = given(table.get(f"at {err.step}", ())) if err.step else ""
            return Failure(f"{options}: {err}", EXIT_SETUP) if options else None
        if not isinstance(err, (ValueError, TypeError)):
            return None
        field = str(err).split(":", 1)[0]
        for name, entry in table.items():
            options = given(entry)
            if options and (field == name or field.startswith((name + ".", name + "["))):
                said = entry.text if isinstance(entry, Rule) else f"refused: {err}"
                return UsageError(f"{options}: {said}", cmd.prog)
        return None

    return restate


def spelling(opt: Opt, value: Optional[str]) -> str:
    """An option as the user gave it, in its long form: ``--map-users=0:0:10``, ``--fork``."""
    return opt.spelling if value is None else f"{opt.spelling}={value}"
