//! The in-kernel generator's tables (sans-IO): what user space hands to `bpf/live.bpf.c`.
//!
//! The program stamps frames from per-flow entries ([`FlowEntry`]: addresses, ports, the next
//! IPv4 identification and TCP sequence number, and the partial checksum sums of everything
//! that does not change per packet) and a size cycle ([`size_cycle`]: one period of the
//! mix's exact order). Entries are derived from frames the ordinary framers wrote, so the
//! kernel's frames are the AF_XDP generator's frames. [`stamp`] is the same algorithm in Rust:
//! the model the program is tested against.

use super::pacing::Imix;
use super::wire::checksum;

/// Bytes of one entry of the program's `flows` map (`struct live_flow`).
pub const FLOW_ENTRY_LEN: usize = 72;
/// Bytes of the program's `state` map value (`struct live_state`).
pub const STATE_LEN: usize = 80;
/// Longest size cycle the program takes.
pub const MAX_CYCLE: usize = 1 << 16;

/// Where a generator frame's headers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Offset of the IP header (14, or 18 with a VLAN tag).
    pub l3: usize,
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// Stateless TCP (else UDP).
    pub tcp: bool,
}

impl Layout {
    /// Offset of the L4 header.
    pub fn l4(&self) -> usize {
        self.l3 + if self.v6 { 40 } else { 20 }
    }
    /// Bytes of headers before the payload.
    pub fn header_len(&self) -> usize {
        self.l4() + if self.tcp { 20 } else { 8 }
    }
}

/// One flow as the program's `flows` map holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowEntry {
    /// Source address (IPv4 in the first 4 bytes).
    pub saddr: [u8; 16],
    /// Destination address.
    pub daddr: [u8; 16],
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Next IPv4 identification.
    pub ident: u16,
    /// Next TCP sequence number.
    pub tcp_seq: u32,
    /// Probe stream id (`sansio::wire::probe`).
    pub stream: u32,
    /// Frames of the flow so far: the next probe sequence number.
    pub pkts: u64,
    /// IPv4 header sum without total length, identification and checksum (folded to 16
    /// bits).
    pub ip_sum: u64,
    /// UDP: pseudo-header without length, plus both ports. TCP: pseudo-header without
    /// length, plus the TCP header with sequence number and checksum zero (folded to 16
    /// bits).
    pub l4_sum: u64,
}

impl FlowEntry {
    /// The entry of the flow whose frame (headers as the framer wrote them) is `frame`: the
    /// next identification and TCP sequence number are the frame's own.
    pub fn from_frame(frame: &[u8], lay: Layout) -> Option<Self> {
        let (l3, l4) = (lay.l3, lay.l4());
        let h = frame.get(..lay.header_len())?;
        let mut e = FlowEntry::default();
        let alen = if lay.v6 { 16 } else { 4 };
        let (so, dof) = if lay.v6 { (8, 24) } else { (12, 16) };
        e.saddr[..alen].copy_from_slice(&h[l3 + so..l3 + so + alen]);
        e.daddr[..alen].copy_from_slice(&h[l3 + dof..l3 + dof + alen]);
        e.sport = u16::from_be_bytes([h[l4], h[l4 + 1]]);
        e.dport = u16::from_be_bytes([h[l4 + 2], h[l4 + 3]]);
        let proto = if lay.tcp { 6u64 } else { 17 };
        let pseudo = checksum::sum(&e.saddr[..alen]) + checksum::sum(&e.daddr[..alen]) + proto;
        if !lay.v6 {
            let mut ip = [0u8; 20];
            ip.copy_from_slice(&h[l3..l3 + 20]);
            e.ident = u16::from_be_bytes([ip[4], ip[5]]);
            ip[2..6].fill(0);
            ip[10..12].fill(0);
            e.ip_sum = checksum::sum(&ip);
        }
        if lay.tcp {
            let mut t = [0u8; 20];
            t.copy_from_slice(&h[l4..l4 + 20]);
            e.tcp_seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
            t[4..8].fill(0);
            t[16..18].fill(0);
            e.l4_sum = pseudo + checksum::sum(&t);
        } else {
            e.l4_sum = pseudo + e.sport as u64 + e.dport as u64;
        }
        // Folded to 16 bits: the program adds a few words and folds twice.
        e.l4_sum = checksum::fold(e.l4_sum) as u64;
        e.ip_sum = checksum::fold(e.ip_sum) as u64;
        Some(e)
    }

    /// The map value (`struct live_flow`, native byte order for the counters, network order
    /// for the ports).
    pub fn to_bytes(self) -> [u8; FLOW_ENTRY_LEN] {
        let mut b = [0u8; FLOW_ENTRY_LEN];
        b[0..16].copy_from_slice(&self.saddr);
        b[16..32].copy_from_slice(&self.daddr);
        b[32..34].copy_from_slice(&self.sport.to_be_bytes());
        b[34..36].copy_from_slice(&self.dport.to_be_bytes());
        b[36..40].copy_from_slice(&(self.ident as u32).to_ne_bytes());
        b[40..44].copy_from_slice(&self.tcp_seq.to_ne_bytes());
        b[44..48].copy_from_slice(&self.stream.to_ne_bytes());
        b[48..56].copy_from_slice(&self.ip_sum.to_ne_bytes());
        b[56..64].copy_from_slice(&self.l4_sum.to_ne_bytes());
        b[64..72].copy_from_slice(&self.pkts.to_ne_bytes());
        b
    }
}

