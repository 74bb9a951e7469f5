"""The N services each contender deploys, as the variables its playbook reads.

The same program everywhere (the host's python3 serving HTTP on port 8080 of its own address), each
in user, pid, mount, uts, ipc and net namespaces, on a bridge private to the contender, its root read
only, no capabilities, restarted always. Each contender has its own bridge and /24 so that a leftover
of one never answers for another.
"""

from __future__ import annotations

from typing import Any, NamedTuple

PORT = 8080
ROLE_VENV = "/opt/pfb-venv"  # the role's runtime, its own: removing it touches no other user's
# http.server's own HTTPServer asks DNS for its address's name before it listens, which in a network
# namespace that reaches no resolver takes seconds: a TCPServer answers GET without that. SIGTERM and
# SIGINT end it: as PID 1 of its PID namespace it would otherwise ignore SIGTERM (SIGINT would end it
# with a KeyboardInterrupt's traceback). Both contenders stop it with STOP_SIGNAL, the same signal.
SERVER = """
import http.server, signal, socketserver, sys
class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello\\n")
    def log_message(self, *args):
        pass
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
socketserver.TCPServer.allow_reuse_address = True
socketserver.TCPServer((sys.argv[1], int(sys.argv[2])), Hello).serve_forever()
"""
PROGRAM = ["/usr/bin/python3", "-c", SERVER]
# The signal each contender's stop sends (the role's stop_signal, podman's --stop-signal): the same, so
# that a removal compares the same stop. SIGINT, as a stock ``python3 -m http.server`` (converge_role.py)
# needs: it handles SIGINT, not SIGTERM.
STOP_SIGNAL = "SIGINT"
STOP_SIGNAL_NUMBER = 2  # containers.podman's podman_container takes stop_signal as an int


class Contender(NamedTuple):
    name: str  # role, role-exec, podman, netns
    prefix: str  # of every service, network and interface name it makes
    subnet: str  # first three octets of its /24
    uid_base: int  # host uid of service i's root is uid_base + i (podman, netns: no account)
    playbook: str  # playbooks/PLAYBOOK.yml


# 10.89.x: the project's tests take 10.79.1-250 (tests/test_artifacts.py) and may run beside this. The
# results of 2026-12-02 were measured on 10.79.0-2.
ROLE = Contender("role", "pfb-r", "10.89.0", 0, "role")
# The role again, its services with start_check 0: a start counts once the service's process has execed,
# as podman_container's does (podman run -d returns once the container runs), where the role's default
# also watches it stay up for 0.5 s. The same runtime (ROLE_VENV) as ROLE's.
ROLE_EXEC = Contender("role-exec", "pfb-e", "10.89.3", 0, "role")
PODMAN = Contender("podman", "pfb-p", "10.89.1", 301000, "podman")
NETNS = Contender("netns", "pfb-n", "10.89.2", 302000, "netns")
CONTENDERS = (ROLE, ROLE_EXEC, PODMAN, NETNS)
ROLES = (ROLE, ROLE_EXEC)


def address(c: Contender, i: int) -> str:
    return f"{c.subnet}.{10 + i}"


def service_name(c: Contender, i: int) -> str:
    return f"{c.prefix}{i}"


def bridge(c: Contender) -> str:
    return f"{c.prefix}0"


def role_vars(n: int, state: str, c: Contender = ROLE) -> dict[str, Any]:
    """pyforkexec.isolation.isolated_service's public variables for n services of ``c`` (one of ROLES)."""
    return {
        **({"isolated_service_start_check": 0.0} if c is ROLE_EXEC else {}),
        "isolated_service_state": state,
        "isolated_service_cgroup_required": False,  # no limits are asked: nothing to require
        "isolated_service_remove_runtime": False,  # the runtime stays, as podman's package does
        "isolated_service_venv": ROLE_VENV,
        "isolated_service_networks": [{"name": bridge(c), "addresses": [f"{c.subnet}.1/24"]}],
        "isolated_service_services": [
            {
                "name": service_name(c, i),
                "user": service_name(c, i),
                "argv": [*PROGRAM, address(c, i), str(PORT)],
                "readonly_root": True,
                "mounts": [{"type": "proc", "target": "/proc"},
                           {"type": "tmpfs", "target": "/tmp", "size": "1m"}],
                "capabilities": {"keep": []},
                "restart": "always",
                "stop_signal": STOP_SIGNAL,
                "network": {"bridge": bridge(c), "addresses": [f"{address(c, i)}/24"],
                            "gateway": [f"{c.subnet}.1"]},
            }
            for i in range(1, n + 1)
        ],
    }


def podman_vars(n: int, state: str, image: str) -> dict[str, Any]:
    """What playbooks/podman.yml reads: containers.podman's options for n containers."""
    return {
        "bench_state": state,
        "bench_network": {"name": bridge(PODMAN), "subnet": f"{PODMAN.subnet}.0/24",
                          "gateway": f"{PODMAN.subnet}.1"},
        "bench_containers": [
            {"name": service_name(PODMAN, i), "ip": address(PODMAN, i),
             "command": [*PROGRAM, address(PODMAN, i), str(PORT)],
             "uidmap": [f"0:{PODMAN.uid_base + i}:1"], "gidmap": [f"0:{PODMAN.uid_base + i}:1"],
             "stop_signal": STOP_SIGNAL_NUMBER}
            for i in range(1, n + 1)
        ],
        "bench_image": image,
    }


def netns_vars(n: int, state: str) -> dict[str, Any]:
    """What playbooks/netns.yml reads: the namespaces, veths and commands made by hand."""
    return {
        "bench_state": state,
        "bench_bridge": bridge(NETNS),
        "bench_gateway": f"{NETNS.subnet}.1",
        "bench_services": [
            {"name": service_name(NETNS, i), "address": address(NETNS, i), "uid": NETNS.uid_base + i,
             "veth": f"{service_name(NETNS, i)}h", "argv": [*PROGRAM, address(NETNS, i), str(PORT)]}
            for i in range(1, n + 1)
        ],
    }


def contender_vars(c: Contender, n: int, state: str, image: str) -> dict[str, Any]:
    if c in ROLES:
        return role_vars(n, state, c)
    if c is PODMAN:
        return podman_vars(n, state, image)
    return netns_vars(n, state)
