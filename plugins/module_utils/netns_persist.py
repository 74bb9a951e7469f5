# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""The netns module's ``persist``: the namespace's options in /etc/pyforkexec/netns/NAME.json, and the
systemd template unit whose instance ``pyforkexec-netns@NAME.service`` runs
``python -m pyforkexec netns up`` on that file at boot, before the network and the services that join
the namespace (their units want and follow it, see service_systemd).

systemctl goes through ``run(argv) -> (rc, out, err)`` (AnsibleModule.run_command), and whether PID 1
is systemd is a parameter, so that the unit tests drive this with a fake ``run`` where PID 1 is not
systemd (the molecule VM scenario runs it for real).
"""

from __future__ import annotations

import errno
import os
import re
import sys

from ansible_collections.pyforkexec.isolation.plugins.module_utils import deps
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
from ansible_collections.pyforkexec.isolation.plugins.module_utils.service_systemd import (
    Systemctl,
    systemd_quote,
)

# DefaultDependencies=no: the topology is made before the network (network-pre.target, which units
# that must run first both want and precede), after the kernel modules and sysctl.d settings (a new
# namespace and its links take net.*.default values from the host), with the configuration and the
# interpreter's file systems mounted. No ExecStop: stopping the unit leaves the namespace to the
# services still in it; state=absent removes it. ConditionPathExists: an instance without options
# (a namespace made another way, which a service unit still Wants=) is skipped, not failed.
TEMPLATE = """\
# Managed by Ansible (pyforkexec.isolation.netns, persist: true): change the task, not this file.
# pyforkexec-netns@NAME.service brings back /run/netns/NAME with its veths, bridges, addresses,
# routes and sysctls at boot, from {config_dir}/NAME.json.
[Unit]
Description=pyforkexec network namespace %i
DefaultDependencies=no
ConditionPathExists={config_dir}/%i.json
RequiresMountsFor={mounts}
Wants=network-pre.target
After=systemd-modules-load.service systemd-sysctl.service
Before=network-pre.target shutdown.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={exec_start} {config_dir}/%i.json

[Install]
WantedBy=multi-user.target
"""


def template_unit(python=None):
    """The template unit's text; ``python``: the interpreter that has pyforkexec (the module's)."""
    python = python or sys.executable
    mounts = [paths.NETNS_CONFIG_DIR]
    if not re.search(r"\s", python):  # RequiresMountsFor= is a blank-separated list
        mounts.append(os.path.dirname(python))
    exec_start = " ".join(systemd_quote(w) for w in (python, "-m", "pyforkexec", "netns", "up"))
    return TEMPLATE.format(config_dir=paths.NETNS_CONFIG_DIR, mounts=" ".join(mounts), exec_start=exec_start)


class Persistence:
    """The boot-time restoration of netns ``name``: files through ``files`` (a files.Files, whose
    actions and diff are the module's), systemctl through ``run``."""

    def __init__(self, files, name, run, booted=None, python=None):
        self.files = files
        self.name = name
        self.booted = paths.systemd_booted() if booted is None else booted
        self.systemctl = Systemctl(run, unit_name=paths.netns_unit_name)
        self.python = python

    @property
    def check_mode(self):
        return self.files.module.check_mode

    def _do(self, verb):
        self.files.actions.append(f"{verb} {paths.netns_unit_name(self.name)}")
        if not self.check_mode:
            self.systemctl.action(verb, self.name)

    def _daemon_reload(self):
        self.files.actions.append("daemon-reload")
        if not self.check_mode:
            self.systemctl.daemon_reload()

    def present(self, options_text):
        """Write the options; with systemd, install the template unit and enable and start the
        instance (started: it runs ``netns up`` now, which finds nothing to do after the module, so
        that a unit that cannot work fails this task rather than the next boot; RemainAfterExit then
        keeps it active, and a service's Wants= does not run it again)."""
        self.files.sync(paths.netns_config_path(self.name), options_text, 0o644)
        if not self.booted:
            return
        if self.files.sync(paths.netns_template_path(), template_unit(self.python), 0o644):
            self._daemon_reload()
        if not self.systemctl.is_enabled(self.name):
            self._do("enable")
        if not self.systemctl.is_active(self.name):
            self._do("start")

    def absent(self):
        """Disable the instance and remove the options; the template unit and the directory too once
        no namespace is persisted any more."""
        if self.booted:
            if self.systemctl.is_active(self.name):
                self._do("stop")
            if self.systemctl.is_enabled(self.name):
                self._do("disable")
        config = paths.netns_config_path(self.name)
        self.files.remove(config)
        left = self.left(without=os.path.basename(config))
        if any(n.endswith(".json") for n in left):
            return  # other namespaces are persisted
        if self.files.remove(paths.netns_template_path()) and self.booted:
            self._daemon_reload()
        if os.path.isdir(paths.NETNS_CONFIG_DIR) and not left and self._remove_dir():
            self.files.actions.append(f"remove {paths.NETNS_CONFIG_DIR}/")

    def _remove_dir(self):
        """rmdir the options directory (in check mode: whether it would). Whatever a writer outside this
        host's converge lock put there since it was listed (an administrator's file, a namespace persisted
        by hand) keeps it, as does one that removed it first: neither is this run's to fail on."""
        if self.check_mode:
            return True
        try:
            os.rmdir(paths.NETNS_CONFIG_DIR)
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                return False
            raise
        return True

    @staticmethod
    def left(without):
        """The names in the options directory but ``without`` (removed, or to be in check mode)."""
        try:
            return sorted(n for n in os.listdir(paths.NETNS_CONFIG_DIR) if n != without)
        except FileNotFoundError:
            return []

    def result(self):
        config = paths.netns_config_path(self.name)
        return dict(
            config=config,
            unit=paths.netns_template_path() if self.booted else None,
            instance=paths.netns_unit_name(self.name) if self.booted else None,
        )


def persistence(files, params, present, run):
    """The persisted configuration of the namespace of the netns module's ``params`` brought in line
    with their ``persist`` (``present`` false: removed); its result. Shared by the netns and services
    modules."""
    persisted = Persistence(files, params["name"], run)
    out = persisted.result()
    if present and params["persist"]:
        persisted.present(deps.pyforkexec.netns.dump(params))
        out["enabled"] = True
    elif not present or params["persist"] is False:
        persisted.absent()
        out["enabled"] = False
    else:
        out["enabled"] = os.path.exists(out["config"])
    return out
