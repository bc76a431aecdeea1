//! Payload cutting (sans-IO): how a list of byte extents (the elements of an operation) is cut
//! into datagrams, before anything is sent (to validate sizes) and while sending.

/// A run of payload bytes: its length and whether it ends a packet (`end_of_packet`).
pub trait Extent {
    /// Length in bytes.
    fn len(&self) -> u64;
    /// Whether it holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether a datagram (UDP) or push (TCP) ends after it.
    fn ends_packet(&self) -> bool;
}

impl Extent for (u64, bool) {
    fn len(&self) -> u64 {
        self.0
    }
    fn ends_packet(&self) -> bool {
        self.1
    }
}

/// How a byte stream is cut into datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundaries {
    /// Each run of extents up to one that ends a packet is one datagram (the trailing run
    /// without a flag is one too).
    EndOfPacket,
    /// Datagrams of this many bytes (the last of a run shorter), also cut at end-of-packet
    /// flags.
    Size(u64),
}

/// A datagram's place in an extent list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First extent.
    pub seg: usize,
    /// Offset in that extent.
    pub off: u64,
    /// Datagram length in bytes.
    pub len: u64,
}

/// Iterates the datagrams of an extent list without allocating.
#[derive(Debug, Clone)]
pub struct Datagrams<'a, S> {
    segs: &'a [S],
    seg: usize,
    off: u64,
    mode: Boundaries,
}

impl<'a, S: Extent> Datagrams<'a, S> {
    /// Datagrams of `segs` cut by `mode`.
    pub fn new(segs: &'a [S], mode: Boundaries) -> Self {
        Datagrams {
            segs,
            seg: 0,
            off: 0,
            mode,
        }
    }
}

impl<S: Extent> Iterator for Datagrams<'_, S> {
    type Item = Span;

    fn next(&mut self) -> Option<Span> {
        if self.seg >= self.segs.len() {
            return None;
        }
        let start = Span {
            seg: self.seg,
            off: self.off,
            len: 0,
        };
        let limit = match self.mode {
            Boundaries::EndOfPacket => u64::MAX,
            Boundaries::Size(n) => n.max(1),
        };
        let mut len = 0u64;
        while self.seg < self.segs.len() {
            let s = &self.segs[self.seg];
            let avail = s.len() - self.off;
            let take = avail.min(limit - len);
            len += take;
            self.off += take;
            if self.off == s.len() {
                self.seg += 1;
                self.off = 0;
                if s.ends_packet() {
                    break;
                }
            }
            if len == limit {
                break;
            }
        }
        // A run that ends exactly at a limit cut and then finds only empty, unflagged extents
        // does not produce a trailing empty datagram.
        if len == 0
            && !self.segs[start.seg..self.seg]
                .iter()
                .any(|s| s.ends_packet())
        {
            return None;
        }
        Some(Span { len, ..start })
    }
}

/// Calls `f(extent, offset in extent, length)` for each piece of `span`, in order (a datagram
/// may cover several extents).
pub fn for_each_range<'a, S: Extent>(
    segs: &'a [S],
    span: Span,
    mut f: impl FnMut(&'a S, u64, usize),
) {
    let mut seg = span.seg;
    let mut off = span.off;
    let mut left = span.len;
    while left > 0 && seg < segs.len() {
        let take = (segs[seg].len() - off).min(left);
        f(&segs[seg], off, take as usize);
        left -= take;
        seg += 1;
        off = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lens(segs: &[(u64, bool)], mode: Boundaries) -> Vec<u64> {
        Datagrams::new(segs, mode).map(|s| s.len).collect()
    }

    #[test]
    fn eop_groups_runs() {
        let s = [(3, false), (4, true), (5, true), (1, false), (2, false)];
        assert_eq!(lens(&s, Boundaries::EndOfPacket), vec![7, 5, 3]);
    }

    #[test]
    fn eop_empty_datagrams_are_kept() {
        let s = [(0, true), (2, true), (0, true)];
        assert_eq!(lens(&s, Boundaries::EndOfPacket), vec![0, 2, 0]);
        assert_eq!(lens(&[], Boundaries::EndOfPacket), Vec::<u64>::new());
        // Trailing unflagged empty extent: no extra datagram.
        let s = [(2, true), (0, false)];
        assert_eq!(lens(&s, Boundaries::EndOfPacket), vec![2]);
    }

    #[test]
    fn size_cuts_and_respects_eop() {
        let s = [(10, true), (7, false), (3, false)];
        assert_eq!(lens(&s, Boundaries::Size(4)), vec![4, 4, 2, 4, 4, 2]);
        let s = [(8, false)];
        assert_eq!(lens(&s, Boundaries::Size(4)), vec![4, 4]);
    }

    #[test]
    fn ranges_cover_spans() {
        let s = [(3, false), (4, true), (2, false)];
        let mut out = Vec::new();
        for span in Datagrams::new(&s, Boundaries::Size(3)) {
            let mut d = Vec::new();
            for_each_range(&s, span, |e, off, len| {
                let i = s.iter().position(|x| std::ptr::eq(x, e)).unwrap();
                d.push((i, off, len));
            });
            out.push(d);
        }
        assert_eq!(
            out,
            [
                vec![(0, 0, 3)],
                vec![(1, 0, 3)],
                vec![(1, 3, 1)],
                vec![(2, 0, 2)]
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn datagrams_partition_the_stream(
            shape in proptest::collection::vec((0u64..50, proptest::bool::ANY), 0..20),
            size in proptest::option::of(1u64..40),
        ) {
            let mode = size.map_or(Boundaries::EndOfPacket, Boundaries::Size);
            let total: u64 = shape.iter().map(|s| s.0).sum();
            let spans: Vec<Span> = Datagrams::new(&shape, mode).collect();
            proptest::prop_assert_eq!(spans.iter().map(|s| s.len).sum::<u64>(), total);
            if let Some(n) = size {
                proptest::prop_assert!(spans.iter().all(|s| s.len <= n));
            }
            // Every flagged extent ends a datagram: count of flags <= datagrams.
            let flags = shape.iter().filter(|s| s.1).count();
            proptest::prop_assert!(spans.len() >= flags);
        }
    }
}
