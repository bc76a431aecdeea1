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

/// The XDP program attached to `ifindex` without a link (through netlink, as libbpf's and
/// libxdp's AF_XDP setups do): its id and the mode flag it was attached with
/// ([`XDP_FLAGS_DRV_MODE`] or [`XDP_FLAGS_SKB_MODE`]), or None.
#[cfg_attr(not(feature = "dpdk"), allow(dead_code))]
pub(crate) fn xdp_attached(ifindex: u32) -> io::Result<Option<(u32, u32)>> {
    // SAFETY: plain old data; `sz` tells libbpf which fields we know of.
    let mut opts: libbpf_sys::bpf_xdp_query_opts = unsafe { std::mem::zeroed() };
    opts.sz = std::mem::size_of::<libbpf_sys::bpf_xdp_query_opts>() as _;
    // SAFETY: opts is valid and writable for the call.
    let rc = unsafe { libbpf_sys::bpf_xdp_query(ifindex as i32, 0, &mut opts) };
    if rc < 0 {
        return Err(io::Error::from_raw_os_error(-rc));
    }
    Ok(match opts.attach_mode as u32 {
        libbpf_sys::XDP_ATTACHED_DRV => Some((opts.drv_prog_id, XDP_FLAGS_DRV_MODE)),
        libbpf_sys::XDP_ATTACHED_SKB => Some((opts.skb_prog_id, XDP_FLAGS_SKB_MODE)),
        _ => None,
    })
}

/// A descriptor of the loaded BPF program `id`.
#[cfg_attr(not(feature = "dpdk"), allow(dead_code))]
pub(crate) fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain bpf(2) wrapper; returns a new descriptor or a negative errno.
    let fd = unsafe { libbpf_sys::bpf_prog_get_fd_by_id(id) };
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(-fd));
    }
    // SAFETY: a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Load the smallest XDP program, `return XDP_DROP` (probes of what the kernel allows).
pub(crate) fn load_xdp_drop() -> io::Result<OwnedFd> {
    // SAFETY: bpf_insn is plain old data; all-zero is `r0 = r0 + 0`-like padding we overwrite.
    let mut insns: [libbpf_sys::bpf_insn; 2] = unsafe { std::mem::zeroed() };
    // r0 = 1 (XDP_DROP): BPF_ALU64 | BPF_MOV | BPF_K, registers 0.
    insns[0].code = 0xb7;
    insns[0].imm = 1;
    // exit: BPF_JMP | BPF_EXIT.
    insns[1].code = 0x95;
    // SAFETY: valid C strings and two instructions; returns a new descriptor or -errno.
    let fd = unsafe {
        libbpf_sys::bpf_prog_load(
            libbpf_sys::BPF_PROG_TYPE_XDP,
            c"xs_probe".as_ptr(),
            c"GPL".as_ptr(),
            insns.as_ptr(),
            insns.len() as _,
            std::ptr::null_mut(),
        )
    };
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(-fd));
    }
    // SAFETY: a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `BPF_F_TEST_XDP_LIVE_FRAMES`: run an XDP program over a page_pool of real frames whose
/// verdicts are carried out (redirects sent).
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 2;

/// Run the XDP program `prog` `repeat` times in live-frames mode over frames made from
/// `frame`, `batch` (1..=256) frames per page_pool and flush (`BPF_PROG_RUN`). Returns
/// `EINTR` if a signal came first (some frames may have run).
pub(crate) fn prog_run_live(
    prog: BorrowedFd<'_>,
    frame: &[u8],
    repeat: u32,
    batch: u32,
) -> io::Result<()> {
    // SAFETY: plain old data; `sz` tells libbpf which fields we know of.
    let mut opts: libbpf_sys::bpf_test_run_opts = unsafe { std::mem::zeroed() };
    opts.sz = std::mem::size_of::<libbpf_sys::bpf_test_run_opts>() as _;
    opts.data_in = frame.as_ptr().cast();
    opts.data_size_in = frame.len() as u32;
    opts.repeat = repeat.min(i32::MAX as u32) as i32;
    opts.flags = BPF_F_TEST_XDP_LIVE_FRAMES;
    opts.batch_size = batch;
    // SAFETY: `frame` is live for the call and its length is passed; there is no output
    // buffer; `prog` is a loaded program's descriptor.
    let r = unsafe { libbpf_sys::bpf_prog_test_run_opts(prog.as_raw_fd(), &mut opts) };
    if r < 0 {
        return Err(io::Error::from_raw_os_error(-r));
    }
    Ok(())
}

