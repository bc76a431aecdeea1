#!/usr/bin/env python3
"""The report of scripts/bench.sh: reads its results (one JSON object per run and line) and
writes <out>.md (tables, ratios of medians), <out>.json and <out>.png.

usage: bench_report.py RESULTS.jsonl OUT REPS SECONDS
"""
import json, os, statistics, sys, platform, subprocess
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
out, reps, secs = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
mem = [r for r in rows if r["test"] == "max RSS"]
rate = [r for r in rows if r["test"].startswith("rate ")]
rtiming = [r for r in rows if r["test"].startswith("replay timing") or r["test"].startswith("replay 60")]
ndr = [r for r in rows if r["test"].startswith("ndr ")]
rxp = [r for r in rows if r["test"].startswith("rxport ")]
rows_perf = [r for r in rows if r["test"] != "max RSS" and not r["test"].startswith("rate ") and not r["test"].startswith("ndr ")
             and not r["test"].startswith("rxport ")
             and not r["test"].startswith("replay timing") and r["test"] != "xdp-trafficgen"]
groups = {}
for r in rows_perf:
    groups.setdefault((r["test"], r["tool"]), []).append(r)
summary = []
for (test, tool), rs in groups.items():
    p = [r.get("pps", 0) for r in rs]
    g = [r["gbps"] for r in rs]
    row = {"test": test, "tool": tool, "median_pps": statistics.median(p), "min_pps": min(p),
           "max_pps": max(p), "median_gbps": statistics.median(g), "runs": len(rs)}
    if all("cpu_s_per_gib" in r for r in rs):
        row["median_cpu_s_per_gib"] = statistics.median(r["cpu_s_per_gib"] for r in rs)
    summary.append(row)
OLD = " [old]"
ratios = {}
for test in sorted({s["test"] for s in summary}):
    mine = [s for s in summary if s["test"] == test and s["tool"].startswith("xsend") and not s["tool"].endswith(OLD)]
    refs = [s for s in summary if s["test"] == test and not s["tool"].startswith("xsend")]
    for m in mine:
        for r in refs:
            key = "median_gbps" if test in ("tcp", "udp") or test.startswith("tcp ") else "median_pps"
            if r[key] > 1e-3 * m[key]:  # a tool that did not run is no reference
                ratios[f"{test}: {m['tool']} / {r['tool']}"] = m[key] / r[key]
# TCP over AF_XDP against every other tool of its test (incl. xsend's own UDP and kernel paths).
for test in sorted({s["test"] for s in summary if s["test"].startswith("tcp ")}):
    me = next((s for s in summary if s["test"] == test and s["tool"] == "xsend tcp (AF_XDP)"), None)
    for r in summary:
        if me and r["test"] == test and r is not me and r["median_gbps"] > 0:
            ratios[f"{test}: {me['tool']} / {r['tool']}"] = me["median_gbps"] / r["median_gbps"]
# Live frames against xsend's own AF_XDP generator.
for test in sorted({s["test"] for s in summary}):
    lv = next((s for s in summary if s["test"] == test and s["tool"] == "xsend bench --backend live"), None)
    xd = next((s for s in summary if s["test"] == test and s["tool"] == "xsend bench (AF_XDP)"), None)
    if lv and xd and xd["median_pps"] > 0:
        ratios[f"{test}: {lv['tool']} / {xd['tool']}"] = lv["median_pps"] / xd["median_pps"]
# File payloads (payload suite) against synthetic frames and against each other.
for test in sorted({s["test"] for s in summary if s["test"].startswith("file")}):
    fs = [s for s in summary if s["test"] == test and s["tool"].startswith("xsend send")]
    syn = next((s for s in summary if s["test"] == test and "synthetic" in s["tool"]), None)
    for f in fs:
        for r in ([syn] if syn else []) + [g for g in fs if g is not f and "zero-copy" in f["tool"]]:
            if r["median_pps"] > 0:
                ratios[f"{test}: {f['tool']} / {r['tool']}"] = f["median_pps"] / r["median_pps"]
# The receiving port against the xdp_drop sink, per generator: frames/s through the program and
# its cost per frame.
for gen in sorted({r["gen"] for r in rxp}):
    med = lambda sink, k: statistics.median(r[k] for r in rxp if r["gen"] == gen and r["sink"] == sink) if any(
        r["gen"] == gen and r["sink"] == sink for r in rxp) else None
    if med("drop", "pps") and med("rxport", "pps") is not None:
        ratios[f"rxport 64 B, {gen}: frames/s into the receiving port / into xdp_drop"] = med("rxport", "pps") / med("drop", "pps")
    if med("drop", "ns_per_frame") and med("rxport", "ns_per_frame") is not None:
        ratios[f"rxport 64 B, {gen}: ns per frame, receiving port / xdp_drop"] = med("rxport", "ns_per_frame") / med("drop", "ns_per_frame")
