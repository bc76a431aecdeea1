//! The verifying receiver behind `xsend recv`: counts bytes and datagrams, hashes the content
//! (sha256), and for chunked UDP tracks lost / duplicated / reordered sequence numbers and
//! reassembles the stream by offset.
//!
//! [`ChunkTracker`] is the sans-IO part (unit tested); [`receive`] is the socket loop.

mod tracker;

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
    /// UDP: stop after this long without a datagram (once the first has arrived).
    pub idle_timeout: Duration,
    /// Give up if nothing arrives (or no connection comes) within this time.
    pub first_timeout: Option<Duration>,
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
            idle_timeout: Duration::from_secs(2),
            first_timeout: None,
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
    /// The peer (TCP) or first sender (UDP).
    pub peer: Option<String>,
    /// Chunked: one-way latency from the send timestamps in the xsend headers (meaningful
    /// when sender and receiver share a clock, as in a lab on one machine).
    pub latency: Option<crate::stats::Percentiles>,
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
    let mut out = open_out(cfg)?;
    let mut hasher = (!cfg.count_only).then(Sha256::new);
    let mut buf = vec![0u8; 1 << 20];
    let mut report = RecvReport {
        peer: Some(peer.to_string()),
        ..Default::default()
    };
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(format!("reading from {peer}"), e)),
        };
        last = Instant::now();
        first.get_or_insert(last);
        report.bytes += n as u64;
        if let Some(h) = hasher.as_mut() {
            h.update(&buf[..n]);
        }
        if let Some(f) = out.as_mut() {
            f.write_all(&buf[..n])
                .map_err(|e| Error::io("writing --out", e))?;
        }
    }
    report.seconds = first.map_or(0.0, |f| (last - f).as_secs_f64());
    report.sha256 = hasher.map(|h| hex::encode(h.finalize()));
    Ok(report)
}

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
    let mut raw_hash = (!cfg.count_only).then(Sha256::new);
    let mut tracker: Option<ChunkTracker> = None;
    let mut raw = RecvReport::default();
    let mut decided = false;
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
                        cfg.idle_timeout.min(Duration::from_millis(300))
                    } else {
                        cfg.idle_timeout
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
            let len = d.len();
            if !decided {
                decided = true;
                if !cfg.raw && xsend::Packet::new_checked(d).is_ok() {
                    tracker = Some(ChunkTracker::new(!cfg.count_only, out.take()));
                }
            }
            match tracker.as_mut() {
                Some(t) => t
                    .datagram_at(d, arrived_ns)
                    .map_err(|e| Error::io("writing --out", e))?,
                None => {
                    raw.datagrams += 1;
                    raw.bytes += len as u64;
                    if let Some(h) = raw_hash.as_mut() {
                        h.update(d);
                    }
                    if let Some(f) = out.as_mut() {
                        f.write_all(d).map_err(|e| Error::io("writing --out", e))?;
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
            raw.sha256 = raw_hash.map(|h| hex::encode(h.finalize()));
            raw
        }
    };
    report.seconds = first.map_or(0.0, |f| (last - f).as_secs_f64());
    report.peer = peer;
    Ok(report)
}
