//! The verifying receiver behind `xsend recv`: counts bytes and datagrams, hashes the content
//! (sha256), and for chunked UDP tracks lost / duplicated / reordered sequence numbers and
//! reassembles the stream by offset.
//!
//! [`ChunkTracker`] is the sans-IO part (unit tested); [`receive`] is the socket loop.

mod tracker;
mod window;

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};

pub use self::tracker::ChunkTracker;
use crate::error::{Error, Result};
use crate::options::Proto;
use crate::sansio::wire::xsend;
use crate::sys::socket::{self, RecvBatch};
use crate::sys::thread::realtime_ns;

/// Receiver settings.
#[derive(Debug, Clone)]
pub struct RecvConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Protocol.
    pub proto: Proto,
    /// Write the received stream here (chunked UDP: reassembled by offset).
    pub out: Option<PathBuf>,
    /// Count only: no hashing.
    pub count_only: bool,
    /// Stop after this long without data once the first has arrived (UDP: the stream is
    /// over; TCP: the stream is reported incomplete). `None`: 2 s for UDP, 60 s for TCP.
    pub idle_timeout: Option<Duration>,
    /// Give up if no connection comes, or nothing arrives, within this time.
    pub first_timeout: Option<Duration>,
    /// The stream's size, if known: chunked UDP accepts (and writes) no byte past it.
    pub expect_bytes: Option<u64>,
    /// Chunked UDP: the flow id of the stream (default: the first one that arrives).
    pub flow: Option<u16>,
    /// UDP: treat datagrams as raw payload even if they carry an xsend header.
    pub raw: bool,
    /// UDP receive buffer (SO_RCVBUFFORCE when permitted).
    pub rcvbuf: usize,
}

impl RecvConfig {
    /// Defaults for `listen`/`proto`.
    pub fn new(listen: SocketAddr, proto: Proto) -> Self {
        RecvConfig {
            listen,
            proto,
            out: None,
            count_only: false,
            idle_timeout: None,
            first_timeout: None,
            expect_bytes: None,
            flow: None,
            raw: false,
            rcvbuf: 1 << 30,
        }
    }
}

/// What arrived.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RecvReport {
    /// Payload bytes (chunked: unique payload bytes).
    pub bytes: u64,
    /// Datagrams (UDP) — all of them, duplicates included.
    pub datagrams: u64,
    /// sha256 of the stream (hex); absent with `count_only` or when reassembly was incomplete.
    pub sha256: Option<String>,
    /// From the first byte to the last.
    pub seconds: f64,
    /// Whether datagrams carried the xsend chunk header.
    pub chunked: bool,
    /// Chunked: sequence numbers never seen.
    pub lost: u64,
    /// Chunked: datagrams seen twice.
    pub duplicates: u64,
    /// Chunked: datagrams that arrived after a higher sequence number.
    pub reordered: u64,
    /// Chunked: the end-of-stream marker arrived.
    pub end_marker: bool,
    /// Chunked: datagram count announced by the end marker.
    pub expected_datagrams: Option<u64>,
    /// Chunked: byte count announced by the end marker.
    pub expected_bytes: Option<u64>,
    /// Datagrams that were too short or not xsend in a chunked stream.
    pub malformed: u64,
    /// Chunked: xsend datagrams counted and ignored, by cause.
    pub ignored: Ignored,
    /// Whether the whole stream arrived: TCP, the peer closed it; chunked UDP, the end marker
    /// and every datagram and byte it announced arrived. `None` for raw UDP (nobody can tell).
    pub complete: Option<bool>,
    /// Chunked: the stream's flow id (the first one seen).
    pub flow: Option<u16>,
    /// The peer (TCP) or first sender (UDP).
    pub peer: Option<String>,
    /// Chunked: one-way latency from the send timestamps in the xsend headers (meaningful
    /// when sender and receiver share a clock, as in a lab on one machine).
    pub latency: Option<crate::stats::Percentiles>,
}

/// xsend datagrams of a chunked receive that were not taken into the stream.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Ignored {
    /// Of another flow id than the stream's.
    pub other_flow: u64,
    /// A sequence number too old to tell from a duplicate.
    pub stale: u64,
    /// A sequence number or byte range outside the stream (too far ahead, past its end).
    pub out_of_range: u64,
    /// Bytes overlapping bytes already taken (the first bytes for an offset win).
    pub overlapping: u64,
    /// An end marker that contradicts what arrived or an earlier marker.
    pub bad_end_marker: u64,
}

