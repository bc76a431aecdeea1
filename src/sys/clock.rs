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
/// It is a line through two `CLOCK_MONOTONIC` readings: the first, and the latest anchor; a
/// read more than [`ANCHOR_NS`] after the latest anchor takes a new one (however long the
/// caller was away, the line is never extrapolated further). Until the first anchor it reads
/// `CLOCK_MONOTONIC` itself. Readings never go backwards. The slope is the mean since the
/// first reading, so an NTP frequency change (at most 500 ppm) shows as at most 0.5 us of
/// error per anchor interval.
pub(crate) struct FastClock {
    tsc: Option<TscLine>,
    last: u64,
    anchors: u64,
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
    /// [`ANCHOR_NS`] in ticks (valid once `mult` is).
    anchor_ticks: u64,
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
                anchor_ticks: 0,
            }
        });
        FastClock {
            tsc,
            last: 0,
            anchors: 0,
        }
    }

    /// How many times the line was anchored (tests).
    #[cfg(test)]
    fn anchors(&self) -> u64 {
        self.anchors
    }

    /// `CLOCK_MONOTONIC` now, in nanoseconds.
    #[inline]
    pub(crate) fn now_ns(&mut self) -> u64 {
        let ns = match self.tsc.as_mut() {
            None => monotonic_ns(),
            Some(t) => {
                // (Off the line once drawn, off the vDSO before: either way, a new anchor
                // when the last is ANCHOR_NS old.)
                let (ns, stale) = if t.mult != 0 {
                    let ticks = rdtsc().saturating_sub(t.base.0);
                    let ns = t.base.1 + ((ticks as u128 * t.mult as u128) >> 32) as u64;
                    (ns, ticks >= t.anchor_ticks)
                } else {
                    let ns = monotonic_ns();
                    (ns, ns.saturating_sub(t.base.1) >= ANCHOR_NS)
                };
                if stale {
                    self.anchors += 1;
                    t.anchor()
                } else {
                    ns
                }
            }
        };
        self.last = self.last.max(ns);
        self.last
    }
}

impl TscLine {
    /// Draw the line from the first reading to a new one; returns the new one's time.
    #[cold]
    fn anchor(&mut self) -> u64 {
        let p = pair();
        let (dt, dns) = (
            p.0.saturating_sub(self.first.0),
            p.1.saturating_sub(self.first.1),
        );
        let mult = if dt == 0 {
            0
        } else {
            (((dns as u128) << 32) / dt as u128).min(u64::MAX as u128) as u64
        };
        if mult == 0 {
            return p.1;
        }
        self.mult = mult;
        self.anchor_ticks =
            (((ANCHOR_NS as u128) << 32) / mult as u128).min(u64::MAX as u128) as u64;
        self.base = p;
        p.1
    }
}

/// A (TSC, `CLOCK_MONOTONIC`) pair read together: the TSC is the midpoint of one read before
/// and one after the clock's, from the tightest of 8 tries (a try the thread was interrupted
/// in would put the line off by half the interruption). Under a microsecond, once per anchor.
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
    }
    best.1
}

/// Whether the kernel keeps time with the TSC (`current_clocksource` is `tsc`): it does so
/// only when the TSC is invariant and synchronised across CPUs. Read once per process (were
/// the kernel to switch away later, anchors every [`ANCHOR_NS`] bound the drift).
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
    // SAFETY: RDTSC exists on every x86_64 CPU, reads only the counter and touches no memory;
    // where a task disabled it (prctl PR_SET_TSC) it raises SIGSEGV, which is not undefined
    // behaviour (and the vDSO's clock_gettime would fault the same way).
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
        // Until the line was anchored a few times (bounded: 10 s of a stalled machine).
        while c.anchors() < 4 && monotonic_ns() - start < 10_000_000_000 {
            let before = monotonic_ns();
            let t = c.now_ns();
            let after = monotonic_ns();
            assert!(t >= prev, "went back: {prev} then {t}");
            // Within a margin of the vDSO's clock read around it: the tightest of 8 anchor
            // reads puts the line off by nanoseconds; 100 us still catches a wrong scale (10 %
            // over the 1 ms a line is extrapolated).
            assert!(
                t + 100_000 >= before && t <= after + 100_000,
                "{before} {t} {after}"
            );
            prev = t;
        }
        if tsc_is_clocksource() {
            assert!(
                c.anchors() >= 4 && c.tsc.is_some_and(|t| t.mult != 0),
                "the kernel's clocksource is the TSC, yet no line was drawn"
            );
        }
    }
}
