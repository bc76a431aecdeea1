//! The receiving port's program (`bpf/rxport.bpf.c`): loaded with its stream count and
//! verdict frozen in `.rodata`, attached through a BPF link (detached when dropped, or when
//! the process dies), its maps read and zeroed between trials.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use libbpf_rs::{MapCore, MapFlags, Object, ObjectBuilder};

use crate::error::{Error, Result};
use crate::sansio::seqtrack::{Stream, LAT_BUCKETS, STREAM_LEN};
use crate::sys::bpf::{link_xdp, XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE};

static OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/rxport.bpf.o"));

const PROG: &str = "xsend_rxport";

fn bpf_err(what: &str, e: libbpf_rs::Error) -> Error {
    Error::io(what.to_string(), io::Error::other(e.to_string()))
}

/// Everything the program counted, summed over CPUs.
#[derive(Debug, Clone, Default)]
pub(crate) struct RxRaw {
    /// Per stream.
    pub(crate) streams: Vec<Stream>,
    /// Stream frames counted (duplicates too).
    pub(crate) frames: u64,
    /// Probe frames of a stream id past the table.
    pub(crate) unknown: u64,
    /// Other frames, passed on.
    pub(crate) other: u64,
    /// Latency: sum (ns), maximum, samples, histogram.
    pub(crate) lat_sum: u64,
    pub(crate) lat_max: u64,
    pub(crate) lat_n: u64,
    pub(crate) lat_hist: Vec<u64>,
}

/// A loaded (and maybe attached) receiving-port program.
pub(crate) struct RxPortProg {
    obj: Object,
    nstreams: u32,
    _link: Option<OwnedFd>,
}

impl RxPortProg {
    /// Load the program for `nstreams` streams; `drop` drops the counted frames.
    pub(crate) fn load(nstreams: u32, drop: bool) -> Result<RxPortProg> {
        super::quiet_libbpf();
        let nstreams = nstreams.max(1);
        let mut open = ObjectBuilder::default()
            .open_memory(OBJ)
            .map_err(|e| bpf_err("opening the receiving-port object", e))?;
        for mut m in open.maps_mut() {
            let name = m.name().to_string_lossy().into_owned();
            if name.ends_with(".rodata") {
                // `struct rx_cfg`: nstreams, drop.
                match m.initial_value_mut() {
                    Some(v) if v.len() >= 8 => {
                        v[..4].copy_from_slice(&nstreams.to_ne_bytes());
                        v[4..8].copy_from_slice(&u32::from(drop).to_ne_bytes());
                    }
                    _ => {
                        return Err(Error::io(
                            "configuring the receiving port",
                            io::Error::other(".rodata too small"),
                        ))
                    }
                }
            } else if name == "streams" {
                m.set_max_entries(nstreams)
                    .map_err(|e| bpf_err("sizing the stream table", e))?;
            }
        }
        let obj = open
            .load()
            .map_err(|e| crate::device::xdp::load_error("the receiving port's XDP program", e))?;
        Ok(RxPortProg {
            obj,
            nstreams,
            _link: None,
        })
    }

    /// Attach to `ifindex` (of the calling thread's namespace), native mode if the driver
    /// has it.
    pub(crate) fn attach(&mut self, ifindex: u32, ifname: &str) -> Result<()> {
        let prog = self.prog()?;
        let link = link_xdp(prog.as_fd(), ifindex, XDP_FLAGS_DRV_MODE)
            .or_else(|_| link_xdp(prog.as_fd(), ifindex, XDP_FLAGS_SKB_MODE))
            .map_err(|e| Error::io(format!("attaching the receiving port to {ifname}"), e))?;
        self._link = Some(link);
        Ok(())
    }

    fn prog(&self) -> Result<libbpf_rs::Program<'_>> {
        self.obj.progs().find(|p| p.name() == PROG).ok_or_else(|| {
            Error::io(
                "receiving-port object",
                io::Error::other(format!("{PROG} missing")),
            )
        })
    }

    fn map(&self, name: &str) -> Result<libbpf_rs::Map<'_>> {
        self.obj.maps().find(|m| m.name() == name).ok_or_else(|| {
            Error::io(
                "receiving-port object",
                io::Error::other(format!("map {name} missing")),
            )
        })
    }

    /// Run the program once over `frame` (not attached: a test of its logic); returns
    /// whether it dropped the frame.
    #[cfg(test)]
    pub(crate) fn run_once(&self, frame: &[u8]) -> Result<bool> {
        let prog = self.prog()?;
        let v = crate::sys::bpf::prog_run_once(prog.as_fd(), frame)
            .map_err(|e| Error::io("running the receiving-port program", e))?;
        Ok(v == 1) // XDP_DROP
    }

    /// Read everything counted so far.
    pub(crate) fn read(&self) -> Result<RxRaw> {
        let mut r = RxRaw::default();
        let streams = self.map("streams")?;
        for i in 0..self.nstreams {
            let v = streams
                .lookup(&i.to_ne_bytes(), MapFlags::ANY)
                .map_err(|e| bpf_err("reading the stream table", e))?
                .unwrap_or_default();
            r.streams.push(Stream::from_bytes(&v).unwrap_or_default());
        }
        let totals = self.map("totals")?;
        for cpu in totals
            .lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| bpf_err("reading the receiving port's totals", e))?
            .unwrap_or_default()
        {
            let u = |i: usize| {
                cpu.get(i * 8..i * 8 + 8)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, u64::from_ne_bytes)
            };
            r.frames += u(0);
            r.unknown += u(1);
            r.other += u(2);
            r.lat_sum += u(3);
            r.lat_max = r.lat_max.max(u(4));
            r.lat_n += u(5);
        }
        let lat = self.map("latency")?;
        r.lat_hist = vec![0; LAT_BUCKETS];
        for (i, h) in r.lat_hist.iter_mut().enumerate() {
            *h = lat
                .lookup_percpu(&(i as u32).to_ne_bytes(), MapFlags::ANY)
                .map_err(|e| bpf_err("reading the latency histogram", e))?
                .unwrap_or_default()
                .iter()
                .filter_map(|v| Some(u64::from_ne_bytes(v.get(..8)?.try_into().ok()?)))
                .sum();
        }
        Ok(r)
    }

    /// Zero every counter (between trials, when no stream frame is arriving).
    pub(crate) fn reset(&self) -> Result<()> {
        let zero = [0u8; STREAM_LEN];
        let streams = self.map("streams")?;
        for i in 0..self.nstreams {
            streams
                .update(&i.to_ne_bytes(), &zero, MapFlags::ANY)
                .map_err(|e| bpf_err("zeroing the stream table", e))?;
        }
        let cpus =
            libbpf_rs::num_possible_cpus().map_err(|e| bpf_err("counting the possible CPUs", e))?;
        let totals = self.map("totals")?;
        let t = vec![vec![0u8; 48]; cpus];
        totals
            .update_percpu(&0u32.to_ne_bytes(), &t, MapFlags::ANY)
            .map_err(|e| bpf_err("zeroing the receiving port's totals", e))?;
        let lat = self.map("latency")?;
        let z = vec![vec![0u8; 8]; cpus];
        for i in 0..LAT_BUCKETS as u32 {
            lat.update_percpu(&i.to_ne_bytes(), &z, MapFlags::ANY)
                .map_err(|e| bpf_err("zeroing the latency histogram", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
