//! Rate control and frame-size mixes for the generator (sans-IO: time is passed in).
//!
//! [`Pacer`] is an open-loop scheduler: packet `k` is due at `start + k * interval`, fixed
//! against the clock, never against the previous send. A sender that falls behind sends the
//! overdue packets at once (and can report how late they were) instead of silently
//! stretching the schedule, so no coordinated omission hides late packets. Bursts of `b`
//! packets are due together every `b * interval`.
//!
//! [`Imix`] picks frame sizes by weight with a smooth weighted round robin: deterministic,
//! exact proportions over every cycle of `sum(weights)` packets, no random numbers per packet.

/// Open-loop packet scheduler.
#[derive(Debug, Clone)]
pub struct Pacer {
    start_ns: u64,
    interval_ps: u128,
    burst: u64,
    sent: u64,
    next_due: u64,
}

impl Pacer {
    /// `pps` packets per second from `start_ns`, due in bursts of `burst` (≥ 1).
    pub fn new(pps: f64, burst: u64, start_ns: u64) -> Self {
        Pacer {
            start_ns,
            // Picoseconds keep rates up to tens of Mpps exact enough over long runs.
            interval_ps: (1e12 / pps.max(1e-6)) as u128,
            burst: burst.max(1),
            sent: 0,
            next_due: start_ns,
        }
    }

    /// A pacer for a bit rate: frames of `frame_bytes` plus 24 bytes of preamble, SFD, FCS
    /// and inter-frame gap on the wire.
    pub fn for_bps(bps: f64, frame_bytes: usize, burst: u64, start_ns: u64) -> Self {
        Self::new(bps / (((frame_bytes + 24) * 8) as f64), burst, start_ns)
    }

    /// When packet `k` (0-based) is due, in ns.
    pub fn due_ns(&self, k: u64) -> u64 {
        let first_of_burst = k - k % self.burst;
        self.start_ns + (first_of_burst as u128 * self.interval_ps / 1000) as u64
    }

    /// How many packets may be sent at `now_ns` (all that are due and not yet sent).
    pub fn allowed(&self, now_ns: u64) -> u64 {
        if now_ns < self.start_ns {
            return 0;
        }
        let elapsed_ps = (now_ns - self.start_ns) as u128 * 1000;
        let bursts_due = elapsed_ps / (self.interval_ps * self.burst as u128) + 1;
        (bursts_due as u64 * self.burst).saturating_sub(self.sent)
    }

    /// Record `n` packets as sent.
    #[inline]
    pub fn sent(&mut self, n: u64) {
        self.sent += n;
        self.next_due = self.due_ns(self.sent);
    }

    /// Packets sent so far.
    pub fn count(&self) -> u64 {
        self.sent
    }

    /// When the next packet is due, in ns (cached: the hot-path check is one comparison).
    #[inline]
    pub fn next_due_ns(&self) -> u64 {
        self.next_due
    }
}

/// Weighted frame sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imix {
    sizes: Vec<(usize, u64)>,
    current: Vec<i64>,
    total: i64,
}

impl std::fmt::Display for Imix {
    /// `64` for one size, else `weight:size,...` (what [`Imix::parse`] reads back).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let [(size, _)] = self.sizes[..] {
            return write!(f, "{size}");
        }
        for (i, (size, w)) in self.sizes.iter().enumerate() {
            write!(f, "{}{w}:{size}", if i > 0 { "," } else { "" })?;
        }
        Ok(())
    }
}

impl Imix {
    /// Sizes with weights; weights of 0 are dropped. `None` if nothing is left.
    pub fn new(sizes: &[(usize, u64)]) -> Option<Self> {
        let sizes: Vec<(usize, u64)> = sizes.iter().copied().filter(|&(_, w)| w > 0).collect();
        if sizes.is_empty() {
            return None;
        }
        let total = sizes.iter().map(|&(_, w)| w as i64).sum();
        Some(Imix {
            current: vec![0; sizes.len()],
            sizes,
            total,
        })
    }

