# The molecule scenarios, stage "molecule" of scripts/test, and the library's suite inside guests,
# stage "guests" (see molecule/README.md).
# PFE_MOLECULE_SCENARIOS selects scenarios: `default` (this machine), `vm` (one Debian 12 x86_64 guest
# and the namespace hosts), `vm:RELEASE-ARCH` (the same with another guest: vm:bullseye-amd64,
# vm:trixie-amd64, vm:bookworm-arm64), `fleet` (every guest at once). By default "default vm", plus under
# CI one other guest in rotation (pfe_rotating_guest). PFE_FLEET_HOSTS (platform names of
# molecule/fleet, e.g. "pfe-bookworm pfe-trixie pfe-ns1 pfe-ns2"): a reduced fleet of only those.
# PFE_VM_GUESTS: the guests of the stage "guests".
# Sourced by scripts/test.
# shellcheck shell=bash

# The guests other than Debian 12 x86_64 that CI runs, one per commit in turn (PFE_CI_GUESTS overrides).
# Not bookworm-arm64, whose image build alone (~23 min) breaks CI's budget; run it with the commands of
# molecule/README.md.
read -r -a PFE_OTHER_GUESTS <<<"${PFE_CI_GUESTS:-trixie-amd64 bullseye-amd64}"

# One of PFE_OTHER_GUESTS, picked by the checked-out commit (the day of the year without git): over
# successive commits CI tries each.
pfe_rotating_guest() {
    local commit n
    commit=$(git -C "$PFE_ROOT" rev-parse --short=8 HEAD 2>/dev/null) || commit=
    if [[ -n "$commit" ]]; then n=$((16#$commit)); else n=$((10#$(date +%j))); fi
    echo "${PFE_OTHER_GUESTS[n % ${#PFE_OTHER_GUESTS[@]}]}"
}

pfe_default_scenarios() {
    local scenarios=(default vm)
    [[ "${CI:-}" == true ]] && scenarios+=("vm:$(pfe_rotating_guest)")
    echo "${scenarios[*]}"
}

stage_molecule() {
    local item scenario guest failed=0 start status
    for item in ${PFE_MOLECULE_SCENARIOS:-$(pfe_default_scenarios)}; do
        [[ "$item" == fleet ]] && { pfe_want_cross_toolchain aarch64; pfe_ensure_apt_packages; }
        scenario=${item%%:*} guest=
        [[ "$item" == *:* ]] && guest=${item#*:}
        pfe_log "molecule test -s $scenario${guest:+ ($guest)}"
        start=$SECONDS status=ok
        # molecule/ at the repository root on purpose (molecule 26 would look in extensions/molecule/
        # of a collection, with a warning): name it explicitly.
        if [[ -n "$guest" ]]; then
            # The role cross-builds the wheel of an arm64 guest on this machine.
            [[ "$guest" == *-arm64 ]] && { pfe_want_cross_toolchain aarch64; pfe_ensure_apt_packages; }
            PFE_VM_RELEASE=${guest%-*} PFE_VM_ARCH=${guest#*-} MOLECULE_GLOB='molecule/*/molecule.yml' \
                molecule test -s "$scenario" || { failed=1 status=FAILED; }
        elif [[ "$scenario" == fleet && -n "${PFE_FLEET_HOSTS:-}" ]]; then
            # A reduced fleet: only these platforms are created, converged and verified (--limit;
            # localhost runs create and destroy, which stops every platform's leftovers).
            MOLECULE_GLOB='molecule/*/molecule.yml' molecule test -s fleet -- \
                --limit "localhost,${PFE_FLEET_HOSTS// /,}" || { failed=1 status=FAILED; }
        else
            MOLECULE_GLOB='molecule/*/molecule.yml' molecule test -s "$scenario" || { failed=1 status=FAILED; }
        fi
        pfe_log "molecule test -s $scenario${guest:+ ($guest)}: $status in $((SECONDS - start)) s"
    done
    return "$failed"
}

# The library's pytest suite in guests (scripts/vm/pytest-in-guest): Debian 12 x86_64, plus under CI the
# rotating guest, unless PFE_VM_GUESTS lists them.
stage_guests() {
    local guests
    if [[ -n "${PFE_VM_GUESTS:-}" ]]; then
        guests=$PFE_VM_GUESTS
    else
        guests="bookworm-amd64"
        [[ "${CI:-}" == true ]] && guests+=" $(pfe_rotating_guest)"
    fi
    # shellcheck disable=SC2086  # a list of guests
    scripts/vm/pytest-in-guest $guests
}