# DPDK: xsend over DPDK against xsend's own AF_XDP backend on the same interface.
for test in sorted({s["test"] for s in summary if s["test"].startswith("dpdk af_xdp")}):
    dp = next((s for s in summary if s["test"] == test and s["tool"] == "xsend bench (DPDK net_af_xdp)"), None)
    xd = next((s for s in summary if s["test"] == test and s["tool"] == "xsend bench (AF_XDP)"), None)
    if dp and xd and xd["median_pps"] > 0:
        ratios[f"{test}: {dp['tool']} / {xd['tool']}"] = dp["median_pps"] / xd["median_pps"]
# DPDK file payloads: from the file's pages (chained external buffers) against copied.
for test in sorted({s["test"] for s in summary if s["test"].startswith("dpdk") and s["test"].endswith("file")}):
    zc = next((s for s in summary if s["test"] == test and s["tool"].endswith(", zero-copy)")), None)
    cp = next((s for s in summary if s["test"] == test and s["tool"].endswith(", copy)")), None)
    if zc and cp and cp["median_gbps"] > 0:
        ratios[f"{test}: {zc['tool']} / {cp['tool']} (Gbit/s)"] = zc["median_gbps"] / cp["median_gbps"]
tgen = [r for r in rows if r["test"] == "xdp-trafficgen"]
# This build against an older one (XSEND_OLD), per test and tool.
new_old = {}
for o in (s for s in summary if s["tool"].endswith(OLD)):
    n = next((s for s in summary if s["test"] == o["test"] and s["tool"] == o["tool"][:-len(OLD)]), None)
    key = "median_gbps" if o["test"].startswith("tcp ") else "median_pps"
    if n and o[key] > 0:
        new_old[f"{o['test']}: {n['tool']}"] = n[key] / o[key]
meta = {"kernel": platform.release(), "cpus": subprocess.getoutput("nproc"), "repetitions": reps,
        "window_or_iperf_seconds": secs, "lab": f"veth pair between two netns, MTU {os.environ.get('BENCH_MTU', '1500')}, copy mode",
        "counted_at": "receiver: peer interface rx counter (xdp suite) or receiving application (kernel suite)"}
