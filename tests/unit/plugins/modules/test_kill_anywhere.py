"""A converge killed (SIGKILL) at any of its mutating system calls loses nothing, and the next run
finishes it: each test takes the host to state A, traces the converge to B once to count its mutating
calls (kill_sweep: a ptrace tracer counting those of all the module's threads), and for each of them,
from A again, kills the run there, then checks the host (what A and B both have is there, every file
under its final name is whole), runs the converge again (it reaches B, as the kernel and the files
show, and says changed exactly when the host was not at B), a third time (changed=false), and that
nothing was left behind. Real services under the real pyforkexec daemon, real network namespaces
(names h120-ka*, subnets 10.120.x). PFE_KILL_SWEEP=all kills at every call (else at most _BUDGET
calls, evenly strided, keep each test within a minute or two).

Each sweep runs again with SIGINT (a user's Ctrl-C: KeyboardInterrupt after the call, so that the
module's exception paths run from there) and SIGTERM (death one call later) instead of SIGKILL: the
run must end, and an interrupted one leave nothing half-made, nor say ok with the host not at B."""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import signal
import subprocess
import sys

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import files as files_util
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_direct as direct
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
from ansible_collections.pyforkexec.isolation.plugins.modules import netns as netns_module
from ansible_collections.pyforkexec.isolation.plugins.modules import service as service_module
from ansible_collections.pyforkexec.isolation.plugins.modules import services
from ansible_collections.pyforkexec.isolation.tests.unit.plugins import kill_sweep, lock_wait

# For a module run as a process of its own: this Python's path (where ansible-test put
# ansible_collections, which no child inherits, and the pyforkexec this run imports).
_PATH = os.pathsep.join(p for p in sys.path if p)
# How a run is cut short (the signal, at which calls: kill_sweep), and at how many points per test unless
# PFE_KILL_SWEEP=all: SIGKILL's, SIGINT's (fewer: the exception paths of the same code), SIGINT's in
# the waits (a run's are few), SIGTERM's (a few: SIGKILL's, one call later).
_BUDGET = {(signal.SIGKILL, "mutating"): 40, (signal.SIGINT, "mutating"): 10, (signal.SIGINT, "waiting"): 5,
           (signal.SIGTERM, "mutating"): 3}
# Seconds an interrupted run has to end: more than its longest wait that is not a hang (a daemon's start
# timeout, a stop's grace and margin), less than the next run's own.
_INT_TIMEOUT = 150

pytestmark = [
    pytest.mark.timeout(900),  # (PFE_KILL_SWEEP=all; a sampled sweep takes a minute or two)
    pytest.mark.skipif(kill_sweep.supported() is not None, reason=str(kill_sweep.supported())),
    pytest.mark.skipif(os.geteuid() != 0, reason="starts daemons and makes network namespaces: needs root"),
]


