"""pyforkexec's own validation of a loaded spec, its messages naming the document's paths."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional

from .. import validate as _validate
from ..checks import NS_OPEN
from ..flags import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CloneFlags,
)
from ..lookpath import find_program as _lookpath
from ..sandbox.mounts import (
    MS_BIND,
    MS_MOVE,
    MS_REMOUNT,
    is_mount_root,
    is_propagation_change,
    normalize,
    parse_mount_flags,
    under_root,
)
from .document import SpecError
from .load import Spec

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..attrs import SetNS, SysProcAttr

CAP_SYS_RESOURCE = 24

_PREFIXES = (("SysProcAttr.", "sys."), ("ProcAttr.sys", "sys"), ("ProcAttr.", "proc."))


def _spec_path(message: str) -> str:
    for old, new in _PREFIXES:
        if message.startswith(old):
            return new + message[len(old):]
    return message


def cgroup_refusal(err: OSError) -> SpecError:
    """A CgroupError (its message starts with the SysProcAttr field) as the SpecError naming the
    spec's field (``spec: sys.cgroup: the pids controller is not available ...``): what
    ``check_on_host`` raises, and how a start that failed with it is blamed (``Spec.blame``)."""
    field, _, rule = _spec_path(err.strerror or str(err)).partition(": ")
    return SpecError(field, rule)


def check(spec: Spec) -> None:
    """pyforkexec's validation of what fork_exec would be given, before any process exists.

    Raises SpecError with the field's path in the document."""
    if not spec.argv:  # as the loader refuses it: for a Spec made otherwise (the modules')
        raise SpecError("argv", "expected a non-empty list of strings, got an empty list")
    if spec.argv0 is None and spec.argv[0] in ("", b""):
        raise SpecError("argv[0]", "must not be empty: it names the program to run")
    try:
        argv0 = spec.argv0
        if argv0 is None:  # the program is argv[0], and its errors name argv[0]
            argv0 = _validate.to_bytes_list("argv", spec.argv)[0]
        args = _validate.check_spawn(argv0, spec.argv, spec.attr)
    except (ValueError, TypeError) as e:
        field, sep, rule = _spec_path(str(e)).partition(": ")
        raise SpecError(field if sep else "", rule if sep else field) from None
    _check_string_lengths(args.argv, args.env)
    _check_credential_mapped(args.sys, args.cloneflags | args.unshareflags)
    if spec.attr.sys is not None:
        _check_mounts_of_namespaces(spec.attr.sys, args.cloneflags, args.unshareflags)
    attr = spec.attr.sys
    if not spec.wait and attr is not None and attr.pdeathsig:
        # The launcher exits once the program has started: the signal would kill it at once.
        raise SpecError("sys.pdeathsig", "is sent when the launcher exits, which it does at once with "
                        '"wait": false: leave one of them out')
    if not spec.wait and attr is not None and attr.cgroup is not None \
            and (attr.cgroup.kill_remaining or attr.cgroup.remove):
        raise SpecError("sys.cgroup", 'kill_remaining and remove happen once the program has ended, which '
                        'a launcher with "wait": false does not see: set both false, or wait')
    if attr is not None and attr.pidfd:
        raise SpecError("sys.pidfd", "would give the launcher a pidfd of the program, which it has no use "
                        "for (it is the program's parent, and with \"wait\": false it exits): leave it out")
    if attr is not None and attr.ptrace:
        raise SpecError("sys.ptrace", "stops the program at its execve for a tracer, and the launcher is "
                        "none: it would wait for ever")
    from ..forkexec import entry_refusal  # (imported by the start that follows anyway)

    # The rules of the entry point the launcher starts it through ("wait": start_process, else
    # fork_exec), which the start applies after these: what it refuses, the check refuses.
    refused = entry_refusal(args, process=spec.wait)
    if refused is not None:
        field, rule, _, remedy = refused
        raise SpecError(_spec_path(field), f"{rule}: {remedy}")


def _check_string_lengths(argv: Sequence[bytes], env: Optional[Sequence[bytes]]) -> None:
    """execve refuses (E2BIG, after the child exists) an argument or an environment string longer than
    MAX_ARG_STRLEN, 32 pages with its NUL, whatever the rest: one a document of MAX_BYTES can hold."""
    most = 32 * os.sysconf("SC_PAGE_SIZE")
    for field, strings in (("argv", argv), ("proc.env", env or ())):
        for i, value in enumerate(strings):
            if len(value) >= most:
                raise SpecError(f"{field}[{i}]", f"is {len(value)} bytes long, and execve takes at most "
                                f"{most - 1} in one string (MAX_ARG_STRLEN: it would fail with E2BIG)")


# The filesystems that show a namespace of the mounting process: the kernel mounts one in a user
# namespace only when that namespace owns it (else EPERM), and proc the PID namespace the process is
# in, which only CLONE_NEWPID in cloneflags makes (unshare's new PID namespace is its children's).
_NAMESPACED_FILESYSTEMS = {"proc": ("PID", CLONE_NEWPID), "sysfs": ("network", CLONE_NEWNET),
                           "mqueue": ("IPC", CLONE_NEWIPC), "cgroup2": ("cgroup", CLONE_NEWCGROUP)}


