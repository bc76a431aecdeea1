//! A sans-IO TCP sender (RFC 9293) for a byte stream that lives elsewhere: the mapped file is
//! the retransmit buffer, so the state machine only tracks *offsets* into the stream and tells
//! the I/O layer which range each segment carries.
//!
//! Driven like quinn-proto or smoltcp's socket: [`Sender::on_segment`] when a segment
//! arrives, [`Sender::on_timeout`] when [`Sender::poll_timeout`] has passed, and
//! [`Sender::poll_transmit`] while the I/O layer has room for a segment. No I/O, no clock of
//! its own (every call takes `now`), no allocation per segment.
//!
//! What it does: active open with MSS, window scale, SACK-permitted and timestamps (RFC 7323);
//! receive-window and congestion-window limits (RFC 5681 slow start / congestion avoidance,
//! RFC 6582 NewReno fast retransmit and recovery); SACK-based loss recovery (a simplified RFC
//! 6675 scoreboard: holes below the highest SACKed byte are retransmitted first, `pipe` limits
//! sending); RTT estimation and RTO (RFC 6298) with exponential backoff and Karn's rule;
//! zero-window probing (persist timer); FIN after the data; RST handling; connect and user
//! timeouts. The peer's data is acknowledged and discarded (we only send).
//!
//! Sequence numbers are kept as 64-bit stream offsets (offset 0 = first data byte = ISS + 1)
//! and converted to 32-bit wrapping numbers only at the wire, so wrap-around is invisible to
//! the logic and streams may exceed 4 GiB.

mod cc;
mod input;
mod output;
mod scoreboard;

#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use serde::Serialize;

pub use self::cc::{CongestionControl, NewReno};
use self::scoreboard::Scoreboard;
use super::wire::tcp::{Flags, Options};

/// Tunables of one connection.
#[derive(Debug, Clone)]
pub struct Config {
    /// Our MSS (from the interface MTU): what we announce and the most we send per segment.
    pub mss: u16,
    /// Initial send sequence number.
    pub iss: u32,
    /// Give up connecting after this long.
    pub connect_timeout: Duration,
    /// Give up when the peer acknowledges nothing for this long while data is outstanding.
    pub user_timeout: Duration,
    /// Lower bound of the RTO (RFC 6298 says 1 s; Linux uses 200 ms).
    pub min_rto: Duration,
    /// Upper bound of the RTO.
    pub max_rto: Duration,
    /// RTO before any RTT sample (RFC 6298: 1 s).
    pub initial_rto: Duration,
    /// Offer SACK.
    pub sack: bool,
    /// Offer timestamps.
    pub timestamps: bool,
    /// Initial congestion window in segments (RFC 6928: 10).
    pub initial_window: u32,
}

impl Config {
    /// Defaults for a path with `mss` and initial sequence number `iss`.
    pub fn new(mss: u16, iss: u32) -> Self {
        Config {
            mss,
            iss,
            connect_timeout: Duration::from_secs(10),
            user_timeout: Duration::from_secs(30),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(60),
            initial_rto: Duration::from_secs(1),
            sack: true,
            timestamps: true,
            initial_window: 10,
        }
    }
}

/// Connection states we pass through as an active opener and sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum State {
    /// SYN sent, waiting for SYN-ACK.
    SynSent,
    /// Data may flow.
    Established,
    /// FIN sent, not yet acknowledged.
    FinWait1,
    /// Our FIN acknowledged; waiting for the peer's.
    FinWait2,
    /// Both FINs exchanged and acknowledged (TIME-WAIT is not kept: the port stays reserved by
    /// a kernel socket until the connection object is dropped).
    Closed,
}

/// Why the connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnError {
    /// RST in reply to our SYN: nobody listens.
    #[error("connection refused (RST in reply to SYN)")]
    Refused,
    /// No SYN-ACK within the connect timeout.
    #[error("no SYN-ACK within the connect timeout")]
    ConnectTimeout,
    /// The peer reset the connection.
    #[error("connection reset by peer")]
    Reset,
    /// Nothing acknowledged within the user timeout.
    #[error("peer acknowledged nothing within the user timeout")]
    Timeout,
}

/// Counters for reports and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Segments handed to the I/O layer (incl. retransmissions and pure ACKs).
    pub segments_out: u64,
    /// Data segments sent again (any reason).
    pub retransmits: u64,
    /// Bytes sent again.
    pub retransmitted_bytes: u64,
    /// Fast-retransmit/recovery episodes entered.
    pub fast_recoveries: u64,
    /// Retransmission timeouts.
    pub rto_expirations: u64,
    /// Segments retransmitted from SACK holes.
    pub sack_retransmits: u64,
    /// Duplicate ACKs seen.
    pub dup_acks: u64,
    /// Zero-window probes sent.
    pub window_probes: u64,
    /// Tail loss probes sent (RFC 8985 §7).
    pub tail_probes: u64,
    /// Segments received.
    pub segments_in: u64,
    /// Smoothed RTT in microseconds (0 before any sample).
    pub srtt_us: u64,
    /// Congestion window now, bytes.
    pub cwnd: u64,
}

