//! Bounded bookkeeping for a chunked stream that may be under attack: sequence numbers in a
//! sliding window ([`SeqWindow`]) and byte ranges accepted exactly once ([`Ranges`]).
//!
//! Nothing here is sized by what a sender claims: the sequence window is a fixed bitmap that
//! slides with the highest sequence number seen, and the byte ranges accepted ahead of the
//! furthest byte accepted are limited in span, the bytes kept for in-order hashing in size,
//! and the ranges held in count (adjacent ranges without kept bytes merge, so a stream with a
//! few holes holds a few ranges).

use std::collections::BTreeMap;

/// Sequence numbers tracked at once: a sequence number more than this far ahead of the
/// highest one seen (or, for the first datagram, past this) is not part of the stream.
pub(crate) const SEQ_WINDOW: u64 = 1 << 20;
/// Bytes a datagram may lie ahead of the furthest byte accepted so far.
pub(crate) const BYTE_WINDOW: u64 = 256 << 20;
/// Out-of-order bytes kept for in-order hashing before the hash is given up.
pub(crate) const KEEP_LIMIT: u64 = 256 << 20;
/// Out-of-order ranges held at once.
pub(crate) const MAX_PENDING: usize = 1 << 18;

/// What a sequence number is to the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seq {
    /// Not seen before.
    New,
    /// Seen before.
    Duplicate,
    /// Below the window: too old to tell (ignored).
    Stale,
    /// Too far ahead to be part of the stream (ignored).
    Ahead,
}

/// A sliding bitmap of sequence numbers `[base, base + SEQ_WINDOW)`.
#[derive(Debug)]
pub(crate) struct SeqWindow {
    base: u64,
    bits: Vec<u64>,
    max: Option<u64>,
}

impl SeqWindow {
    pub(crate) fn new() -> Self {
        SeqWindow {
            base: 0,
            bits: vec![0; (SEQ_WINDOW / 64) as usize],
            max: None,
        }
    }

    /// The highest sequence number marked so far.
    pub(crate) fn max(&self) -> Option<u64> {
        self.max
    }

    /// Classify `seq` without marking it.
    pub(crate) fn check(&self, seq: u64) -> Seq {
        let reach = self
            .max
            .map_or(SEQ_WINDOW, |m| m.saturating_add(SEQ_WINDOW));
        if seq >= reach {
            return Seq::Ahead;
        }
        if seq < self.base {
            return Seq::Stale;
        }
        if seq < self.base + SEQ_WINDOW && self.bit(seq) {
            Seq::Duplicate
        } else {
            Seq::New
        }
    }

    /// Mark `seq` (which [`SeqWindow::check`] called new), sliding the window up to it.
    pub(crate) fn mark(&mut self, seq: u64) {
        debug_assert_eq!(self.check(seq), Seq::New);
        if seq >= self.base + SEQ_WINDOW {
            let base = seq + 1 - SEQ_WINDOW;
            if base - self.base >= SEQ_WINDOW {
                self.bits.fill(0);
            } else {
                let mut s = self.base;
                while s < base {
                    if s % 64 == 0 && s + 64 <= base {
                        // A whole word at a time: a slide costs at most SEQ_WINDOW / 64 steps.
                        self.bits[((s % SEQ_WINDOW) / 64) as usize] = 0;
                        s += 64;
                    } else {
                        self.set(s, false);
                        s += 1;
                    }
                }
            }
            self.base = base;
        }
        self.set(seq, true);
        self.max = Some(self.max.map_or(seq, |m| m.max(seq)));
    }

    fn bit(&self, seq: u64) -> bool {
        let i = seq % SEQ_WINDOW;
        self.bits[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, seq: u64, on: bool) {
        let i = seq % SEQ_WINDOW;
        let w = &mut self.bits[(i / 64) as usize];
        if on {
            *w |= 1 << (i % 64);
        } else {
            *w &= !(1 << (i % 64));
        }
    }
}

/// Why a byte range was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// It overlaps bytes already accepted (the first bytes for an offset win).
    Overlap,
    /// It lies past the expected end, too far ahead, or too many ranges are pending.
    OutOfRange,
}

