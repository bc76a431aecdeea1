//! Route and neighbour lookups over rtnetlink (`NETLINK_ROUTE`), without iproute2.
//!
//! Message building and parsing are pure functions over byte buffers (unit tested with
//! fixtures); [`Rtnl`] sends a request over [`Netlink`] and collects the reply.

use std::io;
use std::net::IpAddr;

use crate::sys::netlink::Netlink;

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
pub(super) const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const IFLA_STATS64: u16 = 23;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PREFSRC: u16 = 7;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
/// Neighbour states that hold no usable link-layer address.
const NUD_INCOMPLETE: u16 = 0x01;
const NUD_FAILED: u16 = 0x20;
/// `struct rtmsg` and `struct ndmsg` are both 12 bytes.
const BODY_LEN: usize = 12;

pub(super) fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn family(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn ip_from(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
        _ => None,
    }
}

pub(super) fn header(buf: &mut Vec<u8>, ty: u16, flags: u16, seq: u32) {
    buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched at the end
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
}

pub(super) fn attr(buf: &mut Vec<u8>, ty: u16, data: &[u8]) {
    buf.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(align4(buf.len()), 0);
}

pub(super) fn finish(mut buf: Vec<u8>) -> Vec<u8> {
    let len = buf.len() as u32;
    buf[..4].copy_from_slice(&len.to_ne_bytes());
    buf
}

/// `RTM_GETROUTE` for `dst` (what `ip route get DST` sends).
pub(crate) fn route_request(dst: IpAddr, seq: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    header(&mut b, RTM_GETROUTE, NLM_F_REQUEST, seq);
    let bits = if dst.is_ipv4() { 32 } else { 128 };
    // rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
    b.extend_from_slice(&[family(dst), bits, 0, 0, 0, 0, 0, 0]);
    b.extend_from_slice(&0u32.to_ne_bytes());
    attr(&mut b, RTA_DST, &ip_bytes(dst));
    finish(b)
}

/// `RTM_GETNEIGH` dump of one address family.
pub(crate) fn neigh_dump_request(fam: IpAddr, seq: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(32);
    header(&mut b, RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP, seq);
    // ndmsg: family, pad, pad, ifindex, state, flags, type.
    b.extend_from_slice(&[family(fam), 0, 0, 0]);
    b.extend_from_slice(&0i32.to_ne_bytes());
    b.extend_from_slice(&[0, 0, 0, 0]);
    finish(b)
}

/// `RTM_GETLINK` of one interface (its attributes carry `IFLA_STATS64`).
pub(crate) fn link_request(ifindex: u32, seq: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(32);
    header(&mut b, RTM_GETLINK, NLM_F_REQUEST, seq);
    // ifinfomsg: family, pad, type, index, flags, change.
    b.extend_from_slice(&[0, 0, 0, 0]);
    b.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    b.extend_from_slice(&[0; 8]);
    finish(b)
}

/// `RTM_SETLINK` detaching the XDP program of `ifindex` attached in `mode`
/// (`XDP_FLAGS_DRV_MODE`/`SKB_MODE`), only if it is still the one `expected_fd` refers to
/// (`XDP_FLAGS_REPLACE` with `IFLA_XDP_EXPECTED_FD`: a program attached since stays).
#[cfg_attr(not(feature = "dpdk"), allow(dead_code))]
pub(crate) fn xdp_detach_request(ifindex: u32, mode: u32, expected_fd: i32, seq: u32) -> Vec<u8> {
    const RTM_SETLINK: u16 = 19;
    const IFLA_XDP: u16 = 43;
    const NLA_F_NESTED: u16 = 0x8000;
    const IFLA_XDP_FD: u16 = 1;
    const IFLA_XDP_FLAGS: u16 = 3;
    const IFLA_XDP_EXPECTED_FD: u16 = 8;
    const XDP_FLAGS_REPLACE: u32 = 1 << 4;
    let mut b = Vec::with_capacity(64);
    header(&mut b, RTM_SETLINK, NLM_F_REQUEST, seq);
    b.extend_from_slice(&[0, 0, 0, 0]);
    b.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    b.extend_from_slice(&[0; 8]);
    let mut xdp = Vec::with_capacity(24);
    attr(&mut xdp, IFLA_XDP_FD, &(-1i32).to_ne_bytes());
    attr(
        &mut xdp,
        IFLA_XDP_FLAGS,
        &(XDP_FLAGS_REPLACE | mode).to_ne_bytes(),
    );
    attr(&mut xdp, IFLA_XDP_EXPECTED_FD, &expected_fd.to_ne_bytes());
    attr(&mut b, NLA_F_NESTED | IFLA_XDP, &xdp);
    finish(b)
}

