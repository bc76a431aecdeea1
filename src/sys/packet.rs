//! AF_PACKET sockets that send whole Ethernet frames through the kernel's device layer.

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use super::socket;

/// `PACKET_QDISC_BYPASS` (linux/if_packet.h): frames go to the driver without the qdisc.
const PACKET_QDISC_BYPASS: libc::c_int = 20;

/// A raw packet socket bound to `ifindex` for sending (protocol 0: it receives nothing).
/// Returns the socket and whether the qdisc is bypassed.
pub(crate) fn tx_socket(ifindex: u32) -> io::Result<(OwnedFd, bool)> {
    // SAFETY: plain socket(2).
    let fd = syscall!(socket(
        libc::AF_PACKET,
        libc::SOCK_RAW | libc::SOCK_CLOEXEC,
        0
    ))?;
    // SAFETY: a new descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: the address is a live sockaddr_ll of the length given.
    syscall!(bind(
        fd.as_raw_fd(),
        (&sll as *const libc::sockaddr_ll).cast(),
        size_of::<libc::sockaddr_ll>() as libc::socklen_t
    ))?;
    let bypass =
        socket::setsockopt_int(fd.as_fd(), libc::SOL_PACKET, PACKET_QDISC_BYPASS, 1).is_ok();
    let _ = socket::setsockopt_int(fd.as_fd(), libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, 8 << 20);
    Ok((fd, bypass))
}
