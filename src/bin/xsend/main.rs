//! `xsend`: send files over TCP/UDP (AF_XDP or kernel sockets), receive and verify them,
//! and build veth labs to try it on.

mod demo;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;
use xsend::lab::{Lab, LabConfig};
use xsend::recv::{RecvConfig, RecvReport};
use xsend::{
    BackendChoice, BackendInfo, ChecksumChoice, Connection, Error, Proto, SendPacketsElement,
    SendPacketsOptions, SendStatus, TransmitFlags, SEND_SIZE_AUTO, SEND_SIZE_PACKETS,
};

/// Exit code when an expectation of `xsend recv` fails.
const EXIT_MISMATCH: u8 = 3;
/// Exit code after Ctrl-C / SIGTERM.
const EXIT_CANCELLED: u8 = 130;

#[derive(Parser)]
#[command(
    name = "xsend",
    version,
    about = "Send files at line rate with AF_XDP or kernel sockets, and verify them on arrival"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send a file to IP:PORT over TCP or UDP.
    #[command(after_help = "Examples:
  xsend send big.iso --to 198.18.0.2:5201
  xsend send big.iso --to 198.18.0.2:5202 --proto udp --chunk auto --json
  xsend send body.bin --to [2001:db8::2]:80 --pre header.txt --post trailer.txt
  xsend send big.iso --to 198.18.0.2:5201 --netns mylaba --backend kernel")]
    Send(SendArgs),
    /// Receive and verify (bytes, sha256, loss/duplicates/reordering of chunked UDP).
    #[command(after_help = "Examples:
  xsend recv --listen 198.18.0.2:5201 --expect-sha256 <hex>
  xsend recv --listen 0.0.0.0:5202 --proto udp --out copy.bin --json")]
    Recv(RecvArgs),
    /// Generate UDP frames at line rate on AF_XDP (synthetic payload with a sequence number,
    /// valid checksums) and report packets/s.
    #[command(after_help = "Examples:
  xsend bench --iface eth1 --to 198.18.0.2:9 --dst-mac 02:00:00:00:00:02 --size 64 --duration 10
  xsend bench --to 198.18.0.2:9 --size 1514 --count 1000000 --queues 2 --json
  xsend bench --to 198.18.0.2:9 --size imix --pps 1M --burst 8 --duration 30")]
    Bench(BenchArgs),
    /// Build, remove, use or demonstrate a veth lab (two namespaces joined by a veth pair).
    #[command(subcommand)]
    Lab(LabCmd),
}

#[derive(Copy, Clone, ValueEnum)]
enum ProtoArg {
    Tcp,
    Udp,
}

impl From<ProtoArg> for Proto {
    fn from(p: ProtoArg) -> Self {
        match p {
            ProtoArg::Tcp => Proto::Tcp,
            ProtoArg::Udp => Proto::Udp,
        }
    }
}

#[derive(Copy, Clone, ValueEnum)]
pub(crate) enum BackendArg {
    Auto,
    Kernel,
    Xdp,
}

impl From<BackendArg> for BackendChoice {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::Auto => BackendChoice::Auto,
            BackendArg::Kernel => BackendChoice::Kernel,
            BackendArg::Xdp => BackendChoice::Xdp,
        }
    }
}

#[derive(Copy, Clone, ValueEnum)]
pub(crate) enum ChecksumArg {
    /// Offloaded through AF_XDP TX metadata when the kernel accepts it, else software.
    Auto,
    /// Computed in user space.
    Software,
    /// Offloaded, or an error.
    Offload,
}

impl From<ChecksumArg> for ChecksumChoice {
    fn from(c: ChecksumArg) -> Self {
        match c {
            ChecksumArg::Auto => ChecksumChoice::Auto,
            ChecksumArg::Software => ChecksumChoice::Software,
            ChecksumArg::Offload => ChecksumChoice::Offload,
        }
    }
}

