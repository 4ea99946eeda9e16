#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS_PER_TARGET (default 20), one after another, and fails
# on the first crash, panic, timeout or out-of-memory. Usage: fuzz/run.sh [SECONDS_PER_TARGET]
#
# cargo-fuzz passes nightly-only flags (-Zsanitizer, -Cpasses=sancov-module); RUSTC_BOOTSTRAP=1
# lets the stable toolchain accept them. The code under test forbids `unsafe`, so the fuzzers
# run without AddressSanitizer (`-s none`): a panic is what they look for, and they run faster.
set -euo pipefail

secs="${1:-20}"
cd "$(dirname "$0")"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

targets=(scim_filter scim_patch scim_body policy_file agent_server_message)
cargo fuzz build -s none --debug-assertions

for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "seeds/$t"
    echo "== $t: ${secs}s"
    # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: memory blow-ups fail too.
    cargo fuzz run -s none --debug-assertions "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
echo "fuzz: all ${#targets[@]} targets ran ${secs}s each without a crash"
