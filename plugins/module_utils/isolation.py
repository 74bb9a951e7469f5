# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""The isolation options shared by the forkexec and service modules, and their translation.

``ISOLATION_ARGSPEC`` is the one argument spec (documented by the ``pyforkexec.isolation.isolation``
doc fragment); ``build_sysprocattr`` turns validated module parameters into a ``pyforkexec.SysProcAttr``
and ``check_process`` runs pyforkexec's own validation on the result, so every rule about which
options combine lives in pyforkexec and reaches the user with the option's name in front.
"""

from __future__ import annotations

import dataclasses
import grp
import os
import pwd
import re

from ansible.module_utils.common.text.formatters import human_to_bytes
from ansible_collections.pyforkexec.isolation.plugins.module_utils import deps

# namespaces option value -> clone flag name (and the /proc/PID/ns file, see pyforkexec.nsinfo.NS_FILES)
NAMESPACE_FLAGS = {
    "user": "CLONE_NEWUSER",
    "pid": "CLONE_NEWPID",
    "net": "CLONE_NEWNET",
    "mount": "CLONE_NEWNS",
    "uts": "CLONE_NEWUTS",
    "ipc": "CLONE_NEWIPC",
    "cgroup": "CLONE_NEWCGROUP",
    "time": "CLONE_NEWTIME",
}
NAMESPACE_NAMES = list(NAMESPACE_FLAGS)
NETNS_DIR = "/run/netns"

_IDMAP = dict(
    container_id=dict(type="int", required=True),
    host_id=dict(type="int", required=True),
    size=dict(type="int", default=1),
)
_MOUNT = dict(
    type=dict(type="str", default="bind", choices=["bind", "tmpfs", "proc", "sysfs", "dev", "mount"]),
    source=dict(type="str"),
    target=dict(type="str", required=True),
    readonly=dict(type="bool", default=False),
    recursive=dict(type="bool", default=True),
    size=dict(type="str"),
    mode=dict(type="str"),
    fstype=dict(type="str"),
    flags=dict(type="list", elements="str", default=[]),
    options=dict(type="str"),
    mkdir=dict(type="bool", default=True),
)
_CREDENTIAL = dict(
    uid=dict(type="raw", required=True),
    gid=dict(type="raw"),
    groups=dict(type="list", elements="raw", default=[]),
    no_setgroups=dict(type="bool", default=False),
)
_CAPABILITIES = dict(
    keep=dict(type="list", elements="str", default=[]),
    ambient=dict(type="list", elements="str", default=[]),
    drop=dict(type="list", elements="str", default=[]),
    drop_all_others=dict(type="bool", default=True),
)
_SECCOMP_ACTIONS = ["allow", "errno", "kill_process", "kill_thread", "trap", "log"]
_SECCOMP = dict(
    default_action=dict(type="str", default="allow", choices=_SECCOMP_ACTIONS),
    allow=dict(type="list", elements="str", default=[]),
    deny=dict(type="list", elements="str", default=[]),
    deny_action=dict(type="str", default="errno", choices=_SECCOMP_ACTIONS),
    errno=dict(type="raw", default="EPERM"),
)
_CGROUP = dict(
    path=dict(type="str"),
    memory_max=dict(type="raw"),
    memory_swap_max=dict(type="raw"),
    cpu_max=dict(type="str"),
    cpu_weight=dict(type="int"),
    pids_max=dict(type="raw"),
    io_max=dict(type="list", elements="str"),
)
_JOIN = dict(
    pid=dict(type="int"),
    path=dict(type="path"),
    namespaces=dict(type="list", elements="str", choices=NAMESPACE_NAMES),
)

ISOLATION_ARGSPEC = dict(
    namespaces=dict(type="list", elements="str", default=[], choices=NAMESPACE_NAMES),
    cloneflags=dict(type="list", elements="str", default=[]),
    unshareflags=dict(type="list", elements="str", default=[]),
    uid_map=dict(type="list", elements="dict", options=_IDMAP),
    gid_map=dict(type="list", elements="dict", options=_IDMAP),
    map_root_user=dict(type="bool", default=False),
    setgroups=dict(type="str", default="deny", choices=["allow", "deny"]),
    hostname=dict(type="str"),
    domainname=dict(type="str"),
    netns=dict(type="str"),
    join=dict(type="list", elements="dict", options=_JOIN, default=[],
              mutually_exclusive=[("pid", "path")], required_one_of=[("pid", "path")]),
    credential=dict(type="dict", options=_CREDENTIAL),
    capabilities=dict(type="dict", options=_CAPABILITIES),
    no_new_privs=dict(type="bool", default=False),
    seccomp=dict(type="dict", options=_SECCOMP),
    rootfs=dict(type="path"),
    readonly_root=dict(type="bool", default=False),
    mounts=dict(type="list", elements="dict", options=_MOUNT, default=[],
                required_if=[("type", "bind", ["source"]), ("type", "mount", ["fstype"])]),
    mount_propagation=dict(type="str", default="private",
                           choices=["private", "slave", "shared", "unchanged"]),
    cgroup=dict(type="dict", options=_CGROUP),
    rlimits=dict(type="dict", default={}),
)
ISOLATION_MUTUALLY_EXCLUSIVE = [("map_root_user", "uid_map"), ("map_root_user", "gid_map")]

# SysProcAttr/ProcAttr field -> the module option that sets it, for error messages.
OPTION_OF_FIELD = {
    "sys.cloneflags": "namespaces/cloneflags",
    "sys.unshareflags": "unshareflags",
    "sys.uid_mappings": "uid_map",
    "sys.gid_mappings": "gid_map",
    "sys.gid_mappings_enable_setgroups": "setgroups",
    "sys.hostname": "hostname",
    "sys.domainname": "domainname",
    "sys.setns": "netns/join",
    "sys.credential": "credential",
    "sys.capabilities": "capabilities",
    "sys.no_new_privs": "no_new_privs",
    "sys.seccomp": "seccomp",
    "sys.mounts": "mounts",
    "sys.pivot_root": "rootfs",
    "sys.readonly_root": "readonly_root",
    "sys.mount_propagation": "mount_propagation",
    "sys.cgroup": "cgroup",
    "sys.rlimits": "rlimits",
    "proc.dir": "chdir",
    "proc.env": "env",
    "argv": "argv",
    "argv0": "argv",
}
_SPEC_MESSAGE = re.compile(r"^spec: ((?:sys|proc)\.[a-z_]+|argv0?)(\S*): (.*)$", re.S)


class IsolationError(ValueError):
    """An option that cannot be turned into a valid process; ``str()`` starts with the option."""


def _fail(option, message):
    raise IsolationError(f"{option}: {message}")


def _flags(option, names):
    if not names:
        return 0
    try:
        return int(deps.pyforkexec.CloneFlags.parse(",".join(names)))
    except ValueError as e:
        _fail(option, str(e))


def _id_maps(entries):
    if entries is None:
        return None
    cls = deps.pyforkexec.SysProcIDMap
    return [cls(e["container_id"], e["host_id"], e["size"]) for e in entries]


def _lookup(option, value, by_name, noun):
    """An id from a name or number (a numeric string counts as a number)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value)
    if text.isdigit():
        return int(text)
    try:
        return by_name(text)
    except KeyError:
        _fail(option, f"no such {noun}: {text!r}")


