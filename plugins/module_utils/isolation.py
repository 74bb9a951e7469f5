# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""The isolation options shared by the forkexec and service modules, and their translation.

``ISOLATION_ARGSPEC`` is the one argument spec (documented by the ``pyforkexec.isolation.isolation``
doc fragment); ``build_sysprocattr`` turns validated module parameters into a ``pyforkexec.SysProcAttr``
and ``check_process`` runs pyforkexec's own validation on the result, so every rule about which
options combine lives in pyforkexec and reaches the user with the option's name in front.

Every message names the option the user wrote, down to the entry (``join[1]``, ``uid_map[0].size``,
``credential.uid``): while it builds the SysProcAttr, ``build_sysprocattr`` records which option each
pyforkexec field came from (``Origins``), and ``Built.explain`` rewrites pyforkexec's field names, in a
validation message, an ``OSError`` of the spawn or a ``ChildError`` of the child, back to that option.
"""

from __future__ import annotations

import dataclasses
import fractions
import grp
import os
import pwd
import re

from ansible.module_utils.common.text.formatters import human_to_bytes
from ansible.module_utils.parsing.convert_bool import BOOLEANS, boolean
from ansible_collections.pyforkexec.isolation.plugins.module_utils import deps, pidfds

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
    readonly=dict(type="bool"),  # None: the type's own (read-only for a sysfs, else read-write)
    recursive=dict(type="bool"),  # None: a bind's is recursive
    size=dict(type="str"),
    mode=dict(type="str"),
    fstype=dict(type="str"),
    flags=dict(type="list", elements="str", default=[]),
    options=dict(type="str"),
    mkdir=dict(type="bool", default=True),
    idmap=dict(type="raw"),
    optional=dict(type="bool", default=False),
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
# The right, port and scope names are pyforkexec's (pyforkexec.sandbox.landlock): it checks them, and
# its message names the entry (landlock.paths[1].access[0]).
_LANDLOCK_PATH = dict(
    path=dict(type="path", required=True),
    access=dict(type="list", elements="str", required=True),
)
_LANDLOCK_PORT = dict(
    port=dict(type="int", required=True),
    access=dict(type="list", elements="str", required=True),
)
_LANDLOCK = dict(
    paths=dict(type="list", elements="dict", options=_LANDLOCK_PATH, default=[]),
    ports=dict(type="list", elements="dict", options=_LANDLOCK_PORT, default=[]),
    scopes=dict(type="list", elements="str", default=[]),
    mode=dict(type="str", default="best_effort", choices=["best_effort", "strict"]),
)
_JOIN = dict(
    pid=dict(type="int"),
    path=dict(type="path"),
    namespaces=dict(type="list", elements="str", choices=NAMESPACE_NAMES),
)


@dataclasses.dataclass(frozen=True)
class Option:
    """One Ansible isolation option: its argument spec, the SysProcAttr fields messages about which
    name it (``fields``), and those it also fills (``also``: it needs them in the installed pyforkexec).
    The doc fragment ``pyforkexec.isolation.isolation``, the role isolated_service's argument specs
    and what ``build_sysprocattr`` makes of each option (exactly the fields of its row) are checked
    against these rows (tests/unit/plugins/module_utils/test_options_table.py)."""

    name: str
    spec: dict
    fields: tuple = ()
    also: tuple = ()


# ONE ROW PER OPTION: the argument spec, the option-of-field table and the fields each option needs
# are all made from it.
ISOLATION_OPTIONS = (
    Option("namespaces", dict(type="list", elements="str", default=[], choices=NAMESPACE_NAMES),
           ("cloneflags",)),
    Option("cloneflags", dict(type="list", elements="str", default=[]), ("cloneflags",)),
    Option("unshareflags", dict(type="list", elements="str", default=[]), ("unshareflags",)),
    Option("uid_map", dict(type="list", elements="dict", options=_IDMAP), ("uid_mappings",)),
    Option("gid_map", dict(type="list", elements="dict", options=_IDMAP), ("gid_mappings",)),
    Option("map_root_user", dict(type="bool", default=False), (), ("uid_mappings", "gid_mappings")),
    Option("setgroups", dict(type="str", default="deny", choices=["allow", "deny"]),
           ("gid_mappings_enable_setgroups",)),
    Option("hostname", dict(type="str"), ("hostname",)),
    Option("domainname", dict(type="str"), ("domainname",)),
    Option("netns", dict(type="str"), ("setns",)),
    Option("join", dict(type="list", elements="dict", options=_JOIN, default=[],
                        mutually_exclusive=[("pid", "path")], required_one_of=[("pid", "path")]), ("setns",)),
    Option("credential", dict(type="dict", options=_CREDENTIAL), ("credential",)),
    Option("capabilities", dict(type="dict", options=_CAPABILITIES), ("capabilities",)),
    Option("no_new_privs", dict(type="bool", default=False), ("no_new_privs",)),
    Option("seccomp", dict(type="dict", options=_SECCOMP), ("seccomp",)),
    Option("restrict_suid_sgid", dict(type="bool"), ("restrict_suid_sgid",)),
    Option("restrict_namespaces", dict(type="list", elements="str", choices=NAMESPACE_NAMES),
           ("restrict_namespaces",)),
    Option("landlock", dict(type="dict", options=_LANDLOCK), ("landlock",)),
    Option("rootfs", dict(type="path"), ("pivot_root",), ("mounts",)),
    Option("readonly_root", dict(type="bool", default=False), ("readonly_root",)),
    Option("mounts", dict(type="list", elements="dict", options=_MOUNT, default=[],
                          required_if=[("type", "bind", ["source"])]),
           ("mounts",)),
    Option("mount_propagation",
           dict(type="str", default="private", choices=["private", "slave", "shared", "unchanged"]),
           ("mount_propagation",)),
    Option("cgroup", dict(type="dict", options=_CGROUP), ("cgroup",)),
    Option("rlimits", dict(type="dict", default={}), ("rlimits",)),
)
ISOLATION_ARGSPEC = {option.name: option.spec for option in ISOLATION_OPTIONS}
ISOLATION_MUTUALLY_EXCLUSIVE = [("map_root_user", "uid_map"), ("map_root_user", "gid_map")]


def _option_of_field():
    """SysProcAttr field -> the option(s) that set it ("netns/join"), then the ProcAttr fields and argv
    of the modules' own options."""
    out = {}
    for option in ISOLATION_OPTIONS:
        for field in option.fields:
            key = f"sys.{field}"
            out[key] = f"{out[key]}/{option.name}" if key in out else option.name
    return dict(out, **{"proc.dir": "chdir", "proc.env": "env", "argv": "argv", "argv0": "argv"})


# SysProcAttr/ProcAttr field -> the module option that sets it, for messages about a field that
# build_sysprocattr did not record (explain() without Origins).
OPTION_OF_FIELD = _option_of_field()
# A pyforkexec message about a field: "spec: sys.uid_mappings[1].size: RULE" from spec.check, or
# "SysProcAttr.setns[0]: RULE" from the library itself (validation, or an OSError of the spawn).
_FIELD_MESSAGE = re.compile(
    r"^(?:spec: )?(?P<path>(?:sys|proc|SysProcAttr|ProcAttr)\.[A-Za-z_]\S*?|argv0?\S*?): (?P<rule>.*)$", re.S)
_PATH_PART = re.compile(r"\.[A-Za-z_]+|\[\d+\]")
# The child's step -> the field it carries out (those with an index: the entry of that list field).
OFFLINE_ID = 65534  # the id a user or group name stands for in a check away from its host (nobody's)


class IsolationError(ValueError):
    """An option that cannot be turned into a valid process; ``str()`` starts with the option."""


def _fail(option, message):
    raise IsolationError(f"{option}: {message}")


