//! One runner's copy of the in-kernel generator (`bpf/live.bpf.c`): loaded with its
//! configuration frozen in `.rodata`, its size cycle and flow table in maps, run with
//! `BPF_PROG_RUN` in live-frames mode.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use libbpf_rs::{MapCore, MapFlags, Object, ObjectBuilder};

use crate::error::{Error, Result};
use crate::sansio::live::{self, FlowEntry, Layout};
use crate::sys::bpf;

static OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/live.bpf.o"));

/// What a runner's program stamps and where it sends.
pub(crate) struct ProgConfig<'a> {
    /// Redirect target.
    pub(crate) ifindex: u32,
    /// Header layout of the frames.
    pub(crate) layout: Layout,
    /// The template's headers (written over every frame).
    pub(crate) headers: &'a [u8],
    /// One cycle of frame sizes.
    pub(crate) sizes: &'a [u32],
    /// The flows, round robin.
    pub(crate) flows: &'a [FlowEntry],
    /// Run the reference loop (constant frame, no stamping) instead.
    pub(crate) reference: bool,
}

fn bpf_err(what: &str, e: libbpf_rs::Error) -> Error {
    Error::io(what.to_string(), io::Error::other(e.to_string()))
}

/// A loaded generator program.
pub(crate) struct LiveProg {
    obj: Object,
    name: String,
}

/// The program variant for `c`: compiled for its header layout and for one or several sizes
/// and flows (`bpf/live.bpf.c`).
fn variant(c: &ProgConfig<'_>) -> Result<String> {
    if c.reference {
        return Ok("xsend_live_ref".into());
    }
    let l = c.layout;
    let many = |n: usize| if n > 1 { 'm' } else { '1' };
    let link = match l.l3 {
        14 => 'e',
        18 => 'v',
        other => {
            return Err(Error::InvalidOption(format!(
                "live frames: an IP header at offset {other} (only Ethernet, with or without one VLAN tag)"
            )))
        }
    };
    Ok(format!(
        "xsend_l{}{}{link}{}{}",
        if l.v6 { '6' } else { '4' },
        if l.tcp { 't' } else { 'u' },
        many(c.sizes.len()),
        many(c.flows.len())
    ))
}

/// Bytes of the `headers` map's value.
const HEADERS_LEN: usize = 128;

impl LiveProg {
    /// Load a copy configured by `c`.
    pub(crate) fn load(c: &ProgConfig<'_>) -> Result<Self> {
        crate::device::xdp::quiet_libbpf();
        let mut open = ObjectBuilder::default()
            .open_memory(OBJ)
            .map_err(|e| bpf_err("opening the live-frames object", e))?;
        // `struct live_cfg`: two u32, in this order.
        let words = [c.sizes.len() as u32, c.flows.len() as u32];
        let name = variant(c)?;
        if c.headers.len() > HEADERS_LEN || c.headers.len() != c.layout.header_len() {
            return Err(Error::InvalidOption(format!(
                "live frames: {} bytes of headers (layout {})",
                c.headers.len(),
                c.layout.header_len()
            )));
        }
        let mut found = false;
        for mut p in open.progs_mut() {
            let this = p.name().to_string_lossy() == name.as_str();
            found |= this;
            p.set_autoload(this);
        }
        if !found {
            return Err(Error::io(
                "live-frames object",
                io::Error::other(format!("program {name} missing")),
            ));
        }
        for mut m in open.maps_mut() {
            let name = m.name().to_string_lossy().into_owned();
            let r = if name.ends_with(".rodata") {
                match m.initial_value_mut() {
                    Some(v) if v.len() >= 4 * words.len() => {
                        for (d, w) in v.chunks_exact_mut(4).zip(words) {
                            d.copy_from_slice(&w.to_ne_bytes());
                        }
                        Ok(())
                    }
                    _ => Err(bpf_err(
                        "configuring the live-frames program",
                        libbpf_rs::Error::from(io::Error::other(".rodata too small")),
                    )),
                }
            } else if name == "sizes" {
                m.set_max_entries(c.sizes.len().max(1) as u32)
                    .map_err(|e| bpf_err("sizing the size cycle", e))
            } else if name == "flows" {
                m.set_max_entries(c.flows.len().max(1) as u32)
                    .map_err(|e| bpf_err("sizing the flow table", e))
            } else {
                Ok(())
            };
            r?;
        }
        let obj = open
            .load()
            .map_err(|e| crate::device::xdp::load_error("the live-frames program", e))?;
        let p = LiveProg { obj, name };
        let sizes = p.map("sizes")?;
        for (i, s) in c.sizes.iter().enumerate() {
            sizes
                .update(&(i as u32).to_ne_bytes(), &s.to_ne_bytes(), MapFlags::ANY)
                .map_err(|e| bpf_err("filling the size cycle", e))?;
        }
        let flows = p.map("flows")?;
        for (i, f) in c.flows.iter().enumerate() {
            flows
                .update(&(i as u32).to_ne_bytes(), &f.to_bytes(), MapFlags::ANY)
                .map_err(|e| bpf_err("filling the flow table", e))?;
        }
        let mut hdr = [0u8; HEADERS_LEN];
        hdr[..c.headers.len()].copy_from_slice(c.headers);
        p.map("headers")?
            .update(&0u32.to_ne_bytes(), &hdr, MapFlags::ANY)
            .map_err(|e| bpf_err("setting the header template", e))?;
        p.map("target")?
            .update(&0u32.to_ne_bytes(), &c.ifindex.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| bpf_err("setting the redirect target", e))?;
        p.reset(0, None, 1)?;
        Ok(p)
    }

