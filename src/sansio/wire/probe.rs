//! The generator's probe header: the first 16 bytes of the payload of every frame `xsend
//! bench` makes (AF_XDP and live frames alike), so that a receiving port (`bpf/rxport.bpf.c`)
//! can count each stream's frames exactly — lost, duplicated, reordered — and measure one-way
//! latency, without any state shared with the sender but the clock.
//!
//! ```text
//!  0          3                    8             12            16
//!  +----------+--------------------+-------------+-------------+
//!  |stream(24)|   sequence (40)    | send time   |    magic    |
//!  +----------+--------------------+-------------+-------------+
//! ```
//! All fields big-endian. `stream` names one flow of one sending queue (queue × flows +
//! flow); `sequence` counts that stream's frames from 0; `send time` is the low 32 bits of
//! `CLOCK_MONOTONIC` in nanoseconds when the frame was made (a one-way latency is the
//! receiver's clock minus it, modulo 2^32: exact up to 4.29 s when both ends read the same
//! clock, as two ports of one tester do); `magic` is `xSG1`. A payload shorter than 16
//! bytes carries the header's first bytes only and is not counted as a stream frame.

use super::WireError;

/// `b"xSG1"`.
pub const MAGIC: u32 = 0x7853_4731;
/// Header length in bytes.
pub const HEADER_LEN: usize = 16;
/// Streams a header can name (24 bits).
pub const MAX_STREAMS: u32 = 1 << 24;
/// Sequence numbers a stream can count before they wrap (40 bits).
pub const SEQ_MASK: u64 = (1 << 40) - 1;

/// One probe header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Repr {
    /// Stream id (below [`MAX_STREAMS`]).
    pub stream: u32,
    /// Sequence number within the stream (40 bits kept).
    pub seq: u64,
    /// Low 32 bits of the send time, `CLOCK_MONOTONIC` ns.
    pub time: u32,
}

impl Repr {
    /// The header as two 64-bit words, in order, each to be written big-endian: what
    /// [`Repr::to_bytes`] holds, for writers that store it straight from registers.
    #[inline]
    pub fn words(&self) -> [u64; 2] {
        let id = ((self.stream as u64 & (MAX_STREAMS as u64 - 1)) << 40) | (self.seq & SEQ_MASK);
        [id, ((self.time as u64) << 32) | MAGIC as u64]
    }

    /// The header's bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let [a, b] = self.words();
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(&a.to_be_bytes());
        out[8..16].copy_from_slice(&b.to_be_bytes());
        out
    }

    /// Write the header's first `buf.len()` bytes (at most [`HEADER_LEN`]).
    pub fn emit(&self, buf: &mut [u8]) {
        let n = buf.len().min(HEADER_LEN);
        buf[..n].copy_from_slice(&self.to_bytes()[..n]);
    }

    /// Parse the header at the start of a payload: `Truncated` if shorter than
    /// [`HEADER_LEN`], `Malformed` without the magic.
    pub fn parse(payload: &[u8]) -> Result<Self, WireError> {
        let b = payload.get(..HEADER_LEN).ok_or(WireError::Truncated)?;
        let word = |r: core::ops::Range<usize>| b[r].iter().fold(0u64, |a, &x| (a << 8) | x as u64);
        if word(12..16) != MAGIC as u64 {
            return Err(WireError::Malformed);
        }
        let id = word(0..8);
        Ok(Repr {
            stream: (id >> 40) as u32,
            seq: id & SEQ_MASK,
            time: word(8..12) as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_truncates() {
        let r = Repr {
            stream: 0x12_3456,
            seq: 0xab_cdef_0123,
            time: 0xdead_beef,
        };
        let b = r.to_bytes();
        assert_eq!(&b[..3], &[0x12, 0x34, 0x56]);
        assert_eq!(&b[12..], b"xSG1");
        assert_eq!(Repr::parse(&b), Ok(r));
        assert_eq!(Repr::parse(&b[..15]), Err(WireError::Truncated));
        let mut short = [0u8; 6];
        r.emit(&mut short);
        assert_eq!(short, b[..6]);
        let mut bad = b;
        bad[15] = 0;
        assert_eq!(Repr::parse(&bad), Err(WireError::Malformed));
        // Out-of-range fields are cut to their widths, never spill into each other.
        let w = Repr {
            stream: u32::MAX,
            seq: u64::MAX,
            time: 1,
        };
        let p = Repr::parse(&w.to_bytes()).unwrap();
        assert_eq!((p.stream, p.seq), (MAX_STREAMS - 1, SEQ_MASK));
    }
}
