//! When each packet of a replayed capture is due (sans-IO: the caller measures time).
//!
//! The schedule is open-loop, like the generator's [`super::pacing::Pacer`]: a packet's due
//! time follows from the capture (or the asked rate) and the start, never from when the
//! previous packet really left, so a late packet is sent at once and the ones after it are
//! not shifted (tcpreplay schedules each packet from the one before, and drifts).
//!
//! - [`Timing::Original`]: packet `i` of loop `k` is due at `loop_start(k) + (ts_i - ts_0) /
//!   multiplier`; loop `k` starts at `k × period / multiplier`, the period being the
//!   capture's span (last - first timestamp) plus one mean gap between its packets (so the
//!   last packet of a loop and the first of the next are not due together), or, with a loop
//!   gap, that long after the previous loop's last packet was due.
//! - [`Timing::Pps`] / [`Timing::Mbps`]: by packet count / by bits before the packet, over
//!   all loops (plus the gaps).
//! - [`Timing::Topspeed`]: nothing is due; as fast as the device takes them.

/// How packets are timed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Timing {
    /// The capture's own timestamps, sped up by `multiplier` (1 = as captured).
    Original {
        /// Speed-up factor (> 0).
        multiplier: f64,
    },
    /// A fixed packet rate.
    Pps(f64),
    /// A fixed bit rate (frame bytes × 8), in Mbit/s.
    Mbps(f64),
    /// As fast as possible.
    Topspeed,
}

/// The schedule of one replay.
#[derive(Debug, Clone)]
pub struct Schedule {
    timing: Timing,
    /// First and last timestamp of the capture (ns).
    first_ts: u64,
    span: u64,
    loop_gap: Option<u64>,
    /// Start of the current loop (original timing), or the gaps so far (rates).
    base: u64,
    loop_index: u64,
    packets: u64,
    bits: u128,
    last_due: u64,
}

impl Schedule {
    /// A schedule for a capture of `packets` whose timestamps run from `first_ts` to
    /// `last_ts` (ns); `loop_gap` (ns): loops back to back with this gap instead of at
    /// multiples of the capture's period.
    pub fn new(
        timing: Timing,
        packets: u64,
        first_ts: u64,
        last_ts: u64,
        loop_gap: Option<u64>,
    ) -> Self {
        let span = last_ts.saturating_sub(first_ts);
        Schedule {
            timing,
            first_ts,
            span: span + if packets > 1 { span / (packets - 1) } else { 0 },
            loop_gap,
            base: 0,
            loop_index: 0,
            packets: 0,
            bits: 0,
            last_due: 0,
        }
    }

    /// False at top speed (nothing is ever due).
    pub fn is_timed(&self) -> bool {
        self.timing != Timing::Topspeed
    }

    fn scaled(&self, ns: u64) -> u64 {
        match self.timing {
            Timing::Original { multiplier } => (ns as f64 / multiplier) as u64,
            _ => ns,
        }
    }

    /// Loop `k` (0, 1, ...) begins.
    pub fn start_loop(&mut self, k: u64) {
        self.loop_index = k;
        if k == 0 {
            return;
        }
        match (self.timing, self.loop_gap) {
            (Timing::Original { .. }, None) => self.base = self.scaled(self.span) * k,
            (Timing::Original { .. }, Some(g)) => self.base = self.last_due + g,
            (_, Some(g)) => self.base += g,
            _ => {}
        }
    }

    /// When the next packet, captured at `ts` and `len` bytes long, is due (ns from the
    /// start); `None` at top speed.
    pub fn due_ns(&mut self, ts: u64, len: usize) -> Option<u64> {
        let due = match self.timing {
            Timing::Topspeed => return None,
            Timing::Original { .. } => self.base + self.scaled(ts.saturating_sub(self.first_ts)),
            Timing::Pps(pps) => self.base + (self.packets as f64 * 1e9 / pps) as u64,
            Timing::Mbps(mbps) => self.base + (self.bits as f64 * 1e3 / mbps) as u64,
        };
        self.packets += 1;
        self.bits += len as u128 * 8;
        self.last_due = due;
        Some(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_timing_loops_at_multiples_of_the_span_or_after_a_gap() {
        let ts = [1_000, 11_000, 1_001_000];
        let mut s = Schedule::new(
            Timing::Original { multiplier: 2.0 },
            3,
            1_000,
            1_001_000,
            None,
        );
        let mut got = vec![];
        for k in 0..2 {
            s.start_loop(k);
            got.extend(ts.iter().map(|&t| s.due_ns(t, 100).unwrap()));
        }
        // Period: the span (1 ms) plus the mean gap (0.5 ms), halved by the multiplier.
        assert_eq!(got, [0, 5_000, 500_000, 750_000, 755_000, 1_250_000]);
        let mut s = Schedule::new(
            Timing::Original { multiplier: 1.0 },
            3,
            1_000,
            1_001_000,
            Some(7),
        );
        s.start_loop(0);
        for &t in &ts {
            let _ = s.due_ns(t, 1);
        }
        s.start_loop(1);
        assert_eq!(s.due_ns(1_000, 1), Some(1_000_007));
    }

    #[test]
    fn rates_count_over_all_loops() {
        let mut s = Schedule::new(Timing::Pps(1000.0), 2, 0, 0, None);
        assert_eq!(
            (s.due_ns(5, 64), s.due_ns(9, 64)),
            (Some(0), Some(1_000_000))
        );
        s.start_loop(1);
        assert_eq!(s.due_ns(5, 64), Some(2_000_000));
        // 1000-byte frames at 8 Mbit/s: one per millisecond.
        let mut s = Schedule::new(Timing::Mbps(8.0), 2, 0, 0, Some(10));
        assert_eq!(s.due_ns(0, 1000), Some(0));
        assert_eq!(s.due_ns(0, 1000), Some(1_000_000));
        s.start_loop(1);
        assert_eq!(s.due_ns(0, 1000), Some(2_000_010));
        let mut s = Schedule::new(Timing::Topspeed, 1, 0, 9, None);
        assert_eq!(s.due_ns(3, 1), None);
    }
}