#[derive(Args)]
struct SendArgs {
    /// File to send.
    file: PathBuf,
    /// Destination IP:PORT (IPv6 as [addr]:port).
    #[arg(long)]
    to: SocketAddr,
    #[arg(long, value_enum, default_value = "tcp")]
    proto: ProtoArg,
    /// Interface to send from.
    #[arg(long)]
    iface: Option<String>,
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendArg,
    /// UDP: `auto` = largest datagrams with an xsend header each, N = N payload bytes per
    /// datagram, `none` = the whole file as one datagram (refused if it does not fit).
    #[arg(long, default_value = "auto")]
    chunk: String,
    /// UDP chunks without the xsend header.
    #[arg(long)]
    raw: bool,
    /// Flow id in the xsend header.
    #[arg(long, default_value_t = 1)]
    flow: u16,
    /// Bytes to send before the file (same stream / datagram).
    #[arg(long)]
    pre: Option<PathBuf>,
    /// Bytes to send after the file.
    #[arg(long)]
    post: Option<PathBuf>,
    /// Return once queued instead of waiting for the peer's acknowledgement (kernel TCP; over
    /// AF_XDP the user-space sender is the retransmit buffer and always waits).
    #[arg(long)]
    write_behind: bool,
    /// Seconds sent data may stay unacknowledged, and connect timeout.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// AF_XDP: destination MAC (default: the kernel's neighbour table).
    #[arg(long)]
    dst_mac: Option<xsend::wire::ethernet::MacAddr>,
    /// AF_XDP: NIC queues to send on (one socket and TX thread each).
    #[arg(long, default_value_t = 1)]
    queues: u32,
    /// AF_XDP: TX ring size (descriptors).
    #[arg(long, default_value_t = 2048)]
    ring_size: u32,
    /// AF_XDP: UDP/TCP checksums offloaded (TX metadata; on veth the peer's stack trusts
    /// them and a capture there shows the partial sum) or computed in software.
    #[arg(long, value_enum, default_value = "auto")]
    checksum: ChecksumArg,
    /// AF_XDP: 802.1Q VLAN id for the frames.
    #[arg(long)]
    vlan: Option<u16>,
    /// Enter this network namespace (/run/netns/NAME) first.
    #[arg(long)]
    netns: Option<String>,
    /// Print one JSON object instead of a human summary.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct RecvArgs {
    /// Address to listen on.
    #[arg(long)]
    listen: SocketAddr,
    #[arg(long, value_enum, default_value = "tcp")]
    proto: ProtoArg,
    /// Write what arrives here (chunked UDP: reassembled by offset).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Exit non-zero unless the stream's sha256 is this (hex).
    #[arg(long)]
    expect_sha256: Option<String>,
    /// Exit non-zero unless this many payload bytes arrive.
    #[arg(long)]
    expect_bytes: Option<u64>,
    /// Count only, do not hash.
    #[arg(long)]
    count_only: bool,
    /// Treat UDP datagrams as raw payload even if they carry an xsend header.
    #[arg(long)]
    raw: bool,
    /// UDP: seconds without a datagram that end the receive.
    #[arg(long, default_value_t = 2.0)]
    idle_timeout: f64,
    /// Seconds to wait for the first byte / connection (default: forever).
    #[arg(long)]
    timeout: Option<f64>,
    /// Enter this network namespace first.
    #[arg(long)]
    netns: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct BenchArgs {
    /// Destination IP:PORT.
    #[arg(long)]
    to: SocketAddr,
    /// Interface to send from (default: by route).
    #[arg(long)]
    iface: Option<String>,
    /// Destination MAC (default: neighbour table).
    #[arg(long)]
    dst_mac: Option<xsend::wire::ethernet::MacAddr>,
    /// Ethernet frame length without FCS: `64`, a list `64,576,1500`, weighted
    /// `7:64,4:576,1:1500`, or `imix`.
    #[arg(long, default_value = "64")]
    size: String,
    /// Packets per second over all queues (open-loop schedule; default: as fast as possible).
    #[arg(long, conflicts_with = "bps")]
    pps: Option<String>,
    /// Bits per second on the wire (frames + preamble, FCS and gap), e.g. 5G, 800M.
    #[arg(long)]
    bps: Option<String>,
    /// Packets sent back to back per scheduled slot under --pps/--bps.
    #[arg(long, default_value_t = 1)]
    burst: u64,
    /// Seconds to send (default 10 unless --count is given).
    #[arg(long)]
    duration: Option<f64>,
    /// Frames to send.
    #[arg(long)]
    count: Option<u64>,
    /// NIC queues (one socket and TX thread each).
    #[arg(long, default_value_t = 1)]
    queues: u32,
    /// TX ring size (descriptors).
    #[arg(long, default_value_t = 2048)]
    ring_size: u32,
    /// UDP/TCP checksums offloaded through AF_XDP TX metadata or computed in software.
    #[arg(long, value_enum, default_value = "auto")]
    checksum: ChecksumArg,
    /// Multi-flow: source ports `A-B` (packets cycle through every combination of the ranges).
    #[arg(long)]
    src_ports: Option<String>,
    /// Multi-flow: destination ports `A-B` (default: the port of --to).
    #[arg(long)]
    dst_ports: Option<String>,
    /// Multi-flow: source addresses `A-B` (default: the interface's).
    #[arg(long)]
    src_ips: Option<String>,
    /// Multi-flow: destination addresses `A-B`, all sent to the same next hop (default: --to).
    #[arg(long)]
    dst_ips: Option<String>,
    /// Send stateless TCP segments (ACK|PSH, consistent sequence numbers, valid checksums, no
    /// handshake) instead of UDP datagrams: for benchmarking a device under test.
    #[arg(long)]
    tcp_stateless: bool,
    /// Enter this network namespace first.
    #[arg(long)]
    netns: Option<String>,
    #[arg(long)]
    json: bool,
}

/// An inclusive range `A-B` (or a single value `A`).
fn parse_range<T: std::str::FromStr>(s: &str, what: &str) -> anyhow::Result<(T, T)> {
    // IPv6 addresses contain no '-', so the first '-' splits.
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let p = |x: &str| {
        x.trim()
            .parse::<T>()
            .map_err(|_| anyhow::anyhow!("--{what} {s}: expected A-B"))
    };
    Ok((p(a)?, p(b)?))
}

/// A rate like `1000000`, `1.5M`, `10G`, `800k`.
fn parse_rate(s: &str) -> anyhow::Result<f64> {
    let s = s.trim();
    let (num, mul) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1e3),
        Some('m' | 'M') => (&s[..s.len() - 1], 1e6),
        Some('g' | 'G') => (&s[..s.len() - 1], 1e9),
        _ => (s, 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("not a rate: {s:?} (e.g. 1000000, 1.5M, 10G)"))?;
    if v.is_nan() || v <= 0.0 {
        bail!("rate must be above 0");
    }
    Ok(v * mul)
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
    completion: Option<xsend::stats::Percentiles>,
    inter_departure: Option<xsend::stats::Percentiles>,
    lateness: Option<xsend::stats::Percentiles>,
}

