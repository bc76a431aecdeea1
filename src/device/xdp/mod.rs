//! AF_XDP: frames written in user space into UMEM chunks and pushed to a NIC queue's TX ring,
//! our XDP program steering our flows' packets back into the RX ring.
//!
//! - [`open`]: the one open/negotiation path (interface, route, MTU with VLAN, frame size,
//!   MAC, XDP program, queues, checksum offload, TX budget, report); [`raw`] opens a queue
//!   for whole frames made elsewhere (replay) through the same queue negotiation;
//! - [`queue`]: one socket behind the device seam (frame table, batching, kicks, reaping);
//! - [`prog`]: our XDP program (`bpf/xsend.bpf.c`), attached through a BPF link;
//! - [`net`] and [`rtnl`]: route, neighbour and interface lookups over rtnetlink.

pub(crate) mod net;
mod open;
mod prog;
mod queue;
mod raw;
mod rtnl;

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

pub(crate) use open::{open, Request};
pub(crate) use queue::XdpQueue;
pub(crate) use raw::open_raw;
