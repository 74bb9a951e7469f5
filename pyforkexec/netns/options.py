"""The options of a named network namespace, as a JSON document: ``pyforkexec netns up FILE``.

They are the Ansible module ``netns``'s options without ``state`` and ``persist`` (the module writes
them to /etc/pyforkexec/netns/NAME.json with ``persist: true``, and a systemd unit brings the topology
back at boot from that file). The dataclasses below are their types; documents are loaded with the
spec loader, so that errors name the option: ``veths[0].mtu: expected an integer, got the string "x"``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

from .._text import OneLineError
from ..spec.document import SpecError, check_document, json_type, load_dataclass, read_document


class OptionsError(OneLineError, ValueError):
    """A document that does not describe a namespace; ``str()`` starts with the option."""


@dataclass
class Bridge:
    """A host bridge, created if missing."""

    name: str
    addresses: Sequence[str] = ()
    mtu: Optional[int] = None


@dataclass
class Veth:
    """A veth pair: ``name`` inside the namespace, ``peer`` on the host."""

    name: str
    peer: str
    bridge: Optional[str] = None
    mtu: Optional[int] = None
    mac: Optional[str] = None
    peer_mac: Optional[str] = None
    addresses: Sequence[str] = ()
    peer_addresses: Sequence[str] = ()


@dataclass
class Route:
    """A route inside the namespace."""

    dst: str
    gateway: Optional[str] = None
    dev: Optional[str] = None
    metric: Optional[int] = None


@dataclass
class Options:
    """A named network namespace and its links, addresses, routes and sysctls."""

    name: str
    loopback: bool = True
    bridges: Sequence[Bridge] = ()
    veths: Sequence[Veth] = ()
    routes: Sequence[Route] = ()
    gateway: Sequence[str] = ()
    sysctls: Mapping[str, Union[str, int, float, bool]] = dataclasses.field(default_factory=dict)


# null is "not given" in these documents (the module's parameters, as persisted, hold every option),
# unlike in a process spec (spec.document.NULL_RULE): read by load_dataclass.
for _cls in (Bridge, Veth, Route, Options):
    _cls.null_is_unset = True  # type: ignore[attr-defined]


def _plain(value: Any) -> Any:
    """Tuples as lists, dataclasses as dicts: the shape of the module's parameters."""
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def load(doc: object) -> dict[str, Any]:
    """The options of a parsed document, every option present (defaults filled in), as plain data.

    Raises OptionsError naming the option (an unknown one, a wrong type, a missing ``name``).
    """
    if not isinstance(doc, dict):
        raise OptionsError(f"the document must be an object, got {json_type(doc)}")
    try:
        check_document(doc)
        options = load_dataclass(Options, doc, "")
    except SpecError as e:
        raise OptionsError(str(e)[len("spec: "):]) from None
    return _plain(options)


def read(path: str) -> dict[str, Any]:
    """load() of a JSON file, read and parsed within the limits of every document (spec.document);
    OptionsError also for a file that cannot be read or parsed."""
    try:
        doc = read_document(path)
    except SpecError as e:
        raise OptionsError(str(e)[len("spec: "):]) from None
    return load(doc)


def dump(options: Mapping[str, Any]) -> str:
    """The document ``read`` loads back: the options (other keys, such as the module's ``state``, left
    out; defaults filled in), sorted, indented. What the netns module writes with ``persist: true``."""
    names = {f.name for f in dataclasses.fields(Options)}
    return json.dumps(load({k: v for k, v in options.items() if k in names}), indent=2, sort_keys=True) + "\n"
