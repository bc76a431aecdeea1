#!/usr/bin/env bash
# Benchmarks xsend next to reference tools on one self-made veth lab, in one run, with
# interleaved repetitions; everything is counted at the receiver (the peer interface's rx
# counters, or the receiving application). Writes bench-results/<date>-<name>.{md,json}.
#
#   scripts/bench.sh [--suite kernel|xdp|tcp|rate|mem|replay|replay-drift|live|live-rate|ndr|rxport|payload|dpdk|all] [--name NAME] [--reps N] [--seconds S] [--mtu M]
#
# Suites:
#   kernel  TCP (xsend sendfile vs iperf3 -Z) and UDP (xsend sendmmsg vs iperf3 -u) into the
#           peer's kernel sockets; goodput counted by the receiving application.
#   rate    xsend bench paced at 10/50/90 % of its maximum for RATE_SECS (--rate-seconds, 20)
#           seconds: rate counted over the whole run at the peer vs target (error %), the
#           slowest and fastest second, and the inter-departure p50/p99 and lateness p99 it
#           reports.
#   mem     max resident size of `xsend send` for a 4 MiB and a 4 GiB file, both backends.
#   tcp     TCP over AF_XDP (xsend's user-space sender) vs xsend's AF_XDP chunked UDP, xsend
#           kernel sendfile and iperf3 -Z, with TSO/GSO on and off on the sending veth
#           (the lab's MTU: 1500, or --mtu 9000 for jumbo frames, multi-buffer AF_XDP);
#           goodput counted and timed by the receiving application (first to last byte,
#           like iperf3's server; the sender-timed rate is in the JSON as gbps_sender_timed).
#   xdp     64 and 1514-byte UDP frames: xsend bench (AF_XDP), xsend send of a real file
#           (chunked, checksums valid), dpdk-testpmd txonly on its net_af_xdp and
#           net_af_packet PMDs, netsniff-ng trafgen. Two sinks on the peer: an XDP drop
#           program (the sender's ceiling) and the kernel stack. Packets/s = rx counter delta
#           of the peer interface over a steady-state window.
#
#   dpdk    the DPDK backend (--backend dpdk) next to dpdk-testpmd txonly: on net_null (no
#           I/O: user-space cost per packet, ns/packet; both on CPU 1) at 64 and 1514 B, a
#           chunked file on net_null and net_af_packet, copied and from the file's pages
#           (Gbit/s of file bytes), and on net_af_xdp over the lab's
#           veth into the drop sink, next to xsend's own AF_XDP backend.
#
#   replay-drift  60 s of original timing (10 µs / 1 ms gaps) from xsend on live frames and
#           tcpreplay: the run's drift against the capture's length, inter-arrival error.
#
#   payload a file in 1514-byte frames into the drop sink: on tmpfs without a copy
#           (--payload zero-copy) and with one, on the work directory's filesystem, next to
#           synthetic 1514-byte frames.
#
#   replay  xsend replay next to tcpreplay: --topspeed of 64 B and 1514 B captures (drop sink,
#           frames counted at the peer over the tool's whole run), and original timing of a
#           capture with 10 µs and 1 ms gaps (kernel sink, tcpdump with ns timestamps at the
#           peer): inter-arrival error p50/p99/max against the capture, and drift of the run.
#
#   live    xsend bench --backend live (in-kernel live frames) vs the reference loop (no
#           stamping: the kernel's ceiling), xsend AF_XDP and testpmd net_af_xdp, 64 and
#           1514 B into the drop sink; whether xdp-trafficgen loads; then the rate suite on
#           live frames.
#
#   ndr     the receiving port (xsend bench --rx-iface) next to the xdp_drop sink: 64 B frames
#           unpaced from live frames and AF_XDP; counted = the interface's rx = sent, cost
#           per frame (ns, bpf_stats). Then xsend ndr through a DUT lab policed at NDR_RATE
#           packets/s (200k): NDR found vs the policed rate at 64/512/1518 B, PDR, latency at
#           the NDR, trials; its plot (<out>-ndr.png). (rxport: the first part alone.)
#
# XSEND_OLD=/path/to/an/older/xsend adds that binary's runs (tool names end in "[old]") to the
# xdp and tcp suites, interleaved with the current build's, and the report gives new/old ratios.
# The tcp suite also gives CPU seconds per GiB: busy time of the whole machine (user, system,
# irq, softirq from /proc/stat) over the transfer, divided by the GiB received; on a veth lab
# this includes the peer's receive work, which runs on the sending CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
xsend_setup
xsend_apt_install iperf3 python3 python3-matplotlib dpdk dpdk-dev netsniff-ng xdp-tests tcpreplay bpftool

SUITE=all NAME="" REPS=3 SECS=3 SIZE_MIB=1024 RATE_SECS=20 MTU=1500
while [ $# -gt 0 ]; do
  case "$1" in
    --suite) SUITE=$2; shift 2 ;;
    --name) NAME=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --seconds) SECS=$2; shift 2 ;;
    --size-mib) SIZE_MIB=$2; shift 2 ;;
    --rate-seconds) RATE_SECS=$2; shift 2 ;;
    --mtu) MTU=$2; shift 2 ;;
    *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
NAME=${NAME:-$SUITE}

cargo build --release -q "${XSEND_FEATURES[@]}"
# Debian's interpreter: it has python3-matplotlib (another python3 may come first on PATH).
SYS_PY=/usr/bin/python3
[ -x "$SYS_PY" ] || SYS_PY=python3
X=$PWD/target/release/xsend
XOLD=${XSEND_OLD:-}
if [ -n "$XOLD" ] && [ ! -x "$XOLD" ]; then
  echo "bench.sh: XSEND_OLD=$XOLD is not an executable" >&2; exit 2
fi
LAB=xb$$
WORK=$(mktemp -d)
# (testpmd leaves its runtime files in /var/run/dpdk/PREFIX: gone with the run.)
DUT=""
cleanup() {
  "$X" lab down "$LAB" >/dev/null 2>&1 || true
  [ -z "$DUT" ] || "$X" lab down "$DUT" >/dev/null 2>&1 || true
  rm -rf "$WORK" "/var/run/dpdk/$LAB" "/dev/shm/xsend-bench-$LAB"
}
trap cleanup EXIT INT TERM
"$X" lab up --name "$LAB" --mtu "$MTU" >/dev/null
export BENCH_MTU=$MTU
A=${LAB}a B=${LAB}b IFA=${LAB}a IFB=${LAB}b PEER=198.18.0.2
MACA=02:58:53:00:00:0a MACB=02:58:53:00:00:0b
inA() { ip netns exec "$A" "$@"; }
inB() { ip netns exec "$B" "$@"; }
RES=$WORK/results.jsonl
: > "$RES"
emit() { echo "$1" >> "$RES"; }

