//! Replay on live frames: the calling thread reads the capture and fills the program's ring
//! (copy, rewrite, due time), a runner thread keeps the program running with long
//! `BPF_PROG_RUN` calls; the program sends each record when it is due (`bpf/replay.bpf.c`).
//! Two cores: the runner (and, on veth, the receiver's work) pinned to one, the reader on
//! the other.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::replay::{Records, ReplayOutcome, ReplayRun};
use super::OpCtx;
use crate::device::live::{ReplayProg, Target, REC_DATA};
use crate::error::{Error, Result};
use crate::sansio::seqtrack;
use crate::sys::thread::{current, install_interrupt, interrupt, pin_to_cpu, unblock_interrupt};

/// Program runs per call: a call ends by itself within a minute or so even if a stop signal
/// never got through (most runs are idle: waiting for a record or its time).
const MAX_CALL: u32 = i32::MAX as u32;
/// Records written between two publications of the tail.
const PUBLISH_EVERY: u64 = 32;
/// Frames between progress reports.
const REPORT_EVERY: u64 = 4096;
/// How often the target is checked for being up.
const CHECK_EVERY: Duration = Duration::from_millis(100);
/// How long the reader naps while the ring is full.
const NAP: Duration = Duration::from_micros(20);

/// What the live replay needs besides the records and the run.
pub(crate) struct LiveReplay<'a> {
    pub(crate) prog: &'a mut ReplayProg,
    pub(crate) target: &'a Target,
    /// Largest frame the target carries.
    pub(crate) max_frame: usize,
    /// Frames per page_pool cycle and redirect flush (timed replays: small, so that a frame
    /// leaves when its run sends it, not at the end of a long batch).
    pub(crate) batch: u32,
}