/// The counters in the reply to [`link_request`].
pub(crate) fn parse_link_stats(b: &[u8]) -> io::Result<super::LinkStats> {
    for m in messages(b) {
        if let Some(e) = error_of(&m) {
            return Err(e);
        }
        if m.ty != RTM_NEWLINK || m.body.len() < 16 {
            continue;
        }
        for (ty, d) in attrs(&m.body[16..]) {
            if ty == IFLA_STATS64 && d.len() >= 64 {
                let u =
                    |i: usize| u64::from_ne_bytes(d[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
                return Ok(super::LinkStats {
                    rx_packets: u(0),
                    tx_packets: u(1),
                    tx_bytes: u(3),
                    rx_dropped: u(6),
                    tx_dropped: u(7),
                });
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "no IFLA_STATS64 in the link reply",
    ))
}

/// One netlink message: its type and payload (after the header).
pub(super) struct Msg<'a> {
    pub(super) ty: u16,
    pub(super) body: &'a [u8],
}

/// Split a datagram into messages; malformed tails are dropped.
pub(super) fn messages(mut b: &[u8]) -> impl Iterator<Item = Msg<'_>> {
    std::iter::from_fn(move || {
        if b.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32::from_ne_bytes(b[0..4].try_into().ok()?) as usize;
        if len < NLMSG_HDRLEN || len > b.len() {
            return None;
        }
        let ty = u16::from_ne_bytes(b[4..6].try_into().ok()?);
        let m = Msg {
            ty,
            body: &b[NLMSG_HDRLEN..len],
        };
        b = &b[align4(len).min(b.len())..];
        Some(m)
    })
}

/// Attributes after a fixed-size body.
pub(super) fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            return None;
        }
        let a = (ty, &b[4..len]);
        b = &b[align4(len).min(b.len())..];
        Some(a)
    })
}

/// An `NLMSG_ERROR` with a non-zero code, as an OS error.
pub(super) fn error_of(m: &Msg<'_>) -> Option<io::Error> {
    if m.ty != NLMSG_ERROR || m.body.len() < 4 {
        return None;
    }
    let code = i32::from_ne_bytes(m.body[0..4].try_into().ok()?);
    (code != 0).then(|| io::Error::from_raw_os_error(-code))
}

/// What the kernel answered to a route request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteReply {
    /// Egress interface index.
    pub(crate) oif: u32,
    /// Gateway, if not on-link.
    pub(crate) gateway: Option<IpAddr>,
    /// Preferred source address.
    pub(crate) prefsrc: Option<IpAddr>,
}

/// Parse the reply to [`route_request`].
pub(crate) fn parse_route_reply(b: &[u8]) -> io::Result<RouteReply> {
    for m in messages(b) {
        if let Some(e) = error_of(&m) {
            return Err(e);
        }
        if m.ty != RTM_NEWROUTE || m.body.len() < BODY_LEN {
            continue;
        }
        let mut r = RouteReply {
            oif: 0,
            gateway: None,
            prefsrc: None,
        };
        for (ty, data) in attrs(&m.body[BODY_LEN..]) {
            match ty {
                RTA_OIF if data.len() == 4 => {
                    r.oif = u32::from_ne_bytes(data.try_into().unwrap_or_default())
                }
                RTA_GATEWAY => r.gateway = ip_from(data),
                RTA_PREFSRC => r.prefsrc = ip_from(data),
                _ => {}
            }
        }
        if r.oif != 0 {
            return Ok(r);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "route reply without an output interface",
    ))
}

