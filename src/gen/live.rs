//! A generator run on live frames: the framers write each runner's template and flow table
//! (so the kernel's frames are the AF_XDP generator's frames), one copy of the program is
//! loaded per runner, each runner drives its own on a pinned thread, and the report counts
//! what the target interface says it transmitted, not what was asked.

use std::time::Instant;

use super::{GenReport, GenSpec};
use crate::device::live::{self as dev, LivePort, LiveProg, ProgConfig, MAX_BATCH};
use crate::engine::live::{run_runners, CycleBytes, LiveLoop};
use crate::engine::OpCtx;
use crate::error::{Error, Result};
use crate::sansio::framer::{Flow, TcpFramer, UdpFramer};
use crate::sansio::live::{size_cycle, FlowEntry, Layout, MAX_CYCLE};
use crate::sansio::wire::tcp;

/// Frames released together per slot under a rate, unless asked otherwise.
const PACED_SLOT: u32 = 64;

/// Write flow `f`'s frame with `payload` zero bytes into `buf`; returns its length.
fn emit(f: &Flow, mtu: u32, tcp_seg: bool, payload: usize, buf: &mut [u8]) -> Result<usize> {
    buf.fill(0);
    let zeros = |w: &mut crate::sansio::framer::PayloadWriter<'_>| w.in_place(payload);
    let n = if tcp_seg {
        let seg = tcp::Repr {
            seq: 1,
            ack: 1,
            flags: tcp::Flags::ACK | tcp::Flags::PSH,
            window: 65535,
            payload_len: payload,
            ..Default::default()
        };
        TcpFramer::new(f, mtu).emit(buf, &seg, zeros)?
    } else {
        UdpFramer::new(f, mtu).emit(buf, payload, zeros)?
    };
    Ok(n)
}

/// One runner's program and template.
struct Runner {
    prog: LiveProg,
    template: Vec<u8>,
}

