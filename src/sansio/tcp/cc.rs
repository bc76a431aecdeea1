//! Congestion control behind a small trait: the [`super::Sender`] decides *when* (new data
//! acknowledged, loss detected, recovery over, timeout), the controller decides the window.
//! [`NewReno`] (RFC 5681 + RFC 6582) is the default; CUBIC (RFC 9438) would be another
//! implementation of [`CongestionControl`].

use std::fmt::Debug;
use std::time::Instant;

/// How the congestion window reacts to the sender's events. Sizes are bytes; `mss` is the
/// current effective segment size.
pub trait CongestionControl: Debug + Send {
    /// The congestion window.
    fn cwnd(&self) -> u64;
    /// The connection is established (initial window; one segment after a retransmitted
    /// SYN, RFC 5681 §3.1).
    fn on_established(&mut self, mss: u64, syn_retransmitted: bool);
    /// `acked` new bytes were acknowledged outside loss recovery.
    fn on_ack(&mut self, acked: u64, mss: u64, now: Instant);
    /// Loss detected by duplicate ACKs or SACK: fast recovery starts with `flight` bytes
    /// outstanding.
    fn on_recovery_start(&mut self, flight: u64, mss: u64, sack: bool);
    /// A partial ACK of `acked` bytes during recovery without SACK.
    fn on_partial_ack(&mut self, acked: u64, mss: u64);
    /// A duplicate ACK during recovery without SACK.
    fn on_recovery_dup_ack(&mut self, mss: u64);
    /// Everything outstanding at the start of recovery is acknowledged.
    fn on_recovery_end(&mut self);
    /// The retransmission timer expired with `flight` bytes outstanding; `new_episode` is
    /// false for a further timeout of the same loss episode (ssthresh is kept).
    fn on_rto(&mut self, flight: u64, mss: u64, new_episode: bool);
}

/// NewReno: slow start and congestion avoidance (RFC 5681), fast recovery with window
/// inflation without SACK and `cwnd = ssthresh` with it (RFC 6582, RFC 6675).
#[derive(Debug, Clone)]
pub struct NewReno {
    cwnd: u64,
    ssthresh: u64,
    /// Bytes acknowledged in congestion avoidance since the window last grew.
    ca_acked: u64,
    /// Initial window in segments (RFC 6928: 10).
    initial_window: u64,
}

impl NewReno {
    /// A controller whose initial window is `initial_window` segments of `mss`.
    pub fn new(initial_window: u32, mss: u64) -> Self {
        NewReno {
            cwnd: initial_window as u64 * mss,
            ssthresh: u64::MAX,
            ca_acked: 0,
            initial_window: initial_window as u64,
        }
    }
}

impl CongestionControl for NewReno {
    fn cwnd(&self) -> u64 {
        self.cwnd
    }

    fn on_established(&mut self, mss: u64, syn_retransmitted: bool) {
        self.cwnd = if syn_retransmitted {
            mss
        } else {
            self.initial_window * mss
        };
    }

    fn on_ack(&mut self, acked: u64, mss: u64, _now: Instant) {
        if self.cwnd < self.ssthresh {
            // Slow start, growth capped per ACK (RFC 5681 §3.1, ABC-like limit).
            self.cwnd += acked.min(self.initial_window * mss);
        } else {
            self.ca_acked += acked;
            if self.ca_acked >= self.cwnd {
                self.ca_acked -= self.cwnd;
                self.cwnd += mss;
            }
        }
    }

    fn on_recovery_start(&mut self, flight: u64, mss: u64, sack: bool) {
        self.ssthresh = (flight / 2).max(2 * mss);
        self.cwnd = if sack {
            self.ssthresh
        } else {
            self.ssthresh + 3 * mss
        };
    }

    fn on_partial_ack(&mut self, acked: u64, mss: u64) {
        // Deflate by what was acknowledged, add back one segment (RFC 6582 §3.2 step 5).
        self.cwnd = self.cwnd.saturating_sub(acked).max(mss) + mss;
    }

    fn on_recovery_dup_ack(&mut self, mss: u64) {
        self.cwnd += mss; // inflate
    }

    fn on_recovery_end(&mut self) {
        // Full ACK: leave recovery with cwnd = ssthresh (RFC 6582 §3.2 step 3, option 2).
        self.cwnd = self.ssthresh;
        self.ca_acked = 0;
    }

    fn on_rto(&mut self, flight: u64, mss: u64, new_episode: bool) {
        if new_episode {
            self.ssthresh = (flight / 2).max(2 * mss);
        }
        self.cwnd = mss;
        self.ca_acked = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_avoidance_recovery_and_timeout() {
        let now = Instant::now();
        let mss = 1000;
        let mut c = NewReno::new(10, mss);
        c.on_established(mss, false);
        assert_eq!(c.cwnd(), 10_000);
        c.on_ack(5_000, mss, now);
        assert_eq!(
            c.cwnd(),
            15_000,
            "slow start grows by what was acknowledged"
        );
        c.on_recovery_start(20_000, mss, true);
        assert_eq!(
            c.cwnd(),
            10_000,
            "SACK recovery: cwnd = ssthresh = flight / 2"
        );
        c.on_recovery_end();
        c.on_ack(10_000, mss, now);
        assert_eq!(c.cwnd(), 11_000, "congestion avoidance: one MSS per window");
        c.on_rto(30_000, mss, true);
        assert_eq!(c.cwnd(), mss);
        c.on_recovery_start(4_000, mss, false);
        assert_eq!(
            c.cwnd(),
            2 * mss + 3 * mss,
            "ssthresh at least 2 MSS, inflated by 3"
        );
        c.on_recovery_dup_ack(mss);
        c.on_partial_ack(3_000, mss);
        assert_eq!(c.cwnd(), 4_000);
        let mut r = NewReno::new(10, mss);
        r.on_established(mss, true);
        assert_eq!(r.cwnd(), mss, "one segment after a retransmitted SYN");
    }
}
