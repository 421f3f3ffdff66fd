#!/usr/bin/env bash
# The randomised soak (benches/soak.rs): a pair through failovers drawn at
# random, in both modes, on real Keepalived, HAProxy and moto behind the
# fault proxy. Debian 12, as root.
#   ./scripts/soak.sh                    # 100 rounds, a new seed (printed)
#   ./scripts/soak.sh --rounds 20 --seed 42
# A failed run prints its seed; the same seed replays the same steps.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

rounds=100
seed=""
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        *) die "usage: $0 [--rounds N] [--seed S]" ;;
    esac
done

need_root
install_packages keepalived haproxy iproute2 nftables curl procps util-linux
ensure_rust
ensure_venv
export VIP_WATCHDOG_VENV="$VENV"
unset BENCH_SMOKE
export SOAK_ROUNDS="$rounds"
[ -z "$seed" ] || export SOAK_SEED="$seed"
cargo test --locked --bench soak
