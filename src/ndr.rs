//! `xsend ndr`: RFC 2544 throughput through a device under test. For each frame size, the
//! generator (live frames or AF_XDP, as `xsend bench`) offers trials at the rates the search
//! ([`crate::sansio::search`]) asks for; the receiving port ([`crate::rxport::RxPort`], an
//! XDP program) counts the generator's streams that came through — distinct frames,
//! duplicates, reordering, one-way latency; loss is measured against the frames really sent,
//! and a trial where the generator fell short is recorded as such, never as DUT loss. The
//! maximum rate is the generator's own, measured first, unless given.

use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::gen::{GenSpec, Generator, Imix};
use crate::rxport::RxPort;
use crate::sansio::search::{Next, Outcome, Record, Search, SearchConfig, Trial};

/// What to search.
#[derive(Debug, Clone)]
pub struct NdrSpec {
    /// Frame sizes (Ethernet without FCS, as the generator counts them; RFC 2544's 64 is 60
    /// here), one search each; a mix is searched as one size.
    pub sizes: Vec<Imix>,
    /// Loss ratio of the NDR (0: none).
    pub ndr_loss: f64,
    /// Loss ratio of the PDR (0.001: 0.1 %).
    pub pdr_loss: f64,
    /// Search trial length.
    pub trial: Duration,
    /// Final trial length.
    pub final_trial: Duration,
    /// Resolution relative to the rate (0.01: 1 %).
    pub precision: f64,
    /// Highest rate to offer (packets/s); `None`: the generator's maximum, measured first.
    pub max_rate: Option<f64>,
    /// Line rate of the port, bits/s, for the "% of line rate" column (`None`: unknown).
    pub line_bps: Option<f64>,
}

/// One frame size's result.
#[derive(Debug, Clone, Serialize)]
pub struct NdrRow {
    /// The size searched, as RFC 2544 counts it (with the FCS), or the mix.
    pub size: String,
    /// No drop rate, packets/s.
    pub ndr_pps: f64,
    /// NDR in Gbit/s on the wire (frame + 24 bytes of preamble, FCS and gap).
    pub ndr_gbps: f64,
    /// A final trial confirmed the NDR (`false`: every final trial failed, and `ndr_pps` is
    /// the best search trial that passed below them).
    pub ndr_confirmed: bool,
    /// Partial drop rate, packets/s.
    pub pdr_pps: f64,
    /// PDR in Gbit/s on the wire.
    pub pdr_gbps: f64,
    /// A final trial confirmed the PDR (see `ndr_confirmed`).
    pub pdr_confirmed: bool,
    /// NDR as % of the line rate, if known.
    pub ndr_line_pct: Option<f64>,
    /// One-way latency p50 at the NDR (its final trial, or the search trial of an unconfirmed
    /// NDR), µs, as the receiving port measured it (`None` if no frame came through).
    pub latency_p50_us: Option<f64>,
    /// One-way latency p99 at the NDR, µs.
    pub latency_p99_us: Option<f64>,
    /// Trials taken (search and final).
    pub trials: usize,
    /// The highest rate the generator reached when it fell short, if it did.
    pub generator_ceiling: Option<f64>,
    /// The highest rate offered.
    pub max_rate: f64,
    /// Every trial.
    pub trial_log: Vec<Record>,
}

/// Time a generator run takes to start that is not part of its trial.
const STARTUP: Duration = Duration::from_millis(100);

