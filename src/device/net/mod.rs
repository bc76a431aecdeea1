//! What the framer needs from the kernel's view of the network: the egress interface and
//! next hop for a destination, the next hop's MAC (the neighbour table, resolved with a probe
//! if absent) — both over rtnetlink ([`rtnl`]) — the interface's MAC and MTU, its packet
//! counters and the XDP features its driver offers (generic netlink).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::sansio::wire::ethernet::MacAddr;
use crate::sys::netdev;

mod genl;
pub(crate) mod rtnl;

/// The rtnetlink parsers, for the fuzz targets.
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzz {
    use std::io;
    use std::net::IpAddr;

    /// Parse a route reply; `Ok(oif)`.
    pub fn parse_route_reply(b: &[u8]) -> io::Result<u32> {
        super::rtnl::parse_route_reply(b).map(|r| r.oif)
    }

    /// Parse one datagram of a neighbour dump.
    pub fn parse_neigh_dump(
        b: &[u8],
        ip: IpAddr,
        ifindex: u32,
    ) -> io::Result<(Option<[u8; 6]>, bool)> {
        super::rtnl::parse_neigh_dump(b, ip, ifindex)
    }
}

/// The route to a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    /// Egress interface.
    pub(crate) dev: String,
    /// Gateway, if the destination is not on-link.
    pub(crate) gateway: Option<IpAddr>,
    /// Preferred source address.
    pub(crate) prefsrc: Option<IpAddr>,
}

impl Route {
    /// The address whose MAC frames are sent to.
    pub(crate) fn next_hop(&self, dst: IpAddr) -> IpAddr {
        self.gateway.unwrap_or(dst)
    }
}

fn rtnl(what: &str) -> Result<rtnl::Rtnl> {
    rtnl::Rtnl::open().map_err(|e| Error::io(format!("opening rtnetlink for {what}"), e))
}

/// The route the kernel would use for `dst` (in the calling thread's namespace), asked over
/// rtnetlink (`RTM_GETROUTE`, like `ip route get`).
pub(crate) fn route_get(dst: IpAddr) -> Result<Route> {
    let r = rtnl("a route lookup")?
        .route(dst)
        .map_err(|e| Error::io(format!("no route to {dst}"), e))?;
    let dev = netdev::if_indextoname(r.oif).ok_or_else(|| {
        Error::io(
            format!("route to {dst}: interface {} vanished", r.oif),
            std::io::ErrorKind::NotFound.into(),
        )
    })?;
    Ok(Route {
        dev,
        gateway: r.gateway,
        prefsrc: r.prefsrc,
    })
}

/// The neighbour-table MAC of `ip` on `dev`, if known and usable (an rtnetlink
/// `RTM_GETNEIGH` dump; incomplete and failed entries are skipped).
pub(crate) fn neighbour(ip: IpAddr, dev: &str) -> Result<Option<MacAddr>> {
    let index = netdev::if_nametoindex(dev).ok_or_else(|| Error::InterfaceNotFound {
        name: dev.to_string(),
    })?;
    let mac = rtnl("a neighbour lookup")?
        .neighbour(ip, index)
        .map_err(|e| Error::io(format!("reading the neighbour table of {dev}"), e))?;
    Ok(mac.map(MacAddr))
}

/// The MAC of `ip` on `dev`: from the neighbour table, else after making the kernel resolve
/// it (one empty datagram to the discard port triggers ARP / neighbour discovery).
pub(crate) fn resolve(ip: IpAddr, dev: &str, timeout: Duration) -> Result<MacAddr> {
    if let Some(m) = neighbour(ip, dev)? {
        return Ok(m);
    }
    let bind = if ip.is_ipv4() {
        std::net::SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
    } else {
        std::net::SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    };
    if let Ok(s) = std::net::UdpSocket::bind(bind) {
        let _ = s.send_to(&[], (ip, 9));
    }
    let start = Instant::now();
    while start.elapsed() < timeout {
        std::thread::sleep(Duration::from_millis(10));
        if let Some(m) = neighbour(ip, dev)? {
            return Ok(m);
        }
    }
    Err(Error::io(
        format!("cannot resolve the MAC of {ip} on {dev} (no ARP/ND answer; give --dst-mac)"),
        std::io::ErrorKind::TimedOut.into(),
    ))
}

/// An interface's index, MAC, MTU and whether it is up.
#[derive(Debug, Clone)]
pub(crate) struct IfInfo {
    /// Index.
    pub(crate) index: u32,
    /// MAC.
    pub(crate) mac: MacAddr,
    /// MTU.
    pub(crate) mtu: u32,
}

/// Look up `name` in the calling thread's namespace.
pub(crate) fn if_info(name: &str) -> Result<IfInfo> {
    let index = netdev::if_nametoindex(name).ok_or_else(|| Error::InterfaceNotFound {
        name: name.to_string(),
    })?;
    let mac =
        netdev::if_hwaddr(name).map_err(|e| Error::io(format!("reading the MAC of {name}"), e))?;
    let mtu =
        netdev::if_mtu(name).map_err(|e| Error::io(format!("reading the MTU of {name}"), e))?;
    if !netdev::if_running(name).unwrap_or(false) {
        return Err(Error::InterfaceDown {
            name: name.to_string(),
            source: std::io::Error::from_raw_os_error(libc::ENETDOWN),
        });
    }
    Ok(IfInfo {
        index,
        mac: MacAddr(mac),
        mtu,
    })
}

/// An interface's packet counters (`IFLA_STATS64`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LinkStats {
    /// Packets received.
    pub(crate) rx_packets: u64,
    /// Packets transmitted.
    pub(crate) tx_packets: u64,
    /// Bytes transmitted.
    pub(crate) tx_bytes: u64,
    /// Packets dropped on receive.
    pub(crate) rx_dropped: u64,
    /// Packets dropped on transmit.
    pub(crate) tx_dropped: u64,
}

/// The counters of interface `ifindex` in the calling thread's namespace.
pub(crate) fn link_stats(ifindex: u32) -> Result<LinkStats> {
    rtnl("reading interface counters")?
        .link_stats(ifindex)
        .map_err(|e| Error::io(format!("reading the counters of interface {ifindex}"), e))
}

/// The XDP features of interface `ifindex` (`NETDEV_A_DEV_XDP_FEATURES`, bits
/// [`XDP_ACT_NDO_XMIT`], ...); `None` if the kernel has no `netdev` generic netlink family.
pub(crate) fn xdp_features(ifindex: u32) -> Result<Option<u64>> {
    genl::xdp_features(ifindex).map_err(|e| {
        Error::io(
            format!("reading the XDP features of interface {ifindex}"),
            e,
        )
    })
}

/// The driver's limit on descriptors per zero-copy AF_XDP frame (`xdp_zc_max_segs`); `None`
/// if the kernel does not say.
pub(crate) fn xdp_zc_max_segs(ifindex: u32) -> Result<Option<u32>> {
    genl::xdp_zc_max_segs(ifindex).map_err(|e| {
        Error::io(
            format!("reading the zero-copy segment limit of interface {ifindex}"),
            e,
        )
    })
}

/// `NETDEV_XDP_ACT_NDO_XMIT`: the driver takes redirected frames (`ndo_xdp_xmit`).
pub(crate) const XDP_ACT_NDO_XMIT: u64 = 1 << 2;
