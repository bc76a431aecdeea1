//! The thin syscall layer: every `unsafe` call into libc of the kernel backend lives here,
//! each with its `// SAFETY:` argument. Callers get `io::Result`s.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cvt_size(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// `sendfile(2)`: move up to `count` bytes of `file` from `*offset` to socket `out`,
/// advancing `*offset`. Returns 0 at end of file.
pub fn sendfile(
    out: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: &mut u64,
    count: usize,
) -> io::Result<usize> {
    let mut off = *offset as libc::off_t;
    // SAFETY: both descriptors are borrowed (open for the call), `off` is a valid off_t the
    // kernel updates, and sendfile reads no user memory.
    let r = unsafe { libc::sendfile(out.as_raw_fd(), file.as_raw_fd(), &mut off, count) };
    let n = cvt_size(r)?;
    *offset = off as u64;
    Ok(n)
}

/// `send(2)` with `MSG_NOSIGNAL | MSG_DONTWAIT` (+ `MSG_MORE` when `more`).
pub fn send(fd: BorrowedFd<'_>, buf: &[u8], more: bool) -> io::Result<usize> {
    let mut flags = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;
    if more {
        flags |= libc::MSG_MORE;
    }
    // SAFETY: `buf` is a valid slice for its length for the duration of the call.
    let r = unsafe { libc::send(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), flags) };
    cvt_size(r)
}

/// `sendmmsg(2)` of prepared headers, non-blocking. Returns how many messages were sent.
///
/// # Safety
/// Every `msg_hdr` in `msgs` must point to iovecs (and those to buffers) that stay valid and
/// unchanged for the duration of the call.
pub unsafe fn sendmmsg(fd: BorrowedFd<'_>, msgs: &mut [libc::mmsghdr]) -> io::Result<usize> {
    // SAFETY: the caller guarantees the message headers and what they point to are valid;
    // `msgs` is a valid array of `msgs.len()` headers the kernel may write `msg_len` into.
    let r = unsafe {
        libc::sendmmsg(
            fd.as_raw_fd(),
            msgs.as_mut_ptr(),
            msgs.len() as libc::c_uint,
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    cvt(r).map(|n| n as usize)
}

/// `recvmmsg(2)`, blocking up to the socket's receive timeout.
///
/// # Safety
/// Every header must point to valid, writable iovecs/buffers for the call.
pub unsafe fn recvmmsg(fd: BorrowedFd<'_>, msgs: &mut [libc::mmsghdr]) -> io::Result<usize> {
    // SAFETY: the caller guarantees the buffers are valid and writable; no timeout struct.
    let r = unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            msgs.as_mut_ptr(),
            msgs.len() as libc::c_uint,
            libc::MSG_WAITFORONE,
            std::ptr::null_mut(),
        )
    };
    cvt(r).map(|n| n as usize)
}

/// Wait up to `timeout` for `events` (`POLLIN`, `POLLOUT`) on `fd`.
/// Returns the revents (0 on timeout or signal).
pub fn poll(
    fd: BorrowedFd<'_>,
    events: libc::c_short,
    timeout: Duration,
) -> io::Result<libc::c_short> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `p` is one valid pollfd.
    match cvt(unsafe { libc::poll(&mut p, 1, ms) }) {
        Ok(_) => Ok(p.revents),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e) => Err(e),
    }
}

/// Bytes in a TCP socket's send queue not yet acknowledged by the peer (`SIOCOUTQ`).
pub fn tcp_outq(fd: BorrowedFd<'_>) -> io::Result<u32> {
    let mut v: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one int to the pointer given.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut v) })?;
    Ok(v as u32)
}

/// Segments a TCP socket has sent so far (`tcpi_segs_out` of `TCP_INFO`), if the kernel
/// reports it.
pub fn tcp_segs_out(fd: BorrowedFd<'_>) -> Option<u32> {
    // struct tcp_info: tcpi_segs_out is the u32 at byte offset 136 (Linux >= 4.2).
    const OFF: usize = 136;
    let mut buf = [0u8; 256];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `buf` and updates `len`.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if r < 0 || (len as usize) < OFF + 4 {
        return None;
    }
    Some(u32::from_ne_bytes([
        buf[OFF],
        buf[OFF + 1],
        buf[OFF + 2],
        buf[OFF + 3],
    ]))
}

/// `setsockopt` of one int.
pub fn setsockopt_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: passes a pointer to a live c_int and its exact size.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `getsockopt` of one int.
pub fn getsockopt_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `v` and updates `len`.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(v)
}

