//! The generator loop over any device queue: synthetic UDP datagrams or stateless TCP
//! segments of the mix's sizes, round robin over flows, paced on an open-loop schedule or as
//! fast as the queue takes them, with submission → completion, inter-departure and lateness
//! histograms. Every payload starts with a probe header (`sansio::wire::probe`: stream,
//! sequence number, send time) for a receiving port to count.
//!
//! With one size and one flow on a device whose buffers keep their bytes, every buffer is
//! written whole once; after that, recycled buffers are only re-stamped (probe header,
//! IPv4 ID and checksum, L4 checksum). Otherwise each frame is written whole. Nothing is
//! allocated per packet.

mod burst;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::device::{TxCounters, TxQueue};
use crate::engine::{OpCtx, Totals};
use crate::error::{Error, Result};
use crate::report::SendStats;
use crate::sansio::framer::{FrameError, PayloadWriter, TcpFramer, UdpFramer};
use crate::sansio::pacing::{Imix, Pacer};
use crate::sansio::wire::{probe, tcp};
use crate::stats;
use crate::sys::clock::monotonic_ns;

/// Packets between progress reports (and deadline checks when unpaced).
const REPORT_EVERY: u64 = 256;

/// How a generator queue frames its packets: round robin over the flows.
pub(crate) enum GenFramers {
    /// UDP datagrams.
    Udp(Vec<UdpFramer>),
    /// Stateless TCP segments (ACK|PSH, sequence numbers advancing by the payload).
    Tcp(Vec<TcpFramer>),
}

impl GenFramers {
    pub(crate) fn len(&self) -> usize {
        match self {
            GenFramers::Udp(v) => v.len(),
            GenFramers::Tcp(v) => v.len(),
        }
    }

    /// Bytes of headers before the payload.
    pub(crate) fn header_len(&self) -> usize {
        match self {
            GenFramers::Udp(v) => v[0].header_len(),
            GenFramers::Tcp(v) => v[0].header_len(),
        }
    }

    fn set_checksum_offload(&mut self, on: bool) {
        match self {
            GenFramers::Udp(v) => v.iter_mut().for_each(|f| f.set_checksum_offload(on)),
            GenFramers::Tcp(v) => v.iter_mut().for_each(|f| f.set_checksum_offload(on)),
        }
    }

    fn checksum_request(&self, k: usize) -> Option<(u16, u16)> {
        match self {
            GenFramers::Udp(v) => v[k].checksum_request(),
            GenFramers::Tcp(v) => v[k].checksum_request(),
        }
    }

    /// Write a whole frame of flow `k`.
    fn emit(
        &mut self,
        k: usize,
        frame: &mut [u8],
        seg: &tcp::Repr,
        fill: impl FnOnce(&mut PayloadWriter<'_>),
    ) -> std::result::Result<usize, FrameError> {
        match self {
            GenFramers::Udp(v) => v[k].emit(frame, seg.payload_len, fill),
            GenFramers::Tcp(v) => v[k].emit(frame, seg, fill),
        }
    }

    /// Re-stamp a frame of flow `k` written before with the same size.
    fn restamp(&mut self, k: usize, frame: &mut [u8], seg: &tcp::Repr, prefix: &[u8]) {
        match self {
            GenFramers::Udp(v) => v[k].restamp(frame, seg.payload_len, prefix),
            GenFramers::Tcp(v) => v[k].restamp(frame, seg, prefix),
        }
    }
}

/// What one queue's generator should do.
pub(crate) struct GenLoop {
    /// Frame sizes (Ethernet, without FCS).
    pub(crate) sizes: Imix,
    /// This queue's schedule, if paced.
    pub(crate) pacer: Option<Pacer>,
    /// Frames to send at most.
    pub(crate) limit: Option<u64>,
    /// When to stop.
    pub(crate) deadline: Option<Instant>,
    /// Probe stream id of this queue's first flow (flow k is `stream_base + k`).
    pub(crate) stream_base: u32,
}

/// Submission → completion times, measured from the queue's running totals.
struct CompletionClock {
    /// Published total after a submission, and when.
    pending: VecDeque<(u64, Instant)>,
    last_published: u64,
    done: u64,
    /// Frames completed as they were published, not yet in `hist` (recorded as 0 ns at
    /// once by [`CompletionClock::into_hist`]: one histogram update per run, not per burst).
    instant: u64,
    hist: Histogram<u64>,
}

impl CompletionClock {
    fn new() -> Self {
        CompletionClock {
            pending: VecDeque::with_capacity(1024),
            last_published: 0,
            done: 0,
            instant: 0,
            hist: stats::histogram(),
        }
    }

