//! The AF_XDP backend (own UMEM/rings in [`xsk`]): UDP datagrams framed in user space straight into UMEM frames
//! and pushed to a NIC queue's TX ring.
//!
//! Per queue: a UMEM sized to the ring (not the file), our own free-frame table (the
//! completion ring only returns addresses), batched TX submission, kicks with a raised TX
//! budget, bulk completion reaping. One copy of payload bytes: page cache → UMEM frame, with
//! the UDP checksum summed during that copy. Errors of the kick (`ENETDOWN`, `ENXIO`) and a
//! stalled completion ring end the send with a typed error instead of a hang.

pub mod net;
pub mod prog;
pub mod rtnl;
pub mod tcp;
pub mod xsk;

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use socket2::{Domain, Protocol, Socket, Type};
use xsk::Frame;

use super::{BackendInfo, ConnConfig, Job, OpCtx, SendStats, Transport};
use crate::api::{Proto, TransmitFlags};
use crate::error::{Error, Result};
use crate::framer::{TcpFramer, UdpFlow, UdpFramer};
use crate::payload::{for_each_range, Boundaries, Datagrams, MappedFile, SegmentData};
use crate::sys;
use crate::wire::{ethernet, xsend};

/// Descriptors per TX submission.
const BATCH: usize = 64;
/// Frames one kick may transmit (`XDP_MAX_TX_SKB_BUDGET`).
const TX_BUDGET: i32 = 256;
/// XDP headroom the kernel reserves at the start of each frame.
const XDP_HEADROOM: u32 = 256;
/// No completion for this long with frames in flight: the queue is stalled.
const STALL: Duration = Duration::from_secs(2);
/// End-of-stream markers after a chunked send.
const END_MARKERS: usize = 3;

/// Open an AF_XDP UDP transport for `cfg`; `reasons` collects why better modes were refused.
pub fn open(cfg: &ConnConfig, reasons: Vec<String>) -> Result<Box<dyn Transport>> {
    match cfg.proto {
        Proto::Tcp => Ok(Box::new(tcp::XdpTcp::open(cfg, reasons)?)),
        Proto::Udp => Ok(Box::new(XdpUdp::open(cfg, reasons)?)),
    }
}

impl XdpUdp {
    fn open(cfg: &ConnConfig, mut reasons: Vec<String>) -> Result<XdpUdp> {
        let unavailable = |reason: String| Error::BackendUnavailable {
            backend: "xdp",
            reason,
        };
        // A kernel socket holds our source port (so the kernel neither reuses it nor answers for
        // it) and tells the source address and the path MTU.
        let reserve = |bind: Option<SocketAddr>, connect: bool| -> Result<Socket> {
            let s = Socket::new(
                Domain::for_address(cfg.peer),
                Type::DGRAM,
                Some(Protocol::UDP),
            )
            .map_err(|e| Error::io("creating the port-reserving socket", e))?;
            if let Some(i) = &cfg.iface {
                s.bind_device(Some(i.as_bytes()))
                    .map_err(|e| Error::io(format!("binding to interface {i}"), e))?;
            }
            if let Some(b) = bind {
                s.bind(&b.into())
                    .map_err(|e| Error::io(format!("binding {b}"), e))?;
            }
            if connect {
                s.connect(&cfg.peer.into()).map_err(|e| Error::Connect {
                    addr: cfg.peer,
                    source: e,
                })?;
            }
            Ok(s)
        };
        if let Some(i) = &cfg.iface {
            if sys::if_nametoindex(i).is_none() {
                return Err(Error::InterfaceNotFound { name: i.clone() });
            }
        }
        let sock0 = reserve(cfg.bind, true)?;
        let src = sock0
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .ok_or_else(|| unavailable("no local address for the flow".into()))?;
        let route = net::route_get(cfg.peer.ip())?;
        let ifname = cfg.iface.clone().unwrap_or_else(|| route.dev.clone());
        if ifname == "lo" {
            return Err(unavailable("loopback has no NIC queue to send to".into()));
        }
        let ifi = net::if_info(&ifname)?;
        let (path_mtu, _) = super::kernel::path_mtu(&sock0, cfg.peer)?;
        let mtu = ifi.mtu.min(path_mtu);
        let l2 = ethernet::HEADER_LEN as u32;
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
            None => net::resolve(
                route.next_hop(cfg.peer.ip()),
                &ifname,
                Duration::from_secs(3),
            )?,
        };

        let steer = match prog::Steer::attach(ifi.index, &ifname, &mut reasons) {
            Ok(s) => Some(s),
            Err(e) => {
                reasons.push(format!(
                    "no XDP program on {ifname} (AF_XDP TX works without it): {e}"
                ));
                None
            }
        };

