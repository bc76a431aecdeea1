//! The kernel's live-frames generator: `BPF_PROG_RUN` with `BPF_F_TEST_XDP_LIVE_FRAMES` runs
//! our XDP program (`bpf/live.bpf.c`) over a page_pool of frames made from one template; the
//! program stamps each frame (sequence number, IDs, flow fields, lengths, checksums) and
//! redirects it to the target interface. No UMEM, no descriptor, no user-space copy per frame.
//!
//! [`open`] resolves the path like every device and checks the precondition instead of
//! guessing it: the target must take redirected frames (`ndo_xdp_xmit`, reported in the
//! `netdev` generic netlink family's XDP features). A veth takes them only when its peer has
//! an XDP program or GRO on; some NIC drivers only with an XDP program on the target itself,
//! which is then loaded (through a BPF link: gone with the process) and reported.
//! [`prog::LiveProg`] is one runner's loaded program.

mod prog;
mod replay;

pub(crate) use prog::{LiveProg, ProgConfig};
pub(crate) use replay::{ReplayProg, REC_DATA};

use crate::device::net::{self, LinkStats, XDP_ACT_NDO_XMIT};
use crate::device::path::Path;
use crate::device::xdp::Steer;
use crate::error::{Error, Result};
use crate::options::{ConnConfig, GenBackend};
use crate::report::BackendInfo;
use crate::sansio::framer::Flow;
use crate::sys::netdev;

/// Longest wait for the target's counters to show every frame sent.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(200);

/// Frames per page_pool cycle and redirect flush (the kernel's maximum).
pub(crate) const MAX_BATCH: u32 = 256;

pub(crate) fn unavailable(reason: String) -> Error {
    Error::BackendUnavailable {
        backend: "live",
        reason,
    }
}

/// Whether this kernel runs XDP programs over live frames for us at all: a program that
/// drops its one frame, run once (nothing is sent). Asked once per process. Refused, the
/// reason says how (a kernel before 5.18; a kernel or sandbox policy that forbids it even
/// to root: EPERM, seen on a 6.18 VM whose capability bounding set lacked cap_sys_resource).
pub(crate) fn kernel_runs_live_frames() -> Result<()> {
    static ANSWER: std::sync::OnceLock<std::result::Result<(), String>> =
        std::sync::OnceLock::new();
    let a = ANSWER.get_or_init(|| {
        use std::os::fd::AsFd;
        let prog = crate::sys::bpf::load_xdp_drop()
            .map_err(|e| format!("loading a one-instruction XDP program: {e}"))?;
        let mut frame = [0u8; 60];
        frame[12] = 0x08;
        match crate::sys::bpf::prog_run_live(prog.as_fd(), &frame, 1, 1) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Err(
                "this kernel runs no XDP program over live frames (BPF_F_TEST_XDP_LIVE_FRAMES, Linux 5.18+)".into(),
            ),
            Err(e) => Err(format!(
                "this kernel refuses to run XDP programs over live frames (BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES: {e}), though the program loaded"
            )),
        }
    });
    a.clone().map_err(unavailable)
}

/// The interface live frames are redirected to.
pub(crate) struct Target {
    /// Name.
    pub(crate) ifname: String,
    /// Index (the redirect target).
    pub(crate) ifindex: u32,
}

/// The target of a live-frames generator: where frames go and as whom.
pub(crate) struct LivePort {
    /// Egress interface.
    pub(crate) target: Target,
    /// The flow of each runner.
    pub(crate) flows: Vec<Flow>,
    /// Path MTU (IP).
    pub(crate) mtu: u32,
    /// What was obtained, and why not better.
    pub(crate) info: BackendInfo,
    /// Port reservations and, if one was needed, our XDP program on the target.
    _hold: Box<dyn Send>,
}

impl LivePort {
    /// Let go of what the port holds (xsend's program on the target, port reservations), so
    /// that another device may take the interface.
    pub(crate) fn release(&mut self) {
        self._hold = Box::new(());
    }
}

impl Target {
    /// The target's counters now.
    pub(crate) fn stats(&self) -> Result<LinkStats> {
        net::link_stats(self.ifindex).map_err(|e| self.gone_or(e))
    }

    /// The target's counters once they show `submitted` frames more than `before`, or stop
    /// moving (frames the interface refused never show).
    pub(crate) fn settle(&self, before: &LinkStats, submitted: u64) -> Result<LinkStats> {
        let t0 = std::time::Instant::now();
        let mut last = self.stats()?;
        while last.tx_packets.saturating_sub(before.tx_packets) < submitted && t0.elapsed() < SETTLE
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
            let now = self.stats()?;
            if now == last && t0.elapsed() > std::time::Duration::from_millis(50) {
                break;
            }
            last = now;
        }
        Ok(last)
    }

    /// `InterfaceDown` if the target is gone or down, else `e`.
    pub(crate) fn gone_or(&self, e: Error) -> Error {
        match self.check_up() {
            Err(down) => down,
            Ok(()) => e,
        }
    }

    /// `InterfaceDown` unless the target still exists (under its index) and is up.
    pub(crate) fn check_up(&self) -> Result<()> {
        let down = |errno| Error::InterfaceDown {
            name: self.ifname.clone(),
            source: std::io::Error::from_raw_os_error(errno),
        };
        match netdev::if_indextoname(self.ifindex) {
            None => Err(down(libc::ENODEV)),
            Some(n) if !netdev::if_running(&n).unwrap_or(false) => Err(down(libc::ENETDOWN)),
            Some(_) => Ok(()),
        }
    }
}

