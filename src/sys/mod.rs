//! The syscall layer: every `unsafe` block of xsend lives under this folder (the crate denies
//! `unsafe_code` everywhere else), each with its `// SAFETY:` argument, behind safe functions
//! and types that return `io::Result`.
//!
//! - [`cvt`] and the `syscall!` macro are the one funnel every libc call returns through
//!   (-1 → `errno` as an `io::Error`), as in mio;
//! - [`socket`]: sendfile, send, sendmmsg/recvmmsg over `IoSlice`s, poll, socket options;
//! - [`netdev`]: interface index, name, MAC, MTU, flags;
//! - [`file`]: `preadv` into `IoSliceMut`s, read-only file mappings and page release;
//! - [`sigbus`]: truncated file mappings read zeros instead of killing the process;
//! - [`netlink`]: a `NETLINK_ROUTE` socket;
//! - [`bpf`]: attaching an XDP program through a BPF link;
//! - [`xsk`]: AF_XDP sockets: UMEM with owned chunk tokens, typed rings that own their
//!   mappings;
//! - [`thread`]: network namespaces, CPU pinning, clocks;
//! - `dpdk` (feature `dpdk`): the EAL, ports, mempools, mbufs over bindgen bindings and a C
//!   shim for DPDK's inline fast path.
#![allow(unsafe_code)]

use std::io;

/// Returns `Err(last OS error)` for the C convention of -1, the value otherwise.
pub(crate) fn cvt<T: IsMinusOne>(t: T) -> io::Result<T> {
    if t.is_minus_one() {
        Err(io::Error::last_os_error())
    } else {
        Ok(t)
    }
}

/// Integer return types of libc calls.
pub(crate) trait IsMinusOne {
    /// `self == -1`.
    fn is_minus_one(&self) -> bool;
}

macro_rules! impl_is_minus_one {
    ($($t:ty),*) => {$(
        impl IsMinusOne for $t {
            fn is_minus_one(&self) -> bool {
                *self == -1
            }
        }
    )*};
}
impl_is_minus_one!(i32, isize, i64);

/// C structs and integers for which every bit pattern (all-zero included) is a valid value.
///
/// # Safety
/// Implement only for such types.
pub(crate) unsafe trait Pod: Copy {}
// SAFETY: integers and C structs of integers.
unsafe impl Pod for libc::c_int {}
// SAFETY: a C struct of integers.
unsafe impl Pod for libc::xdp_mmap_offsets {}

/// Call `libc::$fn(args)` and pass the result through [`cvt`]. The call site states why the
/// call is sound in a `// SAFETY:` comment right above.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        #[allow(clippy::undocumented_unsafe_blocks)]
        let r = unsafe { libc::$fn($($arg),*) };
        $crate::sys::cvt(r)
    }};
}

pub(crate) mod bpf;
pub(crate) mod clock;
#[cfg(feature = "dpdk")]
pub(crate) mod dpdk;
pub(crate) mod file;
pub(crate) mod mmap;
pub(crate) mod netdev;
pub(crate) mod netlink;
pub(crate) mod packet;
pub(crate) mod pool;
pub(crate) mod sigbus;
pub(crate) mod socket;
pub(crate) mod thread;
pub(crate) mod watchdog;
pub(crate) mod xsk;
