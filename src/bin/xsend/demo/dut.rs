//! The demo's DUT row: `xsend ndr` finds the capacity of a device under test policed at a
//! known rate (tester port A → forwarding namespace → tester port B, counted by the
//! receiving port on B).

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use xsend::gen::{GenSpec, Generator, Imix};
use xsend::lab::{DutConfig, DutLab};
use xsend::ndr::NdrSpec;
use xsend::rxport::{RxPort, RxPortConfig};
use xsend::{Connection, Proto};

use super::Row;
use crate::signal::{arm, CancelSlot};

/// The DUT's policed capacity, packets/s: well below what the generators reach here, so the
/// search finds the DUT and not the generator.
const DUT_RATE: f64 = 100_000.0;
/// The frame size searched, as RFC 2544 counts it (with the FCS).
const SIZE: usize = 64;

/// What the DUT row adds to a transfer row.
#[derive(Serialize)]
pub(super) struct NdrFound {
    /// The rate the DUT is policed at.
    dut_rate_pps: f64,
    /// NDR as a share of it.
    ndr_of_dut: f64,
    pdr_pps: f64,
    latency_p50_us: Option<f64>,
    latency_p99_us: Option<f64>,
    trials: usize,
}

/// Bring up a DUT lab policed at [`DUT_RATE`], search its NDR at 64 B with short trials and
/// report it as a row; "verified" when the NDR lies in (½, 1.01] × the policed rate (the
/// policer's bucket holds 10 ms of its rate).
pub(super) fn row((current, stop): (&CancelSlot, &AtomicBool)) -> anyhow::Result<Row> {
    let lab = DutLab::up(&DutConfig {
        rate_pps: Some(DUT_RATE),
        ..Default::default()
    })
    .context("bringing up the DUT lab")?;
    eprintln!(
        "dut lab {}: {}/{} -> {} (forwarding, policed at {DUT_RATE} packets/s) -> {}/{}",
        lab.name, lab.ns_a, lab.if_a, lab.ns_d, lab.ns_b, lab.if_b
    );
    let to = SocketAddr::from((lab.ip4_b, 9));
    let start = Instant::now();
    let (rows, info) = xsend::lab::run_in_netns(&lab.ns_a, || -> anyhow::Result<_> {
        let size = Imix::parse(&(SIZE - 4).to_string()).map_err(anyhow::Error::msg)?;
        let streams = Generator::max_streams(&GenSpec::new(size.clone()), 1)?;
        let rx = RxPort::attach(
            Some(&lab.ns_b),
            &lab.if_b,
            &RxPortConfig {
                streams,
                drop: true,
            },
        )?;
        let mut gen = Connection::udp(to).generator()?;
        arm(current, stop, gen.cancel_handle());
        let spec = NdrSpec {
            sizes: vec![size],
            ndr_loss: 0.0,
            pdr_loss: 0.001,
            trial: Duration::from_secs(1),
            final_trial: Duration::from_secs(2),
            precision: 0.01,
            max_rate: None,
            line_bps: None,
        };
        let rows = xsend::ndr::run(&mut gen, &rx, &spec, |_, r| {
            eprintln!(
                "  ndr: {:>9.0} packets/s: loss {:.3} %{}",
                r.trial.rate,
                r.outcome.loss() * 100.0,
                if r.trial.validates.is_some() {
                    " [final]"
                } else {
                    ""
                }
            );
        });
        *current.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok((rows?, gen.info().clone()))
    })??;
    let r = rows.first().context("the search found nothing")?;
    let share = r.ndr_pps / DUT_RATE;
    Ok(Row {
        path: format!("ndr {SIZE} B via dut"),
        proto: Proto::Udp,
        backend: info.backend.to_string(),
        mode: info.mode,
        bytes: 0,
        seconds: start.elapsed().as_secs_f64(),
        gbps: r.ndr_gbps,
        pps: r.ndr_pps,
        received_bytes: 0,
        lost: 0,
        verified: share > 0.5 && share <= 1.01,
        ndr: Some(NdrFound {
            dut_rate_pps: DUT_RATE,
            ndr_of_dut: share,
            pdr_pps: r.pdr_pps,
            latency_p50_us: r.latency_p50_us,
            latency_p99_us: r.latency_p99_us,
            trials: r.trials,
        }),
    })
}

impl std::fmt::Display for NdrFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ndr via dut: the DUT is policed at {:.0} packets/s; NDR found {:.1} % of it, PDR (0.1 %) {:.0} packets/s, {} trials",
            self.dut_rate_pps,
            self.ndr_of_dut * 100.0,
            self.pdr_pps,
            self.trials
        )?;
        if let (Some(p50), Some(p99)) = (self.latency_p50_us, self.latency_p99_us) {
            write!(f, ", one-way latency p50 {p50:.1} µs p99 {p99:.1} µs")?;
        }
        Ok(())
    }
}