def _check_mounts_of_namespaces(attr: SysProcAttr, cloneflags: int, unshareflags: int) -> None:
    """A proc, sysfs, mqueue or cgroup2 mount by a child in a new user namespace needs the namespace
    it shows to be owned by that user namespace: made with it (both in cloneflags, or both in
    unshareflags) or after it (the user namespace in cloneflags, the other in unshareflags); proc's
    PID namespace in cloneflags. Any other fails the start at the mount step (EPERM), after the child
    exists. A joined user namespace, or a joined namespace of the kind, is not judged."""
    if not (cloneflags | unshareflags) & CLONE_NEWUSER or _joins(attr, CLONE_NEWUSER):
        return
    for i, mount in enumerate(attr.mounts):
        fstype = os.fsdecode(mount.fstype) if isinstance(mount.fstype, (str, bytes)) else None
        name, kind = _NAMESPACED_FILESYSTEMS.get(fstype or "", ("", 0))
        if not kind or parse_mount_flags(mount.flags) & (MS_BIND | MS_REMOUNT | MS_MOVE):
            continue
        if kind == CLONE_NEWPID:
            owned = bool(cloneflags & CLONE_NEWUSER and cloneflags & CLONE_NEWPID)
        else:
            owned = bool(unshareflags & kind or (cloneflags & CLONE_NEWUSER and cloneflags & kind))
            if _joins(attr, kind):
                continue
        if not owned:
            where = "in cloneflags with it" if kind == CLONE_NEWPID else \
                "in unshareflags, or in cloneflags with it"
            raise SpecError(f"sys.mounts[{i}].fstype", f"{fstype} shows the child's {name} namespace, "
                            "which its new user namespace (CLONE_NEWUSER) does not own, and the kernel "
                            f"refuses the mount (EPERM): add {CloneFlags(kind).name} {where}")


def _check_credential_mapped(attr: SysProcAttr, flags: int) -> None:
    """The credential's ids, which the child sets in its new user namespace, must be ids that the
    namespace's maps map (a map not given maps none): the kernel refuses an unmapped one (setuid,
    setgid, setgroups: EINVAL), after the child exists. A spec that could never start is refused by its
    check, before a service running now is stopped for it, and check mode says so rather than that it
    would run. (The library's own start keeps Go's behaviour: the ChildError of the step.)"""
    cred = attr.credential
    if cred is None or not flags & CLONE_NEWUSER:
        return
    wanted = [("sys.credential.uid", "uid", cred.uid, attr.uid_mappings),
              ("sys.credential.gid", "gid", cred.gid, attr.gid_mappings)]
    if not cred.no_setgroups:
        wanted += [(f"sys.credential.groups[{i}]", "gid", group, attr.gid_mappings)
                   for i, group in enumerate(cred.groups)]
    for field, kind, number, maps in wanted:
        if maps is None:  # a user namespace without a map maps no id (setgroups: EPERM until a gid map)
            raise SpecError(field, f"{number} is not an id of the child's new user namespace "
                            f"(CLONE_NEWUSER): no {kind} map is given, and a namespace without one maps no "
                            f"id; the kernel refuses an unmapped one (EINVAL); give a {kind} map that maps "
                            "it")
        if not any(m.container_id <= number < m.container_id + m.size for m in maps):
            raise SpecError(field, f"{number} is not an id of the child's new user namespace "
                            f"(CLONE_NEWUSER): its {kind} map does not map it, and the kernel refuses an "
                            "unmapped id (EINVAL); map it, or give an id the maps map")


