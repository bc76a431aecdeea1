//! The clock the probe header's send time is read from: `CLOCK_MONOTONIC`, the clock BPF's
//! `bpf_ktime_get_ns` reads, so a receiving port's XDP program can subtract the two.

/// `CLOCK_MONOTONIC` in nanoseconds (a vDSO call, no syscall).
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux, so
    // the call cannot fail (an error would leave `ts` zero, a harmless time).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
