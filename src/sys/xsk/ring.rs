//! The four AF_XDP rings, typed: [`TxRing`] and [`FillRing`] take chunk tokens to the kernel,
//! [`CompRing`] and [`RxRing`] bring them back. Each ring owns its mapping.
//!
//! The protocol is libxdp's: single producer, single consumer, free-running 32-bit indices
//! with acquire/release ordering, cached copies of the other side's index.

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU32, Ordering};

use super::umem::{Chunk, RxDesc};
use crate::sys::mmap::Mapping;

/// One mapped ring: producer and consumer indices, flags and the descriptor array.
struct Ring<T> {
    /// Owned: unmapped when the ring is dropped.
    _map: Mapping,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    descs: *mut T,
    mask: u32,
    size: u32,
    /// Producer rings: our producer index and the last known consumer index + size.
    /// Consumer rings: our consumer index and the last known producer index.
    cached_prod: u32,
    cached_cons: u32,
}

// SAFETY: the pointers point into `map`, which the ring owns; a ring is used by one thread at
// a time (moved between threads, never shared: its methods take `&mut self` or only read).
unsafe impl<T> Send for Ring<T> {}

impl<T: Copy> Ring<T> {
    /// Map ring `pgoff` of socket `fd`, `size` entries (a power of two), at the kernel's
    /// offsets `off`.
    fn map(
        fd: BorrowedFd<'_>,
        off: &libc::xdp_ring_offset,
        pgoff: libc::off_t,
        size: u32,
        producer: bool,
    ) -> io::Result<Self> {
        assert!(size.is_power_of_two());
        let len = off.desc as usize + size as usize * std::mem::size_of::<T>();
        let map = Mapping::shared(fd, len, pgoff)?;
        let base = map.ptr();
        // The kernel's offsets must lie inside what we mapped.
        let inside = |o: u64, n: usize| o as usize + n <= len;
        if !(inside(off.producer, 4) && inside(off.consumer, 4) && inside(off.flags, 4)) {
            return Err(io::Error::other("ring offsets outside the ring mapping"));
        }
        // SAFETY: the offsets were checked to lie inside the mapping; the indices are u32s the
        // kernel accesses atomically, 4-byte aligned in its layout.
        let (prod, cons, flags, descs) = unsafe {
            (
                base.add(off.producer as usize).cast::<AtomicU32>(),
                base.add(off.consumer as usize).cast::<AtomicU32>(),
                base.add(off.flags as usize).cast::<AtomicU32>(),
                base.add(off.desc as usize).cast::<T>(),
            )
        };
        // SAFETY: valid pointers into the live mapping (above).
        let (p_now, c_now) = unsafe {
            (
                (*prod).load(Ordering::Relaxed),
                (*cons).load(Ordering::Relaxed),
            )
        };
        Ok(Ring {
            _map: map,
            producer: prod,
            consumer: cons,
            flags,
            descs,
            mask: size - 1,
            size,
            cached_prod: p_now,
            cached_cons: if producer {
                c_now.wrapping_add(size)
            } else {
                c_now
            },
        })
    }

    fn needs_wakeup(&self) -> bool {
        // SAFETY: `flags` points into the mapping the ring owns.
        unsafe { (*self.flags).load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0 }
    }

    /// Producer: room for `n` more entries?
    fn has_room(&mut self, n: u32) -> bool {
        if self.cached_cons.wrapping_sub(self.cached_prod) >= n {
            return true;
        }
        // SAFETY: `consumer` points into the mapping the ring owns. Acquire: the kernel is
        // done with the entries it consumed before we overwrite them.
        self.cached_cons =
            unsafe { (*self.consumer).load(Ordering::Acquire) }.wrapping_add(self.size);
        self.cached_cons.wrapping_sub(self.cached_prod) >= n
    }

    /// Producer: write the entries `items` yields (the caller checked room for all of them),
    /// then publish them.
    fn produce(&mut self, items: impl Iterator<Item = T>) {
        let mut at = self.cached_prod;
        for item in items {
            let idx = at & self.mask;
            // SAFETY: `idx` is masked into the ring; the slot is free (room was checked for
            // every entry the iterator yields).
            unsafe { self.descs.add(idx as usize).write(item) };
            at = at.wrapping_add(1);
        }
        self.cached_prod = at;
        // SAFETY: `producer` points into the mapping. Release: the entries written above are
        // visible before the index that publishes them.
        unsafe { (*self.producer).store(self.cached_prod, Ordering::Release) };
    }

