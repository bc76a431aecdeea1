//! Cost of the sans-IO TCP sender per segment (no I/O): `cargo bench --bench tcp_sm`.
//!
//! A lossless peer acknowledges every second segment (delayed ACKs) with timestamps and a
//! large window; the loop polls segments and feeds ACKs, like the AF_XDP driver does. Reports
//! nanoseconds per data segment (poll_transmit + half an ACK each). Under `cargo test` it runs
//! a short smoke pass only.

use std::time::{Duration, Instant};

use xsend::tcp::{Config, Sender};
use xsend::wire::tcp::{Flags, Options, Repr};

fn run(bytes: u64) -> (u64, Duration) {
    let t0 = Instant::now();
    let mut s = Sender::connect(Config::new(1460, 12345), t0);
    let syn = s.poll_transmit(t0).expect("SYN");
    let peer_iss = 777u32;
    let mut ack = Repr {
        seq: peer_iss,
        ack: syn.seq.wrapping_add(1),
        flags: Flags::SYN | Flags::ACK,
        window: 65535,
        options: Options {
            mss: Some(1460),
            wscale: Some(9),
            sack_permitted: true,
            timestamps: Some((1, syn.options.timestamps.map_or(0, |t| t.0))),
            ..Default::default()
        },
        ..Default::default()
    };
    s.on_segment(t0, &ack);
    ack.flags = Flags::ACK;
    ack.seq = peer_iss.wrapping_add(1);
    ack.options = Options::default();
    s.push(bytes);
    let start = Instant::now();
    let mut segs = 0u64;
    let mut pending = 0u32;
    let mut last_ack = 0u32;
    while !s.all_acked() {
        let now = Instant::now();
        while let Some(t) = s.poll_transmit(now) {
            if t.len == 0 {
                continue;
            }
            segs += 1;
            pending += 1;
            last_ack = t.seq.wrapping_add(t.len as u32);
            if pending == 2 {
                pending = 0;
                ack.ack = last_ack;
                ack.options.timestamps = t.options.timestamps.map(|(v, _)| (9, v));
                s.on_segment(now, &ack);
            }
        }
        if pending > 0 {
            pending = 0;
            ack.ack = last_ack;
            s.on_segment(now, &ack);
        }
    }
    (segs, start.elapsed())
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let bytes = if full { 4 << 30 } else { 16 << 20 };
    let reps = if full { 5 } else { 1 };
    let mut best = f64::MAX;
    let mut segs = 0;
    for _ in 0..reps {
        let (n, d) = run(bytes);
        segs = n;
        best = best.min(d.as_nanos() as f64 / n as f64);
    }
    println!(
        "tcp_sm: {segs} data segments ({} MiB), best of {reps}: {best:.1} ns per segment (poll_transmit + 1/2 ACK)",
        bytes >> 20
    );
}
