//! One AF_XDP queue behind the device seam: the socket and UMEM, our table of free chunks
//! (the completion ring only returns addresses), batched submission, kicks only when
//! something waits for one, bulk completion reaping, stall and interface-loss detection.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use crate::device::{Caps, CsumRequest, RxQueue, TxCounters, TxQueue};
use crate::error::{Error, Result};
use crate::payload::FileVersion;
use crate::sys::xsk::{self, Chunk, RxDesc, TxDesc, Xsk};

/// Descriptors per TX submission.
pub(super) const BATCH: usize = 64;
/// No completion for this long with frames in flight: the queue is stalled.
const STALL: Duration = Duration::from_secs(2);

/// What one queue is opened with.
#[derive(Debug, Clone)]
pub(super) struct QueueConfig {
    /// The network namespace the queue was first opened in (filled in then): a socket
    /// opened again must be made there, whatever thread does it.
    pub(super) netns: Option<std::sync::Arc<std::os::fd::OwnedFd>>,
    pub(super) ifname: String,
    pub(super) ifindex: u32,
    pub(super) queue: u32,
    /// TX ring size and TX chunks.
    pub(super) ring: u32,
    pub(super) frame_size: u32,
    /// Frames per TX buffer (over 1: multi-buffer, `XDP_USE_SG`).
    pub(super) span: u32,
    pub(super) zerocopy: bool,
    /// Chunks given to the fill ring for receiving (0: TX only).
    pub(super) rx_frames: u32,
    /// Ask for TX metadata (checksum offload).
    pub(super) offload: bool,
    /// Largest frame the link carries.
    pub(super) max_frame: usize,
}

/// An AF_XDP socket on one queue, with its frame table.
pub(crate) struct XdpQueue {
    xsk: Xsk,
    caps: Caps,
    ifname: String,
    /// What it was opened with (to open it again with a file mapped).
    cfg: QueueConfig,
    /// The TX budget obtained, if raised.
    budget: Option<u32>,
    /// The file mapped into the UMEM (its version; the length is its size).
    file: Option<FileVersion>,
    free: Vec<Chunk>,
    batch: Vec<TxDesc>,
    rx_descs: Vec<RxDesc>,
    refill: Vec<Chunk>,
    /// A multi-buffer packet being received: its bytes so far (capacity: the largest frame),
    /// and whether it is being skipped (longer than that).
    rx_joined: Vec<u8>,
    rx_skip: bool,
    in_flight: usize,
    /// Frames on the TX ring since the last kick, and how many one kick may send: full
    /// batches are published at once but kicked only this often.
    unkicked: usize,
    kick_every: usize,
    /// `kick_every` when not paced (the TX budget once it is raised).
    unpaced_kick: usize,
    /// `XDP_TX_METADATA` when frames carry TX metadata.
    desc_options: u32,
    last_completion: Instant,
    counters: TxCounters,
}

impl XdpQueue {
    /// Open a socket on a queue. With `cfg.offload`, the UMEM gets a TX metadata area; a
    /// kernel without it (before 6.8) refuses that, and the queue falls back to software
    /// checksums ([`Caps::csum_offload`] says which was obtained).
    pub(super) fn open(cfg: &QueueConfig) -> io::Result<Self> {
        Self::open_with(cfg, None)
    }