    /// The completion-time histogram.
    fn into_hist(mut self) -> Histogram<u64> {
        if self.instant > 0 {
            stats::record(&mut self.hist, 0, self.instant);
        }
        self.hist
    }

    /// Note the queue's totals now (called after each submission: cheap when nothing moved).
    #[inline]
    fn note(&mut self, c: TxCounters) {
        if c.published == self.last_published && c.completed == self.done {
            return;
        }
        if c.completed == c.published && self.pending.is_empty() {
            // Completed as it was published (a PMD that takes frames at once): the same
            // instant, no clock read needed.
            self.instant += c.completed - self.done;
            self.last_published = c.published;
            self.done = c.completed;
            return;
        }
        let now = Instant::now();
        if c.published > self.last_published {
            if self.pending.len() == self.pending.capacity() {
                self.pending.pop_front();
            }
            self.pending.push_back((c.published, now));
            self.last_published = c.published;
        }
        while self.done < c.completed {
            let Some(&(upto, t)) = self.pending.front() else {
                self.done = c.completed;
                break;
            };
            let n = upto.min(c.completed).saturating_sub(self.done);
            stats::record(&mut self.hist, (now - t).as_nanos() as u64, n);
            self.done += n;
            if self.done >= upto {
                self.pending.pop_front();
            }
        }
    }
}

/// Longest sleep between checks of the deadline and of cancellation.
const MAX_NAP: Duration = Duration::from_millis(20);

/// Run one queue's generator until its limit, the deadline or cancellation. Returns what
/// was sent (frame bytes) and the completion, inter-departure and lateness histograms.
pub(crate) fn generate<D: TxQueue>(
    dev: &mut D,
    mut framers: GenFramers,
    mut run: GenLoop,
    ctx: &OpCtx,
    totals: &Totals,
) -> Result<(SendStats, [Histogram<u64>; 3])> {
    let hdr = framers.header_len();
    let nflows = framers.len();
    framers.set_checksum_offload(dev.caps().csum_offload);
    // Stateless TCP: per flow, sequence numbers advance by the payload of each segment.
    let mut seqs = vec![1u32; nflows];
    // Probe headers: per flow, a stream of its own counting from 0.
    let mut probe_seqs = vec![0u64; nflows];
    let mut time = 0u64;
    let mut seg = tcp::Repr {
        seq: 1,
        ack: 1,
        flags: tcp::Flags::ACK | tcp::Flags::PSH,
        window: 65535,
        ..Default::default()
    };
    let mut clock = CompletionClock::new();
    let (mut inter, mut late) = (stats::histogram(), stats::histogram());
    let mut last_departure: Option<Instant> = None;
    let single = (run.sizes.sizes().len() == 1).then(|| run.sizes.sizes()[0].0);
    // Frames can be written once and re-stamped when every packet has one size and one flow,
    // and buffers keep their bytes.
    let restamp = single.is_some() && nflows == 1 && dev.caps().persistent_bufs;
    if let (Some(frame_len), true) = (single, restamp) {
        // Buffers still held by the device (an ARP request a DPDK PMD has not reaped yet,
        // a previous run's tail) come home first, so that priming writes every one.
        dev.drain()?;
        prime(dev, &mut framers, &mut seg, frame_len - hdr)?;
    }
    if let (Some(frame_len), true, None) = (single, restamp, &run.pacer) {
        let r = burst::BurstRun {
            frame_len,
            hdr,
            stream: run.stream_base,
            limit: run.limit.unwrap_or(u64::MAX),
            deadline: run.deadline,
        };
        return burst::run(dev, &mut framers, seg, r, ctx, totals);
    }
    dev.set_paced(run.pacer.is_some());
    let start = Instant::now();
    let over = |now: Instant| ctx.cancelled() || run.deadline.is_some_and(|d| now >= d);
    let mut stats = SendStats::default();
    let mut reported = SendStats::default();
    let limit = run.limit.unwrap_or(u64::MAX);
    let mut k = 0usize;
    let result = 'send: loop {
        if stats.packets >= limit {
            break Ok(());
        }
        if let Some(pc) = run.pacer.as_mut() {
            let due = pc.next_due_ns();
            let mut now = Instant::now();
            let mut now_ns = (now - start).as_nanos() as u64;
            while now_ns < due {
                // Not due yet. If the slot is far, put what is queued on the wire now; at high
                // rates keep filling the batch (a kick per packet would cap the rate).
                let wait = due - now_ns;
                if wait > 10_000 {
                    if let Err(e) = dev.flush() {
                        break 'send Err(e);
                    }
                    dev.reap();
                    clock.note(dev.counters());
                }
                if over(now) {
                    break 'send Ok(());
                }
                if wait > 200_000 {
                    // In slices, so that the deadline and cancellation are seen on time
                    // however low the rate.
                    std::thread::sleep(Duration::from_nanos(wait - 100_000).min(MAX_NAP));
                } else {
                    std::hint::spin_loop();
                }
                now = Instant::now();
                now_ns = (now - start).as_nanos() as u64;
            }
            // Timing of this departure: against the schedule and the previous departure.
            stats::record(&mut late, now_ns - due, 1);
            if let Some(prev) = last_departure {
                stats::record(&mut inter, (now - prev).as_nanos() as u64, 1);
            }
            last_departure = Some(now);
            pc.sent(1);
        }
        let frame_len = single.unwrap_or_else(|| run.sizes.next_size());
        let payload = frame_len - hdr;
        // The send time: per frame when paced, else every 16 frames (they queue anyway).
        if run.pacer.is_some() || stats.packets % 16 == 0 {
            time = monotonic_ns();
        }
        let probe = probe::Repr {
            stream: run.stream_base + k as u32,
            seq: probe_seqs[k],
            time: time as u32,
        }
        .to_bytes();
        probe_seqs[k] += 1;
        let seq = &probe[..payload.min(probe::HEADER_LEN)];
        let mut buf = match dev.alloc_wait() {
            Ok(b) => b,
            Err(e) => break Err(e),
        };
        seg.payload_len = payload;
        seg.seq = seqs[k];
        seqs[k] = seqs[k].wrapping_add(payload as u32);
        let frame = &mut dev.data(&mut buf)[..frame_len];
        if restamp {
            framers.restamp(k, frame, &seg, seq);
        } else {
            let written = framers.emit(k, frame, &seg, |w| {
                w.put(seq);
                w.put_zeros(payload - seq.len());
            });
            if let Err(e) = written {
                dev.free(buf);
                break Err(e.into());
            }
        }
        let csum = framers.checksum_request(k);
        if let Err(e) = dev.submit(buf, frame_len, csum) {
            break Err(e);
        }
        clock.note(dev.counters());
        k += 1;
        if k == nflows {
            k = 0;
        }
        stats.packets += 1;
        stats.bytes += frame_len as u64;
        if stats.packets - reported.packets == REPORT_EVERY {
            let (b, n) = totals.add(stats, &mut reported);
            ctx.progress(b, n);
            if over(Instant::now()) {
                break Ok(());
            }
        }
    };
    dev.set_paced(false);
    finish(dev, result, &mut clock, stats, &mut reported, totals)?;
    Ok((stats, [clock.into_hist(), inter, late]))
}

