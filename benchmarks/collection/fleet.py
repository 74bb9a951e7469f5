"""Issue 15's fleet timing: the example playbook converged over H hosts at once, against H.

Usage (as root, after setup.sh): .venv/bin/python benchmarks/collection/fleet.py [--hosts 1,5,20,50]
[--forks 5,20,50] [--strategies linear,mitogen_linear] [--out DIR]

Each host is a namespace host of this machine (molecule's, made by playbooks/fleet-hosts.yml), reached
through the collection's own connection (pyforkexec.isolation.nsenter), and gets the example playbook's
two isolated HTTP services under its own names and subnet (playbooks/isolated_http.yml, as molecule's
converge). For each (H, forks, strategy) the hosts are made anew, so every converge is a first one
(the role's virtualenv installed on every host), and one timed ansible-playbook run converges all of
them; then the hosts are ended with everything in them. What runs once on the controller (the wheel's
build and the services' checks) runs once per run whatever H: the run's output is kept to show it.
Writes fleet.jsonl (one record per run, with the load), fleet.md and fleet.png into --out.

``--vm RELEASE-ARCH`` (e.g. bookworm-amd64) adds a qemu guest to every run's inventory, reached over
SSH like molecule's: booted afresh from its image's overlay before each run (untimed, so that each
converge is a first one there too) and stopped after. Under TCG on two CPUs the guest is the slowest
host of the run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from itertools import product
from typing import Any

import playbook

NSHOST_DIR = "/var/tmp/pfe-fleet-bench"
STRATEGY_PLUGINS = os.path.join(playbook.ROOT, "molecule", "shared", "plugins", "strategy")
EXAMPLE = os.path.join(playbook.ROOT, "playbooks", "isolated_http.yml")


def host_name(i: int) -> str:
    return f"pfb{i}"


VM_RUN_DIR = "/var/tmp/pfe-fleet-bench-vm"
VM_SCRIPTS = os.path.join(playbook.ROOT, "scripts", "vm")


def inventory(hosts: int, guest: dict[str, Any] | None = None) -> dict[str, Any]:
    """H namespace hosts, each with its own service names (fN) and subnet (10.79.N); with ``guest``
    (scripts/vm/boot's instance.json), the guest too (names g1, subnet 10.79.250)."""
    children: dict[str, Any] = {"nshosts": {
        "hosts": {host_name(i): {"isolated_http_prefix": f"f{i}", "isolated_http_subnet": f"10.79.{i}"}
                  for i in range(1, hosts + 1)},
        "vars": {"ansible_connection": "pyforkexec.isolation.nsenter",
                 "ansible_python_interpreter": "/usr/bin/python3"}}}
    if guest is not None:
        children["guests"] = {"hosts": {"pfb-vm": {
            "ansible_host": guest["address"], "ansible_port": guest["port"], "ansible_user": guest["user"],
            "ansible_ssh_private_key_file": guest["identity_file"],
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            "ansible_python_interpreter": "/usr/bin/python3",
            "isolated_http_prefix": "g1", "isolated_http_subnet": "10.79.250"}}}
    return {"all": {"children": children}}


def boot_guest(vm: str) -> dict[str, Any]:
    """A fresh guest RELEASE-ARCH from its cached image (built first if needed): its instance.json."""
    release, arch = vm.rsplit("-", 1)
    env = dict(os.environ, PFE_VM_RELEASE=release, PFE_VM_ARCH=arch)
    done = subprocess.run([os.path.join(VM_SCRIPTS, "boot"), VM_RUN_DIR], env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"scripts/vm/boot {vm} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    with open(os.path.join(VM_RUN_DIR, "instance.json")) as f:
        return json.load(f)


def stop_guest() -> None:
    subprocess.run([os.path.join(VM_SCRIPTS, "stop"), VM_RUN_DIR], check=False, capture_output=True)


def _env(forks: int, strategy: str) -> dict[str, str]:
    return dict(os.environ, ANSIBLE_COLLECTIONS_PATH=playbook.COLLECTIONS, ANSIBLE_FORKS=str(forks),
                ANSIBLE_STRATEGY=strategy, ANSIBLE_STRATEGY_PLUGINS=STRATEGY_PLUGINS,
                ANSIBLE_DEPRECATION_WARNINGS="false", ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="false")


def _playbook(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.monotonic()
    done = subprocess.run([f"{playbook.VENV}/bin/ansible-playbook", *argv], env=env, capture_output=True,
                          text=True, check=False)
    seconds = time.monotonic() - start
    if done.returncode != 0:
        raise RuntimeError(f"ansible-playbook {' '.join(argv)} failed ({done.returncode}):\n"
                           f"{done.stdout[-4000:]}\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def fleet_hosts(hosts: int, state: str) -> None:
    """Make (or end) the namespace hosts, on this machine, untimed."""
    extra = {"pfe_nshosts": [{"name": host_name(i)} for i in range(1, hosts + 1)],
             "pfe_nshost_dir": NSHOST_DIR, "fleet_state": state}
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(extra, f)
        f.flush()
        _playbook(["-i", "localhost,", "-c", "local", "-e", f"@{f.name}",
                   "-e", f"ansible_python_interpreter={sys.executable}",
                   os.path.join(playbook.HERE, "playbooks", "fleet-hosts.yml")], _env(5, "linear"))
    if state == "absent":  # what the example playbook put on the shared filesystem
        for i in range(1, hosts + 1):
            for path in (f"/usr/local/lib/pyforkexec-f{i}", f"/var/lib/pyforkexec-f{i}"):
                shutil.rmtree(path, ignore_errors=True)


def converge(hosts: int, forks: int, strategy: str, guest: dict[str, Any] | None = None) -> tuple[float, str]:
    with tempfile.NamedTemporaryFile("w", suffix=".json") as inv:
        json.dump(inventory(hosts, guest), inv)
        inv.flush()
        return _playbook(["-i", inv.name, EXAMPLE], _env(forks, strategy))


def _once_lines(log: str) -> dict[str, int]:
    """For each task of the run about the wheels, on how many hosts it ran (1: once, on the controller)."""
    counts: dict[str, int] = {}
    task = None
    for line in log.splitlines():
        if line.startswith("TASK ["):
            task = line[6:line.index("]")] if "wheel" in line.lower() else None
            if task is not None:
                counts[task] = 0
        elif task is not None and line.startswith(("ok: [", "changed: [")):
            counts[task] += 1
    return counts


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    records = []
    os.makedirs(args.out, exist_ok=True)
    for hosts, forks, strategy in product(args.hosts, args.forks, args.strategies):
        if forks > max(hosts, 5) and forks != min(args.forks):  # more forks than hosts changes nothing
            continue
        fleet_hosts(hosts, "present")
        try:
            guest = boot_guest(args.vm) if args.vm else None
            load = os.getloadavg()[0]
            seconds, log = converge(hosts, forks, strategy, guest)
        finally:
            if args.vm:
                stop_guest()
            fleet_hosts(hosts, "absent")
        record = {"hosts": hosts, "forks": forks, "strategy": strategy, "vm": args.vm,
                  "seconds": round(seconds, 2), "load_before": load, "load_after": os.getloadavg()[0],
                  "time": time.time(), "once": _once_lines(log)}
        print(json.dumps(record), flush=True)
        with open(os.path.join(args.out, "fleet.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")
        records.append(record)
    return records


def report(records: list[dict[str, Any]], out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[tuple[str, int, str], list[tuple[int, float]]] = {}
    for r in records:
        key = (r["strategy"], r["forks"], r.get("vm") or "")
        series.setdefault(key, []).append((r["hosts"], r["seconds"]))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (strategy, forks, vm), points in sorted(series.items()):
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o",
                label=f"{strategy.replace('_linear', '')}, forks {forks}{f' + {vm} guest' if vm else ''}")
    ax.set_xlabel("namespace hosts converged in one run")
    ax.set_ylabel("first converge, seconds")
    ax.set_title("playbooks/isolated_http.yml (2 services per host) over a fleet")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "fleet.png"), dpi=110)
    header = "| namespace hosts | guest | forks | strategy | converge s | s per host | load before -> after |"
    lines = [header]
    lines.append("|---|---|---|---|---|---|---|")
    for r in sorted(records, key=lambda r: (r.get("vm") or "", r["strategy"], r["forks"], r["hosts"])):
        every = r["hosts"] + (1 if r.get("vm") else 0)
        lines.append(f"| {r['hosts']} | {r.get('vm') or '-'} | {r['forks']} | {r['strategy']} | "
                     f"{r['seconds']:.1f} | {r['seconds'] / every:.2f} | "
                     f"{r['load_before']:.1f} -> {r['load_after']:.1f} |")
    with open(os.path.join(out, "fleet.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ints = lambda s: [int(x) for x in s.split(",")]  # noqa: E731
    ap.add_argument("--hosts", type=ints, default=[1, 5, 20, 50])
    ap.add_argument("--forks", type=ints, default=[5, 20, 50])
    ap.add_argument("--strategies", type=lambda s: s.split(","), default=["linear", "mitogen_linear"])
    ap.add_argument("--vm", default="", help="a qemu guest in each run too: RELEASE-ARCH (bookworm-amd64)")
    ap.add_argument("--out", default=os.path.join(playbook.ROOT, "benchmarks", "results", "collection",
                                                  "fleet"))
    args = ap.parse_args()
    report(measure(args), args.out)


if __name__ == "__main__":
    main()
