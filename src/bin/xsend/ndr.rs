//! `xsend ndr`: RFC 2544 throughput (NDR and PDR) through a device under test, counted on a
//! receiving port.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use xsend::gen::Imix;
use xsend::gen::{GenSpec, Generator};
use xsend::ndr::{NdrRow, NdrSpec};
use xsend::rxport::{RxPort, RxPortConfig};
use xsend::{BackendInfo, Connection};

use crate::args::{self, XdpArgs};
use crate::bench::GenBackendArg;
use crate::signal::{arm, cancel_on_signal};

#[derive(Args)]
pub(crate) struct NdrArgs {
    /// Destination IP:PORT, behind the DUT.
    #[arg(long)]
    to: SocketAddr,
    /// Interface to send from (default: by route).
    #[arg(long)]
    iface: Option<String>,
    /// Enter this network namespace to send.
    #[arg(long)]
    netns: Option<String>,
    /// The receiving port: where the DUT's output arrives (an XDP program there counts the
    /// generator's streams, loss, duplicates, reordering and latency, and drops them).
    #[arg(long)]
    rx_iface: String,
    /// The receiving port's network namespace (default: the sending one, `--netns`).
    #[arg(long)]
    rx_netns: Option<String>,
    /// Frame sizes to search, each on its own, as RFC 2544 counts them (with the 4-byte
    /// FCS: 64 is a 60-byte frame as `xsend bench --size` counts): `64,128,...,1518`, or
    /// `imix` (xsend's mix, sizes without FCS).
    #[arg(long, default_value = "64,128,256,512,1024,1280,1518", value_parser = size_list)]
    size: SizeList,
    /// Loss the NDR allows (`0`, or a ratio like `0.001` / `0.1%`).
    #[arg(long, default_value = "0", value_parser = ratio)]
    loss: f64,
    /// Loss the PDR allows.
    #[arg(long, default_value = "0.1%", value_parser = ratio)]
    pdr: f64,
    /// Seconds per search trial.
    #[arg(long, default_value = "10", value_parser = args::seconds)]
    trial: Duration,
    /// Seconds of the final trial confirming each result.
    #[arg(long = "final", default_value = "60", value_parser = args::seconds)]
    final_trial: Duration,
    /// Rate resolution relative to the rate (`1%`).
    #[arg(long, default_value = "1%", value_parser = ratio)]
    precision: f64,
    /// Highest rate to offer, packets/s (default: the generator's maximum, measured first).
    #[arg(long, value_parser = args::rate)]
    max_rate: Option<f64>,
    /// Line rate of the port in bits/s (e.g. 10G), for the "% of line rate" column.
    #[arg(long, value_parser = args::rate)]
    line_rate: Option<f64>,
    /// Where frames are made (as `xsend bench --backend`).
    #[arg(long, value_enum, default_value = "auto")]
    backend: GenBackendArg,
    #[command(flatten)]
    xdp: XdpArgs,
    /// Also draw NDR and PDR against frame size into this PNG file.
    #[arg(long, value_name = "FILE.png")]
    plot: Option<std::path::PathBuf>,
    #[arg(long)]
    json: bool,
}

/// Frame sizes, one search each.
#[derive(Clone)]
pub(crate) struct SizeList(Vec<Imix>);

fn size_list(s: &str) -> Result<SizeList, String> {
    let v: Result<Vec<Imix>, String> = s
        .split(',')
        .map(|x| match x.trim().parse::<usize>() {
            // RFC 2544 sizes include the FCS; the generator's do not.
            Ok(n) if n >= 64 => args::sizes(&(n - 4).to_string()),
            Ok(n) => Err(format!(
                "{n}: RFC 2544 frames are at least 64 bytes (with the FCS)"
            )),
            Err(_) => args::sizes(x.trim()),
        })
        .collect();
    let v = v?;
    if v.is_empty() {
        return Err("no size".into());
    }
    Ok(SizeList(v))
}

/// A ratio: `0.001` or `0.1%`, in 0..1.
fn ratio(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, scale) = match t.strip_suffix('%') {
        Some(n) => (n, 0.01),
        None => (t, 1.0),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("not a ratio: {s:?} (e.g. 0.001 or 0.1%)"))?;
    let v = v * scale;
    if !v.is_finite() || !(0.0..1.0).contains(&v) {
        return Err(format!("{s}: a ratio from 0 to below 1 (100 %)"));
    }
    Ok(v)
}

