//! The degradation ladder: which transport a connection gets. `auto` tries AF_XDP (zero-copy,
//! then copy mode, inside the device's own negotiation) and falls back to kernel sockets,
//! saying why in `fallback_reasons`; an explicit choice is that or an error.

use crate::device::xdp;
use crate::engine::tcp::TcpTransport;
use crate::engine::udp::UdpTransport;
use crate::engine::{kernel, Transport};
use crate::error::{Error, Result};
use crate::options::{BackendChoice, ConnConfig, Proto};

/// Frames each AF_XDP TCP connection keeps in its fill ring for ACKs.
const TCP_RX_FRAMES: u32 = 512;

/// Open a transport for `cfg`, walking the ladder for [`BackendChoice::Auto`].
pub(crate) fn open(cfg: &ConnConfig) -> Result<Box<dyn Transport>> {
    match cfg.backend {
        BackendChoice::Xdp => open_xdp(cfg),
        BackendChoice::Kernel => kernel::open(cfg, Vec::new()),
        BackendChoice::Auto => match open_xdp(cfg) {
            Ok(t) => Ok(t),
            // Bad input is not a reason to fall back: it would fail there too.
            Err(e @ (Error::InterfaceNotFound { .. } | Error::Connect { .. })) => Err(e),
            Err(e) => kernel::open(cfg, vec![format!("xdp: {}", e.chain())]),
        },
    }
}

/// AF_XDP: the UDP sender, or the TCP driver (receiving ACKs on the same queue).
fn open_xdp(cfg: &ConnConfig) -> Result<Box<dyn Transport>> {
    Ok(match cfg.proto {
        Proto::Udp => {
            let port = xdp::open(&xdp::Request { cfg, rx_frames: 0 })?;
            Box::new(UdpTransport::new(port))
        }
        Proto::Tcp => {
            let port = xdp::open(&xdp::Request {
                cfg,
                rx_frames: TCP_RX_FRAMES,
            })?;
            Box::new(TcpTransport::connect(port, cfg)?)
        }
    })
}