class Origins:
    """Which module option each pyforkexec field was built from: ``sys.setns[2]`` from ``join[1]``,
    ``sys.mounts[0]`` from ``rootfs``... Recorded before the value is made, so that even a refusal of
    the value itself names its option."""

    def __init__(self, argv_option="argv"):
        self._options = {"argv": (argv_option, frozenset()), "argv0": (argv_option, frozenset())}

    def add(self, field, option, keys=()):
        """``field`` (``sys.credential``) comes from ``option``; below it, the sub-fields named in
        ``keys`` are the option's own sub-options of the same name (``sys.credential.uid`` is
        ``credential.uid``), any other is reported as the option itself."""
        self._options[field] = (option, frozenset(keys))

    def copy(self):
        copied = Origins()
        copied._options = dict(self._options)
        return copied

    def option(self, path):
        """The module option a pyforkexec field path (``sys.uid_mappings[1].size``) comes from."""
        head = re.match(r"^(sys|proc|argv0?)", path)
        if not head:
            return path
        parts = [head.group(1), *_PATH_PART.findall(path[head.end():])]
        for n in range(len(parts), 0, -1):
            recorded = self._options.get("".join(parts[:n]))
            if recorded is not None:
                option, keys = recorded
                rest = parts[n:]
                if rest and rest[0][1:] in keys:
                    option += "".join(rest)
                return option
        for n in range(len(parts), 0, -1):
            option = OPTION_OF_FIELD.get("".join(parts[:n]))
            if option is not None:
                return option
        return path


def explain(message, origins=None):
    """A pyforkexec message about a field rewritten to start with the module option it comes from,
    the field kept in parentheses; any other message unchanged."""
    match = _FIELD_MESSAGE.match(message)
    if not match:
        return message
    path, rule = match.group("path"), match.group("rule")
    path = re.sub(r"^SysProcAttr\.", "sys.", re.sub(r"^ProcAttr\.", "proc.", path))
    option = (origins or Origins()).option(path)
    where = "SysProcAttr." + path[4:] if path.startswith("sys.") else path.replace("proc.", "ProcAttr.")
    return f"{option}: {rule} (pyforkexec: {where})"


@dataclasses.dataclass
class Built:
    """A validated ProcAttr and the option each of its fields came from."""

    attr: object  # pyforkexec.ProcAttr
    origins: Origins

    def explain(self, error, context=None):
        """The message of a pyforkexec error (an OSError or ValueError of the spawn, or a ChildError),
        starting with the module option it is about; else with ``context``, when given."""
        if isinstance(error, deps.pyforkexec.ChildError):
            return self._child_error(error)
        if isinstance(error, OSError) and error.strerror:
            text = error.strerror if error.filename is None else f"{error.strerror}: {error.filename}"
        else:
            text = str(error)
        explained = explain(text, self.origins)
        return f"{context}: {text}" if explained == text and context else explained

    def _child_error(self, error):
        field = error.field  # the field whose step failed (pyforkexec.errors.FIELD_OF_STEP)
        if field is None:  # execve (argv), or a step no option asks for
            return str(error)
        return f"{self.origins.option(field)}: {error}"


def _flags(option, names):
    if not names:
        return 0
    try:
        return int(deps.pyforkexec.CloneFlags.parse(",".join(names)))
    except ValueError as e:
        _fail(option, str(e))


def _id_maps(option, entries, field, origins):
    if entries is None:
        return None
    origins.add(field, option)
    for i in range(len(entries)):
        origins.add(f"{field}[{i}]", f"{option}[{i}]", _IDMAP)
    cls = deps.pyforkexec.SysProcIDMap
    return [cls(e["container_id"], e["host_id"], e["size"]) for e in entries]


def _check_id(option, number):
    """A uid or gid the kernel can take, by pyforkexec's own rule ((uid_t)-1 is not an id)."""
    fe = deps.pyforkexec
    try:
        return fe.checks.check_int(option, number, 0, fe.validate.MAX_ID)
    except (TypeError, ValueError) as e:
        raise IsolationError(str(e)) from None


def _decimal(text):
    """Whether ``text`` is a number written in ASCII digits (str.isdigit() takes superscripts and
    other scripts' digits too, U+00B2, U+0660)."""
    return text.isascii() and text.isdigit()


def _lookup(option, value, by_name, noun, on_host=True):
    """An id from a name or number (a numeric string counts as a number). Away from the host
    (``on_host`` false) a name stands for an id it will have there: OFFLINE_ID."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _check_id(option, value)
    text = str(value)
    if _decimal(text):  # ASCII digits: another script's zero (U+0660) is a name, which no account has
        return _check_id(option, int(text))
    if "\0" in text:  # getpwnam() raised ValueError ("embedded null byte"): a message without the option
        _fail(option, f"contains a NUL byte, which no {noun} name holds: {text!r}")
    if not on_host:
        return OFFLINE_ID
    try:
        return by_name(text)
    except KeyError:
        _fail(option, f"no such {noun}: {text!r}")


def user_id(option, value, on_host=True):
    return _lookup(option, value, lambda n: pwd.getpwnam(n).pw_uid, "user", on_host)


def group_id(option, value, on_host=True):
    return _lookup(option, value, lambda n: grp.getgrnam(n).gr_gid, "group", on_host)


def _passwd(uid, on_host):
    """The passwd entry of ``uid`` on the host, None without one (or away from the host)."""
    if not on_host:
        return None
    try:
        return pwd.getpwuid(uid)
    except KeyError:
        return None


def credential_for_user(user, group=None, on_host=True):
    """A Credential for a user name or id, as a service manager's User=/Group= sets it up: the
    user's primary group unless ``group`` is given, and its supplementary groups (initgroups)."""
    uid = user_id("user", user, on_host)
    entry = _passwd(uid, on_host)
    if group is not None:
        gid = group_id("group", group, on_host)
    elif entry is not None or not on_host:
        gid = entry.pw_gid if entry is not None else OFFLINE_ID
    else:
        _fail("group", f"needed: uid {uid} has no passwd entry to take the primary group from")
    groups = os.getgrouplist(entry.pw_name, gid) if entry is not None else [gid]
    return deps.pyforkexec.Credential(uid=uid, gid=gid, groups=sorted(set(groups)))


def _credential(params, origins, on_host):
    """The Credential of ``credential``, or of the service module's ``user``/``group``, else None."""
    user, group = params.get("user"), params.get("group")
    if params["credential"] is None and user is None and group is None:
        return None
    if params["credential"] is None:
        origins.add("sys.credential", "user" if user is not None else "group")
        if group is not None:
            origins.add("sys.credential.gid", "group")
        return credential_for_user(user if user is not None else 0, group, on_host)
    origins.add("sys.credential", "credential", _CREDENTIAL)
    params = params["credential"]
    uid = user_id("credential.uid", params["uid"], on_host)
    if params["gid"] is not None:
        gid = group_id("credential.gid", params["gid"], on_host)
    elif on_host:
        entry = _passwd(uid, on_host)
        if entry is None:
            _fail("credential.gid", f"needed: uid {uid} has no passwd entry to take the primary group from")
        gid = entry.pw_gid
    else:
        gid = OFFLINE_ID
    groups = [group_id(f"credential.groups[{i}]", g, on_host) for i, g in enumerate(params["groups"])]
    return deps.pyforkexec.Credential(uid=uid, gid=gid, groups=groups, no_setgroups=params["no_setgroups"])


def environment_entries(env):
    """The ``env`` option as "NAME=value" entries; a name that would set another variable, and a value
    that is no string or number (a null would be the string "None"), are refused."""
    entries = []
    for name, value in env.items():
        if not name or "=" in name or "\0" in name:
            _fail(f"env.{name}", "not a variable name (empty, or with '=' or a NUL byte)")
        if value is None or isinstance(value, (list, dict)):
            got = "null" if value is None else f"a {type(value).__name__}"
            _fail(f"env.{name}", f"expected a string or a number, got {got}")
        if "\0" in str(value):  # execve would end the string there: another value than the one given
            _fail(f"env.{name}", "the value has a NUL byte")
        entries.append(f"{name}={value}")
    return entries


