//! TCP over AF_XDP: the sans-IO sender of [`crate::tcp`] driven by one AF_XDP socket.
//!
//! TX: segments are framed straight into UMEM frames, their data copied from the job's
//! buffers and file mappings (the mapping is the retransmit buffer). RX: our XDP program
//! steers the packets of this connection's 4-tuple into the socket's RX ring (the fill ring is
//! kept populated); everything else goes to the kernel. A bound kernel TCP socket reserves the
//! local port, so the kernel neither hands it out again nor sees our flow (the XDP program
//! takes its packets first, so it sends no RST either).

use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::xsk::Frame;
use super::{fd_of, net, prog, TxPath, TX_BUDGET, XDP_HEADROOM};
use crate::api::TransmitFlags;
use crate::backend::{BackendInfo, ConnConfig, Job, OpCtx, SendStats, Transport};
use crate::error::{Error, Result};
use crate::framer::{TcpFramer, UdpFlow, UdpFramer};
use crate::payload::{for_each_range, MappedFile, Segment, SegmentData, Span};
use crate::sys;
use crate::tcp::{self as sm, ConnError, Sender, State};
use crate::wire::{ethernet, ipv4, ipv6, tcp};

/// Frames given to the fill ring for ACKs.
const RX_FRAMES: u32 = 512;
/// Segments framed per loop before ACKs are read again.
const TX_BURST: usize = 256;
/// How long an abort waits for a challenge ACK to its RST.
const CHALLENGE_WAIT: Duration = Duration::from_millis(200);
/// Segments framed per `preadv` batch.
const TX_BATCH: usize = 64;
/// File pieces per batch (a segment usually has one).
const MAX_IOV: usize = 2 * TX_BATCH;

/// Whether two segments are pieces of the same mapped file.
fn same_file(a: &Segment, b: &Segment) -> bool {
    match (&a.data, &b.data) {
        (SegmentData::File { file: x, .. }, SegmentData::File { file: y, .. }) => Arc::ptr_eq(x, y),
        _ => false,
    }
}
/// How long closing waits for the peer (FIN acknowledged, peer's FIN) before giving up.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// The bytes of one operation, addressed by stream offset.
struct Stream<'a> {
    segs: &'a [Segment],
    /// Stream offset where each segment starts.
    starts: Vec<u64>,
    /// Stream offset of this operation's first byte.
    base: u64,
    files: Vec<&'a Arc<MappedFile>>,
}

impl<'a> Stream<'a> {
    fn new(segs: &'a [Segment], base: u64) -> Self {
        let mut at = base;
        let mut files: Vec<&Arc<MappedFile>> = vec![];
        let starts = segs
            .iter()
            .map(|s| {
                if let SegmentData::File { file, .. } = &s.data {
                    if !files.iter().any(|f| Arc::ptr_eq(f, file)) {
                        files.push(file);
                    }
                }
                let a = at;
                at += s.len;
                a
            })
            .collect();
        Stream {
            segs,
            starts,
            base,
            files,
        }
    }

    fn len(&self) -> u64 {
        self.segs.iter().map(|s| s.len).sum()
    }

    /// The pieces of `[off, off + len)`.
    fn span(&self, off: u64, len: usize) -> Option<Span> {
        if off < self.base {
            return None;
        }
        let i = self.starts.partition_point(|&s| s <= off).checked_sub(1)?;
        Some(Span {
            seg: i,
            off: off - self.starts[i],
            len: len as u64,
        })
    }

    /// A file read through the mapping hit a truncated page.
    fn check_truncation(&self) -> Result<()> {
        for f in &self.files {
            if f.read_fault() {
                return Err(f.truncated(f.size()));
            }
        }
        Ok(())
    }
}

/// A TCP connection over AF_XDP.
pub struct XdpTcp {
    info: BackendInfo,
    path: TxPath,
    framer: TcpFramer,
    sm: Sender,
    peer: SocketAddr,
    local: SocketAddr,
    usable: bool,
    // Dropped last: the program and link, then the port reservation.
    _steer: prog::Steer,
    _reserve: Socket,
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
    h.write_u128(sys::realtime_ns() as u128);
    h.finish() as u32
}

fn rx_queues(ifname: &str) -> usize {
    std::fs::read_dir(format!("/sys/class/net/{ifname}/queues"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count()
        })
        .unwrap_or(1)
}

