"""Wall time of the role pyforkexec.isolation.isolated_service for N small HTTP services on this
machine (``-c local``, forks 5, the default linear strategy): converge, idempotent re-run, removal.

    .venv/bin/python benchmarks/collection/converge_role.py [--counts 1 5 10 20] [--rounds 2]
        [--checkout NAME=DIR ...] [--json out.json]

Each ``--checkout`` is a copy of the collection (a worktree or ``git archive`` of another commit,
e.g. main) measured side by side with this one; contenders alternate within each round and count.
Each service is like playbooks/isolated_http.yml's: its own account and user, pid, mount, uts, ipc
namespaces, a network namespace on a private bridge, read-only root, no capabilities, restart always,
``python3 -m http.server``. The runtime (virtualenv /opt/pyforkexec-bench) and the accounts are kept
between runs (``isolated_service_remove_runtime: false``): removal is the services'. Needs root. A
benchmark, not a test: nothing fails when a goal is missed; it prints the median seconds and the
load average seen.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "pfcb"  # the services' names, accounts, netns, veths and bridge: pfcb-N, pfcbbr0
SUBNET = "10.79.15"
BRIDGE = f"{PREFIX}br0"
VENV = "/opt/pyforkexec-bench"
PHASES = ("converge", "rerun", "removal")


def services(count: int, stop_signal: bool = True) -> list[dict]:
    """``stop_signal``: stop them with SIGINT, which ``http.server`` ends on (as PID 1 of its PID
    namespace it never sees a SIGTERM, and each stop waited out its stop_timeout)."""
    return [dict(name=f"{PREFIX}-{i}", user=f"{PREFIX}-{i}",
                 argv=["/usr/bin/python3", "-m", "http.server", "8080", "--bind", f"{SUBNET}.{10 + i}",
                       "--directory", "/usr/share/doc"],
                 readonly_root=True, capabilities=dict(keep=[]), restart="always", stop_timeout=5,
                 **(dict(stop_signal="SIGINT") if stop_signal else {}),
                 network=dict(bridge=BRIDGE, addresses=[f"{SUBNET}.{10 + i}/24"],
                              gateway=[f"{SUBNET}.1"]))
            for i in range(1, count + 1)]


def knows_stop_signal(checkout: Path) -> bool:
    """Whether the role of ``checkout`` takes stop_signal (an older one refuses it)."""
    spec = checkout / "roles" / "isolated_service" / "meta" / "argument_specs.yml"
    return "stop_signal:" in spec.read_text()


def playbook(count: int, stop_signal: bool = True) -> list[dict]:
    return [dict(name=f"{count} isolated HTTP services", hosts="all", gather_facts=False,
                 vars=dict(ansible_python_interpreter="/usr/bin/python3",
                           isolated_service_venv=VENV, isolated_service_remove_runtime=False,
                           isolated_service_cgroup_required=False,
                           isolated_service_networks=[dict(name=BRIDGE, addresses=[f"{SUBNET}.1/24"])],
                           isolated_service_services=services(count, stop_signal)),
                 roles=[dict(role="pyforkexec.isolation.isolated_service")])]


def collections_path(checkout: Path, scratch: Path, name: str) -> Path:
    """A collections directory where pyforkexec.isolation is ``checkout``."""
    path = scratch / name
    (path / "ansible_collections/pyforkexec").mkdir(parents=True)
    (path / "ansible_collections/pyforkexec/isolation").symlink_to(checkout)
    return path


def run_playbook(play: Path, collections: Path, state: str) -> float:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_FORKS="5",
               ANSIBLE_STRATEGY="linear")
    playbook_command = str(Path(sys.executable).parent / "ansible-playbook")
    argv = [playbook_command, "-i", "localhost,", "-c", "local", str(play),
            "-e", f"isolated_service_state={state}"]
    start = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    took = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 5, 10, 20])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--checkout", action="append", default=[], metavar="NAME=DIR",
                        help="another copy of the collection to measure too")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if max(args.counts) > 200:
        parser.error("--counts: at most 200 services (one /24)")
    others = dict(c.split("=", 1) for c in args.checkout)
    contenders = {"this": ROOT} | {name: Path(path).resolve() for name, path in others.items()}
    # The same stop for every contender: SIGINT only when each one's role takes it.
    stop_signal = all(knows_stop_signal(checkout) for checkout in contenders.values())
    if not stop_signal:
        print("a --checkout without stop_signal: every contender's stop sends SIGTERM, which http.server "
              "as PID 1 never sees (each removal waits out stop_timeout 5)", flush=True)
    times: dict = {name: {n: {p: [] for p in PHASES} for n in args.counts} for name in contenders}
    loads = []
    with tempfile.TemporaryDirectory(prefix="pfe-converge-bench-") as tmp:
        scratch = Path(tmp)
        paths = {name: collections_path(checkout, scratch, name) for name, checkout in contenders.items()}
        for r in range(args.rounds):
            for n in args.counts:
                play = scratch / f"play{n}.yml"
                play.write_text(json.dumps(playbook(n, stop_signal)))
                order = list(contenders) if r % 2 == 0 else list(reversed(contenders))
                for name in order:
                    loads.append(os.getloadavg()[0])
                    for phase, state in zip(PHASES, ("present", "present", "absent")):
                        times[name][n][phase].append(run_playbook(play, paths[name], state))
                    print(f"round {r + 1} N={n} {name}: "
                          + " ".join(f"{p} {times[name][n][p][-1]:.1f}s" for p in PHASES), flush=True)
    print(f"\nmedian seconds ({args.rounds} rounds; 1-min load average {min(loads):.2f}-{max(loads):.2f})")
    print("| contender | N | " + " | ".join(PHASES) + " |\n|---|---|" + "---|" * len(PHASES))
    for name in contenders:
        for n in args.counts:
            medians = [f"{statistics.median(times[name][n][p]):.1f}" for p in PHASES]
            print(f"| {name} | {n} | " + " | ".join(medians) + " |")
    if args.json:
        args.json.write_text(json.dumps(dict(times=times, loads=loads), indent=1))


if __name__ == "__main__":
    main()
