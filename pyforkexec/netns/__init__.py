"""Named network namespaces (``/run/netns/NAME``, as ``ip netns add`` makes them) with their veths,
bridges, addresses, routes and sysctls, converged to a declared topology.

One function, ``converge``, is what the Ansible module ``pyforkexec.isolation.netns`` and the command
``pyforkexec netns up|down`` both run: it reads what the kernel has, plans the actions that differ
(model.py), and carries them out (kernel.py, with pyroute2: the ``net`` extra, imported only
when a topology is read). Options are those of options.py (a JSON document for the command).
``batch`` lets several converges of one host (the services module's) share the host lock and one read
of the host's links.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Collection, Iterator, Mapping
from typing import Any, NamedTuple, Optional, Union

from .. import host_lock, nsinfo
from .._signals import ending_blocked, held
from . import declared, kernel, model
from .kernel import NETNS_DIR, ApplyError, netns_path
from .model import ModelError
from .options import OptionsError, dump, load, read

__all__ = [
    "NETNS_DIR",
    "ApplyError",
    "Converged",
    "ModelError",
    "OptionsError",
    "batch",
    "converge",
    "dump",
    "load",
    "netns_path",
    "read",
]


class Converged(NamedTuple):
    """What ``converge`` did (or, with ``check``, would do)."""

    actions: list[str]  # one line per action, in order ("create_netns web", "add_addr ns eth0 ...")
    before: dict[str, Any]  # the topology before, as a diff shows it ({"netns": None} when absent)
    after: dict[str, Any]  # the topology after (simulated with ``check``)
    netns: dict[str, Any]  # {"name", "path", "inode"}; inode None when the namespace does not exist
    # Whether an action changed the namespace itself (its links, addresses, routes or sysctls, or made
    # or removed it), not only the host's side (a bridge, the host end of a veth): model.changes_inside.
    rewired: bool = False


def converge(name: str, options: Optional[Mapping[str, Any]], check: bool = False) -> Converged:
    """Bring netns ``name`` to ``options`` (type-checked as options.load returns them, or as the
    module's argument spec does; other keys are ignored), or remove it when ``options`` is None: its
    veths, the bridges made for it that no other port uses, then the namespace.

    Only what differs is changed. ``check``: plan and simulate, change nothing. Raises ModelError
    (an option that is no topology, or a link in the way) before changing anything, and ApplyError
    (with ``.actions``, the planned lines) at the first action the kernel refuses.
    """
    model.check_name(name)
    wanted = None if options is None else model.desired(dict(options, name=name))
    host = _BATCH.get()
    if host is not None:  # the batch holds the lock
        return _converge_locked(name, wanted, check, host)
    with host_lock.host_lock("netns"):
        return _converge_locked(name, wanted, check, kernel.HostLinks())


@contextlib.contextmanager
def batch(keep_bridges: Union[Collection[str], Mapping[str, Collection[str]]] = (),
          keep_mtus: Optional[Mapping[str, int]] = None) -> Iterator[None]:
    """Converges run inside (in this thread) share one hold of the host lock and one read of the
    host's links, read again only after one of them changed something: N namespaces of one host
    converged without N dumps of every host link. What another process changes meanwhile waits for
    the lock, as it would between single converges. Nested, the outer batch stands.

    ``keep_bridges``: the bridges that namespaces of the run want. No converge of the batch removes
    one of them for having no port left: another would make it again a moment later (a service moved
    onto the bridge of one removed, in one run). Given as {bridge: addresses}, no converge of the batch
    takes off a bridge an address that one of them declares on it either (the gateway a removed
    service's bridge keeps for the service that takes its place).
    ``keep_mtus``: {bridge: MTU} that namespaces of the run declare: no converge of the batch lets one
    of them follow its ports to another MTU (a port that set it leaving before its declarer's converge).

    Hold nothing inside that waits for another converge of this host, such as a ``netns up`` that a
    systemd unit runs: that one waits for the lock the batch holds."""
    if _BATCH.get() is not None:
        yield
        return
    with host_lock.host_lock("netns"):
        token = _BATCH.set(kernel.HostLinks(keep_bridges, keep_mtus))
        try:
            yield
        finally:
            _BATCH.reset(token)


# Namespaces share host links (their bridge and its addresses): systemd starts their boot units at
# once, and two that both see the bridge missing would both create it. One converge at a time per host.
LOCK_PATH = host_lock.path("netns")
_BATCH: contextvars.ContextVar[Optional[kernel.HostLinks]] = contextvars.ContextVar("pyforkexec_netns_batch",
                                                                                   default=None)


def _converge_locked(name: str, wanted: Optional[dict], check: bool, host: kernel.HostLinks) -> Converged:
    observed = kernel.observe(name, wanted, host, foreseen=check)
    if wanted is None:
        actions = model.plan_absent(observed, name, host.keep, mtus=host.mtus)
    else:
        actions = model.plan_present(observed, wanted, host.keep, host.mtus)
    record = {} if wanted is None else declared.of_bridges(wanted)
    if check:
        actions = host.foresee(actions, name)  # as after the batch's earlier converges (its HostLinks)
        host.foresee_record(name, record)
    lines = [model.describe(a) for a in actions]
    if actions and not check:
        # A Ctrl-C (or a SIGTERM: the ending signals) during a failing apply still lets the undo run,
        # then is raised (or ends the process).
        with held(), ending_blocked():
            try:
                acted_on = _apply(name, actions, lines, host, observed.get("identity"))
                final = _observe_again(name, wanted, host, acted_on, lines)
                if wanted is not None:
                    final = _settle(name, wanted, final, actions, lines, host)
            except (ApplyError, ModelError, OSError) as e:
                if observed["exists"] or wanted is None:
                    raise
                # Made by this converge: nothing of it is left half-made (nor left not as planned).
                if not isinstance(e, ApplyError):
                    error = ApplyError(f"reading the namespace back: {e}")
                    error.actions, error.done = lines, len(actions)
                    e = error
                e.undone = _undo(name, host, {a[1] for a in actions if a[0] == "create_bridge"})
                raise e from None
    elif wanted is not None:
        final = model.simulate(observed, wanted, actions, host.mtus) if actions else observed
    else:
        final = dict(observed, exists=False)
    if not check:
        _record(name, record, lines)
    path = netns_path(name)
    info = dict(name=name, path=path, inode=nsinfo.inode(path) if final["exists"] else None)
    rewired = any(map(model.changes_inside, actions))
    return Converged(lines, model.view(observed), model.view(final), info, rewired)


def _record(name: str, record: dict, lines: list[str]) -> None:
    """Record what netns ``name`` now declares of its bridges (declared.py); an ApplyError when that
    cannot be written (the converge is done: only the record is missing)."""
    try:
        declared.write(name, record)
    except OSError as e:
        error = ApplyError(f"recording what the namespace declares of its bridges in {declared.DIR}: {e}")
        error.actions, error.done = lines, len(lines)
        raise error from None


def _undo(name: str, host: kernel.HostLinks, made: Collection[str] = ()) -> bool:
    """Remove namespace ``name``, made by a converge the kernel stopped halfway, with its veths and the
    bridges it made (``made``: also those it had not given a port yet) that no other port uses (as
    state absent): whether that went through."""
    try:
        observed = kernel.observe(name, {"bridges": dict.fromkeys(made)}, host)
        _apply(name, model.plan_absent(observed, name, host.keep, made, host.mtus), [], host,
               observed.get("identity"))
        # plan_absent leaves what is not ours (a link it cannot tell for its own): not undone then
        return not kernel.observe(name, None, host)["exists"]
    except (ApplyError, ModelError, OSError):
        return False


def _apply(name: str, actions: list, lines: list[str], host: kernel.HostLinks,
           expected: Optional[tuple] = None) -> Optional[tuple]:
    """kernel.apply: the identity of the namespace acted on (None: none, or removed)."""
    host.forget()  # also when an action fails halfway
    try:
        return kernel.apply(name, actions, expected)
    except ApplyError as e:
        e.actions = lines
        raise


def _observe_again(name: str, wanted: Optional[dict], host: kernel.HostLinks, acted_on: Optional[tuple],
                   lines: list[str]) -> dict:
    """kernel.observe once the plan is carried out, of the namespace it acted on (``acted_on``, its
    identity): another one under the name by then (made again meanwhile) is an ApplyError, not a
    topology read back from a stranger's namespace as this converge's."""
    final = kernel.observe(name, wanted, host)
    if acted_on is not None and final.get("identity") != acted_on:
        error = ApplyError(f"{netns_path(name)} is another namespace than the one this converge acted on "
                           "(made again under the name meanwhile)")
        error.actions, error.done = lines, len(lines)
        raise error
    return final


def _settle(name: str, wanted: dict, final: dict, actions: list, lines: list[str],
            host: kernel.HostLinks) -> dict:
    """The topology once it is ``wanted``. The plan foresees what the kernel does along with each
    action (model.plan_present), so there is nothing left to do; should the kernel still have
    dropped something, it is done once more (and added to ``actions`` and ``lines``), and a
    topology that then still differs is an ApplyError rather than a success that the next run would
    undo."""
    rest = model.plan_present(final, wanted, host.keep, host.mtus)
    if not rest:
        return final
    actions += rest
    lines += [model.describe(a) for a in rest]
    acted_on = _apply(name, rest, lines, host, final.get("identity"))
    final = _observe_again(name, wanted, host, acted_on, lines)
    left = [model.describe(a) for a in model.plan_present(final, wanted, host.keep, host.mtus)]
    if left:
        error = ApplyError(f"the kernel does not keep the topology: still to do after a second pass: "
                           f"{', '.join(left)}")
        error.actions = lines
        raise error
    return final
