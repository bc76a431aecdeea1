//! The receiving port's arithmetic (sans-IO), as `bpf/rxport.bpf.c` does it: per-stream
//! sequence tracking (received, lost, gaps, duplicated, reordered) with a 64-frame window,
//! and the log-linear latency histogram's buckets. The program is tested against this model;
//! user space uses it to read the program's maps.

/// Frames behind the highest sequence number a duplicate is recognised in.
pub const WINDOW: u64 = 64;
/// Buckets of the latency histogram.
pub const LAT_BUCKETS: usize = 32 + (32 - 5) * 16;
/// Bytes of one `struct rx_stream`.
pub const STREAM_LEN: usize = 64;

/// One stream's counters (`struct rx_stream`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stream {
    /// Distinct frames received.
    pub received: u64,
    /// Highest sequence number seen + 1.
    pub next: u64,
    /// Sequence numbers skipped and not seen late (yet).
    pub lost: u64,
    /// Times the sequence skipped ahead.
    pub gaps: u64,
    /// Frames seen twice within the window.
    pub dup: u64,
    /// Frames that came after a higher sequence number.
    pub reorder: u64,
    /// Bit d: sequence number `next - 1 - d` was seen.
    pub window: u64,
    /// Bytes of the distinct frames.
    pub bytes: u64,
}

impl Stream {
    /// Count frame `seq` of `len` bytes.
    pub fn track(&mut self, seq: u64, len: u64) {
        if seq >= self.next {
            let gap = seq - self.next;
            if gap > 0 {
                self.lost += gap;
                self.gaps += 1;
            }
            self.window = if gap >= WINDOW - 1 {
                1
            } else {
                (self.window << (gap + 1)) | 1
            };
            self.next = seq + 1;
            self.received += 1;
            self.bytes += len;
            return;
        }
        let d = self.next - 1 - seq;
        if d < WINDOW {
            let bit = 1u64 << d;
            if self.window & bit != 0 {
                self.dup += 1;
                return;
            }
            self.window |= bit;
        }
        self.reorder += 1;
        self.lost = self.lost.saturating_sub(1);
        self.received += 1;
        self.bytes += len;
    }

    /// Parse the map value (native byte order).
    pub fn from_bytes(b: &[u8]) -> Option<Stream> {
        let u = |i: usize| {
            Some(u64::from_ne_bytes(
                b.get(i * 8..i * 8 + 8)?.try_into().ok()?,
            ))
        };
        Some(Stream {
            received: u(0)?,
            next: u(1)?,
            lost: u(2)?,
            gaps: u(3)?,
            dup: u(4)?,
            reorder: u(5)?,
            window: u(6)?,
            bytes: u(7)?,
        })
    }
}

/// The bucket of a latency of `v` ns: exact below 32, then 16 buckets per power of two.
pub fn lat_bucket(v: u32) -> usize {
    if v < 32 {
        return v as usize;
    }
    let e = 31 - v.leading_zeros();
    32 + (e as usize - 5) * 16 + ((v >> (e - 4)) & 15) as usize
}

/// The lowest value of bucket `i` and its width (ns).
pub fn bucket_range(i: usize) -> (u64, u64) {
    if i < 32 {
        return (i as u64, 1);
    }
    let e = (i - 32) / 16 + 5;
    let m = ((i - 32) % 16) as u64;
    let width = 1u64 << (e - 4);
    ((16 + m) * width, width)
}

/// The value at quantile `q` (0..=1) of a histogram of [`LAT_BUCKETS`] counts: the middle
/// of the bucket holding it (within 3.2 % of the true value); `None` if empty.
pub fn quantile(counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
    let mut acc = 0;
    for (i, &c) in counts.iter().enumerate() {
        acc += c;
        if acc >= rank {
            let (lo, w) = bucket_range(i);
            return Some(if w == 1 {
                lo as f64
            } else {
                lo as f64 + w as f64 / 2.0
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_loss_dup_and_reorder_are_told_apart() {
        let mut s = Stream::default();
        for q in 0..10 {
            s.track(q, 60);
        }
        assert_eq!(
            (s.received, s.lost, s.gaps, s.dup, s.reorder),
            (10, 0, 0, 0, 0)
        );
        // 10 and 11 lost, 12 arrives; 11 comes late; 12 again is a duplicate.
        s.track(12, 60);
        assert_eq!((s.lost, s.gaps), (2, 1));
        s.track(11, 60);
        assert_eq!((s.received, s.lost, s.reorder), (12, 1, 1));
        s.track(12, 60);
        s.track(11, 60);
        assert_eq!((s.dup, s.received), (2, 12));
        // A jump past the window forgets it; a frame older than the window counts late.
        s.track(1000, 60);
        assert_eq!(s.lost, 1 + 987);
        s.track(13, 60);
        assert_eq!((s.reorder, s.lost), (2, 987));
        assert_eq!(s.bytes, 14 * 60);
    }

    #[test]
    fn every_kth_dropped_gives_exact_loss_and_gaps() {
        let mut s = Stream::default();
        // (The last frame, 10 000 % 7 = 4, arrives: a lost tail leaves no gap to see.)
        let (n, k) = (10_001u64, 7);
        for q in (0..n).filter(|q| q % k != 3) {
            s.track(q, 64);
        }
        let dropped = (0..n).filter(|q| q % k == 3).count() as u64;
        assert_eq!(
            (s.lost, s.gaps, s.received),
            (dropped, dropped, n - dropped)
        );
    }

    #[test]
    fn buckets_cover_the_range_in_order() {
        let mut last = 0;
        for v in (0..100_000u32).chain([u32::MAX - 1, u32::MAX]) {
            let b = lat_bucket(v);
            assert!(b >= last && b < LAT_BUCKETS, "{v} -> {b}");
            let (lo, w) = bucket_range(b);
            assert!(
                lo <= v as u64 && (v as u64) < lo + w,
                "{v} in bucket {b} = {lo}+{w}"
            );
            last = b;
        }
        let mut h = vec![0u64; LAT_BUCKETS];
        for v in 1000..2000u32 {
            h[lat_bucket(v)] += 1;
        }
        let p50 = quantile(&h, 0.5).unwrap();
        assert!((p50 - 1500.0).abs() / 1500.0 < 0.033, "{p50}");
        assert_eq!(quantile(&vec![0; LAT_BUCKETS], 0.5), None);
    }
}
