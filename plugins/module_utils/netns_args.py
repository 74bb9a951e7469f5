# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""The netns module's argument spec, which the services module takes for each service's ``wiring``
(without ``name`` and ``state``) and the role isolated_service checks its networks with."""

from __future__ import annotations

ARGSPEC = dict(
    name=dict(type="str", required=True),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    loopback=dict(type="bool", default=True),
    bridges=dict(type="list", elements="dict", default=[], options=dict(
        name=dict(type="str", required=True),
        addresses=dict(type="list", elements="str", default=[]),
        mtu=dict(type="int"),
    )),
    veths=dict(type="list", elements="dict", default=[], options=dict(
        name=dict(type="str", required=True),
        peer=dict(type="str", required=True),
        bridge=dict(type="str"),
        mtu=dict(type="int"),
        mac=dict(type="str"),
        peer_mac=dict(type="str"),
        addresses=dict(type="list", elements="str", default=[]),
        peer_addresses=dict(type="list", elements="str", default=[]),
    )),
    routes=dict(type="list", elements="dict", default=[], options=dict(
        dst=dict(type="str", required=True),
        gateway=dict(type="str"),
        dev=dict(type="str"),
        metric=dict(type="int"),
    )),
    gateway=dict(type="list", elements="str", default=[]),
    sysctls=dict(type="dict", default={}),
    persist=dict(type="bool"),
)

# A service's network namespace as the services module wires it: named by the service's netns option,
# present when the service is wanted and absent with it.
WIRING_ARGSPEC = {key: spec for key, spec in ARGSPEC.items() if key not in ("name", "state")}