        let nq = cfg.queues.max(1);
        let ring = cfg.ring_size.clamp(64, 16384).next_power_of_two();
        let mut paths = Vec::with_capacity(nq as usize);
        let mut flows = Vec::with_capacity(nq as usize);
        let mut reserved = vec![];
        let mut copy_mode = "zerocopy";
        let mut budget = Some(TX_BUDGET as u32);
        for q in 0..nq {
            // Queue 0 uses the connected socket's port; the others reserve one each.
            let port = if q == 0 {
                src.port()
            } else {
                let s = reserve(Some(SocketAddr::new(src.ip(), 0)), false)?;
                let p = s
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_socket())
                    .map(|a| a.port())
                    .unwrap_or(0);
                reserved.push(s);
                p
            };
            let flow = UdpFlow {
                src_mac: ifi.mac,
                dst_mac,
                vlan: cfg.vlan,
                src: SocketAddr::new(src.ip(), port),
                dst: cfg.peer,
            };
            flows.push(flow);
            let framer = UdpFramer::new(&flow, mtu);
            let path = open_path(
                &ifname,
                q,
                (ring, frame_size, 0),
                framer,
                cfg.checksum,
                &mut reasons,
                &mut copy_mode,
            )?;
            if let Some(s) = &steer {
                s.add_socket(q, path.fd)?;
            }
            if sys::setsockopt_int(
                fd_of(path.fd),
                sys::SOL_XDP,
                sys::XDP_MAX_TX_SKB_BUDGET,
                TX_BUDGET,
            )
            .is_err()
            {
                budget = None;
            }
            let mut path = path;
            path.kick_every = if budget.is_some() {
                TX_BUDGET as usize
            } else {
                BATCH
            };
            paths.push(path);
        }
        if budget.is_none() {
            reasons.push(
                "XDP_MAX_TX_SKB_BUDGET refused: one kick sends the kernel's default of 32 frames"
                    .into(),
            );
        }
        let xdp_mode = steer.as_ref().map_or("none", |s| s.mode);
        let max_payload = paths[0].framer.max_payload() as u64;
        let info = BackendInfo {
            backend: "xdp",
            mode: format!("{xdp_mode}/{copy_mode}"),
            iface: Some(ifname.clone()),
            mtu: Some(mtu),
            max_datagram: Some(max_payload),
            fallback_reasons: reasons,
            xdp_mode: Some(xdp_mode.into()),
            copy_mode: Some(copy_mode.into()),
            queues: Some(nq),
            ring_size: Some(ring),
            frame_size: Some(frame_size),
            checksum: Some(checksum_name(paths[0].offload).into()),
            tx_budget: budget,
            dst_mac: Some(dst_mac.to_string()),
        };
        Ok(XdpUdp {
            info,
            paths,
            flows,
            mtu,
            _steer: steer,
            _reserved: (sock0, reserved),
            max_payload,
            usable: true,
        })
    }
}

/// "offload" or "software", as reported in [`BackendInfo::checksum`].
fn checksum_name(offload: bool) -> &'static str {
    if offload {
        "offload"
    } else {
        "software"
    }
}

/// Open queue `q`'s path: zero-copy first, then copy mode (`copy_mode` says which was had);
/// checksum offload as `checksum` asks. `geom` is (ring, frame size, RX frames). Why better
/// modes were refused goes to `reasons` (for queue 0).
#[allow(clippy::too_many_arguments)]
fn open_path(
    ifname: &str,
    q: u32,
    geom: (u32, u32, u32),
    framer: UdpFramer,
    checksum: crate::api::ChecksumChoice,
    reasons: &mut Vec<String>,
    copy_mode: &mut &'static str,
) -> Result<TxPath> {
    use crate::api::ChecksumChoice;
    let (ring, frame_size, rx_frames) = geom;
    let offload = checksum != ChecksumChoice::Software;
    let unavailable = |reason: String| Error::BackendUnavailable {
        backend: "xdp",
        reason,
    };
    let path = match TxPath::new(
        ifname,
        q,
        ring,
        frame_size,
        true,
        framer.clone(),
        rx_frames,
        offload,
    ) {
        Ok(p) => p,
        Err(e) => {
            if q == 0 {
                reasons.push(format!("zero-copy on {ifname}: {e}"));
            }
            *copy_mode = "copy";
            TxPath::new(
                ifname, q, ring, frame_size, false, framer, rx_frames, offload,
            )
            .map_err(|e| {
                let what = format!("AF_XDP socket on {ifname} queue {q}: {e}");
                match e.raw_os_error() {
                    Some(libc::EPERM) => Error::NoPermission { what },
                    _ => unavailable(what),
                }
            })?
        }
    };
    if offload && !path.offload {
        let why =
            "the kernel refused a UMEM with TX metadata (XDP_UMEM_TX_METADATA_LEN, Linux 6.8+)";
        if checksum == ChecksumChoice::Offload {
            return Err(unavailable(format!("checksum offload on {ifname}: {why}")));
        }
        if q == 0 {
            reasons.push(format!("checksum offload: {why}; checksums in software"));
        }
    }
    Ok(path)
}

