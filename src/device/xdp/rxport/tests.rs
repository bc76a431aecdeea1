//! The kernel's program against the Rust model (`sansio::seqtrack`), frame by frame through
//! `BPF_PROG_RUN` (nothing is sent). Needs root; without it the test says so, and fails in CI.

use etherparse::PacketBuilder;

use super::*;
use crate::sansio::seqtrack::Stream;
use crate::sansio::wire::probe;

fn load(n: u32, drop: bool) -> Option<RxPortProg> {
    match RxPortProg::load(n, drop) {
        Ok(p) => Some(p),
        Err(Error::NoPermission { .. }) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: loading an XDP program needs root (fails in CI)");
            None
        }
        Err(e) => panic!("loading the receiving port: {e}"),
    }
}

/// A frame of `stream`/`seq`: IPv6 if `kind & 1`, TCP if `kind & 2`, a VLAN tag if `kind & 4`.
fn frame(kind: u32, stream: u32, seq: u64, payload: usize) -> Vec<u8> {
    let mut p = vec![0u8; payload];
    probe::Repr {
        stream,
        seq,
        time: 0,
    }
    .emit(&mut p);
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let a6 = |x: u8| [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, x];
    let mut out = Vec::new();
    match (kind & 1 != 0, kind & 2 != 0) {
        (false, false) => b
            .ipv4([198, 18, 0, 1], [198, 19, 0, 2], 64)
            .udp(1000, 9)
            .write(&mut out, &p),
        (false, true) => b
            .ipv4([198, 18, 0, 1], [198, 19, 0, 2], 64)
            .tcp(1000, 9, 1, 65535)
            .write(&mut out, &p),
        (true, false) => b.ipv6(a6(1), a6(2), 64).udp(1000, 9).write(&mut out, &p),
        (true, true) => b
            .ipv6(a6(1), a6(2), 64)
            .tcp(1000, 9, 1, 65535)
            .write(&mut out, &p),
    }
    .unwrap();
    if kind & 4 != 0 {
        // A VLAN tag (id 7) after the MAC addresses.
        out.splice(12..12, [0x81, 0x00, 0x00, 0x07]);
    }
    out
}

#[test]
fn the_program_counts_as_the_model_does() {
    let Some(prog) = load(4, true) else { return };
    let mut model = [Stream::default(); 4];
    // Stream k has its own header layout; a sequence with every 7th lost, duplicates and
    // late frames, and a jump past the window.
    let mut seqs: Vec<u64> = (0..300).filter(|q| q % 7 != 3).collect();
    seqs.extend([5, 5, 290, 10, 3, 1000, 1001, 17, 999, 1002]);
    let mut n = 0;
    for k in 0..4u32 {
        for &q in &seqs {
            let f = frame(k * 2 + (k & 1), k, q, 16 + k as usize);
            assert!(prog.run_once(&f).unwrap(), "a stream frame is dropped");
            model[k as usize].track(q, f.len() as u64);
            n += 1;
        }
    }
    // Not ours: no magic, too short a payload, a stream past the table (counted, unknown).
    let mut plain = frame(0, 1, 1, 32);
    let len = plain.len();
    plain[len - 32 + 15] ^= 0xff; // the magic's last byte
    assert!(!prog.run_once(&plain).unwrap(), "other frames pass");
    assert!(!prog.run_once(&frame(0, 1, 1, 15)).unwrap());
    assert!(prog.run_once(&frame(0, 9, 1, 16)).unwrap());
    let r = prog.read().unwrap();
    for (k, (got, want)) in r.streams.iter().zip(&model).enumerate() {
        let (mut got, mut want) = (*got, *want);
        // The window is internal; the rest must agree exactly.
        got.window = 0;
        want.window = 0;
        assert_eq!(got, want, "stream {k}");
    }
    assert_eq!((r.frames, r.unknown, r.other), (n + 1, 1, 2));
    assert_eq!(r.lat_n, n + 1);
    assert_eq!(r.lat_hist.iter().sum::<u64>(), n + 1);
    prog.reset().unwrap();
    let z = prog.read().unwrap();
    assert_eq!((z.frames, z.other, z.lat_n), (0, 0, 0));
    assert!(z.streams.iter().all(|s| *s == Stream::default()));
}