/// One segment to send: header fields plus the stream range it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (valid with ACK).
    pub ack: u32,
    /// Control bits.
    pub flags: Flags,
    /// Window to advertise (already scaled down).
    pub window: u16,
    /// Options.
    pub options: Options,
    /// Stream offset of the data.
    pub offset: u64,
    /// Bytes of data (0 for control segments).
    pub len: usize,
}

/// The sender, generic over its congestion control (NewReno by default).
#[derive(Debug, Clone)]
pub struct Sender<C: CongestionControl = NewReno> {
    cfg: Config,
    state: State,
    error: Option<ConnError>,
    started: Instant,

    // Send side, as stream offsets.
    una: u64,
    nxt: u64,
    /// Highest offset ever sent (+1 for a sent FIN).
    max_sent: u64,
    /// Stream length made available by `push`.
    end: u64,
    fin_queued: bool,
    fin_sent: bool,
    syn_due: bool,
    syn_retransmitted: bool,
    syn_sent_at: Option<Instant>,

    // Peer.
    snd_wnd: u64,
    max_wnd: u64,
    wl1: u32,
    wl2: u64,
    peer_mss: u16,
    snd_shift: u8,
    sack_ok: bool,
    ts_ok: bool,
    ts_recent: u32,
    rcv_nxt: u32,
    peer_fin: bool,
    ack_due: bool,

    // Congestion control and loss recovery.
    cc: C,
    dupacks: u32,
    /// In fast recovery until `una` reaches this offset.
    recover: Option<u64>,
    /// Offset below which everything before `recover` was fed back by an RTO (no new
    /// recovery for losses of the same window, RFC 6582).
    high_rxt: u64,
    rtx_una: bool,
    /// After an RTO: duplicate ACKs below this offset start no fast recovery (RFC 6582 §4.1).
    rto_recover: u64,
    sb: Scoreboard,

    // RTT / timers.
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
    rto_at: Option<Instant>,
    persist_at: Option<Instant>,
    /// Tail loss probe timer (RFC 8985 §7): an ACK lost at the end of a flight, or the last
    /// segments lost, are found in ~2 RTT instead of an RTO.
    pto_at: Option<Instant>,
    tlp_due: bool,
    persist_backoff: u32,
    probe_due: bool,
    timed: Option<(u64, Instant)>,
    last_progress: Instant,
    stats: Stats,
}

/// Our advertised window (we discard the peer's data, so any is fine).
const RCV_WINDOW: u16 = 65535;
/// Timestamp clock: 1 ms per tick.
const TS_TICK_US: u128 = 1000;

fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

impl Sender<NewReno> {
    /// Start an active open at `now` with NewReno congestion control: the first
    /// [`Sender::poll_transmit`] yields the SYN.
    pub fn connect(cfg: Config, now: Instant) -> Self {
        let cc = NewReno::new(cfg.initial_window, cfg.mss as u64);
        Sender::with_congestion_control(cfg, cc, now)
    }
}

