//! The UDP sender's zero-copy road: the payload is one range of a file the device has mapped
//! ([`TxQueue::mapped_file`]), so each datagram is its headers (and xsend header) written into
//! a buffer, followed by the file's own bytes ([`TxQueue::submit_file`]): nothing is copied in
//! user space, and nothing is read unless the checksum is made here (zero-copy queues with
//! descriptors that start at pages cannot offload it).
//!
//! Truncation: see [`FileRange::check`], around every batch.

use arrayvec::ArrayVec;

use crate::device::TxQueue;
use crate::engine::udp::Share;
use crate::engine::zc::FileRange;
use crate::engine::{Job, OpCtx, Totals};
use crate::error::{Error, Result};
use crate::report::SendStats;
use crate::sansio::cut::Boundaries;
use crate::sansio::framer::UdpFramer;
use crate::sansio::wire::xsend;
use crate::sys::thread::realtime_ns;

/// Datagrams per batch (one size check before and after each).
const BATCH: usize = 64;

/// Send this queue's share of the job, every datagram pointing at the file's pages.
#[allow(clippy::too_many_arguments)]
pub(crate) fn send_share_zc<D: TxQueue>(
    dev: &mut D,
    framer: &mut UdpFramer,
    job: &Job,
    bounds: Boundaries,
    q: u64,
    nq: u64,
    ctx: &OpCtx,
    totals: &Totals,
    range: &FileRange<'_>,
) -> Result<SendStats> {
    let hlen = job.header_len() as usize;
    let head = framer.header_len() + hlen;
    let csum = framer.checksum_request();
    let sealed = range.sealed();
    let mut share = Share::new(&job.payload.segments, bounds, q, nq);
    let mut stats = SendStats::default();
    let mut reported = SendStats::default();
    let mut hdr = [0u8; xsend::HEADER_LEN];
    let mut batch: ArrayVec<_, BATCH> = ArrayVec::new();
    loop {
        batch.clear();
        batch.extend(share.by_ref().take(BATCH));
        let Some(end) = batch
            .iter()
            .map(|(s, _, _)| range.base + s.off + s.len)
            .max()
        else {
            break;
        };
        range.check(sealed, end)?;
        let ts = realtime_ns();
        for &(span, seq, off) in &batch {
            let mut buf = dev.alloc_wait()?;
            if let Some(flow) = job.chunk_header {
                xsend::Repr {
                    flags: 0,
                    flow,
                    seq,
                    offset: off,
                    timestamp_ns: ts,
                }
                .emit(&mut hdr);
            }
            let len = span.len as usize;
            let r = framer.emit(dev.data(&mut buf), hlen + len, |w| {
                w.put(&hdr[..hlen]);
                // The file's bytes follow in their own descriptors: not copied, read only
                // if the checksum is made here.
                range.payload(w, span.off, len);
            });
            if let Err(e) = r {
                dev.free(buf);
                return Err(Error::from(e));
            }
            dev.submit_file(buf, head, range.base + span.off, len, csum)?;
            stats.packets += 1;
            stats.bytes += span.len;
        }
        // On the wire (a copy-mode kick copies synchronously), then checked again.
        dev.flush()?;
        range.check(sealed, end)?;
        range.check_read()?;
        let (b, n) = totals.add(stats, &mut reported);
        ctx.progress(b, n);
        ctx.check_cancel(b)?;
    }
    dev.drain()?;
    // Frames still queued at the last batch's check left in the drain.
    range.check_all()?;
    totals.add(stats, &mut reported);
    Ok(stats)
}
