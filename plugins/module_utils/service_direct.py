# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""manager: direct: the service as ``python -m pyforkexec.daemon``, started detached, stopped by SIGTERM.

The daemon's command line carries every setting (restart policy, stop timeout, paths), so comparing
the running daemon's /proc/PID/cmdline with the wanted one tells whether it must be restarted.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time

from ansible_collections.pyforkexec.isolation.plugins.module_utils import affinity, deps, pidfds
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths

# What a service gets as its environment when its spec sets none (systemd gives services the same PATH).
DAEMON_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
READY_FD_OPTION, START_LOCK_FD_OPTION = "--ready-fd", paths.START_LOCK_FD_OPTION
WAITER, RESUME_OPTION = "pyforkexec-waiter", "--resume"


def daemon_argv(name, python, restart, stop_timeout, restart_sec, stop_signal="SIGTERM"):
    # --stop-signal only when not the daemon's default: the daemons started before the option keep a
    # command line that is still the wanted one, not restarted by the first converge after an upgrade.
    chosen = [] if stop_signal == "SIGTERM" else ["--stop-signal", stop_signal]
    return [python, "-m", "pyforkexec.daemon", "--name", name, "--spec", paths.spec_path(name),
            "--pid-file", paths.pid_file(name), "--log-file", paths.log_file(name), "--restart", restart,
            "--restart-sec", f"{restart_sec:g}", "--stop-timeout", str(stop_timeout), *chosen]


def running_argv(pid):
    """The command line a running daemon was started with (daemon_argv's), or None if it is gone. A
    command line reads empty while its process execs, as the daemon does at each start and end of its
    service (to pyforkexec-waiter and back): it is read again then, not taken for another (a converge
    would restart the service for it, a stop would not know its stop timeout). Read by the number /proc
    gives it (its pid is this PID namespace's, which /proc may number otherwise: pidfds.in_proc)."""
    where = pidfds.in_proc(pid)
    if where is None:
        return None
    for _attempt in range(1000):
        try:
            with open(f"/proc/{where}/cmdline", "rb") as f:
                raw = f.read()
        except (FileNotFoundError, ProcessLookupError):  # gone before the open, or reaped before the read
            return None
        if raw:
            return daemon_argv_of([a.decode(errors="replace") for a in raw.split(b"\0")[:-1]])
        try:
            os.readlink(f"/proc/{where}/exe")  # (an exec's new image has its file before its arguments)
        except OSError:  # a zombie, a kernel thread, or gone: no command line to come
            return None
        time.sleep(0.001)
    return []


