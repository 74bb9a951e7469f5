"""Malformed option values that ansible-core's own argument validation raises on (a traceback before any
module code), builds for minutes, or takes for a number (a boolean), for every module and every option
of the kind, at any depth: each fails the module cleanly, its message naming the option
(module_utils/arguments.py).

The options are read from each module's argument spec, not listed here: a dict or list-of-dicts option
with sub-options, or an int option, that a module gains is covered without a change here."""

from __future__ import annotations

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import forkexec as fx
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service as svc
from ansible_collections.pyforkexec.isolation.plugins.module_utils import services as services_utils
from ansible_collections.pyforkexec.isolation.plugins.module_utils.netns_args import ARGSPEC as NETNS_ARGSPEC
from ansible_collections.pyforkexec.isolation.plugins.modules import (
    accounts,
    forkexec,
    namespace_info,
    netns,
    service,
    services,
)

MODULES = {  # module: (its argument spec, options it is always given)
    accounts: (accounts.ARGSPEC, {}),
    forkexec: (fx.ARGSPEC, {"argv": ["/bin/true"]}),
    namespace_info: (namespace_info.ARGSPEC, {}),
    netns: (NETNS_ARGSPEC, {"name": "h111-never-made"}),
    service: (svc.ARGSPEC, {"name": "h111-never-made", "argv": ["/bin/true"]}),
}

# value given -> what the message says of it (after "PATH: ")
DICT_VALUES = [([None], "expected a dictionary, got a list"), ([True], "expected a dictionary, got a list"),
               (True, "expected a dictionary, got a boolean"), (1.5, "expected a dictionary, got a number")]
LIST_OF_DICT_VALUES = [([None], "[0]: expected a dictionary, got null"),
                       ([{}, True], "[1]: expected a dictionary, got a boolean")]
INT_VALUES = [(float("inf"), "is infinite"), ("-Infinity", "is infinite"), (" inf", "is infinite"),
              ("1e10000000", "is out of range"),  # (that one check_type_int builds for minutes)
              # (check_type_int takes a boolean as it is: stop_timeout true became "--stop-timeout True")
              (True, "is a boolean, not an integer"), (False, "is a boolean, not an integer")]
FLOAT_VALUES = [(True, "is a boolean, not a number"), (False, "is a boolean, not a number")]


def _options(spec, steps=(), path=""):
    """(where the option is, its path as messages name it, its kind) for every dict, list-of-dict, int
    or float option of ``spec``, sub-options included; where: the keys to it, None for a list's one item."""
    for name, opt in spec.items():
        where = f"{path}.{name}" if path else name
        kind, elements, sub = opt.get("type", "str"), opt.get("elements"), opt.get("options")
        if kind in ("int", "float"):
            yield (*steps, name), where, kind
        elif kind == "dict" and sub:
            yield (*steps, name), where, "dict"
            yield from _options(sub, (*steps, name), where)
        elif kind == "list" and elements == "dict" and sub:
            yield (*steps, name), where, "list"
            yield from _options(sub, (*steps, name, None), f"{where}[0]")


def _place(steps, value):
    """The options holding ``value`` where ``steps`` lead."""
    for step in reversed(steps):
        value = [value] if step is None else {step: value}
    return value


VALUES = {"int": INT_VALUES, "float": FLOAT_VALUES, "dict": DICT_VALUES, "list": LIST_OF_DICT_VALUES}


def _said(path, said):
    return f"{path}{said}" if said.startswith("[") else f"{path}: {said}"


def _cases():
    for module, (spec, given) in MODULES.items():
        for steps, path, kind in _options(spec):
            for value, said in VALUES[kind]:
                yield pytest.param(module, dict(given, **_place(steps, value)), _said(path, said),
                                   id=f"{module.__name__.rsplit('.', 1)[1]}:{path}={value!r}")
    # services: each entry is the service module's options and wiring (the netns module's), checked
    # per entry by the module, which names the entry first
    for steps, path, kind in _options(services_utils.ENTRY_ARGSPEC):
        for value, said in VALUES[kind]:
            entry = dict(name="h111-never-made", argv=["/bin/true"], **_place(steps, value))
            said = f"services[h111-never-made]: {_said(path, said)}"
            yield pytest.param(services, {"services": [entry]}, said, id=f"services:{path}={value!r}")


