//! The kernel-socket backend: `sendfile(2)` (TCP, corked with the pre/post buffers) and
//! batched `sendmmsg(2)` (UDP, refusing datagrams that do not fit the path MTU).
//!
//! Sockets are non-blocking; waits are `poll(2)` slices of 100 ms so cancellation (Ctrl-C) and
//! dead peers are noticed, and `TCP_USER_TIMEOUT` bounds how long unacknowledged data may wait.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::{BackendInfo, ConnConfig, Job, OpCtx, SendStats, Transport};
use crate::api::{Proto, TransmitFlags};
use crate::error::{Error, Result};
use crate::payload::{Datagrams, Segment, SegmentData, Span};
use crate::sys;
use crate::wire::xsend;

/// Most bytes one `sendfile` call moves.
const MAX_SENDFILE: usize = 0x7fff_f000;
/// Datagrams per `sendmmsg` call.
const BATCH: usize = 64;
/// Pieces of one datagram passed as iovecs; more are gathered into a scratch buffer.
const MAX_PIECES: usize = 8;
/// How many end-of-stream markers follow a chunked send (UDP may drop one).
const END_MARKERS: usize = 3;
const POLL_SLICE: Duration = Duration::from_millis(100);

/// Open a kernel socket for `cfg`.
pub fn open(cfg: &ConnConfig, reasons: Vec<String>) -> Result<Box<dyn Transport>> {
    if let Some(name) = &cfg.iface {
        if sys::if_nametoindex(name).is_none() {
            return Err(Error::InterfaceNotFound { name: name.clone() });
        }
    }
    let ty = match cfg.proto {
        Proto::Tcp => Type::STREAM,
        Proto::Udp => Type::DGRAM,
    };
    let proto = match cfg.proto {
        Proto::Tcp => Protocol::TCP,
        Proto::Udp => Protocol::UDP,
    };
    let sock = Socket::new(Domain::for_address(cfg.peer), ty, Some(proto))
        .map_err(|e| Error::io("creating socket", e))?;
    if let Some(name) = &cfg.iface {
        sock.bind_device(Some(name.as_bytes())).map_err(|e| {
            if e.kind() == io::ErrorKind::PermissionDenied {
                Error::NoPermission {
                    what: format!("SO_BINDTODEVICE {name} needs CAP_NET_RAW"),
                }
            } else {
                Error::io(format!("binding to interface {name}"), e)
            }
        })?;
    }
    if let Some(b) = cfg.bind {
        sock.bind(&b.into())
            .map_err(|e| Error::io(format!("binding {b}"), e))?;
    }
    let mut info = BackendInfo {
        backend: "kernel",
        iface: cfg.iface.clone(),
        fallback_reasons: reasons,
        ..BackendInfo::default()
    };
    let peer: SockAddr = cfg.peer.into();
    let connect_err = |e: io::Error| match e.raw_os_error() {
        Some(libc::ENETDOWN | libc::ENODEV | libc::ENXIO) => Error::InterfaceDown {
            name: cfg.iface.clone().unwrap_or_else(|| cfg.peer.to_string()),
            source: e,
        },
        _ => Error::Connect {
            addr: cfg.peer,
            source: e,
        },
    };
    match cfg.proto {
        Proto::Tcp => {
            let _ = sock.set_tcp_user_timeout(Some(cfg.user_timeout));
            sock.connect_timeout(&peer, cfg.connect_timeout)
                .map_err(connect_err)?;
            sock.set_nonblocking(true)
                .map_err(|e| Error::io("set_nonblocking", e))?;
            info.mode = "sendfile".into();
            Ok(Box::new(KernelTcp {
                sock,
                cfg: cfg.clone(),
                info,
                usable: true,
            }))
        }
        Proto::Udp => {
            sock.connect(&peer).map_err(connect_err)?;
            sock.set_nonblocking(true)
                .map_err(|e| Error::io("set_nonblocking", e))?;
            // Never fragment: an oversize datagram must be an error, not IP fragments.
            let fd = sock.as_fd();
            let r = if cfg.peer.is_ipv4() {
                sys::setsockopt_int(
                    fd,
                    libc::IPPROTO_IP,
                    libc::IP_MTU_DISCOVER,
                    libc::IP_PMTUDISC_DO,
                )
            } else {
                sys::setsockopt_int(
                    fd,
                    libc::IPPROTO_IPV6,
                    libc::IPV6_MTU_DISCOVER,
                    libc::IP_PMTUDISC_DO,
                )
            };
            r.map_err(|e| Error::io("setting IP_MTU_DISCOVER", e))?;
            // A deep send buffer keeps batches flowing; root may exceed wmem_max.
            if sys::setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, 8 << 20).is_err() {
                let _ = sock.set_send_buffer_size(8 << 20);
            }
            info.mode = "sendmmsg".into();
            let mut t = KernelUdp {
                sock,
                cfg: cfg.clone(),
                info,
                usable: true,
            };
            let (mtu, max) = t.path_max()?;
            t.info.mtu = Some(mtu);
            t.info.max_datagram = Some(max);
            Ok(Box::new(t))
        }
    }
}