    fn map(&self, name: &str) -> Result<libbpf_rs::Map<'_>> {
        // `state` is the only variable of .bss (libbpf names that map `<object>.bss`).
        let found = |m: &libbpf_rs::Map<'_>| {
            let n = m.name().to_string_lossy();
            n == name || (name == "state" && n.ends_with(".bss"))
        };
        self.obj.maps().find(found).ok_or_else(|| {
            Error::io(
                "live-frames object",
                io::Error::other(format!("map {name} missing")),
            )
        })
    }

    /// `f` of the program's descriptor.
    fn with_fd<R>(&self, f: impl FnOnce(BorrowedFd<'_>) -> R) -> Result<R> {
        let p = self
            .obj
            .progs()
            .find(|p| p.name() == self.name.as_str())
            .ok_or_else(|| {
                Error::io(
                    "live-frames object",
                    io::Error::other(format!("program {} missing", self.name)),
                )
            })?;
        Ok(f(p.as_fd()))
    }

    /// Counters and cycles back to zero; the program stamps no frame past `limit` (in all),
    /// and releases `pps` frames per second in slots of `burst` if paced.
    pub(crate) fn reset(&self, limit: u64, pps: Option<f64>, burst: u32) -> Result<()> {
        self.map("state")?
            .update(
                &0u32.to_ne_bytes(),
                &live::state_bytes(limit, pps, burst),
                MapFlags::ANY,
            )
            .map_err(|e| bpf_err("setting the runner's limit", e))
    }

    /// Paced: the next call resumes the schedule where the clock is (the time between two
    /// calls is not released as a burst). Between calls only.
    pub(crate) fn resume(&self) -> Result<()> {
        let map = self.map("state")?;
        let v = map
            .lookup(&0u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| bpf_err("reading the runner's state", e))?
            .ok_or_else(|| Error::io("reading the runner's state", io::Error::other("no state")))?;
        map.update(&0u32.to_ne_bytes(), &live::with_resume(v), MapFlags::ANY)
            .map_err(|e| bpf_err("resuming the runner's schedule", e))
    }

    /// The program's counters so far.
    pub(crate) fn counters(&self) -> Result<live::Counters> {
        let v = self
            .map("state")?
            .lookup(&0u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| bpf_err("reading the runner's counters", e))?;
        v.as_deref().and_then(live::parse_state).ok_or_else(|| {
            Error::io(
                "reading the runner's counters",
                io::Error::other("no state"),
            )
        })
    }

    /// Run `repeat` frames made from `template`, `batch` per page_pool cycle (`EINTR` when a
    /// signal interrupted the run).
    pub(crate) fn run(&self, template: &[u8], repeat: u32, batch: u32) -> Result<io::Result<()>> {
        self.with_fd(|fd| bpf::prog_run_live(fd, template, repeat, batch))
    }
}
