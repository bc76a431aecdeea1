//! `xsend bench`: the line-rate generator.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use xsend::gen::{FlowRanges, GenSpec, Generator, Imix};
use xsend::rxport::{RxPort, RxPortConfig, RxReport};
use xsend::stats::Percentiles;
use xsend::{BackendInfo, Connection, GenBackend};

use crate::args::{self, XdpArgs};
use crate::signal::{arm, cancel_on_signal};

/// `--backend` of `xsend bench`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum GenBackendArg {
    Auto,
    Xdp,
    Live,
    /// A DPDK port (`--dpdk-args`, `--dpdk-port`).
    Dpdk,
}

impl From<GenBackendArg> for GenBackend {
    fn from(b: GenBackendArg) -> Self {
        match b {
            GenBackendArg::Auto => GenBackend::Auto,
            GenBackendArg::Xdp => GenBackend::Xdp,
            GenBackendArg::Live => GenBackend::Live,
            GenBackendArg::Dpdk => GenBackend::Dpdk,
        }
    }
}

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Destination IP:PORT.
    #[arg(long)]
    to: SocketAddr,
    /// Interface to send from (default: by route).
    #[arg(long)]
    iface: Option<String>,
    /// Ethernet frame length without FCS: `64`, a list `64,576,1500`, weighted
    /// `7:64,4:576,1:1500`, or `imix`.
    #[arg(long, default_value = "64", value_parser = args::sizes)]
    size: Imix,
    /// Packets per second over all queues (open-loop schedule; default: as fast as possible).
    #[arg(long, conflicts_with = "bps", value_parser = args::rate, allow_negative_numbers = true)]
    pps: Option<f64>,
    /// Bits per second on the wire (frames + preamble, FCS and gap), e.g. 5G, 800M.
    #[arg(long, value_parser = args::rate, allow_negative_numbers = true)]
    bps: Option<f64>,
    /// Packets sent back to back per scheduled slot under --pps/--bps.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=4096))]
    burst: u64,
    /// Seconds to send (default 10 unless --count is given).
    #[arg(long, value_parser = args::seconds, allow_negative_numbers = true)]
    duration: Option<Duration>,
    /// Frames to send.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    #[command(flatten)]
    xdp: XdpArgs,
    /// Multi-flow: source ports `A-B` (packets cycle through every combination of the ranges).
    #[arg(long, value_parser = args::port_range)]
    src_ports: Option<(u16, u16)>,
    /// Multi-flow: destination ports `A-B` (default: the port of --to).
    #[arg(long, value_parser = args::port_range)]
    dst_ports: Option<(u16, u16)>,
    /// Multi-flow: source addresses `A-B` (default: the interface's).
    #[arg(long, value_parser = args::ip_range)]
    src_ips: Option<(IpAddr, IpAddr)>,
    /// Multi-flow: destination addresses `A-B`, all sent to the same next hop (default: --to).
    #[arg(long, value_parser = args::ip_range)]
    dst_ips: Option<(IpAddr, IpAddr)>,
    /// Send stateless TCP segments (ACK|PSH, consistent sequence numbers, valid checksums, no
    /// handshake) instead of UDP datagrams: for benchmarking a device under test.
    #[arg(long)]
    tcp_stateless: bool,
    /// Where frames are made: `live` (in the kernel: our XDP program stamps and redirects a
    /// page_pool of frames, BPF_PROG_RUN live frames), `xdp` (AF_XDP, frames written in user
    /// space), or `auto` (live when the interface takes redirected frames, else AF_XDP; the
    /// reason is reported).
    #[arg(long, value_enum, default_value = "auto")]
    backend: GenBackendArg,
    /// Live frames: frames per page_pool cycle and redirect flush, 1-256 (default 256).
    /// Under --pps/--bps whole slots are released on time: --burst frames if given, else
    /// --batch if given, else 64.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    batch: Option<u32>,
    /// Live frames: run the benchmark's reference loop instead (the template redirected as
    /// is, nothing stamped: the kernel's ceiling).
    #[arg(long, hide = true)]
    live_reference: bool,
    /// Enter this network namespace first.
    #[arg(long)]
    netns: Option<String>,
    /// A receiving port: the interface where the frames arrive (behind a device under test,
    /// or the peer of a veth). An XDP program there counts the run's streams — received,
    /// lost, duplicated, reordered, one-way latency — and drops them; other traffic passes.
    #[arg(long)]
    rx_iface: Option<String>,
    /// The receiving port's network namespace (default: the sending one, `--netns`).
    #[arg(long, requires = "rx_iface")]
    rx_netns: Option<String>,
    #[arg(long)]
    json: bool,
}

