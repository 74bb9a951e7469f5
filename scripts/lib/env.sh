# Shared set-up for scripts/*: sourced, not run. Brings a fresh Debian 12 machine (as root) to a
# working checkout: the apt packages below, .venv built with /usr/bin/python3, and an editable
# install of pyforkexec with its dev extras (rebuilt only when the build inputs change).
# shellcheck shell=bash

set -euo pipefail

PFE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PFE_VENV="$PFE_ROOT/.venv"
PFE_BASE_PYTHON=/usr/bin/python3
# Everything the build, the tests and the demo need from Debian, in one place: what a minimal Debian 12
# (debootstrap --variant=minbase, python3 and git) lacks. openssh-client: ansible-test integration
# needs ssh-keygen even with --local.
PFE_APT_PACKAGES=(python3-venv python3-pip python3-dev gcc libc6-dev iproute2 util-linux procps shellcheck openssh-client)

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 DEBIAN_FRONTEND=noninteractive

pfe_log() { printf '==> %s\n' "$*" >&2; }
pfe_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

pkg_status() { dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null; }

pfe_ensure_apt_packages() {
    command -v dpkg-query >/dev/null || { pfe_log "not a Debian system: skipping the apt packages check"; return 0; }
    local pkg missing=() native
    native=$(dpkg --print-architecture)
    for pkg in "${PFE_APT_PACKAGES[@]}"; do
        # With a foreign architecture added (scripts/build-artifacts), a Multi-Arch: same package may be
        # installed for it only: ask for the native one, unless the package is Architecture: all.
        if [[ "$pkg" != *:* ]] && [[ -n "$(pkg_status "$pkg:$native")" ]]; then pkg="$pkg:$native"; fi
        [[ "$(pkg_status "$pkg")" == installed ]] || missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    [[ $EUID -eq 0 ]] || pfe_die "missing packages ${missing[*]}: run as root, or: sudo apt-get install ${missing[*]}"
    pfe_log "installing ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Lets apt install packages of another architecture (multiarch), e.g. a cross build's libpython3-dev:arm64.
pfe_ensure_foreign_arch() {
    command -v dpkg >/dev/null || pfe_die "a foreign architecture ($1) needs dpkg (Debian)"
    [[ "$(dpkg --print-architecture)" == "$1" ]] && return 0
    dpkg --print-foreign-architectures | grep -qx "$1" && return 0
    [[ $EUID -eq 0 ]] || pfe_die "run as root, or: sudo dpkg --add-architecture $1 && sudo apt-get update"
    pfe_log "dpkg --add-architecture $1"
    dpkg --add-architecture "$1"
    apt-get update -qq
}

# What building pyforkexec's wheel for MACHINE (x86_64, aarch64) needs on this machine: nothing more for
# its own architecture; for another, Debian's cross compiler and that architecture's Python headers
# (multiarch), the packages setup.py's PYFORKEXEC_TARGET uses. Appends them to PFE_APT_PACKAGES (for
# pfe_setup, or call pfe_ensure_apt_packages).
pfe_want_cross_toolchain() {
    local machine=$1 arch
    [[ "$machine" == "$(uname -m)" ]] && return 0
    case "$machine" in
        x86_64) arch=amd64 ;;
        aarch64) arch=arm64 ;;
        *) pfe_die "no cross toolchain known for '$machine' (x86_64, aarch64)" ;;
    esac
    pfe_ensure_foreign_arch "$arch"
    PFE_APT_PACKAGES+=("gcc-$machine-linux-gnu" "libpython3-dev:$arch")
}

# A hash of everything that changes what `pip install -e` builds (galaxy.yml: the version).
pfe_build_hash() {
    (cd "$PFE_ROOT" && sha256sum pyproject.toml setup.py galaxy.yml pyforkexec/*.c pyforkexec/*/*.c 2>/dev/null; "$PFE_VENV/bin/python" -VV) \
        | sha256sum | cut -d' ' -f1
}

# The editable install puts each extension next to its source, and pyforkexec-waiter (an executable,
# not an extension: setup.py's WAITER) beside service/waiter.c; a clean tree has none of them.
pfe_extensions_built() {
    local src
    for src in "$PFE_ROOT"/pyforkexec/*.c "$PFE_ROOT"/pyforkexec/*/*.c; do
        [[ -e "$src" ]] || continue
        if [[ "$src" == */service/waiter.c ]]; then
            [[ -x "${src%/*}/pyforkexec-waiter" ]] || return 1
        else
            compgen -G "${src%.c}*.so" >/dev/null || return 1
        fi
    done
}

pfe_ensure_venv() {
    if ! "$PFE_VENV/bin/python" -c '' 2>/dev/null; then
        pfe_log "creating $PFE_VENV with $PFE_BASE_PYTHON"
        rm -rf "$PFE_VENV"
        "$PFE_BASE_PYTHON" -m venv "$PFE_VENV"
    fi
    local stamp="$PFE_VENV/.pyforkexec-build.sha256" hash
    hash=$(pfe_build_hash)
    if [[ "$(cat "$stamp" 2>/dev/null)" != "$hash" ]] || ! pfe_extensions_built; then
        pfe_log "pip install -e '.[dev]'"
        rm -f "$stamp"
        (cd "$PFE_ROOT" && "$PFE_VENV/bin/pip" install -q -e '.[dev]')
        echo "$hash" >"$stamp"
    fi
}

pfe_setup() {
    # Serialise concurrent runs of the scripts on this checkout (locking this very file), and let go
    # before the real work so that the processes it starts do not inherit the lock.
    exec {lock_fd}<"${BASH_SOURCE[0]}"
    flock "$lock_fd"
    pfe_ensure_apt_packages
    pfe_ensure_venv
    flock -u "$lock_fd"
    exec {lock_fd}<&-
    export PATH="$PFE_VENV/bin:$PATH"
    cd "$PFE_ROOT"
}
