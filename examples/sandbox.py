"""Run an untrusted script in a sandbox, in the spirit of bubblewrap.

    python examples/sandbox.py [--no-cgroup] [--memory BYTES] [--pids N] [--] SCRIPT [ARG...]

The script sees:
- a read-only root: a tmpfs holding the host's /usr (and /bin, /lib, /lib64, /sbin, which Debian's
  merged /usr makes symlinks into it; those the host lacks, like /lib64 on arm64, are left out) and
  /etc/alternatives and /etc/ld.so.cache, all read-only;
  each is bound without its submounts (a host's program directories have none), which keeps the
  read-only bind exact on every kernel: before Linux 5.12 a recursive one is refused;
- a fresh /tmp (64 MiB) as its working directory, its own /proc, a minimal /dev, and itself,
  read-only, at /sandbox/<name>;
- no network (a new network namespace with only a down loopback), its own hostname, pid 1;
- 256 MiB of memory without swap and 64 processes at most (a cgroup v2 made for it, removed after);
- uid 65534, no capabilities at all, no_new_privs, and a seccomp filter refusing the system calls a
  script has no business making (mount, ptrace, bpf, kexec, module loading, namespaces...).

It runs with the interpreter of its #! line (/bin/sh without one). As root, the script runs as
nobody; as another user, in a user namespace where that user is nobody (a cgroup then needs a
delegated subtree: use --no-cgroup without one). The new root is a tmpfs mounted over /mnt in the
sandbox's own mount namespace: the host's /mnt is not touched.

examples/sandbox.json is the same sandbox for ``pyforkexec exec --spec`` (as root):
``pyforkexec exec --spec examples/sandbox.json -- /work/SCRIPT`` runs SCRIPT from the current
directory, which it binds read-only at /work.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pyforkexec as fe

READONLY_HOST = ("/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc/alternatives", "/etc/ld.so.cache")
# Denied with EPERM on top of what dropping every capability and no_new_privs already prevent.
DENIED = (
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsmount", "fsconfig",
    "fspick", "mount_setattr", "unshare", "setns", "ptrace", "process_vm_readv", "process_vm_writev", "bpf",
    "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key", "kexec_load", "kexec_file_load",
    "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff", "acct", "quotactl",
    "open_by_handle_at", "name_to_handle_at", "settimeofday", "clock_settime", "adjtimex", "syslog",
)
NOBODY = 65534
NEW_ROOT = "/mnt"


def interpreter(script: Path) -> list[str]:
    """The #! line of the script as argv, or /bin/sh."""
    with script.open("rb") as f:
        first = f.readline(256)
    if not first.startswith(b"#!"):
        return ["/bin/sh"]
    return os.fsdecode(first[2:]).split(maxsplit=1)


def sandbox(script: Path, memory: int, pids: int, cgroup: bool) -> fe.SysProcAttr:
    inside = f"/sandbox/{script.name}"
    mounts = [fe.Mount.tmpfs("/", size=16 << 20, mode=0o755)]
    # optional: a directory this host lacks (/lib64 on arm64) is left out
    mounts += [fe.Mount.bind(p, p, readonly=True, recursive=False, optional=True) for p in READONLY_HOST]
    mounts += [
        fe.Mount.tmpfs("/tmp", size=64 << 20, mode=0o1777),
        fe.Mount.proc("/proc"),
        *fe.minimal_dev("/dev"),
        fe.Mount.bind(str(script), inside, readonly=True, recursive=False),
    ]
    flags = fe.CLONE_NEWNS | fe.CLONE_NEWPID | fe.CLONE_NEWNET | fe.CLONE_NEWUTS | fe.CLONE_NEWIPC
    attr = fe.SysProcAttr(
        cloneflags=flags,
        hostname="sandbox",
        mounts=mounts,
        pivot_root=NEW_ROOT,
        readonly_root=True,
        rlimits=[fe.Rlimit("core", 0, 0), fe.Rlimit("nofile", 256, 256)],
        capabilities=fe.Capabilities(),  # keep nothing
        no_new_privs=True,
        seccomp=fe.SeccompFilter(deny=DENIED),
        pdeathsig=9,
    )
    if cgroup:
        attr.cgroup = fe.Cgroup(f"pyforkexec-sandbox/{os.getpid()}", memory_max=memory, memory_swap_max=0,
                                pids_max=pids)
    if os.geteuid() == 0:
        attr.credential = fe.Credential(uid=NOBODY, gid=NOBODY)
    else:  # a user namespace in which the caller is nobody (and, until execve, has the capabilities)
        attr.cloneflags |= fe.CLONE_NEWUSER
        attr.uid_mappings = [fe.SysProcIDMap(container_id=NOBODY, host_id=os.getuid(), size=1)]
        attr.gid_mappings = [fe.SysProcIDMap(container_id=NOBODY, host_id=os.getgid(), size=1)]
    return attr


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-cgroup", action="store_true", help="no memory and pids limits (no cgroup v2)")
    parser.add_argument("--memory", type=int, default=256 << 20, help="memory.max in bytes (256 MiB)")
    parser.add_argument("--pids", type=int, default=64, help="pids.max (64)")
    parser.add_argument("script", type=Path)
    parser.add_argument("args", nargs=argparse.REMAINDER)
    opts = parser.parse_args(argv)
    script = opts.script.resolve()
    cmd = [*interpreter(script), f"/sandbox/{script.name}", *opts.args]
    attr = fe.ProcAttr(dir="/tmp", env=["PATH=/usr/bin:/bin", "HOME=/tmp", "LANG=C.UTF-8"],
                       sys=sandbox(script, opts.memory, opts.pids, not opts.no_cgroup))
    try:
        proc = fe.start_process(cmd[0], cmd, attr)
    except fe.CgroupError as e:
        print(f"sandbox: {e.strerror} (run with --no-cgroup to go without limits)", file=sys.stderr)
        return 125
    except fe.ChildError as e:
        print(f"sandbox: {e}", file=sys.stderr)
        return 125
    code = proc.wait()
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