rx_packets() {
  ip -n "$B" -s -o link show "$IFB" | awk '{for (i = 1; i <= NF; i++) if ($i == "RX:") { print $(i + 9); exit }}'
}

# "packets ns": the counter and the time it was read (midpoint of the read).
rx_sample() {
  local t0 v t1
  t0=$(date +%s%N); v=$(rx_packets); t1=$(date +%s%N)
  echo "$v $(( (t0 + t1) / 2 ))"
}

# Some tools (DPDK's PMDs) take the interface down and up, which flushes neighbour entries.
restore_neigh() {
  ip -n "$A" neigh replace $PEER lladdr $MACB dev "$IFA" nud permanent
  ip -n "$B" neigh replace 198.18.0.1 lladdr $MACA dev "$IFB" nud permanent
}

wait_listen() { # proto(t|u) port
  for _ in $(seq 200); do
    inB ss -Hln"$1" "sport = :$2" | grep -q . && return 0
    sleep 0.02
  done
  echo "bench.sh: nothing listens on $1 port $2" >&2; return 1
}

# ---------------------------------------------------------------- kernel suite
run_xsend_tcp() {
  inB "$X" recv --listen $PEER:5301 --count-only --json > "$WORK/r.json" 2>/dev/null &
  wait_listen t 5301
  inA "$X" send "$WORK/file" --to $PEER:5301 --backend kernel --json > "$WORK/s.json"
  wait
  emit "$(python3 - "$1" "$WORK/s.json" "$WORK/r.json" <<'PY'
import json, sys
s, r = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
print(json.dumps({"test": "tcp", "tool": "xsend kernel sendfile", "rep": int(sys.argv[1]),
  "gbps": r["bytes"] * 8 / s["seconds"] / 1e9, "pps": 0, "bytes": r["bytes"]}))
PY
)"
}

run_iperf_tcp() {
  inB iperf3 -s -1 -B $PEER -p 5302 -J > "$WORK/ir.json" 2>/dev/null &
  wait_listen t 5302
  inA iperf3 -c $PEER -p 5302 -Z -t "$SECS" -J > "$WORK/is.json"
  wait
  emit "$(python3 - "$1" "$WORK/is.json" <<'PY'
import json, sys
rx = json.load(open(sys.argv[2]))["end"]["sum_received"]
print(json.dumps({"test": "tcp", "tool": "iperf3 -Z", "rep": int(sys.argv[1]),
  "gbps": rx["bits_per_second"] / 1e9, "pps": 0, "bytes": rx["bytes"]}))
PY
)"
}

run_xsend_udp() {
  inB "$X" recv --listen $PEER:5303 --proto udp --count-only --json --idle-timeout 1 > "$WORK/r.json" 2>/dev/null &
  wait_listen u 5303
  inA "$X" send "$WORK/file" --to $PEER:5303 --proto udp --backend kernel --json > "$WORK/s.json"
  wait
  emit "$(python3 - "$1" "$WORK/s.json" "$WORK/r.json" <<'PY'
import json, sys
s, r = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
print(json.dumps({"test": "udp", "tool": "xsend kernel sendmmsg", "rep": int(sys.argv[1]),
  "gbps": r["bytes"] * 8 / s["seconds"] / 1e9, "pps": r["datagrams"] / s["seconds"],
  "lost": r["lost"], "bytes": r["bytes"]}))
PY
)"
}

run_iperf_udp() {
  inB iperf3 -s -1 -B $PEER -p 5304 -J > "$WORK/ir.json" 2>/dev/null &
  wait_listen t 5304
  inA iperf3 -c $PEER -p 5304 -u -b 0 -l 1472 -t "$SECS" -J > "$WORK/is.json" 2>/dev/null || true
  wait || true
  # The client's summary carries the server's packet and loss counts.
  emit "$(python3 - "$1" "$WORK/is.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[2]))["end"]["sum"]
got = s["packets"] - s["lost_packets"]
print(json.dumps({"test": "udp", "tool": "iperf3 -u", "rep": int(sys.argv[1]),
  "gbps": got * 1472 * 8 / s["seconds"] / 1e9, "pps": got / s["seconds"],
  "lost": s["lost_packets"], "bytes": got * 1472}))
PY
)"
}

suite_kernel() {
  head -c $((SIZE_MIB << 20)) /dev/urandom > "$WORK/file"
  for rep in $(seq "$REPS"); do
    echo "bench.sh: kernel suite, repetition $rep/$REPS" >&2
    run_xsend_tcp "$rep"; run_iperf_tcp "$rep"; run_xsend_udp "$rep"; run_iperf_udp "$rep"
  done
  rm -f "$WORK/file"
}

# Busy CPU time of the whole machine in clock ticks (user, nice, system, irq, softirq).
cpu_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8; exit}' /proc/stat; }
HZ=$(getconf CLK_TCK)

# ---------------------------------------------------------------- tcp suite
run_xsend_recv() { # test tool rep port sender-binary send-args...
  local test=$1 tool=$2 rep=$3 port=$4 xs=$5 c0 c1; shift 5
  local rargs=(--listen $PEER:$port --count-only --json)
  case " $* " in *" udp "*) rargs+=(--proto udp --idle-timeout 1) ;; esac
  inB "$X" recv "${rargs[@]}" > "$WORK/r.json" 2>/dev/null &
  case " $* " in *" udp "*) wait_listen u "$port" ;; *) wait_listen t "$port" ;; esac
  c0=$(cpu_ticks)
  inA "$xs" send "$WORK/file" --to $PEER:$port --json "$@" > "$WORK/s.json"
  c1=$(cpu_ticks)
  wait
  emit "$(python3 - "$test" "$tool" "$rep" "$WORK/s.json" "$WORK/r.json" "$(( c1 - c0 ))" "$HZ" <<'PY'
import json, sys
test, tool, rep = sys.argv[1], sys.argv[2], int(sys.argv[3])
s, r = json.load(open(sys.argv[4])), json.load(open(sys.argv[5]))
cpu = int(sys.argv[6]) / int(sys.argv[7])
# Goodput as the receiving application measured it (first to last byte), as iperf3's server
# does; the sender's whole-operation rate (connect and ramp-up included) is kept beside it.
row = {"test": test, "tool": tool, "rep": rep, "gbps": r.get("gbps") or r["bytes"] * 8 / s["seconds"] / 1e9,
  "gbps_sender_timed": r["bytes"] * 8 / s["seconds"] / 1e9,
  "pps": s["packets"] / s["seconds"], "bytes": r["bytes"], "mode": s.get("mode"),
  "payload": s.get("payload"), "cpu_s": cpu, "cpu_s_per_gib": cpu / (r["bytes"] / 2**30)}
if "tcp" in s:
    row["tcp"] = s["tcp"]
