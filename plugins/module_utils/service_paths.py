# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""Where a pyforkexec service lives, and how its process is found, under either manager.

Shared by the service and namespace_info modules (on the managed host) and the nsenter connection
plugin (on the controller). Under systemd the unit's main process is the launcher
(``pyforkexec exec --spec``); with ``manager: direct`` it is ``python -m pyforkexec.daemon``, found
as the process holding its name (pyforkexec.service.singleton: an abstract unix socket it holds while
it runs, whatever becomes of its pid file), its pid file only a hint; by its pid file's lock when
another user's process holds that name (daemon_pid). Either way the service's own process is the main
process's child.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
import subprocess
import time

from ansible_collections.pyforkexec.isolation.plugins.module_utils import ns_target, pidfds

SPEC_DIR = "/etc/pyforkexec"
RUN_DIR = "/run/pyforkexec"
LOG_DIR = "/var/log/pyforkexec"
UNIT_DIR = "/etc/systemd/system"
NETNS_CONFIG_DIR = os.path.join(SPEC_DIR, "netns")  # the options of persisted network namespaces
NETNS_TEMPLATE = "pyforkexec-netns@.service"  # the unit that brings them back at boot
_NAME = re.compile(r"(?![0-9]+\Z)[A-Za-z0-9][A-Za-z0-9_.@-]{0,200}")  # digits alone are a pid
_PID = re.compile(r"[1-9][0-9]{0,9}")  # ASCII digits, as /proc names a process (fullmatch: "$" takes "\n")
PID_MAX = 1 << 22  # the kernel's limit (pid_max at most 4194304)


class ServiceError(RuntimeError):
    """A service that cannot be found, started or stopped; the message says why."""


