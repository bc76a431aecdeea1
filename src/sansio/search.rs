//! RFC 2544 throughput search, sans-IO: the highest rate a device forwards without loss (NDR)
//! and with a small loss budget (PDR), found in one binary search, each confirmed by a longer
//! final trial, in the manner of FD.io CSIT's MLRsearch and TRex's `ndr_bench`.
//!
//! The caller runs the trials ([`Search::next`] says which rate and for how long) and hands
//! back what was really sent and received ([`Search::record`]). Each trial classifies both
//! targets at once: its loss ratio is measured against the frames really sent, and the rate
//! it counts for is the rate really achieved. A trial where the generator fell short of the
//! asked rate is not DUT loss: it lowers the ceiling of the search (to what the generator
//! reached) and is reported as a shortfall. A final trial that fails sends its target back to
//! searching below it.

use std::time::Duration;

use serde::Serialize;

/// What to search for, and how finely.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchConfig {
    /// Highest rate to try, packets/s (the generator's measured maximum, or `--max-rate`).
    pub max_rate: f64,
    /// Stop when a target is bracketed this closely, packets/s (absolute)...
    pub precision: f64,
    /// ... or this closely relative to the bracket's upper end (0.01: 1 %), whichever is
    /// wider. Below `precision` nothing is told apart from 0.
    pub relative: f64,
    /// Loss ratio the NDR allows (0: none).
    pub ndr_loss: f64,
    /// Loss ratio the PDR allows (e.g. 0.001 for 0.1 %).
    pub pdr_loss: f64,
    /// Length of a search trial.
    pub trial: Duration,
    /// Length of the final trial that confirms each result.
    pub final_trial: Duration,
    /// A trial whose achieved rate is below `asked × (1 − shortfall)` is a generator
    /// shortfall, not a measurement.
    pub shortfall: f64,
    /// Final trials a target may fail before it is reported as unconfirmed.
    pub max_validations: u32,
}

impl SearchConfig {
    /// Defaults: 10 s trials, 60 s final trials, 0.5 % shortfall tolerance, NDR at loss 0.
    pub fn new(max_rate: f64, precision: f64, pdr_loss: f64) -> Self {
        SearchConfig {
            max_rate,
            precision,
            relative: 0.0,
            ndr_loss: 0.0,
            pdr_loss,
            trial: Duration::from_secs(10),
            final_trial: Duration::from_secs(60),
            shortfall: 0.005,
            max_validations: 3,
        }
    }
}

/// Which result a trial is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// No drop rate.
    Ndr,
    /// Partial drop rate.
    Pdr,
}

/// A trial to run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Trial {
    /// Packets per second to offer.
    pub rate: f64,
    /// How long.
    pub duration: Duration,
    /// `Some`: the final trial of that target.
    pub validates: Option<Target>,
}

/// What a trial really did.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Outcome {
    /// Frames the generator really sent.
    pub sent: u64,
    /// Frames of the stream received back (distinct: a duplicate does not hide a loss).
    pub received: u64,
    /// How long the generator sent.
    pub seconds: f64,
    /// Frames received twice (reported, not counted against loss).
    pub duplicated: u64,
    /// Frames received out of order (reported).
    pub reordered: u64,
    /// One-way latency, median and 99th percentile (µs), if measured.
    pub latency_p50_us: Option<f64>,
    /// See `latency_p50_us`.
    pub latency_p99_us: Option<f64>,
}

impl Outcome {
    /// Rate really achieved.
    pub fn rate(&self) -> f64 {
        self.sent as f64 / self.seconds.max(1e-9)
    }

    /// Loss ratio against what was sent (duplicates do not make it negative).
    pub fn loss(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        self.sent.saturating_sub(self.received) as f64 / self.sent as f64
    }
}

/// One trial as it went.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Record {
    /// What was asked.
    pub trial: Trial,
    /// What happened.
    pub outcome: Outcome,
    /// The generator fell short of the asked rate: not counted as DUT loss.
    pub shortfall: bool,
}

/// A found rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Found {
    /// Packets per second: the achieved rate of the confirming final trial; when every final
    /// trial failed, of the best search trial that passed below the lowest failed one
    /// (unconfirmed); 0 if no trial passed at all.
    pub rate: f64,
    /// The final trial that confirmed it, if one did.
    pub confirmed_by: Option<Record>,
    /// No final trial confirmed a rate: the search trial whose rate is reported instead.
    pub unconfirmed: Option<Record>,
}

impl Found {
    /// Nothing passed.
    fn none() -> Self {
        Found {
            rate: 0.0,
            confirmed_by: None,
            unconfirmed: None,
        }
    }

