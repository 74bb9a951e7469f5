"""pyforkexec: Go's syscall.ForkExec for Linux, with namespaces, id maps and child errors naming the step."""

from importlib.metadata import PackageNotFoundError as _NotInstalled
from importlib.metadata import version as _distribution_version

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

try:  # the installed distribution's, whose version is galaxy.yml's (setup.py)
    __version__ = _distribution_version("pyforkexec")
except _NotInstalled:  # imported from a copy of the sources that was never installed
    __version__ = "0+unknown"

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
