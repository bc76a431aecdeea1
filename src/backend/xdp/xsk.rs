//! AF_XDP sockets, UMEM and rings, on raw syscalls (the thin I/O layer of the XDP backend).
//!
//! Modelled on s2n-quic-xdp's umem / ring / socket split and on libxdp's ring protocol,
//! without the C library: the UMEM is an anonymous mapping registered with `XDP_UMEM_REG`
//! (with a TX metadata area, so checksums can be offloaded through
//! `XDP_TXMD_FLAGS_CHECKSUM`, which libxdp's UMEM API cannot request), and the four rings are
//! the kernel's mappings, driven with acquire/release atomics on their producer and consumer
//! indices.
//!
//! Frames are identified by the UMEM offset of their chunk ([`Frame`]); the packet data of
//! every frame starts [`HEADROOM`] bytes into its chunk and the TX metadata (when enabled)
//! sits just before the data.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// Bytes of each chunk before the packet data: the kernel's `XDP_PACKET_HEADROOM` (where it
/// puts received packets in copy mode), also used for TX so a frame can be re-used either way.
pub const HEADROOM: u32 = 256;

/// How long `bind` may answer EBUSY while a just-closed socket's queue is being released.
const BIND_BUSY_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Size of `struct xsk_tx_metadata` (flags, then the checksum request and launch time).
pub const TX_METADATA_LEN: u32 = 24;

/// One UMEM chunk, by the offset of its start in the UMEM.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Offset of the chunk in the UMEM.
    pub addr: u64,
    /// Length of the packet (set when it is written).
    pub len: u32,
}

/// Checksum offload request carried in a frame's TX metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsumRequest {
    /// Offset of the L4 header from the start of the packet.
    pub start: u16,
    /// Offset of the checksum field from `start`.
    pub offset: u16,
}

/// `struct xsk_tx_metadata` as the kernel reads it (`include/uapi/linux/if_xdp.h`).
#[repr(C)]
struct TxMetadata {
    flags: u64,
    csum_start: u16,
    csum_offset: u16,
    _pad: u32,
    launch_time: u64,
}

const _: () = assert!(std::mem::size_of::<TxMetadata>() == TX_METADATA_LEN as usize);

/// What a socket was asked for.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Chunk size (2048 or 4096).
    pub frame_size: u32,
    /// Number of chunks in the UMEM.
    pub frames: u32,
    /// TX and completion ring size (a power of two).
    pub tx_size: u32,
    /// RX and fill ring size (a power of two).
    pub rx_size: u32,
    /// Bind with `XDP_ZEROCOPY` (else `XDP_COPY`).
    pub zerocopy: bool,
    /// Reserve TX metadata in front of each frame (for checksum offload).
    pub tx_metadata: bool,
}

/// An anonymous, populated mapping registered as the UMEM.
struct Umem {
    area: NonNull<u8>,
    size: usize,
}

impl Umem {
    fn new(size: usize) -> io::Result<Self> {
        // SAFETY: a fresh anonymous private mapping; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Umem {
            area: NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?,
            size,
        })
    }
}

impl Drop for Umem {
    fn drop(&mut self) {
        // SAFETY: the mapping was made in `new` with this size and is unmapped once; the socket
        // that registered it is closed first (field order in `Xsk`).
        unsafe { libc::munmap(self.area.as_ptr().cast(), self.size) };
    }
}

/// One mapped ring: producer and consumer indices, flags and the descriptor array.
struct Ring<T> {
    map: NonNull<u8>,
    map_len: usize,
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

impl<T: Copy> Ring<T> {
    /// Map ring `pgoff` of `fd` with `size` entries at the kernel's `off`sets.
    fn map(
        fd: RawFd,
        off: &libc::xdp_ring_offset,
        pgoff: libc::off_t,
        size: u32,
        producer: bool,
    ) -> io::Result<Self> {
        let map_len = off.desc as usize + size as usize * std::mem::size_of::<T>();
        // SAFETY: maps the kernel's ring of this socket; the length is what the kernel sized it
        // to (desc offset + entries), the offset selects the ring.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                pgoff,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = p.cast::<u8>();
        // SAFETY: the offsets come from XDP_MMAP_OFFSETS and lie inside the mapping; the
        // indices are u32s the kernel accesses atomically.
        let (prod, cons, flags, descs) = unsafe {
            (
                base.add(off.producer as usize).cast::<AtomicU32>(),
                base.add(off.consumer as usize).cast::<AtomicU32>(),
                base.add(off.flags as usize).cast::<AtomicU32>(),
                base.add(off.desc as usize).cast::<T>(),
            )
        };
        // SAFETY: valid pointers into the mapping (above).
        let (p_now, c_now) = unsafe {
            (
                (*prod).load(Ordering::Relaxed),
                (*cons).load(Ordering::Relaxed),
            )
        };
        Ok(Ring {
            map: NonNull::new(base).ok_or_else(|| io::Error::other("mmap returned null"))?,
            map_len,
            producer: prod,
            consumer: cons,
            flags,
            descs,
            mask: size - 1,
            size,
            cached_prod: p_now,
            cached_cons: if producer { c_now + size } else { c_now },
        })
    }