/// From one datagram of a neighbour dump: the usable MAC of `ip` on interface `ifindex`, and
/// whether the dump is complete (`NLMSG_DONE` seen).
pub(crate) fn parse_neigh_dump(
    b: &[u8],
    ip: IpAddr,
    ifindex: u32,
) -> io::Result<(Option<[u8; 6]>, bool)> {
    let want = ip_bytes(ip);
    let mut found = None;
    for m in messages(b) {
        if m.ty == NLMSG_DONE {
            return Ok((found, true));
        }
        if let Some(e) = error_of(&m) {
            return Err(e);
        }
        if m.ty != RTM_NEWNEIGH || m.body.len() < BODY_LEN {
            continue;
        }
        let idx = i32::from_ne_bytes(m.body[4..8].try_into().unwrap_or_default());
        let state = u16::from_ne_bytes([m.body[8], m.body[9]]);
        if idx as u32 != ifindex || state == 0 || state & (NUD_INCOMPLETE | NUD_FAILED) != 0 {
            continue;
        }
        let (mut dst, mut mac) = (None, None);
        for (ty, data) in attrs(&m.body[BODY_LEN..]) {
            match ty {
                NDA_DST => dst = Some(data),
                NDA_LLADDR if data.len() == 6 => mac = <[u8; 6]>::try_from(data).ok(),
                _ => {}
            }
        }
        if dst == Some(&want[..]) && mac.is_some() && found.is_none() {
            found = mac;
        }
    }
    Ok((found, false))
}

/// Route and neighbour queries over a `NETLINK_ROUTE` socket.
pub(crate) struct Rtnl {
    sock: Netlink,
    seq: u32,
    buf: Vec<u8>,
}

impl Rtnl {
    /// Open a socket in the calling thread's namespace (answers awaited at most 2 s).
    pub(crate) fn open() -> io::Result<Self> {
        Ok(Rtnl {
            sock: Netlink::route(std::time::Duration::from_secs(2))?,
            seq: 1,
            buf: vec![0u8; 64 * 1024],
        })
    }

    /// The kernel's route to `dst`.
    pub(crate) fn route(&mut self, dst: IpAddr) -> io::Result<RouteReply> {
        self.seq += 1;
        self.sock.send(&route_request(dst, self.seq))?;
        let n = self.sock.recv(&mut self.buf)?;
        parse_route_reply(&self.buf[..n])
    }

    /// The counters of interface `ifindex`.
    pub(crate) fn link_stats(&mut self, ifindex: u32) -> io::Result<super::LinkStats> {
        self.seq += 1;
        self.sock.send(&link_request(ifindex, self.seq))?;
        let n = self.sock.recv(&mut self.buf)?;
        parse_link_stats(&self.buf[..n])
    }