def check_on_host(spec: Spec, launcher: bool = True) -> None:
    """What only this host can tell of a checked spec, read without starting anything (``pyforkexec
    exec --check``, and before its start): each ``proc.files`` fd open here, ``sys.cgroup`` possible
    here (its controllers, a place this process can write), ``sys.chroot`` a directory (and
    ``sys.pivot_root``, unless a mount at / makes it), each ``sys.setns`` target (a file) a namespace
    that is not this process's own, each bind's source there
    (or under an earlier mount), each ``sys.rlimits`` hard limit one the child may set, the
    capabilities a child outside a new user namespace needs from this process, and
    ``proc.dir`` a directory when nothing could make it one. Raises SpecError naming the field.
    ``launcher`` false: checked by another process than the one that will start it (a module), whose
    own supplementary groups are not the child's."""
    import fcntl

    for i, fd in enumerate(spec.attr.files or ()):
        if isinstance(fd, int) and fd >= 0:
            try:
                fcntl.fcntl(fd, fcntl.F_GETFD)
            except OSError:
                raise SpecError(f"proc.files[{i}]", f"fd {fd} is not open in this process") from None
    cgroup = spec.attr.sys.cgroup if spec.attr.sys is not None else None
    if cgroup is not None:
        from ..sandbox import cgroup as cgroup_mod

        try:
            cgroup_mod.check_host(cgroup)
        except OSError as e:  # CgroupError: its message names the field
            raise cgroup_refusal(e) from None
    for i, entry in enumerate(spec.attr.sys.setns if spec.attr.sys is not None else ()):
        if isinstance(entry.target, str):
            _check_join_target(f"sys.setns[{i}]", entry, spec.attr.sys.cloneflags)
        elif isinstance(entry.target, int) and not isinstance(entry.target, bool):
            _check_join_fd(f"sys.setns[{i}]", entry, spec.attr.sys.cloneflags)
    root = spec.attr.sys.chroot if spec.attr.sys is not None else None  # (pivot_root's mounts may make it)
    if isinstance(root, (str, bytes)) and root and not _joins(spec.attr.sys, CLONE_NEWNS) \
            and not os.path.isdir(root):
        raise SpecError("sys.chroot", f"{os.fsdecode(root)} is not a directory here")
    pivot = spec.attr.sys.pivot_root if spec.attr.sys is not None else None
    if isinstance(pivot, (str, bytes)) and pivot and not _joins(spec.attr.sys, CLONE_NEWNS) \
            and not _mounts_at_root(spec.attr.sys) and not os.path.isdir(pivot):
        raise SpecError("sys.pivot_root", f"{os.fsdecode(pivot)} is not a directory here, and no mount of "
                        "sys.mounts at / makes it one (pivot_root would fail: ENOENT, ENOTDIR)")
    if spec.attr.sys is not None and spec.attr.sys.landlock is not None:
        _check_landlock_rules(spec.attr.sys.landlock)
    if spec.attr.sys is not None:
        _check_bind_sources(spec.attr.sys)
        _check_rlimits(spec.attr.sys)
        _check_capabilities_needed(spec.attr.sys)
        _check_maps_writable(spec.attr.sys)
        if launcher:  # the terminal is this process's (a module's own is not the daemon's)
            _check_terminal(spec.attr.sys, spec.attr.files)
        from ..forkexec import refuse_kept_groups  # (imported by the start that follows anyway)

        try:
            if launcher:  # this process's groups are the child's (not a module's, checking away from it)
                refuse_kept_groups(spec.attr.sys)
        except ValueError as e:
            field, _, rule = _spec_path(str(e)).partition(": ")
            raise SpecError(field, rule) from None
    wd = spec.attr.dir
    if wd and sees_as_here(spec.attr.sys) and not os.path.isdir(wd):
        raise SpecError("proc.dir", f"{os.fsdecode(wd)} is not a directory here, and no new root, mount or "
                        "joined mount namespace could make it one")
    if wd and _dir_missing_in_chroot_alone(os.fsdecode(wd), spec.attr.sys):
        where = f"in sys.chroot {os.fsdecode(spec.attr.sys.chroot)}" if os.path.isabs(wd) else \
            "from this working directory, which sys.chroot leaves the child in"
        raise SpecError("proc.dir", f"{os.fsdecode(wd)} is not a directory {where} (the child enters it "
                        "after the chroot), and no mount or joined mount namespace could make it one")


def _mounts_at_root(attr: SysProcAttr) -> bool:
    """Whether a mount of the list has / (the new root) as its target: it may make the root (mkdir)."""
    return any(normalize("target", m.target) == b"/" for m in attr.mounts)


def _dir_missing_in_chroot_alone(wd: str, sys_attr: Optional[SysProcAttr]) -> bool:
    """Whether ``wd`` is surely missing where the child enters it after a chroot that is all that
    changes its view: an absolute one in the chroot, a relative one from this process's working
    directory, which the chroot leaves. Not judged with '..' (the chroot's root has none above it) or
    a symbolic link on the way (which the child resolves in the chroot, not here)."""
    if sys_attr is None or not sys_attr.chroot or not sees_as_here(dataclasses.replace(sys_attr, chroot="")):
        return False
    base = os.fsdecode(sys_attr.chroot) if os.path.isabs(wd) else os.getcwd()
    return _plainly_in(base, wd, directory=True) is False


class ProgramError(SpecError):
    """The program of a spec is not there or not runnable, as its start would find it: what execve
    would answer (``errno``: ENOENT or EACCES, ``reason`` its words), told before any process exists.
    ``program`` is the name as written (argv0, or argv[0])."""

    def __init__(self, field: str, program: str, reason: str, err: int):
        super().__init__(field, f"{json.dumps(program)}: {reason}")
        self.program, self.reason, self.errno = program, reason, err


