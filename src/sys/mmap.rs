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
