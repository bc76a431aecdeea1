//! Neighbours on a port the kernel does not see (DPDK): ARP (IPv4) and Neighbor Discovery
//! (IPv6, RFC 4861) — the request that resolves the next hop, the answer to a peer asking
//! for our address, and recognising the peer's reply. No I/O: frames in, frames out.

use std::net::{IpAddr, Ipv6Addr};

use super::wire::checksum;
use super::wire::ethernet::{self, Frame, MacAddr};
use super::wire::{arp, ipv6};

/// ICMPv6 next header.
const PROTO_ICMPV6: u8 = 58;
/// ICMPv6 Neighbor Solicitation / Advertisement.
const ND_NS: u8 = 135;
const ND_NA: u8 = 136;
/// Bytes of an NS/NA with one link-layer address option.
const ND_LEN: usize = 32;

/// Who we are on the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Us {
    /// Our MAC.
    pub mac: MacAddr,
    /// Our address.
    pub ip: IpAddr,
    /// 802.1Q tag of our frames.
    pub vlan: Option<u16>,
}

/// The largest frame this module writes.
pub const MAX_FRAME: usize = 18 + ipv6::HEADER_LEN + ND_LEN;

fn eth(buf: &mut [u8], us: &Us, dst: MacAddr, ethertype: u16) -> usize {
    let e = ethernet::Repr {
        src: us.mac,
        dst,
        vlan: us.vlan,
        ethertype,
    };
    e.emit(buf);
    e.buffer_len()
}

/// The IPv6 solicited-node multicast address of `ip`, and its MAC.
fn solicited(ip: Ipv6Addr) -> (Ipv6Addr, MacAddr) {
    let o = ip.octets();
    let a = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | o[13] as u16,
        u16::from_be_bytes([o[14], o[15]]),
    );
    (a, MacAddr([0x33, 0x33, 0xff, o[13], o[14], o[15]]))
}

/// An NS (`na == false`) or NA into `buf`; returns the frame length.
#[allow(clippy::too_many_arguments)]
fn nd(
    buf: &mut [u8],
    us: &Us,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    dst_mac: MacAddr,
    na: bool,
    target: Ipv6Addr,
) -> usize {
    let l2 = eth(buf, us, dst_mac, ethernet::ETHERTYPE_IPV6);
    ipv6::Repr {
        src,
        dst,
        next_header: PROTO_ICMPV6,
        payload_len: ND_LEN,
        hop_limit: 255,
    }
    .emit(&mut buf[l2..]);
    let m = &mut buf[l2 + ipv6::HEADER_LEN..l2 + ipv6::HEADER_LEN + ND_LEN];
    m.fill(0);
    m[0] = if na { ND_NA } else { ND_NS };
    if na {
        // Solicited, Override.
        m[4] = 0x60;
    }
    m[8..24].copy_from_slice(&target.octets());
    // Option: source (NS) or target (NA) link-layer address, 1 × 8 bytes.
    m[24] = if na { 2 } else { 1 };
    m[25] = 1;
    m[26..32].copy_from_slice(&us.mac.0);
    let c = icmpv6_checksum(src, dst, m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    l2 + ipv6::HEADER_LEN + ND_LEN
}

fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    let mut s = checksum::sum(&src.octets()) + checksum::sum(&dst.octets());
    s += msg.len() as u64 + PROTO_ICMPV6 as u64;
    s += checksum::sum(msg);
    checksum::finish(s)
}

/// Our link-local address (EUI-64 from the MAC), the source of our NS/NA.
pub fn link_local(mac: MacAddr) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([m[0] ^ 2, m[1]]),
        u16::from_be_bytes([m[2], 0xff]),
        u16::from_be_bytes([0xfe, m[3]]),
        u16::from_be_bytes([m[4], m[5]]),
    )
}

