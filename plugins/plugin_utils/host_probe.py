# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""The role isolated_service's look at a host, sent as the source of ``BASE_PYTHON -c`` in one command
(the action plugin isolated_service_plan: no module round trip) and run with the host's own Python:
    BASE_PYTHON -c SOURCE VENV ACCOUNTS_JSON ROOTFS_JSON [LINKS_JSON]
It prints one JSON object: the base Python's version, machine and pip, whether the virtualenv has what
the modules import and which wheels it was installed from, whether PID 1 is systemd, the controllers of
the cgroup v2 tree (the pyforkexec daemon applies cgroup limits there), the passwd entries of the
services' accounts that exist (as ansible.builtin.getent has them) and the group of each one's gid,
whether each new root is a directory, the accounts the services' specs on the host run as, and the
host links of the names the services' veths and bridges take that exist (their alias, and whether
each is a bridge). It reads, and changes nothing. No
f-strings or annotations: an older Python (3.7 on) must still say its version, for the role to refuse
it by name."""

import glob
import grp
import importlib.util
import json
import os
import platform
import pwd
import sys

# What the virtualenv must hold for the modules: each package installed (its dist-info) and there (its
# __init__.py), looked at in its site-packages rather than imported by its Python (a process, and an
# import of pyroute2 alone takes a tenth of a second; the modules say themselves when an import fails).
NEEDED = ("pyforkexec", "pyroute2")


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


def primary_group(entry):
    """The name of the group of a passwd entry's (``passwd``) gid, None when no group has it."""
    try:
        return grp.getgrgid(int(entry[2])).gr_name
    except KeyError:
        return None


def _dist_versions(site):
    """{name: version} of the distributions installed in the directory ``site`` (names lowercased)."""
    try:
        names = os.listdir(site)
    except OSError:
        return {}
    found = {}
    for name in names:
        for suffix in (".dist-info", ".egg-info"):  # pip-23.0.1.dist-info, pip-20.3.4-py3.9.egg-info
            parts = name[: -len(suffix)].split("-")
            if name.endswith(suffix) and len(parts) > 1:
                found[parts[0].lower().replace("_", "-")] = parts[1]
    return found


def pip_version():
    """The version of this Python's pip, from its dist-info beside it (importlib.metadata, which costs
    more, when there is none)."""
    spec = importlib.util.find_spec("pip")
    if spec is None or not spec.submodule_search_locations:
        return None
    version = _dist_versions(os.path.dirname(next(iter(spec.submodule_search_locations)))).get("pip")
    if version is not None:
        return version
    try:
        from importlib import metadata

        return metadata.version("pip")
    except Exception:  # an old Python without importlib.metadata: refused for its version anyway
        return None


def has_package(site, dists, name):
    return name in dists and os.path.isfile(os.path.join(site, name, "__init__.py"))


# Where the service modules keep each service's spec (module_utils/service_paths.py's SPEC_DIR).
SPEC_DIR = "/etc/pyforkexec"


def _spec_uid_ranges(spec):
    """The (first, count) ranges of host uids whose account a spec's process runs as: its uid map's
    host ranges with a user namespace, else its credential's uid; none (root's) without either."""
    attrs = spec.get("sys") or {}
    maps = attrs.get("uid_mappings") or []
    if maps:
        return [(int(line["host_id"]), int(line["size"])) for line in maps]
    uid = (attrs.get("credential") or {}).get("uid")
    return [] if uid is None else [(int(uid), 1)]


def spec_accounts(spec_dir=SPEC_DIR):
    """{service: {account: its comment (GECOS)}} of every spec on the host: the accounts each service
    runs as now; and the names of the specs that could not be read (then nobody knows who uses what)."""
    out, unreadable = {}, []
    entries = pwd.getpwall()
    for path in sorted(glob.glob(os.path.join(spec_dir, "*.json"))):
        name = os.path.basename(path)[: -len(".json")]
        try:
            with open(path) as f:
                ranges = _spec_uid_ranges(json.load(f))
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            unreadable.append(name)
            continue
        out[name] = dict(
            (e.pw_name, e.pw_gecos) for e in entries if any(a <= e.pw_uid < a + n for a, n in ranges)
        )
    return out, unreadable


def host_links(names):
    """{name: {alias, bridge}} of the host links of ``names`` that exist (read in /sys/class/net)."""
    found = {}
    for name in names:
        path = os.path.join("/sys/class/net", name)
        if "/" in name or name in ("", ".", "..") or not os.path.exists(path):
            continue
        try:
            with open(os.path.join(path, "ifalias")) as f:
                alias = f.read().strip()
        except OSError:
            alias = ""
        found[name] = dict(alias=alias, bridge=os.path.isdir(os.path.join(path, "bridge")))
    return found


def probe(venv, accounts, roots, links=()):
    has_python = os.path.exists(os.path.join(venv, "bin", "python"))
    # the virtualenv is made from this Python: its site-packages are of this version
    site = os.path.join(venv, "lib", "python%d.%d" % sys.version_info[:2], "site-packages")  # noqa: UP031
    dists = _dist_versions(site) if has_python else {}
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
    if has_python and os.path.exists(source):
        with open(source) as f:
            wheels = f.read().strip()
    entries = dict((name, passwd(name)) for name in accounts)
    version = pip_version()
    # VENV is a link to the runtime in use, in VENV.runtimes/ (files/runtime_switch.py): the others
    # there are left for a later converge to remove, once no process runs from them
    current = os.path.basename(os.path.realpath(venv)) if os.path.islink(venv) else None
    try:
        others = sorted(n for n in os.listdir(venv + ".runtimes") if n != current and not n.startswith("."))
    except OSError:
        others = []
    specs, unreadable = spec_accounts()
    return dict(
        cgroup2=cgroup2,
        controllers=controllers,
        machine=platform.machine(),
        version="%d.%d" % sys.version_info[:2],  # noqa: UP031 (any Python 3)
        pip=importlib.util.find_spec("pip") is not None,
        pip_version=version,
        venv=has_python,
        venv_link=os.path.islink(venv),
        runtimes_left=others,
        venv_ok=all(has_package(site, dists, name) for name in NEEDED),
        jinja2=has_package(site, dists, "jinja2"),
        systemd=os.path.isdir("/run/systemd/system"),
        wheels=wheels,
        passwd=dict((name, entry) for name, entry in entries.items() if entry is not None),
        primary_groups=dict(
            (name, primary_group(entry)) for name, entry in entries.items() if entry is not None
        ),
        rootfs=dict((root, os.path.isdir(root)) for root in roots),
        spec_accounts=specs,
        spec_unreadable=unreadable,
        links=host_links(links),
    )


def main():
    links = json.loads(sys.argv[4]) if len(sys.argv) > 4 else []
    print(json.dumps(probe(sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), links)))


if __name__ == "__main__":
    main()
