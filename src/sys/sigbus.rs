//! SIGBUS protection for reads through file mappings.
//!
//! When another process truncates a mapped file, touching a page past the new end raises
//! SIGBUS, which kills the process by default. xsend registers every file mapping here; the
//! handler, on a fault inside a registered mapping, maps a zero page over the faulting page
//! (`MAP_FIXED`), marks the mapping as truncated and returns, so the interrupted copy simply
//! reads zeros. The sender checks [`truncated`] after each batch and stops with
//! `Error::FileTruncated` before those zeros can be reported as sent data. A fault anywhere
//! else restores the default action and re-raises it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Once;

const SLOTS: usize = 1024;

struct Slot {
    start: AtomicUsize,
    len: AtomicUsize,
    hit: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    hit: AtomicBool::new(false),
};
static TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];
static INSTALL: Once = Once::new();

/// A registered mapping; unregisters on drop.
#[derive(Debug)]
pub(crate) struct Guard {
    slot: Option<usize>,
}

/// Register `[start, start + len)`. If the table is full the mapping is unprotected (the
/// guard says so with [`Guard::protected`]).
pub(crate) fn register(start: *const u8, len: usize) -> Guard {
    INSTALL.call_once(install);
    for (i, s) in TABLE.iter().enumerate() {
        if s.len
            .compare_exchange(0, usize::MAX, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            s.hit.store(false, Ordering::Relaxed);
            s.start.store(start as usize, Ordering::Release);
            s.len.store(len, Ordering::Release);
            return Guard { slot: Some(i) };
        }
    }
    Guard { slot: None }
}

impl Guard {
    /// True if faults in this mapping are caught.
    #[cfg(test)]
    pub(crate) fn protected(&self) -> bool {
        self.slot.is_some()
    }
}

/// True if a read through this mapping hit a truncated page.
pub(crate) fn truncated(g: &Guard) -> bool {
    g.slot.is_some_and(|i| TABLE[i].hit.load(Ordering::Acquire))
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            // `len` first: the handler ignores a slot of length 0, so it never sees the
            // range with its start already cleared.
            TABLE[i].len.store(0, Ordering::Release);
            TABLE[i].start.store(0, Ordering::Release);
        }
    }
}

extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    for s in TABLE.iter() {
        let len = s.len.load(Ordering::Acquire);
        let start = s.start.load(Ordering::Acquire);
        if len != 0 && len != usize::MAX && addr >= start && addr < start + len {
            // SAFETY: sysconf is async-signal-safe.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
            let base = addr & !(page - 1);
            // SAFETY: mmap is a plain syscall (async-signal-safe in practice); MAP_FIXED
            // replaces one page of a mapping xsend owns and keeps until the Guard is dropped.
            let r = unsafe {
                libc::mmap(
                    base as *mut libc::c_void,
                    page,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if r != libc::MAP_FAILED {
                s.hit.store(true, Ordering::Release);
                return;
            }
        }
    }
    // Not ours: take the default action when the faulting instruction runs again.
    // SAFETY: resetting a signal disposition is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGBUS, libc::SIG_DFL);
    }
}

fn install() {
    // SAFETY: a zeroed sigaction is valid; we set the handler, flags and an empty mask.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigbus as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_file_reads_zeros_and_is_flagged() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![7u8; 64 << 10]).unwrap();
        let f = std::fs::File::open(&p).unwrap();
        // SAFETY: test mapping of a file this test owns.
        let m = unsafe { memmap2::Mmap::map(&f) }.unwrap();
        let g = register(m.as_ptr(), m.len());
        assert!(g.protected());
        assert_eq!(m[60 << 10], 7);
        assert!(!truncated(&g));
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(4096)
            .unwrap();
        // Past the new end: would be SIGBUS; reads zero instead and is flagged.
        // SAFETY: inside the mapping; the page is past the new end of file (the guard maps a
        // zero page there instead of SIGBUS).
        let v = unsafe { std::ptr::read_volatile(m.as_ptr().add(32 << 10)) };
        assert_eq!(v, 0);
        assert!(truncated(&g));
        assert_eq!(m[0], 7);
    }
}
