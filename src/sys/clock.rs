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

/// `CLOCK_MONOTONIC` read off the CPU's time-stamp counter: for loops that stamp a send time
/// per burst, where the vDSO's ordered TSC read and conversion cost more than the burst's
/// bookkeeping. Used only where the kernel's own clocksource is the TSC (so the TSC is
/// invariant and synchronised across CPUs, and `CLOCK_MONOTONIC` is a linear function of it
/// between NTP adjustments); elsewhere every read is [`monotonic_ns`].
///
/// It is a line through two `CLOCK_MONOTONIC` readings: the first, and the latest anchor
/// ([`FastClock::tick`] re-anchors after [`ANCHOR_NS`]). Until the first anchor it reads
/// `CLOCK_MONOTONIC` itself. Readings never go backwards.
pub(crate) struct FastClock {
    tsc: Option<TscLine>,
    last: u64,
}

/// How long a TSC line is extrapolated before it is anchored again.
pub(crate) const ANCHOR_NS: u64 = 1_000_000;

#[derive(Clone, Copy)]
struct TscLine {
    /// The first reading (calibration's start).
    first: (u64, u64),
    /// The latest anchor: (TSC, ns).
    base: (u64, u64),
    /// Nanoseconds per tick, 32.32 fixed point; 0 before the first anchor.
    mult: u64,
}

impl FastClock {
    /// A clock on the TSC where the kernel's clocksource is the TSC, else on the vDSO.
    pub(crate) fn new() -> Self {
        let tsc = tsc_is_clocksource().then(|| {
            let p = pair();
            TscLine {
                first: p,
                base: p,
                mult: 0,
            }
        });
        FastClock { tsc, last: 0 }
    }

    /// Whether readings come from the TSC (after the first anchor).
    #[cfg(test)]
    fn on_tsc(&self) -> bool {
        self.tsc.is_some_and(|t| t.mult != 0)
    }

    /// `CLOCK_MONOTONIC` now, in nanoseconds.
    #[inline]
    pub(crate) fn now_ns(&mut self) -> u64 {
        let ns = match self.tsc {
            Some(t) if t.mult != 0 => {
                let ticks = rdtsc().saturating_sub(t.base.0);
                t.base.1 + ((ticks as u128 * t.mult as u128) >> 32) as u64
            }
            _ => monotonic_ns(),
        };
        self.last = self.last.max(ns);
        self.last
    }

    /// Re-anchor the line to `CLOCK_MONOTONIC` when [`ANCHOR_NS`] have passed since the last
    /// anchor (one TSC read otherwise). Call it every so many bursts.
    pub(crate) fn tick(&mut self) {
        let Some(t) = self.tsc.as_mut() else {
            return;
        };
        let since = if t.mult == 0 {
            monotonic_ns().saturating_sub(t.base.1)
        } else {
            ((rdtsc().saturating_sub(t.base.0) as u128 * t.mult as u128) >> 32) as u64
        };
        if since < ANCHOR_NS {
            return;
        }
        let p = pair();
        let (dt, dns) = (p.0.saturating_sub(t.first.0), p.1.saturating_sub(t.first.1));
        if dt == 0 || dns == 0 {
            return;
        }
        t.mult = ((dns as u128) << 32).checked_div(dt as u128).unwrap_or(0) as u64;
        t.base = p;
    }
}

/// A (TSC, `CLOCK_MONOTONIC`) pair read together: the TSC is the mean of one read before and
/// one after the clock's, from the tightest of a few tries (a try the thread was preempted
/// in would put the line off by half the preemption).
fn pair() -> (u64, u64) {
    let mut best = (u64::MAX, (0, 0));
    for _ in 0..8 {
        let a = rdtsc();
        let ns = monotonic_ns();
        let b = rdtsc();
        let w = b.saturating_sub(a);
        if w < best.0 {
            best = (w, (a + w / 2, ns));
        }
        // (Under 20k ticks is under 20 us on any TSC of 1 GHz or more.)
        if w < 20_000 {
            break;
        }
    }
    best.1
}

/// Whether the kernel keeps time with the TSC (`current_clocksource` is `tsc`): it does so
/// only when the TSC is invariant and synchronised across CPUs. Read once.
fn tsc_is_clocksource() -> bool {
    static TSC: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TSC.get_or_init(|| {
        cfg!(target_arch = "x86_64")
            && std::fs::read_to_string(
                "/sys/devices/system/clocksource/clocksource0/current_clocksource",
            )
            .is_ok_and(|s| s.trim() == "tsc")
    })
}

/// The time-stamp counter (0 off x86_64, where [`tsc_is_clocksource`] is false).
#[inline]
fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: RDTSC exists on every x86_64 CPU and only reads the counter (user space may
    // execute it unless CR4.TSD is set, which Linux does not do where the clocksource is the
    // TSC: the vDSO executes it too).
    #[allow(unused_unsafe)]
    return unsafe { core::arch::x86_64::_rdtsc() };
    #[cfg(not(target_arch = "x86_64"))]
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_clock_follows_clock_monotonic_and_never_goes_back() {
        let mut c = FastClock::new();
        let mut prev = 0;
        let start = monotonic_ns();
        // Long enough for a few anchors.
        while monotonic_ns() - start < 5 * ANCHOR_NS {
            let before = monotonic_ns();
            let t = c.now_ns();
            let after = monotonic_ns();
            assert!(t >= prev, "went back: {prev} then {t}");
            // Within a margin of the vDSO's clock read around it: a line through anchors 1 ms
            // apart is off by nanoseconds, but an anchor read across a preemption may put it
            // off by microseconds; 100 us still catches a wrong scale (10 % over 1 ms).
            assert!(
                t + 100_000 >= before && t <= after + 100_000,
                "{before} {t} {after}"
            );
            prev = t;
            c.tick();
        }
        if tsc_is_clocksource() {
            assert!(
                c.on_tsc(),
                "the kernel's clocksource is the TSC, yet no line was drawn"
            );
        }
    }
}
