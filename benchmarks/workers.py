"""The workers of spawn.py: building the C and Go ones, driving all of them, holding memory.

Each worker (py_spawn.py, c_spawn.c, go_spawn/main.go) reads "N FLAGS MODE PROG ARGS..." lines and
answers N per-spawn times in ns, and "mem BYTES" makes it hold that much touched memory. Long-lived
workers let spawn.py interleave every contender, small parent and big parent alike, batch by batch.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import shutil
import subprocess
from pathlib import Path
from typing import Optional

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


class Worker:
    """A running c_spawn, go_spawn (argv: BINARY -s) or py_spawn.py in serve mode."""

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     bufsize=1)

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
