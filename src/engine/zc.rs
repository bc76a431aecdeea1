//! Zero-copy file payloads, the part the UDP sender and the TCP driver share: whether a job
//! can be sent from the file's own pages (and mapping the file into the device for it), and
//! the truncation check around every batch.
//!
//! Truncation: the device reads pages it has pinned, which a truncation does not take away,
//! so no read fails. The file's size is checked before each batch is submitted and after it
//! was (a copy-mode kick copies the frames synchronously, so a size still large enough after
//! the kick means the bytes sent were the file's); a shrink ends the send in `FileTruncated`,
//! like a short `preadv` on the copy road. A memfd sealed against shrinking needs no checks.

use crate::device::{FileMapper, TxQueue};
use crate::engine::Job;
use crate::error::{Error, Result};
use crate::options::PayloadChoice;
use crate::payload::{MappedFile, SegmentData};
use crate::report::BackendInfo;
use crate::sansio::framer::PayloadWriter;

/// Smallest file range sent without a copy: below it, re-opening the queues with the file
/// mapped costs more than copying the bytes.
const ZERO_COPY_MIN: u64 = 1 << 20;

/// Where a job's bytes are: one range of a file the device has mapped.
pub(crate) struct FileRange<'a> {
    pub(crate) file: &'a MappedFile,
    /// Offset of the payload's first byte in the file.
    pub(crate) base: u64,
    /// Payload bytes.
    pub(crate) len: u64,
    sealed: bool,
}

impl FileRange<'_> {
    /// True if the file can never shrink (no size checks needed).
    pub(crate) fn sealed(&self) -> bool {
        self.sealed
    }

    /// An error if the file is now shorter than `end`.
    pub(crate) fn check(&self, sealed: bool, end: u64) -> Result<()> {
        if !sealed && self.file.current_size() < end {
            return Err(self.file.truncated(end));
        }
        Ok(())
    }

    /// An error if the file no longer holds the whole range.
    pub(crate) fn check_all(&self) -> Result<()> {
        self.check(self.sealed, self.base + self.len)
    }

    /// An error if a software checksum read a page the file no longer has (it read zeros).
    pub(crate) fn check_read(&self) -> Result<()> {
        if self.file.read_fault() {
            return Err(self.file.truncated(self.base + self.len));
        }
        Ok(())
    }

    /// Account the `len` payload bytes at `off` (from the range's start) of a frame whose
    /// payload the device sends from the file: not copied; read only to sum them when the
    /// checksum is made here (a zero-copy queue cannot carry TX metadata with multi-buffer
    /// frames).
    pub(crate) fn payload(&self, w: &mut PayloadWriter<'_>, off: u64, len: usize) {
        if w.sums() {
            let at = (self.base + off) as usize;
            // The range was checked against the file's size when the job was made.
            let bytes = self.file.bytes();
            w.external(&bytes[at.min(bytes.len())..(at + len).min(bytes.len())]);
            // (Short only if the file was mapped shorter: then the framer's length check
            // fails loudly rather than sending a wrong sum.)
        } else {
            w.in_place(len);
        }
    }
}

/// A transport's view for deciding the payload road of a job.
pub(crate) struct ZeroCopy<'t, D> {
    pub(crate) choice: PayloadChoice,
    pub(crate) files: Option<&'t mut (dyn FileMapper<D> + 'static)>,
    pub(crate) queues: &'t mut Vec<D>,
    pub(crate) info: &'t mut BackendInfo,
}

impl<D: TxQueue> ZeroCopy<'_, D> {
    /// The file range `job` can be sent from without a copy (mapping the file into the
    /// queues if needed), or `None`; the report (`payload`, `payload_reason`) says which and
    /// why. Asked for and impossible: `BackendUnavailable`. `Err` from the mapper otherwise:
    /// the queues are gone.
    pub(crate) fn range<'j>(&mut self, job: &'j Job) -> Result<Option<FileRange<'j>>> {
        let found = match self.choice {
            PayloadChoice::Copy => Ok(Err("copy asked for".to_string())),
            _ if self.files.is_none() => Ok(Err(format!(
                "{}: file bytes are copied into the device's own buffers (it has no zero-copy road for files)",
                self.info.backend
            ))),
            PayloadChoice::Auto => match self
                .files
                .as_deref()
                .and_then(|f| f.auto_refusal(self.queues))
            {
                Some(why) => Ok(Err(why)),
                None => self.find(job),
            },
            PayloadChoice::ZeroCopy => self.find(job),
        };
        let why = match found? {
            Ok(r) => {
                self.info.payload = Some("zero-copy".into());
                self.info.payload_reason = None;
                return Ok(Some(r));
            }
            Err(why) if self.choice == PayloadChoice::ZeroCopy => {
                return Err(Error::BackendUnavailable {
                    backend: self.info.backend,
                    reason: format!("zero-copy payload: {why}"),
                })
            }
            Err(why) => why,
        };
        self.info.payload = Some("copy".into());
        self.info.payload_reason = Some(why);
        Ok(None)
    }

    fn find<'j>(&mut self, job: &'j Job) -> Result<std::result::Result<FileRange<'j>, String>> {
        let Some(files) = self.files.as_deref_mut() else {
            return Ok(Err("this device reads payloads from its own buffers".into()));
        };
        let [seg] = &job.payload.segments[..] else {
            return Ok(Err("the payload is not exactly one file range".into()));
        };
        let SegmentData::File { file, offset } = &seg.data else {
            return Ok(Err("the payload is in memory".into()));
        };
        if seg.len < ZERO_COPY_MIN {
            return Ok(Err(format!(
                "{} bytes: below {} MiB copying is cheaper than mapping the file",
                seg.len,
                ZERO_COPY_MIN >> 20
            )));
        }
        // Mapped already, this version of it (a file changed since is mapped again: a
        // truncated and rewritten file has new pages; the pinned ones are the old).
        let version = Some(file.version());
        if !self.queues.iter().all(|q| q.mapped_file() == version) {
            if let Err(why) = files.map(self.queues, file)? {
                return Ok(Err(why));
            }
            // Queues opened with a file may make checksums otherwise (zero-copy queues
            // cannot offload with descriptors that start at pages).
            let offload = self.queues.iter().all(|q| q.caps().csum_offload);
            self.info.checksum = Some(if offload { "offload" } else { "software" }.into());
        }
        Ok(Ok(FileRange {
            file,
            base: *offset,
            len: seg.len,
            sealed: file.shrink_sealed(),
        }))
    }
}
