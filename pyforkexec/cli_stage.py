"""``pyforkexec _stage``: the in-namespace steps SysProcAttr cannot express yet, run before the command.

``unshare --mount-proc``, ``--propagation slave|shared`` and ``--monotonic``/``--boottime`` need a
mount(2), a propagation change or a write to /proc/self/timens_offsets *inside* the new namespaces,
after the core's child steps and before the command. Until SysProcAttr has mount steps (the
``mounts`` extension of the isolation issue), the launcher's child execs this stage instead of the
command: the core child does clone/unshare/id maps/pdeathsig, and this stage continues in
util-linux's order:

    unshare(CLONE_NEWTIME) + timens_offsets, propagation, chroot, chdir, mount proc,
    setgroups/setgid/setuid, pdeathsig again (a uid change clears it), ambient caps, execvp

It is exec'd with the launcher's interpreter (``python -I -m pyforkexec _stage SPEC -- CMD...``)
and keeps its capabilities across that exec through ambient capabilities when its uid is not 0.
Its failures are reported like the core child's, ``fork/exec CMD: ... (at mount_proc)``, with the
same exit statuses (125 set-up, 126 cannot execute, 127 not found). When SysProcAttr gains mounts,
replace this stage by a proc mount entry and a propagation field in cli_unshare.stage_needed().
"""

from __future__ import annotations

import errno
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Optional

from .cgroup import _write
from .cli_common import EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, EXIT_SETUP, setgroups_denied
from .errors import _go_strerror

STAGE = "_stage"
CLONE_NEWTIME = 0x80
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC = 2, 4, 8, 0x1000, 0x4000
MS_PRIVATE, MS_SLAVE, MS_SHARED = 1 << 18, 1 << 19, 1 << 20
PROPAGATION = {"slave": MS_REC | MS_SLAVE, "shared": MS_REC | MS_SHARED, "private": MS_REC | MS_PRIVATE}
PR_SET_PDEATHSIG, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 1, 47, 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
CLOCKS = {"monotonic": 1, "boottime": 7}  # CLOCK_MONOTONIC, CLOCK_BOOTTIME


@dataclass
class StageSpec:
    """What the stage does; every field optional (None/empty: skip the step)."""

    file: Optional[str] = None  # the program to execvp; None: argv[0] of the command
    time_offsets: dict[str, int] = field(default_factory=dict)  # {"monotonic": secs, "boottime": secs}
    wait_fd: int = -1  # read one byte from this fd before going on (the launcher binds ns files)
    propagation: Optional[str] = None  # slave, shared (private is the core's; unchanged: nothing)
    root: Optional[str] = None
    wd: Optional[str] = None
    proc: Optional[str] = None  # where to mount proc
    uid: Optional[int] = None
    gid: Optional[int] = None
    drop_groups: bool = False  # setgroups(0) before setgid
    pdeathsig: int = 0
    ppid: int = 0
    keep_caps: bool = False  # --keep-caps: leave the ambient set raised for the command

    def argv(self, command: Sequence[str]) -> list[str]:
        """The argv that runs this stage and then ``command``."""
        return [sys.executable, "-I", "-m", "pyforkexec", STAGE, json.dumps(asdict(self)), "--", *command]


class StageFailed(Exception):
    def __init__(self, code: int, step: str):
        super().__init__(code, step)
        self.code, self.step = code, step


def _libc():  # imported lazily: only these steps need ctypes
    import ctypes

    return ctypes, ctypes.CDLL(None, use_errno=True)


def mount(source: Optional[str], target: str, fstype: Optional[str], flags: int) -> None:
    """mount(2) without data; raises OSError."""
    ctypes, libc = _libc()
    src, fs = (None if v is None else os.fsencode(v) for v in (source, fstype))
    if libc.mount(src, os.fsencode(target), fs, ctypes.c_ulong(flags), None) < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), target)


def _call(step: str, ret: int, ctypes) -> None:
    if ret < 0:
        raise StageFailed(ctypes.get_errno() or errno.EIO, step)


