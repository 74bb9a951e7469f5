"""The attributes of a new process: Go's ProcAttr, SysProcAttr, Credential and SysProcIDMap, snake_cased.

Every field of Go 1.23's Linux ``syscall.SysProcAttr`` is here with the same meaning and zero value.
Fields after the ``# extensions`` marker go beyond Go (namespaces to join, and, later, the sandbox
steps); each is documented where it is declared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional, Union

FileLike = Union[int, None, "HasFileno"]


class HasFileno:  # typing helper only: anything with a fileno() method
    def fileno(self) -> int:  # pragma: no cover - protocol
        raise NotImplementedError


@dataclass(frozen=True)
class SysProcIDMap:
    """One line of a uid_map/gid_map: ``size`` ids from ``container_id`` map to ``host_id`` onwards."""

    container_id: int
    host_id: int
    size: int


@dataclass(frozen=True)
class Credential:
    """The ids the child runs as (Go's ``syscall.Credential``)."""

    uid: int
    gid: int
    groups: Sequence[int] = ()
    no_setgroups: bool = False


@dataclass(frozen=True)
class SetNS:
    """A namespace to join before any other step, as nsenter does.

    ``target`` is a path (``/run/netns/web``, ``/proc/PID/ns/net``), an open namespace fd, or a pidfd;
    ``nstype`` is the CLONE_NEW* flag the kernel checks against (0 accepts any type for a namespace
    fd; a pidfd needs the mask of namespaces to join). User namespaces are joined first.
    """

    target: Union[str, int]
    nstype: int = 0


@dataclass
class SysProcAttr:
    """Linux-specific attributes, Go 1.23 ``syscall.SysProcAttr`` field for field."""

    chroot: str = ""
    credential: Optional[Credential] = None
    ptrace: bool = False
    setsid: bool = False
    setpgid: bool = False
    setctty: bool = False
    noctty: bool = False
    ctty: int = 0
    foreground: bool = False
    pgid: int = 0
    pdeathsig: int = 0
    cloneflags: int = 0
    unshareflags: int = 0
    uid_mappings: Optional[Sequence[SysProcIDMap]] = None
    gid_mappings: Optional[Sequence[SysProcIDMap]] = None
    gid_mappings_enable_setgroups: bool = False
    ambient_caps: Sequence[int] = ()
    use_cgroup_fd: bool = False
    cgroup_fd: int = 0
    pidfd: bool = False
    # extensions (not in Go)
    setns: Sequence[SetNS] = ()


@dataclass
class ProcAttr:
    """Go's ``syscall.ProcAttr``: working directory, environment, the child's fds, and SysProcAttr.

    ``files[i]`` becomes fd ``i`` in the child; ``None`` or ``-1`` leaves fd ``i`` closed. Any other fd
    of the parent is closed on exec in the child.
    """

    dir: Optional[str] = None
    env: Optional[Sequence[str]] = None
    files: Sequence[FileLike] = (0, 1, 2)
    sys: Optional[SysProcAttr] = field(default=None)