/// (path MTU, largest UDP payload) of a connected UDP socket: `IP_MTU` / `IPV6_MTU` minus
/// the IP and UDP headers (no fragmentation).
pub fn path_mtu(sock: &Socket, peer: std::net::SocketAddr) -> Result<(u32, u64)> {
    let fd = sock.as_fd();
    let (mtu, hdr, cap) = if peer.is_ipv4() {
        (
            sys::getsockopt_int(fd, libc::IPPROTO_IP, libc::IP_MTU),
            20 + 8,
            65_507,
        )
    } else {
        (
            sys::getsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_MTU),
            40 + 8,
            65_527,
        )
    };
    let mtu = mtu.map_err(|e| Error::io(format!("reading the path MTU to {peer}"), e))? as u32;
    Ok((mtu, (mtu as u64).saturating_sub(hdr).min(cap)))
}

/// Map an OS error during a send to a typed error.
fn send_error(cfg: &ConnConfig, e: io::Error, sent: u64) -> Error {
    match e.raw_os_error() {
        Some(
            libc::EPIPE
            | libc::ECONNRESET
            | libc::ETIMEDOUT
            | libc::EHOSTUNREACH
            | libc::ENETUNREACH
            | libc::ECONNREFUSED
            | libc::ENOTCONN,
        ) => Error::PeerGone {
            addr: cfg.peer,
            sent,
            source: e,
        },
        Some(libc::ENETDOWN | libc::ENODEV | libc::ENXIO) => Error::InterfaceDown {
            name: cfg.iface.clone().unwrap_or_else(|| cfg.peer.to_string()),
            source: e,
        },
        _ => Error::io(format!("sending to {}", cfg.peer), e),
    }
}

/// Wait (a slice) until the socket is writable; errors and cancellation end the wait.
fn wait_writable(sock: &Socket, cfg: &ConnConfig, ctx: &OpCtx, sent: u64) -> Result<()> {
    ctx.check_cancel(sent)?;
    let rev =
        sys::poll(sock.as_fd(), libc::POLLOUT, POLL_SLICE).map_err(|e| Error::io("poll", e))?;
    if rev & (libc::POLLERR | libc::POLLHUP) != 0 {
        if let Ok(Some(e)) = sock.take_error() {
            return Err(send_error(cfg, e, sent));
        }
    }
    Ok(())
}

/// Kernel TCP: `sendfile(2)` for file ranges, `send(MSG_MORE)` for buffers, all corked.
struct KernelTcp {
    sock: Socket,
    cfg: ConnConfig,
    info: BackendInfo,
    usable: bool,
}

impl KernelTcp {
    fn set_cork(&self, on: bool) {
        let _ = self.sock.set_cork(on);
    }

