"""benchmarks/machine.py: what a benchmark ran on, and how much CPU the hypervisor took meanwhile."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import machine


def test_cpu_times_count_every_cpu_and_steal_is_a_share_of_them() -> None:
    before = machine.cpu_times()
    end = time.monotonic() + 0.1
    while time.monotonic() < end:  # at least 10 ticks of this CPU
        pass
    after = machine.cpu_times()
    assert 0 <= before[0] <= before[1] and 0 <= after[0] <= after[1]
    assert after[1] - before[1] >= 5
    assert 0.0 <= machine.steal_share(before, after) <= 1.0


def test_steal_share_is_stolen_ticks_over_all_ticks_between_two_readings() -> None:
    assert machine.steal_share((10, 1000), (40, 1200)) == 0.15
    assert machine.steal_share((10, 1000), (10, 1000)) == 0.0
