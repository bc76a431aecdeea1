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

/// A nanosecond histogram from log-linear bucket counts (`counts[i]` values in
/// `bucket(i)` = (lowest, width)), each recorded at its bucket's middle, and the exact
/// maximum `max_ns` (recorded once in place of one value of the top bucket).
pub(crate) fn histogram_from_buckets(
    counts: &[u64],
    max_ns: u64,
    bucket: impl Fn(usize) -> (u64, u64),
) -> Histogram<u64> {
    let mut h = histogram();
    let top = counts.iter().rposition(|&c| c > 0);
    for (i, &c) in counts.iter().enumerate() {
        if c == 0 {
            continue;
        }
        let (lo, w) = bucket(i);
        let mid = lo + w / 2;
        if Some(i) == top {
            record(&mut h, mid.min(max_ns.max(lo)), c - 1);
            record(&mut h, max_ns.max(lo), 1);
        } else {
            record(&mut h, mid, c);
        }
    }
    h
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

    /// Bucket counts (the BPF programs' log-linear buckets) become a histogram whose
    /// percentiles lie in the right buckets and whose maximum is the exact one.
    #[test]
    fn histogram_from_log_linear_buckets() {
        use crate::sansio::seqtrack::{bucket_range, lat_bucket, LAT_BUCKETS};
        let mut counts = vec![0u64; LAT_BUCKETS];
        for v in (1..=100u32).map(|i| i * 100) {
            counts[lat_bucket(v)] += 1;
        }
        let h = histogram_from_buckets(&counts, 10_000, bucket_range);
        let p = Percentiles::of(&h).unwrap();
        assert_eq!(p.count, 100);
        assert!((p.p50_ns as f64 - 5000.0).abs() < 5000.0 * 0.07, "{p:?}");
        assert!((p.max_ns as f64 - 10_000.0).abs() < 10.0, "{p:?}");
    }
}
