//! The one open/negotiation path of everything AF_XDP: interface, route, MTU (with the VLAN
//! tag), frame size, next-hop MAC, our XDP program, queues (zero-copy, then copy mode),
//! checksum offload, TX budget, and the report of what was obtained and why not better.

use std::os::fd::AsFd;

use super::files::XdpFiles;
use super::prog::Steer;
use super::queue::{QueueConfig, XdpQueue};
use crate::device::path::Path;
use crate::device::{Port, TxQueue};
use crate::error::{Error, Result};
use crate::options::{ChecksumChoice, ConnConfig, Proto};
use crate::report::BackendInfo;
use crate::sansio::framer::UdpFramer;
use crate::sansio::wire::{ethernet, tcp};
use crate::sys::{netdev, xsk};

/// Frames one kick may transmit (`XDP_MAX_TX_SKB_BUDGET`).
const TX_BUDGET: u32 = 256;

/// What the engine asks of an AF_XDP port.
pub(crate) struct Request<'a> {
    /// The connection's options (peer, interface, queues, ring, VLAN, checksums, MAC).
    pub(crate) cfg: &'a ConnConfig,
    /// Frames for receiving per queue (0: TX only).
    pub(crate) rx_frames: u32,
}

pub(super) fn unavailable(reason: String) -> Error {
    Error::BackendUnavailable {
        backend: "xdp",
        reason,
    }
}

/// Open AF_XDP on the path to `req.cfg.peer`. UDP: `cfg.queues` queues, each with a source
/// port of its own, our XDP program if it can be attached. TCP: one queue, receiving (the
/// program steers the connection's packets to it, so it is required), the local port reserved.
pub(crate) fn open(req: &Request<'_>) -> Result<Port<XdpQueue>> {
    open_with_files(req).map(|(p, _)| p)
}

/// [`open`], and what maps a file into the port's queues later (zero-copy payloads).
pub(crate) fn open_with_files(req: &Request<'_>) -> Result<(Port<XdpQueue>, XdpFiles)> {
    let cfg = req.cfg;
    let mut reasons = Vec::new();
    if let Some(i) = &cfg.iface {
        if netdev::if_nametoindex(i).is_none() {
            return Err(Error::InterfaceNotFound { name: i.clone() });
        }
    }
    let nq = match cfg.proto {
        Proto::Udp => cfg.queues.max(1),
        Proto::Tcp => 1,
    };
    if nq > MAX_QUEUES {
        return Err(Error::InvalidOption(format!(
            "{nq} queues: at most {MAX_QUEUES}"
        )));
    }
    let path = Path::resolve(cfg, nq, "xdp")?;
    let ifname = path.ifname.clone();
    // (sysfs shows the namespace it was mounted in: unknown from inside another one.)
    if let Some(ntx) = sys_queues(&ifname, "tx-").filter(|&n| nq as usize > n) {
        return Err(Error::InvalidOption(format!(
            "{nq} queues asked for, and {ifname} has {ntx} TX queue(s)"
        )));
    }
    if cfg.proto == Proto::Tcp {
        let nrx = rx_queues(&ifname);
        if nrx > 1 {
            return Err(unavailable(format!(
                "TCP over AF_XDP needs every packet of the flow on one queue, and {ifname} has {nrx} RX queues (use `ethtool -L {ifname} combined 1` or ntuple steering)"
            )));
        }
    }
    let ifi = path.ifi.clone();
    let mtu = path.mtu;
    let l2 = (ethernet::HEADER_LEN + cfg.vlan.map_or(0, |_| ethernet::VLAN_TAG_LEN)) as u32;
    let (frame_size, span) = layout(mtu + l2, &ifname)?;
    let dst_mac = path.dst_mac(cfg)?;
    let steer = match Steer::attach(ifi.index, &ifname, &mut reasons) {
        Ok(s) => Some(s),
        // Receiving needs our program: without it there is no TCP over AF_XDP.
        Err(e) if req.rx_frames > 0 => {
            return Err(unavailable(format!(
                "XDP program on {ifname}: {}",
                e.chain()
            )))
        }
        Err(e) => {
            reasons.push(format!(
                "no XDP program on {ifname} (AF_XDP TX works without it): {}",
                e.chain()
            ));
            None
        }
    };

    let ring = cfg.ring_size.clamp(64, 16384).next_power_of_two();
    let (queues, zerocopy, budget) = open_queues(
        &Queues {
            ifname: &ifname,
            ifindex: ifi.index,
            count: nq,
            ring,
            frame_size,
            span,
            rx_frames: req.rx_frames,
            checksum: cfg.checksum,
            max_frame: (mtu + l2) as usize,
        },
        steer.as_ref(),
        &mut reasons,
    )?;
    if let (Proto::Tcp, Some(s)) = (cfg.proto, &steer) {
        s.add_flow(tcp::PROTO_TCP, path.src.port(), cfg.peer)?;
    }
    let flows = path.flows(cfg, dst_mac);
    let xdp_mode = steer.as_ref().map_or("none", |s| s.mode);
    let copy_mode = if zerocopy { "zerocopy" } else { "copy" };
    let info = BackendInfo {
        backend: "xdp",
        mode: format!("{xdp_mode}/{copy_mode}"),
        iface: Some(ifname.clone()),
        mtu: Some(mtu),
        max_datagram: (cfg.proto == Proto::Udp)
            .then(|| UdpFramer::new(&flows[0], mtu).max_payload() as u64),
        fallback_reasons: reasons,
        xdp_mode: Some(xdp_mode.into()),
        copy_mode: Some(copy_mode.into()),
        queues: Some(nq),
        ring_size: Some(ring),
        frame_size: Some(frame_size),
        segments: Some(span),
        checksum: Some(
            if queues[0].caps().csum_offload {
                "offload"
            } else {
                "software"
            }
            .into(),
        ),
        tx_budget: budget.then_some(TX_BUDGET),
        dst_mac: Some(dst_mac.to_string()),
        ..Default::default()
    };
    let files = XdpFiles {
        xskmap: steer.as_ref().map(Steer::xskmap).transpose()?,
    };
    Ok((
        Port {
            queues,
            flows,
            mtu,
            info,
            hold: Box::new((steer, path.sockets)),
        },
        files,
    ))
}

