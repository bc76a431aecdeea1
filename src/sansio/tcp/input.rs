//! Input: segments from the peer (handshake reply, ACKs with SACK blocks and windows, the
//! peer's data and FIN, RST), RTT samples, loss detection.

use std::time::{Duration, Instant};

use super::{seq_lt, CongestionControl, ConnError, Sender, State, RCV_WINDOW};
use crate::sansio::wire::tcp::{Flags, Repr};

impl<C: CongestionControl> Sender<C> {
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
        // RFC 9293 §3.10.7.4, first check: a segment outside our receive window (an old
        // duplicate, a retransmitted SYN-ACK whose ACK was lost, or forged) is answered with
        // an ACK and dropped; its ACK and window are not taken. (Found by the `tcp_sender`
        // fuzz target: a forged far-off sequence number used to set the peer's window.)
        let len = seg.payload_len as u32 + u32::from(f.intersects(Flags::SYN | Flags::FIN));
        let win = RCV_WINDOW as u32;
        let first = seg.seq.wrapping_sub(self.rcv_nxt);
        let last = seg
            .seq
            .wrapping_add(len.max(1) - 1)
            .wrapping_sub(self.rcv_nxt);
        if first >= win && (len == 0 || last >= win) {
            self.ack_due = true;
            return;
        }
        if f.contains(Flags::SYN) {
            // A SYN in the window: answered with an ACK (RFC 5961 §4), nothing else.
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
        // RFC 7323 §2.3: a shift over 14 is taken as 14. (Found by the fuzz target.)
        self.snd_shift = o.wscale.unwrap_or(0).min(14);
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
        self.cc.on_established(mss, self.syn_retransmitted);
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
        // RFC 9293 §3.10.7.4: window update only from newer segments; and, as Linux does,
        // from any ACK that moves `una` (the window's right edge is una + snd_wnd, so a
        // window must never outlive the ACK it was offered with).
        if ack > self.una || seq_lt(self.wl1, seg.seq) || (self.wl1 == seg.seq && self.wl2 <= ack) {
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
                    // Full ACK: recovery is over.
                    self.recover = None;
                    self.cc.on_recovery_end();
                }
                Some(_) => {
                    // Partial ACK: the next hole is lost too.
                    if !self.sack_ok {
                        self.rtx_una = true;
                        self.cc.on_partial_ack(acked, mss);
                    }
                }
                None => self.cc.on_ack(acked, mss, now),
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
                Some(_) if !self.sack_ok => self.cc.on_recovery_dup_ack(mss),
                _ => {}
            }
        }
        self.arm_persist(now);
    }

    /// Persist timer: armed while the peer's window is closed on pending data and nothing is
    /// outstanding (so no RTO runs); stopped when the window opens.
    pub(super) fn arm_persist(&mut self, now: Instant) {
        if self.snd_wnd == 0 && self.nxt <= self.una && self.has_data() {
            if self.persist_at.is_none() && !self.probe_due {
                self.persist_at = Some(now + self.persist_interval());
            }
        } else if self.snd_wnd > 0 {
            self.persist_at = None;
            self.probe_due = false;
        }
    }

    fn enter_recovery(&mut self, mss: u64) {
        self.stats.fast_recoveries += 1;
        self.cc.on_recovery_start(self.flight(), mss, self.sack_ok);
        self.recover = Some(self.max_sent.max(self.nxt));
        self.high_rxt = self.una;
        self.rtx_una = true;
        self.timed = None;
        self.pto_at = None;
        self.tlp_due = false;
    }
}