    fn needs_wakeup(&self) -> bool {
        // SAFETY: `flags` points into the live mapping.
        unsafe { (*self.flags).load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0 }
    }

    /// Producer: write up to `n` entries produced by `f(i)`; all or nothing. Returns `n` or 0.
    fn produce(&mut self, n: u32, mut f: impl FnMut(u32) -> T) -> u32 {
        let mut free = self.cached_cons.wrapping_sub(self.cached_prod);
        if free < n {
            // SAFETY: `consumer` points into the live mapping. Acquire: the kernel is done
            // with the entries it consumed before we overwrite them.
            self.cached_cons =
                unsafe { (*self.consumer).load(Ordering::Acquire) }.wrapping_add(self.size);
            free = self.cached_cons.wrapping_sub(self.cached_prod);
            if free < n {
                return 0;
            }
        }
        for i in 0..n {
            let idx = self.cached_prod.wrapping_add(i) & self.mask;
            // SAFETY: `idx` is masked into the ring; the slot is free (checked above).
            unsafe { self.descs.add(idx as usize).write(f(i)) };
        }
        self.cached_prod = self.cached_prod.wrapping_add(n);
        // SAFETY: `producer` points into the live mapping. Release: the entries written above
        // are visible before the index that publishes them.
        unsafe { (*self.producer).store(self.cached_prod, Ordering::Release) };
        n
    }

