"""What a call may leave behind in this process, and a check that it left nothing.

``before = snapshot()`` records this process's state; ``assert_unchanged(before)`` takes another
snapshot and raises AssertionError naming every difference (``fds: 1 new: 7 (pipe:[123] ...)``).
Covered: open fds (target and open flags), children and zombies (any thread's, from /proc/*/stat),
cgroup directories under /sys/fs/cgroup (and a cgroup2 mount elsewhere) created or removed, the
mount table, hostname and domainname, cwd and root, umask, the calling thread's signal mask and
ignored set, the Python signal handlers, the calling thread's namespaces, ids, capabilities,
no_new_privs, seccomp, cgroup membership, resource limits and os.environ.

A mount that disappears because its mount point was unlinked is not reported: the kernel detaches
it in every namespace, whoever unlinked it. What other processes do shows up where the state is
shared (the mount table of a shared mount namespace, hostname, the cgroup tree): a test that runs
beside others isolates itself first, e.g. in a forked child with a private mount and UTS namespace
(as tests/test_property_api.py does), or narrows ``cgroup_roots``.
"""

from __future__ import annotations

import os
import resource
import signal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Optional

CGROUP_ROOTS = ("/sys/fs/cgroup",)
# /proc/thread-self/status lines that a call must not change for its caller.
STATUS_FIELDS = ("Umask", "Uid", "Gid", "Groups", "SigBlk", "SigIgn", "CapInh", "CapPrm", "CapEff",
                 "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")
O_FLAGS_SHOWN = 0o7777777  # fdinfo "flags": access mode, O_NONBLOCK, O_APPEND, O_CLOEXEC...
_RLIMITS = tuple(sorted((n, getattr(resource, n)) for n in dir(resource) if n.startswith("RLIMIT_")))


@dataclass(frozen=True)
class Snapshot:
    fds: Mapping[int, str]  # fd -> "target flags=0o..."
    children: Mapping[int, str]  # pid (as /proc shows it) -> "state command"
    cgroups: frozenset[str]
    mounts: tuple[str, ...]  # mountinfo lines
    hostname: str
    domainname: str
    cwd: str
    root: str
    status: Mapping[str, str]  # STATUS_FIELDS of the calling thread
    handlers: Mapping[int, str]
    namespaces: Mapping[str, str]  # the calling thread's /proc/thread-self/ns/*
    cgroup_membership: str
    rlimits: Mapping[str, tuple[int, int]]
    environ: Mapping[bytes, bytes]
    cgroup_roots: tuple[str, ...]  # where ``cgroups`` was listed (not compared)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _readlink(path: str) -> Optional[str]:
    try:
        return os.readlink(path)
    except OSError:  # gone meanwhile (an fd of the listing itself, a thread that exited)
        return None


def open_fds() -> dict[int, str]:
    """This process's fds as {fd: "target flags=0o..."}, without the fd that lists them."""
    out = {}
    fd = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        names = os.listdir(fd)
    finally:
        os.close(fd)
    for name in names:
        n = int(name)
        target = _readlink(f"/proc/self/fd/{n}")
        if target is None:
            continue
        try:
            info = _read(f"/proc/self/fdinfo/{n}")
        except OSError:
            continue
        flags = next((int(line.split()[1], 8) for line in info.splitlines() if line.startswith("flags:")), 0)
        out[n] = f"{target} flags={flags & O_FLAGS_SHOWN:#o}"
    return out


def own_pid() -> int:
    """This process's pid as /proc shows it (it differs from os.getpid() in a PID namespace of its own)."""
    return int(os.readlink("/proc/self"))


def children() -> dict[int, str]:
    """Every process whose parent is this process (any of its threads), zombies included."""
    me = own_pid()
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            text = _read(f"/proc/{name}/stat")
        except OSError:  # exited and reaped since the listing
            continue
        command = text[text.index("(") + 1:text.rindex(")")]
        state, ppid = text[text.rindex(")") + 2:].split()[:2]
        if int(ppid) == me:
            out[int(name)] = f"{state} {command}"
    return out


def cgroup2_mounts() -> list[str]:
    out = []
    for line in _read("/proc/self/mountinfo").splitlines():
        parts = line.split()
        if parts[parts.index("-") + 1] == "cgroup2":
            out.append(parts[4])
    return out


def cgroup_dirs(roots: Iterable[str]) -> frozenset[str]:
    """Every directory below ``roots`` (cgroup v1 and v2 hierarchies alike), not following links."""
    found: set[str] = set()
    for root in roots:
        for top, dirs, _ in os.walk(root, followlinks=False):
            found.update(os.path.join(top, d) for d in dirs)
    return frozenset(found)


