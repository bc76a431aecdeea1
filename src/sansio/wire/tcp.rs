//! TCP headers and options (RFC 9293, RFC 7323 window scale and timestamps, RFC 2018 SACK).

use std::net::IpAddr;

use super::{checksum, WireError};

/// Header length without options.
pub const HEADER_LEN: usize = 20;
/// Largest header (data offset 15).
pub const MAX_HEADER_LEN: usize = 60;
/// IP protocol number.
pub const PROTO_TCP: u8 = 6;

bitflags::bitflags! {
    /// Control bits.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct Flags: u8 {
        /// No more data from sender.
        const FIN = 0x01;
        /// Synchronize sequence numbers.
        const SYN = 0x02;
        /// Reset the connection.
        const RST = 0x04;
        /// Push function.
        const PSH = 0x08;
        /// Acknowledgment field significant.
        const ACK = 0x10;
        /// Urgent pointer field significant.
        const URG = 0x20;
        /// ECN echo.
        const ECE = 0x40;
        /// Congestion window reduced.
        const CWR = 0x80;
    }
}

/// Up to four SACK blocks (left, right) in sequence space.
pub const MAX_SACK: usize = 4;

/// The options xsend reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// Maximum segment size (SYN only).
    pub mss: Option<u16>,
    /// Window scale shift (SYN only).
    pub wscale: Option<u8>,
    /// SACK permitted (SYN only).
    pub sack_permitted: bool,
    /// Timestamps (TSval, TSecr).
    pub timestamps: Option<(u32, u32)>,
    /// SACK blocks; the first `sack_len` are valid.
    pub sack: [(u32, u32); MAX_SACK],
    /// Number of valid SACK blocks.
    pub sack_len: u8,
}

impl Options {
    /// Bytes these options take on the wire, padded to 4.
    pub fn buffer_len(&self) -> usize {
        let mut n = 0;
        if self.mss.is_some() {
            n += 4;
        }
        if self.wscale.is_some() {
            n += 3;
        }
        if self.sack_permitted {
            n += 2;
        }
        if self.timestamps.is_some() {
            n += 10;
        }
        if self.sack_len > 0 {
            n += 2 + 8 * self.sack_len as usize;
        }
        n.div_ceil(4) * 4
    }

    /// SACK blocks present.
    pub fn sack_blocks(&self) -> &[(u32, u32)] {
        &self.sack[..self.sack_len as usize]
    }

    /// Parse the option bytes (between the fixed header and the data).
    pub fn parse(mut b: &[u8]) -> Result<Self, WireError> {
        let mut o = Options::default();
        while let Some(&kind) = b.first() {
            match kind {
                0 => break,
                1 => {
                    b = &b[1..];
                    continue;
                }
                _ => {}
            }
            let len = *b.get(1).ok_or(WireError::Malformed)? as usize;
            if len < 2 || len > b.len() {
                return Err(WireError::Malformed);
            }
            let v = &b[2..len];
            match (kind, len) {
                (2, 4) => o.mss = Some(u16::from_be_bytes([v[0], v[1]])),
                (3, 3) => o.wscale = Some(v[0].min(14)),
                (4, 2) => o.sack_permitted = true,
                (8, 10) => {
                    o.timestamps = Some((
                        u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
                        u32::from_be_bytes([v[4], v[5], v[6], v[7]]),
                    ))
                }
                (5, l) if l >= 10 && (l - 2) % 8 == 0 => {
                    for (i, c) in v.chunks_exact(8).take(MAX_SACK).enumerate() {
                        o.sack[i] = (
                            u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                            u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
                        );
                        o.sack_len = i as u8 + 1;
                    }
                }
                (2..=5 | 8, _) => return Err(WireError::Malformed),
                _ => {} // unknown options are skipped
            }
            b = &b[len..];
        }
        Ok(o)
    }

    /// Write the options into `buf` (at least [`Options::buffer_len`] bytes), NOP-padded.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let mut i = 0;
        let mut put = |bytes: &[u8], i: &mut usize| {
            buf[*i..*i + bytes.len()].copy_from_slice(bytes);
            *i += bytes.len();
        };
        if let Some(m) = self.mss {
            let m = m.to_be_bytes();
            put(&[2, 4, m[0], m[1]], &mut i);
        }
        if self.sack_permitted {
            put(&[4, 2], &mut i);
        }
        if let Some((val, ecr)) = self.timestamps {
            put(&[8, 10], &mut i);
            put(&val.to_be_bytes(), &mut i);
            put(&ecr.to_be_bytes(), &mut i);
        }
        if let Some(s) = self.wscale {
            put(&[3, 3, s], &mut i);
        }
        if self.sack_len > 0 {
            put(&[5, 2 + 8 * self.sack_len], &mut i);
            for &(l, r) in self.sack_blocks() {
                put(&l.to_be_bytes(), &mut i);
                put(&r.to_be_bytes(), &mut i);
            }
        }
        while i % 4 != 0 {
            put(&[1], &mut i);
        }
        i
    }
}

/// A view of a TCP segment (header, options, data).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }
    /// Wrap after checking the data offset against the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        let b = p.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let h = p.header_len();
        if h < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if b.len() < h {
            return Err(WireError::Truncated);
        }
        Ok(p)
    }
    fn u16_at(&self, i: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[i], b[i + 1]])
    }
    fn u32_at(&self, i: usize) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
    }
    /// Source port.
    pub fn src_port(&self) -> u16 {
        self.u16_at(0)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        self.u16_at(2)
    }
    /// Sequence number.
    pub fn seq(&self) -> u32 {
        self.u32_at(4)
    }
    /// Acknowledgment number.
    pub fn ack(&self) -> u32 {
        self.u32_at(8)
    }
    /// Header length including options (data offset × 4).
    pub fn header_len(&self) -> usize {
        (self.buffer.as_ref()[12] >> 4) as usize * 4
    }
    /// Control bits.
    pub fn flags(&self) -> Flags {
        Flags::from_bits_retain(self.buffer.as_ref()[13])
    }
    /// Window field (unscaled).
    pub fn window(&self) -> u16 {
        self.u16_at(14)
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        self.u16_at(16)
    }
    /// Option bytes.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }
    /// Data.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
    /// Verify the checksum over the whole buffer (the buffer must be exactly the segment).
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        let d = self.buffer.as_ref();
        checksum::fold(pseudo_header(src, dst, d.len() as u32) + checksum::sum(d)) == 0xffff
    }
}

