//! The framer (sans-IO): per flow a precomputed Ethernet [+VLAN] + IPv4/IPv6 + UDP header
//! template; per datagram it copies the template and the payload into a frame buffer and
//! patches only lengths, the IPv4 ID and the checksums (the UDP checksum is summed while the
//! payload is copied). It never writes a frame larger than the MTU allows.

use std::net::{IpAddr, SocketAddr};

use crate::wire::checksum::{self, Accumulator};
use crate::wire::ethernet::{self, MacAddr};
use crate::wire::{ipv4, ipv6, tcp, udp};

/// Largest header: Ethernet + VLAN + IPv6 + UDP.
pub const MAX_HEADER: usize =
    ethernet::HEADER_LEN + ethernet::VLAN_TAG_LEN + ipv6::HEADER_LEN + udp::HEADER_LEN;

/// One UDP flow as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpFlow {
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

/// Why a datagram could not be framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The payload exceeds the MTU.
    #[error("datagram of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Payload length.
        len: usize,
        /// Largest payload.
        max: usize,
    },
    /// The frame buffer is too small for the datagram.
    #[error("frame buffer of {have} bytes, {need} needed")]
    BufferTooSmall {
        /// Needed.
        need: usize,
        /// Available.
        have: usize,
    },
}

/// Writes payload pieces into a frame while summing them for the L4 checksum (plain copies
/// when the checksum is offloaded).
pub struct PayloadWriter<'f> {
    buf: &'f mut [u8],
    pos: usize,
    acc: Accumulator,
    sum: bool,
}

impl PayloadWriter<'_> {
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
}

/// A UDP flow's header template and per-datagram state.
#[derive(Debug, Clone)]
pub struct UdpFramer {
    hdr: [u8; MAX_HEADER],
    hdr_len: usize,
    l3: usize,
    l4: usize,
    v6: bool,
    ip_base: u64,
    pseudo_base: u64,
    /// Pseudo-header without length (addresses and protocol), for offloaded checksums.
    pseudo_addrs: u64,
    ident: u16,
    max_payload: usize,
    offload: bool,
}