/// One period of `sizes`' order (what [`Imix::next_size`] yields from a fresh mix), for the
/// program's `sizes` map; `None` if the weights make it longer than [`MAX_CYCLE`].
pub fn size_cycle(sizes: &Imix) -> Option<Vec<u32>> {
    let total: u64 = sizes
        .sizes()
        .iter()
        .try_fold(0u64, |a, &(_, w)| a.checked_add(w))?;
    if total as usize > MAX_CYCLE || total == 0 {
        return None;
    }
    let mut mix = Imix::new(sizes.sizes())?;
    Some((0..total).map(|_| mix.next_size() as u32).collect())
}

/// The program's `state` value for a run that may stamp `limit` frames in all (cycle
/// positions and counters start at zero), paced as `pps` frames per second released in
/// slots of `burst` if given.
pub fn state_bytes(limit: u64, pps: Option<f64>, burst: u32) -> [u8; STATE_LEN] {
    let mut b = [0u8; STATE_LEN];
    b[8..16].copy_from_slice(&limit.to_ne_bytes());
    if let Some(p) = pps {
        let burst = burst.max(1);
        let slot_ps = (1e12 * burst as f64 / p.max(1e-6)).min(u64::MAX as f64) as u64;
        b[40..48].copy_from_slice(&slot_ps.max(1).to_ne_bytes());
        b[56..60].copy_from_slice(&burst.to_ne_bytes());
    }
    b
}

/// The program's counters read back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames stamped and redirected.
    pub sent: u64,
    /// Frames refused (over the limit, or unsizable).
    pub refused: u64,
    /// Paced: frames recycled unsent while waiting for a slot.
    pub idle: u64,
}

/// `state` with the resume flag set (paced: the next run begins a new call).
pub fn with_resume(mut b: Vec<u8>) -> Vec<u8> {
    if let Some(r) = b.get_mut(72..80) {
        r.copy_from_slice(&1u64.to_ne_bytes());
    }
    b
}

/// Parse the program's `state` value.
pub fn parse_state(b: &[u8]) -> Option<Counters> {
    let u = |o: usize| Some(u64::from_ne_bytes(b.get(o..o + 8)?.try_into().ok()?));
    Some(Counters {
        sent: u(0)?,
        refused: u(16)?,
        idle: u(64)?,
    })
}

/// What the program does to one frame, in Rust (the model it is tested against): `frame`
/// (headers of the template, payload bytes zero) becomes the frame of `size` bytes of flow
/// `e` sent at `time` (the probe header's), whose probe sequence, identification and TCP
/// sequence advance.
#[cfg(test)]
pub fn stamp(frame: &mut [u8], lay: Layout, e: &mut FlowEntry, size: usize, time: u32) {
    use super::wire::probe;
    let (l3, l4) = (lay.l3, lay.l4());
    let l4len = size - l4;
    let payload = size - lay.header_len();
    let n = payload.min(probe::HEADER_LEN);
    let hdr = lay.header_len();
    let head = probe::Repr {
        stream: e.stream,
        seq: e.pkts,
        time,
    }
    .to_bytes();
    e.pkts += 1;
    frame[hdr..hdr + n].copy_from_slice(&head[..n]);
    let psum = checksum::sum(&head[..n]);
    if lay.v6 {
        frame[l3 + 4..l3 + 6].copy_from_slice(&(l4len as u16).to_be_bytes());
        frame[l3 + 8..l3 + 24].copy_from_slice(&e.saddr);
        frame[l3 + 24..l3 + 40].copy_from_slice(&e.daddr);
    } else {
        let tot = (l4len + 20) as u16;
        let id = e.ident;
        e.ident = id.wrapping_add(1);
        frame[l3 + 2..l3 + 4].copy_from_slice(&tot.to_be_bytes());
        frame[l3 + 4..l3 + 6].copy_from_slice(&id.to_be_bytes());
        frame[l3 + 12..l3 + 16].copy_from_slice(&e.saddr[..4]);
        frame[l3 + 16..l3 + 20].copy_from_slice(&e.daddr[..4]);
        let c = checksum::finish(e.ip_sum + tot as u64 + id as u64);
        frame[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    }
    frame[l4..l4 + 2].copy_from_slice(&e.sport.to_be_bytes());
    frame[l4 + 2..l4 + 4].copy_from_slice(&e.dport.to_be_bytes());
    if lay.tcp {
        let s = e.tcp_seq;
        e.tcp_seq = s.wrapping_add(payload as u32);
        frame[l4 + 4..l4 + 8].copy_from_slice(&s.to_be_bytes());
        let c = checksum::finish(
            e.l4_sum + l4len as u64 + (s >> 16) as u64 + (s & 0xffff) as u64 + psum,
        );
        frame[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
    } else {
        frame[l4 + 4..l4 + 6].copy_from_slice(&(l4len as u16).to_be_bytes());
        let c = match checksum::finish(e.l4_sum + 2 * l4len as u64 + psum) {
            0 => 0xffff,
            c => c,
        };
        frame[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
    }
}

#[cfg(test)]
mod tests;
