//! Typed errors with the context a user needs to act on them.
//!
//! An error's `Display` says what failed, with the paths, offsets, sizes and interfaces
//! involved; the OS error behind it is its `source()`, never repeated in the message
//! ([`Error::chain`] prints both, each once).

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Result alias used throughout xsend.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in xsend.
///
/// Validation errors (`FileNotFound`, `RangePastEof`, `MessageTooLarge`, ...) are returned
/// before the first byte of an operation is sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file does not exist.
    #[error("file not found: {path}")]
    FileNotFound {
        /// The path as given.
        path: PathBuf,
    },
    /// The file exists but may not be read.
    #[error("permission denied reading {path}")]
    PermissionDenied {
        /// The path as given.
        path: PathBuf,
    },
    /// The path names something that is not a regular file (a directory, a FIFO, ...).
    #[error("not a regular file: {path} ({kind})")]
    NotAFile {
        /// The path as given.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// A capture file that cannot be replayed: not pcap/pcapng, truncated, malformed, or of
    /// a link type other than Ethernet.
    #[error("{path}: {why}")]
    BadCapture {
        /// The capture.
        path: PathBuf,
        /// What is wrong, and where.
        why: String,
    },
    /// Opening, sizing or mapping a file failed.
    #[error("cannot read {path}")]
    FileIo {
        /// The path as given.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `offset + count` lies past the end of the file (or of the buffer).
    #[error("range past end of {what}: offset {offset} + count {count} > size {size}")]
    RangePastEof {
        /// The file path, or `buffer`.
        what: String,
        /// Requested offset.
        offset: u64,
        /// Requested count.
        count: u64,
        /// Actual size.
        size: u64,
    },
    /// The file became shorter while it was being sent (another process truncated it).
    #[error("{path} was truncated while being sent: needed {needed} bytes, file now has {size}")]
    FileTruncated {
        /// The file path.
        path: PathBuf,
        /// The end offset the send needed.
        needed: u64,
        /// The size found.
        size: u64,
    },
    /// A datagram does not fit the path: nothing of the operation was sent.
    #[error("datagram of {len} bytes is larger than the maximum of {max} bytes for this path (nothing was sent)")]
    MessageTooLarge {
        /// Datagram payload length.
        len: u64,
        /// Largest payload that fits (MTU minus IP and UDP headers).
        max: u64,
    },
    /// A send size was asked for that no datagram of this path can carry.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// An operation is already running on this connection.
    #[error("an operation is already in progress on this connection")]
    OperationInProgress,
    /// The operation handle was created by another connection.
    #[error("operation {op_conn} does not belong to connection {this_conn}")]
    ForeignOperation {
        /// Connection id of the handle.
        op_conn: u64,
        /// Connection id `end_*` was called on.
        this_conn: u64,
    },
    /// The connection is not connected (after `Disconnect`, before `reconnect`).
    #[error("not connected (disconnected after a send with Disconnect; call reconnect())")]
    NotConnected,
    /// The connection was closed and cannot be used again.
    #[error("connection closed")]
    Closed,
    /// The named interface does not exist.
    #[error("interface {name} not found")]
    InterfaceNotFound {
        /// Interface name.
        name: String,
    },
    /// The interface is down or disappeared during the send.
    #[error("interface {name} is down or gone")]
    InterfaceDown {
        /// Interface name (or the peer address when no interface was named).
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Connecting to the peer failed.
    #[error("cannot connect to {addr}")]
    Connect {
        /// Peer address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The peer reset or refused the connection, or went away mid-send.
    #[error("peer {addr} went away after {sent} bytes")]
    PeerGone {
        /// Peer address.
        addr: SocketAddr,
        /// Bytes handed to the kernel before the failure.
        sent: u64,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The requested backend is not available on this machine/interface.
    #[error("backend {backend} unavailable: {reason}")]
    BackendUnavailable {
        /// Backend name.
        backend: &'static str,
        /// Why.
        reason: String,
    },
    /// The operation was cancelled (Ctrl-C or [`crate::CancelHandle::cancel`]).
    #[error("cancelled after {sent} bytes")]
    Cancelled {
        /// Bytes handed to the kernel before cancellation.
        sent: u64,
    },
    /// The process lacks a privilege (CAP_NET_ADMIN, CAP_NET_RAW, ...).
    #[error("permission denied: {what}")]
    NoPermission {
        /// What was attempted.
        what: String,
    },
    /// Any other I/O error, with what was being done.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The message followed by every cause (`: cause: cause`), each once.
    pub fn chain(&self) -> String {
        chain(self)
    }

    /// Wrap an I/O error with a description of what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// `error: cause: cause`, each cause once (a cause whose text the message already holds is
/// not repeated). The CLI prints errors this way.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let t = c.to_string();
        if !msg.contains(&t) {
            msg.push_str(": ");
            msg.push_str(&t);
        }
        cause = c.source();
    }
    msg
}