/// Interface index of `name` in the calling thread's network namespace.
pub fn if_nametoindex(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// Name of interface `index` in the calling thread's network namespace.
pub fn if_indextoname(index: u32) -> Option<String> {
    let mut buf = [0u8; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes if_indextoname may write (NUL included).
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr().cast()) };
    if p.is_null() {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}

/// Move the calling thread into the network namespace open at `fd` (`setns(2)`).
pub fn setns_net(fd: RawFd) -> io::Result<()> {
    // SAFETY: setns only reads the descriptor; an invalid one gives EBADF.
    cvt(unsafe { libc::setns(fd, libc::CLONE_NEWNET) }).map(drop)
}

/// Enter the named network namespace (`/run/netns/NAME`) on the calling thread.
pub fn enter_netns(name: &str) -> io::Result<()> {
    let f = std::fs::File::open(format!("/run/netns/{name}"))?;
    setns_net(f.as_raw_fd())
}

/// Current CLOCK_REALTIME in ns (vDSO, no syscall).
pub fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Kick an AF_XDP socket's TX ring (`sendto` with no data): the kernel transmits up to its
/// TX budget. EAGAIN/EBUSY/ENOBUFS mean "call again"; other errors are real.
pub fn xsk_kick(fd: RawFd) -> io::Result<()> {
    // SAFETY: a zero-length sendto with null buffer and address is the documented AF_XDP kick.
    let r = unsafe {
        libc::sendto(
            fd,
            std::ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null(),
            0,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `SOL_XDP` socket option level.
pub const SOL_XDP: libc::c_int = 283;
/// `XDP_MAX_TX_SKB_BUDGET` (missing from Debian's headers): frames one kick may send.
pub const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;

fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain old data; all-zero is valid.
    let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
    let b = name.as_bytes();
    if b.len() >= r.ifr_name.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    for (d, s) in r.ifr_name.iter_mut().zip(b) {
        *d = *s as libc::c_char;
    }
    Ok(r)
}

fn ifreq_ioctl(name: &str, req: libc::c_ulong) -> io::Result<libc::ifreq> {
    let mut r = ifreq(name)?;
    let s =
        std::net::UdpSocket::bind("0.0.0.0:0").or_else(|_| std::net::UdpSocket::bind("[::]:0"))?;
    // SAFETY: the request reads ifr_name and writes the union of the live ifreq.
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), req, &mut r) })?;
    Ok(r)
}

/// MAC address of an interface (in the calling thread's namespace).
pub fn if_hwaddr(name: &str) -> io::Result<[u8; 6]> {
    let r = ifreq_ioctl(name, libc::SIOCGIFHWADDR)?;
    // SAFETY: SIOCGIFHWADDR filled the ifru_hwaddr member.
    let sa = unsafe { r.ifr_ifru.ifru_hwaddr };
    let mut m = [0u8; 6];
    for (d, s) in m.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok(m)
}

/// MTU of an interface.
pub fn if_mtu(name: &str) -> io::Result<u32> {
    let r = ifreq_ioctl(name, libc::SIOCGIFMTU)?;
    // SAFETY: SIOCGIFMTU filled the ifru_mtu member.
    Ok(unsafe { r.ifr_ifru.ifru_mtu } as u32)
}

/// True if the interface is administratively and operationally up.
pub fn if_running(name: &str) -> io::Result<bool> {
    let r = ifreq_ioctl(name, libc::SIOCGIFFLAGS)?;
    // SAFETY: SIOCGIFFLAGS filled the ifru_flags member.
    let f = unsafe { r.ifr_ifru.ifru_flags } as libc::c_int;
    Ok(f & libc::IFF_UP != 0 && f & libc::IFF_RUNNING != 0)
}

/// Attach an XDP program to `ifindex` through a BPF link with `flags`
/// (`XDP_FLAGS_DRV_MODE` / `XDP_FLAGS_SKB_MODE`). Closing the returned descriptor detaches
/// it, also when the process dies.
pub fn bpf_link_xdp(prog_fd: RawFd, ifindex: u32, flags: u32) -> io::Result<std::os::fd::OwnedFd> {
    use libbpf_rs::libbpf_sys;
    use std::os::fd::FromRawFd;
    // SAFETY: the opts struct is plain old data; sz tells libbpf which fields we know of.
    let mut opts: libbpf_sys::bpf_link_create_opts = unsafe { std::mem::zeroed() };
    opts.sz = std::mem::size_of::<libbpf_sys::bpf_link_create_opts>() as _;
    opts.flags = flags;
    // SAFETY: prog_fd is a loaded program's descriptor and opts is valid for the call.
    let fd =
        unsafe { libbpf_sys::bpf_link_create(prog_fd, ifindex as i32, libbpf_sys::BPF_XDP, &opts) };
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(-fd));
    }
    // SAFETY: bpf_link_create returned a new descriptor that nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// `preadv(2)` until all of `iovs` is filled from `offset` on, or end of file. Returns the
/// bytes read (short only at end of file). One call normally fills a whole batch of frames.
///
/// # Safety
/// Every iovec must point to writable memory of its length that nothing else accesses
/// during the call.
pub unsafe fn preadv_all(
    fd: RawFd,
    iovs: &mut [libc::iovec],
    mut offset: u64,
) -> io::Result<usize> {
    let mut done = 0usize;
    let mut first = 0usize;
    while first < iovs.len() {
        let cnt = (iovs.len() - first).min(1024) as libc::c_int;
        // SAFETY: the caller guarantees the iovecs; `first..first + cnt` is in bounds.
        let r = unsafe { libc::preadv(fd, iovs.as_ptr().add(first), cnt, offset as libc::off_t) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            break;
        }
        let mut n = r as usize;
        done += n;
        offset += n as u64;
        // Skip the iovecs that were filled; trim a partly filled one.
        while n > 0 && first < iovs.len() {
            let l = iovs[first].iov_len;
            if n >= l {
                n -= l;
                first += 1;
            } else {
                // SAFETY: advancing within the same buffer by less than its length.
                iovs[first].iov_base = unsafe { (iovs[first].iov_base as *mut u8).add(n) }.cast();
                iovs[first].iov_len = l - n;
                n = 0;
            }
        }
    }
    Ok(done)
}

/// Pin the calling thread to one CPU (`sched_setaffinity`).
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain old data; CPU_ZERO/CPU_SET only write inside it, and
    // sched_setaffinity reads `size_of::<cpu_set_t>()` bytes of it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        cvt(libc::sched_setaffinity(
            0,
            std::mem::size_of::<libc::cpu_set_t>(),
            &set,
        ))
        .map(drop)
    }
}
