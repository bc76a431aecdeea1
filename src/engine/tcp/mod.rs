//! The TCP driver: the sans-IO sender of [`crate::sansio::tcp`] driven over one device
//! queue that sends and receives.
//!
//! TX: segments are framed straight into device buffers, their file bytes read into them with
//! one `preadv` per contiguous run ([`FileReads`]): the file is the retransmit buffer. RX:
//! the device delivers the connection's packets (on AF_XDP our XDP program steers the
//! 4-tuple into the socket); [`parse_segment`] keeps those of our flow. Waits are `poll`s on
//! the device, never busy loops, and a kick happens only when something waits for one.

mod stream;

use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use self::stream::Stream;
use crate::device::{FileMapper, Port, RxQueue, TxQueue};
use crate::engine::fill::{write_payload, FileReads};
use crate::engine::zc::{FileRange, ZeroCopy};
use crate::engine::{Job, OpCtx, Transport};
use crate::error::{Error, Result};
use crate::options::{ConnConfig, PayloadChoice, TransmitFlags};
use crate::report::{BackendInfo, SendStats};
use crate::sansio::cut::Span;
use crate::sansio::framer::{parse_segment, TcpFramer};
use crate::sansio::tcp::{self as sm, ConnError, Sender, State};
use crate::sansio::wire::{checksum, tcp};
use crate::sys::watchdog::Watchdog;

/// Segments framed per loop before ACKs are read again.
const TX_BURST: usize = 256;
/// Segments framed per `preadv` batch.
const TX_BATCH: usize = 64;
/// How long an abort waits for a challenge ACK to its RST.
const CHALLENGE_WAIT: Duration = Duration::from_millis(200);
/// How long closing waits for the peer (FIN acknowledged, peer's FIN) before giving up.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// Empty passes of the drive loop before it sleeps in `poll` until an ACK or a timer.
const IDLE_SPINS: u32 = 512;

/// A segment of the batch being framed: its buffer, header and stream bytes.
struct Pending<B> {
    buf: B,
    seg: tcp::Repr,
    span: Option<Span>,
}

/// A TCP connection over a device queue.
pub(crate) struct TcpTransport<D: TxQueue + RxQueue> {
    /// The one queue (a vector so a file mapper can open it again).
    devs: Vec<D>,
    /// Maps a file into the queue for zero-copy payloads, where the device can.
    files: Option<Box<dyn FileMapper<D>>>,
    payload: PayloadChoice,
    framer: TcpFramer,
    sm: Sender,
    peer: SocketAddr,
    local: SocketAddr,
    info: BackendInfo,
    usable: bool,
    /// Scratch for one batch (reused: nothing is allocated per segment).
    pending: Vec<Pending<D::Buf>>,
    /// Makes the peer reset the connection if this process dies without closing it.
    watchdog: Option<Watchdog>,
    /// Kept while the connection lives (XDP program, port reservation); dropped last.
    _hold: Box<dyn Send>,
}

fn random_iss(local: SocketAddr) -> u32 {
    if let Some(v) = std::env::var("XSEND_TCP_ISS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return v; // test hook: start near the wrap of the sequence space
    }
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u16(local.port());
    h.write_u128(crate::sys::thread::realtime_ns() as u128);
    h.finish() as u32
}

impl<D: TxQueue + RxQueue> TcpTransport<D> {
    /// Send file payloads without a copy where `files` can map them (as the connection's
    /// payload choice says).
    pub(crate) fn with_files(mut self, files: Box<dyn FileMapper<D>>) -> Self {
        self.files = Some(files);
        self
    }

