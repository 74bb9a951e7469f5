"""``pyforkexec flags``: decode (``0x20020000``) or encode (``CLONE_NEWNS,newpid``) clone flags.

Every value is shown with its flags grouped and explained as in the project's clone-flags notes:
resource sharing, namespace isolation, process/thread control, and advanced flags. The names,
groups and descriptions come from pyforkexec.flags; ``--json`` prints the same for programs.
Without a value, every flag is listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from .. import signames
from ..flags import NOTES_ORDER, CloneFlags, FlagGroup
from .options import HELP, NONE, VERSION, Command, Opt, parse_or_fail

CMD = Command(
    prog="pyforkexec flags",
    usage="[--json] [<value>...]",
    summary="Decode or encode clone(2) flags: numbers (0x20020000) and names (CLONE_NEWNS, newpid),\n"
            "separated by ',' or '|' or given as several arguments, are OR'ed together.",
    options=(Opt("json", "j", NONE, "", "print JSON"), HELP, VERSION),
    permute=True,  # no program follows the values: `flags CLONE_NEWNS,newpid --json`
)

HEADINGS = {
    FlagGroup.SHARING: "Resource sharing (what the child shares with its parent)",
    FlagGroup.NAMESPACE: "Namespace isolation (create a new namespace for the child)",
    FlagGroup.PROCESS_CONTROL: "Process and thread control (how the child is created)",
    FlagGroup.ADVANCED: "Advanced (pidfd, clone3 only)",
}
CSIGNAL = 0xFF


def exit_signal(unknown: int) -> Optional[str]:
    """clone(2) keeps the child's exit signal in the low byte of its flags (SIGCHLD is 0x11)."""
    if unknown and not unknown & ~CSIGNAL:
        return signames.name(unknown)
    return None


# The notes' order within each group, not the order of the bits.
_RANK = {int(f): i for i, f in enumerate(NOTES_ORDER)}


def in_notes_order(value: int) -> list[CloneFlags]:
    return sorted(CloneFlags.split(value), key=lambda f: _RANK[int(f)])


def hex8(n: int) -> str:
    return f"0x{n:08x}"


def flag_info(flag: CloneFlags) -> dict[str, Any]:
    return {"name": flag.name, "value": int(flag), "hex": hex8(int(flag)), "group": flag.group.value,
            "description": flag.description, "ns_file": flag.ns_file}


def as_json(value: Optional[int]) -> dict[str, Any]:
    if value is None:
        return {"flags": [flag_info(f) for f in in_notes_order(sum(CloneFlags))]}
    unknown = CloneFlags.unknown_bits(value)
    return {"value": value, "hex": hex8(value), "names": CloneFlags.describe(value),
            "flags": [flag_info(f) for f in in_notes_order(value)], "unknown_bits": unknown,
            "exit_signal": exit_signal(unknown)}


def as_text(value: Optional[int]) -> str:
    flags = in_notes_order(sum(CloneFlags) if value is None else value)
    lines = []
    if value is not None:
        lines += [f"{hex8(value)} = {CloneFlags.describe(value)}", ""]
    width = max((len(f.name) for f in flags), default=0)
    for group, heading in HEADINGS.items():
        members = [f for f in flags if f.group is group]
        if not members:
            continue
        lines.append(f"{heading}:")
        for f in members:
            ns = f"[{f.ns_file}]" if f.ns_file else ""
            lines.append(f"  {f.name:<{width}}  {hex8(int(f)):<11}  {ns:<8} {f.description}".rstrip())
        lines.append("")
    unknown = CloneFlags.unknown_bits(value or 0)
    if unknown:
        sig = exit_signal(unknown)
        note = f" (in clone(2) the low byte is the exit signal: {sig})" if sig else ""
        lines += [f"Not clone flags: {unknown:#x}{note}", ""]
    return "\n".join(lines).rstrip("\n")


def main(argv: Sequence[str]) -> int:
    parsed = parse_or_fail(CMD, argv)
    value: Optional[int] = None
    if parsed.rest:
        if not all(arg.strip() for arg in parsed.rest):
            CMD.fail("an empty argument: give clone flag names or a number")
        try:
            value = int(CloneFlags.parse(",".join(parsed.rest)))
        except ValueError as e:
            CMD.fail(str(e).replace("CloneFlags.parse: ", ""))
    if parsed.has("json"):
        import json  # only for --json: not on the way of the text output

        print(json.dumps(as_json(value), indent=2))
    else:
        print(as_text(value))
    return 0
