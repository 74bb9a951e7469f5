#!/usr/bin/env bash
# What the benchmark needs besides the project's .venv (scripts/test makes it): podman 4.3 and runc
# (crun refuses this host's hybrid cgroups), iptables (netavark's firewall), bubblewrap (cold start), from
# Debian; containers.podman and community.general taken from the `ansible` package on PyPI (pip
# download, no install: Galaxy is not reachable here) into .venv/bench-collections; matplotlib (the
# plots) into .venv.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dest="$root/.venv/bench-collections"
export DEBIAN_FRONTEND=noninteractive
missing=()
for pkg in podman runc iptables bubblewrap netavark aardvark-dns uidmap; do
    dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -qx installed || missing+=("$pkg")
done
if ((${#missing[@]})); then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [[ ! -d "$dest/ansible_collections/containers/podman" || ! -d "$dest/ansible_collections/community/general" ]]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    "$root/.venv/bin/pip" download --quiet --no-deps -d "$tmp" 'ansible>=12,<13'
    "$root/.venv/bin/python" - "$tmp"/ansible-*.whl "$dest" <<'PY'
import sys, zipfile
wanted = ("ansible_collections/containers/podman/", "ansible_collections/community/general/")
with zipfile.ZipFile(sys.argv[1]) as wheel:
    wheel.extractall(sys.argv[2], [n for n in wheel.namelist() if n.startswith(wanted)])
PY
fi
"$root/.venv/bin/python" -c 'import matplotlib' 2>/dev/null || "$root/.venv/bin/pip" install --quiet matplotlib
"$root/scripts/lib/link-collection" "$root/.venv/collections" >/dev/null
echo "$dest:$root/.venv/collections"
