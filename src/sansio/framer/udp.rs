//! UDP datagrams of one flow.

use super::{check_room, put_probe, FrameError, IpTemplate, PayloadWriter};
use crate::sansio::wire::checksum;
use crate::sansio::wire::{ipv4, probe, udp};

/// A UDP flow's header template and per-datagram state.
#[derive(Debug, Clone)]
pub struct UdpFramer {
    ip: IpTemplate,
    hdr_len: usize,
    /// Pseudo-header without length, plus both ports of the UDP header.
    pseudo_base: u64,
    /// Pseudo-header without length (addresses and protocol), for offloaded checksums.
    pseudo_addrs: u64,
    max_payload: usize,
    offload: bool,
}

impl UdpFramer {
    /// A framer for `flow` on a path of `mtu` (IP MTU, without Ethernet header).
    pub fn new(flow: &super::Flow, mtu: u32) -> Self {
        let mut ip = IpTemplate::new(flow, ipv4::PROTO_UDP);
        let ports = ip.l4_fields_mut();
        ports[0..2].copy_from_slice(&flow.src.port().to_be_bytes());
        ports[2..4].copy_from_slice(&flow.dst.port().to_be_bytes());
        let pseudo_addrs = udp::pseudo_header(flow.src.ip(), flow.dst.ip(), 0);
        UdpFramer {
            hdr_len: ip.l4() + udp::HEADER_LEN,
            max_payload: (mtu as usize).saturating_sub(ip.ip_header_len() + udp::HEADER_LEN),
            ip,
            pseudo_base: pseudo_addrs + flow.src.port() as u64 + flow.dst.port() as u64,
            pseudo_addrs,
            offload: false,
        }
    }

    /// Leave the UDP checksum to the device (`true`): the field gets the pseudo-header sum
    /// (as for `CHECKSUM_PARTIAL`) and the payload is copied without summing. The frames are
    /// valid only once the device has completed them ([`UdpFramer::checksum_request`]).
    pub fn set_checksum_offload(&mut self, on: bool) {
        self.offload = on;
    }

    /// With offload on: where the device must start summing and where it puts the result
    /// (offsets of the L4 header in the frame and of the checksum field in that header).
    pub fn checksum_request(&self) -> Option<(u16, u16)> {
        self.offload.then_some((self.ip.l4() as u16, 6))
    }

    /// Bytes of headers before the payload.
    pub fn header_len(&self) -> usize {
        self.hdr_len
    }

    /// Largest UDP payload.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Frame length for a payload of `len` bytes.
    pub fn frame_len(&self, len: usize) -> usize {
        self.hdr_len + len
    }

    /// Write one datagram of `payload_len` bytes into `frame`; `fill` must `put` (or account
    /// `in_place`) exactly that many bytes. Returns the frame length.
    #[inline]
    pub fn emit(
        &mut self,
        frame: &mut [u8],
        payload_len: usize,
        fill: impl FnOnce(&mut PayloadWriter<'_>),
    ) -> Result<usize, FrameError> {
        if payload_len > self.max_payload {
            return Err(FrameError::TooLarge {
                len: payload_len,
                max: self.max_payload,
            });
        }
        let total = self.hdr_len + payload_len;
        check_room(frame, total)?;
        frame[..self.hdr_len].copy_from_slice(&self.ip.bytes()[..self.hdr_len]);
        let mut w = PayloadWriter::new(&mut frame[self.hdr_len..total], !self.offload);
        fill(&mut w);
        let payload_sum = w.finish(payload_len);
        let udp_len = (udp::HEADER_LEN + payload_len) as u16;
        self.ip.patch(frame, udp_len);
        let l4 = self.ip.l4();
        frame[l4 + 4..l4 + 6].copy_from_slice(&udp_len.to_be_bytes());
        let c = if self.offload {
            // The device sums the UDP header and payload over this.
            checksum::fold(self.pseudo_addrs + udp_len as u64)
        } else {
            // Length counted twice: once in the pseudo-header, once in the UDP header.
            udp::checksum_field(self.pseudo_base + 2 * udp_len as u64 + payload_sum)
        };
        frame[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
        Ok(total)
    }

    /// Re-stamp a frame that already holds a datagram of this flow and `payload_len` bytes
    /// whose payload is `prefix` followed by zeros (written by [`UdpFramer::emit`] before):
    /// writes the new `prefix` and patches only the IPv4 ID and checksum and the UDP
    /// checksum. For generators that recycle frames: a few bytes per packet instead of the
    /// whole payload.
    #[inline]
    pub fn restamp(&mut self, frame: &mut [u8], payload_len: usize, prefix: &[u8]) {
        let start = self.hdr_len;
        frame[start..start + prefix.len()].copy_from_slice(prefix);
        let psum = if self.offload {
            0
        } else {
            checksum::sum(prefix)
        };
        self.restamped(frame, payload_len, psum);
    }

    /// [`UdpFramer::restamp`] with a whole probe header as the prefix (a payload of at least
    /// [`probe::HEADER_LEN`] bytes), written from registers.
    #[inline]
    pub fn restamp_probe(&mut self, frame: &mut [u8], payload_len: usize, p: &probe::Repr) {
        let psum = put_probe(frame, self.hdr_len, p);
        self.restamped(frame, payload_len, psum);
    }

    /// The headers of a re-stamped datagram whose payload sums to `psum`.
    #[inline(always)]
    fn restamped(&mut self, frame: &mut [u8], payload_len: usize, psum: u64) {
        let udp_len = (udp::HEADER_LEN + payload_len) as u16;
        self.ip.patch(frame, udp_len);
        if self.offload {
            // The pseudo-header sum in the field does not change.
            return;
        }
        // Zeros add nothing to the sum: only the prefix counts.
        let c = udp::checksum_field(self.pseudo_base + 2 * udp_len as u64 + psum);
        let l4 = self.ip.l4();
        frame[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
    }
}
