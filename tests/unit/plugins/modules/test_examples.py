"""Every task of the modules' EXAMPLES, run in check mode with its arguments as written: each is
accepted, or refused only for what this host lacks (a path under /srv, the netns or service an earlier
example makes, cgroup v2 controllers). An example whose options contradict each other, or that a rule
refuses on any host, fails here (check mode validates every option and changes nothing)."""

from __future__ import annotations

import importlib
import re

import pytest
import yaml

MODULES = ("forkexec", "service", "services", "netns", "namespace_info", "accounts")
PREFIX = "pyforkexec.isolation."
# What an example may meet on a host that lacks what it names (and only that).
HOST_LACKS = re.compile(r"does not exist here|No such file or directory|no network namespace /run/netns/"
                        r"|is not running|controllers are not available|/etc/hosts is not there")


def _module(name):
    return importlib.import_module(f"ansible_collections.pyforkexec.isolation.plugins.modules.{name}")


def _example_tasks():
    for name in MODULES:
        for task in yaml.safe_load(_module(name).EXAMPLES):
            for action, args in task.items():
                if action.startswith(PREFIX):
                    yield pytest.param(action[len(PREFIX):], args, id=f"{name}: {task['name']}")


@pytest.mark.parametrize(("module", "args"), list(_example_tasks()))
def test_an_example_is_accepted_or_refused_only_for_what_this_host_lacks(run_module, module, args):
    result = run_module(_module(module), args, check_mode=True)
    assert not result.get("failed") or HOST_LACKS.search(result["msg"]), result["msg"]
