#!/usr/bin/env bash
# Benchmarks xsend next to reference tools on one self-made veth lab, in one run, interleaved
# repetitions; counts at the receiver. Writes bench-results/<date>-<name>.{md,json}.
#
#   scripts/bench.sh [--name NAME] [--reps N] [--size-mib N] [--seconds S]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
xsend_setup
xsend_apt_install iperf3 python3

NAME=kernel-paths REPS=3 SIZE_MIB=1024 SECS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --name) NAME=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --size-mib) SIZE_MIB=$2; shift 2 ;;
    --seconds) SECS=$2; shift 2 ;;
    *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

cargo build --release -q
X=$PWD/target/release/xsend
LAB=xb$$
WORK=$(mktemp -d)
cleanup() { "$X" lab down "$LAB" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM
"$X" lab up --name "$LAB" >/dev/null
A=${LAB}a B=${LAB}b PEER=198.18.0.2
inA() { ip netns exec "$A" "$@"; }
inB() { ip netns exec "$B" "$@"; }

# Real data in the page cache (not a sparse file).
head -c $((SIZE_MIB << 20)) /dev/urandom > "$WORK/file"
cat "$WORK/file" > /dev/null
RES=$WORK/results.jsonl

wait_listen() { # proto port
  for _ in $(seq 200); do
    inB ss -Hln${1:0:1} "sport = :$2" | grep -q . && return 0
    sleep 0.02
  done
  echo "bench.sh: nothing listens on $1 port $2" >&2; return 1
}

run_xsend_tcp() { # rep
  inB "$X" recv --listen $PEER:5301 --count-only --json > "$WORK/r.json" 2>/dev/null &
  wait_listen t 5301
  inA "$X" send "$WORK/file" --to $PEER:5301 --backend kernel --json > "$WORK/s.json"
  wait
  python3 - "$1" "$WORK/s.json" "$WORK/r.json" >> "$RES" <<'PY'
import json, sys
s, r = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
print(json.dumps({"test": "tcp", "tool": "xsend kernel sendfile", "rep": int(sys.argv[1]),
  "gbps": r["bytes"] * 8 / s["seconds"] / 1e9, "bytes": r["bytes"], "sent_bytes": s["bytes"]}))
PY
}

run_iperf_tcp() {
  inB iperf3 -s -1 -B $PEER -p 5302 -J > "$WORK/ir.json" 2>/dev/null &
  wait_listen t 5302
  inA iperf3 -c $PEER -p 5302 -Z -t "$SECS" -J > "$WORK/is.json"
  wait
  python3 - "$1" "$WORK/is.json" >> "$RES" <<'PY'
import json, sys
j = json.load(open(sys.argv[2]))
rx = j["end"]["sum_received"]
print(json.dumps({"test": "tcp", "tool": "iperf3 -Z", "rep": int(sys.argv[1]),
  "gbps": rx["bits_per_second"] / 1e9, "bytes": rx["bytes"]}))
PY
}

run_xsend_udp() {
  inB "$X" recv --listen $PEER:5303 --proto udp --count-only --json --idle-timeout 1 > "$WORK/r.json" 2>/dev/null &
  wait_listen u 5303
  inA "$X" send "$WORK/file" --to $PEER:5303 --proto udp --backend kernel --json > "$WORK/s.json"
  wait
  python3 - "$1" "$WORK/s.json" "$WORK/r.json" >> "$RES" <<'PY'
import json, sys
s, r = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
print(json.dumps({"test": "udp", "tool": "xsend kernel sendmmsg", "rep": int(sys.argv[1]),
  "gbps": r["bytes"] * 8 / s["seconds"] / 1e9, "pps": r["datagrams"] / s["seconds"],
  "lost": r["lost"], "bytes": r["bytes"]}))
PY
}

run_iperf_udp() {
  inB iperf3 -s -1 -B $PEER -p 5304 -J > "$WORK/ir.json" 2>/dev/null &
  wait_listen t 5304
  inA iperf3 -c $PEER -p 5304 -u -b 0 -l 1472 -t "$SECS" -J > "$WORK/is.json" || true
  wait || true
  # The client's summary carries the server's packet and loss counts.
  python3 - "$1" "$WORK/is.json" >> "$RES" <<'PY'
import json, sys
j = json.load(open(sys.argv[2]))
s = j["end"]["sum"]
got = s["packets"] - s["lost_packets"]
print(json.dumps({"test": "udp", "tool": "iperf3 -u", "rep": int(sys.argv[1]),
  "gbps": got * 1472 * 8 / s["seconds"] / 1e9, "pps": got / s["seconds"],
  "lost": s["lost_packets"], "bytes": got * 1472}))
PY
}

for rep in $(seq "$REPS"); do
  echo "bench.sh: repetition $rep/$REPS" >&2
  run_xsend_tcp "$rep"; run_iperf_tcp "$rep"; run_xsend_udp "$rep"; run_iperf_udp "$rep"
done

mkdir -p bench-results
OUT=bench-results/$(date -u +%Y-%m-%d)-$NAME
python3 - "$RES" "$OUT" "$SIZE_MIB" "$SECS" "$REPS" <<'PY'
import json, statistics, sys, platform, subprocess
rows = [json.loads(l) for l in open(sys.argv[1])]
out, size, secs, reps = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
groups = {}
for r in rows:
    groups.setdefault((r["test"], r["tool"]), []).append(r)
summary = []
for (test, tool), rs in groups.items():
    g = [r["gbps"] for r in rs]
    summary.append({"test": test, "tool": tool, "median_gbps": statistics.median(g), "min_gbps": min(g),
                    "max_gbps": max(g), "median_pps": statistics.median([r.get("pps", 0) for r in rs]),
                    "runs": len(rs)})
def med(test, prefix):
    return next(s["median_gbps"] for s in summary if s["test"] == test and s["tool"].startswith(prefix))
ratios = {}
for test in sorted({s["test"] for s in summary}):
    ref = next((s for s in summary if s["test"] == test and not s["tool"].startswith("xsend")), None)
    for s in summary:
        if s["test"] == test and s["tool"].startswith("xsend") and ref:
            ratios[f"{test}: {s['tool']} / {ref['tool']}"] = s["median_gbps"] / ref["median_gbps"]
meta = {"kernel": platform.release(), "cpus": subprocess.getoutput("nproc"), "file_mib": int(size),
        "iperf3_seconds": int(secs), "repetitions": int(reps), "lab": "veth pair between two netns, MTU 1500",
        "counted_at": "receiver (bytes that arrived)"}
json.dump({"meta": meta, "summary": summary, "ratios": ratios, "runs": rows}, open(out + ".json", "w"), indent=1)
with open(out + ".md", "w") as f:
    f.write(f"# {out.split('/')[-1]}\n\n")
    f.write("".join(f"- {k}: {v}\n" for k, v in meta.items()))
    f.write("\n| test | tool | median Gbit/s | min | max | median pps | runs |\n|---|---|---|---|---|---|---|\n")
    for s in summary:
        f.write(f"| {s['test']} | {s['tool']} | {s['median_gbps']:.2f} | {s['min_gbps']:.2f} | {s['max_gbps']:.2f} | {s['median_pps']:.0f} | {s['runs']} |\n")
    f.write("\n| ratio (medians) | value |\n|---|---|\n")
    f.write("".join(f"| {k} | {v:.2f} |\n" for k, v in ratios.items()))
print(open(out + ".md").read())
PY
