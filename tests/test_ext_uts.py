"""SysProcAttr.hostname and domainname: set in the child's new UTS namespace."""

from __future__ import annotations

import os
from typing import Any, Callable

import pytest
from helpers.ext import userns
from helpers.marks import needs_root
from helpers.procs import output

from pyforkexec import CLONE_NEWUTS, SysProcAttr

pytestmark = needs_root
NAMES = ["/bin/sh", "-c", "hostname; domainname; readlink /proc/self/ns/uts"]


def names(sys: SysProcAttr) -> list[str]:
    return output(NAMES, sys).splitlines()


@pytest.mark.parametrize("field", ["cloneflags", "unshareflags"])
def test_hostname_and_domainname(field: str) -> None:
    sys = SysProcAttr(hostname="sandbox-host", domainname="sandbox.example", **{field: CLONE_NEWUTS})
    host, domain, ns = names(sys)
    assert (host, domain) == ("sandbox-host", "sandbox.example")
    assert ns != os.readlink("/proc/self/ns/uts")
    assert os.uname().nodename != "sandbox-host"


def test_hostname_of_64_bytes() -> None:
    name = "h" * 64
    assert names(SysProcAttr(cloneflags=CLONE_NEWUTS, hostname=name))[0] == name


def unprivileged_names() -> list[str]:
    return names(userns(flags=CLONE_NEWUTS, hostname="userns-host"))


def test_hostname_in_a_user_namespace_as_an_unprivileged_user(unprivileged: Callable[..., Any]) -> None:
    assert unprivileged(unprivileged_names)[0] == "userns-host"
