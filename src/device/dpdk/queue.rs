//! One DPDK queue pair behind the device seam: mbufs lent from the port's mempool (a local
//! cache refilled 32 at a time), submitted frames handed to the PMD in bursts, ARP/ND for
//! our address answered from the RX side. With a file mapped (`files.rs`), a frame may be a
//! header mbuf followed by one carrying the file's pages ([`TxQueue::submit_file`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::device::{Caps, CsumRequest, RxQueue, TxCounters, TxQueue};
use crate::error::{Error, Result};
use crate::sansio::neigh::{self, Seen, Us};
use crate::sansio::wire::ethernet;
use crate::sys::dpdk::{self as sys, EthPort, ExtShared, Mbuf, Mempool};

/// Frames handed to the PMD per `tx_burst` (and mbufs taken from the pool at once).
pub(super) const BURST: usize = 32;
/// No frame taken by the PMD for this long with frames waiting: the queue is stalled.
const STALL: Duration = Duration::from_secs(5);
/// Bursts between link checks (a gone kernel interface behind a vdev shows as link down).
const LINK_CHECK_EVERY: u32 = 256;

/// One queue pair of a started port.
pub(crate) struct DpdkQueue {
    // (Fields drop in order: the mbufs go back to the pool before the port and pool go, and
    // frames pointing at a mapped file before the file.)
    free: Vec<Mbuf>,
    pending: Vec<Mbuf>,
    /// The file mapped for zero-copy payloads, if any.
    pub(super) file: Option<QueueFile>,
    port: Arc<EthPort>,
    /// This queue's own TX pool (one thread allocates and frees).
    pool: Arc<Mempool>,
    /// The pool this queue's RX fills from: ARP/ND frames (on most PMDs not the TX pool,
    /// whose frames are re-stamped; on net_af_xdp the same one, its UMEM).
    rx_pool: Arc<Mempool>,
    queue: u16,
    caps: Caps,
    counters: TxCounters,
    /// Who we are (ARP/ND answers).
    us: Us,
    /// Name for errors: the kernel interface behind the port, or the device name.
    name: String,
    /// The kernel interface behind a vdev: PMDs on one do not all notice it going away.
    kernel_iface: Option<String>,
    bursts: u32,
    /// Since when frames have been waiting with none taken by the PMD (None: it is taking
    /// them; no clock read per burst on the fast path).
    stuck_since: Option<Instant>,
}

/// A file whose pages this queue's frames may carry (external buffers).
pub(super) struct QueueFile {
    /// Attached mbufs waiting to be used (dropped before the pool and shared info below).
    free: Vec<Mbuf>,
    /// The queue's own mapping of the file (frames still point at it after a job ends: the
    /// shared info holds it as long as they do).
    map: Arc<crate::payload::MappedFile>,
    version: crate::payload::FileVersion,
    /// The external buffers' shared info, holding the mapping.
    shared: ExtShared,
    /// Bare mbufs (no data room) that carry the file's pages (None once handed on).
    segs: Option<Arc<Mempool>>,
}

impl Drop for QueueFile {
    fn drop(&mut self) {
        if self.shared.busy() {
            // A PMD still holds frames of ours (the shared info keeps the mapping): the
            // pool their bare mbufs go back to must stay too.
            std::mem::forget(self.segs.take());
        }
    }
}

impl QueueFile {
    pub(super) fn new(
        map: Arc<crate::payload::MappedFile>,
        version: crate::payload::FileVersion,
        segs: Arc<Mempool>,
    ) -> std::io::Result<Self> {
        let backing: sys::Backing = map.clone();
        Ok(QueueFile {
            free: Vec::with_capacity(2 * BURST),
            shared: ExtShared::new(backing)?,
            map,
            version,
            segs: Some(segs),
        })
    }

    /// An error if the PMD read a page of the file past its end through this mapping (it
    /// shrank: the frame carried zeros).
    fn check_read(&self) -> Result<()> {
        if self.map.read_fault() {
            return Err(self.map.truncated(self.map.size()));
        }
        Ok(())
    }

    /// Its pool of bare mbufs, for the next file (every frame of this one has left).
    pub(super) fn into_segs(mut self) -> Option<Arc<Mempool>> {
        self.free.clear();
        self.segs.take()
    }
}

