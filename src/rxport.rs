//! The receiving port: the tester interface where a device under test's output arrives
//! (`--rx-iface`). An XDP program there (`bpf/rxport.bpf.c`) counts the frames of the
//! generator's probe streams (`sansio::wire::probe`) exactly — per stream received, lost,
//! duplicated, reordered — measures their one-way latency, drops them (or passes them on)
//! and passes everything else. Any generator run can count through it
//! (`xsend bench --rx-iface`); `xsend ndr` measures each trial's loss and latency with it.
//!
//! One-way latency needs the sender's and the receiver's clocks to be one: two ports of one
//! tester (the lab, or a machine with both NIC ports).

use serde::Serialize;

use crate::device::xdp::RxPortProg;
use crate::error::{Error, Result};
use crate::sansio::seqtrack;
use crate::sys;

/// How to count.
#[derive(Debug, Clone, Copy)]
pub struct RxPortConfig {
    /// Streams to track (stream ids `0..streams`): [`crate::gen::Generator::streams`], or
    /// before the generator exists [`crate::gen::Generator::max_streams`].
    pub streams: u32,
    /// Drop the counted frames (the fastest receiver), else pass them on to the kernel.
    pub drop: bool,
}

/// A receiving port attached to an interface; detached when dropped.
pub struct RxPort {
    prog: RxPortProg,
}

/// One-way latency of the counted frames (µs).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Latency {
    /// Median (the middle of its histogram bucket: within 3.2 %).
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Mean.
    pub mean_us: f64,
    /// Maximum.
    pub max_us: f64,
}

/// What the receiving port counted.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RxReport {
    /// Distinct stream frames received.
    pub received: u64,
    /// Frames lost: sent − received when the sent count is known, else the sequence gaps
    /// (which miss a stream's lost tail).
    pub lost: u64,
    /// Frames missing from the sequences (gaps not filled by late frames).
    pub seq_lost: u64,
    /// Times a sequence skipped ahead.
    pub gaps: u64,
    /// Duplicated frames.
    pub duplicated: u64,
    /// Frames that arrived after a higher sequence number of their stream.
    pub reordered: u64,
    /// Probe frames of a stream id outside the table (another run's, or hostile).
    pub unknown_stream: u64,
    /// Other frames, passed on untouched.
    pub other: u64,
    /// Bytes of the distinct frames (Ethernet, without FCS).
    pub bytes: u64,
    /// Streams that received at least one frame.
    pub streams_seen: u32,
    /// One-way latency, if any frame was counted.
    pub latency: Option<Latency>,
}

impl RxPort {
    /// Attach to `ifname`, in network namespace `netns` or the calling thread's.
    pub fn attach(netns: Option<&str>, ifname: &str, cfg: &RxPortConfig) -> Result<RxPort> {
        let mut prog = RxPortProg::load(cfg.streams, cfg.drop)?;
        let attach = |prog: &mut RxPortProg| -> Result<()> {
            let idx =
                sys::netdev::if_nametoindex(ifname).ok_or_else(|| Error::InterfaceNotFound {
                    name: ifname.to_string(),
                })?;
            prog.attach(idx, ifname)
        };
        match netns {
            None => attach(&mut prog)?,
            Some(ns) => std::thread::scope(|s| {
                s.spawn(|| {
                    sys::thread::enter_netns(ns)
                        .map_err(|e| Error::io(format!("entering netns {ns}"), e))?;
                    attach(&mut prog)
                })
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
            })?,
        }
        Ok(RxPort { prog })
    }

    /// Zero every counter (between runs, when nothing of a stream is arriving).
    pub fn reset(&self) -> Result<()> {
        self.prog.reset()
    }

    /// What was counted since attaching or the last reset; `sent`, if known, is what the
    /// generator sent (loss is then counted against it).
    pub fn report(&self, sent: Option<u64>) -> Result<RxReport> {
        let raw = self.prog.read()?;
        let mut r = RxReport {
            received: 0,
            lost: 0,
            seq_lost: 0,
            gaps: 0,
            duplicated: 0,
            reordered: 0,
            unknown_stream: raw.unknown,
            other: raw.other,
            bytes: 0,
            streams_seen: 0,
            latency: None,
        };
        for s in &raw.streams {
            r.received += s.received;
            r.seq_lost += s.lost;
            r.gaps += s.gaps;
            r.duplicated += s.dup;
            r.reordered += s.reorder;
            r.bytes += s.bytes;
            r.streams_seen += u32::from(s.received > 0);
        }
        r.lost = match sent {
            Some(n) => n.saturating_sub(r.received),
            None => r.seq_lost,
        };
        if raw.lat_n > 0 {
            let q = |x| seqtrack::quantile(&raw.lat_hist, x).unwrap_or(0.0) / 1e3;
            r.latency = Some(Latency {
                p50_us: q(0.5),
                p99_us: q(0.99),
                mean_us: raw.lat_sum as f64 / raw.lat_n as f64 / 1e3,
                max_us: raw.lat_max as f64 / 1e3,
            });
        }
        Ok(r)
    }
}
