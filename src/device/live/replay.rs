//! Replay on live frames (`bpf/replay.bpf.c`): a ring of captured frames in a memory-mapped
//! BPF array that user space fills and the program, run by `BPF_PROG_RUN` in live-frames
//! mode, empties — each run writes the head record over its page, sizes the frame and
//! redirects it to the target, when the record is due.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;

use libbpf_rs::{MapCore, MapFlags, Object, ObjectBuilder};

use crate::error::{Error, Result};
use crate::sansio::seqtrack::LAT_BUCKETS;
use crate::sys::bpf::{self, MappedArray};

static OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/replay.bpf.o"));

/// Frame bytes one record holds (`REC_DATA`).
pub(crate) const REC_DATA: usize = 2032;
/// Bytes of one record (`struct rec`).
const REC_LEN: usize = 2048;
/// Bytes of the control block (`struct ctl`).
const CTL_LEN: usize = 128;
/// Byte offsets of the control block's words.
const TAIL: usize = 0;
const HEAD: usize = 64;
const BYTES: usize = 72;
const REFUSED: usize = 96;
const BASE: usize = 104;
const LAST: usize = 112;
const LATE_MAX: usize = 120;

fn bpf_err(what: &str, e: libbpf_rs::Error) -> Error {
    Error::io(what.to_string(), io::Error::other(e.to_string()))
}

/// The loaded replay program, its ring mapped.
pub(crate) struct ReplayProg {
    obj: Object,
    recs: MappedArray,
    ctl: MappedArray,
    late: MappedArray,
    slots: u64,
}

/// What the program did so far.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ReplayCounters {
    /// Records taken from the ring (sent, or refused).
    pub(crate) head: u64,
    /// Bytes of the frames sent.
    pub(crate) bytes: u64,
    /// Records that could not be written into a frame (skipped).
    pub(crate) refused: u64,
    /// CLOCK_MONOTONIC ns of the first frame sent (0: none yet) and of a recent one.
    pub(crate) first_ns: u64,
    pub(crate) last_ns: u64,
    /// The latest a timed frame left after its time (ns).
    pub(crate) late_max: u64,
}

impl ReplayProg {
    /// Load the program with a ring of `slots` records (a power of two) redirecting to
    /// `ifindex`.
    pub(crate) fn load(ifindex: u32, slots: u32) -> Result<Self> {
        if !slots.is_power_of_two() {
            return Err(Error::InvalidOption(format!(
                "replay ring of {slots} records: a power of two"
            )));
        }
        crate::device::xdp::quiet_libbpf();
        let mut open = ObjectBuilder::default()
            .open_memory(OBJ)
            .map_err(|e| bpf_err("opening the replay object", e))?;
        for mut m in open.maps_mut() {
            let name = m.name().to_string_lossy().into_owned();
            if name.ends_with(".rodata") {
                match m.initial_value_mut() {
                    // `struct replay_cfg`: mask, pad.
                    Some(v) if v.len() >= 4 => v[..4].copy_from_slice(&(slots - 1).to_ne_bytes()),
                    _ => {
                        return Err(Error::io(
                            "configuring the replay program",
                            io::Error::other(".rodata too small"),
                        ))
                    }
                }
            } else if name == "recs" {
                m.set_max_entries(slots)
                    .map_err(|e| bpf_err("sizing the replay ring", e))?;
            }
        }
        let obj = open
            .load()
            .map_err(|e| crate::device::xdp::load_error("the replay program", e))?;
        let mapped = |name: &str, size: usize, n: usize| -> Result<MappedArray> {
            let m = obj.maps().find(|m| m.name() == name).ok_or_else(|| {
                Error::io(
                    "replay object",
                    io::Error::other(format!("map {name} missing")),
                )
            })?;
            MappedArray::new(m.as_fd(), size, n)
                .map_err(|e| Error::io(format!("mapping the replay program's {name}"), e))
        };
        let recs = mapped("recs", REC_LEN, slots as usize)?;
        let ctl = mapped("ctl", CTL_LEN, 1)?;
        let late = mapped("late", 8, LAT_BUCKETS)?;
        obj.maps()
            .find(|m| m.name() == "target")
            .ok_or_else(|| Error::io("replay object", io::Error::other("map target missing")))?
            .update(&0u32.to_ne_bytes(), &ifindex.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| bpf_err("setting the redirect target", e))?;
        Ok(ReplayProg {
            obj,
            recs,
            ctl,
            late,
            slots: slots as u64,
        })
    }