/// Run `spec` on `port`'s live frames. `BackendUnavailable` when live frames cannot make
/// this run (the caller may take AF_XDP instead).
pub(super) fn run(port: &LivePort, spec: &GenSpec, ctx: &OpCtx) -> Result<GenReport> {
    if spec.reference && spec.sizes.sizes().len() > 1 {
        return Err(Error::InvalidOption(
            "the reference loop sends the template as is: one frame size only".into(),
        ));
    }
    let cycle = size_cycle(&spec.sizes).ok_or_else(|| {
        dev::unavailable(format!(
            "the size mix's weights make a cycle of more than {MAX_CYCLE} frames"
        ))
    })?;
    let mtu = port.mtu;
    let base = &port.flows[0];
    let layout = Layout {
        l3: base.l2_len(),
        v6: base.dst.is_ipv6(),
        tcp: spec.tcp_stateless,
    };
    let hdr = layout.header_len();
    let udp = UdpFramer::new(base, mtu);
    let (min, max) = (hdr.max(60), udp.frame_len(udp.max_payload()));
    for &(size, _) in spec.sizes.sizes() {
        if size < min || size > max {
            return Err(Error::InvalidOption(format!(
                "frame size {size} outside {min}..={max} for this path (headers {hdr} bytes, MTU {mtu})"
            )));
        }
    }
    let biggest = cycle.iter().copied().max().unwrap_or(min as u32) as usize;
    let mut runners = Vec::with_capacity(port.flows.len());
    let mut buf = vec![0u8; biggest.max(256)];
    for (r, f) in port.flows.iter().enumerate() {
        let flows = spec.flows.expand(f)?;
        let mut entries = Vec::with_capacity(flows.len());
        for (k, fl) in flows.iter().enumerate() {
            let n = emit(fl, mtu, spec.tcp_stateless, 0, &mut buf)?;
            let mut e = FlowEntry::from_frame(&buf[..n], layout).ok_or_else(|| {
                Error::InvalidOption("a flow's frame is shorter than its headers".into())
            })?;
            // Probe streams: runner r's flow k (as the AF_XDP generator numbers queues).
            e.stream = (r * flows.len() + k) as u32;
            entries.push(e);
        }
        let n = emit(&flows[0], mtu, spec.tcp_stateless, biggest - hdr, &mut buf)?;
        let prog = LiveProg::load(&ProgConfig {
            ifindex: port.target.ifindex,
            layout,
            headers: &buf[..hdr],
            sizes: &cycle,
            flows: &entries,
            reference: spec.reference,
        })?;
        runners.push(Runner {
            prog,
            template: buf[..n].to_vec(),
        });
    }
    // Probe (the program stamps nothing at limit 0: nothing is sent). A minimal frame first:
    // refused, this kernel has no live frames at all (before 5.18)...
    let small = &runners[0].template[..hdr.max(60).min(runners[0].template.len())];
    if let Err(e) = runners[0].prog.run(small, 1, 1)? {
        return Err(match e.raw_os_error() {
            Some(libc::EINVAL) => dev::unavailable(
                "this kernel runs no XDP program over live frames (BPF_F_TEST_XDP_LIVE_FRAMES, Linux 5.18+)".into(),
            ),
            _ => port.target.gone_or(Error::io("probing live frames", e)),
        });
    }
    // ... then the largest: a frame the kernel cannot hold in one page is refused.
    if let Err(e) = runners[0].prog.run(&runners[0].template, 1, 1)? {
        return Err(match e.raw_os_error() {
            Some(libc::EINVAL) => dev::unavailable(format!(
                "frames of {biggest} bytes do not fit one page with the kernel's headroom and tailroom (live frames hold about 3.3 KB at most; multi-page frames are not supported)"
            )),
            _ => port.target.gone_or(Error::io("probing live frames", e)),
        });
    }
    // The kernel's batch (page_pool cycle and redirect flush) stays large under a rate too,
    // so that a late runner catches up at full speed; whole slots of frames are released on
    // time (one clock read per slot; a released frame waits at most one batch of program
    // runs for its flush): `--burst` frames if given, else `--batch`, else 64.
    let batch = match spec.batch {
        0 => MAX_BATCH,
        b => b.clamp(1, MAX_BATCH),
    };
    let burst = match (spec.burst, spec.batch) {
        (0 | 1, 0) => PACED_SLOT,
        (0 | 1, b) => b.clamp(1, MAX_BATCH),
        (b, _) => b.clamp(1, u32::MAX as u64) as u32,
    };
    let nr = runners.len() as u64;
    let bytes = CycleBytes::new(&cycle);
    let target = &port.target;
    let before = target.stats()?;
    let loops: Vec<LiveLoop> = (0..nr)
        .map(|r| LiveLoop {
            limit: spec.count.map(|c| c / nr + u64::from(r < c % nr)),
            pps: spec.rate_pps.map(|p| p / nr as f64),
            batch,
            burst,
        })
        .collect();
    let start = Instant::now();
    let work: Vec<_> = runners
        .iter()
        .zip(loops)
        .map(|(r, l)| (&r.prog, r.template.as_slice(), l))
        .collect();
    let results = run_runners(target, work, &bytes, spec.duration.map(|d| start + d), ctx)?;
    let seconds = start.elapsed().as_secs_f64();
    let mut submitted = 0u64;
    let mut submitted_bytes = 0u64;
    for x in results {
        submitted += x;
        submitted_bytes += bytes.of(x);
    }
    let after = target.settle(&before, submitted)?;
    let sent = after
        .tx_packets
        .saturating_sub(before.tx_packets)
        .min(submitted);
    Ok(GenReport {
        packets: sent,
        bytes: if sent == submitted {
            submitted_bytes
        } else {
            after
                .tx_bytes
                .saturating_sub(before.tx_bytes)
                .min(submitted_bytes)
        },
        seconds,
        completion: None,
        inter_departure: None,
        lateness: None,
        submitted: Some(submitted),
        dropped: Some(submitted - sent),
        batch: Some(batch),
    })
}
