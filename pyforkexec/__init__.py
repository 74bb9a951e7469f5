"""pyforkexec: Go's syscall.ForkExec for Linux, with namespaces, id maps and child errors naming the step.

The public names are loaded on first use (module ``__getattr__``): ``import pyforkexec`` itself imports
nothing, so the command line, the service launcher and the daemon, which start a Python each time,
pay only for the modules their command uses (issue 15; ``tests/test_startup_imports.py`` pins it).
``__all__``, ``dir()`` and ``from pyforkexec import *`` give the same names as an eager import would.
"""

from __future__ import annotations

import sys

# Each public name -> the module (relative to this package) that defines it. No module is named as a
# public name: importing it would make the package's attribute the module (pyforkexec.run a module).
_MODULE_OF = {
    "Credential": ".attrs", "ProcAttr": ".attrs", "SetNS": ".attrs", "SysProcAttr": ".attrs",
    "SysProcIDMap": ".attrs",
    "clone": ".clone_fn", "wait_clone": ".clone_fn",
    "ChildError": ".errors", "ErrorLocation": ".errors",
    "fork_exec": ".forkexec", "start_process": ".forkexec",
    "Prepared": ".prepared", "prepare": ".prepared",
    "Process": ".process", "TimeoutExpired": ".process",
    "run": ".run_process",
    "Capabilities": ".sandbox.caps",
    "Cgroup": ".sandbox.cgroup", "CgroupError": ".sandbox.cgroup",
    "Landlock": ".sandbox.landlock", "LandlockPath": ".sandbox.landlock", "LandlockPlan": ".sandbox.landlock",
    "LandlockPort": ".sandbox.landlock", "landlock_abi": ".sandbox.landlock",
    "Mount": ".sandbox.mounts", "minimal_dev": ".sandbox.mounts",
    "Rlimit": ".sandbox.rlimits",
    "SeccompFilter": ".sandbox.seccomp",
}


def _submodule(relative: str) -> object:
    """The submodule ``relative`` (".flags"), imported as importlib.import_module would, without
    importing importlib (and warnings): nothing else on a command's way needs them."""
    name = __name__ + relative
    __import__(name)
    return sys.modules[name]


def _flag_names() -> list[str]:
    """Every CLONE_* constant, CloneFlags and FlagGroup (``from .flags import *`` of the eager days)."""
    return list(_submodule(".flags").__all__)


def _version() -> str:
    # importlib.metadata costs more than the rest of a command's start: read only when asked
    from importlib.metadata import PackageNotFoundError, version

    try:  # the installed distribution's, whose version is galaxy.yml's (setup.py)
        return version("pyforkexec")
    except PackageNotFoundError:  # imported from a copy of the sources that was never installed
        return "0+unknown"


def __getattr__(name: str) -> object:
    if name == "__all__":
        value: object = sorted(_MODULE_OF) + _flag_names()
    elif name == "__version__":
        value = _version()
    elif name in _MODULE_OF:
        value = getattr(_submodule(_MODULE_OF[name]), name)
    elif name in _flag_names():
        value = getattr(_submodule(".flags"), name)
    else:  # a submodule (pyforkexec.errors, ...), which the eager imports used to leave as an attribute
        try:
            value = _submodule(f".{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value  # the next access is a plain attribute, as with an eager import
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULE_OF, *_flag_names(), "__all__", "__version__"})
