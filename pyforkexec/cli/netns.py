"""``pyforkexec netns up FILE`` and ``pyforkexec netns down NAME``: a named network namespace, its
veths, bridges, addresses, routes and sysctls, brought to the topology of a JSON document (the
options of the Ansible module ``netns``, see netns.options), or removed.

Both run pyforkexec.netns.converge, as the module does: only what differs changes, one line is
printed per action, and a second ``up`` prints nothing. This is what the systemd unit
``pyforkexec-netns@NAME.service`` runs at boot. Exit statuses: 0 done; 1 a usage error or a bad
document (the message names the option); 125 the kernel refused an action, a link is in the way, or
pyroute2 is missing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, NoReturn, Optional

from .. import netns
from .failure import EXIT_SETUP, die, os_error_message
from .options import HELP, NONE, USAGE_EXIT, VERSION, Command, Opt, parse_or_fail

CMD = Command(
    prog="pyforkexec netns",
    usage="[--check] up <file>\n pyforkexec netns [--check] down <name>",
    summary="Create or update a named network namespace (/run/netns/NAME) from a JSON document of the\n"
            "netns module's options (name, loopback, bridges, veths, routes, gateway, sysctls), or\n"
            "remove it with its veths and the bridges made for it. Prints one line per change.",
    options=(
        Opt("check", "n", NONE, "", "print what would change; change nothing"),
        HELP,
        VERSION,
    ),
)


def _converge(verb: str, name: str, options: Optional[dict[str, Any]], check: bool) -> NoReturn:
    try:
        result = netns.converge(name, options, check=check)
    except ImportError as e:
        die(f"netns: {e.name or 'pyroute2'} is needed: install pyroute2 into pyforkexec's virtualenv",
            EXIT_SETUP)
    except netns.ModelError as e:  # a link in the way: the host is not as the document expects
        die(f"netns {name}: {e}", EXIT_SETUP)
    except (netns.ApplyError, OSError, RuntimeError) as e:
        if isinstance(e, PermissionError) and e.filename is not None and os.geteuid() != 0:
            # the host lock's file (/run/pyforkexec-locks/netns.lock), before anything: root's alone
            die(f"netns {name}: 'netns {verb}' needs root, this is uid {os.geteuid()}: {os_error_message(e)}",
                EXIT_SETUP)
        done = "" if not getattr(e, "actions", None) else f" (planned: {', '.join(e.actions)})"
        if getattr(e, "undone", None) is False:  # made by this run, and its undo failed too
            done += f"; what it made could not be undone: run 'netns down {name}'"
        die(f"netns {name}: {e}{done}", EXIT_SETUP)
    for line in result.actions:
        print(line, flush=True)
    raise SystemExit(0)


def main(argv: Sequence[str]) -> NoReturn:
    parsed = parse_or_fail(CMD, argv)
    check = parsed.has("check")
    if len(parsed.rest) != 2 or parsed.rest[0] not in ("up", "down"):
        CMD.fail("expected 'up <file>' or 'down <name>'")
    verb, arg = parsed.rest
    if verb == "down":
        try:
            netns.model.check_name(arg)
        except netns.ModelError as e:
            die(str(e), USAGE_EXIT)
        _converge(verb, arg, None, check)
    try:
        options = netns.read(arg)
        netns.model.desired(options)  # a bad value is bad input (1), not a refusal (125)
    except (netns.OptionsError, netns.ModelError) as e:
        die(f"{arg}: {e}", USAGE_EXIT)
    _converge(verb, options["name"], options, check)
