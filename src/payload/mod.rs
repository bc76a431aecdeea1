//! Payload elements ([`SendPacketsElement`]), file mappings and up-front validation.
//!
//! Everything a send needs is validated and mapped here, before the first byte goes out:
//! missing files, directories, ranges past the end of a file or buffer and overflowing
//! `offset + count` are typed errors naming the path and the numbers.
//!
//! The result is a [`Payload`]: a list of [`Segment`]s, each a byte range of a memory buffer
//! or of a read-only file mapping ([`MappedFile`]). The kernel path hands file ranges to
//! `sendfile(2)` by descriptor and offset; the frame paths read them into frames with
//! `preadv(2)`. How segments are cut into datagrams is [`crate::sansio::cut`].

mod file;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

pub(crate) use self::file::{open_regular, FileVersion, MappedFile};
use crate::error::{Error, Result};
use crate::sansio::cut::{for_each_range, Extent, Span};

/// Where the bytes of an element come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file opened (and mapped) when the operation starts.
    Path(PathBuf),
    /// A file the caller already opened.
    File(Arc<File>),
    /// A memory buffer (cheaply clonable).
    Buffer(Bytes),
}

/// One element of a [`crate::Connection::send_packets`] call: a file range or a memory
/// buffer, plus an end-of-packet flag (.NET's `SendPacketsElement`).
///
/// `count == 0` means "to the end of the file/buffer".
#[derive(Debug, Clone)]
pub struct SendPacketsElement {
    /// Where the bytes come from.
    pub source: Source,
    /// First byte to send.
    pub offset: u64,
    /// Number of bytes; 0 = to the end.
    pub count: u64,
    /// This element ends a datagram (UDP) or a push boundary (TCP).
    pub end_of_packet: bool,
}

impl SendPacketsElement {
    /// The whole file at `path`.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self::file_range(path, 0, 0)
    }

    /// `count` bytes (0 = to end of file) of the file at `path`, from `offset`.
    pub fn file_range(path: impl Into<PathBuf>, offset: u64, count: u64) -> Self {
        SendPacketsElement {
            source: Source::Path(path.into()),
            offset,
            count,
            end_of_packet: false,
        }
    }

    /// A range of an already opened file (0 = to end of file).
    pub fn open_file(file: impl Into<Arc<File>>, offset: u64, count: u64) -> Self {
        SendPacketsElement {
            source: Source::File(file.into()),
            offset,
            count,
            end_of_packet: false,
        }
    }

    /// A whole memory buffer.
    pub fn buffer(bytes: impl Into<Bytes>) -> Self {
        Self::buffer_range(bytes, 0, 0)
    }

    /// `count` bytes (0 = to the end) of a memory buffer, from `offset`.
    pub fn buffer_range(bytes: impl Into<Bytes>, offset: u64, count: u64) -> Self {
        SendPacketsElement {
            source: Source::Buffer(bytes.into()),
            offset,
            count,
            end_of_packet: false,
        }
    }

    /// Set the end-of-packet flag.
    pub fn end_of_packet(mut self, eop: bool) -> Self {
        self.end_of_packet = eop;
        self
    }
}

/// What a segment's bytes are.
#[derive(Debug, Clone)]
pub(crate) enum SegmentData {
    /// Bytes in memory (already sliced to the segment).
    Mem(Bytes),
    /// A range of a mapped file.
    File {
        /// The mapping.
        file: Arc<MappedFile>,
        /// Offset of the segment in the file.
        offset: u64,
    },
}

/// A validated element: a byte range that is known to exist.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    /// The bytes.
    pub(crate) data: SegmentData,
    /// Length in bytes.
    pub(crate) len: u64,
    /// Ends a datagram / push boundary.
    pub(crate) eop: bool,
}

impl Extent for Segment {
    fn len(&self) -> u64 {
        self.len
    }
    fn ends_packet(&self) -> bool {
        self.eop
    }
}

impl Segment {
    /// A memory segment.
    pub(crate) fn mem(bytes: Bytes, eop: bool) -> Self {
        Segment {
            len: bytes.len() as u64,
            data: SegmentData::Mem(bytes),
            eop,
        }
    }

    /// The segment's bytes in memory (through the mapping for files).
    ///
    /// If another process truncated the file, user-space reads past the new end see zeros
    /// (not SIGBUS, see `sys::sigbus`) and [`MappedFile::read_fault`] becomes true;
    /// syscalls reading it fail with EFAULT.
    pub(crate) fn bytes(&self) -> &[u8] {
        match &self.data {
            SegmentData::Mem(b) => b,
            SegmentData::File { file, offset } => {
                let start = *offset as usize;
                &file.bytes()[start..start + self.len as usize]
            }
        }
    }
}