fn fd_of(fd: RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: only used for the duration of one setsockopt while the socket is alive.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

/// Submission times of batches in flight, and the histogram of submission → completion.
type CompletionClock = (std::collections::VecDeque<(usize, Instant)>, Histogram<u64>);

/// One NIC queue: UMEM, rings and frame table.
struct TxPath {
    xsk: xsk::Xsk,
    /// Scratch for received descriptors (sized to the frames given to the fill ring).
    rx_descs: Vec<(Frame, u32)>,
    /// Scratch for frames going back to the fill ring.
    refill: Vec<Frame>,
    fd: RawFd,
    free: Vec<Frame>,
    done: Vec<Frame>,
    batch: Vec<Frame>,
    in_flight: usize,
    /// Frames on the TX ring since the last kick, and how many one kick may send (the TX
    /// budget): full batches are published at once but kicked only this often.
    unkicked: usize,
    kick_every: usize,
    last_completion: Instant,
    /// Generator only: submission times of batches still in flight, and the histogram of
    /// submission → completion times.
    latency: Option<CompletionClock>,
    framer: UdpFramer,
    ifname: String,
    /// Checksums completed by the device/kernel from TX metadata (else in software).
    offload: bool,
}

impl TxPath {
    /// A socket on queue `q` with a TX ring of `ring` descriptors; `rx_frames` (a power of two
    /// or 0) more frames are put in the fill ring for receiving. With `offload`, the UMEM gets
    /// a TX metadata area and the framer leaves checksums to the device; if the kernel refuses
    /// that, the path falls back to software checksums (see [`TxPath::offload`]).
    #[allow(clippy::too_many_arguments)]
    fn new(
        ifname: &str,
        q: u32,
        ring: u32,
        frame_size: u32,
        zerocopy: bool,
        mut framer: UdpFramer,
        rx_frames: u32,
        offload: bool,
    ) -> io::Result<Self> {
        let ifindex = sys::if_nametoindex(ifname).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("no interface {ifname}"))
        })?;
        let mut cfg = xsk::Config {
            frame_size,
            frames: ring + rx_frames,
            tx_size: ring,
            rx_size: rx_frames.max(64),
            zerocopy,
            tx_metadata: offload,
        };
        let mut xsk = match xsk::Xsk::new(ifindex, q, &cfg) {
            Err(e) if offload && e.raw_os_error() == Some(libc::EINVAL) => {
                // A kernel without TX metadata (before 6.8) refuses the UMEM registration.
                cfg.tx_metadata = false;
                xsk::Xsk::new(ifindex, q, &cfg)?
            }
            r => r?,
        };
        framer.set_checksum_offload(cfg.tx_metadata);
        let mut descs: Vec<Frame> = xsk.frames().collect();
        let rx_frames_v = descs.split_off(ring as usize);
        if !rx_frames_v.is_empty() {
            // SAFETY: these frames belong to this UMEM and are in no other ring or table.
            if !unsafe { xsk.fill(&rx_frames_v) } {
                return Err(io::Error::other("fill ring refused the RX frames"));
            }
        }
        let fd = xsk.fd();
        Ok(TxPath {
            xsk,
            rx_descs: Vec::with_capacity(rx_frames_v.len()),
            refill: Vec::with_capacity(rx_frames_v.len()),
            fd,
            done: Vec::with_capacity(descs.len()),
            batch: Vec::with_capacity(BATCH),
            free: descs,
            in_flight: 0,
            unkicked: 0,
            kick_every: BATCH,
            last_completion: Instant::now(),
            latency: None,
            framer,
            ifname: ifname.to_string(),
            offload: cfg.tx_metadata,
        })
    }

    /// Hand every received frame to `f`, then give the frames back to the fill ring.
    fn recv(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        if self.rx_descs.capacity() == 0 {
            return 0;
        }
        self.rx_descs.clear();
        let n = self.xsk.receive(&mut self.rx_descs);
        self.refill.clear();
        for &(frame, off) in &self.rx_descs {
            // SAFETY: the frame was just consumed from the RX ring: ours until re-filled.
            f(unsafe { self.xsk.rx_data(frame, off) });
            self.refill.push(frame);
        }
        if n > 0 {
            // SAFETY: the same frames go back; the fill ring has room for all of them (it
            // was sized to hold every RX frame).
            unsafe { self.xsk.fill(&self.refill) };
        }
        n
    }

    /// Queue frame `desc` holding `len` bytes written by `write` for TX; `csum` asks the
    /// device to complete the L4 checksum (the framer wrote the pseudo-header sum).
    fn push_frame(
        &mut self,
        mut desc: Frame,
        len: usize,
        csum: Option<(u16, u16)>,
        write: impl FnOnce(&mut [u8]) -> bool,
    ) -> Result<bool> {
        // SAFETY: `desc` is a frame of this UMEM that no ring holds (taken from `free`).
        let data = unsafe { self.xsk.data_mut(desc, len) };
        if !write(data) {
            self.free.push(desc);
            return Ok(false);
        }
        desc.len = len as u32;
        self.queue(desc, csum)?;
        Ok(true)
    }

    /// Add a written frame to the batch (with its checksum request), submitting full batches.
    #[inline]
    fn queue(&mut self, desc: Frame, csum: Option<(u16, u16)>) -> Result<()> {
        if self.offload {
            // Every descriptor carries XDP_TX_METADATA: write it even when no checksum is asked
            // for, so a re-used frame never brings an old request along.
            let req = csum.map(|(start, offset)| xsk::CsumRequest { start, offset });
            // SAFETY: `desc` is ours (written, not yet submitted); the UMEM has TX metadata.
            unsafe { self.xsk.write_tx_metadata(desc, req) };
        }
        self.batch.push(desc);
        if self.batch.len() == BATCH {
            self.publish();
            if self.unkicked >= self.kick_every {
                self.kick()?;
            }
            self.reap();
        }
        Ok(())
    }

    /// Return completed frames to the free table.
    fn reap(&mut self) -> usize {
        // `done` has room for every TX frame: nothing completed is left behind.
        self.done.clear();
        let n = self.xsk.complete(&mut self.done);
        if n > 0 {
            self.free.extend_from_slice(&self.done);
            self.in_flight -= n;
            self.last_completion = Instant::now();
            if let Some((pending, hist)) = &mut self.latency {
                // Copy-mode completions come back in submission order.
                let mut left = n;
                while let Some(front) = pending.front_mut() {
                    let take = left.min(front.0);
                    let ns = (self.last_completion - front.1).as_nanos() as u64;
                    crate::stats::record(hist, ns, take as u64);
                    front.0 -= take;
                    left -= take;
                    if front.0 == 0 {
                        pending.pop_front();
                    }
                    if left == 0 {
                        break;
                    }
                }
            }
        }
        n
    }

    fn kick(&mut self) -> Result<()> {
        self.unkicked = 0;
        if !self.xsk.tx_needs_wakeup() {
            return Ok(());
        }
        match sys::xsk_kick(self.fd) {
            Ok(()) => Ok(()),
            Err(e) => match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::EINTR) => Ok(()),
                Some(libc::ENETDOWN | libc::ENXIO | libc::ENODEV) => Err(Error::InterfaceDown {
                    name: self.ifname.clone(),
                    source: e,
                }),
                _ => Err(Error::io(
                    format!("kicking the AF_XDP TX ring of {}", self.ifname),
                    e,
                )),
            },
        }
    }

    /// Put the current batch on the TX ring (all or nothing; the ring always has room for
    /// every frame of this UMEM) and kick.
    fn submit(&mut self) -> Result<()> {
        self.publish();
        self.kick()
    }

    /// Put the current batch on the TX ring, without a kick.
    fn publish(&mut self) {
        if !self.batch.is_empty() {
            // SAFETY: every descriptor in `batch` is a frame of this UMEM, fully written and
            // in no ring.
            if unsafe { self.xsk.tx_submit(&self.batch, self.offload) } {
                let n = self.batch.len();
                self.in_flight += n;
                self.batch.clear();
                self.unkicked += n;
                if let Some((pending, _)) = &mut self.latency {
                    pending.push_back((n, Instant::now()));
                }
            }
        }
    }

    /// Kick and reap until a frame is free, detecting a stalled queue.
    fn wait_frame(&mut self) -> Result<()> {
        let mut spins = 0u32;
        while self.free.is_empty() {
            self.kick()?;
            if self.reap() > 0 {
                return Ok(());
            }
            self.check_stall()?;
            spins += 1;
            if spins > 64 {
                std::thread::sleep(Duration::from_micros(50));
            } else {
                std::hint::spin_loop();
            }
        }
        Ok(())
    }

    fn check_stall(&self) -> Result<()> {
        if self.in_flight > 0 && self.last_completion.elapsed() > STALL {
            let gone = !sys::if_running(&self.ifname).unwrap_or(false);
            let e = io::Error::other(format!(
                "{} frames not completed in {} s",
                self.in_flight,
                STALL.as_secs()
            ));
            return Err(if gone {
                Error::InterfaceDown {
                    name: self.ifname.clone(),
                    source: e,
                }
            } else {
                Error::io(format!("AF_XDP TX on {} stalled", self.ifname), e)
            });
        }
        Ok(())
    }

    /// Wait until every submitted frame has completed (left for the wire).
    fn drain(&mut self) -> Result<()> {
        self.submit()?;
        while self.in_flight > 0 {
            self.kick()?;
            if self.reap() == 0 {
                self.check_stall()?;
                std::thread::sleep(Duration::from_micros(20));
            }
        }
        Ok(())
    }

    /// The data area of free frame `desc`, sized for a frame of `len` bytes. The pointer
    /// stays valid while the UMEM lives; the frame is ours until it is submitted.
    fn frame_ptr(&self, desc: &mut Frame, len: usize) -> *mut u8 {
        debug_assert!(len <= self.xsk.frame_capacity());
        desc.len = len as u32;
        self.xsk.data_ptr(*desc)
    }

    /// Write the headers (and what `fill` puts) into frame `desc` and queue it for TX.
    fn finish(
        &mut self,
        mut desc: Frame,
        payload_len: usize,
        fill: impl FnOnce(&mut crate::framer::PayloadWriter<'_>),
    ) -> Result<()> {
        let len = self.framer.frame_len(payload_len);
        // SAFETY: `desc` is a frame of this UMEM that no ring holds (taken from `free`).
        let data = unsafe { self.xsk.data_mut(desc, len) };
        match self.framer.emit(data, payload_len, fill) {
            Ok(_) => {
                desc.len = len as u32;
                let csum = self.framer.checksum_request();
                self.queue(desc, csum)
            }
            Err(e) => {
                self.free.push(desc);
                Err(Error::MessageTooLarge {
                    len: payload_len as u64,
                    max: match e {
                        crate::framer::FrameError::TooLarge { max, .. } => max as u64,
                        crate::framer::FrameError::BufferTooSmall { have, .. } => have as u64,
                    },
                })
            }
        }
    }

    /// A free frame, waiting for completions if there is none.
    fn take(&mut self) -> Result<Frame> {
        if self.free.is_empty() {
            self.submit()?;
            self.wait_frame()?;
        }
        self.free
            .pop()
            .ok_or_else(|| Error::io("AF_XDP", io::Error::other("no free frame")))
    }

    /// Take a free frame and write one datagram into it with `fill`.
    fn frame(
        &mut self,
        payload_len: usize,
        fill: impl FnOnce(&mut crate::framer::PayloadWriter<'_>),
    ) -> Result<()> {
        let desc = self.take()?;
        self.finish(desc, payload_len, fill)
    }
}

struct XdpUdp {
    info: BackendInfo,
    paths: Vec<TxPath>,
    /// Per queue: the flow its frames carry (the generator frames stateless TCP from it).
    flows: Vec<UdpFlow>,
    mtu: u32,
    _steer: Option<prog::Steer>,
    _reserved: (Socket, Vec<Socket>),
    max_payload: u64,
    usable: bool,
}

/// Running totals over all queues (for progress).
#[derive(Default)]
struct Totals {
    bytes: AtomicU64,
    packets: AtomicU64,
}

impl Totals {
    /// Add what `now` has beyond `reported`; returns the new totals.
    fn add(&self, now: SendStats, reported: &mut SendStats) -> (u64, u64) {
        let b = self
            .bytes
            .fetch_add(now.bytes - reported.bytes, Ordering::Relaxed)
            + now.bytes
            - reported.bytes;
        let n = self
            .packets
            .fetch_add(now.packets - reported.packets, Ordering::Relaxed)
            + now.packets
            - reported.packets;
        *reported = now;
        (b, n)
    }
}

/// One datagram of a batch: its frame and its place in the stream.
#[derive(Clone, Copy)]
struct Slot {
    desc: Frame,
    span: crate::payload::Span,
    seq: u64,
    off: u64,
}

/// A contiguous run of file bytes read into a batch's frames by one `preadv`.
struct Run<'a> {
    file: &'a MappedFile,
    offset: u64,
    first_iov: usize,
    iovs: usize,
    bytes: usize,
}

