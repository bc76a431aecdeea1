//! AF_PACKET: whole frames handed to the kernel's device layer (one copy into an skb), the
//! fallback where AF_XDP cannot run — replay of captured frames, frames over the AF_XDP frame
//! size. Frames are written into buffers of a pool and sent in batches with one `sendmmsg`
//! (`PACKET_QDISC_BYPASS` when the kernel grants it); the kernel copies them, so a buffer is
//! free again as soon as its batch is sent.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use super::{Caps, CsumRequest, Port, TxCounters, TxQueue};
use crate::error::{Error, Result};
use crate::report::BackendInfo;
use crate::sys::pool::{FramePool, Slot};
use crate::sys::{packet, socket};

/// Frames per `sendmmsg`.
const BATCH: usize = socket::MAX_MSGS;
/// Buffers in the pool.
const FRAMES: u32 = 1024;

/// One AF_PACKET socket behind the device seam.
pub(crate) struct PacketQueue {
    fd: OwnedFd,
    ifname: String,
    pool: FramePool,
    free: Vec<Slot>,
    batch: Vec<(Slot, usize)>,
    caps: Caps,
    counters: TxCounters,
}

/// Open an AF_PACKET port on `ifname` for frames of up to the interface's MTU (+ Ethernet and
/// one VLAN tag).
pub(crate) fn open(ifname: &str) -> Result<Port<PacketQueue>> {
    let ifi = crate::device::net::if_info(ifname)?;
    let (fd, bypass) = packet::tx_socket(ifi.index).map_err(|e| {
        let what = format!("AF_PACKET socket on {ifname}: {e}");
        match e.raw_os_error() {
            Some(libc::EPERM) => Error::NoPermission { what },
            _ => Error::io(what, e),
        }
    })?;
    let max_frame = ifi.mtu as usize + 14 + 4;
    let (pool, free) =
        FramePool::new(FRAMES, max_frame).map_err(|e| Error::io("AF_PACKET frame pool", e))?;
    let mut reasons = Vec::new();
    if !bypass {
        reasons.push("PACKET_QDISC_BYPASS refused: frames go through the qdisc".into());
    }
    let info = BackendInfo {
        backend: "kernel",
        mode: format!("af_packet{}", if bypass { "/qdisc-bypass" } else { "" }),
        iface: Some(ifname.to_string()),
        mtu: Some(ifi.mtu),
        fallback_reasons: reasons,
        queues: Some(1),
        frame_size: Some(max_frame as u32),
        ..Default::default()
    };
    let queue = PacketQueue {
        fd,
        ifname: ifname.to_string(),
        pool,
        free,
        batch: Vec::with_capacity(BATCH),
        caps: Caps {
            buf_capacity: max_frame,
            max_frame,
            csum_offload: false,
            max_segs: 1,
            zero_copy: false,
            persistent_bufs: true,
        },
        counters: TxCounters::default(),
    };
    Ok(Port {
        queues: vec![queue],
        flows: Vec::new(),
        mtu: ifi.mtu,
        info,
        hold: Box::new(()),
    })
}

impl PacketQueue {
    /// Send the batch; on a full socket buffer, wait for room. Buffers come back at once.
    fn send_batch(&mut self) -> Result<()> {
        let mut sent = 0;
        while sent < self.batch.len() {
            let r = {
                let iovs: arrayvec::ArrayVec<IoSlice<'_>, BATCH> = self.batch[sent..]
                    .iter()
                    .map(|(s, len)| IoSlice::new(self.pool.bytes(s, *len)))
                    .collect();
                let msgs: arrayvec::ArrayVec<(usize, usize), BATCH> =
                    (0..iovs.len()).map(|i| (i, 1)).collect();
                socket::sendmmsg(self.fd.as_fd(), &iovs, &msgs)
            };
            match r {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    socket::poll(self.fd.as_fd(), libc::POLLOUT, Duration::from_millis(100))
                        .map_err(|e| Error::io("poll", e))?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // What was not sent goes back to the pool.
                    self.free.extend(self.batch.drain(..).map(|(s, _)| s));
                    let ifname = &self.ifname;
                    return Err(super::tx_error(
                        ifname,
                        || format!("sending on {ifname} (AF_PACKET)"),
                        e,
                    ));
                }
            }
        }
        let n = self.batch.len() as u64;
        self.counters.published += n;
        self.counters.completed += n;
        self.free.extend(self.batch.drain(..).map(|(s, _)| s));
        Ok(())
    }
}

impl TxQueue for PacketQueue {
    type Buf = Slot;

    fn caps(&self) -> &Caps {
        &self.caps
    }

    fn alloc(&mut self) -> Option<Slot> {
        self.free.pop()
    }

    fn data<'a>(&'a self, buf: &'a mut Slot) -> &'a mut [u8] {
        self.pool.data_mut(buf)
    }

    fn submit(&mut self, buf: Slot, len: usize, _csum: Option<CsumRequest>) -> Result<()> {
        if len > self.caps.max_frame {
            self.free.push(buf);
            return Err(Error::io(
                format!("AF_PACKET on {}", self.ifname),
                io::Error::other(format!(
                    "frame of {len} bytes over the maximum of {}",
                    self.caps.max_frame
                )),
            ));
        }
        self.batch.push((buf, len));
        if self.batch.len() >= BATCH {
            self.send_batch()?;
        }
        Ok(())
    }

    fn free(&mut self, buf: Slot) {
        self.free.push(buf);
    }

    fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.send_batch()
    }

    fn reap(&mut self) -> usize {
        0
    }

    fn wait_free(&mut self) -> Result<()> {
        // Buffers only wait in the batch: sending it frees them.
        self.flush()
    }

    fn drain(&mut self) -> Result<()> {
        self.flush()
    }

    fn check(&self) -> Result<()> {
        Ok(())
    }

    fn abandon(&mut self) {
        self.free.extend(self.batch.drain(..).map(|(s, _)| s));
    }

    fn counters(&self) -> TxCounters {
        self.counters
    }

    fn set_paced(&mut self, _paced: bool) {}
}

impl std::fmt::Debug for PacketQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PacketQueue({})", self.ifname)
    }
}