def thread_status() -> dict[str, str]:
    lines = _read("/proc/thread-self/status").splitlines()
    fields_ = {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return {k: fields_.get(k, "") for k in STATUS_FIELDS}


def handlers() -> dict[int, str]:
    out = {}
    for sig in sorted(signal.valid_signals()):
        try:
            h = signal.getsignal(sig)
        except (OSError, ValueError):
            continue
        out[int(sig)] = h.name if isinstance(h, signal.Handlers) else repr(h)
    return out


def namespaces() -> dict[str, str]:
    return {name: _readlink(f"/proc/thread-self/ns/{name}") or "?"
            for name in sorted(os.listdir("/proc/thread-self/ns"))}


def snapshot(cgroup_roots: Optional[Sequence[str]] = None) -> Snapshot:
    """This process's state now; ``cgroup_roots``: the directories whose cgroups are listed
    (default /sys/fs/cgroup and any cgroup2 mount elsewhere)."""
    roots = list(cgroup_roots) if cgroup_roots is not None else [
        *CGROUP_ROOTS, *(m for m in cgroup2_mounts() if not m.startswith(CGROUP_ROOTS[0] + "/"))]
    return Snapshot(
        fds=open_fds(),
        children=children(),
        cgroups=cgroup_dirs(roots),
        mounts=tuple(_read("/proc/self/mountinfo").splitlines()),
        hostname=os.uname().nodename,
        domainname=_read("/proc/sys/kernel/domainname").strip(),
        cwd=_readlink("/proc/self/cwd") or "?",
        root=_readlink("/proc/self/root") or "?",
        status=thread_status(),
        handlers=handlers(),
        namespaces=namespaces(),
        cgroup_membership=_read("/proc/self/cgroup"),
        rlimits={name: resource.getrlimit(n) for name, n in _RLIMITS},
        environ=dict(os.environb),
        cgroup_roots=tuple(roots),
    )


def _unlinked(mountinfo_line: str) -> bool:
    """Whether a mount is gone because its mount point was unlinked: the kernel then detaches it in
    every mount namespace, so any process (``ip netns del`` elsewhere) can do that to ours. A call
    that unmounted something leaves the mount point in place."""
    point = mountinfo_line.split()[4].replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")
    return not os.path.lexists(point.replace("\\134", "\\"))


def _mapping_diff(name: str, before: Mapping[Any, Any], after: Mapping[Any, Any]) -> list[str]:
    out = []
    added = sorted(set(after) - set(before), key=repr)
    removed = sorted(set(before) - set(after), key=repr)
    changed = sorted((k for k in set(before) & set(after) if before[k] != after[k]), key=repr)
    if added:
        out.append(f"{name}: {len(added)} new: " + ", ".join(f"{k!r} ({after[k]})" for k in added))
    if removed:
        out.append(f"{name}: {len(removed)} gone: " + ", ".join(f"{k!r} ({before[k]})" for k in removed))
    out += [f"{name}[{k!r}]: {before[k]!r} -> {after[k]!r}" for k in changed]
    return out


def differences(before: Snapshot, after: Snapshot) -> list[str]:
    """One line per difference, naming what changed."""
    out: list[str] = []
    for f in fields(Snapshot):
        a, b = getattr(before, f.name), getattr(after, f.name)
        if a == b or f.name == "cgroup_roots":
            continue
        if isinstance(a, Mapping):
            out += _mapping_diff(f.name, a, b)
        elif isinstance(a, frozenset):
            if b - a:
                out.append(f"{f.name}: created {sorted(b - a)}")
            if a - b:
                out.append(f"{f.name}: removed {sorted(a - b)}")
        elif isinstance(a, tuple):
            gone, new = [x for x in a if x not in b], [x for x in b if x not in a]
            if f.name == "mounts":
                gone = [x for x in gone if not _unlinked(x)]
                if not gone and not new:
                    continue
            out.append(f"{f.name}: " + "; ".join([*(f"- {x}" for x in gone), *(f"+ {x}" for x in new)]
                                                  or ["reordered"]))
        else:
            out.append(f"{f.name}: {a!r} -> {b!r}")
    return out


def assert_unchanged(before: Snapshot) -> None:
    """Raise AssertionError naming every difference between ``before`` and now."""
    diff = differences(before, snapshot(before.cgroup_roots))
    if diff:
        raise AssertionError("state changed:\n  " + "\n  ".join(diff))