def refuse_empty_strings(params, names):
    """An option of ``names`` given as "" (also inside its lists and dicts) is refused: an empty value,
    such as a template variable that came out empty, would otherwise read as "not given" and drop what
    it asks for (``netns: ""`` ran the command in the host's network namespace)."""

    def walk(option, value):
        if value == "":
            _fail(option, "is empty: give a value, or leave the option out")
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{option}.{key}", item)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(f"{option}[{i}]", item)

    for name in names:
        walk(name, params.get(name))


def _kind_of_type(nstype):
    return next((k for k, flag in NAMESPACE_FLAGS.items() if int(getattr(deps.pyforkexec, flag)) == nstype),
                hex(nstype))


def namespace_type(option, path):
    """The CLONE_NEW* type of the namespace file ``path`` (a /proc/PID/ns link or a bind mount of one,
    such as /run/netns/NAME). Fails naming ``option`` when there is no namespace there: the process
    exited, the file is gone, or it is an ordinary file (a netns name whose mount went away)."""
    try:
        kind = deps.pyforkexec.nsinfo.nstype(path)
    except OSError as e:
        _fail(option, f"no namespace to join at {path}: {e.strerror}")
    if not kind:
        _fail(option, f"{path} is not a namespace (a /proc/PID/ns/* file, or a bind mount of one)")
    return kind


def refuse_own(option, path, kind):
    """Fail naming ``option`` when the namespace file ``path`` (of type ``kind``) is this host's own:
    pyforkexec refuses that join (the command would run on the host, as if no join had been asked);
    found here, check mode reports it too."""
    try:
        own = deps.pyforkexec.nsinfo.is_callers(path)
    except OSError as e:
        _fail(option, f"no namespace to join at {path}: {e.strerror}")
    if own:
        _fail(option, f"{path} is this host's own {_kind_of_type(kind)} namespace: the command would run "
              "on the host, as if no join had been asked")


def _join_entries(option, join, on_host):
    """[(path, nstype, pins)] of one ``join`` entry (pins: SetNS's pin fields, _pins); each one is a
    namespace that exists now.
    Away from the host, the namespaces it names (none for a pid without ``namespaces``: they are
    found there)."""
    kinds = join["namespaces"]
    flags = [_flags(f"{option}.namespaces", [NAMESPACE_FLAGS[k]]) for k in kinds or []]
    if join["path"] and kinds and len(kinds) > 1:
        _fail(f"{option}.namespaces", "a namespace file is of one type: give at most one")
    nsinfo = deps.pyforkexec.nsinfo
    if not on_host:
        if join["path"]:
            return [(join["path"], flags[0] if flags else 0, {})]
        return [(nsinfo.ns_path(join["pid"], k), f, {}) for k, f in zip(kinds or [], flags)]
    if join["path"]:
        nstype = namespace_type(f"{option}.path", join["path"])
        if kinds and nstype != flags[0]:
            _fail(f"{option}.namespaces",
                  f"{join['path']} is a {_kind_of_type(nstype)} namespace, not {kinds[0]}")
        refuse_own(f"{option}.path", join["path"], nstype)
        # A name (/run/netns/NAME) means whatever it names when the command starts; a /proc/PID path
        # means that process's namespace, and nothing else once the PID is reused.
        # A path through a process's /proc directory (/proc/PID/ns/net, and /proc/PID/root/run/netns/NAME
        # or /proc/PID/fd/N: that process's name or fd) is pinned to the process too.
        where, path = _through_process(join["path"])
        link = _process_link(join["path"]) if where is None else None
        if link is not None:  # (a symlink to a process's namespace file)
            where, directory = _proc_number(link)
            if where:
                path = os.path.join(directory, os.path.basename(link))
        elif where is None:
            return [(join["path"], nstype, {})]
        return [(path, nstype, _pins(f"{option}.path", path, where))]
    pid = join["pid"]
    # Pinned while its namespaces are read (its pidfd): one that ended meanwhile left its number to any
    # process, whose namespaces' inodes were read and pinned in the spec, which the service then joined
    # at every start.
    pin = _pin(f"{option}.pid", pid)
    try:
        entries = _pid_join_entries(option, join, kinds, pid, pin)
        if pin is not None and not pidfds.alive(pin):
            _fail(f"{option}.pid", f"process {pid} ended while its namespaces were read: its number may be "
                  "another process's by now")
    finally:
        if pin is not None:
            os.close(pin)
    return entries


def _pin(option, pid):
    """A pidfd of process ``pid`` (None where the kernel has none, or ``pid`` is a thread's id); fails
    naming ``option`` when no process has that number."""
    try:
        return os.pidfd_open(pid) if pid > 0 else None
    except ProcessLookupError:
        _fail(option, f"no process {pid}")
    except OSError:  # (ENOSYS: Linux < 5.3; a thread's id: read by its number, as before)
        return None


def _pid_join_entries(option, join, kinds, pid, pin):
    """The entries of a ``join`` by pid (of the process pinned by ``pin``), as _join_entries."""
    nsinfo = deps.pyforkexec.nsinfo
    # Its files by the number /proc gives it: ``pid`` is this PID namespace's (as kill takes it), which
    # /proc may number otherwise (a container that kept the host's /proc: pidfds.in_proc).
    where = pidfds.in_proc(pid, pin) if pid > 0 else None
    if where is None or not nsinfo.pid_exists(where):
        _fail(f"{option}.pid", f"no process {pid}")
    if not kinds:
        try:
            kinds = [k for k in nsinfo.differing(where) if k != "pid"]
        except OSError as e:
            _fail(f"{option}.pid", f"cannot read the namespaces of process {pid}: {e.strerror}")
        # A process that exited but is not reaped yet has a /proc entry, its user namespace and none of
        # the others: refuse it rather than join nothing (the command would run in this host's).
        namespace_type(f"{option}.pid", nsinfo.ns_path(where, "mount"))
        if not kinds:  # the command would run in this host's namespaces, as if no join had been asked
            _fail(f"{option}.pid", f"process {pid} is in this host's namespaces: nothing to join")
    named = f"{option}.namespaces" if join["namespaces"] else f"{option}.pid"
    paths = [nsinfo.ns_path(where, kind) for kind in kinds]
    entries = [(path, namespace_type(named, path), _pins(named, path, where)) for path in paths]
    for path, nstype, _pins_now in entries:
        refuse_own(named, path, nstype)
    return entries


# What readlink(2) says of a process's namespace file (/proc/PID/ns/net: "net:[4026531840]").
_NS_LINK = re.compile(r"^[a-z_]+:\[[0-9]+\]$")


def _process_link(path):
    """The /proc/PID/ns link the namespace file ``path`` is, however it is spelled (//proc/PID,
    /proc/./PID, /proc/../proc/PID, a symlink to it or to /proc/PID, another mount of proc), or None
    when it is a namespace bound on a file (/run/netns/NAME). Told by the link itself, not by the
    spelling: a spelling other than /proc/PID/ went unpinned, and a service's later start joined
    whatever process had that PID by then."""
    for _hop in range(40):  # (the kernel's own bound on the symlinks one lookup follows)
        try:
            target = os.readlink(path)
        except OSError:  # not a symlink: a namespace bound on a file (what is not there: namespace_type)
            return None
        if _NS_LINK.match(target):
            return path
        path = os.path.join(os.path.dirname(path), target)
    return None


def _proc_number(link):
    """(where /proc shows the process whose /proc/PID/ns directory holds ``link``: "PID", or the thread
    "PID/task/TID" of a /proc/PID/task/TID/ns one, whose start pyforkexec pins for such a path (a TID
    goes to the next thread made, of the same process too); that directory's own path), where it is
    this /proc's; (None, None) elsewhere (another mount of proc)."""
    directory = os.path.realpath(os.path.dirname(link))
    found = re.match(r"^/proc/([1-9][0-9]*(/task/[1-9][0-9]*)?)/ns$", directory)
    return (found[1], directory) if found else (None, None)


