//! ARP for IPv4 over Ethernet (RFC 826): the 28-byte packet after the Ethernet header.

use std::net::Ipv4Addr;

use super::ethernet::MacAddr;
use super::WireError;

/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;
/// `op`: request.
pub const OP_REQUEST: u16 = 1;
/// `op`: reply.
pub const OP_REPLY: u16 = 2;

/// A parsed Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Request or reply.
    pub op: u16,
    /// Sender hardware address.
    pub sender_mac: MacAddr,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address (zero in requests).
    pub target_mac: MacAddr,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

impl Repr {
    /// Parse the bytes after the Ethernet header; only Ethernet/IPv4 ARP is accepted.
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        if b.len() < PACKET_LEN {
            return Err(WireError::Truncated);
        }
        // htype 1 (Ethernet), ptype IPv4, hlen 6, plen 4.
        if b[0..6] != [0, 1, 0x08, 0x00, 6, 4] {
            return Err(WireError::Malformed);
        }
        let mac = |o: usize| MacAddr(b[o..o + 6].try_into().unwrap_or_default());
        let ip = |o: usize| Ipv4Addr::new(b[o], b[o + 1], b[o + 2], b[o + 3]);
        Ok(Repr {
            op: u16::from_be_bytes([b[6], b[7]]),
            sender_mac: mac(8),
            sender_ip: ip(14),
            target_mac: mac(18),
            target_ip: ip(24),
        })
    }

    /// Write the 28 bytes into `buf[..PACKET_LEN]`.
    pub fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..PACKET_LEN];
        b[0..6].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
        b[6..8].copy_from_slice(&self.op.to_be_bytes());
        b[8..14].copy_from_slice(&self.sender_mac.0);
        b[14..18].copy_from_slice(&self.sender_ip.octets());
        b[18..24].copy_from_slice(&self.target_mac.0);
        b[24..28].copy_from_slice(&self.target_ip.octets());
    }
}
