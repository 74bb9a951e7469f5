"""Tables (markdown) and plots (PNG) from what run.py recorded: medians over every round recorded."""

from __future__ import annotations

import json
import os
import statistics
import sys
from collections import defaultdict
from typing import Any, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/, for machine
import machine

CONTENDERS = ("role", "role-exec", "podman", "netns")
# Column headings; role-exec (the role with start_check 0, definitions.ROLE_EXEC) only where recorded.
HEADINGS = {"role": "role", "role-exec": "role, start_check 0", "podman": "podman",
            "netns": "by hand (netns)"}
OPERATIONS = ("converge", "rerun", "removal", "ready")


def _load(out: str) -> list[dict[str, Any]]:
    with open(os.path.join(out, "records.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def _median(values: list[float]) -> Optional[float]:
    return statistics.median(values) if values else None


def _fmt(value: Optional[float], unit: str = "s", scale: float = 1.0) -> str:
    if value is None:
        return "-"
    return f"{value * scale:.2f} {unit}" if unit == "s" else f"{value * scale:.0f} {unit}".strip()


def _ratio(a: Optional[float], b: Optional[float]) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}"


def _per_round(rows: dict[str, list[dict[str, Any]]], a: str, b: str) -> str:
    """The median of ``a``'s time over ``b``'s within each round that recorded both, [min-max]: a round
    slow for every contender (a busy neighbour on a shared machine) moves both alike."""
    first = {r["round"]: r["seconds"] for r in rows[a]}
    ratios = sorted(first[r["round"]] / r["seconds"] for r in rows[b] if r["round"] in first and r["seconds"])
    if not ratios:
        return "-"
    return f"{statistics.median(ratios):.2f} [{ratios[0]:.2f}-{ratios[-1]:.2f}]"


def _operations(records: list[dict[str, Any]]) -> tuple[list[str], dict[tuple[str, int, str], list[dict]]]:
    by: dict[tuple[str, int, str], list[dict]] = defaultdict(list)
    for r in records:
        by[(r["op"], r["n"], r["contender"])].append(r)
    exec_too = any(r["contender"] == "role-exec" for r in records if r["op"] in OPERATIONS)
    shown = [c for c in CONTENDERS if c != "role-exec" or exec_too]
    ratios = [("role", "podman"), *([("role-exec", "podman")] if exec_too else [])]
    heading = [HEADINGS[c] for c in shown]
    for a, b in ratios:
        heading += [f"{a} / {b}", "per round"]
    heading += ["role / by hand", "rounds", "load (1 min)"]
    lines = [f"| operation | N | {' | '.join(heading)} |", "| --- " * (2 + len(heading)) + "|"]
    sizes = sorted({r["n"] for r in records if r["op"] in OPERATIONS})
    for op in OPERATIONS:
        for n in sizes:
            rows = {c: by.get((op, n, c), []) for c in shown}
            med = {c: _median([r["seconds"] for r in rows[c]]) for c in shown}
            loads = [r["load"] for c in shown for r in rows[c]]
            changed = {c: {r.get("changed") for r in rows[c]} for c in shown}
            noted = {c for c in shown if op == "rerun" and rows[c] and changed[c] != {0}}
            failed = {c: len(by.get((f"{op}-failed", n, c), [])) for c in shown}
            cells = [_fmt(med[c]) + (f" (changed {sorted(changed[c])})" if c in noted else "")
                     + (f" ({failed[c]} failed)" if failed[c] else "") for c in shown]
            for a, b in ratios:
                cells += [_ratio(med[a], med[b]), _per_round(rows, a, b)]
            cells += [_ratio(med["role"], med["netns"]), str(min(len(v) for v in rows.values())),
                      "-" if not loads else f"{_median(loads):.1f}"]
            lines.append(f"| {op} | {n} | {' | '.join(cells)} |")
    return lines, by


def _floor(records: list[dict[str, Any]]) -> list[str]:
    """The fixed cost of a run (run.py's floor), against the goals' budget at each N: 0.5x podman's
    converge and removal, 0.3x its re-run."""
    floor = [r["seconds"] for r in records if r["op"] == "floor"]
    if not floor:
        return []
    lines = [f"One ansible-playbook run of one `ping` task (playbooks/floor.yml), the least any converge "
             f"pays: {_fmt(_median(floor))} (median of {len(floor)}). The goals' budget for the role, "
             "from podman's medians:", "",
             "| N | 0.5 x podman converge | 0.3 x podman re-run | 0.5 x podman removal | floor |",
             "| --- | --- | --- | --- | --- |"]
    for n in sorted({r["n"] for r in records if r["op"] == "floor"}):
        podman = {op: _median([r["seconds"] for r in records
                               if r["op"] == op and r["n"] == n and r["contender"] == "podman"])
                  for op in ("converge", "rerun", "removal")}
        budget = [None if podman[op] is None else podman[op] * k
                  for op, k in (("converge", 0.5), ("rerun", 0.3), ("removal", 0.5))]
        at_n = _median([r["seconds"] for r in records if r["op"] == "floor" and r["n"] == n])
        lines.append(f"| {n} | {' | '.join(_fmt(b) for b in budget)} | {_fmt(at_n)} |")
    return lines


def _memory(records: list[dict[str, Any]]) -> tuple[list[str], dict[str, dict[str, float]]]:
    mem: dict[str, dict[str, float]] = {}
    for c in CONTENDERS:
        rows = [r for r in records if r["op"] == "memory" and r["contender"] == c]
        if rows:
            mem[c] = {"rss": statistics.median(r["keeper_rss_kib"] for r in rows),
                      "pss": statistics.median(r["keeper_pss_kib"] for r in rows),
                      "service_rss": statistics.median(r["service_kib"][0] for r in rows), "count": len(rows)}
    keeper = {"role": "pyforkexec daemon", "podman": "conmon", "netns": "unshare (its --fork parent)"}
    lines = ["| contender | kept per service | RSS | PSS | the service's own RSS | services sampled |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {c} | {keeper[c]} | {m['rss']:.0f} KiB | {m['pss']:.0f} KiB | {m['service_rss']:.0f} KiB | "
              f"{m['count']:.0f} |" for c, m in mem.items()]
    if "role" in mem and "podman" in mem:
        lines.append(f"\nrole / podman: RSS {mem['role']['rss'] / mem['podman']['rss']:.1f}, "
                     f"PSS {mem['role']['pss'] / mem['podman']['pss']:.1f}")
    return lines, mem


def _restarts(records: list[dict[str, Any]]) -> list[str]:
    lines = ["| contender | N | median | min | max | came back / killed |", "| --- " * 6 + "|"]
    for c in ("role", "podman"):
        for n in sorted({r["n"] for r in records if r["op"] == "restart" and r["contender"] == c}):
            rows = [r["seconds"] for r in records
                    if r["op"] == "restart" and r["contender"] == c and r["n"] == n]
            ok = [s for s in rows if s is not None]
            lines.append(f"| {c} | {n} | {_fmt(_median(ok))} | {_fmt(min(ok) if ok else None)} | "
                         f"{_fmt(max(ok) if ok else None)} | {len(ok)} / {len(rows)} |")
    return lines


def _slow_ready(records: list[dict[str, Any]]) -> list[str]:
    """Each converge after which services took over run.py's SLOW_READY to answer, with each one's wait."""
    lines = []
    for r in records:
        if r["op"] == "slow-ready":
            waits = ", ".join(f"{w:.2f}" for w in r["waits"])
            lines.append(f"- {r['contender']}, N={r['n']}, round {r['round']}: waits {waits} s; slow: "
                         f"{', '.join(r['slow_services']) or '-'} (the record in records.jsonl has the "
                         "neighbour table, logs and what was read while it did not answer yet)")
    return lines


def _cold(out: str) -> list[str]:
    path = os.path.join(out, "cold_start.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        cold = json.load(f)
    base = cold["podman run --rm"]["median"]
    lines = ["| command | median | min | max | / podman run | rounds | load (1 min) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {name} | {_fmt(r['median'], 'ms', 1000)} | {_fmt(r['min'], 'ms', 1000)} | "
              f"{_fmt(r['max'], 'ms', 1000)} | {r['median'] / base:.3f} | {r['rounds']} | {r['load']:.2f} |"
              for name, r in cold.items()]
    return lines


def _plots(out: str, by: dict[tuple[str, int, str], list[dict]], mem: dict[str, dict[str, float]]) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, op in zip(axes, ("converge", "rerun", "removal")):
        for c in CONTENDERS:
            points = sorted((n, statistics.median(r["seconds"] for r in rows))
                            for (o, n, cc), rows in by.items() if o == op and cc == c)
            if points:
                ax.plot(*zip(*points), marker="o", label=c)
        ax.set(title=op, xlabel="services (N)", ylabel="seconds (median)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "operations.png"), dpi=100)
    plt.close(fig)
    if mem:
        fig, ax = plt.subplots(figsize=(6, 4))
        names = list(mem)
        xs = range(len(names))
        ax.bar([x - 0.2 for x in xs], [mem[c]["rss"] / 1024 for c in names], 0.4, label="RSS")
        ax.bar([x + 0.2 for x in xs], [mem[c]["pss"] / 1024 for c in names], 0.4, label="PSS")
        ax.set_xticks(list(xs), names)
        ax.set(title="memory kept per service besides the service", ylabel="MiB")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out, "memory.png"), dpi=100)
        plt.close(fig)


def write(out: str) -> str:
    records = _load(out)
    ops, by = _operations(records)
    mem_lines, mem = _memory(records)
    install = [r["seconds"] for r in records if r["op"] == "install"]
    text = "\n".join([
        "# The role vs containers.podman vs by hand (ip_netns + shell)", "",
        "Seconds of one ansible-playbook run (median over rounds); `ready`: after the converge returned,"
        " until every service answered; `per round`: the median of role / podman within each round that"
        " recorded both [min-max]; `role, start_check 0` (where recorded): the same role with"
        " `isolated_service_start_check: 0`, a start counted at the service's execve as podman_container"
        " counts it, where the role's default also watches each started service stay up for 0.5 s."
        " Written by benchmarks/collection/report.py.", "",
        *([f"Machine: {m}", ""] if (m := machine.labels(records)) else []), *ops, "",
        f"The role's runtime (its virtualenv) installed once: {_fmt(_median(install))} (not above).", "",
        *(["## The fixed cost of a run", "", *floor, ""] if (floor := _floor(records)) else []),
        *(["## Slow to answer after a converge", "", *slow, ""] if (slow := _slow_ready(records)) else []),
        "## Restart after SIGKILL of the service's process, until it answers again", "",
        *_restarts(records), "",
        "## Memory", "", *mem_lines, "", "## Cold start of one isolated /bin/true", "", *_cold(out), ""])
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text)
    _plots(out, by, mem)
    return text


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("directory", nargs="?", help="where records.jsonl is and the report goes "
                        "(default benchmarks/results/collection)",
                        default=os.path.join(os.path.dirname(__file__), os.pardir, "results", "collection"))
    print(write(parser.parse_args().directory))


if __name__ == "__main__":
    main()
