"""The start check's watch of a started service's process: the pid it is given was reported (or read in
/proc) before the watch opens its pidfd, and may be another process's by then."""

from __future__ import annotations

import os

import pytest

# Inside a PID namespace of its own (PID 1 there): a daemon whose service exits at once and is reaped by
# it; the next fork, this process's, gets the service's pid (ns_last_pid, in this namespace only): a
# bystander that runs through the window. The watch is then made with the service's pid, as a module run
# makes it with the pid its start reported.
_REUSED = r"""
import json, os, sys, time
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_start_check as check
from pid_reuse import bystander_on

r, w = os.pipe()
main = os.fork()
if main == 0:
    os.close(r)
    service = os.fork()
    if service == 0:
        os._exit(1)
    os.waitpid(service, 0)
    os.write(w, b"%d\n" % service)
    while True:
        time.sleep(600)
os.close(w)
service = int(os.fdopen(r).readline())
bystander = bystander_on(service)
watch = check.Watch(sys.argv[1], "direct", main, service, 0.3)
check.wait_all([watch])
print(json.dumps({"reused": bystander == service, "gone": watch.gone}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a PID namespace whose next pid it steers")
def test_a_watch_never_takes_a_process_that_reused_the_service_pid_for_the_service(in_pid_namespace):
    """The watch opened a pidfd on the service's pid as given: a service that had exited and been
    reaped by then had left its number to any process, which was watched in its place, and the start
    check passed a service that ended within its window. The pidfd is kept only when /proc, read after
    the open, shows the service's parent's child."""
    assert in_pid_namespace(_REUSED, f"h109-watch-{os.getpid()}") == {"reused": True, "gone": "process"}
