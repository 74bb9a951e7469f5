# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""The system accounts of services, made or removed together (module accounts): what is there is read
from the account database (pwd, grp), what is missing is made with shadow-utils' useradd, what is to go
is removed with userdel, the same commands ansible.builtin.user runs on Linux, one after the other in
one module run instead of one module run per account."""

from __future__ import annotations

import grp
import os
import pwd
import re
from typing import Callable, Optional

# What useradd accepts on Debian (NAME_REGEX's default, less the trailing $ of machine accounts).
NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")  # with fullmatch: "$" takes a last "\n"

Runner = Callable[[list], tuple]  # AnsibleModule.run_command: argv -> (rc, stdout, stderr)


class AccountError(Exception):
    """A name refused, or a command that failed; the message names the account."""


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


def plan(names: list, state: str) -> list:
    """The names whose account changes: missing ones for present; for absent, existing ones this
    module created (MARK), an account made otherwise being left as it is. The superuser's account
    (uid 0) is never removed: refused naming the entry."""
    found = [entry(n) for n in names]
    if state == "present":
        return [n for n, account in zip(names, found) if account is None]
    for i, account in enumerate(found):
        if account is not None and account["uid"] == 0:
            raise AccountError(f"names[{i}]: {account['name']} has uid 0, the superuser's: it is not "
                               "removed")
    return [n for n, account in zip(names, found) if account is not None and account["ours"]]


def _run(run: Runner, argv: list, name: str) -> None:
    rc, out, err = run(argv)
    if rc != 0:
        raise AccountError(f"{name}: {argv[0]} failed ({rc}): {(err or out).strip()}")


def create(run: Runner, name: str, shell: str, home: str, system: bool) -> None:
    """useradd, with a group of the account's name when one does not exist (else that group)."""
    argv = ["useradd", "--shell", shell, "--home-dir", home, "--no-create-home"]
    if system:
        argv.append("--system")
    try:
        grp.getgrnam(name)
        argv += ["--gid", name, "--comment", MARK_IN_GROUP]
    except KeyError:
        argv += ["--user-group", "--comment", MARK]
    _run(run, [*argv, name], name)


def check_unused(names: list[str], supervised_stop: bool = False) -> None:
    """AccountError naming an account of ``names`` that a process still runs as: userdel refuses it,
    and the accounts removed before it would be a change made halfway (checked before any is).
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
        ids = next((line.split()[1:] for line in status.splitlines() if line.startswith("Uid:")), [])
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


def remove(run: Runner, name: str) -> None:
    """userdel; the group of its name goes with it (userdel's way, when no other account has it as
    primary group) only if this module made it with the account: a group that was there before is
    first made no longer the account's primary one, which userdel then leaves."""
    account = pwd.getpwnam(name)
    if account.pw_gecos != MARK_IN_GROUP:
        _run(run, ["userdel", name], name)
        return
    _run(run, ["usermod", "--gid", str(OVERFLOW_GID), name], name)
    try:
        _run(run, ["userdel", name], name)
    except AccountError:  # (a process of it still runs): the account stays as it was
        run(["usermod", "--gid", str(account.pw_gid), name])
        raise


OVERFLOW_GID = 65534  # nogroup: the account's primary group for the moment before userdel
