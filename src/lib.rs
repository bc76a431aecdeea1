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
//! Layers, top to bottom: [`api`] (connections, operations) → [`payload`] (elements, mapped
//! files, validation) → [`wire`] (typed header views) → [`backend`] (kernel sockets; AF_XDP)
//! → [`sys`] (the thin syscall layer). [`lab`] builds veth/netns test hosts; [`recv`] is the
//! verifying receiver.

#![warn(missing_docs)]

pub mod api;
pub mod backend;
pub mod error;
pub mod framer;
pub mod lab;
pub mod pacing;
pub mod payload;
pub mod recv;
pub mod sigbus;
pub mod stats;
pub mod sys;
pub mod tcp;
pub mod wire;

pub use api::{
    BackendChoice, CancelHandle, ChecksumChoice, CompletionFn, Connection, ConnectionBuilder,
    Progress, ProgressFn, Proto, SendOperation, SendPacketsOptions, SendStatus, TransmitFlags,
    SEND_SIZE_AUTO, SEND_SIZE_PACKETS,
};
pub use backend::{BackendInfo, SendStats};
pub use error::{Error, Result};
pub use payload::{SendPacketsElement, Source};