print(json.dumps(row))
PY
)"
}

suite_tcp() {
  head -c $((SIZE_MIB << 20)) /dev/urandom > "$WORK/file"
  cat "$WORK/file" > /dev/null
  for rep in $(seq "$REPS"); do
    for tso in off on; do
      echo "bench.sh: tcp suite, repetition $rep/$REPS, TSO/GSO $tso" >&2
      inA ethtool -K "$IFA" tso $tso gso $tso >/dev/null
      local t="tcp tso-$tso"
      # Rotate the order each repetition.
      local order=(xdp udp kernel iperf) i c0 c1
      if [ -n "$XOLD" ]; then order+=(xdp_old udp_old); fi
      local n=${#order[@]}
      for i in $(seq 0 $((n - 1))); do
        case ${order[$(( (i + rep) % n ))]} in
          xdp) run_xsend_recv "$t" "xsend tcp (AF_XDP)" "$rep" 5311 "$X" --backend xdp ;;
          udp) run_xsend_recv "$t" "xsend udp chunked (AF_XDP)" "$rep" 5312 "$X" --proto udp --backend xdp ;;
          kernel) run_xsend_recv "$t" "xsend kernel sendfile" "$rep" 5313 "$X" --backend kernel ;;
          xdp_old) run_xsend_recv "$t" "xsend tcp (AF_XDP) [old]" "$rep" 5315 "$XOLD" --backend xdp ;;
          udp_old) run_xsend_recv "$t" "xsend udp chunked (AF_XDP) [old]" "$rep" 5316 "$XOLD" --proto udp --backend xdp ;;
          iperf)
            inB iperf3 -s -1 -B $PEER -p 5314 -J > "$WORK/ir.json" 2>/dev/null &
            wait_listen t 5314
            c0=$(cpu_ticks)
            inA iperf3 -c $PEER -p 5314 -Z -t "$SECS" -J > "$WORK/is.json"
            c1=$(cpu_ticks)
            wait
            emit "$(python3 - "$rep" "$WORK/is.json" "$t" "$(( c1 - c0 ))" "$HZ" <<'PY'
import json, sys
rx = json.load(open(sys.argv[2]))["end"]["sum_received"]
cpu = int(sys.argv[4]) / int(sys.argv[5])
print(json.dumps({"test": sys.argv[3], "tool": "iperf3 -Z", "rep": int(sys.argv[1]),
  "gbps": rx["bits_per_second"] / 1e9, "pps": 0, "bytes": rx["bytes"],
  "cpu_s": cpu, "cpu_s_per_gib": cpu / (rx["bytes"] / 2**30)}))
PY
)" ;;
        esac
      done
    done
  done
  inA ethtool -K "$IFA" tso on gso on >/dev/null
  rm -f "$WORK/file"
}

# ---------------------------------------------------------------- xdp suite
stop_group() { # pid: SIGINT to its process group, SIGKILL if it is still there after 5 s
  kill -INT -- -"$1" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- -"$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# Run "$@" in side A; once the peer's rx counter moves (tools start up at different speeds)
# and 0.5 s more, sample it over $SECS s; then stop the tool like Ctrl-C would.
window() { # test tool rep size cmd...
  local test=$1 tool=$2 rep=$3 size=$4; shift 4
  # In its own session, so that the whole process group (trafgen forks workers) can be
  # stopped; setsid and `ip netns exec` exec in place, so $! is the group's leader.
  setsid ip netns exec "$A" "$@" > "$WORK/tool.out" 2>&1 &
  local pid=$! last now a t0 b t1
  last=$(rx_packets)
  for _ in $(seq 150); do
    sleep 0.2
    now=$(rx_packets)
    [ $((now - last)) -gt 1000 ] && break
    last=$now
  done
  sleep 0.5
  read -r a t0 <<< "$(rx_sample)"
  sleep "$SECS"
  read -r b t1 <<< "$(rx_sample)"
  stop_group $pid
  restore_neigh
  if [ $((b - a)) -lt 1000 ]; then
    echo "bench.sh: $tool counted nothing at the peer; its output:" >&2
    tail -20 "$WORK/tool.out" >&2
  fi
  emit "$(python3 -c "
import json; pps = ($b - $a) / (($t1 - $t0) / 1e9)
print(json.dumps({'test': '$test', 'tool': '$tool', 'rep': $rep, 'size': $size, 'pps': pps,
  'gbps': pps * ($size + 24) * 8 / 1e9}))")"
}

testpmd_cmd() { # pmd size -> TP array
  local vdev
  case $1 in
    af_xdp) vdev="net_af_xdp0,iface=$IFA,busy_budget=0" ;;
    af_packet) vdev="net_af_packet0,iface=$IFA" ;;
  esac
  TP=(dpdk-testpmd --no-huge --no-pci -m 2048 -l 0-1 --log-level=error --file-prefix "$LAB"
    --vdev="$vdev" -- --forward-mode=txonly --txpkts="$2" --eth-peer=0,$MACB --auto-start
    --stats-period=100 --nb-cores=1 --total-num-mbufs=32768 --burst=64 --txd=2048)
}

trafgen_conf() { # size
  echo "{ eth(da=$MACB, sa=$MACA), ipv4(da=$PEER, sa=198.18.0.1), udp(dp=9, sp=40000), fill(0x00, $(($1 - 42))) }" > "$WORK/tg$1.cfg"
}

