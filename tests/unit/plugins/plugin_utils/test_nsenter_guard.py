"""nsenter_guard (the program between the nsenter connection's worker and its command), run as the
connection runs it, on real processes."""

from __future__ import annotations

import os

import pytest

# Inside a PID namespace of its own (PID 1 there, the guard's worker): the guard runs a command that
# leaves on SIGINT or SIGTERM, and is told to stop. Its reap of the command is the real one
# (os.waitpid); right after it, the next fork gets the command's pid (ns_last_pid, in this namespace
# only) and makes a session of its own: a bystander whose group has the id the command's group had.
_GROUP_AFTER_REAP = r"""
import json, os, signal
from ansible_collections.pyforkexec.isolation.plugins.plugin_utils import nsenter_guard as guard
from pid_reuse import bystander_on, killed

report_r, report_w = os.pipe()
ready_r, ready_w = os.pipe()
guarding = os.fork()
if guarding == 0:
    reap = os.waitpid

    def steered(pid, options):
        got = reap(pid, options)
        if got[0] and not hasattr(steered, "done"):
            steered.done = True
            bystander = bystander_on(got[0], session=True)
            os.write(report_w, b"%d %d\n" % (got[0], bystander))
        return got

    os.waitpid = steered
    os.dup2(ready_w, 1)
    guard.main(["nsenter_guard", "1", "/bin/sh", "-c",
                "trap 'exit 0' INT TERM; echo ready; while :; do sleep 0.05; done"])
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
def test_the_group_kill_of_a_stop_never_reaches_a_group_that_reused_the_command_s_id(in_pid_namespace):
    """Told to stop, the guard SIGTERMed the command's process group, reaped the command as it left,
    then SIGKILLed the group by the command's pid: the number was free by then, and a process given
    it that had made a session of its own was killed with its group. The command is reaped only
    after the group's kills now."""
    assert in_pid_namespace(_GROUP_AFTER_REAP) == {"guard": 0, "reused": True, "bystander_alive": True}


# Inside a PID namespace that kept the host's /proc (as a container may), PID 1 there the guard's
# worker: the guard's command (nsenter's place) leaves at once on SIGTERM; a process it started, in its
# group, takes a moment to clean up on SIGTERM (as a put's shell removes its part file), then leaves.
_GROUP_WITH_THE_HOST_S_PROC = r"""
import json, os, signal, sys
from ansible_collections.pyforkexec.isolation.plugins.plugin_utils import nsenter_guard as guard

marker = os.path.join(sys.argv[1], "cleaned-up")
member = f"trap 'sleep 0.3; echo done > {marker}; exit 0' TERM; echo ready; while :; do sleep 0.05; done"
ready_r, ready_w = os.pipe()
guarding = os.fork()
if guarding == 0:
    os.dup2(ready_w, 1)
    guard.main(["nsenter_guard", "1", "/bin/sh", "-c", f"sh -c \"{member}\" & trap 'exit 0' TERM; wait"])
    os._exit(99)
os.close(ready_w)
assert os.read(ready_r, 6) == b"ready\n"
os.kill(guarding, signal.SIGTERM)
os.waitpid(guarding, 0)
cleaned_up = os.path.exists(marker)
print(json.dumps({"pid": os.getpid(), "self": os.readlink("/proc/self"), "cleaned_up": cleaned_up}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a PID namespace")
def test_the_group_is_given_its_grace_where_proc_is_another_pid_namespace_s(in_pid_namespace, tmp_path):
    """Told to stop, the guard SIGTERMed the command's group and looked in /proc for what was left of it
    (by each process's group) before its SIGKILL; the group's id, a pid of this namespace, is another
    number in /proc (the host's): nothing was found, and the group was SIGKILLed as soon as the command
    left, its other processes' clean-up cut short."""
    answer = in_pid_namespace(_GROUP_WITH_THE_HOST_S_PROC, str(tmp_path), mount_proc=False)
    assert answer["pid"] == 1 and answer["self"] != "1"  # the case: /proc is not the namespace's
    assert answer["cleaned_up"]
