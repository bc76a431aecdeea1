//! `xsend replay`: a pcap/pcapng capture sent again at line rate with faithful timing.
//!
//! The capture is read as a stream (constant memory whatever its size), checked in a first
//! pass before anything is sent (not a capture, truncated, a record longer than its snap
//! length, a link type other than Ethernet: clear errors, nothing sent), then replayed on the
//! engine's replay loop: each packet on an open-loop schedule ([`Timing`]), rewritten as asked
//! ([`Rewrite`]), over AF_XDP or, where AF_XDP cannot carry the frames, AF_PACKET.

mod mapped;
mod reader;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use crate::sansio::rewrite::{IpMap, Rewrite};
pub use crate::sansio::schedule::Timing;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use self::reader::fuzz_read;
use self::reader::CaptureReader;
use crate::api::CancelHandle;
use crate::device::{live, packet, xdp, Port, TxQueue};
use crate::engine::live_replay;
use crate::engine::replay::{self, ReplayRun};
use crate::engine::OpCtx;
use crate::error::{Error, Result};
use crate::options::ProgressFn;
use crate::report::BackendInfo;
use crate::sansio::schedule::Schedule;
use crate::stats::Percentiles;

/// Which way frames go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplayBackend {
    /// AF_XDP if it can carry the capture, else AF_PACKET (saying why).
    #[default]
    Auto,
    /// AF_XDP, or an error.
    Xdp,
    /// AF_PACKET through the kernel's device layer.
    Kernel,
    /// The kernel's live-frames generator (`BPF_PROG_RUN`) fed from a ring of captured
    /// frames, or an error: the interface must take redirected frames (`ndo_xdp_xmit`).
    Live,
}

/// A replay to run.
#[derive(Debug, Clone)]
pub struct ReplaySpec {
    /// The capture (pcap or pcapng).
    pub file: PathBuf,
    /// Interface to send on.
    pub iface: String,
    /// Backend.
    pub backend: ReplayBackend,
    /// Timing.
    pub timing: Timing,
    /// Times to send the capture (0: until `duration` or cancellation).
    pub loops: u64,
    /// Loops back to back with this gap, instead of at multiples of the capture's span.
    pub loop_gap: Option<Duration>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Rewriting.
    pub rewrite: Rewrite,
    /// Refuse the run, before sending, if any frame is over what the interface carries
    /// (otherwise such frames are skipped and counted).
    pub strict: bool,
    /// AF_XDP TX ring size.
    pub ring_size: u32,
}

impl ReplaySpec {
    /// The capture `file` on `iface`, original timing, once.
    pub fn new(file: impl Into<PathBuf>, iface: impl Into<String>) -> Self {
        ReplaySpec {
            file: file.into(),
            iface: iface.into(),
            backend: ReplayBackend::Auto,
            timing: Timing::Original { multiplier: 1.0 },
            loops: 1,
            loop_gap: None,
            duration: None,
            rewrite: Rewrite::default(),
            strict: false,
            ring_size: crate::options::DEFAULT_RING_SIZE,
        }
    }
}

/// What a replay did.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    /// The path obtained.
    #[serde(flatten)]
    pub info: BackendInfo,
    /// Packets in one pass of the capture.
    pub capture_packets: u64,
    /// Frames sent.
    pub packets: u64,
    /// Frame bytes sent (without FCS).
    pub bytes: u64,
    /// Frames skipped because the interface cannot carry them (over its MTU).
    pub skipped_oversize: u64,
    /// Live frames: frames the program handed to the interface that it did not send (its
    /// queue towards the peer was full); counted by the interface, never silent. `None` on
    /// the other backends, which wait for room instead.
    pub dropped: Option<u64>,
    /// Loops begun.
    pub loops: u64,
    /// Seconds from the first frame to the last.
    pub seconds: f64,
    /// Frames per second.
    pub pps: f64,
    /// Gbit/s on the wire (frames plus preamble, FCS and gap).
    pub gbps: f64,
    /// How late frames left against their schedule (not at top speed).
    pub timing_error: Option<Percentiles>,
    /// Largest resident size of this process during the run (KiB): flat whatever the
    /// capture's size.
    pub max_rss_kib: u64,
}