run_xsend_file() { # test rep sender-binary tool-suffix [file [tool-name [send-args...]]]
  local test=$1 rep=$2 xs=$3 suffix=${4:-} file=${5:-$WORK/file} name=${6:-xsend send file (chunked, AF_XDP)} before after
  shift $(( $# < 6 ? $# : 6 ))
  before=$(rx_packets)
  inA "$xs" send "$file" --to $PEER:9 --proto udp --backend xdp --dst-mac $MACB --json "$@" > "$WORK/s.json"
  after=$(rx_packets)
  emit "$(python3 - "$test" "$rep" "$WORK/s.json" "$before" "$after" "$suffix" "$name" <<'PY'
import json, sys
test, rep, s, a, b = sys.argv[1], int(sys.argv[2]), json.load(open(sys.argv[3])), int(sys.argv[4]), int(sys.argv[5])
suffix, name = sys.argv[6], sys.argv[7]
got = b - a - 3   # minus the end-of-stream markers
pps = got / s["seconds"]
print(json.dumps({"test": test, "tool": name + suffix, "rep": rep, "size": 1514,
  "pps": pps, "gbps": pps * (1514 + 24) * 8 / 1e9, "sent": s["packets"], "counted": got,
  "goodput_gbps": s["bytes"] * 8 / s["seconds"] / 1e9, "payload": s.get("payload"),
  "payload_reason": s.get("payload_reason")}))
PY
)"
}

# ---------------------------------------------------------------- payload suite
# File bytes into 1514-byte frames, drop sink: the same file on tmpfs sent without a copy
# (--payload zero-copy: its pages mapped into the UMEM, each frame a header descriptor plus
# file descriptors) and with one (preadv), the file on the work directory's filesystem (a
# copy), and xsend's synthetic 1514-byte frames (no file at all: the ceiling). Whole send
# counted at the peer, over the sender's seconds (for zero-copy these include mapping the
# file into the UMEM).
suite_payload() {
  head -c $((SIZE_MIB << 20)) /dev/urandom > "$WORK/file"
  SHM=/dev/shm/xsend-bench-$LAB
  cp "$WORK/file" "$SHM"
  cat "$WORK/file" > /dev/null
  ip -n "$B" link set dev "$IFB" xdpdrv obj /usr/libexec/xdp-tools/xdp_drop.o sec xdp
  local tools=(synthetic zc shm disk) n=4 i
  for rep in $(seq "$REPS"); do
    echo "bench.sh: payload suite, repetition $rep/$REPS" >&2
    for i in $(seq 0 $((n - 1))); do
      case ${tools[$(( (i + rep) % n ))]} in
        synthetic) window "file1514 drop" "xsend bench 1514 B (synthetic, no file)" "$rep" 1514 \
                     "$X" bench --backend xdp --to $PEER:9 --dst-mac $MACB --size 1514 --duration 120 ;;
        zc) run_xsend_file "file1514 drop" "$rep" "$X" "" "$SHM" "xsend send tmpfs file, zero-copy" --payload zero-copy ;;
        shm) run_xsend_file "file1514 drop" "$rep" "$X" "" "$SHM" "xsend send tmpfs file, copy" --payload copy ;;
        disk) run_xsend_file "file1514 drop" "$rep" "$X" "" "$WORK/file" "xsend send regular file, copy" --payload copy ;;
      esac
    done
  done
  ip -n "$B" link set dev "$IFB" xdp off
  rm -f "$WORK/file" "$SHM"
}

suite_xdp() {
  head -c $((SIZE_MIB << 20)) /dev/urandom > "$WORK/file"
  cat "$WORK/file" > /dev/null
  trafgen_conf 64; trafgen_conf 1514
  local tools=(xsend testpmd_af_xdp testpmd_af_packet trafgen)
  if [ -n "$XOLD" ]; then tools+=(xsend_old); fi
  for rep in $(seq "$REPS"); do
    for sink in drop stack; do
      if [ $sink = drop ]; then
        ip -n "$B" link set dev "$IFB" xdpdrv obj /usr/libexec/xdp-tools/xdp_drop.o sec xdp
      else
        ip -n "$B" link set dev "$IFB" xdp off
      fi
      for size in 64 1514; do
        echo "bench.sh: xdp suite, repetition $rep/$REPS, sink $sink, $size-byte frames" >&2
        # Rotate the order each repetition so no tool always runs first.
        local n=${#tools[@]} i
        for i in $(seq 0 $((n - 1))); do
          case ${tools[$(( (i + rep) % n ))]} in
            xsend) window "udp$size $sink" "xsend bench (AF_XDP)" "$rep" "$size" \
                     "$X" bench --backend xdp --to $PEER:9 --dst-mac $MACB --size "$size" --duration 120 ;;
            xsend_old) window "udp$size $sink" "xsend bench (AF_XDP) [old]" "$rep" "$size" \
                     "$XOLD" bench --to $PEER:9 --dst-mac $MACB --size "$size" --duration 120 ;;
            testpmd_af_xdp) testpmd_cmd af_xdp "$size"; window "udp$size $sink" "dpdk-testpmd net_af_xdp" "$rep" "$size" "${TP[@]}" ;;
            testpmd_af_packet) testpmd_cmd af_packet "$size"; window "udp$size $sink" "dpdk-testpmd net_af_packet" "$rep" "$size" "${TP[@]}" ;;
            trafgen) window "udp$size $sink" "trafgen" "$rep" "$size" \
                       trafgen --dev "$IFA" --conf "$WORK/tg$size.cfg" --cpus 1 -q ;;
          esac
        done
      done
      # Old and new alternate which goes first.
      if [ -n "$XOLD" ] && [ $((rep % 2)) = 0 ]; then
        run_xsend_file "udp1514 $sink" "$rep" "$XOLD" " [old]"
        run_xsend_file "udp1514 $sink" "$rep" "$X"
      else
        run_xsend_file "udp1514 $sink" "$rep" "$X"
        if [ -n "$XOLD" ]; then run_xsend_file "udp1514 $sink" "$rep" "$XOLD" " [old]"; fi
      fi
    done
  done
  ip -n "$B" link set dev "$IFB" xdp off
  rm -f "$WORK/file"
}