/// What `xsend bench` prints.
#[derive(Serialize)]
struct BenchSummary {
    #[serde(flatten)]
    info: BackendInfo,
    to: SocketAddr,
    /// `udp` or `tcp-stateless`.
    proto: &'static str,
    sizes: String,
    mean_size: f64,
    target_pps: Option<f64>,
    packets: u64,
    bytes: u64,
    seconds: f64,
    pps: f64,
    gbps: f64,
    completion: Option<Percentiles>,
    inter_departure: Option<Percentiles>,
    lateness: Option<Percentiles>,
    /// Live frames: frames the program stamped and redirected (`packets` is what the
    /// interface counted as transmitted).
    submitted: Option<u64>,
    /// Live frames: submitted but not counted as transmitted.
    dropped: Option<u64>,
    /// Live frames: frames per page_pool cycle and redirect flush.
    batch: Option<u32>,
    /// What the receiving port counted (`--rx-iface`).
    rx: Option<RxReport>,
}

pub(crate) fn run(a: BenchArgs) -> anyhow::Result<ExitCode> {
    let (slot, stop) = cancel_on_signal()?;
    crate::enter_netns(&a.netns)?;
    let duration = match (a.duration, a.count) {
        (Some(d), _) => Some(d),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };
    let sizes = a.size.clone();
    let target_pps = match (a.pps, a.bps) {
        (Some(p), _) => Some(p),
        (None, Some(b)) => Some(b / ((sizes.mean() + 24.0) * 8.0)),
        (None, None) => None,
    };
    if let Some(p) = target_pps.filter(|&p| p < 1e-3) {
        eprintln!(
            "xsend: error: --bps gives {p:.2e} packets/s; the lowest rate is 0.001 packets/s"
        );
        return Ok(ExitCode::from(crate::EXIT_USAGE));
    }
    let spec = GenSpec {
        sizes: sizes.clone(),
        rate_pps: target_pps,
        burst: a.burst.max(1),
        duration,
        count: a.count,
        tcp_stateless: a.tcp_stateless,
        flows: FlowRanges {
            src_ports: a.src_ports,
            dst_ports: a.dst_ports,
            src_ips: a.src_ips,
            dst_ips: a.dst_ips,
        },
        batch: a.batch.unwrap_or(0),
        reference: a.live_reference,
    };
    let mut builder = a
        .xdp
        .apply(&a.iface, Connection::udp(a.to))
        .gen_backend(a.backend.into());
    if !a.json {
        builder = builder.on_progress(live_stats(sizes.mean()));
    }
    // The receiving port first: a live-frames generator into the port's own interface (a
    // pair lab's peer) needs an XDP program there before it opens.
    let rx = match &a.rx_iface {
        Some(ifname) => Some(RxPort::attach(
            a.rx_netns.as_deref(),
            ifname,
            &RxPortConfig {
                streams: Generator::max_streams(&spec, a.xdp.queues)?,
                drop: true,
            },
        )?),
        None => None,
    };
    let mut gen = builder.generator()?;
    arm(&slot, &stop, gen.cancel_handle());
    let r = gen.run(&spec)?;
    let rx = match rx {
        Some(port) => {
            // What is still in flight (a DUT's queues) arrives within a few ms.
            std::thread::sleep(Duration::from_millis(100));
            Some(port.report(Some(r.packets))?)
        }
        None => None,
    };
    let s = BenchSummary {
        info: gen.info().clone(),
        to: a.to,
        proto: if a.tcp_stateless {
            "tcp-stateless"
        } else {
            "udp"
        },
        sizes: a.size.to_string(),
        mean_size: sizes.mean(),
        target_pps,
        packets: r.packets,
        bytes: r.bytes,
        seconds: r.seconds,
        pps: r.packets as f64 / r.seconds.max(1e-9),
        // Line rate counts preamble, SFD, FCS and gap: 24 bytes per frame.
        gbps: (r.bytes + 24 * r.packets) as f64 * 8.0 / r.seconds.max(1e-9) / 1e9,
        completion: r.completion,
        inter_departure: r.inter_departure,
        lateness: r.lateness,
        submitted: r.submitted,
        dropped: r.dropped,
        batch: r.batch,
        rx,
    };
    if a.json {
        println!("{}", serde_json::to_string(&s)?);
    } else {
        println!(
            "sent {} frames of {} bytes in {:.3} s: {:.0} packets/s, {:.2} Gbit/s on the wire ({} {}, {} queue(s))",
            s.packets,
            s.sizes,
            s.seconds,
            s.pps,
            s.gbps,
            s.info.backend,
            s.info.mode,
            a.xdp.queues
        );
        let us = |p: &Option<Percentiles>| {
            p.map(|p| {
                format!(
                    "p50 {:.1} / p99 {:.1} / max {:.1} µs",
                    p.p50_ns as f64 / 1e3,
                    p.p99_ns as f64 / 1e3,
                    p.max_ns as f64 / 1e3
                )
            })
        };
        if let (Some(sub), Some(d)) = (s.submitted, s.dropped) {
            println!(
                "  submitted {sub}, counted as transmitted by the interface {}, dropped {d} (batches of {})",
                s.packets,
                s.batch.unwrap_or(0)
            );
        }
        if let Some(c) = us(&s.completion) {
            println!("  submission → completion: {c}");
        }
        if let (Some(i), Some(l)) = (us(&s.inter_departure), us(&s.lateness)) {
            println!("  inter-departure: {i}; lateness against schedule: {l}");
        }
        if let Some(rx) = &s.rx {
            println!(
                "  received {} ({} streams): lost {} ({:.4} %), {} gaps, duplicated {}, reordered {}{}",
                rx.received,
                rx.streams_seen,
                rx.lost,
                rx.lost as f64 * 100.0 / s.packets.max(1) as f64,
                rx.gaps,
                rx.duplicated,
                rx.reordered,
                if rx.unknown_stream > 0 {
                    format!(", {} of unknown streams", rx.unknown_stream)
                } else {
                    String::new()
                }
            );
            if let Some(l) = rx.latency {
                println!(
                    "  one-way latency: p50 {:.1} / p99 {:.1} / mean {:.1} / max {:.1} µs",
                    l.p50_us, l.p99_us, l.mean_us, l.max_us
                );
            }
        }
    }
    // Interrupted: what was sent is reported above, and the exit code says it was cut short.
    if stop.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(ExitCode::from(crate::EXIT_CANCELLED));
    }
    Ok(ExitCode::SUCCESS)
}

/// Live stats once a second on stderr.
fn live_stats(mean_size: f64) -> impl Fn(xsend::Progress) + Send + Sync + 'static {
    let last = Mutex::new((Instant::now(), 0u64));
    move |p: xsend::Progress| {
        let mut l = last.lock().unwrap_or_else(|e| e.into_inner());
        let dt = l.0.elapsed().as_secs_f64();
        if dt >= 1.0 {
            let pps = (p.packets - l.1) as f64 / dt;
            eprintln!(
                "  {:>10.0} packets/s  {:>7.2} Gbit/s  ({} frames so far)",
                pps,
                pps * (mean_size + 24.0) * 8.0 / 1e9,
                p.packets
            );
            *l = (Instant::now(), p.packets);
        }
    }
}