    /// The trial the rate comes from (confirming or not), if any.
    pub fn record(&self) -> Option<&Record> {
        self.confirmed_by.as_ref().or(self.unconfirmed.as_ref())
    }

    /// A final trial confirmed the rate (or nothing passed: 0 needs no confirmation).
    pub fn is_confirmed(&self) -> bool {
        self.unconfirmed.is_none()
    }
}

/// What the search found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResult {
    /// No drop rate.
    pub ndr: Found,
    /// Partial drop rate.
    pub pdr: Found,
    /// Every trial, in order.
    pub trials: Vec<Record>,
    /// The highest rate the generator reached when it fell short (`None` if it never did).
    pub generator_ceiling: Option<f64>,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Run this trial and [`Search::record`] its outcome.
    Run(Trial),
    /// The search is over.
    Done(Box<SearchResult>),
}

/// One target's bracket: `lo` passed (highest so far), `hi` failed or is the ceiling.
#[derive(Debug, Clone, Copy)]
struct Bracket {
    loss: f64,
    lo: Option<f64>,
    hi: f64,
    /// `hi` was measured as failing (else it is the untested ceiling).
    hi_failed: bool,
    validations: u32,
    done: Option<Found>,
}

impl Bracket {
    fn new(loss: f64, max: f64) -> Self {
        Bracket {
            loss,
            lo: None,
            hi: max,
            hi_failed: false,
            validations: 0,
            done: None,
        }
    }

    /// The next rate to try, or `None` when bracketed within `precision` (absolute) or
    /// `relative` (to the upper end).
    fn probe(&self, precision: f64, relative: f64) -> Option<f64> {
        if !self.hi_failed {
            // The ceiling itself first: if it passes, there is nothing to search.
            return match self.lo {
                Some(lo) if lo >= self.hi * (1.0 - 1e-9) => None,
                _ => Some(self.hi),
            };
        }
        let lo = self.lo.unwrap_or(0.0);
        let width = if self.lo.is_some() {
            precision.max(relative * self.hi)
        } else {
            precision
        };
        if self.hi - lo <= width {
            return None;
        }
        Some((lo + self.hi) / 2.0)
    }

    fn classify(&mut self, rate: f64, loss: f64) {
        if loss <= self.loss {
            if self.lo.is_none_or(|lo| rate > lo) {
                self.lo = Some(rate.min(self.hi));
            }
        } else if rate < self.hi || !self.hi_failed {
            self.hi = rate.min(self.hi);
            self.hi_failed = true;
            if self.lo.is_some_and(|lo| lo >= self.hi) {
                // Noise, or a longer final trial seeing what a short one did not: a pass
                // above a fail. Trust the fail (the lower rate); `Search::record` puts the
                // best pass below it back as the lower end.
                self.lo = None;
            }
        }
    }

    /// The generator cannot go above `cap`.
    fn cap(&mut self, cap: f64) {
        if self.hi > cap {
            self.hi = cap;
            self.hi_failed = false;
        }
        if self.lo.is_some_and(|lo| lo > cap) {
            self.lo = Some(cap);
        }
    }
}

/// The rate a measured trial counts for: what it achieved, never above what was asked.
fn counted_rate(r: &Record) -> f64 {
    r.outcome.rate().min(r.trial.rate)
}

/// The measured trial with the highest rate that passed `loss`, strictly below `hi`.
fn best_pass_below(trials: &[Record], loss: f64, hi: f64) -> Option<&Record> {
    trials
        .iter()
        .filter(|r| !r.shortfall && r.outcome.loss() <= loss && counted_rate(r) < hi)
        .reduce(|a, b| {
            if counted_rate(b) > counted_rate(a) {
                b
            } else {
                a
            }
        })
}

/// The search state machine.
#[derive(Debug, Clone)]
pub struct Search {
    cfg: SearchConfig,
    b: [Bracket; 2],
    trials: Vec<Record>,
    ceiling: Option<f64>,
}

impl Search {
    /// A search over `0..=cfg.max_rate`.
    pub fn new(cfg: SearchConfig) -> Self {
        let max = cfg.max_rate.max(1.0);
        Search {
            b: [
                Bracket::new(cfg.ndr_loss, max),
                Bracket::new(cfg.pdr_loss, max),
            ],
            cfg,
            trials: Vec::new(),
            ceiling: None,
        }
    }