    /// Open a queue whose UMEM also maps `file` (a read-write descriptor, its length and
    /// identity) after the frames, in unaligned chunk mode: [`TxQueue::submit_file`] frames
    /// then point at the file's pages.
    pub(super) fn open_with(
        cfg: &QueueConfig,
        file: Option<(&std::fs::File, FileVersion)>,
    ) -> io::Result<Self> {
        let mut xc = xsk::Config {
            layout: xsk::Layout {
                frame_size: cfg.frame_size,
                tx_bufs: cfg.ring,
                span: cfg.span,
                rx_frames: cfg.rx_frames,
                unaligned: cfg.span > 1 || file.is_some(),
            },
            rx_size: cfg.rx_frames.max(64).next_power_of_two(),
            zerocopy: cfg.zerocopy,
            // On a zero-copy queue a descriptor and the TX metadata in front of it must lie
            // in one page: continuation pieces (multi-buffer frames, file pages) start at a
            // page, so there the checksums are made in software.
            tx_metadata: cfg.offload && !(cfg.zerocopy && (cfg.span > 1 || file.is_some())),
        };
        let fd = file.map(|(f, v)| (f.as_fd(), v.2));
        let (xsk, mut chunks, mut rx_chunks) = match Xsk::open(cfg.ifindex, cfg.queue, &xc, fd) {
            Err(e) if cfg.offload && e.raw_os_error() == Some(libc::EINVAL) => {
                xc.tx_metadata = false;
                Xsk::open(cfg.ifindex, cfg.queue, &xc, fd)?
            }
            r => r?,
        };
        let mut xsk = xsk;
        let rx = rx_chunks.len();
        if !rx_chunks.is_empty() && !xsk.fill.give(&mut rx_chunks) {
            return Err(io::Error::other("the fill ring refused the RX frames"));
        }
        let mut free = Vec::with_capacity(chunks.len());
        free.append(&mut chunks);
        Ok(XdpQueue {
            caps: Caps {
                buf_capacity: xsk.umem.capacity(),
                max_frame: cfg.max_frame,
                csum_offload: xc.tx_metadata,
                max_segs: xsk.spans.descs(cfg.max_frame as u32) as usize,
                zero_copy: cfg.zerocopy,
                persistent_bufs: true,
            },
            xsk,
            ifname: cfg.ifname.clone(),
            cfg: QueueConfig {
                netns: match &cfg.netns {
                    Some(n) => Some(n.clone()),
                    None => crate::sys::thread::current_netns()
                        .ok()
                        .map(std::sync::Arc::new),
                },
                ..cfg.clone()
            },
            budget: None,
            file: file.map(|(_, v)| v),
            batch: Vec::with_capacity(BATCH),
            rx_descs: Vec::with_capacity(rx),
            refill: Vec::with_capacity(rx),
            rx_joined: Vec::with_capacity(if cfg.span > 1 && rx > 0 {
                cfg.max_frame
            } else {
                0
            }),
            rx_skip: false,
            free,
            in_flight: 0,
            unkicked: 0,
            kick_every: BATCH,
            unpaced_kick: BATCH,
            desc_options: if xc.tx_metadata {
                libc::XDP_TX_METADATA
            } else {
                0
            },
            last_completion: Instant::now(),
            counters: TxCounters::default(),
        })
    }

    /// Raise the frames one kick may send; kicks then come once per `frames` when unpaced.
    pub(super) fn set_tx_budget(&mut self, frames: u32) -> io::Result<()> {
        self.xsk.set_tx_budget(frames)?;
        self.budget = Some(frames);
        self.unpaced_kick = frames as usize;
        self.kick_every = self.unpaced_kick;
        Ok(())
    }

    /// The same queue opened again with `file` mapped into its UMEM (the TX budget raised
    /// as before). This queue must be dropped first: a queue takes one socket at a time.
    pub(super) fn reopen(
        cfg: &QueueConfig,
        budget: Option<u32>,
        file: Option<(&std::fs::File, FileVersion)>,
    ) -> io::Result<Self> {
        let mut q = Self::open_with(cfg, file)?;
        if let Some(b) = budget {
            q.set_tx_budget(b)?;
        }
        Ok(q)
    }

    /// What this queue was opened with, and its TX budget.
    pub(super) fn config(&self) -> (QueueConfig, Option<u32>) {
        (self.cfg.clone(), self.budget)
    }

    /// Queue one descriptor chain; full batches are published (and kicked) at once.
    #[inline]
    fn push(&mut self, d: TxDesc) -> Result<()> {
        self.batch.push(d);
        if self.batch.len() >= BATCH {
            self.publish();
            if self.unkicked >= self.kick_every {
                self.kick()?;
            }
            self.reap();
        }
        Ok(())
    }

