//! The UDP sender over any device: datagram boundaries from the job (end-of-packet flags or a
//! send size), the xsend chunk header and end markers for chunked sends, one thread per
//! queue, each sending its share (`index % queues`).
//!
//! Per batch of up to [`BATCH`] datagrams: take a buffer each, read every file piece of the
//! batch straight into its buffer ([`FileReads`]), then write headers, memory pieces and
//! checksums (over bytes now hot in cache) and submit. Nothing is allocated per datagram.

use crate::device::{FileMapper, Port, TxQueue};
use crate::engine::fill::{write_payload, FileReads};
use crate::engine::udp_zc::send_share_zc;
use crate::engine::zc::{FileRange, ZeroCopy};
use crate::engine::{on_threads, Job, OpCtx, Totals, Transport};
use crate::error::{Error, Result};
use crate::options::{PayloadChoice, TransmitFlags};
use crate::payload::Segment;
use crate::report::{BackendInfo, SendStats};
use crate::sansio::cut::{Boundaries, Datagrams, Span};
use crate::sansio::framer::UdpFramer;
use crate::sansio::wire::xsend;
use crate::sys::thread::realtime_ns;

/// Datagrams per batch.
const BATCH: usize = 64;
/// End-of-stream markers after a chunked send (UDP may drop one).
const END_MARKERS: usize = 3;

/// A UDP "connection" over a device's queues.
pub(crate) struct UdpTransport<D> {
    port: Port<D>,
    framers: Vec<UdpFramer>,
    max_payload: u64,
    usable: bool,
    /// Maps a file into the queues for zero-copy payloads, where the device can.
    files: Option<Box<dyn FileMapper<D>>>,
    payload: PayloadChoice,
}

impl<D: TxQueue> UdpTransport<D> {
    /// The sender over an opened port: one framer per queue (its own source port).
    pub(crate) fn new(port: Port<D>) -> Self {
        let framers: Vec<UdpFramer> = port
            .flows
            .iter()
            .zip(&port.queues)
            .map(|(f, q)| {
                let mut fr = UdpFramer::new(f, port.mtu);
                fr.set_checksum_offload(q.caps().csum_offload);
                fr
            })
            .collect();
        UdpTransport {
            max_payload: framers[0].max_payload() as u64,
            framers,
            port,
            usable: true,
            files: None,
            payload: PayloadChoice::Copy,
        }
    }

    /// Send file payloads without a copy where `files` can map them, as `choice` says.
    pub(crate) fn with_files(
        mut self,
        files: Box<dyn FileMapper<D>>,
        choice: PayloadChoice,
    ) -> Self {
        self.files = Some(files);
        self.payload = choice;
        self
    }

    /// The file range this job can be sent from without a copy, or `None` (the report says
    /// which and why).
    fn zero_copy<'j>(&mut self, job: &'j Job) -> Result<Option<FileRange<'j>>> {
        let mut zc = ZeroCopy {
            choice: self.payload,
            files: self.files.as_deref_mut(),
            queues: &mut self.port.queues,
            info: &mut self.port.info,
        };
        let r = zc.range(job);
        if r.is_err() && self.port.queues.is_empty() {
            // The queues could not be opened again: nothing can be sent any more.
            self.usable = false;
        }
        r
    }

    /// The port (tests look at the fake device's frames).
    #[cfg(test)]
    pub(crate) fn port(&self) -> &Port<D> {
        &self.port
    }

    fn send_inner(&mut self, job: &Job, ctx: &OpCtx) -> Result<SendStats> {
        let bounds = job.check_datagrams(self.max_payload)?;
        let zc = self.zero_copy(job)?;
        // Queues opened again with a file may make checksums otherwise.
        for (f, q) in self.framers.iter_mut().zip(&self.port.queues) {
            f.set_checksum_offload(q.caps().csum_offload);
        }
        let nq = self.port.queues.len() as u64;
        let totals = Totals::default();
        let shares: Vec<_> = self.port.queues.iter_mut().zip(&mut self.framers).collect();
        let results = on_threads(shares, |q, (dev, framer)| match &zc {
            Some(range) => {
                send_share_zc(dev, framer, job, bounds, q as u64, nq, ctx, &totals, range)
            }
            None => send_share(dev, framer, job, bounds, q as u64, nq, ctx, &totals),
        });
        let mut total = SendStats::default();
        for r in results {
            let s = r?;
            total.bytes += s.bytes;
            total.packets += s.packets;
        }
        if let Some(flow) = job.chunk_header {
            let end = xsend::Repr {
                flags: xsend::FLAG_END,
                flow,
                seq: total.packets,
                offset: total.bytes,
                timestamp_ns: realtime_ns(),
            };
            let mut h = [0u8; xsend::HEADER_LEN];
            end.emit(&mut h);
            let (dev, framer) = (&mut self.port.queues[0], &mut self.framers[0]);
            for _ in 0..END_MARKERS {
                let mut buf = dev.alloc_wait()?;
                let len = framer
                    .emit(dev.data(&mut buf), h.len(), |w| w.put(&h))
                    .map_err(Error::from);
                match len {
                    Ok(len) => dev.submit(buf, len, framer.checksum_request())?,
                    Err(e) => {
                        dev.free(buf);
                        return Err(e);
                    }
                }
            }
            dev.drain()?;
        }
        ctx.progress(total.bytes, total.packets);
        if job.flags.contains(TransmitFlags::DISCONNECT) {
            self.usable = false;
        }
        Ok(total)
    }
}