    /// Consumer: hand up to `max` available entries to `f`, then release them.
    fn consume(&mut self, max: u32, mut f: impl FnMut(T)) -> u32 {
        let mut avail = self.cached_prod.wrapping_sub(self.cached_cons);
        if avail == 0 {
            // SAFETY: `producer` points into the mapping. Acquire: the entries are written
            // before we read them.
            self.cached_prod = unsafe { (*self.producer).load(Ordering::Acquire) };
            avail = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        let n = avail.min(max);
        for i in 0..n {
            let idx = self.cached_cons.wrapping_add(i) & self.mask;
            // SAFETY: `idx` is masked into the ring and the entry was published.
            f(unsafe { self.descs.add(idx as usize).read() });
        }
        if n > 0 {
            self.cached_cons = self.cached_cons.wrapping_add(n);
            // SAFETY: `consumer` points into the mapping. Release: our reads are done before
            // the kernel may overwrite the entries.
            unsafe { (*self.consumer).store(self.cached_cons, Ordering::Release) };
        }
        n
    }
}

/// How a TX buffer's frame is cut into descriptors, and how many of each buffer's are still
/// with the kernel: a buffer whose frame spans several frames goes out as several
/// descriptors (`XDP_USE_SG`), each completed on its own, and is free again only once all of
/// them are back (in whatever order and batches the kernel returns them).
pub(crate) struct Spans {
    /// Bytes of one TX buffer.
    bytes: u64,
    /// Longest descriptor: in unaligned chunk mode the kernel wants room for the TX
    /// metadata in front of every descriptor within one chunk's length.
    max_desc: u64,
    /// Zero-copy in unaligned mode: a descriptor must not cross a page (the pages of an
    /// anonymous mapping are not physically contiguous).
    page_split: bool,
    /// Per TX buffer: descriptors not yet completed.
    pending: Vec<u8>,
    /// Where a mapped file starts in the UMEM (frames' `ext` pieces point there).
    ext_base: u64,
}

/// Page size for [`Spans`]' zero-copy split.
const PAGE: u64 = 4096;

impl Spans {
    /// `bufs` TX buffers of `bytes` bytes each; descriptors at most `max_desc` long, split
    /// at pages when `page_split`.
    pub(crate) fn new(bufs: u32, bytes: u64, max_desc: u64, page_split: bool) -> Self {
        Spans {
            bytes,
            max_desc: max_desc.max(1),
            page_split,
            pending: vec![0; bufs as usize],
            ext_base: 0,
        }
    }

    /// Frames' `ext` pieces are offsets into a file mapped at `base` in the UMEM.
    pub(super) fn set_ext_base(&mut self, base: u64) {
        self.ext_base = base;
    }

    /// Descriptors of `len` bytes at `off` of the mapped file (none for 0 bytes).
    fn ext_pieces(&self, off: u64, len: u64) -> impl Iterator<Item = (u64, u64)> {
        let (max, split) = (self.max_desc, self.page_split);
        let (mut at, mut left) = (self.ext_base + off, len);
        std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            // Zero-copy drivers need each descriptor inside a page; in copy mode every
            // further descriptor costs the kernel a page and a copy, so only split there.
            let mut n = left.min(max);
            if split {
                n = n.min(PAGE - at % PAGE);
            }
            let p = (at, n);
            at += n;
            left -= n;
            Some(p)
        })
    }

    /// Descriptors of a whole frame: its buffer part and its file part.
    pub(crate) fn frame_descs(&self, d: &TxDesc) -> u32 {
        self.descs(d.len)
            + d.ext
                .map_or(0, |(o, l)| self.ext_pieces(o, l as u64).count() as u32)
    }

    /// The descriptors (UMEM address, length) of `len` bytes at `start`: at least one.
    fn pieces(&self, start: u64, len: u64) -> impl Iterator<Item = (u64, u64)> {
        let (max, split) = (self.max_desc, self.page_split);
        let (mut at, mut left, mut first) = (start, len, true);
        std::iter::from_fn(move || {
            if left == 0 && !first {
                return None;
            }
            first = false;
            let mut n = left.min(max);
            if split {
                n = n.min(PAGE - at % PAGE);
            }
            let p = (at, n);
            at += n;
            left -= n;
            Some(p)
        })
    }

    /// Descriptors a frame of `len` bytes in a TX buffer takes.
    pub(crate) fn descs(&self, len: u32) -> u32 {
        self.pieces(super::HEADROOM as u64, len as u64).count() as u32
    }
}

/// A frame for the TX ring: its chunk, packet length and descriptor options.
#[derive(Debug)]
pub(crate) struct TxDesc {
    /// The chunk holding the frame.
    pub(crate) chunk: Chunk,
    /// Frame length.
    pub(crate) len: u32,
    /// `XDP_TX_METADATA` when the chunk carries TX metadata.
    pub(crate) options: u32,
    /// The rest of the frame in the UMEM's mapped file: offset in the file and length.
    pub(crate) ext: Option<(u64, u32)>,
}

