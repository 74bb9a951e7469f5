# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT
"""The role's check of its services before it changes anything on a host, run on the controller.

Reads on stdin {"wheels": DIR, "networks": isolated_service_networks, "services": [PLAN ENTRY...]}
(the plan of the action isolated_service_plan, plugins/plugin_utils/role_plan.py: the arguments of
the service and netns modules for each service) and prints a JSON list of problems, each naming the
network or service and the option. The checks are the modules' own, with the pyforkexec the hosts
will get: their argument specs, the service module's ``check_options``, ``launch_attr`` (pyforkexec's
validation of the launch spec, ``on_host=False``: what only the host knows, the ids of account names
or whether a netns exists there, is left to the module) and ``unit_text``, and the netns model's
``desired`` (the topology).

The newest pyforkexec wheel of DIR (an abi3 wheel for the hosts' architecture) is unpacked and
imported from there; the collection is imported from where this file is. With ``--unpacked CACHE`` the
wheel is unpacked and compiled to bytecode once per content, in CACHE/NAME-SHA (``unpacked``), and
later checks import that bytecode: unpacking and compiling the wheel at every check cost ~0.1 s of
the ~0.5 s a check of 5 services took. Without it, or when CACHE cannot be written, a temporary
directory is used. When this machine cannot import the wheel (wheels of isolated_service_wheel_dir for
another architecture), the exit status is 3 and stderr says so: the modules then check the services on
each host.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import glob
import hashlib
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import types
import zipfile

from packaging.version import Version

# files -> isolated_service -> roles -> isolation -> pyforkexec -> ansible_collections -> the directory
# that holds ansible_collections (not resolving symbolic links: scripts/lib/link-collection makes one)
_COLLECTIONS = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 6))


_NETNS_MESSAGE = re.compile(
    r"^(name|bridges\[(\d+)\]|veths\[0\]\.(\w+)|routes|gateway|sysctls)(\S*): (.*)$", re.S)


def _netns_option(message, bridges):
    """A message of the netns model about the netns module's options (as role_plan.py makes them from
    a service's network and its bridge), about the role's fields instead."""
    match = _NETNS_MESSAGE.match(message)
    if not match:
        return f"network: {message}"
    head, bridge, veth_field, rest, rule = match.groups()
    if bridge is not None:
        return f"isolated_service_networks[{bridges[int(bridge)]}]{rest}: {rule}"
    if head == "name":
        option = "network.netns"
    elif veth_field is not None:
        option = "network." + {"name": "interface"}.get(veth_field, veth_field)
    else:
        option = f"network.{head}"
        if head == "gateway":  # a gateway is checked as the route to it: gateway[0].gateway
            rest = re.sub(r"\.gateway$", "", rest)
    return f"{option}{rest}: {rule}"


def _netns_problems(where, netns, modules, wired=None):
    """What the netns module would refuse in ``netns`` (its arguments), about the role's fields; a
    topology it takes is added to ``wired`` (for the checks across services)."""
    netns_module, validator, deps = modules["netns"], modules["validator"], modules["deps"]
    result = validator(netns_module.ARGSPEC).validate(dict(netns, persist=True))
    if result.error_messages:
        return [f"{where}: network: {message}" for message in result.error_messages]
    try:
        topology = deps.pyforkexec.netns.model.desired(result.validated_parameters)
    except ValueError as e:
        bridges = [b["name"] for b in netns.get("bridges") or []]
        message = _netns_option(str(e), bridges)
        return [message if message.startswith("isolated_service_networks[") else f"{where}: {message}"]
    if wired is not None:
        wired.append(types.SimpleNamespace(name=where, state="present", wiring=netns, topology=topology))
    return []


def _service_problems(where, entry, modules):
    """What the service module would refuse in the entry's arguments."""
    service_module, validator, paths = modules["service"], modules["validator"], modules["paths"]
    args = dict(entry["service"], state=entry["state"])
    if args.get("cgroup") is None and entry.get("cgroup") is not None:
        # limits the plan leaves out where the host lacks their controllers: checked all the same
        args["cgroup"] = entry["cgroup"]
    result = validator(service_module.ARGSPEC, mutually_exclusive=service_module.MUTUALLY_EXCLUSIVE,
                       required_if=service_module.REQUIRED_IF).validate(args)
    if result.error_messages:
        return [f"{where}: {message}" for message in result.error_messages]
    params = result.validated_parameters
    try:
        name = service_module.check_options(params)
        if params["state"] == "absent":  # the module only stops and removes it
            return []
        if params["argv"] is not None:
            service_module.launch_attr(params, name, params["manager"], on_host=False)
        if params["manager"] == "systemd":  # jinja2 imported here, at the first unit
            service_module.unit_text(modules["deps"].jinja2, params, name, "/opt/pyforkexec/bin/python")
    except (modules["isolation"].IsolationError, paths.ServiceError, modules["systemd"].UnitError) as e:
        return [f"{where}: {e}"]
    return []


