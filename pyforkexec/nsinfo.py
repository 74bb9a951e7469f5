"""What the kernel says about a process's namespaces: inodes, id maps, hostname, cgroup.

Read from /proc; the values that only exist inside a namespace (the hostname of a UTS namespace, the
links of a network namespace) are read by a thread of this process that joined it alone
(``in_namespace_thread``), or through a socket made inside it so (``socket_in``).

A ``pid`` here is the number /proc gives the process, which is not its pid in the caller's PID
namespace where /proc is an ancestor namespace's (a container that kept the host's /proc): a caller
with a pid of its own (a child's, os.getpid()) gives ``pyforkexec.proc_pid.proc_pid(pid)``.
"""

from __future__ import annotations

import errno
import os

from ._signals import block_ending, held
from .checks import NS_OPEN
from .child import _child, joins  # the project's own setns wrapper; its rule of the caller's own
from .flags import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWTIME,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
)

# namespaces option value -> the file under /proc/PID/ns/
NS_FILES = {
    "user": "user",
    "pid": "pid",
    "net": "net",
    "mount": "mnt",
    "uts": "uts",
    "ipc": "ipc",
    "cgroup": "cgroup",
    "time": "time",
}
# setns(2) nstype of each kind
NSTYPES = {
    "user": CLONE_NEWUSER,
    "pid": CLONE_NEWPID,
    "net": CLONE_NEWNET,
    "mount": CLONE_NEWNS,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "cgroup": CLONE_NEWCGROUP,
    "time": CLONE_NEWTIME,
}
HOST_PID = 1  # "the host" is PID 1's namespaces, or this process's where PID 1's cannot be read


def ns_path(pid, kind):
    return f"/proc/{pid}/ns/{NS_FILES[kind]}"


def inode(path):
    """The inode of a namespace file (a /proc/PID/ns/* link or a bind mount such as /run/netns/x)."""
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def nstype(path):
    """The CLONE_NEW* type of the namespace file ``path`` (a /proc/PID/ns link, or a bind mount of one
    such as /run/netns/NAME); 0 when ``path`` is a file but no namespace (an ordinary file: a netns
    name whose mount went away, or never came). OSError when it cannot be opened."""
    with held():  # a Ctrl-C between the open and the try would leave the fd (and the namespace) open
        fd = os.open(path, NS_OPEN)
        try:
            return joins.kind_of(fd)
        finally:
            os.close(fd)


def fd_nstype(fd):
    """The CLONE_NEW* type of the namespace file open at ``fd``; 0 when it is no namespace."""
    return joins.kind_of(fd)


def may_join(entries, kinds):
    """Whether a SysProcAttr.setns entry may join a namespace of one of ``kinds`` (CLONE_NEW* bits): its
    nstype says so, or it is 0 and its target is one of them or no namespace, or cannot be looked at
    (its join fails then). ``entries`` that are no list, and items that are no SetNS, are their own
    checks' to refuse: not counted."""
    from .attrs import SetNS

    if not isinstance(entries, (list, tuple)):
        return False
    for entry in entries:
        if not isinstance(entry, SetNS):
            continue
        given = entry.nstype if isinstance(entry.nstype, int) else 0
        if given:
            if given & kinds:
                return True
            continue
        try:
            kind = fd_nstype(entry.target) if isinstance(entry.target, int) else nstype(entry.target)
        except (OSError, TypeError, ValueError):
            return True
        if kind == 0 or kind & kinds:
            return True
    return False


def fd_is_callers(fd, kind):
    """Whether the namespace open at ``fd`` (of type ``kind``) is the calling thread's own."""
    return bool(joins.own_types(fd, kind))


def is_callers(path):
    """Whether the namespace file ``path`` is the calling thread's own namespace of its type (for PID:
    the one its children are born in): a join of it would leave a program where it is. False for a
    file that is no namespace; OSError when it cannot be opened."""
    with held():  # as nstype
        fd = os.open(path, NS_OPEN)
        try:
            return bool(joins.own_types(fd, joins.kind_of(fd)))
        finally:
            os.close(fd)


