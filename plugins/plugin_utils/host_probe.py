# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""The role isolated_service's look at a host, sent as the source of ``BASE_PYTHON -c`` in one command
(the action plugin isolated_service_plan: no module round trip) and run with the host's own Python:
    BASE_PYTHON -c SOURCE VENV ACCOUNTS_JSON ROOTFS_JSON
It prints one JSON object: the base Python's version, machine and pip, whether the virtualenv has what
the modules import and which wheels it was installed from, whether PID 1 is systemd, the controllers of
the cgroup v2 tree (the pyforkexec daemon applies cgroup limits there), the passwd entries of the
services' accounts that exist (as ansible.builtin.getent has them) and whether each new root is a
directory. It reads, and changes nothing. No f-strings or annotations: an older Python (3.7 on) must still say
its version, for the role to refuse it by name."""

import importlib.util
import json
import os
import platform
import pwd
import subprocess
import sys

# What the virtualenv's Python must find for the modules (found, not imported: an import of pyroute2
# alone takes a tenth of a second, and the modules say themselves when an import fails).
VENV_CHECK = (
    "import importlib.util as u; "
    "print(all(u.find_spec(m) for m in ('pyforkexec', 'pyroute2')), u.find_spec('jinja2') is not None)"
)


def passwd(name):
    """The account's passwd entry as ansible.builtin.getent's getent_passwd has it, None without one."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return [
        entry.pw_passwd,
        str(entry.pw_uid),
        str(entry.pw_gid),
        entry.pw_gecos,
        entry.pw_dir,
        entry.pw_shell,
    ]


def pip_version():
    if importlib.util.find_spec("pip") is None:
        return None
    try:
        from importlib import metadata

        return metadata.version("pip")
    except Exception:  # an old Python without importlib.metadata: refused for its version anyway
        return None


def probe(venv, accounts, roots):
    venv_python = os.path.join(venv, "bin", "python")
    found = None
    if os.path.exists(venv_python):
        found = subprocess.run(
            [venv_python, "-c", VENV_CHECK],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            check=False,
        )
    words = found.stdout.split() if found is not None and found.returncode == 0 else []
    cgroup2 = next(
        (
            d
            for d in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")
            if os.path.exists(d + "/cgroup.controllers")
        ),
        None,
    )
    controllers = []
    if cgroup2:
        with open(cgroup2 + "/cgroup.controllers") as f:
            controllers = f.read().split()
    source = os.path.join(venv, "wheels.source")
    wheels = None
    if found is not None and os.path.exists(source):
        with open(source) as f:
            wheels = f.read().strip()
    entries = dict((name, passwd(name)) for name in accounts)
    version = pip_version()
    return dict(
        cgroup2=cgroup2,
        controllers=controllers,
        machine=platform.machine(),
        version="%d.%d" % sys.version_info[:2],  # noqa: UP031 (any Python 3)
        pip=importlib.util.find_spec("pip") is not None,
        pip_version=version,
        venv=found is not None,
        venv_ok=words[:1] == ["True"],
        jinja2=words[1:2] == ["True"],
        systemd=os.path.isdir("/run/systemd/system"),
        wheels=wheels,
        passwd=dict((name, entry) for name, entry in entries.items() if entry is not None),
        rootfs=dict((root, os.path.isdir(root)) for root in roots),
    )


def main():
    print(json.dumps(probe(sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]))))


if __name__ == "__main__":
    main()
