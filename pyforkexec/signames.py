"""Signal names as util-linux reads and writes them: ``SIGKILL``, ``KILL`` or ``kill``; a real-time
signal, which has no name of its own, as ``RTMIN+N`` or ``RTMAX-N`` (``SIGRTMIN+1``: 35 with glibc)."""

from __future__ import annotations

import re
import signal
from typing import Optional

_REAL_TIME = re.compile(r"(?:SIG)?RT(MIN\+|MAX-)([0-9]+)", re.IGNORECASE)

# Python names SIGSTKFLT from 3.11 only: before, 16 is a valid signal without a name (Debian 11's 3.9),
# and "STKFLT" read as no signal and 16 showed as a number where 3.11 takes and shows the name. 16 is
# SIGSTKFLT in Linux's generic numbering (x86, arm64); an architecture that gives 16 to another signal
# (mips, sparc) has Python name that one, so an unnamed valid 16 is SIGSTKFLT.
_STKFLT: Optional[int] = int(getattr(signal, "SIGSTKFLT", 0)) or (
    16 if 16 not in {int(s) for s in signal.Signals} and 16 in signal.valid_signals() else None)


def number(value: str) -> Optional[int]:
    """The signal ``value`` names, None for no signal (util-linux's signame_to_signum: a real-time one
    within SIGRTMIN..SIGRTMAX)."""
    rt = _REAL_TIME.fullmatch(value)
    if rt:
        n = int(rt[2])
        sig = signal.SIGRTMIN + n if rt[1].upper() == "MIN+" else signal.SIGRTMAX - n
        return int(sig) if signal.SIGRTMIN <= sig <= signal.SIGRTMAX else None
    upper = value.upper()
    upper = upper if upper.startswith("SIG") else "SIG" + upper
    if upper == "SIGSTKFLT":
        return _STKFLT
    found = getattr(signal.Signals, upper, None) if upper.isidentifier() else None
    return int(found) if isinstance(found, signal.Signals) else None


def parse(value: str) -> Optional[int]:
    """A signal given by name (number()) or by its number (``2``, as systemd's KillSignal= and podman's
    --stop-signal take it: one the kernel has), None for no signal."""
    if re.fullmatch(r"[0-9]+", value):
        signo = int(value)
        return signo if signo < signal.NSIG and signo in signal.valid_signals() else None
    return number(value)


def name(signo: int) -> str:
    """``SIGTERM``; a real-time signal as ``SIGRTMIN+N`` (or ``SIGRTMAX-N`` nearer that end); a number
    that is no signal as itself."""
    try:
        return signal.Signals(signo).name
    except ValueError:
        if signo == _STKFLT:
            return "SIGSTKFLT"
    if signal.SIGRTMIN <= signo <= signal.SIGRTMAX:
        low, high = signo - signal.SIGRTMIN, signal.SIGRTMAX - signo
        return f"SIGRTMIN+{low}" if low <= high else f"SIGRTMAX-{high}"
    return str(signo)