# ---------------------------------------------------------------- replay suite
replay_top() { # test tool rep cmd...
  local test=$1 tool=$2 rep=$3 a t0 b t1; shift 3
  a=$(rx_packets); t0=$(date +%s%N)
  inA "$@" > "$WORK/tool.out" 2>&1 || { echo "bench.sh: $tool failed:" >&2; tail -5 "$WORK/tool.out" >&2; }
  t1=$(date +%s%N); b=$(rx_packets)
  emit "$(python3 -c "
import json; pps = ($b - $a) / (($t1 - $t0) / 1e9)
print(json.dumps({'test': '$test', 'tool': '$tool', 'rep': $rep, 'pps': pps, 'gbps': pps * (${test//[!0-9]/} + 24) * 8 / 1e9, 'counted': $b - $a}))")"
}

replay_timing() { # tool rep cmd...   (CAP: the capture, FRAMES: its frames, TEST: the row)
  local tool=$1 rep=$2 cap=${CAP:-$WORK/rtime.pcap} n=${FRAMES:-20000} test=${TEST:-replay timing 10us/1ms}; shift 2
  inB tcpdump -i "$IFB" -n -U -s 64 -B 65536 --time-stamp-precision nano -c "$n" \
    -w "$WORK/seen.pcap" udp dst port 9 2> "$WORK/dump.err" &
  local dump=$!
  for _ in $(seq 100); do grep -q "listening on" "$WORK/dump.err" && break; sleep 0.05; done
  inA "$@" > "$WORK/tool.out" 2>&1 || { echo "bench.sh: $tool failed:" >&2; tail -5 "$WORK/tool.out" >&2; }
  for _ in $(seq 100); do kill -0 $dump 2>/dev/null || break; sleep 0.05; done
  kill -INT $dump 2>/dev/null || true; wait $dump 2>/dev/null || true
  emit "$("$SYS_PY" scripts/replay_bench.py timing "$cap" "$WORK/seen.pcap" | python3 -c "
import json, sys; r = json.load(sys.stdin)
r.update({'test': '$test', 'tool': '$tool', 'rep': $rep, 'pps': 0, 'gbps': 0})
print(json.dumps(r))")"
}

# 60 s of original timing (the same 10 µs / 1 ms pattern, 550,000 frames): the run's end
# against the capture's (drift), xsend on live frames next to tcpreplay, kernel sink.
suite_replay_drift() {
  "$SYS_PY" scripts/replay_bench.py make "$WORK/r60.pcap" 128 550000 $MACA $MACB \
    10000 10000 10000 10000 10000 10000 10000 10000 10000 1000000
  inB ethtool -K "$IFB" gro on >/dev/null
  for rep in $(seq "$REPS"); do
    echo "bench.sh: replay-drift suite, repetition $rep/$REPS (2 x 60 s)" >&2
    local order=(live tcpreplay) i
    for i in 0 1; do
      case ${order[$(( (i + rep) % 2 ))]} in
        live) CAP=$WORK/r60.pcap FRAMES=550000 TEST="replay 60 s original timing" \
                replay_timing "xsend replay (live frames)" "$rep" "$X" replay "$WORK/r60.pcap" --iface "$IFA" --backend live ;;
        tcpreplay) CAP=$WORK/r60.pcap FRAMES=550000 TEST="replay 60 s original timing" \
                replay_timing "tcpreplay" "$rep" tcpreplay -i "$IFA" -q "$WORK/r60.pcap" ;;
      esac
    done
  done
  rm -f "$WORK/r60.pcap"
}

suite_replay() {
  "$SYS_PY" scripts/replay_bench.py make "$WORK/r64.pcap" 64 100000 $MACA $MACB
  "$SYS_PY" scripts/replay_bench.py make "$WORK/r1514.pcap" 1514 100000 $MACA $MACB
  # Nine 10 µs gaps then one of 1 ms, 20000 frames: 2.2 s.
  "$SYS_PY" scripts/replay_bench.py make "$WORK/rtime.pcap" 128 20000 $MACA $MACB \
    10000 10000 10000 10000 10000 10000 10000 10000 10000 1000000
  for rep in $(seq "$REPS"); do
    echo "bench.sh: replay suite, repetition $rep/$REPS" >&2
    ip -n "$B" link set dev "$IFB" xdpdrv obj /usr/libexec/xdp-tools/xdp_drop.o sec xdp
    for size in 64 1514; do
      # The third row is the AF_XDP sending ceiling of this machine: the generator, no capture.
      local order=(xsend tcpreplay ceiling live) i
      for i in 0 1 2 3; do
        case ${order[$(( (i + rep) % 4 ))]} in
          ceiling) replay_top "replay$size topspeed" "ceiling: xsend bench (AF_XDP generator)" "$rep" \
                   "$X" bench --backend xdp --to $PEER:9 --dst-mac $MACB --size "$size" --count 2000000 --json ;;
          xsend) replay_top "replay$size topspeed" "xsend replay (AF_XDP)" "$rep" \
                   "$X" replay "$WORK/r$size.pcap" --iface "$IFA" --backend xdp --topspeed --loop 20 --json ;;
          live) replay_top "replay$size topspeed" "xsend replay (live frames)" "$rep" \
                   "$X" replay "$WORK/r$size.pcap" --iface "$IFA" --backend live --topspeed --loop 20 --json ;;
          tcpreplay) replay_top "replay$size topspeed" "tcpreplay" "$rep" \
                   tcpreplay -i "$IFA" --topspeed --loop 20 -q "$WORK/r$size.pcap" ;;
        esac
      done
    done
    ip -n "$B" link set dev "$IFB" xdp off
    # GRO on the peer: its veth then takes redirected frames (live frames) into the stack.
    inB ethtool -K "$IFB" gro on >/dev/null
    local order=(xsend tcpreplay live) i
    for i in 0 1 2; do
      case ${order[$(( (i + rep) % 3 ))]} in
        xsend) replay_timing "xsend replay (AF_XDP)" "$rep" "$X" replay "$WORK/rtime.pcap" --iface "$IFA" --backend xdp --json ;;
        live) replay_timing "xsend replay (live frames)" "$rep" "$X" replay "$WORK/rtime.pcap" --iface "$IFA" --backend live --json ;;
        tcpreplay) replay_timing "tcpreplay" "$rep" tcpreplay -i "$IFA" -q "$WORK/rtime.pcap" ;;
      esac
    done
    inB ethtool -K "$IFB" gro off >/dev/null
  done
}

# ---------------------------------------------------------------- rate control
# xsend bench at 10 %, 50 % and 90 % of its unpaced maximum (64-byte frames, drop sink; the
# maximum sustained over RATE_SECS, counted at the peer), RATE_SECS seconds of packets each
# (--count): the peer counts the whole run
# (scripts/peer_rate.py polls its rx counter every millisecond, pinned to the CPU the sender
# does not use) and its rate is compared with the target; the tool reports the
# inter-departure jitter and its lateness against the schedule. The whole run is measured
# rather than a window: an open-loop sender that is held up (the CPU is shared with the
# veth receive path) catches up afterwards, so a window placed after a hold-up would count
# the catch-up burst and miss the hold-up.
suite_rate() { # [backend: xdp (default) or live]
  local rb=${1:-xdp}
  ip -n "$B" link set dev "$IFB" xdpdrv obj /usr/libexec/xdp-tools/xdp_drop.o sec xdp
  for rep in $(seq "$REPS"); do
    echo "bench.sh: rate suite ($rb), repetition $rep/$REPS" >&2
    # The maximum: what the sender sustains unpaced over a run as long as the paced ones,
    # counted at the peer the same way (a short probe catches a fast moment, and 90 % of
    # that is more than the sender sustains while the veth receive path shares its CPU).
    local max spid
    inB taskset -c 1 "$SYS_PY" scripts/peer_rate.py "$IFB" 1.0 $((RATE_SECS + 30)) > "$WORK/peer.json" &
    spid=$!
    sleep 0.5
    inA "$X" bench --backend "$rb" --to $PEER:9 --dst-mac $MACB --size 64 --duration "$RATE_SECS" --json > /dev/null
    wait $spid
    max=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["pps"]))' "$WORK/peer.json")
    for pct in 10 50 90; do
      local target=$((max * pct / 100))
      inB taskset -c 1 "$SYS_PY" scripts/peer_rate.py "$IFB" 1.0 $((RATE_SECS + 30)) > "$WORK/peer.json" &
      spid=$!
      sleep 0.5
      inA "$X" bench --backend "$rb" --to $PEER:9 --dst-mac $MACB --size 64 --pps "$target" \
        --count $((target * RATE_SECS)) --json > "$WORK/tool.out"
      wait $spid
      emit "$(python3 - "$WORK/peer.json" "$WORK/tool.out" "$target" "$max" "$pct" "$rep" "$rb" <<'PY'
