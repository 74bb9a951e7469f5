"""nsenter_guard (the program between the nsenter connection's worker and its command), run as the
connection runs it, on real processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

# Inside a PID namespace of its own (PID 1 there, the guard's worker): the guard runs a command that
# leaves on SIGTERM, and is told to stop. Its reap of the command is the real one (os.waitpid); right
# after it, the next fork gets the command's pid (ns_last_pid, in this namespace only) and makes a
# session of its own: a bystander whose group has the id the command's group had.
_GROUP_AFTER_REAP = r"""
import json, os, signal, sys, time
from ansible_collections.pyforkexec.isolation.plugins.plugin_utils import nsenter_guard as guard

def killed(pid):
    # exited, or a SIGKILL on its way (pending: sent, not yet acted on)
    if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
        return True
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    pending = int(fields["SigPnd"], 16) | int(fields["ShdPnd"], 16)
    return fields["State"].startswith("Z") or bool(pending & (1 << (signal.SIGKILL - 1)))

report_r, report_w = os.pipe()
ready_r, ready_w = os.pipe()
guarding = os.fork()
if guarding == 0:
    reap = os.waitpid

    def steered(pid, options):
        got = reap(pid, options)
        if got[0] and not hasattr(steered, "done"):
            steered.done = True
            with open("/proc/sys/kernel/ns_last_pid", "w") as f:
                f.write(str(got[0] - 1))
            r, w = os.pipe()
            bystander = os.fork()
            if bystander == 0:
                os.setsid()
                os.write(w, b".")
                time.sleep(600)
                os._exit(0)
            os.read(r, 1)
            os.write(report_w, b"%d %d\n" % (got[0], bystander))
        return got

    os.waitpid = steered
    os.dup2(ready_w, 1)
    guard.main(["nsenter_guard", "1", "/bin/sh", "-c",
                "trap 'exit 0' TERM; echo ready; while :; do sleep 0.05; done"])
    os._exit(99)
os.close(report_w)
os.close(ready_w)
assert os.read(ready_r, 6) == b"ready\n"
os.kill(guarding, signal.SIGTERM)
status = os.waitpid(guarding, 0)[1]
command, bystander = (int(n) for n in os.fdopen(report_r).readline().split())
print(json.dumps({"guard": os.waitstatus_to_exitcode(status), "reused": command == bystander,
                  "bystander_alive": not killed(bystander)}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a PID namespace whose next pid it steers")
def test_the_group_kill_of_a_stop_never_reaches_a_group_that_reused_the_command_s_id(child_env):
    """Told to stop, the guard SIGTERMed the command's process group, reaped the command as it left,
    then SIGKILLed the group by the command's pid: the number was free by then, and a process given
    it that had made a session of its own was killed with its group. The command is reaped only
    after the group's kills now."""
    if shutil.which("unshare") is None:
        pytest.skip("needs util-linux unshare")
    res = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c",
                          _GROUP_AFTER_REAP], capture_output=True, text=True, timeout=120, check=False,
                         env=child_env)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"guard": 0, "reused": True, "bystander_alive": True}
