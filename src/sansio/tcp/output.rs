//! Output: the next segment to send (SYN, retransmissions, SACK hole fills, tail loss
//! probes, new data within the windows, FIN, window probes, pure ACKs).

use std::time::Instant;

use super::{CongestionControl, Flags, Options, Sender, State, Transmit, RCV_WINDOW};

impl<C: CongestionControl> Sender<C> {
    /// A RST for aborting the connection (sent by the I/O layer when it gives up).
    pub fn reset_segment(&self, now: Instant) -> Transmit {
        let mut t = self.base(now, self.seq(self.nxt), Flags::RST);
        t.options = Options::default();
        t
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
                let len = self.resend_len(self.una, mss);
                self.high_rxt = self.high_rxt.max(self.una + len.max(1));
                return Some(self.data_segment(now, self.una, len, true));
            }
        }
        // 2. SACK recovery: fill holes below the highest SACKed byte while pipe < cwnd.
        if self.recover.is_some() && self.sack_ok && self.pipe() < self.cc.cwnd() {
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
            while self.nxt < self.end {
                match self.sb.range_of(self.nxt) {
                    Some((_, end)) => self.nxt = end,
                    None => break,
                }
            }
            let in_flight = if self.recover.is_some() && self.sack_ok {
                self.pipe()
            } else {
                self.nxt - self.una
            };
            let wnd_edge = self.una + self.snd_wnd;
            let cwnd_room = self.cc.cwnd().saturating_sub(in_flight);
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

    /// Bytes a retransmission at `at` may carry: what was sent before, at most one MSS.
    /// (New data never rides on a retransmission: it would bypass the peer's window and the
    /// congestion window. Found by the `tcp_sender` fuzz target.)
    fn resend_len(&self, at: u64, mss: u64) -> u64 {
        self.end.min(self.max_sent).saturating_sub(at).min(mss)
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
