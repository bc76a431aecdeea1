//! Streaming pcap/pcapng reading (pcap-parser, a circular buffer: constant memory whatever
//! the file size), timestamps in ns whatever the resolution, Ethernet link types only, every
//! malformation a clear error naming the file, the record and the byte offset.

use std::path::{Path, PathBuf};

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{Linktype, PcapBlockOwned, PcapError};

use crate::engine::replay::{Record, Records};
use crate::error::{Error, Result};

/// Buffer the reader starts with, and the most it grows to (a block must fit).
const BUF: usize = 1 << 20;
const MAX_BUF: usize = 16 << 20;

/// One interface of a pcapng section.
#[derive(Debug, Clone, Copy)]
struct Iface {
    linktype: Linktype,
    snaplen: u32,
    /// Timestamp units per second.
    units: u64,
    /// Seconds to add to every timestamp.
    offset_s: i64,
}

#[derive(Debug)]
enum Format {
    Unknown,
    Legacy { nanos: bool, snaplen: u32 },
    Ng { ifaces: Vec<Iface> },
}

/// What a block is, once looked at.
enum Seen {
    Header,
    Packet,
    Other,
}

/// A capture file read record by record.
pub(crate) struct CaptureReader {
    path: PathBuf,
    reader: Box<dyn PcapReaderIterator>,
    /// Bytes of the block returned last, consumed at the next call.
    pending: usize,
    format: Format,
    /// Records read so far (for messages).
    index: u64,
    /// The reader's buffer size.
    capacity: usize,
}

/// An error at record `index` (0-based) of `path`.
pub(super) fn at(path: &Path, index: u64, why: String) -> Error {
    bad(path, format!("record {}: {why}", index + 1))
}

fn bad(path: &Path, why: String) -> Error {
    Error::BadCapture {
        path: path.to_path_buf(),
        why,
    }
}

impl CaptureReader {
    /// Open a pcap or pcapng file.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let f = crate::payload::open_regular(path)?;
        Self::from_read(path, f)
    }

    /// Read a capture from `r`; `path` names it in messages (and is reopened to rewind).
    pub(crate) fn from_read(path: &Path, r: impl std::io::Read + 'static) -> Result<Self> {
        let reader = pcap_parser::create_reader(BUF, r).map_err(|e| {
            bad(
                path,
                format!("not a pcap or pcapng file ({})", describe(&e)),
            )
        })?;
        Ok(CaptureReader {
            path: path.to_path_buf(),
            reader,
            pending: 0,
            format: Format::Unknown,
            index: 0,
            capacity: BUF,
        })
    }

    /// Look at the next block without consuming it: update the format from headers.
    fn peek(&mut self) -> Result<Option<Seen>> {
        loop {
            if self.pending > 0 {
                self.reader.consume(self.pending);
                self.pending = 0;
            }
            let seen = match self.reader.next() {
                Ok((off, block)) => {
                    let seen = match block {
                        PcapBlockOwned::LegacyHeader(h) => {
                            if h.network != Linktype::ETHERNET {
                                return Err(bad(&self.path, format!(
                                    "link type {} is not Ethernet: only Ethernet captures can be replayed",
                                    h.network.0
                                )));
                            }
                            self.format = Format::Legacy {
                                nanos: h.is_nanosecond_precision(),
                                snaplen: h.snaplen,
                            };
                            Seen::Header
                        }
                        PcapBlockOwned::Legacy(_) => Seen::Packet,
                        PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                            self.format = Format::Ng { ifaces: Vec::new() };
                            Seen::Header
                        }
                        PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                            let res = idb.if_tsresol;
                            let units = if res & 0x80 == 0 {
                                10u64.checked_pow(res as u32)
                            } else {
                                1u64.checked_shl((res & 0x7f) as u32)
                            };
                            let Some(units) = units.filter(|&u| u > 0) else {
                                return Err(at(
                                    &self.path,
                                    self.index,
                                    format!("timestamp resolution {res} unsupported"),
                                ));
                            };
                            let i = Iface {
                                linktype: idb.linktype,
                                snaplen: idb.snaplen,
                                units,
                                offset_s: idb.if_tsoffset,
                            };
                            match &mut self.format {
                                Format::Ng { ifaces } => ifaces.push(i),
                                _ => {
                                    return Err(at(
                                        &self.path,
                                        self.index,
                                        "interface block outside a section".into(),
                                    ))
                                }
                            }
                            Seen::Header
                        }
                        PcapBlockOwned::NG(Block::EnhancedPacket(_) | Block::SimplePacket(_)) => {
                            Seen::Packet
                        }
                        _ => Seen::Other,
                    };
                    if !matches!(seen, Seen::Packet) {
                        self.pending = off;
                    }
                    seen
                }
                Err(PcapError::Eof) => return Ok(None),
                Err(PcapError::Incomplete(_)) => {
                    if self.reader.reader_exhausted() {
                        return Err(at(
                            &self.path,
                            self.index,
                            "the file ends inside a record (truncated capture)".into(),
                        ));
                    }
                    self.reader.refill().map_err(|e| {
                        at(&self.path, self.index, format!("reading: {}", describe(&e)))
                    })?;
                    continue;
                }
                Err(PcapError::UnexpectedEof) => {
                    return Err(at(
                        &self.path,
                        self.index,
                        "the file ends inside a record (truncated capture)".into(),
                    ));
                }
                Err(PcapError::BufferTooSmall) => {
                    let size = self.capacity * 2;
                    if size > MAX_BUF || !self.reader.grow(size) {
                        return Err(at(
                            &self.path,
                            self.index,
                            format!("a block over {MAX_BUF} bytes"),
                        ));
                    }
                    self.capacity = size;
                    continue;
                }
                Err(e) => {
                    return Err(at(
                        &self.path,
                        self.index,
                        format!("malformed: {}", describe(&e)),
                    ))
                }
            };
            match seen {
                Seen::Packet => return Ok(Some(Seen::Packet)),
                _ => continue,
            }
        }
    }
}

