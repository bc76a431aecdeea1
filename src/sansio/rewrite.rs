//! Rewriting captured frames so a capture from elsewhere can be sent into a lab or a DUT:
//! MAC addresses, and IPv4/IPv6 source and destination addresses through maps, with the IP
//! header checksum and the UDP/TCP checksums fixed incrementally (RFC 1624) rather than
//! recomputed, so a frame whose payload was cut by the capture's snap length keeps a checksum
//! as right as it was.

use std::net::IpAddr;

use super::wire::checksum;
use super::wire::ethernet::{self, MacAddr};

/// One address map: `from` → `to`; `from` absent: every address of `to`'s family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpMap {
    /// The address to replace (`None`: any of the same family).
    pub from: Option<IpAddr>,
    /// Its replacement.
    pub to: IpAddr,
}

impl std::str::FromStr for IpMap {
    type Err = String;
    /// `NEW` (every address of its family) or `OLD=NEW` (both of one family).
    fn from_str(s: &str) -> Result<Self, String> {
        let ip = |x: &str| {
            x.trim()
                .parse::<IpAddr>()
                .map_err(|_| format!("{x:?} is not an IP address"))
        };
        let m = match s.split_once('=') {
            Some((a, b)) => IpMap {
                from: Some(ip(a)?),
                to: ip(b)?,
            },
            None => IpMap {
                from: None,
                to: ip(s)?,
            },
        };
        if m.from.is_some_and(|f| f.is_ipv4() != m.to.is_ipv4()) {
            return Err(format!("{s}: both addresses must be of one family"));
        }
        Ok(m)
    }
}

/// What to rewrite in every frame.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewrite {
    /// New source MAC.
    pub src_mac: Option<MacAddr>,
    /// New destination MAC.
    pub dst_mac: Option<MacAddr>,
    /// Maps for the source address (the first that matches applies).
    pub src_ip: Vec<IpMap>,
    /// Maps for the destination address.
    pub dst_ip: Vec<IpMap>,
}

const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;

impl Rewrite {
    /// True if nothing is rewritten.
    pub fn is_empty(&self) -> bool {
        *self == Rewrite::default()
    }

    /// Rewrite `frame` (an Ethernet frame, possibly cut short by a snap length) in place.
    /// Frames that are not IP, or too short to hold what a map would change, keep their
    /// addresses.
    pub fn apply(&self, frame: &mut [u8]) {
        if frame.len() < ethernet::HEADER_LEN {
            return;
        }
        if let Some(m) = self.dst_mac {
            frame[0..6].copy_from_slice(&m.0);
        }
        if let Some(m) = self.src_mac {
            frame[6..12].copy_from_slice(&m.0);
        }
        if self.src_ip.is_empty() && self.dst_ip.is_empty() {
            return;
        }
        let Ok(eth) = ethernet::Frame::new_checked(&*frame) else {
            return;
        };
        let (l3, ty) = (eth.header_len(), eth.ethertype());
        let ip = &mut frame[l3..];
        match ty {
            ethernet::ETHERTYPE_IPV4 => self.ipv4(ip),
            ethernet::ETHERTYPE_IPV6 => self.ipv6(ip),
            _ => {}
        }
    }

    fn ipv4(&self, p: &mut [u8]) {
        if p.len() < 20 || p[0] >> 4 != 4 {
            return;
        }
        let ihl = ((p[0] & 0x0f) as usize) * 4;
        if ihl < 20 || p.len() < ihl {
            return;
        }
        let proto = p[9];
        // Only the first fragment carries the L4 header.
        let first_fragment = u16::from_be_bytes([p[6], p[7]]) & 0x1fff == 0;
        for (at, maps) in [(12usize, &self.src_ip), (16, &self.dst_ip)] {
            let old: [u8; 4] = p[at..at + 4].try_into().unwrap_or_default();
            let Some(IpAddr::V4(new)) = lookup(maps, IpAddr::from(old)) else {
                continue;
            };
            let new = new.octets();
            let hc = u16::from_be_bytes([p[10], p[11]]);
            p[10..12].copy_from_slice(&checksum::adjust(hc, &old, &new).to_be_bytes());
            if first_fragment {
                fix_l4(&mut p[ihl..], proto, &old, &new, true);
            }
            p[at..at + 4].copy_from_slice(&new);
        }
    }

