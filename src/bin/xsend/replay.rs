//! `xsend replay`: a capture sent again, timed as captured or at a rate, rewritten if asked.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use clap::{Args, ValueEnum};
use xsend::replay::{IpMap, ReplayBackend, ReplaySpec, Rewrite, Timing};
use xsend::wire::ethernet::MacAddr;

use crate::args;
use crate::signal::{arm, cancel_on_signal};

#[derive(Copy, Clone, ValueEnum)]
enum ReplayBackendArg {
    Auto,
    Xdp,
    Kernel,
    Live,
}

#[derive(Args)]
pub(crate) struct ReplayArgs {
    /// The capture (pcap or pcapng; Ethernet).
    file: PathBuf,
    /// Interface to send on.
    #[arg(long)]
    iface: String,
    /// AF_XDP, AF_PACKET through the kernel, or the kernel's live-frames generator fed from
    /// the capture (live: the interface must take redirected frames; a veth only when its
    /// peer has an XDP program or GRO on). Auto: AF_XDP when it can carry the frames.
    #[arg(long, value_enum, default_value = "auto")]
    backend: ReplayBackendArg,
    /// Speed up (or slow down) the capture's own timing by this factor.
    #[arg(long, value_parser = positive, allow_negative_numbers = true, conflicts_with_all = ["pps", "mbps", "topspeed"])]
    multiplier: Option<f64>,
    /// A fixed packet rate instead of the capture's timing (`100k`, `1.5M`).
    #[arg(long, value_parser = args::rate, allow_negative_numbers = true, conflicts_with_all = ["mbps", "topspeed"])]
    pps: Option<f64>,
    /// A fixed rate in Mbit/s of frame bytes.
    #[arg(long, value_parser = positive, allow_negative_numbers = true, conflicts_with = "topspeed")]
    mbps: Option<f64>,
    /// As fast as the interface takes them.
    #[arg(long)]
    topspeed: bool,
    /// Times to send the capture (0: until --duration or Ctrl-C).
    #[arg(long = "loop", default_value_t = 1)]
    loops: u64,
    /// Seconds between loops, back to back (default: loop k starts at k times the capture's
    /// span).
    #[arg(long, value_parser = args::seconds, allow_negative_numbers = true)]
    loop_gap: Option<Duration>,
    /// Stop after this many seconds.
    #[arg(long, value_parser = args::seconds, allow_negative_numbers = true)]
    duration: Option<Duration>,
    /// Rewrite the destination MAC of every frame.
    #[arg(long, value_parser = args::mac)]
    dst_mac: Option<MacAddr>,
    /// Rewrite the source MAC of every frame.
    #[arg(long, value_parser = args::mac)]
    src_mac: Option<MacAddr>,
    /// Rewrite source addresses: `OLD=NEW`, or `NEW` for every address of its family
    /// (repeatable; IP, UDP and TCP checksums are fixed).
    #[arg(long, value_parser = ip_map)]
    src_ip: Vec<IpMap>,
    /// Rewrite destination addresses, as --src-ip.
    #[arg(long, value_parser = ip_map)]
    dst_ip: Vec<IpMap>,
    /// Refuse the run, before sending, if a frame is over the interface's MTU (default:
    /// skip such frames and count them).
    #[arg(long)]
    strict: bool,
    /// AF_XDP TX ring size.
    #[arg(long, default_value_t = xsend::options::DEFAULT_RING_SIZE)]
    ring_size: u32,
    /// Enter this network namespace first.
    #[arg(long)]
    netns: Option<String>,
    #[arg(long)]
    json: bool,
}

fn positive(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("not a number: {s:?}"))?;
    if !v.is_finite() || v <= 0.0 || v > 1e9 {
        return Err(format!("{s}: a finite number above 0"));
    }
    Ok(v)
}

fn ip_map(s: &str) -> Result<IpMap, String> {
    s.parse()
}

pub(crate) fn run(a: ReplayArgs) -> anyhow::Result<ExitCode> {
    let (slot, stop) = cancel_on_signal()?;
    crate::enter_netns(&a.netns)?;
    let timing = match (a.multiplier, a.pps, a.mbps, a.topspeed) {
        (_, _, _, true) => Timing::Topspeed,
        (_, Some(p), _, _) => Timing::Pps(p),
        (_, _, Some(m), _) => Timing::Mbps(m),
        (m, _, _, _) => Timing::Original {
            multiplier: m.unwrap_or(1.0),
        },
    };
    let spec = ReplaySpec {
        file: a.file.clone(),
        iface: a.iface.clone(),
        backend: match a.backend {
            ReplayBackendArg::Auto => ReplayBackend::Auto,
            ReplayBackendArg::Xdp => ReplayBackend::Xdp,
            ReplayBackendArg::Kernel => ReplayBackend::Kernel,
            ReplayBackendArg::Live => ReplayBackend::Live,
        },
        timing,
        loops: a.loops,
        loop_gap: a.loop_gap,
        duration: a.duration,
        rewrite: Rewrite {
            src_mac: a.src_mac,
            dst_mac: a.dst_mac,
            src_ip: a.src_ip.clone(),
            dst_ip: a.dst_ip.clone(),
        },
        strict: a.strict,
        ring_size: a.ring_size,
    };
    if a.loops == 0 && a.duration.is_none() {
        eprintln!("xsend replay: --loop 0 runs until Ctrl-C");
    }
    let cancel = xsend::CancelHandle::new();
    arm(&slot, &stop, cancel.clone());
    let show = !a.json && std::io::stderr().is_terminal();
    let progress: Option<xsend::ProgressFn> = show.then(|| {
        let last = Mutex::new(std::time::Instant::now());
        let f: xsend::ProgressFn = std::sync::Arc::new(move |p: xsend::Progress| {
            let mut l = last.lock().unwrap_or_else(|e| e.into_inner());
            if l.elapsed() >= Duration::from_secs(1) {
                eprintln!("  {} frames, {} MiB so far", p.packets, p.bytes >> 20);
                *l = std::time::Instant::now();
            }
        });
        f
    });
    let r = xsend::replay::run(&spec, &cancel, progress)?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "replayed {} frames ({} bytes, {} loop(s)) in {:.3} s: {:.0} packets/s, {:.2} Gbit/s on the wire ({} {}, iface {}){}",
            r.packets,
            r.bytes,
            r.loops,
            r.seconds,
            r.pps,
            r.gbps,
            r.info.backend,
            r.info.mode,
            a.iface,
            if r.skipped_oversize > 0 {
                format!("; skipped {} frames over the MTU", r.skipped_oversize)
            } else {
                String::new()
            }
        );
        if let Some(d) = r.dropped.filter(|&d| d > 0) {
            println!(
                "  {d} frames dropped by {} (its queue to the peer was full)",
                a.iface
            );
        }
        if let Some(p) = r.timing_error {
            println!(
                "  departure error against the schedule: p50 {:.1} / p99 {:.1} / max {:.1} µs",
                p.p50_ns as f64 / 1e3,
                p.p99_ns as f64 / 1e3,
                p.max_ns as f64 / 1e3
            );
        }
        for why in &r.info.fallback_reasons {
            println!("  not better: {why}");
        }
    }
    if stop.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(ExitCode::from(crate::EXIT_CANCELLED));
    }
    Ok(ExitCode::SUCCESS)
}
