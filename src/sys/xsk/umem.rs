//! The UMEM: one anonymous mapping registered with the socket, cut into chunks, and the
//! tokens ([`Chunk`]) that say who owns each chunk.
//!
//! The area starts with the TX buffers, each a *span* of one or more consecutive frames (a
//! frame larger than one frame is written contiguously there and sent as several descriptors,
//! `XDP_USE_SG`), followed by the single frames the fill ring receives into.
//!
//! A [`Chunk`] is neither `Copy` nor `Clone`: [`Umem::new`] makes one per chunk, rings
//! consume them when chunks go to the kernel and make them again when the kernel gives
//! chunks back (the kernel returns each address it was given once). Owning a `Chunk` is
//! therefore the right to read and write that chunk, which is what makes
//! [`Umem::data_mut`] safe.

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::sys::mmap::Mapping;

/// Bytes of each chunk before the packet data: the kernel's `XDP_PACKET_HEADROOM` (where it
/// puts received packets in copy mode), also used for TX so a chunk serves either way.
pub(crate) const HEADROOM: u32 = 256;

/// Size of `struct xsk_tx_metadata` (flags, then the checksum request and launch time).
pub(crate) const TX_METADATA_LEN: u32 = 24;

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

/// One chunk of a UMEM, owned by user space (in no ring).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// Offset of the chunk's start in its UMEM.
    addr: u64,
    /// Which UMEM.
    umem: u32,
}

impl Chunk {
    /// Re-make the token of a chunk the kernel handed back (`addr` anywhere in the chunk).
    pub(super) fn returned(addr: u64, mask: u64, umem: u32) -> Self {
        Chunk {
            addr: addr & mask,
            umem,
        }
    }

    /// Offset of the chunk's start in its UMEM.
    pub(crate) fn addr(&self) -> u64 {
        self.addr
    }

    /// Which UMEM the chunk belongs to.
    pub(super) fn umem(&self) -> u32 {
        self.umem
    }
}

/// A received packet: its chunk, where the data starts in it, and its length.
#[derive(Debug)]
pub(crate) struct RxDesc {
    pub(super) chunk: Chunk,
    pub(super) off: u32,
    pub(super) len: u32,
    /// `XDP_PKT_CONTD`: the packet goes on in the next descriptor.
    pub(super) more: bool,
}

impl RxDesc {
    /// Whether the packet goes on in the next descriptor (multi-buffer, `XDP_PKT_CONTD`).
    pub(crate) fn more(&self) -> bool {
        self.more
    }

    /// Give up the packet, keeping the chunk (to fill it again).
    pub(crate) fn into_chunk(self) -> Chunk {
        self.chunk
    }
}

/// An anonymous, populated mapping registered as the UMEM.
pub(crate) struct Umem {
    area: Mapping,
    frame_size: u32,
    /// Frames per TX buffer.
    span: u32,
    /// Bytes of the TX buffers at the start of the area.
    tx_len: u64,
    id: u32,
    tx_metadata: bool,
    unaligned: bool,
    /// A file mapped after the frames (zero-copy payloads): its offset in the UMEM and its
    /// length (0: none).
    file_base: u64,
    file_len: u64,
}

/// How a UMEM is laid out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    /// Chunk size: 2048 or 4096.
    pub(crate) frame_size: u32,
    /// TX buffers.
    pub(crate) tx_bufs: u32,
    /// Frames per TX buffer (1: every frame fits one chunk).
    pub(crate) span: u32,
    /// Single frames to receive into.
    pub(crate) rx_frames: u32,
    /// Unaligned chunk mode (`XDP_UMEM_UNALIGNED_CHUNK_FLAG`): a descriptor may start
    /// anywhere, so a multi-frame buffer's descriptors follow each other without the gap
    /// aligned mode would want for the TX metadata in front of each.
    pub(crate) unaligned: bool,
}

