"""accounts: several services' system accounts made or removed in one module run, with useradd and
userdel on this machine (root): made once, used as they are afterwards, check mode and diff, names
refused before anything changes, and removed again."""

from __future__ import annotations

import contextlib
import fcntl
import grp
import json
import os
import pwd
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import accounts as accounts_util
from ansible_collections.pyforkexec.isolation.plugins.modules import accounts

# For a module run as a process of its own: this Python's path (where ansible-test put
# ansible_collections, which no child inherits).
_PATH = os.pathsep.join(p for p in sys.path if p)


def _gone(*names):
    for name in names:
        with contextlib.suppress(subprocess.CalledProcessError):
            subprocess.run(["userdel", name], check=True, capture_output=True)
        with contextlib.suppress(subprocess.CalledProcessError):
            subprocess.run(["groupdel", name], check=True, capture_output=True)


@pytest.fixture(autouse=True)
def _one_test_at_a_time():
    """This file's tests one at a time (ansible-test runs a file's tests in several workers): one's
    process running as its account, or its account without a group, met another's runs (a uid freed
    and taken again while a killed process of it was not yet reaped: "process N runs as it"; a gid
    left without a group taken by the other's useradd). Autouse, so that it is taken before the
    test's own fixtures make anything and given back after they cleaned up."""
    with open("/run/pfe-test-accounts.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture
def names(unique_name):
    made = [unique_name(), unique_name()]
    _gone(*made)
    yield made
    _gone(*made)


def test_made_in_one_call_then_used_as_they_are(run_module, names):
    checked = run_module(accounts, dict(names=names), check_mode=True, diff=True)
    assert checked["changed"] and checked["changed_names"] == names
    assert checked["diff"] == {"before": {"accounts": []}, "after": {"accounts": names}}
    with pytest.raises(KeyError):
        pwd.getpwnam(names[0])  # check mode made nothing

    made = run_module(accounts, dict(names=[*names, names[0]]))
    assert made["changed"] and made["changed_names"] == names
    for name, result in zip(names, made["results"]):
        entry = pwd.getpwnam(name)
        assert result == dict(name=name, uid=entry.pw_uid, group=entry.pw_gid, home="/nonexistent",
                              shell="/usr/sbin/nologin", changed=True)
        assert grp.getgrgid(entry.pw_gid).gr_name == name
        assert entry.pw_uid < 1000  # a system account

    again = run_module(accounts, dict(names=names, shell="/bin/sh"))
    assert not again["changed"] and again["changed_names"] == []
    assert [r["uid"] for r in again["results"]] == [r["uid"] for r in made["results"]]
    assert pwd.getpwnam(names[0]).pw_shell == "/usr/sbin/nologin"  # used as it is


def test_removed_in_one_call(run_module, names):
    run_module(accounts, dict(names=names))
    checked = run_module(accounts, dict(names=names, state="absent"), check_mode=True, diff=True)
    assert checked["changed_names"] == names and pwd.getpwnam(names[1])
    assert checked["diff"] == {"before": {"accounts": names}, "after": {"accounts": []}}
    gone = run_module(accounts, dict(names=names, state="absent"))
    assert gone["changed"] and gone["changed_names"] == names
    for name in names:
        with pytest.raises(KeyError):
            pwd.getpwnam(name)
        with pytest.raises(KeyError):
            grp.getgrnam(name)
    assert not run_module(accounts, dict(names=names, state="absent"))["changed"]


def test_a_group_of_the_name_is_taken_as_the_primary_group_and_kept_on_removal(run_module, names):
    """userdel removed the group with the account, though the group was there before the module made
    the account in it (its files' group went to a bare number)."""
    subprocess.run(["groupadd", "--system", names[0]], check=True)
    try:
        gid = grp.getgrnam(names[0]).gr_gid
        made = run_module(accounts, dict(names=names[:1]))
        assert made["results"][0]["group"] == gid
        gone = run_module(accounts, dict(names=names[:1], state="absent"))
        assert gone["changed"]
        with pytest.raises(KeyError):
            pwd.getpwnam(names[0])
        assert grp.getgrnam(names[0]).gr_gid == gid
    finally:
        subprocess.run(["groupdel", names[0]], check=False)


@pytest.mark.parametrize("bad", ["Upper", "1digit", "-dash", "a" * 33, "sp ace", "", "svc\n",
                                 # what passwd, group and subuid lines cannot hold, paths, and ansible-core's
                                 # conversions of a list of strings' null, boolean and number
                                 "svc:x", "svc/x", "..", "svc\0x", "sv\u00e9", "svc\t", None, True, 5])
def test_a_name_useradd_refuses_is_refused_first(run_module, names, bad):
    result = run_module(accounts, dict(names=[names[0], bad]))
    assert result["failed"] and result["msg"].startswith("names[1]: ")
    with pytest.raises(KeyError):
        pwd.getpwnam(names[0])  # nothing made


@pytest.mark.parametrize(("option", "value"), [("shell", "relative/sh"), ("home", "home/x"),
                                               ("shell", "/bin/sh:x"), ("home", "/srv/a\nb"),
                                               ("shell", "/bin/sh\0x"), ("home", "/srv/\0")])
@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check mode"])
def test_a_shell_or_home_useradd_refuses_is_refused_naming_the_option(
        run_module, names, option, value, check_mode):
    result = run_module(accounts, dict(names=names[:1], **{option: value}), check_mode=check_mode)
    assert result["failed"] and result["msg"].startswith(f"{option}: "), result
    with pytest.raises(KeyError):
        pwd.getpwnam(names[0])  # nothing made


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check mode"])
def test_the_superusers_account_is_never_removed(run_module, check_mode):
    result = run_module(accounts, dict(names=["root"], state="absent"), check_mode=check_mode)
    assert result["failed"] and result["msg"] == ("names[0]: root has uid 0, the superuser's: it is not "
                                                  "removed")
    assert pwd.getpwnam("root").pw_uid == 0


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check mode"])
def test_absent_removes_only_the_accounts_it_made(run_module, names, check_mode):
    """An account made otherwise (by hand; nobody, www-data) that a service was given stays: state
    absent removes those the module made (its comment says so), never another."""
    subprocess.run(["useradd", "--system", "--no-create-home", names[0]], check=True)
    run_module(accounts, dict(names=names))
    assert pwd.getpwnam(names[1]).pw_gecos == "pyforkexec service account"
    gone = run_module(accounts, dict(names=names, state="absent"), check_mode=check_mode)
    assert gone["changed_names"] == [names[1]]
    assert pwd.getpwnam(names[0])  # kept
    if not check_mode:
        with pytest.raises(KeyError):
            pwd.getpwnam(names[1])


@pytest.mark.parametrize("state", ["present", "absent"])
def test_the_diff_shows_every_named_account_there_before_and_after(run_module, names, state):
    """With an account made otherwise among the names (nobody), the diff showed "-nobody +new" as
    though nobody were removed (present), and the inverse (absent): before and after are the named
    accounts there before and after the run, not only the changing ones."""
    if state == "absent":
        run_module(accounts, dict(names=names[:1]))
    result = run_module(accounts, dict(names=["nobody", names[0]], state=state), check_mode=True, diff=True)
    both = ["nobody", names[0]]
    expected = {"present": (["nobody"], both), "absent": (both, ["nobody"])}[state]
    assert (result["diff"]["before"]["accounts"], result["diff"]["after"]["accounts"]) == expected


def _running_as(name, gid=None):
    """A process running as account ``name`` (its own group, or ``gid``), once it does."""
    uid = pwd.getpwnam(name).pw_uid
    busy = subprocess.Popen(["setpriv", f"--reuid={uid}", f"--regid={uid if gid is None else gid}",
                             "--clear-groups", "sleep", "60"])
    while os.stat(f"/proc/{busy.pid}").st_uid != uid:  # (setpriv has not set it yet)
        time.sleep(0.001)
    return busy


def test_a_removal_userdel_refuses_leaves_the_account_in_its_group(run_module, names):
    """userdel refused (a process of the account still runs) after the account had been moved off the
    group it was made in: the task failed, and the account was left in nogroup for good."""
    subprocess.run(["groupadd", "--system", names[0]], check=True)
    try:
        gid = grp.getgrnam(names[0]).gr_gid
        assert not run_module(accounts, dict(names=names[:1])).get("failed")
        busy = _running_as(names[0], gid)
        try:
            refused = run_module(accounts, dict(names=names[:1], state="absent"))
            assert refused["failed"] is True
            assert refused["msg"].startswith(f"{names[0]}: process {busy.pid} runs")
            assert pwd.getpwnam(names[0]).pw_gid == gid
        finally:
            busy.kill()
            busy.wait()
        assert not run_module(accounts, dict(names=names[:1], state="absent")).get("failed")
        assert grp.getgrnam(names[0]).gr_gid == gid
    finally:
        subprocess.run(["groupdel", names[0]], check=False)


def test_a_removal_one_account_of_which_is_in_use_removes_none(run_module, names):
    """The first account was removed, then userdel refused the second (a process of it runs): the task
    failed saying nothing had changed, with the first gone. Now none is removed, and the message names
    the account and the process."""
    assert not run_module(accounts, dict(names=names)).get("failed")
    busy = _running_as(names[1])
    try:
        for check_mode in (True, False):
            refused = run_module(accounts, dict(names=names, state="absent"), check_mode=check_mode)
            assert refused["failed"] is True and not refused["changed"], refused
            said = f"{names[1]}: process {busy.pid} runs as it: stop it first (no account was removed)"
            assert refused["msg"] == said
            assert all(pwd.getpwnam(n) for n in names)
    finally:
        busy.kill()
        busy.wait()
    assert run_module(accounts, dict(names=names, state="absent"))["changed_names"] == names


def test_check_mode_does_not_count_what_a_pyforkexec_daemon_supervises(run_module, names):
    """A role removes a service (its daemon stops it) before the account it ran as: check mode refused
    such a removal (the service still ran), where the run succeeds. Under a daemon, a process is not
    counted in check mode; the run still checks every process."""
    assert not run_module(accounts, dict(names=names[:1])).get("failed")
    uid = pwd.getpwnam(names[0]).pw_uid
    script = f"setpriv --reuid={uid} --regid={uid} --clear-groups sleep 60"
    daemon = subprocess.Popen(["sh", "-c", script, "pyforkexec.daemon"])  # (as a daemon's command line)
    try:
        while not any(os.stat(f"/proc/{p}").st_uid == uid for p in _children(daemon.pid)):
            time.sleep(0.001)
        assert run_module(accounts, dict(names=names[:1], state="absent"), check_mode=True)["changed"] is True
        refused = run_module(accounts, dict(names=names[:1], state="absent"))
        assert refused["failed"] is True and "runs as it" in refused["msg"], refused
    finally:
        for pid in _children(daemon.pid):
            os.kill(int(pid), 9)
        daemon.kill()
        daemon.wait()


def _children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return f.read().split()


def _run_apart(args):
    """The module run as a process of its own, as Ansible runs it (several at once: two plays, tasks
    delegated to the same host)."""
    done = subprocess.run([sys.executable, "-m", accounts.__name__], capture_output=True, text=True,
                          input=json.dumps({"ANSIBLE_MODULE_ARGS": args}),
                          env=dict(os.environ, PYTHONPATH=_PATH), cwd="/", timeout=120, check=False)
    try:
        return json.loads(done.stdout)
    except ValueError:
        return dict(failed=True, msg=f"no result ({done.returncode}): {done.stdout!r} {done.stderr!r}")


@pytest.mark.parametrize("state", ["present", "absent"])
def test_runs_at_once_on_the_same_accounts_all_reach_the_state(names, state):
    """Two runs at once on the same names (two plays, or tasks delegated to one host): each looked and
    found an account missing; useradd looks before it locks, so several of them succeeded, each
    replacing the account with other ids (uid 999 became 995 after a run had said 999, which the role
    maps), or one failed ("user ... already exists", "userdel: user ... does not exist") with the
    account as asked. Now the runs take turns: each succeeds, each account is said changed by the one
    run that made (removed) it, and the ids each run says are the account's."""
    if state == "absent":
        assert not _run_apart(dict(names=names)).get("failed")
    for _round in range(2):
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(_run_apart, [dict(names=names, state=state)] * 4))
        assert [r.get("msg") for r in results if r.get("failed")] == []
        said = sorted(n for r in results for n in r["changed_names"])
        assert said == sorted(names), results
        for r in results:  # each run's diff: what it changed, the others' change as there before
            there = [n for n in names if (n in r["changed_names"]) != (state == "present")]
            assert r["diff"] == {"before": {"accounts": there},
                                 "after": {"accounts": names if state == "present" else []}}
            assert [(a["name"], a["uid"], a["group"]) for a in r["results"]] == [  # the ids now
                (n, pwd.getpwnam(n).pw_uid, pwd.getpwnam(n).pw_gid) for n in names if state == "present"]
        assert all((accounts_util.entry(n) is not None) == (state == "present") for n in names)
        back = _run_apart(dict(names=names, state="absent" if state == "present" else "present"))
        assert back["changed_names"] == names, back  # (again, from the other state)