/// Open the path to `cfg.peer` for `runners` runners (one source port each) and check that
/// the egress interface takes redirected frames.
pub(crate) fn open(cfg: &ConnConfig, runners: u32) -> Result<LivePort> {
    if let Some(i) = &cfg.iface {
        if netdev::if_nametoindex(i).is_none() {
            return Err(Error::InterfaceNotFound { name: i.clone() });
        }
    }
    let path = Path::resolve(cfg, runners, "live")?;
    let ifname = path.ifname.clone();
    let ifindex = path.ifi.index;
    let auto = cfg.gen_backend == GenBackend::Auto;
    let (steer, reasons) = take_redirects(ifindex, &ifname, auto)?;
    kernel_runs_live_frames()?;
    let dst_mac = path.dst_mac(cfg)?;
    let flows = path.flows(cfg, dst_mac);
    let info = BackendInfo {
        backend: "live",
        mode: "live-frames".into(),
        iface: Some(ifname.clone()),
        mtu: Some(path.mtu),
        fallback_reasons: reasons,
        xdp_mode: steer.as_ref().map(|s| s.mode.to_string()),
        queues: Some(runners),
        checksum: Some("in the XDP program".into()),
        dst_mac: Some(dst_mac.to_string()),
        ..Default::default()
    };
    let mtu = path.mtu;
    Ok(LivePort {
        target: Target { ifname, ifindex },
        flows,
        mtu,
        info,
        _hold: Box::new((steer, path.sockets)),
    })
}

/// Check that `ifname` takes redirected frames (`ndo_xdp_xmit`), loading xsend's XDP program
/// on it where its driver needs one for that; returns that program (held for the run) and
/// what was done about it. Where the kernel does not say (no XDP features before Linux 6.3),
/// a frame the target refuses is dropped unseen: `auto` (another path to fall back on) does
/// not take that risk and refuses; an explicit choice of live frames goes on, with the reason.
fn take_redirects(ifindex: u32, ifname: &str, auto: bool) -> Result<(Option<Steer>, Vec<String>)> {
    let mut reasons = Vec::new();
    let driver = netdev::if_driver(ifname).unwrap_or_default();
    let mut steer = None;
    match net::xdp_features(ifindex)? {
        Some(f) if f & XDP_ACT_NDO_XMIT != 0 => {}
        Some(_) if driver == "veth" => {
            return Err(unavailable(format!(
                "{ifname} (veth) does not take redirected frames (ndo_xdp_xmit): its peer has neither an XDP program nor GRO on (attach one to the peer, e.g. a drop sink, or `ethtool -K PEER gro on`)"
            )))
        }
        Some(_) => {
            // Some drivers take redirected frames only with an XDP program of their own.
            let s = Steer::attach(ifindex, ifname, &mut Vec::new()).map_err(|e| {
                unavailable(format!(
                    "{ifname} ({driver}) does not take redirected frames (ndo_xdp_xmit), and an XDP program could not be loaded on it: {}",
                    e.chain()
                ))
            })?;
            match net::xdp_features(ifindex)? {
                Some(f) if f & XDP_ACT_NDO_XMIT != 0 => {
                    reasons.push(format!(
                        "{ifname} ({driver}) takes redirected frames only with an XDP program on it: xsend's ({} mode) was loaded for the run",
                        s.mode
                    ));
                    steer = Some(s);
                }
                _ => {
                    return Err(unavailable(format!(
                        "{ifname} ({driver}) does not take redirected frames (ndo_xdp_xmit), even with an XDP program on it"
                    )))
                }
            }
        }
        None if auto => {
            return Err(unavailable(format!(
                "the kernel does not report XDP features (no netdev generic netlink family, Linux < 6.3), so whether {ifname} takes redirected frames cannot be known and refused frames would be dropped unseen (--backend live takes it anyway)"
            )))
        }
        None => reasons.push(
            "the kernel does not report XDP features (no netdev generic netlink family): the target's acceptance is seen only in its counters".into(),
        ),
    }
    Ok((steer, reasons))
}

/// A bare live-frames target (replay: whole frames, no path to a peer): `ifname`, checked
/// to take redirected frames.
pub(crate) struct LiveTarget {
    /// The interface.
    pub(crate) target: Target,
    /// Its MTU.
    pub(crate) mtu: u32,
    /// What was obtained.
    pub(crate) info: BackendInfo,
    /// xsend's XDP program on the target, if its driver needed one.
    _hold: Option<Steer>,
}

/// Open `ifname` as a live-frames target (`auto`: the caller has another path to fall back
/// on, see [`take_redirects`]).
pub(crate) fn open_target(ifname: &str, auto: bool) -> Result<LiveTarget> {
    let ifindex = netdev::if_nametoindex(ifname).ok_or_else(|| Error::InterfaceNotFound {
        name: ifname.to_string(),
    })?;
    let target = Target {
        ifname: ifname.to_string(),
        ifindex,
    };
    target.check_up()?;
    let mtu =
        netdev::if_mtu(ifname).map_err(|e| Error::io(format!("reading the MTU of {ifname}"), e))?;
    let (steer, reasons) = take_redirects(ifindex, ifname, auto)?;
    kernel_runs_live_frames()?;
    let info = BackendInfo {
        backend: "live",
        mode: "live-frames".into(),
        iface: Some(ifname.to_string()),
        mtu: Some(mtu),
        fallback_reasons: reasons,
        xdp_mode: steer.as_ref().map(|s| s.mode.to_string()),
        queues: Some(1),
        ..Default::default()
    };
    Ok(LiveTarget {
        target,
        mtu,
        info,
        _hold: steer,
    })
}
