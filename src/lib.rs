//! # xsend
//!
//! Send files and packet payloads from user space straight to NIC queues with AF_XDP, with a
//! fallback to the kernel's `sendfile(2)` / datagram path, behind an API modelled on .NET's
//! `Socket.SendFile` / `BeginSendFile` / `EndSendFile` / `SendPacketsAsync`.
//!
//! ```no_run
//! use xsend::{Connection, SendPacketsElement, SendPacketsOptions, TransmitFlags};
//!
//! # fn main() -> xsend::Result<()> {
//! // TCP: header + file + trailer, FIN afterwards.
//! let conn = Connection::tcp("198.18.0.2:9000".parse().unwrap()).connect()?;
//! println!("path: {:?}", conn.info());
//! let sent = conn.send_file_with(
//!     Some("data.bin".as_ref()),
//!     Some(b"HEADER\n"),
//!     Some(b"TRAILER\n"),
//!     TransmitFlags::DISCONNECT,
//! )?;
//! println!("{sent} bytes");
//!
//! // UDP: each run of elements up to an end_of_packet flag is one datagram.
//! let udp = Connection::udp("198.18.0.2:9001".parse().unwrap()).connect()?;
//! let elements = [
//!     SendPacketsElement::buffer(&b"hdr"[..]),
//!     SendPacketsElement::file_range("data.bin", 0, 1000).end_of_packet(true),
//! ];
//! let op = udp.send_packets(&elements, SendPacketsOptions::default())?;
//! # let _ = op;
//! # Ok(()) }
//! ```
//!
//! Layers, top to bottom (ARCHITECTURE.md has the map): the `xsend` binary → [`api`]
//! (connections, operations) and the tools [`gen`], [`recv`], [`lab`], [`ndr`] → the engine (UDP
//! sender, TCP driver, generator, kernel fallback) → devices (AF_XDP) → the syscall layer,
//! the only place with `unsafe` code. Beside them, [`sansio`] holds the protocol logic
//! (wire views, framers, the TCP state machine, pacing, payload cutting) with no I/O, and
//! [`options`], [`report`] and [`error`] the types every layer shares.

#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod api;
mod device;
mod engine;
pub mod error;
pub mod gen;
pub mod lab;
pub mod ndr;
pub mod options;
mod payload;
pub mod recv;
pub mod replay;
pub mod report;
pub mod rxport;
pub mod sansio;
pub mod stats;
mod sys;

pub use api::{
    validate_elements, CancelHandle, CompletionFn, Connection, ConnectionBuilder, SendOperation,
    SendPacketsOptions, SendStatus,
};
pub use error::{Error, Result};
pub use options::{
    BackendChoice, ChecksumChoice, ConnConfig, DpdkOptions, GenBackend, PayloadChoice, Progress,
    ProgressFn, Proto, TransmitFlags, SEND_SIZE_AUTO, SEND_SIZE_PACKETS,
};
pub use payload::{SendPacketsElement, Source};
pub use report::{BackendInfo, SendStats};
pub use sansio::{pacing, tcp, wire};

/// Internal parsers, exposed for the fuzz targets in `fuzz/` only.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz {
    pub use crate::device::net::fuzz::{parse_neigh_dump, parse_route_reply};
    pub use crate::replay::fuzz_read as read_capture;
}
