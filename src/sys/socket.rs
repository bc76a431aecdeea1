//! Socket calls of the kernel path and the receiver: sendfile, send, batched datagrams over
//! `IoSlice`s, poll, socket options.

use std::io::{self, IoSlice};
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// Most messages one [`sendmmsg`] or [`recvmmsg`] call takes.
pub(crate) const MAX_MSGS: usize = 64;

/// `sendfile(2)`: move up to `count` bytes of `file` from `*offset` to socket `out`,
/// advancing `*offset`. Returns 0 at end of file.
pub(crate) fn sendfile(
    out: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: &mut u64,
    count: usize,
) -> io::Result<usize> {
    let mut off = *offset as libc::off_t;
    // SAFETY: both descriptors are borrowed (open for the call), `off` is a live off_t the
    // kernel updates, and sendfile reads no user memory.
    let n = syscall!(sendfile(out.as_raw_fd(), file.as_raw_fd(), &mut off, count))?;
    *offset = off as u64;
    Ok(n as usize)
}

/// `send(2)` with `MSG_NOSIGNAL | MSG_DONTWAIT` (+ `MSG_MORE` when `more`).
pub(crate) fn send(fd: BorrowedFd<'_>, buf: &[u8], more: bool) -> io::Result<usize> {
    let mut flags = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;
    if more {
        flags |= libc::MSG_MORE;
    }
    // SAFETY: `buf` is a valid slice for its length for the duration of the call.
    let n = syscall!(send(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), flags))?;
    Ok(n as usize)
}

/// `sendmmsg(2)`, non-blocking, of up to [`MAX_MSGS`] datagrams: datagram `i` is the
/// concatenation of `iovs[msgs[i].0 .. msgs[i].0 + msgs[i].1]`. Returns how many were sent.
pub(crate) fn sendmmsg(
    fd: BorrowedFd<'_>,
    iovs: &[IoSlice<'_>],
    msgs: &[(usize, usize)],
) -> io::Result<usize> {
    let n = msgs.len().min(MAX_MSGS);
    // SAFETY: mmsghdr is plain old data; all-zero is a valid empty header.
    let mut hdrs: [libc::mmsghdr; MAX_MSGS] = unsafe { zeroed() };
    for (h, &(start, count)) in hdrs.iter_mut().zip(&msgs[..n]) {
        let v = &iovs[start..start + count];
        // IoSlice is ABI-compatible with iovec (std guarantees it on Unix).
        h.msg_hdr.msg_iov = v.as_ptr() as *mut libc::iovec;
        h.msg_hdr.msg_iovlen = v.len();
    }
    // SAFETY: every header points at iovecs borrowed from `iovs` (alive and unchanged for the
    // call, bounds checked by the slicing above); the kernel only reads them and writes
    // `msg_len` into `hdrs`.
    let r = syscall!(sendmmsg(
        fd.as_raw_fd(),
        hdrs.as_mut_ptr(),
        n as libc::c_uint,
        libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
    ))?;
    Ok(r as usize)
}

/// Receive buffers and results of one [`recvmmsg`] call.
pub(crate) struct RecvBatch {
    bufs: Vec<u8>,
    size: usize,
    lens: [usize; MAX_MSGS],
    srcs: [Option<SocketAddr>; MAX_MSGS],
}

impl RecvBatch {
    /// [`MAX_MSGS`] buffers of `size` bytes each.
    pub(crate) fn new(size: usize) -> Self {
        RecvBatch {
            bufs: vec![0u8; size * MAX_MSGS],
            size,
            lens: [0; MAX_MSGS],
            srcs: [None; MAX_MSGS],
        }
    }

    /// Datagram `i` of the last call.
    pub(crate) fn datagram(&self, i: usize) -> &[u8] {
        &self.bufs[i * self.size..i * self.size + self.lens[i]]
    }

    /// Sender of datagram `i` of the last call.
    pub(crate) fn source(&self, i: usize) -> Option<SocketAddr> {
        self.srcs[i]
    }
}

/// `recvmmsg(2)` with `MSG_WAITFORONE`, blocking up to the socket's receive timeout. Returns
/// how many datagrams arrived (see [`RecvBatch::datagram`]).
pub(crate) fn recvmmsg(fd: BorrowedFd<'_>, batch: &mut RecvBatch) -> io::Result<usize> {
    // SAFETY: plain old data; all-zero is valid for these C structs.
    let mut hdrs: [libc::mmsghdr; MAX_MSGS] = unsafe { zeroed() };
    // SAFETY: as above.
    let mut names: [libc::sockaddr_storage; MAX_MSGS] = unsafe { zeroed() };
    let mut iovs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX_MSGS];
    let size = batch.size;
    // One pointer to the whole buffer, offset per datagram (re-borrowing a sub-slice per
    // datagram would invalidate the earlier pointers).
    let base = batch.bufs.as_mut_ptr();
    debug_assert!(batch.bufs.len() >= MAX_MSGS * size);
    for (i, ((h, iov), name)) in hdrs
        .iter_mut()
        .zip(iovs.iter_mut())
        .zip(names.iter_mut())
        .enumerate()
    {
        // `wrapping_add`: plain pointer arithmetic; `i * size` stays inside `bufs`, which
        // holds `MAX_MSGS * size` bytes.
        iov.iov_base = base.wrapping_add(i * size).cast();
        iov.iov_len = size;
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
        h.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
        h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as u32;
    }
    // SAFETY: every header points at its own iovec, its own `size`-byte region of
    // `batch.bufs` and its own address storage, all alive and not otherwise borrowed for the
    // call; no timeout struct.
    let n = syscall!(recvmmsg(
        fd.as_raw_fd(),
        hdrs.as_mut_ptr(),
        MAX_MSGS as libc::c_uint,
        libc::MSG_WAITFORONE,
        std::ptr::null_mut(),
    ))? as usize;
    for i in 0..n {
        batch.lens[i] = hdrs[i].msg_len as usize;
        batch.srcs[i] = sockaddr_of(&names[i]);
    }
    Ok(n)
}

