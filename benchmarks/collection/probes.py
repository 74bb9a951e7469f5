"""What is measured on a running service: whether it answers, its processes, their memory, its restart."""

from __future__ import annotations

import http.client
import json
import os
import select
import signal
import subprocess
import time
from typing import NamedTuple, Optional

import definitions as d


class Processes(NamedTuple):
    service: int  # the service's own process (python3, PID 1 of its PID namespace)
    keeper: list[int]  # what runs beside it for it: the pyforkexec daemon, conmon, unshare


def answers(address: str, timeout: float = 0.2) -> bool:
    conn = http.client.HTTPConnection(address, d.PORT, timeout=timeout)
    try:
        conn.request("GET", "/")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def wait_answers(address: str, timeout: float, poll: float = 0.005) -> Optional[float]:
    """Seconds until ``address`` answers GET /, None if it does not within ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if answers(address):
            return time.monotonic() - start
        time.sleep(poll)
    return None


def diagnose(c: d.Contender, slow: list[int]) -> dict[str, object]:
    """What may say why services were slow to answer after a converge: the host's neighbour table and
    routes on the contender's bridge, and for each slow service of the role its daemon's log."""
    def text(argv: list[str]) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout[-3000:]

    found: dict[str, object] = {
        "neigh": text(["ip", "-s", "neigh", "show", "dev", d.bridge(c)]),
        "bridge_links": text(["ip", "-br", "link", "show", "master", d.bridge(c)]),
        "fdb": text(["bridge", "fdb", "show", "br", d.bridge(c)]),
        "host_route": text(["ip", "route", "get", d.address(c, slow[0])]) if slow else "",
        "slow_services": [d.service_name(c, i) for i in slow],
        # inside each slow service's network namespace (the role's and by hand's are named after it)
        "inside": {d.service_name(c, i): {
            "addr": text(["ip", "-n", d.service_name(c, i), "-br", "addr"]),
            "route": text(["ip", "-n", d.service_name(c, i), "route"]),
            "neigh": text(["ip", "-n", d.service_name(c, i), "neigh"]),
            "listen": text(["ip", "netns", "exec", d.service_name(c, i), "ss", "-ltn"]),
        } for i in slow} if c is not d.PODMAN else {},
    }
    if c in d.ROLES:
        logs = {}
        for i in slow:
            try:
                with open(f"/var/log/pyforkexec/{d.service_name(c, i)}.log", errors="replace") as f:
                    logs[d.service_name(c, i)] = f.read()[-2000:]
            except OSError as e:
                logs[d.service_name(c, i)] = str(e)
        found["logs"] = logs
    return found


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def processes(c: d.Contender, i: int) -> Optional[Processes]:
    """The service's processes, None when it has none running."""
    name = d.service_name(c, i)
    if c is d.ROLE:
        try:
            with open(f"/run/pyforkexec/{name}.pid") as f:
                daemon = int(f.read())
        except (FileNotFoundError, ValueError):
            return None
        kids = _children(daemon)
        return Processes(kids[0], [daemon]) if kids else None
    if c is d.PODMAN:
        out = subprocess.run(["podman", "inspect", "--format", "{{json .State}}", name], capture_output=True,
                             text=True, check=False, env=dict(os.environ, CONTAINERS_CONF=_CONF))
        if out.returncode != 0:
            return None
        state = json.loads(out.stdout)
        return Processes(state["Pid"], [state["ConmonPid"]]) if state["Pid"] else None
    out = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, check=False)
    pids = [int(p) for p in out.stdout.split()]
    service = [p for p in pids if _exe(p) .startswith("/usr/bin/python3")]
    return Processes(service[0], [p for p in pids if p not in service]) if service else None


_CONF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "containers.conf")


def _exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def restart_seconds(c: d.Contender, i: int, timeout: float) -> Optional[float]:
    """SIGKILL the service's process; seconds until it answers again, None if it does not in ``timeout``."""
    procs = processes(c, i)
    if procs is None:
        raise RuntimeError(f"{d.service_name(c, i)} runs no process to kill")
    pidfd = os.pidfd_open(procs.service)
    try:
        start = time.monotonic()
        os.kill(procs.service, signal.SIGKILL)
        select.select([pidfd], [], [], 5)  # gone: its listening socket with it
    finally:
        os.close(pidfd)
    left = timeout - (time.monotonic() - start)
    waited = wait_answers(d.address(c, i), left)
    return None if waited is None else time.monotonic() - start
