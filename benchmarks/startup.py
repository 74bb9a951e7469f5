"""Start-up time of the pyforkexec command line, launcher and daemon (issue 15), side by side with a bare
interpreter, util-linux ``unshare`` and ``bwrap``; and the daemon's memory.

    .venv/bin/python benchmarks/startup.py [--rounds 30] [--compare OLD_TREE] [--png FILE] [--json FILE]

Every contender is one command started and waited for (``subprocess.run``), so each pays a whole
interpreter start. In each round every contender runs once, in a new random order, so that a burst of
load on the 2-vCPU machine hits neighbours in time alike; the table gives the median time over the
rounds and the **median of the per-round ratios** to ``python -c pass`` of the same interpreter set-up
(util-linux and bwrap: to the wheel-like one), for the wall time and for the CPU time (user + system,
from ``wait4``; the daemon's from ``/proc/PID/schedstat``), which other work on the machine moves less.

Three set-ups of the same sources (``mode``):

- ``editable``: the development venv (``pip install -e``), whose ``.pth`` runs setuptools' editable
  finder at every start of that venv's Python, ``python -c pass`` included;
- ``wheel-like``: a venv of the same base Python without pip and with one ``.pth`` line naming the
  sources' parent folder: what an installed wheel costs at start (a ``sys.path`` entry, no import);
- ``-S``: ``python -S`` (no ``site`` at all), the sources on ``PYTHONPATH``.

``--compare DIR`` adds the same pyforkexec contenders for another copy of the package (``DIR/pyforkexec``
with its C extensions built, e.g. the sources before a change), labelled ``before``. Bytecode is
compiled first (``compileall``) for every tree: an installed wheel has it, and ``PYTHONDONTWRITEBYTECODE``
would otherwise make each start compile the package again.

The daemon contender starts ``python -m pyforkexec.daemon --foreground --ready-fd`` on a spec running
``sleep`` and stops the clock when the daemon reports the service started (``ok PID`` on the ready fd:
the service's execve has succeeded); the daemon is then stopped outside the timed part. After the
rounds, the same daemon is started once per tree and mode to read its memory
(``/proc/PID/smaps_rollup``: Rss and Pss) while it supervises the sleep.

A benchmark, not a test: nothing fails when a goal is missed. Needs root (user namespaces with
``--map-root-user`` work unprivileged too on most kernels; ``--mount-proc`` needs the mount namespace).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from procmem import rss_pss_kib

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
UNSHARE_OPTIONS = ["--user", "--map-root-user", "--pid", "--fork", "--mount-proc", "--uts", "--ipc", "--net"]
# bwrap's spelling of the same namespaces: a root map in a new user namespace, /proc of the new PID ns
BWRAP_OPTIONS = ["--unshare-user", "--uid", "0", "--gid", "0", "--unshare-pid", "--unshare-uts",
                 "--unshare-ipc", "--unshare-net", "--dev-bind", "/", "/", "--proc", "/proc"]
SMALL_SPEC = {"version": 1, "argv": ["/bin/true"],
              "sys": {"cloneflags": ["CLONE_NEWUTS", "CLONE_NEWIPC", "CLONE_NEWNS", "CLONE_NEWPID"]}}
# No CLONE_NEWPID: sleep as a PID namespace's init would ignore the daemon's SIGTERM and each stop
# would wait for --stop-timeout.
SLEEP_SPEC = {"version": 1, "argv": ["/bin/sleep", "600"],
              "sys": {"cloneflags": ["CLONE_NEWUTS", "CLONE_NEWIPC"]}}


@dataclass
class Setup:
    """One way to start the package's Python: the interpreter, its flags, its environment."""

    mode: str
    python: str
    flags: list[str]
    env: dict[str, str]


@dataclass
class Contender:
    name: str
    mode: str  # the set-up whose ``python -c pass`` it is compared with
    run: Callable[[], tuple[float, float]]  # one timed start: wall and CPU seconds
    times: list[float] = field(default_factory=list)  # wall
    cpu: list[float] = field(default_factory=list)  # user + system of the process (and its reaped children)


def clean_env(extra: Optional[dict[str, str]] = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    return {**env, **(extra or {})}


def timed(argv: list[str], env: dict[str, str]) -> Callable[[], tuple[float, float]]:
    def run() -> tuple[float, float]:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)  # the CPU it used, whatever else ran meanwhile
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode})")
        return elapsed, usage.ru_utime + usage.ru_stime

    return run