/// A validated operation payload.
#[derive(Debug, Clone, Default)]
pub(crate) struct Payload {
    /// Segments in send order.
    pub(crate) segments: Vec<Segment>,
}

impl Payload {
    /// Validate and map `elements`. Nothing is sent; every error names path and numbers.
    ///
    /// Elements naming the same file (same device and inode) share one open file and one
    /// mapping, however many ranges of it they send.
    pub(crate) fn from_elements(elements: &[SendPacketsElement]) -> Result<Self> {
        let mut segments = Vec::with_capacity(elements.len());
        let mut files: Vec<((u64, u64), Arc<MappedFile>)> = Vec::new();
        for el in elements {
            segments.push(validate(el, &mut files)?);
        }
        Ok(Payload { segments })
    }

    /// Total bytes.
    pub(crate) fn len(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }
}

fn check_range(what: impl FnOnce() -> String, offset: u64, count: u64, size: u64) -> Result<u64> {
    let past = || Error::RangePastEof {
        what: what(),
        offset,
        count,
        size,
    };
    if offset > size {
        return Err(past());
    }
    let count = if count == 0 { size - offset } else { count };
    match offset.checked_add(count) {
        Some(end) if end <= size => Ok(count),
        _ => Err(past()),
    }
}

/// The mapping of `key` (device, inode) from `files`, or a new one from `open`.
fn shared(
    files: &mut Vec<((u64, u64), Arc<MappedFile>)>,
    key: Option<(u64, u64)>,
    open: impl FnOnce() -> Result<MappedFile>,
) -> Result<Arc<MappedFile>> {
    if let Some(f) = key.and_then(|k| files.iter().find(|(fk, _)| *fk == k)) {
        return Ok(f.1.clone());
    }
    let f = Arc::new(open()?);
    if let Some(k) = key {
        files.push((k, f.clone()));
    }
    Ok(f)
}

fn validate(
    el: &SendPacketsElement,
    files: &mut Vec<((u64, u64), Arc<MappedFile>)>,
) -> Result<Segment> {
    use std::os::unix::fs::MetadataExt;
    let id = |m: std::fs::Metadata| (m.dev(), m.ino());
    let (file, path) = match &el.source {
        Source::Buffer(b) => {
            let count = check_range(|| "buffer".into(), el.offset, el.count, b.len() as u64)?;
            let start = el.offset as usize;
            let bytes = b.slice(start..start + count as usize);
            return Ok(Segment::mem(bytes, el.end_of_packet));
        }
        Source::Path(p) => {
            let key = std::fs::metadata(p).ok().map(id);
            (shared(files, key, || MappedFile::open(p))?, p.clone())
        }
        Source::File(f) => {
            let path = std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd()))
                .unwrap_or_else(|_| PathBuf::from(format!("<fd {}>", f.as_raw_fd())));
            let key = f.metadata().ok().map(id);
            (
                shared(files, key, || {
                    MappedFile::from_file(f.clone(), path.clone())
                })?,
                path,
            )
        }
    };
    let count = check_range(
        || path.display().to_string(),
        el.offset,
        el.count,
        file.size(),
    )?;
    Ok(Segment {
        data: SegmentData::File {
            file,
            offset: el.offset,
        },
        len: count,
        eop: el.end_of_packet,
    })
}

/// Keeps resident memory independent of the file size: drops the mapping's pages of what
/// was sent, in steps of [`Releaser::STEP`] and one step behind (another queue may still be
/// reading there; if so it faults the page back in from the page cache).
#[derive(Debug, Default)]
pub(crate) struct Releaser {
    seg: usize,
    done: u64,
}

impl Releaser {
    /// Release granularity.
    pub(crate) const STEP: u64 = 2 << 20;

    /// The sender has reached offset `off` of segment `seg`.
    #[inline]
    pub(crate) fn advance(&mut self, segs: &[Segment], seg: usize, off: u64) {
        if seg != self.seg {
            self.seg = seg;
            self.done = 0;
        }
        if off >= self.done + 2 * Self::STEP {
            if let SegmentData::File { file, offset } = &segs[seg].data {
                file.release(offset + self.done, Self::STEP);
            }
            self.done += Self::STEP;
        }
    }
}