def host_inode(kind):
    """The inode of the host's namespace of ``kind``: PID 1's, or (when PID 1 hides them, as a
    sandbox's init may) this process's, which the module shares with the host it runs on."""
    try:
        return inode(ns_path(HOST_PID, kind))
    except PermissionError:
        return inode(ns_path("self", kind))


def namespaces(pid):
    """{kind: {inode, id, path, same_as_host}} for each namespace kind the kernel has; ``id`` is the
    kernel's id of the namespace (ns_pins.ns_id: never another's), None where the kernel has none."""
    from .ns_pins import ns_id

    out = {}
    for kind in NS_FILES:
        path = ns_path(pid, kind)
        try:
            fd = os.open(path, NS_OPEN)
        except FileNotFoundError:
            continue  # a kernel without this namespace type
        try:
            ino = os.fstat(fd).st_ino
            out[kind] = dict(inode=ino, id=ns_id(fd), path=path, same_as_host=ino == host_inode(kind))
        finally:
            os.close(fd)
    return out


def differing(pid, reference="self"):
    """The kinds of namespace in which ``pid`` differs from ``reference`` (this process by default)."""
    return [k for k in NS_FILES if inode(ns_path(pid, k)) not in (None, inode(ns_path(reference, k)))]


def id_map(pid, which):
    """/proc/PID/uid_map or gid_map as [{container_id, host_id, size}]."""
    with open(f"/proc/{pid}/{which}") as f:
        rows = [line.split() for line in f if line.strip()]
    return [dict(container_id=int(a), host_id=int(b), size=int(c)) for a, b, c in rows]