import json, sys
peer, out, target, mx, pct, rep = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5], int(sys.argv[6])
backend = sys.argv[7]
p = json.load(open(peer))
tool = json.loads([l for l in open(out) if l.startswith("{")][-1])
per = p.get("per_second_pps") or [0]
q = lambda k, p: (tool.get(k) or {}).get(p)
print(json.dumps({"test": f"rate {pct}%", "tool": f"xsend bench --backend {backend} --pps", "rep": rep, "size": 64,
  "pps": p["pps"], "gbps": p["pps"] * 88 * 8 / 1e9, "target_pps": target, "max_pps": mx,
  "error_pct": (p["pps"] - target) / target * 100, "seconds_at_peer": p["seconds"],
  "counted": p["total"], "sent": tool["packets"], "sender_pps": tool["pps"],
  "per_second_min_pps": min(per), "per_second_max_pps": max(per),
  "inter_departure_p50_ns": q("inter_departure", "p50_ns"),
  "inter_departure_p99_ns": q("inter_departure", "p99_ns"),
  "lateness_p99_ns": q("lateness", "p99_ns")}))
PY
)"
    done
  done
  ip -n "$B" link set dev "$IFB" xdp off
}

# ---------------------------------------------------------------- live frames
# xsend bench --backend live (the in-kernel generator, stamping every frame) next to the
# reference loop (the same BPF_PROG_RUN, the constant template redirected, nothing stamped:
# the kernel's ceiling), xsend's AF_XDP generator and dpdk-testpmd's net_af_xdp txonly, 64 and
# 1514-byte frames into the drop sink, one sending core; packets/s = the peer's rx counter
# over a steady-state window. xdp-trafficgen is tried once and whether it loads is recorded.
# Then the rate suite on live frames (10/50/90 % of its maximum, counted at the peer).
suite_live() {
  TG=$(inA timeout 5 xdp-trafficgen udp "$IFA" -m $MACB -a $PEER 2>&1 | tail -3 || true) python3 -c "
import json, os
out = os.environ['TG']
print(json.dumps({'test': 'xdp-trafficgen', 'tool': 'xdp-trafficgen udp', 'rep': 1, 'pps': 0, 'gbps': 0,
  'loads': 'Failed' not in out and 'rror' not in out, 'output': out}))" >> "$RES"
  ip -n "$B" link set dev "$IFB" xdpdrv obj /usr/libexec/xdp-tools/xdp_drop.o sec xdp
  local tools=(live reference xdp testpmd) n=4 i
  for rep in $(seq "$REPS"); do
    for size in 64 1514; do
      echo "bench.sh: live suite, repetition $rep/$REPS, $size-byte frames" >&2
      for i in $(seq 0 $((n - 1))); do
        case ${tools[$(( (i + rep) % n ))]} in
          live) window "udp$size drop" "xsend bench --backend live" "$rep" "$size" \
                  "$X" bench --backend live --to $PEER:9 --dst-mac $MACB --size "$size" --duration 120 ;;
          reference) window "udp$size drop" "reference loop (live frames, no stamping)" "$rep" "$size" \
                  "$X" bench --backend live --live-reference --to $PEER:9 --dst-mac $MACB --size "$size" --duration 120 ;;
          xdp) window "udp$size drop" "xsend bench (AF_XDP)" "$rep" "$size" \
                  "$X" bench --backend xdp --to $PEER:9 --dst-mac $MACB --size "$size" --duration 120 ;;
          testpmd) testpmd_cmd af_xdp "$size"
                   window "udp$size drop" "dpdk-testpmd net_af_xdp" "$rep" "$size" "${TP[@]}"
                   # (testpmd takes the link down and up: the sink stays, the neighbours are restored.)
                   ;;
        esac
      done
    done
  done
  ip -n "$B" link set dev "$IFB" xdp off
  suite_rate live
}

# ---------------------------------------------------------------- receiving port
# "run_time_ns run_cnt" of the XDP program attached to the peer's interface (needs
# kernel.bpf_stats_enabled=1).
rx_prog_stats() {
  local id
  id=$(ip -n "$B" -j link show "$IFB" | python3 -c "import json,sys; print(json.load(sys.stdin)[0]['xdp']['prog']['id'])")
  bpftool -j prog show id "$id" | python3 -c "import json,sys; p=json.load(sys.stdin); print(p.get('run_time_ns', 0), p.get('run_cnt', 0))"
}

# One unpaced 64 B run (60 + FCS) of generator $1 into sink $2 (rxport: xsend's receiving
# port, attached by `xsend bench --rx-iface`; drop: xdp_drop) on the pair lab's peer.
rxport_run() { # gen sink rep
  local gen=$1 sink=$2 rep=$3 n0 n1 pid rt0 c0 t0 rt1 c1 t1
  local args=(bench --backend "$gen" --to $PEER:9 --dst-mac $MACB --size 60 --duration $((SECS + 3)) --json)
  if [ "$sink" = drop ]; then
    ip -n "$B" link set dev "$IFB" xdpdrv obj /usr/libexec/xdp-tools/xdp_drop.o sec xdp
  else
    args+=(--rx-netns "$B" --rx-iface "$IFB")
  fi
  n0=$(rx_packets)
  inA "$X" "${args[@]}" > "$WORK/rx.json" 2> "$WORK/rx.err" &
  pid=$!
  sleep 1.5
  read -r rt0 c0 <<< "$(rx_prog_stats)"; t0=$(date +%s%N)
  sleep "$SECS"
  read -r rt1 c1 <<< "$(rx_prog_stats)"; t1=$(date +%s%N)
  wait $pid || { echo "bench.sh: xsend bench --backend $gen into $sink failed:" >&2; tail -5 "$WORK/rx.err" >&2; }
  n1=$(rx_packets)
  [ "$sink" = drop ] && ip -n "$B" link set dev "$IFB" xdp off
  python3 - "$WORK/rx.json" "$gen" "$sink" "$rep" $((n1 - n0)) "$rt0" "$c0" "$t0" "$rt1" "$c1" "$t1" >> "$RES" <<'PY'
import json, sys
path, gen, sink, rep, iface = sys.argv[1:6]
rt0, c0, t0, rt1, c1, t1 = map(int, sys.argv[6:12])
try:
    d = json.load(open(path))
except ValueError:
    d = {"packets": 0}
iface, runs = int(iface), max(c1 - c0, 1)
rx = d.get("rx") or {}
pps = (c1 - c0) / ((t1 - t0) / 1e9)
# Keeping up: every frame the interface received was looked at: the run's frames counted, and
# the rest (kernel chatter such as IPv6 router solicitations, which a live-frames generator's
# TX counter also counts as sent) passed as "other".
seen = rx.get("received", 0) + rx.get("other", 0) + rx.get("unknown_stream", 0)
print(json.dumps({"test": "rxport 64 B", "tool": f"{gen} -> {sink}", "gen": gen, "sink": sink, "rep": int(rep),
  "pps": pps, "gbps": pps * 84 * 8 / 1e9, "ns_per_frame": (rt1 - rt0) / runs, "sent": d.get("packets", 0),
  "iface_rx": iface, "counted": rx.get("received"), "other": rx.get("other"), "lost": rx.get("lost"),
  "gaps": rx.get("gaps"), "keeps_up": seen == iface if rx else None,
  "latency_p50_us": (rx.get("latency") or {}).get("p50_us")}))
PY
}

