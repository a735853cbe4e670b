#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets/) for N seconds each, one at a time on one
# core, and prints libFuzzer's closing figures per target. Needs a nightly toolchain; installs
# cargo-fuzz from crates.io if it is missing. Not part of CI (nightly only).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      default: 60 s, every target
#
# New inputs that reach new code are kept in fuzz/corpus/<target>/ (only the seed-* files are
# committed); a crash leaves its input in fuzz/artifacts/<target>/ and stops the script.
set -euo pipefail

seconds="${1:-60}"
shift || true
cd "$(dirname "$0")/../fuzz"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: a nightly toolchain is needed (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

mkdir -p logs
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    echo "== $target (${seconds}s)"
    # -jobs=1 -workers=1: one fuzzing process at a time; the machine is shared. libFuzzer then
    # writes its output to fuzz-0.log, which cargo-fuzz prints when the job ends.
    status=0
    cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -jobs=1 -workers=1 -print_final_stats=1 \
        >"logs/$target.log" 2>&1 || status=$?
    if [ "$status" -ne 0 ] || grep -qE '^==[0-9]+== ?ERROR|deadly signal|panicked at|Test unit written' "logs/$target.log"; then
        echo "fuzz.sh: $target failed; see fuzz/logs/$target.log and fuzz/artifacts/$target/" >&2
        tail -n 40 "logs/$target.log" >&2
        exit 1
    fi
    # libFuzzer's last status line (#execs, cov, ft) and its final stats.
    grep -E '^#[0-9]+' "logs/$target.log" | tail -n 1
    grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "logs/$target.log" || true
done
