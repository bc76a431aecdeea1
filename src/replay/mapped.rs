//! Legacy pcap read in place from a read-only mapping: no `read(2)` into a buffer, no buffer
//! shifting; each record's bytes are handed out where they lie and copied once, by the
//! replay, into a frame or a ring record. Pages already read are released every
//! [`RELEASE_EVERY`] bytes, so the resident size stays flat whatever the capture's size.
//! pcapng (and whatever is not a legacy Ethernet pcap) goes to the streaming reader
//! ([`super::reader`]), which also does the first, checking pass.

use std::path::{Path, PathBuf};

use super::reader::{at, CaptureReader};
use crate::engine::replay::{Record, Records};
use crate::error::Result;
use crate::payload::MappedFile;

/// Legacy pcap file header and record header sizes.
const FILE_HDR: usize = 24;
const REC_HDR: usize = 16;
/// Bytes read between two releases of the pages behind.
const RELEASE_EVERY: usize = 32 << 20;
/// `LINKTYPE_ETHERNET`.
const ETHERNET: u32 = 1;

/// A legacy pcap file read from its mapping.
pub(crate) struct MappedPcap {
    path: PathBuf,
    file: MappedFile,
    /// Offset of the next record header.
    pos: usize,
    /// Timestamps in ns (else µs), fields big-endian.
    nanos: bool,
    big_endian: bool,
    snaplen: u32,
    /// Records read in this pass (for messages).
    index: u64,
    /// Pages before this offset were released.
    released: usize,
}

impl MappedPcap {
    /// `Ok(None)` when `path` is not a legacy Ethernet pcap file.
    pub(crate) fn open(path: &Path) -> Result<Option<Self>> {
        let file = MappedFile::open(path)?;
        let b = file.bytes();
        let Some(h) = b.get(..FILE_HDR) else {
            return Ok(None);
        };
        let magic = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let (nanos, big_endian) = match magic {
            0xa1b2_c3d4 => (false, false),
            0xa1b2_3c4d => (true, false),
            0xd4c3_b2a1 => (false, true),
            0x4d3c_b2a1 => (true, true),
            _ => return Ok(None),
        };
        let word = |o: usize| read_u32(h, o, big_endian);
        // The top bits of the link type field may carry FCS information.
        if word(20) & 0x0fff_ffff != ETHERNET {
            return Ok(None);
        }
        Ok(Some(MappedPcap {
            path: path.to_path_buf(),
            snaplen: word(16),
            file,
            pos: FILE_HDR,
            nanos,
            big_endian,
            index: 0,
            released: 0,
        }))
    }
}

fn read_u32(b: &[u8], o: usize, big_endian: bool) -> u32 {
    let w = [b[o], b[o + 1], b[o + 2], b[o + 3]];
    if big_endian {
        u32::from_be_bytes(w)
    } else {
        u32::from_le_bytes(w)
    }
}

impl Records for MappedPcap {
    fn next_record(&mut self) -> Result<Option<Record<'_>>> {
        if self.file.read_fault() {
            return Err(self.file.truncated(self.pos as u64));
        }
        let b = self.file.bytes();
        if self.pos >= b.len() {
            return Ok(None);
        }
        let index = self.index;
        self.index += 1;
        let Some(h) = b.get(self.pos..self.pos + REC_HDR) else {
            return Err(at(
                &self.path,
                index,
                "truncated: the file ends inside its header".into(),
            ));
        };
        let word = |o: usize| read_u32(h, o, self.big_endian);
        let (sec, frac, caplen) = (word(0) as u64, word(4) as u64, word(8) as usize);
        let start = self.pos + REC_HDR;
        let Some(data) = b.get(start..start + caplen) else {
            return Err(at(
                &self.path,
                index,
                format!(
                    "truncated: {caplen} bytes announced, {} left in the file",
                    b.len() - start
                ),
            ));
        };
        if self.snaplen > 0 && caplen > self.snaplen as usize {
            return Err(at(
                &self.path,
                index,
                format!(
                    "{caplen} bytes, longer than the snap length {}",
                    self.snaplen
                ),
            ));
        }
        self.pos = start + caplen;
        if self.pos - self.released >= RELEASE_EVERY {
            // Everything before this record has been copied out.
            let upto = self.pos - caplen - REC_HDR;
            self.file
                .release(self.released as u64, (upto - self.released) as u64);
            self.released = upto;
        }
        let ts_ns = sec * 1_000_000_000 + frac * if self.nanos { 1 } else { 1000 };
        Ok(Some(Record { ts_ns, data }))
    }

    fn rewind(&mut self) -> Result<()> {
        self.pos = FILE_HDR;
        self.index = 0;
        self.released = 0;
        Ok(())
    }
}