    /// The next trial, or the result.
    pub fn next(&self) -> Next {
        for (i, b) in self.b.iter().enumerate() {
            if b.done.is_some() {
                continue;
            }
            let target = if i == 0 { Target::Ndr } else { Target::Pdr };
            return Next::Run(match b.probe(self.cfg.precision, self.cfg.relative) {
                Some(rate) => Trial {
                    rate,
                    duration: self.cfg.trial,
                    validates: None,
                },
                // Bracketed: confirm the lower bound with a final trial (nothing passed:
                // the result is 0, below is `done` already).
                None => Trial {
                    rate: b.lo.unwrap_or(0.0),
                    duration: self.cfg.final_trial,
                    validates: Some(target),
                },
            });
        }
        let mut ndr = self.b[0].done.expect("searched");
        let mut pdr = self.b[1].done.expect("searched");
        if pdr.rate < ndr.rate {
            if ndr.is_confirmed() {
                // What passes with no loss passes with some: never a PDR below the NDR (a
                // noisy final trial of the PDR cannot take it under the NDR's confirmed rate).
                pdr = ndr;
            } else {
                // An unconfirmed NDR above the PDR: the NDR is the best pass at or below the
                // PDR's rate (unconfirmed too), never a PDR taken down by it.
                let at_pdr = pdr.rate * (1.0 + 1e-12) + f64::MIN_POSITIVE;
                ndr = match best_pass_below(&self.trials, self.cfg.ndr_loss, at_pdr) {
                    Some(r) => Found {
                        rate: counted_rate(r),
                        confirmed_by: None,
                        unconfirmed: Some(*r),
                    },
                    None => Found::none(),
                };
            }
        }
        Next::Done(Box::new(SearchResult {
            ndr,
            pdr,
            trials: self.trials.clone(),
            generator_ceiling: self.ceiling,
        }))
    }

    /// The trials recorded so far.
    pub fn records(&self) -> &[Record] {
        &self.trials
    }

    /// Record what `trial` (the last [`Next::Run`]) did.
    pub fn record(&mut self, trial: Trial, outcome: Outcome) {
        let achieved = outcome.rate();
        let shortfall = achieved < trial.rate * (1.0 - self.cfg.shortfall);
        let rec = Record {
            trial,
            outcome,
            shortfall,
        };
        self.trials.push(rec);
        if shortfall {
            // Not a measurement of the DUT: the generator's ceiling is lower than thought.
            self.ceiling = Some(self.ceiling.map_or(achieved, |c| c.min(achieved)));
            let cap = achieved * (1.0 - self.cfg.shortfall);
            for b in self.b.iter_mut().filter(|b| b.done.is_none()) {
                b.cap(cap);
            }
            return;
        }
        let (rate, loss) = (achieved.min(trial.rate), outcome.loss());
        for b in self.b.iter_mut().filter(|b| b.done.is_none()) {
            b.classify(rate, loss);
            if b.lo.is_none() && b.hi_failed {
                // A fail below the bracket's pass (a final trial, or noise): search on from
                // the best pass below the fail, not from zero.
                b.lo = best_pass_below(&self.trials, b.loss, b.hi).map(counted_rate);
            }
        }
        if let Some(t) = trial.validates {
            let b = &mut self.b[t as usize];
            if b.done.is_some() {
                return;
            }
            b.validations += 1;
            if loss <= b.loss {
                b.done = Some(Found {
                    rate,
                    confirmed_by: Some(rec),
                    unconfirmed: None,
                });
            } else if b.validations >= self.cfg.max_validations {
                // Every final trial failed (a shared machine's stall, a DUT whose buffer
                // hides an excess for a short trial): what passed below the lowest failed
                // final is still the best measurement there is, reported as unconfirmed.
                // Only when nothing passed at all is the result 0.
                b.done = Some(match best_pass_below(&self.trials, b.loss, b.hi) {
                    Some(best) => Found {
                        rate: counted_rate(best),
                        confirmed_by: None,
                        unconfirmed: Some(*best),
                    },
                    None => Found::none(),
                });
            }
        }
        // The NDR's confirmed rate is a floor for the PDR (its loss is within the PDR's too).
        if let (Some(n), true) = (self.b[0].done, self.b[1].done.is_none()) {
            let p = &mut self.b[1];
            if n.is_confirmed()
                && n.rate > 0.0
                && p.lo.is_none_or(|lo| lo < n.rate)
                && n.rate < p.hi
            {
                p.lo = Some(n.rate);
            }
        }
        // Nothing passes down to the precision: the result is 0.
        for b in self.b.iter_mut().filter(|b| b.done.is_none()) {
            if b.lo.is_none() && b.hi_failed && b.hi <= self.cfg.precision {
                b.done = Some(Found::none());
            }
        }
    }
}

#[cfg(test)]
mod tests;