/// Send this queue's share (`index % nq == q`) of the job's datagrams.
///
/// Per batch of up to [`BATCH`] datagrams: take frames, read every file piece of the batch
/// straight into its frame with one scattered `preadv(2)` per contiguous file run (the one
/// copy, page cache → UMEM, done by the kernel through its direct map), then write headers,
/// memory pieces and checksums (over bytes now hot in cache) and submit.
fn send_share(
    p: &mut TxPath,
    job: &Job,
    bounds: Boundaries,
    q: u64,
    nq: u64,
    ctx: &OpCtx,
    totals: &Totals,
) -> Result<SendStats> {
    let segs = &job.payload.segments;
    let hlen = if job.chunk_header.is_some() {
        xsend::HEADER_LEN
    } else {
        0
    };
    let l2l3 = p.framer.header_len();
    let mut stats = SendStats::default();
    let mut reported = SendStats::default();
    let (mut index, mut stream_off) = (0u64, 0u64);
    let mut spans = Datagrams::new(segs, bounds);
    // Per-operation buffers: the per-datagram work below allocates nothing.
    let mut slots: Vec<Slot> = Vec::with_capacity(BATCH);
    let mut iovs: Vec<libc::iovec> = Vec::with_capacity(BATCH * 4);
    let mut runs: Vec<Run<'_>> = Vec::with_capacity(BATCH);
    let mut hdr = [0u8; xsend::HEADER_LEN];
    loop {
        slots.clear();
        iovs.clear();
        runs.clear();
        while slots.len() < BATCH {
            let Some((span, seq, off)) = spans.by_ref().find_map(|span| {
                let (seq, off) = (index, stream_off);
                index += 1;
                stream_off += span.len;
                (seq % nq == q).then_some((span, seq, off))
            }) else {
                break;
            };
            let mut desc = match p.take() {
                Ok(d) => d,
                Err(e) => {
                    p.free.extend(slots.iter().map(|s| s.desc));
                    return Err(e);
                }
            };
            let base = p.frame_ptr(&mut desc, l2l3 + hlen + span.len as usize);
            let mut pos = l2l3 + hlen;
            for_each_range(segs, span, |seg, o, len| {
                if let SegmentData::File { file, offset } = &seg.data {
                    let foff = offset + o;
                    iovs.push(libc::iovec {
                        // SAFETY (pointer arithmetic): `pos + len` stays inside the frame.
                        iov_base: unsafe { base.add(pos) }.cast(),
                        iov_len: len,
                    });
                    match runs.last_mut() {
                        Some(r)
                            if std::ptr::eq(r.file, &**file)
                                && r.offset + r.bytes as u64 == foff =>
                        {
                            r.iovs += 1;
                            r.bytes += len;
                        }
                        _ => runs.push(Run {
                            file,
                            offset: foff,
                            first_iov: iovs.len() - 1,
                            iovs: 1,
                            bytes: len,
                        }),
                    }
                }
                pos += len;
            });
            slots.push(Slot {
                desc,
                span,
                seq,
                off,
            });
        }
        if slots.is_empty() {
            break;
        }
        for r in &runs {
            // SAFETY: every iovec points into a frame of this batch, taken from the free table:
            // no ring holds it and nothing else touches it until it is submitted below.
            let got = unsafe {
                sys::preadv_all(
                    r.file.file().as_raw_fd(),
                    &mut iovs[r.first_iov..r.first_iov + r.iovs],
                    r.offset,
                )
            };
            let short = match got {
                Ok(n) => n < r.bytes,
                Err(_) => true,
            };
            if short {
                p.free.extend(slots.iter().map(|s| s.desc));
                return Err(match got {
                    Err(e)
                        if e.raw_os_error() != Some(libc::EFAULT)
                            && e.raw_os_error() != Some(libc::EIO) =>
                    {
                        Error::io(format!("reading {}", r.file.path().display()), e)
                    }
                    _ => r.file.truncated(r.offset + r.bytes as u64),
                });
            }
        }
        let ts = sys::realtime_ns();
        for s in &slots {
            if let Some(flow) = job.chunk_header {
                xsend::Repr {
                    flags: 0,
                    flow,
                    seq: s.seq,
                    offset: s.off,
                    timestamp_ns: ts,
                }
                .emit(&mut hdr);
            }
            p.finish(s.desc, hlen + s.span.len as usize, |w| {
                w.put(&hdr[..hlen]);
                for_each_range(segs, s.span, |seg, o, len| match &seg.data {
                    SegmentData::Mem(b) => w.put(&b[o as usize..o as usize + len]),
                    SegmentData::File { .. } => w.in_place(len),
                });
            })?;
            stats.packets += 1;
            stats.bytes += s.span.len;
        }
        // Once per batch: progress over all queues, cancellation.
        let (b, n) = totals.add(stats, &mut reported);
        ctx.progress(b, n);
        ctx.check_cancel(b)?;
    }
    p.drain()?;
    totals.add(stats, &mut reported);
    Ok(stats)
}