#[derive(Serialize)]
struct NdrSummary {
    #[serde(flatten)]
    info: BackendInfo,
    to: SocketAddr,
    rx_iface: String,
    trial_s: f64,
    final_s: f64,
    ndr_loss: f64,
    pdr_loss: f64,
    precision: f64,
    results: Vec<NdrRow>,
}

pub(crate) fn run(a: NdrArgs) -> anyhow::Result<ExitCode> {
    if let Some(p) = &a.plot {
        crate::plot::prepare(p)?;
    }
    let (slot, stop) = cancel_on_signal()?;
    // (The receiving port's namespace may differ from the sender's.)
    let rx_ns = a.rx_netns.clone();
    crate::enter_netns(&a.netns)?;
    let builder = a
        .xdp
        .apply(&a.iface, Connection::udp(a.to))
        .gen_backend(a.backend.into());
    // The receiving port before the generator (see `xsend bench --rx-iface`).
    let streams = Generator::max_streams(&GenSpec::new(a.size.0[0].clone()), a.xdp.queues)?;
    let rx = RxPort::attach(
        rx_ns.as_deref(),
        &a.rx_iface,
        &RxPortConfig {
            streams,
            drop: true,
        },
    )?;
    let mut gen = builder.generator()?;
    arm(&slot, &stop, gen.cancel_handle());
    let spec = NdrSpec {
        sizes: a.size.0.clone(),
        ndr_loss: a.loss,
        pdr_loss: a.pdr,
        trial: a.trial,
        final_trial: a.final_trial,
        precision: a.precision,
        max_rate: a.max_rate,
        line_bps: a.line_rate,
    };
    let json = a.json;
    let rows = xsend::ndr::run(&mut gen, &rx, &spec, |size, r| {
        if !json {
            eprintln!(
                "  {size:>6} B  {:>12.0} packets/s for {:>4.1} s: sent {:>10}, received {:>10}, loss {:.4} %{}{}",
                r.trial.rate,
                r.trial.duration.as_secs_f64(),
                r.outcome.sent,
                r.outcome.received,
                r.outcome.loss() * 100.0,
                if r.shortfall { "  (generator short: not DUT loss)" } else { "" },
                if r.trial.validates.is_some() { "  [final]" } else { "" },
            );
        }
    })?;
    let s = NdrSummary {
        info: gen.info().clone(),
        to: a.to,
        rx_iface: a.rx_iface,
        trial_s: a.trial.as_secs_f64(),
        final_s: a.final_trial.as_secs_f64(),
        ndr_loss: a.loss,
        pdr_loss: a.pdr,
        precision: a.precision,
        results: rows,
    };
    if let Some(p) = &a.plot {
        if !s.results.is_empty() {
            let title = format!(
                "xsend ndr to {} ({} {}, loss {} %, PDR {} %)",
                s.to,
                s.info.backend,
                s.info.mode,
                s.ndr_loss * 100.0,
                s.pdr_loss * 100.0
            );
            crate::plot::draw(p, &s.results, &title)?;
        }
    }
    if json {
        println!("{}", serde_json::to_string(&s)?);
    } else {
        println!(
            "{:>8} {:>14} {:>10} {:>14} {:>10} {:>8} {:>9} {:>9} {:>7}  ({} {})",
            "size",
            "NDR pps",
            "Gbit/s",
            "PDR pps",
            "Gbit/s",
            "% line",
            "p50 µs",
            "p99 µs",
            "trials",
            s.info.backend,
            s.info.mode
        );
        for r in &s.results {
            println!(
                "{:>8} {:>14.0} {:>10.3} {:>14.0} {:>10.3} {:>8} {:>9} {:>9} {:>7}{}",
                r.size,
                r.ndr_pps,
                r.ndr_gbps,
                r.pdr_pps,
                r.pdr_gbps,
                r.ndr_line_pct.map_or("-".into(), |p| format!("{p:.1}")),
                r.latency_p50_us.map_or("-".into(), |l| format!("{l:.1}")),
                r.latency_p99_us.map_or("-".into(), |l| format!("{l:.1}")),
                r.trials,
                r.generator_ceiling
                    .map(|c| format!("  (generator ceiling {c:.0} packets/s)"))
                    .unwrap_or_default()
            );
            for (what, ok) in [("NDR", r.ndr_confirmed), ("PDR", r.pdr_confirmed)] {
                if !ok {
                    println!(
                        "{:>8} {what} unconfirmed: every final trial failed; the best search \
                         trial that passed below them is shown",
                        ""
                    );
                }
            }
        }
    }
    if stop.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(ExitCode::from(crate::EXIT_CANCELLED));
    }
    Ok(ExitCode::SUCCESS)
}
