#!/usr/bin/env python3
"""Count a paced run's packets at the peer interface and measure its rate there.

Run inside the peer's namespace: polls /sys/class/net/IF/statistics/rx_packets every
millisecond until the counter has moved (the run started) and then stood still for
`--idle` seconds (the run ended). A sample counts as "in the run" when at least MIN_DELTA
packets arrived since the previous one, so stray frames (neighbour discovery) neither start
nor end the run. The rate is taken between the first and the last in-run sample (both
inside the run, so no partial millisecond at either end is counted), and the rate of every
whole second in between is reported too. Prints one JSON object.
"""
import json
import os
import sys
import time

MIN_DELTA = 5


def main():
    iface = sys.argv[1]
    idle = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    limit = float(sys.argv[3]) if len(sys.argv) > 3 else 600.0
    fd = os.open(f"/sys/class/net/{iface}/statistics/rx_packets", os.O_RDONLY)

    def read():
        return int(os.pread(fd, 64, 0))

    samples = []  # (ns, count) of in-run samples
    start = time.monotonic_ns()
    prev = read()
    base = prev
    last_move = None
    while True:
        time.sleep(0.001)
        now = time.monotonic_ns()
        c = read()
        if c - prev >= MIN_DELTA:
            samples.append((now, c))
            last_move = now
        prev = c
        if last_move is not None and now - last_move > idle * 1e9:
            break
        if now - start > limit * 1e9:
            break
    out = {"samples": len(samples), "total": prev - base}
    if len(samples) >= 2:
        (t0, c0), (t1, c1) = samples[0], samples[-1]
        out.update({"pps": (c1 - c0) / ((t1 - t0) / 1e9), "seconds": (t1 - t0) / 1e9})
        # Rate of each whole second (between in-run samples about a second apart).
        per_sec, (tk, ck) = [], samples[0]
        for t, c in samples:
            if t - tk >= 1_000_000_000:
                per_sec.append((c - ck) / ((t - tk) / 1e9))
                tk, ck = t, c
        out["per_second_pps"] = per_sec
    print(json.dumps(out))


if __name__ == "__main__":
    main()