/// The records of a capture for sending: in place from a mapping for legacy pcap, else
/// streamed.
pub(crate) enum Captured {
    Mapped(MappedPcap),
    Streamed(CaptureReader),
}

impl Captured {
    /// Open `path` (already checked by a first pass) for sending.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        Ok(match MappedPcap::open(path)? {
            Some(m) => Captured::Mapped(m),
            None => Captured::Streamed(CaptureReader::open(path)?),
        })
    }
}

impl Records for Captured {
    fn next_record(&mut self) -> Result<Option<Record<'_>>> {
        match self {
            Captured::Mapped(m) => m.next_record(),
            Captured::Streamed(s) => s.next_record(),
        }
    }

    fn rewind(&mut self) -> Result<()> {
        match self {
            Captured::Mapped(m) => m.rewind(),
            Captured::Streamed(s) => s.rewind(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A legacy pcap of `frames` (ts s, frac, bytes), in either byte order and unit.
    fn pcap(big_endian: bool, nanos: bool, snaplen: u32, frames: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let w = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut b = Vec::new();
        b.extend(w(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
        b.extend(if big_endian {
            [0, 2, 0, 4]
        } else {
            [2, 0, 4, 0]
        });
        b.extend([0u8; 8]);
        b.extend(w(snaplen));
        b.extend(w(ETHERNET));
        for (s, f, d) in frames {
            for v in [*s, *f, d.len() as u32, d.len() as u32] {
                b.extend(w(v));
            }
            b.extend(*d);
        }
        b
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<(u64, Vec<u8>)>> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.pcap");
        std::fs::write(&p, bytes).unwrap();
        let mut m = MappedPcap::open(&p)?.expect("a legacy pcap");
        let mut out = Vec::new();
        for _ in 0..2 {
            // Twice: rewinding gives the same records again.
            m.rewind()?;
            out.clear();
            while let Some(r) = m.next_record()? {
                out.push((r.ts_ns, r.data.to_vec()));
            }
        }
        Ok(out)
    }

    #[test]
    fn both_byte_orders_and_units() {
        let frames: &[(u32, u32, &[u8])] = &[(1, 5, b"abcdefghijklmn"), (2, 7, b"xyz")];
        for be in [false, true] {
            let us = read_all(&pcap(be, false, 65535, frames)).unwrap();
            assert_eq!(us[0], (1_000_005_000, b"abcdefghijklmn".to_vec()));
            assert_eq!(us[1], (2_000_007_000, b"xyz".to_vec()));
            let ns = read_all(&pcap(be, true, 65535, frames)).unwrap();
            assert_eq!((ns[0].0, ns[1].0), (1_000_000_005, 2_000_000_007));
        }
    }

    #[test]
    fn cut_and_oversnapped_records_are_errors() {
        let frames: &[(u32, u32, &[u8])] = &[(1, 0, &[7u8; 100])];
        let whole = pcap(false, false, 65535, frames);
        for cut in [whole.len() - 1, whole.len() - 100, FILE_HDR + 3] {
            let e = read_all(&whole[..cut]).unwrap_err().to_string();
            assert!(e.contains("record 1: truncated"), "{e}");
        }
        let e = read_all(&pcap(false, false, 64, frames))
            .unwrap_err()
            .to_string();
        assert!(e.contains("longer than the snap length 64"), "{e}");
    }

    #[test]
    fn other_formats_are_left_to_the_streaming_reader() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, [0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0]).unwrap();
        assert!(MappedPcap::open(&p).unwrap().is_none());
        let mut raw_ip = pcap(false, false, 65535, &[]);
        raw_ip[20] = 101;
        std::fs::write(&p, raw_ip).unwrap();
        assert!(MappedPcap::open(&p).unwrap().is_none());
    }
}