json.dump({"meta": meta, "summary": summary, "ratios": ratios, "new_over_old": new_old, "runs": rows}, open(out + ".json", "w"), indent=1)
with open(out + ".md", "w") as f:
    f.write(f"# {out.split('/')[-1]}\n\n")
    f.write("".join(f"- {k}: {v}\n" for k, v in meta.items()))
    f.write("\n| test | tool | median pps | min | max | median Gbit/s | CPU s/GiB | runs |\n|---|---|---|---|---|---|---|---|\n")
    for s in sorted(summary, key=lambda s: (s["test"], s["tool"])):
        cpu = f"{s['median_cpu_s_per_gib']:.2f}" if "median_cpu_s_per_gib" in s else ""
        f.write(f"| {s['test']} | {s['tool']} | {s['median_pps']:.0f} | {s['min_pps']:.0f} | {s['max_pps']:.0f} | {s['median_gbps']:.2f} | {cpu} | {s['runs']} |\n")
    f.write("\n| ratio of medians (pps; Gbit/s for tcp/udp goodput) | value |\n|---|---|\n")
    f.write("".join(f"| {k} | {v:.2f} |\n" for k, v in sorted(ratios.items())))
    if new_old:
        f.write("\n| this build / XSEND_OLD (ratio of medians: pps; Gbit/s for tcp) | value |\n|---|---|\n")
        f.write("".join(f"| {k} | {v:.3f} |\n" for k, v in sorted(new_old.items())))
    nulls = [s for s in summary if s["test"].startswith("dpdk null") and s["median_pps"] > 0]
    if nulls:
        f.write("\n| DPDK net_null (no I/O) | tool | ns per packet (median) |\n|---|---|---|\n")
        f.write("".join(f"| {s['test']} | {s['tool']} | {1e9 / s['median_pps']:.1f} |\n" for s in sorted(nulls, key=lambda s: (s["test"], s["tool"]))))
    for r in tgen:
        f.write(f"\nxdp-trafficgen udp: {'loads' if r['loads'] else 'does not load'} on this kernel: `{r['output'].strip()[:300]}`\n")
    us = lambda v, d=2: "n/a" if v is None else f"{v / 1e3:.{d}f}"
    if rate:
        f.write("\n| rate control (64 B, drop sink, whole run at the peer) | tool | rep | target pps | pps at peer | error % | seconds at peer | slowest / fastest second pps | sent = counted | inter-departure p50 / p99 µs | lateness p99 µs |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
        f.write("".join(f"| {r['test']} of {r['max_pps']:.0f} | {r['tool']} | {r['rep']} | {r['target_pps']:.0f} | {r['pps']:.0f} | {r['error_pct']:+.2f} | {r['seconds_at_peer']:.3f} | {r['per_second_min_pps']:.0f} / {r['per_second_max_pps']:.0f} | {r['sent']} {'=' if r['sent'] == r['counted'] else '≠'} {r['counted']} | {us(r['inter_departure_p50_ns'])} / {us(r['inter_departure_p99_ns'])} | {us(r['lateness_p99_ns'], 1)} |\n" for r in rate))
    if rtiming:
        f.write("\n| replay, original timing (10 µs / 1 ms gaps), at the peer | rep | frames | inter-arrival error p50 / p99 / max µs | drift of the run % |\n|---|---|---|---|---|\n")
        f.write("".join(f"| {r['tool']}{' (60 s)' if r['test'].startswith('replay 60') else ''} | {r['rep']} | {r['frames']} | {r['err_p50_ns']/1e3:.1f} / {r['err_p99_ns']/1e3:.1f} / {r['err_max_ns']/1e3:.1f} | {r['drift_pct']:+.4f} |\n" for r in rtiming))
        for tool in sorted({r["tool"] for r in rtiming}):
            p99 = statistics.median(r["err_p99_ns"] for r in rtiming if r["tool"] == tool)
            f.write(f"\nmedian p99 inter-arrival error, {tool}: {p99/1e3:.1f} µs")
        f.write("\n")
    if ndr:
        f.write("\n| NDR search through a policed DUT | rep | policed pps | NDR pps | error % | PDR pps | latency p50 / p99 µs | trials |\n|---|---|---|---|---|---|---|---|\n")
        lat = lambda r: f"{r.get('latency_p50_us') or 0:.1f} / {r.get('latency_p99_us') or 0:.1f}"
        f.write("".join(f"| {r['test']} ({r['tool']}) | {r['rep']} | {r['policed_pps']:.0f} | {r['ndr_pps']:.0f} | {r['error_pct']:+.2f} | {r['pdr_pps']:.0f} | {lat(r)} | {r['trials']} |\n" for r in ndr))
        import os
        if os.path.exists(out + "-ndr.png"):
            f.write(f"\n![NDR and PDR per frame size (xsend ndr --plot, last repetition)]({out.split('/')[-1]}-ndr.png)\n")
    if rxp:
        f.write("\n| receiving port, 64 B unpaced (generator -> sink) | rep | frames/s | ns per frame | sent | peer's interface rx | counted | other | lost | keeps up | latency p50 µs |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
        dash = lambda v: "-" if v is None else v
        f.write("".join(f"| {r['tool']} | {r['rep']} | {r['pps']:.0f} | {r['ns_per_frame']:.1f} | {r['sent']} | {r['iface_rx']} | {dash(r['counted'])} | {dash(r.get('other'))} | {dash(r['lost'])} | {dash(r['keeps_up'] and 'yes' or (r['keeps_up'] is not None and 'NO' or None))} | {dash(r['latency_p50_us'])} |\n" for r in rxp))
        f.write("\n(keeps up: counted + other = what the peer's interface received; xdp_drop is the reference and counts nothing itself.)\n")
    if mem:
        f.write("\n| max RSS | file | MiB |\n|---|---|---|\n")
        f.write("".join(f"| {r['tool']} | {r['file']} ({r['file_bytes'] >> 20} MiB) | {r['rss_mib']:.1f} |\n" for r in mem))
    if any(s["test"].startswith("udp") for s in summary):
        f.write(f"\n![packets/s and Gbit/s per tool and frame size]({out.split('/')[-1]}.png)\n")
print(open(out + ".md").read())

# The plot: median packets/s and Gbit/s per tool, one group per test (frame size, sink).
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
tests = sorted({s["test"] for s in summary if s["test"].startswith("udp")})
tools = sorted({s["tool"] for s in summary if s["test"] in tests})
if tests:
    fig, axes = plt.subplots(2, 1, figsize=(12, 9))
    width = 0.8 / max(len(tools), 1)
    for ax, key, label in ((axes[0], "median_pps", "packets/s (millions)"), (axes[1], "median_gbps", "Gbit/s on the wire")):
        for i, tool in enumerate(tools):
            vals = [next((s[key] for s in summary if s["test"] == t and s["tool"] == tool), 0) for t in tests]
            if key == "median_pps":
                vals = [v / 1e6 for v in vals]
            ax.bar([x + i * width for x in range(len(tests))], vals, width, label=tool)
        ax.set_xticks([x + width * (len(tools) - 1) / 2 for x in range(len(tests))])
        ax.set_xticklabels(tests)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylim(0, axes[0].get_ylim()[1] * 1.3)
    axes[0].legend(fontsize=8, ncol=3, loc="upper left")
    axes[0].set_title(f"{out.split('/')[-1]}: medians of {reps} interleaved runs, counted at the peer (veth, one sending core)")
    fig.tight_layout()
    fig.savefig(out + ".png", dpi=90)
