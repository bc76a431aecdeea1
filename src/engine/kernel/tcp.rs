//! Kernel TCP: the file goes out with `sendfile(2)`, buffers with `send(MSG_MORE)`, all corked.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use socket2::Socket;

use super::{send_error, wait_writable};
use crate::engine::{Job, OpCtx, Transport};
use crate::error::{Error, Result};
use crate::options::{ConnConfig, TransmitFlags};
use crate::payload::{Segment, SegmentData};
use crate::report::{BackendInfo, SendStats};
use crate::sys::socket;

/// Most bytes one `sendfile` call moves.
const MAX_SENDFILE: usize = 0x7fff_f000;

/// Kernel TCP: `sendfile(2)` for file ranges, `send(MSG_MORE)` for buffers, all corked.
pub(super) struct KernelTcp {
    sock: Socket,
    cfg: ConnConfig,
    info: BackendInfo,
    usable: bool,
}

impl KernelTcp {
    pub(super) fn new(sock: Socket, cfg: ConnConfig, info: BackendInfo) -> Self {
        KernelTcp {
            sock,
            cfg,
            info,
            usable: true,
        }
    }

    fn set_cork(&self, on: bool) {
        let _ = self.sock.set_cork(on);
    }

    fn send_mem(&self, b: &[u8], chunk: usize, ctx: &OpCtx, sent: &mut SendStats) -> Result<()> {
        let mut off = 0;
        while off < b.len() {
            let n = chunk.min(b.len() - off);
            match socket::send(self.sock.as_fd(), &b[off..off + n], true) {
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
            match socket::sendfile(self.sock.as_fd(), file.file().as_fd(), &mut off, n) {
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
            match socket::tcp_outq(self.sock.as_fd()) {
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
        let segs_before = socket::tcp_segs_out(self.sock.as_fd());
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
        if let (Some(a), Some(b)) = (segs_before, socket::tcp_segs_out(self.sock.as_fd())) {
            sent.packets = b.wrapping_sub(a) as u64;
        }
        Ok(sent)
    }
}
