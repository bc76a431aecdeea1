//! The calling thread and process: network namespace, CPU affinity, clock, credentials.

use std::io;
use std::os::fd::AsRawFd;

/// Enter the named network namespace (`/run/netns/NAME`) on the calling thread.
pub(crate) fn enter_netns(name: &str) -> io::Result<()> {
    let f = std::fs::File::open(format!("/run/netns/{name}"))?;
    // SAFETY: setns only reads the descriptor, which `f` keeps open for the call.
    syscall!(setns(f.as_raw_fd(), libc::CLONE_NEWNET)).map(drop)
}

/// The calling thread's network namespace, as a descriptor to enter again later.
pub(crate) fn current_netns() -> io::Result<std::os::fd::OwnedFd> {
    Ok(std::fs::File::open("/proc/thread-self/ns/net")?.into())
}

/// Enter the network namespace `ns` (from [`current_netns`]) on the calling thread.
pub(crate) fn enter_netns_fd(ns: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: setns only reads the descriptor, which the caller keeps open for the call.
    syscall!(setns(ns.as_raw_fd(), libc::CLONE_NEWNET)).map(drop)
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

/// The signal that interrupts a thread blocked in a long syscall (a runner in
/// `BPF_PROG_RUN`): a real-time signal with a handler that does nothing, installed without
/// `SA_RESTART`, so the syscall returns `EINTR`.
fn interrupt_signal() -> libc::c_int {
    libc::SIGRTMIN() + 7
}

extern "C" fn on_interrupt(_: libc::c_int) {}

/// Install the interrupt signal's do-nothing handler (once; an application's own handler is
/// kept, an ignored or default disposition is replaced: an ignored signal would never
/// interrupt anything).
pub(crate) fn install_interrupt() -> io::Result<()> {
    static ONCE: std::sync::OnceLock<Result<(), i32>> = std::sync::OnceLock::new();
    let r = ONCE.get_or_init(|| {
        let sig = interrupt_signal();
        // SAFETY: a zeroed sigaction is valid; sigaction writes the current one into it.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: a null new action only reads the current disposition into `old`.
        if unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) } != 0 {
            return Err(io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL));
        }
        if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN {
            return Ok(());
        }
        // SAFETY: a zeroed sigaction is valid; we set a handler that touches nothing,
        // no SA_RESTART, and an empty mask.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_interrupt as *const () as usize;
        // SAFETY: `sa.sa_mask` is a live sigset_t.
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        // SAFETY: `sa` is a valid action for a real-time signal.
        if unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL));
        }
        Ok(())
    });
    r.map_err(io::Error::from_raw_os_error)
}

/// Let the interrupt signal reach the calling thread (threads inherit the mask of their
/// creator, and an application may block every signal).
pub(crate) fn unblock_interrupt() -> io::Result<()> {
    // SAFETY: a zeroed sigset_t is valid; sigemptyset/sigaddset write inside it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live sigset_t and the signal number is valid.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, interrupt_signal());
    }
    // SAFETY: pthread_sigmask reads the live set and writes no old set (null).
    let r = unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(())
}

/// Send the interrupt signal to `thread` (a thread of this process, still running: its
/// join handle is held by the caller). A thread not in a syscall just runs the empty
/// handler.
pub(crate) fn interrupt(thread: libc::pthread_t) {
    // SAFETY: `thread` is a live thread of this process (its join handle is held by the
    // caller), and the signal's handler is installed (install_interrupt).
    unsafe { libc::pthread_kill(thread, interrupt_signal()) };
}

/// The calling thread, for [`interrupt`].
pub(crate) fn current() -> libc::pthread_t {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() }
}