def _through_process(path):
    """(where, the path as /proc/WHERE/REST) of a ``path`` that goes through a process's (or thread's)
    /proc directory, WHERE its number in this /proc ("PID", or "PID/task/TID"), however the part up
    to it is spelled (a symlink to /proc/PID, //proc/PID); (None, ``path``) for one that does not
    (/run/netns/NAME, /proc/self/...: the process that opens it). Found by a directory that is such a
    /proc directory, from the root down: what follows it (``root``, ``cwd``, ``fd``) is taken as
    written, the process's own view, which only it resolves."""
    parts = [part for part in os.path.abspath(path).split("/") if part]
    for n in range(1, len(parts)):
        if parts[n - 1:n] == ["proc"] and parts[n] in ("self", "thread-self"):
            return None, path
        found = re.match(r"^/proc/([1-9][0-9]*)$", os.path.realpath("/" + "/".join(parts[:n + 1])))
        if found is None:
            continue
        where, rest = found[1], parts[n + 1:]
        if rest[:1] == ["task"] and len(rest) > 1 and re.match(r"^[1-9][0-9]*$", rest[1]):
            where, rest = f"{where}/task/{rest[1]}", rest[2:]
        return (where, "/".join(["/proc", where, *rest])) if rest else (None, path)
    return None, path


def _pins(option, path, where):
    """SetNS's pins of the namespace file ``path`` now, of process ``where`` (its number in /proc, or
    "PID/task/TID" for a thread's path, or None): a /proc/PID path is only good while that PID is
    the process meant, and a service restarts later; pyforkexec refuses the join once it names
    another one. The inode (its number is given to the next namespace made once this one is freed),
    the kernel's namespace id where it has one (never given again), and the process's (thread's)
    start time (a process that takes the PID later has another), read twice around the others: one
    that ended meanwhile left its number to any process."""
    ns_pins = deps.pyforkexec.ns_pins
    try:
        started = ns_pins.process_start(str(where)) if where else None
        pins = {"inode": os.stat(path).st_ino, "ns_id": ns_pins.ns_id_of(path)}
        if started is not None and ns_pins.process_start(str(where)) != started:
            raise ProcessLookupError(0, "it ended while its namespaces were read")
    except OSError as e:
        _fail(option, f"no namespace to join at {path}: {e.strerror}")
    if started is not None:
        pins["process_start"] = started
    return {name: pin for name, pin in pins.items() if pin is not None}


def _one_of_each_type(entries, made=None):
    """Fail naming the entry that joins another namespace of a type an earlier one joins (``netns`` and
    ``join``, (option, path, nstype, pins) each, there now but ``made``): setns to the second leaves
    the first, so the command would run in the last one alone and the earlier join would not hold.
    pyforkexec refuses it at the start too; found here, check mode reports it, and the services module
    before it changes anything. ``made``: the path of the network namespace this run makes (_setns's
    ``netns_made``), another namespace than any there now but itself by its own path."""
    first = {}
    for option, path, nstype, _pins_then in entries:
        if path == made:
            identity = path
        else:
            try:
                st = os.stat(path)
            except OSError as e:
                _fail(option, f"no namespace to join at {path}: {e.strerror}")
            identity = (st.st_dev, st.st_ino)
        earlier, namespace = first.setdefault(nstype, (option, identity))
        if namespace != identity:
            _fail(option, f"joins another {_kind_of_type(nstype)} namespace ({path}) than {earlier} does: "
                  f"the command would run in the last one joined alone, and {earlier}'s join would not "
                  "hold; join one namespace of each type")


def _setns(params, cloneflags, origins, on_host, netns_made=False):
    """The SetNS entries of ``netns`` and ``join``, user namespaces first (the order pyforkexec joins
    them in, so that an index in its messages is the index here). ``netns_made``: the namespace
    ``netns`` names is made by this run before the service starts (not looked for on the host)."""
    fe = deps.pyforkexec
    entries = []  # (option, path, nstype, pins)
    name = params["netns"]
    if name:
        if cloneflags & fe.CLONE_NEWNET:
            _fail("netns", "joins an existing network namespace: it cannot be combined with a new one "
                  "('net' in namespaces or CLONE_NEWNET in cloneflags)")
        path = os.path.join(NETNS_DIR, name)
        look = on_host and not netns_made
        if "/" in name or "\0" in name or name in (".", ".."):
            _fail("netns", f"{name!r} is not a name of {NETNS_DIR} (join a namespace file with "
                  "join: [{path: FILE}])")
        if look and not os.path.exists(path):
            _fail("netns", f"no network namespace {path} (create it with pyforkexec.isolation.netns)")
        nstype = namespace_type("netns", path) if look else int(fe.CLONE_NEWNET)
        if nstype != fe.CLONE_NEWNET:
            _fail("netns", f"{path} is a {_kind_of_type(nstype)} namespace, not a network namespace")
        if look:
            refuse_own("netns", path, nstype)
        entries.append(("netns", path, nstype, {}))
    for i, join in enumerate(params["join"]):
        option = f"join[{i}]"
        entries += [(option, *entry) for entry in _join_entries(option, join, on_host)]
    if on_host:
        _one_of_each_type(entries, made=os.path.join(NETNS_DIR, name) if name and netns_made else None)
    entries.sort(key=lambda e: not e[2] & fe.CLONE_NEWUSER)
    for n, entry in enumerate(entries):
        origins.add(f"sys.setns[{n}]", entry[0])
    return [fe.SetNS(path, int(nstype), **pins) for option, path, nstype, pins in entries]


def _idmap(option, value):
    """A mount's ``idmap``: None (not idmapped), True (to the command's own user namespace) or the path
    of a user namespace file (``/proc/PID/ns/user``)."""
    if value is None or isinstance(value, bool):
        return value or None
    text = str(value)
    if text.startswith("/"):
        return text
    if text.lower() in BOOLEANS:
        return boolean(text) or None
    _fail(option, f"expected true, false or the absolute path of a user namespace file, got {text!r}")


# The sub-options each type of mounts entry takes besides type, target and mkdir (any other given is
# refused, naming it: a sub-option left out of a mount would leave it weaker than asked).
_MOUNT_TAKES = dict(
    bind=("source", "readonly", "recursive", "flags", "idmap", "optional"),
    tmpfs=("readonly", "flags", "options", "size", "mode"),
    proc=("readonly", "flags", "options"),
    sysfs=("readonly", "flags"),
    dev=("readonly",),  # readonly false only: its binds of device nodes are written through anyway
    mount=("source", "fstype", "readonly", "flags", "options", "idmap", "optional"),
)
# What an unset sub-option is (the argument spec's defaults, and None where it has none).
_MOUNT_UNSET = dict(flags=[], mkdir=True, optional=False)
# Why a type does not take a sub-option: "RULE, not a TYPE[ HINT]".
_WHY_NOT = dict(
    source=("only a bind or a mount has a source", ""),
    fstype=("only a mount names its filesystem type", ""),
    size=("only a tmpfs has a size", " (a mount's goes in its options)"),
    mode=("only a tmpfs has a mode", " (a mount's goes in its options)"),
    options=("filesystem options apply to a tmpfs, a proc or a mount only", ""),
    recursive=("only a bind mount is recursive or not", " (a mount's is rec in its flags)"),
    idmap=("only a bind mount can be idmapped", ""),
    optional=("only a bind mount can be optional", ""),
    flags=("only a bind, a tmpfs, a proc, a sysfs or a mount takes mount flags", ""),
    readonly=("only readonly false (the default) applies to a dev", ": its binds of device nodes are "
              "written through whatever the mount says"),
)
# The mount flags a bind, tmpfs, proc or sysfs takes in flags: those of the mount itself (set after
# the bind for a bind, by pyforkexec) and a propagation type; the others (bind, rec, move, remount...)
# would make it another mount: type mount takes them.
_PER_MOUNT_FLAGS = "ro,nosuid,nodev,noexec,noatime,nodiratime,relatime,strictatime,nosymfollow," \
    "private,slave,shared,unbindable"


