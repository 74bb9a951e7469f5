"""Run as PID 1 of a PID namespace of its own (``unshare --pid --fork --mount-proc``, root or in a user
namespace of its own): a process in a network namespace of its own is pinned by each of SetNS's pins,
then killed, and its PID and its namespace's inode number are given to a stranger that made a network
namespace too (ns_last_pid steers the PID; the kernel hands out a freed inode number to the next
namespace). Prints one JSON object: {pins: what the join of the saved /proc/PID/ns/net did}, with the
same pins checked before the kill."""

from __future__ import annotations

import ctypes
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import pyforkexec as fe
from pyforkexec import ns_pins

NEWNET = 0x40000000


def in_new_netns() -> int:
    """A child that made a network namespace and sleeps in it."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        if ctypes.CDLL(None, use_errno=True).unshare(NEWNET) != 0:
            os._exit(1)
        os.write(w, b".")
        time.sleep(600)
        os._exit(0)
    os.close(w)
    got = os.read(r, 1)
    os.close(r)
    assert got == b".", "unshare(CLONE_NEWNET) failed"
    return pid


def joined(path: str, pins: dict) -> str:
    """What a join of ``path`` with ``pins`` did: "ran in net:[N]", or "ERRNO at FIELD"."""
    try:
        done = fe.run(["/bin/readlink", "/proc/self/ns/net"], capture_output=True,
                      sys=fe.SysProcAttr(setns=[fe.SetNS(path, NEWNET, **pins)]))
    except fe.ChildError as e:
        return f"{e.errno_name} at {e.field}"
    return "ran in " + done.stdout.decode().strip()


def main() -> None:
    target = in_new_netns()
    path = f"/proc/{target}/ns/net"
    meant = os.readlink(path)
    pins = {"inode": {"inode": os.stat(path).st_ino}, "ns_id": {"ns_id": ns_pins.ns_id_of(path)},
            "process_start": {"process_start": ns_pins.process_start(str(target))}}
    if pins["ns_id"]["ns_id"] is None:
        del pins["ns_id"]
    pins["all"] = {k: v for p in pins.values() for k, v in p.items()}
    report = {"meant": meant, "before": {name: joined(path, p) for name, p in pins.items()}}
    os.kill(target, 9)
    os.waitpid(target, 0)
    report["ended"] = {name: joined(path, p) for name, p in pins.items()}
    for _try in range(500):
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(target - 1))
        stranger = in_new_netns()
        if stranger == target and os.readlink(path) == meant:
            break
        os.kill(stranger, 9)
        os.waitpid(stranger, 0)
        time.sleep(0.01)  # (a namespace is freed by a kernel worker, after its last process)
    else:
        report["reused"] = False
        print(json.dumps(report))
        return
    report["reused"] = True
    report["after"] = {name: joined(path, p) for name, p in pins.items()}
    os.kill(stranger, 9)
    os.waitpid(stranger, 0)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
