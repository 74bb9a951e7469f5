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
Writes fleet.jsonl (one record per run, with the load), fleet.md and fleet.png into --out. A converge
that fails is recorded as failed, with the hosts its recap counts unreachable or failed, and its whole
output is kept beside them (failed-*.log); the next run goes on.

``--vm RELEASE-ARCH`` (e.g. bookworm-amd64) adds a qemu guest to every run's inventory, reached over
SSH like molecule's: booted afresh from its image's overlay before each run (untimed, so that each
converge is a first one there too) and stopped after. Under TCG on two CPUs the guest is the slowest
host of the run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from itertools import product
from typing import Any

import playbook

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/, for machine
from machine import describe, labels

NSHOST_DIR = "/var/tmp/pfe-fleet-bench"
STRATEGY_PLUGINS = os.path.join(playbook.ROOT, "molecule", "shared", "plugins", "strategy")
EXAMPLE = os.path.join(playbook.ROOT, "playbooks", "isolated_http.yml")


def host_name(i: int) -> str:
    return f"pfb{i}"


VM_RUN_DIR = "/var/tmp/pfe-fleet-bench-vm"
# Seconds for the SSH connection to the guest, as molecule's vm scenario gives it: an emulated guest's
# handshake beside 20 other hosts' work on two CPUs takes more than Ansible's default 10 (mitogen's
# first connection timed out there).
GUEST_CONNECT_TIMEOUT = 30
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
            "ansible_timeout": GUEST_CONNECT_TIMEOUT,
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
        raise PlaybookFailed(argv, done.returncode, done.stdout, done.stderr)
    return seconds, done.stdout


class PlaybookFailed(RuntimeError):
    """An ansible-playbook run that failed: its status and whole output, kept for the record."""

    def __init__(self, argv: list[str], status: int, stdout: str, stderr: str) -> None:
        super().__init__(f"ansible-playbook {' '.join(argv)} failed ({status}):\n{stdout[-4000:]}\n"
                         f"{stderr[-2000:]}")
        self.status, self.stdout, self.stderr = status, stdout, stderr


