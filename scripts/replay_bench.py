#!/usr/bin/env python3
"""Captures for the replay benchmark, and the analysis of what the peer saw.

  replay_bench.py make OUT.pcap SIZE COUNT SRCMAC DSTMAC [GAPS_NS...]
      COUNT UDP frames of SIZE bytes 198.18.0.1 -> 198.18.0.2:9, timestamps spaced by the
      GAPS_NS in turn (default 1 µs).
  replay_bench.py timing SENT.pcap SEEN.pcap
      Matches the frames the peer captured (nanosecond pcap) to the capture sent, by the
      sequence number in their payload, and prints JSON: inter-arrival error percentiles
      against the capture's gaps, and the drift of the whole run's length.
"""
import json
import struct
import sys


def frames(path):
    with open(path, "rb") as f:
        head = f.read(24)
        magic = struct.unpack("<I", head[:4])[0]
        nano = magic == 0xA1B23C4D
        while True:
            h = f.read(16)
            if len(h) < 16:
                return
            sec, sub, incl, _ = struct.unpack("<IIII", h)
            data = f.read(incl)
            yield sec * 1_000_000_000 + (sub if nano else sub * 1000), data


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def make(out, size, count, smac, dmac, gaps):
    smac, dmac = bytes.fromhex(smac.replace(":", "")), bytes.fromhex(dmac.replace(":", ""))
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1))
        t = 1_700_000_000 * 1_000_000_000
        for i in range(count):
            payload = struct.pack("!Q", i) + bytes(max(0, size - 42 - 8))
            udp_len = 8 + len(payload)
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, i & 0xFFFF, 0, 64, 17, 0,
                             bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2]))
            ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
            udp = struct.pack("!HHHH", 40000, 9, udp_len, 0) + payload
            frame = dmac + smac + b"\x08\x00" + ip + udp
            f.write(struct.pack("<IIII", t // 1_000_000_000, t % 1_000_000_000, len(frame), len(frame)))
            f.write(frame)
            t += gaps[i % len(gaps)]


def seq(frame):
    return struct.unpack("!Q", frame[42:50])[0] if len(frame) >= 50 else None


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p / 100))] if v else 0


def timing(sent, seen):
    want = {seq(d): t for t, d in frames(sent)}
    got = [(seq(d), t) for t, d in frames(seen) if seq(d) in want]
    errs = []
    for (s0, t0), (s1, t1) in zip(got, got[1:]):
        if s1 == s0 + 1:
            errs.append(abs((t1 - t0) - (want[s1] - want[s0])))
    run = got[-1][1] - got[0][1] if len(got) > 1 else 0
    span = want[got[-1][0]] - want[got[0][0]] if len(got) > 1 else 0
    print(json.dumps({
        "frames": len(got), "pairs": len(errs),
        "err_p50_ns": pct(errs, 50), "err_p99_ns": pct(errs, 99), "err_max_ns": max(errs or [0]),
        "drift_pct": (run - span) / span * 100 if span else 0.0,
    }))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        gaps = [int(g) for g in sys.argv[7:]] or [1000]
        make(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6], gaps)
    else:
        timing(sys.argv[2], sys.argv[3])