/// Calls `f` with each piece of `span` in order (a datagram may cover several segments).
pub(crate) fn for_each_piece<'a>(segs: &'a [Segment], span: Span, mut f: impl FnMut(&'a [u8])) {
    for_each_range(segs, span, |s, off, len| {
        f(&s.bytes()[off as usize..off as usize + len])
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sansio::cut::{Boundaries, Datagrams};
    use std::io::Write;

    #[test]
    fn pieces_cover_spans() {
        let s = [
            Segment::mem(Bytes::from_static(b"abc"), false),
            Segment::mem(Bytes::from_static(b"defg"), true),
            Segment::mem(Bytes::from_static(b"hi"), false),
        ];
        let mut out = Vec::new();
        for span in Datagrams::new(&s, Boundaries::Size(3)) {
            let mut d = Vec::new();
            for_each_piece(&s, span, |p| d.extend_from_slice(p));
            out.push(String::from_utf8(d).unwrap());
        }
        assert_eq!(out, ["abc", "def", "g", "hi"]);
    }

    #[test]
    fn validation_errors_name_things() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        match Payload::from_elements(&[SendPacketsElement::file(&missing)]) {
            Err(Error::FileNotFound { path }) => assert_eq!(path, missing),
            other => panic!("{other:?}"),
        }
        match Payload::from_elements(&[SendPacketsElement::file(dir.path())]) {
            Err(Error::NotAFile { kind, .. }) => assert_eq!(kind, "directory"),
            other => panic!("{other:?}"),
        }
        let f = dir.path().join("f");
        std::fs::File::create(&f)
            .unwrap()
            .write_all(&[1u8; 100])
            .unwrap();
        match Payload::from_elements(&[SendPacketsElement::file_range(&f, 90, 11)]) {
            Err(Error::RangePastEof {
                offset,
                count,
                size,
                ..
            }) => assert_eq!((offset, count, size), (90, 11, 100)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Payload::from_elements(&[SendPacketsElement::file_range(&f, 101, 0)]),
            Err(Error::RangePastEof { .. })
        ));
        assert!(matches!(
            Payload::from_elements(&[SendPacketsElement::file_range(&f, 1, u64::MAX)]),
            Err(Error::RangePastEof { .. })
        ));
        assert!(matches!(
            Payload::from_elements(&[SendPacketsElement::buffer_range(vec![0u8; 4], 2, 3)]),
            Err(Error::RangePastEof { .. })
        ));
        // count 0 = to end; offset == size is an empty, valid range.
        let p = Payload::from_elements(&[
            SendPacketsElement::file_range(&f, 10, 0),
            SendPacketsElement::file_range(&f, 100, 0),
            SendPacketsElement::buffer_range(vec![0u8; 4], 1, 0),
        ])
        .unwrap();
        assert_eq!(p.segments[0].len, 90);
        assert_eq!(p.segments[1].len, 0);
        assert_eq!(p.segments[2].len, 3);
        assert_eq!(p.len(), 93);
    }

    #[test]
    fn ranges_of_one_file_share_one_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, [5u8; 1000]).unwrap();
        let fh = Arc::new(std::fs::File::open(&f).unwrap());
        let mut els: Vec<SendPacketsElement> = (0..100)
            .map(|i| SendPacketsElement::file_range(&f, i * 10, 10))
            .collect();
        els.push(SendPacketsElement::open_file(fh, 0, 1));
        let p = Payload::from_elements(&els).unwrap();
        let maps: Vec<*const MappedFile> = p
            .segments
            .iter()
            .map(|s| match &s.data {
                SegmentData::File { file, .. } => Arc::as_ptr(file),
                SegmentData::Mem(_) => std::ptr::null(),
            })
            .collect();
        assert!(maps.iter().all(|m| *m == maps[0]));
        assert_eq!(p.len(), 1001);
    }

    #[test]
    fn open_file_element_and_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("e");
        std::fs::File::create(&f).unwrap();
        let p = Payload::from_elements(&[SendPacketsElement::file(&f)]).unwrap();
        assert_eq!(p.len(), 0);
        assert!(p.segments[0].bytes().is_empty());
        std::fs::write(&f, b"hello").unwrap();
        let fh = std::fs::File::open(&f).unwrap();
        let p = Payload::from_elements(&[SendPacketsElement::open_file(fh, 1, 3)]).unwrap();
        assert_eq!(p.segments[0].bytes(), b"ell");
    }
}
