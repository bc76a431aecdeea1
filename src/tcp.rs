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

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::wire::tcp::{Flags, Options, Repr};

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

/// Sorted, disjoint SACKed ranges above `una` (stream offsets), fixed capacity.
#[derive(Debug, Clone, Default)]
struct Scoreboard {
    ranges: Vec<(u64, u64)>,
}

const SCOREBOARD_CAP: usize = 64;

impl Scoreboard {
    fn clear(&mut self) {
        self.ranges.clear();
    }
    fn add(&mut self, mut a: u64, mut b: u64) {
        if a >= b {
            return;
        }
        // Merge every overlapping/adjacent range into [a, b).
        let mut i = 0;
        while i < self.ranges.len() {
            let (x, y) = self.ranges[i];
            if y < a || x > b {
                i += 1;
                continue;
            }
            a = a.min(x);
            b = b.max(y);
            self.ranges.remove(i);
        }
        let pos = self.ranges.partition_point(|r| r.0 < a);
        if self.ranges.len() == SCOREBOARD_CAP {
            // Keep the lowest ranges: they decide what to retransmit next.
            if pos == SCOREBOARD_CAP {
                return;
            }
            self.ranges.pop();
        }
        self.ranges.insert(pos, (a, b));
    }
    fn advance(&mut self, una: u64) {
        self.ranges.retain(|r| r.1 > una);
        if let Some(f) = self.ranges.first_mut() {
            f.0 = f.0.max(una);
        }
    }
    fn highest(&self) -> Option<u64> {
        self.ranges.last().map(|r| r.1)
    }
    fn sacked_bytes(&self) -> u64 {
        self.ranges.iter().map(|r| r.1 - r.0).sum()
    }
    fn is_sacked(&self, off: u64) -> bool {
        self.ranges.iter().any(|r| r.0 <= off && off < r.1)
    }
    /// First un-SACKed byte at or after `from`, below the highest SACKed byte, with the length
    /// of that hole.
    fn next_hole(&self, from: u64) -> Option<(u64, u64)> {
        let mut at = from;
        for &(x, y) in &self.ranges {
            if y <= at {
                continue;
            }
            if x > at {
                return Some((at, x - at));
            }
            at = y;
        }
        None
    }
}

/// The sender.
#[derive(Debug, Clone)]
pub struct Sender {
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

