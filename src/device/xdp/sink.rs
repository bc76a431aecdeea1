//! The lab's counting sink (`bpf/sink.bpf.c`): an XDP program on a receiving interface that
//! counts UDP/TCP frames and drops them or passes them on, attached through a BPF link
//! (detached when dropped, or when the process dies).

use std::os::fd::{AsFd, OwnedFd};

use libbpf_rs::{MapCore, MapFlags, Object, ObjectBuilder};

use crate::error::{Error, Result};
use crate::sys::bpf::{link_xdp, XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE};

static OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sink.bpf.o"));

fn bpf_err(what: &str, e: libbpf_rs::Error) -> Error {
    Error::io(what.to_string(), std::io::Error::other(e.to_string()))
}

/// An attached counting sink.
pub(crate) struct SinkProg {
    obj: Object,
    _link: OwnedFd,
}

impl SinkProg {
    /// Attach to `ifindex` (of the calling thread's namespace): `drop` drops the counted
    /// frames, else they pass on to the kernel.
    pub(crate) fn attach(ifindex: u32, ifname: &str, drop: bool) -> Result<SinkProg> {
        super::quiet_libbpf();
        let obj = ObjectBuilder::default()
            .open_memory(OBJ)
            .map_err(|e| bpf_err("opening the sink object", e))?
            .load()
            .map_err(|e| bpf_err("loading the sink program", e))?;
        let name = if drop {
            "xsend_sink_drop"
        } else {
            "xsend_sink_pass"
        };
        let link = {
            let prog = obj.progs().find(|p| p.name() == name).ok_or_else(|| {
                Error::io(
                    "sink object",
                    std::io::Error::other(format!("{name} missing")),
                )
            })?;
            link_xdp(prog.as_fd(), ifindex, XDP_FLAGS_DRV_MODE)
                .or_else(|_| link_xdp(prog.as_fd(), ifindex, XDP_FLAGS_SKB_MODE))
                .map_err(|e| Error::io(format!("attaching the sink to {ifname}"), e))?
        };
        Ok(SinkProg { obj, _link: link })
    }

    /// (frames, bytes) counted so far, over every CPU.
    pub(crate) fn counts(&self) -> Result<(u64, u64)> {
        let map = self
            .obj
            .maps()
            .find(|m| m.name() == "counts")
            .ok_or_else(|| Error::io("sink object", std::io::Error::other("no counts map")))?;
        let mut out = [0u64; 2];
        for (k, o) in out.iter_mut().enumerate() {
            let per_cpu = map
                .lookup_percpu(&(k as u32).to_ne_bytes(), MapFlags::ANY)
                .map_err(|e| bpf_err("reading the sink's counters", e))?
                .unwrap_or_default();
            *o = per_cpu
                .iter()
                .filter_map(|v| Some(u64::from_ne_bytes(v.get(..8)?.try_into().ok()?)))
                .sum();
        }
        Ok((out[0], out[1]))
    }
}