impl Umem {
    /// A UMEM laid out as `l` with the token of every TX buffer and of every RX frame; with
    /// `file`, that many bytes of the file are mapped (shared) after the frames, so that
    /// descriptors can point at its pages.
    pub(super) fn new(
        l: &Layout,
        tx_metadata: bool,
        file: Option<(BorrowedFd<'_>, u64)>,
    ) -> io::Result<(Self, Vec<Chunk>, Vec<Chunk>)> {
        static NEXT_ID: AtomicU32 = AtomicU32::new(1);
        let frame_size = l.frame_size;
        if !frame_size.is_power_of_two() || !(2048..=4096).contains(&frame_size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("UMEM frame size {frame_size}: 2048 or 4096"),
            ));
        }
        if l.span == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a TX buffer of zero frames",
            ));
        }
        let fs = frame_size as u64;
        let span_bytes = l.span as u64 * fs;
        let tx_len = l.tx_bufs as u64 * span_bytes;
        let frames_len = (tx_len + l.rx_frames as u64 * fs) as usize;
        let (area, file_base, file_len) = match file {
            None => (Mapping::anonymous(frames_len)?, 0, 0),
            Some((fd, len)) => {
                let (m, at) = Mapping::with_file_tail(frames_len, fd, len as usize)?;
                (m, at as u64, len)
            }
        };
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let tx = (0..l.tx_bufs as u64)
            .map(|i| Chunk {
                addr: i * span_bytes,
                umem: id,
            })
            .collect();
        let rx = (0..l.rx_frames as u64)
            .map(|i| Chunk {
                addr: tx_len + i * fs,
                umem: id,
            })
            .collect();
        Ok((
            Umem {
                area,
                frame_size,
                span: l.span,
                tx_len,
                id,
                tx_metadata,
                unaligned: l.unaligned,
                file_base,
                file_len,
            },
            tx,
            rx,
        ))
    }

    /// The registration request for this UMEM.
    pub(super) fn reg(&self) -> libc::xdp_umem_reg {
        libc::xdp_umem_reg {
            addr: self.area.ptr() as u64,
            len: self.area.len() as u64,
            chunk_size: self.frame_size,
            headroom: 0,
            flags: if self.tx_metadata {
                libc::XDP_UMEM_TX_METADATA_LEN
            } else {
                0
            } | if self.unaligned {
                libc::XDP_UMEM_UNALIGNED_CHUNK_FLAG
            } else {
                0
            },
            tx_metadata_len: if self.tx_metadata { TX_METADATA_LEN } else { 0 },
        }
    }

    /// This UMEM's id (chunk tokens carry it).
    pub(super) fn id(&self) -> u32 {
        self.id
    }

    /// Mask that rounds an address down to its chunk's start.
    pub(super) fn chunk_mask(&self) -> u64 {
        !(self.frame_size as u64 - 1)
    }

    /// Where the mapped file starts in the UMEM, and its length (0: no file).
    pub(crate) fn file_region(&self) -> (u64, u64) {
        (self.file_base, self.file_len)
    }

    /// Bytes of one TX buffer.
    pub(super) fn span_bytes(&self) -> u64 {
        self.span as u64 * self.frame_size as u64
    }

    /// Longest TX descriptor: a chunk, less the TX metadata the kernel wants room for in
    /// front of every descriptor in unaligned mode.
    pub(super) fn max_desc(&self) -> u64 {
        if self.unaligned && self.tx_metadata {
            (self.frame_size - TX_METADATA_LEN) as u64
        } else {
            self.frame_size as u64
        }
    }

    /// Bytes of frame one TX buffer holds (all its frames, less the headroom of the first).
    pub(crate) fn capacity(&self) -> usize {
        (self.span * self.frame_size - HEADROOM) as usize
    }

    /// Bytes of a chunk: a TX buffer's span, or one RX frame.
    fn chunk_len(&self, c: &Chunk) -> u64 {
        if c.addr < self.tx_len {
            self.span as u64 * self.frame_size as u64
        } else {
            self.frame_size as u64
        }
    }

    fn check(&self, c: &Chunk) {
        assert!(
            c.umem == self.id && c.addr + self.chunk_len(c) <= self.area.len() as u64,
            "a chunk of UMEM {} used with UMEM {}",
            c.umem,
            self.id
        );
    }

    /// The packet area of a chunk we own: everything after the headroom ([`Umem::capacity`]
    /// bytes for a TX buffer).
    pub(crate) fn data_mut<'a>(&'a self, c: &'a mut Chunk) -> &'a mut [u8] {
        self.check(c);
        let start = (c.addr + HEADROOM as u64) as usize;
        let len = (self.chunk_len(c) - HEADROOM as u64) as usize;
        // SAFETY: the range lies inside the mapping (checked above) and belongs to chunk `c`;
        // holding `c` by unique reference means no ring holds the chunk (the kernel does not
        // touch it) and no other slice of it exists for `'a`; the mapping lives as long as
        // `self`, which is borrowed for `'a`.
        unsafe { std::slice::from_raw_parts_mut(self.area.ptr().add(start), len) }
    }

    /// The bytes of a received packet.
    pub(crate) fn rx_data<'a>(&'a self, d: &'a RxDesc) -> &'a [u8] {
        self.check(&d.chunk);
        let start = d.chunk.addr + d.off as u64;
        let end = start + d.len as u64;
        assert!(
            end <= d.chunk.addr + self.frame_size as u64,
            "RX descriptor outside its chunk"
        );
        // SAFETY: inside the chunk (checked), which the descriptor owns until it is filled
        // again; the kernel wrote `len` bytes there before publishing the descriptor.
        unsafe { std::slice::from_raw_parts(self.area.ptr().add(start as usize), d.len as usize) }
    }

    /// Write the TX metadata in front of the chunk's packet data: with `csum` (start of the
    /// L4 header, offset of its checksum field), the device (or the kernel) completes the L4
    /// checksum from the pseudo-header sum the framer left in the field.
    pub(crate) fn write_tx_metadata(&self, c: &mut Chunk, csum: Option<(u16, u16)>) {
        self.check(c);
        assert!(self.tx_metadata, "UMEM without TX metadata");
        let meta = TxMetadata {
            flags: if csum.is_some() {
                libc::XDP_TXMD_FLAGS_CHECKSUM as u64
            } else {
                0
            },
            csum_start: csum.map_or(0, |c| c.0),
            csum_offset: csum.map_or(0, |c| c.1),
            _pad: 0,
            launch_time: 0,
        };
        let at = (c.addr + (HEADROOM - TX_METADATA_LEN) as u64) as usize;
        // SAFETY: the metadata area is the TX_METADATA_LEN bytes right before the packet
        // data, inside the chunk's headroom (checked chunk, owned through `c`); an unaligned
        // write is fine at any offset.
        unsafe {
            self.area
                .ptr()
                .add(at)
                .cast::<TxMetadata>()
                .write_unaligned(meta)
        };
    }
}
