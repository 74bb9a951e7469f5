"""What podman 4.3.1 leaves behind when a container with a uid map on a bridge network failed to restart
after a crash (it stays "Created") and is then removed: its network namespace (netns-UUID) with the
veth in it, the bridge with the network's address, and netavark's iptables rules for the subnet. The
next `podman network create` of that subnet then fails ("subnet ... is already used on the host").
Removed here, untimed, and reported.
"""

from __future__ import annotations

import subprocess


def _out(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout


def remove(subnet: str) -> list[str]:
    """Remove the leftovers of podman networks on ``subnet`` (e.g. 10.79.1); what was removed."""
    removed = []
    for line in _out("ip", "netns").splitlines():
        ns = line.split()[0] if line.strip() else ""
        if ns.startswith("netns-") and f" {subnet}." in _out("ip", "-n", ns, "-br", "addr"):
            subprocess.run(["ip", "netns", "delete", ns], check=False)
            removed.append(f"netns {ns}")
    for line in _out("ip", "-br", "addr").splitlines():
        if f" {subnet}.1/24" in line:
            link = line.split()[0]
            subprocess.run(["ip", "link", "delete", link], check=False)
            removed.append(f"link {link}")
    for table in ("filter", "nat"):
        chains = set()
        for rule in _out("iptables", "-t", table, "-S").splitlines():
            if rule.startswith("-A ") and f"{subnet}.0/24" in rule:
                subprocess.run(["iptables", "-t", table, "-D", *rule.split()[1:]], check=False)
                removed.append(f"iptables -t {table} {rule}")
                chains.update(w for w in rule.split() if w.startswith("NETAVARK-") and len(w) > 20)
        for chain in chains:  # the network's own chain (NETAVARK-<hash>), once nothing jumps to it
            subprocess.run(["iptables", "-t", table, "-F", chain], check=False)
            subprocess.run(["iptables", "-t", table, "-X", chain], check=False)
            removed.append(f"iptables -t {table} -X {chain}")
    return removed