def daemon_running_argv(name, pid):
    """running_argv(pid) if ``pid`` is service ``name``'s daemon while it is read, else None: a pid found
    before (its daemon found, then the files rewritten) may be another process's by the read (the daemon
    ended, and its number went to another, another service's daemon even), whose command line was
    compared with the wanted one, shown in the diff as the service's, and its --stop-timeout and
    --stop-signal taken for those in force. The process is pinned (its pidfd) before the read, and
    asked after it whether it holds the daemon's name (paths.is_daemon) and its pid still."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:  # gone (ESRCH), or a thread's id: no daemon
        return None
    try:
        argv = running_argv(pid)
        return argv if paths.is_daemon(pid, name) and pidfds.alive(fd) else None
    finally:
        os.close(fd)


def daemon_argv_of(argv):
    """The daemon's arguments in a /proc cmdline, without its --ready-fd. While its service runs the
    daemon is pyforkexec-waiter, whose command line ends with the daemon's, followed by what the daemon
    adds for its way back (--resume and after, always last: pyforkexec.service.daemon)."""
    if argv and os.path.basename(argv[0]) == WAITER and "--" in argv:
        argv = argv[argv.index("--") + 1:]
    if RESUME_OPTION in argv:
        argv = argv[:argv.index(RESUME_OPTION)]
    for once in (READY_FD_OPTION, START_LOCK_FD_OPTION):
        if once in argv:
            i = argv.index(once)
            argv = argv[:i] + argv[i + 2:]
    return argv


def log_tail(name, lines=20):
    return paths.log_lines(name, 0, lines)


def _read_ready(fd, timeout):
    data, deadline = b"", time.monotonic() + timeout
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


class ServiceTimeout(paths.ServiceError):
    """The daemon neither started the service nor failed within the time allowed."""


def start(name, argv, timeout=paths.START_TIMEOUT):
    """Start the daemon detached; the pid of the service's process once it started. Raises ServiceError."""
    for d in (paths.RUN_DIR, paths.LOG_DIR):
        os.makedirs(d, mode=0o755, exist_ok=True)
    r, w = os.pipe2(os.O_CLOEXEC)
    # The converge lock this run holds, held by the daemon too until it reported its start: a run killed
    # meanwhile left a daemon still claiming its name, which the next run took for none, and started a
    # second one, which found the name taken then and failed that run (or, in the other order, the
    # first refused). The next run now waits for the first daemon's start, and finds it.
    lock = paths.converge_lock_fd()
    given = [READY_FD_OPTION, str(w)] + ([] if lock is None else [START_LOCK_FD_OPTION, str(lock)])
    from pyforkexec._signals import held  # pylint: disable=import-outside-toplevel

    proc = None
    try:
        # A Ctrl-C right after the fork (KeyboardInterrupt at Popen's next bytecode) lost the daemon's
        # pid: it waits until the daemon is ``proc``, for the except below to stop it.
        with held(), affinity.of_process(1):  # PID 1's CPUs, not those of the (maybe pinned) Ansible worker
            proc = subprocess.Popen([*argv, *given], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, pass_fds=(w,) if lock is None else (w, lock),
                                    start_new_session=True, env=DAEMON_ENV, cwd="/")
        os.close(w)
        w = -1
        answer = _read_ready(r, timeout)
    except BaseException:
        # Interrupted (a Ctrl-C) before the daemon reported: left starting, it went on unseen, its
        # start's success or failure reported by no one, and the next run waited for it, found the
        # service running and said changed=false for this run's change. It goes, as a wedged one does.
        if proc is not None:
            _kill_starting(name, proc)
        raise
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    if answer is not None and answer.startswith("ok "):
        proc.stderr.close()
        return int(answer.split()[1])
    if answer is None and proc.poll() is None:
        # Wedged (stopped, or blocked in its start): left there, it held this run's converge lock for
        # good (--start-lock-fd, released at a report that never comes), and every later converge
        # waited for it; a report coming later started a service the task reported failed.
        _kill_starting(name, proc)
        raise ServiceTimeout(f"the daemon of {name} did not report a start within {timeout:g}s: killed")
    # It failed and exits: wait for that, so that nothing of it is left when the failure is reported.
    try:
        early = proc.communicate(timeout=timeout)[1].decode(errors="replace").strip()
    except subprocess.TimeoutExpired:
        proc.kill()
        early = proc.communicate()[1].decode(errors="replace").strip()
    said = answer[len("error "):] if answer and answer.startswith("error ") else early
    reason = said or _ended(proc.returncode)
    raise paths.ServiceError(f"service {name} did not start: {reason}")


def _kill_starting(name, proc):
    """Kill the daemon ``proc`` of service ``name`` that did not report its start, with what it forked in
    its session so far (its pgid is its pid: not reused before it is reaped), reap it, and take away the
    service's own cgroup; a second Ctrl-C waits for that. Raises ServiceError if that cgroup stays."""
    from pyforkexec._signals import held  # pylint: disable=import-outside-toplevel

    with held():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.kill()
        proc.wait()
        proc.stderr.close()
        # Killed within its spawn, the daemon left the service's own cgroup it had made (empty, or with
        # what the service forked before its pdeathsig came), and a failed or interrupted start keeps
        # nothing. No other daemon of the name runs: this run holds the converge lock, and starts one
        # only where none runs.
        path = own_cgroup(name)
        if path is not None:
            sweep_cgroup(name, path)


def _ended(status):
    """How a daemon that said nothing ended (SIGKILL, the OOM killer), in the daemon's own words for
    its service's end."""
    if status < 0:
        try:
            how = signal.Signals(-status).name
        except ValueError:
            how = f"signal {-status}"
        return f"its daemon was killed by {how} before it reported a start"
    return f"its daemon exited with status {status} before it reported a start"