fn cmd_bench(a: BenchArgs) -> anyhow::Result<ExitCode> {
    let (slot, stop) = cancel_on_signal()?;
    enter_netns(&a.netns)?;
    let mut cfg = Connection::udp(a.to)
        .backend(BackendChoice::Xdp)
        .queues(a.queues)
        .ring_size(a.ring_size)
        .checksum(a.checksum.into());
    if let Some(i) = &a.iface {
        cfg = cfg.iface(i.clone());
    }
    if let Some(m) = a.dst_mac {
        cfg = cfg.dst_mac(m);
    }
    let mut gen = cfg.generator()?;
    let cancel = Arc::new(AtomicBool::new(false));
    arm(&slot, &stop, xsend::CancelHandle::from_flag(cancel.clone()));
    let duration = match (a.duration, a.count) {
        (Some(d), _) => Some(Duration::from_secs_f64(d)),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };
    let sizes = xsend::pacing::Imix::parse(&a.size)
        .map_err(|e| anyhow::anyhow!("--size {}: {e}", a.size))?;
    let target_pps = match (&a.pps, &a.bps) {
        (Some(p), _) => Some(parse_rate(p).with_context(|| format!("--pps {p}"))?),
        (None, Some(b)) => Some(
            parse_rate(b).with_context(|| format!("--bps {b}"))? / ((sizes.mean() + 24.0) * 8.0),
        ),
        (None, None) => None,
    };
    let spec = xsend::backend::xdp::GenSpec {
        sizes: sizes.clone(),
        rate_pps: target_pps,
        burst: a.burst.max(1),
        duration,
        count: a.count,
        tcp_stateless: a.tcp_stateless,
        flows: xsend::backend::xdp::FlowRanges {
            src_ports: a
                .src_ports
                .as_deref()
                .map(|r| parse_range(r, "src-ports"))
                .transpose()?,
            dst_ports: a
                .dst_ports
                .as_deref()
                .map(|r| parse_range(r, "dst-ports"))
                .transpose()?,
            src_ips: a
                .src_ips
                .as_deref()
                .map(|r| parse_range(r, "src-ips"))
                .transpose()?,
            dst_ips: a
                .dst_ips
                .as_deref()
                .map(|r| parse_range(r, "dst-ips"))
                .transpose()?,
        },
    };
    // Live stats once a second on stderr (not with --json).
    let live: Option<xsend::ProgressFn> = (!a.json).then(|| {
        let last = Mutex::new((Instant::now(), 0u64, 0u64));
        let mean = sizes.mean();
        Arc::new(move |p: xsend::Progress| {
            let mut l = last.lock().unwrap_or_else(|e| e.into_inner());
            let dt = l.0.elapsed().as_secs_f64();
            if dt >= 1.0 {
                let pps = (p.packets - l.1) as f64 / dt;
                eprintln!(
                    "  {:>10.0} packets/s  {:>7.2} Gbit/s  ({} frames so far)",
                    pps,
                    pps * (mean + 24.0) * 8.0 / 1e9,
                    p.packets
                );
                *l = (Instant::now(), p.packets, p.bytes);
            }
        }) as xsend::ProgressFn
    });
    let ctx = xsend::backend::OpCtx {
        cancel,
        progress: live,
        total: 0,
    };
    let r = gen.run(&spec, &ctx)?;
    let s = BenchSummary {
        info: gen.info().clone(),
        to: a.to,
        proto: if a.tcp_stateless {
            "tcp-stateless"
        } else {
            "udp"
        },
        sizes: a.size.clone(),
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
            a.queues
        );
        let us = |p: &Option<xsend::stats::Percentiles>| {
            p.map(|p| {
                format!(
                    "p50 {:.1} / p99 {:.1} / max {:.1} µs",
                    p.p50_ns as f64 / 1e3,
                    p.p99_ns as f64 / 1e3,
                    p.max_ns as f64 / 1e3
                )
            })
        };
        if let Some(c) = us(&s.completion) {
            println!("  submission → completion: {c}");
        }
        if let (Some(i), Some(l)) = (us(&s.inter_departure), us(&s.lateness)) {
            println!("  inter-departure: {i}; lateness against schedule: {l}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
enum LabCmd {
    /// Create a lab and leave it running; prints its names and addresses.
    Up(LabArgs),
    /// Remove a lab made by `lab up`.
    Down {
        /// Lab name.
        name: String,
    },
    /// Run a command inside one side of a lab (`a` sends, `b` receives).
    Exec {
        /// Lab name.
        name: String,
        /// `a` or `b`.
        side: String,
        /// Command and arguments.
        #[arg(trailing_var_arg = true, required = true)]
        cmd: Vec<String>,
    },
    /// Build a lab, send a generated file over TCP and chunked UDP to `xsend recv` in the peer
    /// namespace, verify sha256, print a table, remove the lab.
    Demo(demo::DemoArgs),
}

#[derive(Args)]
struct LabArgs {
    #[arg(long, default_value_t = 1500)]
    mtu: u32,
    #[arg(long, default_value_t = 1)]
    queues: u32,
    /// No IPv6 addresses (IPv6 disabled on the lab interfaces).
    #[arg(long)]
    no_ipv6: bool,
    /// Lab name (default: generated, unique).
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Send(a) => cmd_send(a),
        Cmd::Recv(a) => cmd_recv(a),
        Cmd::Bench(a) => cmd_bench(a),
        Cmd::Lab(l) => cmd_lab(l),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            if let Some(Error::Cancelled { sent }) = e.downcast_ref::<Error>() {
                eprintln!("xsend: cancelled after {sent} bytes");
                return ExitCode::from(EXIT_CANCELLED);
            }
            // Messages already quote their OS error: print each cause once.
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    msg = format!("{msg}: {c}");
                }
            }
            eprintln!("xsend: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn enter_netns(ns: &Option<String>) -> anyhow::Result<()> {
    if let Some(ns) = ns {
        xsend::sys::enter_netns(ns).with_context(|| format!("entering network namespace {ns}"))?;
    }
    Ok(())
}

/// What `xsend send` prints.
#[derive(Serialize)]
struct SendSummary {
    #[serde(flatten)]
    info: BackendInfo,
    proto: Proto,
    to: SocketAddr,
    file: PathBuf,
    chunk: String,
    bytes: u64,
    packets: u64,
    seconds: f64,
    gbps: f64,
    pps: f64,
    /// TCP over AF_XDP: the user-space sender's counters (retransmissions, RTOs, RTT, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    tcp: Option<xsend::tcp::Stats>,
}

pub(crate) fn rate(bytes: u64, packets: u64, secs: f64) -> (f64, f64) {
    if secs <= 0.0 {
        return (0.0, 0.0);
    }
    (bytes as f64 * 8.0 / secs / 1e9, packets as f64 / secs)
}

/// A progress bar on a terminal, shown once a send has run for a second.
fn progress_bar(enabled: bool) -> impl Fn(xsend::Progress) + Send + Sync + 'static {
    let start = Instant::now();
    let bar: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);
    move |p: xsend::Progress| {
        if !enabled || start.elapsed() < Duration::from_secs(1) {
            return;
        }
        let mut b = bar.lock().unwrap_or_else(|e| e.into_inner());
        let b = b.get_or_insert_with(|| {
            let pb = indicatif::ProgressBar::new(p.total);
            pb.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            pb
        });
        b.set_position(p.bytes);
        if p.bytes >= p.total {
            b.finish_and_clear();
        }
    }
}