def user_id(option, value):
    return _lookup(option, value, lambda n: pwd.getpwnam(n).pw_uid, "user")


def group_id(option, value):
    return _lookup(option, value, lambda n: grp.getgrnam(n).gr_gid, "group")


def credential_for_user(user, group=None):
    """A Credential for a user name or id, as a service manager's User=/Group= sets it up: the
    user's primary group unless ``group`` is given, and its supplementary groups (initgroups)."""
    uid = user_id("user", user)
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        entry = None
    if group is not None:
        gid = group_id("group", group)
    elif entry is not None:
        gid = entry.pw_gid
    else:
        _fail("group", f"needed: uid {uid} has no passwd entry to take the primary group from")
    groups = os.getgrouplist(entry.pw_name, gid) if entry is not None else [gid]
    return deps.pyforkexec.Credential(uid=uid, gid=gid, groups=sorted(set(groups)))


def _credential(params):
    uid = user_id("credential.uid", params["uid"])
    if params["gid"] is not None:
        gid = group_id("credential.gid", params["gid"])
    else:
        try:
            gid = pwd.getpwuid(uid).pw_gid
        except KeyError:
            _fail("credential.gid", f"needed: uid {uid} has no passwd entry to take the primary group from")
    groups = [group_id(f"credential.groups[{i}]", g) for i, g in enumerate(params["groups"])]
    return deps.pyforkexec.Credential(uid=uid, gid=gid, groups=groups, no_setgroups=params["no_setgroups"])