/// Offsets, ring sizes and UMEM identity a ring needs when it is mapped.
pub(super) struct RingGeometry<'a> {
    pub(super) fd: BorrowedFd<'a>,
    pub(super) offsets: &'a libc::xdp_mmap_offsets,
    pub(super) tx_size: u32,
    pub(super) rx_size: u32,
    pub(super) umem: u32,
    pub(super) mask: u64,
}

/// The TX ring: frames to send.
pub(crate) struct TxRing {
    ring: Ring<libc::xdp_desc>,
    umem: u32,
}

impl TxRing {
    pub(super) fn map(g: &RingGeometry<'_>) -> io::Result<Self> {
        Ok(TxRing {
            ring: Ring::map(
                g.fd,
                &g.offsets.tx,
                libc::XDP_PGOFF_TX_RING,
                g.tx_size,
                true,
            )?,
            umem: g.umem,
        })
    }

    /// Put every frame of `batch` on the ring (all or none) and clear `batch`: the chunks
    /// belong to the kernel until the completion ring returns them. A frame longer than its
    /// first frame's room goes out as one descriptor per frame of its buffer, all but the
    /// last with `XDP_PKT_CONTD` (the options, TX metadata, on the first only). False if
    /// the ring has no room for all of them (`batch` is left as it is).
    pub(crate) fn submit(&mut self, batch: &mut Vec<TxDesc>, spans: &mut Spans) -> bool {
        let n: u32 = batch.iter().map(|d| spans.frame_descs(d)).sum();
        if !self.ring.has_room(n) {
            return false;
        }
        let umem = self.umem;
        let spans = &mut *spans;
        self.ring.produce(batch.drain(..).flat_map(|d| {
            assert_eq!(
                d.chunk.umem(),
                umem,
                "a chunk of another UMEM on the TX ring"
            );
            let base = d.chunk.addr();
            let start = base + super::HEADROOM as u64;
            // Only the buffer's own descriptors free it; the file's pages are never written.
            let descs = spans.pieces(start, d.len as u64).count();
            spans.pending[(base / spans.bytes) as usize] = descs as u8;
            let ext = d.ext.map_or((0, 0), |(o, l)| (o, l as u64));
            let total = spans.frame_descs(&d) as usize;
            let mut options = d.options;
            let mut i = 0;
            spans
                .pieces(start, d.len as u64)
                .chain(spans.ext_pieces(ext.0, ext.1))
                .map(move |(addr, len)| {
                    i += 1;
                    let more = i < total;
                    let desc = libc::xdp_desc {
                        addr,
                        len: len as u32,
                        options: options | if more { libc::XDP_PKT_CONTD } else { 0 },
                    };
                    options = 0;
                    desc
                })
        }));
        true
    }

    /// Whether the kernel needs a `sendto` kick to process the ring.
    pub(crate) fn needs_wakeup(&self) -> bool {
        self.ring.needs_wakeup()
    }
}

/// The completion ring: chunks of frames that have left.
pub(crate) struct CompRing {
    ring: Ring<u64>,
    umem: u32,
}

impl CompRing {
    pub(super) fn map(g: &RingGeometry<'_>) -> io::Result<Self> {
        Ok(CompRing {
            ring: Ring::map(
                g.fd,
                &g.offsets.cr,
                libc::XDP_UMEM_PGOFF_COMPLETION_RING as libc::off_t,
                g.tx_size,
                false,
            )?,
            umem: g.umem,
        })
    }

    /// Append the buffers of completed frames to `out` (a buffer once every descriptor of
    /// its frame is back), reading at most as many descriptors as `out` has spare capacity;
    /// returns how many buffers were appended.
    pub(crate) fn take(&mut self, out: &mut Vec<Chunk>, spans: &mut Spans) -> usize {
        let umem = self.umem;
        let before = out.len();
        let max = (out.capacity() - out.len()) as u32;
        let bytes = spans.bytes;
        let pending = &mut spans.pending;
        self.ring.consume(max, |addr| {
            let i = (addr / bytes) as usize;
            // A buffer not ours, or not in flight, would be a kernel bug: never hand it out.
            if let Some(p) = pending.get_mut(i).filter(|p| **p > 0) {
                *p -= 1;
                if *p == 0 {
                    out.push(Chunk::returned(i as u64 * bytes, !0, umem));
                }
            }
        });
        out.len() - before
    }
}

/// The fill ring: chunks given to the kernel to receive into.
pub(crate) struct FillRing {
    ring: Ring<u64>,
    umem: u32,
}

