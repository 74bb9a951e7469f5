"""The memory of one process as /proc/PID/smaps_rollup counts it: what the benchmarks report as kept
per service (restart_latency.py, startup.py, collection/)."""

from __future__ import annotations


def rss_pss_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of ``pid`` in KiB."""
    values = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss"):
                values[key] = int(rest.split()[0])
    return values["Rss"], values["Pss"]
