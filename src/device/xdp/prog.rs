//! xsend's own XDP program (bpf/xsend.bpf.c): loaded with libbpf-rs, attached through a BPF
//! link (detached when the link closes, even if the process is killed), native mode first,
//! generic (SKB) mode second. It steers only registered flows into the XSKMAP.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use libbpf_rs::{MapCore, MapFlags, Object, ObjectBuilder};

use crate::error::{Error, Result};
use crate::sys::bpf::{link_xdp, XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE};

static OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xsend.bpf.o"));

/// The program's XSKMAP, held on its own (a duplicate of the map's descriptor).
pub(crate) struct XskMap(libbpf_rs::MapHandle);

impl XskMap {
    /// Put the AF_XDP socket `fd` of `queue` into the map.
    pub(crate) fn insert(&self, queue: u32, fd: BorrowedFd<'_>) -> Result<()> {
        self.0
            .update(
                &queue.to_ne_bytes(),
                &fd.as_raw_fd().to_ne_bytes(),
                MapFlags::ANY,
            )
            .map_err(|e| bpf_err("inserting the AF_XDP socket into the XSKMAP", e))
    }
}

/// Where the program is attached and how.
pub(crate) struct Steer {
    obj: Object,
    _link: OwnedFd,
    /// `native` or `generic`.
    pub(crate) mode: &'static str,
}

/// libbpf prints its own `libbpf: ...` lines to stderr; xsend reports every failure itself,
/// with the reason, so they are silenced (`XSEND_LIBBPF_DEBUG=1` keeps them).
pub(crate) fn quiet_libbpf() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("XSEND_LIBBPF_DEBUG").is_none() {
            libbpf_rs::set_print(None);
        }
    });
}

/// The error of loading one of xsend's BPF objects (`program`, e.g. "the XDP program"):
/// `NoPermission` when the kernel refused it for want of privileges.
pub(crate) fn load_error(program: &str, e: libbpf_rs::Error) -> Error {
    if e.to_string().contains("Operation not permitted") {
        Error::NoPermission {
            what: format!("loading {program} needs CAP_BPF/CAP_NET_ADMIN"),
        }
    } else {
        bpf_err(&format!("loading {program}"), e)
    }
}

fn bpf_err(what: &str, e: libbpf_rs::Error) -> Error {
    Error::io(what.to_string(), std::io::Error::other(e.to_string()))
}

impl Steer {
    /// Load and attach to `ifindex`. `reasons` collects why native mode was not obtained.
    pub(crate) fn attach(ifindex: u32, ifname: &str, reasons: &mut Vec<String>) -> Result<Steer> {
        quiet_libbpf();
        let open = ObjectBuilder::default()
            .open_memory(OBJ)
            .map_err(|e| bpf_err("opening the XDP object", e))?;
        let obj = open.load().map_err(|e| load_error("the XDP program", e))?;
        let prog = obj
            .progs()
            .find(|p| p.name() == "xsend_steer")
            .ok_or_else(|| {
                Error::io(
                    "XDP object",
                    std::io::Error::other("program xsend_steer missing"),
                )
            })?;
        let prog_fd = prog.as_fd();
        let (link, mode) = match link_xdp(prog_fd, ifindex, XDP_FLAGS_DRV_MODE) {
            Ok(l) => (l, "native"),
            Err(e) => {
                reasons.push(format!("native XDP on {ifname}: {e}"));
                let l = link_xdp(prog_fd, ifindex, XDP_FLAGS_SKB_MODE).map_err(|e| {
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

    /// A handle on the XSKMAP that outlives this borrow (to put re-opened sockets in).
    pub(crate) fn xskmap(&self) -> Result<XskMap> {
        let m = self.map("xsks")?;
        libbpf_rs::MapHandle::try_from(&m)
            .map(XskMap)
            .map_err(|e| bpf_err("a handle on the XSKMAP", e))
    }

    /// Put the AF_XDP socket `fd` of `queue` into the XSKMAP.
    pub(crate) fn add_socket(&self, queue: u32, fd: BorrowedFd<'_>) -> Result<()> {
        self.map("xsks")?
            .update(
                &queue.to_ne_bytes(),
                &fd.as_raw_fd().to_ne_bytes(),
                MapFlags::ANY,
            )
            .map_err(|e| bpf_err("inserting the AF_XDP socket into the XSKMAP", e))
    }

    /// Steer inbound packets of (`proto`, local `port`, `remote` address and port) to our
    /// sockets.
    pub(crate) fn add_flow(
        &self,
        proto: u8,
        port: u16,
        remote: std::net::SocketAddr,
    ) -> Result<()> {
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
}