def _setns(params, cloneflags):
    fe = deps.pyforkexec
    entries = []
    if params["netns"]:
        if cloneflags & fe.CLONE_NEWNET:
            _fail("netns", "joins an existing network namespace: it cannot be combined with a new one "
                  "('net' in namespaces or CLONE_NEWNET in cloneflags)")
        path = os.path.join(NETNS_DIR, params["netns"])
        if "/" in params["netns"] or not os.path.exists(path):
            _fail("netns", f"no network namespace {path} (create it with pyforkexec.isolation.netns)")
        entries.append(fe.SetNS(path, int(fe.CLONE_NEWNET)))
    for i, join in enumerate(params["join"]):
        kinds = join["namespaces"]
        if join["path"]:
            if kinds and len(kinds) > 1:
                _fail(f"join[{i}].namespaces", "a namespace file is of one type: give at most one")
            flag = _flags(f"join[{i}].namespaces", [NAMESPACE_FLAGS[kinds[0]]]) if kinds else 0
            entries.append(fe.SetNS(join["path"], flag))
            continue
        kinds = kinds or [k for k in fe.nsinfo.differing(join["pid"]) if k != "pid"]
        for kind in kinds:
            flag = _flags(f"join[{i}].namespaces", [NAMESPACE_FLAGS[kind]])
            entries.append(fe.SetNS(f"/proc/{join['pid']}/ns/{fe.nsinfo.NS_FILES[kind]}", flag))
    return entries


def _mount(m):
    fe = deps.pyforkexec
    kind, target = m["type"], m["target"]
    if kind == "bind":
        return [fe.Mount.bind(m["source"], target, readonly=m["readonly"], recursive=m["recursive"],
                              mkdir=m["mkdir"])]
    if kind == "tmpfs":
        return [fe.Mount.tmpfs(target, size=m["size"], mode=m["mode"], mkdir=m["mkdir"])]
    if kind == "proc":
        return [fe.Mount.proc(target, mkdir=m["mkdir"])]
    if kind == "sysfs":
        return [fe.Mount.sysfs(target, readonly=m["readonly"], mkdir=m["mkdir"])]
    if kind == "dev":
        return fe.minimal_dev(target)
    flags = list(m["flags"]) + (["ro"] if m["readonly"] else [])
    return [fe.Mount(m["source"], target, m["fstype"], ",".join(flags) or 0, m["options"], m["mkdir"])]


def _mounts(params):
    mounts = [x for m in params["mounts"] for x in _mount(m)]
    rootfs = params["rootfs"]
    if rootfs and not os.path.isdir(rootfs):
        _fail("rootfs", f"{rootfs} is not a directory")
    if rootfs and not any(m.target.rstrip("/") == "" for m in mounts):
        # pivot_root needs a mount point: the directory bound onto itself (target "/" is the new root)
        mounts.insert(0, deps.pyforkexec.Mount.bind(rootfs, "/"))
    return mounts


def _size(option, value):
    """An int, "max", or a human size such as 256M or 1G (bytes)."""
    if value is None or isinstance(value, int):
        return value
    text = str(value).strip()
    if text == "max" or text.isdigit():
        return int(text) if text.isdigit() else text
    try:
        return human_to_bytes(text)
    except ValueError as e:
        _fail(option, f"expected bytes, 'max' or a size such as 256M: {e}")


def cpu_max(value):
    """cpu.max from "max", "QUOTA [PERIOD]" or a percentage of one CPU ("50%")."""
    if value is None or not value.endswith("%"):
        return value
    try:
        percent = float(value[:-1])
    except ValueError:
        _fail("cgroup.cpu_max", f"expected 'max', 'QUOTA [PERIOD]' or a percentage, got {value!r}")
    return f"{max(1000, round(percent * 1000))} 100000"


def cgroup_limits(params):
    """The cgroup option's limits as cgroup file values (None for those not set)."""
    return dict(
        memory_max=_size("cgroup.memory_max", params["memory_max"]),
        memory_swap_max=_size("cgroup.memory_swap_max", params["memory_swap_max"]),
        cpu_max=cpu_max(params["cpu_max"]),
        cpu_weight=params["cpu_weight"],
        pids_max=_size("cgroup.pids_max", params["pids_max"]),
        io_max=params["io_max"],
    )


def _cgroup(params, default_path):
    if params is None:
        return None
    return deps.pyforkexec.Cgroup(path=params["path"] or default_path, **cgroup_limits(params))


def _rlimit_pair(option, value):
    if isinstance(value, dict):
        unknown = set(value) - {"soft", "hard"}
        if unknown or "soft" not in value:
            _fail(option, "expected {soft: N, hard: N}, a [soft, hard] pair, or one value for both")
        return value["soft"], value.get("hard", value["soft"])
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            _fail(option, f"expected [soft, hard], got {len(value)} values")
        return tuple(value)
    return value, value


def _limit(value):
    text = str(value)
    return int(text) if text.lstrip("-").isdigit() else text


def _rlimits(params):
    out = []
    for name, value in sorted(params.items()):
        soft, hard = _rlimit_pair(f"rlimits.{name}", value)
        out.append(deps.pyforkexec.Rlimit(name, _limit(soft), _limit(hard)))
    return out