def find_program(spec: Spec, inherited_path: Optional[str]) -> str:
    """The file the start of ``spec`` executes: argv0, or argv[0] (with a '/': as written, from proc.dir
    when relative; without: looked up in the PATH of ``proc.env``, else ``inherited_path``, the PATH
    of the environment the program inherits, inside sys.chroot). Raises ProgramError where this
    process sees what the program would see (no new root, mount or mount namespace join; for a chroot
    alone, inside it): the launcher's ``exec --spec`` and the modules' checks refuse the same programs."""
    sys_attr = spec.attr.sys
    field = "argv[0]" if spec.argv0 is None else "argv0"
    if spec.argv0 is not None or "/" in spec.argv[0]:
        found = spec.program
        if sees_as_here(sys_attr):  # as the start would find it: execve's own answers
            here = os.path.join(os.fsdecode(spec.attr.dir or ""), found)  # a relative one from the directory
            if not os.path.exists(here):
                raise ProgramError(field, found, "no such file or directory", errno.ENOENT)
            if os.path.isdir(here) or not os.stat(here).st_mode & 0o111:  # executable by nobody
                raise ProgramError(field, found, "permission denied", errno.EACCES)
            _check_execve_opens(field, found, here)
            _check_landlock_runs(spec, found, here)
        elif _in_chroot_alone(found, sys_attr) is False:  # a chroot alone: found inside it, as PATH is
            root = os.fsdecode(sys_attr.chroot)  # type: ignore[union-attr]
            raise ProgramError(field, found, f"no such file or directory (in the chroot {root})",
                               errno.ENOENT)
        elif _in_chroot_alone(found, sys_attr):
            _check_interpreters_in_chroot(field, found, found, os.fsdecode(sys_attr.chroot))  # type: ignore[union-attr]
        return found
    env = spec.attr.env
    path = inherited_path if env is None else next(
        (os.fsdecode(e)[5:] for e in env if os.fsdecode(e).startswith("PATH=")), None)
    found = _lookpath(spec.argv[0], path, sys_attr.chroot if sys_attr is not None else "")
    if found is None:
        raise ProgramError(field, spec.argv[0], "executable file not found in $PATH", errno.ENOENT)
    if sees_as_here(sys_attr):
        here = os.path.join(os.fsdecode(spec.attr.dir or ""), found)
        _check_execve_opens(field, spec.argv[0], here)
        _check_landlock_runs(spec, spec.argv[0], here)
    elif _in_chroot_alone(found, sys_attr):
        _check_interpreters_in_chroot(field, spec.argv[0], found, os.fsdecode(sys_attr.chroot))  # type: ignore[union-attr]
    return found


def _check_interpreters_in_chroot(field: str, program: str, found: str, root: str) -> None:
    """A chroot alone: the "#!" interpreters and the ELF dynamic loader of the program ``found`` (a path
    in the chroot ``root``, there), which execve looks up in the chroot too: one not there is ENOENT,
    "no such file or directory" of a program that is (a chroot without /lib64/ld-linux-x86-64.so.2).
    Judged along paths without a symbolic link (which the child resolves in the chroot, not here)."""
    from ..sandbox.landlock_exec import execve_files

    chain, elf = execve_files(found, root)
    loader = [elf.interp] if elf is not None and elf.interp is not None else []
    for path in chain + loader:
        there = _plainly_in(root, path)
        if there is None:
            return  # a symbolic link on the way: what follows was read through it, maybe not the child's
        if not there:
            what = f"its {_kind_of(path, chain)} {path} is not in the chroot {root}"
            raise ProgramError(field, program, f"no such file or directory: {what}", errno.ENOENT)


def _kind_of(path: str, chain: list[str]) -> str:
    return "interpreter" if path in chain else "dynamic loader"


