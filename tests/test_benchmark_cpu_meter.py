"""benchmarks/workers.CpuMeter: the CPU time of a worker and of the processes it starts, read from a
cgroup of its own, against the kernel's own account of the same processes (wait4's rusage)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.marks import needs_root

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import workers

# A parent that waits for a word, then starts a child that spins ~0.2 s of CPU, and spins as long itself.
BUSY = ("import subprocess, sys, time\n"
        "sys.stdin.readline()\n"
        "spin = 'import time\\nt = time.process_time()\\nwhile time.process_time() - t < 0.2: pass'\n"
        "subprocess.run([sys.executable, '-c', spin], check=True)\n"
        "exec(spin)\n")


@needs_root
def test_cpu_meter_counts_the_worker_and_its_children() -> None:
    name = f"pfe-test-cpu-meter-{os.getpid()}/worker"
    try:
        meter = workers.CpuMeter.make(name)
    except OSError as e:
        pytest.skip(f"no cgroup can be made here: {e}")
    proc = subprocess.Popen([sys.executable, "-c", BUSY], stdin=subprocess.PIPE)
    try:
        meter.join(proc.pid)
        before = meter.read_ns()
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.close()
        _, status, usage = os.wait4(proc.pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        used = meter.read_ns() - before
    finally:
        if proc.returncode is None and proc.poll() is None:
            proc.kill()
            proc.wait()
        meter.remove()
    own_and_children = (usage.ru_utime + usage.ru_stime) * 1e9  # wait4 counts the reaped child too
    assert own_and_children >= 0.35e9  # both spun
    assert 0.9 * own_and_children <= used <= 1.1 * own_and_children + 20e6, (used, own_and_children)
    assert not meter.directory.exists() and not meter.directory.parent.exists()


def test_cpu_meter_refuses_where_no_cgroup_can_be_made(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o500)
    monkeypatch.setattr(workers, "_cpu_hierarchies", lambda: [(readonly, "cpu.stat")])
    if os.geteuid() == 0:  # root writes through the mode: a file where the directory would go instead
        (readonly / "w").write_text("")
    with pytest.raises(OSError, match="w"):
        workers.CpuMeter.make("w/x" if os.geteuid() == 0 else "w")
