"""What a running service was started with, compared with what its paths name now: read in the service's
own process, never in one that took a number found for it."""

from __future__ import annotations

import os

import pytest

# Inside a PID namespace of its own (PID 1 there): a stand-in daemon (its name and pid file held, as
# pyforkexec.service.daemon holds them) whose child, its service, sees the bound file where it is on the
# host (bound there at its start). Right after the service is listed it is killed (and reaped by its
# daemon, as at a restart), and the next fork gets its number (ns_last_pid, in this namespace only): a
# bystander chrooted where another file is at that path.
_STALE_OF_A_REUSED_PID = r"""
import json, os, signal, sys, time
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_stale
from pid_reuse import stand_in
from pyforkexec.service import singleton
from pyforkexec.service.daemon import lock_pid_file

name, tmp = sys.argv[1], sys.argv[2]
paths.RUN_DIR = tmp
bound = os.path.join(tmp, "hosts")
with open(bound, "w") as f:
    f.write("the service's\n")
elsewhere = os.path.join(tmp, "root")
os.makedirs(elsewhere + os.path.dirname(bound))
with open(elsewhere + bound, "w") as f:
    f.write("a stranger's\n")
pid_file = paths.pid_file(name)
main, _service = stand_in(lambda: [singleton.claim(pid_file), lock_pid_file(pid_file)])
seen = {}
listed = paths.workload_pid

def steered(pid, wait=0.0, exited=False):
    kid = listed(pid, wait, exited)
    if kid is not None and not seen:
        os.kill(kid, signal.SIGKILL)
        while os.path.exists(f"/proc/{kid}"):  # until its daemon reaped it
            time.sleep(0.001)
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(kid - 1))
        r, w = os.pipe()
        bystander = os.fork()
        if bystander == 0:
            os.chroot(elsewhere)
            os.write(w, b".")
            time.sleep(600)
            os._exit(0)
        os.read(r, 1)
        seen.update(gone=kid, bystander=bystander)
    return kid

paths.workload_pid = steered
found = lambda: paths.daemon_pid(name, wait=0.0)
stale = service_stale.of_running(found, main, None, [(bound, bound)])
print(json.dumps({"reused": seen["gone"] == seen["bystander"], "stale": stale}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a PID namespace whose next pid it steers")
def test_a_process_that_reused_the_service_s_pid_is_not_compared_as_the_service(in_pid_namespace, tmp_path):
    """A converge compared the files bound into the running service and the namespaces it joins with
    what their paths name now in the main process's child, by the number listed: a service that ended
    (its restart) between the listing and the reads, its number reused, had the newcomer's root and
    namespaces compared, and was restarted for them, the stranger's inodes in its diff. The service's
    process is read while pinned now: none runs here, and nothing is stale."""
    for _attempt in range(5):  # (the next fork takes the freed number almost always: the premise)
        answer = in_pid_namespace(_STALE_OF_A_REUSED_PID, f"h160-stale-{os.getpid()}", str(tmp_path))
        if answer["reused"]:
            break
    assert answer["reused"]
    assert answer["stale"] == [[], []]