impl XdpUdp {
    fn send_inner(&mut self, job: &Job, ctx: &OpCtx) -> Result<SendStats> {
        let bounds = job.check_datagrams(self.max_payload)?;
        let nq = self.paths.len() as u64;
        let totals = Totals::default();
        let results: Vec<Result<SendStats>> = if nq == 1 {
            vec![send_share(
                &mut self.paths[0],
                job,
                bounds,
                0,
                1,
                ctx,
                &totals,
            )]
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = self
                    .paths
                    .iter_mut()
                    .enumerate()
                    .map(|(q, p)| {
                        let totals = &totals;
                        s.spawn(move || send_share(p, job, bounds, q as u64, nq, ctx, totals))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect()
            })
        };
        let mut total = SendStats::default();
        for r in results {
            let s = r?;
            total.bytes += s.bytes;
            total.packets += s.packets;
        }
        if let Some(flow) = job.chunk_header {
            let end = xsend::Repr {
                flags: xsend::FLAG_END,
                flow,
                seq: total.packets,
                offset: total.bytes,
                timestamp_ns: sys::realtime_ns(),
            };
            let p = &mut self.paths[0];
            for _ in 0..END_MARKERS {
                let mut h = [0u8; xsend::HEADER_LEN];
                end.emit(&mut h);
                p.frame(xsend::HEADER_LEN, |w| w.put(&h))?;
            }
            p.drain()?;
        }
        ctx.progress(total.bytes, total.packets);
        if job.flags.contains(TransmitFlags::DISCONNECT) {
            self.usable = false;
        }
        Ok(total)
    }
}

impl Transport for XdpUdp {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    fn validate(&self, job: &Job) -> Result<()> {
        job.check_datagrams(self.max_payload).map(drop)
    }

    fn send(&mut self, job: &Job, ctx: &OpCtx) -> Result<SendStats> {
        let r = self.send_inner(job, ctx);
        if r.is_err() {
            // Frames of a failed send may still sit in the rings: drop them from our books.
            for p in &mut self.paths {
                p.batch.clear();
            }
            if matches!(r, Err(Error::InterfaceDown { .. })) {
                self.usable = false;
            }
        }
        r
    }

    fn usable(&self) -> bool {
        self.usable
    }
}