/// What every queue of a port shares.
#[derive(Clone)]
pub(super) struct PortShare {
    pub(super) port: Arc<EthPort>,
    pub(super) caps: Caps,
    pub(super) us: Us,
    /// Name for errors.
    pub(super) name: String,
    pub(super) kernel_iface: Option<String>,
}

impl DpdkQueue {
    pub(super) fn new(
        share: PortShare,
        pool: Arc<Mempool>,
        rx_pool: Arc<Mempool>,
        queue: u16,
    ) -> Self {
        let PortShare {
            port,
            caps,
            us,
            name,
            kernel_iface,
        } = share;
        DpdkQueue {
            free: Vec::with_capacity(2 * BURST),
            pending: Vec::with_capacity(2 * BURST),
            file: None,
            port,
            pool,
            rx_pool,
            queue,
            caps,
            counters: TxCounters::default(),
            us,
            name,
            kernel_iface,
            bursts: 0,
            stuck_since: None,
        }
    }

    /// Hand waiting frames to the PMD (one burst); returns how many it took.
    fn push_out(&mut self) -> Result<usize> {
        if self.pending.is_empty() {
            self.stuck_since = None;
            return Ok(0);
        }
        let n = sys::tx_burst(self.port.id(), self.queue, &mut self.pending);
        self.counters.published += n as u64;
        self.counters.completed += n as u64;
        if n > 0 {
            self.stuck_since = None;
        } else if self.stuck_since.is_none() {
            self.stuck_since = Some(Instant::now());
        }
        self.bursts = self.bursts.wrapping_add(1);
        if self.bursts % LINK_CHECK_EVERY == 0 {
            self.check_link()?;
        }
        Ok(n)
    }

    /// A frame of `len` bytes fits one of our mbufs and the port.
    fn check_len(&self, len: usize) -> Result<()> {
        if len > self.caps.buf_capacity || len > self.caps.max_frame || len == 0 {
            let cap = self.caps.buf_capacity.min(self.caps.max_frame);
            return Err(Error::io(
                format!("framing for DPDK on {}", self.name),
                std::io::Error::other(format!("frame of {len} bytes: 1..={cap} fit")),
            ));
        }
        Ok(())
    }

    fn check_link(&self) -> Result<()> {
        let kernel_down = self
            .kernel_iface
            .as_deref()
            .is_some_and(|k| !crate::sys::netdev::if_running(k).unwrap_or(false));
        if kernel_down || self.port.link_up() == Some(false) {
            return Err(Error::InterfaceDown {
                name: self.name.clone(),
                source: std::io::Error::from_raw_os_error(libc::ENETDOWN),
            });
        }
        Ok(())
    }

    fn stalled(&self) -> Result<()> {
        let stuck = self.stuck_since.is_some_and(|t| t.elapsed() > STALL);
        if !self.pending.is_empty() && stuck {
            self.check_link()?;
            return Err(Error::io(
                format!("DPDK TX on {} queue {}", self.name, self.queue),
                std::io::Error::other(format!(
                    "stalled: the PMD took no frame for {} s ({} waiting)",
                    STALL.as_secs(),
                    self.pending.len()
                )),
            ));
        }
        Ok(())
    }

    /// Send one frame now (ARP/ND answers and requests); best effort.
    pub(super) fn send_now(&mut self, frame: &[u8]) {
        let mut one = Vec::with_capacity(1);
        if !self.rx_pool.alloc_bulk(&mut one, 1) {
            return;
        }
        let m = &mut one[0];
        let room = m.room();
        if frame.len() > room.len() {
            return;
        }
        room[..frame.len()].copy_from_slice(frame);
        m.set_tx(frame.len() as u16, 0, 0, 0);
        for _ in 0..1000 {
            if sys::tx_burst(self.port.id(), self.queue, &mut one) == 1 {
                self.counters.published += 1;
                self.counters.completed += 1;
                return;
            }
            std::hint::spin_loop();
        }
    }

