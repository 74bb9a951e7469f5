# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""What can be known of a process's Landlock confinement from outside it (namespace_info's ``landlock``).

The kernel exposes no process's Landlock domain (checked on Linux 6.1 and 6.18): ``/proc/PID/status``
has no Landlock line, ``/proc/PID/attr/`` no ``landlock`` directory (only the major LSMs' files), and
since Landlock ABI 7 (Linux 6.15) a domain shows only in audit records of the accesses it denies. What
is observable is ``NoNewPrivs`` (a Landlock domain needs it, pyforkexec sets it with a policy; it is not
a proof of one) and the kernel's ABI. For a service of the collection, the policy its spec document
asks for is the one it was started with unless that document changed after the process started.
"""

from __future__ import annotations

import json
import os
import time

from ansible_collections.pyforkexec.isolation.plugins.module_utils import deps
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
from ansible_collections.pyforkexec.isolation.plugins.module_utils.isolation import landlock_report


def no_new_privs(pid):
    """The NoNewPrivs flag of ``/proc/PID/status`` (None when the kernel does not show it)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("NoNewPrivs:"):
                return line.split(":", 1)[1].strip() == "1"
    return None


def started_at(pid):
    """When ``pid`` started, in seconds since the epoch: /proc/PID/stat's start time (clock ticks after
    boot, on the boot-time clock) taken back from now (precise to a tick, unlike /proc/stat's btime)."""
    with open(f"/proc/{pid}/stat") as f:
        ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
    age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    return time.time() - age


def service_policy(name):
    """(the Landlock policy of service ``name``'s spec document or None, the document's mtime); (None,
    None) without a document (a service the module did not write)."""
    path = paths.spec_path(name)
    if not os.path.exists(path):
        return None, None
    with open(path, "rb") as f:
        doc = json.load(f)
    spec = deps.pyforkexec.spec.load_spec(doc)
    return spec.attr.sys.landlock if spec.attr.sys is not None else None, os.stat(path).st_mtime


def policy_document(policy):
    """A policy as the module option writes it (paths as text)."""
    return dict(
        paths=[dict(path=os.fsdecode(rule.path), access=list(rule.access)) for rule in policy.paths],
        ports=[dict(port=rule.port, access=list(rule.access)) for rule in policy.ports],
        scopes=list(policy.scopes), mode=policy.mode)


def status(pid, service=None):
    """namespace_info's ``landlock`` of ``pid`` (the process of ``service``, when given)."""
    try:
        abi = deps.pyforkexec.landlock_abi()
    except OSError:  # refused to this module's process (a seccomp filter): unknown, not 0
        abi = None
    out = dict(observable=False, abi=abi, no_new_privs=no_new_privs(pid), policy=None)
    if service is None:
        return out
    policy, written = service_policy(service)
    if written is None:
        return out
    out["spec_path"] = paths.spec_path(service)
    # A document written after the process started (a run that did not restart it) may say another policy.
    out["spec_newer_than_process"] = written > started_at(pid)
    if policy is not None:
        report = landlock_report(policy)
        out.update(policy=policy_document(policy), mode=report["mode"], enforced=report["enforced"],
                   dropped=report["dropped"])
    return out