    /// Parse `64`, `64,576,1500` (equal weights), `7:64,4:576,1:1500` (weight:size) or
    /// `imix` (the classic 7:64, 4:576, 1:1500).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let spec = if s.eq_ignore_ascii_case("imix") {
            "7:64,4:576,1:1500"
        } else {
            s
        };
        let mut v = Vec::new();
        for part in spec.split(',') {
            let (w, size) = match part.split_once(':') {
                Some((w, size)) => (
                    w.trim()
                        .parse::<u64>()
                        .map_err(|_| format!("bad weight in {part:?}"))?,
                    size,
                ),
                None => (1, part),
            };
            let size = size
                .trim()
                .parse::<usize>()
                .map_err(|_| format!("bad size in {part:?}"))?;
            v.push((size, w));
        }
        Self::new(&v).ok_or_else(|| format!("no size with a weight above 0 in {s:?}"))
    }

    /// The sizes and weights.
    pub fn sizes(&self) -> &[(usize, u64)] {
        &self.sizes
    }

    /// Largest and smallest size.
    pub fn bounds(&self) -> (usize, usize) {
        let it = self.sizes.iter().map(|&(s, _)| s);
        (it.clone().min().unwrap_or(0), it.max().unwrap_or(0))
    }

    /// Mean frame size over a cycle.
    pub fn mean(&self) -> f64 {
        self.sizes
            .iter()
            .map(|&(s, w)| (s as u64 * w) as f64)
            .sum::<f64>()
            / self.total as f64
    }

    /// The next frame size (smooth weighted round robin).
    #[inline]
    pub fn next_size(&mut self) -> usize {
        let mut best = 0;
        for (i, &(_, w)) in self.sizes.iter().enumerate() {
            self.current[i] += w as i64;
            if self.current[i] > self.current[best] {
                best = i;
            }
        }
        self.current[best] -= self.total;
        self.sizes[best].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_follows_the_clock_not_the_sender() {
        // 1000 pps: one packet per ms from t = 1 s.
        let start = 1_000_000_000;
        let mut p = Pacer::new(1000.0, 1, start);
        assert_eq!(p.allowed(start - 1), 0);
        assert_eq!(p.allowed(start), 1);
        p.sent(1);
        assert_eq!(p.allowed(start + 999_999), 0);
        assert_eq!(p.allowed(start + 1_000_000), 1);
        // The sender stalls for 10 ms: the overdue packets are due at once, the schedule does
        // not slide (no coordinated omission).
        assert_eq!(p.allowed(start + 10_500_000), 10);
        p.sent(10);
        assert_eq!(p.next_due_ns(), start + 11_000_000);
        assert_eq!(p.due_ns(11), start + 11_000_000);
    }

    #[test]
    fn pacer_rate_is_exact_over_long_runs() {
        let mut p = Pacer::new(1_234_567.0, 1, 0);
        let mut now = 0u64;
        // A fake clock ticking in 7 µs steps for 3 s.
        while now <= 3_000_000_000 {
            let n = p.allowed(now);
            p.sent(n);
            now += 7_000;
        }
        let want = 1_234_567.0 * 3.0;
        assert!(
            (p.count() as f64 - want).abs() <= 2.0,
            "{} vs {want}",
            p.count()
        );
    }

    #[test]
    fn pacer_bursts_and_bit_rate() {
        let mut p = Pacer::new(1000.0, 8, 0);
        assert_eq!(p.allowed(0), 8);
        p.sent(8);
        assert_eq!(p.allowed(7_999_999), 0);
        assert_eq!(p.allowed(8_000_000), 8);
        // 1 Gbit/s of 1514-byte frames = 1e9 / (1538 * 8) ≈ 81274 pps.
        let b = Pacer::for_bps(1e9, 1514, 1, 0);
        assert_eq!(b.allowed(1_000_000_000), 81_275);
    }

    #[test]
    fn imix_proportions_are_exact_per_cycle() {
        let mut m = Imix::parse("imix").unwrap();
        assert_eq!(m.bounds(), (64, 1500));
        let mut counts = std::collections::BTreeMap::new();
        for _ in 0..12 * 1000 {
            *counts.entry(m.next_size()).or_insert(0) += 1;
        }
        assert_eq!(counts[&64], 7000);
        assert_eq!(counts[&576], 4000);
        assert_eq!(counts[&1500], 1000);
        assert!((m.mean() - (7.0 * 64.0 + 4.0 * 576.0 + 1500.0) / 12.0).abs() < 1e-9);
        // Interleaved, not in runs: the 1500 never comes twice in a row.
        let seq: Vec<usize> = (0..24).map(|_| m.next_size()).collect();
        assert!(seq.windows(2).all(|w| !(w[0] == 1500 && w[1] == 1500)));
    }

    #[test]
    fn imix_parsing() {
        assert_eq!(Imix::parse("64").unwrap().sizes(), &[(64, 1)]);
        assert_eq!(
            Imix::parse("64, 1500").unwrap().sizes(),
            &[(64, 1), (1500, 1)]
        );
        assert_eq!(Imix::parse("3:128,0:9000").unwrap().sizes(), &[(128, 3)]);
        assert!(Imix::parse("x").is_err());
        assert!(Imix::parse("0:64").is_err());
        assert!(Imix::parse("1:").is_err());
    }
}