def _run_command(argv):
    """AnsibleModule.run_command's result, without a module."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


def test_an_account_another_run_made_meanwhile_is_used_as_it_is(names):
    """The race above, at its point: the run looked (missing), another run made the account, then
    this one's useradd failed. It is taken as one there before: not an error, not made here."""
    subprocess.run(["useradd", "--system", "--no-create-home", "--user-group", names[0]], check=True)
    assert accounts_util.create(_run_command, names[0], "/usr/sbin/nologin", "/nonexistent", True) is False
    with pytest.raises(accounts_util.AccountError, match=f"^{names[1]}: useradd failed"):
        accounts_util.create(_run_command, names[1], "relative", "/nonexistent", True)  # a failure as it was
    subprocess.run(["userdel", names[0]], check=True)
    assert accounts_util.remove(_run_command, names[0]) is False  # removed meanwhile


def _half_made(name):
    """An account as a useradd of the module's interrupted between its writes of /etc/passwd and
    /etc/group leaves it (a SIGKILL or SIGINT at its rename of /etc/group+: in /etc/passwd and
    /etc/shadow, its group nowhere), made here as useradd then groupdel --force (a kill at a counted
    call was not the same call with other useradd running beside the test). Its ids from a range of
    their own: the gid left without a group is one the useradd of the tests beside this one never
    takes, which would make the account's group another's before the run."""
    ids = [f"-K{key}_{value}" for key in ("SYS_UID", "SYS_GID") for value in ("MIN=59000", "MAX=59999")]
    subprocess.run(["useradd", *ids, "--shell", "/usr/sbin/nologin", "--home-dir", "/nonexistent",
                    "--no-create-home", "--system", "--user-group", "--comment", accounts_util.MARK, name],
                   check=True)
    subprocess.run(["groupdel", "--force", name], check=True)
    account = accounts_util.entry(name)
    assert account is not None and _lacks_group(name)
    return account


