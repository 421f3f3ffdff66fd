#!/usr/bin/env bash
# Runs the benchmarks in full against a release build of the watchdog and
# prints their tables (docs/benchmarks.md). Debian 12, as root.
#   ./scripts/bench.sh                        # all of them, about 80 minutes
#   ./scripts/bench.sh healing footprint      # some of them
# The release build takes about 17 minutes on 2 cores the first time. The
# benchmark programs themselves are built in the test profile: they only
# drive the lab and measure the release binary (VIP_WATCHDOG_BIN).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

need_root
install_packages keepalived haproxy iproute2 nftables curl procps util-linux
ensure_rust
ensure_venv
export VIP_WATCHDOG_VENV="$VENV"

all=(fifo_to_metric failover outage healing footprint load fuzz)
benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=("${all[@]}")
for b in "${benches[@]}"; do
    [[ " ${all[*]} " == *" $b "* ]] || die "no benchmark '$b'; known: ${all[*]}"
done

echo "== release build"
cargo build --release --locked
export VIP_WATCHDOG_BIN="$CARGO_TARGET_DIR/release/vip-watchdog"
unset BENCH_SMOKE

for b in "${benches[@]}"; do
    echo "== benchmark $b"
    if [ "$b" = fuzz ]; then
        # The fuzz targets are the library itself: fuzz the release build.
        cargo bench --locked --bench fuzz
    else
        cargo test --locked --bench "$b"
    fi
done
