"""pyforkexec's own validation of a loaded spec, its messages naming the document's paths."""

from __future__ import annotations

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
