//! The engine: what turns a validated operation into frames on a device, each written once
//! against the device seam ([`crate::device::TxQueue`]):
//!
//! - [`udp`]: the UDP sender (datagram boundaries, chunked files with the xsend header,
//!   several queues), [`fill`]: file bytes read into a batch of frames with one `preadv`
//!   per contiguous run;
//! - [`tcp`]: the TCP driver (the sans-IO state machine, its segments framed into buffers,
//!   ACKs from the device's RX queue);
//! - [`gen`]: the generator loop (sizes, flows, pacing, timing histograms);
//! - [`kernel`]: the kernel-socket fallback (`sendfile`, `sendmmsg`), where the kernel does
//!   the framing, so there is no frame seam under it.
//!
//! A connection's engine part is a [`Transport`]; the API drives it with [`Job`]s.

pub(crate) mod fill;
pub(crate) mod gen;
pub(crate) mod kernel;
pub(crate) mod live;
pub(crate) mod live_replay;
pub(crate) mod replay;
pub(crate) mod tcp;
pub(crate) mod udp;
pub(crate) mod udp_zc;
pub(crate) mod zc;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::options::{Progress, ProgressFn, TransmitFlags};
use crate::payload::Payload;
use crate::report::{BackendInfo, SendStats};
use crate::sansio::cut::{Boundaries, Datagrams};
use crate::sansio::wire::xsend;

/// A validated operation, ready for a transport.
pub(crate) struct Job {
    /// The bytes.
    pub(crate) payload: Payload,
    /// 0 = auto, N = bytes per datagram/send, `u32::MAX` = end_of_packet flags decide.
    pub(crate) send_size: u32,
    /// Transmit flags.
    pub(crate) flags: TransmitFlags,
    /// Prefix every datagram with the xsend chunk header of this flow id (and send end
    /// markers).
    pub(crate) chunk_header: Option<u16>,
}

impl Job {
    /// Bytes of xsend chunk header in front of each datagram's payload.
    pub(crate) fn header_len(&self) -> u64 {
        if self.chunk_header.is_some() {
            xsend::HEADER_LEN as u64
        } else {
            0
        }
    }

    /// Datagram boundaries for a path whose largest payload is `max` bytes.
    pub(crate) fn boundaries(&self, max: u64) -> Result<Boundaries> {
        let hdr = self.header_len();
        Ok(match self.send_size {
            0 if self.chunk_header.is_some() => {
                if max <= hdr {
                    return Err(Error::MessageTooLarge { len: hdr + 1, max });
                }
                Boundaries::Size(max - hdr)
            }
            0 | u32::MAX => Boundaries::EndOfPacket,
            n => Boundaries::Size(n as u64),
        })
    }

    /// Check every datagram against `max` (payload bytes incl. chunk header) before anything
    /// is sent: the first that does not fit is returned as `MessageTooLarge`.
    pub(crate) fn check_datagrams(&self, max: u64) -> Result<Boundaries> {
        let b = self.boundaries(max)?;
        let hdr = self.header_len();
        let too_big = match b {
            Boundaries::Size(n) => (n + hdr > max).then_some(n + hdr),
            Boundaries::EndOfPacket => Datagrams::new(&self.payload.segments, b)
                .map(|s| s.len + hdr)
                .find(|&l| l > max),
        };
        match too_big {
            Some(len) => Err(Error::MessageTooLarge { len, max }),
            None => Ok(b),
        }
    }
}

/// Per-operation context shared with the driver: cancellation and progress.
#[derive(Clone)]
pub(crate) struct OpCtx {
    /// Set to stop the operation.
    pub(crate) cancel: Arc<AtomicBool>,
    /// Progress callback.
    pub(crate) progress: Option<ProgressFn>,
    /// Total bytes of the operation (for progress).
    pub(crate) total: u64,
}

impl OpCtx {
    /// Error out if cancelled.
    pub(crate) fn check_cancel(&self, sent: u64) -> Result<()> {
        if self.cancelled() {
            Err(Error::Cancelled { sent })
        } else {
            Ok(())
        }
    }

    /// True once cancellation was asked for.
    pub(crate) fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Report progress.
    pub(crate) fn progress(&self, bytes: u64, packets: u64) {
        if let Some(p) = &self.progress {
            p(Progress {
                bytes,
                packets,
                total: self.total,
            });
        }
    }
}

/// Running totals over all queues (for progress).
#[derive(Default)]
pub(crate) struct Totals {
    bytes: AtomicU64,
    packets: AtomicU64,
}

impl Totals {
    /// Add what `now` has beyond `reported`; returns the new totals.
    pub(crate) fn add(&self, now: SendStats, reported: &mut SendStats) -> (u64, u64) {
        let db = now.bytes - reported.bytes;
        let dn = now.packets - reported.packets;
        let b = self.bytes.fetch_add(db, Ordering::Relaxed) + db;
        let n = self.packets.fetch_add(dn, Ordering::Relaxed) + dn;
        *reported = now;
        (b, n)
    }
}

/// A connected transport: the engine part one connection drives.
pub(crate) trait Transport: Send {
    /// What was obtained.
    fn info(&self) -> &BackendInfo;
    /// Check the job against the path (sizes) before anything is sent.
    fn validate(&self, job: &Job) -> Result<()>;
    /// Send the job.
    fn send(&mut self, job: &Job, ctx: &OpCtx) -> Result<SendStats>;
    /// False once the transport is broken (peer gone) or disconnected.
    fn usable(&self) -> bool;
}

/// Run `f` for each item on a thread of its own (scoped), or inline when there is one item;
/// the results in order. A panic on a thread is propagated.
pub(crate) fn on_threads<T: Send, R: Send>(
    items: Vec<T>,
    f: impl Fn(usize, T) -> R + Sync,
) -> Vec<R> {
    if items.len() == 1 {
        return items.into_iter().map(|t| f(0, t)).collect();
    }
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .into_iter()
            .enumerate()
            .map(|(i, t)| s.spawn(move || f(i, t)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}
