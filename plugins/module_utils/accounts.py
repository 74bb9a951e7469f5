# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""The system accounts of services, made or removed together (module accounts): what is there is read
from the account database (pwd, grp), what is missing is made with shadow-utils' useradd, what is to go
is removed with userdel, the same commands ansible.builtin.user runs on Linux, one after the other in
one module run instead of one module run per account."""

from __future__ import annotations

import contextlib
import fcntl
import grp
import os
import pwd
import re
from collections.abc import Iterator
from typing import Callable, Optional

# What useradd accepts on Debian (NAME_REGEX's default, less the trailing $ of machine accounts).
NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")  # with fullmatch: "$" takes a last "\n"

Runner = Callable[[list], tuple]  # AnsibleModule.run_command: argv -> (rc, stdout, stderr)


class AccountError(Exception):
    """A name refused, or a command that failed; the message names the account."""


# useradd looks whether the name is taken before it takes the account database's lock (shadow-utils
# 4.13): two useradd of one name at once both succeed, the second one replacing the first's entries
# with other ids (uid 999 became 995 under a run that had said 999, which the role then mapped). Runs
# of this module take a lock of their own around their look and their commands: flock(2) on the file
# of lckpwdf(3)'s lock, root's alone; flock and the fcntl lock useradd takes there do not interact on
# Linux, so useradd still takes its own. A killed run's lock goes with it.
DATABASE_LOCK = "/etc/.pwd.lock"


@contextlib.contextmanager
def database_lock(path: str = DATABASE_LOCK) -> Iterator[None]:
    """Held while a run looks at the accounts and changes them (waiting for another run's end). Not
    taken where it cannot be opened (not root), where no account can change either (``check_root``)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except PermissionError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def check_root(changing: list, present: bool) -> None:
    """AccountError when accounts are to change and this is not root: useradd and userdel would refuse
    (check mode said changed where the run failed)."""
    if changing and os.geteuid() != 0:
        raise AccountError(f"{changing[0]}: {'creating' if present else 'removing'} an account needs root "
                           "(become: true)")


def check_names(names: list) -> list:
    """The names, each once, in order; refused (naming the entry) when useradd would refuse it."""
    seen = []
    for i, name in enumerate(names):
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise AccountError(f"names[{i}]: {name!r} is not an account name (lower case letters, digits, "
                               f"'_' and '-', at most 32, not starting with a digit or '-')")
        if name not in seen:
            seen.append(name)
    return seen


# The comment (GECOS) of the accounts this module creates: state absent removes those only, never an
# account that was there before (nobody, www-data, one made by hand) that a service was given.
MARK = "pyforkexec service account"
# ... and of one made in a group of its name that was there before: that group is not the module's to
# remove (userdel removes a user's group of its name with it).
MARK_IN_GROUP = f"{MARK} (in a group made before)"


def entry(name: str) -> Optional[dict]:
    """The account as the role's plan reads it (ansible.builtin.user's result keys), or None."""
    try:
        p = pwd.getpwnam(name)
    except KeyError:
        return None
    return {"name": name, "uid": p.pw_uid, "group": p.pw_gid, "home": p.pw_dir, "shell": p.pw_shell,
            "ours": made_here(p.pw_gecos)}


def made_here(comment: str) -> bool:
    """Whether an account with this comment (GECOS) is one this module made."""
    return comment in (MARK, MARK_IN_GROUP)


def check_paths(**paths: str) -> None:
    """``shell`` and ``home`` as useradd takes them: absolute, and without the passwd file's separators
    (':' and a newline) or a NUL, which no argument of a command holds (useradd would never be run:
    run_command's "Error executing command", naming nothing); refused naming the option, in check
    mode too."""
    for option, path in paths.items():
        if not path.startswith("/") or ":" in path or "\n" in path or "\0" in path:
            raise AccountError(f"{option}: {path!r} is not an absolute path without ':', a newline or a NUL "
                               "(useradd refuses it)")


def _group_name(gid: int) -> Optional[str]:
    """The name of the group ``gid``, None when there is none."""
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return None


def half_made(account: Optional[dict]) -> bool:
    """Whether ``account`` is one this module made that lacks its group: useradd writes /etc/passwd
    first and /etc/group after it, and one interrupted between (a Ctrl-C reaches the module's process
    group) left the account with a gid no group had, the one the next groupadd or useradd takes (its
    group then the other account's: the two services would share their files)."""
    return account is not None and account["ours"] and _group_name(account["group"]) is None


def _group_refusal(account: dict) -> Optional[str]:
    """Why an account this module made cannot be used (present) as it is: its primary group is not the
    group of its name, or is missing with that name taken by another group; None when it can."""
    name, gid = account["name"], account["group"]
    group = _group_name(gid)
    if group is None:
        try:
            other = grp.getgrnam(name).gr_gid
        except KeyError:
            return None  # made again with its gid
        return (f"{name} lacks its group {gid} (made halfway: an interrupted useradd) and the group {name} "
                f"is another's ({other}): remove the account (userdel {name}) and run again")
    if group != name:
        return (f"{name}'s primary group {gid} is the group {group}, not its own (made halfway by an "
                f"interrupted useradd, its gid since taken): services of the two would share their "
                f"files; remove the account (userdel {name}) and run again")
    return None


def plan(names: list, state: str) -> list:
    """The names whose account changes: for present, missing ones and half made ones (``half_made``);
    for absent, existing ones this module created (MARK), an account made otherwise being left as it
    is. The superuser's account (uid 0) is never removed, and an account made here whose primary
    group is not its own is not used: refused naming the entry."""
    found = [entry(n) for n in names]
    if state == "present":
        for i, account in enumerate(found):
            why = _group_refusal(account) if account is not None and account["ours"] else None
            if why is not None:
                raise AccountError(f"names[{i}]: {why}")
        return [n for n, account in zip(names, found) if account is None or half_made(account)]
    for i, account in enumerate(found):
        if account is not None and account["uid"] == 0:
            raise AccountError(f"names[{i}]: {account['name']} has uid 0, the superuser's: it is not "
                               "removed")
    return [n for n, account in zip(names, found) if account is not None and account["ours"]]


def _run(run: Runner, argv: list, name: str) -> None:
    rc, out, err = run(argv)
    if rc != 0:
        raise AccountError(f"{name}: {argv[0]} failed ({rc}): {(err or out).strip()}")


class _Meanwhile(Exception):
    """Another run (a second play, a task delegated to the same host) made or removed the account
    between this run's look and its command: the command failed, the account is as asked."""


def _converge(run: Runner, argv: list, name: str, present: bool) -> None:
    """``_run``, but a failure that leaves the account as asked (``present``: there) is _Meanwhile."""
    try:
        _run(run, argv, name)
    except AccountError:
        if (entry(name) is not None) == present:
            raise _Meanwhile(name) from None
        raise


def create(run: Runner, name: str, shell: str, home: str, system: bool) -> bool:
    """useradd, with a group of the account's name when one does not exist (else that group). False
    when it was not this run that made it: another run at the same time did (useradd: "user already
    exists"); it is used as it is, as one there before. A half made one (``half_made``) gets its group
    (groupadd with its gid)."""
    account = entry(name)
    if half_made(account):
        _run(run, ["groupadd", "--gid", str(account["group"]), name], name)
        return True
    argv = ["useradd", "--shell", shell, "--home-dir", home, "--no-create-home"]
    if system:
        argv.append("--system")
    try:
        grp.getgrnam(name)
        argv += ["--gid", name, "--comment", MARK_IN_GROUP]
    except KeyError:
        argv += ["--user-group", "--comment", MARK]
    try:
        _converge(run, [*argv, name], name, present=True)
    except _Meanwhile:
        return False
    return True


def check_unused(names: list[str], supervised_stop: bool = False) -> None:
    """AccountError naming an account of ``names`` that a process still runs as: userdel refuses it,
    and the accounts removed before it would be a change made halfway (checked before any is). A
    process that ended and is not reaped yet (a zombie) runs as nothing: userdel goes on, and no one
    could "stop it first".
    ``supervised_stop`` (check mode): not the processes a pyforkexec daemon supervises, which the run
    stops first when it removes their services (the role does)."""
    uids = {pwd.getpwnam(name).pw_uid: name for name in names}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or (supervised_stop and _supervised(int(entry.name))):
            continue
        try:
            with open(f"/proc/{entry.name}/status") as f:
                status = f.read()
        except OSError:  # gone meanwhile
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("State", "").split()[:1] in (["Z"], ["X"]):  # ended, not reaped yet: runs nothing
            continue
        ids = fields.get("Uid", "").split()
        used = next((uids[int(uid)] for uid in ids if int(uid) in uids), None)
        if used is not None:
            raise AccountError(f"{used}: process {entry.name} runs as it: stop it first (no account was "
                               "removed)")


DAEMONS = ("pyforkexec-waiter", "pyforkexec.daemon")  # a daemon, as its own exe or command line says


def _supervised(pid: int) -> bool:
    """Whether ``pid`` is a pyforkexec daemon's service or a process under it (its ancestors)."""
    while pid > 1:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                words = f.read().decode(errors="replace").split("\0")
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        if any(word.endswith(DAEMONS[0]) or word == DAEMONS[1] for word in words):
            return True
    return False


def remove(run: Runner, name: str) -> bool:
    """userdel; the group of its name goes with it (userdel's way, when no other account has it as
    primary group) only if this module made it with the account: a group that was there before is
    first made no longer the account's primary one, which userdel then leaves. False when it was not
    this run that removed it: another run at the same time did."""
    try:
        account = pwd.getpwnam(name)
    except KeyError:
        return False
    try:
        if account.pw_gecos != MARK_IN_GROUP:
            _converge(run, ["userdel", name], name, present=False)
            return True
        _converge(run, ["usermod", "--gid", str(OVERFLOW_GID), name], name, present=False)
        try:
            _converge(run, ["userdel", name], name, present=False)
        except AccountError:  # (a process of it still runs): the account stays as it was
            run(["usermod", "--gid", str(account.pw_gid), name])
            raise
    except _Meanwhile:
        return False
    return True


OVERFLOW_GID = 65534  # nogroup: the account's primary group for the moment before userdel