def _lacks_group(name):
    try:
        grp.getgrgid(pwd.getpwnam(name).pw_gid)
    except KeyError:
        return True
    return False


def test_an_account_useradd_left_half_made_gets_its_group(run_module, names):
    """An interrupted useradd (a Ctrl-C reaches the module's process group) left the account without
    its group; the next run used it as it was (ok, changed=false), with a gid no group had, which the
    next useradd gave to another account's group: two services sharing their files. Now the next run
    makes its group with its gid (check mode says so first)."""
    account = _half_made(names[0])
    checked = run_module(accounts, dict(names=names[:1]), check_mode=True, diff=True)
    assert checked["changed_names"] == names[:1] and _lacks_group(names[0])
    made = run_module(accounts, dict(names=names[:1]))
    assert made["changed_names"] == names[:1]
    assert grp.getgrgid(account["group"]).gr_name == names[0]
    assert made["results"][0]["uid"] == account["uid"] and made["results"][0]["group"] == account["group"]
    assert not run_module(accounts, dict(names=names[:1]))["changed"]


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check mode"])
def test_a_half_made_account_whose_gid_another_group_took_is_refused(run_module, names, check_mode):
    """The same, when another tool's groupadd took the gid first: the account was used in that
    group. Now refused, naming the account and the group, before anything changes."""
    account = _half_made(names[0])
    subprocess.run(["groupadd", "--gid", str(account["group"]), names[1]], check=True)
    refused = run_module(accounts, dict(names=names), check_mode=check_mode)
    said = f"names[0]: {names[0]}'s primary group {account['group']} is the group {names[1]}, not its own"
    assert refused["failed"] and refused["msg"].startswith(said), refused
    with pytest.raises(KeyError):
        pwd.getpwnam(names[1])  # nothing made


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check mode"])
def test_a_process_that_ended_and_is_not_reaped_does_not_keep_the_account(run_module, names, check_mode):
    """A process of the account that had ended but was not reaped yet (a zombie: its parent, or the
    subreaper that adopted it, had not waited for it) refused the removal ("process N runs as it: stop
    it first"), which nobody could do, and which userdel does not refuse: a test's killed process
    refused the next test's removal of an account that had taken its freed uid."""
    assert not run_module(accounts, dict(names=names[:1])).get("failed")
    uid, gid = pwd.getpwnam(names[0]).pw_uid, pwd.getpwnam(names[0]).pw_gid
    ended = subprocess.Popen(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "true"])
    try:
        while "State:\tZ" not in _status(ended.pid):
            time.sleep(0.001)  # (ended, not reaped: Popen waits only when asked)
        assert os.stat(f"/proc/{ended.pid}").st_uid == uid
        gone = run_module(accounts, dict(names=names[:1], state="absent"), check_mode=check_mode)
        assert not gone.get("failed") and gone["changed_names"] == names[:1], gone
    finally:
        ended.wait()


def _status(pid):
    with open(f"/proc/{pid}/status") as f:
        return f.read()


def test_a_change_is_refused_without_root_in_check_mode_as_in_the_run():
    """Without root, check mode said the accounts would be made where the run failed (useradd:
    Permission denied). Both now refuse, naming the account; a run with nothing to change passes."""
    pid = os.fork()
    if pid == 0:  # (as nobody: the check reads this process's euid)
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            accounts_util.check_root([], True)
            try:
                accounts_util.check_root(["svc-a"], True)
            except accounts_util.AccountError as e:
                code = 0 if str(e) == "svc-a: creating an account needs root (become: true)" else 2
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0
