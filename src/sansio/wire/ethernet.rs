//! Ethernet II frames with an optional 802.1Q VLAN tag.

use super::WireError;

/// EtherType IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherType 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// Header length without a VLAN tag.
pub const HEADER_LEN: usize = 14;
/// Length of an 802.1Q tag.
pub const VLAN_TAG_LEN: usize = 4;

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl std::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl std::str::FromStr for MacAddr {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, WireError> {
        let mut m = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for b in &mut m {
            let p = parts.next().ok_or(WireError::Malformed)?;
            *b = u8::from_str_radix(p, 16).map_err(|_| WireError::Malformed)?;
        }
        if parts.next().is_some() {
            return Err(WireError::Malformed);
        }
        Ok(MacAddr(m))
    }
}

/// A view of an Ethernet frame.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wrap without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        Frame { buffer }
    }
    /// Wrap after checking the length (including a VLAN tag if present).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let f = Self::new_unchecked(buffer);
        let b = f.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if f.outer_ethertype() == ETHERTYPE_VLAN && b.len() < HEADER_LEN + VLAN_TAG_LEN {
            return Err(WireError::Truncated);
        }
        Ok(f)
    }
    /// Destination MAC.
    pub fn dst(&self) -> MacAddr {
        let mut m = [0u8; 6];
        m.copy_from_slice(&self.buffer.as_ref()[0..6]);
        MacAddr(m)
    }
    /// Source MAC.
    pub fn src(&self) -> MacAddr {
        let mut m = [0u8; 6];
        m.copy_from_slice(&self.buffer.as_ref()[6..12]);
        MacAddr(m)
    }
    fn outer_ethertype(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[12], b[13]])
    }
    /// VLAN id, if tagged.
    pub fn vlan(&self) -> Option<u16> {
        let b = self.buffer.as_ref();
        (self.outer_ethertype() == ETHERTYPE_VLAN)
            .then(|| u16::from_be_bytes([b[14], b[15]]) & 0x0fff)
    }
    /// EtherType of the payload (after any VLAN tag).
    pub fn ethertype(&self) -> u16 {
        let b = self.buffer.as_ref();
        match self.vlan() {
            Some(_) => u16::from_be_bytes([b[16], b[17]]),
            None => self.outer_ethertype(),
        }
    }
    /// Header length (14 or 18).
    pub fn header_len(&self) -> usize {
        HEADER_LEN
            + if self.vlan().is_some() {
                VLAN_TAG_LEN
            } else {
                0
            }
    }
    /// The payload after the header(s).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

/// Whether `frame` is over a device's limit `max` (MTU + 18), which holds one VLAN tag: an
/// untagged frame may be 4 bytes less (the link carries MTU + 14, or MTU + 18 tagged).
pub fn over_limit(frame: &[u8], max: usize) -> bool {
    let tagged = frame.get(12..14) == Some(&ETHERTYPE_VLAN.to_be_bytes()[..]);
    frame.len() > max.saturating_sub(if tagged { 0 } else { VLAN_TAG_LEN })
}

/// Parsed Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source MAC.
    pub src: MacAddr,
    /// Destination MAC.
    pub dst: MacAddr,
    /// 802.1Q VLAN id (12 bits).
    pub vlan: Option<u16>,
    /// Payload EtherType.
    pub ethertype: u16,
}

impl Repr {
    /// Parse a checked frame.
    pub fn parse<T: AsRef<[u8]>>(f: &Frame<T>) -> Self {
        Repr {
            src: f.src(),
            dst: f.dst(),
            vlan: f.vlan(),
            ethertype: f.ethertype(),
        }
    }
    /// Header length.
    pub const fn buffer_len(&self) -> usize {
        if self.vlan.is_some() {
            HEADER_LEN + VLAN_TAG_LEN
        } else {
            HEADER_LEN
        }
    }
    /// Write the header into `buf[..buffer_len()]`.
    pub fn emit(&self, buf: &mut [u8]) {
        buf[0..6].copy_from_slice(&self.dst.0);
        buf[6..12].copy_from_slice(&self.src.0);
        match self.vlan {
            Some(v) => {
                buf[12..14].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
                buf[14..16].copy_from_slice(&(v & 0x0fff).to_be_bytes());
                buf[16..18].copy_from_slice(&self.ethertype.to_be_bytes());
            }
            None => buf[12..14].copy_from_slice(&self.ethertype.to_be_bytes()),
        }
    }
}