def _parse_flags(option, flags):
    """MS_* bits of a mounts entry's ``flags``, parsed as pyforkexec parses a mount's."""
    try:
        return deps.pyforkexec.sandbox.mounts.parse_mount_flags(flags, f"{option}.flags")
    except (TypeError, ValueError) as e:
        raise IsolationError(str(e)) from None


def _mount_flags(option, kind, flags, readonly):
    """The MS_* bits of a bind, tmpfs, proc or sysfs entry's ``flags`` and ``readonly``."""
    bits = _parse_flags(option, flags)
    other = bits & ~_parse_flags(option, _PER_MOUNT_FLAGS)
    if other:
        _fail(f"{option}.flags", f"{deps.pyforkexec.sandbox.mounts.mount_flag_names(other)} cannot be given "
              f"to a {kind} (it takes {_PER_MOUNT_FLAGS.replace(',', ', ')}): use type mount")
    return bits | (_parse_flags(option, "ro") if readonly else 0)


def _tmpfs_data(option, data, options):
    """A tmpfs's size and mode (``data``, or None) and the entry's ``options``."""
    if options is None:
        return data
    given = {item.partition("=")[0] for item in (data or "").split(",") if item}
    twice = next((item.partition("=")[0] for item in options.split(",") if item.partition("=")[0] in given),
                 None)
    if twice:
        _fail(f"{option}.options", f"{twice}= is given by {option}.{twice} too: give it once")
    return f"{data},{options}" if data else options


def _mount(option, m):
    fe = deps.pyforkexec
    kind, target = m["type"], m["target"]
    for key, value in m.items():
        given = value is not None and value != _MOUNT_UNSET.get(key)
        if key in ("type", "target", "mkdir") or not given or key in _MOUNT_TAKES[kind]:
            continue
        if key == "idmap" and _idmap(f"{option}.idmap", value) is None:  # (false, as a string too)
            continue
        _fail(f"{option}.{key}", f"{_WHY_NOT[key][0]}, not a {kind}{_WHY_NOT[key][1]}")
    if kind == "dev" and m["readonly"]:
        _fail(f"{option}.readonly", "{}{}".format(*_WHY_NOT["readonly"]))
    idmap = _idmap(f"{option}.idmap", m["idmap"])
    if idmap is not None and "idmap" not in {f.name for f in dataclasses.fields(fe.Mount)}:
        _fail(f"{option}.idmap", f"needs Mount.idmap, which the installed pyforkexec "
              f"{getattr(fe, '__version__', '?')} does not have: upgrade pyforkexec")
    extra = {} if idmap is None else dict(idmap=idmap)  # a pyforkexec without idmaps takes the others
    if m["optional"]:
        if "optional" not in {f.name for f in dataclasses.fields(fe.Mount)}:
            _fail(f"{option}.optional", f"needs Mount.optional, which the installed pyforkexec "
                  f"{getattr(fe, '__version__', '?')} does not have: upgrade pyforkexec")
        extra["optional"] = True
    if kind == "dev":  # (mkdir: of its tmpfs; the files of its binds are made in that tmpfs)
        made = fe.minimal_dev(target)
        return [dataclasses.replace(made[0], mkdir=m["mkdir"]), *made[1:]]
    if m["readonly"] is False and _parse_flags(option, m["flags"]) & _parse_flags(option, "ro"):
        _fail(f"{option}.flags", "ro contradicts readonly false")
    if kind == "mount":
        flags = list(m["flags"]) + (["ro"] if m["readonly"] else [])
        return [fe.Mount(m["source"], target, m["fstype"], ",".join(flags) or 0, m["options"], m["mkdir"],
                         **extra)]
    readonly = m["readonly"] if m["readonly"] is not None else kind == "sysfs"  # a sysfs: read-only
    flags = _mount_flags(option, kind, m["flags"], readonly)
    if kind == "bind":
        made = fe.Mount.bind(m["source"], target, recursive=m["recursive"] is not False, mkdir=m["mkdir"],
                             **extra)
    elif kind == "tmpfs":
        mode = m["mode"]  # an octal string: as a number, one spelling of it (01777 and 1777 alike)
        if mode is not None and mode.isascii() and mode.isdigit() and not set(mode) & set("89"):
            mode = int(mode, 8)
        made = fe.Mount.tmpfs(target, size=m["size"], mode=mode, mkdir=m["mkdir"])
        made = dataclasses.replace(made, data=_tmpfs_data(option, made.data, m["options"]))
    elif kind == "proc":
        made = dataclasses.replace(fe.Mount.proc(target, mkdir=m["mkdir"]), data=m["options"])
    else:
        made = fe.Mount.sysfs(target, readonly=False, mkdir=m["mkdir"])
    return [dataclasses.replace(made, flags=made.flags | flags)]


# Fields of pyforkexec's Mount that are also sub-options of a mounts entry.
_MOUNT_KEYS = ("source", "target", "fstype", "flags", "mkdir", "idmap", "optional")


def _mounts(params, origins, on_host, extra=()):
    made = [(f"mounts[{j}]", x) for j, m in enumerate(params["mounts"]) for x in _mount(f"mounts[{j}]", m)]
    rootfs = params["rootfs"]
    if rootfs and on_host and not os.path.isdir(rootfs):
        _fail("rootfs", f"{rootfs} is not a directory")
    if rootfs and not any(m.target.rstrip("/") == "" for option, m in made):
        # pivot_root needs a mount point: the directory bound onto itself (target "/" is the new root)
        made.insert(0, ("rootfs", deps.pyforkexec.Mount.bind(rootfs, "/")))
    made += list(extra)  # (last: over what the options mount, in the new root when there is one)
    kinds = {f"mounts[{j}]": m["type"] for j, m in enumerate(params["mounts"])}
    for k, entry in enumerate(made):
        origins.add(f"sys.mounts[{k}]", entry[0], _MOUNT_KEYS if entry[0].startswith("mounts[") else ())
        if kinds.get(entry[0]) == "mount":  # its options are the Mount's data
            origins.add(f"sys.mounts[{k}].data", f"{entry[0]}.options")
    return [mount for option, mount in made]


def _size(option, value):
    """An int, "max", or a human size such as 256M or 1G (bytes). A size that is no whole number (1.5,
    "2.5" pids, "1.7K") is refused: human_to_bytes rounds it, up as often as not, to a limit above the
    one asked."""
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        _fail(option, f"expected bytes as an integer, 'max' or a size such as 256M, got the float {value!r}")
    text = str(value).strip()
    if text == "max" or _decimal(text):
        return int(text) if _decimal(text) else text
    try:
        size = human_to_bytes(text)
    except ValueError as e:
        _fail(option, f"expected bytes, 'max' or a size such as 256M: {e}")
    number = re.match(r"[0-9]*(\.[0-9]*)?", text)[0]
    if "." in number and fractions.Fraction(number) * human_to_bytes("1" + text[len(number):]) != size:
        _fail(option, f"{text} is not a whole number of bytes (nor of pids): write it in a smaller unit")
    return size


def cpu_max(value):
    """cpu.max from "max", "QUOTA [PERIOD]" or a percentage of one CPU ("50%", "12.5%") per 100 ms.
    A percentage below 1% is refused: the kernel's smallest quota is 1 ms a period, and a larger one
    than asked would lift the limit (a quota and a longer period can say less, "1000 1000000")."""
    if value is None or not value.endswith("%"):
        return value
    number = value[:-1].strip()  # ASCII digits: float() takes "nan", "inf", "1_0" and any script's digits
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", number):
        _fail("cgroup.cpu_max", f"expected 'max', 'QUOTA [PERIOD]' or a percentage such as 50%, "
              f"got {value!r}")
    quota = round(fractions.Fraction(number) * 1000)  # exact: a float of 1e23 is off by millions
    if quota < 1000:
        _fail("cgroup.cpu_max", f"{value} is below 1%, the kernel's smallest quota (1 ms per 100 ms); "
              "give a quota and a longer period, e.g. '1000 1000000' (0.1%)")
    return f"{quota} 100000"


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
    return int(text) if _decimal(text.removeprefix("-")) else text