/// Replay `records` through the live-frames program.
pub(crate) fn replay_live<R: Records>(
    live: LiveReplay<'_>,
    records: &mut R,
    run: ReplayRun<'_>,
    ctx: &OpCtx,
) -> Result<ReplayOutcome> {
    install_interrupt().map_err(|e| Error::io("installing the runner's interrupt signal", e))?;
    let LiveReplay {
        prog,
        target,
        max_frame,
        batch,
    } = live;
    let timed = run.schedule.is_timed();
    let stop = AtomicBool::new(false);
    let tid = AtomicU64::new(0);
    // Every frame starts as a zeroed page of the ring's record size, then is sized down.
    let template = vec![0u8; REC_DATA];
    let start = Instant::now();
    let (filled, ran) = std::thread::scope(|s| {
        let runner = {
            let (stop, tid, template) = (&stop, &tid, &template);
            // The runner's own handle on the program: the reader keeps `prog` to itself.
            let runner_prog = prog.run_handle()?;
            s.spawn(move || -> Result<()> {
                tid.store(current() as u64, Ordering::SeqCst);
                unblock_interrupt()
                    .map_err(|e| Error::io("unblocking the runner's interrupt signal", e))?;
                let _ = pin_to_cpu(0);
                while !stop.load(Ordering::Relaxed) {
                    match runner_prog.run(template, MAX_CALL, batch) {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                        Err(e) => {
                            return Err(target.gone_or(Error::io(
                                format!("running the replay program toward {}", target.ifname),
                                e,
                            )))
                        }
                    }
                }
                Ok(())
            })
        };
        let filled = fill(prog, records, run, max_frame, &runner, target, ctx);
        stop.store(true, Ordering::Relaxed);
        while !runner.is_finished() {
            let t = tid.load(Ordering::SeqCst);
            if t != 0 {
                interrupt(t as libc::pthread_t);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let ran = runner
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        Ok::<_, Error>((filled, ran))
    })?;
    // The runner's own error says most; then the reader's.
    ran?;
    let filled = filled?;
    let c = prog.counters();
    let packets = c.head - c.refused;
    let seconds = if c.last_ns > c.first_ns {
        (c.last_ns - c.first_ns) as f64 / 1e9
    } else {
        start.elapsed().as_secs_f64()
    };
    let lateness = timed.then(|| {
        let counts = prog.lateness();
        crate::stats::histogram_from_buckets(&counts, c.late_max, seqtrack::bucket_range)
    });
    ctx.progress(c.bytes, packets);
    Ok(ReplayOutcome {
        packets,
        bytes: c.bytes,
        oversize: filled.oversize,
        loops: filled.loops,
        seconds,
        lateness,
    })
}

/// What the reader did.
struct Filled {
    oversize: u64,
    loops: u64,
}

/// Fill the ring from `records` loop after loop, then wait until the program has taken
/// every record (or the run is over).
fn fill<R: Records>(
    prog: &mut ReplayProg,
    records: &mut R,
    run: ReplayRun<'_>,
    max_frame: usize,
    runner: &std::thread::ScopedJoinHandle<'_, Result<()>>,
    target: &Target,
    ctx: &OpCtx,
) -> Result<Filled> {
    // (The caller's thread is not pinned: a library call leaves its affinity alone; the
    // runner's CPU is taken, so the scheduler puts the reader on the other one.)
    let mut schedule = run.schedule;
    let slots = prog.slots();
    let mut out = Filled {
        oversize: 0,
        loops: 0,
    };
    let over = |t: Instant| ctx.cancelled() || run.deadline.is_some_and(|d| t >= d);
    // The runner ended early: its error (reported by the caller) or the target went away.
    let runner_gone = || -> Result<()> {
        if runner.is_finished() {
            target.check_up()?;
            return Err(Error::io(
                format!("replay toward {}", target.ifname),
                std::io::Error::other("the live-frames runner stopped"),
            ));
        }
        Ok(())
    };
    let mut tail = prog.tail();
    let mut last_report = 0;
    // The target is checked for being up every CHECK_EVERY: a program redirecting to a
    // deleted interface goes on taking records.
    let mut checked = Instant::now();
    let mut check = |now: Instant| -> Result<()> {
        if now - checked >= CHECK_EVERY {
            target.check_up()?;
            checked = now;
        }
        Ok(())
    };
    'all: loop {
        if run.loops > 0 && out.loops >= run.loops {
            break;
        }
        if over(Instant::now()) {
            break;
        }
        if out.loops > 0 {
            records.rewind()?;
        }
        schedule.start_loop(out.loops);
        out.loops += 1;
        let mut any = false;
        while let Some(rec) = records.next_record()? {
            let len = rec.data.len();
            if crate::sansio::wire::ethernet::over_limit(rec.data, max_frame) || len > REC_DATA {
                out.oversize += 1;
                continue;
            }
            any = true;
            let due = schedule.due_ns(rec.ts_ns, len);
            // A free slot: the program has taken the record `slots` before this one.
            if tail - prog.head() >= slots {
                prog.publish(tail);
                while tail - prog.head() >= slots {
                    let now = Instant::now();
                    if over(now) {
                        break 'all;
                    }
                    runner_gone()?;
                    check(now)?;
                    std::thread::sleep(NAP);
                }
            }
            let data = rec.data;
            prog.write(tail, len, due, |d| {
                d.copy_from_slice(data);
                run.rewrite.apply(d);
            })?;
            tail += 1;
            if tail % PUBLISH_EVERY == 0 {
                prog.publish(tail);
            }
            if tail - last_report >= REPORT_EVERY {
                last_report = tail;
                let c = prog.counters();
                ctx.progress(c.bytes, c.head - c.refused);
                let now = Instant::now();
                if over(now) {
                    break 'all;
                }
                check(now)?;
            }
        }
        if !any {
            break; // nothing sendable in the capture: looping would spin
        }
    }
    prog.publish(tail);
    // Until the program has sent what was published (or the run is over).
    while prog.head() < tail {
        let now = Instant::now();
        if over(now) {
            break;
        }
        runner_gone()?;
        check(now)?;
        std::thread::sleep(NAP);
    }
    Ok(out)
}
