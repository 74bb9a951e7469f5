"""The workers of spawn.py: building the C and Go ones, driving all of them, holding memory.

Each worker (py_spawn.py, c_spawn.c, go_spawn/main.go) reads "N FLAGS MODE PROG ARGS..." lines and
answers N per-spawn times in ns, and "mem BYTES" makes it hold that much touched memory. Long-lived
workers let spawn.py interleave every contender, small parent and big parent alike, batch by batch.
Each worker runs in a cgroup of its own when this process may make one (CpuMeter), so the CPU time of
its spawns (its own and its children's, which stay in its cgroup until they exit) is read beside the
wall times without asking the worker.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import mmap
import os
import shutil
import subprocess
from pathlib import Path
from typing import Optional

from pyforkexec.sandbox.cgroup import find_cgroup2

HERE = Path(__file__).resolve().parent
BUILD_DIR = HERE / "results" / "build"
GO = "/usr/lib/go-1.23/bin/go"
MADV_POPULATE_WRITE = 23  # Linux 5.14+; not in Python 3.11's mmap module
PAGE = 4096


class BuildError(RuntimeError):
    """A reference loop could not be built; the message says why."""


def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def build_c(name: str = "c_spawn", *flags: str) -> Path:
    """benchmarks/NAME.c compiled with gcc -O2 into results/build (reused while the source is unchanged)."""
    src = HERE / f"{name}.c"
    out = BUILD_DIR / f"{name}-{_digest(src)}"
    if out.exists():
        return out
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise BuildError("no C compiler (gcc) on PATH")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([cc, "-O2", "-Wall", *flags, "-o", str(out), str(src)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise BuildError(f"gcc failed: {proc.stderr.strip()}")
    return out


def build_static_true() -> Path:
    """true_static.c: exit_group(0) and nothing else, linked statically without libc."""
    return build_c("true_static", "-static", "-nostdlib", "-nostartfiles")


def build_go() -> Path:
    """go_spawn built offline (GOPROXY=off, GOFLAGS=-mod=mod, a private GOCACHE under results/build)."""
    src = HERE / "go_spawn"
    out = BUILD_DIR / f"go_spawn-{_digest(src / 'main.go', src / 'go.mod')}"
    if out.exists():
        return out
    go = GO if os.access(GO, os.X_OK) else shutil.which("go")
    if go is None:
        raise BuildError(f"no Go toolchain ({GO} missing, no go on PATH)")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GOCACHE=str(BUILD_DIR / "gocache"), GOPATH=str(BUILD_DIR / "gopath"),
               GOFLAGS="-mod=mod", GOPROXY="off", GOTOOLCHAIN="local", CGO_ENABLED="0")
    proc = subprocess.run([go, "build", "-o", str(out), "."], cwd=src, env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise BuildError(f"go build failed offline: {proc.stderr.strip()}")
    return out


def go_version() -> Optional[str]:
    try:
        return subprocess.run([GO, "version"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


class CpuMeter:
    """The CPU time used in one cgroup made for one worker: the worker's and that of every process it
    starts, counted by the kernel while they run (a child's pre-execve steps, its exec and exit too),
    scheduling waits excluded. cgroup v2's ``cpu.stat`` (usage_usec, always there) when a cgroup2
    hierarchy is mounted, else cgroup v1's ``cpuacct.usage`` (ns)."""

    def __init__(self, directory: Path, counter: str) -> None:
        self.directory = directory
        self.counter = counter

    @classmethod
    def make(cls, name: str) -> CpuMeter:
        """A new, empty cgroup named ``name`` (OSError when none can be made: not root, no hierarchy)."""
        tried = []
        for base, counter in _cpu_hierarchies():
            directory = base / name
            try:
                directory.mkdir(parents=True)
            except OSError as e:
                tried.append(f"{directory}: {e.strerror}")
                continue
            return cls(directory, counter)
        raise OSError(errno.ENOENT, "; ".join(tried) or "no cgroup2 or cgroup v1 cpuacct hierarchy mounted")

    def join(self, pid: int) -> None:
        (self.directory / "cgroup.procs").write_text(str(pid))

    def read_ns(self) -> int:
        text = (self.directory / self.counter).read_text()
        if self.counter == "cpuacct.usage":
            return int(text)
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) * 1000
        raise RuntimeError(f"no usage_usec in {self.directory / self.counter}")

    def remove(self) -> None:
        """Remove the cgroup once its processes are gone (the worker reaped; its children were)."""
        with contextlib.suppress(FileNotFoundError):
            self.directory.rmdir()
        with contextlib.suppress(OSError):  # the run's parent directory, once its last worker's is gone
            self.directory.parent.rmdir()


def _cpu_hierarchies() -> list[tuple[Path, str]]:
    """(mount point, counter file): the cgroup2 hierarchy pyforkexec itself uses, then the cgroup v1
    cpuacct mounts (which pyforkexec does not use, but a hybrid host without cgroup2 has)."""
    found = []
    with contextlib.suppress(OSError):  # CgroupError: no cgroup2 mounted
        found.append((Path(find_cgroup2()), "cpu.stat"))
    with open("/proc/self/mounts") as f:
        for line in f:
            _, point, kind, options = line.split()[:4]
            if kind == "cgroup" and "cpuacct" in options.split(","):
                found.append((Path(point), "cpuacct.usage"))
    return found


class Worker:
    """A running c_spawn, go_spawn (argv: BINARY -s) or py_spawn.py in serve mode; ``meter`` the CPU
    meter of its cgroup (None when it runs in ours)."""

    def __init__(self, name: str, argv: list[str], meter: Optional[CpuMeter] = None) -> None:
        self.name = name
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     bufsize=1)
        self.meter = meter
        if meter is not None:
            try:  # before its first command: every spawn it makes is counted there
                meter.join(self.proc.pid)
            except BaseException:
                self.close()
                raise

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def reply(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} worker exited (status {self.proc.wait()})")
        return line.strip()

    def run(self, n: int, flags: int, mode: str, argv: list[str]) -> list[int]:
        self.send(f"{n} {flags:#x} {mode} {' '.join(argv)}")
        return [int(t) for t in self.reply().split()]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait()
        if self.meter is not None:
            self.meter.remove()


class HeldMemory:
    """`size` bytes of private anonymous memory in this process, every 4 KiB page written.

    Huge pages are refused (MADV_NOHUGEPAGE) so the page tables are those of a long-running parent whose
    heap grew page by page: the case where a copying fork pays per page.
    """

    def __init__(self, size: int) -> None:
        self.map = mmap.mmap(-1, size) if size else None
        if self.map is None:
            return
        self.map.madvise(mmap.MADV_NOHUGEPAGE)
        with contextlib.suppress(OSError):  # one call instead of a fault per page; Linux 5.14+
            self.map.madvise(MADV_POPULATE_WRITE)
        self.map[::PAGE] = b"\1" * (size // PAGE)  # touch: cheap when populated, faults otherwise

    def close(self) -> None:
        if self.map is not None:
            self.map.close()
            self.map = None


def hold(size: int, workers: list[Worker]) -> None:
    """Make every worker hold `size` bytes of touched memory, all of them at once."""
    for w in workers:
        w.send(f"mem {size}")
    for w in workers:
        if w.reply() != "ok":
            raise RuntimeError(f"{w.name} worker could not hold {size} bytes")


def mem_available() -> int:
    """MemAvailable from /proc/meminfo, in bytes."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")
