//! The live-frames runner: one thread per runner keeps its copy of the in-kernel generator
//! running with long `BPF_PROG_RUN` calls (each call costs two RCU grace periods in the
//! kernel's XDP dispatcher, ~20 ms here, so calls are made long and the program holds the
//! schedule itself). A count is exact: the program refuses frames past its limit, and an
//! unpaced counted run asks for exactly the frames left. Whoever watches the run (deadline,
//! cancellation, progress) sets `stop` and interrupts the thread with a signal
//! (`sys::thread::interrupt`): the call returns `EINTR`.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::device::live::{LiveProg, Target};
use crate::error::{Error, Result};

/// Frames one call may run (`repeat` is an `int`).
const MAX_CALL: u64 = i32::MAX as u64;

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

/// Run `prog` toward `target` until its limit is reached or `stop` is set (and the thread
/// interrupted). Returns the frames the program stamped and redirected.
pub(crate) fn run_live(
    target: &Target,
    prog: &LiveProg,
    template: &[u8],
    run: &LiveLoop,
    stop: &AtomicBool,
) -> Result<u64> {
    let limit = run.limit.unwrap_or(u64::MAX);
    prog.reset(limit, run.pps, run.burst)?;
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
            _ => MAX_CALL,
        };
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