/// Replay `spec`; `progress` is called every few thousand frames; `cancel` stops it.
pub fn run(
    spec: &ReplaySpec,
    cancel: &CancelHandle,
    progress: Option<ProgressFn>,
) -> Result<ReplayReport> {
    // The file first: a bad capture is reported before any device is touched.
    CaptureReader::open(&spec.file)?;
    match spec.backend {
        ReplayBackend::Xdp => go(
            spec,
            xdp::open_raw(&spec.iface, spec.ring_size)?,
            cancel,
            progress,
        ),
        ReplayBackend::Kernel => go(spec, packet::open(&spec.iface)?, cancel, progress),
        ReplayBackend::Live => go_live(spec, cancel, progress, false),
        ReplayBackend::Auto => {
            // Live frames first (the fastest, and the most exact timing), then AF_XDP, then
            // AF_PACKET; each step not taken says why.
            let live_why = match go_live(spec, cancel, progress.clone(), true) {
                Err(Error::BackendUnavailable { reason, .. }) => format!("live: {reason}"),
                r => return r,
            };
            let mut r = match xdp::open_raw(&spec.iface, spec.ring_size) {
                Ok(p) => go(spec, p, cancel, progress),
                Err(e @ (Error::InterfaceNotFound { .. } | Error::InterfaceDown { .. })) => Err(e),
                Err(e) => {
                    let mut p = packet::open(&spec.iface)?;
                    p.info
                        .fallback_reasons
                        .insert(0, format!("xdp: {}", e.chain()));
                    go(spec, p, cancel, progress)
                }
            }?;
            r.info.fallback_reasons.insert(0, live_why);
            Ok(r)
        }
    }
}

/// Records in the live-frames ring (2 KiB each: 8 MiB).
const LIVE_SLOTS: u32 = 4096;
/// Frames per page_pool cycle and redirect flush on live frames: at top speed the kernel's
/// largest batch; timed, one, so that a frame leaves when its run sends it rather than at the
/// end of a batch of idle runs.
const LIVE_BATCH_TOPSPEED: u32 = 64;
const LIVE_BATCH_TIMED: u32 = 1;

/// Replay on live frames. `auto`: refuse (`BackendUnavailable`, before sending) a capture
/// with frames the interface carries but a ring record does not, so that another backend
/// sends them.
fn go_live(
    spec: &ReplaySpec,
    cancel: &CancelHandle,
    progress: Option<ProgressFn>,
    auto: bool,
) -> Result<ReplayReport> {
    // In `auto`, what keeps live frames from this interface, found before anything is sent,
    // hands the replay on (`BackendUnavailable`); a missing or down interface does not.
    let fall = |e: Error| match e {
        Error::InterfaceNotFound { .. } | Error::InterfaceDown { .. } => e,
        Error::BackendUnavailable { .. } => e,
        e if auto => live::unavailable(e.chain()),
        e => e,
    };
    let t = live::open_target(&spec.iface, auto).map_err(fall)?;
    // Ethernet header and one VLAN tag over the MTU, and what a ring record holds.
    let link_max = t.mtu as usize + 18;
    let max = link_max.min(live::REC_DATA);
    let scan = reader::scan(&spec.file, max)?;
    if auto && max < link_max && scan.oversize > 0 {
        return Err(live::unavailable(format!(
            "{} frames are over the {} bytes a live-frames record holds (largest {})",
            scan.oversize,
            live::REC_DATA,
            scan.largest
        )));
    }
    if spec.strict && scan.oversize > 0 {
        if max < link_max && scan.largest > max {
            return Err(Error::InvalidOption(format!(
                "{}: {} of {} frames are over the {max} bytes a live-frames record holds (largest {}; {} carries {link_max}); nothing was sent (--backend xdp or kernel sends them; without --strict they are skipped and counted)",
                spec.file.display(),
                scan.oversize,
                scan.packets,
                scan.largest,
                spec.iface
            )));
        }
        return Err(oversize_refused(spec, &scan, max));
    }
    let mut prog = live::ReplayProg::load(t.target.ifindex, LIVE_SLOTS).map_err(fall)?;
    let mut records = mapped::Captured::open(&spec.file)?;
    let ctx = OpCtx {
        cancel: cancel.flag(),
        progress,
        total: scan.bytes.saturating_mul(spec.loops.max(1)),
    };
    let timing = Schedule::new(
        spec.timing,
        scan.packets,
        scan.first_ts,
        scan.last_ts,
        spec.loop_gap.map(|g| g.as_nanos() as u64),
    );
    let batch = if timing.is_timed() {
        LIVE_BATCH_TIMED
    } else {
        LIVE_BATCH_TOPSPEED
    };
    let before = t.target.stats()?;
    let mut out = live_replay::replay_live(
        live_replay::LiveReplay {
            prog: &mut prog,
            target: &t.target,
            max_frame: max,
            batch,
        },
        &mut records,
        ReplayRun {
            schedule: timing,
            loops: spec.loops,
            deadline: spec.duration.map(|d| Instant::now() + d),
            rewrite: &spec.rewrite,
        },
        &ctx,
    )?;
    // What the interface really sent: its counters (a frame it could not queue is gone).
    let taken = out.packets;
    let after = t.target.settle(&before, taken)?;
    let sent = after
        .tx_packets
        .saturating_sub(before.tx_packets)
        .min(taken);
    if sent < taken {
        out.bytes = after
            .tx_bytes
            .saturating_sub(before.tx_bytes)
            .min(out.bytes);
    }
    out.packets = sent;
    let mut r = report(t.info.clone(), &scan, out);
    r.dropped = Some(taken - sent);
    Ok(r)
}