#[cfg(test)]
/// Run `prog` once over a copy of `frame` (`BPF_PROG_RUN`, not live: nothing is sent);
/// returns the program's verdict.
pub(crate) fn prog_run_once(prog: BorrowedFd<'_>, frame: &[u8]) -> io::Result<u32> {
    // SAFETY: plain old data; `sz` tells libbpf which fields we know of.
    let mut opts: libbpf_sys::bpf_test_run_opts = unsafe { std::mem::zeroed() };
    opts.sz = std::mem::size_of::<libbpf_sys::bpf_test_run_opts>() as _;
    opts.data_in = frame.as_ptr().cast();
    opts.data_size_in = frame.len() as u32;
    opts.repeat = 1;
    // SAFETY: `frame` is live for the call and its length is passed; there is no output
    // buffer; `prog` is a loaded program's descriptor.
    let r = unsafe { libbpf_sys::bpf_prog_test_run_opts(prog.as_raw_fd(), &mut opts) };
    if r < 0 {
        return Err(io::Error::from_raw_os_error(-r));
    }
    Ok(opts.retval)
}

/// A `BPF_F_MMAPABLE` array map mapped into this process: its values are plain memory that
/// the program and this process share (the program sees a write at once, and this process
/// sees the program's). Who writes which value, and when, is the user's protocol; this type
/// only keeps every access inside the mapping.
pub(crate) struct MappedArray {
    map: crate::sys::mmap::Mapping,
    /// Bytes from one value to the next (the value size rounded up to 8, as the kernel lays
    /// them out).
    stride: usize,
    entries: usize,
}

impl MappedArray {
    /// Map the `entries` values of `value_size` bytes of the array map `fd`.
    pub(crate) fn new(fd: BorrowedFd<'_>, value_size: usize, entries: usize) -> io::Result<Self> {
        let stride = value_size.div_ceil(8) * 8;
        let len = stride
            .checked_mul(entries)
            .filter(|&l| l > 0)
            .ok_or_else(|| io::Error::other("empty or oversized map"))?;
        let page = 4096;
        let map = crate::sys::mmap::Mapping::shared(fd, len.div_ceil(page) * page, 0)?;
        Ok(MappedArray {
            map,
            stride,
            entries,
        })
    }

    /// Value `i`, to write (the program must not be reading it meanwhile: the caller's
    /// protocol guarantees it, as for a UMEM frame handed to user space).
    pub(crate) fn value_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        if i >= self.entries {
            return None;
        }
        // SAFETY: value `i` lies inside the mapping (i < entries, entries × stride ≤ its
        // length); `&mut self` makes this the only reference this process holds into it,
        // for as long as it is borrowed.
        Some(unsafe {
            std::slice::from_raw_parts_mut(self.map.ptr().add(i * self.stride), self.stride)
        })
    }

    /// The 8-byte word at byte `off` of value `i`, shared with the program (atomic access:
    /// the program writes it meanwhile).
    pub(crate) fn word(&self, i: usize, off: usize) -> Option<&std::sync::atomic::AtomicU64> {
        if i >= self.entries || off % 8 != 0 || off + 8 > self.stride {
            return None;
        }
        // SAFETY: 8-aligned (the mapping is page-aligned, stride and off are multiples of
        // 8) and inside the mapping; AtomicU64 has u64's layout; the reference borrows
        // `self`, so the mapping outlives it.
        Some(unsafe {
            &*(self.map.ptr().add(i * self.stride + off) as *const std::sync::atomic::AtomicU64)
        })
    }
}