/// One queue's datagrams of a job: every `nq`-th from the `q`-th on, each with its sequence
/// number and offset in the whole stream.
pub(crate) struct Share<'a> {
    spans: Datagrams<'a, Segment>,
    q: u64,
    nq: u64,
    turn: u64,
    index: u64,
    stream_off: u64,
}

impl<'a> Share<'a> {
    pub(crate) fn new(segs: &'a [Segment], bounds: Boundaries, q: u64, nq: u64) -> Self {
        Share {
            spans: Datagrams::new(segs, bounds),
            q,
            nq,
            turn: 0,
            index: 0,
            stream_off: 0,
        }
    }
}

impl Iterator for Share<'_> {
    /// The datagram, its sequence number, its stream offset.
    type Item = (Span, u64, u64);

    fn next(&mut self) -> Option<Self::Item> {
        for span in self.spans.by_ref() {
            let mine = self.turn == self.q;
            self.turn = if self.turn + 1 == self.nq {
                0
            } else {
                self.turn + 1
            };
            let (seq, off) = (self.index, self.stream_off);
            self.index += 1;
            self.stream_off += span.len;
            if mine {
                return Some((span, seq, off));
            }
        }
        None
    }
}

/// One datagram of a batch: its buffer and its place in the stream.
struct Slot<B> {
    buf: B,
    span: Span,
    seq: u64,
    off: u64,
}

/// Send this queue's share (`index % nq == q`) of the job's datagrams.
#[allow(clippy::too_many_arguments)]
pub(crate) fn send_share<D: TxQueue>(
    dev: &mut D,
    framer: &mut UdpFramer,
    job: &Job,
    bounds: Boundaries,
    q: u64,
    nq: u64,
    ctx: &OpCtx,
    totals: &Totals,
) -> Result<SendStats> {
    let segs = &job.payload.segments;
    let hlen = job.header_len() as usize;
    let at = framer.header_len() + hlen;
    let mut stats = SendStats::default();
    let mut reported = SendStats::default();
    let mut share = Share::new(segs, bounds, q, nq);
    // Per-operation buffers: the per-datagram work below allocates nothing.
    let mut slots: Vec<Slot<D::Buf>> = Vec::with_capacity(BATCH);
    let mut reads = FileReads::with_capacity(BATCH * 2);
    let mut hdr = [0u8; xsend::HEADER_LEN];
    let csum = framer.checksum_request();
    let result = 'batches: loop {
        reads.clear();
        // 1. This queue's next datagrams, a buffer each, their file pieces planned.
        while slots.len() < BATCH {
            let Some((span, seq, off)) = share.next() else {
                break;
            };
            let buf = match dev.alloc_wait() {
                Ok(b) => b,
                Err(e) => break 'batches Err(e),
            };
            reads.plan(segs, span, slots.len(), at);
            slots.push(Slot {
                buf,
                span,
                seq,
                off,
            });
        }
        if slots.is_empty() {
            break Ok(());
        }
        // 2. File bytes into the buffers: one preadv per contiguous run.
        let mut data: arrayvec::ArrayVec<&mut [u8], BATCH> =
            slots.iter_mut().map(|s| dev.data(&mut s.buf)).collect();
        if let Err(e) = reads.read(&mut data) {
            break Err(e);
        }
        drop(data);
        // 3. Headers, memory pieces, checksums; submit.
        let ts = realtime_ns();
        let mut failed = None;
        for mut s in slots.drain(..) {
            if failed.is_some() {
                dev.free(s.buf);
                continue;
            }
            if let Some(flow) = job.chunk_header {
                xsend::Repr {
                    flags: 0,
                    flow,
                    seq: s.seq,
                    offset: s.off,
                    timestamp_ns: ts,
                }
                .emit(&mut hdr);
            }
            let len = framer.emit(dev.data(&mut s.buf), hlen + s.span.len as usize, |w| {
                w.put(&hdr[..hlen]);
                write_payload(w, segs, s.span);
            });
            match len.map_err(Error::from) {
                Ok(len) => {
                    if let Err(e) = dev.submit(s.buf, len, csum) {
                        failed = Some(e);
                    } else {
                        stats.packets += 1;
                        stats.bytes += s.span.len;
                    }
                }
                Err(e) => {
                    dev.free(s.buf);
                    failed = Some(e);
                }
            }
        }
        if let Some(e) = failed {
            break Err(e);
        }
        // Once per batch: progress over all queues, cancellation.
        let (b, n) = totals.add(stats, &mut reported);
        ctx.progress(b, n);
        if let Err(e) = ctx.check_cancel(b) {
            break Err(e);
        }
    };
    // Buffers of a batch that failed go back to the queue.
    for s in slots.drain(..) {
        dev.free(s.buf);
    }
    result?;
    dev.drain()?;
    totals.add(stats, &mut reported);
    Ok(stats)
}

impl<D: TxQueue + 'static> Transport for UdpTransport<D> {
    fn info(&self) -> &BackendInfo {
        &self.port.info
    }

    fn validate(&self, job: &Job) -> Result<()> {
        job.check_datagrams(self.max_payload).map(drop)
    }

    fn send(&mut self, job: &Job, ctx: &OpCtx) -> Result<SendStats> {
        let r = self.send_inner(job, ctx);
        if r.is_err() {
            // Frames of a failed send may still wait in a batch: take their buffers back.
            for q in &mut self.port.queues {
                q.abandon();
            }
            if matches!(r, Err(Error::InterfaceDown { .. })) {
                self.usable = false;
            }
        }
        r
    }

    fn usable(&self) -> bool {
        self.usable
    }
}
