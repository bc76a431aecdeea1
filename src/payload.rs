//! Payload elements (`SendPacketsElement`), file mappings and up-front validation.
//!
//! Everything a send needs is validated and mapped here, before the first byte goes out:
//! missing files, directories, ranges past the end of a file or buffer and overflowing
//! `offset + count` are typed errors naming the path and the numbers.
//!
//! The result is a [`Payload`]: a list of [`Segment`]s, each a byte range of a memory buffer
//! or of a read-only file mapping (memmap2). The kernel backend hands file ranges to
//! `sendfile(2)` by descriptor and offset; datagram paths read them through the mapping.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use memmap2::Mmap;

use crate::error::{Error, Result};

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

/// A read-only file with its mapping, sized once at validation time.
#[derive(Debug)]
pub struct MappedFile {
    path: PathBuf,
    file: Arc<File>,
    map: Option<Mmap>,
    size: u64,
    guard: Option<crate::sigbus::Guard>,
}

impl MappedFile {
    /// Open and map `path` read-only.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| open_error(path, e))?;
        Self::from_file(Arc::new(file), path.to_path_buf())
    }

    /// Map an already opened file; `path` is only used in messages.
    pub fn from_file(file: Arc<File>, path: PathBuf) -> Result<Self> {
        let meta = file.metadata().map_err(|e| Error::FileIo {
            path: path.clone(),
            source: e,
        })?;
        let ft = meta.file_type();
        if !ft.is_file() {
            let kind = if ft.is_dir() {
                "directory"
            } else if ft.is_fifo() {
                "fifo"
            } else if ft.is_socket() {
                "socket"
            } else if ft.is_char_device() {
                "character device"
            } else if ft.is_block_device() {
                "block device"
            } else {
                "not a regular file"
            };
            return Err(Error::NotAFile { path, kind });
        }
        let size = meta.len();
        let map = if size == 0 {
            None
        } else {
            // SAFETY: the mapping is read-only and private to this object. Another process may
            // still truncate or rewrite the file: the kernel paths read it with copy_from_user
            // (EFAULT, not SIGBUS, past the end), user-space reads are covered by the SIGBUS
            // guard registered below, and both are reported as `FileTruncated`.
            let m = unsafe { Mmap::map(&*file) }.map_err(|e| Error::FileIo {
                path: path.clone(),
                source: e,
            })?;
            // Sequential read-ahead helps both sendfile and the copy into frames.
            let _ = m.advise(memmap2::Advice::Sequential);
            Some(m)
        };
        let guard = map
            .as_ref()
            .map(|m| crate::sigbus::register(m.as_ptr(), m.len()));
        Ok(MappedFile {
            path,
            file,
            map,
            size,
            guard,
        })
    }

    /// Size of the file when it was mapped.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Path (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The mapped bytes (empty for an empty file).
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// True if a user-space read through the mapping hit a page past the file's end (the
    /// file was truncated; the read saw zeros, see [`crate::sigbus`]).
    pub fn read_fault(&self) -> bool {
        self.guard.as_ref().is_some_and(crate::sigbus::truncated)
    }

    /// Drop this process's page-table entries for `[offset, offset + len)` (page-aligned
    /// inwards) so sent data stops counting as resident. The bytes stay in the page cache;
    /// a later read faults them back in (shared file mapping: never zeros).
    pub fn release(&self, offset: u64, len: u64) {
        let Some(m) = &self.map else { return };
        const PAGE: u64 = 4096;
        let start = offset.div_ceil(PAGE) * PAGE;
        let end = ((offset + len).min(m.len() as u64) / PAGE) * PAGE;
        if end > start {
            // SAFETY: the range lies inside our own read-only shared file mapping;
            // MADV_DONTNEED on it only drops page-table entries.
            unsafe {
                libc::madvise(
                    m.as_ptr().add(start as usize) as *mut libc::c_void,
                    (end - start) as usize,
                    libc::MADV_DONTNEED,
                );
            }
        }
    }

    /// Current size on disk (to tell a truncation from other failures).
    pub fn current_size(&self) -> u64 {
        self.file.metadata().map(|m| m.len()).unwrap_or(0)
    }

    /// The error to report when a read of `[.., needed)` failed or came back short.
    pub fn truncated(&self, needed: u64) -> Error {
        Error::FileTruncated {
            path: self.path.clone(),
            needed,
            size: self.current_size(),
        }
    }
}

