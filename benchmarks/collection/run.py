"""Issue 15's side-by-side: N HTTP services deployed by the role (with its default start check, and with
start_check 0: definitions.ROLE_EXEC), by containers.podman, and by hand.

Usage (as root, after setup.sh): .venv/bin/python benchmarks/collection/run.py [--sizes 1,5,10]
[--rounds 3] [--restarts 3] [--cold-rounds 20]. Each measurement is appended to
benchmarks/results/collection/records.jsonl as soon as it is taken (a later run adds rounds; report.py
takes medians over all of them), then report.py writes the tables and plots. Everything the benchmark
makes (services, accounts, the role's virtualenv, containers, the podman network and image, netns,
veths, bridges) is removed at the end, and when it fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cold_start
import definitions as d
import image
import playbook
import podman_leaks
import probes
import report

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/, for procmem and machine
from machine import describe
from procmem import rss_pss_kib

RESULTS = os.path.join(playbook.ROOT, "benchmarks", "results", "collection")
RESTART_TIMEOUT = 15.0
SLOW_READY = 1.0


def _record(out: str, **fields: Any) -> None:
    fields.update(load=os.getloadavg()[0], time=time.time(), machine=describe())
    with open(os.path.join(out, "records.jsonl"), "a") as f:
        f.write(json.dumps(fields) + "\n")


def _deploy(c: d.Contender, n: int, state: str, img: str, out: str, op: str, rnd: int) -> None:
    variables = d.contender_vars(c, n, state, img)
    try:
        run = playbook.run(c.playbook, variables)
    except RuntimeError as e:
        if state != "absent":
            raise
        # recorded, then tried once more (untimed): the next round needs a clean host
        _record(out, contender=c.name, n=n, round=rnd, op=f"{op}-failed", error=str(e)[-1500:])
        playbook.run(c.playbook, variables)
        return
    _record(out, contender=c.name, n=n, round=rnd, op=op, seconds=run.seconds, changed=run.changed)


def _ready(c: d.Contender, n: int, out: str, rnd: int) -> None:
    """Seconds from the converge's end until every service answers. A slow one (over SLOW_READY seconds:
    a service answers within milliseconds of a converge) is recorded with what may say why, read while
    the first service that does not answer within SLOW_READY still does not (``early``) and once all
    answered."""
    start = time.monotonic()
    waits, early = [], None
    for i in range(1, n + 1):
        began = time.monotonic()
        waited = probes.wait_answers(d.address(c, i), SLOW_READY)
        if waited is None:
            early = early or dict(probes.diagnose(c, [i]), service=d.service_name(c, i))
            waited = probes.wait_answers(d.address(c, i), 30)
            if waited is None:
                raise RuntimeError(f"{d.service_name(c, i)} does not answer at {d.address(c, i)}:{d.PORT}")
        waits.append(round(time.monotonic() - began, 3))
    seconds = time.monotonic() - start
    _record(out, contender=c.name, n=n, round=rnd, op="ready", seconds=seconds)
    if seconds > SLOW_READY:
        _record(out, contender=c.name, n=n, round=rnd, op="slow-ready", waits=waits, early=early,
                **probes.diagnose(c, [i for i, w in enumerate(waits, 1) if w > SLOW_READY / n]))


def _probe(c: d.Contender, n: int, out: str, rnd: int, restarts: int) -> None:
    """Memory kept per service, then restart latency after SIGKILL."""
    for i in range(1, n + 1):
        procs = probes.processes(c, i)
        assert procs is not None
        keeper = [rss_pss_kib(p) for p in procs.keeper]
        _record(out, contender=c.name, n=n, round=rnd, op="memory",
                service_kib=rss_pss_kib(procs.service), keeper_rss_kib=sum(k[0] for k in keeper),
                keeper_pss_kib=sum(k[1] for k in keeper))
    if c is d.NETNS:  # nothing restarts a service started by hand
        return
    for _ in range(restarts):
        seconds = probes.restart_seconds(c, 1, RESTART_TIMEOUT)
        _record(out, contender=c.name, n=n, round=rnd, op="restart", seconds=seconds)
        if seconds is None:  # what keeps it did not bring it back: no second try
            break


def _floor(n: int, out: str, rnd: int) -> None:
    """One playbook run of one module round trip (playbooks/floor.yml): what every run pays."""
    run = playbook.run("floor", {})
    _record(out, contender="floor", n=n, round=rnd, op="floor", seconds=run.seconds, changed=run.changed)


def _round(n: int, rnd: int, img: str, out: str, restarts: int) -> None:
    _floor(n, out, rnd)
    turn = (rnd + n) % len(d.CONTENDERS)
    for c in d.CONTENDERS[turn:] + d.CONTENDERS[:turn]:
        print(f"N={n} round {rnd}: {c.name}", flush=True)
        _deploy(c, n, "present", img, out, "converge", rnd)
        _ready(c, n, out, rnd)
        _deploy(c, n, "present", img, out, "rerun", rnd)
        if rnd == 0 and c is not d.ROLE_EXEC:  # after the re-run: a failed restart would leave it something
            _probe(c, n, out, rnd, restarts)  # to do; ROLE_EXEC's daemons and restarts are ROLE's
        _deploy(c, n, "absent", img, out, "removal", rnd)
        if c is d.PODMAN and (leaks := podman_leaks.remove(c.subnet)):
            _record(out, contender=c.name, n=n, round=rnd, op="podman-leak", removed=leaks)


def cleanup(n: int) -> None:
    """Remove what any contender may have left, the role's runtime and accounts, and the image."""
    for c in d.CONTENDERS:
        variables = d.contender_vars(c, n, "absent", image.IMAGE)
        if c in d.ROLES:  # the runtime goes with the first, the accounts with each
            variables["isolated_service_remove_runtime"] = True
        try:
            playbook.run(c.playbook, variables)
        except RuntimeError as e:
            print(f"cleanup of {c.name}: {e}", flush=True)
    podman_leaks.remove(d.PODMAN.subnet)
    image.remove_image()


