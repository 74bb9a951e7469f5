"""pyforkexec: Go's syscall.ForkExec for Linux, with namespaces, id maps and child errors naming the step."""

from .attrs import Credential, ProcAttr, SetNS, SysProcAttr, SysProcIDMap
from .clone import clone, wait_clone
from .errors import ChildError, ErrorLocation
from .flags import *  # noqa: F403  (every CLONE_* constant, CloneFlags, FlagGroup)
from .flags import __all__ as _flag_names
from .forkexec import fork_exec, start_process
from .prepared import Prepared, prepare
from .process import Process, TimeoutExpired
from .run import run
from .sandbox.caps import Capabilities
from .sandbox.cgroup import Cgroup, CgroupError
from .sandbox.landlock import Landlock, LandlockPath, LandlockPlan, LandlockPort, landlock_abi
from .sandbox.mounts import Mount, minimal_dev
from .sandbox.rlimits import Rlimit
from .sandbox.seccomp import SeccompFilter

__version__ = "0.1.0"
__all__ = [
    "Capabilities",
    "Cgroup",
    "CgroupError",
    "ChildError",
    "Credential",
    "ErrorLocation",
    "Landlock",
    "LandlockPath",
    "LandlockPlan",
    "LandlockPort",
    "Mount",
    "Prepared",
    "ProcAttr",
    "Process",
    "Rlimit",
    "SeccompFilter",
    "SetNS",
    "SysProcAttr",
    "SysProcIDMap",
    "TimeoutExpired",
    "clone",
    "fork_exec",
    "landlock_abi",
    "minimal_dev",
    "prepare",
    "run",
    "start_process",
    "wait_clone",
    *_flag_names,
]