    /// Connect (three-way handshake) over the port's one queue.
    pub(crate) fn connect(port: Port<D>, cfg: &ConnConfig) -> Result<Self> {
        let Port {
            queues,
            flows,
            mtu,
            info,
            hold,
        } = port;
        let (Some(dev), Some(flow)) = (queues.into_iter().next(), flows.first().copied()) else {
            return Err(Error::io(
                "TCP",
                io::Error::other("the device opened no queue"),
            ));
        };
        let mut framer = TcpFramer::new(&flow, mtu);
        framer.set_checksum_offload(dev.caps().csum_offload);
        let mss = framer.max_payload(0).min(u16::MAX as usize) as u16;
        let iss = random_iss(flow.src);
        let mut conf = sm::Config::new(mss, iss);
        conf.connect_timeout = cfg.connect_timeout;
        conf.user_timeout = cfg.user_timeout;
        let mut t = TcpTransport {
            devs: vec![dev],
            files: None,
            payload: cfg.payload,
            framer,
            sm: Sender::connect(conf, Instant::now()),
            peer: flow.dst,
            local: flow.src,
            info,
            usable: true,
            pending: Vec::with_capacity(TX_BATCH),
            watchdog: None,
            _hold: hold,
        };
        t.drive(None, None, |s| s.state() != State::SynSent, None)?;
        // Best effort: without it (no fork, no raw socket) the peer learns of a killed sender
        // only when it next sends.
        if std::env::var_os("XSEND_NO_WATCHDOG").is_none() {
            t.watchdog =
                Watchdog::arm(&provocation(flow.src, flow.dst, iss), flow.src, flow.dst).ok();
        }
        Ok(t)
    }

    fn conn_error(&self, e: ConnError) -> Error {
        let kind = match e {
            ConnError::Refused => io::ErrorKind::ConnectionRefused,
            ConnError::ConnectTimeout | ConnError::Timeout => io::ErrorKind::TimedOut,
            ConnError::Reset => io::ErrorKind::ConnectionReset,
        };
        let source = io::Error::new(kind, e.to_string());
        match e {
            ConnError::Refused | ConnError::ConnectTimeout => Error::Connect {
                addr: self.peer,
                source,
            },
            _ => Error::PeerGone {
                addr: self.peer,
                sent: self.sm.acked(),
                source,
            },
        }
    }

    /// Feed every segment waiting in the RX queue to the state machine.
    fn poll_rx(&mut self, now: Instant) -> usize {
        let (peer, lport) = (self.peer, self.local.port());
        let sm = &mut self.sm;
        self.devs[0].recv(|frame| {
            if let Some(seg) = parse_segment(frame, peer, lport) {
                sm.on_segment(now, &seg);
            }
        })
    }

