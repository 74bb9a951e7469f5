#!/usr/bin/env python3
"""Per-spawn latency (spawn + wait of /bin/true) of pyforkexec.fork_exec and of a prepared spawn
(pyforkexec.prepare) against subprocess, util-linux unshare, a C clone+execve loop and Go's
syscall.ForkExec, for four namespace rows, from a small parent and from parents holding 1 and 4 GiB of
touched memory. Rounds: in each, the contenders of one row and parent run one after the other (a cell
each, in a new random order), so the per-round ratio to the C loop compares neighbours in time; the
tables give the median of the per-round ratios and their spread. See benchmarks/README.md.

    .venv/bin/python benchmarks/spawn.py [--quick] [--rounds 7] [--json OUT]
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
from typing import Callable, Optional

import workers as W
from machine import cpu_times, describe, steal_share
from py_spawn import attr_for

import pyforkexec as fe

TRUE = "/bin/true"  # the default --program
Stats = dict[str, float]  # median_us, p25_us, p90_us, min_us, n; and against the C loop: xc, xc_min, xc_max
GIB = 1 << 30
MIB = 1 << 20
NS4 = fe.CLONE_NEWUTS | fe.CLONE_NEWIPC | fe.CLONE_NEWNS | fe.CLONE_NEWPID
# unshare(1) options for each clone flag; --propagation unchanged: Go, and pyforkexec asked for
# "unchanged" (py_spawn.new_attr), do not remount / for a CLONE_NEWNS clone flag (only for
# Unshareflags), so neither may unshare.
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
    ("fork_exec-new", "pyforkexec.fork_exec, a new ProcAttr each spawn, + os.waitpid"),
    ("prepared", "pyforkexec.prepare(...).fork_exec() + os.waitpid"),
    ("python-floor", "Python's floor: the extension's C call on the prepared plan + os.waitpid"),
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
WARMUP = 3  # spawns of each cell before the rounds, not counted
# the goals, median of the per-round ratios to C
GOALS = {"fork_exec": 1.05, "fork_exec-new": 1.05, "prepared": 1.02}


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
    rounds: list[list[int]] = field(default_factory=list)  # the per-spawn times of each round, in ns
    cpu_rounds: list[float] = field(default_factory=list)  # each round's CPU ns per spawn (worker's cgroup)

    @property
    def times(self) -> list[int]:
        return [t for r in self.rounds for t in r]

    def run_round(self, n: int, batch: int, budget: float) -> None:
        """Up to ``n`` spawns in batches, stopping early once ``budget`` seconds are spent (slow cells,
        such as copying forks of a big parent)."""
        times: list[int] = []
        meter = self.worker.meter
        cpu0 = meter.read_ns() if meter is not None else 0
        t0 = time.perf_counter()
        while len(times) < n and time.perf_counter() - t0 < budget:
            times += self.worker.run(min(batch, n - len(times)), *self.command)
        self.rounds.append(times)
        if meter is not None and times:
            self.cpu_rounds.append((meter.read_ns() - cpu0) / len(times))


def make_cells(phase: str, rows: list[Row], w: Workers, unshare: Optional[str], prog: str,
               contenders: set[str]) -> list[Cell]:
    cells = []
    for row in rows:
        commands: dict[str, tuple[W.Worker, tuple[int, str, list[str]]]] = {
            "fork_exec": (w.py, (row.flags, "fork_exec", [prog])),
            "fork_exec-new": (w.py, (row.flags, "fork_exec_new", [prog])),
            "prepared": (w.py, (row.flags, "prepared", [prog])),
            "python-floor": (w.py, (row.flags, "floor", [prog]))}
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
        cells += [Cell(phase, row, key, worker, cmd) for key, (worker, cmd) in commands.items()
                  if key in contenders or key == REFERENCE]
    return cells


def measure(cells: list[Cell], rounds: int, iterations: int, batch: int, cell_seconds: float,
            rng: random.Random, log: Callable[[str], None]) -> None:
    """``rounds`` rounds; in each, the groups (phase x row) in a random order, and within a group its
    cells one after the other in a random order, each running its ``iterations`` spawns (or its time
    budget) at once: the C loop and every contender of a row alternate cell by cell. Each cell spawns
    WARMUP times first, uncounted."""
    groups: dict[tuple[str, str], list[Cell]] = {}
    for cell in cells:
        groups.setdefault((cell.phase, cell.row.key), []).append(cell)
    order = list(groups.values())
    for cell in cells:  # a first request of each, not counted: the worker's imports, prepare(), first faults
        cell.worker.run(WARMUP, *cell.command)
    for n in range(rounds):
        t0 = time.monotonic()
        rng.shuffle(order)
        for group in order:
            rng.shuffle(group)
            for cell in group:
                cell.run_round(iterations, batch, cell_seconds)
        log(f"round {n + 1}/{rounds}: {time.monotonic() - t0:.1f} s, loadavg {os.getloadavg()[0]:.2f}")


def stats(cell: Cell, reference: Optional[Cell]) -> Stats:
    """The cell's spawns pooled over rounds, and the median and range of its per-round ratio to the
    reference's median of the same round."""
    s = sorted(cell.times)
    out = {"n": len(s), "median_us": statistics.median(s) / 1e3, "p25_us": s[int(0.25 * (len(s) - 1))] / 1e3,
           "p90_us": s[int(0.9 * (len(s) - 1))] / 1e3, "min_us": s[0] / 1e3}
    if reference is not None:
        per_round = [statistics.median(a) / statistics.median(b)
                     for a, b in zip(cell.rounds, reference.rounds) if a and b]
        out.update(xc=statistics.median(per_round), xc_min=min(per_round), xc_max=max(per_round),
                   xc_rounds=per_round)
    if cell.cpu_rounds:  # CPU per spawn: the worker and its children, from the worker's cgroup
        out["cpu_us"] = statistics.median(cell.cpu_rounds) / 1e3
        if reference is not None and reference.cpu_rounds:
            per_round = [a / b for a, b in zip(cell.cpu_rounds, reference.cpu_rounds) if b > 0]
            out.update(xc_cpu=statistics.median(per_round), xc_cpu_min=min(per_round),
                       xc_cpu_max=max(per_round), xc_cpu_rounds=per_round)
    return out


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


