//! The calling thread and process: network namespace, CPU affinity, clock, credentials.

use std::io;
use std::os::fd::AsRawFd;

/// Enter the named network namespace (`/run/netns/NAME`) on the calling thread.
pub(crate) fn enter_netns(name: &str) -> io::Result<()> {
    let f = std::fs::File::open(format!("/run/netns/{name}"))?;
    // SAFETY: setns only reads the descriptor, which `f` keeps open for the call.
    syscall!(setns(f.as_raw_fd(), libc::CLONE_NEWNET)).map(drop)
}

/// Pin the calling thread to one CPU (`sched_setaffinity`).
pub(crate) fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain old data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes inside the set (it checks `cpu` against the set's size).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: sched_setaffinity reads `size_of::<cpu_set_t>()` bytes of the live set.
    syscall!(sched_setaffinity(
        0,
        std::mem::size_of::<libc::cpu_set_t>(),
        &set
    ))
    .map(drop)
}

/// Current CLOCK_REALTIME in ns (vDSO, no syscall).
pub(crate) fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The most resident memory this process has had, in KiB (`getrusage`).
pub(crate) fn max_rss_kib() -> u64 {
    // SAFETY: rusage is plain old data; all-zero is valid.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the live struct.
    match syscall!(getrusage(libc::RUSAGE_SELF, &mut r)) {
        Ok(_) => r.ru_maxrss.max(0) as u64,
        Err(_) => 0,
    }
}

/// Let the calling thread's sleeps end this close to when they were asked to end (the
/// default timer slack is 50 µs): for senders on a schedule. Returns the previous slack.
pub(crate) fn set_timer_slack_ns(ns: u64) -> Option<u64> {
    // SAFETY: prctl(PR_GET_TIMERSLACK) takes and writes no memory.
    let old = syscall!(prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0)).ok()?;
    // SAFETY: prctl(PR_SET_TIMERSLACK) takes the value itself; no memory is passed.
    syscall!(prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0)).ok()?;
    Some(old as u64)
}
