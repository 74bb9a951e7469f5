"""Namespaces with a veth each on one bridge, for the netns tests: unique names, and everything removed
whatever happens (the converge first, then iproute2 for what a failed test may have left)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator

import pytest

from .cli import run


@contextlib.contextmanager
def bridged_names(tag: str, count: int) -> Iterator[dict]:
    """{netns: [...], peers: [...], bridge}: ``count`` namespaces and host ends, one bridge, named from
    ``tag`` and this process; skips the test without iproute2 or pyroute2."""
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (ip) is not installed")
    pytest.importorskip("pyroute2", reason="pyforkexec.netns needs pyroute2 (the net extra)")
    from pyforkexec import netns

    pid, letters = os.getpid() % 100000, "abcdefghij"[:count]
    found = dict(netns=[f"pfe-{tag}{pid}{c}" for c in letters], peers=[f"pfe{tag}{pid}{c}" for c in letters],
                 bridge=f"pfe{tag}{pid}br")
    try:
        yield found
    finally:
        for name in found["netns"]:
            try:
                netns.converge(name, None)
            finally:
                run(["ip", "netns", "del", name])
        for link in [*found["peers"], found["bridge"]]:
            run(["ip", "link", "del", link])