def pick_memory(wants: list[int], holders: int, notes: list[str]) -> list[int]:
    """The big parents' sizes (each held by ``holders`` workers at once, all phases alive together):
    ``wants`` while MemAvailable allows (keeping 1 GiB free), smallest first, else what fits."""
    avail = W.mem_available()
    left, out = avail - GIB, []
    for want in sorted(w for w in wants if w > 0):
        fits = left // holders // (256 * MIB) * (256 * MIB)
        size = min(want, fits)
        if size < min(want, 512 * MIB):
            notes.append(f"big-parent rows of {size_label(want)} skipped: MemAvailable {avail / GIB:.1f} GiB "
                         f"cannot hold {holders} x {size_label(want)} more")
            continue
        if size < want:
            notes.append(f"big parent scaled down from {size_label(want)} to {size_label(size)}: "
                         f"MemAvailable {avail / GIB:.1f} GiB shared by {holders} holders")
        out.append(size)
        left -= size * holders
    return out


def size_label(size: int) -> str:
    return f"{size / GIB:g} GiB" if size >= GIB else f"{size // MIB} MiB"


def fmt(s: Optional[Stats]) -> str:
    return "-" if s is None else f"{s['median_us']:.0f} ({s['p90_us']:.0f})"


def fmt_xc(s: Optional[Stats], key: str = "xc") -> str:
    """The median of the per-round ratios to the C loop, [min-max] over the rounds (``key`` xc for wall
    time, xc_cpu for CPU time)."""
    return "-" if s is None or key not in s else f"{s[key]:.2f} [{s[f'{key}_min']:.2f}-{s[f'{key}_max']:.2f}]"


def fmt_cpu(s: Optional[Stats]) -> str:
    return "-" if s is None or "cpu_us" not in s else f"{s['cpu_us']:.0f}"


def ratio(a: Optional[Stats], b: Optional[Stats], key: str = "median_us") -> Optional[float]:
    return None if a is None or b is None else a[key] / b[key]


def fmt_ratio(r: Optional[float]) -> str:
    return "-" if r is None else f"{r:.2f}"


