"""pyforkexec: Go's syscall.ForkExec for Linux, with namespaces, id maps and child errors naming the step."""

from .attrs import Credential, ProcAttr, SetNS, SysProcAttr, SysProcIDMap
from .errors import ChildError, ErrorLocation
from .flags import *  # noqa: F403  (every CLONE_* constant, CloneFlags, FlagGroup)
from .flags import __all__ as _flag_names
from .forkexec import fork_exec, start_process
from .process import Process, TimeoutExpired
from .run import run

__version__ = "0.1.0"
__all__ = [
    "ChildError",
    "Credential",
    "ErrorLocation",
    "ProcAttr",
    "Process",
    "SetNS",
    "SysProcAttr",
    "SysProcIDMap",
    "TimeoutExpired",
    "fork_exec",
    "run",
    "start_process",
    *_flag_names,
]
