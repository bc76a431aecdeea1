#!/usr/bin/env bash
# Soak (not part of CI): examples/soak.rs repeats sends over every path and generator runs in
# one process for SOAK_SECONDS (default 600) on its own lab, printing its resident size and
# open descriptors after each round. Writes bench-results/<date>-soak.{jsonl,md}: the first
# and last rounds, the RSS and fd ranges after warm-up, and the slope, which should be flat.
# Afterwards nothing may be left: no namespace, no XDP program.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
xsend_setup
cargo build --release --example soak -q
mkdir -p bench-results
OUT=bench-results/$(date -u +%Y-%m-%d)-soak
SOAK_SECONDS=${SOAK_SECONDS:-600} target/release/examples/soak > "$OUT.jsonl"
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
rows = [json.loads(l) for l in open(out + ".jsonl") if l.strip()]
warm = rows[len(rows) // 10:] or rows
def slope(key):
    xs = [r["seconds"] for r in warm]; ys = [r[key] for r in warm]
    n = len(xs); mx = sum(xs) / n; my = sum(ys) / n
    d = sum((x - mx) ** 2 for x in xs) or 1
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / d
with open(out + ".md", "w") as f:
    f.write(f"# {out.split('/')[-1]}\n\n")
    f.write(f"{len(rows)} rounds in {rows[-1]['seconds']:.0f} s; each: 32 MiB over AF_XDP UDP chunked, "
            "AF_XDP TCP and kernel TCP, then a 0.5 s IMIX generator run; connections opened and "
            "dropped every round.\n\n")
    f.write("| | first round | last round | range after warm-up (10 %) | slope per hour |\n|---|---|---|---|---|\n")
    for k, unit in (("rss_kib", "KiB"), ("fds", "")):
        f.write(f"| {k} | {rows[0][k]} | {rows[-1][k]} | {min(r[k] for r in warm)} - {max(r[k] for r in warm)} {unit} | {slope(k) * 3600:+.1f} |\n")
    f.write(f"\nbytes per round: {rows[-1]['bytes']}, generator frames in the last round: {rows[-1]['gen_packets']}\n")
print(open(out + ".md").read())
PY
left=$(ip netns list | grep -cE '^xs[0-9]+n' || true)
att=$(ip -o link show | grep -c ' xdp' || true)
echo "soak.sh: namespaces left: $left, XDP programs attached: $att"
[ "$left" = 0 ] && [ "$att" = 0 ]