def _gone(fds, deadline):
    """Wait until the processes of ``fds`` ({name: pidfd}) exit or ``deadline`` passes; drops (and
    closes) those gone from ``fds``."""
    while fds:
        left = deadline - time.monotonic()
        ready = select.select(list(fds.values()), [], [], max(left, 0))[0]
        for name in [name for name, fd in fds.items() if fd in ready]:
            os.close(fds.pop(name))
        if left <= 0 and not ready:
            return


def _reaped(pidfds, deadline):
    """Wait (until ``deadline``) for the processes of ``pidfds`` to be reaped, not only to exit: a
    zombie still counts as its user's process (userdel refuses), and one whose daemon was killed waits
    for PID 1 to reap it. A pidfd's signal 0 fails with ESRCH only once the process is reaped, and never
    reaches another process that reused the pid."""
    for fd in pidfds:
        while time.monotonic() < deadline:
            try:
                signal.pidfd_send_signal(fd, 0)
            except ProcessLookupError:
                break
            time.sleep(0.01)


STOP_MARGIN = 5  # seconds a daemon has to end once its service is gone, before it is killed too


def _running_option(name, pid, option):
    """The value of ``option`` in the command line of service ``name``'s running daemon ``pid``: its text,
    "" when the daemon runs without it, None when it is gone (daemon_running_argv)."""
    argv = daemon_running_argv(name, pid)
    if argv is None:
        return None
    return argv[argv.index(option) + 1] if option in argv[:-1] else ""


def running_stop_timeout(name, pid):
    """The --stop-timeout service ``name``'s running daemon ``pid`` was started with (its own grace for its
    service), or None."""
    with contextlib.suppress(TypeError, ValueError):  # (gone: None; started without it: "")
        return float(_running_option(name, pid, "--stop-timeout"))
    return None


def running_stop_signal(name, pid):
    """The --stop-signal service ``name``'s running daemon ``pid`` was started with, by name (SIGTERM
    without one), or None if it is gone."""
    given = _running_option(name, pid, "--stop-signal")
    if not given:
        return None if given is None else "SIGTERM"
    from pyforkexec import signames  # pylint: disable=import-outside-toplevel

    signo = signames.parse(given)
    return signames.name(signo) if signo is not None else None


def _kill_service(pid, fd):
    """SIGKILL to the service ``pid`` (pidfd ``fd``) and its process group when it leads one (the daemon
    makes it a group of its own, as its stop does): the group through the pidfd where the kernel can,
    else while the service is not reaped (pidfds.kill_group)."""
    with contextlib.suppress(OSError):
        pidfds.kill_group(fd, pid)
    with contextlib.suppress(ProcessLookupError):
        signal.pidfd_send_signal(fd, signal.SIGKILL)


