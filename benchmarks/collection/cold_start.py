"""Cold start of one isolated /bin/true (user, pid, mount, uts, ipc and net namespaces), four ways.

The four commands take turns within each round (the order rotating), so that a burst of load on this
shared machine hits all of them; each command's median over the rounds is reported.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time

import definitions as d
from playbook import PODMAN_ENV, VENV

_UNSHARE = ["--user", "--map-root-user", "--pid", "--fork", "--mount-proc", "--uts", "--ipc", "--net"]
_MAP = f"0:{d.PODMAN.uid_base}:1"


def commands(image: str) -> dict[str, list[str]]:
    return {
        "pyforkexec unshare": [f"{VENV}/bin/pyforkexec", "unshare", *_UNSHARE, "/bin/true"],
        "util-linux unshare": ["unshare", *_UNSHARE, "/bin/true"],
        "bwrap": ["bwrap", "--unshare-all", "--uid", "0", "--ro-bind", "/", "/", "--proc", "/proc",
                  "--dev", "/dev", "/bin/true"],
        "podman run --rm": ["podman", "run", "--rm", "--network", "none", "--uidmap", _MAP, "--gidmap", _MAP,
                            image, "/usr/bin/true"],
    }


def measure(image: str, rounds: int) -> dict[str, dict[str, float]]:
    """Per command: median, min and max seconds over ``rounds``, and the median 1-minute load average."""
    cmds = commands(image)
    names = list(cmds)
    env = dict(os.environ, **PODMAN_ENV)
    times: dict[str, list[float]] = {n: [] for n in names}
    loads: list[float] = []
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.monotonic()
            subprocess.run(cmds[name], env=env, check=True, stdout=subprocess.DEVNULL)
            times[name].append(time.monotonic() - start)
        loads.append(os.getloadavg()[0])
    load = statistics.median(loads)
    return {n: {"median": statistics.median(t), "min": min(t), "max": max(t), "load": load, "rounds": rounds}
            for n, t in times.items()}


def main() -> None:
    import argparse

    import image as img

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rounds", type=int, nargs="?", default=10, help="rounds (default 10)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("rounds: at least 1")
    for name, row in measure(img.ensure_image(), args.rounds).items():
        print(f"{name:20} {row['median'] * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
