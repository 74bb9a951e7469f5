"""What each namespace declares of the bridges it shares with others: a record per namespace, so that
the converge of one never takes off a bridge what another one declares on it.

A bridge's alias names the namespaces that declare it (model.bridge_alias), not what they declare:
two namespaces that list one bridge with different addresses would otherwise each remove the
other's at every converge (the other's gateway gone until its next run). So each converge records
the addresses and MTU it declares for its bridges in ``DIR/NAME.json`` (under the host lock, written
atomically; on the tmpfs /run, gone at a reboot as the bridges are), and a bridge is given the
addresses of every namespace that declares it (model.bridge_addresses): an address goes once no
namespace on the bridge declares it any more.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Collection, Mapping
from typing import Any, Optional

DIR = "/run/pyforkexec-netns"


def _path(name: str) -> str:
    return os.path.join(DIR, f"{name}.json")


def read(name: str) -> dict[str, dict[str, Any]]:
    """{bridge: {"addresses": [...], "mtu": int or None}} that netns ``name`` recorded; {} for none (a
    record that cannot be read or parsed counts as none: the namespace then constrains nothing)."""
    try:
        with open(_path(name)) as f:
            found = json.load(f)
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def of_bridges(wanted: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The record of the wanted topology (model.desired): the bridges it lists with their addresses
    (one only named by a veth declares none)."""
    return {b: dict(addresses=list(w["addresses"]), mtu=w["mtu"])
            for b, w in sorted(wanted["bridges"].items()) if w["addresses"] is not None}


def others(name: str, bridge: str, declarers: Optional[Collection[str]], alive: Callable[[str], bool],
           records: Optional[Mapping[str, Mapping]] = None) -> list[tuple[str, dict[str, Any]]]:
    """(netns, what it declares) of ``bridge`` for each namespace but ``name`` among its ``declarers``
    that is ``alive`` (one removed without a converge declares nothing any more) and recorded it;
    ``records``: records to read instead of the files (check mode's, as the earlier converges of a
    batch leave them: HostLinks)."""
    out = []
    for other in sorted(set(declarers or ()) - {name, "*"}):
        if not alive(other):
            continue
        record = records[other] if records is not None and other in records else read(other)
        entry = record.get(bridge)
        if isinstance(entry, dict):
            out.append((other, entry))
    return out


def own(name: str, bridge: str, records: Optional[Mapping[str, Mapping]] = None) -> list[str]:
    """The addresses netns ``name`` recorded for ``bridge`` (``records``: as others reads them)."""
    record = records[name] if records is not None and name in records else read(name)
    entry = record.get(bridge)
    addresses = entry.get("addresses") if isinstance(entry, dict) else None
    return [a for a in addresses if isinstance(a, str)] if isinstance(addresses, list) else []


def write(name: str, record: Mapping[str, Any]) -> None:
    """Record what netns ``name`` declares (an empty record removes the file, and the directory with
    the last one: no trace is left once no namespace declares a bridge), atomically: a reader sees
    the old record or the new one."""
    path = _path(name)
    if not record:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        with contextlib.suppress(OSError):  # (others there, or none: ENOTEMPTY, ENOENT)
            os.rmdir(DIR)
        return
    if read(name) == record:
        return
    os.makedirs(DIR, mode=0o755, exist_ok=True)
    tmp = f"{path}.tmp"  # (one writer at a time, under the host lock: one a SIGKILL left is written over)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
