#!/bin/sh
# Full fuzzing run: every target, one after another (one libFuzzer job each), until
# 10 million executions or 10 minutes, whichever comes first. Usage: fuzz/run.sh [target...]
# Environment: RUNS (default 10000000), SECS (default 600).
set -eu
cd "$(dirname "$0")"

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked

RUNS=${RUNS:-10000000}
SECS=${SECS:-600}
# Optimised with debug assertions, so arithmetic overflow panics too. No sanitizer: the
# code under test is safe Rust, and ASan would only halve the executions.
FLAGS="--release --debug-assertions --sanitizer none"
TARGETS=${*:-$(cargo +nightly fuzz list)}

cargo +nightly fuzz build $FLAGS
mkdir -p logs
for t in $TARGETS; do
    echo "== $t: cargo +nightly fuzz run $t $FLAGS -- -runs=$RUNS -max_total_time=$SECS"
    cargo +nightly fuzz run "$t" $FLAGS -- -runs="$RUNS" -max_total_time="$SECS" \
        -print_final_stats=1 2>&1 | tee "logs/$t.log" | grep -E '^(#[0-9]+[[:space:]]+DONE|Done|stat::|==|SUMMARY|thread)' || true
done