/// What a generator run should send.
#[derive(Debug, Clone)]
pub struct GenSpec {
    /// Ethernet frame lengths without FCS (headers included), with weights.
    pub sizes: crate::pacing::Imix,
    /// Target packets per second over all queues (`None`: as fast as possible).
    pub rate_pps: Option<f64>,
    /// Packets due together under a rate (≥ 1).
    pub burst: u64,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop after this many frames (over all queues).
    pub count: Option<u64>,
    /// Frame TCP segments instead of UDP datagrams (`--tcp-stateless`): ACK|PSH segments
    /// with consistent sequence numbers (advancing by the payload) and valid checksums, no
    /// handshake, for device-under-test benchmarking.
    pub tcp_stateless: bool,
    /// Multi-flow: ranges (inclusive) substituted into each queue's flow; packets cycle
    /// through every combination, round robin. `None` keeps the connection's value.
    pub flows: FlowRanges,
}

/// Ranges of addresses and ports for multi-flow generation (inclusive bounds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowRanges {
    /// Source ports.
    pub src_ports: Option<(u16, u16)>,
    /// Destination ports.
    pub dst_ports: Option<(u16, u16)>,
    /// Source addresses (same family as the destination).
    pub src_ips: Option<(std::net::IpAddr, std::net::IpAddr)>,
    /// Destination addresses.
    pub dst_ips: Option<(std::net::IpAddr, std::net::IpAddr)>,
}

/// Most flows one generator run may cycle through.
pub const MAX_FLOWS: u64 = 1 << 16;

fn ip_range(r: (std::net::IpAddr, std::net::IpAddr)) -> Result<(u128, u64)> {
    use std::net::IpAddr;
    let n = |a: IpAddr| match a {
        IpAddr::V4(v) => u32::from(v) as u128,
        IpAddr::V6(v) => u128::from(v),
    };
    if r.0.is_ipv4() != r.1.is_ipv4() || n(r.1) < n(r.0) {
        return Err(Error::InvalidOption(format!(
            "address range {}-{} is empty or mixes families",
            r.0, r.1
        )));
    }
    let count = n(r.1) - n(r.0) + 1;
    Ok((n(r.0), count.min(u64::MAX as u128) as u64))
}

impl FlowRanges {
    /// Every flow of the ranges applied to `base`, in round-robin order (at most
    /// [`MAX_FLOWS`]).
    pub fn expand(&self, base: &UdpFlow) -> Result<Vec<UdpFlow>> {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
        let port_range = |r: Option<(u16, u16)>, dflt: u16| -> Result<(u64, u64)> {
            let (a, b) = r.unwrap_or((dflt, dflt));
            if b < a {
                return Err(Error::InvalidOption(format!("port range {a}-{b} is empty")));
            }
            Ok((a as u64, (b - a) as u64 + 1))
        };
        let (sp0, spn) = port_range(self.src_ports, base.src.port())?;
        let (dp0, dpn) = port_range(self.dst_ports, base.dst.port())?;
        let (si0, sin) = ip_range(self.src_ips.unwrap_or((base.src.ip(), base.src.ip())))?;
        let (di0, din) = ip_range(self.dst_ips.unwrap_or((base.dst.ip(), base.dst.ip())))?;
        let v6 = base.dst.is_ipv6();
        for r in [self.src_ips, self.dst_ips].into_iter().flatten() {
            if r.0.is_ipv6() != v6 {
                return Err(Error::InvalidOption(format!(
                    "address range {}-{} is not of the destination's family",
                    r.0, r.1
                )));
            }
        }
        let total = spn
            .checked_mul(dpn)
            .and_then(|x| x.checked_mul(sin))
            .and_then(|x| x.checked_mul(din))
            .filter(|&t| t <= MAX_FLOWS)
            .ok_or_else(|| {
                Error::InvalidOption(format!(
                    "{spn} x {dpn} x {sin} x {din} flows: at most {MAX_FLOWS}"
                ))
            })?;
        let ip = |x: u128| -> IpAddr {
            if v6 {
                IpAddr::V6(Ipv6Addr::from(x))
            } else {
                IpAddr::V4(Ipv4Addr::from(x as u32))
            }
        };
        Ok((0..total)
            .map(|mut i| {
                let sp = sp0 + i % spn;
                i /= spn;
                let dp = dp0 + i % dpn;
                i /= dpn;
                let si = si0 + (i % sin) as u128;
                i /= sin;
                let di = di0 + (i % din) as u128;
                UdpFlow {
                    src: SocketAddr::new(ip(si), sp as u16),
                    dst: SocketAddr::new(ip(di), dp as u16),
                    ..*base
                }
            })
            .collect())
    }
}

/// What a generator run sent (frames whose completion came back).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct GenReport {
    /// Frames.
    pub packets: u64,
    /// Frame bytes (without FCS).
    pub bytes: u64,
    /// Wall time from the first submission to the last completion.
    pub seconds: f64,
    /// Time from TX-ring submission to completion (per batch, every frame counted).
    pub completion: Option<crate::stats::Percentiles>,
    /// With a rate: time between consecutive departures (frames handed to the ring).
    pub inter_departure: Option<crate::stats::Percentiles>,
    /// With a rate: how late each frame was handed to the ring against its schedule.
    pub lateness: Option<crate::stats::Percentiles>,
}

/// A line-rate frame generator on the AF_XDP TX path (`xsend bench`): synthetic UDP frames
/// carrying a sequence number, valid IP and UDP checksums.
pub struct Generator {
    inner: XdpUdp,
}

impl Generator {
    /// Open AF_XDP sockets for `cfg` (UDP; `cfg.queues` queues).
    pub fn open(cfg: &ConnConfig) -> Result<Self> {
        Ok(Generator {
            inner: XdpUdp::open(cfg, Vec::new())?,
        })
    }

    /// What was obtained.
    pub fn info(&self) -> &BackendInfo {
        &self.inner.info
    }

