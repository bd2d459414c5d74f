#!/usr/bin/env bash
# Runs every libFuzzer target in fuzz/ for a bounded time (docs/hardening.md,
# "Fuzzing"). Stable toolchain: cargo-fuzz needs nightly's -Z flags, which
# RUSTC_BOOTSTRAP=1 unlocks on stable. Each target starts from its corpus in
# fuzz/corpus/<target> (read-only: what a run finds goes to a scratch
# folder, so CI leaves the tree clean) and fails the script on a crash, a
# panic, a leak or a timeout; the crashing input is left in
# fuzz/artifacts/<target>/ for `cargo fuzz run <target> <file>`.
#
# Env: FUZZ_SECONDS (default 20, per target), FUZZ_TARGETS (default all),
#      FUZZ_KEEP=1 (merge what the run found into fuzz/corpus),
#      FUZZ_SANITIZER (default none: the fuzzed crates forbid `unsafe`, and
#      AddressSanitizer, which would watch their dependencies' unsafe code,
#      slows the build and each run several times; `address` for that).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${FUZZ_SECONDS:-20}
export RUSTC_BOOTSTRAP=1
# The sanitizer build shares the workspace's target folder, in its own
# subfolder (its flags differ from every other build).
TARGET_DIR=$PWD/target/fuzz
SAN=(--sanitizer "${FUZZ_SANITIZER:-none}")

command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz

cd fuzz
TARGETS=${FUZZ_TARGETS:-$(cargo fuzz list)}
echo "==> cargo fuzz build ($(echo $TARGETS | wc -w) targets)"
start=$(date +%s)
if [ -z "${FUZZ_TARGETS:-}" ]; then
    cargo fuzz build "${SAN[@]}" --target-dir "$TARGET_DIR"
else
    for t in $TARGETS; do cargo fuzz build "${SAN[@]}" --target-dir "$TARGET_DIR" "$t"; done
fi
echo "    built in $(( $(date +%s) - start )) s"

failed=()
for t in $TARGETS; do
    scratch=$(mktemp -d)
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "==> $t (${SECONDS_EACH}s, $(ls "corpus/$t" | wc -l) seeds)"
    # -timeout: one input taking over 10 s is a hang; -rss_limit_mb bounds
    # memory; -max_len lets bodies reach a few KB.
    if ! cargo fuzz run "${SAN[@]}" --target-dir "$TARGET_DIR" "$t" "$scratch" "corpus/$t" -- \
        -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
        -print_final_stats=1 2>"$scratch.log"; then
        tail -40 "$scratch.log"
        failed+=("$t")
    else
        grep -E "^stat::number_of_executed_units|^stat::new_units_added" "$scratch.log" | tr '\n' ' '
        echo
    fi
    if [ "${FUZZ_KEEP:-}" = 1 ]; then
        # Adds only the inputs that reach new coverage.
        cargo fuzz run "${SAN[@]}" --target-dir "$TARGET_DIR" "$t" "corpus/$t" "$scratch" -- -merge=1 \
            >/dev/null 2>&1 || true
    fi
    rm -rf "$scratch" "$scratch.log"
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzzing found crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "==> fuzzing: no crashes, $(( $(date +%s) - start )) s with the build"
echo "fuzz: $(echo $TARGETS | wc -w) passed, 0 failed"