    /// Receive, answering ARP/ND for our address; `f` sees every frame (first segment;
    /// multi-segment frames are skipped: nothing we receive is that large).
    fn recv_inner(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        let mut out = [0u8; neigh::MAX_FRAME];
        let mut answers: Vec<Vec<u8>> = Vec::new();
        let us = self.us;
        let n = sys::rx_burst(self.port.id(), self.queue, |b, len, segs| {
            if segs != 1 || b.len() != len as usize {
                return;
            }
            if let Some(Seen::Answer(k)) = neigh::handle(b, &us, &mut out)[1] {
                answers.push(out[..k].to_vec());
            }
            f(b)
        });
        for a in answers {
            self.send_now(&a);
        }
        n
    }
}

/// The mbuf offload fields (flags, L2 and L3 lengths) for a checksum request on the frame
/// in `buf`.
fn offload_fields(buf: &mut Mbuf, csum: Option<CsumRequest>) -> (u64, u16, u16) {
    let Some((l4_off, _)) = csum else {
        return (0, 0, 0);
    };
    let d = buf.room();
    let mut et = u16::from_be_bytes([d[12], d[13]]);
    let mut l2 = ethernet::HEADER_LEN;
    if et == ethernet::ETHERTYPE_VLAN {
        et = u16::from_be_bytes([d[16], d[17]]);
        l2 += ethernet::VLAN_TAG_LEN;
    }
    let v6 = et == ethernet::ETHERTYPE_IPV6;
    let proto = if v6 { d[l2 + 6] } else { d[l2 + 9] };
    let l3 = (l4_off as usize).saturating_sub(l2);
    (sys::tx_csum_flags(v6, proto == 6), l2 as u16, l3 as u16)
}

impl TxQueue for DpdkQueue {
    type Buf = Mbuf;

    fn caps(&self) -> &Caps {
        &self.caps
    }

    fn alloc(&mut self) -> Option<Mbuf> {
        if let Some(b) = self.free.pop() {
            return Some(b);
        }
        if self.pool.alloc_bulk(&mut self.free, BURST) || self.pool.alloc_bulk(&mut self.free, 1) {
            return self.free.pop();
        }
        None
    }

    fn data<'a>(&'a self, buf: &'a mut Mbuf) -> &'a mut [u8] {
        let room = buf.room();
        let n = room.len().min(self.caps.buf_capacity);
        &mut room[..n]
    }

    fn submit(&mut self, mut buf: Mbuf, len: usize, csum: Option<CsumRequest>) -> Result<()> {
        if let Err(e) = self.check_len(len) {
            self.free(buf);
            return Err(e);
        }
        let (flags, l2, l3) = offload_fields(&mut buf, csum);
        buf.set_tx(len as u16, flags, l2, l3);
        self.pending.push(buf);
        if self.pending.len() >= BURST {
            self.push_out()?;
        }
        Ok(())
    }

    fn alloc_burst(&mut self, out: &mut Vec<Mbuf>, n: usize) -> Result<()> {
        if self.free.is_empty() && self.pool.alloc_bulk(out, n) {
            return Ok(());
        }
        crate::device::alloc_each(self, out, n)
    }

    fn submit_burst(
        &mut self,
        bufs: &mut Vec<Mbuf>,
        len: usize,
        csum: Option<CsumRequest>,
    ) -> Result<()> {
        if let Err(e) = self.check_len(len) {
            bufs.drain(..).for_each(|b| self.free(b));
            return Err(e);
        }
        // One frame layout for the burst: the offload fields are read from the first.
        let Some(first) = bufs.first_mut() else {
            return Ok(());
        };
        let (flags, l2, l3) = offload_fields(first, csum);
        for b in bufs.iter_mut() {
            b.set_tx(len as u16, flags, l2, l3);
        }
        if self.pending.is_empty() {
            // (The burst becomes the pending list, and the caller gets its empty one: no copy.)
            std::mem::swap(&mut self.pending, bufs);
        } else {
            self.pending.append(bufs);
        }
        while self.pending.len() >= BURST {
            if self.push_out()? == 0 {
                break;
            }
        }
        Ok(())
    }

    fn free(&mut self, buf: Mbuf) {
        if self.free.len() < 4 * BURST {
            self.free.push(buf);
        }
    }

    fn flush(&mut self) -> Result<()> {
        while !self.pending.is_empty() {
            if self.push_out()? == 0 {
                // The PMD's ring is full: the rest goes with a later flush.
                break;
            }
        }
        self.file.as_ref().map_or(Ok(()), QueueFile::check_read)
    }