/// Run the receiver until the stream ends. `ready` is called with the bound address once
/// the socket listens (print it, tell a test, ...).
pub fn receive(cfg: &RecvConfig, ready: impl FnOnce(SocketAddr)) -> Result<RecvReport> {
    match cfg.proto {
        Proto::Tcp => receive_tcp(cfg, ready),
        Proto::Udp => receive_udp(cfg, ready),
    }
}

fn open_out(cfg: &RecvConfig) -> Result<Option<File>> {
    cfg.out
        .as_ref()
        .map(|p| File::create(p).map_err(|e| Error::io(format!("creating {}", p.display()), e)))
        .transpose()
}

fn receive_tcp(cfg: &RecvConfig, ready: impl FnOnce(SocketAddr)) -> Result<RecvReport> {
    let l = TcpListener::bind(cfg.listen)
        .map_err(|e| Error::io(format!("listening on {}", cfg.listen), e))?;
    ready(l.local_addr().map_err(|e| Error::io("local_addr", e))?);
    if let Some(t) = cfg.first_timeout {
        let rev = socket::poll(l.as_fd(), libc::POLLIN, t).map_err(|e| Error::io("poll", e))?;
        if rev == 0 {
            return Err(Error::io(
                "waiting for a connection",
                io::ErrorKind::TimedOut.into(),
            ));
        }
    }
    let (mut s, peer) = l.accept().map_err(|e| Error::io("accept", e))?;
    let idle = cfg.idle_timeout.unwrap_or(TCP_IDLE);
    // Until the first byte: --timeout (if any); then at most `idle` between reads.
    s.set_read_timeout(Some(cfg.first_timeout.unwrap_or(idle).max(MIN_WAIT)))
        .map_err(|e| Error::io("SO_RCVTIMEO", e))?;
    let mut out = open_out(cfg)?;
    let mut hasher = (!cfg.count_only).then(Sha256::new);
    let mut buf = vec![0u8; 1 << 20];
    let mut report = RecvReport {
        peer: Some(peer.to_string()),
        ..Default::default()
    };
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    let complete = loop {
        let n = match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if first.is_none() {
                    return Err(Error::io(
                        format!("waiting for the first byte from {peer}"),
                        io::ErrorKind::TimedOut.into(),
                    ));
                }
                // Idle for too long: what arrived is reported, as incomplete.
                break false;
            }
            Err(e) => return Err(Error::io(format!("reading from {peer}"), e)),
        };
        last = Instant::now();
        if first.is_none() {
            first = Some(last);
            s.set_read_timeout(Some(idle.max(MIN_WAIT)))
                .map_err(|e| Error::io("SO_RCVTIMEO", e))?;
        }
        report.bytes += n as u64;
        if let Some(h) = hasher.as_mut() {
            h.update(&buf[..n]);
        }
        if let Some(f) = out.as_mut() {
            f.write_all(&buf[..n])
                .map_err(|e| Error::io("writing --out", e))?;
        }
    };
    report.seconds = first.map_or(0.0, |f| (last - f).as_secs_f64());
    report.complete = Some(complete);
    report.sha256 = hasher
        .filter(|_| complete)
        .map(|h| hex::encode(h.finalize()));
    Ok(report)
}

/// TCP: default time without data after which the stream is reported incomplete.
const TCP_IDLE: Duration = Duration::from_secs(60);
/// UDP: default time without a datagram that ends the receive.
const UDP_IDLE: Duration = Duration::from_secs(2);
/// Shortest socket timeout (a zero timeout means "forever" to the kernel).
const MIN_WAIT: Duration = Duration::from_millis(1);
/// Datagrams without an xsend header held before a receive is taken as raw (so that a
/// stray datagram ahead of a chunked stream does not make it raw).
const PROBE: usize = 16;

