//! The unpaced re-stamping generator, a burst at a time: one size, one flow, buffers that
//! keep their bytes (written whole once by `prime`). Per burst it takes up to [`BURST`]
//! buffers from the queue at once, re-stamps each (probe header, IPv4 ID and checksum, L4
//! checksum or TCP sequence number) and submits them together, so the per-packet work is the
//! stamping alone; the send time in the probe header is read once per burst (off the TSC
//! where the kernel keeps time with it: [`FastClock`]), the queue's counters are noted once
//! per burst and the deadline every [`REPORT_EVERY`] packets.

use hdrhistogram::Histogram;

use super::{CompletionClock, GenFramers, REPORT_EVERY};
use crate::device::TxQueue;
use crate::engine::{OpCtx, Totals};
use crate::error::Result;
use crate::report::SendStats;
use crate::sansio::wire::{probe, tcp};
use crate::stats;
use crate::sys::clock::FastClock;

/// Frames per burst.
pub(super) const BURST: usize = 32;

/// What the burst loop needs of the caller's set-up.
pub(super) struct BurstRun {
    /// Every frame's length (Ethernet, without FCS).
    pub(super) frame_len: usize,
    /// Header bytes before the payload.
    pub(super) hdr: usize,
    /// The flow's probe stream id.
    pub(super) stream: u32,
    /// Frames to send at most.
    pub(super) limit: u64,
    /// When to stop.
    pub(super) deadline: Option<std::time::Instant>,
}

/// Run until the limit, the deadline or cancellation. `seg` is the TCP segment template the
/// buffers were primed with (its `seq` is the first to send).
pub(super) fn run<D: TxQueue>(
    dev: &mut D,
    framers: &mut GenFramers,
    seg: tcp::Repr,
    r: BurstRun,
    ctx: &OpCtx,
    totals: &Totals,
) -> Result<(SendStats, [Histogram<u64>; 3])> {
    let csum = framers.checksum_request(0);
    // One framer, chosen once: the stamping is inlined into the loop.
    match framers {
        GenFramers::Udp(v) => {
            let f = &mut v[0];
            stamp_loop(dev, seg, r, csum, ctx, totals, |frame, s, p, n| {
                if n == probe::HEADER_LEN {
                    f.restamp_probe(frame, s.payload_len, p)
                } else {
                    f.restamp(frame, s.payload_len, &p.to_bytes()[..n])
                }
            })
        }
        GenFramers::Tcp(v) => {
            let f = &mut v[0];
            stamp_loop(dev, seg, r, csum, ctx, totals, |frame, s, p, n| {
                if n == probe::HEADER_LEN {
                    f.restamp_probe(frame, s, p)
                } else {
                    f.restamp(frame, s, &p.to_bytes()[..n])
                }
            })
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn stamp_loop<D: TxQueue>(
    dev: &mut D,
    mut seg: tcp::Repr,
    r: BurstRun,
    csum: Option<crate::device::CsumRequest>,
    ctx: &OpCtx,
    totals: &Totals,
    // (frame, segment, probe header, how many of its bytes fit the payload)
    mut restamp: impl FnMut(&mut [u8], &tcp::Repr, &probe::Repr, usize),
) -> Result<(SendStats, [Histogram<u64>; 3])> {
    let payload = r.frame_len - r.hdr;
    let plen = payload.min(probe::HEADER_LEN);
    let mut clock = CompletionClock::new();
    let mut now = FastClock::new();
    let mut stats = SendStats::default();
    let mut reported = SendStats::default();
    let mut bufs: Vec<D::Buf> = Vec::with_capacity(2 * BURST);
    let mut probe_seq = 0u64;
    let over = |now: std::time::Instant| ctx.cancelled() || r.deadline.is_some_and(|d| now >= d);
    seg.payload_len = payload;
    let result = loop {
        let left = r.limit - stats.packets;
        if left == 0 {
            break Ok(());
        }
        if let Err(e) = dev.alloc_burst(&mut bufs, BURST.min(left as usize)) {
            break Err(e);
        }
        // (They queue anyway: one send time for the burst.)
        let time = now.now_ns() as u32;
        let n = bufs.len();
        for b in bufs.iter_mut() {
            let probe = probe::Repr {
                stream: r.stream,
                seq: probe_seq,
                time,
            };
            probe_seq += 1;
            let frame = &mut dev.data(b)[..r.frame_len];
            restamp(frame, &seg, &probe, plen);
            seg.seq = seg.seq.wrapping_add(payload as u32);
        }
        if let Err(e) = dev.submit_burst(&mut bufs, r.frame_len, csum) {
            break Err(e);
        }
        clock.note(dev.counters());
        stats.packets += n as u64;
        stats.bytes += (n * r.frame_len) as u64;
        if stats.packets - reported.packets >= REPORT_EVERY {
            let (b, k) = totals.add(stats, &mut reported);
            ctx.progress(b, k);
            if over(std::time::Instant::now()) {
                break Ok(());
            }
        }
    };
    for b in bufs.drain(..) {
        dev.free(b);
    }
    super::finish(dev, result, &mut clock, stats, &mut reported, totals)?;
    Ok((
        stats,
        [clock.into_hist(), stats::histogram(), stats::histogram()],
    ))
}
