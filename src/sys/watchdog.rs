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
//! The child is made with `clone(CLONE_VM)`: it shares this process's memory map (a forked
//! copy would hold its own references to the AF_XDP rings and UMEM while this process runs,
//! and keep the queue busy for the next connection; shared, they go when this process drops
//! them — or, if it is killed, when the watchdog exits, seconds later), has a copy of the
//! descriptor table (of which it closes all but its
//! two), runs on a stack of its own with every signal blocked, leaves the process group
//! (setsid), and makes only raw system calls (no libc wrappers: errno would be the parent
//! thread's) on data prepared before it starts. A kill of the whole cgroup ends it too. When this process drops the
//! [`Watchdog`] normally, it tells the child to leave and waits for it, so the shared stack
//! and data outlive it; when this process is killed, the memory stays alive as long as the
//! child uses it.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::cvt;
use super::mmap::Mapping;

/// The parent's end of the switch.
#[derive(Debug)]
pub(crate) struct Watchdog {
    pipe: Option<OwnedFd>,
    child: libc::pid_t,
    /// The child's stack and data: freed only after it has exited.
    stack: Option<Mapping>,
    args: Option<Box<Args>>,
}

/// What the child works with, prepared before it starts.
#[derive(Debug)]
struct Args {
    rd: i32,
    raw: i32,
    seg: Vec<u8>,
    dst: socket2::SockAddr,
}

/// The child's stack.
const STACK: usize = 64 << 10;

/// Times the child sends its segment after the process is gone (the peer rate-limits its
/// answers to out-of-window segments to one per 500 ms, and our XDP program may need a moment
/// to be detached once the process is gone).
const SEND_AFTER_MS: [u64; 3] = [200, 900, 2000];

impl Watchdog {
    /// Arm a switch that sends `segment` (a whole TCP segment, checksum included) from
    /// `local` to `peer` if this process dies before [`Watchdog::disarm`].
    pub(crate) fn arm(segment: &[u8], local: SocketAddr, peer: SocketAddr) -> io::Result<Self> {
        if !cfg!(target_arch = "x86_64") {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the watchdog's raw system calls are written for x86_64",
            ));
        }
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
        let args = Box::new(Args {
            rd: rd.as_raw_fd(),
            raw: raw.as_raw_fd(),
            seg: segment.to_vec(),
            dst,
        });
        let stack = Mapping::anonymous(STACK)?;
        // All signals blocked across the clone: the child starts (and stays) with every
        // signal blocked, so no handler of this process ever runs on its small stack, in
        // this process's memory. (SIGKILL still ends it.)
        // SAFETY: sigset_t is plain old data; all-zero is a valid (empty) set.
        let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: sigfillset and pthread_sigmask write into the two live sets.
        unsafe {
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        }
        // SAFETY: clone(2) with CLONE_VM runs `child` on the top of `stack` (a live mapping
        // of STACK bytes, page-aligned, so 16-byte aligned at its end) with `args`; both are
        // kept in the Watchdog, whose drop waits for the child to exit before freeing them
        // (or leaks them). The child only makes raw system calls (see the module's notes).
        let pid = cvt(unsafe {
            libc::clone(
                child,
                stack.ptr().add(STACK).cast(),
                libc::CLONE_VM | libc::SIGCHLD,
                (&*args as *const Args).cast_mut().cast(),
            )
        });
        // SAFETY: restores this thread's mask from the live copy.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
        let pid = pid?;
        // The child has its own copies of these two; ours close now.
        drop((rd, raw));
        Ok(Watchdog {
            pipe: Some(wr),
            child: pid,
            stack: Some(stack),
            args: Some(args),
        })
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
        // This process is alive to drop it, so it closed (or reset) the connection itself:
        // the child leaves without sending. Then wait for it, so that its stack and data,
        // freed right after, are no longer in use.
        self.disarm();
        let mut st = 0;
        loop {
            // SAFETY: waitpid on our own child, writing into a live int.
            let r = unsafe { libc::waitpid(self.child, &mut st, 0) };
            if r == self.child {
                return;
            }
            if r == -1 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // Someone else reaped it (or SIGCHLD is ignored): it may still be running on its
            // stack, so that memory is never freed.
            std::mem::forget(self.stack.take());
            std::mem::forget(self.args.take());
            return;
        }
    }
}

/// The child: wait for the parent's end of the pipe, then send or leave.
extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Args` the parent keeps alive until this child has exited.
    let a = unsafe { &*(arg as *const Args) };
    let (rd, raw) = (a.rd, a.raw);
    // Keep only the pipe and the raw socket: in particular no AF_XDP socket or BPF link, so
    // they go away with the parent.
    let (lo, hi) = (rd.min(raw), rd.max(raw));
    // SAFETY: raw system calls (no libc wrapper: those would write errno into the parent
    // thread's TLS) on this child's own descriptor table and on memory the parent keeps
    // alive (see above); none allocates or takes a lock.
    unsafe {
        // Out of the parent's session and process group: a Ctrl-C or a group signal meant
        // for the parent does not reach the watchdog.
        raw_syscall(libc::SYS_setsid, [0; 6]);
        if lo > 0 {
            raw_syscall(libc::SYS_close_range, [0, (lo - 1) as usize, 0, 0, 0, 0]);
        }
        if hi - lo > 1 {
            raw_syscall(
                libc::SYS_close_range,
                [(lo + 1) as usize, (hi - 1) as usize, 0, 0, 0, 0],
            );
        }
        raw_syscall(
            libc::SYS_close_range,
            [(hi + 1) as usize, u32::MAX as usize, 0, 0, 0, 0],
        );
        let mut b = 0u8;
        let n = loop {
            let n = raw_syscall(
                libc::SYS_read,
                [rd as usize, &mut b as *mut u8 as usize, 1, 0, 0, 0],
            );
            if n != -(libc::EINTR as isize) {
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
                raw_syscall(
                    libc::SYS_nanosleep,
                    [&ts as *const libc::timespec as usize, 0, 0, 0, 0, 0],
                );
                waited = at;
                raw_syscall(
                    libc::SYS_sendto,
                    [
                        raw as usize,
                        a.seg.as_ptr() as usize,
                        a.seg.len(),
                        0,
                        a.dst.as_ptr() as usize,
                        a.dst.len() as usize,
                    ],
                );
            }
        }
        raw_syscall(libc::SYS_exit, [0; 6]);
    }
    0
}

/// A Linux system call without libc: the result, or `-errno`; nothing is written anywhere
/// else (no errno).
///
/// # Safety
/// The call and its arguments must be valid for the kernel's ABI; pointers must be live.
#[cfg(target_arch = "x86_64")]
unsafe fn raw_syscall(nr: libc::c_long, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the x86_64 Linux syscall convention: number in rax, arguments in rdi, rsi,
    // rdx, r10, r8, r9; rcx and r11 are clobbered; the caller vouches for the arguments.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}