/// The address in a `sockaddr_storage` the kernel filled.
fn sockaddr_of(sa: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match sa.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in, which is smaller.
            let a = unsafe { &*(sa as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6, which is smaller.
            let a = unsafe { &*(sa as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::from((ip, u16::from_be(a.sin6_port))))
        }
        _ => None,
    }
}

/// Wait up to `timeout` for `events` (`POLLIN`, `POLLOUT`) on `fd`.
/// Returns the revents (0 on timeout or signal).
pub(crate) fn poll(
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
    match syscall!(poll(&mut p, 1, ms)) {
        Ok(_) => Ok(p.revents),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e) => Err(e),
    }
}

/// Bytes in a TCP socket's send queue not yet acknowledged by the peer (`SIOCOUTQ`).
pub(crate) fn tcp_outq(fd: BorrowedFd<'_>) -> io::Result<u32> {
    let mut v: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one int to the pointer given.
    syscall!(ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut v))?;
    Ok(v as u32)
}

/// Segments a TCP socket has sent so far (`tcpi_segs_out` of `TCP_INFO`), if the kernel
/// reports it.
pub(crate) fn tcp_segs_out(fd: BorrowedFd<'_>) -> Option<u32> {
    // struct tcp_info: tcpi_segs_out is the u32 at byte offset 136 (Linux >= 4.2).
    const OFF: usize = 136;
    let mut buf = [0u8; 256];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `buf` and updates `len`.
    let r = syscall!(getsockopt(
        fd.as_raw_fd(),
        libc::IPPROTO_TCP,
        libc::TCP_INFO,
        buf.as_mut_ptr().cast(),
        &mut len,
    ));
    if r.is_err() || (len as usize) < OFF + 4 {
        return None;
    }
    Some(u32::from_ne_bytes([
        buf[OFF],
        buf[OFF + 1],
        buf[OFF + 2],
        buf[OFF + 3],
    ]))
}

/// `setsockopt` of a plain-old-data value.
pub(crate) fn setsockopt<T: Copy>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    v: &T,
) -> io::Result<()> {
    // SAFETY: passes a pointer to a live `T` and its exact size; the kernel only reads it.
    syscall!(setsockopt(
        fd.as_raw_fd(),
        level,
        name,
        (v as *const T).cast(),
        size_of::<T>() as libc::socklen_t,
    ))
    .map(drop)
}

/// `setsockopt` of one int.
pub(crate) fn setsockopt_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    setsockopt(fd, level, name, &v)
}

/// `getsockopt` of a plain-old-data value; fails unless the kernel wrote exactly its size.
pub(crate) fn getsockopt<T: super::Pod>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<T> {
    // SAFETY: T is plain old data (the `Pod` bound): all-zero is a valid value, which the
    // kernel overwrites.
    let mut v: T = unsafe { zeroed() };
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `v` and updates `len`.
    syscall!(getsockopt(
        fd.as_raw_fd(),
        level,
        name,
        (&mut v as *mut T).cast(),
        &mut len,
    ))?;
    if len as usize != size_of::<T>() {
        return Err(io::Error::other(format!(
            "getsockopt({level}, {name}) returned {len} bytes, {} expected",
            size_of::<T>()
        )));
    }
    Ok(v)
}

/// `getsockopt` of one int.
pub(crate) fn getsockopt_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<libc::c_int> {
    getsockopt(fd, level, name)
}

/// MTU of the route a connected datagram socket uses (`IP_MTU` / `IPV6_MTU`).
pub(crate) fn path_mtu(fd: BorrowedFd<'_>, v6: bool) -> io::Result<u32> {
    let mtu = if v6 {
        getsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_MTU)
    } else {
        getsockopt_int(fd, libc::IPPROTO_IP, libc::IP_MTU)
    }?;
    Ok(mtu as u32)
}