def report(results: dict[str, dict[str, dict[str, Stats]]], phases: list[str]) -> str:
    """The markdown tables: every contender side by side, then the issue's goals for pyforkexec."""
    head = ["row", "contender"]
    for p in phases:
        head += [f"{p}: median (p90) µs", f"{p}: xC [spread]"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in ROWS:
        for key, label in CONTENDERS:
            cells = [results[p].get(row.key, {}).get(key) for p in phases]
            if all(c is None for c in cells):
                continue
            out = [row.title, label]
            for s in cells:
                out += [fmt(s), fmt_xc(s)]
            lines.append("| " + " | ".join(out) + " |")
    lines += ["", "Goals: median of the per-round ratios to the C loop [min-max over the rounds]; "
              "fork_exec / subprocess and / Go are ratios of pooled medians.", ""]
    head = ["row", "parent", *(f"{k} / C (≤ {g})" for k, g in GOALS.items()), "fork_exec / subprocess",
            "fork_exec / Go"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in ROWS:
        for p in phases:
            cells = results[p].get(row.key, {})
            if not cells:
                continue
            goals = [fmt_xc(cells.get(k)) for k in GOALS]
            others = [fmt_ratio(ratio(cells.get("fork_exec"), cells.get(k))) for k in ("subprocess", "go")]
            lines.append(f"| {row.title} | {p} | " + " | ".join(goals + others) + " |")
    if any("xc_cpu" in s for phase in results.values() for cells in phase.values() for s in cells.values()):
        lines += ["", "CPU time per spawn (µs, median of rounds): the worker's and its children's, from the "
                  "worker's own cgroup, so the time a spawn waits for a CPU is left out; xC = median of the "
                  "per-round ratios to the C loop's CPU per spawn [min-max].", ""]
        head = ["row", "contender"]
        for p in phases:
            head += [f"{p}: CPU µs", f"{p}: CPU xC [spread]"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in ROWS:
            for key, label in CONTENDERS:
                cells = [results[p].get(row.key, {}).get(key) for p in phases]
                if all(c is None or "cpu_us" not in c for c in cells):
                    continue
                lines.append(f"| {row.title} | {label} | "
                             + " | ".join(x for s in cells for x in (fmt_cpu(s), fmt_xc(s, "xc_cpu"))) + " |")
    return "\n".join(lines)


def parse_size(text: str) -> int:
    units = {"k": 1 << 10, "m": MIB, "g": GIB}
    t = text.strip().lower().rstrip("ib")
    return int(float(t[:-1]) * units[t[-1]]) if t and t[-1] in units else int(t)


def parse_sizes(text: str) -> list[int]:
    return [parse_size(t) for t in text.split(",") if t.strip()]


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="a short run (< 1 min): 3 rounds of 60 spawns per cell, a 1 GiB big parent")
    ap.add_argument("--rounds", type=int, help="rounds (default 7, quick 3)")
    ap.add_argument("--iterations", type=int, help="spawns per cell per round (default 400, quick 60)")
    ap.add_argument("--batch", type=int, default=100,
                    help="spawns per request to a worker within a cell (default 100): how often the time "
                         "budget is looked at")
    ap.add_argument("--cell-seconds", type=float,
                    help="time budget of one cell in one round (default 2, quick 0.4): copying forks of a "
                         "big parent stop early")
    ap.add_argument("--mem", type=parse_sizes,
                    help="comma-separated sizes of the big parents, e.g. 1G,4G; 0 for none (default 1G,4G, "
                         "quick 1G)")
    ap.add_argument("--rows", default=",".join(r.key for r in ROWS),
                    help=f"rows from a small parent (default all: {','.join(r.key for r in ROWS)})")
    ap.add_argument("--big-rows", default="user", help="rows from the big parents (default user)")
    ap.add_argument("--contenders", default=",".join(LABELS),
                    help="the contenders to run (the C loop always runs: it is the reference); e.g. "
                         "fork_exec,prepared for the tightest alternation with the C loop")
    ap.add_argument("--no-go", action="store_true", help="leave Go out (its first build takes ~10 s)")
    ap.add_argument("--program", default=TRUE,
                    help="what to spawn: /bin/true (default), 'static' (true_static.c: no libc, no loader, "
                         "so the spawn machinery's own cost shows) or any program that exits 0")
    ap.add_argument("--json", metavar="OUT", help="write the raw per-spawn times and the summary here")
    ap.add_argument("--seed", type=int, default=1, help="seed of the order of groups and cells")
    ap.add_argument("--no-cpu", action="store_true",
                    help="leave the workers in this process's cgroup: no CPU time per spawn")
    args = ap.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 7)
    iterations = args.iterations or (60 if args.quick else 400)
    cell_seconds = args.cell_seconds if args.cell_seconds is not None else (0.4 if args.quick else 2.0)
    want_mem = args.mem if args.mem is not None else ([GIB] if args.quick else [GIB, 4 * GIB])
    notes: list[str] = []
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    by_key = {r.key: r for r in ROWS}
    small_rows = [by_key[k] for k in args.rows.split(",") if k]
    big_rows = [by_key[k] for k in args.big_rows.split(",") if k]
    contenders = {k for k in args.contenders.split(",") if k}
    if contenders - set(LABELS):
        ap.error(f"--contenders: unknown {sorted(contenders - set(LABELS))}; known: {', '.join(LABELS)}")

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
    usable, skipped = usable_rows([r for r in ROWS if r in small_rows or r in big_rows], prog)
    notes += [f"row {k} skipped: {why}" for k, why in skipped.items()]
    sizes = pick_memory(want_mem, 3 if go_bin else 2, notes)
    phases = [("small parent", 0, [r for r in small_rows if r in usable])]
    phases += [(f"{size_label(size)} parent", size, [r for r in big_rows if r in usable]) for size in sizes]

    cgroups = f"pfe-spawn-bench-{os.getpid()}"  # one cgroup per worker under it: CPU per spawn

    def meter(name: str) -> Optional[W.CpuMeter]:
        if args.no_cpu:
            return None
        try:
            return W.CpuMeter.make(f"{cgroups}/{name}")
        except OSError as e:
            note = f"CPU per spawn not measured: no cgroup for a worker ({e.strerror or e})"
            if note not in notes:
                notes.append(note)
            return None

    def start(phase: str) -> Workers:
        slug = "-".join(phase.split())
        return Workers(W.Worker(f"Python ({phase})", [sys.executable, str(W.HERE / "py_spawn.py")],
                                meter(f"{slug}-py")),
                       W.Worker(f"C ({phase})", [str(c_bin), "-s"], meter(f"{slug}-c")),
                       W.Worker(f"Go ({phase})", [str(go_bin), "-s"], meter(f"{slug}-go"))
                       if go_bin else None)

    pools: list[Workers] = []
    load = {"before": os.getloadavg()}
    ticks = cpu_times()
    try:
        cells = []
        for name, size, rows in phases:
            pools.append(start(name))
            if size:
                t0 = time.monotonic()
                W.hold(size, pools[-1].all())
                log(f"{name}: Python, C{' and Go' if go_bin else ''} workers hold {size_label(size)} each "
                    f"({time.monotonic() - t0:.1f} s to touch)")
            cells += make_cells(name, rows, pools[-1], unshare, prog, contenders)
        log(f"{len(cells)} cells (parent x row x contender), {rounds} rounds of up to {iterations} spawns "
            "each")
        measure(cells, rounds, iterations, max(1, args.batch), cell_seconds, random.Random(args.seed), log)
    finally:
        for pool in pools:
            for w in pool.all():
                w.close()
    load["after"] = os.getloadavg()
    steal = steal_share(ticks, cpu_times())
    raw: dict[str, dict[str, dict[str, list[list[int]]]]] = {}
    raw_cpu: dict[str, dict[str, dict[str, list[float]]]] = {}
    results: dict[str, dict[str, dict[str, Stats]]] = {}
    refs = {(c.phase, c.row.key): c for c in cells if c.contender == REFERENCE}
    for cell in cells:
        raw.setdefault(cell.phase, {}).setdefault(cell.row.key, {})[cell.contender] = cell.rounds
        if cell.cpu_rounds:
            raw_cpu.setdefault(cell.phase, {}).setdefault(cell.row.key, {})[cell.contender] = cell.cpu_rounds
        results.setdefault(cell.phase, {}).setdefault(cell.row.key, {})[cell.contender] = stats(
            cell, refs.get((cell.phase, cell.row.key)))

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **describe(),
        "python": platform.python_version(), "go": W.go_version() if go_bin else None,
        "program": args.program, "uid": os.getuid(), "rounds": rounds, "iterations": iterations,
        "cell_seconds": cell_seconds, "memory_bytes": sizes, "loadavg": load, "steal": round(steal, 4),
        "seconds": round(time.monotonic() - started, 1), "notes": notes,
        "rows": {r.key: {"title": r.title, "flags": fe.CloneFlags.describe(r.flags) if r.flags else "0"}
                 for r in ROWS},
        "contenders": LABELS,
    }
    table = report(results, [name for name, _, _ in phases])
    label = "true_static.c" if args.program == "static" else prog
    print(f"# spawn + wait of {label}: {meta['date']}, kernel {meta['kernel']}, {meta['cpu']} "
          f"x{meta['cpus']}, Python {meta['python']}, {meta['go'] or 'no Go'}\n")
    print(f"{rounds} rounds; per round, each cell {iterations} spawns (fewer when it used its "
          f"{cell_seconds:g} s budget), the cells of a row one after the other; loadavg "
          f"{load['before'][0]:.2f} -> {load['after'][0]:.2f}; CPU time stolen by the hypervisor "
          f"{100 * steal:.1f}%; {meta['seconds']} s in all. xC = median of "
          "the per-round ratios (the cell's median over the C clone loop's median in the same round), "
          "[min-max] of them.\n")
    print(table)
    for note in notes:
        print(f"\nNote: {note}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "summary": results, "raw_ns": raw, "cpu_ns_per_spawn": raw_cpu}, f,
                      indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
