"""Start-up of the package's own processes: the command line, the service launcher, the daemon.

Each of them is a new interpreter every time (a command, a systemd start, a daemon restart), so what
it imports is paid at every start (issue 15). ``dataclasses``, which the public types need, imports
``inspect`` (and with it ``ast``, ``dis``, ``tokenize``, ``linecache``: about a fifth of a command's
import time) but uses it only to write a docstring for a dataclass that has none (CPython 3.9-3.11;
from 3.12 it reads every class's annotations through ``inspect``, and this gains nothing there).

So these processes, and only they, put a stand-in for ``inspect`` in ``sys.modules`` before anything
imports it: ``import inspect`` gives the stand-in, and the first attribute anyone reads from it
imports the real module, which then replaces the stand-in in ``sys.modules`` and whose names the
stand-in takes over (code that kept the stand-in, as ``dataclasses`` does, sees the real functions
from then on). ``importlib.util.LazyLoader`` would not do: ``import inspect`` itself reads the lazy
module's ``__spec__``, which loads it. Importing the entry points (``pyforkexec.cli``,
``pyforkexec.daemon``) installs it, if ``inspect`` was not imported yet; a library user's ``import
pyforkexec`` and its public names leave ``inspect`` as it is (the stand-in is not meant to be loaded
from two threads at once).
"""

from __future__ import annotations

import sys

_NAME = "inspect"


def defer_inspect() -> None:
    """Make ``inspect`` load on the first use of one of its names, unless it was imported already."""
    if _NAME in sys.modules:
        return
    stand_in = type(sys)(_NAME, "Stand-in for inspect until it is used: see pyforkexec._startup.")
    loaded = []

    def load(name: str) -> object:
        if loaded:  # the real module has no such name
            raise AttributeError(f"module {_NAME!r} has no attribute {name!r}")
        if sys.modules.get(_NAME) is stand_in:
            del sys.modules[_NAME]
        import inspect

        loaded.append(inspect)
        vars(stand_in).update(vars(inspect))  # its own __getattr__ stays: answers only unknown names
        return getattr(inspect, name)

    stand_in.__getattr__ = load  # type: ignore[attr-defined]  # PEP 562: only for names not in __dict__
    sys.modules[_NAME] = stand_in