def _errno(value):
    import errno

    text = str(value)
    if text.isdigit():
        return int(text)
    number = getattr(errno, text.upper(), None)
    if not isinstance(number, int):
        _fail("seccomp.errno", f"unknown errno {text!r}")
    return number


def _require_fields(params):
    """Every SysProcAttr field the options need must exist in the installed pyforkexec."""
    have = {f.name for f in dataclasses.fields(deps.pyforkexec.SysProcAttr)}
    needed = {"hostname": "hostname", "domainname": "domainname", "mounts": "mounts", "rootfs": "pivot_root",
              "readonly_root": "readonly_root", "cgroup": "cgroup", "rlimits": "rlimits",
              "capabilities": "capabilities", "no_new_privs": "no_new_privs", "seccomp": "seccomp",
              "netns": "setns", "join": "setns"}
    for option, field in needed.items():
        if params.get(option) and field not in have:
            _fail(option, f"needs SysProcAttr.{field}, which the installed pyforkexec "
                  f"{getattr(deps.pyforkexec, '__version__', '?')} does not have: upgrade pyforkexec")


def build_sysprocattr(params, cgroup_path=None, with_cgroup=True):
    """A SysProcAttr from the isolation options in ``params`` (module parameters after argument-spec
    validation). ``cgroup_path`` is the default cgroup path. Raises IsolationError."""
    fe = deps.pyforkexec
    _require_fields(params)
    clone = _flags("namespaces", [NAMESPACE_FLAGS[n] for n in params["namespaces"]])
    clone |= _flags("cloneflags", params["cloneflags"])
    uid_map, gid_map = _id_maps(params["uid_map"]), _id_maps(params["gid_map"])
    if params["map_root_user"]:
        uid_map = [fe.SysProcIDMap(0, os.geteuid(), 1)]
        gid_map = [fe.SysProcIDMap(0, os.getegid(), 1)]
    kwargs = dict(
        cloneflags=clone,
        unshareflags=_flags("unshareflags", params["unshareflags"]),
        uid_mappings=uid_map,
        gid_mappings=gid_map,
        gid_mappings_enable_setgroups=params["setgroups"] == "allow",
        credential=_credential(params["credential"]) if params["credential"] else None,
        setns=_setns(params, clone),
        hostname=params["hostname"],
        domainname=params["domainname"],
        mount_propagation=params["mount_propagation"],
        mounts=_mounts(params),
        pivot_root=params["rootfs"],
        readonly_root=params["readonly_root"],
        rlimits=_rlimits(params["rlimits"]),
        cgroup=_cgroup(params["cgroup"], cgroup_path) if with_cgroup else None,
        no_new_privs=params["no_new_privs"],
    )
    caps = params["capabilities"]
    if caps:
        kwargs["capabilities"] = fe.Capabilities(keep=caps["keep"], ambient=caps["ambient"],
                                                 drop=caps["drop"], drop_all_others=caps["drop_all_others"])
    sec = params["seccomp"]
    if sec:
        kwargs["seccomp"] = fe.SeccompFilter(default_action=sec["default_action"], allow=sec["allow"],
                                             deny=sec["deny"], errno=_errno(sec["errno"]),
                                             deny_action=sec["deny_action"])
    return fe.SysProcAttr(**kwargs)


def explain(message):
    """A pyforkexec spec error rewritten to start with the module option it comes from."""
    match = _SPEC_MESSAGE.match(message)
    if not match:
        return message
    field, rest, rule = match.groups()
    option = OPTION_OF_FIELD.get(field, field)
    where = "SysProcAttr." + field[4:] if field.startswith("sys.") else field.replace("proc.", "ProcAttr.")
    return f"{option}: {rule} (pyforkexec: {where}{rest})"


def check_process(argv, attr):
    """pyforkexec's own validation of (argv, attr), before anything starts. Raises IsolationError."""
    spec = deps.pyforkexec.spec
    try:
        spec.check(spec.Spec(argv=list(argv), attr=attr))
    except spec.SpecError as e:
        raise IsolationError(explain(str(e))) from None


def build_and_check(params, argv, env=None, chdir=None, cgroup_path=None, with_cgroup=True):
    """The ProcAttr (its ``sys`` built from the isolation options of ``params``) for argv with an
    environment (a list of "K=V", None for the launcher's) and a working directory, validated by
    pyforkexec. Raises IsolationError naming the option."""
    try:
        sys_attr = build_sysprocattr(params, cgroup_path, with_cgroup)
    except IsolationError:
        raise
    except (TypeError, ValueError) as e:  # a pyforkexec constructor refusing a value outright
        raise IsolationError(str(e)) from None
    attr = deps.pyforkexec.ProcAttr(dir=chdir or None, env=env, sys=sys_attr)
    check_process(argv, attr)
    return attr
