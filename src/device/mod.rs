//! Devices: the rings or queues the engine puts frames on, behind one seam, in the spirit of
//! smoltcp's `phy::Device`/`TxToken` and DPDK's `tx_burst`.
//!
//! A [`TxQueue`] lends buffers of known capacity ([`TxQueue::alloc`], [`TxQueue::data`]);
//! the engine writes a frame into one and submits it with its length and, if the device
//! completes checksums, where the L4 checksum is ([`CsumRequest`]). The queue batches
//! submissions, puts them on the wire ([`TxQueue::flush`]), and takes buffers back once
//! their frames have left ([`TxQueue::reap`]). An [`RxQueue`] hands received frames to a
//! closure (TCP's ACKs). [`Caps`] says what the device really obtained.
//!
//! A device is opened into a [`Port`]: its queues, the flow each queue's frames carry and
//! the report of what was obtained. Each kind of device is a folder:
//! - [`xdp`]: AF_XDP (UMEM, rings, our XDP program, the one open/negotiation path);
//! - [`live`]: the kernel's live-frames generator (BPF_PROG_RUN over our XDP program);
//! - [`dpdk`]: DPDK ports (feature `dpdk`): mbufs, bursts, ARP/ND over the port;
//! - [`net`]: routes, neighbours, interfaces and their counters over (generic) netlink;
//! - `fake` (tests only): buffers in memory, every frame recorded.

pub(crate) mod dpdk;
#[cfg(test)]
pub(crate) mod fake;
pub(crate) mod live;
pub(crate) mod net;
pub(crate) mod packet;
pub(crate) mod path;
pub(crate) mod xdp;

use std::time::Duration;

use crate::error::Result;
use crate::report::BackendInfo;
use crate::sansio::framer::Flow;

/// A send that failed on `ifname`: `InterfaceDown` when the error says the interface is
/// gone or down, else an I/O error saying what was being done.
pub(crate) fn tx_error(
    ifname: &str,
    what: impl FnOnce() -> String,
    e: std::io::Error,
) -> crate::error::Error {
    match e.raw_os_error() {
        Some(libc::ENETDOWN | libc::ENXIO | libc::ENODEV) => crate::error::Error::InterfaceDown {
            name: ifname.to_string(),
            source: e,
        },
        _ => crate::error::Error::io(what(), e),
    }
}

/// Where the device completes an L4 checksum: the offset of the L4 header in the frame and
/// the offset of the checksum field in that header (the field holds the pseudo-header sum).
pub(crate) type CsumRequest = (u16, u16);

/// What a device can do, as obtained when it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caps {
    /// Bytes one buffer holds.
    pub(crate) buf_capacity: usize,
    /// Largest frame the link carries without FCS: MTU plus the link-layer header (VLAN tag
    /// included).
    pub(crate) max_frame: usize,
    /// The device completes L4 checksums from a [`CsumRequest`].
    pub(crate) csum_offload: bool,
    /// Buffers one frame may span (1: no multi-buffer frames).
    pub(crate) max_segs: usize,
    /// The device reads the buffers directly (no copy in the kernel).
    pub(crate) zero_copy: bool,
    /// Buffers keep their bytes between uses, and allocating until none is left visits every
    /// buffer once (so a generator may write each buffer once and then only re-stamp it).
    pub(crate) persistent_bufs: bool,
}

/// Running totals of a TX queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TxCounters {
    /// Frames put on the device's ring.
    pub(crate) published: u64,
    /// Frames whose buffers came back (they left).
    pub(crate) completed: u64,
}

/// One transmit queue of a device.
pub(crate) trait TxQueue: Send {
    /// A buffer owned by the caller until it is submitted or freed.
    type Buf: Send;

    /// What the device obtained.
    fn caps(&self) -> &Caps;

    /// A free buffer, or `None` when none is free right now.
    fn alloc(&mut self) -> Option<Self::Buf>;

    /// The buffer's bytes: [`Caps::buf_capacity`] of them.
    fn data<'a>(&'a self, buf: &'a mut Self::Buf) -> &'a mut [u8];

    /// Queue `buf`, holding a frame of `len` bytes, for transmission; with `csum` the device
    /// completes the L4 checksum. Submissions are put on the wire in batches.
    fn submit(&mut self, buf: Self::Buf, len: usize, csum: Option<CsumRequest>) -> Result<()>;

    /// Give back a buffer that will not be sent.
    fn free(&mut self, buf: Self::Buf);

    /// Put everything submitted on the wire now (and make the device send it).
    fn flush(&mut self) -> Result<()>;

    /// Take back the buffers of frames that have left; returns how many.
    fn reap(&mut self) -> usize;

    /// Wait (bounded) until a buffer is free; an error if the queue stalls or its interface
    /// goes away.
    fn wait_free(&mut self) -> Result<()>;

    /// Wait until every submitted frame has left.
    fn drain(&mut self) -> Result<()>;