def _os(step: str, fn, *args) -> None:
    try:
        fn(*args)
    except OSError as e:
        raise StageFailed(e.errno or errno.EIO, step) from None


def run_steps(spec: StageSpec) -> None:
    ctypes, libc = _libc()
    if spec.time_offsets:
        _call("unshare_time", libc.unshare(CLONE_NEWTIME), ctypes)
        lines = "".join(f"{CLOCKS[k]} {v} 0\n" for k, v in spec.time_offsets.items())
        _os("timens_offsets", _write, "/proc/self/timens_offsets", lines)
    if spec.wait_fd >= 0:
        go = os.read(spec.wait_fd, 1)
        os.close(spec.wait_fd)
        if not go:  # the launcher failed (and reported it) or died
            raise SystemExit(EXIT_SETUP)
    if spec.propagation in ("slave", "shared"):
        _os("propagation", mount, "none", "/", None, PROPAGATION[spec.propagation])
    if spec.root:
        _os("chroot", os.chroot, spec.root)
    wd = spec.wd or ("/" if spec.root else None)
    if wd:
        _os("chdir", os.chdir, wd)
    if spec.proc:
        if not spec.root and spec.propagation not in (None, "private"):
            # util-linux: make an existing proc mount private first; EINVAL means it is no mount point
            try:
                mount("none", spec.proc, None, MS_REC | MS_PRIVATE)
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise StageFailed(e.errno or errno.EIO, "mount_proc") from None
        _os("mount_proc", mount, "proc", spec.proc, "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV)
    if spec.gid is not None:
        if spec.drop_groups and not setgroups_denied():  # no groups can exist there
            _os("setgroups", os.setgroups, [])
        _os("setgid", os.setgid, spec.gid)
    if spec.uid is not None:
        _os("setuid", os.setuid, spec.uid)
    if spec.pdeathsig:
        _call("pdeathsig", libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(spec.pdeathsig), 0, 0, 0), ctypes)
        if os.getppid() != spec.ppid:  # the launcher died before the signal was armed
            raise SystemExit(EXIT_SETUP)
    if not spec.keep_caps:
        _call("set_cap", libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), ctypes)
        _clear_inheritable(ctypes, libc)


def _clear_inheritable(ctypes, libc) -> None:
    """Empty the inheritable set the launcher raised for the ambient capabilities of this stage,
    so the command gets what util-linux gives it (a file's inheritable caps must not match it)."""
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # two {effective, permitted, inheritable}
    _call("set_cap", libc.capget(header, data), ctypes)
    data[2] = data[5] = 0
    _call("set_cap", libc.capset(header, data), ctypes)


def _report(command: str, code: int, step: str) -> None:
    print(f"pyforkexec: fork/exec {command}: {_go_strerror(code)} (at {step})", file=sys.stderr)


def main(argv: Sequence[str]) -> int:
    """``_stage SPEC -- CMD ARGS...``: run the steps, then execvp CMD (it never returns on success)."""
    if len(argv) < 3 or argv[1] != "--":
        print("pyforkexec _stage: internal command: _stage SPEC -- CMD [ARGS...]", file=sys.stderr)
        return EXIT_SETUP
    spec = StageSpec(**json.loads(argv[0]))
    command = list(argv[2:])
    try:
        run_steps(spec)
    except StageFailed as e:
        _report(command[0], e.code, e.step)
        return EXIT_SETUP
    except ImportError as e:  # an interpreter built without ctypes
        print(f"pyforkexec: this step needs ctypes: {e}", file=sys.stderr)
        return EXIT_SETUP
    sys.stdout.flush()
    try:
        os.execvp(spec.file or command[0], command)
    except OSError as e:
        _report(command[0], e.errno or errno.EIO, "execve")
        return EXIT_NOT_FOUND if e.errno == errno.ENOENT else EXIT_CANNOT_EXECUTE
    raise AssertionError("unreachable")