    /// Frame up to [`TX_BURST`] segments the state machine wants to send.
    fn tx_burst<'j>(
        &mut self,
        now: Instant,
        stream: Option<&Stream<'j>>,
        reads: &mut FileReads<'j>,
    ) -> Result<usize> {
        let mut n = 0;
        while n < TX_BURST {
            let got = self.tx_batch(now, stream, reads, (TX_BURST - n).min(TX_BATCH))?;
            if got == 0 {
                break;
            }
            n += got;
        }
        Ok(n)
    }

    /// Frame up to `max` segments: take a buffer for each segment the state machine yields,
    /// read every file piece of the batch into its buffer, then write headers, memory pieces
    /// and checksums, and submit.
    fn tx_batch<'j>(
        &mut self,
        now: Instant,
        stream: Option<&Stream<'j>>,
        reads: &mut FileReads<'j>,
        max: usize,
    ) -> Result<usize> {
        reads.clear();
        while self.pending.len() < max {
            let buf = match self.devs[0].alloc() {
                Some(b) => b,
                None => {
                    if let Err(e) = self.devs[0].flush() {
                        for p in self.pending.drain(..) {
                            self.devs[0].free(p.buf);
                        }
                        return Err(e);
                    }
                    self.devs[0].reap();
                    match self.devs[0].alloc() {
                        Some(b) => b,
                        None => break,
                    }
                }
            };
            let Some(t) = self.sm.poll_transmit(now) else {
                self.devs[0].free(buf);
                break;
            };
            let seg = tcp::Repr {
                seq: t.seq,
                ack: t.ack,
                flags: t.flags,
                window: t.window,
                options: t.options,
                payload_len: t.len,
                ..Default::default()
            };
            let span = match (t.len, stream) {
                (0, _) => None,
                (_, Some(s)) => s.span(t.offset, t.len),
                _ => None,
            };
            if t.len > 0 && span.is_none() {
                // No bytes for this range (cannot happen: data is pushed with its stream):
                // the segment is not sent and will be retransmitted as if lost.
                self.devs[0].free(buf);
                continue;
            }
            if let (Some(s), Some(sp)) = (stream, span) {
                if s.zero_copy.is_none() {
                    let at = self.framer.frame_len(&seg) - t.len;
                    reads.plan(s.segs, sp, self.pending.len(), at);
                }
            }
            self.pending.push(Pending { buf, seg, span });
        }
        let n = self.pending.len();
        if n == 0 {
            return Ok(0);
        }
        let dev = &self.devs[0];
        let mut data: arrayvec::ArrayVec<&mut [u8], TX_BATCH> = self
            .pending
            .iter_mut()
            .map(|p| dev.data(&mut p.buf))
            .collect();
        let read = reads.read(&mut data);
        drop(data);
        if let Err(e) = read {
            for p in self.pending.drain(..) {
                self.devs[0].free(p.buf);
            }
            return Err(e);
        }
        let csum = self.framer.checksum_request();
        let zc = stream.and_then(|s| s.zero_copy.as_ref());
        if let Some(r) = zc {
            // The file's pages go out as they are: it must still hold them (and after).
            if let Err(e) = r.check_all() {
                for p in self.pending.drain(..) {
                    self.devs[0].free(p.buf);
                }
                return Err(e);
            }
        }
        let mut failed = None;
        for mut p in self.pending.drain(..) {
            if failed.is_some() {
                self.devs[0].free(p.buf);
                continue;
            }
            let segs = stream.map_or(&[][..], |s| s.segs);
            let zc_span = zc.zip(p.span);
            let len = self
                .framer
                .emit(self.devs[0].data(&mut p.buf), &p.seg, |w| {
                    match (zc_span, p.span) {
                        // The file's bytes follow in their own descriptors; offloaded
                        // checksums never read them.
                        (Some((r, sp)), _) => r.payload(w, sp.off, sp.len as usize),
                        (None, Some(sp)) => write_payload(w, segs, sp),
                        (None, None) => {}
                    }
                });
            match len {
                Ok(len) => {
                    let r = match zc_span {
                        Some((r, sp)) => {
                            let plen = sp.len as usize;
                            self.devs[0].submit_file(p.buf, len - plen, r.base + sp.off, plen, csum)
                        }
                        None => self.devs[0].submit(p.buf, len, csum),
                    };
                    if let Err(e) = r {
                        failed = Some(e);
                    }
                }
                Err(e) => {
                    self.devs[0].free(p.buf);
                    failed = Some(e.into());
                }
            }
        }
        if failed.is_none() {
            if let Some(r) = zc {
                // On the wire (a copy-mode kick copies synchronously), then checked.
                self.devs[0].flush()?;
                r.check_all()?;
                r.check_read()?;
            }
        }
        failed.map_or(Ok(n), Err)
    }

    /// Run the connection until `done` holds, the deadline passes (returns false) or it
    /// fails.
    fn drive(
        &mut self,
        ctx: Option<&OpCtx>,
        stream: Option<&Stream<'_>>,
        done: impl Fn(&Sender) -> bool,
        deadline: Option<Instant>,
    ) -> Result<bool> {
        let mut reads = FileReads::with_capacity(if stream.is_some() { TX_BATCH * 2 } else { 0 });
        let mut idle = 0u32;
        let mut last_report = Instant::now();
        let base = stream.map_or(0, |s| s.base);
        loop {
            let now = Instant::now();
            let got = self.poll_rx(now);
            if self.sm.poll_timeout().is_some_and(|t| t <= now) {
                self.sm.on_timeout(now);
            }
            if let Some(e) = self.sm.error() {
                return Err(self.conn_error(e));
            }
            if done(&self.sm) {
                // Flush what the last segment asked for (an ACK of the peer's FIN).
                self.tx_burst(now, stream, &mut reads)?;
                self.devs[0].flush()?;
                return Ok(true);
            }
            if deadline.is_some_and(|d| now >= d) {
                return Ok(false);
            }
            let sent = self.tx_burst(now, stream, &mut reads)?;
            self.devs[0].flush()?;
            self.devs[0].reap();
            if let Some(ctx) = ctx {
                if now - last_report >= Duration::from_millis(5) {
                    last_report = now;
                    let acked = self.sm.acked().saturating_sub(base);
                    ctx.progress(acked, self.sm.stats().segments_out);
                    ctx.check_cancel(acked)?;
                    if let Some(s) = stream {
                        s.check_truncation()?;
                    }
                }
            }
            if got == 0 && sent == 0 {
                self.devs[0].check()?;
                idle += 1;
                if idle > IDLE_SPINS {
                    // Nothing to do: sleep until an ACK arrives or the next timer.
                    let wait = self
                        .sm
                        .poll_timeout()
                        .map_or(Duration::from_millis(5), |t| {
                            t.saturating_duration_since(now)
                        })
                        .clamp(Duration::from_millis(1), Duration::from_millis(5));
                    self.devs[0].wait(wait);
                } else {
                    std::hint::spin_loop();
                }
            } else {
                idle = 0;
            }
        }
    }

    /// Send a RST and stop (used on cancellation and errors).
    ///
    /// The RST carries our next sequence number. A receiver takes a RST only at exactly the
    /// sequence number it expects (RFC 5961 §3.2); when segments we counted as sent never left
    /// (an error mid-batch) or are still in flight, it answers with a challenge ACK instead,
    /// and we answer that with a RST at the acknowledged number (bounded wait).
    fn abort(&mut self) {
        if self.devs.is_empty() || self.sm.error().is_some() || self.sm.state() == State::Closed {
            return;
        }
        let t = self.sm.reset_segment(Instant::now());
        self.send_rst(t.seq, t.ack, t.window);
        if self.sm.state() != State::SynSent && !self.sm.all_acked() {
            let (peer, lport) = (self.peer, self.local.port());
            let until = Instant::now() + CHALLENGE_WAIT;
            while Instant::now() < until {
                let mut challenge = None;
                self.devs[0].recv(|frame| {
                    if let Some(seg) = parse_segment(frame, peer, lport) {
                        if seg.flags.contains(tcp::Flags::ACK)
                            && !seg.flags.contains(tcp::Flags::RST)
                        {
                            challenge = Some(seg.ack);
                        }
                    }
                });
                if let Some(ack) = challenge {
                    self.send_rst(ack, t.ack, t.window);
                    break;
                }
                self.devs[0].wait(Duration::from_millis(1));
            }
        }
        self.usable = false;
    }

    /// Send one RST|ACK segment and wait for it to leave.
    fn send_rst(&mut self, seq: u32, ack: u32, window: u16) {
        let seg = tcp::Repr {
            seq,
            ack,
            flags: tcp::Flags::RST | tcp::Flags::ACK,
            window,
            ..Default::default()
        };
        let buf = self.devs[0].alloc().or_else(|| {
            self.devs[0].reap();
            self.devs[0].alloc()
        });
        if let Some(mut buf) = buf {
            match self.framer.emit(self.devs[0].data(&mut buf), &seg, |_| ()) {
                Ok(len) => {
                    let _ = self.devs[0].submit(buf, len, self.framer.checksum_request());
                }
                Err(_) => self.devs[0].free(buf),
            }
            let _ = self.devs[0].drain();
        }
    }

    /// After our FIN is acknowledged: wait (bounded) for the peer's FIN and acknowledge it.
    fn finish_close(&mut self) {
        if self.devs.is_empty() {
            return;
        }
        let until = Instant::now() + CLOSE_WAIT;
        let _ = self.drive(None, None, |s| s.state() == State::Closed, Some(until));
        let _ = self.devs[0].drain();
        self.usable = false;
    }

    fn send_inner<'j>(
        &mut self,
        job: &'j Job,
        ctx: &OpCtx,
        zero_copy: Option<FileRange<'j>>,
    ) -> Result<SendStats> {
        let mut stream = Stream::new(&job.payload.segments, self.sm.end());
        stream.zero_copy = zero_copy;
        let total = stream.len();
        let target = stream.base + total;
        let segs_before = self.sm.stats().segments_out;
        self.sm.push(total);
        let disconnect = job.flags.contains(TransmitFlags::DISCONNECT);
        if disconnect {
            self.sm.close();
        }
        // User space is the retransmit buffer: the operation ends when the peer has
        // acknowledged everything (WRITE_BEHIND cannot return earlier on this path).
        self.drive(
            Some(ctx),
            Some(&stream),
            |s| s.acked() >= target && (!disconnect || s.all_acked()),
            None,
        )?;
        stream.check_truncation()?;
        if let Some(r) = &stream.zero_copy {
            // Everything acknowledged: the pages were read; the file must still hold them.
            r.check_all()?;
        }
        ctx.progress(total, self.sm.stats().segments_out - segs_before);
        if disconnect {
            self.finish_close();
        }
        Ok(SendStats {
            bytes: total,
            packets: self.sm.stats().segments_out - segs_before,
            tcp: Some(self.sm.stats()),
        })
    }
}