fn open_error(path: &Path, e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::NotFound => Error::FileNotFound {
            path: path.to_path_buf(),
        },
        io::ErrorKind::PermissionDenied => Error::PermissionDenied {
            path: path.to_path_buf(),
        },
        _ => Error::FileIo {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

/// What a segment's bytes are.
#[derive(Debug, Clone)]
pub enum SegmentData {
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
pub struct Segment {
    /// The bytes.
    pub data: SegmentData,
    /// Length in bytes.
    pub len: u64,
    /// Ends a datagram / push boundary.
    pub eop: bool,
}

impl Segment {
    /// A memory segment.
    pub fn mem(bytes: Bytes, eop: bool) -> Self {
        Segment {
            len: bytes.len() as u64,
            data: SegmentData::Mem(bytes),
            eop,
        }
    }

    /// The segment's bytes in memory (through the mapping for files).
    ///
    /// If another process truncated the file, user-space reads past the new end see zeros
    /// (not SIGBUS, see [`crate::sigbus`]) and [`MappedFile::read_fault`] becomes true;
    /// syscalls reading it fail with EFAULT.
    pub fn bytes(&self) -> &[u8] {
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
pub struct Payload {
    /// Segments in send order.
    pub segments: Vec<Segment>,
}

impl Payload {
    /// Validate and map `elements`. Nothing is sent; every error names path and numbers.
    ///
    /// Elements naming the same file (same device and inode) share one open file and one
    /// mapping, however many ranges of it they send.
    pub fn from_elements(elements: &[SendPacketsElement]) -> Result<Self> {
        let mut segments = Vec::with_capacity(elements.len());
        let mut files: Vec<((u64, u64), Arc<MappedFile>)> = Vec::new();
        for el in elements {
            segments.push(validate(el, &mut files)?);
        }
        Ok(Payload { segments })
    }

    /// Total bytes.
    pub fn len(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    /// True if there are no bytes (there may still be empty datagrams).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
pub struct Releaser {
    seg: usize,
    done: u64,
}

impl Releaser {
    /// Release granularity.
    pub const STEP: u64 = 2 << 20;

    /// The sender has reached offset `off` of segment `seg`.
    #[inline]
    pub fn advance(&mut self, segs: &[Segment], seg: usize, off: u64) {
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

/// How a byte stream is cut into datagrams (sans-IO; also used to validate before sending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundaries {
    /// Each run of segments up to one with `eop` set is one datagram (the trailing run without
    /// a flag is one too).
    EndOfPacket,
    /// Datagrams of this many bytes (the last of a run shorter), also cut at `eop` flags.
    Size(u64),
}

/// A datagram's extent in a segment list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First segment.
    pub seg: usize,
    /// Offset in that segment.
    pub off: u64,
    /// Datagram length in bytes.
    pub len: u64,
}

/// Iterates the datagrams of a segment list without allocating.
#[derive(Debug, Clone)]
pub struct Datagrams<'a> {
    segs: &'a [Segment],
    seg: usize,
    off: u64,
    mode: Boundaries,
}

impl<'a> Datagrams<'a> {
    /// Datagrams of `segs` cut by `mode`.
    pub fn new(segs: &'a [Segment], mode: Boundaries) -> Self {
        Datagrams {
            segs,
            seg: 0,
            off: 0,
            mode,
        }
    }
}

impl Iterator for Datagrams<'_> {
    type Item = Span;

    fn next(&mut self) -> Option<Span> {
        // Skip past fully consumed segments that do not end a packet.
        if self.seg >= self.segs.len() {
            return None;
        }
        let start = Span {
            seg: self.seg,
            off: self.off,
            len: 0,
        };
        let limit = match self.mode {
            Boundaries::EndOfPacket => u64::MAX,
            Boundaries::Size(n) => n.max(1),
        };
        let mut len = 0u64;
        while self.seg < self.segs.len() {
            let s = &self.segs[self.seg];
            let avail = s.len - self.off;
            let take = avail.min(limit - len);
            len += take;
            self.off += take;
            if self.off == s.len {
                self.seg += 1;
                self.off = 0;
                if s.eop {
                    break;
                }
            }
            if len == limit {
                break;
            }
        }
        // A run that ends exactly at a limit cut and then finds only empty, unflagged segments
        // does not produce a trailing empty datagram.
        if len == 0 && !self.segs[start.seg..self.seg].iter().any(|s| s.eop) {
            return None;
        }
        Some(Span { len, ..start })
    }
}

/// Calls `f` with each piece of `span` in order (a datagram may cover several segments).
pub fn for_each_piece<'a>(segs: &'a [Segment], span: Span, mut f: impl FnMut(&'a [u8])) {
    for_each_range(segs, span, |s, off, len| {
        f(&s.bytes()[off as usize..off as usize + len])
    });
}

/// Calls `f(segment, offset in segment, length)` for each piece of `span`, without touching
/// the bytes (file pieces can then be read by the kernel straight into their destination).
pub fn for_each_range<'a>(
    segs: &'a [Segment],
    span: Span,
    mut f: impl FnMut(&'a Segment, u64, usize),
) {
    let mut seg = span.seg;
    let mut off = span.off;
    let mut left = span.len;
    while left > 0 && seg < segs.len() {
        let take = (segs[seg].len - off).min(left);
        f(&segs[seg], off, take as usize);
        left -= take;
        seg += 1;
        off = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn seg(len: usize, eop: bool) -> Segment {
        Segment::mem(Bytes::from(vec![7u8; len]), eop)
    }

    fn lens(segs: &[Segment], mode: Boundaries) -> Vec<u64> {
        Datagrams::new(segs, mode).map(|s| s.len).collect()
    }

    #[test]
    fn eop_groups_runs() {
        let s = [
            seg(3, false),
            seg(4, true),
            seg(5, true),
            seg(1, false),
            seg(2, false),
        ];
        assert_eq!(lens(&s, Boundaries::EndOfPacket), vec![7, 5, 3]);
    }

    #[test]
    fn eop_empty_datagrams_are_kept() {
        let s = [seg(0, true), seg(2, true), seg(0, true)];
        assert_eq!(lens(&s, Boundaries::EndOfPacket), vec![0, 2, 0]);
        assert_eq!(lens(&[], Boundaries::EndOfPacket), Vec::<u64>::new());
        // Trailing unflagged empty segment: no extra datagram.
        let s = [seg(2, true), seg(0, false)];
        assert_eq!(lens(&s, Boundaries::EndOfPacket), vec![2]);
    }

    #[test]
    fn size_cuts_and_respects_eop() {
        let s = [seg(10, true), seg(7, false), seg(3, false)];
        assert_eq!(lens(&s, Boundaries::Size(4)), vec![4, 4, 2, 4, 4, 2]);
        let s = [seg(8, false)];
        assert_eq!(lens(&s, Boundaries::Size(4)), vec![4, 4]);
    }

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

    proptest::proptest! {
        #[test]
        fn datagrams_partition_the_stream(
            shape in proptest::collection::vec((0usize..50, proptest::bool::ANY), 0..20),
            size in proptest::option::of(1u64..40),
        ) {
            let segs: Vec<Segment> = shape.iter().map(|&(l, e)| seg(l, e)).collect();
            let mode = size.map_or(Boundaries::EndOfPacket, Boundaries::Size);
            let total: u64 = segs.iter().map(|s| s.len).sum();
            let spans: Vec<Span> = Datagrams::new(&segs, mode).collect();
            proptest::prop_assert_eq!(spans.iter().map(|s| s.len).sum::<u64>(), total);
            if let Some(n) = size {
                proptest::prop_assert!(spans.iter().all(|s| s.len <= n));
            }
            // Every flagged segment ends a datagram: count of flags <= datagrams.
            let flags = segs.iter().filter(|s| s.eop).count();
            proptest::prop_assert!(spans.len() >= flags);
        }
    }
}
