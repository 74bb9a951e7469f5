"""pyforkexec's own validation of a loaded spec, its messages naming the document's paths."""

from __future__ import annotations

import os

from .. import validate as _validate
from .document import SpecError
from .load import Spec

_PREFIXES = (("SysProcAttr.", "sys."), ("ProcAttr.sys", "sys"), ("ProcAttr.", "proc."))


def _spec_path(message: str) -> str:
    for old, new in _PREFIXES:
        if message.startswith(old):
            return new + message[len(old):]
    return message


def check(spec: Spec) -> None:
    """pyforkexec's validation of what fork_exec would be given, before any process exists.

    Raises SpecError with the field's path in the document."""
    try:
        argv0 = spec.argv0
        if argv0 is None:  # the program is argv[0], and its errors name argv[0]
            argv0 = _validate.to_bytes_list("argv", spec.argv)[0] if spec.argv else b""
        _validate.check_spawn(argv0, spec.argv, spec.attr)
    except (ValueError, TypeError) as e:
        field, sep, rule = _spec_path(str(e)).partition(": ")
        raise SpecError(field if sep else "", rule if sep else field) from None
    attr = spec.attr.sys
    if not spec.wait and attr is not None and attr.pdeathsig:
        # The launcher exits once the program has started: the signal would kill it at once.
        raise SpecError("sys.pdeathsig", "is sent when the launcher exits, which it does at once with "
                        '"wait": false: leave one of them out')
    if not spec.wait and attr is not None and attr.cgroup is not None \
            and (attr.cgroup.kill_remaining or attr.cgroup.remove):
        raise SpecError("sys.cgroup", 'kill_remaining and remove happen once the program has ended, which '
                        'a launcher with "wait": false does not see: set both false, or wait')
    if attr is not None and attr.ptrace:
        raise SpecError("sys.ptrace", "stops the program at its execve for a tracer, and the launcher is "
                        "none: it would wait for ever")


def check_on_host(spec: Spec) -> None:
    """What only this host can tell of a checked spec, read without starting anything (``pyforkexec
    exec --check``, and before its start): each ``proc.files`` fd open here, ``sys.cgroup`` possible
    here (its controllers, a place this process can write), ``sys.chroot`` a
    directory, and each ``sys.setns`` target (a file) a namespace that is not this process's own.
    Raises SpecError naming the field."""
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
            field, _, rule = _spec_path(e.strerror or str(e)).partition(": ")
            raise SpecError(field, rule) from None
    root = spec.attr.sys.chroot if spec.attr.sys is not None else None  # (pivot_root's mounts may make it)
    if isinstance(root, (str, bytes)) and root and not os.path.isdir(root):
        raise SpecError("sys.chroot", f"{os.fsdecode(root)} is not a directory here")
    for i, entry in enumerate(spec.attr.sys.setns if spec.attr.sys is not None else ()):
        if not isinstance(entry.target, str):
            continue
        field = f"sys.setns[{i}]"
        from .. import nsinfo  # only for a spec that joins: a launcher imports what it uses (issue 15)

        try:
            own = nsinfo.nstype(entry.target) and nsinfo.is_callers(entry.target)
        except OSError as e:
            raise SpecError(field, f"{entry.target}: {e.strerror}") from None
        if own:
            raise SpecError(field, f"{entry.target} is this process's own namespace: the program would "
                            "run in it as if no join had been asked")
