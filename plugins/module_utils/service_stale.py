# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""What a running service got by a path at its start and that path now names otherwise, though its spec
is unchanged: a converge that kept the service would report it declared while it runs with the old.

- ``joins``: the namespaces its spec joins by path, a named network namespace (``netns``) or a namespace
  file of ``join``, made again under the same path since it started (``ip netns del`` and ``add``, the
  netns module's ``absent`` then ``present``): the service is in the old one, which no path names any
  more (its addresses, routes and peers gone).
- ``binds``: the files bind-mounted into its mount namespace at its start (its own /etc/hosts and
  /etc/resolv.conf, iproute2's /etc/netns/NETNS/ files) that it no longer sees where they were bound. A
  bind holds the file it was made from: one replaced since by a rename (an editor, Ansible's ``copy``,
  which write a new file and rename it) is read by the service in its old text, where an edit in place
  would have reached it. And the kernel takes a mount away in every mount namespace once the file it
  is mounted on is removed: the host's /etc/resolv.conf replaced by a rename (a DHCP client, resolvconf,
  NetworkManager) takes the service's own resolv.conf off, and the service reads the host's.
"""

from __future__ import annotations

import os
import stat

from ansible_collections.pyforkexec.isolation.plugins.module_utils import deps, pidfds
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths


def of_running(find_main, main, sys_attr, mounts):
    """(joins(pid, sys_attr), binds(pid, mounts)) of the service's own process while it runs under the
    main process ``main`` (``find_main()`` finds that one now), read while that process is pinned
    (service_paths.read_workload): a main process or a service that ended since it was found, its
    number given to another process, had that one's namespaces and root compared with the paths, and
    the service restarted for a stranger's (its inodes in the diff). ([], []) when it no longer runs
    under ``main``: nothing it was started with can be told."""
    now, _pid, found = paths.read_workload(find_main, lambda pid: (joins(pid, sys_attr), binds(pid, mounts)))
    return found if now == main and found is not None else ([], [])


def _nstype(path):
    """The CLONE_NEW* type of the namespace file ``path``, None when it is none (or gone)."""
    try:
        return deps.pyforkexec.nsinfo.nstype(path) or None
    except OSError:
        return None


def _running_namespaces(where):
    """{(device, inode)} of every namespace file of the process /proc numbers ``where`` (those its children
    are born in too: a PID or time namespace joined shows there), None once it has ended."""
    try:
        names = os.listdir(f"/proc/{where}/ns")
    except OSError:
        return None
    found = set()
    for name in names:
        try:
            st = os.stat(f"/proc/{where}/ns/{name}")
        except OSError:
            continue
        found.add((st.st_dev, st.st_ino))
    return found


def _running_inode(where, kind):
    """The inode of the process's namespace of type ``kind`` (a single CLONE_NEW* flag), or None."""
    name = {int(flag): file for flag, file in deps.pyforkexec.flags.NAMESPACE_PROC_FILES.items()}.get(kind)
    try:
        return os.stat(f"/proc/{where}/ns/{name}").st_ino if name else None
    except OSError:
        return None


def joins(pid, sys_attr):
    """The joins by path of ``sys_attr`` (the SysProcAttr of the service's spec) whose namespace file now
    names a namespace that the running service ``pid`` is not in, each as (path, the inode the service
    is in, of that type, or None; the file's inode now); [] when none, or when the process has ended.
    A type the spec also creates (cloneflags, unshareflags: a mount namespace copied from the one
    joined) is not looked at: the service is in a namespace of its own there."""
    if pid is None or sys_attr is None or not sys_attr.setns:
        return []
    where = pidfds.in_proc(pid)
    running = _running_namespaces(where) if where is not None else None
    if running is None:
        return []
    created = (sys_attr.cloneflags or 0) | (sys_attr.unshareflags or 0)
    out = []
    for entry in sys_attr.setns:
        if not isinstance(entry.target, str) or entry.inode is not None:
            continue  # a pid's namespaces, or pinned by the spec (its inode): the start checks that one
        kind = entry.nstype or _nstype(entry.target)
        if kind is None or kind & created:
            continue
        try:
            st = os.stat(entry.target)
        except OSError:
            continue  # gone: the start that would follow fails naming it
        if (st.st_dev, st.st_ino) not in running:
            out.append((entry.target, _running_inode(where, kind), st.st_ino))
    return out


def binds(pid, mounts):
    """The file binds of ``mounts`` ((source, target in the service's root) in the order they are made:
    a later one over the same target hides the earlier) whose host source now is another file than the
    running service ``pid`` sees at the target, each as (target, the inode it sees there, source, the
    source's inode now); [] when none, or when the process has ended."""
    where = pidfds.in_proc(pid) if pid is not None else None
    if where is None:
        return []
    last = {}
    for source, target in mounts:
        last[target] = source
    out = []
    for target, source in last.items():
        try:
            now = os.stat(source)
            seen = os.stat(f"/proc/{where}/root{target}")
        except OSError:
            continue  # gone (the plan refuses a missing source), or the process ended
        if stat.S_ISREG(now.st_mode) and (now.st_dev, now.st_ino) != (seen.st_dev, seen.st_ino):
            out.append((target, seen.st_ino, source, now.st_ino))
    return out