    // Congestion control.
    cwnd: u64,
    ssthresh: u64,
    ca_acked: u64,
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

impl Sender {
    /// Start an active open at `now`: the first [`Sender::poll_transmit`] yields the SYN.
    pub fn connect(cfg: Config, now: Instant) -> Self {
        let mss = cfg.mss as u64;
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
            cwnd: cfg.initial_window as u64 * mss,
            ssthresh: u64::MAX,
            ca_acked: 0,
            dupacks: 0,
            recover: None,
            high_rxt: 0,
            rtx_una: false,
            rto_recover: 0,
            sb: Scoreboard {
                ranges: Vec::with_capacity(SCOREBOARD_CAP),
            },
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
        s.cwnd = self.cwnd;
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
        if self.recover.is_none() || self.stats.rto_expirations == 1 {
            self.ssthresh = (self.flight() / 2).max(2 * mss);
        }
        self.cwnd = mss;
        self.ca_acked = 0;
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

    /// A segment of this connection arrived (already matched to our 4-tuple).
    pub fn on_segment(&mut self, now: Instant, seg: &Repr) {
        if self.error.is_some() || self.state == State::Closed && !seg.flags.contains(Flags::FIN) {
            return;
        }
        self.stats.segments_in += 1;
        if self.state == State::SynSent {
            self.on_syn_sent(now, seg);
            return;
        }
        let f = seg.flags;
        // RST: accepted only if in the window (RFC 5961 would challenge inexact ones).
        if f.contains(Flags::RST) {
            let d = seg.seq.wrapping_sub(self.rcv_nxt);
            if d < RCV_WINDOW as u32 {
                self.fail(ConnError::Reset);
            }
            return;
        }
        if f.contains(Flags::SYN) {
            // A retransmitted SYN-ACK: our ACK was lost.
            self.ack_due = true;
            return;
        }
        if self.ts_ok {
            if let Some((val, _)) = seg.options.timestamps {
                if !seq_lt(seg.seq, self.rcv_nxt) && !seq_lt(val, self.ts_recent) {
                    self.ts_recent = val;
                }
            }
        }
        // The peer's data and FIN: accepted in order, acknowledged, discarded.
        if seg.payload_len > 0 || f.contains(Flags::FIN) {
            if seg.seq == self.rcv_nxt {
                self.rcv_nxt = self.rcv_nxt.wrapping_add(seg.payload_len as u32);
                if f.contains(Flags::FIN) && !self.peer_fin {
                    self.peer_fin = true;
                    self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
                }
            }
            self.ack_due = true;
        }
        if !f.contains(Flags::ACK) {
            return;
        }
        self.on_ack(now, seg);
        if self.state == State::FinWait2 && self.peer_fin {
            self.state = State::Closed;
        }
    }

    fn on_syn_sent(&mut self, now: Instant, seg: &Repr) {
        let f = seg.flags;
        let ack_ok = f.contains(Flags::ACK) && seg.ack == self.cfg.iss.wrapping_add(1);
        if f.contains(Flags::RST) {
            if ack_ok {
                self.fail(ConnError::Refused);
            }
            return;
        }
        if !(f.contains(Flags::SYN) && ack_ok) {
            return; // simultaneous open and stray ACKs are not supported: ignore
        }
        let o = &seg.options;
        self.rcv_nxt = seg.seq.wrapping_add(1);
        self.peer_mss = o.mss.unwrap_or(536).max(64);
        // We always offer window scaling, so the peer's option alone decides (RFC 7323 §2.2).
        self.snd_shift = o.wscale.unwrap_or(0);
        self.sack_ok = self.cfg.sack && o.sack_permitted;
        if let (true, Some((val, _))) = (self.cfg.timestamps, o.timestamps) {
            self.ts_ok = true;
            self.ts_recent = val;
        }
        // The window of a SYN is never scaled.
        self.snd_wnd = seg.window as u64;
        self.max_wnd = self.snd_wnd;
        self.wl1 = seg.seq;
        self.wl2 = 0;
        self.state = State::Established;
        self.ack_due = true;
        self.rto_at = None;
        self.last_progress = now;
        if let (Some(t), false) = (self.syn_sent_at, self.syn_retransmitted) {
            self.rtt_sample(now - t);
        } else {
            // RFC 6298 §5.7: after a retransmitted SYN the RTO starts at 3 s; we keep the
            // backed-off value until the first sample instead.
        }
        let mss = self.effective_mss() as u64;
        self.cwnd = self.cfg.initial_window as u64 * mss;
        if self.syn_retransmitted {
            self.cwnd = mss; // RFC 5681 §3.1
        }
    }

    fn rtt_sample(&mut self, r: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(s) => {
                let diff = s.abs_diff(r);
                self.rttvar = (self.rttvar * 3 + diff) / 4;
                self.srtt = Some((s * 7 + r) / 8);
            }
        }
        let s = self.srtt.unwrap_or(r);
        let g = Duration::from_millis(1);
        self.rto = (s + (self.rttvar * 4).max(g)).clamp(self.cfg.min_rto, self.cfg.max_rto);
    }