/// The request that asks who has `target` (ARP broadcast or an NS to its solicited-node
/// group) into `buf` (at least [`MAX_FRAME`] bytes); returns its length, or `None` when
/// `target` and our address are not the same family.
pub fn request(buf: &mut [u8], us: &Us, target: IpAddr) -> Option<usize> {
    match (us.ip, target) {
        (IpAddr::V4(ip), IpAddr::V4(t)) => {
            let l2 = eth(buf, us, MacAddr([0xff; 6]), arp::ETHERTYPE_ARP);
            arp::Repr {
                op: arp::OP_REQUEST,
                sender_mac: us.mac,
                sender_ip: ip,
                target_mac: MacAddr([0; 6]),
                target_ip: t,
            }
            .emit(&mut buf[l2..]);
            // Padded to the 60-byte minimum.
            let len = (l2 + arp::PACKET_LEN).max(60);
            buf[l2 + arp::PACKET_LEN..len].fill(0);
            Some(len)
        }
        (IpAddr::V6(ip), IpAddr::V6(t)) => {
            let (dst, dst_mac) = solicited(t);
            Some(nd(buf, us, ip, dst, dst_mac, false, t))
        }
        _ => None,
    }
}

/// What a received frame means to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// `ip` is at `mac` (an ARP packet or NA from it; requests teach the sender's address too).
    Neighbour {
        /// Its address.
        ip: IpAddr,
        /// Its MAC.
        mac: MacAddr,
    },
    /// Someone asked for our address: the answer is in the buffer, this many bytes.
    Answer(usize),
}

/// Look at a received frame: the neighbours it names and, if it asks for our address, the
/// answer written into `out` (at least [`MAX_FRAME`] bytes). Anything else: empty.
pub fn handle(frame: &[u8], us: &Us, out: &mut [u8]) -> [Option<Seen>; 2] {
    let mut r = [None, None];
    let Ok(f) = Frame::new_checked(frame) else {
        return r;
    };
    let payload = f.payload();
    match f.ethertype() {
        arp::ETHERTYPE_ARP => {
            let Ok(a) = arp::Repr::parse(payload) else {
                return r;
            };
            if a.sender_ip.is_unspecified() || a.sender_mac.0[0] & 1 == 1 {
                return r;
            }
            r[0] = Some(Seen::Neighbour {
                ip: IpAddr::V4(a.sender_ip),
                mac: a.sender_mac,
            });
            if a.op == arp::OP_REQUEST && IpAddr::V4(a.target_ip) == us.ip {
                let l2 = eth(out, us, a.sender_mac, arp::ETHERTYPE_ARP);
                arp::Repr {
                    op: arp::OP_REPLY,
                    sender_mac: us.mac,
                    sender_ip: a.target_ip,
                    target_mac: a.sender_mac,
                    target_ip: a.sender_ip,
                }
                .emit(&mut out[l2..]);
                let len = (l2 + arp::PACKET_LEN).max(60);
                out[l2 + arp::PACKET_LEN..len].fill(0);
                r[1] = Some(Seen::Answer(len));
            }
        }
        ethernet::ETHERTYPE_IPV6 => {
            let Ok(p) = ipv6::Packet::new_checked(payload) else {
                return r;
            };
            let m = p.payload();
            // RFC 4861 7.1.1/7.1.2: hop limit 255, ICMPv6, code 0, at least 24 bytes.
            if p.next_header() != PROTO_ICMPV6 || p.hop_limit() != 255 || m.len() < 24 || m[1] != 0
            {
                return r;
            }
            if icmpv6_checksum(p.src(), p.dst(), m) != 0 {
                return r;
            }
            let target = Ipv6Addr::from(<[u8; 16]>::try_from(&m[8..24]).unwrap_or_default());
            // The link-layer address option (source in NS, target in NA).
            let mut lla = None;
            let mut o = 24;
            while o + 8 <= m.len() {
                let (ty, len) = (m[o], m[o + 1] as usize * 8);
                if len == 0 || o + len > m.len() {
                    return r;
                }
                if (ty == 1 && m[0] == ND_NS) || (ty == 2 && m[0] == ND_NA) {
                    lla = Some(MacAddr(m[o + 2..o + 8].try_into().unwrap_or_default()));
                }
                o += len;
            }
            match m[0] {
                ND_NA => {
                    if let Some(mac) = lla {
                        r[0] = Some(Seen::Neighbour {
                            ip: IpAddr::V6(target),
                            mac,
                        });
                    }
                }
                ND_NS => {
                    let src = p.src();
                    if let (Some(mac), false) = (lla, src.is_unspecified()) {
                        r[0] = Some(Seen::Neighbour {
                            ip: IpAddr::V6(src),
                            mac,
                        });
                        if IpAddr::V6(target) == us.ip {
                            let n = nd(out, us, target, src, mac, true, target);
                            r[1] = Some(Seen::Answer(n));
                        }
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
    r
}

#[cfg(test)]
mod tests;