/// The byte ranges of a stream accepted so far: a contiguous prefix `[0, next)` plus
/// ranges ahead of it, each byte accepted at most once.
#[derive(Debug, Default)]
pub(crate) struct Ranges {
    next: u64,
    /// Accepted ranges past `next`: offset → (length, the bytes if the caller keeps them).
    ahead: BTreeMap<u64, (u64, Vec<u8>)>,
    /// Bytes kept in `ahead`.
    kept: u64,
    /// The stream's announced size, once known: nothing is accepted past it.
    limit: Option<u64>,
}

impl Ranges {
    /// The length of the contiguous prefix.
    pub(crate) fn contiguous(&self) -> u64 {
        self.next
    }

    /// The end of the furthest byte accepted.
    pub(crate) fn end(&self) -> u64 {
        self.ahead
            .last_key_value()
            .map_or(self.next, |(o, (l, _))| o + l)
    }

    /// Out-of-order bytes kept for the caller.
    pub(crate) fn kept(&self) -> u64 {
        self.kept
    }

    /// Forget the bytes kept (the caller gives up in-order hashing); ranges without bytes
    /// merge from now on.
    pub(crate) fn drop_kept(&mut self) {
        let ranges: Vec<(u64, u64)> = self.ahead.iter().map(|(o, (l, _))| (*o, *l)).collect();
        self.ahead.clear();
        self.kept = 0;
        for (o, l) in ranges {
            self.insert_merged(o, l);
        }
    }

    /// Insert a range without bytes, merged with byte-less neighbours it touches.
    fn insert_merged(&mut self, mut off: u64, mut len: u64) {
        if let Some((&o, &(l, ref b))) = self.ahead.range(..off).next_back() {
            if o + l == off && b.is_empty() {
                self.ahead.remove(&o);
                off = o;
                len += l;
            }
        }
        if let Some((&o, (l, b))) = self.ahead.range(off + len..).next() {
            if o == off + len && b.is_empty() {
                len += *l;
                self.ahead.remove(&o);
            }
        }
        self.ahead.insert(off, (len, Vec::new()));
    }

    /// Refuse anything past `limit` from now on.
    pub(crate) fn set_limit(&mut self, limit: u64) {
        self.limit = Some(limit);
    }

    /// Whether `[off, off + len)` may be accepted.
    pub(crate) fn check(&self, off: u64, len: u64) -> Result<(), Refused> {
        let end = off.checked_add(len).ok_or(Refused::OutOfRange)?;
        if self.limit.is_some_and(|l| end > l) || end > self.end().saturating_add(BYTE_WINDOW) {
            return Err(Refused::OutOfRange);
        }
        if len == 0 {
            return Ok(());
        }
        if off < self.next {
            return Err(Refused::Overlap);
        }
        if let Some((o, (l, _))) = self.ahead.range(..=off).next_back() {
            if o + l > off {
                return Err(Refused::Overlap);
            }
        }
        if let Some((o, _)) = self.ahead.range(off..).next() {
            if *o < end {
                return Err(Refused::Overlap);
            }
        }
        if off > self.next && self.ahead.len() >= MAX_PENDING {
            return Err(Refused::OutOfRange);
        }
        Ok(())
    }