    /// An error if the queue has stalled (frames in flight, no completion for long) or its
    /// interface is gone.
    fn check(&self) -> Result<()>;

    /// Forget frames submitted but not yet put on the wire (after a failed send): their
    /// buffers become free again.
    fn abandon(&mut self);

    /// Running totals.
    fn counters(&self) -> TxCounters;

    /// Paced senders want every batch on the wire at once (`true`); unpaced ones let the
    /// device gather as many frames per wakeup as it can (`false`, the default).
    fn set_paced(&mut self, paced: bool);

    /// The file (and the version of it) mapped into this queue's buffer space: frames may
    /// then carry its bytes without a copy ([`TxQueue::submit_file`]). None by default.
    fn mapped_file(&self) -> Option<crate::payload::FileVersion> {
        None
    }

    /// Queue a frame made of the first `head` bytes of `buf` followed by `len` bytes of the
    /// mapped file at offset `off` ([`TxQueue::mapped_file`]). Devices without one refuse.
    fn submit_file(
        &mut self,
        buf: Self::Buf,
        head: usize,
        off: u64,
        len: usize,
        csum: Option<CsumRequest>,
    ) -> Result<()> {
        let _ = (head, off, len, csum);
        self.free(buf);
        Err(crate::error::Error::io(
            "sending file pages without a copy",
            std::io::Error::other("this device has no file mapped"),
        ))
    }

    /// A free buffer, flushing and waiting for completions if there is none.
    fn alloc_wait(&mut self) -> Result<Self::Buf> {
        if let Some(b) = self.alloc() {
            return Ok(b);
        }
        self.flush()?;
        loop {
            self.wait_free()?;
            if let Some(b) = self.alloc() {
                return Ok(b);
            }
        }
    }

    /// Append up to `n` free buffers to `out` (a burst): at least one, flushing and waiting
    /// as [`TxQueue::alloc_wait`] does when none is free. Devices with a bulk allocator take
    /// the whole burst at once.
    fn alloc_burst(&mut self, out: &mut Vec<Self::Buf>, n: usize) -> Result<()> {
        alloc_each(self, out, n)
    }

    /// Submit every buffer of `bufs`, in order, each holding a frame of `len` bytes (as
    /// [`TxQueue::submit`]); `bufs` is left empty. On an error the rest are freed.
    fn submit_burst(
        &mut self,
        bufs: &mut Vec<Self::Buf>,
        len: usize,
        csum: Option<CsumRequest>,
    ) -> Result<()> {
        let mut rest = bufs.drain(..);
        while let Some(b) = rest.next() {
            if let Err(e) = self.submit(b, len, csum) {
                rest.for_each(|b| self.free(b));
                return Err(e);
            }
        }
        Ok(())
    }
}

/// [`TxQueue::alloc_burst`] one buffer at a time: one as [`TxQueue::alloc_wait`] gives it,
/// then as many more (up to `n` in `out`) as are free right now.
pub(crate) fn alloc_each<Q: TxQueue + ?Sized>(
    q: &mut Q,
    out: &mut Vec<Q::Buf>,
    n: usize,
) -> Result<()> {
    out.push(q.alloc_wait()?);
    while out.len() < n {
        match q.alloc() {
            Some(b) => out.push(b),
            None => break,
        }
    }
    Ok(())
}

/// One receive queue of a device.
pub(crate) trait RxQueue {
    /// Hand every frame received so far to `f`, then recycle the buffers; returns how many.
    fn recv(&mut self, f: impl FnMut(&[u8])) -> usize;

    /// Sleep until a frame may have arrived, at most `timeout`.
    fn wait(&mut self, timeout: Duration);
}

/// Maps a file into a port's buffer space so frames can point at its pages (zero-copy file
/// payloads). AF_XDP re-opens its queues with the file mapped into each UMEM.
pub(crate) trait FileMapper<D>: Send {
    /// Re-open `queues` with `file` mapped. `Ok(Err(reason))`: this file cannot be mapped,
    /// the queues are as they were; `Err`: the queues could not be re-opened at all.
    fn map(
        &mut self,
        queues: &mut Vec<D>,
        file: &crate::payload::MappedFile,
    ) -> Result<std::result::Result<(), String>>;

    /// Under `--payload auto`: why copying is the better road on these queues (measured),
    /// or None when zero-copy is.
    fn auto_refusal(&self, queues: &[D]) -> Option<String>;
}

/// An opened device: its queues, the flow each queue's frames carry, and what was obtained.
pub(crate) struct Port<D> {
    /// One per queue (one sending thread each).
    pub(crate) queues: Vec<D>,
    /// The flow of each queue (addresses, ports, MACs, VLAN).
    pub(crate) flows: Vec<Flow>,
    /// Path MTU (IP).
    pub(crate) mtu: u32,
    /// What was obtained, and why better was not.
    pub(crate) info: BackendInfo,
    /// What must live as long as the queues are used (the XDP program's link, port
    /// reservations).
    pub(crate) hold: Box<dyn Send>,
}
