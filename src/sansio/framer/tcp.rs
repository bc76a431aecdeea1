//! TCP segments of one flow, and parsing the segments that come back.

use std::net::{IpAddr, SocketAddr};

use super::{check_room, put_probe, Flow, FrameError, IpTemplate, PayloadWriter};
use crate::sansio::wire::checksum;
use crate::sansio::wire::{ethernet, ipv4, ipv6, probe, tcp};

/// A TCP flow's Ethernet + IP header template; per segment the TCP header (with options) is
/// written from a [`tcp::Repr`] and the checksum summed while the payload is copied.
#[derive(Debug, Clone)]
pub struct TcpFramer {
    ip: IpTemplate,
    pseudo_base: u64,
    src_port: u16,
    dst_port: u16,
    mtu: usize,
    offload: bool,
}

impl TcpFramer {
    /// A framer for `flow` (its ports are the TCP ports) on a path of `mtu`.
    pub fn new(flow: &Flow, mtu: u32) -> Self {
        TcpFramer {
            ip: IpTemplate::new(flow, tcp::PROTO_TCP),
            pseudo_base: tcp::pseudo_header(flow.src.ip(), flow.dst.ip(), 0),
            src_port: flow.src.port(),
            dst_port: flow.dst.port(),
            mtu: mtu as usize,
            offload: false,
        }
    }

    /// Leave the TCP checksum to the device, as [`super::UdpFramer::set_checksum_offload`].
    pub fn set_checksum_offload(&mut self, on: bool) {
        self.offload = on;
    }

    /// With offload on: the L4 header's offset in the frame and the checksum field's in it.
    pub fn checksum_request(&self) -> Option<(u16, u16)> {
        self.offload.then_some((self.ip.l4() as u16, 16))
    }

    /// Largest segment payload with `options_len` bytes of TCP options (the MSS to announce is
    /// this with no options).
    pub fn max_payload(&self, options_len: usize) -> usize {
        self.mtu
            .saturating_sub(self.ip.ip_header_len() + tcp::HEADER_LEN + options_len)
    }

    /// Bytes of headers before the payload of a segment without options.
    pub fn header_len(&self) -> usize {
        self.ip.l4() + tcp::HEADER_LEN
    }

    /// Frame length of a segment.
    pub fn frame_len(&self, seg: &tcp::Repr) -> usize {
        self.ip.l4() + seg.header_len() + seg.payload_len
    }

    /// Write segment `seg` (ports are filled in) with `seg.payload_len` bytes that `fill` must
    /// `put` (or account `in_place`); returns the frame length.
    #[inline]
    pub fn emit(
        &mut self,
        frame: &mut [u8],
        seg: &tcp::Repr,
        fill: impl FnOnce(&mut PayloadWriter<'_>),
    ) -> Result<usize, FrameError> {
        let th = seg.header_len();
        let max = self.max_payload(th - tcp::HEADER_LEN);
        if seg.payload_len > max {
            return Err(FrameError::TooLarge {
                len: seg.payload_len,
                max,
            });
        }
        let l4 = self.ip.l4();
        let start = l4 + th;
        let total = start + seg.payload_len;
        check_room(frame, total)?;
        frame[..l4].copy_from_slice(&self.ip.bytes()[..l4]);
        let r = tcp::Repr {
            src_port: self.src_port,
            dst_port: self.dst_port,
            ..*seg
        };
        r.emit(&mut frame[l4..start]);
        let mut w = PayloadWriter::new(&mut frame[start..total], !self.offload);
        fill(&mut w);
        let payload_sum = w.finish(seg.payload_len);
        let tcp_len = (th + seg.payload_len) as u16;
        self.ip.patch(frame, tcp_len);
        let c = if self.offload {
            checksum::fold(self.pseudo_base + tcp_len as u64)
        } else {
            let hsum = checksum::sum(&frame[l4..start]);
            checksum::finish(self.pseudo_base + tcp_len as u64 + hsum + payload_sum)
        };
        frame[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
        Ok(total)
    }

    /// Re-stamp a frame written by [`TcpFramer::emit`] for a segment without options whose
    /// payload is `prefix` followed by zeros: writes the new sequence number and `prefix`,
    /// patches the IPv4 ID and checksum and the TCP checksum (stateless generators).
    #[inline]
    pub fn restamp(&mut self, frame: &mut [u8], seg: &tcp::Repr, prefix: &[u8]) {
        let start = self.ip.l4() + tcp::HEADER_LEN;
        frame[start..start + prefix.len()].copy_from_slice(prefix);
        let psum = if self.offload {
            0
        } else {
            checksum::sum(prefix)
        };
        self.restamped(frame, seg, psum);
    }

    /// [`TcpFramer::restamp`] with a whole probe header as the prefix (a payload of at least
    /// [`probe::HEADER_LEN`] bytes), written from registers.
    #[inline]
    pub fn restamp_probe(&mut self, frame: &mut [u8], seg: &tcp::Repr, p: &probe::Repr) {
        let psum = put_probe(frame, self.ip.l4() + tcp::HEADER_LEN, p);
        self.restamped(frame, seg, psum);
    }

    /// Sequence number and headers of a re-stamped segment whose payload sums to `psum`.
    #[inline(always)]
    fn restamped(&mut self, frame: &mut [u8], seg: &tcp::Repr, psum: u64) {
        let l4 = self.ip.l4();
        let start = l4 + tcp::HEADER_LEN;
        frame[l4 + 4..l4 + 8].copy_from_slice(&seg.seq.to_be_bytes());
        let tcp_len = (tcp::HEADER_LEN + seg.payload_len) as u16;
        self.ip.patch(frame, tcp_len);
        if self.offload {
            // Same length: the pseudo-header sum in the field stands.
            return;
        }
        frame[l4 + 16..l4 + 18].fill(0);
        let hsum = checksum::sum(&frame[l4..start]);
        let c = checksum::finish(self.pseudo_base + tcp_len as u64 + hsum + psum);
        frame[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
    }
}

/// Parse a received frame: `Some` only for a TCP segment from `peer` to local port `lport`.
///
/// The checksum is not verified: veth hands XDP frames over with `CHECKSUM_PARTIAL` (only
/// the pseudo-header summed), so a software check would refuse valid segments.
pub fn parse_segment(frame: &[u8], peer: SocketAddr, lport: u16) -> Option<tcp::Repr> {
    let eth = ethernet::Frame::new_checked(frame).ok()?;
    let l3 = &frame[eth.header_len()..];
    // Slice by the IP length: short frames carry Ethernet padding.
    let l4 = match (eth.ethertype(), peer.ip()) {
        (ethernet::ETHERTYPE_IPV4, IpAddr::V4(p)) => {
            let ip = ipv4::Packet::new_checked(l3).ok()?;
            if ip.src() != p || ip.protocol() != tcp::PROTO_TCP {
                return None;
            }
            l3.get(ip.header_len()..ip.total_len() as usize)?
        }
        (ethernet::ETHERTYPE_IPV6, IpAddr::V6(p)) => {
            let ip = ipv6::Packet::new_checked(l3).ok()?;
            if ip.src() != p || ip.next_header() != tcp::PROTO_TCP {
                return None;
            }
            l3.get(ipv6::HEADER_LEN..ipv6::HEADER_LEN + ip.payload_len() as usize)?
        }
        _ => return None,
    };
    let p = tcp::Packet::new_checked(l4).ok()?;
    if p.src_port() != peer.port() || p.dst_port() != lport {
        return None;
    }
    tcp::Repr::parse(&p).ok()
}