def _plainly_in(base: str, path: str, directory: bool = False) -> Optional[bool]:
    """Whether ``path`` is there below the directory ``base`` (a chroot; a directory, if ``directory``);
    None when '..' or a symbolic link is on the way (which the child resolves in the chroot, not here)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    where = base
    for part in parts:
        where = os.path.join(where, part)
        if os.path.islink(where):
            return None
        if not (os.path.isdir(where) if directory else os.path.lexists(where)):
            return False
    return True


def _check_execve_opens(field: str, program: str, here: str) -> None:
    """What execve refuses of a program that is there and executable by someone, as this process sees
    it (``here``): a "#!" interpreter or an ELF dynamic loader that is not there (ENOENT: execve says
    "no such file or directory" of a program that is), and a file of these on a noexec mount (EACCES)."""
    from ..sandbox.landlock_exec import execve_files

    chain, elf = execve_files(here)
    loader = [elf.interp] if elf is not None and elf.interp is not None else []
    for path in chain + loader:
        what = "it" if path == here else f"its {_kind_of(path, chain)} {path}"
        try:
            noexec = os.statvfs(path).f_flag & os.ST_NOEXEC
        except OSError:
            raise ProgramError(field, program, f"no such file or directory: {what} is not there",
                               errno.ENOENT) from None
        if noexec:
            raise ProgramError(field, program, f"permission denied: {what} is on a noexec mount",
                               errno.EACCES)


def _check_landlock_runs(spec: Spec, program: str, here: str) -> None:
    """A Landlock policy that keeps the program ``here`` from starting (execute denied on it, its
    interpreter or its dynamic loader; read_file on its script or a shared library it needs) is a
    ProgramError naming sys.landlock: the start would fail at execve (EACCES), or the loader before
    main. A policy this kernel or host refuses is left to check_on_host and the start."""
    from ..sandbox.landlock import check_landlock, landlock_abi
    from ..sandbox.landlock_exec import denied_to_run

    policy = spec.attr.sys.landlock if spec.attr.sys is not None else None
    try:
        if policy is None or landlock_abi() < 1:
            return
        resolved = check_landlock("sys.landlock", policy)
    except (ValueError, OSError):
        return
    env = None if spec.attr.env is None else [os.fsdecode(e) for e in spec.attr.env]
    reason = denied_to_run(resolved, here, env)
    if reason is not None:
        raise ProgramError("sys.landlock", program, f"permission denied: sys.landlock {reason}", errno.EACCES)


def _in_chroot_alone(found: str, sys_attr: Optional[SysProcAttr]) -> Optional[bool]:
    """Whether the absolute program ``found`` is in the chroot, when a chroot is all that changes the
    program's view (no mounts, pivot_root or mount namespace join); None when that cannot be told."""
    if not os.path.isabs(found) or sys_attr is None or not sys_attr.chroot:
        return None
    if not sees_as_here(dataclasses.replace(sys_attr, chroot="")):
        return None
    return os.path.exists(os.path.join(os.fsdecode(sys_attr.chroot), found.lstrip("/")))


def sees_as_here(attr: Optional[SysProcAttr]) -> bool:
    """Whether the program finds paths (its argv0, its working directory, a bind's source) as this
    process does: no new root, no mounts, and no join of a mount namespace."""
    if attr is None:
        return True
    return not (attr.chroot or attr.pivot_root or attr.mounts) and not _joins(attr, CLONE_NEWNS)


def _joins(attr: SysProcAttr, kind: int) -> bool:
    """Whether a sys.setns entry may join a namespace of ``kind``: its nstype says so, or it is 0 and
    its target is not known to be another type (a path is looked at; an fd is not)."""
    for entry in attr.setns:
        if entry.nstype & kind:
            return True
        if not entry.nstype:
            if not isinstance(entry.target, str):
                return True
            from .. import nsinfo

            try:
                if nsinfo.nstype(entry.target) in (0, kind):
                    return True
            except OSError:
                return True
    return False


def _check_bind_sources(attr: SysProcAttr) -> None:
    """A bind's source, and each mount's target, is a path as this process sees it (mounts.py), looked
    up when the child mounts it: a source missing here, not under an earlier mount of the list (which
    may make it), fails the start at the mount step (an optional bind is left out instead:
    mounts.check_mount); so does a target missing here without ``mkdir``, one whose type (a file or
    a directory) is not that of what is mounted on it (ENOTDIR: a bind's source, or a new filesystem's
    root, a directory), and the target of a remount or of a propagation change that is a directory but
    no mount point (EINVAL)."""
    if _joins(attr, CLONE_NEWNS):
        return  # the child looks sources up in the joined namespace
    root = os.fsencode(attr.chroot or attr.pivot_root or "")
    earlier: list[bytes] = []

    def made(path: bytes) -> bool:
        return any(path == t or path.startswith(t.rstrip(b"/") + b"/") for t in earlier)

    for i, mount in enumerate(attr.mounts):
        flags = parse_mount_flags(mount.flags)  # checked by check(): valid
        target = under_root(root, normalize("target", mount.target))
        source_dir: Optional[bool] = None  # what is mounted on the target: a directory, a file, or unknown
        if flags & MS_BIND and not flags & MS_REMOUNT and mount.source is not None:
            source = os.path.abspath(os.fsencode(mount.source))  # the child's cwd at its mounts: this one
            if not made(source) and not os.path.exists(source):  # followed, as mount(2) follows it
                if mount.optional:
                    continue  # left out
                raise SpecError(f"sys.mounts[{i}].source", f"{os.fsdecode(mount.source)} does not exist here "
                                "(an optional bind would be left out)")
            source_dir = None if made(source) else os.path.isdir(source)
        elif mount.fstype is not None and not flags & (MS_REMOUNT | MS_MOVE):
            source_dir = True  # a new filesystem's root
        if not made(target):
            if not os.path.exists(target):
                if not mount.mkdir:
                    raise SpecError(f"sys.mounts[{i}].target", f"{os.fsdecode(target)} does not exist here, "
                                    "and no earlier mount of the list makes it (set mkdir to create it)")
            elif (flags & MS_REMOUNT or is_propagation_change(flags, mount.fstype)) \
                    and is_mount_root(target) is False:
                what = "a remount (MS_REMOUNT)" if flags & MS_REMOUNT else "a change of propagation"
                raise SpecError(f"sys.mounts[{i}].target", f"{os.fsdecode(target)} is a directory here, "
                                f"not a mount point, and {what} changes the mount at its target (the "
                                "kernel refuses it: EINVAL); mount something there first")
            elif source_dir is not None and os.path.isdir(target) != source_dir:
                what = ("a directory", "a file") if source_dir else ("a file", "a directory")
                raise SpecError(f"sys.mounts[{i}].target", f"{os.fsdecode(target)} is {what[1]} here, where "
                                f"{what[0]} is mounted (the mount fails with ENOTDIR)")
        earlier.append(target)


