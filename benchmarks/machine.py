"""What a benchmark ran on, recorded beside its numbers: runs on another machine (a different CPU model
behind the same 2 vCPUs) are not comparable, and the records say so."""

from __future__ import annotations

import functools
import os
import platform
import time


def cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


@functools.cache  # one machine per process: read once, however many records carry it
def describe() -> dict[str, object]:
    """The CPU model, the CPUs, the kernel and when the machine booted (a new boot may be a new machine)."""
    with open("/proc/uptime") as f:
        up = float(f.read().split()[0])
    return {"cpu": cpu_model(), "cpus": os.cpu_count(), "kernel": platform.release(),
            "booted": round(time.time() - up)}


def label(machine: dict[str, object]) -> str:
    """One line for a report: 'Intel(R) Xeon(R) Processor x2, kernel 6.18.44-...'."""
    return f"{machine['cpu']} x{machine['cpus']}, kernel {machine['kernel']}"


def labels(records: list[dict]) -> str:
    """The machines a benchmark's records (each with its ``machine``, when recorded) were taken on."""
    return "; ".join(sorted({label(r["machine"]) for r in records if r.get("machine")}))


def cpu_times() -> tuple[int, int]:
    """(steal, total) ticks of every CPU so far, from /proc/stat's first line: what a hypervisor gave
    other guests while this one wanted the CPU, and everything."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    steal = fields[7] if len(fields) > 7 else 0
    return steal, sum(fields[:8])  # guest time is counted in user already


def steal_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of CPU time stolen between two cpu_times() readings (0 when no time passed)."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total > 0 else 0.0
