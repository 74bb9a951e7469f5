# The Ansible collection's checks, stage "ansible" of scripts/test: ansible-test sanity, units and
# integration, on a copy of the collection at .../ansible_collections/pyforkexec/isolation (where
# ansible-test requires it to be), against this machine as root: no containers, no remote hosts.
# PFE_ANSIBLE_TESTS="sanity units integration" selects the ansible-test commands (all by default);
# PFE_ANSIBLE_TARGETS narrows integration to some targets. Sourced by scripts/test.
# shellcheck shell=bash

# The collection's content (galaxy.yml's scope without the Python package and its own pytest suite).
PFE_COLLECTION_PATHS=(galaxy.yml README.md meta plugins roles docs tests/config.yml tests/sanity
    tests/unit/conftest.py tests/unit/plugins tests/integration)

# Copy the collection into DEST/ansible_collections/pyforkexec/isolation; prints that path.
pfe_collection_copy() {
    local dest="$1/ansible_collections/pyforkexec/isolation" path present=()
    for path in "${PFE_COLLECTION_PATHS[@]}"; do
        [[ -e "$PFE_ROOT/$path" ]] && present+=("$path")
    done
    mkdir -p "$dest"
    tar -C "$PFE_ROOT" -c --exclude=__pycache__ --exclude=.ruff_cache --exclude=tests/output "${present[@]}" | tar -C "$dest" -x
    printf '%s\n' "$dest"
}

# ansible-test bootstraps pip into each sanity virtualenv with a get-pip script downloaded from
# ci-files.testing.ansible.com, which is not a package registry. This stand-in, put where ansible-test
# caches that script, installs the interpreter's bundled pip (ensurepip) and then the pinned pip from
# the package index. The virtualenvs are cached in ~/.ansible/test/venv: only a first run downloads.
pfe_ansible_test_get_pip() {
    local version file
    version=$(grep -oP "pip='\K[0-9.]+" "$("$PFE_VENV/bin/python" -c \
        'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py")
    file="$HOME/.ansible/test/cache/get_pip_${version//./_}.py"
    [[ -e "$file" ]] && return 0
    mkdir -p "${file%/*}"
    cat >"$file" <<'EOF'
"""Stand-in for ansible-test's get-pip script: ensurepip, then pip install the requested packages."""
import os
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
os.execv(sys.executable, [sys.executable, "-m", "pip", "install", "--upgrade", *args])
EOF
}

stage_ansible() {
    local tmp coll python="$PFE_VENV/bin/python" tests status=0 cmd
    read -r -a tests <<<"${PFE_ANSIBLE_TESTS:-sanity units integration}"
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/pfe-ansible.XXXXXX")
    coll=$(pfe_collection_copy "$tmp")
    pfe_ansible_test_get_pip
    for cmd in "${tests[@]}"; do
        pfe_log "ansible-test $cmd"
        case "$cmd" in
        sanity) (cd "$coll" && ansible-test sanity --local --python-interpreter "$python" --color no) ;;
        units) (cd "$coll" && ansible-test units --local --python-interpreter "$python" --color no) ;;
        integration)
            # shellcheck disable=SC2086  # a list of target names
            (cd "$coll" && ansible-test integration --local --python-interpreter "$python" --color no \
                --allow-destructive ${PFE_ANSIBLE_TARGETS:-}) ;;
        *) pfe_log "unknown ansible-test command '$cmd' (sanity, units, integration)"; false ;;
        esac || status=1
    done
    rm -rf "$tmp"
    return "$status"
}
