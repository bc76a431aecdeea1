//! xsend's own XDP program (bpf/xsend.bpf.c): loaded with libbpf-rs, attached through a BPF
//! link (detached when the link closes, even if the process is killed), native mode first,
//! generic (SKB) mode second. It steers only registered flows into the XSKMAP.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use libbpf_rs::{MapCore, MapFlags, Object, ObjectBuilder};

use crate::error::{Error, Result};
use crate::sys;

static OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xsend.bpf.o"));

const XDP_FLAGS_SKB_MODE: u32 = 2;
const XDP_FLAGS_DRV_MODE: u32 = 4;

/// Where the program is attached and how.
pub struct Steer {
    obj: Object,
    _link: OwnedFd,
    /// `native` or `generic`.
    pub mode: &'static str,
}

fn bpf_err(what: &str, e: libbpf_rs::Error) -> Error {
    Error::io(what.to_string(), std::io::Error::other(e.to_string()))
}

impl Steer {
    /// Load and attach to `ifindex`. `reasons` collects why native mode was not obtained.
    pub fn attach(ifindex: u32, ifname: &str, reasons: &mut Vec<String>) -> Result<Steer> {
        let open = ObjectBuilder::default()
            .open_memory(OBJ)
            .map_err(|e| bpf_err("opening the XDP object", e))?;
        let obj = open.load().map_err(|e| {
            if e.to_string().contains("Operation not permitted") {
                Error::NoPermission {
                    what: "loading the XDP program needs CAP_BPF/CAP_NET_ADMIN".into(),
                }
            } else {
                bpf_err("loading the XDP program", e)
            }
        })?;
        let prog_fd = obj
            .progs()
            .find(|p| p.name() == "xsend_steer")
            .map(|p| p.as_fd().as_raw_fd())
            .ok_or_else(|| {
                Error::io(
                    "XDP object",
                    std::io::Error::other("program xsend_steer missing"),
                )
            })?;
        let (link, mode) = match sys::bpf_link_xdp(prog_fd, ifindex, XDP_FLAGS_DRV_MODE) {
            Ok(l) => (l, "native"),
            Err(e) => {
                reasons.push(format!("native XDP on {ifname}: {e}"));
                let l = sys::bpf_link_xdp(prog_fd, ifindex, XDP_FLAGS_SKB_MODE).map_err(|e| {
                    Error::io(
                        format!("attaching the XDP program to {ifname} (generic mode)"),
                        e,
                    )
                })?;
                (l, "generic")
            }
        };
        Ok(Steer {
            obj,
            _link: link,
            mode,
        })
    }

    fn map(&self, name: &str) -> Result<libbpf_rs::Map<'_>> {
        self.obj.maps().find(|m| m.name() == name).ok_or_else(|| {
            Error::io(
                "XDP object",
                std::io::Error::other(format!("map {name} missing")),
            )
        })
    }

    /// Put the AF_XDP socket `fd` of `queue` into the XSKMAP.
    pub fn add_socket(&self, queue: u32, fd: i32) -> Result<()> {
        self.map("xsks")?
            .update(&queue.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| bpf_err("inserting the AF_XDP socket into the XSKMAP", e))
    }

    /// Steer inbound packets of (`proto`, local `port`, `remote` address and port) to our
    /// sockets.
    pub fn add_flow(&self, proto: u8, port: u16, remote: std::net::SocketAddr) -> Result<()> {
        let mut key = [0u8; 24];
        key[0] = proto;
        key[2..4].copy_from_slice(&port.to_be_bytes());
        key[4..6].copy_from_slice(&remote.port().to_be_bytes());
        match remote.ip() {
            std::net::IpAddr::V4(a) => key[8..12].copy_from_slice(&a.octets()),
            std::net::IpAddr::V6(a) => key[8..24].copy_from_slice(&a.octets()),
        }
        self.map("flows")?
            .update(&key, &1u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| bpf_err("registering the flow", e))
    }

    /// Packets (redirected, passed) so far, summed over CPUs.
    pub fn counters(&self) -> Result<(u64, u64)> {
        let m = self.map("stats")?;
        let get = |i: u32| -> u64 {
            m.lookup_percpu(&i.to_ne_bytes(), MapFlags::ANY)
                .ok()
                .flatten()
                .map(|v| {
                    v.iter()
                        .map(|c| u64::from_ne_bytes(c[..8].try_into().unwrap_or([0; 8])))
                        .sum()
                })
                .unwrap_or(0)
        };
        Ok((get(0), get(1)))
    }
}
