//! Typed views over packet bytes (smoltcp style): `Packet::new_checked` validates a buffer,
//! field accessors read and write in place, and a `Repr` is the parsed, high-level form with
//! `parse` and `emit`.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod ipv4;
pub mod ipv6;
pub mod probe;
pub mod tcp;
pub mod udp;
pub mod xsend;

/// A buffer was too short or a field held an impossible value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The buffer is shorter than the header claims or needs.
    #[error("truncated packet")]
    Truncated,
    /// A field holds a value this parser does not accept.
    #[error("malformed packet")]
    Malformed,
}
