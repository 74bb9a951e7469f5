"""namespace_info names the option whose target is no namespace (issue 11)."""

from __future__ import annotations

import os

from ansible_collections.pyforkexec.isolation.plugins.modules import namespace_info


def test_namespace_info_of_a_netns_name_whose_namespace_is_gone(run_module, unique_name):
    """A file in /run/netns that is not a namespace (its mount went away) is no network namespace."""
    name = unique_name()
    os.makedirs("/run/netns", exist_ok=True)
    path = f"/run/netns/{name}"
    open(path, "w").close()
    try:
        result = run_module(namespace_info, dict(netns=name, net=False))
    finally:
        os.unlink(path)
    assert result["failed"] is True and result["msg"].startswith(f"netns: {path} is not a namespace")