def problems(networks, services, modules):
    """Every problem of the networks and services, each once, in order."""
    out, wired = [], []
    for network in networks:  # also the bridges no service uses (yet)
        out += _netns_problems(f"isolated_service_networks[{network['name']}]",
                               dict(name="check", bridges=[network]), modules)
    for entry in services:
        where = f"isolated_service_services[{entry['name']}]"
        out += _service_problems(where, entry, modules)
        if entry.get("netns") is not None and entry["state"] != "absent":
            out += _netns_problems(where, entry["netns"], modules, wired)
    # Across services, as the services module checks them (two addresses on a bridge, a bridge
    # described twice): its messages name services[WHERE], here the role's variable itself.
    across = modules["services"]
    for problem in across.addresses_twice_on_a_bridge(wired) + across.bridges_described_differently(wired):
        out.append(re.sub(r"services\[(isolated_service_services\[[^]]*\])\]", r"\1", problem))
    return list(dict.fromkeys(out))


def _for_this_machine(path):
    """Whether a wheel's platform tags (``linux_x86_64``, ``manylinux_2_34_aarch64.manylinux...``)
    name this machine's architecture: the directory holds one wheel per architecture of the hosts."""
    platforms = os.path.basename(path)[: -len(".whl")].split("-")[-1]
    return any(tag.endswith("_" + platform.machine()) for tag in platforms.split("."))


def newest_wheel(directory):
    """pyforkexec's wheel in ``directory`` that pip --find-links would pick on this machine: the
    highest version for its architecture; None when there is only another architecture's."""
    wheels = glob.glob(os.path.join(directory, "pyforkexec-*.whl"))
    if not wheels:
        sys.exit(f"no pyforkexec-*.whl in {directory}")
    ours = [path for path in wheels if _for_this_machine(path)]
    return max(ours, key=lambda path: Version(os.path.basename(path).split("-")[1])) if ours else None


def _unpack(path, directory):
    with zipfile.ZipFile(path) as wheel:
        wheel.extractall(directory)


SCRATCH = ".unpacking-"  # then the pid of the check that unpacks there, "-" and mkdtemp's letters


def _ended(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # (another user's: running)
        return False
    return False


def _sweep(cache):
    """The scratch directories of checks that ended before their rename (killed: no ``finally`` ran),
    each a whole unpacked wheel left in the cache for good; not those of checks still running."""
    for name in os.listdir(cache):
        pid = name[len(SCRATCH):].split("-", 1)[0]
        if name.startswith(SCRATCH) and pid.isdigit() and _ended(int(pid)):
            shutil.rmtree(os.path.join(cache, name), ignore_errors=True)


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@contextlib.contextmanager
def unpacked(path, cache=None):
    """The directory of the wheel at ``path`` unpacked. With ``cache``: CACHE/NAME-SHA, made once per
    content of the wheel (unpacked and compiled in a scratch directory beside it, then renamed into
    place, so that a check running at the same time for another host sees it whole or not at all);
    kept for the next check. Without it, or when the cache cannot be written: a temporary directory,
    removed at the end."""
    if cache is not None:
        name = os.path.basename(path)[: -len(".whl")]
        try:
            final = os.path.join(cache, f"{name}-{_sha256(path)[:16]}")
            if not os.path.isdir(final):
                os.makedirs(cache, exist_ok=True)
                _sweep(cache)
                scratch = tempfile.mkdtemp(prefix=f"{SCRATCH}{os.getpid()}-", dir=cache)
                try:
                    _unpack(path, scratch)
                    compileall.compile_dir(scratch, quiet=2, workers=1)
                    try:
                        os.rename(scratch, final)
                    except OSError:
                        if not os.path.isdir(final):  # not another check's rename: a real failure
                            raise
                finally:
                    shutil.rmtree(scratch, ignore_errors=True)  # gone after the rename; else ours
        except OSError:
            pass  # a cache that cannot be written: the temporary directory below
        else:
            yield final
            return
    with tempfile.TemporaryDirectory(prefix="pyforkexec-check-") as directory:
        _unpack(path, directory)
        yield directory


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unpacked", metavar="CACHE", help="where the wheel is kept unpacked and compiled")
    cache = parser.parse_args().unpacked
    request = json.load(sys.stdin)
    path = newest_wheel(request["wheels"])
    if path is None:
        print(f"no pyforkexec wheel for {platform.machine()} in {request['wheels']}: the services are "
              "checked by the modules on each host, after the virtualenv is installed", file=sys.stderr)
        sys.exit(3)
    with unpacked(path, cache) as directory:
        sys.path[:0] = [directory, _COLLECTIONS]
        from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
        from ansible_collections.pyforkexec.isolation.plugins.module_utils import (
            deps,
            isolation,
            quick_exit,
            service,
            services,
        )
        from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
        from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_systemd as systemd
        from ansible_collections.pyforkexec.isolation.plugins.modules import netns

        quick_exit.skip_final_collection()  # as a module's end
        if deps.pyforkexec is None:
            last = deps.PYFORKEXEC_IMPORT_ERROR.strip().splitlines()[-1]
            print(f"{sys.executable} cannot import pyforkexec from {path} ({last}): the services are checked "
                  "by the modules on each host, after the virtualenv is installed", file=sys.stderr)
            sys.exit(3)
        modules = dict(deps=deps, isolation=isolation, paths=paths, systemd=systemd, service=service,
                       services=services, netns=netns, validator=ArgumentSpecValidator)
        print(json.dumps(problems(request["networks"], request["services"], modules)))


if __name__ == "__main__":
    main()
