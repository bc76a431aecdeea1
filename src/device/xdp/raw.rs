//! AF_XDP for whole frames made elsewhere (replay of a capture): one TX queue on an
//! interface, frames sized for its MTU plus an Ethernet header and one VLAN tag, no route,
//! no neighbour, no XDP program (AF_XDP transmits without one) and no checksum offload (the
//! frames carry their own checksums).

use super::open::{layout, open_queues, unavailable, Queues};
use super::XdpQueue;
use crate::device::net;
use crate::device::Port;
use crate::error::Result;
use crate::options::ChecksumChoice;
use crate::report::BackendInfo;

/// Link-layer bytes a replayed frame may carry besides its IP packet: Ethernet and one tag.
const L2: u32 = 14 + 4;

/// Open one AF_XDP TX queue on `ifname` with a ring of `ring` descriptors.
pub(crate) fn open_raw(ifname: &str, ring: u32) -> Result<Port<XdpQueue>> {
    let ifi = net::if_info(ifname)?;
    if ifname == "lo" {
        return Err(unavailable("loopback has no NIC queue to send to".into()));
    }
    let (frame_size, span) = layout(ifi.mtu + L2, ifname)?;
    let mut reasons = Vec::new();
    let ring = ring.clamp(64, 16384).next_power_of_two();
    let (queues, zerocopy, budget) = open_queues(
        &Queues {
            ifname,
            ifindex: ifi.index,
            count: 1,
            ring,
            frame_size,
            span,
            rx_frames: 0,
            checksum: ChecksumChoice::Software,
            max_frame: (ifi.mtu + L2) as usize,
        },
        None,
        &mut reasons,
    )?;
    let copy_mode = if zerocopy { "zerocopy" } else { "copy" };
    let info = BackendInfo {
        backend: "xdp",
        mode: format!("none/{copy_mode}"),
        iface: Some(ifname.to_string()),
        mtu: Some(ifi.mtu),
        fallback_reasons: reasons,
        xdp_mode: Some("none".into()),
        copy_mode: Some(copy_mode.into()),
        queues: Some(1),
        ring_size: Some(ring),
        frame_size: Some(frame_size),
        segments: Some(span),
        checksum: Some("in the frames".into()),
        tx_budget: budget.then_some(256),
        ..Default::default()
    };
    Ok(Port {
        queues,
        flows: Vec::new(),
        mtu: ifi.mtu,
        info,
        hold: Box::new(()),
    })
}
