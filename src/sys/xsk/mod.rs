//! AF_XDP sockets on raw syscalls, modelled on s2n-quic-xdp's umem / ring / socket split and
//! on libxdp's ring protocol, without the C library (libxdp's UMEM API cannot reserve the TX
//! metadata that checksum offload needs).
//!
//! [`Xsk::open`] makes a socket bound to one queue with its own [`Umem`] and four typed
//! rings. Every part owns what it maps and unmaps it when dropped, so no field order matters.
//! Chunks move between user space and the kernel as [`Chunk`] tokens.

mod ring;
mod umem;

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use ring::RingGeometry;
pub(crate) use ring::{CompRing, FillRing, RxRing, Spans, TxDesc, TxRing};
pub(crate) use umem::{Chunk, Layout, RxDesc, Umem, HEADROOM};

use super::socket;

/// `SOL_XDP` socket option level.
const SOL_XDP: libc::c_int = libc::SOL_XDP;
/// `XDP_MAX_TX_SKB_BUDGET` (missing from Debian's headers): frames one kick may send.
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;
/// How long `bind` may answer EBUSY while a just-closed socket's queue is being released.
const BIND_BUSY_WAIT: Duration = Duration::from_millis(500);

/// What a socket is asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    /// The UMEM: frame size, TX buffers (each `span` frames), RX frames. The TX and
    /// completion rings get room for every descriptor of every TX buffer; with a span over
    /// one frame the socket is bound with `XDP_USE_SG` (multi-buffer packets both ways).
    pub(crate) layout: Layout,
    /// RX and fill ring size (a power of two).
    pub(crate) rx_size: u32,
    /// Bind with `XDP_ZEROCOPY` (else `XDP_COPY`).
    pub(crate) zerocopy: bool,
    /// Reserve TX metadata in front of each chunk (for checksum offload).
    pub(crate) tx_metadata: bool,
}

/// An AF_XDP socket bound to one queue, with its UMEM and rings. The fields are separate
/// so that a chunk's bytes ([`Umem::data_mut`]) can be borrowed while a ring is used.
pub(crate) struct Xsk {
    /// The UMEM.
    pub(crate) umem: Umem,
    /// Frames to send.
    pub(crate) tx: TxRing,
    /// Frames sent.
    pub(crate) comp: CompRing,
    /// Chunks to receive into.
    pub(crate) fill: FillRing,
    /// Received packets.
    pub(crate) rx: RxRing,
    /// Descriptors in flight per TX buffer.
    pub(crate) spans: Spans,
    fd: OwnedFd,
}