/// Install a Ctrl-C/SIGTERM handler that cancels whatever connection is put in the slot
/// (also one put there after the signal came).
fn cancel_on_signal() -> anyhow::Result<(CancelSlot, Arc<AtomicBool>)> {
    let slot: CancelSlot = Arc::new(Mutex::new(None));
    let stop = Arc::new(AtomicBool::new(false));
    let (s, st) = (slot.clone(), stop.clone());
    ctrlc::set_handler(move || {
        st.store(true, Ordering::SeqCst);
        if let Some(c) = s.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            c.cancel();
        }
    })
    .context("installing the Ctrl-C handler")?;
    Ok((slot, stop))
}

/// Put a connection's cancel handle in the slot, cancelling at once if a signal came first.
fn arm(slot: &CancelSlot, stop: &AtomicBool, c: xsend::CancelHandle) {
    if stop.load(Ordering::SeqCst) {
        c.cancel();
    }
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(c);
}

fn cmd_send(a: SendArgs) -> anyhow::Result<ExitCode> {
    let (slot, stop) = cancel_on_signal()?;
    enter_netns(&a.netns)?;
    let show_bar = !a.json && std::io::stderr().is_terminal();
    let proto: Proto = a.proto.into();
    let timeout = Duration::from_secs_f64(a.timeout.max(0.1));
    let builder = match proto {
        Proto::Tcp => Connection::tcp(a.to),
        Proto::Udp => Connection::udp(a.to),
    };
    let mut builder = builder
        .backend(a.backend.into())
        .connect_timeout(timeout)
        .user_timeout(timeout)
        .on_progress(progress_bar(show_bar))
        .queues(a.queues)
        .ring_size(a.ring_size)
        .checksum(a.checksum.into());
    if let Some(i) = &a.iface {
        builder = builder.iface(i.clone());
    }
    if let Some(m) = a.dst_mac {
        builder = builder.dst_mac(m);
    }
    if let Some(v) = a.vlan {
        builder = builder.vlan(v);
    }
    // Validate the file before connecting: a missing file is reported as such.
    let mut elements = Vec::new();
    if let Some(p) = &a.pre {
        elements.push(SendPacketsElement::buffer(
            std::fs::read(p).with_context(|| format!("reading --pre {}", p.display()))?,
        ));
    }
    elements.push(SendPacketsElement::file(&a.file));
    if let Some(p) = &a.post {
        elements.push(SendPacketsElement::buffer(
            std::fs::read(p).with_context(|| format!("reading --post {}", p.display()))?,
        ));
    }
    xsend::payload::Payload::from_elements(&elements)?;
    if let Some(last) = elements.last_mut() {
        last.end_of_packet = true;
    }

    let conn = builder.connect()?;
    arm(&slot, &stop, conn.cancel_handle());

    let mut opts = SendPacketsOptions {
        flags: TransmitFlags::DISCONNECT | TransmitFlags::CALLER_THREAD,
        ..Default::default()
    };
    if a.write_behind {
        opts.flags |= TransmitFlags::WRITE_BEHIND;
    }
    let chunk = match proto {
        Proto::Tcp => "stream".to_string(),
        Proto::Udp => {
            match a.chunk.as_str() {
                "none" => opts.send_size = SEND_SIZE_PACKETS,
                "auto" => {
                    opts.send_size = if a.raw {
                        conn.info().max_datagram.unwrap_or(1472) as u32
                    } else {
                        SEND_SIZE_AUTO
                    }
                }
                n => {
                    opts.send_size = n
                        .parse::<u32>()
                        .ok()
                        .filter(|&n| n > 0 && n != u32::MAX)
                        .with_context(|| {
                            format!("--chunk {n}: expected auto, none or a byte count")
                        })?
                }
            }
            if a.chunk != "none" && !a.raw {
                opts.chunk_header = Some(a.flow);
            }
            a.chunk.clone()
        }
    };
    let start = Instant::now();
    let bytes = match conn.send_packets(&elements, opts)? {
        SendStatus::Completed(b) => b,
        SendStatus::Pending(op) => conn.end_send_packets(op)?,
    };
    let seconds = start.elapsed().as_secs_f64();
    let last = conn.last_stats();
    let packets = last.packets;
    let (gbps, pps) = rate(bytes, packets, seconds);
    let s = SendSummary {
        info: conn.info(),
        proto,
        to: a.to,
        file: a.file,
        chunk,
        bytes,
        packets,
        seconds,
        gbps,
        pps,
        tcp: last.tcp,
    };
    if a.json {
        println!("{}", serde_json::to_string(&s)?);
    } else {
        let why = if s.info.fallback_reasons.is_empty() {
            String::new()
        } else {
            format!(" [{}]", s.info.fallback_reasons.join("; "))
        };
        println!(
            "sent {} bytes in {:.3} s: {:.2} Gbit/s, {:.0} packets/s to {} over {} ({} {}, iface {}){}",
            s.bytes,
            s.seconds,
            s.gbps,
            s.pps,
            s.to,
            match proto {
                Proto::Tcp => "tcp",
                Proto::Udp => "udp",
            },
            s.info.backend,
            s.info.mode,
            s.info.iface.as_deref().unwrap_or("by route"),
            why
        );
        if let Some(t) = &s.tcp {
            println!(
                "tcp: {} segments, {} retransmitted ({} fast recoveries, {} RTOs, {} tail probes, {} window probes), srtt {} us",
                t.segments_out,
                t.retransmits,
                t.fast_recoveries,
                t.rto_expirations,
                t.tail_probes,
                t.window_probes,
                t.srtt_us
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `xsend recv` prints.
#[derive(Serialize)]
struct RecvSummary {
    #[serde(flatten)]
    report: RecvReport,
    proto: Proto,
    listen: SocketAddr,
    gbps: f64,
    pps: f64,
    verified: Option<bool>,
}

fn cmd_recv(a: RecvArgs) -> anyhow::Result<ExitCode> {
    enter_netns(&a.netns)?;
    let proto: Proto = a.proto.into();
    let mut cfg = RecvConfig::new(a.listen, proto);
    cfg.out = a.out.clone();
    cfg.count_only = a.count_only;
    cfg.raw = a.raw;
    cfg.idle_timeout = Duration::from_secs_f64(a.idle_timeout.max(0.01));
    cfg.first_timeout = a.timeout.map(Duration::from_secs_f64);
    let report = xsend::recv::receive(&cfg, |addr| {
        eprintln!(
            "xsend recv: listening on {addr} ({})",
            match proto {
                Proto::Tcp => "tcp",
                Proto::Udp => "udp",
            }
        )
    })?;
    let mut failures = Vec::new();
    if let Some(want) = &a.expect_sha256 {
        match &report.sha256 {
            Some(got) if got.eq_ignore_ascii_case(want.trim()) => {}
            Some(got) => failures.push(format!("sha256 {got} != expected {want}")),
            None => failures.push("no sha256 (incomplete stream or --count-only)".to_string()),
        }
    }
    if let Some(want) = a.expect_bytes {
        if report.bytes != want {
            failures.push(format!("{} bytes != expected {want}", report.bytes));
        }
    }
    let verified =
        (a.expect_sha256.is_some() || a.expect_bytes.is_some()).then_some(failures.is_empty());
    let units = if proto == Proto::Udp {
        report.datagrams
    } else {
        0
    };
    let (gbps, pps) = rate(report.bytes, units, report.seconds);
    let s = RecvSummary {
        report,
        proto,
        listen: a.listen,
        gbps,
        pps,
        verified,
    };
    if a.json {
        println!("{}", serde_json::to_string(&s)?);
    } else {
        let r = &s.report;
        print!(
            "received {} bytes in {:.3} s ({:.2} Gbit/s)",
            r.bytes, r.seconds, s.gbps
        );
        if proto == Proto::Udp {
            print!(", {} datagrams", r.datagrams);
        }
        if r.chunked {
            print!(
                ", lost {}, duplicates {}, reordered {}, end marker {}",
                r.lost,
                r.duplicates,
                r.reordered,
                if r.end_marker { "yes" } else { "no" }
            );
        }
        if let Some(h) = &r.sha256 {
            print!(", sha256 {h}");
        }
        if let Some(l) = &r.latency {
            print!(
                ", one-way latency p50 {:.1} / p99 {:.1} / max {:.1} µs",
                l.p50_ns as f64 / 1e3,
                l.p99_ns as f64 / 1e3,
                l.max_ns as f64 / 1e3
            );
        }
        println!();
    }
    if !failures.is_empty() {
        eprintln!("xsend recv: verification failed: {}", failures.join("; "));
        return Ok(ExitCode::from(EXIT_MISMATCH));
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_lab(l: LabCmd) -> anyhow::Result<ExitCode> {
    match l {
        LabCmd::Up(a) => {
            let lab = Lab::up(&LabConfig {
                mtu: a.mtu,
                queues: a.queues,
                ipv6: !a.no_ipv6,
                name: a.name,
            })?
            .keep();
            if a.json {
                println!("{}", serde_json::to_string(&lab)?);
            } else {
                println!(
                    "lab {}: {} ({} {} {}) <-> {} ({} {} {}), mtu {}, {} queue(s)\nremove with: xsend lab down {}",
                    lab.name,
                    lab.ns_a,
                    lab.if_a,
                    lab.ip4_a,
                    lab.ip6_a.map(|a| a.to_string()).unwrap_or_default(),
                    lab.ns_b,
                    lab.if_b,
                    lab.ip4_b,
                    lab.ip6_b.map(|a| a.to_string()).unwrap_or_default(),
                    lab.mtu,
                    lab.queues,
                    lab.name
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        LabCmd::Down { name } => {
            Lab::remove(&name)?;
            Ok(ExitCode::SUCCESS)
        }
        LabCmd::Exec { name, side, cmd } => {
            let ns = match side.as_str() {
                "a" | "A" => format!("{name}a"),
                "b" | "B" => format!("{name}b"),
                _ => bail!("side must be a or b, not {side:?}"),
            };
            let st = std::process::Command::new("ip")
                .args(["netns", "exec", &ns])
                .args(&cmd)
                .status()
                .context("running ip netns exec")?;
            Ok(ExitCode::from(st.code().unwrap_or(1).clamp(0, 255) as u8))
        }
        LabCmd::Demo(a) => demo::run(a),
    }
}

/// Shared between the CLI's Ctrl-C handler and long-running commands.
pub(crate) type CancelSlot = Arc<Mutex<Option<xsend::CancelHandle>>>;