def stop_all(daemons):
    """Stop the daemons ``[(name, main_pid, grace)]`` together, so that their graces run at once: SIGTERM
    then SIGCONT to each (it passes its stop to its service); a service still running ``grace`` seconds
    later is killed (SIGKILL, with its process group) by this function, whatever stop timeout its daemon
    was started with, and its daemon, which then ends, is killed too if still there STOP_MARGIN seconds
    after that (its pid file removed). The caller sees that the grace asked is no longer than the daemon's
    own (running_stop_timeout): the daemon would kill the service earlier. What a daemon that did not end
    by its own stop left in its service's own cgroup is killed and the cgroup removed (sweep_cgroup). A
    ``main_pid`` whose process is no longer the service's daemon (paths.is_daemon: it holds the daemon's
    name), after its pidfd is opened, is a daemon gone (its number may be another process's). Raises
    ServiceError naming one that survived."""
    # One entry a name (the first): every table below is keyed by the name, and a second entry's pidfds
    # took the first's place in them, which nothing closed then.
    daemons = list({daemon[0]: daemon for daemon in reversed(list(daemons))}.values())[::-1]
    fds, services, deadlines, phase, workloads = {}, {}, {}, {}, {}
    try:
        for name, main, grace in daemons:
            workloads[name] = (None, main)
            try:
                fds[name] = os.pidfd_open(main)
            except ProcessLookupError:
                continue
            # ``main`` was found before: a daemon that ended since left its number to any process,
            # which the open may have taken. Only the daemon holds its name (paths.is_daemon).
            if not (paths.is_daemon(main, name) and pidfds.alive(fds[name])):
                os.close(fds.pop(name))
                continue
            # The service's pid is read from /proc, and may be another process's by the open (the
            # service exited, the daemon reaped it): its pidfd is kept only if it is the daemon's child.
            workloads[name] = (paths.workload_pid(main, exited=True), main)
            if workloads[name][0] is not None:
                service = pidfds.child_pidfd(workloads[name][0], main, fds[name])
                if service is not None:
                    services[name] = service
            deadlines[name], phase[name] = time.monotonic() + grace, 0
            # SIGCONT after it, as systemd follows KillSignal= with it: a daemon stopped (SIGSTOP)
            # left the SIGTERM pending, its service never got its stop signal, and both were killed.
            for signo in (signal.SIGTERM, signal.SIGCONT):
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(fds[name], signo)
        while fds:
            _gone(fds, min(deadlines[name] for name in fds))
            now = time.monotonic()
            for name in [name for name in fds if deadlines[name] <= now]:
                if phase[name] == 0:  # its grace is over: the service goes, as systemd's SIGKILL
                    if name in services:
                        _kill_service(workloads[name][0], services[name])
                    phase[name], deadlines[name] = 1, now + STOP_MARGIN
                    continue
                if phase[name] == 2:
                    raise paths.ServiceError(f"service {name}: daemon {workloads[name][1]} survived SIGKILL")
                # Through the pidfds, never by number: the service was killed a STOP_MARGIN ago and
                # may be reaped, the daemon may have ended meanwhile; either pid may be another's now.
                if name in services:
                    _kill_service(workloads[name][0], services[name])
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(fds[name], signal.SIGKILL)
                phase[name], deadlines[name] = 2, now + 5
        _reaped(list(services.values()), time.monotonic() + 10)
    finally:
        for fd in [*fds.values(), *services.values()]:
            os.close(fd)
    for name in [name for name, reached in phase.items() if reached == 2]:  # one that ended removed its own
        with contextlib.suppress(FileNotFoundError):
            os.unlink(paths.pid_file(name))
    for name in (daemon[0] for daemon in daemons):
        # A daemon that ended without its stop (killed above, or outright meanwhile) left what its service
        # had started in the service's own cgroup, and the cgroup: gone too, as its stop would have done
        # (the task says "stopped"). Every daemon is gone by now: nothing starts there again.
        path = own_cgroup(name)
        if path is not None:
            sweep_cgroup(name, path)


def stop(name, main_pid, grace):
    """SIGTERM to the daemon (it stops the service); the service killed after ``grace`` seconds, the
    daemon if it lingers (stop_all)."""
    stop_all([(name, main_pid, grace)])


def own_cgroup(name):
    """The cgroup directory of service ``name``'s own (its spec's cgroup with kill_remaining, as the
    module writes it; without a readable spec, the one its running service is in (running_own_cgroup),
    else the module's default, pyforkexec/NAME), when it exists; None else."""
    try:
        path = own_cgroup_of(deps.pyforkexec.spec.read(paths.spec_path(name)))
    except (OSError, ValueError):  # no spec (removed by hand), or unreadable: where it runs, or the default
        path = running_own_cgroup(name) or default_own_cgroup(name)
    return path if path is not None and os.path.isdir(path) else None