/// Most descriptors one frame may take: copy mode builds an skb with at most
/// `MAX_SKB_FRAGS` (17) pages after its linear part.
const MAX_SPAN: u32 = 17;

/// UMEM chunk size and frames per TX buffer for frames of up to `max_frame` bytes (plus the
/// headroom): one 2048- or 4096-byte chunk when that holds it, else a buffer of several
/// consecutive 4096-byte frames sent as one descriptor each (multi-buffer, `XDP_USE_SG`).
pub(super) fn layout(max_frame: u32, ifname: &str) -> Result<(u32, u32)> {
    let need = max_frame + xsk::HEADROOM;
    if let Some(f) = [2048u32, 4096].into_iter().find(|f| need <= *f) {
        return Ok((f, 1));
    }
    let span = need.div_ceil(4096);
    if span > MAX_SPAN {
        return Err(unavailable(format!(
            "frames of {max_frame} bytes on {ifname} would take {span} descriptors each, and copy mode takes at most {MAX_SPAN}"
        )));
    }
    Ok((4096, span))
}

/// The queues to open on one interface.
pub(super) struct Queues<'a> {
    pub(super) ifname: &'a str,
    pub(super) ifindex: u32,
    pub(super) count: u32,
    pub(super) ring: u32,
    pub(super) frame_size: u32,
    pub(super) span: u32,
    pub(super) rx_frames: u32,
    pub(super) checksum: ChecksumChoice,
    pub(super) max_frame: usize,
}

