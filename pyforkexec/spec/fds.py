"""Fields that take an fd of the calling process (the Python API's form), which a document cannot give.

An fd number in a document names whatever the process that reads it (a launcher, the daemon, a
module) has open under that number, not anything its author opened: a join's ``target`` 3 joins the
daemon's fd 3, if it is a namespace at all. So the loader refuses an fd number in these fields, and
``dump`` does not write one; what each takes in a document instead is said in the rule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import Optional

from ..attrs import SetNS, SysProcAttr
from ..sandbox.mounts import Mount

# (dataclass, field) -> what a document gives instead. A negative number is no fd (landlock_fd -1 is
# Go's "no ruleset"; a negative target is refused by the validation as for the API).
_FD_FIELDS: dict[tuple[type, str], str] = {
    (SetNS, "target"): "give the namespace's path (/run/netns/NAME, /proc/PID/ns/TYPE)",
    (Mount, "idmap"): "give true (the child's user namespace) or the user namespace's path",
    (SysProcAttr, "cgroup_fd"): "give sys.cgroup (a cgroup's path) instead",
    (SysProcAttr, "landlock_fd"): "give sys.landlock (a policy) instead",
    (SysProcAttr, "exec_fd"): "give argv0 (the program's path) instead",
}


def takes_fd(cls: type, name: str) -> bool:
    """Whether the field ``name`` of ``cls`` takes an fd of the calling process as a number."""
    return (cls, name) in _FD_FIELDS


def fd_refusal(cls: type, f: dataclasses.Field, value: object) -> Optional[str]:
    """Why ``value`` cannot be the field's in a document (None: it can): an fd number there."""
    instead = _FD_FIELDS.get((cls, f.name))
    if instead is None or isinstance(value, bool):
        return None
    if not isinstance(value, int):  # dump's input: a file object there is an fd too, written as its number
        if not callable(getattr(value, "fileno", None)):
            return None
        return (f"a {type(value).__name__} is an open file of this process, which a document cannot give "
                f"(its fd would be one of the process reading the document): {instead}")
    if value < 0:
        return None
    return (f"{value} is an fd number, which a document cannot give (it would be an fd of the process "
            f"reading the document, not one its author opened): {instead}")


# (dataclass, flag) -> the fd field the flag makes the child use. A document that sets the flag without
# that field (which it can give only as -1, no fd) leaves it at its default, 0: the stdin of the process
# reading the document, whatever that is (a cgroup directory it was started with would be joined).
_FD_FLAGS: dict[tuple[type, str], str] = {
    (SysProcAttr, "use_cgroup_fd"): "cgroup_fd",
    (SysProcAttr, "use_landlock"): "landlock_fd",
}


def flag_refusal(cls: type, f: dataclasses.Field, value: object, given: Collection[str]) -> Optional[str]:
    """Why ``value`` cannot be the flag field's in a document whose object gives the fields ``given``
    (None: it can): the flag set, and its fd field left at fd 0."""
    fd_field = _FD_FLAGS.get((cls, f.name))
    if fd_field is None or value is not True or fd_field in given:
        return None
    return (f"uses {fd_field}, which is left out: it would be fd 0 of the process reading the document "
            f"(a document cannot give an fd): {_FD_FIELDS[(cls, fd_field)]}")
