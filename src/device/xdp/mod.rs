//! AF_XDP: frames written in user space into UMEM chunks and pushed to a NIC queue's TX ring,
//! our XDP program steering our flows' packets back into the RX ring.
//!
//! - [`open`]: the one open/negotiation path (interface, route, MTU with VLAN, frame size,
//!   MAC, XDP program, queues, checksum offload, TX budget, report); [`raw`] opens a queue
//!   for whole frames made elsewhere (replay) through the same queue negotiation;
//! - [`queue`]: one socket behind the device seam (frame table, batching, kicks, reaping);
//! - [`files`]: zero-copy file payloads (the file's pages mapped into the UMEM);
//! - [`prog`]: our XDP program (`bpf/xsend.bpf.c`), attached through a BPF link.

mod files;
mod open;
mod prog;
mod queue;
mod raw;
mod rxport;
mod sink;

pub(crate) use open::{open, open_with_files, Request};
pub(crate) use prog::{load_error, quiet_libbpf, Steer};
pub(crate) use queue::XdpQueue;
pub(crate) use raw::open_raw;
pub(crate) use rxport::RxPortProg;
pub(crate) use sink::SinkProg;