fn oversize_refused(spec: &ReplaySpec, scan: &reader::Scan, max: usize) -> Error {
    Error::InvalidOption(format!(
        "{}: {} of {} frames are over the {max} bytes {} carries (largest {}); nothing was sent (without --strict they are skipped and counted)",
        spec.file.display(),
        scan.oversize,
        scan.packets,
        spec.iface,
        scan.largest
    ))
}

fn report(info: BackendInfo, scan: &reader::Scan, out: replay::ReplayOutcome) -> ReplayReport {
    let secs = out.seconds.max(1e-9);
    ReplayReport {
        info,
        capture_packets: scan.packets,
        packets: out.packets,
        bytes: out.bytes,
        skipped_oversize: out.oversize,
        dropped: None,
        loops: out.loops,
        seconds: out.seconds,
        pps: out.packets as f64 / secs,
        gbps: (out.bytes + 24 * out.packets) as f64 * 8.0 / secs / 1e9,
        timing_error: out.lateness.as_ref().and_then(Percentiles::of),
        max_rss_kib: crate::sys::thread::max_rss_kib(),
    }
}

fn go<D: TxQueue>(
    spec: &ReplaySpec,
    mut port: Port<D>,
    cancel: &CancelHandle,
    progress: Option<ProgressFn>,
) -> Result<ReplayReport> {
    let dev = port.queues.first_mut().ok_or_else(|| {
        Error::io(
            "replay",
            std::io::Error::other("the device opened no queue"),
        )
    })?;
    let max = dev.caps().buf_capacity.min(dev.caps().max_frame);
    let scan = reader::scan(&spec.file, max)?;
    if spec.strict && scan.oversize > 0 {
        return Err(oversize_refused(spec, &scan, max));
    }
    let mut records = mapped::Captured::open(&spec.file)?;
    let ctx = OpCtx {
        cancel: cancel.flag(),
        progress,
        total: scan.bytes.saturating_mul(spec.loops.max(1)),
    };
    let out = replay::replay(
        dev,
        &mut records,
        ReplayRun {
            schedule: Schedule::new(
                spec.timing,
                scan.packets,
                scan.first_ts,
                scan.last_ts,
                spec.loop_gap.map(|g| g.as_nanos() as u64),
            ),
            loops: spec.loops,
            deadline: spec.duration.map(|d| Instant::now() + d),
            rewrite: &spec.rewrite,
        },
        &ctx,
    )?;
    Ok(report(port.info.clone(), &scan, out))
}