# The receiving port next to the xdp_drop sink (the cheapest receiver): 64 B frames unpaced
# from live frames and from AF_XDP, interleaved; does it count every frame the peer's
# interface received (= sent), and what does it cost per frame (the program's run_time_ns /
# run_cnt over a steady $SECS s window, kernel.bpf_stats_enabled=1 for both sinks)?
suite_rxport() {
  local stats_was sinks=(rxport drop) gens=(live xdp) i j
  stats_was=$(sysctl -n kernel.bpf_stats_enabled)
  sysctl -qw kernel.bpf_stats_enabled=1
  for rep in $(seq "$REPS"); do
    echo "bench.sh: receiving port, repetition $rep/$REPS" >&2
    for i in 0 1; do
      for j in 0 1; do
        rxport_run "${gens[$(( (i + rep) % 2 ))]}" "${sinks[$(( (j + rep) % 2 ))]}" "$rep"
      done
    done
  done
  sysctl -qw kernel.bpf_stats_enabled="$stats_was"
}

# ---------------------------------------------------------------- ndr
# xsend ndr through a DUT lab policed at a known rate (NDR_RATE packets/s, default 200k), at
# 64, 512 and 1518 B: the NDR found against the policed rate (error %), the PDR and the trials
# taken. Its own lab (the DUT topology), trials of NDR_TRIAL s and final trials of 2x that.
suite_ndr() {
  suite_rxport
  local rate=${NDR_RATE:-200000} trial=${NDR_TRIAL:-2}
  DUT=xn$$
  "$X" lab up --name "$DUT" --topology dut --dut-rate "$rate" >/dev/null
  local dut=$DUT
  for rep in $(seq "$REPS"); do
    echo "bench.sh: ndr suite, repetition $rep/$REPS" >&2
    "$X" ndr --netns "${dut}a" --to 198.19.0.2:9 --rx-netns "${dut}b" --rx-iface "${dut}b" \
      --size 64,512,1518 --trial "$trial" --final $((trial * 2)) --precision 0.5% --json \
      --plot "$WORK/ndr.png" \
      > "$WORK/ndr.json" 2> "$WORK/ndr.err" || { tail -5 "$WORK/ndr.err" >&2; continue; }
    python3 - "$WORK/ndr.json" "$rate" "$rep" >> "$RES" <<'PY'
import json, sys
d, rate, rep = json.load(open(sys.argv[1])), float(sys.argv[2]), int(sys.argv[3])
for r in d["results"]:
    print(json.dumps({"test": f"ndr {r['size']} B", "tool": f"xsend ndr ({d['backend']})", "rep": rep,
      "pps": r["ndr_pps"], "gbps": r["ndr_gbps"], "ndr_pps": r["ndr_pps"], "pdr_pps": r["pdr_pps"],
      "policed_pps": rate, "error_pct": (r["ndr_pps"] - rate) / rate * 100, "trials": r["trials"],
      "latency_p50_us": r["latency_p50_us"], "latency_p99_us": r["latency_p99_us"]}))
PY
  done
  "$X" lab down "$dut" >/dev/null 2>&1 || true
  NDR_PLOT=$WORK/ndr.png
}

# ---------------------------------------------------------------- dpdk suite
# The DPDK backend next to dpdk-testpmd --forward-mode=txonly. net_null (no I/O, the cost of
# making packets in user space): both on CPU 1, 64 and 1514 B, frames counted by each tool
# over its run; and a chunked file send on net_null (Gbit/s of file bytes framed per core).
# Then net_af_xdp on the lab's veth into the drop sink: xsend over DPDK, testpmd on the same
# vdev, xsend's own AF_XDP backend, counted at the peer (window).
null_run() { # rep size tool
  local rep=$1 size=$2 tool=$3
  case $tool in
    xsend)
      inA taskset -c 1 "$X" bench --backend dpdk --dpdk-args "--vdev=net_null0 -l 0" --src-ip 198.18.0.1 \
        --dst-mac $MACB --to $PEER:9 --size "$size" --duration "$SECS" --json > "$WORK/n.json" 2>/dev/null
      emit "$(python3 - "$rep" "$size" "$WORK/n.json" <<'PY'
import json, sys
rep, size, d = int(sys.argv[1]), int(sys.argv[2]), json.load(open(sys.argv[3]))
pps = d["packets"] / d["seconds"]
print(json.dumps({"test": f"dpdk null {size}", "tool": "xsend bench (DPDK net_null)", "rep": rep,
  "size": size, "pps": pps, "gbps": pps * (size + 24) * 8 / 1e9, "ns_per_pkt": 1e9 / pps}))
PY
)" ;;
    testpmd)
      # (Its forwarding lcore is CPU 1; stats every second; the steady seconds' median.)
      inA timeout -s INT $((SECS + 3)) dpdk-testpmd --no-huge --no-pci -m 512 -l 0-1 --log-level=error \
        --file-prefix "$LAB" --vdev=net_null0 -- --forward-mode=txonly --txpkts="$size" --auto-start \
        --stats-period=1 --nb-cores=1 --total-num-mbufs=16384 --burst=32 > "$WORK/tp.out" 2>&1 || true
      rm -rf "/var/run/dpdk/$LAB"
      emit "$(python3 - "$rep" "$size" "$WORK/tp.out" <<'PY'
import json, re, statistics, sys
rep, size = int(sys.argv[1]), int(sys.argv[2])
v = [int(x) for x in re.findall(r"Tx-pps:\s+(\d+)", open(sys.argv[3], errors="replace").read())]
v = [x for x in v[2:] if x > 0] or [x for x in v if x > 0] or [0]
pps = statistics.median(v)
print(json.dumps({"test": f"dpdk null {size}", "tool": "dpdk-testpmd txonly net_null", "rep": rep,
  "size": size, "pps": pps, "gbps": pps * (size + 24) * 8 / 1e9, "ns_per_pkt": 1e9 / pps if pps else None}))
PY
)" ;;
    file-copy|file-zero-copy)
      dpdk_file "$rep" "dpdk null file" "net_null" "${tool#file-}" --dpdk-args "--vdev=net_null0 -l 0" \
        --src-ip 198.18.0.1 --dst-mac $MACB ;;
  esac
}