def _check_terminal(attr: SysProcAttr, files: object) -> None:
    """The terminal ioctls' fds, as the child's kernel answers them: TIOCNOTTY (noctty, on the child's
    fd 0) and TIOCSPGRP (foreground, on this process's fd ``ctty``) fail with ENOTTY unless the fd is
    the controlling terminal of the child's session, which is this process's (neither goes with
    setsid); TIOCSCTTY (setctty, on the child's fd ``ctty``) with ENOTTY unless it is a terminal, and
    the start refuses this process's own controlling terminal there (refuse_own_terminal)."""
    import stat as _stat

    from .._terminal import controlling_terminal, refuse_own_terminal

    def terminal(fd: int) -> Optional[int]:  # its device number, or None for no terminal
        try:
            st = os.fstat(fd)
        except OSError:
            return None
        return st.st_rdev if _stat.S_ISCHR(st.st_mode) and os.isatty(fd) else None

    slots = list(files) if isinstance(files, (list, tuple)) else [0, 1, 2]
    fields = []
    if attr.noctty and slots and isinstance(slots[0], int) and slots[0] >= 0:
        fields.append(("sys.noctty", slots[0], "the child's fd 0 (proc.files[0]) is fd", "TIOCNOTTY", True))
    if attr.foreground:
        fields.append(("sys.foreground", attr.ctty, "sys.ctty is fd", "TIOCSPGRP", True))
    slot = slots[attr.ctty] if attr.setctty and attr.ctty < len(slots) else None
    if isinstance(slot, int) and slot >= 0:
        fields.append(("sys.setctty", slot, f"the child's fd {attr.ctty} (proc.files[{attr.ctty}]) is fd",
                       "TIOCSCTTY", False))
    for field, fd, which, ioctl, controlling in fields:
        device = terminal(fd)
        if device is None:
            raise SpecError(field, f"{which} {fd} here, which is not a terminal ({ioctl} would fail with "
                            "ENOTTY)")
        if controlling and device != controlling_terminal():
            raise SpecError(field, f"{which} {fd} here, a terminal that is not this process's controlling "
                            f"terminal, which the child's session has ({ioctl} would fail with ENOTTY)")
    if isinstance(slot, int) and slot >= 0:  # setctty: the start's own refusal, foreseen
        try:
            refuse_own_terminal(attr, slots)
        except ValueError as e:
            field, _, rule = _spec_path(str(e)).partition(": ")
            raise SpecError(field, rule) from None


def _check_rlimits(attr: SysProcAttr) -> None:
    """What prlimit64 in the child refuses: RLIMIT_NOFILE above fs.nr_open, and a hard limit above the
    one this process has without CAP_SYS_RESOURCE in the initial user namespace (which a child in a new
    user namespace never has)."""
    import resource

    from ..sandbox.rlimits import RESOURCES, RLIM_INFINITY, limit_value, resource_number

    if not _has_cap(CAP_SYS_RESOURCE):
        why = "this process lacks CAP_SYS_RESOURCE"
    elif (attr.cloneflags | attr.unshareflags) & CLONE_NEWUSER:
        why = "a child in a new user namespace lacks CAP_SYS_RESOURCE"
    elif any(entry.nstype & CLONE_NEWUSER for entry in attr.setns):
        why = "a child that joins a user namespace lacks CAP_SYS_RESOURCE"
    else:
        why = ""  # (a join of an fd of unknown type may take it too: the start's PRLIMIT step names it)
    for i, rlimit in enumerate(attr.rlimits):
        field = f"sys.rlimits[{i}]"
        res = resource_number(field, rlimit.resource)
        hard = limit_value(field, rlimit.hard)
        if RESOURCES[res] == "RLIMIT_NOFILE":
            nr_open = _read_int("/proc/sys/fs/nr_open")
            if nr_open is not None and hard > nr_open:
                raise SpecError(f"{field}.hard",
                                f"{_shown(hard)} is above this host's fs.nr_open ({nr_open})")
        current = resource.getrlimit(res)[1]
        current = RLIM_INFINITY if current == resource.RLIM_INFINITY else current
        if hard > current and why:
            raise SpecError(f"{field}.hard", f"{_shown(hard)} is above this process's hard limit "
                            f"({_shown(current)}), and {why} to raise it")


CAP_SETGID, CAP_SETUID, CAP_SETPCAP, CAP_SYS_CHROOT, CAP_SYS_ADMIN = 6, 7, 8, 18, 21
NEW_NAMESPACES_BUT_USER = _validate.NAMESPACE_MASK & ~CLONE_NEWUSER


