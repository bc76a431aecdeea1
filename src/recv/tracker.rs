//! Sans-IO tracking of a chunked datagram stream: sequence numbers (lost, duplicated,
//! reordered), reassembly by offset, the hash of the stream in order, one-way latency.
//!
//! The receiver is a verification tool, so it must stay right when what arrives is hostile:
//! memory is bounded whatever the headers claim ([`super::window`]), each byte of the stream
//! is accepted once and the bytes hashed are the bytes written, datagrams of other flows or
//! outside the stream are counted and ignored, and the stream is complete only when its end
//! marker and every byte it announced arrived.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use sha2::{Digest, Sha256};

use super::window::{Ranges, Refused, Seq, SeqWindow, KEEP_LIMIT};
use super::RecvReport;
use crate::sansio::wire::xsend;

/// Sans-IO tracking of a chunked datagram stream.
pub struct ChunkTracker {
    /// The stream's flow id: as asked, or the first one seen.
    flow: Option<u16>,
    seqs: SeqWindow,
    ranges: Ranges,
    unique: u64,
    hasher: Option<Sha256>,
    out: Option<File>,
    latency: hdrhistogram::Histogram<u64>,
    /// The report being built.
    pub report: RecvReport,
}

impl ChunkTracker {
    /// A tracker; `hash` = compute sha256; `out` = write payload at its offsets.
    pub fn new(hash: bool, out: Option<File>) -> Self {
        ChunkTracker {
            flow: None,
            seqs: SeqWindow::new(),
            ranges: Ranges::default(),
            unique: 0,
            hasher: hash.then(Sha256::new),
            out,
            latency: crate::stats::histogram(),
            report: RecvReport {
                chunked: true,
                ..Default::default()
            },
        }
    }

    /// Track this flow id only (default: the first one seen).
    pub fn only_flow(&mut self, flow: u16) {
        self.flow = Some(flow);
    }

    /// Accept no byte past `bytes` (e.g. `--expect-bytes`): `--out` never grows beyond it.
    pub fn limit_bytes(&mut self, bytes: u64) {
        self.ranges.set_limit(bytes);
    }

    /// Feed one datagram (header included).
    pub fn datagram(&mut self, d: &[u8]) -> io::Result<()> {
        self.datagram_at(d, 0)
    }

    /// Feed one datagram that arrived at `now_ns` (CLOCK_REALTIME; 0 = unknown).
    pub fn datagram_at(&mut self, d: &[u8], now_ns: u64) -> io::Result<()> {
        // Every datagram but end markers, whatever becomes of it.
        self.report.datagrams += 1;
        let Ok(p) = xsend::Packet::new_checked(d) else {
            self.report.malformed += 1;
            return Ok(());
        };
        let Ok(r) = xsend::Repr::parse(&p) else {
            self.report.malformed += 1;
            return Ok(());
        };
        if *self.flow.get_or_insert(r.flow) != r.flow {
            self.report.ignored.other_flow += 1;
            return Ok(());
        }
        if r.is_end() {
            self.report.datagrams -= 1;
            self.end_marker(r.seq, r.offset);
            return Ok(());
        }
        match self.seqs.check(r.seq) {
            Seq::New => {}
            Seq::Duplicate => {
                self.report.duplicates += 1;
                return Ok(());
            }
            Seq::Stale => {
                self.report.ignored.stale += 1;
                return Ok(());
            }
            Seq::Ahead => {
                self.report.ignored.out_of_range += 1;
                return Ok(());
            }
        }
        let payload = p.payload();
        let len = payload.len() as u64;
        match self.ranges.check(r.offset, len) {
            Ok(()) => {}
            Err(Refused::Overlap) => {
                self.report.ignored.overlapping += 1;
                return Ok(());
            }
            Err(Refused::OutOfRange) => {
                self.report.ignored.out_of_range += 1;
                return Ok(());
            }
        }
        // Accepted: exactly these bytes are written and hashed, once.
        if self.seqs.max().is_some_and(|m| r.seq < m) {
            self.report.reordered += 1;
        }
        self.seqs.mark(r.seq);
        self.unique += 1;
        if now_ns > 0 && r.timestamp_ns > 0 {
            crate::stats::record(&mut self.latency, now_ns.saturating_sub(r.timestamp_ns), 1);
        }
        self.report.bytes += len;
        if let Some(f) = &self.out {
            f.write_all_at(payload, r.offset)?;
        }
        let keep = self.hasher.is_some().then_some(payload);
        let hasher = &mut self.hasher;
        self.ranges.accept(r.offset, len, keep, |b| {
            if let Some(h) = hasher.as_mut() {
                h.update(b);
            }
        });
        // Too much waiting for a hole to fill: give up the hash (the stream is still tracked
        // and written; the report says no sha256).
        if self.ranges.kept() > KEEP_LIMIT {
            self.hasher = None;
            self.ranges.drop_kept();
        }
        Ok(())
    }

