//! The SACK scoreboard: sorted, disjoint SACKed ranges above `una` (stream offsets), with a
//! fixed capacity.

/// Most ranges kept (the lowest: they decide what to retransmit next).
const CAP: usize = 64;

/// SACKed ranges `[start, end)` in stream offsets.
#[derive(Debug, Clone)]
pub(super) struct Scoreboard {
    ranges: Vec<(u64, u64)>,
}

impl Default for Scoreboard {
    fn default() -> Self {
        Scoreboard {
            ranges: Vec::with_capacity(CAP),
        }
    }
}

impl Scoreboard {
    /// Forget everything (after an RTO).
    pub(super) fn clear(&mut self) {
        self.ranges.clear();
    }

    /// Record `[a, b)` as SACKed, merging overlapping and adjacent ranges.
    pub(super) fn add(&mut self, mut a: u64, mut b: u64) {
        if a >= b {
            return;
        }
        let mut i = 0;
        while i < self.ranges.len() {
            let (x, y) = self.ranges[i];
            if y < a || x > b {
                i += 1;
                continue;
            }
            a = a.min(x);
            b = b.max(y);
            self.ranges.remove(i);
        }
        let pos = self.ranges.partition_point(|r| r.0 < a);
        if self.ranges.len() == CAP {
            if pos == CAP {
                return;
            }
            self.ranges.pop();
        }
        self.ranges.insert(pos, (a, b));
    }

    /// Drop what `una` now covers.
    pub(super) fn advance(&mut self, una: u64) {
        self.ranges.retain(|r| r.1 > una);
        if let Some(f) = self.ranges.first_mut() {
            f.0 = f.0.max(una);
        }
    }

    /// End of the highest SACKed range.
    pub(super) fn highest(&self) -> Option<u64> {
        self.ranges.last().map(|r| r.1)
    }

    /// Bytes SACKed.
    pub(super) fn sacked_bytes(&self) -> u64 {
        self.ranges.iter().map(|r| r.1 - r.0).sum()
    }

    /// The SACKed range holding `off`, if any.
    pub(super) fn range_of(&self, off: u64) -> Option<(u64, u64)> {
        self.ranges
            .iter()
            .copied()
            .find(|r| r.0 <= off && off < r.1)
    }

    /// First un-SACKed byte at or after `from`, below the highest SACKed byte, with the length
    /// of that hole.
    pub(super) fn next_hole(&self, from: u64) -> Option<(u64, u64)> {
        let mut at = from;
        for &(x, y) in &self.ranges {
            if y <= at {
                continue;
            }
            if x > at {
                return Some((at, x - at));
            }
            at = y;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_advances_and_finds_holes() {
        let mut s = Scoreboard::default();
        s.add(10, 20);
        s.add(30, 40);
        s.add(20, 25); // adjacent: merged with [10, 20)
        assert_eq!(s.ranges, vec![(10, 25), (30, 40)]);
        assert_eq!(s.sacked_bytes(), 25);
        assert_eq!(s.highest(), Some(40));
        assert_eq!(s.next_hole(0), Some((0, 10)));
        assert_eq!(s.next_hole(12), Some((25, 5)));
        assert_eq!(s.next_hole(35), None);
        assert_eq!(s.range_of(32), Some((30, 40)));
        assert_eq!(s.range_of(27), None);
        s.advance(33);
        assert_eq!(s.ranges, vec![(33, 40)]);
        for i in 0..100u64 {
            s.add(100 + 10 * i, 105 + 10 * i);
        }
        assert_eq!(s.ranges.len(), CAP, "capacity is fixed");
        assert_eq!(s.ranges[0], (33, 40), "the lowest ranges are kept");
    }
}
