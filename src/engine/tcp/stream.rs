//! The bytes of one operation, addressed by TCP stream offset: the state machine says which
//! range a segment carries, this says which pieces of which segments that is.

use std::sync::Arc;

use crate::engine::zc::FileRange;
use crate::error::Result;
use crate::payload::{MappedFile, Segment, SegmentData};
use crate::sansio::cut::Span;

/// The segments of an operation laid out from stream offset `base`.
pub(super) struct Stream<'a> {
    pub(super) segs: &'a [Segment],
    /// Stream offset where each segment starts.
    starts: Vec<u64>,
    /// Stream offset of this operation's first byte.
    pub(super) base: u64,
    files: Vec<&'a Arc<MappedFile>>,
    /// Sent from the file's own pages (one file range the device has mapped), not read.
    pub(super) zero_copy: Option<FileRange<'a>>,
}

impl<'a> Stream<'a> {
    pub(super) fn new(segs: &'a [Segment], base: u64) -> Self {
        let mut at = base;
        let mut files: Vec<&Arc<MappedFile>> = vec![];
        let starts = segs
            .iter()
            .map(|s| {
                if let SegmentData::File { file, .. } = &s.data {
                    if !files.iter().any(|f| Arc::ptr_eq(f, file)) {
                        files.push(file);
                    }
                }
                let a = at;
                at += s.len;
                a
            })
            .collect();
        Stream {
            segs,
            starts,
            base,
            files,
            zero_copy: None,
        }
    }

    /// Total bytes.
    pub(super) fn len(&self) -> u64 {
        self.segs.iter().map(|s| s.len).sum()
    }

    /// The pieces of `[off, off + len)`.
    pub(super) fn span(&self, off: u64, len: usize) -> Option<Span> {
        if off < self.base {
            return None;
        }
        let i = self.starts.partition_point(|&s| s <= off).checked_sub(1)?;
        Some(Span {
            seg: i,
            off: off - self.starts[i],
            len: len as u64,
        })
    }

    /// An error if a file read through its mapping hit a truncated page.
    pub(super) fn check_truncation(&self) -> Result<()> {
        for f in &self.files {
            if f.read_fault() {
                return Err(f.truncated(f.size()));
            }
        }
        Ok(())
    }
}