def leftovers() -> list[str]:
    """Whatever of the benchmark's names the host still has: links, netns, containers."""
    env = dict(os.environ, **playbook.PODMAN_ENV)
    found = []
    marks = ("pfb-", *(f"{c.subnet}." for c in d.CONTENDERS))
    for argv in (["ip", "-br", "addr"], ["ip", "netns"], ["podman", "ps", "-a", "--format", "{{.Names}}"],
                 ["podman", "network", "ls", "--format", "{{.Name}}"], ["getent", "passwd"],
                 ["iptables-save"], ["podman", "images", "--format", "{{.Repository}}"]):
        out = subprocess.run(argv, capture_output=True, text=True, env=env, check=False).stdout
        found += [f"{' '.join(argv[:2])}: {line}" for line in out.splitlines()
                  if any(m in line for m in marks) or "pfb-python" in line]
    return found + [p for p in (d.ROLE_VENV,) if os.path.exists(p)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,5,10")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--first-round", type=int, default=0, help="memory and restarts in round 0 only")
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--cold-rounds", type=int, default=20)
    parser.add_argument("--out", default=RESULTS)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    os.makedirs(args.out, exist_ok=True)
    try:
        img = image.ensure_image()
        if args.cold_rounds:
            with open(os.path.join(args.out, "cold_start.json"), "w") as f:
                json.dump(cold_start.measure(img, args.cold_rounds), f, indent=1)
        # the role's runtime (its virtualenv) once, as podman's package was installed once: timed apart
        _deploy(d.ROLE, 1, "present", img, args.out, "install", 0)
        _deploy(d.ROLE, 1, "absent", img, args.out, "install-removal", 0)
        for rnd in range(args.first_round, args.first_round + args.rounds):
            for n in sizes:
                _round(n, rnd, img, args.out, args.restarts)
    finally:
        cleanup(max(sizes))
        left = leftovers()
        print("left on the host:" if left else "nothing of the benchmark left on the host", *left, sep="\n")
    report.write(args.out)


if __name__ == "__main__":
    main()
