//! Latency and timing summaries (hdrhistogram).

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest value a histogram records (60 s in ns); larger values are clamped.
const HIGH_NS: u64 = 60_000_000_000;

/// A nanosecond histogram, 3 significant digits, 1 ns .. 60 s.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGH_NS, 3).expect("static histogram bounds are valid")
}

/// Record `count` samples of `ns`, clamped into the histogram's range.
#[inline]
pub fn record(h: &mut Histogram<u64>, ns: u64, count: u64) {
    let _ = h.record_n(ns.clamp(1, HIGH_NS), count);
}

/// Percentiles of a nanosecond histogram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean_ns: f64,
    /// Median.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Largest.
    pub max_ns: u64,
}

impl Percentiles {
    /// Summarize `h`; `None` when it is empty.
    pub fn of(h: &Histogram<u64>) -> Option<Self> {
        (!h.is_empty()).then(|| Percentiles {
            count: h.len(),
            mean_ns: h.mean(),
            p50_ns: h.value_at_quantile(0.5),
            p90_ns: h.value_at_quantile(0.9),
            p99_ns: h.value_at_quantile(0.99),
            p999_ns: h.value_at_quantile(0.999),
            max_ns: h.max(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_known_samples() {
        let mut h = histogram();
        assert_eq!(Percentiles::of(&h), None);
        for v in 1..=1000u64 {
            record(&mut h, v * 1000, 1);
        }
        record(&mut h, u64::MAX, 1);
        let p = Percentiles::of(&h).unwrap();
        assert_eq!(p.count, 1001);
        assert!((p.p50_ns as f64 - 500_000.0).abs() < 2500.0);
        assert!((p.p99_ns as f64 - 990_000.0).abs() < 5000.0);
        assert!(p.max_ns >= HIGH_NS - HIGH_NS / 1000, "clamped, not dropped");
    }
}