    fn reap(&mut self) -> usize {
        self.push_out().unwrap_or(0)
    }

    fn wait_free(&mut self) -> Result<()> {
        loop {
            self.push_out()?;
            if self.pool.alloc_bulk(&mut self.free, 1) {
                return Ok(());
            }
            self.stalled()?;
            std::thread::yield_now();
        }
    }

    fn drain(&mut self) -> Result<()> {
        while !self.pending.is_empty() {
            if self.push_out()? == 0 {
                self.stalled()?;
                std::thread::yield_now();
            }
        }
        // What the PMD holds is its own to send; a few empty bursts make the ones that
        // kick or clean per burst finish (a port closed right after would drop it).
        for _ in 0..4 {
            sys::tx_nudge(self.port.id(), self.queue);
        }
        self.file.as_ref().map_or(Ok(()), QueueFile::check_read)?;
        self.check_link()
    }

    fn check(&self) -> Result<()> {
        self.stalled()?;
        self.check_link()
    }

    fn abandon(&mut self) {
        self.pending.clear();
    }

    fn counters(&self) -> TxCounters {
        self.counters
    }

    fn set_paced(&mut self, _paced: bool) {}

    fn mapped_file(&self) -> Option<crate::payload::FileVersion> {
        self.file.as_ref().map(|f| f.version)
    }

    fn submit_file(
        &mut self,
        mut buf: Mbuf,
        head: usize,
        off: u64,
        len: usize,
        csum: Option<CsumRequest>,
    ) -> Result<()> {
        if let Err(e) = self.check_len(head + len) {
            self.free(buf);
            return Err(e);
        }
        let seg = match self.alloc_seg() {
            Ok(s) => s,
            Err(e) => {
                self.free(buf);
                return Err(e);
            }
        };
        let Some(f) = &self.file else {
            self.free(buf);
            return Err(no_file());
        };
        let (flags, l2, l3) = offload_fields(&mut buf, csum);
        let r = buf.chain_external(
            head as u16,
            seg,
            &f.shared,
            off as usize,
            len,
            flags,
            l2,
            l3,
        );
        if r.is_err() {
            // The file was mapped shorter than the job's range: it changed since.
            let e = f.map.truncated(off + len as u64);
            self.free(buf);
            return Err(e);
        }
        self.pending.push(buf);
        if self.pending.len() >= BURST {
            self.push_out()?;
        }
        Ok(())
    }
}

fn no_file() -> Error {
    Error::io(
        "sending file pages without a copy",
        std::io::Error::other("this queue has no file mapped"),
    )
}

impl DpdkQueue {
    /// A bare mbuf for a file's pages, handing waiting frames to the PMD (which frees the
    /// bare mbufs of those it sent) when there is none.
    fn alloc_seg(&mut self) -> Result<Mbuf> {
        let mut since = None::<Instant>;
        loop {
            let Some(f) = &mut self.file else {
                return Err(no_file());
            };
            if let Some(s) = f.free.pop() {
                return Ok(s);
            }
            let Some(segs) = &f.segs else {
                return Err(no_file());
            };
            if segs.alloc_bulk(&mut f.free, BURST) || segs.alloc_bulk(&mut f.free, 1) {
                continue;
            }
            if self.push_out()? == 0 {
                // The PMD holds every bare mbuf (and takes none of ours): it has STALL to free
                // some.
                let t = *since.get_or_insert_with(Instant::now);
                if t.elapsed() > STALL {
                    return Err(Error::io(
                        format!("DPDK TX on {} queue {}", self.name, self.queue),
                        std::io::Error::other(format!(
                            "stalled: no mbuf for file pages came back for {} s",
                            STALL.as_secs()
                        )),
                    ));
                }
                std::thread::yield_now();
            }
        }
    }
}

impl RxQueue for DpdkQueue {
    fn recv(&mut self, f: impl FnMut(&[u8])) -> usize {
        self.recv_inner(f)
    }

    fn wait(&mut self, timeout: Duration) {
        // A poll-mode queue has nothing to sleep on: a short nap keeps the core usable.
        std::thread::sleep(timeout.min(Duration::from_micros(20)));
    }
}
