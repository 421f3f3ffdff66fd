#!/usr/bin/env bash
# Installs what the tests need and runs them all (README's second command;
# .ci/run calls it). Debian 12, as root.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

need_root
install_packages keepalived haproxy prometheus iproute2 nftables curl procps util-linux postgresql openssl chromium fonts-dejavu-core lintian
ensure_rust
ensure_venv
export VIP_WATCHDOG_VENV="$VENV"
ensure_container_base
ensure_booted_image
# cargo-deb for tests/package.rs (about 3 min the first time).
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --version 3.8.0

echo "== format, lint"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
"$VENV/bin/hadolint" Dockerfile

echo "== alert rules, the example Prometheus config"
promtool check rules alerts/*.yml
promtool test rules alerts/tests/*.yml
promtool check config prometheus/vip-watchdog.yml

echo "== dashboards against Grafana's schema types"
command -v npm >/dev/null || install_packages nodejs npm
dashboards/check/check.sh

echo "== tests (unit, integration on real Keepalived + HAProxy, benchmark smoke)"
BENCH_SMOKE=1 cargo test --all-targets --locked

echo "== all tests passed"
