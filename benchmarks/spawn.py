#!/usr/bin/env python3
"""Per-spawn latency (spawn + wait of /bin/true) of pyforkexec.fork_exec against subprocess, util-linux
unshare, a C clone+execve loop and Go's syscall.ForkExec, for four namespace rows, from a small parent
and from one holding 4 GiB of touched memory. See benchmarks/README.md.

    .venv/bin/python benchmarks/spawn.py [--quick] [--json OUT]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Optional

import workers as W
from py_spawn import attr_for

import pyforkexec as fe

TRUE = "/bin/true"  # the default --program
Stats = dict[str, float]  # median_us, p25_us, p90_us, min_us, n
GIB = 1 << 30
MIB = 1 << 20
NS4 = fe.CLONE_NEWUTS | fe.CLONE_NEWIPC | fe.CLONE_NEWNS | fe.CLONE_NEWPID
# unshare(1) options for each clone flag; --propagation unchanged: pyforkexec and Go do not remount /
# for a CLONE_NEWNS clone flag (only for Unshareflags), so neither may unshare.
UNSHARE_OPTS = {fe.CLONE_NEWUTS: ["--uts"], fe.CLONE_NEWIPC: ["--ipc"],
                fe.CLONE_NEWNS: ["--mount", "--propagation", "unchanged"], fe.CLONE_NEWPID: ["--pid"],
                fe.CLONE_NEWUSER: ["--user", "--map-root-user"], fe.CLONE_NEWNET: ["--net"]}


@dataclass
class Row:
    key: str
    title: str
    flags: int

    def unshare_argv(self, unshare: str, fork: bool, prog: str) -> list[str]:
        opts = [o for flag, more in UNSHARE_OPTS.items() if self.flags & flag for o in more]
        return [unshare, *opts, *(["--fork"] if fork else []), prog]


ROWS = [
    Row("none", "no namespaces", 0),
    Row("ns4", "UTS+IPC+NS+PID", int(NS4)),
    Row("user", "UTS+IPC+NS+PID+USER (root map)", int(NS4 | fe.CLONE_NEWUSER)),
    Row("net", "UTS+IPC+NS+PID+USER+NET", int(NS4 | fe.CLONE_NEWUSER | fe.CLONE_NEWNET)),
]

# Contenders, in table order: (key, label). "subprocess" and "C unshare --fork" are the ones whose
# child ends up in every namespace of the row; without --fork, /bin/true is not in the new PID namespace.
CONTENDERS = [
    ("fork_exec", "pyforkexec.fork_exec + os.waitpid"),
    ("subprocess", "subprocess.Popen().wait()"),
    ("subprocess-nofork", "subprocess.Popen(unshare, no --fork)"),
    ("c-clone", "C clone(CLONE_VM) loop (reference)"),
    ("c-fork", "C clone without CLONE_VM, copying"),
    ("c-unshare", "C loop -> unshare --fork"),
    ("c-unshare-nofork", "C loop -> unshare, no --fork"),
    ("go", "Go syscall.ForkExec + Wait4"),
]
LABELS = dict(CONTENDERS)
REFERENCE = "c-clone"


@dataclass
class Workers:
    """The processes that spawn for one phase: Python (fork_exec, subprocess), C, and Go if built."""

    py: W.Worker
    c: W.Worker
    go: Optional[W.Worker]

    def all(self) -> list[W.Worker]:
        return [w for w in (self.py, self.c, self.go) if w is not None]


@dataclass
class Cell:
    phase: str
    row: Row
    contender: str
    worker: W.Worker
    command: tuple[int, str, list[str]]  # flags, mode, argv
    times: list[int] = field(default_factory=list)
    spent: float = 0.0

    def run(self, n: int) -> None:
        t0 = time.perf_counter()
        self.times += self.worker.run(n, *self.command)
        self.spent += time.perf_counter() - t0


def make_cells(phase: str, rows: list[Row], w: Workers, unshare: Optional[str], prog: str) -> list[Cell]:
    cells = []
    for row in rows:
        commands: dict[str, tuple[W.Worker, tuple[int, str, list[str]]]] = {
            "fork_exec": (w.py, (row.flags, "fork_exec", [prog]))}
        if not row.flags:
            commands["subprocess"] = (w.py, (0, "popen", [prog]))
        elif unshare:
            commands["subprocess"] = (w.py, (0, "popen", row.unshare_argv(unshare, True, prog)))
            commands["subprocess-nofork"] = (w.py, (0, "popen", row.unshare_argv(unshare, False, prog)))
        commands["c-clone"] = (w.c, (row.flags, "vm", [prog]))
        commands["c-fork"] = (w.c, (row.flags, "fork", [prog]))
        if row.flags and unshare:
            commands["c-unshare"] = (w.c, (0, "vm", row.unshare_argv(unshare, True, prog)))
            commands["c-unshare-nofork"] = (w.c, (0, "vm", row.unshare_argv(unshare, False, prog)))
        if w.go is not None:
            commands["go"] = (w.go, (row.flags, "-", [prog]))
        cells += [Cell(phase, row, key, worker, cmd) for key, (worker, cmd) in commands.items()]
    return cells


def measure(cells: list[Cell], iterations: int, batch: int, cell_seconds: float, rng: random.Random) -> None:
    """Round-robin in batches, in a new random order each round, until every cell has `iterations`
    spawns or has used its time budget (slow cells, such as copying forks of a big parent, stop early)."""
    active = list(cells)
    while active:
        rng.shuffle(active)
        for cell in active:
            cell.run(min(batch, iterations - len(cell.times)))
        active = [c for c in active if len(c.times) < iterations and c.spent < cell_seconds]


def stats(times: list[int]) -> Stats:
    s = sorted(times)
    return {"n": len(s), "median_us": statistics.median(s) / 1e3, "p25_us": s[int(0.25 * (len(s) - 1))] / 1e3,
            "p90_us": s[int(0.9 * (len(s) - 1))] / 1e3, "min_us": s[0] / 1e3}


def usable_rows(rows: list[Row], prog: str) -> tuple[list[Row], dict[str, str]]:
    """Rows whose namespaces this process may create (one fork_exec each), and why the others are not."""
    ok, skipped = [], {}
    for row in rows:
        try:
            os.waitpid(fe.fork_exec(prog, [prog], attr_for(row.flags)), 0)
            ok.append(row)
        except OSError as e:
            skipped[row.key] = f"fork_exec failed: {e}"
    return ok, skipped


def pick_memory(want: int, holders: int, notes: list[str]) -> int:
    """`want` bytes per holder if MemAvailable allows it (keeping 1 GiB free), else what fits."""
    if want <= 0:
        return 0
    avail = W.mem_available()
    fits = (avail - GIB) // holders // (256 * MIB) * (256 * MIB)
    if fits >= want:
        return want
    if fits < 512 * MIB:
        notes.append(f"big-parent rows skipped: MemAvailable {avail / GIB:.1f} GiB cannot hold "
                     f"{holders} x {want / GIB:g} GiB")
        return 0
    notes.append(f"big parent scaled down from {want / GIB:g} GiB to {fits / GIB:g} GiB: MemAvailable "
                 f"{avail / GIB:.1f} GiB shared by {holders} holders")
    return fits


def cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def size_label(size: int) -> str:
    return f"{size / GIB:g} GiB" if size >= GIB else f"{size // MIB} MiB"


def fmt(s: Optional[Stats]) -> str:
    return "-" if s is None else f"{s['median_us']:.0f} ({s['p90_us']:.0f})"


def ratio(a: Optional[Stats], b: Optional[Stats], key: str = "median_us") -> Optional[float]:
    return None if a is None or b is None else a[key] / b[key]


def fmt_ratio(r: Optional[float]) -> str:
    return "-" if r is None else f"{r:.2f}"


def report(results: dict[str, dict[str, dict[str, Stats]]], phases: list[str]) -> str:
    """The markdown tables: every contender side by side, then the issue's targets for fork_exec."""
    head = ["row", "contender"]
    for p in phases:
        head += [f"{p}: median (p90) µs", f"{p}: xC"]
    if len(phases) == 2:
        head.append(f"{phases[1]} / {phases[0]}")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in ROWS:
        for key, label in CONTENDERS:
            cells = [results[p].get(row.key, {}).get(key) for p in phases]
            if all(c is None for c in cells):
                continue
            out = [row.title, label]
            for p, s in zip(phases, cells):
                out += [fmt(s), fmt_ratio(ratio(s, results[p].get(row.key, {}).get(REFERENCE)))]
            if len(phases) == 2:
                out.append(fmt_ratio(ratio(cells[1], cells[0])))
            lines.append("| " + " | ".join(out) + " |")
    lines += ["", f"Targets for fork_exec ({' / '.join(phases)}); ratios of medians, and in parentheses of "
              "25th percentiles, which a noisy machine disturbs less:", ""]
    head = ["row", "fork_exec / C (≤ 1.3)", "fork_exec / subprocess (< 1)", "fork_exec / Go",
            "big / small parent"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in ROWS:
        per = [results[p].get(row.key, {}) for p in phases]
        if not per[0]:
            continue

        def two(a: Optional[Stats], b: Optional[Stats]) -> str:
            r = ratio(a, b)
            return "-" if r is None else f"{r:.2f} ({fmt_ratio(ratio(a, b, 'p25_us'))})"

        def both(other: str, per: list[dict[str, Stats]] = per) -> str:
            return " / ".join(two(r.get("fork_exec"), r.get(other)) for r in per)

        flat = two(per[1].get("fork_exec"), per[0].get("fork_exec")) if len(per) == 2 else "-"
        lines.append(f"| {row.title} | {both(REFERENCE)} | {both('subprocess')} | {both('go')} | {flat} |")
    return "\n".join(lines)


def parse_size(text: str) -> int:
    units = {"k": 1 << 10, "m": MIB, "g": GIB}
    t = text.strip().lower().rstrip("ib")
    return int(float(t[:-1]) * units[t[-1]]) if t and t[-1] in units else int(t)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a short run (< 30 s): fewer spawns, a 1 GiB parent")
    ap.add_argument("--iterations", type=int, help="spawns per contender and row (default 400, quick 60)")
    ap.add_argument("--batch", type=int, default=20, help="spawns per contender per round (default 20)")
    ap.add_argument("--cell-seconds", type=float,
                    help="time budget per contender and row (default 3, quick 0.4): copying forks of a big "
                         "parent stop early")
    ap.add_argument("--mem", type=parse_size,
                    help="memory the big parent holds, e.g. 4G, 512M, 0 to skip (default 4G, quick 1G)")
    ap.add_argument("--no-go", action="store_true", help="leave Go out (its first build takes ~10 s)")
    ap.add_argument("--program", default=TRUE,
                    help="what to spawn: /bin/true (default), 'static' (true_static.c: no libc, no loader, "
                         "so the spawn machinery's own cost shows) or any program that exits 0")
    ap.add_argument("--json", metavar="OUT", help="write the raw per-spawn times and the summary here")
    ap.add_argument("--seed", type=int, default=1, help="seed of the round-robin order")
    args = ap.parse_args(argv)
    iterations = args.iterations or (60 if args.quick else 400)
    cell_seconds = args.cell_seconds if args.cell_seconds is not None else (0.4 if args.quick else 3.0)
    want_mem = args.mem if args.mem is not None else (GIB if args.quick else 4 * GIB)
    notes: list[str] = []
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    started = time.monotonic()
    c_bin = W.build_c()
    prog = str(W.build_static_true()) if args.program == "static" else args.program
    go_bin = None
    if args.no_go:
        notes.append("Go left out (--no-go)")
    else:
        try:
            go_bin = W.build_go()
        except W.BuildError as e:
            notes.append(f"Go skipped: {e}")
    unshare = shutil.which("unshare")
    if unshare is None:
        notes.append("util-linux unshare not found: its contenders are skipped")
    rows, skipped = usable_rows(ROWS, prog)
    notes += [f"row {k} skipped: {why}" for k, why in skipped.items()]
    mem = pick_memory(want_mem, 3 if go_bin else 2, notes)
    phases = [("small parent", 0)] + ([(f"{size_label(mem)} parent", mem)] if mem else [])

    def start(phase: str) -> Workers:
        return Workers(W.Worker(f"Python ({phase})", [sys.executable, str(W.HERE / "py_spawn.py")]),
                       W.Worker(f"C ({phase})", [str(c_bin), "-s"]),
                       W.Worker(f"Go ({phase})", [str(go_bin), "-s"]) if go_bin else None)

    pools: list[Workers] = []
    load = {"before": os.getloadavg()}
    try:
        cells = []
        for name, size in phases:
            pools.append(start(name))
            if size:
                t0 = time.monotonic()
                W.hold(size, pools[-1].all())
                log(f"{name}: Python, C{' and Go' if go_bin else ''} workers hold {size_label(size)} each "
                    f"({time.monotonic() - t0:.1f} s to touch)")
            cells += make_cells(name, rows, pools[-1], unshare, prog)
        log(f"{len(cells)} cells (phase x row x contender), up to {iterations} spawns each, round-robin")
        batch = max(1, min(args.batch, iterations))
        measure(cells, iterations, batch, cell_seconds, random.Random(args.seed))
    finally:
        for pool in pools:
            for w in pool.all():
                w.close()
    load["after"] = os.getloadavg()
    raw: dict[str, dict[str, dict[str, list[int]]]] = {}
    results: dict[str, dict[str, dict[str, Stats]]] = {}
    for cell in cells:
        raw.setdefault(cell.phase, {}).setdefault(cell.row.key, {})[cell.contender] = cell.times
        results.setdefault(cell.phase, {}).setdefault(cell.row.key, {})[cell.contender] = stats(cell.times)

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "kernel": platform.release(), "cpu": cpu_model(), "cpus": os.cpu_count(),
        "python": platform.python_version(), "go": W.go_version() if go_bin else None,
        "program": args.program, "uid": os.getuid(), "iterations": iterations, "batch": args.batch,
        "cell_seconds": cell_seconds,
        "memory_bytes": mem, "loadavg": load, "seconds": round(time.monotonic() - started, 1), "notes": notes,
        "rows": {r.key: {"title": r.title, "flags": fe.CloneFlags.describe(r.flags) if r.flags else "0"}
                 for r in ROWS},
        "contenders": LABELS,
    }
    table = report(results, [name for name, _ in phases])
    label = "true_static.c" if args.program == "static" else prog
    print(f"# spawn + wait of {label}: {meta['date']}, kernel {meta['kernel']}, {meta['cpu']} "
          f"x{meta['cpus']}, Python {meta['python']}, {meta['go'] or 'no Go'}\n")
    print(f"{iterations} spawns per cell (fewer when a cell used its {cell_seconds:g} s budget), batches of "
          f"{args.batch}, round-robin; loadavg {load['before'][0]:.2f} -> {load['after'][0]:.2f}; "
          f"{meta['seconds']} s in all. xC = median / median of the C clone loop of the same row.\n")
    print(table)
    for note in notes:
        print(f"\nNote: {note}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "summary": results, "raw_ns": raw}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