def _rlimits(params, origins):
    out = []
    for k, (name, value) in enumerate(sorted(params.items())):
        origins.add(f"sys.rlimits[{k}]", f"rlimits.{name}")
        soft, hard = _rlimit_pair(f"rlimits.{name}", value)
        out.append(deps.pyforkexec.Rlimit(name, _limit(soft), _limit(hard)))
    return out


def _errno(value):
    import errno

    text = str(value)
    if _decimal(text):
        return int(text)
    number = getattr(errno, text.upper(), None)
    if not isinstance(number, int):
        _fail("seccomp.errno", f"unknown errno {text!r}")
    return number


# Where a policy's rule paths are checked away from their host (build_sysprocattr's ``on_host`` false):
# a directory every host has, so that pyforkexec checks everything of the rule but its path there.
OFFLINE_RULE_PATH = "/"


def _landlock(params, origins, on_host):
    """The Landlock policy of the ``landlock`` option, or None. Away from the host (the role's check on
    its controller) the rule paths are not looked up, and the mode is best effort: which rights the
    host's kernel enforces is the host's to say (the module fails there in strict mode)."""
    if params is None:
        return None
    origins.add("sys.landlock", "landlock", _LANDLOCK)
    fe = deps.pyforkexec
    for i, rule in enumerate(params["paths"]):
        if not os.path.isabs(rule["path"]):
            _fail(f"landlock.paths[{i}].path", f"must be an absolute path, got {rule['path']!r}")
    paths = [fe.LandlockPath(rule["path"] if on_host else OFFLINE_RULE_PATH, rule["access"])
             for rule in params["paths"]]
    ports = [fe.LandlockPort(rule["port"], rule["access"]) for rule in params["ports"]]
    mode = params["mode"] if on_host else "best_effort"
    return fe.Landlock(paths=paths, ports=ports, scopes=params["scopes"], mode=mode)


def landlock_report(policy):
    """What this host's kernel does with a checked Landlock policy (None: no policy): its Landlock ABI
    (0: no Landlock), the policy's mode, whether anything of it is enforced, and each right it cannot
    enforce, named as the option (``landlock.ports[0].access: bind needs Landlock ABI 4, this kernel
    has 2``). In best-effort mode those rights are not restricted; in strict mode the check refused."""
    if policy is None:
        return None
    try:
        abi = deps.pyforkexec.landlock_abi()
    except OSError as e:  # a seccomp filter on this module's process (a container's): not ABI 0
        _fail("landlock", f"{e.strerror}: what this host's kernel enforces of the policy cannot be told")
    effective, dropped = policy.plan(abi)
    enforced = bool(effective.paths or effective.ports or effective.scopes)
    return dict(abi=abi, mode=policy.mode, enforced=enforced,
                dropped=[f"landlock.{line}" for line in dropped])


def landlock_warning(report):
    """The warning of a best-effort policy this kernel cannot enforce in full, else None."""
    if not report or not report["dropped"]:
        return None
    return (f"landlock: this kernel (Landlock ABI {report['abi']}) cannot enforce all of the policy; in "
            f"best-effort mode these rights are not restricted: {'; '.join(report['dropped'])}")


def _require_fields(params):
    """Every SysProcAttr field the options need must exist in the installed pyforkexec."""
    have = {f.name for f in dataclasses.fields(deps.pyforkexec.SysProcAttr)}
    for option in ISOLATION_OPTIONS:
        missing = [f for f in option.fields + option.also if f not in have]
        if params.get(option.name) and missing:
            field = missing[0]
            _fail(option.name, f"needs SysProcAttr.{field}, which the installed pyforkexec "
                  f"{getattr(deps.pyforkexec, '__version__', '?')} does not have: upgrade pyforkexec")


def build_sysprocattr(params, cgroup_path=None, with_cgroup=True, origins=None, on_host=True,
                      netns_made=False, extra_mounts=()):
    """A SysProcAttr from the isolation options in ``params`` (module parameters after argument-spec
    validation; the service module's ``user``/``group`` too). ``cgroup_path`` is the default cgroup
    path. Records in ``origins`` the option of each field. Raises IsolationError.

    ``on_host`` false checks the options away from the host they are for (the role
    isolated_service, on its controller, before it changes anything): what only that host knows is
    left out (the ids of names, whether netns, join targets and rootfs exist there). ``netns_made``:
    see _setns. ``extra_mounts``: [(option, Mount)] after the mounts of the options (a service's own
    /etc/hosts and /etc/resolv.conf, module_utils/name_files.py), each named by its option."""
    fe = deps.pyforkexec
    origins = origins if origins is not None else Origins()
    refuse_empty_strings(params, [option.name for option in ISOLATION_OPTIONS] + ["user", "group"])
    _require_fields(params)
    # Only cloneflags can hold the flags pyforkexec's rules about cloneflags are about (CLONE_VM,
    # CLONE_FS...): namespaces holds namespace flags alone, which combine freely.
    origins.add("sys.cloneflags", "cloneflags" if params["cloneflags"] else "namespaces")
    clone = _flags("namespaces", [NAMESPACE_FLAGS[n] for n in params["namespaces"]])
    clone |= _flags("cloneflags", params["cloneflags"])
    uid_map = _id_maps("uid_map", params["uid_map"], "sys.uid_mappings", origins)
    gid_map = _id_maps("gid_map", params["gid_map"], "sys.gid_mappings", origins)
    if params["map_root_user"]:
        origins.add("sys.uid_mappings", "map_root_user")
        origins.add("sys.gid_mappings", "map_root_user")
        uid_map = [fe.SysProcIDMap(0, os.geteuid(), 1)]
        gid_map = [fe.SysProcIDMap(0, os.getegid(), 1)]
    origins.add("sys.cgroup", "cgroup", _CGROUP)
    origins.add("sys.capabilities", "capabilities", _CAPABILITIES)
    origins.add("sys.seccomp", "seccomp", _SECCOMP)
    kwargs = dict(
        cloneflags=clone,
        unshareflags=_flags("unshareflags", params["unshareflags"]),
        uid_mappings=uid_map,
        gid_mappings=gid_map,
        gid_mappings_enable_setgroups=params["setgroups"] == "allow",  # without gid maps: refused
        credential=_credential(params, origins, on_host),
        setns=_setns(params, clone, origins, on_host, netns_made),
        hostname=params["hostname"],
        domainname=params["domainname"],
        mount_propagation=params["mount_propagation"],
        mounts=_mounts(params, origins, on_host, extra_mounts),
        pivot_root=params["rootfs"],
        readonly_root=params["readonly_root"],
        rlimits=_rlimits(params["rlimits"], origins),
        cgroup=_cgroup(params["cgroup"], cgroup_path) if with_cgroup else None,
        no_new_privs=params["no_new_privs"],
        landlock=_landlock(params["landlock"], origins, on_host),
    )
    caps = params["capabilities"]
    if caps:
        kwargs["capabilities"] = fe.Capabilities(keep=caps["keep"], ambient=caps["ambient"],
                                                 drop=caps["drop"], drop_all_others=caps["drop_all_others"])
    if params["restrict_suid_sgid"] is not None:  # (unset: the library's default, on with an idmap)
        kwargs["restrict_suid_sgid"] = params["restrict_suid_sgid"]
    if params["restrict_namespaces"] is not None:  # (unset: no restriction; []: no namespace)
        kwargs["restrict_namespaces"] = _flags("restrict_namespaces",
                                               [NAMESPACE_FLAGS[n] for n in params["restrict_namespaces"]])
    sec = params["seccomp"]
    if sec:
        kwargs["seccomp"] = fe.SeccompFilter(default_action=sec["default_action"], allow=sec["allow"],
                                             deny=sec["deny"], errno=_errno(sec["errno"]),
                                             deny_action=sec["deny_action"])
    return fe.SysProcAttr(**kwargs)