def _check_capabilities_needed(attr: SysProcAttr) -> None:
    """A chroot and a credential change need CAP_SYS_CHROOT, CAP_SETGID, CAP_SETUID, a new namespace
    other than a user namespace CAP_SYS_ADMIN, a capabilities drop from the bounding set CAP_SETPCAP,
    and an ambient capability that capability permitted: a child in a new (or joined) user namespace
    has them there; one that is not has only what this process has."""
    from ..sandbox.caps import check_capabilities, mask_names  # (imported by the start that follows anyway)

    # clone(2) makes those of cloneflags in this process's user namespace, before any join or unshare
    _need_sys_admin("sys.cloneflags", attr.cloneflags, attr.cloneflags & CLONE_NEWUSER, "in cloneflags")
    if (attr.cloneflags | attr.unshareflags) & CLONE_NEWUSER or any(e.nstype & CLONE_NEWUSER or not e.nstype
                                                                   for e in attr.setns):
        return  # (a join of unknown type may be a user namespace's: the start's step tells)
    _need_sys_admin("sys.unshareflags", attr.unshareflags, 0, "in cloneflags or unshareflags")
    if attr.capabilities is not None and not _has_cap(CAP_SETPCAP, "CapPrm") \
            and check_capabilities("sys.capabilities", attr.capabilities).bounding_drop:
        raise SpecError("sys.capabilities", "dropping from the bounding set needs CAP_SETPCAP, which this "
                        "process lacks (and no new user namespace gives the child)")
    for i, cap in enumerate(attr.ambient_caps):
        if not _has_cap(cap, "CapPrm"):
            raise SpecError(f"sys.ambient_caps[{i}]", f"{mask_names(1 << cap)[0]} is not in this process's "
                            "permitted set: the child cannot raise it (and no new user namespace gives it)")
    if attr.chroot and not _has_cap(CAP_SYS_CHROOT):
        raise SpecError("sys.chroot", "needs CAP_SYS_CHROOT, which this process lacks (and no new user "
                        "namespace gives the child)")
    cred = attr.credential
    if cred is None:
        return
    if (not cred.no_setgroups or cred.gid != os.getegid()) and not _has_cap(CAP_SETGID):
        raise SpecError("sys.credential", "setting groups needs CAP_SETGID, which this process lacks (and "
                        "no new user namespace gives the child)")
    if cred.uid != os.geteuid() and not _has_cap(CAP_SETUID):
        raise SpecError("sys.credential.uid", "needs CAP_SETUID, which this process lacks (and no new user "
                        "namespace gives the child)")


def _check_maps_writable(attr: SysProcAttr) -> None:
    """The maps of a new user namespace (CLONE_NEWUSER in cloneflags), which this process writes:
    without CAP_SETUID (CAP_SETGID) the kernel lets it write one line mapping its own euid (egid), of
    size 1, and a gid map only with setgroups denied (user_namespaces(7)); any other is EPERM once the
    child exists. (With CLONE_NEWUSER in unshareflags the child writes them: validate's rule.)"""
    if not attr.cloneflags & CLONE_NEWUSER:
        return
    wanted = (("uid", attr.uid_mappings, os.geteuid(), CAP_SETUID),
              ("gid", attr.gid_mappings, os.getegid(), CAP_SETGID))
    for name, maps, mine, cap in wanted:
        if maps is None or _has_cap(cap):
            continue
        if not (len(maps) == 1 and maps[0].size == 1 and maps[0].host_id == mine):
            raise SpecError(f"sys.{name}_mappings", f"maps other ids than this process's own e{name} "
                            f"({mine}, one line of size 1), which needs {_CAP_NAMES[cap]}, which this "
                            "process lacks (the kernel refuses the map: EPERM)")
        if name == "gid" and attr.gid_mappings_enable_setgroups:
            raise SpecError("sys.gid_mappings_enable_setgroups", "a gid map written without CAP_SETGID, "
                            "which this process lacks, needs setgroups denied (the kernel refuses the map: "
                            "EPERM)")


_CAP_NAMES = {CAP_SETUID: "CAP_SETUID", CAP_SETGID: "CAP_SETGID"}


def _need_sys_admin(field: str, flags: int, new_user: int, where: str) -> None:
    """A new namespace other than a user namespace, made where no new user namespace owns it."""
    made = flags & NEW_NAMESPACES_BUT_USER
    if made and not new_user and not _has_cap(CAP_SYS_ADMIN):
        raise SpecError(field, f"{_kind_name(made)}: a new namespace other than a user namespace needs "
                        "CAP_SYS_ADMIN, which this process lacks (a new user namespace, CLONE_NEWUSER "
                        f"{where}, gives the child that capability there)")


def _shown(limit: int) -> str:
    from ..sandbox.rlimits import RLIM_INFINITY

    return "unlimited" if limit == RLIM_INFINITY else str(limit)