impl Xsk {
    /// Create a socket on queue `queue` of interface `ifindex`; returns it with the tokens
    /// of every TX buffer and of every RX frame. With `file` (a descriptor open read-write
    /// and a length), the file is mapped into the UMEM after the frames (see
    /// [`TxDesc::ext`]); the layout must then be unaligned.
    pub(crate) fn open(
        ifindex: u32,
        queue: u32,
        cfg: &Config,
        file: Option<(BorrowedFd<'_>, u64)>,
    ) -> io::Result<(Xsk, Vec<Chunk>, Vec<Chunk>)> {
        // SAFETY: plain socket(2); the descriptor is owned right away.
        let raw = syscall!(socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0))?;
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let l = &cfg.layout;
        if l.unaligned && cfg.zerocopy && cfg.tx_metadata {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "TX metadata with zero-copy unaligned chunks: pieces starting at a page have no room for it",
            ));
        }
        if file.is_some() && !l.unaligned {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a file in the UMEM needs unaligned chunks",
            ));
        }
        let (umem, tx_chunks, rx_chunks) = Umem::new(l, cfg.tx_metadata, file)?;
        let mut spans = Spans::new(
            l.tx_bufs,
            umem.span_bytes(),
            umem.max_desc(),
            l.unaligned && cfg.zerocopy,
        );
        spans.set_ext_base(umem.file_region().0);
        // A frame with a file part takes at most one more descriptor per page it covers.
        let per_buf = spans.descs(umem.capacity() as u32) + u32::from(file.is_some()) * 17;
        let tx_size = (l.tx_bufs * per_buf).max(64).next_power_of_two();
        let f = fd.as_fd();
        socket::setsockopt(f, SOL_XDP, libc::XDP_UMEM_REG, &umem.reg())?;
        socket::setsockopt(f, SOL_XDP, libc::XDP_UMEM_FILL_RING, &cfg.rx_size)?;
        socket::setsockopt(f, SOL_XDP, libc::XDP_UMEM_COMPLETION_RING, &tx_size)?;
        socket::setsockopt(f, SOL_XDP, libc::XDP_RX_RING, &cfg.rx_size)?;
        socket::setsockopt(f, SOL_XDP, libc::XDP_TX_RING, &tx_size)?;
        let offsets: libc::xdp_mmap_offsets = socket::getsockopt(f, SOL_XDP, libc::XDP_MMAP_OFFSETS)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("XDP_MMAP_OFFSETS ({e}): a kernel without ring flags is too old for need_wakeup"),
                )
            })?;
        let g = RingGeometry {
            fd: f,
            offsets: &offsets,
            tx_size,
            rx_size: cfg.rx_size,
            umem: umem.id(),
            mask: umem.chunk_mask(),
        };
        let (fill, comp) = (FillRing::map(&g)?, CompRing::map(&g)?);
        let (rx, tx) = (RxRing::map(&g)?, TxRing::map(&g)?);
        bind(
            f,
            ifindex,
            queue,
            cfg.zerocopy,
            l.span > 1 || file.is_some(),
        )?;
        Ok((
            Xsk {
                umem,
                tx,
                comp,
                fill,
                rx,
                spans,
                fd,
            },
            tx_chunks,
            rx_chunks,
        ))
    }

    /// Kick the TX ring (`sendto` with no data): the kernel transmits up to its TX budget.
    /// EAGAIN/EBUSY/ENOBUFS mean "call again"; other errors are real.
    pub(crate) fn kick(&self) -> io::Result<()> {
        // SAFETY: a zero-length sendto with null buffer and address is the documented AF_XDP
        // kick; the socket is open.
        syscall!(sendto(
            self.fd.as_raw_fd(),
            std::ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null(),
            0,
        ))
        .map(drop)
    }

    /// Raise the frames one kick may send (`XDP_MAX_TX_SKB_BUDGET`).
    pub(crate) fn set_tx_budget(&self, frames: u32) -> io::Result<()> {
        socket::setsockopt_int(
            self.fd.as_fd(),
            SOL_XDP,
            XDP_MAX_TX_SKB_BUDGET,
            frames as libc::c_int,
        )
    }

    /// Sleep until a packet may be in the RX ring, at most `timeout`.
    pub(crate) fn wait_rx(&self, timeout: Duration) {
        let _ = socket::poll(self.fd.as_fd(), libc::POLLIN, timeout);
    }
}

impl AsFd for Xsk {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Bind `fd` to a queue (`sg`: with `XDP_USE_SG`, packets spanning several descriptors). A
/// socket closed on this queue a moment ago releases it from a kernel work item
/// (`xp_release_deferred`): until that has run, bind says EBUSY; retry briefly before calling
/// the queue taken.
fn bind(fd: BorrowedFd<'_>, ifindex: u32, queue: u32, zerocopy: bool, sg: bool) -> io::Result<()> {
    // SAFETY: all-zero is a valid sockaddr_xdp; the fields are set below.
    let mut sa: libc::sockaddr_xdp = unsafe { std::mem::zeroed() };
    sa.sxdp_family = libc::AF_XDP as u16;
    sa.sxdp_ifindex = ifindex;
    sa.sxdp_queue_id = queue;
    sa.sxdp_flags = libc::XDP_USE_NEED_WAKEUP
        | if sg { libc::XDP_USE_SG } else { 0 }
        | if zerocopy {
            libc::XDP_ZEROCOPY
        } else {
            libc::XDP_COPY
        };
    let until = Instant::now() + BIND_BUSY_WAIT;
    loop {
        // SAFETY: `sa` is a live sockaddr_xdp and its size is passed.
        let r = syscall!(bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_xdp).cast(),
            std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
        ));
        match r {
            Ok(_) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
}