impl<C: CongestionControl> Sender<C> {
    /// Start an active open at `now` with the congestion controller `cc`: the first
    /// [`Sender::poll_transmit`] yields the SYN.
    pub fn with_congestion_control(cfg: Config, cc: C, now: Instant) -> Self {
        Sender {
            rto: cfg.initial_rto,
            state: State::SynSent,
            error: None,
            started: now,
            una: 0,
            nxt: 0,
            max_sent: 0,
            end: 0,
            fin_queued: false,
            fin_sent: false,
            syn_due: true,
            syn_retransmitted: false,
            syn_sent_at: None,
            snd_wnd: 0,
            max_wnd: 0,
            wl1: 0,
            wl2: 0,
            peer_mss: 536,
            snd_shift: 0,
            sack_ok: false,
            ts_ok: false,
            ts_recent: 0,
            rcv_nxt: 0,
            peer_fin: false,
            ack_due: false,
            cc,
            dupacks: 0,
            recover: None,
            high_rxt: 0,
            rtx_una: false,
            rto_recover: 0,
            sb: Scoreboard::default(),
            srtt: None,
            rttvar: Duration::ZERO,
            rto_at: None,
            persist_at: None,
            pto_at: None,
            tlp_due: false,
            persist_backoff: 0,
            probe_due: false,
            timed: None,
            last_progress: now,
            stats: Stats::default(),
            cfg,
        }
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The failure, once the connection has failed.
    pub fn error(&self) -> Option<ConnError> {
        self.error
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        s.srtt_us = self.srtt.map_or(0, |d| d.as_micros() as u64);
        s.cwnd = self.cc.cwnd();
        s
    }

    /// Stream bytes acknowledged by the peer.
    pub fn acked(&self) -> u64 {
        self.una.min(self.end)
    }

    /// Stream length pushed so far.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// True once every pushed byte (and the FIN, if closed) is acknowledged.
    pub fn all_acked(&self) -> bool {
        let target = self.end + u64::from(self.fin_queued);
        self.state != State::SynSent && self.una >= target
    }

    /// True once the peer has sent its FIN (and we acknowledged it).
    pub fn peer_closed(&self) -> bool {
        self.peer_fin
    }

    /// Largest data per segment now (peer MSS, our MSS, minus the timestamp option).
    pub fn effective_mss(&self) -> usize {
        let m = self.cfg.mss.min(self.peer_mss) as usize;
        if self.ts_ok {
            m - 12
        } else {
            m
        }
    }

    /// Make `len` more stream bytes available for sending.
    pub fn push(&mut self, len: u64) {
        debug_assert!(!self.fin_queued, "push after close");
        self.end += len;
    }

    /// Queue a FIN after the data pushed so far.
    pub fn close(&mut self) {
        self.fin_queued = true;
    }

    fn seq(&self, off: u64) -> u32 {
        self.cfg.iss.wrapping_add(1).wrapping_add(off as u32)
    }

    /// Stream offset of a sequence number near `una` (wrap-safe).
    fn off(&self, seq: u32) -> i64 {
        self.una as i64 + seq.wrapping_sub(self.seq(self.una)) as i32 as i64
    }

    fn ts_now(&self, now: Instant) -> u32 {
        (((now - self.started).as_micros() / TS_TICK_US) as u32)
            .wrapping_add(self.cfg.iss.rotate_left(7))
    }

    fn flight(&self) -> u64 {
        self.max_sent.max(self.nxt) - self.una
    }

    /// Bytes believed in the network (RFC 6675 `pipe`, with every hole below the highest SACK
    /// counted as lost unless it was retransmitted).
    fn pipe(&self) -> u64 {
        let outstanding = self.nxt.max(self.max_sent) - self.una;
        let sacked = self.sb.sacked_bytes();
        let lost = match self.sb.highest() {
            Some(h) => {
                let holes = h.saturating_sub(self.una).saturating_sub(sacked);
                let rtx = self.high_rxt.clamp(self.una, h) - self.una;
                holes.saturating_sub(rtx)
            }
            None => 0,
        };
        outstanding.saturating_sub(sacked).saturating_sub(lost)
    }

    /// The earliest time [`Sender::on_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.error.is_some() || self.state == State::Closed {
            return None;
        }
        [self.rto_at, self.persist_at, self.pto_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// Arm (or re-arm) the tail loss probe while data is outstanding outside recovery.
    fn arm_pto(&mut self, now: Instant) {
        self.pto_at = None;
        if self.flight() == 0 || self.recover.is_some() || self.state == State::SynSent {
            return;
        }
        let srtt = self.srtt.unwrap_or(self.rto / 2);
        let pto = (srtt * 2).max(Duration::from_millis(10));
        let at = now + pto;
        if self.rto_at.is_none_or(|r| at < r) {
            self.pto_at = Some(at);
        }
    }

    /// Handle expired timers.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.error.is_some() {
            return;
        }
        if let Some(t) = self.persist_at {
            if now >= t {
                self.persist_at = None;
                self.probe_due = true;
                self.persist_backoff = (self.persist_backoff + 1).min(10);
            }
        }
        if let Some(t) = self.pto_at {
            if now >= t {
                self.pto_at = None;
                if self.flight() > 0 && self.recover.is_none() {
                    self.tlp_due = true;
                }
            }
        }
        let Some(t) = self.rto_at else { return };
        if now < t {
            return;
        }
        self.rto_at = None;
        self.pto_at = None;
        self.tlp_due = false;
        if self.state == State::SynSent {
            if now - self.started >= self.cfg.connect_timeout {
                self.fail(ConnError::ConnectTimeout);
                return;
            }
            self.syn_due = true;
            self.syn_retransmitted = true;
            self.rto = (self.rto * 2).min(self.cfg.max_rto);
            return;
        }
        if self.flight() == 0 {
            return;
        }
        if now - self.last_progress >= self.cfg.user_timeout {
            self.fail(ConnError::Timeout);
            return;
        }
        // RFC 5681 §3.1 / RFC 6298 §5: back off, shrink to one segment, go back to `una`.
        self.stats.rto_expirations += 1;
        let mss = self.effective_mss() as u64;
        let new_episode = self.recover.is_none() || self.stats.rto_expirations == 1;
        self.cc.on_rto(self.flight(), mss, new_episode);
        self.recover = None;
        self.dupacks = 0;
        self.sb.clear();
        self.max_sent = self.max_sent.max(self.nxt);
        self.rto_recover = self.max_sent;
        self.nxt = self.una;
        self.high_rxt = self.una;
        if self.fin_sent && self.una <= self.end {
            self.fin_sent = false;
        }
        self.timed = None;
        self.rto = (self.rto * 2).min(self.cfg.max_rto);
    }

    fn fail(&mut self, e: ConnError) {
        self.error = Some(e);
        self.state = State::Closed;
        self.rto_at = None;
        self.persist_at = None;
    }

    fn persist_interval(&self) -> Duration {
        (self.rto.max(self.cfg.min_rto) * (1 << self.persist_backoff.min(8))).min(self.cfg.max_rto)
    }

    fn has_data(&self) -> bool {
        self.nxt < self.end || (self.fin_queued && !self.fin_sent)
    }
}