fn receive_udp(cfg: &RecvConfig, ready: impl FnOnce(SocketAddr)) -> Result<RecvReport> {
    let s =
        UdpSocket::bind(cfg.listen).map_err(|e| Error::io(format!("binding {}", cfg.listen), e))?;
    let fd = s.as_fd();
    if socket::setsockopt_int(
        fd,
        libc::SOL_SOCKET,
        libc::SO_RCVBUFFORCE,
        cfg.rcvbuf.min(i32::MAX as usize) as i32,
    )
    .is_err()
    {
        let _ = socket::setsockopt_int(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            cfg.rcvbuf.min(i32::MAX as usize) as i32,
        );
    }
    s.set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(|e| Error::io("SO_RCVTIMEO", e))?;
    ready(s.local_addr().map_err(|e| Error::io("local_addr", e))?);

    // One buffer per datagram of a batch, each large enough for any datagram.
    let mut batch = RecvBatch::new(65_536);

    let mut out = open_out(cfg)?;
    let mut raw = Raw::new(!cfg.count_only);
    let mut tracker: Option<ChunkTracker> = None;
    // Datagrams without an xsend header, held until the receive is known to be raw.
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut is_raw = cfg.raw;
    let idle_limit = cfg.idle_timeout.unwrap_or(UDP_IDLE);
    let start = Instant::now();
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    let mut end_seen_at: Option<Instant> = None;
    let mut peer: Option<String> = None;
    loop {
        let n = match socket::recvmmsg(fd, &mut batch) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                0
            }
            Err(e) => return Err(Error::io("recvmmsg", e)),
        };
        let now = Instant::now();
        if n == 0 {
            match first {
                None => {
                    if cfg.first_timeout.is_some_and(|t| start.elapsed() > t) {
                        return Err(Error::io(
                            "waiting for datagrams",
                            io::ErrorKind::TimedOut.into(),
                        ));
                    }
                }
                Some(_) => {
                    let idle = now - last;
                    // After an end marker only stragglers are awaited, briefly.
                    let limit = if end_seen_at.is_some() {
                        idle_limit.min(Duration::from_millis(300))
                    } else {
                        idle_limit
                    };
                    if idle > limit {
                        break;
                    }
                }
            }
            continue;
        }
        if first.is_none() {
            first = Some(now);
            peer = batch.source(0).map(|a| a.to_string());
        }
        last = now;
        let arrived_ns = realtime_ns();
        for i in 0..n {
            let d = batch.datagram(i);
            if let Some(t) = tracker.as_mut() {
                t.datagram_at(d, arrived_ns)
                    .map_err(|e| Error::io("writing --out", e))?;
            } else if is_raw {
                raw.datagram(d, out.as_mut())?;
            } else if xsend::Packet::new_checked(d).is_ok() {
                // An xsend stream: what came before it is counted as not part of it.
                let mut t = ChunkTracker::new(!cfg.count_only, out.take());
                if let Some(b) = cfg.expect_bytes {
                    t.limit_bytes(b);
                }
                if let Some(f) = cfg.flow {
                    t.only_flow(f);
                }
                for h in held.drain(..) {
                    t.datagram(&h).map_err(|e| Error::io("writing --out", e))?;
                }
                t.datagram_at(d, arrived_ns)
                    .map_err(|e| Error::io("writing --out", e))?;
                tracker = Some(t);
            } else {
                held.push(d.to_vec());
                if held.len() == PROBE {
                    is_raw = true;
                    for h in held.drain(..) {
                        raw.datagram(&h, out.as_mut())?;
                    }
                }
            }
        }
        if let Some(t) = &tracker {
            if t.report.end_marker && end_seen_at.is_none() {
                end_seen_at = Some(now);
            }
            if t.complete() {
                break;
            }
        }
    }
    let mut report = match tracker {
        Some(t) => t.finish(),
        None => {
            for h in held.drain(..) {
                raw.datagram(&h, out.as_mut())?;
            }
            raw.finish()
        }
    };
    report.seconds = first.map_or(0.0, |f| (last - f).as_secs_f64());
    report.peer = peer;
    Ok(report)
}

/// A raw UDP receive: every datagram's payload, in arrival order.
struct Raw {
    report: RecvReport,
    hash: Option<Sha256>,
}

impl Raw {
    fn new(hash: bool) -> Self {
        Raw {
            report: RecvReport::default(),
            hash: hash.then(Sha256::new),
        }
    }

    fn datagram(&mut self, d: &[u8], out: Option<&mut File>) -> Result<()> {
        self.report.datagrams += 1;
        self.report.bytes += d.len() as u64;
        if let Some(h) = self.hash.as_mut() {
            h.update(d);
        }
        if let Some(f) = out {
            f.write_all(d).map_err(|e| Error::io("writing --out", e))?;
        }
        Ok(())
    }

    fn finish(mut self) -> RecvReport {
        self.report.sha256 = self.hash.map(|h| hex::encode(h.finalize()));
        self.report
    }
}
