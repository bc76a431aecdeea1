//! The degradation ladder: which transport a connection gets. `auto` tries AF_XDP (zero-copy,
//! then copy mode, inside the device's own negotiation) and falls back to kernel sockets,
//! saying why in `fallback_reasons`; an explicit choice is that or an error. DPDK is never
//! part of `auto`: it takes the port away from the kernel, so it runs only when asked for.

use crate::device::{xdp, TxQueue};
use crate::engine::tcp::TcpTransport;
use crate::engine::udp::UdpTransport;
use crate::engine::{kernel, Transport};
use crate::error::{Error, Result};
use crate::options::{BackendChoice, ConnConfig, Proto};

/// Frames each AF_XDP TCP connection keeps in its fill ring for ACKs.
const TCP_RX_FRAMES: u32 = 512;

/// Open a transport for `cfg`, walking the ladder for [`BackendChoice::Auto`].
pub(crate) fn open(cfg: &ConnConfig) -> Result<Box<dyn Transport>> {
    if let Some(v) = cfg.vlan {
        if !(1..=4094).contains(&v) {
            return Err(Error::InvalidOption(format!(
                "VLAN id {v}: 1-4094 (0 and 4095 are reserved)"
            )));
        }
        if cfg.backend == BackendChoice::Kernel {
            return Err(Error::InvalidOption(format!(
                "VLAN {v} with the kernel backend: kernel sockets cannot tag frames (send over a VLAN interface instead, or use AF_XDP)"
            )));
        }
    }
    match cfg.backend {
        BackendChoice::Xdp => open_xdp(cfg, false),
        BackendChoice::Dpdk => open_dpdk(cfg),
        BackendChoice::Kernel => kernel::open(cfg, Vec::new()),
        BackendChoice::Auto => match open_xdp(cfg, true) {
            Ok(t) => Ok(t),
            // Bad input is not a reason to fall back: it would fail there too.
            Err(e @ (Error::InterfaceNotFound { .. } | Error::Connect { .. })) => Err(e),
            // Nor is a VLAN tag: the kernel path would send the frames untagged.
            Err(e) if cfg.vlan.is_some() => Err(e),
            Err(e) => kernel::open(cfg, vec![format!("xdp: {}", e.chain())]),
        },
    }
}

/// DPDK (only when asked for: it takes the port away from the kernel): the UDP sender or
/// the TCP driver over the port's queues.
#[cfg(feature = "dpdk")]
fn open_dpdk(cfg: &ConnConfig) -> Result<Box<dyn Transport>> {
    let (port, files) = crate::device::dpdk::open(cfg)?;
    Ok(match cfg.proto {
        Proto::Udp => Box::new(UdpTransport::new(port).with_files(Box::new(files), cfg.payload)),
        Proto::Tcp => Box::new(TcpTransport::connect(port, cfg)?.with_files(Box::new(files))),
    })
}

#[cfg(not(feature = "dpdk"))]
fn open_dpdk(_cfg: &ConnConfig) -> Result<Box<dyn Transport>> {
    Err(crate::device::dpdk::not_built())
}

/// AF_XDP: the UDP sender, or the TCP driver (receiving ACKs on the same queue).
///
/// Under `auto`, TCP takes AF_XDP only in zero-copy mode: where frames are copied anyway,
/// the kernel's own TCP (`sendfile` with TSO/GSO) moves more bytes per CPU second, so
/// taking user-space TCP there would make `auto` slower than the fallback.
fn open_xdp(cfg: &ConnConfig, auto: bool) -> Result<Box<dyn Transport>> {
    Ok(match cfg.proto {
        Proto::Udp => {
            let (port, files) = xdp::open_with_files(&xdp::Request { cfg, rx_frames: 0 })?;
            Box::new(UdpTransport::new(port).with_files(Box::new(files), cfg.payload))
        }
        Proto::Tcp => {
            let (port, files) = xdp::open_with_files(&xdp::Request {
                cfg,
                rx_frames: TCP_RX_FRAMES,
            })?;
            if auto && !port.queues.iter().all(|q| q.caps().zero_copy) {
                return Err(Error::BackendUnavailable {
                    backend: "xdp",
                    reason: format!(
                        "TCP over AF_XDP would run in copy mode on {}: the kernel's TCP (sendfile, TSO/GSO) is faster there (--backend xdp takes it anyway)",
                        port.info.iface.as_deref().unwrap_or("?")
                    ),
                });
            }
            Box::new(TcpTransport::connect(port, cfg)?.with_files(Box::new(files)))
        }
    })
}
