//! A dead man's switch for a connection whose TCP lives in this process (AF_XDP): if the
//! process dies without closing it (SIGKILL, a crash), a small child process makes the peer
//! learn of it, instead of leaving it ESTABLISHED forever.
//!
//! How: the child holds the read end of a pipe whose write end only this process holds. When
//! the process is gone, the read returns end-of-file; the child then sends the peer, through
//! a raw socket made beforehand, a segment of the connection with a sequence number far
//! outside its window. The peer answers with an ACK, which reaches the kernel's own stack
//! (our XDP program is gone with the process), where no socket has the 4-tuple: the kernel
//! replies with a RST whose sequence number is the peer's own acknowledgement, exactly what
//! the peer expects, so the peer resets the connection. If the connection is closed
//! properly, [`Watchdog::disarm`] tells the child to leave quietly.
//!
//! The child is made by `fork` from a possibly multi-threaded process, so until it exits it
//! only makes async-signal-safe system calls (close_range, read, nanosleep, sendto, _exit)
//! on data prepared before the fork.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::cvt;

/// The parent's end of the switch.
#[derive(Debug)]
pub(crate) struct Watchdog {
    pipe: Option<OwnedFd>,
}

/// Times the child sends its segment after the process is gone (the peer rate-limits its
/// answers to out-of-window segments to one per 500 ms, and our XDP program may need a moment
/// to be detached once the process is gone).
const SEND_AFTER_MS: [u64; 3] = [200, 900, 2000];

impl Watchdog {
    /// Arm a switch that sends `segment` (a whole TCP segment, checksum included) from
    /// `local` to `peer` if this process dies before [`Watchdog::disarm`].
    pub(crate) fn arm(segment: &[u8], local: SocketAddr, peer: SocketAddr) -> io::Result<Self> {
        let domain = if peer.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        // SAFETY: plain socket(2); the descriptor is owned right below.
        let raw = cvt(unsafe {
            libc::socket(
                domain,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::IPPROTO_TCP,
            )
        })?;
        // SAFETY: `raw` is a new descriptor nothing else owns.
        let raw = unsafe { OwnedFd::from_raw_fd(raw) };
        let local_sa = socket2::SockAddr::from(SocketAddr::new(local.ip(), 0));
        // SAFETY: the address points at a live sockaddr of the length given.
        cvt(unsafe { libc::bind(raw.as_raw_fd(), local_sa.as_ptr().cast(), local_sa.len()) })?;
        let dst = socket2::SockAddr::from(SocketAddr::new(peer.ip(), 0));
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors into the array.
        cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
        // SAFETY: both are new descriptors nothing else owns.
        let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let seg = segment.to_vec();
        let (rd_fd, raw_fd) = (rd.as_raw_fd(), raw.as_raw_fd());
        // SAFETY: fork(2). The child below only makes async-signal-safe calls on memory
        // prepared before the fork (`seg`, `dst`), then `_exit`s; it never returns here.
        let pid = cvt(unsafe { libc::fork() })?;
        if pid == 0 {
            // Fork once more and leave: the watchdog is then init's child, reaped by it, and
            // no zombie stays behind in this process per connection.
            // SAFETY: as above; both branches end in `_exit`.
            unsafe {
                if libc::fork() == 0 {
                    child(rd_fd, raw_fd, &seg, &dst)
                }
                libc::_exit(0)
            }
        }
        drop((rd, raw));
        let mut st = 0;
        // SAFETY: waitpid on our own child (which exits at once), into a live int.
        let _ = cvt(unsafe { libc::waitpid(pid, &mut st, 0) });
        Ok(Watchdog { pipe: Some(wr) })
    }

    /// The connection ended properly: the child leaves without sending.
    pub(crate) fn disarm(&mut self) {
        if let Some(p) = self.pipe.take() {
            // SAFETY: one byte from a live buffer to a descriptor we own.
            unsafe { libc::write(p.as_raw_fd(), b"q".as_ptr().cast(), 1) };
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Not disarmed: closing the pipe is the watchdog's signal to send.
        self.pipe.take();
    }
}

/// The child: wait for the parent's end of the pipe, then send or leave.
///
/// # Safety
/// Only in the child right after `fork`; never returns.
unsafe fn child(rd: i32, raw: i32, seg: &[u8], dst: &socket2::SockAddr) -> ! {
    // Keep only the pipe and the raw socket: in particular no AF_XDP socket, UMEM or BPF
    // link, so they go away with the parent.
    let (lo, hi) = (rd.min(raw), rd.max(raw));
    if lo > 0 {
        libc::syscall(libc::SYS_close_range, 0u32, (lo - 1) as u32, 0u32);
    }
    if hi - lo > 1 {
        libc::syscall(
            libc::SYS_close_range,
            (lo + 1) as u32,
            (hi - 1) as u32,
            0u32,
        );
    }
    libc::syscall(libc::SYS_close_range, (hi + 1) as u32, u32::MAX, 0u32);
    let mut b = 0u8;
    let n = loop {
        let n = libc::read(rd, (&mut b as *mut u8).cast(), 1);
        if n >= 0 || *libc::__errno_location() != libc::EINTR {
            break n;
        }
    };
    if n == 0 {
        // End of file: the parent is gone without disarming.
        let mut waited = 0;
        for at in SEND_AFTER_MS {
            let ms = at - waited;
            let ts = libc::timespec {
                tv_sec: (ms / 1000) as libc::time_t,
                tv_nsec: ((ms % 1000) * 1_000_000) as libc::c_long,
            };
            libc::nanosleep(&ts, std::ptr::null_mut());
            waited = at;
            libc::sendto(
                raw,
                seg.as_ptr().cast(),
                seg.len(),
                0,
                dst.as_ptr().cast(),
                dst.len(),
            );
        }
    }
    libc::_exit(0)
}