def _has_cap(cap: int, kind: str = "CapEff") -> bool:
    with open("/proc/thread-self/status") as f:  # (capabilities are each thread's)
        for line in f:
            if line.startswith(kind + ":"):
                return bool(int(line.split()[1], 16) >> cap & 1)
    return False


def _read_int(path: str) -> Optional[int]:
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def _check_join_target(field: str, entry: SetNS, cloneflags: int) -> None:
    """What the child's setns would refuse of a join by path: a file that is no namespace (EINVAL), one
    of another type than ``nstype`` (EINVAL), another namespace or process than its pins name (ESTALE),
    one of a type cloneflags makes, and this process's own namespace (a join that would change nothing).
    The file is opened as the start opens it (a pin by process: through its /proc directory)."""
    from .. import ns_pins, nsinfo  # only for a spec that joins: a launcher imports what it uses (issue 15)

    try:
        if entry.process_start is not None:
            fd = ns_pins.open_of_process(os.fsdecode(entry.target), entry.process_start)
        else:
            fd = os.open(entry.target, NS_OPEN)
    except OSError as e:
        raise SpecError(f"{field}.process_start" if e.errno in (errno.ESTALE, errno.ESRCH) else field,
                        f"{entry.target}: {e.strerror}") from None
    try:
        kind = nsinfo.fd_nstype(fd)
        _judge_join(field, entry, cloneflags, str(entry.target), kind, fd,
                    lambda: bool(kind) and nsinfo.fd_is_callers(fd, kind))
    finally:
        os.close(fd)


def _judge_join(field: str, entry: SetNS, cloneflags: int, what: str, kind: int, fd: int,
                own: Callable[[], bool]) -> None:
    """The rules of a join of the namespace ``what`` (a path, or "fd N") open at ``fd``, of type
    ``kind`` (0: none)."""
    from .. import ns_pins

    if not kind:
        raise SpecError(field, f"{what} is not a namespace file (a /proc/PID/ns/* link, or a bind mount of "
                        "one such as /run/netns/NAME)")
    if entry.nstype and entry.nstype != kind:
        raise SpecError(f"{field}.nstype", f"{what} is a {_kind_name(kind)} namespace, not "
                        f"{_kind_name(entry.nstype)}")
    try:
        ns_pins.check(fd, entry.inode, None)
    except OSError as e:
        raise SpecError(f"{field}.inode", f"{what} is {e.strerror}") from None
    try:
        ns_pins.check(fd, None, entry.ns_id)
    except OSError as e:
        raise SpecError(f"{field}.ns_id", f"{what} is {e.strerror}" if e.errno == errno.ESTALE else
                        f"{e.strerror}: pin by inode and process_start") from None
    try:
        _validate.check_join_kind(field, entry, entry.nstype or kind, cloneflags)
    except ValueError as e:
        path, _, rule = str(e).partition(": ")
        raise SpecError(path, rule) from None
    if own():
        raise SpecError(field, f"{what} is this process's own namespace: the program would run in it as if "
                        "no join had been asked")


def _kind_name(kind: int) -> str:
    from ..flags import CloneFlags

    return CloneFlags.describe(kind)


def _check_landlock_rules(policy: object) -> None:
    """The ruleset built and dropped, as the start builds it: what the kernel refuses of a rule (a path
    on an internal filesystem, as /proc/PID/ns/*) is named before the start. Nothing on a kernel
    without Landlock (best effort runs without it; strict is refused by check())."""
    from ..sandbox.landlock import build_ruleset, check_landlock, landlock_abi

    opened: list[int] = []
    try:
        resolved = check_landlock("sys.landlock", policy)  # (a kernel that will not say its ABI: refused)
        if landlock_abi() < 1:
            return
        build_ruleset("sys.landlock", resolved, opened)
    except (ValueError, OSError) as e:
        message = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        field, sep, rule = message.partition(": ")
        raise SpecError(field if sep else "sys.landlock", rule if sep else message) from None
    finally:
        for fd in opened:
            os.close(fd)


def _check_join_fd(field: str, entry: SetNS, cloneflags: int) -> None:
    """A join of an fd of this launcher, as _check_join_target judges a path (a pidfd's, whose
    namespaces its nstype mask names, only for being open)."""
    from .. import nsinfo

    fd = entry.target
    try:
        pidfd = os.readlink(f"/proc/thread-self/fd/{fd}") == "anon_inode:[pidfd]"
    except OSError:
        raise SpecError(field, f"fd {fd} is not open in this process") from None
    if not pidfd:
        if entry.process_start is not None:
            raise SpecError(f"{field}.process_start", f"pins a process: fd {fd} is no pidfd (pin a namespace "
                            "fd by inode or ns_id)")
        kind = nsinfo.fd_nstype(fd)
        _judge_join(field, entry, cloneflags, f"fd {fd}", kind, fd, lambda: nsinfo.fd_is_callers(fd, kind))