def check_process(argv, attr, origins=None):
    """pyforkexec's own validation of (argv, attr), before anything starts. Raises IsolationError."""
    spec = deps.pyforkexec.spec
    try:
        spec.check(spec.Spec(argv=list(argv), attr=attr))
    except spec.SpecError as e:
        raise IsolationError(explain(str(e), origins)) from None


def check_on_host(argv, attr, origins=None, inherited_path=None, extra_mounts=0):
    """What only this host can tell before anything starts, as ``pyforkexec exec --check`` tells it
    (a working directory, a bind source, a program that is not there or not executable; rlimits the
    child may not set; a join that is no namespace of its type): a run that would stop a running
    service and then fail to start it is refused first. The cgroup is build_and_check's.
    ``inherited_path``: see check_program. ``extra_mounts``: how many of the last mounts are the
    service's own name resolution files (build_sysprocattr's ``extra_mounts``): left out, their sources
    are written by the run before the start, and they bring no program. Raises IsolationError."""
    spec = deps.pyforkexec.spec
    if extra_mounts and attr.sys is not None:
        kept_mounts = list(attr.sys.mounts)[:len(attr.sys.mounts) - extra_mounts]
        attr = dataclasses.replace(attr, sys=dataclasses.replace(attr.sys, mounts=kept_mounts))
    sys_attr, given = attr.sys, origins
    if sys_attr is not None:
        # The netns option's join is checked by _setns (the services module makes it first); every
        # other join is checked here as the start checks it (a join of a namespace of a type cloneflags
        # creates...), named by the option it came from wherever it is in the list checked.
        origins, kept = given.copy() if given is not None else Origins(), []
        for k, entry in enumerate(sys_attr.setns):
            option = given.option(f"sys.setns[{k}]") if given is not None else "netns/join"
            if option == "netns" or (given is None and entry.nstype == deps.pyforkexec.CLONE_NEWNET):
                continue
            origins.add(f"sys.setns[{len(kept)}]", option)
            kept.append(entry)
        sys_attr = dataclasses.replace(sys_attr, cgroup=None, setns=tuple(kept))
    here = dataclasses.replace(attr, sys=sys_attr)
    try:
        # (launcher False: the daemon or unit that starts it drops groups of its own; see
        # pyforkexec.forkexec.drop_own_groups_for)
        spec.check_on_host(spec.Spec(argv=list(argv), attr=here), launcher=False)
    except spec.SpecError as e:
        raise IsolationError(explain(str(e), origins)) from None
    check_program(argv, attr, origins, inherited_path)


def check_program(argv, attr, origins=None, inherited_path=None):
    """The program as its start would find it (pyforkexec.spec.find_program, which the launcher
    ``pyforkexec exec --spec`` applies): one not there or not executable where this host sees what the
    process would see is refused naming the option, before any process exists, rather than failing
    at execve. ``inherited_path``: the PATH of the environment the process inherits when ``attr.env``
    is None (the service's manager's). Raises IsolationError."""
    spec, sys_attr = deps.pyforkexec.spec, attr.sys
    chroot_alone = bool(sys_attr is not None and sys_attr.chroot
                        and spec.sees_as_here(dataclasses.replace(sys_attr, chroot="")))
    if not argv or not (spec.sees_as_here(sys_attr) or chroot_alone):
        return  # mounts, a new root or a joined mount namespace may bring it: the start tells
    try:
        spec.find_program(spec.Spec(argv=list(argv), attr=attr), inherited_path)
    except spec.SpecError as e:
        raise IsolationError(explain(str(e), origins)) from None


def _set_of(values):
    """A list option that is a set (capabilities, system calls, access rights) in one order, each once."""
    return sorted(set(values), key=lambda value: (not isinstance(value, str), str(value)))


def canonical_path(path, directory):
    """One spelling of an absolute path as the kernel walks it: a run of slashes is one, and a ``.``
    component is none (``//tmp/./x`` is ``/tmp/x``); a final slash (or ``/.``), which only asks for a
    directory, is dropped where the path is one anyway (``directory``). ``..`` stays: through a
    symlink it is not the parent of the path as spelled. A relative path is left as it is."""
    text = os.fsdecode(path)
    if not text.startswith("/"):
        return path
    parts = [part for part in text.split("/") if part not in ("", ".")]
    trailing = text.endswith("/") or text.endswith("/.")
    out = "/" + "/".join(parts) + ("/" if trailing and parts and not directory else "")
    return out if isinstance(path, str) else os.fsencode(out)


# tmpfs options whose values are sizes or counts as the kernel's memparse() reads them.
_TMPFS_SIZES = ("size", "nr_blocks", "nr_inodes")
_SUFFIXES = "kmgtpe"


def _tmpfs_number(value):
    """A tmpfs size or count (``1024k``, ``1M``, ``1048576``) in one spelling: the largest suffix that
    writes it whole (``1m``). A value with a leading 0 (memparse reads it as octal or hex), a
    percentage or anything else is left as it is."""
    match = re.fullmatch(r"([1-9][0-9]*)([kKmMgGtTpPeE]?)", value)
    if not match:
        return value
    scale = _SUFFIXES.index(match[2].lower()) + 1 if match[2] else 0
    number = int(match[1]) << (10 * scale)
    scale = 0
    while scale < len(_SUFFIXES) and number % 1024 == 0:
        number, scale = number // 1024, scale + 1
    return f"{number}{_SUFFIXES[scale - 1] if scale else ''}"


def _tmpfs_sizes(data):
    """A tmpfs's options with each size and count in one spelling, and its octal mode (0755 is 755);
    their order kept."""
    if not isinstance(data, str):
        return data
    items = []
    for item in data.split(","):
        key, eq, value = item.partition("=")
        if eq and key in _TMPFS_SIZES:
            item = f"{key}={_tmpfs_number(value)}"
        elif eq and key == "mode" and re.fullmatch(r"[0-7]+", value):
            item = f"mode={int(value, 8):o}"
        items.append(item)
    return ",".join(items)


def _no_file(path):
    """Whether a final slash on ``path`` (absolute, on this host) says nothing: it names a directory, or
    nothing yet (a missing bind source fails the start or, optional, leaves the mount out either way;
    one that appears later as a file is a change, and restarts)."""
    return not os.path.exists(path) or os.path.isdir(path)


def _canonical_mount(mount):
    """A mount in one spelling: its flags as MS_* bits (``nodev,nosuid`` and ``MS_NOSUID,MS_NODEV`` are
    one), its paths (canonical_path: the target of a new filesystem is a directory, so is a bind's
    where its source is no file, _no_file), a tmpfs's sizes (_tmpfs_sizes)."""
    mounts = deps.pyforkexec.sandbox.mounts
    flags = mounts.parse_mount_flags(mount.flags)
    moved = flags & (mounts.MS_BIND | mounts.MS_MOVE)
    source_dir = bool(mount.source) and os.path.isabs(mount.source) and _no_file(mount.source)
    directory = source_dir if moved else bool(mount.fstype) and not flags & mounts.MS_REMOUNT
    source = canonical_path(mount.source, source_dir) if moved and mount.source else mount.source
    data = _tmpfs_sizes(mount.data) if mount.fstype == "tmpfs" else mount.data
    return dataclasses.replace(mount, flags=flags, source=source, data=data,
                               target=canonical_path(mount.target, directory))


