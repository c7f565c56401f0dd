#!/bin/sh
# Quick check that every target builds and survives ~30 s of fuzzing. Usage: fuzz/smoke.sh
set -eu
cd "$(dirname "$0")"

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked

FLAGS="--release --debug-assertions --sanitizer none"
cargo +nightly fuzz build $FLAGS
for t in $(cargo +nightly fuzz list); do
    echo "== $t"
    cargo +nightly fuzz run "$t" $FLAGS -- -max_total_time="${SECS:-30}"
done
