//! The replay loop: frames of a capture, each copied into a device buffer, rewritten, and
//! submitted when the [`Schedule`] says, loop after loop, over the device seam.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::OpCtx;
use crate::device::TxQueue;
use crate::error::Result;
use crate::sansio::rewrite::Rewrite;
use crate::sansio::schedule::Schedule;
use crate::stats;

/// One captured frame.
pub(crate) struct Record<'a> {
    /// Capture timestamp (ns).
    pub(crate) ts_ns: u64,
    /// The bytes captured.
    pub(crate) data: &'a [u8],
}

/// A source of records that can be read again from the start.
pub(crate) trait Records {
    /// The next record, or `None` at the end.
    fn next_record(&mut self) -> Result<Option<Record<'_>>>;
    /// Back to the first record.
    fn rewind(&mut self) -> Result<()>;
}

/// How a replay runs.
pub(crate) struct ReplayRun<'a> {
    pub(crate) schedule: Schedule,
    /// Loops (0: until the deadline or cancellation).
    pub(crate) loops: u64,
    pub(crate) deadline: Option<Instant>,
    pub(crate) rewrite: &'a Rewrite,
}

/// What a replay did.
#[derive(Debug)]
pub(crate) struct ReplayOutcome {
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
    /// Frames skipped because they exceed what the device carries.
    pub(crate) oversize: u64,
    /// Loops begun.
    pub(crate) loops: u64,
    pub(crate) seconds: f64,
    /// Lateness of each frame against its due time, when it was put on the wire (ns).
    pub(crate) lateness: Option<Histogram<u64>>,
}

/// A flush is due before a wait longer than this: spaced packets leave one by one.
const FLUSH_BEFORE_WAIT_NS: u64 = 2_000;
/// Frames submitted before they are flushed at the latest.
const MAX_PENDING: usize = 32;
/// The last stretch before a packet is due is spun, not slept (a wake-up can be late).
const SPIN_NS: u64 = 300_000;
/// Longest sleep between checks of the deadline and of cancellation.
const MAX_NAP: Duration = Duration::from_millis(20);
/// Frames between progress reports.
const REPORT_EVERY: u64 = 4096;

/// Replay `records` on `dev`.
pub(crate) fn replay<D: TxQueue, R: Records>(
    dev: &mut D,
    records: &mut R,
    run: ReplayRun<'_>,
    ctx: &OpCtx,
) -> Result<ReplayOutcome> {
    let max = dev.caps().buf_capacity.min(dev.caps().max_frame);
    let mut schedule = run.schedule;
    // Sleeps end within 1 µs of when asked (default slack: 50 µs); the caller's thread gets
    // its own slack back at the end.
    let _slack = schedule.is_timed().then(SlackGuard::new);
    let mut lateness = schedule.is_timed().then(stats::histogram);
    let mut pending: arrayvec::ArrayVec<u64, MAX_PENDING> = arrayvec::ArrayVec::new();
    let mut out = ReplayOutcome {
        packets: 0,
        bytes: 0,
        oversize: 0,
        loops: 0,
        seconds: 0.0,
        lateness: None,
    };
    let start = Instant::now();
    let ns = |t: Instant| (t - start).as_nanos() as u64;
    let over = |t: Instant| ctx.cancelled() || run.deadline.is_some_and(|d| t >= d);
    let flush = |dev: &mut D,
                 pending: &mut arrayvec::ArrayVec<u64, MAX_PENDING>,
                 lateness: &mut Option<Histogram<u64>>|
     -> Result<()> {
        dev.flush()?;
        dev.reap();
        if let Some(h) = lateness.as_mut() {
            let now = ns(Instant::now());
            for due in pending.drain(..) {
                stats::record(h, now.saturating_sub(due), 1);
            }
        }
        pending.clear();
        Ok(())
    };
    let result = 'all: loop {
        if run.loops > 0 && out.loops >= run.loops {
            break Ok(());
        }
        if over(Instant::now()) {
            break Ok(());
        }
        if out.loops > 0 {
            if let Err(e) = records.rewind() {
                break Err(e);
            }
        }
        schedule.start_loop(out.loops);
        out.loops += 1;
        let mut any = false;
        loop {
            let rec = match records.next_record() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => break 'all Err(e),
            };
            let len = rec.data.len();
            if crate::sansio::wire::ethernet::over_limit(rec.data, max) {
                out.oversize += 1;
                continue;
            }
            any = true;
            if let Some(due) = schedule.due_ns(rec.ts_ns, len) {
                loop {
                    let now = Instant::now();
                    if over(now) {
                        break 'all Ok(());
                    }
                    let t = ns(now);
                    if t >= due {
                        break;
                    }
                    let wait = due - t;
                    if wait > FLUSH_BEFORE_WAIT_NS && !pending.is_empty() {
                        if let Err(e) = flush(dev, &mut pending, &mut lateness) {
                            break 'all Err(e);
                        }
                        continue;
                    }
                    if wait > 2 * SPIN_NS {
                        std::thread::sleep(Duration::from_nanos(wait - SPIN_NS).min(MAX_NAP));
                    } else {
                        std::hint::spin_loop();
                    }
                }
                if pending.is_full() {
                    if let Err(e) = flush(dev, &mut pending, &mut lateness) {
                        break 'all Err(e);
                    }
                }
                pending.push(due);
            } else if out.packets % REPORT_EVERY == 0 && over(Instant::now()) {
                break 'all Ok(());
            }
            let mut buf = match dev.alloc_wait() {
                Ok(b) => b,
                Err(e) => break 'all Err(e),
            };
            let d = &mut dev.data(&mut buf)[..len];
            d.copy_from_slice(rec.data);
            run.rewrite.apply(d);
            if let Err(e) = dev.submit(buf, len, None) {
                break 'all Err(e);
            }
            out.packets += 1;
            out.bytes += len as u64;
            if out.packets % REPORT_EVERY == 0 {
                ctx.progress(out.bytes, out.packets);
            }
        }
        if !any {
            break Ok(()); // nothing sendable in the capture: looping would spin
        }
    };
    let result = result
        .and_then(|()| flush(dev, &mut pending, &mut lateness))
        .and_then(|()| dev.drain());
    if result.is_err() {
        dev.abandon();
    }
    result?;
    out.seconds = start.elapsed().as_secs_f64();
    out.lateness = lateness;
    ctx.progress(out.bytes, out.packets);
    Ok(out)
}

/// Sleeps end within 1 µs of when asked (the default slack is 50 µs) while it lives; the
/// caller's thread gets its own slack back when it is dropped.
struct SlackGuard(Option<u64>);

impl SlackGuard {
    fn new() -> Self {
        SlackGuard(crate::sys::thread::set_timer_slack_ns(1_000))
    }
}

impl Drop for SlackGuard {
    fn drop(&mut self) {
        if let Some(old) = self.0 {
            crate::sys::thread::set_timer_slack_ns(old);
        }
    }
}
