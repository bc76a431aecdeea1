//! A device in memory for unit tests of the engine: buffers are `Vec`s, every submitted
//! frame is recorded (with its checksum request completed as a device would), frames "leave"
//! on flush.

use std::time::Duration;

use super::{Caps, CsumRequest, RxQueue, TxCounters, TxQueue};
use crate::error::Result;
use crate::sansio::wire::checksum;

/// A fake queue.
#[derive(Debug)]
pub(crate) struct FakeQueue {
    caps: Caps,
    free: Vec<Vec<u8>>,
    queued: Vec<Vec<u8>>,
    /// Every frame that left, in order, checksums completed.
    pub(crate) sent: Vec<Vec<u8>>,
    /// Frames waiting to be received.
    pub(crate) inbox: Vec<Vec<u8>>,
    counters: TxCounters,
    /// How many times flush was called.
    pub(crate) flushes: u64,
}

impl FakeQueue {
    /// `bufs` buffers of `capacity` bytes for frames up to `max_frame`.
    pub(crate) fn new(bufs: usize, capacity: usize, max_frame: usize, offload: bool) -> Self {
        FakeQueue {
            caps: Caps {
                buf_capacity: capacity,
                max_frame,
                csum_offload: offload,
                max_segs: 1,
                zero_copy: false,
                persistent_bufs: true,
            },
            free: (0..bufs).map(|_| vec![0u8; capacity]).collect(),
            queued: Vec::new(),
            sent: Vec::new(),
            inbox: Vec::new(),
            counters: TxCounters::default(),
            flushes: 0,
        }
    }
}

/// What a device does with a `CHECKSUM_PARTIAL` frame: sum from the L4 header to the end over
/// the pseudo-header sum left in the field, store the complement (a UDP checksum of 0 goes as
/// 0xffff, as the kernel's `CSUM_MANGLED_0`: 0 there means "no checksum").
pub(crate) fn complete_checksum(frame: &mut [u8], (start, offset): CsumRequest) {
    /// The checksum field's offset in a UDP header.
    const UDP_CHECK: u16 = 6;
    let (start_at, field) = (start as usize, start as usize + offset as usize);
    let c = match checksum::finish(checksum::sum(&frame[start_at..])) {
        0 if offset == UDP_CHECK => 0xffff,
        c => c,
    };
    frame[field..field + 2].copy_from_slice(&c.to_be_bytes());
}

impl TxQueue for FakeQueue {
    type Buf = Vec<u8>;

    fn caps(&self) -> &Caps {
        &self.caps
    }

    fn alloc(&mut self) -> Option<Vec<u8>> {
        self.free.pop()
    }

    fn data<'a>(&'a self, buf: &'a mut Vec<u8>) -> &'a mut [u8] {
        &mut buf[..]
    }

    fn submit(&mut self, buf: Vec<u8>, len: usize, csum: Option<CsumRequest>) -> Result<()> {
        assert!(
            len <= self.caps.max_frame,
            "frame of {len} bytes over the link's maximum"
        );
        let mut frame = buf[..len].to_vec();
        if let Some(c) = csum {
            assert!(self.caps.csum_offload, "checksum request without offload");
            complete_checksum(&mut frame, c);
        }
        self.queued.push(frame);
        self.free.insert(0, buf);
        Ok(())
    }

    fn free(&mut self, buf: Vec<u8>) {
        self.free.push(buf);
    }

    fn flush(&mut self) -> Result<()> {
        self.flushes += 1;
        let n = self.queued.len() as u64;
        self.sent.append(&mut self.queued);
        self.counters.published += n;
        self.counters.completed += n;
        Ok(())
    }

    fn reap(&mut self) -> usize {
        0
    }

    fn wait_free(&mut self) -> Result<()> {
        assert!(!self.free.is_empty(), "fake queue out of buffers");
        Ok(())
    }

    fn drain(&mut self) -> Result<()> {
        self.flush()
    }

    fn check(&self) -> Result<()> {
        Ok(())
    }

    fn abandon(&mut self) {
        self.queued.clear();
    }

    fn counters(&self) -> TxCounters {
        self.counters
    }

    fn set_paced(&mut self, _paced: bool) {}
}

impl RxQueue for FakeQueue {
    fn recv(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        let n = self.inbox.len();
        for frame in self.inbox.drain(..) {
            f(&frame);
        }
        n
    }

    fn wait(&mut self, _timeout: Duration) {}
}

#[cfg(test)]
mod tests {
    use super::complete_checksum;

    #[test]
    fn a_udp_checksum_of_zero_goes_as_all_ones_and_tcp_stays_zero() {
        // The words sum to 0xffff: the complement is 0.
        let mut udp = [0xff, 0xff, 0, 0, 0, 0, 0, 0];
        complete_checksum(&mut udp, (0, 6));
        assert_eq!(&udp[6..8], &[0xff, 0xff]);
        let mut tcp = [0u8; 20];
        tcp[..2].copy_from_slice(&[0xff, 0xff]);
        complete_checksum(&mut tcp, (0, 16));
        assert_eq!(&tcp[16..18], &[0, 0]);
    }
}