def check_name(name, option="name"):
    """A service's name; ``option``: the option the message names."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ServiceError(f"{option}: {name!r} is not a valid service name (letters, digits, '_', '.', "
                           "'@', '-', not digits alone: those are a pid)")
    return name


def is_pid(target):
    """Whether ``target`` (a connection's remote_addr) is a pid: ASCII digits, no sign or padding."""
    return bool(_PID.fullmatch(str(target))) and int(target) <= PID_MAX


def spec_path(name):
    return os.path.join(SPEC_DIR, f"{name}.json")


def pid_file(name):
    return os.path.join(RUN_DIR, f"{name}.pid")


def log_file(name):
    return os.path.join(LOG_DIR, f"{name}.log")


def hosts_path(name):
    """The service's own /etc/hosts (module_utils/name_files.py), bind-mounted over the one it reads."""
    return os.path.join(SPEC_DIR, f"{name}.hosts")


def resolv_path(name):
    """The service's own /etc/resolv.conf (module_utils/name_files.py), bind-mounted likewise."""
    return os.path.join(SPEC_DIR, f"{name}.resolv.conf")


LOG_TAIL_BYTES = 64 * 1024  # the most a failure reads of a log: its end (the daemon never rotates it)


def log_lines(name, offset=0, lines=20):
    """The last ``lines`` whole lines of service ``name``'s log (manager=direct) from byte ``offset`` on,
    read from its last LOG_TAIL_BYTES at most (a log of years is not read whole for a failure's last
    words); [] when there is none, or what is at its path cannot be read as a log (a directory; a FIFO
    or a device, opened without waiting for a writer and never read)."""
    try:
        fd = os.open(log_file(name), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return []
        start = max(offset, st.st_size - LOG_TAIL_BYTES)
        data = os.pread(fd, LOG_TAIL_BYTES, start)
        # Started within a line (the tail of a longer log): that line is not whole.
        cut = start > offset and os.pread(fd, 1, start - 1) != b"\n"
    except OSError:
        return []
    finally:
        os.close(fd)
    found = data.decode(errors="replace").splitlines()
    return found[1 if cut else 0:][-lines:]


def wired_netns_path(name):
    """Names the namespaces the services module wired for service ``name`` (its ``wiring``), one a
    line: those it may remove once the service leaves them (a namespace the service merely joins is
    another's)."""
    return os.path.join(SPEC_DIR, f"{name}.netns")


def check_files(name):
    """Refuses (ServiceError, naming it) a directory where one of service ``name``'s files goes (made
    there by hand): a run reads, writes or removes each of them as a file, and met it with a traceback,
    halfway through a removal. Checked before anything changes."""
    for what, path in (("spec", spec_path(name)), ("unit", unit_path(name)), ("pid file", pid_file(name)),
                       ("log", log_file(name)), ("restart mark", pending_path(name)),
                       ("wiring record", wired_netns_path(name)), ("hosts file", hosts_path(name)),
                       ("resolv.conf", resolv_path(name))):
        if os.path.isdir(path):
            raise ServiceError(f"{path}: is a directory, where service {name}'s {what} goes: not one this "
                               "module made; remove it by hand")


def wired_netns(name):
    """The namespaces the services module wired for service ``name`` and has not removed: the one it
    is wired into first, if any, then those it left while another service joined them ([] if none)."""
    try:
        with open(wired_netns_path(name)) as f:
            return [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        return []


def pending_path(name):
    """Marks a service whose files were rewritten and that has not been restarted from them yet."""
    return os.path.join(RUN_DIR, f"{name}.pending")


def mark_pending(name):
    os.makedirs(RUN_DIR, mode=0o755, exist_ok=True)
    os.close(os.open(pending_path(name), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))


def clear_pending(name):
    with contextlib.suppress(FileNotFoundError):
        os.unlink(pending_path(name))


# Seconds a daemon has to report its service's start (service_direct.start), after which it is taken for
# wedged: its starter kills it; a converge that finds the lock held by it alone (its starter gone: killed
# outright meanwhile) gives up START_MARGIN seconds later (converge_lock).
START_TIMEOUT, START_MARGIN = 30.0, 5.0
START_LOCK_FD_OPTION = "--start-lock-fd"


# One converge of this host's services at a time (the service, services and netns modules): two runs that
# both found a service new would both start it, and the one that lost would stop and undeclare it.
@contextlib.contextmanager
def converge_lock():
    """Hold the host's service converge lock (waiting for another run to finish): pyforkexec.host_lock's
    ``services`` (imported here: the nsenter connection, on the controller, uses this module too). A lock
    held only by daemons that never reported their start (_wedged) is not waited for: LockWedged naming
    them, raised before anything changed. (A pyforkexec from before host_lock's give_up waits for ever.)"""
    from pyforkexec import host_lock  # pylint: disable=import-outside-toplevel

    if not hasattr(host_lock, "LockHeld"):
        with host_lock.host_lock("services"):
            yield
        return
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(host_lock.host_lock("services", give_up=_wedged))
        except host_lock.LockHeld as e:
            pids = " ".join(str(holder.pid) for holder in e.holders)
            raise LockWedged(f"{e.strerror}; kill it (kill -KILL {pids}), then run again") from None
        yield


class LockWedged(ServiceError):
    """The converge lock is held by daemons that will never release it (converge_lock)."""


def _wedged(holders):
    """Why the converge lock held by ``holders`` (pyforkexec.host_lock.Holder) is not to be waited for, or
    None: each holds it as a daemon given its starter's lock (--start-lock-fd) until its start is
    reported, START_TIMEOUT + START_MARGIN seconds ago or more. Its starter, which would have killed it
    by then, is gone (else it would hold the lock too): nothing else ends its hold."""
    ages = [_age(holder.pid) if START_LOCK_FD_OPTION in holder.argv else None for holder in holders]
    if any(age is None or age < START_TIMEOUT + START_MARGIN for age in ages):
        return None
    return (f"a daemon given its starter's lock until its service's start is reported, started "
            f"{min(ages):.0f}s ago, never reported it ({START_TIMEOUT:g}s allowed): it is wedged, and its "
            "starter is gone")


def _age(pid):
    """Seconds since process ``pid`` (of this PID namespace: pidfds.in_proc) started, None if it is gone
    (or None: a holder of another PID namespace, which host_lock names no pid)."""
    try:
        where = pidfds.in_proc(pid) if pid is not None else None
        if where is None:
            return None
        with open(f"/proc/{where}/stat") as f:
            started = int(f.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime") as f:
            return float(f.read().split()[0]) - started
    except (OSError, ValueError, IndexError):
        return None


def converge_lock_fd():
    """The fd of the converge lock while this run holds it (for a daemon it starts to hold it too until
    its start is reported: service_direct.start), else None; None too with a pyforkexec from before."""
    from pyforkexec import host_lock  # pylint: disable=import-outside-toplevel

    held_fd = getattr(host_lock, "held_fd", None)
    return None if held_fd is None else held_fd("services")


def unit_name(name):
    return f"pyforkexec-{name}.service"


def unit_path(name):
    return os.path.join(UNIT_DIR, unit_name(name))


def netns_config_path(netns):
    """The persisted options of netns ``netns`` (what ``pyforkexec netns up`` reads at boot)."""
    return os.path.join(NETNS_CONFIG_DIR, f"{netns}.json")


def netns_unit_name(netns):
    """The instance of the template unit that restores netns ``netns`` at boot."""
    return NETNS_TEMPLATE.replace("@", f"@{netns}")


def netns_template_path():
    return os.path.join(UNIT_DIR, NETNS_TEMPLATE)


# Where systemd's unified mode has cgroup2: only there does it write a unit's limits in cgroup v2 files
# (service_systemd.check_host_limits; the role's plan asks it of the host it probed).
SYSTEMD_UNIFIED_ROOT = "/sys/fs/cgroup"


def systemd_booted():
    """sd_booted(3): whether PID 1 is systemd."""
    return os.path.isdir("/run/systemd/system")


def locked_pid(path, wait=1.0):
    """The pid in a pid file that its daemon holds locked, None when no daemon runs. A locked file
    without a whole line yet is a daemon writing its pid (its first line is the pid once written):
    read again for up to ``wait`` seconds. A file held locked that names no process holding it open
    (emptied or edited by hand) is a ServiceError: a daemon runs, and which one cannot be told (it is
    neither "not running" nor a pid to signal)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:  # held: the daemon runs
                line, whole, _rest = os.pread(fd, 32, 0).decode(errors="replace").partition("\n")
                if whole and line.isascii() and line.isdigit() and _holds_lock(int(line), fd):
                    return int(line)
            else:
                return None  # a stale file: nobody holds it
        finally:
            os.close(fd)
        if time.monotonic() >= deadline:
            raise ServiceError(f"{path} is locked by a running daemon but does not name it (edited by "
                               f"hand?): stop that daemon by hand (fuser {path}), then run again")
        time.sleep(0.005)


def stale_pid_file(path):
    """Whether ``path`` is a pid file no daemon holds (one killed outright left it, naming a dead pid
    or, once it is reused, another process)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # held: a daemon runs
    finally:
        os.close(fd)
    return True


def remove_stale_pid_file(path):
    """Remove the pid file ``path`` if no daemon holds it; whether it did. It is locked while it goes,
    as a daemon that stops removes its own: a daemon starting meanwhile either holds the file first
    (then it stays), or finds the one it opened unlinked and makes another (daemon.lock_pid_file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a daemon holds it
        try:
            still = os.stat(path)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        if (still.st_dev, still.st_ino) != (held.st_dev, held.st_ino):
            return False  # another file there now: a daemon's
        os.unlink(path)
        return True
    finally:
        os.close(fd)


def _singleton():
    """pyforkexec.service.singleton (imported here: the nsenter connection, on the controller, uses this
    module too). Raises ServiceError where this Python's pyforkexec predates it."""
    try:
        from pyforkexec.service import singleton  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise ServiceError("the pyforkexec in this Python predates the daemon's name (one daemon per "
                           "service whatever becomes of its pid file): install this collection's "
                           "pyforkexec (the role isolated_service does)") from None
    return singleton


def daemon_pid(name, wait=1.0):
    """The pid of service ``name``'s running pyforkexec daemon, None when none runs: the process holding
    its name (pyforkexec.service.singleton), found whether its pid file is there or not (removed by
    hand, its directory cleaned); the pid file's pid is asked first. A daemon of a pyforkexec from before
    the name is found by its pid file's lock alone (locked_pid), and so is one that started while
    another user's process held its name (a squatter: any process of the host's network namespace can
    bind an abstract name): the squatter is never taken for the daemon, nor keeps it from starting. A
    name held by no process this one can see, for ``wait`` seconds, is a ServiceError: it is neither
    "not running" nor a daemon to signal."""
    singleton, path = _singleton(), pid_file(name)
    deadline = time.monotonic() + wait
    while True:
        found = singleton.held_by(path, _pid_in(path))
        if found is not None and found.uid == os.geteuid() and found.pid is not None:
            return found.pid
        if (found is not None and found.uid != os.geteuid()) or singleton.bound_inode(path) is None:
            return locked_pid(path, wait)  # a squatter's (held by a process or in flight), or none's
        if time.monotonic() >= deadline:
            raise ServiceError(f"service {name}: its daemon's name @{singleton.name(path)} is held, but by "
                               "no process seen here (another PID namespace?): stop that daemon by hand")
        time.sleep(0.005)


def _pid_in(path):
    """The pid a pid file names (its first line), None if it names none or is gone: a hint only."""
    try:
        with open(path, "rb") as f:
            line = f.readline(32).strip()
    except OSError:
        return None
    return int(line) if line.isascii() and line.isdigit() and 0 < int(line) <= PID_MAX else None


def is_daemon(pid, name):
    """Whether process ``pid`` is service ``name``'s pyforkexec daemon now: it holds the daemon's name
    (or, for a daemon from before the name or one started beside a squatter of it, as daemon_pid says,
    none of this user holds it and ``pid`` holds the pid file's lock). A pid found before may be another
    process's by the time it is used (the daemon ended, the number was reused): whoever opens a pidfd on
    it asks this after the open, then whether the pidfd's process still holds the number (pidfds.alive),
    so that the process asked about was the pidfd's."""
    singleton, path = _singleton(), pid_file(name)
    found = singleton.held_by(path, pid)
    if found is not None and found.uid == os.geteuid():
        return found.pid == pid
    if found is None and singleton.bound_inode(path) is not None:
        return False  # held by no process seen here: not ``pid``
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:  # removed by its daemon as it ended
        return False
    try:
        return _holds_lock(pid, fd)
    finally:
        os.close(fd)


def _holds_lock(pid, fd):
    """Whether process ``pid`` holds the flock on the file open at ``fd`` (/proc/locks: a daemon holds
    its pid file's)."""
    # By inode alone (and the holder's pid): /proc/locks names the superblock's device, which stat
    # does not on btrfs (an anonymous device per subvolume) or an overlay. The pid as /proc numbers
    # it: a daemon writes its own (os.getpid()), which /proc may number otherwise (pidfds.in_proc).
    inode = f":{os.fstat(fd).st_ino}"
    try:
        where = pidfds.in_proc(pid)
        if where is None:
            return False  # gone
        with open("/proc/locks") as f:
            return any(line.split()[1:5] == ["FLOCK", "ADVISORY", "WRITE", str(where)]
                       and line.split()[5].endswith(inode) for line in f)
    except OSError:
        return True  # no /proc/locks to ask: the pid as written


def systemd_main_pid(name, run=None):
    """The unit's MainPID (None if it is not running). ``run(argv) -> (rc, out, err)``."""
    argv = ["systemctl", "show", "--property=MainPID", "--value", unit_name(name)]
    if run is None:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        rc, out = proc.returncode, proc.stdout
    else:
        rc, out = run(argv)[:2]
    text = out.strip()
    return int(text) if rc == 0 and text.isdigit() and int(text) > 0 else None


def children(pid):
    """The children of ``pid``, pids of this PID namespace both (/proc may number them in another:
    pidfds.in_proc)."""
    out = []
    where = pidfds.in_proc(pid)
    try:
        tasks = os.listdir(f"/proc/{where}/task") if where is not None else []
    except FileNotFoundError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{where}/task/{tid}/children") as f:
                out += [pidfds.from_proc(int(p)) for p in f.read().split()]
        except FileNotFoundError:
            continue
    return [child for child in out if child is not None]


def workload_pid(main_pid, wait=0.0, exited=False):
    """The service's own process: the main process's child (None between restarts). ``wait``: how
    long to give a main process that was just started to spawn it (systemd's start returns first).
    A child that has exited is none: until its reap (the pyforkexec daemon's, on its way back from
    pyforkexec-waiter at each end of its service) it is a zombie, which was reported as the running
    service, with the namespaces of a process that has none left (user and pid alone). ``exited``:
    one is taken all the same (for a stop, which kills its process group)."""
    if main_pid is None:
        return None
    deadline = time.monotonic() + wait
    while True:
        kids = [kid for kid in children(main_pid) if exited or not _ended(kid)]
        if kids or time.monotonic() >= deadline or pidfds.in_proc(main_pid) is None:
            return kids[0] if kids else None
        time.sleep(0.05)


PINNED_TRIES = 3  # looks read_workload takes at a service whose process changed under it (a restart)


def read_workload(find_main, read, wait=0.0):
    """(main pid, the service's own pid, ``read(pid)``), each read while its process is pinned: (main,
    None, None) when no service process runs (``main`` None: none at all). ``find_main()`` gives the
    main process's pid (or None); ``read`` reads the service's process by its pid (of this PID
    namespace). Between the look-ups and the reads a process may end and its number go to another
    process (the main one's to anything, the service's at its restart): /proc then shows that one,
    whose namespaces, root or command line were reported and compared as the service's. So the main
    process is pinned (its pidfd) and found again after, the service's process pinned as its child
    (pidfds.child_pidfd), and ``read`` counts only if that one has not ended after it; else looked
    again (PINNED_TRIES), then taken for none. ``wait``: as workload_pid's."""
    for _attempt in range(PINNED_TRIES):
        main = find_main()
        if main is None:
            return None, None, None
        try:
            main_fd = os.pidfd_open(main)
        except ProcessLookupError:
            continue  # ended since it was found
        try:
            if find_main() != main:
                continue  # it ended before the pin: the pidfd is another process's
            pid = workload_pid(main, wait)
            if pid is None:
                if pidfds.alive(main_fd):
                    return main, None, None  # (between two runs of its service)
                continue
            fd = pidfds.child_pidfd(pid, main, main_fd)
            if fd is None:
                continue
            try:
                value = read(pid)
                if not ns_target.has_ended(fd, None, None):
                    return main, pid, value
            finally:
                os.close(fd)
        finally:
            os.close(main_fd)
    return find_main(), None, None


def _ended(pid):
    """Whether process ``pid`` (of this PID namespace) has exited: gone, or a zombie."""
    where = pidfds.in_proc(pid)
    try:
        return where is None or ns_target.stat_field(where, 0) in (b"Z", b"X")
    except ns_target.TargetGone:
        return True


def resolve_manager(wanted, booted=None):
    """The manager a service runs under: ``wanted`` (auto, systemd or direct), auto decided by whether
    PID 1 is systemd (``booted``, else sd_booted). Raises ServiceError for systemd without it."""
    booted = systemd_booted() if booted is None else booted
    if wanted == "systemd" and not booted:
        raise ServiceError("manager=systemd: PID 1 is not systemd on this host (a container or "
                           "a CI runner?): use manager=direct, or auto")
    if wanted == "auto":
        return "systemd" if booted else "direct"
    return wanted


def main_pid(name, manager="auto", run=None):
    """(manager, main pid) of a running service; (manager, None) when it does not run."""
    if manager in ("auto", "direct"):
        pid = daemon_pid(name)
        if pid is not None or manager == "direct":
            return "direct", pid
    if manager == "systemd" or systemd_booted():
        return "systemd", systemd_main_pid(name, run)
    return "direct", None


def resolve_pid(target, manager="auto", run=None):
    """The pid of the process a name or pid stands for: a number is a pid (is_pid), else a service
    name (check_name: a service's name is never digits alone)."""
    text = str(target)
    if is_pid(text):
        return int(text)
    if text.isascii() and text.isdigit():
        raise ServiceError(f"{text!r} is not a pid (1 to {PID_MAX}, without leading zeros) nor a service "
                           "name (never digits alone)")
    check_name(text)
    found, main = main_pid(text, manager, run)
    if main is None:
        raise ServiceError(f"service {text} is not running (manager {found})")
    pid = workload_pid(main)
    if pid is None:
        raise ServiceError(f"service {text}: its main process {main} has no child (restarting?)")
    return pid
