//! A dead man's switch for a connection whose TCP lives in this process (AF_XDP, DPDK): if
//! the process dies without closing it (SIGKILL, a crash), a small child process makes the
//! peer learn of it, instead of leaving it ESTABLISHED forever. The same switch can send a
//! netlink message instead ([`Watchdog::arm_netlink`]): DPDK's net_af_xdp attaches its XDP
//! program without a link, and a killed process would leave it on the interface. And it can
//! remove a directory ([`Watchdog::arm_remove_dir`]): the EAL's runtime directory, which DPDK
//! creates for every process and a killed one would leave behind.
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
    /// Descriptors the child keeps (the pipe's read end among them), ascending.
    keep: Vec<i32>,
    /// What it sends once the parent is gone, in time order.
    events: Vec<Event>,
}

/// What the child does `at_ms` after the parent is gone.
#[derive(Debug)]
struct Event {
    at_ms: u64,
    action: Action,
}

#[derive(Debug)]
enum Action {
    /// Send `msg` on `fd` to `dst` (a raw `sockaddr`).
    Send { fd: i32, msg: Vec<u8>, dst: Vec<u8> },
    /// Unlink the entries of the directory open as `dir` (files: the EAL makes no
    /// subdirectories), then the directory `path` itself; `buf` is the child's
    /// `getdents64` buffer, written by it alone.
    RemoveDir {
        dir: i32,
        path: std::ffi::CString,
        buf: Box<[std::cell::UnsafeCell<u8>]>,
    },
}

/// The child's `getdents64` buffer.
const DENTS_BUF: usize = 4096;

/// The child's stack.
const STACK: usize = 64 << 10;

/// Times the child sends its segment after the process is gone (the peer rate-limits its
/// answers to out-of-window segments to one per 500 ms, and our XDP program may need a moment
/// to be detached once the process is gone).
const SEND_AFTER_MS: [u64; 3] = [200, 900, 2000];

