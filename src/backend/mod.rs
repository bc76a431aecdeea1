//! Backends: the I/O layers under the API. Each one turns a validated [`Job`] into bytes on
//! the wire and reports honestly what it obtained ([`BackendInfo`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::api::{BackendChoice, Progress, ProgressFn, Proto, TransmitFlags};
use crate::error::{Error, Result};
use crate::payload::{Boundaries, Payload};

pub mod kernel;
pub mod xdp;

/// What a connection really obtained: path, mode, sizes, and why better ones were refused.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct BackendInfo {
    /// `"kernel"` or `"xdp"`.
    pub backend: &'static str,
    /// How bytes move: `sendfile`, `sendmmsg`, `native/copy`, ...
    pub mode: String,
    /// Interface the traffic leaves by, if known.
    pub iface: Option<String>,
    /// Path MTU (UDP), if known.
    pub mtu: Option<u32>,
    /// Largest datagram payload (UDP): MTU minus IP and UDP headers.
    pub max_datagram: Option<u64>,
    /// Why each better backend/mode was not obtained, best first.
    pub fallback_reasons: Vec<String>,
    /// AF_XDP: where our XDP program runs: `native`, `generic` or `none`.
    pub xdp_mode: Option<String>,
    /// AF_XDP: `zerocopy` or `copy`.
    pub copy_mode: Option<String>,
    /// AF_XDP: queues (one socket and TX thread each).
    pub queues: Option<u32>,
    /// AF_XDP: TX/completion ring size (descriptors).
    pub ring_size: Option<u32>,
    /// AF_XDP: UMEM frame size in bytes.
    pub frame_size: Option<u32>,
    /// AF_XDP: how UDP checksums are made: `software` or `offload`.
    pub checksum: Option<String>,
    /// AF_XDP: frames one kick may send, if raised (`XDP_MAX_TX_SKB_BUDGET`).
    pub tx_budget: Option<u32>,
    /// AF_XDP: the next hop's MAC the frames carry.
    pub dst_mac: Option<String>,
}

/// Everything needed to (re)open a connection.
#[derive(Clone)]
pub struct ConnConfig {
    /// Peer address.
    pub peer: SocketAddr,
    /// Protocol.
    pub proto: Proto,
    /// Requested backend.
    pub backend: BackendChoice,
    /// Interface to send from.
    pub iface: Option<String>,
    /// Local address to bind.
    pub bind: Option<SocketAddr>,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// How long unacknowledged data may stay outstanding before the send fails.
    pub user_timeout: Duration,
    /// Called with progress during sends.
    pub progress: Option<ProgressFn>,
    /// AF_XDP: destination MAC instead of a neighbour-table lookup.
    pub dst_mac: Option<crate::wire::ethernet::MacAddr>,
    /// AF_XDP: 802.1Q VLAN tag for the frames.
    pub vlan: Option<u16>,
    /// AF_XDP: queues to send on (one socket and thread each).
    pub queues: u32,
    /// AF_XDP: ring size in descriptors.
    pub ring_size: u32,
    /// AF_XDP: checksum offload or software.
    pub checksum: crate::api::ChecksumChoice,
}

/// A validated operation, ready for a backend.
pub struct Job {
    /// The bytes.
    pub payload: Payload,
    /// 0 = auto, N = bytes per datagram/send, `u32::MAX` = end_of_packet flags decide.
    pub send_size: u32,
    /// Transmit flags.
    pub flags: TransmitFlags,
    /// Prefix every datagram with the xsend chunk header of this flow id (and send end markers).
    pub chunk_header: Option<u16>,
}

impl Job {
    /// Bytes of xsend chunk header in front of each datagram's payload.
    pub fn header_len(&self) -> u64 {
        if self.chunk_header.is_some() {
            crate::wire::xsend::HEADER_LEN as u64
        } else {
            0
        }
    }

    /// Datagram boundaries for a path whose largest payload is `max` bytes.
    pub fn boundaries(&self, max: u64) -> Result<Boundaries> {
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
    pub fn check_datagrams(&self, max: u64) -> Result<Boundaries> {
        let b = self.boundaries(max)?;
        let hdr = self.header_len();
        let too_big = match b {
            Boundaries::Size(n) => (n + hdr > max).then_some(n + hdr),
            Boundaries::EndOfPacket => crate::payload::Datagrams::new(&self.payload.segments, b)
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
pub struct OpCtx {
    /// Set to stop the operation.
    pub cancel: Arc<AtomicBool>,
    /// Progress callback.
    pub progress: Option<ProgressFn>,
    /// Total bytes of the operation (for progress).
    pub total: u64,
}

impl OpCtx {
    /// Error out if cancelled.
    pub fn check_cancel(&self, sent: u64) -> Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            Err(Error::Cancelled { sent })
        } else {
            Ok(())
        }
    }

    /// Report progress.
    pub fn progress(&self, bytes: u64, packets: u64) {
        if let Some(p) = &self.progress {
            p(Progress {
                bytes,
                packets,
                total: self.total,
            });
        }
    }
}

/// What an operation moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SendStats {
    /// Payload bytes (without xsend headers).
    pub bytes: u64,
    /// Datagrams (UDP), or TCP segments as the kernel counted them (`tcpi_segs_out`).
    pub packets: u64,
    /// TCP over AF_XDP: the user-space sender's counters for the connection so far
    /// (retransmissions, recoveries, RTO expirations, window probes, RTT, cwnd).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<crate::tcp::Stats>,
}

/// A connected transport: the I/O layer one connection drives.
pub trait Transport: Send {
    /// What was obtained.
    fn info(&self) -> &BackendInfo;
    /// Check the job against the path (sizes) before anything is sent.
    fn validate(&self, job: &Job) -> Result<()>;
    /// Send the job.
    fn send(&mut self, job: &Job, ctx: &OpCtx) -> Result<SendStats>;
    /// False once the transport is broken (peer gone) or disconnected.
    fn usable(&self) -> bool;
}

/// Open a transport for `cfg`, walking the degradation ladder for `BackendChoice::Auto`.
pub fn open(cfg: &ConnConfig) -> Result<Box<dyn Transport>> {
    match cfg.backend {
        BackendChoice::Xdp => xdp::open(cfg, Vec::new()),
        BackendChoice::Kernel => kernel::open(cfg, Vec::new()),
        BackendChoice::Auto => match xdp::open(cfg, Vec::new()) {
            Ok(t) => Ok(t),
            // Bad input is not a reason to fall back: it would fail there too.
            Err(e @ (Error::InterfaceNotFound { .. } | Error::Connect { .. })) => Err(e),
            Err(e) => kernel::open(cfg, vec![format!("xdp: {e}")]),
        },
    }
}