# A chunked UDP file send over DPDK, file bytes copied into mbufs or sent from the file's
# pages (chained external buffers): rep test pmd payload [send args].
dpdk_file() {
  local rep=$1 test=$2 pmd=$3 payload=$4
  shift 4
  inA taskset -c 1 "$X" send "$WORK/file" --proto udp --chunk auto --backend dpdk --payload "$payload" \
    --to $PEER:9 --json "$@" > "$WORK/n.json" 2>/dev/null
  emit "$(python3 - "$rep" "$WORK/n.json" "$test" "$pmd" "$payload" <<'PY'
import json, sys
rep, d, test, pmd, payload = int(sys.argv[1]), json.load(open(sys.argv[2])), sys.argv[3], sys.argv[4], sys.argv[5]
assert d["payload"] == payload, d
print(json.dumps({"test": test, "tool": f"xsend send chunked file (DPDK {pmd}, {payload})", "rep": rep,
  "size": 1514, "pps": d["packets"] / d["seconds"], "gbps": d["bytes"] * 8 / d["seconds"] / 1e9}))
PY
)"
}

suite_dpdk() {
  head -c $((SIZE_MIB << 20)) /dev/urandom > "$WORK/file"
  cat "$WORK/file" > /dev/null
  local i n
  for rep in $(seq "$REPS"); do
    echo "bench.sh: dpdk suite, repetition $rep/$REPS, net_null" >&2
    for size in 64 1514; do
      if [ $((rep % 2)) = 0 ]; then null_run "$rep" "$size" testpmd; null_run "$rep" "$size" xsend
      else null_run "$rep" "$size" xsend; null_run "$rep" "$size" testpmd; fi
    done
    if [ $((rep % 2)) = 0 ]; then null_run "$rep" 1514 file-zero-copy; null_run "$rep" 1514 file-copy
    else null_run "$rep" 1514 file-copy; null_run "$rep" 1514 file-zero-copy; fi
  done
  ip -n "$B" link set dev "$IFB" xdpdrv obj /usr/libexec/xdp-tools/xdp_drop.o sec xdp
  # The file over net_af_packet on the veth into the drop sink, both payload roads.
  for rep in $(seq "$REPS"); do
    echo "bench.sh: dpdk suite, repetition $rep/$REPS, file over net_af_packet" >&2
    local roads=(copy zero-copy)
    [ $((rep % 2)) = 0 ] && roads=(zero-copy copy)
    for road in "${roads[@]}"; do
      dpdk_file "$rep" "dpdk af_packet file" "net_af_packet" "$road" --dpdk-args "--vdev=net_af_packet0,iface=$IFA -l 0" --dst-mac $MACB
    done
  done
  local tools=(xsend_dpdk testpmd xsend_xdp)
  for rep in $(seq "$REPS"); do
    for size in 64 1514; do
      echo "bench.sh: dpdk suite, repetition $rep/$REPS, net_af_xdp, $size-byte frames" >&2
      n=${#tools[@]}
      for i in $(seq 0 $((n - 1))); do
        case ${tools[$(( (i + rep) % n ))]} in
          xsend_dpdk) window "dpdk af_xdp $size drop" "xsend bench (DPDK net_af_xdp)" "$rep" "$size" \
                        taskset -c 1 "$X" bench --backend dpdk --dpdk-args "--vdev=net_af_xdp0,iface=$IFA,busy_budget=0 -l 0" \
                        --to $PEER:9 --dst-mac $MACB --size "$size" --duration 120 ;;
          testpmd) testpmd_cmd af_xdp "$size"; window "dpdk af_xdp $size drop" "dpdk-testpmd net_af_xdp" "$rep" "$size" "${TP[@]}"
                   rm -rf "/var/run/dpdk/$LAB" ;;
          xsend_xdp) window "dpdk af_xdp $size drop" "xsend bench (AF_XDP)" "$rep" "$size" \
                       taskset -c 1 "$X" bench --backend xdp --to $PEER:9 --dst-mac $MACB --size "$size" --duration 120 ;;
        esac
      done
    done
  done
  ip -n "$B" link set dev "$IFB" xdp off
  rm -f "$WORK/file"
}

# ---------------------------------------------------------------- memory
# Max resident size of `xsend send` for a 4 MiB and a 4 GiB file (UDP to a drop sink): the
# UMEM and buffers are sized to the rings, so the two must be within a few MiB.
suite_mem() {
  head -c $((4 << 20)) /dev/urandom > "$WORK/small"
  head -c $((4 << 30)) /dev/zero > "$WORK/large"
  ip -n "$B" link set dev "$IFB" xdpdrv obj /usr/libexec/xdp-tools/xdp_drop.o sec xdp
  for backend in xdp kernel; do
    for f in small large; do
      emit "$(inA python3 - "$backend" "$f" "$WORK/$f" "$X" $PEER $MACB <<'PY'
import json, resource, subprocess, sys, os
backend, name, path, x, peer, mac = sys.argv[1:7]
subprocess.run([x, "send", path, "--to", peer + ":9", "--proto", "udp", "--backend", backend, "--dst-mac", mac],
               stdout=subprocess.DEVNULL, check=True)
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"test": "max RSS", "tool": f"xsend send --backend {backend}", "rep": 1,
  "file": name, "file_bytes": os.path.getsize(path), "rss_mib": rss, "pps": 0, "gbps": 0}))
PY
)"
    done
  done
  ip -n "$B" link set dev "$IFB" xdp off
  rm -f "$WORK/small" "$WORK/large"
}

case $SUITE in
  kernel) suite_kernel ;;
  xdp) suite_xdp ;;
  mem) suite_mem ;;
  rate) suite_rate ;;
  tcp) suite_tcp ;;
  replay) suite_replay ;;
  live) suite_live ;;
  live-rate) suite_rate live ;;
  ndr) suite_ndr ;;
  rxport) suite_rxport ;;
  payload) suite_payload ;;
  replay-drift) suite_replay_drift ;;
  dpdk) suite_dpdk ;;
  all) suite_kernel; suite_xdp; suite_tcp; suite_rate; suite_mem; suite_replay; suite_live ;;
  *) echo "bench.sh: unknown suite $SUITE" >&2; exit 2 ;;
esac

mkdir -p bench-results
OUT=bench-results/$(date -u +%Y-%m-%d)-$NAME
# The last repetition's `xsend ndr --plot`.
[ -z "${NDR_PLOT:-}" ] || [ ! -f "$NDR_PLOT" ] || cp "$NDR_PLOT" "$OUT-ndr.png"
"$SYS_PY" scripts/bench_report.py "$RES" "$OUT" "$REPS" "$SECS"
