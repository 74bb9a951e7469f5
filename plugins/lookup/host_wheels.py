# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""The lookup ``pyforkexec.isolation.host_wheels``: the files of the role's wheel directory (on the
controller) that one host gets. The logic is plugin_utils/wheel_sources.for_host."""

from __future__ import annotations

DOCUMENTATION = r"""
name: host_wheels
short_description: The wheels of a controller directory a host's Python can install
version_added: 0.1.0
description:
  - Lists the files of a directory of wheels on the controller that one host gets, relative to it,
    sorted; the role P(pyforkexec.isolation.isolated_service#role) copies only those to the host, each
    file being a round trip.
  - A wheel is listed when one of its tags is among those CPython O(python) on Linux O(machine) accepts,
    for the platform tags O(platforms) (and a local build's C(linux_MACHINE)), as pip matches them.
  - Wheels for other Pythons and architectures of the same play stay on the controller.
options:
  _terms:
    description: The directory of wheels, on the controller.
    type: path
    required: true
  machine:
    description: The host's architecture, as C(platform.machine()) names it (C(x86_64), C(aarch64)).
    type: str
    required: true
  python:
    description: The host's Python version, C(X.Y).
    type: str
    required: true
  platforms:
    description: The manylinux platform tags the wheels were fetched for, without the architecture.
    type: list
    elements: str
    default: []
  pip:
    description: Also the newest pip wheel of the directory's C(pip-X.Y/), for a host whose pip cannot
      install into another Python's environment.
    type: bool
    default: false
  every:
    description: Every wheel at the directory's top, whatever its tags (a directory the user gave).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: The wheels a Debian 12 x86_64 host gets
  ansible.builtin.debug:
    msg: "{{ lookup('pyforkexec.isolation.host_wheels', '/var/cache/wheels', machine='x86_64', python='3.11',
             platforms=['manylinux_2_28', 'manylinux2014'], wantlist=True) }}"
"""

RETURN = r"""
_raw:
  description:
    - Paths relative to the directory, e.g. C(pyroute2-0.9.7-py3-none-any.whl),
      C(pip-3.9/pip-26.0-py3-none-any.whl).
  type: list
  elements: str
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible_collections.pyforkexec.isolation.plugins.plugin_utils import wheel_sources


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        if len(terms) != 1:
            raise AnsibleLookupError("host_wheels: give one directory")
        try:
            return wheel_sources.for_host(
                terms[0],
                self.get_option("machine"),
                self.get_option("python"),
                self.get_option("platforms"),
                self.get_option("pip"),
                self.get_option("every"),
            )
        except (OSError, ValueError) as e:
            raise AnsibleLookupError(f"host_wheels: {terms[0]}: {e}") from e