/// Partial sum of the TCP pseudo-header (addresses, protocol 6, TCP length).
pub fn pseudo_header(src: IpAddr, dst: IpAddr, tcp_len: u32) -> u64 {
    let addrs = match (src, dst) {
        (IpAddr::V4(a), IpAddr::V4(b)) => checksum::sum(&a.octets()) + checksum::sum(&b.octets()),
        (IpAddr::V6(a), IpAddr::V6(b)) => checksum::sum(&a.octets()) + checksum::sum(&b.octets()),
        _ => 0,
    };
    addrs + PROTO_TCP as u64 + (tcp_len >> 16) as u64 + (tcp_len & 0xffff) as u64
}

/// A parsed TCP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Control bits.
    pub flags: Flags,
    /// Window field (unscaled).
    pub window: u16,
    /// Options.
    pub options: Options,
    /// Bytes of data carried.
    pub payload_len: usize,
}

impl Repr {
    /// Parse a checked packet.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self, WireError> {
        Ok(Repr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq: p.seq(),
            ack: p.ack(),
            flags: p.flags(),
            window: p.window(),
            options: Options::parse(p.options())?,
            payload_len: p.payload().len(),
        })
    }

    /// Header length with options.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.buffer_len()
    }

    /// Write the header and options (checksum field zero) into `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let h = self.header_len();
        buf[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        buf[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        buf[4..8].copy_from_slice(&self.seq.to_be_bytes());
        buf[8..12].copy_from_slice(&self.ack.to_be_bytes());
        buf[12] = ((h / 4) as u8) << 4;
        buf[13] = self.flags.bits();
        buf[14..16].copy_from_slice(&self.window.to_be_bytes());
        buf[16..20].fill(0);
        self.options.emit(&mut buf[HEADER_LEN..h]);
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn syn_options_round_trip_and_etherparse_agrees() {
        let r = Repr {
            src_port: 40000,
            dst_port: 80,
            seq: 0xfffffff0,
            ack: 0,
            flags: Flags::SYN,
            window: 65535,
            options: Options {
                mss: Some(1460),
                wscale: Some(7),
                sack_permitted: true,
                timestamps: Some((1, 0)),
                ..Default::default()
            },
            payload_len: 0,
        };
        let mut b = [0u8; 60];
        let n = r.emit(&mut b);
        assert_eq!(n, 40);
        let p = Packet::new_checked(&b[..n]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap(), r);
        let (h, _) = etherparse::TcpHeader::from_slice(&b[..n]).unwrap();
        assert!(h.syn);
        assert_eq!(h.sequence_number, 0xfffffff0);
        assert_eq!(h.options.len(), 20);
    }

    #[test]
    fn sack_blocks_parse_and_malformed_options_are_refused() {
        let mut o = Options {
            timestamps: Some((5, 6)),
            sack_len: 3,
            ..Default::default()
        };
        o.sack[..3].copy_from_slice(&[(1, 2), (3, 4), (u32::MAX - 1, 7)]);
        let mut b = [0u8; 40];
        let n = o.emit(&mut b);
        assert_eq!(n, o.buffer_len());
        assert_eq!(Options::parse(&b[..n]).unwrap(), o);
        assert_eq!(Options::parse(&[2, 4, 5]), Err(WireError::Malformed));
        assert_eq!(Options::parse(&[8, 1]), Err(WireError::Malformed));
        assert_eq!(Options::parse(&[2, 3, 5]), Err(WireError::Malformed));
        // Unknown options are skipped, EOL ends the list.
        assert_eq!(
            Options::parse(&[30, 3, 0, 1, 0, 2, 4, 5, 5]).unwrap(),
            Options::default()
        );
    }

    #[test]
    fn checksum_matches_etherparse() {
        let src: IpAddr = "198.18.0.1".parse().unwrap();
        let dst: IpAddr = "198.18.0.2".parse().unwrap();
        let r = Repr {
            src_port: 1,
            dst_port: 2,
            seq: 3,
            ack: 4,
            flags: Flags::ACK | Flags::PSH,
            window: 100,
            options: Options {
                timestamps: Some((9, 8)),
                ..Default::default()
            },
            payload_len: 5,
        };
        let mut b = [0u8; 37];
        let h = r.emit(&mut b);
        b[h..h + 5].copy_from_slice(b"hello");
        let seg = &mut b[..h + 5];
        let c = checksum::finish(pseudo_header(src, dst, seg.len() as u32) + checksum::sum(seg));
        seg[16..18].copy_from_slice(&c.to_be_bytes());
        assert!(Packet::new_checked(&*seg)
            .unwrap()
            .verify_checksum(src, dst));
        let (eh, _) = etherparse::TcpHeader::from_slice(seg).unwrap();
        let want = eh
            .calc_checksum_ipv4_raw([198, 18, 0, 1], [198, 18, 0, 2], b"hello")
            .unwrap();
        assert_eq!(c, want);
    }

    proptest! {
        #[test]
        fn parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = Packet::new_checked(&b[..]) {
                let _ = Repr::parse(&p);
            }
        }
    }
}
