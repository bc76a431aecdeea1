//! The path to a peer, shared by every device that frames its own packets: the egress
//! interface and its MTU (the route's and the link's), our address and the source port of
//! each queue (held by kernel sockets), and the next hop's MAC.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::net::{self, IfInfo};
use crate::error::{Error, Result};
use crate::options::{ConnConfig, Proto};
use crate::sansio::framer::Flow;
use crate::sansio::wire::ethernet::MacAddr;
use crate::sys::socket as sock;

/// How long to wait for the next hop's MAC to be resolved.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Where frames to `cfg.peer` leave, and as whom.
pub(crate) struct Path {
    /// Egress interface.
    pub(crate) ifname: String,
    /// Its index, MAC and MTU.
    pub(crate) ifi: IfInfo,
    /// Path MTU (IP): the link's, or the route's if lower.
    pub(crate) mtu: u32,
    /// Our address and queue 0's port.
    pub(crate) src: SocketAddr,
    /// Source port of each queue.
    pub(crate) ports: Vec<u16>,
    /// Next hop toward the peer.
    next_hop: std::net::IpAddr,
    /// Sockets that keep our ports reserved: hold them as long as the flows are used.
    pub(crate) sockets: Vec<Socket>,
}

impl Path {
    /// The route to `cfg.peer` (or `cfg.iface`), `nq` source ports, the interface up.
    /// Loopback is refused for `backend` (it has no queue to put frames on).
    pub(crate) fn resolve(cfg: &ConnConfig, nq: u32, backend: &'static str) -> Result<Path> {
        let route = net::route_get(cfg.peer.ip())?;
        let ifname = cfg.iface.clone().unwrap_or_else(|| route.dev.clone());
        let ends = Endpoints::reserve(cfg, nq)?;
        if ifname == "lo" {
            return Err(Error::BackendUnavailable {
                backend,
                reason: "loopback has no NIC queue to send to".into(),
            });
        }
        let ifi = net::if_info(&ifname)?;
        Ok(Path {
            mtu: ifi.mtu.min(ends.path_mtu),
            ifname,
            ifi,
            src: ends.src,
            ports: ends.ports,
            next_hop: route.next_hop(cfg.peer.ip()),
            sockets: ends.sockets,
        })
    }

    /// The next hop's MAC: `cfg.dst_mac`, else the neighbour table's (resolved if absent).
    pub(crate) fn dst_mac(&self, cfg: &ConnConfig) -> Result<MacAddr> {
        match cfg.dst_mac {
            Some(m) => Ok(m),
            None => net::resolve(self.next_hop, &self.ifname, RESOLVE_TIMEOUT),
        }
    }

    /// The flow of each queue.
    pub(crate) fn flows(&self, cfg: &ConnConfig, dst_mac: MacAddr) -> Vec<Flow> {
        self.ports
            .iter()
            .map(|&port| Flow {
                src_mac: self.ifi.mac,
                dst_mac,
                vlan: cfg.vlan,
                src: SocketAddr::new(self.src.ip(), port),
                dst: cfg.peer,
            })
            .collect()
    }
}

/// Kernel sockets that hold our addresses: the kernel neither hands our source ports out
/// again nor answers for them, and they tell the source address and the path MTU.
pub(crate) struct Endpoints {
    /// Source address and queue 0's port.
    pub(crate) src: SocketAddr,
    /// Source port of each queue.
    pub(crate) ports: Vec<u16>,
    /// MTU of the route to the peer.
    pub(crate) path_mtu: u32,
    pub(crate) sockets: Vec<Socket>,
}

impl Endpoints {
    /// UDP: a connected socket (source address and port, path MTU) and one bound socket per
    /// further queue. TCP: a connected UDP socket for the source address and path MTU, and a
    /// bound, never listening TCP socket that reserves the local port.
    pub(crate) fn reserve(cfg: &ConnConfig, nq: u32) -> Result<Self> {
        let new = |ty: Type, proto: Protocol| -> Result<Socket> {
            let s = Socket::new(Domain::for_address(cfg.peer), ty, Some(proto))
                .map_err(|e| Error::io("creating a port-reserving socket", e))?;
            if let Some(i) = &cfg.iface {
                s.bind_device(Some(i.as_bytes()))
                    .map_err(|e| Error::io(format!("binding to interface {i}"), e))?;
            }
            Ok(s)
        };
        let bind = |s: &Socket, a: SocketAddr| {
            s.bind(&a.into())
                .map_err(|e| Error::io(format!("binding {a}"), e))
        };
        let local = |s: &Socket| {
            s.local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .ok_or_else(|| Error::io("the flow's local address", std::io::Error::other("none")))
        };
        let probe = new(Type::DGRAM, Protocol::UDP)?;
        if let Some(b) = cfg.bind {
            let b = match cfg.proto {
                Proto::Udp => b,
                Proto::Tcp => SocketAddr::new(b.ip(), 0),
            };
            bind(&probe, b)?;
        }
        probe
            .connect(&cfg.peer.into())
            .map_err(|e| Error::Connect {
                addr: cfg.peer,
                source: e,
            })?;
        let path_mtu = sock::path_mtu(probe.as_fd(), cfg.peer.is_ipv6())
            .map_err(|e| Error::io(format!("reading the path MTU to {}", cfg.peer), e))?;
        let mut src = local(&probe)?;
        let mut sockets = vec![];
        if cfg.proto == Proto::Tcp {
            let reserve = new(Type::STREAM, Protocol::TCP)?;
            let want = SocketAddr::new(src.ip(), cfg.bind.map_or(0, |b| b.port()));
            reserve
                .bind(&want.into())
                .map_err(|e| Error::io(format!("reserving local TCP port {want}"), e))?;
            src = local(&reserve)?;
            sockets.push(reserve);
        }
        let mut ports = vec![src.port()];
        for _ in 1..nq {
            let s = new(Type::DGRAM, Protocol::UDP)?;
            bind(&s, SocketAddr::new(src.ip(), 0))?;
            ports.push(local(&s)?.port());
            sockets.push(s);
        }
        sockets.push(probe);
        Ok(Endpoints {
            src,
            ports,
            path_mtu,
            sockets,
        })
    }
}
