//! Files: scattered reads into frames, read-only mappings and page release.

use std::fs::File;
use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd};

use memmap2::Mmap;

/// Most iovecs one `preadv(2)` call takes (`IOV_MAX`).
pub(crate) const IOV_MAX: usize = 1024;

/// `preadv(2)` from `offset` until every buffer of `bufs` is full or the file ends; returns
/// the bytes read (short only at end of file). One call normally fills a whole batch of
/// frames.
pub(crate) fn preadv_all(
    fd: BorrowedFd<'_>,
    mut bufs: &mut [IoSliceMut<'_>],
    mut offset: u64,
) -> io::Result<usize> {
    let mut done = 0usize;
    while !bufs.is_empty() {
        let cnt = bufs.len().min(IOV_MAX);
        // SAFETY: IoSliceMut is ABI-compatible with iovec (std guarantees it on Unix); the
        // `cnt` buffers are live, writable and exclusively borrowed for the call.
        let r = syscall!(preadv(
            fd.as_raw_fd(),
            bufs.as_ptr() as *const libc::iovec,
            cnt as libc::c_int,
            offset as libc::off_t,
        ));
        let n = match r {
            Ok(0) => break,
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        done += n;
        offset += n as u64;
        IoSliceMut::advance_slices(&mut bufs, n);
    }
    Ok(done)
}

/// Map a whole file read-only.
///
/// Another process may truncate or rewrite the file meanwhile: kernel reads of the mapping
/// fail with EFAULT, and user-space reads past the new end are turned into zeros by
/// [`super::sigbus`] (callers register the mapping there and report a truncation).
pub(crate) fn map_readonly(file: &File) -> io::Result<Mmap> {
    // SAFETY: a read-only private view; the hazards of a changing file are handled as
    // described above (no Rust reference ever assumes the bytes are stable across a
    // truncation: reads go through the SIGBUS guard or the kernel).
    let m = unsafe { Mmap::map(file) }?;
    // Sequential read-ahead helps both sendfile and the copy into frames.
    let _ = m.advise(memmap2::Advice::Sequential);
    Ok(m)
}

/// Drop this process's page-table entries for `[offset, offset + len)` of `map` (rounded
/// inwards to pages), so bytes already sent stop counting as resident. The page cache keeps
/// them; a later read faults them back in (a file mapping never reads zeros after this).
pub(crate) fn release_pages(map: &Mmap, offset: u64, len: u64) {
    const PAGE: u64 = 4096;
    let start = offset.div_ceil(PAGE) * PAGE;
    let end = ((offset + len).min(map.len() as u64) / PAGE) * PAGE;
    if end > start {
        // `start < end <= map.len()`: the pointer stays inside the mapping.
        let at = map[start as usize..].as_ptr();
        // SAFETY: the range lies inside our own read-only file mapping (checked above);
        // MADV_DONTNEED on it only drops page-table entries, the contents stay the file's.
        let _ = syscall!(madvise(
            at as *mut libc::c_void,
            (end - start) as usize,
            libc::MADV_DONTNEED,
        ));
    }
}

/// `TMPFS_MAGIC`: tmpfs, `/dev/shm` and memfd files (shmem).
pub(crate) const TMPFS_MAGIC: i64 = 0x0102_1994;

/// The filesystem type (`f_type` of `fstatfs(2)`) a file lives on.
pub(crate) fn fs_type(fd: BorrowedFd<'_>) -> io::Result<i64> {
    // SAFETY: all-zero is a valid statfs to be filled in.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fstatfs writes into the live `st`; the descriptor is open for the call.
    syscall!(fstatfs(fd.as_raw_fd(), &mut st))?;
    Ok(st.f_type as i64)
}

/// F_GET_SEALS of a file (0 where sealing is not supported).
pub(crate) fn seals(fd: BorrowedFd<'_>) -> i32 {
    // SAFETY: F_GET_SEALS takes no argument and only reads the file's state.
    syscall!(fcntl(fd.as_raw_fd(), libc::F_GET_SEALS)).unwrap_or(0)
}
