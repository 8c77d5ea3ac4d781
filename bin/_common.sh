# Shared by bin/demo and bin/test: the project's own environment, installed on demand.
# shellcheck shell=bash
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$REPO/.venv"
BUILD="${PGHA_BUILD_DIR:-$REPO/.build}"
export CONTAINERS_CONF="$REPO/lab/containers.conf"
export ANSIBLE_COLLECTIONS_PATH="$BUILD/collections"
export ANSIBLE_CONFIG="$REPO/ansible.cfg"
export PIP_DISABLE_PIP_VERSION_CHECK=1

log() { printf '\n=== %s: %s\n' "$(date +%H:%M:%S)" "$*"; }

ensure_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "pgha: run as root (apt, podman networks and debootstrap need it)" >&2
        exit 2
    fi
}

ensure_apt() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing host packages: ${missing[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
}

ensure_venv() {
    local stamp="$VENV/.requirements.sha256"
    local want
    want=$(sha256sum "$REPO/requirements/test.txt" | cut -d' ' -f1)
    if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        log "installing the Python tools into .venv (pinned in requirements/test.txt)"
        if [ ! -x "$VENV/bin/python" ]; then
            ensure_apt python3-venv
            python3 -m venv "$VENV"
        fi
        "$VENV/bin/pip" install -q -r "$REPO/requirements/test.txt"
        echo "$want" > "$stamp"
    fi
    export PATH="$VENV/bin:$PATH"
}

install_collection() {
    rm -rf "$BUILD/collections/ansible_collections/pgha"
    mkdir -p "$BUILD/collections"
    ansible-galaxy collection build --force --output-path "$BUILD" "$REPO" >/dev/null
    ansible-galaxy collection install --force -p "$BUILD/collections" "$BUILD"/pgha-cluster-*.tar.gz >/dev/null
    echo "pgha.cluster installed into $BUILD/collections"
}