    fn ipv6(&self, p: &mut [u8]) {
        if p.len() < 40 || p[0] >> 4 != 6 {
            return;
        }
        // Walk the usual extension headers to the L4 header (none past a later fragment).
        let (mut next, mut at) = (p[6], 40usize);
        let l4 = loop {
            match next {
                PROTO_TCP | PROTO_UDP | PROTO_ICMPV6 => break Some(at),
                // A routing header with segments left: the destination in the pseudo-header
                // is the final one, not this packet's; leave the L4 checksum alone.
                43 if p.len() >= at + 4 && p[at + 3] > 0 => break None,
                0 | 43 | 60 if p.len() >= at + 8 => {
                    next = p[at];
                    at += (p[at + 1] as usize + 1) * 8;
                }
                44 if p.len() >= at + 8 => {
                    if u16::from_be_bytes([p[at + 2], p[at + 3]]) & 0xfff8 != 0 {
                        break None;
                    }
                    next = p[at];
                    at += 8;
                }
                _ => break None,
            }
        };
        for (off, maps) in [(8usize, &self.src_ip), (24, &self.dst_ip)] {
            let old: [u8; 16] = p[off..off + 16].try_into().unwrap_or_default();
            let Some(IpAddr::V6(new)) = lookup(maps, IpAddr::from(old)) else {
                continue;
            };
            let new = new.octets();
            if let Some(l4) = l4.filter(|&l| l <= p.len()) {
                fix_l4(&mut p[l4..], next, &old, &new, false);
            }
            p[off..off + 16].copy_from_slice(&new);
        }
    }
}

fn lookup(maps: &[IpMap], a: IpAddr) -> Option<IpAddr> {
    maps.iter()
        .find(|m| match m.from {
            Some(f) => f == a,
            None => m.to.is_ipv4() == a.is_ipv4(),
        })
        .map(|m| m.to)
}

/// The UDP or TCP checksum after a pseudo-header address changed from `old` to `new`.
fn fix_l4(l4: &mut [u8], proto: u8, old: &[u8], new: &[u8], v4: bool) {
    let at = match proto {
        PROTO_UDP => 6,
        PROTO_TCP => 16,
        // ICMPv6 sums the IPv6 pseudo-header too (ICMPv4 does not).
        PROTO_ICMPV6 if !v4 => 2,
        _ => return,
    };
    if l4.len() < at + 2 {
        return;
    }
    let c = u16::from_be_bytes([l4[at], l4[at + 1]]);
    if proto == PROTO_UDP && v4 && c == 0 {
        return; // IPv4 UDP without a checksum stays without one
    }
    let mut n = checksum::adjust(c, old, new);
    if proto == PROTO_UDP && n == 0 {
        n = 0xffff;
    }
    l4[at..at + 2].copy_from_slice(&n.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sansio::framer::{Flow, UdpFramer};
    use std::net::SocketAddr;

    fn udp_frame(src: &str, dst: &str) -> Vec<u8> {
        let flow = Flow {
            src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            dst_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            vlan: None,
            src: src.parse::<SocketAddr>().unwrap(),
            dst: dst.parse::<SocketAddr>().unwrap(),
        };
        let mut f = UdpFramer::new(&flow, 1500);
        let mut buf = vec![0u8; 2048];
        let n = f.emit(&mut buf, 333, |w| w.put(&[7u8; 333])).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn maps_and_checksums_match_a_frame_made_with_the_new_addresses() {
        for (a, b, a2, b2) in [
            (
                "198.19.0.1:5",
                "198.19.0.2:9",
                "198.18.0.1:5",
                "198.18.0.2:9",
            ),
            (
                "[2001:db8:1::1]:5",
                "[2001:db8:1::2]:9",
                "[2001:db8::1]:5",
                "[2001:db8::2]:9",
            ),
        ] {
            let mut f = udp_frame(a, b);
            let want = udp_frame(a2, b2);
            let pa: SocketAddr = a.parse().unwrap();
            let pa2: SocketAddr = a2.parse().unwrap();
            let pb2: SocketAddr = b2.parse().unwrap();
            Rewrite {
                src_ip: vec![IpMap {
                    from: Some(pa.ip()),
                    to: pa2.ip(),
                }],
                dst_ip: vec![IpMap {
                    from: None,
                    to: pb2.ip(),
                }],
                ..Default::default()
            }
            .apply(&mut f);
            // The IPv4 ID differs only if the framer's counter did: compare all but it.
            let id = if pa.is_ipv4() { 18..20 } else { 0..0 };
            let strip = |v: &[u8]| {
                let mut v = v.to_vec();
                v[id.clone()].fill(0);
                v
            };
            assert_eq!(strip(&f), strip(&want));
        }
    }

    #[test]
    fn macs_unmatched_maps_and_short_frames() {
        let mut f = udp_frame("198.18.0.1:5", "198.18.0.2:9");
        let before = f.clone();
        let r = Rewrite {
            dst_mac: Some(MacAddr([2, 9, 9, 9, 9, 9])),
            src_ip: vec!["198.18.7.7=198.18.0.9".parse().unwrap()],
            ..Default::default()
        };
        r.apply(&mut f);
        assert_eq!(&f[0..6], &[2, 9, 9, 9, 9, 9]);
        assert_eq!(f[6..], before[6..], "no map matched: addresses untouched");
        let mut short = f[..30].to_vec();
        Rewrite {
            src_ip: vec!["198.18.0.5".parse().unwrap()],
            ..Default::default()
        }
        .apply(&mut short);
        assert!("198.18.0.1=2001:db8::1".parse::<IpMap>().is_err());
    }
}
