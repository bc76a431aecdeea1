//! Attaching an XDP program through a BPF link (libbpf's C API).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use libbpf_rs::libbpf_sys;

/// `XDP_FLAGS_SKB_MODE`: generic (SKB) mode.
pub(crate) const XDP_FLAGS_SKB_MODE: u32 = 2;
/// `XDP_FLAGS_DRV_MODE`: native (driver) mode.
pub(crate) const XDP_FLAGS_DRV_MODE: u32 = 4;

/// Attach the XDP program `prog` to `ifindex` through a BPF link with `flags`
/// ([`XDP_FLAGS_DRV_MODE`] / [`XDP_FLAGS_SKB_MODE`]). Closing the returned descriptor
/// detaches it, also when the process dies.
pub(crate) fn link_xdp(prog: BorrowedFd<'_>, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
    // SAFETY: the opts struct is plain old data; `sz` tells libbpf which fields we know of.
    let mut opts: libbpf_sys::bpf_link_create_opts = unsafe { std::mem::zeroed() };
    opts.sz = std::mem::size_of::<libbpf_sys::bpf_link_create_opts>() as _;
    opts.flags = flags;
    // SAFETY: `prog` is a loaded program's descriptor, open for the call; opts is valid.
    let fd = unsafe {
        libbpf_sys::bpf_link_create(prog.as_raw_fd(), ifindex as i32, libbpf_sys::BPF_XDP, &opts)
    };
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(-fd));
    }
    // SAFETY: bpf_link_create returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
