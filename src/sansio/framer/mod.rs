//! Framers (sans-IO): per flow a precomputed Ethernet [+VLAN] + IPv4/IPv6 header template;
//! per packet the template and the payload are copied into a frame buffer and only the
//! lengths, the IPv4 ID and the checksums are patched ([`IpTemplate::patch`], the one place
//! that does it). They never write a frame larger than the MTU allows or than the buffer
//! holds: both are errors, checked before a byte is written.
//!
//! - [`UdpFramer`]: datagrams (checksum summed while the payload is copied, or offloaded);
//! - [`TcpFramer`]: segments from a [`tcp::Repr`], and [`parse_segment`] for the way back.

mod tcp;
mod udp;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};

pub use self::tcp::{parse_segment, TcpFramer};
pub use self::udp::UdpFramer;
use super::wire::checksum::{self, Accumulator};
use super::wire::ethernet::{self, MacAddr};
use super::wire::{ipv4, ipv6, probe};

/// Largest header: Ethernet + VLAN + IPv6 + UDP.
pub const MAX_HEADER: usize =
    ethernet::HEADER_LEN + ethernet::VLAN_TAG_LEN + ipv6::HEADER_LEN + super::wire::udp::HEADER_LEN;

/// One flow as it appears on the wire: link-layer addresses, VLAN tag, IP addresses and
/// (UDP or TCP) ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// Our MAC.
    pub src_mac: MacAddr,
    /// Next hop's MAC.
    pub dst_mac: MacAddr,
    /// 802.1Q tag.
    pub vlan: Option<u16>,
    /// Our address and port.
    pub src: SocketAddr,
    /// Peer address and port.
    pub dst: SocketAddr,
}

impl Flow {
    /// Bytes of link-layer header (Ethernet, plus the VLAN tag if any).
    pub fn l2_len(&self) -> usize {
        ethernet::HEADER_LEN + self.vlan.map_or(0, |_| ethernet::VLAN_TAG_LEN)
    }
}

/// Why a packet could not be framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The payload exceeds the MTU.
    #[error("payload of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Payload length.
        len: usize,
        /// Largest payload.
        max: usize,
    },
    /// The frame buffer is too small for the frame.
    #[error("frame of {need} bytes does not fit a buffer of {have}")]
    BufferTooSmall {
        /// Needed.
        need: usize,
        /// Available.
        have: usize,
    },
}

/// A frame the framer refused. Validation happens before anything is sent, so on a send
/// path this only reports a payload over the MTU or a frame the device buffer cannot hold.
impl From<FrameError> for crate::error::Error {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::TooLarge { len, max } => crate::error::Error::MessageTooLarge {
                len: len as u64,
                max: max as u64,
            },
            FrameError::BufferTooSmall { .. } => {
                crate::error::Error::io("framing a packet", std::io::Error::other(e.to_string()))
            }
        }
    }
}

/// Writes payload pieces into a frame while summing them for the L4 checksum (plain copies
/// when the checksum is offloaded).
pub struct PayloadWriter<'f> {
    buf: &'f mut [u8],
    pos: usize,
    acc: Accumulator,
    sum: bool,
}

impl<'f> PayloadWriter<'f> {
    fn new(buf: &'f mut [u8], sum: bool) -> Self {
        PayloadWriter {
            buf,
            pos: 0,
            acc: Accumulator::default(),
            sum,
        }
    }

    /// Append `src` (must fit the announced payload length).
    #[inline]
    pub fn put(&mut self, src: &[u8]) {
        let end = self.pos + src.len();
        if self.sum {
            checksum::copy_and_add(&mut self.buf[self.pos..end], src, &mut self.acc);
        } else {
            self.buf[self.pos..end].copy_from_slice(src);
        }
        self.pos = end;
    }

    /// Append `len` zero bytes (must fit the announced payload length).
    #[inline]
    pub fn put_zeros(&mut self, len: usize) {
        let end = self.pos + len;
        self.buf[self.pos..end].fill(0);
        if self.sum {
            // Zeros add nothing to a ones'-complement sum, but shift the byte parity.
            self.acc.add_zeros(len);
        }
        self.pos = end;
    }

    /// Account for `len` bytes already in place (written into the frame by the kernel, e.g.
    /// by `preadv`): they are summed, not copied.
    #[inline]
    pub fn in_place(&mut self, len: usize) {
        let end = self.pos + len;
        if self.sum {
            self.acc.add(&self.buf[self.pos..end]);
        }
        self.pos = end;
    }

    /// Account for `src`, bytes the device will send from elsewhere (another descriptor):
    /// summed if checksums are made here, not copied.
    #[inline]
    pub fn external(&mut self, src: &[u8]) {
        if self.sum {
            self.acc.add(src);
        }
        self.pos += src.len();
    }

    /// Whether the payload is summed here (checksums in software).
    pub fn sums(&self) -> bool {
        self.sum
    }

    /// Check that exactly `len` bytes were written; the payload's partial sum.
    fn finish(self, len: usize) -> u64 {
        assert_eq!(
            self.pos, len,
            "framer: the payload writer wrote a different length than announced"
        );
        self.acc.partial()
    }
}

