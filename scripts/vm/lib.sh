# Shared by scripts/vm/*: sourced, not run. Paths of the image cache and of a run directory, the host
# packages, ssh options. See molecule/README.md for the environment variables.
# shellcheck shell=bash
# shellcheck source=scripts/lib/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/env.sh"

# shellcheck disable=SC2034  # used by the scripts that source this file
PFE_VM_DIR="$PFE_ROOT/scripts/vm"
# Outside the repository: the base image is shared by every checkout and survives `git clean`.
PFE_VM_CACHE=${PFE_VM_CACHE:-/var/cache/pyforkexec-vm}
# The guest: a Debian release (bullseye, bookworm, trixie) for an architecture (amd64, arm64).
PFE_VM_SUITE=${PFE_VM_RELEASE:-bookworm}
PFE_VM_ARCH=${PFE_VM_ARCH:-amd64}
case "$PFE_VM_SUITE" in
    bullseye | bookworm | trixie) ;;
    *) pfe_die "PFE_VM_RELEASE must be bullseye, bookworm or trixie, not '$PFE_VM_SUITE'" ;;
esac
case "$PFE_VM_ARCH" in
    amd64 | arm64) ;;
    *) pfe_die "PFE_VM_ARCH must be amd64 or arm64, not '$PFE_VM_ARCH'" ;;
esac
# What the VM scripts need on the host, on top of scripts/lib/env.sh's list (ssh, ss, python3): for an
# arm64 guest also qemu-system-aarch64, and qemu-user-static to run the arm64 packages' maintainer
# scripts while debootstrap installs them (binfmt_misc).
PFE_VM_HOST_PACKAGES=(qemu-system-x86 qemu-utils debootstrap e2fsprogs)
[[ "$PFE_VM_ARCH" == arm64 ]] && PFE_VM_HOST_PACKAGES+=(qemu-system-arm qemu-user-static)

# Both lists: scripts/vm/* also run on their own, without scripts/test's pfe_setup.
# Lets this process and what it starts run on every CPU the machine has online (the kernel keeps within
# the cgroup's cpuset). An ansible worker under mitogen, molecule's strategy here, is pinned to one CPU
# on a controller with 2 or 3 (mitogen's affinity policy), and what it runs inherits the pin: the
# fleet's four emulated guests then shared one CPU of two (the other idle, CPU pressure 94%), booted in
# 250-380 s or not at all (journald failing its start timeout), and timed out in converge.
pfe_vm_unpin() {
    taskset -a -p -c "$(cat /sys/devices/system/cpu/online)" "$$" >/dev/null
}

pfe_vm_ensure_host_packages() {
    # shellcheck disable=SC2034  # read by pfe_ensure_apt_packages (dynamic scope)
    local PFE_APT_PACKAGES=("${PFE_APT_PACKAGES[@]}" "${PFE_VM_HOST_PACKAGES[@]}")
    pfe_ensure_apt_packages
}

# The host runs the guest architecture's programs (a foreign debootstrap's second stage, the initramfs
# build in the chroot) through qemu-user-static, registered with binfmt_misc as systemd-binfmt would
# (machines without systemd as PID 1 have nobody else to do it). The F flag opens the interpreter
# now, so that it also works inside the chroot.
pfe_vm_ensure_binfmt() {
    local machine
    case "$PFE_VM_ARCH" in
        arm64) machine=aarch64 ;;
        *) return 0 ;;
    esac
    [[ "$(uname -m)" == "$machine" ]] && return 0
    local dir=/proc/sys/fs/binfmt_misc
    mountpoint -q "$dir" || mount -t binfmt_misc binfmt_misc "$dir"
    [[ -e "$dir/qemu-$machine" ]] && return 0
    local conf=/usr/lib/binfmt.d/qemu-$machine.conf
    [[ -f "$conf" ]] || pfe_die "$conf not found (qemu-user-static)"
    tr -d '\n' <"$conf" >"$dir/register"
    pfe_log "binfmt_misc: registered $conf"
}

# The guest's qemu-system binary, machine and console for an image's architecture.
pfe_vm_qemu_for() {
    case "$1" in
        amd64) printf '%s\n' qemu-system-x86_64 q35 ttyS0 ;;
        arm64) printf '%s\n' qemu-system-aarch64 virt ttyAMA0 ;;
        *) pfe_die "no qemu for architecture '$1'" ;;
    esac
}

# The first URI of the Debian archive configured for apt on the host (deb822 or one-line format), so that
# the guest is built from the same mirror (the only network these machines have may be that mirror).
pfe_vm_mirror() {
    [[ -n "${PFE_VM_MIRROR:-}" ]] && { echo "$PFE_VM_MIRROR"; return; }
    local uri
    uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    [[ -n "$uri" ]] || uri=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) {print $i; exit}}' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

# ssh options for a throwaway guest on a loopback port: no host key checks, the image's own key only.
pfe_vm_ssh_opts() {
    local key=$1 port=$2
    printf '%s\n' -i "$key" -p "$port" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=10 -o ServerAliveInterval=15
}

# Reads KEY=value lines of RUN_DIR/vm.env (written by `boot`) into PFE_VM_* variables.
pfe_vm_load_run() {
    local run_dir=$1 key value
    [[ -f "$run_dir/vm.env" ]] || pfe_die "$run_dir/vm.env not found: was the VM booted with scripts/vm/boot $run_dir?"
    while IFS='=' read -r key value; do
        case "$key" in
            PFE_VM_PORT | PFE_VM_KEY | PFE_VM_IMAGE) printf -v "$key" '%s' "$value" ;;
            *) ;;
        esac
    done <"$run_dir/vm.env"
}

# qemu's -drive argument for RUN_DIR's overlay; also how pfe_vm_qemu_pid recognises that qemu.
pfe_vm_drive() { echo "file=$1/disk.qcow2,if=none,id=disk0,format=qcow2,cache=unsafe"; }

# The pid in PID_FILE if that process has ARG among its arguments (a stale pid file naming a recycled
# pid matches nothing).
pfe_vm_pid_from() {
    local pid_file=$1 arg=$2 pid
    pid=$(cat "$pid_file" 2>/dev/null) || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline" | grep -qxF -- "$arg" || return 1
    echo "$pid"
}

# The qemu, and the scripts/vm/run-qemu loop, of the guest of RUN_DIR.
pfe_vm_qemu_pid() { pfe_vm_pid_from "$1/qemu.pid" "$(pfe_vm_drive "$1")"; }
pfe_vm_supervisor_pid() { pfe_vm_pid_from "$1/run-qemu.pid" "$1"; }
