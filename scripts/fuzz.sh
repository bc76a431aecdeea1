#!/usr/bin/env bash
# Fuzz every cargo-fuzz target (fuzz/fuzz_targets) with the nightly toolchain: first the
# saved crashes of fuzz/regressions/<target> (each must pass now), then S seconds of new
# inputs on a copy of fuzz/corpus/<target>. A crash fails the run and is kept in
# fuzz/artifacts/<target>.
#
#   scripts/fuzz.sh [--seconds S] [--keep] [TARGET...]
#
# --keep merges what the run found back into fuzz/corpus (for long runs whose corpus is worth
# committing). test.sh runs a short pass of every target.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
xsend_setup

SECS=15 KEEP=0 TARGETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECS=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) TARGETS+=("$1"); shift ;;
  esac
done

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz.sh: installing the nightly toolchain" >&2
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

cargo +nightly fuzz build -s none --release
[ ${#TARGETS[@]} -gt 0 ] || mapfile -t TARGETS < <(cargo +nightly fuzz list)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in "${TARGETS[@]}"; do
  if [ -d "fuzz/regressions/$t" ] && [ -n "$(ls -A "fuzz/regressions/$t")" ]; then
    cargo +nightly fuzz run -s none --release "$t" fuzz/regressions/"$t"/* -- -rss_limit_mb=2048 \
      > "$work/$t.reg.log" 2>&1 || { cat "$work/$t.reg.log" >&2; echo "fuzz.sh: $t: a saved crash fails again" >&2; exit 1; }
  fi
  mkdir -p "$work/$t" "fuzz/corpus/$t"
  cp -r "fuzz/corpus/$t/." "$work/$t/"
  if ! cargo +nightly fuzz run -s none --release "$t" "$work/$t" -- \
      -max_total_time="$SECS" -rss_limit_mb=2048 -print_final_stats=1 > "$work/$t.log" 2>&1; then
    tail -40 "$work/$t.log" >&2
    echo "fuzz.sh: $t crashed; the input is in fuzz/artifacts/$t" >&2
    exit 1
  fi
  runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$work/$t.log" | grep -Eo '[0-9]+$' || echo "?")
  echo "fuzz.sh: $t: $runs executions in ${SECS}s, no crash" >&2
  if [ "$KEEP" = 1 ]; then
    cargo +nightly fuzz cmin -s none --release "$t" "$work/$t" >/dev/null 2>&1 || true
    rm -rf "fuzz/corpus/$t"; cp -r "$work/$t" "fuzz/corpus/$t"
  fi
done
