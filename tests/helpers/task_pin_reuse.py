"""Run as PID 1 of a PID namespace of its own (root, or in a user namespace of its own): a thread that
made a network namespace is named by its ``/proc/PID/task/TID/ns/net`` and pinned by ``process_start``,
then ends, and its TID goes to the next thread of the same process, which makes a network namespace
too (ns_last_pid steers the TID). Prints one JSON object: meant, stranger (the namespaces), reused, and
what a join of the path pinned by the thread's start time did, before (``before``) and after
(``after``) the reuse, and by the process's (``after_process``)."""

from __future__ import annotations

import ctypes
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import pyforkexec as fe
from pyforkexec import ns_pins

NEWNET = 0x40000000


def thread_in_netns(release: threading.Event) -> tuple[threading.Thread, int]:
    """A thread that made a network namespace, and waits for ``release``; (it, its TID)."""
    box, ready = {}, threading.Event()

    def run() -> None:
        box["made"] = ctypes.CDLL(None, use_errno=True).unshare(NEWNET) == 0
        box["tid"] = threading.get_native_id()
        ready.set()
        release.wait()

    thread = threading.Thread(target=run)
    thread.start()
    ready.wait()
    assert box["made"], "unshare(CLONE_NEWNET) failed"
    return thread, box["tid"]


def joined(path: str, started: int) -> str:
    try:
        done = fe.run(["/bin/readlink", "/proc/self/ns/net"], capture_output=True,
                      sys=fe.SysProcAttr(setns=[fe.SetNS(path, NEWNET, process_start=started)]))
    except fe.ChildError as e:
        return f"{e.errno_name} at {e.field}"
    return done.stdout.decode().strip()


def main() -> None:
    release = threading.Event()
    thread, tid = thread_in_netns(release)
    pid = os.getpid()
    path = f"/proc/{pid}/task/{tid}/ns/net"
    meant = os.readlink(path)
    started = ns_pins.process_start(f"{pid}/task/{tid}")
    report = {"meant": meant, "before": joined(path, started)}
    release.set()
    thread.join()
    for _try in range(200):
        while os.path.exists(f"/proc/{pid}/task/{tid}"):
            time.sleep(0.001)
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(tid - 1))
        release = threading.Event()
        thread, again = thread_in_netns(release)
        if again == tid:
            break
        release.set()
        thread.join()
    report["reused"] = again == tid
    if again == tid:
        report["stranger"] = os.readlink(path)
        report["after"] = joined(path, started)
        report["after_process"] = joined(path, ns_pins.process_start(str(pid)))
    release.set()
    thread.join()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
