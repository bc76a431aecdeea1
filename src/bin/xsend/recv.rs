//! `xsend recv`: the verifying receiver.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use xsend::recv::{RecvConfig, RecvReport};
use xsend::Proto;

use crate::args::{self, ProtoArg};
use crate::EXIT_MISMATCH;

#[derive(Args)]
pub(crate) struct RecvArgs {
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
    /// Chunked UDP: the flow id to verify (default: the first that arrives; others are
    /// counted and ignored).
    #[arg(long)]
    flow: Option<u16>,
    /// Count only, do not hash.
    #[arg(long)]
    count_only: bool,
    /// Treat UDP datagrams as raw payload even if they carry an xsend header.
    #[arg(long)]
    raw: bool,
    /// Seconds without data that end the receive once data has arrived: UDP, the stream is
    /// over (default 2); TCP, it is reported incomplete (default 60).
    #[arg(long, value_parser = args::seconds, allow_negative_numbers = true)]
    idle_timeout: Option<Duration>,
    /// Seconds to wait for the connection and for the first byte (default: forever).
    #[arg(long, value_parser = args::seconds, allow_negative_numbers = true)]
    timeout: Option<Duration>,
    /// Enter this network namespace first.
    #[arg(long)]
    netns: Option<String>,
    #[arg(long)]
    json: bool,
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

pub(crate) fn run(a: RecvArgs) -> anyhow::Result<ExitCode> {
    crate::enter_netns(&a.netns)?;
    let proto: Proto = a.proto.into();
    let mut cfg = RecvConfig::new(a.listen, proto);
    cfg.out = a.out.clone();
    cfg.count_only = a.count_only;
    cfg.raw = a.raw;
    cfg.idle_timeout = a.idle_timeout;
    cfg.first_timeout = a.timeout;
    cfg.expect_bytes = a.expect_bytes;
    cfg.flow = a.flow;
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
    // A stream known to be cut short fails unless only counting was asked for.
    let incomplete = report.complete == Some(false);
    if incomplete && !a.count_only {
        failures.push(incomplete_reason(&report));
    }
    let verified =
        (a.expect_sha256.is_some() || a.expect_bytes.is_some()).then_some(failures.is_empty());
    let units = if proto == Proto::Udp {
        report.datagrams
    } else {
        0
    };
    let (gbps, pps) = crate::rate(report.bytes, units, report.seconds);
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

/// Why a stream is incomplete, in a user's words.
fn incomplete_reason(r: &RecvReport) -> String {
    match (r.chunked, r.expected_datagrams, r.expected_bytes) {
        (true, Some(n), Some(b)) => format!(
            "incomplete stream: {} of {n} datagrams, {} of {b} bytes (lost {})",
            n.saturating_sub(r.lost),
            r.bytes,
            r.lost
        ),
        (true, _, _) => format!(
            "incomplete stream: no end marker arrived ({} bytes, lost {} so far)",
            r.bytes, r.lost
        ),
        _ => format!(
            "incomplete stream: the sender went quiet before closing ({} bytes)",
            r.bytes
        ),
    }
}
