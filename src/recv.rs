//! The verifying receiver behind `xsend recv`: counts bytes and datagrams, hashes the content
//! (sha256), and for chunked UDP tracks lost / duplicated / reordered sequence numbers and
//! reassembles the stream by offset.
//!
//! [`ChunkTracker`] is the sans-IO part (unit tested); [`receive`] is the socket loop.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::api::Proto;
use crate::error::{Error, Result};
use crate::sys;
use crate::wire::xsend;

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

/// Most out-of-order bytes held for in-order hashing before giving up the hash.
const REORDER_LIMIT: usize = 256 << 20;

/// Sans-IO tracking of a chunked datagram stream.
pub struct ChunkTracker {
    seen: Vec<u64>,
    max_seq: Option<u64>,
    unique: u64,
    hasher: Option<Sha256>,
    next_offset: u64,
    pending: BTreeMap<u64, Vec<u8>>,
    pending_bytes: usize,
    out: Option<File>,
    latency: hdrhistogram::Histogram<u64>,
    /// The report being built.
    pub report: RecvReport,
}

impl ChunkTracker {
    /// A tracker; `hash` = compute sha256; `out` = write payload at its offsets.
    pub fn new(hash: bool, out: Option<File>) -> Self {
        ChunkTracker {
            seen: Vec::new(),
            max_seq: None,
            unique: 0,
            hasher: hash.then(Sha256::new),
            next_offset: 0,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            out,
            latency: crate::stats::histogram(),
            report: RecvReport {
                chunked: true,
                ..Default::default()
            },
        }
    }

    fn test_and_set(&mut self, seq: u64) -> bool {
        let (w, b) = ((seq / 64) as usize, seq % 64);
        if w >= self.seen.len() {
            self.seen.resize(w + 1, 0);
        }
        let was = self.seen[w] & (1 << b) != 0;
        self.seen[w] |= 1 << b;
        was
    }

    /// Feed one datagram (header included).
    pub fn datagram(&mut self, d: &[u8]) -> io::Result<()> {
        self.datagram_at(d, 0)
    }

    /// Feed one datagram that arrived at `now_ns` (CLOCK_REALTIME; 0 = unknown).
    pub fn datagram_at(&mut self, d: &[u8], now_ns: u64) -> io::Result<()> {
        self.report.datagrams += 1;
        let Ok(p) = xsend::Packet::new_checked(d) else {
            self.report.malformed += 1;
            return Ok(());
        };
        let Ok(r) = xsend::Repr::parse(&p) else {
            self.report.malformed += 1;
            return Ok(());
        };
        if r.is_end() {
            self.report.datagrams -= 1;
            self.report.end_marker = true;
            self.report.expected_datagrams = Some(r.seq);
            self.report.expected_bytes = Some(r.offset);
            return Ok(());
        }
        if r.seq > (1 << 40) {
            self.report.malformed += 1;
            return Ok(());
        }
        if self.test_and_set(r.seq) {
            self.report.duplicates += 1;
            return Ok(());
        }
        self.unique += 1;
        if now_ns > 0 && r.timestamp_ns > 0 {
            crate::stats::record(&mut self.latency, now_ns.saturating_sub(r.timestamp_ns), 1);
        }
        match self.max_seq {
            Some(m) if r.seq < m => self.report.reordered += 1,
            _ => self.max_seq = Some(r.seq),
        }
        let payload = p.payload();
        self.report.bytes += payload.len() as u64;
        if let Some(f) = &self.out {
            f.write_all_at(payload, r.offset)?;
        }
        if self.hasher.is_some() {
            self.hash_at(r.offset, payload);
        }
        Ok(())
    }

    fn hash_at(&mut self, offset: u64, payload: &[u8]) {
        let Some(h) = self.hasher.as_mut() else {
            return;
        };
        if offset == self.next_offset {
            h.update(payload);
            self.next_offset += payload.len() as u64;
            while let Some(e) = self.pending.first_entry() {
                if *e.key() != self.next_offset {
                    break;
                }
                let v = e.remove();
                self.pending_bytes -= v.len();
                h.update(&v);
                self.next_offset += v.len() as u64;
            }
        } else if offset > self.next_offset {
            self.pending_bytes += payload.len();
            if self.pending_bytes > REORDER_LIMIT {
                self.hasher = None;
                self.pending.clear();
            } else {
                self.pending.insert(offset, payload.to_vec());
            }
        }
    }

    /// True once the end marker arrived and every announced datagram was seen.
    pub fn complete(&self) -> bool {
        matches!(self.report.expected_datagrams, Some(n) if self.unique >= n)
    }

    /// Close the books.
    pub fn finish(mut self) -> RecvReport {
        let expected = self
            .report
            .expected_datagrams
            .unwrap_or(self.max_seq.map_or(0, |m| m + 1));
        self.report.lost = expected.saturating_sub(self.unique);
        let whole = self.report.lost == 0
            && self.pending.is_empty()
            && self
                .report
                .expected_bytes
                .is_none_or(|b| b == self.next_offset);
        self.report.sha256 = match self.hasher {
            Some(h) if whole => Some(hex::encode(h.finalize())),
            _ => None,
        };
        self.report.latency = crate::stats::Percentiles::of(&self.latency);
        self.report
    }
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
        let rev = sys::poll(l.as_fd(), libc::POLLIN, t).map_err(|e| Error::io("poll", e))?;
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
    if sys::setsockopt_int(
        fd,
        libc::SOL_SOCKET,
        libc::SO_RCVBUFFORCE,
        cfg.rcvbuf.min(i32::MAX as usize) as i32,
    )
    .is_err()
    {
        let _ = sys::setsockopt_int(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            cfg.rcvbuf.min(i32::MAX as usize) as i32,
        );
    }
    s.set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(|e| Error::io("SO_RCVTIMEO", e))?;
    ready(s.local_addr().map_err(|e| Error::io("local_addr", e))?);

