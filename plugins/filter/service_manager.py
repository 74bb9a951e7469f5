# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""The filter ``pyforkexec.isolation.service_manager``: the manager a service runs under on a host.

The same decision the ``service`` module makes (module_utils/service_paths.resolve_manager), so that the
role plans with the manager the module will use: ``auto`` is systemd where PID 1 is systemd.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: service_manager
short_description: The manager a service runs under on a host
version_added: 0.1.0
description:
  - Resolves O(_input) (C(auto), C(systemd) or C(direct)) as the P(pyforkexec.isolation.service#module)
    module does; C(auto) is C(systemd) when PID 1 of the host is systemd, else C(direct).
options:
  _input:
    description: The manager asked for.
    type: str
    required: true
  booted:
    description: Whether PID 1 of the host is systemd (sd_booted(3)).
    type: bool
    required: true
"""

EXAMPLES = r"""
- name: The manager of a service on this host
  ansible.builtin.debug:
    msg: "{{ 'auto' | pyforkexec.isolation.service_manager(ansible_service_mgr == 'systemd') }}"
"""

RETURN = r"""
_value:
  description: C(systemd) or C(direct).
  type: str
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.pyforkexec.isolation.plugins.module_utils.service_paths import (
    ServiceError,
    resolve_manager,
)


def service_manager(wanted: str, booted: bool) -> str:
    try:
        return resolve_manager(wanted, booted=bool(booted))
    except ServiceError as e:
        raise AnsibleFilterError(str(e)) from None


class FilterModule:
    def filters(self) -> dict:
        return {"service_manager": service_manager}
