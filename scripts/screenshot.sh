#!/usr/bin/env bash
# Refreshes docs/landing.png: the page at / of node b after a failover in
# the EIP lab (real Keepalived, HAProxy, moto), as headless Chromium draws
# it. The same test checks the page in ./scripts/test.sh; this only keeps
# its screenshot. Debian 12, as root, after ./scripts/test.sh installed the
# tools.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/vip-watchdog-target}"
export VIP_WATCHDOG_VENV="${VIP_WATCHDOG_VENV:-$VENV}"
VIP_WATCHDOG_SCREENSHOT="$PWD/docs/landing.png" \
    cargo test --locked --test eip own_mode_moves_the_eip_without_a_notify_script
echo "docs/landing.png refreshed"
