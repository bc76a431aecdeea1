//! The TCP sender state machine driven by arbitrary peer segments, timer events and writes.
//! Invariants: no panic; the acknowledged offset never moves backwards; no segment carries
//! bytes that were not written, nor bytes past what the peer's windows ever allowed (plus the
//! one byte of a zero-window probe).
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};
use xsend::tcp::{Config, Sender, State};
use xsend::wire::tcp::{Flags, Options, Packet, Repr};

struct Input<'a>(&'a [u8]);
impl Input<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.u8()?, self.u8()?]))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes([
            self.u8()?,
            self.u8()?,
            self.u8()?,
            self.u8()?,
        ]))
    }
}

const ISS: u32 = 0xffff_ff00; // wraps soon after the handshake
const PEER_ISS: u32 = 77;

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    let t0 = Instant::now();
    let mut now = t0;
    let mut s = Sender::connect(Config::new(1460, ISS), now);
    s.push(64 << 10);
    let mut acked = 0u64;
    let mut sent_end = 0u64; // highest stream offset sent
    let mut wscale = 0u8;
    let mut allowed = 0u64; // furthest offset any window delivered so far allowed
    let mut closed = false;
    let trace = std::env::var_os("XSEND_FUZZ_TRACE").is_some();
    while let Some(op) = inp.u8() {
        if trace {
            eprintln!(
                "op {} state {:?} acked {} sent_end {sent_end} allowed {allowed} wscale {wscale}",
                op % 6,
                s.state(),
                s.acked()
            );
        }
        match op % 6 {
            0 => {
                for _ in 0..128 {
                    let Some(t) = s.poll_transmit(now) else { break };
                    if trace {
                        eprintln!(
                            "  tx seq {} off {} len {} flags {:?} opts {:?}",
                            t.seq, t.offset, t.len, t.flags, t.options
                        );
                    }
                    let end = t.offset + t.len as u64;
                    // (A segment without data may carry the sequence number after our FIN.)
                    if t.len > 0 {
                        assert!(
                            end <= s.end(),
                            "sends bytes never written: {end} > {}",
                            s.end()
                        );
                        assert!(end <= allowed + 1, "past the window: {end} > {allowed}");
                        sent_end = sent_end.max(end);
                    }
                }
            }
            1 => {
                // The peer's SYN-ACK, with options from the input.
                let (Some(mss), Some(ws), Some(w), Some(bits)) =
                    (inp.u16(), inp.u8(), inp.u16(), inp.u8())
                else {
                    break;
                };
                let mut options = Options {
                    mss: Some(mss),
                    ..Default::default()
                };
                if bits & 1 != 0 {
                    options.wscale = Some(ws % 16);
                }
                options.sack_permitted = bits & 2 != 0;
                if bits & 4 != 0 {
                    options.timestamps = Some((1, 0));
                }
                if trace {
                    eprintln!("  syn-ack w {w} {options:?}");
                }
                if s.state() == State::SynSent {
                    wscale = options.wscale.map_or(0, |w| w.min(14));
                    allowed = allowed.max(w as u64);
                }
                s.on_segment(
                    now,
                    &Repr {
                        src_port: 80,
                        dst_port: 4000,
                        seq: PEER_ISS,
                        ack: ISS.wrapping_add(1),
                        flags: Flags::SYN | Flags::ACK,
                        window: w,
                        options,
                        payload_len: 0,
                    },
                );
            }
            2 => {
                // An ACK (with SACK blocks) of something sent, or around it.
                let (Some(a), Some(w), Some(bits), Some(sk)) =
                    (inp.u32(), inp.u16(), inp.u8(), inp.u32())
                else {
                    break;
                };
                let off = if sent_end == 0 {
                    0
                } else {
                    a as u64 % (sent_end + 2)
                };
                let mut options = Options::default();
                if bits & 1 != 0 && sent_end > 0 {
                    let l = sk as u64 % sent_end;
                    let r = (l + (sk >> 16) as u64 % 3000).min(sent_end);
                    options.sack[0] = (
                        ISS.wrapping_add(1).wrapping_add(l as u32),
                        ISS.wrapping_add(1).wrapping_add(r as u32),
                    );
                    options.sack_len = 1;
                }
                if bits & 2 != 0 {
                    options.timestamps = Some((2, 1));
                }
                let mut flags = Flags::ACK;
                if bits & 4 != 0 {
                    flags |= Flags::FIN;
                }
                if bits & 8 != 0 && bits & 16 != 0 {
                    flags |= Flags::RST;
                }
                allowed = allowed.max(off + ((w as u64) << wscale));
                if trace {
                    eprintln!(
                        "  ack off {off} w {w} flags {flags:?} sack {:?} payload {}",
                        &options.sack[..options.sack_len as usize],
                        bits >> 5
                    );
                }
                s.on_segment(
                    now,
                    &Repr {
                        src_port: 80,
                        dst_port: 4000,
                        seq: PEER_ISS.wrapping_add(1),
                        ack: ISS.wrapping_add(1).wrapping_add(off as u32),
                        flags,
                        window: w,
                        options,
                        payload_len: (bits >> 5) as usize,
                    },
                );
            }
            3 => {
                // Whatever a packet parses to: random numbers in every field.
                let n = inp.u8().unwrap_or(0) as usize;
                let n = n.min(inp.0.len());
                let (raw, rest) = inp.0.split_at(n);
                inp.0 = rest;
                if let Ok(p) = Packet::new_checked(raw) {
                    if let Ok(r) = Repr::parse(&p) {
                        if trace {
                            eprintln!("  raw {r:?}");
                        }
                        if s.state() == State::SynSent && r.flags.contains(Flags::SYN) {
                            wscale = r.options.wscale.map_or(0, |w| w.min(14));
                            allowed = allowed.max(r.window as u64);
                        }
                        // A window it offers counts toward what may be sent.
                        let off = (r.ack.wrapping_sub(ISS.wrapping_add(1))) as u64;
                        if off <= sent_end {
                            allowed = allowed.max(off + ((r.window as u64) << wscale));
                        }
                        s.on_segment(now, &r);
                    }
                }
            }
            4 => {
                let ms = inp.u16().unwrap_or(0) as u64;
                now += Duration::from_millis(ms);
                if s.poll_timeout().is_some_and(|t| t <= now) {
                    s.on_timeout(now);
                }
            }
            _ => {
                let more = inp.u16().unwrap_or(0) as u64;
                if closed {
                } else if more == 0 {
                    s.close();
                    closed = true;
                } else {
                    s.push(more);
                }
            }
        }
        assert!(s.acked() >= acked, "acknowledged offset moved back");
        assert!(s.acked() <= s.end());
        acked = s.acked();
    }
});
