#!/usr/bin/env bash
# The whole test suite: installs what it needs, checks formatting and lints, runs every test.
# Integration tests build veth labs and need root; in CI (CI=true) a test that cannot run fails.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
xsend_setup

# Namespaces of other runs (a lab someone keeps, a killed run's leftovers) are not ours to judge.
ns_before=$(ip netns list 2>/dev/null | awk '{print $1}' | sort || true)

cargo fmt --all -- --check
cargo clippy --release --all-targets "${XSEND_FEATURES[@]}" -- -D warnings
# Without the features too: a build without DPDK must keep working (and say so when asked).
cargo clippy --release --lib --bins -- -D warnings
cargo test --release --all-targets "${XSEND_FEATURES[@]}"
cargo test --release --doc "${XSEND_FEATURES[@]}"
# A short pass of every fuzz target (and its saved crashes); long runs: scripts/fuzz.sh --seconds N.
scripts/fuzz.sh --seconds "${XSEND_FUZZ_SECONDS:-10}"

# Nothing may be left behind by the tests.
ns_after=$(ip netns list 2>/dev/null | awk '{print $1}' | sort || true)
left=$(comm -13 <(echo "$ns_before") <(echo "$ns_after") | grep -E '^x[sc][0-9]+' || true)
if [ -n "$left" ]; then
  echo "test.sh: the tests left network namespaces behind:" >&2
  echo "$left" >&2
  exit 1
fi