def cgroup(pid):
    """The process's cgroup v2 path (the "0::" line of /proc/PID/cgroup), None without cgroup v2."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].rstrip("\n")
    return None


def pid_exists(pid):
    return os.path.exists(f"/proc/{pid}")


def socket_in(path, kind, family, type_, proto=0, others_only=False):
    """A socket of the ``kind`` namespace at ``path`` (a socket keeps the network namespace it was made
    in): made by a thread of this process that joins that namespace first and ends right after, so
    that no other thread, the caller's included, ever changes namespaces. A namespace that cannot be
    joined raises OSError; nothing is left open then.

    A thread is about a hundredth of a forked helper's cost (pyroute2's NetNS forks one per socket).
    The kernel lets one thread of a process join a network namespace on its own (setns(2)); not a
    user or mount namespace, which every thread of a process shares (CLONE_FS): refused here.
    """
    import socket

    # KeyboardInterrupt while waiting: the socket the helper made is closed
    return in_namespace_thread(path, kind, lambda: socket.socket(family, type_, proto),
                               "pyforkexec-socket-in", undo=lambda sock: sock.close(),
                               others_only=others_only)


# The namespaces one thread may join alone (setns(2) changes the calling thread's only); not a user
# or mount namespace, which every thread of a process shares.
THREAD_KINDS = ("net", "uts")


def in_namespace_thread(path, kind, fn, name, undo=None, others_only=False):
    """``fn()`` in a thread of this process that first joins the ``kind`` namespace at ``path`` (a
    network or UTS namespace, THREAD_KINDS), checks by inode that it is there, and ends right after
    (in_own_thread). What the thread does there stays there: its sockets, its /proc/sys/net and
    /proc/sys/kernel/hostname, which are its own namespaces'. Unlike a forked helper it copies no lock:
    one another thread holds (an import's, a library's) is waited for, never held forever.

    ``others_only``: ``path`` must be another namespace than the caller's own (a /run/netns name bound
    to the host's, ``ip netns attach NAME 1``, would have ``fn`` act on the host's): OSError (EEXIST)
    otherwise, told from the fd the thread joins, so a name rebound meanwhile cannot slip through."""
    if kind not in THREAD_KINDS:
        raise ValueError(f"a thread joins network or UTS namespaces only, not {kind!r}")

    def join_and_run():
        fd = os.open(path, NS_OPEN)
        try:
            if others_only and joins.own_types(fd, int(NSTYPES[kind])):
                raise OSError(errno.EEXIST, f"{path} is this process's own {kind} namespace, not another one")
            _child.setns(fd, int(NSTYPES[kind]))
            # Fail closed: fn must never run in the namespace the thread came from by mistake.
            joined = os.fstat(fd)
            now = os.stat(f"/proc/thread-self/ns/{NS_FILES[kind]}")
            if (now.st_dev, now.st_ino) != (joined.st_dev, joined.st_ino):
                raise OSError(errno.EINVAL, f"the thread is not in the {kind} namespace it joined", path)
        finally:
            os.close(fd)
        return fn()

    return in_own_thread(join_and_run, name, undo=undo)


def in_own_thread(fn, name, undo=None):
    """``fn()`` in a new thread of this process, which ends right after: what it returns, or its
    exception raised here. For work that changes the calling thread's own namespaces (setns(2) or
    unshare(2) of a network namespace), which then dies with that thread instead of the caller's.

    A KeyboardInterrupt (or any exception a signal handler raises) while waiting is held until the
    thread has finished, then what the thread made is given to ``undo`` (when it made something), and
    the interrupt goes on. The wait is on an event of our own, not ``Thread.join``: a join interrupted
    that way on Python 3.9-3.12 releases the running thread's state lock and marks it stopped
    (bpo-45274's fix), after which a second join returns at once, with the thread still at work.
    """
    import threading

    outcome = {}
    finished = threading.Event()

    def run():
        # The signals that would end the process never go to this thread: a process-directed one is
        # delivered to any thread that does not block it, and this one may be past its Python code but
        # not yet gone when the caller blocks them (ending_blocked) for what must not be cut in two.
        block_ending()
        try:
            outcome["value"] = fn()
        except BaseException as e:  # raised in the caller's thread below
            outcome["error"] = e
        finally:
            finished.set()

    helper = threading.Thread(target=run, name=name)
    interrupted = None
    try:
        helper.start()
    except BaseException as e:  # interrupted in start()'s wait, or no thread could be made
        if helper.ident is None:
            raise
        interrupted = e
    while True:
        try:
            finished.wait()
            helper.join()  # a few instructions more: the thread is past fn
            break
        except BaseException as e:
            interrupted = interrupted or e
            if finished.is_set():  # fn is done: only its thread's last instructions are left
                break
    if interrupted is not None:
        if undo is not None and "value" in outcome:
            undo(outcome["value"])
        raise interrupted
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _read_hostname():
    """The hostname as text: its bytes are the namespace's root's to choose (sethostname takes any),
    and one that is no UTF-8 shows each such byte as \\xNN rather than failing the read (a service
    could otherwise keep every namespace_info of itself from answering)."""
    with open("/proc/sys/kernel/hostname", "rb") as f:
        return f.read().strip().decode("utf-8", "backslashreplace")


def hostname(pid):
    """The hostname inside ``pid``'s UTS namespace: read by a thread that joined it (not a forked
    helper, which a lock held by another thread of a multi-threaded caller could hang)."""
    return in_namespace_thread(ns_path(pid, "uts"), "uts", _read_hostname, "pyforkexec-uts-read")


def describe(pid, with_net=None):
    """The facts namespace_info returns for a process. ``with_net(path)`` reads its network view."""
    facts = dict(
        pid=pid,
        namespaces=namespaces(pid),
        uid_map=id_map(pid, "uid_map"),
        gid_map=id_map(pid, "gid_map"),
        hostname=hostname(pid),
        cgroup=cgroup(pid),
    )
    if with_net is not None:
        facts["net"] = with_net(ns_path(pid, "net"))
    return facts
