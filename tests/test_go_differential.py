"""fork_exec side by side with Go 1.23's syscall.ForkExec on random ProcAttrs over Go's own fields.

tests/helpers/go_forkexec/ holds a Go driver (main.go) and a Python one (py_forkexec.py) that read the
same JSON ProcAttr, start probe/probe.c (a static program that writes what it sees: ids, groups, caps,
signal mask, namespaces against the caller's, pgid/sid, terminal, cwd, root, fds, pdeathsig, hostname,
environment) and wait for it. Each case runs both, as root and as uid 65534, and wants the same: both ran
and the probe saw the same, or both failed before the program ran with the same errno (pyforkexec naming
the step), or pyforkexec refused, before any process, what it refuses on purpose (README: Go's footguns,
values Go ignores), or the one documented difference in a program's view: with Cloneflags CLONE_NEWNS a
shared mount stays shared under Go, and is private under pyforkexec.
Cases Go cannot survive are not drawn: mappings without a user namespace (Go deadlocks), ambient caps
>= 64 (Go crashes), thread flags (Go's ForkExec never returns). Needs Go 1.23+ (PFE_GO or `go` in
PATH), a C compiler with a static libc, and root (the drivers then run as root and as 65534).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyforkexec as fe

HERE = Path(__file__).parent / "helpers" / "go_forkexec"
NOBODY = 65534
EXAMPLES = int(os.environ.get("PFE_GODIFF_EXAMPLES", "60"))  # a sweep of more: pytest --timeout=0
# what pyforkexec refuses where Go runs the program (README lists each): Go's footguns, values Go ignores
DOCUMENTED_REFUSALS = (
    r"^ValueError: SysProcAttr\.cloneflags: CLONE_FS with ProcAttr\.dir or chroot",
    r"^ValueError: SysProcAttr\.cloneflags: CLONE_(FILES|VM|VFORK|PIDFD) is refused",
    r"^ValueError: SysProcAttr\.ctty: with setctty, .* this process's own controlling terminal",
    r"^ValueError: SysProcAttr\.(pgid|ctty|cgroup_fd|gid_mappings_enable_setgroups): is used only with",
    r"^ValueError: SysProcAttr\.credential\.groups: would not be set: no_setgroups",
    r"^ValueError: SysProcAttr\.[ug]id_mappings: an empty mapping list",
    r"^ValueError: SysProcAttr\.credential\.groups: is empty .* user namespace denies setgroups",
)
EXPECTED = ("same", "refused", "private mount", "go: clone3 with CLONE_PARENT")
REPORT = os.environ.get("PFE_GODIFF_REPORT")  # a sweep: append every case and its outcome here


def _go() -> str | None:
    for cand in (os.environ.get("PFE_GO"), shutil.which("go"), "/usr/lib/go-1.23/bin/go"):
        if cand and os.access(cand, os.X_OK):
            out = subprocess.run([cand, "env", "GOVERSION"], capture_output=True, text=True).stdout.strip()
            m = re.match(r"go1\.(\d+)", out)
            if m and int(m.group(1)) >= 23:
                return cand
    return None


@pytest.fixture(scope="module")
def bench(world_dir: Path, probe: str) -> Iterator[dict]:
    go = _go()
    if go is None:
        pytest.skip("Go 1.23+ is not installed (PFE_GO, `go` in PATH or /usr/lib/go-1.23/bin/go)")
    if os.geteuid() != 0:
        pytest.skip("needs root: the drivers run as root and as uid 65534")
    base = world_dir / "godiff"
    base.mkdir()
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc is not None  # the probe fixture skipped otherwise
    subprocess.run([cc, "-static", "-O1", "-o", str(base / "probe"), str(HERE / "probe" / "probe.c")],
                   check=True)
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=mod", GOTOOLCHAIN="local")
    subprocess.run([go, "build", "-o", str(base / "go_forkexec"), "."], cwd=HERE, env=env, check=True,
                   capture_output=True)
    root = base / "root"
    (root / "out").mkdir(parents=True)
    (root / "out").chmod(0o1777)
    shutil.copy2(base / "probe", root / "probe")
    private = base / "private"  # a directory 65534 cannot enter
    private.mkdir(mode=0o700)
    fa = base / "fa"
    fa.write_text("")
    fa.chmod(0o666)
    ns = ",".join(f"{n}:{os.readlink(f'/proc/self/ns/{n}')}" for n in sorted(os.listdir("/proc/self/ns")))
    # the root a shared mount of its own: where Go's Cloneflags CLONE_NEWNS leaves the child's copy shared
    # with it, pyforkexec makes it private (README), which the probe sees in the mount's tags
    subprocess.run(["mount", "--bind", str(root), str(root)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(root)], check=True)
        yield {"base": base, "root": root, "fa": str(fa), "ns": ns, "private": str(private)}
    finally:
        subprocess.run(["umount", "-l", str(root)], check=True)


CLONE_CHOICES = [fe.CLONE_NEWNS, fe.CLONE_NEWUTS, fe.CLONE_NEWIPC, fe.CLONE_NEWNET, fe.CLONE_NEWPID,
                 fe.CLONE_NEWUSER, fe.CLONE_NEWCGROUP, fe.CLONE_NEWTIME, fe.CLONE_NEWNS, fe.CLONE_NEWUTS,
                 fe.CLONE_PARENT, fe.CLONE_SYSVSEM, fe.CLONE_IO, fe.CLONE_UNTRACED, fe.CLONE_FILES]
UNSHARE_CHOICES = [fe.CLONE_NEWNS, fe.CLONE_NEWUTS, fe.CLONE_NEWIPC, fe.CLONE_NEWNET, fe.CLONE_NEWUSER,
                   fe.CLONE_NEWCGROUP]
FD_NAMES = ["in", "out", "err", "null", "fa", "pty", "hi", -1]


def _flags(choices: list[int]) -> st.SearchStrategy[int]:
    return st.frozensets(st.sampled_from(choices), max_size=3).map(lambda s: sum(s))


def _one_in(n: int, draw: st.DrawFn) -> bool:
    return draw(st.sampled_from(range(n))) == n - 1  # the simplest draw (0) leaves the feature out


@st.composite
def cases(draw: st.DrawFn) -> dict:
    """Mostly coherent attributes (so that most cases run the program), with Go's own errors mixed in."""
    sys_: dict = {}
    clone = draw(_flags(CLONE_CHOICES))
    unshare = draw(st.sampled_from([0, 0, 0]) | _flags(UNSHARE_CHOICES))
    if not draw(st.booleans()):  # most of all as 65534: a user namespace gives the child capabilities
        clone |= fe.CLONE_NEWUSER
        unshare &= ~fe.CLONE_NEWUSER
    if _one_in(12, draw):
        clone |= fe.CLONE_FS
    if clone:
        sys_["cloneflags"] = clone
    if unshare:
        sys_["unshareflags"] = unshare
    if (clone | unshare) & fe.CLONE_NEWUSER:  # mappings without a user namespace deadlock Go
        ids = st.sampled_from([[[0, "me", 1]]] * 8
                              + [[[0, 0, 1]], [[0, "me", 1], [1, 100000, 10]], [[0, "me", 0]]])
        if not _one_in(4, draw):
            sys_["uid_mappings"] = draw(ids)
        if not _one_in(4, draw):
            sys_["gid_mappings"] = draw(ids)
            sys_["gid_mappings_enable_setgroups"] = draw(st.booleans())
    if draw(st.booleans()):
        groups = draw(st.lists(st.sampled_from([0, 100, NOBODY]), max_size=2))
        sys_["credential"] = {"uid": draw(st.sampled_from([0, 0, NOBODY, 1000])),
                              "gid": draw(st.sampled_from([0, 0, NOBODY, 1000])),
                              "groups": groups, "no_setgroups": not groups and draw(st.booleans())}
    if _one_in(4, draw):
        sys_["chroot"] = "ROOT"
    group = draw(st.sampled_from(["", "", "setsid", "setpgid", "setpgid caller", "setsid setpgid"]))
    for name in group.split():
        if name == "caller":
            sys_["pgid"] = "caller"
        else:
            sys_[name] = True
    for name in ("noctty", "pidfd"):
        if _one_in(6, draw):
            sys_[name] = True
    files = draw(st.sampled_from([["in", "out", "err"], ["pty", "out", "err"]])
                 | st.lists(st.sampled_from(FD_NAMES), max_size=5))
    if _one_in(6, draw):
        sys_["setctty"] = True
        sys_["ctty"] = draw(st.integers(0, 4))
        if not _one_in(4, draw):
            files = draw(st.sampled_from([["in", "out", "err", "pty"], ["pty", "pty", "pty", "pty"]]))
            sys_["setsid"] = True
            sys_.pop("setpgid", None)
            sys_["ctty"] = 3
    elif _one_in(8, draw):
        sys_["foreground"] = True
        sys_["ctty"] = draw(st.sampled_from(["pty", "pty", "in"]))
    if _one_in(3, draw):
        sys_["pdeathsig"] = draw(st.sampled_from([9, 15, 15, 15, 64, 64, 65]))
    if _one_in(4, draw):
        sys_["ambient_caps"] = draw(st.lists(st.sampled_from([0, 12, 21, 40]), max_size=2))
    if _one_in(5, draw):
        sys_["use_cgroup_fd"] = True
        sys_["cgroup_fd"] = draw(st.sampled_from(["cg", "cg", "null"]))
    dirs = ["", "", "", "", "/", "/proc", "PRIVATE", "/nonexistent", "FA", "root"]
    return {"session": draw(st.booleans()), "dir": draw(st.sampled_from(dirs)),
            "argv0": draw(st.sampled_from(["PROBE", "PROBE", "PROBE", "root/probe", "./probe"])),
            "env": draw(st.sampled_from([None, [], ["A=1"], ["A=1", "NOEQUALS"]])),
            "files": files, "sys": sys_}


