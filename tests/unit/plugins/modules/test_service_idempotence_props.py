"""The service and services modules are idempotent, with check mode and diff, as a property: from a
host at state A (1-3 services under manager=direct, each drawn from the documented options), a run to
state B written in other spellings the documentation allows (an int as a string, a list or a single
value, a default given or left out, keys in another order, names in their other forms) says changed
exactly when A and B differ in effect, restarts only what differs, and is planned by its check-mode run
(which touches nothing, and whose diff shows a change exactly when there is one); the next run and
check-mode run change nothing. The real host is asked each time: daemon and program pids, the
module's files, the services' cgroups.

PFE_PROPS=long runs more examples (each starts real daemons) and shrinks a failure (minutes);
PFE_PROPS=search the same examples without shrinking."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import random

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import isolation, service_direct
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
from ansible_collections.pyforkexec.isolation.plugins.modules import service, services

try:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
except ImportError:  # the dev extra has it; the regression examples below run without it
    st = None

LONG = os.environ.get("PFE_PROPS") in ("long", "search")
SHRINK = os.environ.get("PFE_PROPS") == "long"  # (search: as many examples, no shrinking)
EXAMPLES = 80 if LONG else 15

LOOP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.2; done"]  # ends at SIGTERM, as PID 1 too
PROGRAMS = {"sleep": ["sleep", "600"], "loop": LOOP}
NAMESPACES = ("pid", "mount", "uts", "ipc", "net", "cgroup")
CLONE = {"pid": "NEWPID", "mount": "NEWNS", "uts": "NEWUTS", "ipc": "NEWIPC", "net": "NEWNET",
         "cgroup": "NEWCGROUP"}
CAPS = ("CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_CHOWN", "CAP_NET_RAW")
RESOURCES = ("RLIMIT_NOFILE", "RLIMIT_CORE", "RLIMIT_NPROC")
SYSCALLS = ("ptrace", "mount", "kexec_load", "reboot")
ACCESS = ("write", "make_dir", "remove_file")  # (on /, with read and execute: the programs run)
INF = "inf"


# ---- a service in effect, and its spellings ----------------------------------------------------------

if st is not None:
    @st.composite
    def effects(draw):
        """One service as it is in effect: a dict of canonical values (None: the option not given, which
        is the documented default)."""
        state = draw(st.sampled_from(["started", "started", "stopped", "absent"]))
        ns = frozenset(draw(st.sets(st.sampled_from(NAMESPACES), max_size=3)))
        mounts = ()
        if "mount" in ns:
            kinds = ["tmpfs", "robind"] + (["proc"] if "pid" in ns else [])
            chosen = draw(st.sets(st.sampled_from(kinds)))
            mounts = tuple(k for k in ("proc", "tmpfs", "robind") if k in chosen)
        kept = st.frozensets(st.sampled_from(CAPS), max_size=3)
        dropped = st.frozensets(st.sampled_from(CAPS), min_size=1, max_size=2)
        caps = draw(st.one_of(st.none(), st.tuples(st.just("keep"), kept),
                              st.tuples(st.just("drop"), dropped)))
        limit = st.one_of(st.integers(64, 4096), st.just(INF))
        rlimits = draw(st.dictionaries(st.sampled_from(RESOURCES), st.tuples(limit, limit), max_size=2))
        # (unlimited for core only: open files are capped by fs.nr_open, processes by the module's limit)
        rlimits = {r: tuple(4096 if v == INF and r != "RLIMIT_CORE" else v for v in pair)
                   for r, pair in rlimits.items()}
        rlimits = {r: (s, h) if s == INF or h == INF or s <= h else (h, s) for r, (s, h) in rlimits.items()}
        rlimits = {r: (h, h) if s == INF and h != INF else (s, h) for r, (s, h) in rlimits.items()}
        return dict(
            state=state,
            program=draw(st.sampled_from(sorted(PROGRAMS))),
            env=draw(st.one_of(st.none(), st.dictionaries(st.sampled_from(["A", "B", "LANG"]),
                                                          st.sampled_from(["1", "x y", "C.UTF-8"]),
                                                          min_size=1))),
            chdir=draw(st.sampled_from([None, "/tmp"])),
            namespaces=ns,
            hostname="h127" if "uts" in ns and draw(st.booleans()) else None,
            mounts=mounts,
            caps=caps,
            no_new_privs=draw(st.booleans()),
            rlimits=tuple(sorted(rlimits.items())),
            seccomp=draw(st.one_of(st.none(), st.frozensets(st.sampled_from(SYSCALLS), min_size=1))),
            landlock=draw(st.one_of(st.none(), st.frozensets(st.sampled_from(ACCESS)))),
            restart=draw(st.sampled_from(["on-failure", "always", "no"])),
            restart_sec=draw(st.sampled_from([0.1, 1.0, 0.5])),
            stop_timeout=draw(st.sampled_from([None, 1, 2])),
        )


SPEC_FIELDS = ("program", "env", "chdir", "namespaces", "hostname", "mounts", "caps", "no_new_privs",
               "rlimits", "seccomp", "landlock")


def in_effect(e):
    """What of ``e`` the host shows: a stopped service its spec alone, a started one its daemon's
    arguments too (stop_timeout left out is 10), an absent one nothing."""
    if e["state"] == "absent":
        return ("absent",)
    spec = tuple(repr(e[k]) for k in SPEC_FIELDS)
    if e["state"] == "stopped":
        return ("stopped", spec)
    return ("started", spec, e["restart"], e["restart_sec"], e["stop_timeout"] or 10)


def _shuffled(rnd, mapping):
    items = list(mapping.items())
    rnd.shuffle(items)
    return dict(items)


def _cap(rnd, name):
    short = name.removeprefix("CAP_")
    return rnd.choice([name, short.lower(), short, name.lower()])


def _limit(rnd, value):
    if value == INF:
        return rnd.choice(["unlimited", -1, "infinity", "-1"])
    return rnd.choice([value, str(value)])


def _rlimit(rnd, soft, hard):
    s, h = _limit(rnd, soft), _limit(rnd, hard)
    forms = [[s, h], dict(soft=s, hard=h)]
    if soft == hard:
        forms += [s, dict(soft=s)]
    return rnd.choice(forms)


def spelled(e, name, rnd):
    """Module arguments for ``e``, in one of the spellings the documentation allows, picked by ``rnd``."""
    args = dict(name=name, manager="direct", argv=list(PROGRAMS[e["program"]]),
                start_check=rnd.choice([0, "0", 0.0]))
    maybe = rnd.random() < 0.5
    if e["state"] != "started" or maybe:
        args["state"] = e["state"]
    if e["env"] is not None:
        env = {k: int(v) if v.isdigit() and rnd.random() < 0.5 else v for k, v in e["env"].items()}
        args["env"] = _shuffled(rnd, env)
    if e["chdir"] is not None:
        args["chdir"] = e["chdir"]
    names, flags = [], []
    for kind in sorted(e["namespaces"]):
        if rnd.random() < 0.3:
            flags.append(rnd.choice([f"CLONE_{CLONE[kind]}", CLONE[kind].lower()]))
        else:
            names.append(kind)
    rnd.shuffle(names)
    if names or rnd.random() < 0.3:
        args["namespaces"] = names
    if flags or rnd.random() < 0.3:
        args["cloneflags"] = flags
    if e["hostname"] is not None:
        args["hostname"] = e["hostname"]
    mounts = []
    for kind in e["mounts"]:
        if kind == "proc":
            m = dict(type="proc", target="/proc")
        elif kind == "tmpfs":
            m = dict(type="tmpfs", target="/mnt", size="1m")
        else:
            m = dict(source="/usr", target="/usr")
            if rnd.random() < 0.5:
                m["readonly"] = True
            else:
                m["flags"] = [rnd.choice(["ro", "MS_RDONLY", "rdonly"])]
            if rnd.random() < 0.5:
                m["type"] = "bind"
            if rnd.random() < 0.3:
                m["recursive"] = True
        if rnd.random() < 0.3:
            m["mkdir"] = True
        mounts.append(_shuffled(rnd, m))
    if mounts or rnd.random() < 0.2:
        args["mounts"] = mounts
    if e["caps"] is not None:
        how, which = e["caps"]
        listed = [_cap(rnd, c) for c in sorted(which)]
        listed += [_cap(rnd, c) for c in sorted(which) if rnd.random() < 0.2]  # one named twice
        rnd.shuffle(listed)
        caps = dict(keep=listed) if how == "keep" else dict(drop=listed, drop_all_others=False)
        if how == "keep" and rnd.random() < 0.5:
            caps["drop_all_others"] = True
        if rnd.random() < 0.3:
            caps["ambient"] = []
        args["capabilities"] = _shuffled(rnd, caps)
    if e["no_new_privs"] or rnd.random() < 0.3:
        args["no_new_privs"] = rnd.choice([e["no_new_privs"], "yes" if e["no_new_privs"] else "no"])
    if e["rlimits"] or rnd.random() < 0.2:
        args["rlimits"] = {rnd.choice([r, r.removeprefix("RLIMIT_").lower()]): _rlimit(rnd, s, h)
                           for r, (s, h) in e["rlimits"]}
    if e["seccomp"] is not None:
        deny = sorted(e["seccomp"])
        rnd.shuffle(deny)
        seccomp = dict(deny=deny)
        if rnd.random() < 0.3:
            seccomp["default_action"] = "allow"
        if rnd.random() < 0.3:
            seccomp["errno"] = rnd.choice(["EPERM", "eperm", 1, "1"])
        args["seccomp"] = _shuffled(rnd, seccomp)
    if e["landlock"] is not None:
        access = sorted(e["landlock"] | {"read", "execute"})
        rnd.shuffle(access)
        landlock = dict(paths=[dict(path="/", access=access)])
        if rnd.random() < 0.3:
            landlock["mode"] = "best_effort"
        args["landlock"] = _shuffled(rnd, landlock)
    if e["restart"] != "on-failure" or rnd.random() < 0.3:
        args["restart"] = e["restart"]
    if e["restart_sec"] != 0.1 or rnd.random() < 0.3:
        value = e["restart_sec"]
        args["restart_sec"] = rnd.choice([value, str(value), int(value) if value == int(value) else value])
    if e["state"] != "started":
        pass  # (the grace of a stop, refused when longer than the running daemon's: documented)
    elif e["stop_timeout"] is not None:
        args["stop_timeout"] = rnd.choice([e["stop_timeout"], str(e["stop_timeout"])])
    elif rnd.random() < 0.3:
        args["stop_timeout"] = 10  # the documented default, given
    return _shuffled(rnd, args)


# ---- the host --------------------------------------------------------------------------------------

def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError):  # (a /proc/PID file of one that ended since open)
        return None


def host(names):
    """What the host shows of the services ``names``: their files, daemon and program pids, cgroups."""
    seen = {}
    for name in names:
        main = paths.daemon_pid(name, wait=0.0)
        seen[name] = dict(
            spec=_read(paths.spec_path(name)), pid_file=_read(paths.pid_file(name)),
            pending=os.path.exists(paths.pending_path(name)), log=os.path.exists(paths.log_file(name)),
            main=main, pid=paths.workload_pid(main) if main is not None else None,
            argv=service_direct.running_argv(main) if main is not None else None,
            cgroup=service_direct.default_own_cgroup(name) is not None
            and os.path.isdir(service_direct.default_own_cgroup(name)))
    return seen


def leftovers(prefix):
    """Whatever is left on the host named ``prefix``*: files, cgroups, netns, daemons."""
    found = []
    for pattern in (f"{paths.SPEC_DIR}/{prefix}*", f"{paths.RUN_DIR}/{prefix}*", f"{paths.LOG_DIR}/{prefix}*",
                    f"/run/netns/{prefix}*", f"/sys/fs/cgroup/unified/pyforkexec/{prefix}*",
                    f"/sys/fs/cgroup/pyforkexec/{prefix}*"):
        found += glob.glob(pattern)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        cmdline = _read(f"/proc/{pid}/cmdline") or b""
        if b"pyforkexec.daemon" in cmdline and f"\0{prefix}".encode() in cmdline:
            found.append(f"daemon {pid}")
    return found


def _ok(result):
    assert result.get("failed") is not True, (result.get("msg"), result)
    return result


def converge(run_module, module, named, check_mode=False):
    """Run ``module`` (service: once per service; services: once for all) to ``named`` ({name: args});
    (changed, diff entries with before != after, {name: changed})."""
    if module is services:
        result = _ok(run_module(services, dict(services=list(named.values())), check_mode=check_mode,
                                diff=True))
        per = {n: r["changed"] for n, r in result["services"].items()}
        entries = result.get("diff", [])
        return result["changed"], [d for d in entries if d.get("before") != d.get("after")], per
    per, shown = {}, []
    for name, args in named.items():
        result = _ok(run_module(service, args, check_mode=check_mode, diff=True))
        per[name] = result["changed"]
        shown += [dict(d, before_header=f"{name}: {d.get('before_header', '')}")
                  for d in result.get("diff", []) if d.get("before") != d.get("after")]
    return any(per.values()), shown, per


def check_transition(run_module, module, names, a, b, rnd_a, rnd_b):
    """The properties, from A to B (each {name: effects}); the services are removed after."""
    args_a = {n: spelled(a[n], n, rnd_a) for n in names}
    args_b = {n: spelled(b[n], n, rnd_b) for n in names}
    differs = {n: in_effect(a[n]) != in_effect(b[n]) for n in names}
    try:
        converge(run_module, module, args_a)
        at_a = host(names)
        # 1. check mode to B: touches nothing, plans what the run does, its diff shows it
        planned, planned_diff, planned_per = converge(run_module, module, args_b, check_mode=True)
        assert host(names) == at_a, "check mode changed the host"
        assert bool(planned_diff) == planned, (planned, planned_diff, args_a, args_b)
        for n in names:
            if planned_per[n]:
                assert any(d["before_header"].startswith(f"{n}: ") for d in planned_diff), (n, planned_diff)
        # 2. the run to B: changed exactly when A and B differ in effect; what is equal keeps running
        changed, _diff, per = converge(run_module, module, args_b)
        assert per == differs, (per, differs, args_a, args_b)
        assert changed == planned, (changed, planned)
        assert per == planned_per, (per, planned_per)
        at_b = host(names)
        for n in names:
            state = b[n]["state"]
            assert (at_b[n]["main"] is not None) == (state == "started"), (n, at_b[n])
            assert (at_b[n]["spec"] is not None) == (state != "absent"), (n, at_b[n])
            if not differs[n] and state == "started":
                kept = (at_b[n]["main"], at_b[n]["pid"]) == (at_a[n]["main"], at_a[n]["pid"])
                assert kept, (n, "restarted")
        # 3. again: nothing changes, nor would
        again, _diff, again_per = converge(run_module, module, args_b)
        assert not again, (again_per, args_b)
        check, check_diff, _per = converge(run_module, module, args_b, check_mode=True)
        assert not check and not check_diff, (check, check_diff, args_b)
        assert host(names) == at_b
    finally:
        gone = {n: dict(name=n, manager="direct", state="absent") for n in names}
        converge(run_module, services, gone)
    # 4. nothing left
    for n in names:
        assert not leftovers(n), leftovers(n)


_COUNTER = iter(range(10**6))


def _names(count):
    return [f"h127-{os.getpid()}-{next(_COUNTER)}" for _i in range(count)]


if st is not None:
    # (shrinking restarts daemons for minutes: PFE_PROPS=long only)
    @pytest.mark.timeout(3600 if LONG else 300)
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not LONG,
              phases=list(Phase) if SHRINK else [Phase.explicit, Phase.generate],
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(data=st.data())
    def test_a_run_from_a_to_b_changes_exactly_what_differs(run_module, data):
        count = data.draw(st.integers(1, 3), label="services")
        a = data.draw(st.lists(effects(), min_size=count, max_size=count), label="A")
        # B: each service as in A (another spelling), or drawn again
        same = data.draw(st.lists(st.booleans(), min_size=count, max_size=count), label="same in B")
        b = [x if keep else data.draw(effects(), label="B") for x, keep in zip(a, same)]
        module = data.draw(st.sampled_from([service, services]), label="module")
        seeds = data.draw(st.tuples(st.integers(0, 2**32), st.integers(0, 2**32)), label="spellings")
        names = _names(count)
        check_transition(run_module, module, names, dict(zip(names, a)), dict(zip(names, b)),
                         random.Random(seeds[0]), random.Random(seeds[1]))


# ---- regression examples (what the property found) -------------------------------------------------

_RX_ROOT, _W_TMP = dict(path="/", access=["read", "execute"]), dict(path="/tmp", access=["write"])


_TMPFS = dict(type="tmpfs", target="/mnt")
_MOUNT = dict(type="mount", source="tmpfs", fstype="tmpfs", target="/mnt")


def _mounts(*entries):
    return dict(namespaces=["mount"], mounts=list(entries))


@pytest.mark.parametrize(("first", "again"), [
    (dict(capabilities=dict(keep=["CAP_KILL", "CAP_CHOWN"])),
     dict(capabilities=dict(keep=["chown", "kill"]))),
    (dict(rlimits=dict(core="unlimited")), dict(rlimits=dict(RLIMIT_CORE=-1))),
    (dict(env=dict(A="1", B="2")), dict(env=dict(B="2", A="1"))),
    (dict(seccomp=dict(deny=["ptrace", "mount"])), dict(seccomp=dict(deny=["mount", "ptrace", "mount"]))),
    (dict(landlock=dict(paths=[dict(path="/", access=["read", "execute"])])),
     dict(landlock=dict(paths=[dict(path="/", access=["execute", "read"])]))),
    (dict(landlock=dict(paths=[_RX_ROOT, _W_TMP])), dict(landlock=dict(paths=[_W_TMP, _RX_ROOT]))),
    (dict(namespaces=["mount"], mounts=[dict(type="tmpfs", target="/mnt", mode="1777")]),
     dict(namespaces=["mount"], mounts=[dict(type="tmpfs", target="/mnt", mode="01777")])),
    # (h147) paths as the kernel walks them, sizes as tmpfs reads them, flags as bits, groups as the
    # kernel sorts them, domains as the resolver reads them
    (_mounts(dict(_TMPFS, size="1m")), _mounts(dict(_TMPFS, size="1024k"))),
    (_mounts(dict(type="tmpfs", target="/mnt", size="64m", options="nr_inodes=1024,mode=755")),
     _mounts(dict(type="tmpfs", target="/mnt", size="67108864", options="nr_inodes=1k,mode=0755"))),
    (_mounts(dict(type="tmpfs", target="/mnt")), _mounts(dict(type="tmpfs", target="//mnt/./"))),
    (_mounts(dict(type="bind", source="/usr", target="/mnt", readonly=True)),
     _mounts(dict(type="bind", source="/usr/", target="/mnt/", readonly=True))),
    (_mounts(dict(type="bind", source="/etc/hostname", target="/etc/hostname", readonly=True)),
     _mounts(dict(type="bind", source="//etc/hostname", target="/etc/./hostname", readonly=True))),
    (_mounts(dict(_MOUNT, flags=["nosuid", "nodev"])), _mounts(dict(_MOUNT, flags=["MS_NODEV", "nosuid"]))),
    (dict(landlock=dict(paths=[_RX_ROOT])), dict(landlock=dict(paths=[dict(_RX_ROOT, path="//")]))),
    (dict(landlock=dict(paths=[_RX_ROOT, _W_TMP])),
     dict(landlock=dict(paths=[dict(path="/", access=["read_dir", "execute", "read_file"]),
                               dict(path="/tmp/", access=["make_dir"]), dict(_W_TMP, path="/tmp/.")]))),
    (dict(chdir="/tmp"), dict(chdir="//tmp/")),
    (dict(credential=dict(uid=0, groups=[3, 1, 2])), dict(credential=dict(uid=0, groups=[1, 2, 3]))),
    (dict(namespaces=["mount"], dns=["192.0.2.53"], dns_search=["example.com", "b.example"]),
     dict(namespaces=["mount"], dns=["192.0.2.53"], dns_search=["EXAMPLE.com.", "B.Example"])),
    # (h150) the rules of one port as one (the kernel adds them up), a group on a file as its file rights
    (dict(landlock=dict(ports=[dict(port=8080, access=["bind", "connect"])])),
     dict(landlock=dict(ports=[dict(port=8080, access=["connect"]), dict(port=8080, access=["bind"]),
                               dict(port=8080, access=["connect"])]))),
    (dict(landlock=dict(paths=[_RX_ROOT, dict(path="/etc/hostname", access=["read", "write"])])),
     dict(landlock=dict(paths=[_RX_ROOT, dict(path="/etc/hostname",
                                              access=["truncate", "read_file", "write_file"])]))),
    (dict(seccomp=dict(default_action="log", allow=["execve"])),
     dict(seccomp=dict(default_action="log", allow=["execve"], deny_action="kill_process"))),
], ids=["capability-names", "rlimit-names", "env-order", "seccomp-order", "landlock-access-order",
        "landlock-rule-order", "tmpfs-mode-octal", "tmpfs-size", "tmpfs-counts", "tmpfs-target",
        "bind-dir-paths", "bind-file-paths", "mount-flags", "landlock-root", "landlock-groups-and-paths",
        "chdir", "groups-order", "dns-search", "landlock-port-rules", "landlock-file-groups",
        "seccomp-unused-deny-action"])
def test_the_same_service_in_another_spelling_is_not_restarted(run_module, first, again):
    """A service given again with the same options in another spelling the documentation allows (a
    capability's short name, an rlimit's RLIMIT_ name and -1 for unlimited, env keys, system calls or
    access rights in another order)
    is unchanged: its spec was the text of the spelling, rewritten, and the service restarted."""
    started, planned, rerun = _first_then_again(run_module, first, again)
    changed = (planned["changed"], rerun["changed"])
    assert changed == (False, False), (planned["actions"], rerun["actions"])
    assert (rerun["main_pid"], rerun["pid"]) == (started["main_pid"], started["pid"])


def _first_then_again(run_module, first, again):
    """A service started with ``first``, then run to ``again`` in check mode and for real, and removed:
    the three results."""
    name = _names(1)[0]
    base = dict(name=name, manager="direct", argv=LOOP, start_check=0)
    try:
        started = _ok(run_module(service, dict(base, **first)))
        planned = _ok(run_module(service, dict(base, **again), check_mode=True, diff=True))
        rerun = _ok(run_module(service, dict(base, **again)))
    finally:
        _ok(run_module(service, dict(name=name, manager="direct", state="absent")))
    assert not leftovers(name)
    return started, planned, rerun


@pytest.mark.parametrize(("first", "again"), [
    (dict(namespaces=["uts"], hostname="Web"), dict(namespaces=["uts"], hostname="web")),
    (_mounts(dict(_TMPFS, size="10m")), _mounts(dict(_TMPFS, size="010m"))),
    (dict(landlock=dict(paths=[_RX_ROOT])),
     dict(landlock=dict(paths=[dict(_RX_ROOT, access=["read_file", "execute"])]))),
    (dict(landlock=dict(paths=[_RX_ROOT, _W_TMP])),
     dict(landlock=dict(paths=[_RX_ROOT, dict(path="/var/tmp", access=["write"])]))),
    (_mounts(dict(_MOUNT, flags=["nosuid"])), _mounts(dict(_MOUNT, flags=["nodev"]))),
    (dict(chdir="/tmp"), dict(chdir="/var/tmp")),
    (dict(credential=dict(uid=0, groups=[1, 2])), dict(credential=dict(uid=0, groups=[1, 3]))),
    (dict(namespaces=["mount"], dns=["192.0.2.53"], dns_search=["a.example", "b.example"]),
     dict(namespaces=["mount"], dns=["192.0.2.53"], dns_search=["b.example", "a.example"])),
    (dict(landlock=dict(ports=[dict(port=8080, access=["bind"])])),
     dict(landlock=dict(ports=[dict(port=8080, access=["bind"]), dict(port=8081, access=["bind"])]))),
    (dict(landlock=dict(paths=[_RX_ROOT, dict(path="/etc/hostname", access=["read"])])),
     dict(landlock=dict(paths=[_RX_ROOT, dict(path="/etc/hostname", access=["read_file", "write_file"])]))),
], ids=["hostname-case", "tmpfs-size-octal", "landlock-right", "landlock-path", "mount-flags", "chdir",
        "groups", "dns-search-order", "landlock-port", "landlock-file-right"])
def test_a_change_in_effect_restarts_the_service(run_module, first, again):
    """What one spelling of a value (test_the_same_service_in_another_spelling_is_not_restarted) must
    not hide: a value the program or the kernel tells apart (a hostname's case, memparse's octal 010m,
    one landlock right of a group, the order of search domains) is a change, planned and made."""
    started, planned, rerun = _first_then_again(run_module, first, again)
    assert (planned["changed"], rerun["changed"]) == (True, True), (planned["actions"], rerun["actions"])
    assert planned["actions"] == rerun["actions"] and rerun["actions"][-1] == "restart", rerun["actions"]
    assert rerun["pid"] != started["pid"]


@pytest.mark.parametrize(("given", "one"), [
    ("//tmp/./x/", "/tmp/x"), ("/", "/"), ("//", "/"), ("/.", "/"), ("/a/../b", "/a/../b"),
    ("rel/x", "rel/x")])
def test_a_directory_path_in_one_spelling(given, one):
    assert isolation.canonical_path(given, True) == one
    assert isolation.canonical_path(given.encode(), True) == one.encode()


def test_a_file_path_keeps_its_final_slash():
    """``/etc/hostname/`` asks for a directory (ENOTDIR at the mount or the landlock rule): not one
    spelling of ``/etc/hostname``."""
    assert isolation.canonical_path("//etc/./hostname/.", False) == "/etc/hostname/"
    assert isolation.canonical_path("//etc/./hostname", False) == "/etc/hostname"


@pytest.mark.parametrize(("given", "one"), [
    ("size=1048576,nr_inodes=1024,mode=01777", "size=1m,nr_inodes=1k,mode=1777"),
    ("size=1024K,nr_blocks=2048k", "size=1m,nr_blocks=2m"),
    ("size=10%,huge=never", "size=10%,huge=never"),
    # memparse reads a leading 0 as octal (010m is 8m) and 0x as hex: left as given
    ("size=010m,nr_inodes=0x400", "size=010m,nr_inodes=0x400"),
    ("size=1000", "size=1000"), ("size=1e", "size=1e"), ("size=1024e", "size=1024e"),
    ("mode=0o755", "mode=0o755")])
def test_tmpfs_sizes_in_one_spelling(given, one):
    assert isolation._tmpfs_sizes(given) == one


def _as_earlier_caps_env(doc):
    doc["sys"]["capabilities"]["keep"] = ["kill", "chown"]
    doc["proc"]["env"] = list(reversed(doc["proc"]["env"]))


def _as_earlier_paths_sizes_flags(doc):
    # (h147: paths, tmpfs sizes, mount flags and landlock rights as given)
    assert (doc["proc"]["dir"], doc["sys"]["mounts"][0]["target"]) == ("/tmp", "/mnt"), doc
    doc["proc"]["dir"] = "//tmp/"
    doc["sys"]["mounts"][0].update(target="/mnt/", data="size=1024k", flags="MS_NODEV,nosuid")
    doc["sys"]["landlock"]["paths"][0].update(path="//", access=["execute", "read_dir", "read_file"])


@pytest.mark.parametrize(("options", "as_earlier", "other"), [
    (dict(capabilities=dict(keep=["CAP_KILL", "CAP_CHOWN"]), env=dict(A="1", B="2")), _as_earlier_caps_env,
     dict(capabilities=dict(keep=["CAP_KILL"]))),
    (dict(chdir="//tmp/", landlock=dict(paths=[dict(path="//", access=["read_dir", "execute", "read_file"])]),
          **_mounts(dict(_MOUNT, target="/mnt/", options="size=1024k", flags=["MS_NODEV", "nosuid"]))),
     _as_earlier_paths_sizes_flags, dict(chdir="/var/tmp")),
], ids=["capabilities-env", "paths-sizes-flags"])
def test_a_spec_written_in_another_spelling_before_is_kept_and_nothing_restarts(
        run_module, options, as_earlier, other):
    """A spec written before specs held one spelling (a capability by its short name, env keys in the
    order given) is the same service: rewritten in the one spelling, its service restarted once, in
    the first run after an upgrade of the collection. It is kept as it is, and nothing restarts.
    (paths-sizes-flags: chdir //tmp/, a target /mnt/, size=1024k, flags "MS_NODEV,nosuid", landlock's
    read_dir and read_file, as the release before h147's fix wrote them.)"""
    name = _names(1)[0]
    args = dict(name=name, manager="direct", argv=LOOP, start_check=0, **options)
    try:
        started = _ok(run_module(service, args))
        with open(paths.spec_path(name)) as f:
            doc = json.load(f)
        as_earlier(doc)
        earlier = json.dumps(doc, indent=2, sort_keys=True) + "\n"
        with open(paths.spec_path(name), "w") as f:
            f.write(earlier)
        planned = _ok(run_module(service, args, check_mode=True, diff=True))
        rerun = _ok(run_module(service, args))
        assert (planned["changed"], rerun["changed"]) == (False, False), \
            (planned["actions"], rerun["actions"])
        assert (rerun["main_pid"], rerun["pid"]) == (started["main_pid"], started["pid"])
        with open(paths.spec_path(name)) as f:
            assert f.read() == earlier
        # another service in fact: written anew, and restarted
        changed = _ok(run_module(service, dict(args, **other)))
        assert changed["changed"] and changed["actions"][-1] == "restart", changed
    finally:
        _ok(run_module(service, dict(name=name, manager="direct", state="absent")))
    assert not leftovers(name)


def test_a_restart_for_the_daemon_arguments_alone_shows_in_the_diff(run_module):
    """A change of the daemon's arguments alone (stop_timeout, restart, restart_sec: in no file)
    restarts the service: the check-mode diff said nothing changed while the task said changed."""
    name = _names(1)[0]
    base = dict(name=name, manager="direct", argv=LOOP, start_check=0)
    try:
        _ok(run_module(service, base))
        planned = _ok(run_module(service, dict(base, stop_timeout=1), check_mode=True, diff=True))
        assert planned["actions"] == ["restart"]
        shown = [d for d in planned["diff"] if d["before"] != d["after"]]
        assert [d["before_header"] for d in shown] == ["daemon"], planned["diff"]
        assert "--stop-timeout 10" in shown[0]["before"] and "--stop-timeout 1\n" in shown[0]["after"]
    finally:
        _ok(run_module(service, dict(name=name, manager="direct", state="absent")))
    assert not leftovers(name)


@pytest.mark.parametrize("option", ["stop_timeout", "restart_sec", "start_check"])
def test_a_boolean_for_a_number_fails_before_the_running_service_is_touched(run_module, option):
    """``stop_timeout: true`` passed every check (ansible-core takes a boolean for an int as it is), so
    the run stopped the running service to restart it with ``--stop-timeout True``, which its new
    daemon refused: the service was left down. A boolean for any number is refused before anything
    changes, in check mode too, naming the option."""
    name = _names(1)[0]
    base = dict(name=name, manager="direct", argv=LOOP, start_check=0)
    try:
        started = _ok(run_module(services, dict(services=[base])))["services"][name]
        at_a = host([name])
        for check_mode in (True, False):
            given = dict(services=[dict(base, **{option: True})])
            result = run_module(services, given, check_mode=check_mode)
            assert result.get("failed") is True, result
            assert result["msg"] == f"services[{name}]: {option}: is a boolean, not " + \
                ("an integer" if option == "stop_timeout" else "a number"), result["msg"]
            assert host([name]) == at_a
        assert (at_a[name]["main"], at_a[name]["pid"]) == (started["main_pid"], started["pid"])
    finally:
        _ok(run_module(service, dict(name=name, manager="direct", state="absent")))
    assert not leftovers(name)


def test_a_spec_removed_while_the_specs_are_listed_is_no_service(monkeypatch):
    """Another service's spec removed by hand between the listing of the specs and its stat (the
    property test met it, beside a test that removes one) ended the run with a FileNotFoundError
    traceback: it is a service no more."""
    name, gone = _names(2)
    path = paths.spec_path(gone)
    os.makedirs(paths.SPEC_DIR, exist_ok=True)
    with open(path, "w") as f:
        f.write("{}\n")
    listing = os.scandir

    def listed_then_removed(directory):
        entries = list(listing(directory))
        os.unlink(path)
        return iter(entries)

    monkeypatch.setattr(service_direct.os, "scandir", listed_then_removed)
    try:
        assert gone not in service_direct.others_own_cgroups(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
