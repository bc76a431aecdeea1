//! File bytes into a batch of frames: the pieces of a batch are planned first, then read by
//! the kernel straight into the frames with one scattered `preadv(2)` per contiguous run of
//! one file (the one copy, page cache → frame, with no page faults in user space; a file
//! truncated meanwhile is a short read, reported as `FileTruncated`). The UDP sender and the
//! TCP driver both fill their batches through this.

use std::io::IoSliceMut;
use std::sync::Arc;

use arrayvec::ArrayVec;

use crate::error::Result;
use crate::payload::{MappedFile, Segment, SegmentData};
use crate::sansio::cut::{for_each_range, Span};
use crate::sansio::framer::PayloadWriter;

/// Most buffers one batch may have.
pub(crate) const MAX_BATCH: usize = 256;
/// Iovecs gathered per `preadv` (a longer run is read in several calls).
const IOVS: usize = 128;

/// One file piece of a batch: `len` bytes at file offset `off` into buffer `buf` at `at`.
#[derive(Clone, Copy)]
struct Piece<'j> {
    buf: usize,
    at: usize,
    len: usize,
    file: &'j Arc<MappedFile>,
    off: u64,
}

/// The file pieces of one batch (reused batch after batch: no allocation per frame).
pub(crate) struct FileReads<'j> {
    pieces: Vec<Piece<'j>>,
}

impl<'j> FileReads<'j> {
    /// Room for `n` pieces before the list grows.
    pub(crate) fn with_capacity(n: usize) -> Self {
        FileReads {
            pieces: Vec::with_capacity(n),
        }
    }

    /// Forget the last batch.
    pub(crate) fn clear(&mut self) {
        self.pieces.clear();
    }

    /// Plan the file pieces of `span` of `segs`, whose bytes go into batch buffer `buf` from
    /// offset `at` on. Buffers are planned in increasing order, and pieces within one buffer
    /// in increasing position.
    pub(crate) fn plan(&mut self, segs: &'j [Segment], span: Span, buf: usize, at: usize) {
        let mut pos = at;
        for_each_range(segs, span, |seg, o, len| {
            if let SegmentData::File { file, offset } = &seg.data {
                self.pieces.push(Piece {
                    buf,
                    at: pos,
                    len,
                    file,
                    off: offset + o,
                });
            }
            pos += len;
        });
    }

    /// Read every planned piece into `bufs` (the batch's buffers, by index). `bufs` is used
    /// up: what is left in it afterwards are the remainders after the last piece of each.
    pub(crate) fn read(&self, bufs: &mut [&mut [u8]]) -> Result<()> {
        assert!(bufs.len() <= MAX_BATCH, "batch of {} buffers", bufs.len());
        // How far into each buffer the remainder in `bufs` starts.
        let mut base = [0usize; MAX_BATCH];
        let mut iovs: ArrayVec<IoSliceMut<'_>, IOVS> = ArrayVec::new();
        // The run being gathered: its file, where it starts and how many bytes it has.
        let mut run: Option<(&Arc<MappedFile>, u64, usize)> = None;
        for p in &self.pieces {
            let joins = matches!(run, Some((f, off, n)) if Arc::ptr_eq(f, p.file) && off + n as u64 == p.off);
            if !joins || iovs.is_full() {
                if let Some((f, off, n)) = run.take() {
                    f.read_exact_at(off, n, &mut iovs)?;
                    iovs.clear();
                }
                run = Some((p.file, p.off, 0));
            }
            let rest = std::mem::take(&mut bufs[p.buf]);
            let (_, tail) = rest.split_at_mut(p.at - base[p.buf]);
            let (dst, tail) = tail.split_at_mut(p.len);
            bufs[p.buf] = tail;
            base[p.buf] = p.at + p.len;
            iovs.push(IoSliceMut::new(dst));
            if let Some((_, _, n)) = run.as_mut() {
                *n += p.len;
            }
        }
        if let Some((f, off, n)) = run {
            f.read_exact_at(off, n, &mut iovs)?;
        }
        Ok(())
    }
}

/// Write the payload of `span` through `w`: memory pieces are copied, file pieces are
/// already in place (read by [`FileReads::read`]).
#[inline]
pub(crate) fn write_payload(w: &mut PayloadWriter<'_>, segs: &[Segment], span: Span) {
    for_each_range(segs, span, |seg, o, len| match &seg.data {
        SegmentData::Mem(b) => w.put(&b[o as usize..o as usize + len]),
        SegmentData::File { .. } => w.in_place(len),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::{Payload, SendPacketsElement};
    use crate::sansio::cut::{Boundaries, Datagrams};

    #[test]
    fn pieces_of_a_batch_land_in_their_buffers() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let da: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        let db: Vec<u8> = (0..3000u32).map(|i| (i * 13 + 1) as u8).collect();
        std::fs::write(&a, &da).unwrap();
        std::fs::write(&b, &db).unwrap();
        let p = Payload::from_elements(&[
            SendPacketsElement::file_range(&a, 100, 2000),
            SendPacketsElement::buffer(&b"mem"[..]),
            SendPacketsElement::file(&b),
            SendPacketsElement::file_range(&a, 0, 10),
        ])
        .unwrap();
        let segs = &p.segments;
        let spans: Vec<Span> = Datagrams::new(segs, Boundaries::Size(700)).collect();
        let mut bufs = vec![vec![0u8; 800]; spans.len()];
        let mut reads = FileReads::with_capacity(8);
        for (i, s) in spans.iter().enumerate() {
            reads.plan(segs, *s, i, 50);
        }
        let mut slices: Vec<&mut [u8]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
        reads.read(&mut slices).unwrap();
        // Every buffer holds its datagram's bytes (file pieces read, memory left to the
        // writer: compare the file pieces only).
        let stream: Vec<u8> = [&da[100..2100], b"mem", &db[..], &da[..10]].concat();
        let mut off = 0usize;
        for (i, s) in spans.iter().enumerate() {
            let got = &bufs[i][50..50 + s.len as usize];
            let want = &stream[off..off + s.len as usize];
            for k in 0..s.len as usize {
                let in_mem = (2000..2003).contains(&(off + k));
                if !in_mem {
                    assert_eq!(got[k], want[k], "datagram {i} byte {k}");
                }
            }
            off += s.len as usize;
        }
        // A truncated file is a typed error, not zeros.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&b)
            .unwrap()
            .set_len(100)
            .unwrap();
        let mut slices: Vec<&mut [u8]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
        match reads.read(&mut slices) {
            Err(crate::Error::FileTruncated { needed, size, .. }) => {
                assert_eq!(size, 100);
                assert!(needed > 100);
            }
            other => panic!("{other:?}"),
        }
    }
}
