"""Run as PID 1 of a PID namespace of its own (root, or in a user namespace of its own): ``pyforkexec
nsenter`` whose target process ends, and whose PID goes to a stranger in a namespace of its own, after
the launcher's last check of the target and before it starts the command (ns_last_pid steers the PID).

``file``: ``--net=/proc/T/ns/net``, T in a network namespace of its own. nsenter(1) opens a FILE as it
reads its option, and joins that.
``mount``: ``--target=T --mount``, T in this mount namespace (the launcher joins it itself, as nsenter
does, which moves the command to its root).

Prints one JSON object: meant (the namespace T was in), stranger (the stranger's), said (the command's
output lines: the namespace it ran in, or the launcher's error), status, reused (the stranger got T's
PID)."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from pyforkexec.cli import nsenter
from pyforkexec.cli.failure import run_command

TYPES = {"file": (0x40000000, "net"), "mount": (0x00020000, "mnt")}


def sleeper(flag: int) -> int:
    """A child that made a namespace of type ``flag`` (0: none) and sleeps in it."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        if flag and ctypes.CDLL(None, use_errno=True).unshare(flag) != 0:
            os._exit(1)
        os.write(w, b".")
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, 4096)  # (a launcher's output pipe held open would keep its reader waiting)
        time.sleep(600)
        os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b".", "unshare failed"
    os.close(r)
    return pid


def main() -> None:
    mode = sys.argv[1]
    flag, name = TYPES[mode]
    target = sleeper(flag if mode == "file" else 0)
    meant = os.readlink(f"/proc/{target}/ns/{name}")
    argv = ([f"--net=/proc/{target}/ns/net"] if mode == "file" else [f"--target={target}", "--mount"])
    out_r, out_w = os.pipe()
    stranger_r, stranger_w = os.pipe()
    launcher = os.fork()
    if launcher == 0:
        os.close(out_r)
        os.close(stranger_r)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        real = nsenter.spawn_and_wait

        def after_the_checks(*args, **kw):  # every check of the target done: it ends, a stranger comes
            os.kill(target, signal.SIGKILL)
            while os.path.exists(f"/proc/{target}"):  # (until PID 1 has reaped it)
                time.sleep(0.001)
            with open("/proc/sys/kernel/ns_last_pid", "w") as f:
                f.write(str(target - 1))
            os.write(stranger_w, b"%d\n" % sleeper(flag))
            return real(*args, **kw)

        nsenter.spawn_and_wait = after_the_checks
        os._exit(run_command(nsenter.main, [*argv, "--", "readlink", f"/proc/self/ns/{name}"]))
    os.close(out_w)
    os.close(stranger_w)
    reaper = threading.Thread(target=os.waitpid, args=(target, 0))
    reaper.start()
    with os.fdopen(out_r) as f:
        said = f.read().splitlines()
    _, status = os.waitpid(launcher, 0)
    with os.fdopen(stranger_r) as f:
        line = f.readline()
    stranger = int(line) if line else 0
    report = {"meant": meant, "said": said, "status": os.waitstatus_to_exitcode(status),
              "reused": stranger == target}
    if stranger:
        report["stranger"] = os.readlink(f"/proc/{stranger}/ns/{name}")
        os.kill(stranger, signal.SIGKILL)
    reaper.join()
    while True:  # (PID 1: reap the stranger)
        try:
            os.wait()
        except ChildProcessError:
            break
    print(json.dumps(report))


if __name__ == "__main__":
    main()
