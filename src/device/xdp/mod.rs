//! AF_XDP: frames written in user space into UMEM chunks and pushed to a NIC queue's TX ring,
//! our XDP program steering our flows' packets back into the RX ring.
//!
//! - [`open`]: the one open/negotiation path (interface, route, MTU with VLAN, frame size,
//!   MAC, XDP program, queues, checksum offload, TX budget, report);
//! - [`queue`]: one socket behind the device seam (frame table, batching, kicks, reaping);
//! - [`prog`]: our XDP program (`bpf/xsend.bpf.c`), attached through a BPF link;
//! - [`net`] and [`rtnl`]: route, neighbour and interface lookups over rtnetlink.

pub(crate) mod net;
mod open;
mod prog;
mod queue;
mod rtnl;

pub(crate) use open::{open, Request};
pub(crate) use queue::XdpQueue;