    fn send_mem(&self, b: &[u8], chunk: usize, ctx: &OpCtx, sent: &mut SendStats) -> Result<()> {
        let mut off = 0;
        while off < b.len() {
            let n = chunk.min(b.len() - off);
            match sys::send(self.sock.as_fd(), &b[off..off + n], true) {
                Ok(k) => {
                    off += k;
                    sent.bytes += k as u64;
                    sent.packets += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait_writable(&self.sock, &self.cfg, ctx, sent.bytes)?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(send_error(&self.cfg, e, sent.bytes)),
            }
        }
        Ok(())
    }

    fn send_file(
        &self,
        seg: &Segment,
        chunk: usize,
        ctx: &OpCtx,
        sent: &mut SendStats,
    ) -> Result<()> {
        let SegmentData::File { file, offset } = &seg.data else {
            return Ok(());
        };
        let mut off = *offset;
        let end = off + seg.len;
        while off < end {
            let n = (end - off).min(chunk as u64) as usize;
            match sys::sendfile(self.sock.as_fd(), file.file().as_fd(), &mut off, n) {
                Ok(0) => return Err(file.truncated(end)),
                Ok(k) => {
                    sent.bytes += k as u64;
                    sent.packets += 1;
                    ctx.progress(sent.bytes, sent.packets);
                    ctx.check_cancel(sent.bytes)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait_writable(&self.sock, &self.cfg, ctx, sent.bytes)?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if e.raw_os_error() == Some(libc::EIO)
                        || e.raw_os_error() == Some(libc::EFAULT) =>
                {
                    return Err(file.truncated(end))
                }
                Err(e) => return Err(send_error(&self.cfg, e, sent.bytes)),
            }
        }
        Ok(())
    }

    /// Wait until the peer acknowledged everything queued (SIOCOUTQ == 0).
    fn wait_acked(&self, ctx: &OpCtx, sent: u64) -> Result<()> {
        let mut nap = Duration::from_micros(50);
        loop {
            if let Ok(Some(e)) = self.sock.take_error() {
                return Err(send_error(&self.cfg, e, sent));
            }
            match sys::tcp_outq(self.sock.as_fd()) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(send_error(&self.cfg, e, sent)),
            }
            ctx.check_cancel(sent)?;
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(5));
        }
    }
}

impl Transport for KernelTcp {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    fn validate(&self, _job: &Job) -> Result<()> {
        Ok(())
    }

    fn usable(&self) -> bool {
        self.usable
    }

    fn send(&mut self, job: &Job, ctx: &OpCtx) -> Result<SendStats> {
        let r = self.send_inner(job, ctx);
        if matches!(r, Err(Error::PeerGone { .. } | Error::InterfaceDown { .. })) {
            self.usable = false;
        }
        r
    }
}

impl KernelTcp {
    fn send_inner(&mut self, job: &Job, ctx: &OpCtx) -> Result<SendStats> {
        let chunk = match job.send_size {
            0 | u32::MAX => MAX_SENDFILE,
            n => n as usize,
        };
        let push_at_eop = job.send_size == u32::MAX;
        let segs_before = sys::tcp_segs_out(self.sock.as_fd());
        let mut sent = SendStats::default();
        self.set_cork(true);
        let segs = &job.payload.segments;
        for (i, seg) in segs.iter().enumerate() {
            match &seg.data {
                SegmentData::Mem(b) => self.send_mem(b, chunk, ctx, &mut sent)?,
                SegmentData::File { .. } => self.send_file(seg, chunk, ctx, &mut sent)?,
            }
            if seg.eop && push_at_eop && i + 1 < segs.len() {
                self.set_cork(false);
                self.set_cork(true);
            }
            ctx.progress(sent.bytes, sent.packets);
        }
        self.set_cork(false);
        let disconnect = job.flags.contains(TransmitFlags::DISCONNECT);
        if disconnect {
            let _ = self.sock.shutdown(std::net::Shutdown::Write);
        }
        if !job.flags.contains(TransmitFlags::WRITE_BEHIND) {
            self.wait_acked(ctx, sent.bytes)?;
        }
        if disconnect {
            self.usable = false;
        }
        // Report TCP segments rather than syscalls when the kernel counts them.
        if let (Some(a), Some(b)) = (segs_before, sys::tcp_segs_out(self.sock.as_fd())) {
            sent.packets = b.wrapping_sub(a) as u64;
        }
        Ok(sent)
    }
}