@pytest.mark.parametrize(("module", "args", "start"), list(_cases()))
def test_a_value_ansible_core_raises_on_fails_the_module_naming_the_option(run_module, module, args, start):
    result = run_module(module, args, check_mode=True)
    assert result["failed"] is True, result
    # (the services module lists every refused entry in its message)
    assert result["msg"].startswith(start) or (module is services and start in result["msg"]), result["msg"]


# The name resolution options (module_utils/name_files.py), as ansible-core hands them over: a null in a
# list of strings comes as "", a boolean as "True", a list as its text; a dict's values as given. Each
# must be refused naming the entry, never written into the service's /etc/hosts or /etc/resolv.conf
# (a "search True" line, an address "None").
NAME_FILE_VALUES = [
    (dict(dns=[None]), "dns[0]: '' is not an IPv4 or IPv6 address"),
    (dict(dns=[True]), "dns[0]: 'True' is not an IPv4 or IPv6 address"),
    (dict(dns=[["192.0.2.1"]]), "dns[0]: \"['192.0.2.1']\" is not an IPv4 or IPv6 address"),
    (dict(dns_search=[None]), "dns_search[0]: '' is not a domain"),
    (dict(dns_search=[{"a": 1}]), "dns_search[0]: \"{'a': 1}\" is not a domain"),
    (dict(dns_search=["a.test\nnameserver 192.0.2.9"]), "dns_search[0]: "),
    (dict(dns_options=[None]), "dns_options[0]: '' is not a resolv.conf option"),
    (dict(dns_options=[False]), "dns_options[0]: 'False' is not a resolv.conf option"),
    (dict(dns_options=["ndots:1\nnameserver 192.0.2.9"]), "dns_options[0]: ndots takes a whole number"),
    (dict(dns_options=["ndots:1e3"]), "dns_options[0]: ndots takes a whole number"),
    (dict(dns_options=["ndots:\u0661"]), "dns_options[0]: ndots takes a whole number"),
    (dict(etc_hosts={"db": None}), "etc_hosts.db: expected an IPv4 or IPv6 address, got NoneType"),
    (dict(etc_hosts={"db": True}), "etc_hosts.db: expected an IPv4 or IPv6 address, got bool"),
    (dict(etc_hosts={"db": {"a": 1}}), "etc_hosts.db: expected an IPv4 or IPv6 address, got dict"),
    (dict(etc_hosts={"db": [None]}), "etc_hosts.db: expected an IPv4 or IPv6 address, got NoneType"),
    (dict(etc_hosts={"db": "10.0.0.1 evil"}), "etc_hosts.db: '10.0.0.1 evil' is not an IPv4 or IPv6 address"),
    (dict(etc_hosts={"db\n10.0.0.9 x": "10.0.0.1"}), "etc_hosts.db\n10.0.0.9 x: "),
    (dict(etc_hosts={"": "10.0.0.1"}), "etc_hosts.: '' is not a host name"),
    (dict(etc_hosts="db=10.0.0"), "etc_hosts.db: '10.0.0' is not an IPv4 or IPv6 address"),
]


@pytest.mark.parametrize(("options", "start"), NAME_FILE_VALUES, ids=[repr(o) for o, s in NAME_FILE_VALUES])
@pytest.mark.parametrize("module", [service, services])
def test_a_malformed_name_resolution_value_fails_the_module_naming_it(run_module, module, options, start):
    args = dict(name="h137-never-made", argv=["/bin/true"], namespaces=["mount"], **options)
    result = run_module(module, args if module is service else {"services": [args]}, check_mode=True)
    assert result["failed"] is True, result
    said = start if module is service else f"services[h137-never-made]: {start}"
    assert result["msg"].startswith(said), result["msg"]


def test_every_kind_is_there_to_be_checked():
    # the cases above come from the argument specs: an empty walk would pass by checking nothing
    kinds = {found[2] for spec, given in MODULES.values() for found in _options(spec)}
    assert kinds == {"int", "float", "dict", "list"}
    assert any(found[1] == "wiring" for found in _options(services_utils.ENTRY_ARGSPEC))