fn describe<I: std::fmt::Debug>(e: &PcapError<I>) -> String {
    match e {
        PcapError::HeaderNotRecognized => "header not recognized".into(),
        PcapError::UnexpectedEof => "unexpected end of file".into(),
        PcapError::Eof => "end of file".into(),
        PcapError::Incomplete(n) => format!("incomplete record ({n} more bytes needed)"),
        PcapError::ReadError => "read error".into(),
        PcapError::NomError(_, k) => format!("{k:?}"),
        PcapError::OwnedNomError(_, k) => format!("{k:?}"),
        e => format!("{e:?}").chars().take(80).collect(),
    }
}

impl Records for CaptureReader {
    fn next_record(&mut self) -> Result<Option<Record<'_>>> {
        if self.peek()?.is_none() {
            return Ok(None);
        }
        let index = self.index;
        self.index += 1;
        let path = &self.path;
        let err = |why: String| bad(path, format!("record {}: {why}", index + 1));
        let (off, block) = self
            .reader
            .next()
            .map_err(|e| err(format!("malformed: {}", describe(&e))))?;
        let (ts_ns, data, snaplen) = match (&self.format, block) {
            (Format::Legacy { nanos, snaplen }, PcapBlockOwned::Legacy(b)) => {
                let sub = if *nanos { 1 } else { 1000 };
                let ts = b.ts_sec as u64 * 1_000_000_000 + b.ts_usec as u64 * sub;
                if b.caplen as usize > b.data.len() {
                    return Err(err("shorter than its length says".into()));
                }
                (ts, &b.data[..b.caplen as usize], *snaplen)
            }
            (Format::Ng { ifaces }, PcapBlockOwned::NG(Block::EnhancedPacket(epb))) => {
                let Some(i) = ifaces.get(epb.if_id as usize) else {
                    return Err(err(format!("interface {} was never described", epb.if_id)));
                };
                if i.linktype != Linktype::ETHERNET {
                    return Err(err(format!(
                        "link type {} is not Ethernet: only Ethernet captures can be replayed",
                        i.linktype.0
                    )));
                }
                let raw = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                let ns = (raw as u128 * 1_000_000_000 / i.units as u128) as i128
                    + i.offset_s as i128 * 1_000_000_000;
                let data: &[u8] = epb.data;
                let Some(data) = data.get(..epb.caplen as usize) else {
                    return Err(err("shorter than its length says".into()));
                };
                (ns.max(0) as u64, data, i.snaplen)
            }
            (Format::Ng { ifaces }, PcapBlockOwned::NG(Block::SimplePacket(spb))) => {
                let Some(i) = ifaces.first() else {
                    return Err(err("a simple packet block without an interface".into()));
                };
                if i.linktype != Linktype::ETHERNET {
                    return Err(err(format!("link type {} is not Ethernet", i.linktype.0)));
                }
                let data: &[u8] = spb.data;
                let n = (spb.origlen as usize).min(data.len());
                (0, &data[..n], i.snaplen)
            }
            _ => return Err(err("a packet before the file header".into())),
        };
        if snaplen > 0 && data.len() > snaplen as usize {
            return Err(err(format!(
                "{} bytes, longer than the snap length {snaplen}",
                data.len()
            )));
        }
        self.pending = off;
        Ok(Some(Record { ts_ns, data }))
    }

    fn rewind(&mut self) -> Result<()> {
        *self = CaptureReader::open(&self.path.clone())?;
        Ok(())
    }
}

/// What a first pass over a capture found.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Scan {
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
    pub(crate) first_ts: u64,
    pub(crate) last_ts: u64,
    /// Records longer than the device carries.
    pub(crate) oversize: u64,
    pub(crate) largest: usize,
}

/// The shortest record that is a frame: an Ethernet header.
const MIN_FRAME: usize = 14;

/// Read a whole capture once (constant memory): counts, timestamps, and every malformation
/// reported before anything is sent.
pub(crate) fn scan(path: &Path, max_frame: usize) -> Result<Scan> {
    let mut r = super::mapped::Captured::open(path)?;
    let mut s = Scan::default();
    while let Some(rec) = r.next_record()? {
        if s.packets == 0 {
            s.first_ts = rec.ts_ns;
        }
        s.packets += 1;
        s.bytes += rec.data.len() as u64;
        s.last_ts = s.last_ts.max(rec.ts_ns);
        s.largest = s.largest.max(rec.data.len());
        if rec.data.len() < MIN_FRAME {
            return Err(at(
                path,
                s.packets - 1,
                format!(
                    "{} bytes captured, less than an Ethernet header ({MIN_FRAME}): not a frame that can be sent",
                    rec.data.len()
                ),
            ));
        }
        if crate::sansio::wire::ethernet::over_limit(rec.data, max_frame) {
            s.oversize += 1;
        }
    }
    Ok(s)
}

/// For the fuzz target: read every record of a capture held in memory; the packets read, or
/// the error's message.
#[cfg(feature = "fuzzing")]
pub fn fuzz_read(bytes: &[u8]) -> std::result::Result<u64, String> {
    let mut r = CaptureReader::from_read(Path::new("fuzz"), std::io::Cursor::new(bytes.to_vec()))
        .map_err(|e| e.to_string())?;
    let mut n = 0;
    loop {
        match r.next_record() {
            Ok(Some(rec)) => {
                assert!(rec.data.len() <= MAX_BUF);
                n += 1;
            }
            Ok(None) => return Ok(n),
            Err(e) => return Err(e.to_string()),
        }
    }
}