    /// Records the ring holds.
    pub(crate) fn slots(&self) -> u64 {
        self.slots
    }

    fn word(&self, off: usize) -> u64 {
        self.ctl
            .word(0, off)
            .map_or(0, |w| w.load(Ordering::Acquire))
    }

    /// Records published so far.
    pub(crate) fn tail(&self) -> u64 {
        self.word(TAIL)
    }

    /// Records the program has taken so far.
    pub(crate) fn head(&self) -> u64 {
        self.word(HEAD)
    }

    /// Write record number `seq` (not yet published, and at least `slots` after the head's
    /// last use of its slot): `len` bytes of frame that `fill` writes, due at `due` ns after
    /// the first frame (`None`: at once).
    pub(crate) fn write(
        &mut self,
        seq: u64,
        len: usize,
        due: Option<u64>,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<()> {
        if len > REC_DATA {
            return Err(Error::InvalidOption(format!(
                "a {len}-byte frame in the replay ring (at most {REC_DATA})"
            )));
        }
        let i = (seq % self.slots) as usize;
        let r = self
            .recs
            .value_mut(i)
            .ok_or_else(|| Error::io("replay ring", io::Error::other("slot outside the ring")))?;
        r[..4].copy_from_slice(&(len as u32).to_ne_bytes());
        r[8..16].copy_from_slice(&due.map_or(0, |d| d + 1).to_ne_bytes());
        fill(&mut r[16..16 + len]);
        Ok(())
    }

    /// Publish the records written up to (not including) `tail`.
    pub(crate) fn publish(&self, tail: u64) {
        if let Some(w) = self.ctl.word(0, TAIL) {
            w.store(tail, Ordering::Release);
        }
    }

    /// The program's counters.
    pub(crate) fn counters(&self) -> ReplayCounters {
        ReplayCounters {
            head: self.word(HEAD),
            bytes: self.word(BYTES),
            refused: self.word(REFUSED),
            first_ns: self.word(BASE),
            last_ns: self.word(LAST),
            late_max: self.word(LATE_MAX),
        }
    }

    /// The lateness histogram of the timed frames (`sansio::seqtrack` buckets).
    pub(crate) fn lateness(&self) -> Vec<u64> {
        (0..LAT_BUCKETS)
            .map(|b| {
                self.late
                    .word(b, 0)
                    .map_or(0, |w| w.load(Ordering::Relaxed))
            })
            .collect()
    }

    /// A handle that runs the program (for the runner thread, while the reader writes
    /// records): its own descriptor of the program.
    pub(crate) fn run_handle(&self) -> Result<RunHandle> {
        let p = self
            .obj
            .progs()
            .find(|p| p.name() == "xsend_replay")
            .ok_or_else(|| Error::io("replay object", io::Error::other("program missing")))?;
        let fd = p
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::io("duplicating the replay program's descriptor", e))?;
        Ok(RunHandle { fd })
    }
}

/// Runs the replay program (see [`ReplayProg::run_handle`]).
pub(crate) struct RunHandle {
    fd: OwnedFd,
}

impl RunHandle {
    /// Run the program `repeat` times over frames made from `template` (its length is the
    /// frames' initial size), `batch` per page_pool cycle (`EINTR` when interrupted).
    pub(crate) fn run(&self, template: &[u8], repeat: u32, batch: u32) -> io::Result<()> {
        bpf::prog_run_live(self.fd.as_fd(), template, repeat, batch)
    }
}