def running_own_cgroup(name):
    """The cgroup directory service ``name``'s running process is in, when that is not its daemon's (its
    own: the module gives a manager=direct service one), as the kernel says (/proc/PID/cgroup); None when
    no daemon runs, or the service shares its daemon's. Where a spec removed by hand while the service
    runs no longer says: taken for another's, the service's own processes made its converge refuse the
    cgroup."""
    try:
        main = paths.daemon_pid(name)
        main_fd = os.pidfd_open(main) if main is not None else None
    except (paths.ServiceError, ProcessLookupError):
        return None
    if main_fd is None:
        return None
    try:
        found = _cgroups(name, main, main_fd)
    finally:
        os.close(main_fd)
    if found is None or found[0] is None or found[0] == found[1]:
        return None
    try:
        return os.path.join(deps.pyforkexec.sandbox.cgroup.find_cgroup2(), found[0].lstrip("/"))
    except OSError:  # no cgroup2 here
        return None


def _cgroups(name, main, main_fd):
    """(the service's cgroup path, its daemon ``main``'s) read from /proc, None unless both processes
    were those read (pidfds confirmed after the reads: a pid may be another process's by then)."""
    service = paths.workload_pid(main, exited=True)  # (a zombie is still in its cgroup)
    fd = pidfds.child_pidfd(service, main, main_fd) if service is not None else None
    if fd is None:
        return None
    try:
        found = _cgroup_of(service), _cgroup_of(main)
        confirmed = paths.is_daemon(main, name) and pidfds.alive(main_fd) and pidfds.alive(fd)
    finally:
        os.close(fd)
    return found if confirmed else None


def _cgroup_of(pid):
    """Process ``pid``'s cgroup v2 path (its /proc/PID/cgroup ``0::`` line, by /proc's number for it), None
    if gone."""
    try:
        with open(f"/proc/{pidfds.in_proc(pid)}/cgroup") as f:
            return next((line.rstrip("\n")[3:] for line in f if line.startswith("0::")), None)
    except (FileNotFoundError, ProcessLookupError):
        return None


def default_own_cgroup(name):
    """The cgroup directory the module gives service ``name`` as its own by default (pyforkexec/NAME),
    whether it exists or not; None without a cgroup2 here."""
    try:
        return deps.pyforkexec.sandbox.cgroup.Cgroup(path=f"pyforkexec/{name}").fs_path()
    except (OSError, ValueError):
        return None


def own_cgroup_of(spec):
    """The cgroup directory a service started from ``spec`` (pyforkexec.spec.Spec) runs in as its own
    (its cgroup with kill_remaining, as the module writes it), whether it exists or not; None when it
    has none. Raises OSError or ValueError (no cgroup2 here)."""
    cgroup = spec.attr.sys.cgroup if spec.attr.sys is not None else None
    return cgroup.fs_path() if cgroup is not None and cgroup.kill_remaining else None


_OWN_CGROUPS = {}  # spec path -> ((mtime, size), its own cgroup): each spec read once per module run


def others_own_cgroups(name):
    """{service: its own cgroup directory} of the services declared on this host (by their specs), but
    ``name``: the directories that a start or stop of theirs empties whole."""
    found = {}
    try:
        entries = list(os.scandir(paths.SPEC_DIR))
    except FileNotFoundError:
        return found
    for entry in entries:
        other = entry.name[:-len(".json")]
        if not entry.name.endswith(".json") or other == name or not entry.is_file():
            continue
        try:
            st = entry.stat()
        except FileNotFoundError:  # removed since the listing (by hand, or by a test): no service now
            continue
        cached = _OWN_CGROUPS.get(entry.path)
        if cached is None or cached[0] != (st.st_mtime_ns, st.st_size):
            try:
                own = own_cgroup_of(deps.pyforkexec.spec.read(entry.path))
            except (OSError, ValueError):  # not a spec, or no cgroup2 here
                own = None
            cached = _OWN_CGROUPS[entry.path] = ((st.st_mtime_ns, st.st_size), own)
        if cached[1] is not None:
            found[other] = cached[1]
    return found


def sweep_cgroup(name, path):
    """Kill what is left in service ``name``'s own cgroup ``path`` and below it (what a daemon killed
    outright left: its service died with it, not what that had started) and remove the directories, as
    a stop does. Raises ServiceError if that cannot be done."""
    if not deps.pyforkexec.sandbox.cgroup.empty_own(path):
        raise paths.ServiceError(f"service {name}: what is left in {path} could not be killed and removed")