impl FillRing {
    pub(super) fn map(g: &RingGeometry<'_>) -> io::Result<Self> {
        Ok(FillRing {
            ring: Ring::map(
                g.fd,
                &g.offsets.fr,
                libc::XDP_UMEM_PGOFF_FILL_RING as libc::off_t,
                g.rx_size,
                true,
            )?,
            umem: g.umem,
        })
    }

    /// Give every chunk of `chunks` to the kernel (all or none) and clear `chunks`. False if
    /// the ring has no room for all of them.
    pub(crate) fn give(&mut self, chunks: &mut Vec<Chunk>) -> bool {
        if !self.ring.has_room(chunks.len() as u32) {
            return false;
        }
        let umem = self.umem;
        self.ring.produce(chunks.drain(..).map(|c| {
            assert_eq!(c.umem(), umem, "a chunk of another UMEM on the fill ring");
            c.addr()
        }));
        true
    }
}

/// `XSK_UNALIGNED_BUF_OFFSET_SHIFT` and the address bits below it.
const OFFSET_SHIFT: u32 = 48;
const ADDR_MASK: u64 = (1 << OFFSET_SHIFT) - 1;

/// The RX ring: received packets.
pub(crate) struct RxRing {
    ring: Ring<libc::xdp_desc>,
    umem: u32,
    mask: u64,
}

impl RxRing {
    pub(super) fn map(g: &RingGeometry<'_>) -> io::Result<Self> {
        Ok(RxRing {
            ring: Ring::map(
                g.fd,
                &g.offsets.rx,
                libc::XDP_PGOFF_RX_RING,
                g.rx_size,
                false,
            )?,
            umem: g.umem,
            mask: g.mask,
        })
    }

    /// Append received packets to `out`, up to its spare capacity.
    pub(crate) fn take(&mut self, out: &mut Vec<RxDesc>) -> usize {
        let (umem, mask) = (self.umem, self.mask);
        let max = (out.capacity() - out.len()) as u32;
        self.ring.consume(max, |d| {
            // Unaligned chunk mode puts the data's offset in the top 16 bits.
            let at = (d.addr & ADDR_MASK) + (d.addr >> OFFSET_SHIFT);
            let chunk = Chunk::returned(at, mask, umem);
            let off = (at - chunk.addr()) as u32;
            out.push(RxDesc {
                chunk,
                off,
                len: d.len,
                more: d.options & libc::XDP_PKT_CONTD != 0,
            })
        }) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(s: &Spans, len: u64) -> Vec<(u64, u64)> {
        s.pieces(super::super::HEADROOM as u64, len).collect()
    }

    #[test]
    fn one_frame_is_one_descriptor() {
        let s = Spans::new(4, 4096, u64::MAX, false);
        assert_eq!(cut(&s, 1514), vec![(256, 1514)]);
        assert_eq!(s.descs(3840), 1);
    }

    #[test]
    fn unaligned_descriptors_leave_room_for_tx_metadata() {
        // MTU 9000: 9014 bytes in a 3-frame buffer, descriptors of at most 4096 - 24.
        let s = Spans::new(4, 3 * 4096, 4096 - 24, false);
        let p = cut(&s, 9014);
        assert_eq!(p, vec![(256, 4072), (4328, 4072), (8400, 870)]);
        // Contiguous, and every descriptor ends inside the buffer.
        assert!(p.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0));
        assert!(p.iter().all(|&(a, l)| a + l <= 3 * 4096 && l + 24 <= 4096));
        assert_eq!(s.descs(9014), 3);
    }

    #[test]
    fn zero_copy_descriptors_stay_inside_a_page() {
        // Zero-copy multi-buffer queues carry no TX metadata (it would have to share each
        // descriptor's page): descriptors of up to a whole page, cut at pages.
        let mut s = Spans::new(4, 3 * 4096, 4096, true);
        let p = cut(&s, 9014);
        assert_eq!(p, vec![(256, 3840), (4096, 4096), (8192, 1078)]);
        assert!(p.iter().all(|&(a, l)| a / 4096 == (a + l - 1) / 4096));
        assert_eq!(p.iter().map(|p| p.1).sum::<u64>(), 9014);
        // File pieces (a file mapped at 64 KiB) are cut at its pages too.
        s.set_ext_base(65536);
        let e: Vec<_> = s.ext_pieces(4000, 1000).collect();
        assert_eq!(e, vec![(69536, 96), (69632, 904)]);
    }

    #[test]
    fn an_empty_frame_still_takes_one_descriptor() {
        let s = Spans::new(1, 4096, u64::MAX, false);
        assert_eq!(cut(&s, 0), vec![(256, 0)]);
    }
}