    /// Put the current batch on the TX ring, without a kick.
    fn publish(&mut self) {
        let n = self.batch.len();
        // The ring has room for every TX chunk, so this only fails if the kernel misbehaves;
        // then the batch waits for the next try.
        if n > 0 && self.xsk.tx.submit(&mut self.batch, &mut self.xsk.spans) {
            if self.in_flight == 0 {
                // The stall clock runs from the first frame in flight, not from the last
                // completion before an idle spell.
                self.last_completion = Instant::now();
            }
            self.in_flight += n;
            self.unkicked += n;
            self.counters.published += n as u64;
        }
    }

    /// Whether a kick has something to do: frames published since the last kick, or frames
    /// not completed yet. The latter matters in copy mode too: a kick's `sendto` runs the
    /// pending softirq work on this CPU (on veth, the peer's receive, which frees the skbs
    /// and so completes our frames), so kicking while waiting for completions is what keeps
    /// them coming; measured, leaving it out cost 8 % of file throughput. With nothing
    /// outstanding (an idle TCP connection) there is no kick.
    fn kick_wanted(&self) -> bool {
        self.unkicked > 0 || self.in_flight > 0
    }

    fn kick(&mut self) -> Result<()> {
        self.unkicked = 0;
        if !self.xsk.tx.needs_wakeup() {
            return Ok(());
        }
        match self.xsk.kick() {
            Ok(()) => Ok(()),
            Err(e) => match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::EINTR) => Ok(()),
                _ => {
                    let ifname = &self.ifname;
                    Err(crate::device::tx_error(
                        ifname,
                        || format!("kicking the AF_XDP TX ring of {ifname}"),
                        e,
                    ))
                }
            },
        }
    }

    fn kick_if_wanted(&mut self) -> Result<()> {
        if self.kick_wanted() {
            self.kick()
        } else {
            Ok(())
        }
    }
}

impl AsFd for XdpQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.xsk.as_fd()
    }
}

impl TxQueue for XdpQueue {
    type Buf = Chunk;

    fn caps(&self) -> &Caps {
        &self.caps
    }

    #[inline]
    fn alloc(&mut self) -> Option<Chunk> {
        self.free.pop()
    }

    #[inline]
    fn data<'a>(&'a self, buf: &'a mut Chunk) -> &'a mut [u8] {
        self.xsk.umem.data_mut(buf)
    }

    #[inline]
    fn submit(&mut self, mut buf: Chunk, len: usize, csum: Option<CsumRequest>) -> Result<()> {
        // (A zero-length descriptor is invalid: the kernel would never complete it.)
        if len == 0 || len > self.caps.buf_capacity.min(self.caps.max_frame) {
            self.free.push(buf);
            return Err(Error::io(
                format!("AF_XDP on {}", self.ifname),
                io::Error::other(format!(
                    "frame of {len} bytes over the maximum of {} (buffer {}, link {})",
                    self.caps.buf_capacity.min(self.caps.max_frame),
                    self.caps.buf_capacity,
                    self.caps.max_frame
                )),
            ));
        }
        if self.desc_options != 0 {
            // Every descriptor carries XDP_TX_METADATA: write it even when no checksum is
            // asked for, so a re-used chunk never brings an old request along.
            self.xsk.umem.write_tx_metadata(&mut buf, csum);
        }
        self.push(TxDesc {
            chunk: buf,
            len: len as u32,
            options: self.desc_options,
            ext: None,
        })
    }

    fn mapped_file(&self) -> Option<FileVersion> {
        self.file
    }

    fn submit_file(
        &mut self,
        mut buf: Chunk,
        head: usize,
        off: u64,
        len: usize,
        csum: Option<CsumRequest>,
    ) -> Result<()> {
        let flen = self.file.map_or(0, |v| v.2);
        let room = self.caps.buf_capacity.min(self.caps.max_frame);
        if head == 0 || head > room || head + len > self.caps.max_frame || off + len as u64 > flen {
            self.free.push(buf);
            return Err(Error::io(
                format!("AF_XDP on {}", self.ifname),
                io::Error::other(format!(
                    "frame of {head} + {len} file bytes at {off}: over the link's {} or the mapped file's {flen} bytes",
                    self.caps.max_frame
                )),
            ));
        }
        if self.desc_options != 0 {
            self.xsk.umem.write_tx_metadata(&mut buf, csum);
        }
        self.push(TxDesc {
            chunk: buf,
            len: head as u32,
            options: self.desc_options,
            ext: Some((off, len as u32)),
        })
    }