    fn on_ack(&mut self, now: Instant, seg: &Repr) {
        let ack = self.off(seg.ack);
        let top = self.max_sent.max(self.nxt) as i64;
        if ack > top {
            self.ack_due = true; // acknowledges something never sent
            return;
        }
        if ack < self.una as i64 {
            return; // old duplicate
        }
        let ack = ack as u64;
        let window = (seg.window as u64) << self.snd_shift;
        if self.sack_ok {
            for &(l, r) in seg.options.sack_blocks() {
                let (a, b) = (self.off(l), self.off(r));
                if a >= ack as i64 && b > a && b <= top {
                    self.sb.add(a as u64, b as u64);
                }
            }
        }
        let mss = self.effective_mss() as u64;
        let old_wnd = self.snd_wnd;
        // RFC 9293 §3.10.7.4: window update only from newer segments.
        if seq_lt(self.wl1, seg.seq) || (self.wl1 == seg.seq && self.wl2 <= ack) {
            self.snd_wnd = window;
            self.max_wnd = self.max_wnd.max(window);
            self.wl1 = seg.seq;
            self.wl2 = ack;
        }
        if ack > self.una {
            let acked = ack - self.una;
            self.una = ack;
            if self.nxt < ack {
                self.nxt = ack;
            }
            self.last_progress = now;
            self.sb.advance(ack);
            self.dupacks = 0;
            self.persist_backoff = 0;
            // RTT: timestamps echo (RFC 7323 §4) or Karn's single timed segment.
            if self.ts_ok {
                if let Some((_, ecr)) = seg.options.timestamps {
                    if ecr != 0 {
                        let ticks = self.ts_now(now).wrapping_sub(ecr);
                        if (ticks as i32) >= 0 {
                            self.rtt_sample(
                                Duration::from_millis(ticks as u64).max(Duration::from_micros(100)),
                            );
                        }
                    }
                }
            } else if let Some((o, t)) = self.timed {
                if ack >= o {
                    self.timed = None;
                    self.rtt_sample(now - t);
                }
            }
            if self.fin_sent && ack > self.end {
                // Our FIN is acknowledged.
                self.state = if self.peer_fin {
                    State::Closed
                } else {
                    State::FinWait2
                };
            }
            match self.recover {
                Some(r) if ack >= r => {
                    // Full ACK: leave recovery with cwnd = ssthresh (RFC 6582 §3.2 step 3,
                    // option 2).
                    self.recover = None;
                    self.cwnd = self.ssthresh;
                    self.ca_acked = 0;
                }
                Some(_) => {
                    // Partial ACK: the next hole is lost too.
                    if !self.sack_ok {
                        self.rtx_una = true;
                        self.cwnd = self.cwnd.saturating_sub(acked).max(mss) + mss;
                    }
                }
                None => {
                    if self.cwnd < self.ssthresh {
                        self.cwnd += acked.min(self.cfg.initial_window as u64 * mss);
                    } else {
                        self.ca_acked += acked;
                        if self.ca_acked >= self.cwnd {
                            self.ca_acked -= self.cwnd;
                            self.cwnd += mss;
                        }
                    }
                }
            }
            // RFC 6298 §5.2/5.3: restart or stop the timer; a fresh ACK resets the backoff.
            if self.srtt.is_some() {
                let s = self.srtt.unwrap_or_default();
                self.rto = (s + (self.rttvar * 4).max(Duration::from_millis(1)))
                    .clamp(self.cfg.min_rto, self.cfg.max_rto);
            }
            self.rto_at = (self.flight() > 0).then(|| now + self.rto);
            self.arm_pto(now);
        } else if self.flight() > 0
            && seg.payload_len == 0
            && !seg.flags.contains(Flags::FIN)
            && window == old_wnd
        {
            // Duplicate ACK (RFC 5681 §2).
            self.stats.dup_acks += 1;
            self.dupacks += 1;
            let sack_trigger = self.sack_ok && self.sb.sacked_bytes() >= 3 * mss;
            match self.recover {
                // Losses of a window an RTO already went back over start no new recovery.
                None if (self.dupacks >= 3 || sack_trigger) && self.una >= self.rto_recover => {
                    self.enter_recovery(mss)
                }
                Some(_) if !self.sack_ok => self.cwnd += mss, // inflate
                _ => {}
            }
        }
        self.arm_persist(now);
    }

    /// Persist timer: armed while the peer's window is closed on pending data and nothing is
    /// outstanding (so no RTO runs); stopped when the window opens.
    fn arm_persist(&mut self, now: Instant) {
        if self.snd_wnd == 0 && self.nxt <= self.una && self.has_data() {
            if self.persist_at.is_none() && !self.probe_due {
                self.persist_at = Some(now + self.persist_interval());
            }
        } else if self.snd_wnd > 0 {
            self.persist_at = None;
            self.probe_due = false;
        }
    }

    /// A RST for aborting the connection (sent by the I/O layer when it gives up).
    pub fn reset_segment(&self, now: Instant) -> Transmit {
        let mut t = self.base(now, self.seq(self.nxt), Flags::RST);
        t.options = Options::default();
        t
    }