def start_daemon(setup: Setup, spec: Path, tmp: Path) -> tuple[subprocess.Popen[bytes], int, float, float]:
    """The daemon started on ``spec``; returns it, its service's pid, and the wall and CPU time (its
    /proc schedstat, in ns) to ``ok PID``."""
    r, w = os.pipe()
    argv = [setup.python, *setup.flags, "-m", "pyforkexec.daemon", "--name", "bench", "--spec", str(spec),
            "--pid-file", str(tmp / "d.pid"), "--log-file", str(tmp / "d.log"), "--ready-fd", str(w),
            "--foreground"]
    start = time.perf_counter()
    daemon = subprocess.Popen(argv, env=setup.env, pass_fds=(w,), stdin=subprocess.DEVNULL)
    os.close(w)
    with os.fdopen(r) as f:
        ready = f.read().split()
    elapsed = time.perf_counter() - start
    with open(f"/proc/{daemon.pid}/schedstat") as f:
        cpu = int(f.read().split()[0]) / 1e9
    if not ready or ready[0] != "ok":
        stop_daemon(daemon)
        log = (tmp / "d.log").read_text()[-400:]
        raise SystemExit(f"the daemon did not start its service: {ready}; {log}")
    return daemon, int(ready[1]), elapsed, cpu


def stop_daemon(daemon: subprocess.Popen[bytes]) -> None:
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(timeout=60)


def daemon_contender(setup: Setup, spec: Path, tmp: Path) -> Callable[[], tuple[float, float]]:
    def run() -> tuple[float, float]:
        daemon, _, elapsed, cpu = start_daemon(setup, spec, tmp)
        stop_daemon(daemon)
        return elapsed, cpu

    return run


def wheel_like_venv(base_python: str, tree: Path, where: Path) -> str:
    """A venv without pip whose only .pth names ``tree``: the start-up of an installed wheel."""
    if not (where / "bin" / "python").exists():
        subprocess.run([base_python, "-m", "venv", "--without-pip", str(where)], check=True)
    site = next((where / "lib").glob("python3*/site-packages"))
    (site / "pyforkexec-sources.pth").write_text(f"{tree}\n")
    return str(where / "bin" / "python")


def setups_for(tree: Path, label: str, build: Path) -> list[Setup]:
    python = sys.executable
    base = getattr(sys, "_base_executable", python)
    out = [Setup("wheel-like", wheel_like_venv(base, tree, build / f"venv-{label}"), [], clean_env()),
           Setup("-S", python, ["-S"], clean_env({"PYTHONPATH": str(tree)}))]
    if label == "current" and (tree / "pyforkexec").samefile(REPO / "pyforkexec"):
        out.insert(0, Setup("editable", python, [], clean_env()))  # the dev venv's own finder
    elif label != "current":  # PYTHONPATH comes before the editable finder
        out.insert(0, Setup("editable", python, [], clean_env({"PYTHONPATH": str(tree)})))
    return out


def contenders(trees: dict[str, Path], tmp: Path, build: Path) -> list[Contender]:
    small, sleep = tmp / "small.json", tmp / "sleep.json"
    small.write_text(json.dumps(SMALL_SPEC))
    sleep.write_text(json.dumps(SLEEP_SPEC))
    out = []
    for label, tree in trees.items():
        for setup in setups_for(tree, label, build):
            py = [setup.python, *setup.flags]
            tag = f" [{setup.mode}]" + ("" if label == "current" else f" ({label})")
            if label == "current":
                out.append(Contender(f"python -c pass{tag}", setup.mode,
                                     timed([*py, "-c", "pass"], setup.env)))
            out.append(Contender(f"python -c 'import pyforkexec'{tag}", setup.mode,
                                 timed([*py, "-c", "import pyforkexec"], setup.env)))
            out.append(Contender(f"pyforkexec unshare ...{tag}", setup.mode,
                                 timed([*py, "-m", "pyforkexec", "unshare", *UNSHARE_OPTIONS, "/bin/true"],
                                       setup.env)))
            out.append(Contender(f"pyforkexec exec --spec{tag}", setup.mode,
                                 timed([*py, "-m", "pyforkexec", "exec", "--spec", str(small)], setup.env)))
            out.append(Contender(f"daemon start -> service exec{tag}", setup.mode,
                                 daemon_contender(setup, sleep, tmp)))
    console = Path(sys.executable).parent / "pyforkexec"
    if console.exists() and "current" in trees:
        out.append(Contender("pyforkexec unshare ... (console script) [editable]", "editable",
                             timed([str(console), "unshare", *UNSHARE_OPTIONS, "/bin/true"], clean_env())))
    out.append(Contender("util-linux unshare ...", "-", timed(["unshare", *UNSHARE_OPTIONS, "/bin/true"],
                                                              clean_env())))
    bwrap = shutil.which("bwrap")
    if bwrap:
        out.append(Contender("bwrap (same namespaces)", "-", timed([bwrap, *BWRAP_OPTIONS, "/bin/true"],
                                                                   clean_env())))
    return out