impl UdpFramer {
    /// A framer for `flow` on an interface of `mtu` (IP MTU, without Ethernet header).
    pub fn new(flow: &UdpFlow, mtu: u32) -> Self {
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
        let (l4, ip_hdr) = if v6 {
            (l3 + ipv6::HEADER_LEN, ipv6::HEADER_LEN)
        } else {
            (l3 + ipv4::HEADER_LEN, ipv4::HEADER_LEN)
        };
        match (flow.src.ip(), flow.dst.ip()) {
            (IpAddr::V6(s), IpAddr::V6(d)) => ipv6::Repr {
                src: s,
                dst: d,
                next_header: ipv4::PROTO_UDP,
                payload_len: 0,
                hop_limit: 64,
            }
            .emit(&mut hdr[l3..]),
            (IpAddr::V4(s), IpAddr::V4(d)) => ipv4::Repr {
                src: s,
                dst: d,
                protocol: ipv4::PROTO_UDP,
                payload_len: 0,
                ttl: 64,
                ident: 0,
            }
            .emit(&mut hdr[l3..]),
            _ => {}
        }
        let ip_base = if v6 {
            0
        } else {
            // The IPv4 header with total length, ID and checksum zeroed.
            let mut h = [0u8; ipv4::HEADER_LEN];
            h.copy_from_slice(&hdr[l3..l4]);
            h[2..6].fill(0);
            h[10..12].fill(0);
            checksum::sum(&h)
        };
        hdr[l4..l4 + 2].copy_from_slice(&flow.src.port().to_be_bytes());
        hdr[l4 + 2..l4 + 4].copy_from_slice(&flow.dst.port().to_be_bytes());
        // Pseudo-header without length, plus both ports of the UDP header.
        let pseudo_base = udp::pseudo_header(flow.src.ip(), flow.dst.ip(), 0)
            + flow.src.port() as u64
            + flow.dst.port() as u64;
        UdpFramer {
            hdr,
            hdr_len: l4 + udp::HEADER_LEN,
            l3,
            l4,
            v6,
            ip_base,
            pseudo_base,
            pseudo_addrs: udp::pseudo_header(flow.src.ip(), flow.dst.ip(), 0),
            ident: 1,
            max_payload: (mtu as usize).saturating_sub(ip_hdr + udp::HEADER_LEN),
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
        self.offload.then_some((self.l4 as u16, 6))
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

    /// Write one datagram of `payload_len` bytes into `frame`; `fill` must `put` exactly that
    /// many bytes. Returns the frame length.
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
        if frame.len() < total {
            return Err(FrameError::BufferTooSmall {
                need: total,
                have: frame.len(),
            });
        }
        frame[..self.hdr_len].copy_from_slice(&self.hdr[..self.hdr_len]);
        let mut w = PayloadWriter {
            buf: &mut frame[self.hdr_len..total],
            pos: 0,
            acc: Accumulator::default(),
            sum: !self.offload,
        };
        fill(&mut w);
        assert_eq!(
            w.pos, payload_len,
            "framer: fill wrote a different length than announced"
        );
        let payload_sum = w.acc.partial();
        let udp_len = (udp::HEADER_LEN + payload_len) as u16;
        let (l3, l4) = (self.l3, self.l4);
        if self.v6 {
            frame[l3 + 4..l3 + 6].copy_from_slice(&udp_len.to_be_bytes());
        } else {
            let tot = ipv4::HEADER_LEN as u16 + udp_len;
            let id = self.ident;
            self.ident = self.ident.wrapping_add(1);
            frame[l3 + 2..l3 + 4].copy_from_slice(&tot.to_be_bytes());
            frame[l3 + 4..l3 + 6].copy_from_slice(&id.to_be_bytes());
            let c = checksum::finish(self.ip_base + tot as u64 + id as u64);
            frame[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
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
}

impl UdpFramer {
    /// Re-stamp a frame that already holds a datagram of this flow and `payload_len` bytes
    /// whose payload is `prefix` followed by zeros (written by [`UdpFramer::emit`] before):
    /// writes the new `prefix` and patches only the IPv4 ID and checksum and the UDP
    /// checksum. For generators that recycle frames: a few bytes per packet instead of the
    /// whole payload.
    #[inline]
    pub fn restamp(&mut self, frame: &mut [u8], payload_len: usize, prefix: &[u8]) {
        let (l3, l4) = (self.l3, self.l4);
        let start = self.hdr_len;
        frame[start..start + prefix.len()].copy_from_slice(prefix);
        let udp_len = (udp::HEADER_LEN + payload_len) as u16;
        if !self.v6 {
            let tot = ipv4::HEADER_LEN as u16 + udp_len;
            let id = self.ident;
            self.ident = self.ident.wrapping_add(1);
            frame[l3 + 4..l3 + 6].copy_from_slice(&id.to_be_bytes());
            let c = checksum::finish(self.ip_base + tot as u64 + id as u64);
            frame[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
        if self.offload {
            // The pseudo-header sum in the field does not change.
            return;
        }
        // Zeros add nothing to the sum: only the prefix counts.
        let c = udp::checksum_field(self.pseudo_base + 2 * udp_len as u64 + checksum::sum(prefix));
        frame[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
    }
}

/// A TCP flow's Ethernet + IP header template; per segment the TCP header (with options) is
/// written from a [`tcp::Repr`] and the checksum summed while the payload is copied.
#[derive(Debug, Clone)]
pub struct TcpFramer {
    hdr: [u8; MAX_HEADER],
    l3: usize,
    l4: usize,
    v6: bool,
    ip_base: u64,
    pseudo_base: u64,
    src_port: u16,
    dst_port: u16,
    ident: u16,
    mtu: usize,
    ip_hdr: usize,
    offload: bool,
}

impl TcpFramer {
    /// A framer for `flow` (its ports are the TCP ports) on an interface of `mtu`.
    pub fn new(flow: &UdpFlow, mtu: u32) -> Self {
        // The UDP template gives Ethernet and IP; the protocol byte is patched below.
        let u = UdpFramer::new(flow, mtu);
        let mut hdr = u.hdr;
        let (l3, l4, v6) = (u.l3, u.l4, u.v6);
        let ip_hdr = l4 - l3;
        let ip_base = if v6 {
            hdr[l3 + 6] = tcp::PROTO_TCP;
            0
        } else {
            hdr[l3 + 9] = tcp::PROTO_TCP;
            let mut h = [0u8; ipv4::HEADER_LEN];
            h.copy_from_slice(&hdr[l3..l4]);
            h[2..6].fill(0);
            h[10..12].fill(0);
            checksum::sum(&h)
        };
        TcpFramer {
            hdr,
            l3,
            l4,
            v6,
            ip_base,
            pseudo_base: tcp::pseudo_header(flow.src.ip(), flow.dst.ip(), 0),
            src_port: flow.src.port(),
            dst_port: flow.dst.port(),
            ident: 1,
            mtu: mtu as usize,
            ip_hdr,
            offload: false,
        }
    }

    /// Leave the TCP checksum to the device, as [`UdpFramer::set_checksum_offload`].
    pub fn set_checksum_offload(&mut self, on: bool) {
        self.offload = on;
    }

    /// With offload on: the L4 header's offset in the frame and the checksum field's in it.
    pub fn checksum_request(&self) -> Option<(u16, u16)> {
        self.offload.then_some((self.l4 as u16, 16))
    }

    /// Largest segment payload with `options_len` bytes of TCP options (the MSS to announce is
    /// this with no options).
    pub fn max_payload(&self, options_len: usize) -> usize {
        self.mtu
            .saturating_sub(self.ip_hdr + tcp::HEADER_LEN + options_len)
    }

    /// Bytes of headers before the payload of a segment without options.
    pub fn header_len(&self) -> usize {
        self.l4 + tcp::HEADER_LEN
    }

    /// Re-stamp a frame written by [`TcpFramer::emit`] for a segment without options whose
    /// payload is `prefix` followed by zeros: writes the new sequence number and `prefix`,
    /// patches the IPv4 ID and checksum and the TCP checksum (stateless generators).
    #[inline]
    pub fn restamp(&mut self, frame: &mut [u8], seg: &tcp::Repr, prefix: &[u8]) {
        let (l3, l4) = (self.l3, self.l4);
        let start = l4 + tcp::HEADER_LEN;
        frame[l4 + 4..l4 + 8].copy_from_slice(&seg.seq.to_be_bytes());
        frame[start..start + prefix.len()].copy_from_slice(prefix);
        let tcp_len = (tcp::HEADER_LEN + seg.payload_len) as u16;
        if !self.v6 {
            let tot = ipv4::HEADER_LEN as u16 + tcp_len;
            let id = self.ident;
            self.ident = self.ident.wrapping_add(1);
            frame[l3 + 4..l3 + 6].copy_from_slice(&id.to_be_bytes());
            let c = checksum::finish(self.ip_base + tot as u64 + id as u64);
            frame[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
        if self.offload {
            // Same length: the pseudo-header sum in the field stands.
            return;
        }
        frame[l4 + 16..l4 + 18].fill(0);
        let hsum = checksum::sum(&frame[l4..start]);
        let c = checksum::finish(self.pseudo_base + tcp_len as u64 + hsum + checksum::sum(prefix));
        frame[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
    }

    /// Frame length of a segment.
    pub fn frame_len(&self, seg: &tcp::Repr) -> usize {
        self.l4 + seg.header_len() + seg.payload_len
    }

    /// Write segment `seg` (ports are filled in) with `seg.payload_len` bytes that `fill` must
    /// `put`; returns the frame length.
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
        let start = self.l4 + th;
        let total = start + seg.payload_len;
        if frame.len() < total {
            return Err(FrameError::BufferTooSmall {
                need: total,
                have: frame.len(),
            });
        }
        frame[..self.l4].copy_from_slice(&self.hdr[..self.l4]);
        let r = tcp::Repr {
            src_port: self.src_port,
            dst_port: self.dst_port,
            ..*seg
        };
        r.emit(&mut frame[self.l4..start]);
        let mut w = PayloadWriter {
            buf: &mut frame[start..total],
            pos: 0,
            acc: Accumulator::default(),
            sum: !self.offload,
        };
        fill(&mut w);
        assert_eq!(
            w.pos, seg.payload_len,
            "framer: fill wrote a different length"
        );
        let payload_sum = w.acc.partial();
        let tcp_len = (th + seg.payload_len) as u16;
        let l3 = self.l3;
        if self.v6 {
            frame[l3 + 4..l3 + 6].copy_from_slice(&tcp_len.to_be_bytes());
        } else {
            let tot = ipv4::HEADER_LEN as u16 + tcp_len;
            let id = self.ident;
            self.ident = self.ident.wrapping_add(1);
            frame[l3 + 2..l3 + 4].copy_from_slice(&tot.to_be_bytes());
            frame[l3 + 4..l3 + 6].copy_from_slice(&id.to_be_bytes());
            let c = checksum::finish(self.ip_base + tot as u64 + id as u64);
            frame[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
        let c = if self.offload {
            checksum::fold(self.pseudo_base + tcp_len as u64)
        } else {
            let hsum = checksum::sum(&frame[self.l4..start]);
            checksum::finish(self.pseudo_base + tcp_len as u64 + hsum + payload_sum)
        };
        frame[self.l4 + 16..self.l4 + 18].copy_from_slice(&c.to_be_bytes());
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    fn flow(v6: bool, vlan: Option<u16>) -> UdpFlow {
        let (src, dst): (SocketAddr, SocketAddr) = if v6 {
            (
                "[2001:db8::1]:40000".parse().unwrap(),
                "[2001:db8::2]:5201".parse().unwrap(),
            )
        } else {
            (
                "198.18.0.1:40000".parse().unwrap(),
                "198.18.0.2:5201".parse().unwrap(),
            )
        };
        UdpFlow {
            src_mac: "02:58:53:00:00:0a".parse().unwrap(),
            dst_mac: "02:58:53:00:00:0b".parse().unwrap(),
            vlan,
            src,
            dst,
        }
    }

    /// Check a frame with etherparse and our own views; return the UDP payload.
    fn check(frame: &[u8], f: &UdpFlow) -> Vec<u8> {
        let p = SlicedPacket::from_ethernet(frame).expect("etherparse");
        let (src, dst) = match p.net.as_ref().unwrap() {
            NetSlice::Ipv4(v4) => {
                let h = v4.header();
                assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
                assert!(h.dont_fragment());
                (
                    IpAddr::V4(h.source_addr()),
                    IpAddr::V4(h.destination_addr()),
                )
            }
            NetSlice::Ipv6(v6) => (
                IpAddr::V6(v6.header().source_addr()),
                IpAddr::V6(v6.header().destination_addr()),
            ),
        };
        assert_eq!((src, dst), (f.src.ip(), f.dst.ip()));
        let TransportSlice::Udp(u) = p.transport.unwrap() else {
            panic!("not UDP")
        };
        assert_eq!(
            (u.source_port(), u.destination_port()),
            (f.src.port(), f.dst.port())
        );
        let payload = u.payload().to_vec();
        let want = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => u
                .to_header()
                .calc_checksum_ipv4_raw(s.octets(), d.octets(), &payload)
                .unwrap(),
            (IpAddr::V6(s), IpAddr::V6(d)) => u
                .to_header()
                .calc_checksum_ipv6_raw(s.octets(), d.octets(), &payload)
                .unwrap(),
            _ => unreachable!(),
        };
        assert_eq!(u.checksum(), want, "UDP checksum");
        // Our own views agree.
        let eth = ethernet::Frame::new_checked(frame).unwrap();
        assert_eq!(eth.vlan(), f.vlan);
        let l4 = if f.dst.is_ipv6() {
            ipv6::Packet::new_checked(eth.payload())
                .unwrap()
                .payload()
                .to_vec()
        } else {
            let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
            ipv4::Repr::parse(&ip).unwrap();
            ip.payload().to_vec()
        };
        let up = udp::Packet::new_checked(&l4[..]).unwrap();
        assert!(up.verify_checksum(src, dst));
        assert_eq!(up.payload(), &payload[..]);
        payload
    }

    #[test]
    fn frames_check_out_with_etherparse() {
        for (v6, vlan) in [
            (false, None),
            (true, None),
            (false, Some(42)),
            (true, Some(7)),
        ] {
            let f = flow(v6, vlan);
            let mut fr = UdpFramer::new(&f, 1500);
            assert_eq!(fr.max_payload(), if v6 { 1452 } else { 1472 });
            let mut buf = vec![0u8; 2048];
            for len in [0usize, 1, 2, 3, 17, 1000, fr.max_payload()] {
                let data: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
                // Odd-sized pieces exercise the checksum's byte parity.
                let n = fr
                    .emit(&mut buf, len, |w| {
                        let cut = len.min(3);
                        w.put(&data[..cut]);
                        w.put(&data[cut..]);
                    })
                    .unwrap();
                assert_eq!(n, fr.frame_len(len));
                assert!(n <= 1500 + 14 + if vlan.is_some() { 4 } else { 0 });
                assert_eq!(check(&buf[..n], &f), data);
            }
        }
    }

    /// What a device (or the kernel's `skb_checksum_help`) does with a `CHECKSUM_PARTIAL`
    /// frame: sum from `start` to the end, over the pseudo-header sum left in the field, and
    /// store the complement.
    fn complete(frame: &mut [u8], (start, offset): (u16, u16)) {
        let (start, field) = (start as usize, start as usize + offset as usize);
        let c = checksum::finish(checksum::sum(&frame[start..]));
        frame[field..field + 2].copy_from_slice(&c.to_be_bytes());
    }

    #[test]
    fn offloaded_checksums_complete_like_a_device() {
        for (v6, vlan) in [
            (false, None),
            (true, None),
            (false, Some(42)),
            (true, Some(7)),
        ] {
            let f = flow(v6, vlan);
            let mut fr = UdpFramer::new(&f, 1500);
            fr.set_checksum_offload(true);
            let req = fr.checksum_request().unwrap();
            let mut buf = vec![0u8; 2048];
            for len in [0usize, 1, 3, 17, 1000, fr.max_payload()] {
                let data: Vec<u8> = (0..len).map(|i| (i * 13 + len) as u8).collect();
                let n = fr
                    .emit(&mut buf, len, |w| {
                        let cut = len.min(5);
                        w.put(&data[..cut]);
                        w.put(&data[cut..]);
                    })
                    .unwrap();
                complete(&mut buf[..n], req);
                assert_eq!(check(&buf[..n], &f), data);
            }
            // Re-stamped frames keep a valid pseudo-header sum.
            let n = fr.emit(&mut buf, 100, |w| w.put(&[0u8; 100])).unwrap();
            for k in 0u64..3 {
                let mut frame = buf[..n].to_vec();
                fr.restamp(&mut frame, 100, &k.to_be_bytes());
                complete(&mut frame, req);
                assert_eq!(check(&frame, &f)[..8], k.to_be_bytes());
            }

            let mut t = TcpFramer::new(&f, 1500);
            t.set_checksum_offload(true);
            let req = t.checksum_request().unwrap();
            let seg = tcp::Repr {
                seq: 0xfffffff0,
                ack: 77,
                flags: tcp::Flags::ACK | tcp::Flags::PSH,
                window: 1000,
                payload_len: 999,
                ..Default::default()
            };
            let data: Vec<u8> = (0..999).map(|i| (i * 3) as u8).collect();
            let n = t.emit(&mut buf, &seg, |w| w.put(&data)).unwrap();
            complete(&mut buf[..n], req);
            let p = etherparse::SlicedPacket::from_ethernet(&buf[..n]).unwrap();
            let Some(etherparse::TransportSlice::Tcp(th)) = p.transport else {
                panic!("not TCP")
            };
            let want = match (f.src.ip(), f.dst.ip()) {
                (IpAddr::V4(a), IpAddr::V4(b)) => th
                    .to_header()
                    .calc_checksum_ipv4_raw(a.octets(), b.octets(), th.payload())
                    .unwrap(),
                (IpAddr::V6(a), IpAddr::V6(b)) => th
                    .to_header()
                    .calc_checksum_ipv6_raw(a.octets(), b.octets(), th.payload())
                    .unwrap(),
                _ => unreachable!(),
            };
            assert_eq!(th.checksum(), want, "v6 {v6} vlan {vlan:?}");
            assert_eq!(th.payload(), &data[..]);
        }
    }

    #[test]
    fn refuses_oversize_and_small_buffers() {
        let f = flow(false, None);
        let mut fr = UdpFramer::new(&f, 1500);
        let mut buf = vec![0u8; 2048];
        assert_eq!(
            fr.emit(&mut buf, 1473, |_| {}),
            Err(FrameError::TooLarge {
                len: 1473,
                max: 1472
            })
        );
        let mut small = vec![0u8; 100];
        assert!(matches!(
            fr.emit(&mut small, 200, |_| {}),
            Err(FrameError::BufferTooSmall { .. })
        ));
    }

    #[test]
    fn ipv4_ident_advances_and_checksum_stays_valid() {
        let f = flow(false, None);
        let mut fr = UdpFramer::new(&f, 1500);
        let mut buf = vec![0u8; 2048];
        let mut ids = Vec::new();
        for _ in 0..3 {
            let n = fr.emit(&mut buf, 5, |w| w.put(b"hello")).unwrap();
            check(&buf[..n], &f);
            ids.push(ipv4::Packet::new_checked(&buf[14..n]).unwrap().ident());
        }
        assert_eq!(ids, [1, 2, 3]);
    }

    #[test]
    fn restamped_frames_stay_valid() {
        for v6 in [false, true] {
            let f = flow(v6, None);
            let mut fr = UdpFramer::new(&f, 1500);
            let mut buf = vec![0u8; 2048];
            let n = fr.emit(&mut buf, 1000, |w| w.put(&[0u8; 1000])).unwrap();
            for seq in [1u64, 0xdead_beef, u64::MAX] {
                fr.restamp(&mut buf[..n], 1000, &seq.to_be_bytes());
                let p = check(&buf[..n], &f);
                assert_eq!(&p[..8], &seq.to_be_bytes());
                assert!(p[8..].iter().all(|&b| b == 0));
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn any_payload_any_split_is_valid(data in proptest::collection::vec(proptest::num::u8::ANY, 0..1452), cut in 0usize..1452, v6: bool) {
            let f = flow(v6, None);
            let mut fr = UdpFramer::new(&f, 1500);
            let mut buf = vec![0u8; 2048];
            let cut = cut.min(data.len());
            let n = fr.emit(&mut buf, data.len(), |w| { w.put(&data[..cut]); w.put(&data[cut..]); }).unwrap();
            proptest::prop_assert_eq!(check(&buf[..n], &f), data);
        }
    }

    proptest::proptest! {
        #[test]
        fn tcp_segments_check_out_with_etherparse(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..1448),
            cut in 0usize..1448,
            v6: bool,
            vlan: bool,
            seq: u32,
            ts: Option<(u32, u32)>,
        ) {
            use crate::wire::tcp::{Flags, Options, Repr};
            let f = flow(v6, vlan.then_some(7));
            let mut fr = TcpFramer::new(&f, 1500);
            let opts = Options { timestamps: ts, ..Default::default() };
            let data = &data[..data.len().min(fr.max_payload(opts.buffer_len()))];
            let seg = Repr {
                seq,
                ack: 99,
                flags: Flags::ACK | Flags::PSH,
                window: 512,
                options: Options { timestamps: ts, ..Default::default() },
                payload_len: data.len(),
                ..Default::default()
            };
            let mut buf = vec![0u8; 2048];
            let cut = cut.min(data.len());
            let n = fr.emit(&mut buf, &seg, |w| { w.put(&data[..cut]); w.put(&data[cut..]); }).unwrap();
            proptest::prop_assert_eq!(n, fr.frame_len(&seg));
            let p = SlicedPacket::from_ethernet(&buf[..n]).expect("etherparse");
            let (src, dst) = match p.net.as_ref().unwrap() {
                NetSlice::Ipv4(v4) => {
                    let h = v4.header();
                    proptest::prop_assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
                    (IpAddr::V4(h.source_addr()), IpAddr::V4(h.destination_addr()))
                }
                NetSlice::Ipv6(v6) => (
                    IpAddr::V6(v6.header().source_addr()),
                    IpAddr::V6(v6.header().destination_addr()),
                ),
            };
            let Some(TransportSlice::Tcp(t)) = p.transport else { panic!("not TCP") };
            proptest::prop_assert_eq!(t.sequence_number(), seq);
            proptest::prop_assert_eq!(t.payload(), data);
            let sum = match (src, dst) {
                (IpAddr::V4(a), IpAddr::V4(b)) => t.to_header().calc_checksum_ipv4_raw(a.octets(), b.octets(), t.payload()).unwrap(),
                (IpAddr::V6(a), IpAddr::V6(b)) => t.to_header().calc_checksum_ipv6_raw(a.octets(), b.octets(), t.payload()).unwrap(),
                _ => unreachable!(),
            };
            proptest::prop_assert_eq!(sum, t.checksum());
            // Too much data for the MTU is refused.
            let big = Repr { payload_len: fr.max_payload(seg.options.buffer_len()) + 1, ..seg };
            let refused = fr.emit(&mut buf, &big, |_| ()).is_err();
            proptest::prop_assert!(refused);
            // Re-stamping a zero-payload frame keeps it valid.
            if !data.is_empty() && ts.is_none() {
                let z = vec![0u8; data.len()];
                let n = fr.emit(&mut buf, &seg, |w| w.put(&z)).unwrap();
                let prefix = &data[..data.len().min(8)];
                let seg2 = Repr { seq: seq.wrapping_add(77), ..seg };
                fr.restamp(&mut buf[..n], &seg2, prefix);
                let p = SlicedPacket::from_ethernet(&buf[..n]).expect("etherparse");
                let Some(TransportSlice::Tcp(t)) = p.transport else { panic!("not TCP") };
                proptest::prop_assert_eq!(t.sequence_number(), seq.wrapping_add(77));
                let sum = match (src, dst) {
                    (IpAddr::V4(a), IpAddr::V4(b)) => t.to_header().calc_checksum_ipv4_raw(a.octets(), b.octets(), t.payload()).unwrap(),
                    (IpAddr::V6(a), IpAddr::V6(b)) => t.to_header().calc_checksum_ipv6_raw(a.octets(), b.octets(), t.payload()).unwrap(),
                    _ => unreachable!(),
                };
                proptest::prop_assert_eq!(sum, t.checksum());
                if let Some(etherparse::NetSlice::Ipv4(v4)) = p.net.as_ref() {
                    let h = v4.header();
                    proptest::prop_assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
                }
            }
        }
    }
}