/// Run one trial: `rate` packets/s for `duration` of `sizes`; returns what was sent and what
/// the receiving port counted.
fn trial(gen: &mut Generator, rx: &RxPort, sizes: &Imix, t: &Trial) -> Result<Outcome> {
    let secs = t.duration.as_secs_f64();
    let count = (t.rate * secs).round().max(1.0) as u64;
    let mut spec = GenSpec::new(sizes.clone());
    spec.rate_pps = Some(t.rate.max(1e-3));
    spec.count = Some(count);
    // Never much longer than asked, even if the generator cannot keep up.
    spec.duration = Some(t.duration + t.duration / 4 + Duration::from_millis(200));
    // Every run's streams count from 0: so does the port.
    rx.reset()?;
    let r = gen.run(&spec)?;
    // What is still crossing the DUT arrives within a few ms.
    std::thread::sleep(Duration::from_millis(100));
    let c = rx.report(Some(r.packets))?;
    Ok(Outcome {
        sent: r.packets,
        received: c.received,
        duplicated: c.duplicated,
        reordered: c.reordered,
        latency_p50_us: c.latency.map(|l| l.p50_us),
        latency_p99_us: c.latency.map(|l| l.p99_us),
        // The rate the generator reached: the frames over the time it took, less the time
        // it takes to start (runner threads, a first BPF_PROG_RUN call: tens of ms), and at
        // least the asked duration (an early finish is not a faster rate).
        seconds: (r.seconds - STARTUP.as_secs_f64()).max(secs * (r.packets as f64 / count as f64)),
    })
}

/// Search each size of `spec`, sending with `gen` and counting at the receiving port `rx`
/// (attached with a table of [`Generator::streams`] streams); `on_trial` sees every trial
/// as it ends.
pub fn run(
    gen: &mut Generator,
    rx: &RxPort,
    spec: &NdrSpec,
    mut on_trial: impl FnMut(&str, &Record),
) -> Result<Vec<NdrRow>> {
    if spec.sizes.is_empty() {
        return Err(Error::InvalidOption("no frame size to search".into()));
    }
    let mut rows = Vec::with_capacity(spec.sizes.len());
    for sizes in &spec.sizes {
        // One size: RFC 2544's count (with FCS); a mix: as given.
        let label = match sizes.sizes() {
            [(n, _)] => (n + 4).to_string(),
            _ => sizes.to_string(),
        };
        let max = match spec.max_rate {
            Some(m) => m,
            None => {
                // The generator's own maximum over a short unpaced run.
                let mut probe = GenSpec::new(sizes.clone());
                probe.duration = Some(spec.trial.min(Duration::from_secs(2)));
                let r = gen.run(&probe)?;
                r.packets as f64 / r.seconds.max(1e-9)
            }
        };
        let mut cfg = SearchConfig::new(max, 1.0, spec.pdr_loss);
        cfg.ndr_loss = spec.ndr_loss;
        cfg.relative = spec.precision;
        cfg.trial = spec.trial;
        cfg.final_trial = spec.final_trial;
        let mut search = Search::new(cfg);
        let result = loop {
            match search.next() {
                Next::Done(r) => break r,
                Next::Run(t) => {
                    let o = trial(gen, rx, sizes, &t)?;
                    if gen.cancel_handle().is_cancelled() {
                        return Err(Error::Cancelled { sent: o.sent });
                    }
                    search.record(t, o);
                }
            }
            if let Some(last) = search_last(&search) {
                on_trial(&label, &last);
            }
        };
        let wire = |pps: f64| pps * (sizes.mean() + 24.0) * 8.0 / 1e9;
        rows.push(NdrRow {
            size: label,
            ndr_pps: result.ndr.rate,
            ndr_gbps: wire(result.ndr.rate),
            ndr_confirmed: result.ndr.is_confirmed(),
            pdr_pps: result.pdr.rate,
            pdr_gbps: wire(result.pdr.rate),
            pdr_confirmed: result.pdr.is_confirmed(),
            ndr_line_pct: spec
                .line_bps
                .map(|l| wire(result.ndr.rate) * 1e9 / l * 100.0),
            latency_p50_us: result.ndr.record().and_then(|c| c.outcome.latency_p50_us),
            latency_p99_us: result.ndr.record().and_then(|c| c.outcome.latency_p99_us),
            trials: result.trials.len(),
            generator_ceiling: result.generator_ceiling,
            max_rate: max,
            trial_log: result.trials,
        });
    }
    Ok(rows)
}

/// The last recorded trial.
fn search_last(s: &Search) -> Option<Record> {
    s.records().last().copied()
}
