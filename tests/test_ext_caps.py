"""SysProcAttr.capabilities: the sets /proc/self/status shows in the child, and capability names."""

from __future__ import annotations

from typing import Any, Callable

import pytest
from helpers.ext import userns
from helpers.marks import needs_root
from helpers.procs import cap_set, output, status_fields

from pyforkexec import Credential, SysProcAttr
from pyforkexec.sandbox.caps import CAP_NUMBERS, Capabilities, cap_last_cap, cap_number, mask_names

pytestmark = needs_root
NOBODY = 65534
NET_BIND, NET_RAW, SYS_ADMIN = (CAP_NUMBERS[f"CAP_{n}"] for n in ("NET_BIND_SERVICE", "NET_RAW", "SYS_ADMIN"))
SETS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


def cap_sets(sys: SysProcAttr) -> dict[str, set[int]]:
    st = status_fields(output(["/usr/bin/cat", "/proc/self/status"], sys))
    return {name: cap_set(st[name]) for name in SETS}


def own_sets() -> dict[str, set[int]]:
    with open("/proc/self/status") as f:
        st = status_fields(f.read())
    return {name: cap_set(st[name]) for name in SETS}


def test_root_keeps_only_what_it_keeps() -> None:
    got = cap_sets(SysProcAttr(capabilities=Capabilities(keep=["CAP_NET_BIND_SERVICE", "net_raw"])))
    assert got == {"CapInh": set(), "CapPrm": {NET_BIND, NET_RAW}, "CapEff": {NET_BIND, NET_RAW},
                   "CapBnd": {NET_BIND, NET_RAW}, "CapAmb": set()}


def test_drop_everything() -> None:
    assert cap_sets(SysProcAttr(capabilities=Capabilities())) == {name: set() for name in SETS}


def test_drop_some_keep_the_rest() -> None:
    got = cap_sets(SysProcAttr(capabilities=Capabilities(drop_all_others=False, drop=["sys_admin", NET_RAW])))
    own = own_sets()
    assert got["CapBnd"] == own["CapBnd"] - {SYS_ADMIN, NET_RAW}
    assert got["CapEff"] == got["CapPrm"] == own["CapPrm"] - {SYS_ADMIN, NET_RAW}


def test_drop_everything_for_a_non_root_user() -> None:
    # the bounding set is dropped after setuid, which needs the permitted set kept across it
    got = cap_sets(SysProcAttr(credential=Credential(uid=NOBODY, gid=NOBODY), capabilities=Capabilities()))
    assert got == {name: set() for name in SETS}


def test_ambient_for_a_non_root_user() -> None:
    caps = Capabilities(keep=["CAP_NET_BIND_SERVICE", "CAP_NET_RAW"], ambient=["CAP_NET_BIND_SERVICE"])
    got = cap_sets(SysProcAttr(credential=Credential(uid=NOBODY, gid=NOBODY), capabilities=caps))
    # after execve a non-root program keeps only its ambient capabilities; the bounding set stays
    assert got == {"CapInh": {NET_BIND}, "CapPrm": {NET_BIND}, "CapEff": {NET_BIND},
                   "CapBnd": {NET_BIND, NET_RAW}, "CapAmb": {NET_BIND}}


def unprivileged_caps() -> dict[str, set[int]]:
    return cap_sets(userns(capabilities=Capabilities(keep=["CAP_SYS_ADMIN"])))


def test_in_a_user_namespace_as_an_unprivileged_user(unprivileged: Callable[..., Any]) -> None:
    got = unprivileged(unprivileged_caps)
    assert got["CapBnd"] == got["CapEff"] == got["CapPrm"] == {SYS_ADMIN}


@pytest.mark.parametrize("name", ["CAP_SYS_ADMIN", "cap_sys_admin", "SYS_ADMIN", "sys_admin", SYS_ADMIN])
def test_cap_names(name: Any) -> None:
    assert cap_number("f", name) == SYS_ADMIN


def test_cap_name_errors() -> None:
    with pytest.raises(ValueError, match=r"^f: unknown capability 'CAP_SYS_ADMINN'"):
        cap_number("f", "CAP_SYS_ADMINN")
    with pytest.raises(ValueError, match=r"^f: must be between 0 and"):
        cap_number("f", cap_last_cap() + 1)
    assert mask_names(1 << NET_BIND | 1 << SYS_ADMIN) == ["CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"]