    /// Consumer: hand up to `max` available entries to `f`, then release them.
    fn consume(&mut self, max: u32, mut f: impl FnMut(T)) -> u32 {
        let mut avail = self.cached_prod.wrapping_sub(self.cached_cons);
        if avail == 0 {
            // SAFETY: `producer` points into the live mapping. Acquire: the entries are
            // written before we read them.
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
            // SAFETY: `consumer` points into the live mapping. Release: our reads are done
            // before the kernel may overwrite the entries.
            unsafe { (*self.consumer).store(self.cached_cons, Ordering::Release) };
        }
        n
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // SAFETY: unmaps the mapping made in `map`, once.
        unsafe { libc::munmap(self.map.as_ptr().cast(), self.map_len) };
    }
}

/// An AF_XDP socket bound to one queue, with its own UMEM, fill, completion, RX and TX rings.
pub struct Xsk {
    // Field order is drop order: the rings and the socket go before the UMEM.
    tx: Ring<libc::xdp_desc>,
    rx: Ring<libc::xdp_desc>,
    fill: Ring<u64>,
    comp: Ring<u64>,
    fd: OwnedFd,
    umem: Umem,
    frame_size: u32,
    tx_metadata: bool,
}

// SAFETY: the raw pointers point into mappings owned by this value; it is used by one thread at
// a time (moved between threads, never shared).
unsafe impl Send for Xsk {}

fn setsockopt<T>(fd: RawFd, opt: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: `val` is a live `T` and the length passed is its size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_XDP,
            opt,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Xsk {
    /// Create a socket on queue `queue` of interface `ifindex`.
    pub fn new(ifindex: u32, queue: u32, cfg: &Config) -> io::Result<Self> {
        // SAFETY: plain socket(2); the fd is owned right away.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let size = cfg.frames as usize * cfg.frame_size as usize;
        let umem = Umem::new(size)?;
        let reg = libc::xdp_umem_reg {
            addr: umem.area.as_ptr() as u64,
            len: size as u64,
            chunk_size: cfg.frame_size,
            headroom: 0,
            flags: if cfg.tx_metadata {
                libc::XDP_UMEM_TX_METADATA_LEN
            } else {
                0
            },
            tx_metadata_len: if cfg.tx_metadata { TX_METADATA_LEN } else { 0 },
        };
        setsockopt(raw, libc::XDP_UMEM_REG, &reg)?;
        setsockopt(raw, libc::XDP_UMEM_FILL_RING, &cfg.rx_size)?;
        setsockopt(raw, libc::XDP_UMEM_COMPLETION_RING, &cfg.tx_size)?;
        setsockopt(raw, libc::XDP_RX_RING, &cfg.rx_size)?;
        setsockopt(raw, libc::XDP_TX_RING, &cfg.tx_size)?;
        // SAFETY: an all-zero xdp_mmap_offsets is valid; getsockopt writes at most `len` bytes.
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
        // SAFETY: `off` and `len` are live and `len` is `off`'s size.
        let r = unsafe {
            libc::getsockopt(
                raw,
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                (&mut off as *mut libc::xdp_mmap_offsets).cast(),
                &mut len,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        if len as usize != std::mem::size_of::<libc::xdp_mmap_offsets>() {
            return Err(io::Error::other(
                "kernel without ring flags (XDP_MMAP_OFFSETS v1): too old for need_wakeup",
            ));
        }
        let fill = Ring::map(
            raw,
            &off.fr,
            libc::XDP_UMEM_PGOFF_FILL_RING as libc::off_t,
            cfg.rx_size,
            true,
        )?;
        let comp = Ring::map(
            raw,
            &off.cr,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING as libc::off_t,
            cfg.tx_size,
            false,
        )?;
        let rx = Ring::map(raw, &off.rx, libc::XDP_PGOFF_RX_RING, cfg.rx_size, false)?;
        let tx = Ring::map(raw, &off.tx, libc::XDP_PGOFF_TX_RING, cfg.tx_size, true)?;
        // SAFETY: all-zero is a valid sockaddr_xdp; the fields are set below.
        let mut sa: libc::sockaddr_xdp = unsafe { std::mem::zeroed() };
        sa.sxdp_family = libc::AF_XDP as u16;
        sa.sxdp_ifindex = ifindex;
        sa.sxdp_queue_id = queue;
        sa.sxdp_flags = libc::XDP_USE_NEED_WAKEUP
            | if cfg.zerocopy {
                libc::XDP_ZEROCOPY
            } else {
                libc::XDP_COPY
            };
        // A socket closed on this queue a moment ago releases it from a kernel work item
        // (`xp_release_deferred`): until that has run, bind says EBUSY. Retry briefly before
        // calling the queue taken.
        let until = std::time::Instant::now() + BIND_BUSY_WAIT;
        loop {
            // SAFETY: `sa` is a live sockaddr_xdp and its size is passed.
            let r = unsafe {
                libc::bind(
                    raw,
                    (&sa as *const libc::sockaddr_xdp).cast(),
                    std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
                )
            };
            if r == 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EBUSY) || std::time::Instant::now() >= until {
                return Err(e);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Ok(Xsk {
            tx,
            rx,
            fill,
            comp,
            fd,
            umem,
            frame_size: cfg.frame_size,
            tx_metadata: cfg.tx_metadata,
        })
    }

    /// The socket's descriptor (for the XSKMAP, setsockopt and kicks).
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Every chunk of the UMEM.
    pub fn frames(&self) -> impl Iterator<Item = Frame> {
        let fs = self.frame_size as u64;
        (0..(self.umem.size as u64 / fs)).map(move |i| Frame {
            addr: i * fs,
            len: 0,
        })
    }

    /// Whether frames carry TX metadata (checksum offload possible).
    pub fn tx_metadata(&self) -> bool {
        self.tx_metadata
    }

    /// Largest packet a frame holds.
    pub fn frame_capacity(&self) -> usize {
        (self.frame_size - HEADROOM) as usize
    }

    /// Pointer to the packet data of `frame`. Valid while `self` lives.
    pub fn data_ptr(&self, frame: Frame) -> *mut u8 {
        debug_assert!(frame.addr + self.frame_size as u64 <= self.umem.size as u64);
        // SAFETY (pointer arithmetic): the chunk lies inside the UMEM (frames come from
        // `frames()` or the rings, which only return chunks of this UMEM).
        unsafe {
            self.umem
                .area
                .as_ptr()
                .add((frame.addr + HEADROOM as u64) as usize)
        }
    }

    /// The packet bytes of a frame we own.
    ///
    /// # Safety
    /// `frame` must be a chunk of this UMEM that no ring holds and that no other live slice
    /// refers to.
    pub unsafe fn data_mut(&mut self, frame: Frame, len: usize) -> &mut [u8] {
        debug_assert!(len <= self.frame_capacity());
        // SAFETY: the caller owns the chunk; `len` fits in it (after the headroom).
        unsafe { std::slice::from_raw_parts_mut(self.data_ptr(frame), len) }
    }

    /// Write the TX metadata in front of `frame`'s data: with `csum`, the device (or the
    /// kernel) completes the L4 checksum from the pseudo-header sum the framer left in it.
    ///
    /// # Safety
    /// As for [`Xsk::data_mut`]; the socket must have TX metadata ([`Xsk::tx_metadata`]).
    pub unsafe fn write_tx_metadata(&mut self, frame: Frame, csum: Option<CsumRequest>) {
        debug_assert!(self.tx_metadata);
        let meta = TxMetadata {
            flags: if csum.is_some() {
                libc::XDP_TXMD_FLAGS_CHECKSUM as u64
            } else {
                0
            },
            csum_start: csum.map_or(0, |c| c.start),
            csum_offset: csum.map_or(0, |c| c.offset),
            _pad: 0,
            launch_time: 0,
        };
        // SAFETY: the metadata area is the TX_METADATA_LEN bytes right before the data, inside
        // the chunk's headroom, owned by the caller; unaligned write is fine for any offset.
        unsafe {
            self.data_ptr(frame)
                .sub(TX_METADATA_LEN as usize)
                .cast::<TxMetadata>()
                .write_unaligned(meta)
        };
    }

    /// Put `frames` on the TX ring (all or none); `meta` marks them as carrying TX metadata.
    ///
    /// # Safety
    /// Every frame must be a chunk of this UMEM that we own, with `len` bytes written; after
    /// this it belongs to the kernel until the completion ring returns it.
    pub unsafe fn tx_submit(&mut self, frames: &[Frame], meta: bool) -> bool {
        let options = if meta { libc::XDP_TX_METADATA } else { 0 };
        self.tx.produce(frames.len() as u32, |i| {
            let f = frames[i as usize];
            libc::xdp_desc {
                addr: f.addr + HEADROOM as u64,
                len: f.len,
                options,
            }
        }) as usize
            == frames.len()
    }

    /// Whether the kernel needs a `sendto` kick to process the TX ring.
    pub fn tx_needs_wakeup(&self) -> bool {
        self.tx.needs_wakeup()
    }

    /// Completed TX frames, appended to `out` (up to its spare capacity).
    pub fn complete(&mut self, out: &mut Vec<Frame>) -> usize {
        let fs = self.frame_size as u64;
        let max = (out.capacity() - out.len()) as u32;
        self.comp.consume(max, |addr| {
            out.push(Frame {
                addr: addr - addr % fs,
                len: 0,
            })
        }) as usize
    }

    /// Give chunks to the kernel for receiving (all or none).
    ///
    /// # Safety
    /// The frames must be chunks of this UMEM that we own; they belong to the kernel until
    /// the RX ring returns them.
    pub unsafe fn fill(&mut self, frames: &[Frame]) -> bool {
        self.fill
            .produce(frames.len() as u32, |i| frames[i as usize].addr) as usize
            == frames.len()
    }

    /// Received frames (with their packet length), appended to `out` (up to its capacity).
    pub fn receive(&mut self, out: &mut Vec<(Frame, u32)>) -> usize {
        let fs = self.frame_size as u64;
        let max = (out.capacity() - out.len()) as u32;
        self.rx.consume(max, |d| {
            out.push((
                Frame {
                    addr: d.addr - d.addr % fs,
                    len: d.len,
                },
                (d.addr % fs) as u32,
            ))
        }) as usize
    }

    /// The bytes of a received packet.
    ///
    /// # Safety
    /// `frame` and `data_off` must come from [`Xsk::receive`], and the frame must not have been
    /// given back to the fill ring yet.
    pub unsafe fn rx_data(&self, frame: Frame, data_off: u32) -> &[u8] {
        // SAFETY: the kernel wrote `len` bytes at `data_off` into this chunk of the UMEM, and
        // it is ours until re-filled.
        unsafe {
            std::slice::from_raw_parts(
                self.umem
                    .area
                    .as_ptr()
                    .add((frame.addr + data_off as u64) as usize),
                frame.len as usize,
            )
        }
    }
}