    /// An end marker: `count` datagrams, `bytes` bytes. The first consistent one counts; one
    /// that contradicts what already arrived (fewer datagrams or bytes than accepted) or an
    /// earlier marker is ignored.
    fn end_marker(&mut self, count: u64, bytes: u64) {
        let plausible = self.seqs.max().is_none_or(|m| count > m)
            && bytes >= self.ranges.end()
            && count >= self.unique;
        match (self.report.expected_datagrams, self.report.expected_bytes) {
            (Some(c), Some(b)) if (c, b) == (count, bytes) => {}
            (None, None) if plausible => {
                self.report.end_marker = true;
                self.report.expected_datagrams = Some(count);
                self.report.expected_bytes = Some(bytes);
                self.ranges.set_limit(bytes);
            }
            _ => self.report.ignored.bad_end_marker += 1,
        }
    }

    /// True once the end marker arrived and every datagram and byte it announced did too.
    pub fn complete(&self) -> bool {
        matches!(
            (self.report.expected_datagrams, self.report.expected_bytes),
            (Some(n), Some(b)) if self.unique == n && self.ranges.contiguous() == b
        )
    }

    /// Close the books.
    pub fn finish(mut self) -> RecvReport {
        let complete = self.complete();
        let expected = self
            .report
            .expected_datagrams
            .unwrap_or(self.seqs.max().map_or(0, |m| m + 1));
        self.report.lost = expected.saturating_sub(self.unique);
        self.report.complete = Some(complete);
        self.report.flow = self.flow;
        // A hash only of a whole stream: without its end marker, nobody can tell.
        self.report.sha256 = match self.hasher {
            Some(h) if complete => Some(hex::encode(h.finalize())),
            _ => None,
        };
        self.report.latency = crate::stats::Percentiles::of(&self.latency);
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    fn dgram(seq: u64, offset: u64, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; xsend::HEADER_LEN];
        xsend::Repr {
            flags: 0,
            flow: 1,
            seq,
            offset,
            timestamp_ns: 0,
        }
        .emit(&mut v);
        v.extend_from_slice(payload);
        v
    }

    fn end(count: u64, bytes: u64) -> Vec<u8> {
        let mut v = vec![0u8; xsend::HEADER_LEN];
        xsend::Repr {
            flags: xsend::FLAG_END,
            flow: 1,
            seq: count,
            offset: bytes,
            timestamp_ns: 0,
        }
        .emit(&mut v);
        v
    }

    fn sha(b: &[u8]) -> String {
        hex::encode(Sha256::digest(b))
    }

    #[test]
    fn in_order_stream() {
        let mut t = ChunkTracker::new(true, None);
        t.datagram(&dgram(0, 0, b"hello ")).unwrap();
        t.datagram(&dgram(1, 6, b"world")).unwrap();
        assert!(!t.complete());
        t.datagram(&end(2, 11)).unwrap();
        assert!(t.complete());
        let r = t.finish();
        assert_eq!(
            (r.bytes, r.datagrams, r.lost, r.duplicates, r.reordered),
            (11, 2, 0, 0, 0)
        );
        assert_eq!(r.sha256.unwrap(), sha(b"hello world"));
    }

