"""benchmarks/collection/report.py: the fixed cost of a run (the floor playbook) against the goals' budget,
computed from podman's medians at each N."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("matplotlib", reason="report.py draws its plots with matplotlib")
ROOT = Path(__file__).resolve().parent.parent


def _report():
    path = ROOT / "benchmarks" / "collection" / "report.py"
    spec = importlib.util.spec_from_file_location("bench_report", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rec(contender: str, n: int, op: str, seconds: float, rnd: int = 0) -> dict:
    return dict(contender=contender, n=n, round=rnd, op=op, seconds=seconds, load=1.0)


def test_the_per_round_ratio_pairs_each_round_and_skips_a_round_missing_one():
    # Round 1 slow for both (0.5), rounds 0 and 2 at 0.4 and 0.6; podman's round 3 alone is left out.
    records = [_rec("role", 5, "converge", s, rnd) for rnd, s in enumerate([2.0, 6.0, 3.0])]
    records += [_rec("podman", 5, "converge", s, rnd) for rnd, s in enumerate([5.0, 12.0, 5.0, 1.0])]
    lines, _ = _report()._operations(records)
    row = next(line for line in lines if line.startswith("| converge | 5 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[5] == "0.60"  # the ratio of the medians, 3.0 / 5.0
    assert cells[6] == "0.50 [0.40-0.60]"


def test_the_role_with_start_check_0_has_its_columns_only_where_recorded():
    records = [_rec("role", 5, "converge", 2.0), _rec("podman", 5, "converge", 4.0),
               _rec("netns", 5, "converge", 5.0)]
    lines, _ = _report()._operations(records)
    assert "start_check 0" not in lines[0]
    assert len(lines[0].split("|")) == len(lines[1].split("|")) == len(lines[2].split("|"))
    records += [_rec("role-exec", 5, "converge", 1.0)]
    lines, _ = _report()._operations(records)
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    cells = dict(zip(head[1:], [c.strip() for c in lines[2].strip("|").split("|")][1:]))
    assert len(lines[0].split("|")) == len(lines[1].split("|")) == len(lines[2].split("|"))
    assert cells["role, start_check 0"] == "1.00 s"
    assert cells["role / podman"] == "0.50"
    assert cells["role-exec / podman"] == "0.25"
    assert cells["role / by hand"] == "0.40"


def test_the_budget_is_the_goal_times_podmans_median_beside_the_floor():
    records = [_rec("podman", 1, "converge", 2.0), _rec("podman", 1, "converge", 1.6),
               _rec("podman", 1, "converge", 1.8), _rec("podman", 1, "rerun", 1.5),
               _rec("podman", 1, "removal", 2.4), _rec("floor", 1, "floor", 1.2),
               _rec("floor", 1, "floor", 1.4), _rec("role", 1, "converge", 9.0)]
    lines = _report()._floor(records)
    assert "1.30 s (median of 2)" in lines[0]
    assert lines[-1] == "| 1 | 0.90 s | 0.45 s | 1.20 s | 1.30 s |"


def test_no_floor_recorded_no_section():
    assert _report()._floor([_rec("podman", 1, "converge", 2.0)]) == []


def test_a_slow_ready_is_listed_with_each_services_wait():
    slow = dict(_rec("role", 5, "slow-ready", 16.3), waits=[0.01, 15.2, 1.1, 0.0, 0.0],
                slow_services=["pfb-r-2", "pfb-r-3"], neigh="", bridge_links="", logs={})
    lines = _report()._slow_ready([_rec("role", 5, "ready", 16.3), slow])
    assert lines == ["- role, N=5, round 0: waits 0.01, 15.20, 1.10, 0.00, 0.00 s; slow: pfb-r-2, pfb-r-3 "
                     "(the record in records.jsonl has the neighbour table, logs and what was read while "
                     "it did not answer yet)"]
    assert _report()._slow_ready([_rec("role", 5, "ready", 0.1)]) == []
