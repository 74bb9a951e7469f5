"""The service module takes any set of its options, valid or not, cleanly, as a property: from random
option sets (each option left out, given a value the documentation allows, or one it refuses), the
check-mode run either plans the start or fails with a message that names an option the set gave,
writing nothing; the run does as its check-mode run said (started and changed, or the same refusal);
the next run and check-mode run change nothing. Never a traceback (a module that raises fails this
test where Ansible would say MODULE FAILURE). Each example starts a real daemon (manager=direct).

PFE_HYPOTHESIS_EXAMPLES=N draws N option sets with a random seed (default: 6, a fixed seed; about
2 s each)."""

from __future__ import annotations

import os
import re

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
from ansible_collections.pyforkexec.isolation.plugins.modules import service

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the daemon and its services run as root")
hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed (it is in the dev extras)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

EXAMPLES = int(os.environ.get("PFE_HYPOTHESIS_EXAMPLES", "6"))
RANDOM = "PFE_HYPOTHESIS_EXAMPLES" in os.environ  # else a fixed seed: CI runs the same examples each time
LOOP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.2; done"]

# option -> values: some the documentation allows, some it refuses (by type, range or name)
VALUES = {
    "user": ["nobody", "root", "0", "65534", "pfe-ut-nouser", "4294967295", ""],
    "group": ["nogroup", "0", "65534", "pfe-ut-nogroup", ""],
    "env": [{"A": "1"}, {"A": "1", "B": ""}, {"A=B": "1"}, {"A": "x\0y"}, {"": "1"}, {"A": 5}, ["A=1"]],
    "chdir": ["/", "/tmp", "rel", "/nonexistent-pfe-ut", ""],
    "restart": ["always", "on-failure", "no", "sometimes"],
    "stop_timeout": [0, 1, 30, "5", -1, "x", 1.5],
    "stop_signal": ["TERM", "SIGINT", "2", "hup", "KILL", "NOSUCH", "0", "99"],
    "restart_sec": [0.1, 1, "0.5", -1, "x"],
    "start_check": [0.1, 0.2, "0.1", -1, "x", 100000],
    "description": ["a service", ""],
    "enabled": [True, False, "yes", "maybe"],
    "namespaces": [["uts"], ["uts", "ipc"], ["pid", "mount"], ["net"], "uts", ["bogus"], ["uts", "uts"]],
    "hostname": ["box", "a" * 64, "a" * 65, "", "bad host"],
    "no_new_privs": [True, False, "x"],
    "capabilities": [{"drop": ["CAP_KILL"]}, {"keep": ["CAP_NET_RAW"]}, {"ambient": ["CAP_CHOWN"]},
                     {"keep": ["CAP_BOGUS"]}, {"drop": "CAP_KILL"}, {"bogus": []}],
    "seccomp": [{"deny": ["ptrace"]}, {"deny": ["reboot"], "deny_action": "kill"}, {"deny": ["nosuchcall"]},
                {"default_action": "sometimes"}, {"errno": "ENOSUCH", "deny": ["mount"]}],
    "cgroup": [{"pids_max": 50}, {"pids_max": "max"}, {"cpu_weight": 100}, {"cpu_weight": 0},
               {"memory_max": "64M"}, {"memory_max": "x"}, {"cpu_max": "50000 100000"}, {"cpu_max": "x"}],
    "rlimits": [{"RLIMIT_NOFILE": 1024}, {"nofile": "inf"}, {"RLIMIT_BOGUS": 1}, {"RLIMIT_NOFILE": -2}],
    "readonly_root": [True, False],
}

OPTION_SETS = st.dictionaries(st.sampled_from(sorted(VALUES)), st.just(None), max_size=4).flatmap(
    lambda keys: st.fixed_dictionaries({k: st.sampled_from(VALUES[k]) for k in keys}))


def _names(options):
    """The names of ``options``, and of the keys of the dicts given to them."""
    for key, value in options.items():
        yield key
        if isinstance(value, dict):
            yield from _names(value)


def named_option(msg, options):
    """Whether a message names an option of the set: as this collection's messages do (``OPTION: ...``,
    its path as ``env.A`` or ``mounts[1].target``), or as ansible-core's argument checks do (``value of
    deny_action must be one of ... found in seccomp``, ``argument 'stop_timeout' is of type ...``)."""
    head = msg.split(": ", 1)[0]
    if re.split(r"[.\[]", head, maxsplit=1)[0] in options:
        return True
    return any(re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", msg) for name in _names(options) if name)


@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not RANDOM,
          suppress_health_check=list(HealthCheck))
@given(options=OPTION_SETS)
def test_any_option_set_runs_as_planned_or_fails_naming_an_option(run_module, unique_name, options):
    name, ran = unique_name(), None
    args = dict({"start_check": 0.1}, **options, name=name, argv=LOOP, manager="direct")
    try:
        plan = run_module(service, args, check_mode=True, diff=True)
        if plan.get("failed"):
            assert named_option(plan["msg"], options), (options, plan["msg"])
            assert not os.path.exists(paths.spec_path(name)), options
        ran = run_module(service, args, diff=True)
        assert ran.get("failed", False) == plan.get("failed", False), (options, plan, ran)
        if ran.get("failed"):
            assert ran["msg"] == plan["msg"], options
            assert not os.path.exists(paths.spec_path(name)), options
            return
        assert plan["changed"] is True and ran["changed"] is True, (options, plan, ran)
        assert os.path.exists(paths.spec_path(name)) and _alive(ran["main_pid"]), (options, ran)
        again = run_module(service, args, check_mode=True)
        assert again["changed"] is False, (options, again)
        again = run_module(service, args)
        assert (again["changed"], again["main_pid"]) == (False, ran["main_pid"]), (options, again)
    finally:
        gone = run_module(service, dict(name=name, state="absent", manager="direct"))
        assert not gone.get("failed"), gone
        assert not os.path.exists(paths.spec_path(name))
        if ran is not None and not ran.get("failed"):
            assert not _alive(ran["main_pid"]), options


def _alive(pid):
    """Whether ``pid`` is a live process (a zombie is not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
