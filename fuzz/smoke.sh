#!/bin/sh
# Quick check that every target builds and survives ~30 s of fuzzing (SECS=n to change).
# Each run's log goes to fuzz/logs/<target>.log; only libFuzzer's closing lines are printed.
set -eu
cd "$(dirname "$0")"

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked

FLAGS="--release --debug-assertions --sanitizer none"
mkdir -p logs
cargo +nightly fuzz build $FLAGS
for t in $(cargo +nightly fuzz list); do
    if cargo +nightly fuzz run "$t" $FLAGS -- -max_total_time="${SECS:-30}" -print_final_stats=1 \
        >"logs/$t.log" 2>&1; then
        printf '%-14s ok   %s\n' "$t" "$(grep -E '^Done [0-9]+ runs' "logs/$t.log" | tail -n 1)"
    else
        printf '%-14s FAIL (last lines of logs/%s.log follow)\n' "$t" "$t"
        tail -n 40 "logs/$t.log"
        exit 1
    fi
done
