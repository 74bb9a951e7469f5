"""Capabilities by name: the numbers of linux/capability.h, and the sets a child keeps.

``Capabilities(keep=["CAP_NET_BIND_SERVICE"])`` leaves the child that capability and no other in its
bounding, permitted, effective and inheritable sets; ``ambient`` (a subset of ``keep``) also raises
them as ambient capabilities, so that a non-root program keeps them across execve. With
``drop_all_others=False`` the sets keep everything but ``drop``, which is then needed (without it,
or ``ambient`` to raise, the record restricts nothing and is refused).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Union

from .._record import Value
from ..checks import check_bool, check_int, check_list, fail

if TYPE_CHECKING:  # checkers see the standard decorator; see _dataclass.py
    from dataclasses import dataclass
else:
    from .._dataclass import dataclass

# linux/capability.h, in number order.
CAP_NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
CAP_NUMBERS = {name: n for n, name in enumerate(CAP_NAMES)}
CAP_SETPCAP = CAP_NUMBERS["CAP_SETPCAP"]
CapName = Union[str, int]


PR_CAPBSET_READ = 23


@lru_cache(maxsize=1)
def cap_last_cap() -> int:
    """The highest capability this kernel knows (/proc/sys/kernel/cap_last_cap). Without /proc (a
    chroot), the kernel is asked capability by capability: PR_CAPBSET_READ fails (EINVAL) past the
    last. Not the names this module knows: a newer kernel's capabilities beyond them would be left out
    of "everything" (drop_all_others), kept by the program."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
        last = 0
        while last < 63 and prctl(PR_CAPBSET_READ, ctypes.c_ulong(last + 1), 0, 0, 0) >= 0:
            last += 1
        return last


def cap_number(field: str, value: object) -> int:
    """``"CAP_NET_BIND_SERVICE"``, ``"net_bind_service"`` (any case) or a number, as a number."""
    if isinstance(value, str):
        name = value.upper()
        number = CAP_NUMBERS.get(name if name.startswith("CAP_") else f"CAP_{name}")
        if number is None:
            fail(field, f"unknown capability {value!r}")
        value = number
    return check_int(field, value, 0, min(cap_last_cap(), 63))


def cap_name(number: int) -> str:
    return CAP_NAMES[number] if number < len(CAP_NAMES) else f"CAP_{number}"


def cap_mask(field: str, values: object) -> int:
    mask = 0
    for i, v in enumerate(check_list(field, values, "capability names")):
        mask |= 1 << cap_number(f"{field}[{i}]", v)
    return mask


def mask_names(mask: int) -> list[str]:
    """The names of the capabilities set in ``mask`` (as /proc/PID/status's CapEff shows it)."""
    return [cap_name(n) for n in range(64) if mask >> n & 1]


@dataclass(frozen=True)
class Capabilities:
    """The capabilities the child keeps, by name (``"CAP_NET_BIND_SERVICE"``, ``"net_bind_service"``)
    or number.

    keep: with ``drop_all_others`` (the default), the only capabilities left in the bounding,
      permitted, effective and inheritable sets (those the process does not have stay absent).
    ambient: raised as ambient capabilities after the credential change; each must be in ``keep``.
    drop: with ``drop_all_others=False``, the capabilities removed from every set; the rest stay.
    """

    keep: Sequence[CapName] = ()
    ambient: Sequence[CapName] = ()
    drop_all_others: bool = True
    drop: Sequence[CapName] = ()


class CapsPlan(Value):
    """Capabilities, checked: the mask the sets keep, the bounding caps to drop, the ambient ones."""

    __slots__ = ("ambient", "bounding_drop", "keep")

    def __init__(self, keep: int, bounding_drop: tuple[int, ...], ambient: tuple[int, ...]):
        self.keep = keep
        self.bounding_drop = bounding_drop
        self.ambient = ambient


def check_capabilities(field: str, caps: object) -> CapsPlan:
    if not isinstance(caps, Capabilities):
        fail(field, f"must be a Capabilities, not {type(caps).__name__}", TypeError)
    everything = (1 << (min(cap_last_cap(), 63) + 1)) - 1
    keep, drop = cap_mask(f"{field}.keep", caps.keep), cap_mask(f"{field}.drop", caps.drop)
    ambient = cap_mask(f"{field}.ambient", caps.ambient)
    if check_bool(f"{field}.drop_all_others", caps.drop_all_others):
        if drop:
            fail(f"{field}.drop", "drop_all_others already drops everything not in keep")
    else:
        if keep:
            fail(f"{field}.keep", "with drop_all_others=False every capability not in drop is kept: "
                 "give drop, or drop_all_others=True")
        if not drop and not ambient:
            fail(field, "restricts nothing: with drop_all_others=False and no drop every capability is "
                 "kept; give drop, or keep with drop_all_others=True (or leave it out)")
        keep = everything & ~drop
    if ambient & ~keep:
        fail(f"{field}.ambient", f"{', '.join(mask_names(ambient & ~keep))} must also be kept: an ambient "
             "capability has to stay permitted and inheritable")
    bounding = tuple(n for n in range(everything.bit_length()) if not keep >> n & 1)
    return CapsPlan(keep, bounding, tuple(n for n in range(64) if ambient >> n & 1))
