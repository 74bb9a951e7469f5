"""A shell in new UTS, PID, user, mount and IPC namespaces, shown beside the host.

Run it with .venv/bin/python examples/demo.py. The child is root in its
user namespace (uid 0 maps to the caller's uid), renames its own host, and is pid 1.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pyforkexec as fe

NAMESPACES = ("uts", "pid", "user", "mnt", "ipc")

# Prints "key=value" lines that report() lines up with the host's.
CHILD_SCRIPT = f"""
hostname demo-box
echo "hostname=$(hostname)"
echo "pid=$$"
echo "uid_map=$(cat /proc/self/uid_map)"
echo "id=$(id)"
for ns in {" ".join(NAMESPACES)}; do echo "ns:$ns=$(readlink /proc/self/ns/$ns)"; done
"""


def host_values() -> dict[str, str]:
    values = {
        "hostname": socket.gethostname(),
        "pid": str(os.getpid()),
        "uid_map": Path("/proc/self/uid_map").read_text().strip(),
        "id": subprocess.run(["id"], capture_output=True, text=True, check=True).stdout.strip(),
    }
    values.update((f"ns:{ns}", os.readlink(f"/proc/self/ns/{ns}")) for ns in NAMESPACES)
    return values


def namespaced_values() -> dict[str, str]:
    attr = fe.SysProcAttr(
        cloneflags=fe.CLONE_NEWUTS | fe.CLONE_NEWPID | fe.CLONE_NEWUSER | fe.CLONE_NEWNS | fe.CLONE_NEWIPC,
        uid_mappings=[fe.SysProcIDMap(container_id=0, host_id=os.getuid(), size=1)],
        gid_mappings=[fe.SysProcIDMap(container_id=0, host_id=os.getgid(), size=1)],
    )
    done = fe.run(["/bin/sh", "-c", CHILD_SCRIPT], sys=attr, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                  capture_output=True, text=True, check=True)
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def _one_line(text: str) -> str:
    return " ".join(text.split())  # uid_map pads its columns


def report(host: dict[str, str], child: dict[str, str]) -> str:
    host = {k: _one_line(v) for k, v in host.items()}
    child = {k: _one_line(v) for k, v in child.items()}
    width = max(len(k) for k in host)
    col = max(len(v) for v in host.values())
    rows = [f"{'':{width}}  {'host':{col}}  new namespaces", f"{'':{width}}  {'-' * col}  {'-' * 14}"]
    rows += [f"{key:{width}}  {host[key]:{col}}  {child.get(key, '?')}" for key in host]
    return "\n".join(rows)


def main() -> int:
    print("flags:", fe.CloneFlags.describe(
        fe.CLONE_NEWUTS | fe.CLONE_NEWPID | fe.CLONE_NEWUSER | fe.CLONE_NEWNS | fe.CLONE_NEWIPC))
    try:
        child = namespaced_values()
    except fe.ChildError as exc:
        # e.g. "operation not permitted (at clone)" where unprivileged user namespaces are disabled
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"demo failed: the shell exited {exc.returncode}:\n{exc.stderr}", file=sys.stderr)
        return 1
    print(report(host_values(), child))
    return 0


if __name__ == "__main__":
    sys.exit(main())