    fn free(&mut self, buf: Chunk) {
        self.free.push(buf);
    }

    fn flush(&mut self) -> Result<()> {
        self.publish();
        self.kick_if_wanted()
    }

    fn reap(&mut self) -> usize {
        // `free` has room for every TX chunk: nothing completed is left behind.
        let n = self.xsk.comp.take(&mut self.free, &mut self.xsk.spans);
        if n > 0 {
            self.in_flight -= n;
            self.counters.completed += n as u64;
            self.last_completion = Instant::now();
        }
        n
    }

    fn wait_free(&mut self) -> Result<()> {
        let mut spins = 0u32;
        while self.free.is_empty() {
            self.kick_if_wanted()?;
            if self.reap() > 0 {
                return Ok(());
            }
            self.check()?;
            spins += 1;
            if spins > 64 {
                std::thread::sleep(Duration::from_micros(50));
            } else {
                std::hint::spin_loop();
            }
        }
        Ok(())
    }

    fn drain(&mut self) -> Result<()> {
        self.flush()?;
        while self.in_flight > 0 {
            self.kick_if_wanted()?;
            if self.reap() == 0 {
                self.check()?;
                std::thread::sleep(Duration::from_micros(20));
            }
        }
        Ok(())
    }

    fn check(&self) -> Result<()> {
        if self.in_flight > 0 && self.last_completion.elapsed() > STALL {
            let gone = !crate::sys::netdev::if_running(&self.ifname).unwrap_or(false);
            let e = io::Error::other(format!(
                "{} frames not completed in {} s",
                self.in_flight,
                STALL.as_secs()
            ));
            return Err(if gone {
                Error::InterfaceDown {
                    name: self.ifname.clone(),
                    source: e,
                }
            } else {
                Error::io(format!("AF_XDP TX on {} stalled", self.ifname), e)
            });
        }
        Ok(())
    }

    fn abandon(&mut self) {
        let free = &mut self.free;
        free.extend(self.batch.drain(..).map(|d| d.chunk));
    }

    fn counters(&self) -> TxCounters {
        self.counters
    }

    fn set_paced(&mut self, paced: bool) {
        self.kick_every = if paced { BATCH } else { self.unpaced_kick };
    }
}

impl RxQueue for XdpQueue {
    fn recv(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        if self.rx_descs.capacity() == 0 {
            return 0;
        }
        self.xsk.rx.take(&mut self.rx_descs);
        let mut n = 0;
        for d in &self.rx_descs {
            let bytes = self.xsk.umem.rx_data(d);
            if !d.more() && self.rx_joined.is_empty() && !self.rx_skip {
                f(bytes);
                n += 1;
                continue;
            }
            // A packet over several descriptors (`XDP_PKT_CONTD` on all but its last), maybe
            // across calls: joined in `rx_joined`, or skipped if longer than any frame the
            // link carries (there is no room for it, and it is not ours to want).
            if !self.rx_skip && bytes.len() <= self.rx_joined.capacity() - self.rx_joined.len() {
                self.rx_joined.extend_from_slice(bytes);
            } else {
                self.rx_skip = true;
                self.rx_joined.clear();
            }
            if !d.more() {
                if !self.rx_skip {
                    f(&self.rx_joined);
                    n += 1;
                }
                self.rx_joined.clear();
                self.rx_skip = false;
            }
        }
        self.refill
            .extend(self.rx_descs.drain(..).map(RxDesc::into_chunk));
        if !self.refill.is_empty() {
            // The fill ring holds every RX chunk, so there is room for these; if not, they
            // wait for the next call.
            self.xsk.fill.give(&mut self.refill);
        }
        n
    }

    fn wait(&mut self, timeout: Duration) {
        self.xsk.wait_rx(timeout);
    }
}
