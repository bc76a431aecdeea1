//! A `NETLINK_ROUTE` or `NETLINK_GENERIC` socket: send a request to the kernel, receive its answers.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// A netlink socket talking to the kernel.
pub(crate) struct Netlink {
    fd: OwnedFd,
}

impl Netlink {
    /// Open a `NETLINK_ROUTE` socket in the calling thread's namespace; receives time out
    /// after `timeout` (a kernel that never answers cannot hang the caller).
    pub(crate) fn route(timeout: Duration) -> io::Result<Self> {
        Self::open(libc::NETLINK_ROUTE, timeout)
    }

    /// Open a `NETLINK_GENERIC` socket, likewise.
    pub(crate) fn generic(timeout: Duration) -> io::Result<Self> {
        Self::open(libc::NETLINK_GENERIC, timeout)
    }

    fn open(proto: libc::c_int, timeout: Duration) -> io::Result<Self> {
        // SAFETY: plain socket(2); the descriptor is owned right away.
        let raw = syscall!(socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            proto,
        ))?;
        // SAFETY: `raw` is a new descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        use std::os::fd::AsFd;
        super::socket::setsockopt(fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)?;
        Ok(Netlink { fd })
    }

    /// Send one message to the kernel.
    pub(crate) fn send(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: an all-zero sockaddr_nl addresses the kernel (pid 0).
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: `msg` and `sa` are live for the call and their sizes are passed.
        syscall!(sendto(
            self.fd.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&sa as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        ))
        .map(drop)
    }

    /// Receive one datagram into `buf`; returns its length.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: receives into `buf`, at most its length.
        let n = syscall!(recv(
            self.fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            0
        ))?;
        Ok(n as usize)
    }
}