def measure_memory(trees: dict[str, Path], tmp: Path, build: Path) -> list[tuple[str, str, tuple[int, int]]]:
    sleep = tmp / "sleep.json"
    out = []
    for label, tree in trees.items():
        for setup in setups_for(tree, label, build):
            daemon, *_ = start_daemon(setup, sleep, tmp)
            try:
                time.sleep(0.2)  # past the start: the daemon waits in its loop
                out.append((label, setup.mode, rss_pss_kib(daemon.pid)))
            finally:
                stop_daemon(daemon)
    return out


def ratio_column(c: Contender, baseline: dict[str, Contender], what: str) -> str:
    base = baseline.get(c.mode) or baseline.get("wheel-like")
    if base is None or base is c:
        return "1.00" if base is c else "-"
    ratios = [t / b for t, b in zip(getattr(c, what), getattr(base, what))]
    return f"{statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}]"


def table(cs: list[Contender], baseline: dict[str, Contender]) -> list[str]:
    lines = ["| contender | wall ms | x pass (wall) [min-max] | CPU ms | x pass (CPU) [min-max] |",
             "|---|---|---|---|---|"]
    for c in cs:
        wall, cpu = statistics.median(c.times) * 1000, statistics.median(c.cpu) * 1000
        lines.append(f"| {c.name} | {wall:.1f} | {ratio_column(c, baseline, 'times')} | {cpu:.1f} | "
                     f"{ratio_column(c, baseline, 'cpu')} |")
    return lines


def plot(cs: list[Contender], path: Path) -> bool:
    try:
        import matplotlib
    except ImportError:
        return False

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 0.32 * len(cs) + 1.2))
    names = [c.name for c in cs][::-1]
    medians = [statistics.median(c.times) * 1000 for c in cs][::-1]
    ax.barh(names, medians, color=["#c44" if "before" in n else "#48a" for n in names])
    for y, m in enumerate(medians):
        ax.text(m, y, f" {m:.1f}", va="center", fontsize=7)
    ax.set_xlabel("median wall time of one start (ms)")
    ax.set_title(f"pyforkexec start-up, {len(cs[0].times)} rounds, loadavg {os.getloadavg()[0]:.2f}")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--compare", type=Path, help="another tree holding pyforkexec/ (built), labelled 'before'")
    p.add_argument("--png", type=Path, default=RESULTS / "startup.png")
    p.add_argument("--json", type=Path, help="write every time (s) per contender")
    p.add_argument("--seed", type=int, default=15)
    args = p.parse_args()
    trees = {"current": REPO}
    if args.compare:
        trees["before"] = args.compare.resolve()
    for tree in trees.values():  # bytecode, as a wheel install has it
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "pyforkexec")], check=True)
    build = RESULTS / "build" / "startup"
    build.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        # -c and -m put the working directory first in sys.path: from the repository, every tree's
        # contenders would import the repository's own pyforkexec/
        os.chdir(tmp)
        cs = contenders(trees, tmp, build)
        for c in cs:  # warm the page cache once, untimed
            c.run()
        for _ in range(args.rounds):
            order = cs[:]
            rng.shuffle(order)
            for c in order:
                wall, cpu = c.run()
                c.times.append(wall)
                c.cpu.append(cpu)
        memory = measure_memory(trees, tmp, build)
        os.chdir(REPO)
    baseline = {c.mode: c for c in cs if c.name.startswith("python -c pass")}
    load_after = os.getloadavg()
    print(f"{args.rounds} rounds; loadavg (1, 5 min) before {load_before[0]:.2f} {load_before[1]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f}; {sys.executable} {sys.version.split()[0]}")
    if not shutil.which("bwrap"):
        print("bwrap is not installed: its row is left out (Debian: apt-get install bubblewrap)")
    print()
    print("\n".join(table(cs, baseline)))
    print()
    print("`import pyforkexec` above the interpreter's start (median of per-round differences, ms):")
    for c in cs:
        base = baseline.get(c.mode)
        if "import pyforkexec" in c.name and base is not None:
            wall = statistics.median(t - b for t, b in zip(c.times, base.times)) * 1000
            cpu = statistics.median(t - b for t, b in zip(c.cpu, base.cpu)) * 1000
            print(f"- {c.name}: wall {wall:+.1f}, CPU {cpu:+.1f}")
    print()
    print("| daemon supervising sleep | Rss KiB | Pss KiB |")
    print("|---|---|---|")
    for label, mode, mem in memory:
        print(f"| {label} [{mode}] | {mem[0]} | {mem[1]} |")
    args.png.parent.mkdir(parents=True, exist_ok=True)
    if plot(cs, args.png):
        print(f"\n(plot: {args.png})")
    else:
        print("\n(no plot: matplotlib is not installed in this venv; pip install matplotlib)")
    if args.json:
        args.json.write_text(json.dumps({c.name: {"wall": c.times, "cpu": c.cpu} for c in cs}, indent=1))


if __name__ == "__main__":
    main()
