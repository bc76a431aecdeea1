//! UDP headers and the pseudo-header checksum (IPv4 and IPv6).

use std::net::IpAddr;

use super::{checksum, WireError};

/// Header length.
pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }
    /// Wrap after checking the length field against the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        let b = p.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let l = p.len() as usize;
        if l < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if b.len() < l {
            return Err(WireError::Truncated);
        }
        Ok(p)
    }
    /// Source port.
    pub fn src_port(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[0], b[1]])
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[2], b[3]])
    }
    /// Length field (header + payload).
    pub fn len(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[4], b[5]])
    }
    /// True if the length field says there is no payload.
    pub fn is_empty(&self) -> bool {
        self.len() as usize == HEADER_LEN
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[6], b[7]])
    }
    /// Payload.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len() as usize]
    }
    /// Verify the checksum (0 = none is accepted for IPv4 only).
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        if self.checksum() == 0 {
            return src.is_ipv4();
        }
        let d = &self.buffer.as_ref()[..self.len() as usize];
        checksum::fold(pseudo_header(src, dst, d.len() as u32) + checksum::sum(d)) == 0xffff
    }
}

/// Partial sum of the pseudo-header (addresses, protocol 17, UDP length).
pub fn pseudo_header(src: IpAddr, dst: IpAddr, udp_len: u32) -> u64 {
    let mut s = match (src, dst) {
        (IpAddr::V4(a), IpAddr::V4(b)) => checksum::sum(&a.octets()) + checksum::sum(&b.octets()),
        (IpAddr::V6(a), IpAddr::V6(b)) => checksum::sum(&a.octets()) + checksum::sum(&b.octets()),
        _ => 0,
    };
    s += 17 + (udp_len >> 16) as u64 + (udp_len & 0xffff) as u64;
    s
}

/// Largest UDP payload on a path of `mtu` (IP MTU) without fragmentation: the MTU minus the
/// IP and UDP headers, and never over what a UDP length field can say.
pub fn max_payload(mtu: u32, v6: bool) -> u64 {
    let (hdr, cap) = if v6 {
        (40 + 8, 65_527)
    } else {
        (20 + 8, 65_507)
    };
    (mtu as u64).saturating_sub(hdr).min(cap)
}

/// The value for the checksum field from a full partial sum; 0 is sent as 0xffff.
pub fn checksum_field(partial: u64) -> u16 {
    match checksum::finish(partial) {
        0 => 0xffff,
        c => c,
    }
}

/// Parsed UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl Repr {
    /// Parse a checked datagram, verifying its checksum.
    pub fn parse<T: AsRef<[u8]>>(
        p: &Packet<T>,
        src: IpAddr,
        dst: IpAddr,
    ) -> Result<Self, WireError> {
        if !p.verify_checksum(src, dst) {
            return Err(WireError::Malformed);
        }
        Ok(Repr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
        })
    }
    /// Header length.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }
    /// Write header for `payload` with a full checksum (buf holds header then payload).
    pub fn emit(&self, buf: &mut [u8], payload_len: usize, src: IpAddr, dst: IpAddr) {
        let len = (HEADER_LEN + payload_len) as u16;
        buf[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        buf[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        buf[4..6].copy_from_slice(&len.to_be_bytes());
        buf[6..8].fill(0);
        let s = pseudo_header(src, dst, len as u32) + checksum::sum(&buf[..len as usize]);
        buf[6..8].copy_from_slice(&checksum_field(s).to_be_bytes());
    }
}
