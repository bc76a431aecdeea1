//! An owned memory mapping: unmapped exactly once, when it is dropped.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;

/// A mapping made by `mmap(2)` that this value owns.
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; the types that hand out access to
// it (UMEM chunks, rings) enforce their own exclusivity rules.
unsafe impl Send for Mapping {}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mapping({:p}, {} bytes)", self.ptr, self.len)
    }
}

impl Mapping {
    /// An anonymous, private, pre-faulted read-write mapping of `len` bytes.
    pub(crate) fn anonymous(len: usize) -> io::Result<Self> {
        Self::new(
            len,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    }

    /// A shared read-write mapping of `len` bytes of `fd` at page offset `off` (a kernel
    /// ring of an AF_XDP socket).
    pub(crate) fn shared(fd: BorrowedFd<'_>, len: usize, off: libc::off_t) -> io::Result<Self> {
        Self::new(
            len,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd.as_raw_fd(),
            off,
        )
    }

    /// `head` bytes of anonymous read-write memory followed, at the next page boundary, by
    /// `file_len` bytes of `fd` mapped shared and read-write (its pages are the file's page
    /// cache: a tmpfs/memfd file's pages can then be pinned as part of an AF_XDP UMEM).
    /// Returns the mapping (both parts, unmapped together) and the offset of the file in it.
    pub(crate) fn with_file_tail(
        head: usize,
        fd: BorrowedFd<'_>,
        file_len: usize,
    ) -> io::Result<(Self, usize)> {
        let page = 4096;
        let at = head.div_ceil(page) * page;
        let total = at + file_len.div_ceil(page) * page;
        let whole = Self::new(total, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)?;
        // SAFETY: replaces pages inside the mapping `whole` owns (from `at` to its end) with
        // the file's; nothing else refers to that range (the mapping was just made and not
        // handed out), and `whole` unmaps all of it when dropped.
        let p = unsafe {
            libc::mmap(
                whole.ptr().add(at).cast(),
                total - at,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok((whole, at))
    }

    fn new(len: usize, flags: libc::c_int, fd: libc::c_int, off: libc::off_t) -> io::Result<Self> {
        // SAFETY: a new mapping at an address the kernel chooses: no existing memory is
        // affected; a borrowed fd (if any) is open for the call.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                off,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Mapping { ptr, len })
    }

    /// Start of the mapping.
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps the mapping made in `new`, once; nothing borrowed from it outlives
        // `self` (accessors borrow `self`).
        let _ = syscall!(munmap(self.ptr.as_ptr().cast(), self.len));
    }
}