    /// The usable link-layer address of `ip` on interface `ifindex`, if the neighbour table
    /// has one.
    pub(crate) fn neighbour(&mut self, ip: IpAddr, ifindex: u32) -> io::Result<Option<[u8; 6]>> {
        self.seq += 1;
        self.sock.send(&neigh_dump_request(ip, self.seq))?;
        let mut found = None;
        loop {
            let n = self.sock.recv(&mut self.buf)?;
            let (mac, done) = parse_neigh_dump(&self.buf[..n], ip, ifindex)?;
            found = found.or(mac);
            if done || n == 0 {
                return Ok(found);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply message as the kernel would send it.
    fn reply(ty: u16, body: &[u8], attrs_: &[(u16, &[u8])]) -> Vec<u8> {
        let mut b = Vec::new();
        header(&mut b, ty, 0, 7);
        b.extend_from_slice(body);
        for (t, d) in attrs_ {
            attr(&mut b, *t, d);
        }
        finish(b)
    }

    fn ndmsg(ifindex: i32, state: u16) -> Vec<u8> {
        let mut v = vec![libc::AF_INET as u8, 0, 0, 0];
        v.extend_from_slice(&ifindex.to_ne_bytes());
        v.extend_from_slice(&state.to_ne_bytes());
        v.extend_from_slice(&[0, 1]);
        v
    }

    #[test]
    fn route_request_layout() {
        let m = route_request("198.18.0.2".parse().unwrap(), 9);
        // header + rtmsg + one 8-byte attribute.
        assert_eq!(m.len(), 16 + 12 + 8);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 36);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), RTM_GETROUTE);
        assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), 9);
        assert_eq!((m[16], m[17]), (libc::AF_INET as u8, 32));
        assert_eq!(&m[28..], &[8, 0, 1, 0, 198, 18, 0, 2]);
        let m6 = route_request("2001:db8::2".parse().unwrap(), 1);
        assert_eq!(m6.len(), 16 + 12 + 20);
        assert_eq!(m6[17], 128);
    }

    #[test]
    fn xdp_detach_request_layout() {
        let m = xdp_detach_request(7, 4, 33, 2);
        // header + ifinfomsg + IFLA_XDP nest of three 8-byte attributes.
        assert_eq!(m.len(), 16 + 16 + 4 + 24);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 60);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), 19);
        assert_eq!(i32::from_ne_bytes(m[20..24].try_into().unwrap()), 7);
        let nest = &m[32..];
        assert_eq!(u16::from_ne_bytes([nest[0], nest[1]]), 28);
        assert_eq!(u16::from_ne_bytes([nest[2], nest[3]]), 0x8000 | 43);
        let a = |i: usize| {
            let at = 4 + i * 8;
            (
                u16::from_ne_bytes([nest[at + 2], nest[at + 3]]),
                i32::from_ne_bytes(nest[at + 4..at + 8].try_into().unwrap()),
            )
        };
        // The program's fd -1 (detach), REPLACE | native mode, the expected program.
        assert_eq!(a(0), (1, -1));
        assert_eq!(a(1), (3, 16 | 4));
        assert_eq!(a(2), (8, 33));
    }

    #[test]
    fn parses_route_replies_and_errors() {
        let body = [libc::AF_INET as u8, 32, 0, 0, 254, 0, 0, 1, 0, 0, 0, 0];
        let r = reply(
            RTM_NEWROUTE,
            &body,
            &[
                (RTA_DST, &[198, 19, 0, 9]),
                (RTA_OIF, &5u32.to_ne_bytes()),
                (RTA_GATEWAY, &[198, 18, 0, 254]),
                (RTA_PREFSRC, &[198, 18, 0, 1]),
            ],
        );
        assert_eq!(
            parse_route_reply(&r).unwrap(),
            RouteReply {
                oif: 5,
                gateway: Some("198.18.0.254".parse().unwrap()),
                prefsrc: Some("198.18.0.1".parse().unwrap()),
            }
        );
        let mut err = Vec::new();
        header(&mut err, NLMSG_ERROR, 0, 7);
        err.extend_from_slice(&(-libc::ENETUNREACH).to_ne_bytes());
        err.extend_from_slice(&[0u8; 16]);
        let e = parse_route_reply(&finish(err)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENETUNREACH));
        // Truncated input is an error, not a panic.
        assert!(parse_route_reply(&r[..20]).is_err());
    }

    #[test]
    fn neighbour_dump_picks_a_usable_entry_on_the_interface() {
        let ip: IpAddr = "198.18.0.2".parse().unwrap();
        let mac = [2, 0x58, 0x53, 0, 0, 0xb];
        let mut d = Vec::new();
        // Same address on another interface, then a failed entry, then the good one.
        d.extend(reply(
            RTM_NEWNEIGH,
            &ndmsg(9, 0x02),
            &[(NDA_DST, &[198, 18, 0, 2]), (NDA_LLADDR, &[1; 6])],
        ));
        d.extend(reply(
            RTM_NEWNEIGH,
            &ndmsg(3, NUD_FAILED),
            &[(NDA_DST, &[198, 18, 0, 2])],
        ));
        d.extend(reply(
            RTM_NEWNEIGH,
            &ndmsg(3, 0x02),
            &[(NDA_DST, &[198, 18, 0, 2]), (NDA_LLADDR, &mac)],
        ));
        assert_eq!(parse_neigh_dump(&d, ip, 3).unwrap(), (Some(mac), false));
        d.extend(reply(NLMSG_DONE, &[0, 0, 0, 0], &[]));
        assert_eq!(parse_neigh_dump(&d, ip, 3).unwrap(), (Some(mac), true));
        assert_eq!(parse_neigh_dump(&d, ip, 4).unwrap(), (None, true));
        let incomplete = reply(
            RTM_NEWNEIGH,
            &ndmsg(3, NUD_INCOMPLETE),
            &[(NDA_DST, &[198, 18, 0, 2])],
        );
        assert_eq!(parse_neigh_dump(&incomplete, ip, 3).unwrap(), (None, false));
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(b in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = parse_route_reply(&b);
            let _ = parse_neigh_dump(&b, "198.18.0.2".parse().unwrap(), 1);
        }
    }
}