/// The Ethernet [+VLAN] + IP part of a flow's headers, with the room after it for the L4
/// header's fixed fields, and the per-packet IP patch.
#[derive(Debug, Clone)]
pub(crate) struct IpTemplate {
    hdr: [u8; MAX_HEADER],
    l3: usize,
    l4: usize,
    v6: bool,
    /// IPv4: sum of the header with total length, ID and checksum zeroed.
    ip_base: u64,
    /// Next IPv4 identification.
    ident: u16,
}

impl IpTemplate {
    /// The template of `flow` carrying L4 protocol `proto`.
    pub(crate) fn new(flow: &Flow, proto: u8) -> Self {
        let v6 = flow.dst.is_ipv6();
        let eth = ethernet::Repr {
            src: flow.src_mac,
            dst: flow.dst_mac,
            vlan: flow.vlan,
            ethertype: if v6 {
                ethernet::ETHERTYPE_IPV6
            } else {
                ethernet::ETHERTYPE_IPV4
            },
        };
        let mut hdr = [0u8; MAX_HEADER];
        eth.emit(&mut hdr);
        let l3 = eth.buffer_len();
        let l4 = l3
            + if v6 {
                ipv6::HEADER_LEN
            } else {
                ipv4::HEADER_LEN
            };
        match (flow.src.ip(), flow.dst.ip()) {
            (IpAddr::V6(s), IpAddr::V6(d)) => ipv6::Repr {
                src: s,
                dst: d,
                next_header: proto,
                payload_len: 0,
                hop_limit: 64,
            }
            .emit(&mut hdr[l3..]),
            (IpAddr::V4(s), IpAddr::V4(d)) => ipv4::Repr {
                src: s,
                dst: d,
                protocol: proto,
                payload_len: 0,
                ttl: 64,
                ident: 0,
            }
            .emit(&mut hdr[l3..]),
            // Mixed families cannot be framed; the addresses stay zero (callers check).
            _ => {}
        }
        let ip_base = if v6 {
            0
        } else {
            let mut h = [0u8; ipv4::HEADER_LEN];
            h.copy_from_slice(&hdr[l3..l4]);
            h[2..6].fill(0);
            h[10..12].fill(0);
            checksum::sum(&h)
        };
        IpTemplate {
            hdr,
            l3,
            l4,
            v6,
            ip_base,
            ident: 1,
        }
    }

    /// Offset of the L4 header in a frame.
    pub(crate) fn l4(&self) -> usize {
        self.l4
    }

    /// Bytes of IP header.
    pub(crate) fn ip_header_len(&self) -> usize {
        self.l4 - self.l3
    }

    /// The template bytes (Ethernet, IP, then what the L4 framer put after them).
    pub(crate) fn bytes(&self) -> &[u8; MAX_HEADER] {
        &self.hdr
    }

    /// Room for the L4 framer's fixed header fields (ports).
    pub(crate) fn l4_fields_mut(&mut self) -> &mut [u8] {
        &mut self.hdr[self.l4..]
    }

    /// Patch the IP header of `frame` for an L4 segment of `l4_len` bytes: the IPv6 payload
    /// length, or the IPv4 total length, the next identification and the header checksum.
    #[inline(always)]
    pub(crate) fn patch(&mut self, frame: &mut [u8], l4_len: u16) {
        let l3 = self.l3;
        if self.v6 {
            frame[l3 + 4..l3 + 6].copy_from_slice(&l4_len.to_be_bytes());
        } else {
            let tot = ipv4::HEADER_LEN as u16 + l4_len;
            let id = self.ident;
            self.ident = self.ident.wrapping_add(1);
            frame[l3 + 2..l3 + 4].copy_from_slice(&tot.to_be_bytes());
            frame[l3 + 4..l3 + 6].copy_from_slice(&id.to_be_bytes());
            let c = checksum::finish(self.ip_base + tot as u64 + id as u64);
            frame[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
    }
}

/// Write a whole probe header at `frame[at..]` from its words (straight from registers: a
/// header built in memory and copied as one 16-byte load stalls on store forwarding every
/// packet); returns its one's-complement partial sum (unfolded; as [`checksum::sum`] of its
/// bytes once folded).
#[inline(always)]
pub(crate) fn put_probe(frame: &mut [u8], at: usize, p: &probe::Repr) -> u64 {
    let [a, b] = p.words();
    frame[at..at + 8].copy_from_slice(&a.to_be_bytes());
    frame[at + 8..at + 16].copy_from_slice(&b.to_be_bytes());
    // Big-endian 32-bit words added unfolded: the same partial sum of 16-bit words once
    // folded.
    (a & 0xffff_ffff) + (a >> 32) + (b & 0xffff_ffff) + (b >> 32)
}

/// Check that a frame of `total` bytes fits `frame`.
fn check_room(frame: &[u8], total: usize) -> Result<(), FrameError> {
    if frame.len() < total {
        return Err(FrameError::BufferTooSmall {
            need: total,
            have: frame.len(),
        });
    }
    Ok(())
}