/// Kernel UDP: batched `sendmmsg(2)` with iovecs straight from buffers and file mappings.
struct KernelUdp {
    sock: Socket,
    cfg: ConnConfig,
    info: BackendInfo,
    usable: bool,
}

impl KernelUdp {
    /// (path MTU, largest UDP payload) as the kernel sees the route now.
    fn path_max(&self) -> Result<(u32, u64)> {
        let fd = self.sock.as_fd();
        let (mtu, hdr, cap) = if self.cfg.peer.is_ipv4() {
            (
                sys::getsockopt_int(fd, libc::IPPROTO_IP, libc::IP_MTU),
                20 + 8,
                65_507,
            )
        } else {
            (
                sys::getsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_MTU),
                40 + 8,
                65_527,
            )
        };
        let mtu = mtu.map_err(|e| send_error(&self.cfg, e, 0))? as u32;
        Ok((mtu, (mtu as u64).saturating_sub(hdr).min(cap)))
    }

    /// On EFAULT, find the file that shrank under its mapping.
    fn fault_error(job: &Job, e: io::Error) -> Error {
        for s in &job.payload.segments {
            if let SegmentData::File { file, offset } = &s.data {
                if file.current_size() < offset + s.len {
                    return file.truncated(offset + s.len);
                }
            }
        }
        Error::io("sendmmsg", e)
    }

    fn send_batch(
        &self,
        job: &Job,
        ctx: &OpCtx,
        msgs: &mut [libc::mmsghdr],
        sent: u64,
    ) -> Result<()> {
        let mut done = 0;
        while done < msgs.len() {
            // SAFETY: every header in `msgs` points into `iovs`/`hdrs`/`scratch` of the caller
            // and into the job's buffers and mappings, all alive and unchanged for this call.
            match unsafe { sys::sendmmsg(self.sock.as_fd(), &mut msgs[done..]) } {
                Ok(k) => done += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait_writable(&self.sock, &self.cfg, ctx, sent)?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::EFAULT) => {
                    return Err(Self::fault_error(job, e))
                }
                Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                    let (_, max) = self.path_max()?;
                    let len = msgs[done].msg_len as u64;
                    return Err(Error::MessageTooLarge { len, max });
                }
                Err(e) => return Err(send_error(&self.cfg, e, sent)),
            }
        }
        Ok(())
    }

    fn send_inner(&mut self, job: &Job, ctx: &OpCtx) -> Result<SendStats> {
        let (_, max) = self.path_max()?;
        let bounds = job.check_datagrams(max)?;
        let segs = &job.payload.segments;
        let header = job.chunk_header;

        // Per-operation buffers: the per-datagram loop below allocates nothing.
        let mut hdrs = vec![[0u8; xsend::HEADER_LEN]; BATCH];
        let mut iovs: Vec<libc::iovec> = Vec::with_capacity(BATCH * (MAX_PIECES + 1));
        let mut ranges = [(0usize, 0usize); BATCH];
        let mut scratch: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::new()).collect();
        // SAFETY: mmsghdr is plain old data; all-zero is a valid empty header.
        let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; BATCH];

        let mut it = Datagrams::new(segs, bounds);
        let mut release = crate::payload::Releaser::default();
        let mut sent = SendStats::default();
        let mut stream_off = 0u64;
        loop {
            iovs.clear();
            let ts = sys::realtime_ns();
            let mut n = 0;
            let mut batch_bytes = 0u64;
            while n < BATCH {
                let Some(span) = it.next() else { break };
                if n == 0 {
                    release.advance(segs, span.seg, span.off);
                }
                let start = iovs.len();
                if let Some(flow) = header {
                    xsend::Repr {
                        flags: 0,
                        flow,
                        seq: sent.packets + n as u64,
                        offset: stream_off,
                        timestamp_ns: ts,
                    }
                    .emit(&mut hdrs[n]);
                    iovs.push(iovec(&hdrs[n]));
                }
                push_pieces(segs, span, &mut iovs, &mut scratch[n])?;
                ranges[n] = (start, iovs.len() - start);
                stream_off += span.len;
                batch_bytes += span.len;
                n += 1;
            }
            if n == 0 {
                break;
            }
            for (m, &(start, count)) in msgs.iter_mut().zip(&ranges[..n]) {
                // SAFETY: `iovs` is not reallocated until the batch has been sent (capacity
                // reserved above; `push_pieces` pushes at most MAX_PIECES per datagram).
                m.msg_hdr.msg_iov = unsafe { iovs.as_mut_ptr().add(start) };
                m.msg_hdr.msg_iovlen = count;
                m.msg_len = 0;
            }
            self.send_batch(job, ctx, &mut msgs[..n], sent.bytes)?;
            sent.packets += n as u64;
            sent.bytes += batch_bytes;
            ctx.progress(sent.bytes, sent.packets);
            ctx.check_cancel(sent.bytes)?;
        }

        if let Some(flow) = header {
            let end = xsend::Repr {
                flags: xsend::FLAG_END,
                flow,
                seq: sent.packets,
                offset: sent.bytes,
                timestamp_ns: sys::realtime_ns(),
            };
            end.emit(&mut hdrs[0]);
            iovs.clear();
            iovs.push(iovec(&hdrs[0]));
            for m in msgs.iter_mut().take(END_MARKERS) {
                m.msg_hdr.msg_iov = iovs.as_mut_ptr();
                m.msg_hdr.msg_iovlen = 1;
            }
            // The receiver may already be gone after the first marker: not an error of ours.
            match self.send_batch(job, ctx, &mut msgs[..END_MARKERS], sent.bytes) {
                Ok(()) | Err(Error::PeerGone { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        if job.flags.contains(TransmitFlags::DISCONNECT) {
            self.usable = false;
        }
        Ok(sent)
    }
}

fn iovec(b: &[u8]) -> libc::iovec {
    libc::iovec {
        iov_base: b.as_ptr() as *mut libc::c_void,
        iov_len: b.len(),
    }
}

/// Push the pieces of `span` as iovecs, or gather them into `scratch` if there are too many.
///
/// The gather reads file mappings in user space: if a file was truncated meanwhile, the
/// SIGBUS guard makes the read see zeros, and this returns `FileTruncated` before they can
/// be sent.
fn push_pieces(
    segs: &[Segment],
    span: Span,
    iovs: &mut Vec<libc::iovec>,
    scratch: &mut Vec<u8>,
) -> Result<()> {
    let mut pieces = 0;
    crate::payload::for_each_piece(segs, span, |_| pieces += 1);
    if pieces <= MAX_PIECES {
        crate::payload::for_each_piece(segs, span, |p| iovs.push(iovec(p)));
        return Ok(());
    }
    scratch.clear();
    let mut fault = None;
    crate::payload::for_each_range(segs, span, |seg, off, len| {
        scratch.extend_from_slice(&seg.bytes()[off as usize..off as usize + len]);
        if let SegmentData::File { file, offset } = &seg.data {
            if file.read_fault() {
                fault.get_or_insert_with(|| file.truncated(offset + off + len as u64));
            }
        }
    });
    iovs.push(iovec(scratch));
    fault.map_or(Ok(()), Err)
}

impl Transport for KernelUdp {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    fn validate(&self, job: &Job) -> Result<()> {
        let (_, max) = self.path_max()?;
        job.check_datagrams(max).map(drop)
    }

    fn usable(&self) -> bool {
        self.usable
    }

    fn send(&mut self, job: &Job, ctx: &OpCtx) -> Result<SendStats> {
        self.send_inner(job, ctx)
    }
}
