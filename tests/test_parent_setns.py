"""SysProcAttr.setns with CLONE_NEWUSER: the parent joins the host's netns around clone (parent_ns.py).

The child of a new user namespace could not setns() into a netns the host's user namespace owns; the
service of a playbook needs exactly that (its own user, pid, mount and uts namespaces, and a named
netns wired to a bridge).
"""

from __future__ import annotations

import os

import pytest
from helpers.ext import userns
from helpers.marks import needs_root
from helpers.procs import output

from pyforkexec import (
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUTS,
    ChildError,
    ErrorLocation,
    SetNS,
)
from pyforkexec.sandbox.caps import Capabilities
from pyforkexec.sandbox.mounts import Mount

pytestmark = needs_root
PROBE = "readlink /proc/self/ns/net /proc/self/ns/user; hostname; echo $$; cat /proc/self/uid_map"


@pytest.mark.parametrize("nstype", [CLONE_NEWNET, 0])
def test_new_user_namespace_in_a_host_netns(netns: str, nstype: int) -> None:
    own_net = os.readlink("/proc/thread-self/ns/net")
    sys = userns(uid=65534, gid=65534, flags=CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS,
                 setns=[SetNS(netns, nstype)], hostname="inside", mounts=[Mount.proc("/proc")],
                 capabilities=Capabilities())  # (else the program could unmount its /proc)
    net, user, host, pid, *uid_map = output(["/bin/sh", "-c", PROBE], sys).split()
    assert net == f"net:[{os.stat(netns).st_ino}]"
    assert user != os.readlink("/proc/self/ns/user")
    assert (host, pid, uid_map) == ("inside", "1", ["0", "65534", "1"])
    assert os.readlink("/proc/thread-self/ns/net") == own_net  # the parent's thread went back


def test_a_refused_join_is_the_setns_step(netns: str, unprivileged) -> None:  # type: ignore[no-untyped-def]
    def spawn() -> tuple[int, int]:
        sys = userns(setns=[SetNS(netns, CLONE_NEWNET)])
        try:
            output(["/bin/true"], sys)
        except ChildError as e:
            return e.location, e.index
        return 0, 0

    assert unprivileged(spawn) == (ErrorLocation.SETNS, 0)