@pytest.fixture(autouse=True)
def _one_sweep_at_a_time():
    """Each test checks that the host reached B and that nothing named h120-ka* is left: two of them at
    once (ansible-test runs a file's tests in several workers) would each find the other's services and
    namespaces (6 of 10 failed so when this file ran alone). A lock every worker takes; autouse, so it
    is taken before the test's own fixtures make anything and given back after they cleaned up."""
    with open("/run/pfe-test-kill-anywhere.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture(params=list(_BUDGET), ids=[f"{signal.Signals(s).name}-{c}" for s, c in _BUDGET])
def cut(request):
    """How each converge is cut short, (signal, calls): killed outright (SIGKILL, at each point before
    the call), interrupted (SIGINT, a user's Ctrl-C: KeyboardInterrupt after the call, or from inside a
    wait, the module's exception paths run), or terminated (SIGTERM, Python's default: the process ends
    after the call, running nothing)."""
    return request.param


def _sweep(module, a, b, check, at_a=lambda: None, cut=(signal.SIGKILL, "mutating")):
    """Cut the converge of ``module`` from ``a`` to ``b`` short (``cut``: the signal, and whether at
    each of its mutating calls or of its waits, sampled); ``check`` is called with what ``at_a`` read
    once the host was at A and with what the run printed (None: nothing), after each, on the host as
    that run left it, and returns what it found wrong.
    A run sent another signal than SIGKILL must end (bounded); an interrupted one (SIGINT) must leave
    nothing half-made (``_half_made``). Fails with every point that found something."""
    assert _ok(_converge(module, a))
    signum, counted = cut
    traced, calls, _killed, _left = kill_sweep.run(module.__name__, b, _PATH, counted=counted)
    assert _ok(traced) and calls, traced
    chosen, stride = kill_sweep.sample(len(calls), _BUDGET[cut])
    print(f"{signal.Signals(signum).name} {counted}: {len(calls)} points, {len(chosen)} swept "
          f"(stride {stride})")
    failures = []
    for point in chosen:
        assert _ok(_converge(module, a)), point
        before = at_a()
        run = kill_sweep.run(module.__name__, b, _PATH, kill_at=point, signum=signum, counted=counted,
                             timeout=300 if signum == signal.SIGKILL else _INT_TIMEOUT)
        call = calls[point - 1] if len(run.calls) >= point else "(not reached)"
        found = []
        if run.result is not None and run.result.get("hung"):
            found.append(f"the run hung: {run.result['msg']}")
        elif signum == signal.SIGINT:
            found += _half_made(run.left)
        else:  # (SIGKILL, SIGTERM: nothing of the module runs; what it left, the next run finishes)
            assert run.killed or _ok(run.result), (point, run.result)
        _settled()
        found += check(before, run.result)
        print(point, call, run.killed, found)
        if found:
            failures.append((point, call, found))
    assert not failures, f"{len(failures)} of {len(chosen)} points:\n" + "\n".join(map(str, failures))


def _settled():
    """Once a daemon the run left starting (killed after the daemon's fork: SIGTERM's point at it) has
    reported its start: until then it holds the run's converge lock (service_direct.start), and the host
    moves on its own (to B: the next run, which waits for that lock, found B and said changed=false
    while the check had read the host not at B). The check reads the host as that daemon left it."""
    from pyforkexec import host_lock

    try:
        fd = os.open(host_lock.path("services"), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    finally:
        os.close(fd)


def _half_made(group):
    """What an interrupted run, its exception paths run, left half-made: the processes ``group`` it
    started and did not detach (a helper holding an fd), a daemon that did not claim its service's name
    (that never reported its start), two daemons of a service, the own cgroup of a service with no
    daemon, a temporary file of an atomic write, a name under /run/netns with no namespace on it."""
    from pyforkexec import host_lock
    from pyforkexec.service import singleton

    found = [f"left in its process group: {pid} {_cmdline(pid)}" for pid in group]
    daemons = {}
    for pid in (int(e) for e in os.listdir("/proc") if e.isdigit()):
        argv = direct.running_argv(pid) or []
        pid_file = argv[argv.index("--pid-file") + 1] if "--pid-file" in argv[:-1] else ""
        if os.path.basename(pid_file).startswith(_PREFIX):
            daemons.setdefault(pid_file, []).append(pid)
    for pid_file, pids in daemons.items():
        inode = singleton.bound_inode(pid_file)
        unclaimed = [pid for pid in pids if inode is None or not singleton.holds(pid, inode)]
        # (a daemon holds its starter's converge lock until it reports its start: service_direct.start)
        starting = [pid for pid in pids if host_lock.path("services") in _open_files(pid)]
        if unclaimed or starting or len(pids) > 1:
            found.append(f"daemons of {pid_file}: {pids}; never claimed its name: {unclaimed}; "
                         f"never reported its start: {starting}")
    cgroups = os.path.dirname(direct.default_own_cgroup(_PREFIX) or "/nonexistent/x")
    for path in glob.glob(os.path.join(cgroups, f"{_PREFIX}*")):
        if not any(os.path.basename(f) == os.path.basename(path) + ".pid" for f in daemons):
            found.append(f"a cgroup with no daemon: {path}")
    temps = _strays() + glob.glob(os.path.join(paths.NETNS_CONFIG_DIR, f"{_PREFIX}*.tmp-*"))
    if temps:
        found.append(f"temporary files: {temps}")
    with open("/proc/self/mountinfo") as f:
        mounted = {line.split()[4] for line in f}
    unmounted = [n for n in os.listdir("/run/netns") if n.startswith(_PREFIX)
                 and os.path.join("/run/netns", n) not in mounted]
    if unmounted:
        found.append(f"/run/netns names with no namespace: {unmounted}")
    return found


def _open_files(pid):
    """What the fds of process ``pid`` are open on (their /proc links)."""
    found = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                found.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
    except OSError:
        pass
    return found


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "(gone)"


def _said(result, was_at_b):
    """What an interrupted run printed that is not so: a success with the host not at B (changed=false
    above all, which tells Ansible that nothing needs doing)."""
    if result is not None and _ok(result) and not was_at_b:
        return [f"it said changed={result.get('changed')}, not failed, with the host not at B"]
    return []


def _actions(result):
    """What a run says it did: the services module's actions per service, the others' actions."""
    if isinstance(result.get("services"), dict):
        return [(n, r["actions"]) for n, r in result["services"].items() if r.get("actions")]
    return result.get("actions")


def _next_runs_reach(module, b, was_at_b, at_b, describe):
    """The next run of ``module`` reaches B (``at_b()``) and says changed exactly when the host was not at
    B (``was_at_b``); a third run changes nothing. What it found wrong; ``describe()`` says where the
    host is."""
    found = []
    again = _converge(module, b)
    if not _ok(again):
        found.append(f"the next run failed: {again.get('msg')}")
    elif again["changed"] is not (not was_at_b):
        found.append(f"the next run said changed={again['changed']}, at B before: {was_at_b}: "
                     f"{_actions(again)}")
    if not at_b():
        found.append(f"not at B after the next run: {describe()}")
    third = _converge(module, b)
    if not _ok(third) or third["changed"]:
        found.append(f"a third run changed something: {third.get('msg')} {_actions(third)}")
    return found


def _converge(module, args, prefix=()):
    """A run of ``module`` as a process of its own (as Ansible runs it), its result (``prefix``: a
    command that runs it, nsenter...)."""
    env = dict(os.environ, PYTHONPATH=_PATH)
    given = json.dumps({"ANSIBLE_MODULE_ARGS": args})
    done = subprocess.run([*prefix, sys.executable, "-m", module.__name__], input=given, capture_output=True,
                          text=True, env=env, cwd="/", timeout=300, check=False)
    try:
        return json.loads(done.stdout)
    except ValueError:
        return dict(failed=True, msg=f"no result ({done.returncode}): {done.stdout!r} {done.stderr!r}")


def _ok(result):
    return result is not None and result.get("failed") is not True


# ---- services: one kept, one changed (restarted), one new, one removed -------------------------------

_PREFIX = "h120-ka"


def _argv(name, version):
    # Stops promptly on SIGTERM; its argv names the service and the version (found in /proc).
    return ["sh", "-c", f"trap 'exit 0' TERM; while :; do sleep 0.2; done # {name} v{version}"]


def _service(name, version):
    return dict(name=name, argv=_argv(name, version), manager="direct", start_check=0, cgroup={})


KEEP, CHANGED, NEW, GONE = (f"{_PREFIX}-{role}" for role in ("keep", "chg", "new", "gone"))
A = dict(services=[_service(KEEP, 1), _service(CHANGED, 1), _service(GONE, 1),
                   dict(name=NEW, state="absent")])
B = dict(services=[_service(KEEP, 1), _service(CHANGED, 2), _service(NEW, 1),
                   dict(name=GONE, state="absent")])
B_RUNS = {KEEP: 1, CHANGED: 2, NEW: 1}


def _workloads():
    """{(service, version): [pids]} of the services' programs running on the host (their sh; not the
    copy of it each sh forks for its sleep, which shows the same command line until its execve)."""
    programs = {}
    for entry in (e for e in os.listdir("/proc") if e.isdigit()):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")[:-1]
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if len(argv) == 3 and argv[:2] == ["sh", "-c"] and f"# {_PREFIX}-" in argv[2]:
            programs[int(entry)] = (argv[2], ppid)
    found = {}
    for pid, (script, ppid) in programs.items():
        if programs.get(ppid, (None,))[0] != script:
            name, version = script.rsplit("# ", 1)[1].split(" v")
            found.setdefault((name, int(version)), []).append(pid)
    return found


def _daemons(name):
    found = []
    for entry in (e for e in os.listdir("/proc") if e.isdigit()):
        argv = direct.running_argv(int(entry)) or []
        if "--pid-file" in argv[:-1] and argv[argv.index("--pid-file") + 1] == paths.pid_file(name):
            found.append(int(entry))
    return found


def _files(name):
    """The files of service ``name`` under their final names, with their text (None: absent)."""
    return {path: files_util.read(path) for path in (paths.spec_path(name), paths.pid_file(name),
                                                     paths.log_file(name), paths.pending_path(name),
                                                     paths.wired_netns_path(name))}


def _strays():
    """Temporary files a run left (PATH.tmp-PID) of these services."""
    return sorted(path for directory in (paths.SPEC_DIR, paths.RUN_DIR)
                  for path in glob.glob(os.path.join(directory, f"{_PREFIX}-*.tmp-*")))


def _at_b(specs):
    """Whether the host is at B, as the kernel and the files show: each of B's services runs its B
    program once, under one daemon, from B's spec, nothing pending; the removed one has no process, no
    daemon and no file."""
    running = _workloads()
    for name, version in B_RUNS.items():
        if len(running.get((name, version), [])) != 1 or len(_daemons(name)) != 1:
            return False
        if files_util.read(paths.spec_path(name)) != specs[name] or os.path.exists(paths.pending_path(name)):
            return False
    others = [key for key in running if B_RUNS.get(key[0]) != key[1]]
    return not others and not _daemons(GONE) and not any(t is not None for t in _files(GONE).values())


@pytest.fixture
def clean_services():
    yield
    names = [KEEP, CHANGED, NEW, GONE]
    gone = _converge(services, dict(services=[dict(name=n, state="absent") for n in names]))
    assert _ok(gone), gone
    assert not _workloads() and not any(_daemons(n) for n in names) and not _strays()


def test_a_services_converge_cut_anywhere_loses_nothing_and_is_finished_by_the_next(clean_services, cut):
    # B's files, as a run that was not killed writes them; A's, and the kept service's processes
    assert _ok(_converge(services, B))
    b_specs = {name: files_util.read(paths.spec_path(name)) for name in B_RUNS}
    assert _ok(_converge(services, A))
    a_specs = {name: files_util.read(paths.spec_path(name)) for name in (KEEP, CHANGED, GONE)}
    kept = (_daemons(KEEP), _workloads()[(KEEP, 1)])

    def check(_at_a, result):
        found = []
        # 1. what A and B both have is there: the kept service runs on, same daemon, same program
        if (_daemons(KEEP), _workloads().get((KEEP, 1))) != kept:
            found.append(f"kept service changed: {_daemons(KEEP)} {_workloads()}")
        # ... and every file under its final name is A's or B's, whole
        for name, allowed in ((KEEP, {a_specs[KEEP]}), (CHANGED, {a_specs[CHANGED], b_specs[CHANGED]}),
                              (NEW, {None, b_specs[NEW]}), (GONE, {a_specs[GONE], None})):
            if files_util.read(paths.spec_path(name)) not in allowed:
                found.append(f"{name}: spec {files_util.read(paths.spec_path(name))!r}")
            pid = files_util.read(paths.pid_file(name))
            if pid is not None and not (pid.endswith("\n") and pid[:-1].isdigit()):
                found.append(f"{name}: pid file {pid!r}")
        # 2. the next run reaches B, and says whether it changed something
        was_at_b = _at_b(b_specs)
        found += _said(result, was_at_b)
        found += _next_runs_reach(services, B, was_at_b, lambda: _at_b(b_specs), lambda: (
            _workloads(), {n: _daemons(n) for n in B_RUNS}, _files(GONE)))
        # 3. nothing left behind
        if _strays():
            found.append(f"left: {_strays()}")
        if direct.own_cgroup(GONE) is not None or os.path.exists(direct.default_own_cgroup(GONE)):
            found.append(f"left: the removed service's cgroup {direct.default_own_cgroup(GONE)}")
        return found

    _sweep(services, A, B, check, cut=cut)


# ---- a network namespace: an address and a route kept, another of each changed, its options persisted --

NETNS, PEER = "h120-ka-ns", "h120ka0"


def _wiring(addresses, routes, forwarding):
    return dict(name=NETNS, persist=True, sysctls={"net.ipv4.ip_forward": forwarding},
                veths=[dict(name="eth0", peer=PEER, addresses=addresses, peer_addresses=["10.120.1.1/24"])],
                routes=[dict(dst=dst, gateway=gateway) for dst, gateway in routes])


# Both: 10.120.1.2/24, and 10.120.10.0/24 via 10.120.1.1; 10.120.11.0/24 changes its gateway; A's second
# address and its route through 10.120.1.1 go, B's come.
NS_A = _wiring(["10.120.1.2/24", "10.120.2.2/24"], [("10.120.10.0/24", "10.120.1.1"),
               ("10.120.11.0/24", "10.120.1.1"), ("10.120.12.0/24", "10.120.1.1")], "0")
NS_B = _wiring(["10.120.1.2/24", "10.120.3.2/24"], [("10.120.10.0/24", "10.120.1.1"),
               ("10.120.11.0/24", "10.120.3.1"), ("10.120.13.0/24", "10.120.1.1")], "1")


def _ip(*args, netns=NETNS):
    done = subprocess.run(["ip", "-j", "-4", *(["-n", netns] if netns else []), *args], capture_output=True,
                          text=True, check=False)
    return json.loads(done.stdout or "[]") if done.returncode == 0 else None


def _kernel():
    """The namespace as the kernel has it (IPv4: the link-local IPv6 addresses follow a veth's random
    MAC), and its options file: None when there is no such namespace."""
    links = _ip("link")
    if links is None:
        return None
    forwarding = subprocess.run(["ip", "netns", "exec", NETNS, "cat", "/proc/sys/net/ipv4/ip_forward"],
                                capture_output=True, text=True, check=False).stdout.strip()
    return dict(
        links=sorted(link["ifname"] for link in links),
        addresses=sorted((a["ifname"], i["local"], i["prefixlen"])
                         for a in _ip("addr") for i in a.get("addr_info", [])),
        routes=sorted((r["dst"], r.get("gateway", ""), r.get("dev", ""), r.get("protocol", ""))
                      for r in _ip("route")),
        host=sorted((i["local"], i["prefixlen"]) for a in _ip("addr", "show", "dev", PEER, netns=None) or []
                    for i in a.get("addr_info", [])),
        forwarding=forwarding, options=files_util.read(paths.netns_config_path(NETNS)))


def _modules_running():
    """Processes running a module of this collection that lost their parent (a forked helper of a run
    killed outright, given to PID 1; another test's run beside this one has its parent)."""
    found = []
    for entry in (e for e in os.listdir("/proc") if e.isdigit()):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read()
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if b"ansible_collections.pyforkexec.isolation.plugins.modules" in argv and ppid == 1:
            found.append(int(entry))
    return found


@pytest.fixture
def clean_netns():
    yield
    gone = _converge(netns_module, dict(name=NETNS, state="absent"))
    assert _ok(gone), gone
    assert _kernel() is None and not os.path.exists(paths.netns_config_path(NETNS))
    assert not glob.glob(paths.netns_config_path(NETNS) + ".tmp-*")


def test_a_netns_converge_killed_anywhere_loses_nothing_and_is_finished_by_the_next(clean_netns, cut):
    assert _ok(_converge(netns_module, NS_B))
    at_b = _kernel()
    assert _ok(_converge(netns_module, NS_A))
    at_a = _kernel()

    def check(_at_a, result):
        found = []
        now = _kernel()
        # 1. what A and B both have is there, and the options file is A's or B's, whole
        if now is None:
            found.append("the namespace is gone")
        else:
            if not {"eth0", "lo"} <= set(now["links"]) or now["host"] != at_a["host"]:
                found.append(f"links: {now['links']} {now['host']}")
            if ("eth0", "10.120.1.2", 24) not in now["addresses"]:
                found.append(f"addresses: {now['addresses']}")
            kept = [r for r in now["routes"] if r[0] == "10.120.10.0/24"] == \
                [r for r in at_a["routes"] if r[0] == "10.120.10.0/24"]
            if not kept or not any(r[0] == "10.120.11.0/24" for r in now["routes"]):
                found.append(f"routes: {now['routes']}")
            if now["options"] not in (at_a["options"], at_b["options"]):
                found.append(f"options file: {now['options']!r}")
        # 2. the next run reaches B, and says whether it changed something
        was_at_b = now == at_b
        found += _said(result, was_at_b)
        found += _next_runs_reach(netns_module, NS_B, was_at_b, lambda: _kernel() == at_b, _kernel)
        # 3. nothing left behind
        left = glob.glob(paths.netns_config_path(NETNS) + ".tmp-*") + [str(p) for p in _modules_running()]
        if left:
            found.append(f"left: {left}")
        strays = [n for n in os.listdir("/run/netns") if n.startswith("h120-ka") and n != NETNS]
        links = [link["ifname"] for link in _ip("link", netns=None) if link["ifname"].startswith("h120ka")]
        if strays or links != [PEER]:
            found.append(f"left: namespaces {strays}, host links {links}")
        return found

    _sweep(netns_module, NS_A, NS_B, check, cut=cut)


# ---- a run killed while the daemon it started is starting ----------------------------------------------

BOOTING = f"{_PREFIX}-boot"


def _module_process(args, prefix=()):
    """The service module given ``args`` on stdin, run as Ansible runs it (``prefix``: a command that
    runs it, nsenter...)."""
    env = dict(os.environ, PYTHONPATH=_PATH)
    proc = subprocess.Popen([*prefix, sys.executable, "-m", service_module.__name__], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd="/")
    proc.stdin.write(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    proc.stdin.close()
    proc.stdin = None  # (communicate would flush it)
    return proc


@pytest.fixture
def private_locks():
    """A mount namespace whose /run/pyforkexec-locks is a tmpfs of its own (its holder's pid): a daemon
    stopped on purpose there holds a services lock no other test's converge waits for (those of this
    suite run beside it, and gave up on the host's lock once that daemon was 35 s old)."""
    from pyforkexec import host_lock

    holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                               f"mount -t tmpfs -o mode=0755 pfe-locks {host_lock.LOCK_DIR} && echo ready "
                               "&& exec sleep infinity"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "ready\n"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def in_mount_namespace_of(pid):
    """The prefix that runs a command in the mount namespace of ``pid`` (_module_process, _converge)."""
    return ("nsenter", "-t", str(pid), "-m", "--")


@pytest.fixture
def clean_booting(private_locks):
    yield in_mount_namespace_of(private_locks)
    gone = _converge(services, dict(services=[dict(name=BOOTING, state="absent")]),
                     in_mount_namespace_of(private_locks))
    assert _ok(gone), gone
    assert not _daemons(BOOTING)


def test_a_run_killed_while_its_daemon_starts_leaves_the_next_run_that_daemon(clean_booting):
    """A run killed (SIGKILL) after it started a daemon and before the daemon claimed its name (a slow
    start, here a daemon stopped meanwhile): the next run found no daemon, started one of its own, and
    failed when the first, going on, took the name first ("did not start: already running"); in the
    other order the first refused. The daemon holds the run's converge lock until its start is over
    now: the next run waits for it, then finds it running and changes nothing."""
    from pyforkexec.service import singleton

    private = clean_booting  # its runs' converge lock: the daemon stopped here holds it
    args = _service(BOOTING, 1)
    for _attempt in range(20):  # until the first daemon is stopped before its claim (most times)
        first = _module_process(args, private)
        orphan = None
        while orphan is None and first.poll() is None:
            orphan = next(iter(_daemons(BOOTING)), None)
        if orphan is not None:
            os.kill(orphan, signal.SIGSTOP)
            if singleton.bound_inode(paths.pid_file(BOOTING)) is None:
                break
            os.kill(orphan, signal.SIGCONT)
        first.communicate()  # (the run ended before its daemon was seen, or that one claimed its name)
        assert _ok(_converge(services, dict(services=[dict(name=BOOTING, state="absent")]), private))
    else:
        pytest.fail("the daemon claimed its name before it could be stopped, 20 times")
    first.kill()
    first.wait()
    again = _module_process(args, private)
    second = None
    while again.poll() is None and not lock_wait.waits_for_a_lock(again.pid):
        second = next((pid for pid in _daemons(BOOTING) if pid != orphan), None)
        if second is not None:  # (without the lock) a second daemon: it waits until the first claimed
            os.kill(second, signal.SIGSTOP)
            break
    os.kill(orphan, signal.SIGCONT)
    if second is not None:
        while singleton.bound_inode(paths.pid_file(BOOTING)) is None:
            pass
        os.kill(second, signal.SIGCONT)
    out, err = again.communicate(timeout=120)
    result = json.loads(out or "{}")
    assert _ok(result) and result.get("changed") is False, (result.get("msg"), second, err)
    assert _daemons(BOOTING) == [orphan] and list(_workloads()) == [(BOOTING, 1)]


# ---- services: a service's namespace rewired (so it restarts), another service kept --------------------

WIRED, WIRED_KEPT, WIRED_NS, WIRED_PEER = f"{_PREFIX}-w", f"{_PREFIX}-wk", "h120-ka-wns", "h120kaw0"


def _wired(addresses):
    veth = dict(name="eth0", peer=WIRED_PEER, addresses=addresses, peer_addresses=["10.120.20.1/24"])
    wiring = dict(veths=[veth], routes=[dict(dst="10.120.30.0/24", gateway="10.120.20.1")])
    return dict(services=[dict(_service(WIRED, 1), netns=WIRED_NS, wiring=wiring), _service(WIRED_KEPT, 1)])


# Both: 10.120.20.2/24 and the route through 10.120.20.1; the second address changes.
W_A, W_B = _wired(["10.120.20.2/24", "10.120.21.2/24"]), _wired(["10.120.20.2/24", "10.120.22.2/24"])


def _wired_addresses():
    return sorted(i["local"] for a in _ip("addr", "show", "dev", "eth0", netns=WIRED_NS) or []
                  for i in a.get("addr_info", []))


@pytest.fixture
def clean_wired():
    yield
    gone = _converge(services, dict(services=[dict(name=n, state="absent") for n in (WIRED, WIRED_KEPT)]))
    assert _ok(gone), gone
    assert not _workloads() and WIRED_NS not in os.listdir("/run/netns")


def test_a_rewiring_services_converge_killed_anywhere_restarts_the_service_next_time(clean_wired, cut):
    """The service whose namespace B rewires is restarted (once it runs in B's namespace, its pid is
    another than A's): a run killed between the rewire and the restart leaves it marked pending, and
    the next run restarts it; the other service runs on, untouched."""
    assert _ok(_converge(services, W_A))
    kept = _workloads()[(WIRED_KEPT, 1)]
    b_addresses = ["10.120.20.2", "10.120.22.2"]

    def at_b(a_pid):
        pids = _workloads().get((WIRED, 1), [])
        return len(pids) == 1 and pids != a_pid and _wired_addresses() == b_addresses \
            and not os.path.exists(paths.pending_path(WIRED))

    def check(a_pid, result):
        found = []
        # 1. what A and B both have is there; a rewired namespace under the old process is marked
        if _workloads().get((WIRED_KEPT, 1)) != kept:
            found.append(f"the kept service changed: {_workloads()}")
        addresses = _wired_addresses()
        if "10.120.20.2" not in addresses:
            found.append(f"addresses: {addresses}")
        if not any(r["dst"] == "10.120.30.0/24" for r in _ip("route", netns=WIRED_NS) or []):
            found.append(f"routes: {_ip('route', netns=WIRED_NS)}")
        if _workloads().get((WIRED, 1)) == a_pid and addresses != ["10.120.20.2", "10.120.21.2"] \
                and not os.path.exists(paths.pending_path(WIRED)):
            found.append(f"rewired under the running service, not marked for a restart: {addresses}")
        # 2. the next run reaches B (the service restarted), and says whether it changed something
        was_at_b = at_b(a_pid)
        found += _said(result, was_at_b)
        found += _next_runs_reach(services, W_B, was_at_b, lambda: at_b(a_pid),
                                  lambda: (_workloads(), _wired_addresses()))
        # 3. nothing left behind
        left = _strays() + [str(p) for p in _modules_running()]
        links = [link["ifname"] for link in _ip("link", netns=None) if link["ifname"].startswith("h120kaw")]
        if left or links != [WIRED_PEER] or len(_daemons(WIRED)) != 1:
            found.append(f"left: {left} {links} {_daemons(WIRED)}")
        return found

    _sweep(services, W_A, W_B, check, at_a=lambda: _workloads().get((WIRED, 1)), cut=cut)


# ---- the service module: one service new, changed (restarted), removed ---------------------------------

SINGLE = f"{_PREFIX}-one"


def _single(version):
    return _service(SINGLE, version) if version is not None else dict(name=SINGLE, state="absent")


@pytest.fixture
def clean_single():
    yield
    gone = _converge(service_module, dict(name=SINGLE, state="absent"))
    assert _ok(gone), gone
    assert not _workloads() and not _daemons(SINGLE)


@pytest.mark.parametrize(("a", "b"), [(None, 1), (1, 2), (1, None)], ids=["new", "changed", "removed"])
def test_a_service_converge_cut_anywhere_loses_nothing_and_is_finished_by_the_next(
        clean_single, cut, a, b):
    specs = {}
    for version in (b, a):
        assert _ok(_converge(service_module, _single(version)))
        specs[version] = files_util.read(paths.spec_path(SINGLE))

    def at_b():
        if b is None:
            return not _workloads() and not _daemons(SINGLE) \
                and not any(text is not None for text in _files(SINGLE).values())
        return list(_workloads()) == [(SINGLE, b)] and len(_workloads()[(SINGLE, b)]) == 1 \
            and len(_daemons(SINGLE)) == 1 and files_util.read(paths.spec_path(SINGLE)) == specs[b] \
            and not os.path.exists(paths.pending_path(SINGLE))

    def check(_at_a, result):
        found = []
        # 1. every file under its final name is A's or B's, whole
        if files_util.read(paths.spec_path(SINGLE)) not in (specs[a], specs[b]):
            found.append(f"spec {files_util.read(paths.spec_path(SINGLE))!r}")
        pid = files_util.read(paths.pid_file(SINGLE))
        if pid is not None and not (pid.endswith("\n") and pid[:-1].isdigit()):
            found.append(f"pid file {pid!r}")
        # 2. the next run reaches B, and says whether it changed something
        was_at_b = at_b()
        found += _said(result, was_at_b)
        found += _next_runs_reach(service_module, _single(b), was_at_b, at_b,
                                  lambda: (_workloads(), _daemons(SINGLE), _files(SINGLE)))
        # 3. nothing left behind
        left = _strays() + [str(p) for p in _modules_running()]
        if b is None and (direct.own_cgroup(SINGLE) is not None
                          or os.path.exists(direct.default_own_cgroup(SINGLE))):
            left.append(direct.default_own_cgroup(SINGLE))
        if left:
            found.append(f"left: {left}")
        return found

    _sweep(service_module, _single(a), _single(b), check, cut=cut)


@pytest.mark.parametrize(("a", "b"), [(None, NS_B), (NS_A, None)], ids=["created", "removed"])
def test_a_netns_made_or_removed_killed_anywhere_is_finished_by_the_next(clean_netns, cut, a, b):
    """A namespace made from nothing (or removed whole), the run killed at any of its mutating calls:
    the next run makes (removes) it, whatever the kill left, and nothing else stays."""
    absent = dict(name=NETNS, state="absent")
    options_dir = os.path.dirname(paths.netns_config_path(NETNS))

    def host():  # (the directory goes with the last namespace's options: other tests' may stay in it)
        empty_dir_left = os.path.isdir(options_dir) and not os.listdir(options_dir)
        return _kernel(), files_util.read(paths.netns_config_path(NETNS)), empty_dir_left

    states = {}
    for args in (b or absent, a or absent):
        assert _ok(_converge(netns_module, args))
        states[id(args)] = host()
    at_b = states[id(b or absent)]
    whole = {state[1] for state in states.values()}

    def check(_at_a, result):
        found = []
        options = files_util.read(paths.netns_config_path(NETNS))
        if options not in whole:
            found.append(f"options file: {options!r}")
        was_at_b = host() == at_b
        found += _said(result, was_at_b)
        found += _next_runs_reach(netns_module, b or absent, was_at_b, lambda: host() == at_b, host)
        left = glob.glob(paths.netns_config_path(NETNS) + ".tmp-*") + [str(p) for p in _modules_running()]
        left += [n for n in os.listdir("/run/netns") if n.startswith("h120-ka") and (b is None or n != NETNS)]
        left += [link["ifname"] for link in _ip("link", netns=None)
                 if link["ifname"].startswith("h120ka") and (b is None or link["ifname"] != PEER)]
        if left:
            found.append(f"left: {left}")
        return found

    _sweep(netns_module, a or absent, b or absent, check, cut=cut)


def test_a_wired_service_removed_killed_anywhere_leaves_nothing_after_the_next_run(clean_wired, cut):
    """A service removed with the namespace this module wired for it (veth, addresses, routes, its
    record): whatever the kill left, the next run removes the rest; the other service runs on."""
    wiring = W_A["services"][0]["wiring"]
    removed = dict(name=WIRED, state="absent", netns=WIRED_NS, wiring=wiring)
    gone = dict(services=[removed, _service(WIRED_KEPT, 1)])
    assert _ok(_converge(services, W_A))
    kept = _workloads()[(WIRED_KEPT, 1)]

    def at_b():
        return list(_workloads()) == [(WIRED_KEPT, 1)] and not _daemons(WIRED) \
            and not any(text is not None for text in _files(WIRED).values()) \
            and WIRED_NS not in os.listdir("/run/netns") \
            and not any(link["ifname"] == WIRED_PEER for link in _ip("link", netns=None))

    def check(_at_a, result):
        found = []
        if _workloads().get((WIRED_KEPT, 1)) != kept:
            found.append(f"the kept service changed: {_workloads()}")
        was_at_b = at_b()
        found += _said(result, was_at_b)
        found += _next_runs_reach(services, gone, was_at_b, at_b,
                                  lambda: (_workloads(), _daemons(WIRED), _files(WIRED)))
        left = _strays() + [str(p) for p in _modules_running()]
        left += [n for n in os.listdir("/run/netns") if n.startswith("h120-ka-w")]
        left += [link["ifname"] for link in _ip("link", netns=None) if link["ifname"].startswith("h120kaw")]
        if direct.own_cgroup(WIRED) is not None or os.path.exists(direct.default_own_cgroup(WIRED)):
            left.append(direct.default_own_cgroup(WIRED))
        if left:
            found.append(f"left: {left}")
        return found

    _sweep(services, W_A, gone, check, cut=cut)
