//! Sans-IO tracking of a chunked datagram stream: sequence numbers (lost, duplicated,
//! reordered), reassembly by offset, the hash of the stream in order, one-way latency.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use sha2::{Digest, Sha256};

use super::RecvReport;
use crate::sansio::wire::xsend;

/// Most out-of-order bytes held for in-order hashing before giving up the hash.
const REORDER_LIMIT: usize = 256 << 20;

/// Sans-IO tracking of a chunked datagram stream.
pub struct ChunkTracker {
    seen: Vec<u64>,
    max_seq: Option<u64>,
    unique: u64,
    hasher: Option<Sha256>,
    next_offset: u64,
    pending: BTreeMap<u64, Vec<u8>>,
    pending_bytes: usize,
    out: Option<File>,
    latency: hdrhistogram::Histogram<u64>,
    /// The report being built.
    pub report: RecvReport,
}

impl ChunkTracker {
    /// A tracker; `hash` = compute sha256; `out` = write payload at its offsets.
    pub fn new(hash: bool, out: Option<File>) -> Self {
        ChunkTracker {
            seen: Vec::new(),
            max_seq: None,
            unique: 0,
            hasher: hash.then(Sha256::new),
            next_offset: 0,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            out,
            latency: crate::stats::histogram(),
            report: RecvReport {
                chunked: true,
                ..Default::default()
            },
        }
    }

    fn test_and_set(&mut self, seq: u64) -> bool {
        let (w, b) = ((seq / 64) as usize, seq % 64);
        if w >= self.seen.len() {
            self.seen.resize(w + 1, 0);
        }
        let was = self.seen[w] & (1 << b) != 0;
        self.seen[w] |= 1 << b;
        was
    }

    /// Feed one datagram (header included).
    pub fn datagram(&mut self, d: &[u8]) -> io::Result<()> {
        self.datagram_at(d, 0)
    }

    /// Feed one datagram that arrived at `now_ns` (CLOCK_REALTIME; 0 = unknown).
    pub fn datagram_at(&mut self, d: &[u8], now_ns: u64) -> io::Result<()> {
        self.report.datagrams += 1;
        let Ok(p) = xsend::Packet::new_checked(d) else {
            self.report.malformed += 1;
            return Ok(());
        };
        let Ok(r) = xsend::Repr::parse(&p) else {
            self.report.malformed += 1;
            return Ok(());
        };
        if r.is_end() {
            self.report.datagrams -= 1;
            self.report.end_marker = true;
            self.report.expected_datagrams = Some(r.seq);
            self.report.expected_bytes = Some(r.offset);
            return Ok(());
        }
        if r.seq > (1 << 40) {
            self.report.malformed += 1;
            return Ok(());
        }
        if self.test_and_set(r.seq) {
            self.report.duplicates += 1;
            return Ok(());
        }
        self.unique += 1;
        if now_ns > 0 && r.timestamp_ns > 0 {
            crate::stats::record(&mut self.latency, now_ns.saturating_sub(r.timestamp_ns), 1);
        }
        match self.max_seq {
            Some(m) if r.seq < m => self.report.reordered += 1,
            _ => self.max_seq = Some(r.seq),
        }
        let payload = p.payload();
        self.report.bytes += payload.len() as u64;
        if let Some(f) = &self.out {
            f.write_all_at(payload, r.offset)?;
        }
        if self.hasher.is_some() {
            self.hash_at(r.offset, payload);
        }
        Ok(())
    }

    fn hash_at(&mut self, offset: u64, payload: &[u8]) {
        let Some(h) = self.hasher.as_mut() else {
            return;
        };
        if offset == self.next_offset {
            h.update(payload);
            self.next_offset += payload.len() as u64;
            while let Some(e) = self.pending.first_entry() {
                if *e.key() != self.next_offset {
                    break;
                }
                let v = e.remove();
                self.pending_bytes -= v.len();
                h.update(&v);
                self.next_offset += v.len() as u64;
            }
        } else if offset > self.next_offset {
            self.pending_bytes += payload.len();
            if self.pending_bytes > REORDER_LIMIT {
                self.hasher = None;
                self.pending.clear();
            } else {
                self.pending.insert(offset, payload.to_vec());
            }
        }
    }

    /// True once the end marker arrived and every announced datagram was seen.
    pub fn complete(&self) -> bool {
        matches!(self.report.expected_datagrams, Some(n) if self.unique >= n)
    }

    /// Close the books.
    pub fn finish(mut self) -> RecvReport {
        let expected = self
            .report
            .expected_datagrams
            .unwrap_or(self.max_seq.map_or(0, |m| m + 1));
        self.report.lost = expected.saturating_sub(self.unique);
        let whole = self.report.lost == 0
            && self.pending.is_empty()
            && self
                .report
                .expected_bytes
                .is_none_or(|b| b == self.next_offset);
        self.report.sha256 = match self.hasher {
            Some(h) if whole => Some(hex::encode(h.finalize())),
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
}
