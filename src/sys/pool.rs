//! A pool of fixed-size frame buffers in one anonymous mapping, handed out as [`Slot`]
//! tokens (as UMEM chunks are): holding a slot by unique reference is what makes writing its
//! bytes through a shared reference to the pool sound. Used by devices that copy frames to
//! the kernel (AF_PACKET), where buffers must stay put while a batch is built.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

use super::mmap::Mapping;

static NEXT_ID: AtomicU32 = AtomicU32::new(1);

/// The pool.
#[derive(Debug)]
pub(crate) struct FramePool {
    area: Mapping,
    frame: usize,
    id: u32,
}

/// One frame buffer of a pool (not `Clone`: one owner at a time).
#[derive(Debug)]
pub(crate) struct Slot {
    index: u32,
    pool: u32,
}

impl FramePool {
    /// `frames` buffers of `frame` bytes each, and their slots.
    pub(crate) fn new(frames: u32, frame: usize) -> io::Result<(Self, Vec<Slot>)> {
        let area = Mapping::anonymous(frames as usize * frame)?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let slots = (0..frames).map(|index| Slot { index, pool: id }).collect();
        Ok((FramePool { area, frame, id }, slots))
    }

    fn start(&self, s: &Slot) -> usize {
        let start = s.index as usize * self.frame;
        assert!(
            s.pool == self.id && start + self.frame <= self.area.len(),
            "a slot of pool {} used with pool {}",
            s.pool,
            self.id
        );
        start
    }

    /// The buffer of a slot we own, to write.
    pub(crate) fn data_mut<'a>(&'a self, s: &'a mut Slot) -> &'a mut [u8] {
        let start = self.start(s);
        // SAFETY: the range is inside the mapping (checked) and is this slot's alone; the
        // slot is borrowed uniquely for 'a, so no other slice of it exists meanwhile, and the
        // mapping lives as long as `self`, borrowed for 'a.
        unsafe { std::slice::from_raw_parts_mut(self.area.ptr().add(start), self.frame) }
    }

    /// The first `len` bytes of a slot's buffer, to read.
    pub(crate) fn bytes<'a>(&'a self, s: &'a Slot, len: usize) -> &'a [u8] {
        let start = self.start(s);
        assert!(len <= self.frame);
        // SAFETY: inside the slot's range (checked); shared borrows of the slot exclude a
        // `data_mut` of it for 'a.
        unsafe { std::slice::from_raw_parts(self.area.ptr().add(start), len) }
    }
}
