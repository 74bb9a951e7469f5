# The molecule scenarios, stage "molecule" of scripts/test: `default` on this machine, `vm` in a qemu
# guest (the cached guest image is built first when missing: see molecule/README.md).
# PFE_MOLECULE_SCENARIOS selects scenarios ("default vm" by default). Sourced by scripts/test.
# shellcheck shell=bash

stage_molecule() {
    local scenario failed=0 start status
    for scenario in ${PFE_MOLECULE_SCENARIOS:-default vm}; do
        pfe_log "molecule test -s $scenario"
        start=$SECONDS status=ok
        # molecule/ at the repository root on purpose (molecule 26 would look in extensions/molecule/
        # of a collection, with a warning): name it explicitly.
        MOLECULE_GLOB='molecule/*/molecule.yml' molecule test -s "$scenario" || { failed=1 status=FAILED; }
        pfe_log "molecule test -s $scenario: $status in $((SECONDS - start)) s"
    done
    return "$failed"
}
