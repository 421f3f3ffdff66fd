#!/usr/bin/env bash
# Builds the Debian package into dist/: the man page and shell completions
# generated from the binary's own command line, then cargo-deb.
#   scripts/package.sh            a release build (about 17 min from scratch)
#   scripts/package.sh --dev      the debug build that the tests already made
#                                 (tests/package.rs), stripped by cargo-deb
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_rust
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --version 3.8.0
if [ "${1:-}" = --dev ]; then
    profile=dev
    bin="$CARGO_TARGET_DIR/debug/vip-watchdog"
    [ -x "$bin" ] || die "$bin is missing: cargo build first"
else
    profile=release
    cargo build --release --locked
    bin="$CARGO_TARGET_DIR/release/vip-watchdog"
fi
rm -rf dist
mkdir -p dist/completions
"$bin" man > dist/vip-watchdog.1
"$bin" completions bash > dist/completions/vip-watchdog.bash
"$bin" completions zsh > dist/completions/_vip-watchdog
"$bin" completions fish > dist/completions/vip-watchdog.fish
# --verbose: cargo-deb 3 says which unit file it took (a misplaced one is
# otherwise left out without a word).
cargo deb --no-build --profile "$profile" --verbose --output dist/ 2>&1 | grep -iE "systemd|unit|warning|error|\.deb" || true
ls dist/*.deb