    #[test]
    fn reorder_duplicate_and_loss() {
        let mut t = ChunkTracker::new(true, None);
        t.datagram(&dgram(1, 3, b"def")).unwrap();
        t.datagram(&dgram(0, 0, b"abc")).unwrap();
        t.datagram(&dgram(0, 0, b"abc")).unwrap();
        t.datagram(&dgram(2, 6, b"g")).unwrap();
        t.datagram(&end(3, 7)).unwrap();
        let r = t.finish();
        assert_eq!((r.reordered, r.duplicates, r.lost), (1, 1, 0));
        assert_eq!(r.sha256.unwrap(), sha(b"abcdefg"));

        let mut t = ChunkTracker::new(true, None);
        t.datagram(&dgram(0, 0, b"abc")).unwrap();
        t.datagram(&dgram(2, 6, b"g")).unwrap();
        t.datagram(&end(3, 7)).unwrap();
        assert!(!t.complete());
        let r = t.finish();
        assert_eq!(r.lost, 1);
        assert_eq!(r.sha256, None, "no hash for an incomplete stream");
    }

    #[test]
    fn lost_tail_without_end_marker_counts_by_max_seq() {
        let mut t = ChunkTracker::new(false, None);
        t.datagram(&dgram(0, 0, b"a")).unwrap();
        t.datagram(&dgram(3, 3, b"d")).unwrap();
        t.datagram(b"short").unwrap();
        let r = t.finish();
        assert_eq!((r.lost, r.malformed, r.end_marker), (2, 1, false));
    }

    #[test]
    fn one_way_latency_from_header_timestamps() {
        let mut t = ChunkTracker::new(false, None);
        for i in 0..100u64 {
            let mut d = dgram(i, i, b"x");
            xsend::Packet::new_unchecked(&mut d[..]).set_timestamp_ns(1_000_000);
            t.datagram_at(&d, 1_000_000 + 1000 * (i + 1)).unwrap();
        }
        let l = t.finish().latency.unwrap();
        assert_eq!(l.count, 100);
        assert!((49_000..=52_000).contains(&l.p50_ns), "{l:?}");
        assert!(l.max_ns >= 99_000);
    }