def _canonical_access(access, on_file=False):
    """Landlock file rights in one spelling: each group whose rights are all given by its name (read
    for read_file and read_dir), the other rights each once, sorted; ``on_file``: the rights that apply
    to a file alone (pyforkexec keeps those of a group named on one)."""
    landlock = deps.pyforkexec.sandbox.landlock
    groups = landlock.FS_GROUPS
    names = set()
    for name in access:
        names.update(groups.get(name, (name,)))
    if on_file:
        return _set_of(names & set(landlock.FILE_RIGHTS))
    whole = [group for group, members in groups.items() if names >= set(members)]
    return _set_of(whole + [name for name in names if not any(name in groups[g] for g in whole)])


def _canonical_landlock(policy):
    """A Landlock policy in one spelling: the rules of one path (canonical_path), or of one port, as one
    rule with the rights of all (the kernel adds them up), rights in one spelling (on a file, the file
    rights its groups name: pyforkexec keeps those alone), rules and scopes sorted."""
    by_path, by_port = {}, {}
    for rule in policy.paths:
        path = canonical_path(rule.path, _no_file(os.fsdecode(rule.path)))
        by_path.setdefault(path, []).extend(rule.access)
    for rule in policy.ports:
        by_port.setdefault(rule.port, []).extend(rule.access)
    rule = deps.pyforkexec.LandlockPath
    paths = [rule(path, _canonical_access(access, not _no_file(os.fsdecode(path))))
             for path, access in by_path.items()]
    ports = [deps.pyforkexec.LandlockPort(port, _set_of(access)) for port, access in by_port.items()]
    return dataclasses.replace(
        policy, scopes=_set_of(policy.scopes),
        paths=sorted(paths, key=lambda rule: (os.fsdecode(rule.path), [str(a) for a in rule.access])),
        ports=sorted(ports, key=lambda rule: (rule.port, [str(a) for a in rule.access])))


def canonical_attr(attr):
    """``attr`` (validated) with each value the options spell several ways in one spelling: the
    environment sorted by name (a dict's order is no part of it), capabilities by their CAP_ names in
    the kernel's order, rlimits by their RLIMIT_ names in the kernel's order with "unlimited" for no
    limit, the sets given as lists (seccomp's allow and deny, landlock's access rights and scopes)
    sorted (seccomp's deny_action, with no call to deny, the default), and so are landlock's rules
    (one per path or port, its rights in one spelling: _canonical_landlock);
    paths as the kernel walks them (canonical_path: the working directory, the new root, mounts'
    sources and targets, landlock's rule paths, the namespace files joined), mount flags as bits and
    tmpfs sizes in one spelling (_canonical_mount), the supplementary groups sorted, cpu.max's numbers
    in decimal. (A tmpfs's mode is a number from the start: _mount.) What a
    service's spec says is compared as text with what the host has: without this, the same service in
    another spelling ("kill" for CAP_KILL, -1 for unlimited, env keys in another order) rewrote its spec
    and restarted it, and check mode planned that restart."""
    fe = deps.pyforkexec
    caps, limits = fe.sandbox.caps, fe.sandbox.rlimits
    sys_attr = attr.sys
    if sys_attr is not None:
        if sys_attr.capabilities is not None:
            def names(field, values):
                numbers = sorted({caps.cap_number(field, v) for v in values})
                return [caps.cap_name(n) for n in numbers]

            c = sys_attr.capabilities
            c = dataclasses.replace(c, keep=names("keep", c.keep), ambient=names("ambient", c.ambient),
                                    drop=names("drop", c.drop))
            sys_attr = dataclasses.replace(sys_attr, capabilities=c)
        if sys_attr.rlimits:
            def limit(value):
                number = limits.limit_value("rlimit", value)
                return "unlimited" if number == limits.RLIM_INFINITY else number

            ordered = sorted((limits.resource_number("rlimit", r.resource), r) for r in sys_attr.rlimits)
            sys_attr = dataclasses.replace(sys_attr, rlimits=[
                fe.Rlimit(limits.RESOURCES[n], limit(r.soft), limit(r.hard)) for n, r in ordered])
        if sys_attr.seccomp is not None:
            f = sys_attr.seccomp
            sys_attr = dataclasses.replace(sys_attr, seccomp=dataclasses.replace(
                f, allow=_set_of(f.allow), deny=_set_of(f.deny),  # (no call denied: its action none)
                deny_action=f.deny_action if f.deny else "errno"))
        if sys_attr.landlock is not None:  # (its rules allow together: their order is no part of it)
            sys_attr = dataclasses.replace(sys_attr, landlock=_canonical_landlock(sys_attr.landlock))
        if sys_attr.mounts:
            sys_attr = dataclasses.replace(sys_attr, mounts=[_canonical_mount(m) for m in sys_attr.mounts])
        if sys_attr.cgroup is not None and isinstance(sys_attr.cgroup.cpu_max, str):  # (050000 is 50000)
            words = sys_attr.cgroup.cpu_max.split(" ")
            cpu = " ".join(str(int(word)) if word.isdigit() else word for word in words)
            sys_attr = dataclasses.replace(sys_attr, cgroup=dataclasses.replace(sys_attr.cgroup, cpu_max=cpu))
        if sys_attr.setns:  # (a namespace file: its final slash stays, and fails as it did)
            sys_attr = dataclasses.replace(sys_attr, setns=[
                dataclasses.replace(entry, target=canonical_path(entry.target, False))
                if isinstance(entry.target, str) else entry for entry in sys_attr.setns])
        if sys_attr.pivot_root:
            sys_attr = dataclasses.replace(sys_attr, pivot_root=canonical_path(sys_attr.pivot_root, True))
        if sys_attr.credential is not None:  # (the kernel sorts the supplementary groups: setgroups(2))
            sys_attr = dataclasses.replace(sys_attr, credential=dataclasses.replace(
                sys_attr.credential, groups=sorted(sys_attr.credential.groups)))
    env = None if attr.env is None else sorted(attr.env, key=lambda entry: entry.partition("=")[0])
    work_dir = canonical_path(attr.dir, True) if attr.dir else attr.dir
    return dataclasses.replace(attr, env=env, sys=sys_attr, dir=work_dir)


def build_and_check(params, argv, env=None, chdir=None, cgroup_path=None, with_cgroup=True,
                    argv_option="argv", on_host=True, netns_made=False, cgroup_on_host=False,
                    host_checks=False, inherited_path=None, extra_mounts=()):
    """The ProcAttr (its ``sys`` built from the isolation options of ``params``) for argv with an
    environment (a list of "K=V", None for the launcher's) and a working directory, validated by
    pyforkexec, with the option of each of its fields (a ``Built``). Raises IsolationError naming the
    option (``argv_option`` for the command: the forkexec module's ``cmd``...). ``on_host`` and
    ``netns_made``: see build_sysprocattr. ``cgroup_on_host``: also check that this host's cgroup2
    offers the controllers the cgroup limits need (what the start would find first, check mode too);
    ``host_checks``: and what else only this host can tell (check_on_host: the service modules, whose
    failed start would leave a running service stopped; ``inherited_path``: see check_program).
    ``extra_mounts``: see build_sysprocattr."""
    origins = Origins(argv_option)
    if chdir == "":
        _fail("chdir", "is empty: give a value, or leave the option out")
    try:
        sys_attr = build_sysprocattr(params, cgroup_path, with_cgroup, origins, on_host, netns_made,
                                     extra_mounts)
    except IsolationError:
        raise
    except (TypeError, ValueError) as e:  # a pyforkexec constructor refusing a value outright
        raise IsolationError(explain(str(e), origins)) from None
    attr = deps.pyforkexec.ProcAttr(dir=chdir or None, env=env, sys=sys_attr)
    check_process(argv, attr, origins)
    if on_host and host_checks:
        check_on_host(argv, attr, origins, inherited_path, len(extra_mounts))
    if cgroup_on_host and params.get("cgroup") is not None:
        cgroup = _cgroup(params["cgroup"], cgroup_path or "pyforkexec/check")
        try:
            deps.pyforkexec.sandbox.cgroup.check_host(cgroup)
        except deps.pyforkexec.CgroupError as e:
            raise IsolationError(explain(e.strerror, origins)) from None
    return Built(attr, origins)
