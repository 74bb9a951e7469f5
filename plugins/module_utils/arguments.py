# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""Option values that ansible-core's own argument validation raises on instead of reporting, refused
first with a message naming the option.

ansible-core (2.19, ansible/module_utils/common/parameters.py) validates the sub-options of a dict
option by iterating its value as a list of dicts: a list holding null, a boolean or a number there
(``seccomp: [null]``), or such a value alone, is a TypeError out of ``set_fallbacks`` (``argument of
type 'NoneType' is not iterable``), raised out of AnsibleModule() before any module code runs, as a
traceback. An int option converts through ``decimal.Decimal`` (validation.check_type_int): infinity
(``.inf``, ``"inf"``) is an OverflowError, and ``"1e10000000"`` an integer of ten million digits,
built for minutes. A list of dicts holding null or a boolean is reported, as a type of list it "must
be" (``Value 'None' in the sub parameter field ... must be a list``): said here as what it is.

A boolean is no number either, but ansible-core takes one for an int option as it is (``True`` is an
int to Python) and for a float option as 1.0 or 0.0: ``stop_timeout: true`` passed every check and
was written as ``--stop-timeout True`` into the daemon's command line, which refused it only after the
running service was stopped for the restart. It is refused here, naming the option.
"""

from __future__ import annotations

import decimal

from ansible.module_utils.basic import AnsibleModule as _AnsibleModule
from ansible.module_utils.common.validation import check_type_dict

# No int option holds more digits than 2**64 has (20): a larger value is refused as out of range
# before check_type_int builds it.
MAX_DIGITS = 20


def _kind(value):
    """A value's type as a playbook writes it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def _int_refusal(value):
    """Why check_type_int would raise on ``value``, build a huge integer or take a boolean for a number
    (None: it converts it or reports it itself)."""
    if isinstance(value, bool):
        return "is a boolean, not an integer"
    if not isinstance(value, (str, float)):  # an int is taken as it is, anything else reported
        return None
    try:
        number = decimal.Decimal(value)
    except (decimal.DecimalException, TypeError, ValueError):
        return None
    if number.is_infinite():
        return "is infinite, not an integer"
    if number.is_finite() and not number.is_zero() and number.adjusted() >= MAX_DIGITS:
        return f"is out of range (more than {MAX_DIGITS} digits: beyond any 64-bit integer)"
    return None


def _as_dict(value):
    """A dict option's value as ansible-core reads it (a "k=v" string converted), None if it cannot."""
    if isinstance(value, dict):
        return value
    try:
        return check_type_dict(value)
    except (TypeError, ValueError):
        return None


def refusal(argument_spec, params, where=""):
    """``"path: rule"`` for the first value of ``params`` (aliases included, sub-options at every
    depth) that ansible-core's validation of ``argument_spec`` would raise on; None if there is none."""
    if not isinstance(params, dict):
        return None
    for name, spec in argument_spec.items():
        for key in (name, *(spec.get("aliases") or ())):
            if params.get(key) is not None:
                found = _value_refusal(spec, params[key], f"{where}.{key}" if where else key)
                if found is not None:
                    return found
    return None


def _value_refusal(spec, value, path):
    kind, elements, options = spec.get("type", "str"), spec.get("elements"), spec.get("options")
    if kind == "int":
        why = _int_refusal(value)
        return None if why is None else f"{path}: {why}"
    if kind == "float" and isinstance(value, bool):  # (check_type_float makes it 1.0 or 0.0)
        return f"{path}: is a boolean, not a number"
    if kind == "dict" and options:
        if value is None or isinstance(value, (bool, int, float, list, tuple)):
            return f"{path}: expected a dictionary, got {_kind(value)}"
        return refusal(options, _as_dict(value), path)
    if kind == "list" and isinstance(value, list):
        for i, item in enumerate(value):
            if elements == "int" and _int_refusal(item) is not None:
                return f"{path}[{i}]: {_int_refusal(item)}"
            if elements == "float" and isinstance(item, bool):
                return f"{path}[{i}]: is a boolean, not a number"
            if elements == "dict" and options:
                if item is None or isinstance(item, (bool, int, float)):
                    return f"{path}[{i}]: expected a dictionary, got {_kind(item)}"
                found = refusal(options, _as_dict(item), f"{path}[{i}]")
                if found is not None:
                    return found
    return None


class AnsibleModule(_AnsibleModule):
    """ansible.module_utils.basic.AnsibleModule, but for a value its validation would raise on (see
    above): the module fails with ``refusal``'s message, as for any bad option, instead of a traceback."""

    def _load_params(self):
        # Read before the validation, which is what raises; fail_json needs nothing set later.
        super()._load_params()
        found = refusal(self.argument_spec, self.params)
        if found is not None:
            self.fail_json(msg=found)
