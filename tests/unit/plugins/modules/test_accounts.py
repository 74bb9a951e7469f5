"""accounts: several services' system accounts made or removed in one module run, with useradd and
userdel on this machine (root): made once, used as they are afterwards, check mode and diff, names
refused before anything changes, and removed again."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import subprocess
import time

import pytest
from ansible_collections.pyforkexec.isolation.plugins.modules import accounts


def _gone(*names):
    for name in names:
        with contextlib.suppress(subprocess.CalledProcessError):
            subprocess.run(["userdel", name], check=True, capture_output=True)
        with contextlib.suppress(subprocess.CalledProcessError):
            subprocess.run(["groupdel", name], check=True, capture_output=True)


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


@pytest.mark.parametrize("bad", ["Upper", "1digit", "-dash", "a" * 33, "sp ace", "", "svc\n"])
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