impl<D: TxQueue + RxQueue + 'static> Transport for TcpTransport<D> {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    fn validate(&self, _job: &Job) -> Result<()> {
        Ok(())
    }

    fn send(&mut self, job: &Job, ctx: &OpCtx) -> Result<SendStats> {
        // The payload road first: nothing is sent yet, so a refusal leaves the connection
        // as it is (unless the queue could not be opened again).
        let zero_copy = ZeroCopy {
            choice: self.payload,
            files: self.files.as_deref_mut(),
            queues: &mut self.devs,
            info: &mut self.info,
        }
        .range(job);
        let zero_copy = match zero_copy {
            Ok(z) => z,
            Err(e) => {
                if self.devs.is_empty() {
                    self.usable = false;
                }
                return Err(e);
            }
        };
        if let Some(offload) = self.devs.first().map(|d| d.caps().csum_offload) {
            // A queue opened again with a file may have other checksum means.
            self.framer.set_checksum_offload(offload);
        }
        let r = self.send_inner(job, ctx, zero_copy);
        if r.is_err() {
            self.abort();
            self.usable = false;
        }
        r
    }

    fn usable(&self) -> bool {
        self.usable
    }
}

impl<D: TxQueue + RxQueue> Drop for TcpTransport<D> {
    fn drop(&mut self) {
        if self.devs.is_empty() {
            // The queue is gone (it could not be opened again): nothing can be sent; the
            // watchdog stays armed and resets the peer when this process ends.
            return;
        }
        // Close like a kernel socket would: FIN after the data, bounded wait, else RST.
        if self.usable && self.sm.error().is_none() && self.sm.state() == State::Established {
            self.sm.close();
            let until = Instant::now() + CLOSE_WAIT;
            match self.drive(None, None, |s| s.all_acked(), Some(until)) {
                Ok(true) => self.finish_close(),
                _ => self.abort(),
            }
        }
        let _ = self.devs[0].drain();
        // Closed (or reset) by this process: the watchdog has nothing to do.
        if let Some(w) = self.watchdog.as_mut() {
            w.disarm();
        }
    }
}

/// A segment of the connection far outside the peer's window: the peer answers it with an
/// ACK, and the kernel (with no socket for the flow once this process is gone) answers that
/// with a RST the peer accepts. See [`Watchdog`].
fn provocation(local: SocketAddr, peer: SocketAddr, iss: u32) -> Vec<u8> {
    let r = tcp::Repr {
        src_port: local.port(),
        dst_port: peer.port(),
        seq: iss.wrapping_add(0x8000_0000),
        ack: 0,
        flags: tcp::Flags::ACK,
        window: 0,
        ..Default::default()
    };
    let mut b = vec![0u8; r.header_len()];
    let n = r.emit(&mut b);
    let sum = tcp::pseudo_header(local.ip(), peer.ip(), n as u32) + checksum::sum(&b[..n]);
    b[16..18].copy_from_slice(&checksum::finish(sum).to_be_bytes());
    b
}