    const BATCH: usize = 64;
    const BUF: usize = 65_536;
    let mut bufs = vec![0u8; BATCH * BUF];
    let mut iovs: Vec<libc::iovec> = bufs
        .chunks_mut(BUF)
        .map(|c| libc::iovec {
            iov_base: c.as_mut_ptr().cast(),
            iov_len: BUF,
        })
        .collect();
    // SAFETY: mmsghdr is plain old data; all-zero is a valid empty header.
    let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; BATCH];
    let mut srcs: Vec<libc::sockaddr_storage> = vec![unsafe { std::mem::zeroed() }; BATCH];

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
        for i in 0..BATCH {
            msgs[i].msg_hdr.msg_iov = &mut iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = (&mut srcs[i] as *mut libc::sockaddr_storage).cast();
            msgs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            msgs[i].msg_len = 0;
        }
        // SAFETY: every header points at its own iovec, buffer and address storage, all alive
        // for the call and not otherwise borrowed.
        let n = match unsafe { sys::recvmmsg(fd, &mut msgs) } {
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
            let sa = srcs[0];
            peer = sockaddr_to_string(&sa);
        }
        last = now;
        let arrived_ns = sys::realtime_ns();
        for i in 0..n {
            let len = msgs[i].msg_len as usize;
            let d = &bufs[i * BUF..i * BUF + len];
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

fn sockaddr_to_string(sa: &libc::sockaddr_storage) -> Option<String> {
    match sa.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a = unsafe { &*(sa as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(a.sin_port))).to_string())
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a = unsafe { &*(sa as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::from((ip, u16::from_be(a.sin6_port))).to_string())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dgram(seq: u64, offset: u64, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; xsend::HEADER_LEN];
        xsend::Repr {
            flags: 0,
            flow: 1,
            seq,
            offset,
            timestamp_ns: 0,
        }
        .emit(&mut v);
        v.extend_from_slice(payload);
        v
    }

    fn end(count: u64, bytes: u64) -> Vec<u8> {
        let mut v = vec![0u8; xsend::HEADER_LEN];
        xsend::Repr {
            flags: xsend::FLAG_END,
            flow: 1,
            seq: count,
            offset: bytes,
            timestamp_ns: 0,
        }
        .emit(&mut v);
        v
    }

    fn sha(b: &[u8]) -> String {
        hex::encode(Sha256::digest(b))
    }

    #[test]
    fn in_order_stream() {
        let mut t = ChunkTracker::new(true, None);
        t.datagram(&dgram(0, 0, b"hello ")).unwrap();
        t.datagram(&dgram(1, 6, b"world")).unwrap();
        assert!(!t.complete());
        t.datagram(&end(2, 11)).unwrap();
        assert!(t.complete());
        let r = t.finish();
        assert_eq!(
            (r.bytes, r.datagrams, r.lost, r.duplicates, r.reordered),
            (11, 2, 0, 0, 0)
        );
        assert_eq!(r.sha256.unwrap(), sha(b"hello world"));
    }

    #[test]
    fn reorder_duplicate_and_loss() {
        let mut t = ChunkTracker::new(true, None);
        t.datagram(&dgram(1, 3, b"def")).unwrap();
        t.datagram(&dgram(0, 0, b"abc")).unwrap();
        t.datagram(&dgram(0, 0, b"abc")).unwrap();
        t.datagram(&dgram(2, 6, b"g")).unwrap();
        t.datagram(&end(3, 7)).unwrap();
        let r = t.finish();
        assert_eq!((r.reordered, r.duplicates, r.lost), (1, 1, 0));
        assert_eq!(r.sha256.unwrap(), sha(b"abcdefg"));

        let mut t = ChunkTracker::new(true, None);
        t.datagram(&dgram(0, 0, b"abc")).unwrap();
        t.datagram(&dgram(2, 6, b"g")).unwrap();
        t.datagram(&end(3, 7)).unwrap();
        assert!(!t.complete());
        let r = t.finish();
        assert_eq!(r.lost, 1);
        assert_eq!(r.sha256, None, "no hash for an incomplete stream");
    }

    #[test]
    fn lost_tail_without_end_marker_counts_by_max_seq() {
        let mut t = ChunkTracker::new(false, None);
        t.datagram(&dgram(0, 0, b"a")).unwrap();
        t.datagram(&dgram(3, 3, b"d")).unwrap();
        t.datagram(b"short").unwrap();
        let r = t.finish();
        assert_eq!((r.lost, r.malformed, r.end_marker), (2, 1, false));
    }

    #[test]
    fn one_way_latency_from_header_timestamps() {
        let mut t = ChunkTracker::new(false, None);
        for i in 0..100u64 {
            let mut d = dgram(i, i, b"x");
            xsend::Packet::new_unchecked(&mut d[..]).set_timestamp_ns(1_000_000);
            t.datagram_at(&d, 1_000_000 + 1000 * (i + 1)).unwrap();
        }
        let l = t.finish().latency.unwrap();
        assert_eq!(l.count, 100);
        assert!((49_000..=52_000).contains(&l.p50_ns), "{l:?}");
        assert!(l.max_ns >= 99_000);
    }

    #[test]
    fn reassembles_into_file_by_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out");
        let mut t = ChunkTracker::new(false, Some(File::create(&p).unwrap()));
        t.datagram(&dgram(1, 2, b"cd")).unwrap();
        t.datagram(&dgram(0, 0, b"ab")).unwrap();
        t.finish();
        assert_eq!(std::fs::read(&p).unwrap(), b"abcd");
    }
}
