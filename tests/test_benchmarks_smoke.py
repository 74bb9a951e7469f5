"""Smoke test of benchmarks/spawn.py: its smallest run works end to end. No timing is asserted
(speed is measured by the benchmark itself, see benchmarks/README.md)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.marks import needs_root

SPAWN = Path(__file__).resolve().parent.parent / "benchmarks" / "spawn.py"
ITERATIONS = 5
ROUNDS = 2


@needs_root
@pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None,
                    reason="the benchmark's C loop needs a C compiler")
def test_benchmark_smoke_run_writes_every_cell(tmp_path: Path) -> None:
    out = tmp_path / "spawn.json"
    proc = subprocess.run(
        [sys.executable, str(SPAWN), "--quick", "--rounds", str(ROUNDS), "--iterations", str(ITERATIONS),
         "--mem", "64M", "--no-go", "--json", str(out)],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "| row | contender |" in proc.stdout
    data = json.loads(out.read_text())
    assert 0.0 <= data["meta"]["steal"] <= 1.0
    skipped = [n for n in data["meta"]["notes"] if n.startswith(("row ", "big-parent"))]
    assert not skipped, skipped  # as root with 64 MiB to spare, every row and both phases run
    assert list(data["raw_ns"]) == ["small parent", "64 MiB parent"]
    assert list(data["raw_ns"]["small parent"]) == list(data["meta"]["rows"])  # every row
    assert list(data["raw_ns"]["64 MiB parent"]) == ["user"]  # the big parent's default row
    for phase, rows in data["raw_ns"].items():
        for row, cells in rows.items():
            expected = {"fork_exec", "fork_exec-new", "prepared", "python-floor", "subprocess", "c-clone",
                        "c-fork"}
            if row != "none" and shutil.which("unshare"):
                expected |= {"subprocess-nofork", "c-unshare", "c-unshare-nofork"}
            assert set(cells) == expected, (phase, row)
            for contender, rounds in cells.items():
                assert len(rounds) == ROUNDS, (phase, row, contender)
                for times in rounds:
                    assert len(times) == ITERATIONS and all(t > 0 for t in times), (phase, row, contender)
            summary = data["summary"][phase][row]
            for contender in cells:  # the per-round ratios to the C loop, and their spread
                s = summary[contender]
                assert len(s["xc_rounds"]) == ROUNDS and s["xc_min"] <= s["xc"] <= s["xc_max"], s
    cpu = data["cpu_ns_per_spawn"]
    if not cpu:  # no cgroup for the workers (a chroot without /sys/fs/cgroup): said, not silent
        assert any(n.startswith("CPU per spawn not measured") for n in data["meta"]["notes"])
        return
    assert "CPU time per spawn" in proc.stdout
    for phase, rows in data["raw_ns"].items():  # every cell measured its CPU too, every round
        for row, cells in rows.items():
            assert set(cpu[phase][row]) == set(cells), (phase, row)
            for contender, per_round in cpu[phase][row].items():
                assert len(per_round) == ROUNDS and all(c > 0 for c in per_round), (phase, row, contender)
                s = data["summary"][phase][row][contender]
                assert s["xc_cpu_min"] <= s["xc_cpu"] <= s["xc_cpu_max"], s