    /// Accept `[off, off + len)` ([`Ranges::check`] passed). `keep` holds its bytes if the
    /// caller wants them back in order; `in_order` gets every range (with its bytes, if
    /// kept) that became part of the contiguous prefix, in order.
    pub(crate) fn accept(
        &mut self,
        off: u64,
        len: u64,
        keep: Option<&[u8]>,
        mut in_order: impl FnMut(&[u8]),
    ) {
        if len == 0 {
            return;
        }
        if off != self.next {
            match keep {
                Some(b) => {
                    self.ahead.insert(off, (len, b.to_vec()));
                    self.kept += len;
                }
                None => self.insert_merged(off, len),
            }
            return;
        }
        in_order(keep.unwrap_or(&[]));
        self.next += len;
        while let Some(e) = self.ahead.first_entry() {
            if *e.key() != self.next {
                break;
            }
            let (l, bytes) = e.remove();
            self.kept -= bytes.len() as u64;
            in_order(&bytes);
            self.next += l;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_slides_and_stays_bounded() {
        let mut w = SeqWindow::new();
        assert_eq!(w.check(SEQ_WINDOW), Seq::Ahead, "first datagram far out");
        assert_eq!(w.check(1 << 40), Seq::Ahead);
        w.mark(5);
        assert_eq!(w.check(5), Seq::Duplicate);
        assert_eq!(w.check(4), Seq::New);
        w.mark(SEQ_WINDOW + 3);
        assert_eq!(w.check(3), Seq::Stale);
        assert_eq!(w.check(5), Seq::Duplicate, "still inside the window");
        assert_eq!(w.check(SEQ_WINDOW + 3), Seq::Duplicate);
        assert_eq!(w.check(2 * SEQ_WINDOW + 3), Seq::Ahead);
        w.mark(2 * SEQ_WINDOW + 2);
        assert_eq!(w.max(), Some(2 * SEQ_WINDOW + 2));
        assert_eq!(w.check(SEQ_WINDOW + 3), Seq::Duplicate);
        assert_eq!(w.bits.len() as u64, SEQ_WINDOW / 64);
    }

    #[test]
    fn each_byte_is_accepted_once() {
        let mut r = Ranges::default();
        let mut got = Vec::new();
        r.check(4, 4).unwrap();
        r.accept(4, 4, Some(b"efgh"), |b| got.extend_from_slice(b));
        assert!(got.is_empty());
        assert_eq!(r.check(4, 4), Err(Refused::Overlap));
        assert_eq!(r.check(2, 4), Err(Refused::Overlap));
        assert_eq!(r.check(6, 1), Err(Refused::Overlap));
        assert_eq!(r.check(7, 3), Err(Refused::Overlap));
        r.check(0, 4).unwrap();
        r.accept(0, 4, Some(b"abcd"), |b| got.extend_from_slice(b));
        assert_eq!(got, b"abcdefgh");
        assert_eq!((r.contiguous(), r.end()), (8, 8));
        assert_eq!(r.check(0, 1), Err(Refused::Overlap));
        assert_eq!(r.check(u64::MAX, 2), Err(Refused::OutOfRange));
        assert_eq!(r.check(1 << 40, 1), Err(Refused::OutOfRange));
        r.set_limit(10);
        assert_eq!(r.check(8, 3), Err(Refused::OutOfRange));
        r.check(8, 2).unwrap();
    }
}

#[cfg(test)]
mod more_tests {
    use super::*;

    #[test]
    fn a_hole_does_not_stop_the_stream_and_ranges_merge() {
        let mut r = Ranges::default();
        // The first 1000 bytes are lost; 1 GiB follows in 1 MiB pieces, bytes not kept.
        let mut off = 1000u64;
        while off < (1 << 30) {
            r.check(off, 1 << 20).unwrap();
            r.accept(off, 1 << 20, None, |_| {});
            off += 1 << 20;
        }
        assert_eq!(r.ahead.len(), 1, "one merged range after the hole");
        r.check(0, 1000).unwrap();
        r.accept(0, 1000, None, |_| {});
        assert_eq!(r.contiguous(), off);
        // Kept bytes, then given up: they merge too.
        let mut r = Ranges::default();
        r.accept(10, 5, Some(b"hello"), |_| {});
        r.accept(15, 5, Some(b"world"), |_| {});
        assert_eq!((r.kept(), r.ahead.len()), (10, 2));
        r.drop_kept();
        assert_eq!((r.kept(), r.ahead.len()), (0, 1));
    }
}
