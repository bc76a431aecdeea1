//! Kernel UDP: batched `sendmmsg(2)` with iovecs straight from buffers and file mappings,
//! `IP_PMTUDISC_DO` so that a datagram over the path MTU is an error, never fragments.

use std::io::{self, IoSlice};
use std::os::fd::AsFd;

use arrayvec::ArrayVec;
use socket2::Socket;

use super::{send_error, wait_writable};
use crate::engine::{Job, OpCtx, Transport};
use crate::error::{Error, Result};
use crate::options::{ConnConfig, TransmitFlags};
use crate::payload::{for_each_piece, Releaser, Segment, SegmentData};
use crate::report::{BackendInfo, SendStats};
use crate::sansio::cut::{for_each_range, Datagrams, Span};
use crate::sansio::wire::{udp, xsend};
use crate::sys::socket;
use crate::sys::thread::realtime_ns;

/// Datagrams per `sendmmsg` call.
const BATCH: usize = socket::MAX_MSGS;
/// Pieces of one datagram passed as iovecs; more are gathered into a scratch buffer.
const MAX_PIECES: usize = 8;
/// How many end-of-stream markers follow a chunked send (UDP may drop one).
const END_MARKERS: usize = 3;

/// Kernel UDP over a connected datagram socket.
pub(super) struct KernelUdp {
    sock: Socket,
    cfg: ConnConfig,
    info: BackendInfo,
    usable: bool,
}

impl KernelUdp {
    /// Configure a connected socket: never fragment, a deep send buffer.
    pub(super) fn new(sock: Socket, cfg: ConnConfig, mut info: BackendInfo) -> Result<Self> {
        let fd = sock.as_fd();
        let r = if cfg.peer.is_ipv4() {
            socket::setsockopt_int(
                fd,
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                libc::IP_PMTUDISC_DO,
            )
        } else {
            socket::setsockopt_int(
                fd,
                libc::IPPROTO_IPV6,
                libc::IPV6_MTU_DISCOVER,
                libc::IP_PMTUDISC_DO,
            )
        };
        r.map_err(|e| Error::io("setting IP_MTU_DISCOVER", e))?;
        // A deep send buffer keeps batches flowing; root may exceed wmem_max.
        if socket::setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, 8 << 20).is_err() {
            let _ = sock.set_send_buffer_size(8 << 20);
        }
        let mut t = KernelUdp {
            sock,
            cfg,
            info: BackendInfo::default(),
            usable: true,
        };
        let (mtu, max) = t.path_max()?;
        info.mtu = Some(mtu);
        info.max_datagram = Some(max);
        t.info = info;
        Ok(t)
    }

    /// (path MTU, largest UDP payload) as the kernel sees the route now.
    fn path_max(&self) -> Result<(u32, u64)> {
        let v6 = self.cfg.peer.is_ipv6();
        let mtu =
            socket::path_mtu(self.sock.as_fd(), v6).map_err(|e| send_error(&self.cfg, e, 0))?;
        Ok((mtu, udp::max_payload(mtu, v6)))
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

    /// Send datagram `i` as `iovs[msgs[i].0 ..][.. msgs[i].1]`, all of them, waiting for room.
    fn send_batch(
        &self,
        job: &Job,
        ctx: &OpCtx,
        iovs: &[IoSlice<'_>],
        msgs: &[(usize, usize)],
        sent: u64,
    ) -> Result<()> {
        let mut done = 0;
        while done < msgs.len() {
            match socket::sendmmsg(self.sock.as_fd(), iovs, &msgs[done..]) {
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
                    let (start, count) = msgs[done];
                    let len = iovs[start..start + count]
                        .iter()
                        .map(|v| v.len() as u64)
                        .sum();
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
        let mut hdrs = [[0u8; xsend::HEADER_LEN]; BATCH];
        let mut scratch: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::new()).collect();
        let mut it = Datagrams::new(segs, bounds);
        let mut release = Releaser::default();
        let mut sent = SendStats::default();
        let mut stream_off = 0u64;
        loop {
            // 1. The batch's datagrams, their headers, and gathered copies of those made of
            //    too many pieces.
            let ts = realtime_ns();
            let mut spans: ArrayVec<Span, BATCH> = ArrayVec::new();
            for span in it.by_ref().take(BATCH) {
                if spans.is_empty() {
                    release.advance(segs, span.seg, span.off);
                }
                let n = spans.len();
                if let Some(flow) = header {
                    xsend::Repr {
                        flags: 0,
                        flow,
                        seq: sent.packets + n as u64,
                        offset: stream_off,
                        timestamp_ns: ts,
                    }
                    .emit(&mut hdrs[n]);
                }
                gather_if_many(segs, span, &mut scratch[n])?;
                stream_off += span.len;
                spans.push(span);
            }
            if spans.is_empty() {
                break;
            }
            // 2. The iovecs, borrowed from the headers, the scratch copies and the payload.
            let mut iovs: ArrayVec<IoSlice<'_>, { BATCH * (MAX_PIECES + 1) }> = ArrayVec::new();
            let mut msgs: ArrayVec<(usize, usize), BATCH> = ArrayVec::new();
            for (n, &span) in spans.iter().enumerate() {
                let start = iovs.len();
                if header.is_some() {
                    iovs.push(IoSlice::new(&hdrs[n]));
                }
                if pieces(segs, span) <= MAX_PIECES {
                    for_each_piece(segs, span, |p| iovs.push(IoSlice::new(p)));
                } else {
                    iovs.push(IoSlice::new(&scratch[n]));
                }
                msgs.push((start, iovs.len() - start));
            }
            self.send_batch(job, ctx, &iovs, &msgs, sent.bytes)?;
            sent.packets += spans.len() as u64;
            sent.bytes += spans.iter().map(|s| s.len).sum::<u64>();
            ctx.progress(sent.bytes, sent.packets);
            ctx.check_cancel(sent.bytes)?;
        }
        if let Some(flow) = header {
            xsend::Repr {
                flags: xsend::FLAG_END,
                flow,
                seq: sent.packets,
                offset: sent.bytes,
                timestamp_ns: realtime_ns(),
            }
            .emit(&mut hdrs[0]);
            let iovs = [IoSlice::new(&hdrs[0])];
            let msgs = [(0, 1); END_MARKERS];
            // The receiver may already be gone after the first marker: not an error of ours.
            match self.send_batch(job, ctx, &iovs, &msgs, sent.bytes) {
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

/// How many pieces (segments) `span` covers.
fn pieces(segs: &[Segment], span: Span) -> usize {
    let mut n = 0;
    for_each_range(segs, span, |_, _, _| n += 1);
    n
}

/// A datagram of more than [`MAX_PIECES`] pieces is gathered into `scratch`.
///
/// The gather reads file mappings in user space: if a file was truncated meanwhile, the
/// SIGBUS guard makes the read see zeros, and this returns `FileTruncated` before they can
/// be sent.
fn gather_if_many(segs: &[Segment], span: Span, scratch: &mut Vec<u8>) -> Result<()> {
    if pieces(segs, span) <= MAX_PIECES {
        return Ok(());
    }
    scratch.clear();
    let mut fault = None;
    for_each_range(segs, span, |seg, off, len| {
        scratch.extend_from_slice(&seg.bytes()[off as usize..off as usize + len]);
        if let SegmentData::File { file, offset } = &seg.data {
            if file.read_fault() {
                fault.get_or_insert_with(|| file.truncated(offset + off + len as u64));
            }
        }
    });
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
