//! The xsend chunk header: carried at the start of every datagram of a chunked send so a
//! receiver can check loss, duplication, order and content, and measure one-way latency.
//!
//! ```text
//!  0      4    5     6      8                16               24               32
//!  +------+----+-----+------+----------------+----------------+----------------+
//!  |magic |ver |flags| flow |   sequence     |  file offset   | send time (ns) |
//!  +------+----+-----+------+----------------+----------------+----------------+
//! ```
//! All fields big-endian. `magic` is `XSND`. A datagram with [`FLAG_END`] carries no payload:
//! its `sequence` is the number of data datagrams and its `offset` the total byte count.

use super::WireError;

/// `b"XSND"`.
pub const MAGIC: u32 = 0x5853_4e44;
/// Header version.
pub const VERSION: u8 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 32;
/// End-of-stream marker (no payload; sequence = datagram count, offset = total bytes).
pub const FLAG_END: u8 = 0x01;

mod field {
    use core::ops::Range;
    pub const MAGIC: Range<usize> = 0..4;
    pub const VER: usize = 4;
    pub const FLAGS: usize = 5;
    pub const FLOW: Range<usize> = 6..8;
    pub const SEQ: Range<usize> = 8..16;
    pub const OFFSET: Range<usize> = 16..24;
    pub const TIME: Range<usize> = 24..32;
}

/// A read/write view of an xsend header at the start of a buffer.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap without checks (field accessors panic on a short buffer).
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wrap after checking length, magic and version.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }

    /// Check length, magic and version.
    pub fn check(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.magic() != MAGIC || self.version() != VERSION {
            return Err(WireError::Malformed);
        }
        Ok(())
    }

    fn u64_at(&self, r: core::ops::Range<usize>) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&self.buffer.as_ref()[r]);
        u64::from_be_bytes(a)
    }

    /// Magic number.
    pub fn magic(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::MAGIC];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
    /// Version.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER]
    }
    /// Flags.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }
    /// Flow id.
    pub fn flow(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::FLOW];
        u16::from_be_bytes([b[0], b[1]])
    }
    /// Sequence number.
    pub fn seq(&self) -> u64 {
        self.u64_at(field::SEQ)
    }
    /// Byte offset of the payload in the stream.
    pub fn offset(&self) -> u64 {
        self.u64_at(field::OFFSET)
    }
    /// Send time, ns since the Unix epoch (CLOCK_REALTIME).
    pub fn timestamp_ns(&self) -> u64 {
        self.u64_at(field::TIME)
    }
    /// The payload after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set flow id.
    pub fn set_flow(&mut self, v: u16) {
        self.buffer.as_mut()[field::FLOW].copy_from_slice(&v.to_be_bytes());
    }
    /// Set sequence number.
    pub fn set_seq(&mut self, v: u64) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&v.to_be_bytes());
    }
    /// Set stream offset.
    pub fn set_offset(&mut self, v: u64) {
        self.buffer.as_mut()[field::OFFSET].copy_from_slice(&v.to_be_bytes());
    }
    /// Set send timestamp.
    pub fn set_timestamp_ns(&mut self, v: u64) {
        self.buffer.as_mut()[field::TIME].copy_from_slice(&v.to_be_bytes());
    }
}

/// Parsed xsend header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Repr {
    /// Flags ([`FLAG_END`]).
    pub flags: u8,
    /// Flow id.
    pub flow: u16,
    /// Sequence number.
    pub seq: u64,
    /// Stream offset.
    pub offset: u64,
    /// Send time in ns.
    pub timestamp_ns: u64,
}

impl Repr {
    /// Parse a checked packet.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self, WireError> {
        p.check()?;
        Ok(Repr {
            flags: p.flags(),
            flow: p.flow(),
            seq: p.seq(),
            offset: p.offset(),
            timestamp_ns: p.timestamp_ns(),
        })
    }

    /// Header length.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the header into the first [`HEADER_LEN`] bytes of `buf`.
    ///
    /// # Panics
    /// If `buf` is shorter than [`HEADER_LEN`].
    pub fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..HEADER_LEN];
        b[field::MAGIC].copy_from_slice(&MAGIC.to_be_bytes());
        b[field::VER] = VERSION;
        b[field::FLAGS] = self.flags;
        b[field::FLOW].copy_from_slice(&self.flow.to_be_bytes());
        b[field::SEQ].copy_from_slice(&self.seq.to_be_bytes());
        b[field::OFFSET].copy_from_slice(&self.offset.to_be_bytes());
        b[field::TIME].copy_from_slice(&self.timestamp_ns.to_be_bytes());
    }

    /// True for an end-of-stream marker.
    pub fn is_end(&self) -> bool {
        self.flags & FLAG_END != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: [u8; 32] = [
        b'X', b'S', b'N', b'D', 1, 0, 0x12, 0x34, // magic, ver, flags, flow
        0, 0, 0, 0, 0, 0, 0x01, 0x02, // seq 258
        0, 0, 0, 1, 0, 0, 0, 0, // offset 2^32
        0, 0, 0, 0, 0, 0, 0, 9, // time 9
    ];

    #[test]
    fn parse_fixture() {
        let p = Packet::new_checked(&FIXTURE[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Repr {
                flags: 0,
                flow: 0x1234,
                seq: 258,
                offset: 1 << 32,
                timestamp_ns: 9
            }
        );
        let mut out = [0u8; 32];
        r.emit(&mut out);
        assert_eq!(out, FIXTURE);
    }

    #[test]
    fn rejects_short_and_foreign() {
        assert_eq!(
            Packet::new_checked(&FIXTURE[..31]).unwrap_err(),
            WireError::Truncated
        );
        let mut bad = FIXTURE;
        bad[0] = b'Y';
        assert_eq!(
            Packet::new_checked(&bad[..]).unwrap_err(),
            WireError::Malformed
        );
        let mut bad = FIXTURE;
        bad[4] = 2;
        assert!(Packet::new_checked(&bad[..]).is_err());
    }

    #[test]
    fn setters_patch_in_place() {
        let mut buf = [0u8; 40];
        Repr {
            flags: FLAG_END,
            flow: 1,
            ..Default::default()
        }
        .emit(&mut buf);
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_seq(u64::MAX);
        p.set_offset(7);
        p.set_timestamp_ns(8);
        let r = Repr::parse(&p).unwrap();
        assert!(r.is_end());
        assert_eq!((r.seq, r.offset, r.timestamp_ns), (u64::MAX, 7, 8));
        assert_eq!(p.payload().len(), 8);
    }

    proptest::proptest! {
        #[test]
        fn roundtrip(flags: u8, flow: u16, seq: u64, offset: u64, ts: u64) {
            let r = Repr { flags, flow, seq, offset, timestamp_ns: ts };
            let mut b = [0u8; HEADER_LEN];
            r.emit(&mut b);
            proptest::prop_assert_eq!(Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap(), r);
        }
    }
}
