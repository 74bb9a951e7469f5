"""Restart latency of a service under the pyforkexec daemon (manager: direct): from SIGKILL of the
service to its next process running, against the daemon's restart delay (``--restart-sec``; the
module's and the role's ``restart_sec``, default 0.1 s as systemd's ``RestartSec=``).

    .venv/bin/python benchmarks/restart_latency.py [--kills 10] [--restart-sec 0.1 1.0]

Two daemons run side by side, killed in turn: one as it runs by default (``pyforkexec-waiter`` in its
place while the service runs, the interpreter started again for each restart), one with
``--no-waiter`` (Python throughout). Each kill is spaced so that the start limit (5 starts within
10 s) is never reached. Prints the median, min and max per delay and daemon, and each daemon's RSS
and PSS while its service runs. A benchmark, not a test: nothing fails.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from procmem import rss_pss_kib


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def wait_for_child(daemon: int, other_than: int, deadline: float) -> int:
    while time.monotonic() < deadline:
        pids = [p for p in children(daemon) if p != other_than]
        if pids:
            return pids[0]
        time.sleep(0.0005)
    raise TimeoutError("the service did not come back")


# The daemon as pyforkexec-waiter while the service runs (the default), or Python throughout.
MODES = {"waiter": [], "python": ["--no-waiter"]}


class Daemon:
    """One daemon supervising `sleep` in new UTS and PID namespaces, restarting it always."""

    def __init__(self, tmp: str, mode: str, restart_sec: float) -> None:
        self.tmp = Path(tmp, mode)
        self.tmp.mkdir()
        spec = self.tmp / "s.json"
        spec.write_text(json.dumps({"version": 1, "argv": ["sleep", "600"],
                                    "sys": {"cloneflags": ["CLONE_NEWUTS", "CLONE_NEWPID"]}}))
        r, w = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyforkexec.daemon", "--name", "bench", "--spec", str(spec),
             "--pid-file", f"{self.tmp}/d.pid", "--log-file", f"{self.tmp}/d.log", "--ready-fd", str(w),
             "--foreground", "--restart", "always", "--restart-sec", str(restart_sec), *MODES[mode]],
            pass_fds=(w,), stdin=subprocess.DEVNULL)
        os.close(w)
        with os.fdopen(r) as f:
            self.child = int(f.read().split()[1])

    def kill_and_wait(self) -> float:
        """SIGKILL the service; seconds until its next process runs."""
        start = time.monotonic()
        os.kill(self.child, signal.SIGKILL)
        try:
            self.child = wait_for_child(self.proc.pid, self.child, start + 30)
        except TimeoutError:
            raise TimeoutError(f"the service did not come back; the daemon's log: "
                               f"{(self.tmp / 'd.log').read_text()[-400:]}") from None
        return time.monotonic() - start

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def measure(restart_sec: float, kills: int, spacing: float) -> dict[str, tuple[list[float], tuple[int, int]]]:
    """Per mode: the restart latencies, and the daemon's (RSS, PSS) while its service runs. The two
    daemons run side by side and are killed in turn."""
    with tempfile.TemporaryDirectory() as tmp:
        daemons: dict[str, Daemon] = {}
        try:
            for mode in MODES:
                daemons[mode] = Daemon(tmp, mode, restart_sec)
            times: dict[str, list[float]] = {mode: [] for mode in MODES}
            for _ in range(kills):
                start = time.monotonic()
                for mode, daemon in daemons.items():
                    times[mode].append(daemon.kill_and_wait())
                time.sleep(max(0.0, spacing - (time.monotonic() - start)))
            time.sleep(1.0)  # settled: the waiter has taken over again
            return {mode: (times[mode], rss_pss_kib(d.proc.pid)) for mode, d in daemons.items()}
        finally:
            for daemon in daemons.values():
                daemon.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--restart-sec", type=float, nargs="+", default=[0.1, 1.0])
    p.add_argument("--spacing", type=float, default=2.6,
                   help="seconds between kills (the start limit: 5 starts in 10 s)")
    args = p.parse_args()
    print(f"loadavg {os.getloadavg()[0]:.2f}\n")
    print("| restart_sec | daemon | kills | median (ms) | min | max | daemon RSS / PSS (KiB) |")
    print("|---|---|---|---|---|---|---|")
    for delay in args.restart_sec:
        for mode, (times, (rss, pss)) in measure(delay, args.kills, args.spacing).items():
            ms = [t * 1000 for t in times]
            print(f"| {delay:g} | {mode} | {len(ms)} | {statistics.median(ms):.1f} | {min(ms):.1f} | "
                  f"{max(ms):.1f} | {rss} / {pss} |")


if __name__ == "__main__":
    main()