# "pfb-vm   : ok=22   changed=9    unreachable=1    failed=0 ...": a host's line of the play recap
_RECAP = re.compile(r"^(\S+)\s+: ok=\d+\s+changed=\d+\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def recap_trouble(output: str) -> dict[str, list[str]]:
    """The hosts the play recap of ``output`` counts unreachable, and those it counts failed."""
    trouble: dict[str, list[str]] = {"unreachable": [], "failed": []}
    for host, unreachable, failed in _RECAP.findall(output):
        if int(unreachable):
            trouble["unreachable"].append(host)
        if int(failed):
            trouble["failed"].append(host)
    return trouble


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


def converge(hosts: int, forks: int, strategy: str, guest: dict[str, Any] | None = None
             ) -> tuple[float, str, list[tuple[str, float]]]:
    """One timed run of the example playbook over the fleet: its seconds, its output, and each task's
    seconds (from Ansible's own log, ``ANSIBLE_LOG_PATH``, which stamps every line)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as inv, \
            tempfile.NamedTemporaryFile("r", suffix=".log") as log:
        json.dump(inventory(hosts, guest), inv)
        inv.flush()
        env = dict(_env(forks, strategy), ANSIBLE_LOG_PATH=log.name)
        seconds, out = _playbook(["-i", inv.name, EXAMPLE], env)
        return seconds, out, task_seconds(log.read())


# "2026-12-03 09:00:00,500 p=1 u=root n=ansible INFO| TASK [role : name] ****": a banner's stamp, kind, name
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*?\| "
                    r"(?:(TASK|RUNNING HANDLER) \[(.*)\]|PLAY RECAP) \*+$")


def task_seconds(log: str) -> list[tuple[str, float]]:
    """Each task's seconds in a run, from the stamps of Ansible's log: from its banner to the next banner
    (a linear run starts a task on every host at once and waits for all of them)."""
    marks = []
    for line in log.splitlines():
        m = _STAMP.match(line)
        if m:
            stamp = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            marks.append((m.group(3) or "", stamp))  # the recap: the end of the last task
    return [(name, round(after[1] - stamp, 3)) for (name, stamp), after in zip(marks, marks[1:])]


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
        failure = None
        try:
            guest = boot_guest(args.vm) if args.vm else None
            load = os.getloadavg()[0]
            try:
                seconds, log, tasks = converge(hosts, forks, strategy, guest)
            except PlaybookFailed as e:  # kept and named, and the next run goes on
                name = f"failed-{hosts}h-{forks}f-{strategy}{f'-{args.vm}' if args.vm else ''}.log"
                with open(os.path.join(args.out, name), "w") as f:
                    f.write(e.stdout + "\n" + e.stderr)
                failure = {"status": e.status, **recap_trouble(e.stdout), "output": name}
                print(f"converge failed ({e.status}), output in {name}", file=sys.stderr, flush=True)
        finally:
            if args.vm:
                stop_guest()
            fleet_hosts(hosts, "absent")
        record = {"hosts": hosts, "forks": forks, "strategy": strategy, "vm": args.vm,
                  "load_before": load, "load_after": os.getloadavg()[0], "time": time.time(),
                  "machine": describe()}
        if failure is None:
            record.update(seconds=round(seconds, 2), once=_once_lines(log), tasks=tasks)
        else:
            record["failed"] = failure
        print(json.dumps(record), flush=True)
        with open(os.path.join(args.out, "fleet.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")
        records.append(record)
    return records


def _hosts(record: dict[str, Any]) -> int:
    """The hosts a run converged: its namespace hosts, and its guest if it had one."""
    return record["hosts"] + (1 if record.get("vm") else 0)


def report(records: list[dict[str, Any]], out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[tuple[str, int, str], list[tuple[int, float]]] = {}
    for r in records:
        if "failed" in r:
            continue
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
        every = _hosts(r)
        timing = (f"{r['seconds']:.1f} | {r['seconds'] / every:.2f}" if "failed" not in r
                  else f"{failed_text(r['failed'])} | -")
        lines.append(f"| {r['hosts']} | {r.get('vm') or '-'} | {r['forks']} | {r['strategy']} | {timing} | "
                     f"{r['load_before']:.1f} -> {r['load_after']:.1f} |")
    machines = labels(records)
    if machines:  # runs of another machine are not comparable: say which ones each table holds
        lines += ["", f"Machine: {machines}"]
    lines += task_table(records)
    with open(os.path.join(out, "fleet.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def failed_text(failure: dict[str, Any]) -> str:
    """A failed run's cell: its status, the hosts the recap names, and where its output is."""
    names = [f"{kind} {', '.join(hosts)}" for kind in ("unreachable", "failed") if (hosts := failure[kind])]
    return f"failed ({failure['status']}{': ' if names else ''}{'; '.join(names)}; {failure['output']})"


def task_table(records: list[dict[str, Any]], top: int = 12) -> list[str]:
    """The costliest tasks of the runs that recorded them (seconds per host, per run), most first."""
    timed = sorted((r for r in records if r.get("tasks")),
                   key=lambda r: (r.get("vm") or "", r["strategy"], r["forks"], r["hosts"]))
    if not timed:
        return []
    per_host: dict[str, dict[int, float]] = {}
    for i, r in enumerate(timed):
        every = _hosts(r)
        for name, seconds in r["tasks"]:
            cell = per_host.setdefault(name, {})
            cell[i] = cell.get(i, 0.0) + seconds / every  # a task included twice: both times
    worst = sorted(per_host, key=lambda name: -max(per_host[name].values()))[:top]
    heads = [f"{r['hosts']} hosts, forks {r['forks']}, {r['strategy']}" for r in timed]
    lines = ["", "Seconds per host of the costliest tasks (from the banner of each task to the next):", "",
             "| task | " + " | ".join(heads) + " |", "|---|" + "---|" * len(timed)]
    for name in worst:
        cells = [f"{per_host[name][i]:.2f}" if i in per_host[name] else "-" for i in range(len(timed))]
        lines.append(f"| {name or '(recap)'} | " + " | ".join(cells) + " |")
    return lines


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