    /// Send until the spec's duration or count is reached, or `ctx.cancel` is set.
    pub fn run(&mut self, spec: &GenSpec, ctx: &OpCtx) -> Result<GenReport> {
        let mtu = self.inner.mtu;
        let mut framers: Vec<Framers> = Vec::with_capacity(self.inner.flows.len());
        for f in &self.inner.flows {
            let flows = spec.flows.expand(f)?;
            framers.push(if spec.tcp_stateless {
                Framers::Tcp(flows.iter().map(|f| TcpFramer::new(f, mtu)).collect())
            } else if flows.len() > 1 {
                Framers::Udp(flows.iter().map(|f| UdpFramer::new(f, mtu)).collect())
            } else {
                Framers::Path
            });
        }
        let hdr = match &framers[0] {
            Framers::Tcp(t) => t[0].header_len(),
            _ => self.inner.paths[0].framer.header_len(),
        };
        let max = self.inner.paths[0]
            .framer
            .frame_len(self.inner.max_payload as usize);
        for &(size, _) in spec.sizes.sizes() {
            if size < hdr.max(60) || size > max {
                return Err(Error::InvalidOption(format!(
                    "frame size {size} outside {}..={max} for this path (headers {hdr} bytes, MTU {})",
                    hdr.max(60),
                    self.inner.info.mtu.unwrap_or(0)
                )));
            }
        }
        let nq = self.inner.paths.len() as u64;
        let start = Instant::now();
        let deadline = spec.duration.map(|d| start + d);
        let totals = Totals::default();
        let results: Vec<Result<(SendStats, [Histogram<u64>; 3])>> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .inner
                .paths
                .iter_mut()
                .zip(framers)
                .enumerate()
                .map(|(q, (p, fr))| {
                    let totals = &totals;
                    // The count split over queues: the first `count % nq` send one more.
                    let limit = spec.count.map(|c| c / nq + u64::from((q as u64) < c % nq));
                    let pacer = spec
                        .rate_pps
                        .map(|r| crate::pacing::Pacer::new(r / nq as f64, spec.burst, 0));
                    let sizes = spec.sizes.clone();
                    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
                    s.spawn(move || {
                        // With several queues, one TX thread per CPU (best effort).
                        if nq > 1 {
                            let _ = sys::pin_to_cpu(q % cpus);
                        }
                        generate(p, fr, sizes, pacer, limit, deadline, ctx, totals)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let mut r = GenReport {
            seconds: start.elapsed().as_secs_f64(),
            ..Default::default()
        };
        let mut hists = [
            crate::stats::histogram(),
            crate::stats::histogram(),
            crate::stats::histogram(),
        ];
        for x in results {
            let (s, h) = x?;
            r.packets += s.packets;
            r.bytes += s.bytes;
            for (all, one) in hists.iter_mut().zip(h.iter()) {
                let _ = all.add(one);
            }
        }
        r.completion = crate::stats::Percentiles::of(&hists[0]);
        r.inter_departure = crate::stats::Percentiles::of(&hists[1]);
        r.lateness = crate::stats::Percentiles::of(&hists[2]);
        Ok(r)
    }
}

/// One queue's generator loop until `limit` frames or the deadline: frames of the mix's
/// sizes (payload: a big-endian sequence number, then zeros), paced by `pacer` if given.
///
/// With one size, every frame of the UMEM is written whole once; after that, recycled frames
/// are only re-stamped (sequence, IPv4 ID and checksum, UDP checksum). With a mix, each frame
/// is written whole. `SendStats::bytes` counts frame bytes.
/// How a generator queue frames its packets.
enum Framers {
    /// The path's own UDP flow (re-stamped frames with one size).
    Path,
    /// Several UDP flows, round robin (every frame written whole).
    Udp(Vec<UdpFramer>),
    /// Stateless TCP, one or more flows, round robin.
    Tcp(Vec<TcpFramer>),
}

#[allow(clippy::too_many_arguments)]
fn generate(
    p: &mut TxPath,
    mut framers: Framers,
    mut sizes: crate::pacing::Imix,
    mut pacer: Option<crate::pacing::Pacer>,
    limit: Option<u64>,
    deadline: Option<Instant>,
    ctx: &OpCtx,
    totals: &Totals,
) -> Result<(SendStats, [Histogram<u64>; 3])> {
    const ZEROS: [u8; 9216] = [0u8; 9216];
    let hdr = match &framers {
        Framers::Tcp(v) => v[0].header_len(),
        _ => p.framer.header_len(),
    };
    let nflows = match &framers {
        Framers::Path => 1,
        Framers::Udp(v) => v.len(),
        Framers::Tcp(v) => v.len(),
    };
    // Stateless TCP: per flow, sequence numbers advance by the payload of each segment.
    let mut seqs = vec![1u32; nflows];
    let mut seg = crate::wire::tcp::Repr {
        seq: 1,
        ack: 1,
        flags: crate::wire::tcp::Flags::ACK | crate::wire::tcp::Flags::PSH,
        window: 65535,
        ..Default::default()
    };
    match &mut framers {
        Framers::Tcp(v) => v.iter_mut().for_each(|f| f.set_checksum_offload(p.offload)),
        Framers::Udp(v) => v.iter_mut().for_each(|f| f.set_checksum_offload(p.offload)),
        Framers::Path => {}
    }
    p.latency = Some((
        std::collections::VecDeque::with_capacity(p.free.len() + 1),
        crate::stats::histogram(),
    ));
    let (mut inter, mut late) = (crate::stats::histogram(), crate::stats::histogram());
    let mut last_departure: Option<Instant> = None;
    let single = (sizes.sizes().len() == 1).then(|| sizes.sizes()[0].0);
    // Frames can be written once and re-stamped when every packet has one size and one flow.
    let restamp = single.is_some() && nflows == 1;
    if let (Some(frame_len), true) = (single, restamp) {
        // Write every frame of the UMEM once.
        let payload = frame_len - hdr;
        for i in 0..p.free.len() {
            let mut desc = p.free[i];
            let ptr = p.frame_ptr(&mut desc, frame_len);
            // SAFETY: a free frame of this UMEM, at least `frame_len` bytes (checked by the
            // caller against the frame size); nothing else accesses it.
            let frame = unsafe { std::slice::from_raw_parts_mut(ptr, frame_len) };
            match &mut framers {
                Framers::Tcp(v) => {
                    seg.payload_len = payload;
                    v[0].emit(frame, &seg, |w| w.put(&ZEROS[..payload]))
                }
                Framers::Udp(v) => v[0].emit(frame, payload, |w| w.put(&ZEROS[..payload])),
                Framers::Path => p.framer.emit(frame, payload, |w| w.put(&ZEROS[..payload])),
            }
            .map_err(|e| Error::InvalidOption(e.to_string()))?;
            p.free[i] = desc;
        }
    }
    if pacer.is_some() {
        // Paced: every batch leaves at once (a lazier kick would bunch departures).
        p.kick_every = BATCH;
    }
    let clock = Instant::now();
    let over =
        |now: Instant| ctx.cancel.load(Ordering::Relaxed) || deadline.is_some_and(|d| now >= d);
    let mut stats = SendStats::default();
    let mut reported = SendStats::default();
    let limit = limit.unwrap_or(u64::MAX);
    'send: while stats.packets < limit {
        if let Some(pc) = pacer.as_mut() {
            let due = pc.next_due_ns();
            let mut now = Instant::now();
            let mut now_ns = (now - clock).as_nanos() as u64;
            while now_ns < due {
                // Not due yet. If the slot is far, put what is queued on the wire now; at high
                // rates keep filling the batch (a kick per packet would cap the rate).
                let wait = due - now_ns;
                if wait > 10_000 || p.batch.len() >= BATCH {
                    p.submit()?;
                    p.reap();
                }
                if over(now) {
                    break 'send;
                }
                if wait > 200_000 {
                    std::thread::sleep(Duration::from_nanos(wait - 100_000));
                } else {
                    std::hint::spin_loop();
                }
                now = Instant::now();
                now_ns = (now - clock).as_nanos() as u64;
            }
            // Timing of this departure: against the schedule and the previous departure.
            crate::stats::record(&mut late, now_ns - due, 1);
            if let Some(prev) = last_departure {
                crate::stats::record(&mut inter, (now - prev).as_nanos() as u64, 1);
            }
            last_departure = Some(now);
            pc.sent(1);
        }
        let frame_len = single.unwrap_or_else(|| sizes.next_size());
        let payload = frame_len - hdr;
        let seq = stats.packets.to_be_bytes();
        let seq = &seq[..payload.min(8)];
        let mut desc = p.take()?;
        let ptr = p.frame_ptr(&mut desc, frame_len);
        // SAFETY: a frame of this UMEM we own until it is submitted, at least `frame_len` bytes.
        let frame = unsafe { std::slice::from_raw_parts_mut(ptr, frame_len) };
        let k = (stats.packets % nflows as u64) as usize;
        seg.payload_len = payload;
        seg.seq = seqs[k];
        seqs[k] = seqs[k].wrapping_add(payload as u32);
        let fill = |w: &mut crate::framer::PayloadWriter<'_>| {
            w.put(seq);
            w.put(&ZEROS[..payload - seq.len()]);
        };
        match (&mut framers, restamp) {
            (Framers::Tcp(v), true) => v[0].restamp(frame, &seg, seq),
            (Framers::Path, true) => p.framer.restamp(frame, payload, seq),
            (Framers::Tcp(v), false) => v[k]
                .emit(frame, &seg, fill)
                .map(|_| ())
                .map_err(|e| Error::InvalidOption(e.to_string()))?,
            (Framers::Udp(v), _) => v[k]
                .emit(frame, payload, fill)
                .map(|_| ())
                .map_err(|e| Error::InvalidOption(e.to_string()))?,
            (Framers::Path, false) => p
                .framer
                .emit(frame, payload, fill)
                .map(|_| ())
                .map_err(|e| Error::InvalidOption(e.to_string()))?,
        }
        let csum = match &framers {
            Framers::Tcp(v) => v[k].checksum_request(),
            Framers::Udp(v) => v[k].checksum_request(),
            Framers::Path => p.framer.checksum_request(),
        };
        p.queue(desc, csum)?;
        stats.packets += 1;
        stats.bytes += frame_len as u64;
        if stats.packets - reported.packets == 4 * BATCH as u64 {
            let (b, n) = totals.add(stats, &mut reported);
            ctx.progress(b, n);
            if over(Instant::now()) {
                break;
            }
        }
    }
    p.drain()?;
    totals.add(stats, &mut reported);
    let completion = p
        .latency
        .take()
        .map_or_else(crate::stats::histogram, |(_, h)| h);
    Ok((stats, [completion, inter, late]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> UdpFlow {
        UdpFlow {
            src_mac: "02:58:53:00:00:0a".parse().unwrap(),
            dst_mac: "02:58:53:00:00:0b".parse().unwrap(),
            vlan: None,
            src: "198.18.0.1:40000".parse().unwrap(),
            dst: "198.18.0.2:9".parse().unwrap(),
        }
    }

    #[test]
    fn flow_ranges_expand_to_every_combination_in_round_robin() {
        let r = FlowRanges {
            src_ports: Some((1000, 1001)),
            dst_ips: Some(("198.18.0.2".parse().unwrap(), "198.18.0.4".parse().unwrap())),
            ..Default::default()
        };
        let f = r.expand(&base()).unwrap();
        assert_eq!(f.len(), 6);
        assert_eq!(f[0].src.port(), 1000);
        assert_eq!(f[1].src.port(), 1001);
        assert_eq!(f[1].dst.ip().to_string(), "198.18.0.2");
        assert_eq!(f[2].dst.ip().to_string(), "198.18.0.3");
        assert_eq!(f[5].dst.to_string(), "198.18.0.4:9");
        let set: std::collections::HashSet<_> = f.iter().map(|x| (x.src, x.dst)).collect();
        assert_eq!(set.len(), 6);
        // Defaults keep the base flow; bad ranges are refused with a reason.
        assert_eq!(FlowRanges::default().expand(&base()).unwrap(), vec![base()]);
        let bad = FlowRanges {
            dst_ports: Some((10, 9)),
            ..Default::default()
        };
        assert!(bad.expand(&base()).is_err());
        let v6 = FlowRanges {
            dst_ips: Some((
                "2001:db8::1".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
            )),
            ..Default::default()
        };
        assert!(v6.expand(&base()).is_err(), "family mismatch");
        let huge = FlowRanges {
            src_ports: Some((0, 65535)),
            dst_ports: Some((0, 1)),
            ..Default::default()
        };
        assert!(huge.expand(&base()).is_err(), "over MAX_FLOWS");
    }
}