def _resolve(case: dict, bench: dict, uid: int) -> dict:
    doc = json.loads(json.dumps(case))
    s = doc["sys"]
    out = "/out/result"
    args = [str(bench["root"] / "out" / "result"), out, "ns=" + bench["ns"], f"mnt={bench['root']}"]
    if s.get("chroot") == "ROOT":
        s["chroot"] = str(bench["root"])
    if doc["argv0"] == "PROBE":
        doc["argv0"] = "/probe" if s.get("chroot") else str(bench["root"] / "probe")
    doc["argv"] = ["probe", *args]
    doc["dir"] = {"PRIVATE": bench["private"], "FA": bench["fa"]}.get(doc["dir"], doc["dir"])
    for key in ("uid_mappings", "gid_mappings"):
        if s.get(key) is not None:
            s[key] = [[c, uid if h == "me" else h, n] for c, h, n in s[key]]
    if s.get("cgroup_fd") == "cg" and bench.get("cgroup") is None:
        s["cgroup_fd"] = "null"
    return doc


def _run(driver: list[str], doc: dict, bench: dict, uid: int, groups: bool) -> tuple[dict, str | None]:
    result = bench["root"] / "out" / "result"
    result.unlink(missing_ok=True)
    if uid == 0:
        drop = ["setpriv", "--groups=100,65534"] if groups else []
    else:
        drop = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    env = {"H_FA": bench["fa"], "H_CG": bench.get("cgroup") or "/nonexistent", "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(Path(fe.__file__).parent.parent)}
    try:
        proc = subprocess.run(drop + driver, input=json.dumps(doc), capture_output=True, text=True, env=env,
                              cwd=bench["base"], timeout=20, stdin=None)
    except subprocess.TimeoutExpired:
        return {"hang": True}, None
    try:
        outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        outcome = {"crash": proc.returncode, "stderr": proc.stderr[-400:]}
    seen = result.read_text() if result.exists() else None
    result.unlink(missing_ok=True)
    return outcome, seen


def _private_root(seen: str | None) -> str | None:
    """The probe's report with the shared mount's tags as a private mount shows them (none)."""
    return None if seen is None else re.sub(r"(?m)^watched_tags=.*$", "watched_tags=", seen)


def _compare(case: dict, go: tuple[dict, str | None], py: tuple[dict, str | None]) -> str:
    """'same', 'refused' (pyforkexec refused before any process), 'private mount' (Cloneflags
    CLONE_NEWNS: Go's copy of a shared mount stays shared, pyforkexec's is private, as documented), 'go:
    clone3 with CLONE_PARENT' (Go's bug: its clone3, taken for UseCgroupFD or CLONE_NEWTIME, asks for
    an exit signal, which the kernel refuses with CLONE_PARENT (EINVAL); pyforkexec starts the program,
    as Go's clone does without them) or a description of the difference."""
    (g, gseen), (p, pseen) = go, py
    ran = "status" in g and "status" in p and g["status"] == p["status"]
    if ran and case["sys"].get("cloneflags", 0) & fe.CLONE_NEWNS and gseen != pseen == _private_root(gseen):
        return "private mount"
    flags = case["sys"].get("cloneflags", 0)
    if flags & fe.CLONE_PARENT and (flags & fe.CLONE_NEWTIME or case["sys"].get("use_cgroup_fd")) \
            and g.get("errno") == errno.EINVAL and "refused" not in p:
        return "go: clone3 with CLONE_PARENT"
    if "refused" in p:  # before any process: where Go ran the program, README must list the refusal
        if "status" not in g or any(re.search(rule, p["refused"]) for rule in DOCUMENTED_REFUSALS):
            return "refused"
        return f"refused, go ran: {p['refused']}"
    if "status" in g and "status" in p:
        if gseen == pseen and g["status"] == p["status"]:
            return "same"
        gl, pl = (gseen or "").splitlines(), (pseen or "").splitlines()
        diff = [f"go:{a!r} py:{b!r}" for a, b in zip(gl, pl) if a != b] or [f"{len(gl)} lines, {len(pl)}"]
        return "probe differs: " + "; ".join(diff)
    if "errno" in g and "errno" in p and g["errno"] == p["errno"] and p.get("step"):
        return "same"
    if "wait_errno" in g and g == p:  # CLONE_PARENT: the child is the caller's sibling, not its child
        return "same"
    return f"outcome differs: go {g} py {p}"


def _one(case: dict, bench: dict, uid: int, groups: bool = False) -> tuple[str, dict, dict]:
    doc = _resolve(case, bench, uid)
    go = _run([str(bench["base"] / "go_forkexec")], doc, bench, uid, groups)
    py = _run([sys.executable, str(HERE / "py_forkexec.py")], doc, bench, uid, groups)
    verdict = _compare(case, go, py)
    if REPORT:
        with open(REPORT, "a") as f:
            f.write(json.dumps({"uid": uid, "groups": groups, "case": case, "go": go[0], "py": py[0],
                                "verdict": verdict, "go_seen": go[1], "py_seen": py[1]}) + "\n")
    return verdict, go[0], py[0]


@pytest.mark.parametrize(("uid", "groups"), [(0, False), (0, True), (NOBODY, False)],
                         ids=["root", "root-with-groups", "nobody"])
def test_fork_exec_does_what_go_does(bench: dict, cgroup_dir: tuple[str, str], uid: int,
                                     groups: bool) -> None:
    """The drivers run as root (with supplementary groups 100 and 65534, or none) and as 65534."""
    bench["cgroup"] = cgroup_dir[0]

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not REPORT,
              suppress_health_check=list(HealthCheck))
    @given(cases())
    def check(case: dict) -> None:
        verdict, _, _ = _one(case, bench, uid, groups)
        if REPORT:
            return
        assert verdict in EXPECTED, f"{case}: {verdict}"

    check()
