//! The live-frames runners: one pinned thread per runner keeps its copy of the in-kernel generator
//! running with long `BPF_PROG_RUN` calls (each call costs two RCU grace periods in the
//! kernel's XDP dispatcher, ~20 ms here, so calls are made long and the program holds the
//! schedule itself). A count is exact: the program refuses frames past its limit, and an
//! unpaced counted run asks for exactly the frames left. Whoever watches the run (deadline,
//! cancellation, progress) sets `stop` and interrupts the thread with a signal
//! (`sys::thread::interrupt`): the call returns `EINTR`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::device::live::{LiveProg, Target};
use crate::engine::{OpCtx, Totals};
use crate::error::{Error, Result};
use crate::report::SendStats;
use crate::sys::thread::{current, install_interrupt, interrupt, pin_to_cpu, unblock_interrupt};

/// Program runs one unpaced call may make: about 5 s of frames at full speed here, so that a
/// call ends by itself even if a stop signal never got through; each call costs two RCU
/// grace periods (~20 ms).
const MAX_CALL: u64 = 1 << 25;

/// Program runs one paced call may make (most are idle runs waiting for a slot, ~30 M/s
/// here: a call of about a minute; the kernel takes at most 2^31 - 1). A paced run changes
/// calls rarely, and the program moves its schedule past the ~20 ms between two calls
/// (`LiveProg::resume`) rather than release them as a burst: with calls of 2^25 runs (~1 s)
/// and catch-up, an RFC 2544 search lost 0.3-0.6 % in every 4 s trial at 98 % of a
/// policed rate.
const MAX_PACED_CALL: u64 = i32::MAX as u64;

/// Frame bytes of the first `n` frames of a size cycle.
pub(crate) struct CycleBytes {
    /// prefix[i] = bytes of the first i sizes; the last entry is one whole cycle.
    prefix: Vec<u64>,
}

impl CycleBytes {
    pub(crate) fn new(cycle: &[u32]) -> Self {
        let mut prefix = Vec::with_capacity(cycle.len() + 1);
        let mut acc = 0u64;
        prefix.push(0);
        for &s in cycle {
            acc += s as u64;
            prefix.push(acc);
        }
        CycleBytes { prefix }
    }

    /// Bytes of the first `n` frames.
    pub(crate) fn of(&self, n: u64) -> u64 {
        let len = (self.prefix.len() - 1).max(1) as u64;
        let whole = self.prefix[len as usize];
        (n / len) * whole + self.prefix[(n % len) as usize]
    }
}

/// One runner's run.
pub(crate) struct LiveLoop {
    /// Frames to send at most.
    pub(crate) limit: Option<u64>,
    /// Frames per second, if paced.
    pub(crate) pps: Option<f64>,
    /// Frames per page_pool cycle and redirect flush.
    pub(crate) batch: u32,
    /// Paced: frames released together per slot.
    pub(crate) burst: u32,
}

/// How often progress is reported and the deadline and cancellation are checked.
const TICK: Duration = Duration::from_millis(10);
/// How often the target is checked for being up.
const CHECK_EVERY: Duration = Duration::from_millis(100);