/// End a run: after an error, buffers written but not submitted go back to the queue;
/// otherwise wait until every frame has left. Then the last completions and totals.
fn finish<D: TxQueue>(
    dev: &mut D,
    result: Result<()>,
    clock: &mut CompletionClock,
    stats: SendStats,
    reported: &mut SendStats,
    totals: &Totals,
) -> Result<()> {
    if result.is_err() {
        dev.abandon();
    }
    result.and_then(|()| dev.drain())?;
    clock.note(dev.counters());
    totals.add(stats, reported);
    Ok(())
}

/// Write every buffer of the queue once with a frame of flow 0 and `payload` zero bytes.
fn prime<D: TxQueue>(
    dev: &mut D,
    framers: &mut GenFramers,
    seg: &mut tcp::Repr,
    payload: usize,
) -> Result<()> {
    seg.payload_len = payload;
    let mut all = Vec::new();
    let mut result = Ok(());
    while let Some(mut buf) = dev.alloc() {
        if result.is_ok() {
            let frame = dev.data(&mut buf);
            result = framers
                .emit(0, frame, seg, |w| w.put_zeros(payload))
                .map(drop)
                .map_err(Error::from);
        }
        all.push(buf);
    }
    for buf in all.into_iter().rev() {
        dev.free(buf);
    }
    result
}