/// The bytes of a socket address.
fn sockaddr_bytes(sa: &socket2::SockAddr) -> Vec<u8> {
    // SAFETY: `as_ptr` points at `len` initialised bytes of the address's storage.
    unsafe { std::slice::from_raw_parts(sa.as_ptr().cast::<u8>(), sa.len() as usize).to_vec() }
}

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
        let dst = sockaddr_bytes(&socket2::SockAddr::from(SocketAddr::new(peer.ip(), 0)));
        let events = SEND_AFTER_MS
            .iter()
            .map(|&at_ms| Event {
                at_ms,
                action: Action::Send {
                    fd: raw.as_raw_fd(),
                    msg: segment.to_vec(),
                    dst: dst.clone(),
                },
            })
            .collect();
        Self::spawn(vec![raw], events)
    }

    /// Arm a switch that sends `msg` to the kernel over a `NETLINK_ROUTE` socket of this
    /// thread's network namespace as soon as this process is gone (e.g. detaching an XDP
    /// program a library attached without a link); `keep` stays open in the switch (a
    /// descriptor the message names: its number is the same there).
    #[cfg_attr(not(feature = "dpdk"), allow(dead_code))]
    pub(crate) fn arm_netlink(msg: Vec<u8>, keep: OwnedFd) -> io::Result<Self> {
        // SAFETY: plain socket(2); the descriptor is owned right below.
        let nl = cvt(unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        })?;
        // SAFETY: a new descriptor nothing else owns.
        let nl = unsafe { OwnedFd::from_raw_fd(nl) };
        // SAFETY: an all-zero sockaddr_nl addresses the kernel (pid 0).
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: `sa` is plain old data of the size given.
        let dst = unsafe {
            std::slice::from_raw_parts(
                (&sa as *const libc::sockaddr_nl).cast::<u8>(),
                std::mem::size_of::<libc::sockaddr_nl>(),
            )
            .to_vec()
        };
        let events = vec![Event {
            at_ms: 0,
            action: Action::Send {
                fd: nl.as_raw_fd(),
                msg,
                dst,
            },
        }];
        Self::spawn(vec![nl, keep], events)
    }

    /// Arm a switch that removes the directory `path` and the files in it as soon as this
    /// process is gone (the EAL's runtime directory). Drop it only after removing the
    /// directory yourself: a switch dropped first has nothing left to guard.
    #[cfg_attr(not(feature = "dpdk"), allow(dead_code))]
    pub(crate) fn arm_remove_dir(path: &std::path::Path) -> io::Result<Self> {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))?;
        // SAFETY: open(2) of a NUL-terminated path; the descriptor is owned right below.
        let dir = cvt(unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: a new descriptor nothing else owns.
        let dir = unsafe { OwnedFd::from_raw_fd(dir) };
        let events = vec![Event {
            at_ms: 0,
            action: Action::RemoveDir {
                dir: dir.as_raw_fd(),
                path: c,
                buf: (0..DENTS_BUF)
                    .map(|_| std::cell::UnsafeCell::new(0))
                    .collect(),
            },
        }];
        Self::spawn(vec![dir], events)
    }

    /// Start the child with `keep` (its copies; ours close) and `events`.
    fn spawn(keep: Vec<OwnedFd>, mut events: Vec<Event>) -> io::Result<Self> {
        if !cfg!(target_arch = "x86_64") {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the watchdog's raw system calls are written for x86_64",
            ));
        }
        events.sort_by_key(|e| e.at_ms);
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors into the array.
        cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
        // SAFETY: both are new descriptors nothing else owns.
        let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let mut kept: Vec<i32> = keep.iter().map(|f| f.as_raw_fd()).collect();
        kept.push(rd.as_raw_fd());
        kept.sort_unstable();
        let args = Box::new(Args {
            rd: rd.as_raw_fd(),
            keep: kept,
            events,
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
        // The child has its own copies of these; ours close now.
        drop((rd, keep));
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
    // SAFETY: raw system calls (no libc wrapper: those would write errno into the parent
    // thread's TLS) on this child's own descriptor table and on memory the parent keeps
    // alive (see above); none allocates or takes a lock.
    unsafe {
        // Out of the parent's session and process group: a Ctrl-C or a group signal meant
        // for the parent does not reach the watchdog.
        raw_syscall(libc::SYS_setsid, [0; 6]);
        // Keep only our descriptors (ascending): in particular no AF_XDP socket or BPF
        // link, so they go away with the parent.
        let mut from = 0usize;
        for &k in &a.keep {
            if (k as usize) > from {
                raw_syscall(libc::SYS_close_range, [from, k as usize - 1, 0, 0, 0, 0]);
            }
            from = k as usize + 1;
        }
        raw_syscall(libc::SYS_close_range, [from, u32::MAX as usize, 0, 0, 0, 0]);
        let mut b = 0u8;
        let n = loop {
            let n = raw_syscall(
                libc::SYS_read,
                [a.rd as usize, &mut b as *mut u8 as usize, 1, 0, 0, 0],
            );
            if n != -(libc::EINTR as isize) {
                break n;
            }
        };
        if n == 0 {
            // End of file: the parent is gone without disarming.
            let mut waited = 0;
            for e in &a.events {
                let ms = e.at_ms - waited;
                if ms > 0 {
                    let ts = libc::timespec {
                        tv_sec: (ms / 1000) as libc::time_t,
                        tv_nsec: ((ms % 1000) * 1_000_000) as libc::c_long,
                    };
                    raw_syscall(
                        libc::SYS_nanosleep,
                        [&ts as *const libc::timespec as usize, 0, 0, 0, 0, 0],
                    );
                }
                waited = e.at_ms;
                match &e.action {
                    Action::Send { fd, msg, dst } => {
                        raw_syscall(
                            libc::SYS_sendto,
                            [
                                *fd as usize,
                                msg.as_ptr() as usize,
                                msg.len(),
                                0,
                                dst.as_ptr() as usize,
                                dst.len(),
                            ],
                        );
                    }
                    Action::RemoveDir { dir, path, buf } => remove_dir(*dir, path, buf),
                }
            }
        }
        raw_syscall(libc::SYS_exit, [0; 6]);
    }
    0
}

/// The child's removal of a directory of files: passes over its entries (unlinking while
/// reading may skip some: read again from the start) until one finds nothing to unlink, then
/// the directory.
///
/// # Safety
/// Raw system calls only (see [`child`]); `buf` is written by this child alone.
unsafe fn remove_dir(dir: i32, path: &std::ffi::CStr, buf: &[std::cell::UnsafeCell<u8>]) {
    let b = std::cell::UnsafeCell::raw_get(buf.as_ptr());
    for _ in 0..64 {
        // SAFETY: lseek and getdents64 on our own descriptor into our own buffer.
        let n = unsafe {
            raw_syscall(
                libc::SYS_lseek,
                [dir as usize, 0, libc::SEEK_SET as usize, 0, 0, 0],
            );
            raw_syscall(
                libc::SYS_getdents64,
                [dir as usize, b as usize, buf.len(), 0, 0, 0],
            )
        };
        if n <= 0 {
            break;
        }
        let mut unlinked = false;
        let mut off = 0usize;
        // struct linux_dirent64 { u64 d_ino; i64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
        while off + 19 < n as usize {
            // SAFETY: within the `n` bytes the kernel wrote; reclen keeps records apart.
            let (reclen, name) = unsafe {
                let r = b.add(off);
                (r.add(16).cast::<u16>().read_unaligned() as usize, r.add(19))
            };
            if reclen == 0 {
                break;
            }
            // SAFETY: d_name is NUL-terminated within the record.
            let dot = unsafe {
                *name == b'.' && (*name.add(1) == 0 || (*name.add(1) == b'.' && *name.add(2) == 0))
            };
            if !dot {
                // SAFETY: unlinkat of a NUL-terminated name in our directory.
                let r = unsafe {
                    raw_syscall(
                        libc::SYS_unlinkat,
                        [dir as usize, name as usize, 0, 0, 0, 0],
                    )
                };
                unlinked |= r == 0;
            }
            off += reclen;
        }
        if !unlinked {
            break;
        }
    }
    // SAFETY: rmdir of a NUL-terminated path (unlinkat with AT_REMOVEDIR).
    unsafe {
        raw_syscall(
            libc::SYS_unlinkat,
            [
                libc::AT_FDCWD as usize,
                path.as_ptr() as usize,
                libc::AT_REMOVEDIR as usize,
                0,
                0,
                0,
            ],
        )
    };
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
