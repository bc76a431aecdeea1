//! A file being sent: opened and mapped read-only once per operation, read into frames by the
//! kernel (`preadv`) or through the mapping, with truncation by another process reported as
//! [`Error::FileTruncated`], never as SIGBUS or as zeros reported sent. (On DPDK's zero-copy
//! road the PMD copies the pages inside `tx_burst`, after the last size check: frames of
//! zeros may leave before the send ends in that error; see `device/dpdk/files.rs`.)

use std::fs::File;
use std::io::{self, IoSliceMut};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use crate::error::{Error, Result};
use crate::sys;

/// A file's device, inode, size and change time (ns): see [`MappedFile::version`].
pub(crate) type FileVersion = (u64, u64, u64, i64);

/// A read-only file with its mapping, sized once at validation time.
#[derive(Debug)]
pub(crate) struct MappedFile {
    path: PathBuf,
    file: Arc<File>,
    map: Option<Mmap>,
    size: u64,
    guard: Option<sys::sigbus::Guard>,
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // Unregister from the SIGBUS handler before unmapping: a new mapping at the same
        // address must never be taken for this one.
        self.guard.take();
        self.map.take();
    }
}

impl AsRef<[u8]> for MappedFile {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

impl MappedFile {
    /// Open and map `path` read-only.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let file = open_regular(path)?;
        Self::from_file(Arc::new(file), path.to_path_buf())
    }

    /// Map an already opened file; `path` is only used in messages.
    pub(crate) fn from_file(file: Arc<File>, path: PathBuf) -> Result<Self> {
        let meta = file.metadata().map_err(|e| Error::FileIo {
            path: path.clone(),
            source: e,
        })?;
        check_regular(&meta, &path)?;
        let size = meta.len();
        let map = if size == 0 {
            None
        } else {
            Some(sys::file::map_readonly(&file).map_err(|e| Error::FileIo {
                path: path.clone(),
                source: e,
            })?)
        };
        let guard = map
            .as_ref()
            .map(|m| sys::sigbus::register(m.as_ptr(), m.len()));
        Ok(MappedFile {
            path,
            file,
            map,
            size,
            guard,
        })
    }

    /// A mapping of its own of the same open file, for a device whose frames point at the
    /// file's pages after this one may be gone.
    #[cfg_attr(not(feature = "dpdk"), allow(dead_code))]
    pub(crate) fn remap(&self) -> Result<MappedFile> {
        MappedFile::from_file(self.file.clone(), self.path.clone())
    }

    /// Size of the file when it was mapped.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// The path (for messages).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The open file.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// The mapped bytes (empty for an empty file).
    pub(crate) fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// True if a user-space read through the mapping hit a page past the file's end (the
    /// file was truncated; the read saw zeros, see [`sys::sigbus`]).
    pub(crate) fn read_fault(&self) -> bool {
        self.guard.as_ref().is_some_and(sys::sigbus::truncated)
    }

    /// Read `[offset, offset + len)` into `bufs` (which hold exactly `len` bytes) with the
    /// kernel (`preadv`, no page faults in user space). A short read, or a fault because the
    /// file shrank, is [`Error::FileTruncated`].
    pub(crate) fn read_exact_at(
        &self,
        offset: u64,
        len: usize,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Result<()> {
        match sys::file::preadv_all(self.file.as_fd(), bufs, offset) {
            Ok(n) if n >= len => Ok(()),
            Ok(_) => Err(self.truncated(offset + len as u64)),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EFAULT | libc::EIO)) => {
                Err(self.truncated(offset + len as u64))
            }
            Err(e) => Err(Error::FileIo {
                path: self.path.clone(),
                source: e,
            }),
        }
    }

    /// Drop this process's page-table entries for `[offset, offset + len)` so sent data
    /// stops counting as resident (the bytes stay in the page cache).
    pub(crate) fn release(&self, offset: u64, len: u64) {
        if let Some(m) = &self.map {
            sys::file::release_pages(m, offset, len);
        }
    }

    /// Which file this is, and which version of it: device, inode, size and change time
    /// (a device that mapped the file's pages must map it again once it changed).
    pub(crate) fn version(&self) -> FileVersion {
        use std::os::unix::fs::MetadataExt;
        self.file
            .metadata()
            .map(|m| {
                (
                    m.dev(),
                    m.ino(),
                    m.len(),
                    m.ctime() * 1_000_000_000 + m.ctime_nsec(),
                )
            })
            .unwrap_or((0, 0, 0, 0))
    }

    /// A read-write descriptor of the file if its pages can be pinned into an AF_XDP UMEM
    /// (tmpfs, `/dev/shm`, memfd: no writeback, so `FOLL_LONGTERM` pins are allowed), else
    /// why not.
    pub(crate) fn pinnable(&self) -> std::result::Result<File, String> {
        use std::os::fd::AsRawFd;
        let t = sys::file::fs_type(self.file.as_fd())
            .map_err(|e| format!("fstatfs of {}: {e}", self.path.display()))?;
        if t != sys::file::TMPFS_MAGIC {
            return Err(format!(
                "{} is not on tmpfs (filesystem type {t:#x}): only tmpfs and memfd pages can be pinned into the UMEM here (files with writeback cannot; hugetlbfs would need huge-page alignment)",
                self.path.display()
            ));
        }
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
            .map_err(|e| {
                format!(
                    "{}: the UMEM maps it read-write and it cannot be opened so ({e})",
                    self.path.display()
                )
            })
    }

    /// True if the file can never shrink (a memfd sealed with `F_SEAL_SHRINK`).
    pub(crate) fn shrink_sealed(&self) -> bool {
        sys::file::seals(self.file.as_fd()) & libc::F_SEAL_SHRINK != 0
    }

    /// Current size on disk (to tell a truncation from other failures).
    pub(crate) fn current_size(&self) -> u64 {
        self.file.metadata().map(|m| m.len()).unwrap_or(0)
    }

    /// The error to report when a read of `[.., needed)` failed or came back short.
    pub(crate) fn truncated(&self, needed: u64) -> Error {
        Error::FileTruncated {
            path: self.path.clone(),
            needed,
            size: self.current_size(),
        }
    }
}

/// Open `path` for reading if it is a regular file. Non-blocking: opening a FIFO (or a
/// device) must not wait for a writer; what is not a regular file is refused right after, by
/// its type.
pub(crate) fn open_regular(path: &Path) -> Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| open_error(path, e))?;
    let meta = file.metadata().map_err(|e| Error::FileIo {
        path: path.to_path_buf(),
        source: e,
    })?;
    check_regular(&meta, path)?;
    Ok(file)
}

fn check_regular(meta: &std::fs::Metadata, path: &Path) -> Result<()> {
    let ft = meta.file_type();
    if ft.is_file() {
        return Ok(());
    }
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
    Err(Error::NotAFile {
        path: path.to_path_buf(),
        kind,
    })
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
