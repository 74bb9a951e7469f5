"""Restart latency of a service under the pyforkexec daemon (manager: direct): from SIGKILL of the
service to its next process running, against the daemon's restart delay (``--restart-sec``; the
module's and the role's ``restart_sec``, default 0.1 s as systemd's ``RestartSec=``).

    .venv/bin/python benchmarks/restart_latency.py [--kills 10] [--restart-sec 0.1 1.0]

Each kill is spaced so that the start limit (5 starts within 10 s) is never reached. Prints the median,
min and max per delay. A benchmark, not a test: nothing fails.
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


def measure(restart_sec: float, kills: int, spacing: float) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp, "s.json")
        spec.write_text(json.dumps({"version": 1, "argv": ["sleep", "600"],
                                    "sys": {"cloneflags": ["CLONE_NEWUTS", "CLONE_NEWPID"]}}))
        r, w = os.pipe()
        daemon = subprocess.Popen(
            [sys.executable, "-m", "pyforkexec.daemon", "--name", "bench", "--spec", str(spec),
             "--pid-file", f"{tmp}/d.pid", "--log-file", f"{tmp}/d.log", "--ready-fd", str(w),
             "--foreground", "--restart", "always", "--restart-sec", str(restart_sec)],
            pass_fds=(w,), stdin=subprocess.DEVNULL)
        os.close(w)
        with os.fdopen(r) as f:
            ready = f.read().split()
        child = int(ready[1])
        out = []
        try:
            for _ in range(kills):
                start = time.monotonic()
                os.kill(child, signal.SIGKILL)
                try:
                    child = wait_for_child(daemon.pid, child, start + 30)
                except TimeoutError:
                    raise TimeoutError(f"the service did not come back after {len(out)} kills; the daemon's "
                                       f"log: {Path(tmp, 'd.log').read_text()[-400:]}") from None
                out.append(time.monotonic() - start)
                time.sleep(max(0.0, spacing - (time.monotonic() - start)))
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
        return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--restart-sec", type=float, nargs="+", default=[0.1, 1.0])
    p.add_argument("--spacing", type=float, default=2.6,
                   help="seconds between kills (the start limit: 5 starts in 10 s)")
    args = p.parse_args()
    print(f"| restart_sec | kills | median (ms) | min | max |  loadavg {os.getloadavg()[0]:.2f}")
    print("|---|---|---|---|---|")
    for delay in args.restart_sec:
        times = [t * 1000 for t in measure(delay, args.kills, args.spacing)]
        median = statistics.median(times)
        print(f"| {delay:g} | {len(times)} | {median:.1f} | {min(times):.1f} | {max(times):.1f} |")


if __name__ == "__main__":
    main()