/// Run each runner (program, template, loop) on a thread of its own, pinned to a CPU of its
/// own, until every one is done or has reached its limit, the `deadline` passes, the run is
/// cancelled, a runner fails or the target goes down; report progress meanwhile. Returns
/// the frames each runner's program stamped and redirected.
pub(crate) fn run_runners(
    target: &Target,
    runners: Vec<(&LiveProg, &[u8], LiveLoop)>,
    bytes: &CycleBytes,
    deadline: Option<Instant>,
    ctx: &OpCtx,
) -> Result<Vec<u64>> {
    install_interrupt().map_err(|e| Error::io("installing the runners' interrupt signal", e))?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let stop = AtomicBool::new(false);
    // Each runner's thread, once it runs (0 before).
    let tids: Vec<AtomicU64> = runners.iter().map(|_| AtomicU64::new(0)).collect();
    let watched: Vec<(&LiveProg, Option<u64>)> =
        runners.iter().map(|(p, _, l)| (*p, l.limit)).collect();
    let (results, watch) = std::thread::scope(|s| {
        let handles: Vec<_> = runners
            .into_iter()
            .enumerate()
            .map(|(r, (prog, template, run))| {
                let (stop, tid) = (&stop, &tids[r]);
                s.spawn(move || {
                    tid.store(current() as u64, Ordering::SeqCst);
                    unblock_interrupt()
                        .map_err(|e| Error::io("unblocking the runner's interrupt signal", e))?;
                    // One runner per CPU (the kernel sends on the CPU that runs it).
                    let _ = pin_to_cpu(r % cpus);
                    run_live(target, prog, template, &run, stop)
                })
            })
            .collect();
        let watch = watch(&handles, &watched, bytes, target, deadline, ctx);
        stop.store(true, Ordering::Relaxed);
        // Interrupt the runners until each has left its call (a signal that came just
        // before a call began is repeated).
        while handles.iter().any(|h| !h.is_finished()) {
            for (h, tid) in handles.iter().zip(&tids) {
                let t = tid.load(Ordering::SeqCst);
                if !h.is_finished() && t != 0 {
                    interrupt(t as libc::pthread_t);
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let results: Vec<Result<u64>> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect();
        (results, watch)
    });
    // A runner's own error says most; then the watcher's.
    let results: Vec<u64> = results.into_iter().collect::<Result<_>>()?;
    watch?;
    Ok(results)
}

/// Watch runners until each is done or has reached its limit, one stopped short of it (an
/// error), the deadline passes, the run is cancelled or the target goes down; report
/// progress meanwhile from the programs' counters.
fn watch(
    handles: &[std::thread::ScopedJoinHandle<'_, Result<u64>>],
    runners: &[(&LiveProg, Option<u64>)],
    bytes: &CycleBytes,
    target: &Target,
    deadline: Option<Instant>,
    ctx: &OpCtx,
) -> Result<()> {
    let totals = Totals::default();
    let mut reported = SendStats::default();
    let mut last_check = Instant::now();
    loop {
        let now = Instant::now();
        if ctx.cancelled() || deadline.is_some_and(|d| now >= d) {
            return Ok(());
        }
        let mut all = SendStats::default();
        let mut reached = true;
        let mut short = false;
        for ((prog, limit), h) in runners.iter().zip(handles) {
            let n = prog.counters()?.sent;
            all.packets += n;
            all.bytes += bytes.of(n);
            let done = limit.is_some_and(|l| n >= l);
            reached &= done;
            // A runner that ended before its limit failed (or was stopped): stop them all.
            short |= h.is_finished() && !done;
        }
        let (b, n) = totals.add(all, &mut reported);
        ctx.progress(b, n);
        if reached || short {
            return Ok(());
        }
        if last_check.elapsed() >= CHECK_EVERY {
            target.check_up()?;
            last_check = Instant::now();
        }
        std::thread::sleep(deadline.map_or(TICK, |d| (d - now).min(TICK)));
    }
}

/// Run `prog` toward `target` until its limit is reached or `stop` is set (and the thread
/// interrupted). Returns the frames the program stamped and redirected.
fn run_live(
    target: &Target,
    prog: &LiveProg,
    template: &[u8],
    run: &LiveLoop,
    stop: &AtomicBool,
) -> Result<u64> {
    let limit = run.limit.unwrap_or(u64::MAX);
    prog.reset(limit, run.pps, run.burst)?;
    let mut first = true;
    loop {
        let c = prog.counters()?;
        let sent = c.sent;
        if sent >= limit || stop.load(Ordering::Relaxed) {
            return Ok(sent);
        }
        if c.refused > 0 {
            return Err(Error::io(
                format!("live frames toward {}", target.ifname),
                std::io::Error::other(format!(
                    "the program refused {} frame(s) it could not size",
                    c.refused
                )),
            ));
        }
        // Unpaced and counted: exactly the frames left. Otherwise until stopped (frames
        // waiting for their slot also take turns).
        let repeat = match (run.pps, run.limit) {
            (None, Some(l)) => (l - sent).min(MAX_CALL),
            (None, None) => MAX_CALL,
            (Some(_), _) => MAX_PACED_CALL,
        };
        if run.pps.is_some() && !std::mem::take(&mut first) {
            prog.resume()?;
        }
        match prog.run(template, repeat as u32, run.batch)? {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => {
                return Err(target.gone_or(Error::io(
                    format!("running the live-frames program toward {}", target.ifname),
                    e,
                )))
            }
        }
    }
}
