"""Text a message quotes from its input (a file name, a key, an option's value), made one line."""

from __future__ import annotations


def printable(text: str) -> str:
    """``text`` with each character ``str.isprintable`` refuses (a newline, an escape, a NUL, half a
    surrogate pair) written as its Python escape (``\\n``, ``\\x1b``): one line showing what was there,
    which a terminal or a log reads as it is (no line of its own, no colour change)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


class OneLineError(Exception):
    """A base of an error whose message quotes input (a link's name, a sysctl key): the message
    ``printable`` at construction, so that every caller (the CLI, a module's ``msg``, a log line) gets
    it as one line, escaped once and as the CLI escapes the rest of its line."""

    def __init__(self, message: object = "") -> None:
        super().__init__(printable(str(message)))