    #[test]
    fn reassembles_into_file_by_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out");
        let mut t = ChunkTracker::new(false, Some(File::create(&p).unwrap()));
        t.datagram(&dgram(1, 2, b"cd")).unwrap();
        t.datagram(&dgram(0, 0, b"ab")).unwrap();
        t.finish();
        assert_eq!(std::fs::read(&p).unwrap(), b"abcd");
    }

    fn dgram_flow(flow: u16, seq: u64, offset: u64, payload: &[u8]) -> Vec<u8> {
        let mut v = dgram(seq, offset, payload);
        xsend::Packet::new_unchecked(&mut v[..]).set_flow(flow);
        v
    }

    #[test]
    fn hostile_sequence_numbers_and_offsets_cost_no_memory_and_no_file_growth() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out");
        let mut t = ChunkTracker::new(true, Some(File::create(&p).unwrap()));
        t.datagram(&dgram(0, 0, b"ab")).unwrap();
        t.datagram(&dgram(1 << 33, 2, b"x")).unwrap();
        t.datagram(&dgram(1 << 40, 2, b"x")).unwrap();
        t.datagram(&dgram(u64::MAX, 2, b"x")).unwrap();
        t.datagram(&dgram(1, 1 << 40, b"x")).unwrap();
        t.datagram(&dgram(2, u64::MAX - 1, b"xyz")).unwrap();
        t.datagram(&dgram(1, 2, b"cd")).unwrap();
        t.datagram(&end(2, 4)).unwrap();
        assert!(t.complete());
        let r = t.finish();
        assert_eq!(r.ignored.out_of_range, 5);
        assert_eq!(r.sha256.unwrap(), sha(b"abcd"));
        assert_eq!(
            std::fs::metadata(&p).unwrap().len(),
            4,
            "--out stays in the stream"
        );
    }

    #[test]
    fn the_first_bytes_for_an_offset_win_and_are_what_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out");
        let mut t = ChunkTracker::new(true, Some(File::create(&p).unwrap()));
        t.datagram(&dgram(0, 0, b"good")).unwrap();
        t.datagram(&dgram(1, 0, b"evil")).unwrap();
        t.datagram(&dgram(2, 2, b"EVIL")).unwrap();
        t.datagram(&dgram(1, 4, b"!")).unwrap();
        t.datagram(&end(2, 5)).unwrap();
        let r = t.finish();
        assert_eq!(r.ignored.overlapping, 2);
        assert_eq!(r.complete, Some(true));
        assert_eq!(r.sha256.unwrap(), sha(b"good!"));
        assert_eq!(std::fs::read(&p).unwrap(), b"good!", "hashed = written");
    }

    #[test]
    fn a_missing_tail_or_a_spoofed_end_marker_is_not_complete() {
        let mut t = ChunkTracker::new(true, None);
        t.datagram(&dgram(0, 0, b"abc")).unwrap();
        let r = t.finish();
        assert_eq!((r.complete, r.sha256), (Some(false), None), "no end marker");

        let mut t = ChunkTracker::new(true, None);
        t.datagram(&dgram(0, 0, b"abc")).unwrap();
        t.datagram(&dgram(1, 3, b"def")).unwrap();
        t.datagram(&end(1, 3)).unwrap(); // fewer than already arrived
        assert!(!t.complete());
        t.datagram(&dgram_flow(9, 5, 6, b"")).unwrap();
        t.datagram(&dgram_flow(9, 2, 6, b"")).unwrap();
        let mut e = end(2, 6);
        xsend::Packet::new_unchecked(&mut e[..]).set_flow(9);
        t.datagram(&e).unwrap(); // another flow's marker
        assert!(!t.complete());
        t.datagram(&end(2, 6)).unwrap();
        assert!(t.complete());
        t.datagram(&end(3, 9)).unwrap(); // contradicts the first marker
        let r = t.finish();
        assert_eq!(r.ignored.bad_end_marker, 2);
        assert_eq!(r.ignored.other_flow, 3);
        assert_eq!(r.flow, Some(1));
        assert_eq!(r.sha256.unwrap(), sha(b"abcdef"));
    }

    #[test]
    fn an_asked_flow_wins_over_an_earlier_stray_one() {
        let mut t = ChunkTracker::new(true, None);
        t.only_flow(1);
        t.datagram(&dgram_flow(7, 0, 0, b"old run")).unwrap();
        t.datagram(&dgram(0, 0, b"new")).unwrap();
        t.datagram(&end(1, 3)).unwrap();
        let r = t.finish();
        assert_eq!(
            (r.flow, r.complete, r.ignored.other_flow),
            (Some(1), Some(true), 1)
        );
        assert_eq!(r.sha256.unwrap(), sha(b"new"));
    }

    #[test]
    fn flows_are_apart_in_duplicate_detection() {
        let mut t = ChunkTracker::new(false, None);
        t.datagram(&dgram(0, 0, b"a")).unwrap();
        t.datagram(&dgram_flow(2, 1, 1, b"b")).unwrap();
        t.datagram(&dgram(1, 1, b"b")).unwrap();
        t.datagram(&end(2, 2)).unwrap();
        let r = t.finish();
        assert_eq!((r.duplicates, r.ignored.other_flow, r.lost), (0, 1, 0));
        assert_eq!(r.complete, Some(true));
    }
}