    fn enter_recovery(&mut self, mss: u64) {
        self.stats.fast_recoveries += 1;
        self.ssthresh = (self.flight() / 2).max(2 * mss);
        self.recover = Some(self.max_sent.max(self.nxt));
        self.high_rxt = self.una;
        if self.sack_ok {
            self.cwnd = self.ssthresh;
        } else {
            self.cwnd = self.ssthresh + 3 * mss;
        }
        self.rtx_una = true;
        self.timed = None;
        self.pto_at = None;
        self.tlp_due = false;
    }

    fn persist_interval(&self) -> Duration {
        (self.rto.max(self.cfg.min_rto) * (1 << self.persist_backoff.min(8))).min(self.cfg.max_rto)
    }

    fn has_data(&self) -> bool {
        self.nxt < self.end || (self.fin_queued && !self.fin_sent)
    }

    fn base(&self, now: Instant, seq: u32, flags: Flags) -> Transmit {
        let mut options = Options::default();
        if self.ts_ok {
            options.timestamps = Some((self.ts_now(now), self.ts_recent));
        }
        Transmit {
            seq,
            ack: self.rcv_nxt,
            flags: flags | Flags::ACK,
            window: RCV_WINDOW,
            options,
            offset: 0,
            len: 0,
        }
    }

    /// The next segment to send, if any. Call repeatedly while the I/O layer has room.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        match self.next_transmit(now) {
            Some(t) => {
                self.stats.segments_out += 1;
                self.ack_due = false;
                Some(t)
            }
            None => {
                if self.error.is_none() && self.state != State::SynSent {
                    self.arm_persist(now);
                }
                None
            }
        }
    }

    fn next_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if self.error.is_some() {
            return None;
        }
        if self.state == State::SynSent {
            if !self.syn_due {
                return None;
            }
            self.syn_due = false;
            if self.syn_sent_at.is_none() {
                self.syn_sent_at = Some(now);
            }
            self.rto_at = Some(now + self.rto);
            let options = Options {
                mss: Some(self.cfg.mss),
                wscale: Some(0),
                sack_permitted: self.cfg.sack,
                timestamps: self.cfg.timestamps.then(|| (self.ts_now(now), 0)),
                ..Default::default()
            };
            return Some(Transmit {
                seq: self.cfg.iss,
                ack: 0,
                flags: Flags::SYN,
                window: RCV_WINDOW,
                options,
                offset: 0,
                len: 0,
            });
        }
        if self.state == State::Closed && !self.ack_due {
            return None;
        }
        let mss = self.effective_mss() as u64;
        // 1. Retransmit the first unacknowledged segment (fast retransmit / partial ACK).
        if self.rtx_una {
            self.rtx_una = false;
            if self.una < self.max_sent.max(self.nxt) {
                let len = self.sendable_len(self.una, mss);
                self.high_rxt = self.high_rxt.max(self.una + len.max(1));
                return Some(self.data_segment(now, self.una, len, true));
            }
        }
        // 2. SACK recovery: fill holes below the highest SACKed byte while pipe < cwnd.
        if self.recover.is_some() && self.sack_ok && self.pipe() < self.cwnd {
            let from = self.high_rxt.max(self.una);
            if let Some((at, hole)) = self.sb.next_hole(from) {
                let len = hole.min(mss).min(self.end.saturating_sub(at));
                if len > 0 || (self.fin_sent && at == self.end) {
                    self.high_rxt = at + len.max(1);
                    self.stats.sack_retransmits += 1;
                    return Some(self.data_segment(now, at, len, true));
                }
            }
        }
        // 2b. Tail loss probe: new data if the peer's window allows, else the last segment.
        if self.tlp_due {
            self.tlp_due = false;
            self.stats.tail_probes += 1;
            let rwnd_room = (self.una + self.snd_wnd).saturating_sub(self.nxt);
            if self.nxt < self.end && rwnd_room > 0 && self.nxt == self.max_sent {
                let len = (self.end - self.nxt).min(mss).min(rwnd_room);
                return Some(self.data_segment(now, self.nxt, len, false));
            }
            let at = self
                .end
                .min(self.max_sent)
                .saturating_sub(mss)
                .max(self.una);
            let len = self.end.min(self.max_sent).saturating_sub(at);
            if len > 0 || self.fin_sent {
                return Some(self.data_segment(now, at, len, true));
            }
        }
        // 3. New data (or data again after an RTO) within min(cwnd, rwnd).
        if self.nxt < self.end {
            // Skip what the peer already SACKed (after an RTO the scoreboard is empty).
            while self.nxt < self.end && self.sb.is_sacked(self.nxt) {
                self.nxt = self
                    .sb
                    .ranges
                    .iter()
                    .find(|r| r.0 <= self.nxt && self.nxt < r.1)
                    .map_or(self.nxt + 1, |r| r.1);
            }
            let in_flight = if self.recover.is_some() && self.sack_ok {
                self.pipe()
            } else {
                self.nxt - self.una
            };
            let wnd_edge = self.una + self.snd_wnd;
            let cwnd_room = self.cwnd.saturating_sub(in_flight);
            let rwnd_room = wnd_edge.saturating_sub(self.nxt);
            let room = cwnd_room.min(rwnd_room);
            let remaining = self.end - self.nxt;
            let len = remaining.min(mss).min(room);
            // Sender-side silly window avoidance (RFC 9293 §3.8.6.2.1).
            let ok = len > 0
                && (len == mss
                    || len == remaining
                    || self.nxt == self.una
                    || len >= self.max_wnd / 2);
            if ok && self.nxt < self.end {
                let at = self.nxt;
                let rtx = at < self.max_sent;
                return Some(self.data_segment(now, at, len, rtx));
            }
        }
        // 4. FIN after the data.
        if self.fin_queued && !self.fin_sent && self.nxt == self.end {
            self.fin_sent = true;
            let rtx = self.max_sent > self.end;
            self.nxt = self.end + 1;
            self.max_sent = self.max_sent.max(self.nxt);
            if self.state == State::Established {
                self.state = State::FinWait1;
            }
            if self.rto_at.is_none() {
                self.rto_at = Some(now + self.rto);
            }
            if rtx {
                self.stats.retransmits += 1;
            }
            return Some(self.base(now, self.seq(self.end), Flags::FIN));
        }
        // 5. Zero-window probe: an old sequence number makes the peer answer with its window.
        if self.probe_due {
            self.probe_due = false;
            self.stats.window_probes += 1;
            self.arm_persist(now);
            return Some(self.base(now, self.seq(self.una).wrapping_sub(1), Flags::empty()));
        }
        // 6. A pure ACK.
        if self.ack_due {
            return Some(self.base(now, self.seq(self.nxt), Flags::empty()));
        }
        None
    }

    fn sendable_len(&self, at: u64, mss: u64) -> u64 {
        self.end.saturating_sub(at).min(mss)
    }

    fn data_segment(&mut self, now: Instant, at: u64, len: u64, rtx: bool) -> Transmit {
        let mut flags = Flags::empty();
        // Data that reaches the end carries PSH; a FIN already sent is repeated with it.
        if at + len == self.end {
            flags |= Flags::PSH;
            if self.fin_sent {
                flags |= Flags::FIN;
            }
        }
        if len == 0 && at == self.end && self.fin_sent {
            flags |= Flags::FIN;
        }
        let t = Transmit {
            offset: at,
            len: len as usize,
            ..self.base(now, self.seq(at), flags)
        };
        if rtx {
            self.stats.retransmits += 1;
            self.stats.retransmitted_bytes += len;
            if self.timed.is_some_and(|(o, _)| o > at) {
                self.timed = None; // Karn
            }
        } else if self.timed.is_none() && !self.ts_ok {
            self.timed = Some((at + len, now));
        }
        if at == self.nxt {
            self.nxt = at + len;
        }
        self.max_sent = self.max_sent.max(at + len);
        if self.rto_at.is_none() {
            self.rto_at = Some(now + self.rto);
        }
        if !rtx {
            self.arm_pto(now);
        }
        t
    }
}

#[cfg(test)]
mod tests;