impl XdpTcp {
    /// Open and connect (three-way handshake) to `cfg.peer`.
    pub fn open(cfg: &ConnConfig, mut reasons: Vec<String>) -> Result<XdpTcp> {
        let unavailable = |reason: String| Error::BackendUnavailable {
            backend: "xdp",
            reason,
        };
        if let Some(i) = &cfg.iface {
            if sys::if_nametoindex(i).is_none() {
                return Err(Error::InterfaceNotFound { name: i.clone() });
            }
        }
        let peer = cfg.peer;
        let domain = Domain::for_address(peer);
        let bind_dev = |s: &Socket| -> Result<()> {
            if let Some(i) = &cfg.iface {
                s.bind_device(Some(i.as_bytes()))
                    .map_err(|e| Error::io(format!("binding to interface {i}"), e))?;
            }
            Ok(())
        };
        // The source address the kernel would use (a connected UDP socket sends nothing).
        let probe = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))
            .map_err(|e| Error::io("creating a route probe socket", e))?;
        bind_dev(&probe)?;
        if let Some(b) = cfg.bind {
            probe
                .bind(&SocketAddr::new(b.ip(), 0).into())
                .map_err(|e| Error::io(format!("binding {}", b.ip()), e))?;
        }
        probe.connect(&peer.into()).map_err(|e| Error::Connect {
            addr: peer,
            source: e,
        })?;
        let src_ip = probe
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map(|a| a.ip())
            .ok_or_else(|| unavailable("no local address for the flow".into()))?;
        // Reserve the local port with a bound, never-listening kernel TCP socket.
        let reserve = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))
            .map_err(|e| Error::io("creating the port-reserving socket", e))?;
        bind_dev(&reserve)?;
        let want = SocketAddr::new(src_ip, cfg.bind.map_or(0, |b| b.port()));
        reserve
            .bind(&want.into())
            .map_err(|e| Error::io(format!("reserving local TCP port {want}"), e))?;
        let local = reserve
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .ok_or_else(|| unavailable("no local port".into()))?;

        let route = net::route_get(peer.ip())?;
        let ifname = cfg.iface.clone().unwrap_or_else(|| route.dev.clone());
        if ifname == "lo" {
            return Err(unavailable("loopback has no NIC queue to send to".into()));
        }
        let nrx = rx_queues(&ifname);
        if nrx > 1 {
            return Err(unavailable(format!(
                "TCP over AF_XDP needs every packet of the flow on one queue, and {ifname} has {nrx} RX queues (use `ethtool -L {ifname} combined 1` or ntuple steering)"
            )));
        }
        let ifi = net::if_info(&ifname)?;
        let mtu = ifi.mtu;
        let l2 = (ethernet::HEADER_LEN + cfg.vlan.map_or(0, |_| ethernet::VLAN_TAG_LEN)) as u32;
        let frame_size = [2048u32, 4096]
            .into_iter()
            .find(|f| mtu + l2 + XDP_HEADROOM <= *f)
            .ok_or_else(|| {
                unavailable(format!(
                    "MTU {mtu} of {ifname} needs frames over 4096 bytes: multi-buffer (XDP_USE_SG) is not supported yet"
                ))
            })?;
        let dst_mac = match cfg.dst_mac {
            Some(m) => m,
            None => net::resolve(route.next_hop(peer.ip()), &ifname, Duration::from_secs(3))?,
        };
        // Receiving ACKs needs our program: without it there is no TCP over AF_XDP.
        let steer = prog::Steer::attach(ifi.index, &ifname, &mut reasons)
            .map_err(|e| unavailable(format!("XDP program on {ifname}: {e}")))?;
        let flow = UdpFlow {
            src_mac: ifi.mac,
            dst_mac,
            vlan: cfg.vlan,
            src: local,
            dst: peer,
        };
        let ring = cfg.ring_size.clamp(64, 16384).next_power_of_two();
        let udp = UdpFramer::new(&flow, mtu);
        let mut copy_mode = "zerocopy";
        let mut path = super::open_path(
            &ifname,
            0,
            (ring, frame_size, RX_FRAMES),
            udp,
            cfg.checksum,
            &mut reasons,
            &mut copy_mode,
        )?;
        steer.add_socket(0, path.fd)?;
        steer.add_flow(tcp::PROTO_TCP, local.port(), peer)?;
        let budget = sys::setsockopt_int(
            fd_of(path.fd),
            sys::SOL_XDP,
            sys::XDP_MAX_TX_SKB_BUDGET,
            TX_BUDGET,
        )
        .is_ok();
        if budget {
            path.kick_every = TX_BUDGET as usize;
        }
        let mut framer = TcpFramer::new(&flow, mtu);
        framer.set_checksum_offload(path.offload);
        let mss = framer.max_payload(0).min(u16::MAX as usize) as u16;
        let mut conf = sm::Config::new(mss, random_iss(local));
        conf.connect_timeout = cfg.connect_timeout;
        conf.user_timeout = cfg.user_timeout;
        let now = Instant::now();
        let info = BackendInfo {
            backend: "xdp",
            mode: format!("{}/{copy_mode}", steer.mode),
            iface: Some(ifname.clone()),
            mtu: Some(mtu),
            max_datagram: None,
            fallback_reasons: reasons,
            xdp_mode: Some(steer.mode.into()),
            copy_mode: Some(copy_mode.into()),
            queues: Some(1),
            ring_size: Some(ring),
            frame_size: Some(frame_size),
            checksum: Some(super::checksum_name(path.offload).into()),
            tx_budget: budget.then_some(TX_BUDGET as u32),
            dst_mac: Some(dst_mac.to_string()),
        };
        let mut t = XdpTcp {
            info,
            path,
            framer,
            sm: Sender::connect(conf, now),
            peer,
            local,
            usable: true,
            _steer: steer,
            _reserve: reserve,
        };
        t.drive(None, None, |s| s.state() != State::SynSent, None)?;
        Ok(t)
    }

    /// Counters of the TCP state machine.
    pub fn tcp_stats(&self) -> sm::Stats {
        self.sm.stats()
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

    /// Read every frame waiting in the RX ring into the state machine.
    fn poll_rx(&mut self, now: Instant) -> usize {
        let (peer, lport) = (self.peer, self.local.port());
        let sm = &mut self.sm;
        self.path.recv(|frame| {
            if let Some(seg) = parse_segment(frame, peer, lport) {
                sm.on_segment(now, &seg);
            }
        })
    }

    /// Frame up to [`TX_BURST`] segments the state machine wants to send.
    fn tx_burst(&mut self, now: Instant, stream: Option<&Stream<'_>>) -> Result<usize> {
        let mut n = 0;
        while n < TX_BURST {
            let got = self.tx_batch(now, stream, (TX_BURST - n).min(TX_BATCH))?;
            if got == 0 {
                break;
            }
            n += got;
        }
        Ok(n)
    }

    /// Frame up to `max` (≤ [`TX_BATCH`]) segments, as the UDP path does: take the frames,
    /// read every file piece of the batch straight into its frame with one scattered
    /// `preadv(2)` per contiguous file run (the one copy, page cache → UMEM, by the kernel:
    /// no page faults on the mapping), then write the headers, the memory pieces and the
    /// checksums. Scratch space is on the stack: nothing is allocated per segment.
    fn tx_batch(&mut self, now: Instant, stream: Option<&Stream<'_>>, max: usize) -> Result<usize> {
        /// A segment of the batch: its frame, header and stream bytes.
        #[derive(Clone, Copy)]
        struct Pending {
            desc: Frame,
            seg: tcp::Repr,
            span: Option<Span>,
            /// The file pieces are in the frame already (else: copied through the mapping).
            read: bool,
        }
        /// File bytes `[offset, offset + bytes)` of `stream.segs[seg]`'s file, read into
        /// `iovs[first..first + count]`.
        #[derive(Clone, Copy, Default)]
        struct Run {
            seg: usize,
            offset: u64,
            first: usize,
            count: usize,
            bytes: usize,
        }
        const EMPTY: libc::iovec = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        let mut pend = [Pending {
            desc: Frame::default(),
            seg: tcp::Repr::default(),
            span: None,
            read: false,
        }; TX_BATCH];
        let mut iovs = [EMPTY; MAX_IOV];
        let mut runs = [Run::default(); MAX_IOV];
        let (mut np, mut ni, mut nr) = (0usize, 0usize, 0usize);
        while np < max {
            if self.path.free.is_empty() {
                self.path.submit()?;
                self.path.reap();
                if self.path.free.is_empty() {
                    break;
                }
            }
            let Some(t) = self.sm.poll_transmit(now) else {
                break;
            };
            let Some(mut desc) = self.path.free.pop() else {
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
                self.path.free.push(desc);
                continue;
            }
            let len = self.framer.frame_len(&seg);
            let base = self.path.frame_ptr(&mut desc, len);
            let mut read = false;
            if let (Some(s), Some(sp)) = (stream, span) {
                // Room for every file piece of this segment? (Else it goes through the map.)
                let mut pieces = 0;
                for_each_range(s.segs, sp, |sg, _, _| {
                    pieces += matches!(sg.data, SegmentData::File { .. }) as usize
                });
                if ni + pieces <= MAX_IOV {
                    read = true;
                    let mut pos = len - t.len;
                    let first_seg = sp.seg;
                    let mut k = 0;
                    for_each_range(s.segs, sp, |sg, o, l| {
                        if let SegmentData::File { offset, .. } = &sg.data {
                            let foff = offset + o;
                            iovs[ni] = libc::iovec {
                                // SAFETY (pointer arithmetic): `pos + l` stays inside the
                                // frame of `len` bytes.
                                iov_base: unsafe { base.add(pos) }.cast(),
                                iov_len: l,
                            };
                            let idx = first_seg + k;
                            match nr.checked_sub(1).map(|i| &mut runs[i]) {
                                Some(r)
                                    if r.first + r.count == ni
                                        && same_file(&s.segs[r.seg], sg)
                                        && r.offset + r.bytes as u64 == foff =>
                                {
                                    r.count += 1;
                                    r.bytes += l;
                                }
                                _ => {
                                    runs[nr] = Run {
                                        seg: idx,
                                        offset: foff,
                                        first: ni,
                                        count: 1,
                                        bytes: l,
                                    };
                                    nr += 1;
                                }
                            }
                            ni += 1;
                        }
                        pos += l;
                        k += 1;
                    });
                }
            }
            pend[np] = Pending {
                desc,
                seg,
                span,
                read,
            };
            np += 1;
        }
        if np == 0 {
            return Ok(0);
        }
        if let Some(s) = stream {
            for r in &runs[..nr] {
                let SegmentData::File { file, .. } = &s.segs[r.seg].data else {
                    continue;
                };
                // SAFETY: every iovec points into a frame of this batch, taken from the free
                // table: no ring holds it and nothing else touches it until it is queued.
                let got = unsafe {
                    sys::preadv_all(
                        file.file().as_raw_fd(),
                        &mut iovs[r.first..r.first + r.count],
                        r.offset,
                    )
                };
                if !matches!(got, Ok(n) if n >= r.bytes) {
                    self.path.free.extend(pend[..np].iter().map(|p| p.desc));
                    return Err(match got {
                        Err(e)
                            if e.raw_os_error() != Some(libc::EFAULT)
                                && e.raw_os_error() != Some(libc::EIO) =>
                        {
                            Error::io(format!("reading {}", file.path().display()), e)
                        }
                        _ => file.truncated(r.offset + r.bytes as u64),
                    });
                }
            }
        }
        let csum = self.framer.checksum_request();
        for p in &pend[..np] {
            let len = self.framer.frame_len(&p.seg);
            let framer = &mut self.framer;
            self.path.push_frame(p.desc, len, csum, |buf| {
                framer
                    .emit(buf, &p.seg, |w| {
                        if let (Some(s), Some(sp)) = (stream, p.span) {
                            for_each_range(s.segs, sp, |sg, o, l| match (&sg.data, p.read) {
                                (SegmentData::File { .. }, true) => w.in_place(l),
                                _ => w.put(&sg.bytes()[o as usize..o as usize + l]),
                            })
                        }
                    })
                    .is_ok()
            })?;
        }
        Ok(np)
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
                self.tx_burst(now, stream)?;
                self.path.submit()?;
                return Ok(true);
            }
            if deadline.is_some_and(|d| now >= d) {
                return Ok(false);
            }
            let sent = self.tx_burst(now, stream)?;
            self.path.submit()?;
            self.path.reap();
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
                self.path.check_stall()?;
                idle += 1;
                if idle > 512 {
                    // Nothing to do: sleep until an ACK arrives or the next timer.
                    let wait = self
                        .sm
                        .poll_timeout()
                        .map_or(Duration::from_millis(5), |t| {
                            t.saturating_duration_since(now)
                        })
                        .clamp(Duration::from_millis(1), Duration::from_millis(5));
                    let _ = sys::poll(fd_of(self.path.fd), libc::POLLIN, wait);
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
        if self.sm.error().is_some() || self.sm.state() == State::Closed {
            return;
        }
        let t = self.sm.reset_segment(Instant::now());
        self.send_rst(t.seq, t.ack, t.window);
        if self.sm.state() != State::SynSent && !self.sm.all_acked() {
            let (peer, lport) = (self.peer, self.local.port());
            let until = Instant::now() + CHALLENGE_WAIT;
            while Instant::now() < until {
                let mut challenge = None;
                self.path.recv(|frame| {
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
                std::thread::sleep(Duration::from_millis(1));
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
        if self.path.free.is_empty() {
            self.path.reap();
        }
        if let Some(desc) = self.path.free.pop() {
            let len = self.framer.frame_len(&seg);
            let framer = &mut self.framer;
            let csum = framer.checksum_request();
            let _ = self.path.push_frame(desc, len, csum, |buf| {
                framer.emit(buf, &seg, |_| ()).is_ok()
            });
            let _ = self.path.drain();
        }
    }

    /// After our FIN is acknowledged: wait (bounded) for the peer's FIN and acknowledge it.
    fn finish_close(&mut self) {
        let until = Instant::now() + CLOSE_WAIT;
        let _ = self.drive(None, None, |s| s.state() == State::Closed, Some(until));
        let _ = self.path.drain();
        self.usable = false;
    }

    fn send_inner(&mut self, job: &Job, ctx: &OpCtx) -> Result<SendStats> {
        let stream = Stream::new(&job.payload.segments, self.sm.end());
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

/// Parse a received frame; `Some` only for a TCP segment from `peer` to our port.
fn parse_segment(frame: &[u8], peer: SocketAddr, lport: u16) -> Option<tcp::Repr> {
    let eth = ethernet::Frame::new_checked(frame).ok()?;
    let l3 = &frame[eth.header_len()..];
    // Slice by the IP length: short frames carry Ethernet padding.
    let l4 = match (eth.ethertype(), peer.ip()) {
        (ethernet::ETHERTYPE_IPV4, IpAddr::V4(p)) => {
            let ip = ipv4::Packet::new_checked(l3).ok()?;
            if ip.src() != p || ip.protocol() != tcp::PROTO_TCP {
                return None;
            }
            l3.get(ip.header_len()..ip.total_len() as usize)?
        }
        (ethernet::ETHERTYPE_IPV6, IpAddr::V6(p)) => {
            let ip = ipv6::Packet::new_checked(l3).ok()?;
            if ip.src() != p || ip.next_header() != tcp::PROTO_TCP {
                return None;
            }
            l3.get(ipv6::HEADER_LEN..ipv6::HEADER_LEN + ip.payload_len() as usize)?
        }
        _ => return None,
    };
    // No checksum check: veth hands XDP frames with CHECKSUM_PARTIAL (only the pseudo-header
    // summed), so a software check would refuse valid segments.
    let p = tcp::Packet::new_checked(l4).ok()?;
    if p.src_port() != peer.port() || p.dst_port() != lport {
        return None;
    }
    tcp::Repr::parse(&p).ok()
}

impl Transport for XdpTcp {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    fn validate(&self, _job: &Job) -> Result<()> {
        Ok(())
    }

    fn send(&mut self, job: &Job, ctx: &OpCtx) -> Result<SendStats> {
        let r = self.send_inner(job, ctx);
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

impl Drop for XdpTcp {
    fn drop(&mut self) {
        // Close like a kernel socket would: FIN after the data, bounded wait, else RST.
        if self.usable && self.sm.error().is_none() && self.sm.state() == State::Established {
            self.sm.close();
            let until = Instant::now() + CLOSE_WAIT;
            match self.drive(None, None, |s| s.all_acked(), Some(until)) {
                Ok(true) => self.finish_close(),
                _ => self.abort(),
            }
        }
        let _ = self.path.drain();
    }
}
