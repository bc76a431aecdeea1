//! `xsend send`: a file (with optional buffers before and after it) over TCP or UDP.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use xsend::{
    BackendInfo, Connection, Proto, SendPacketsElement, SendPacketsOptions, SendStatus,
    TransmitFlags, SEND_SIZE_AUTO, SEND_SIZE_PACKETS,
};

use crate::args::{self, BackendArg, Chunk, ProtoArg, XdpArgs};
use crate::signal::{arm, cancel_on_signal};

#[derive(Args)]
pub(crate) struct SendArgs {
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
    #[arg(long, default_value = "auto", value_parser = args::chunk)]
    chunk: Chunk,
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
    #[arg(long, default_value = "10", value_parser = args::seconds, allow_negative_numbers = true)]
    timeout: Duration,
    #[command(flatten)]
    xdp: XdpArgs,
    /// Enter this network namespace (/run/netns/NAME) first.
    #[arg(long)]
    netns: Option<String>,
    /// Print one JSON object instead of a human summary.
    #[arg(long)]
    json: bool,
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

pub(crate) fn run(a: SendArgs) -> anyhow::Result<ExitCode> {
    let (slot, stop) = cancel_on_signal()?;
    crate::enter_netns(&a.netns)?;
    let show_bar = !a.json && std::io::stderr().is_terminal();
    let proto: Proto = a.proto.into();
    let timeout = a.timeout.max(Duration::from_millis(100));
    let builder = match proto {
        Proto::Tcp => Connection::tcp(a.to),
        Proto::Udp => Connection::udp(a.to),
    };
    let builder = a.xdp.apply(
        &a.iface,
        builder
            .backend(a.backend.into())
            .connect_timeout(timeout)
            .user_timeout(timeout)
            .on_progress(progress_bar(show_bar)),
    );
    // Validate the file before connecting: a missing file is reported as such.
    let mut elements = Vec::new();
    if let Some(p) = &a.pre {
        elements.push(SendPacketsElement::buffer(
            read_regular(p).with_context(|| format!("reading --pre {}", p.display()))?,
        ));
    }
    elements.push(SendPacketsElement::file(&a.file));
    if let Some(p) = &a.post {
        elements.push(SendPacketsElement::buffer(
            read_regular(p).with_context(|| format!("reading --post {}", p.display()))?,
        ));
    }
    xsend::validate_elements(&elements)?;
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
            opts.send_size = match a.chunk {
                Chunk::None => SEND_SIZE_PACKETS,
                Chunk::Auto if a.raw => conn.info().max_datagram.unwrap_or(1472) as u32,
                Chunk::Auto => SEND_SIZE_AUTO,
                Chunk::Bytes(n) => n,
            };
            if a.chunk != Chunk::None && !a.raw {
                opts.chunk_header = Some(a.flow);
            }
            match a.chunk {
                Chunk::None => "none".to_string(),
                Chunk::Auto => "auto".to_string(),
                Chunk::Bytes(n) => n.to_string(),
            }
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
    let (gbps, pps) = crate::rate(bytes, packets, seconds);
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

/// The bytes of a regular file; anything else (a FIFO, a device) is refused without waiting
/// on it.
fn read_regular(p: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(p)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut v = Vec::new();
    f.read_to_end(&mut v)?;
    Ok(v)
}