/// Open `q.count` queues (zero-copy, else copy mode, each step's refusal in `reasons`),
/// checksum offload as asked, each added to `steer`, with the TX budget raised. Returns the
/// queues, whether zero-copy was obtained and whether the budget was.
pub(super) fn open_queues(
    q: &Queues<'_>,
    steer: Option<&Steer>,
    reasons: &mut Vec<String>,
) -> Result<(Vec<XdpQueue>, bool, bool)> {
    let ifname = q.ifname;
    let qc = |queue: u32, zerocopy: bool| QueueConfig {
        netns: None,
        ifname: ifname.to_string(),
        ifindex: q.ifindex,
        queue,
        ring: q.ring,
        frame_size: q.frame_size,
        span: q.span,
        zerocopy,
        rx_frames: q.rx_frames,
        offload: q.checksum != ChecksumChoice::Software,
        max_frame: q.max_frame,
    };
    let mut queues = Vec::with_capacity(q.count as usize);
    let mut zerocopy = zc_takes(q, reasons);
    let mut budget = true;
    for n in 0..q.count {
        let mut queue = open_queue(&qc(n, zerocopy), &mut zerocopy, reasons)?;
        if n == 0 && q.checksum != ChecksumChoice::Software && !queue.caps().csum_offload {
            let why = if zerocopy && q.span > 1 {
                "a zero-copy multi-buffer frame's pieces start at page boundaries, where the kernel finds no room for the TX metadata in the same page"
            } else {
                "the kernel refused a UMEM with TX metadata (XDP_UMEM_TX_METADATA_LEN, Linux 6.8+)"
            };
            if q.checksum == ChecksumChoice::Offload {
                return Err(unavailable(format!("checksum offload on {ifname}: {why}")));
            }
            reasons.push(format!("checksum offload: {why}; checksums in software"));
        }
        if let Some(s) = steer {
            s.add_socket(n, queue.as_fd())?;
        }
        budget &= queue.set_tx_budget(TX_BUDGET).is_ok();
        queues.push(queue);
    }
    if !budget {
        reasons.push(
            "XDP_MAX_TX_SKB_BUDGET refused: one kick sends the kernel's default of 32 frames"
                .into(),
        );
    }
    Ok((queues, zerocopy, budget))
}

/// Whether zero-copy may be tried: a multi-buffer frame must not take more descriptors than
/// the driver's `xdp_zc_max_segs` (the kernel would drop such frames, not refuse the bind).
fn zc_takes(q: &Queues<'_>, reasons: &mut Vec<String>) -> bool {
    if q.span <= 1 {
        return true;
    }
    match crate::device::net::xdp_zc_max_segs(q.ifindex) {
        Ok(Some(max)) if max < q.span => {
            reasons.push(format!(
                "zero-copy on {}: a frame takes {} descriptors and the driver gathers at most {max}",
                q.ifname, q.span
            ));
            false
        }
        _ => true,
    }
}

/// Open one queue: zero-copy first (while it is still possible), then copy mode;
/// `zerocopy` says which was had. Why zero-copy was refused goes to `reasons` once.
fn open_queue(
    qc: &QueueConfig,
    zerocopy: &mut bool,
    reasons: &mut Vec<String>,
) -> Result<XdpQueue> {
    let copy = |qc: &QueueConfig| {
        XdpQueue::open(&QueueConfig {
            zerocopy: false,
            ..qc.clone()
        })
        .map_err(|e| {
            let what = format!("AF_XDP socket on {} queue {}: {e}", qc.ifname, qc.queue);
            match e.raw_os_error() {
                Some(libc::EPERM) => Error::NoPermission { what },
                _ => unavailable(what),
            }
        })
    };
    if !*zerocopy {
        return copy(qc);
    }
    match XdpQueue::open(qc) {
        Ok(q) => Ok(q),
        Err(e) => {
            reasons.push(format!("zero-copy on {}: {e}", qc.ifname));
            *zerocopy = false;
            copy(qc)
        }
    }
}

/// Most queues one connection may use.
const MAX_QUEUES: u32 = 256;

/// RX queues of an interface (sysfs); 1 if unknown.
fn rx_queues(ifname: &str) -> usize {
    sys_queues(ifname, "rx-").unwrap_or(1)
}

/// Queues of an interface whose sysfs entries start with `prefix`, if sysfs shows it.
fn sys_queues(ifname: &str, prefix: &str) -> Option<usize> {
    std::fs::read_dir(format!("/sys/class/net/{ifname}/queues"))
        .ok()
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .count()
        })
        .filter(|&n| n > 0)
}
