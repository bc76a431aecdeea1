//! The public API: [`Connection`] with .NET `Socket.SendFile` / `BeginSendFile` /
//! `EndSendFile` / `SendPacketsAsync` semantics, in Rust terms.
//!
//! | .NET | xsend |
//! |---|---|
//! | `SendFile(path, pre, post, flags)` | [`Connection::send_file_with`] |
//! | `BeginSendFile` / `EndSendFile` | [`Connection::begin_send_file`] / [`Connection::end_send_file`] (the handle is also a `Future`) |
//! | `SendPacketsAsync(e)` | [`Connection::send_packets`] → [`SendStatus::Completed`] or [`SendStatus::Pending`] |
//! | `SendPacketsElement` | [`crate::SendPacketsElement`] |
//! | `SendPacketsSendSize` | [`SendPacketsOptions::send_size`]: 0 = auto, N, `u32::MAX` = end_of_packet flags |
//! | `TransmitFileOptions` | [`TransmitFlags`] |

mod ladder;
mod op;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

pub use op::SendOperation;

use crate::engine::{Job, OpCtx, Transport};
use crate::error::{Error, Result};
pub use crate::options::{
    BackendChoice, ChecksumChoice, ConnConfig, Progress, ProgressFn, Proto, TransmitFlags,
    SEND_SIZE_AUTO, SEND_SIZE_PACKETS,
};
use crate::payload::{Payload, SendPacketsElement};
use crate::report::{BackendInfo, SendStats};
use crate::sansio::wire::ethernet::MacAddr;

/// A completion callback: called once with the operation's outcome, after the connection
/// is free for the next operation.
pub type CompletionFn = Box<dyn FnOnce(&Result<u64>) + Send>;

/// Options of [`Connection::send_packets`].
#[derive(Default)]
pub struct SendPacketsOptions {
    /// 0 = auto, N = payload bytes per datagram / send call, `u32::MAX` = end_of_packet flags.
    pub send_size: u32,
    /// Transmit flags.
    pub flags: TransmitFlags,
    /// UDP: prefix every datagram with the xsend chunk header of this flow id (sequence,
    /// offset, timestamp) and finish with end-of-stream markers, for `xsend recv`.
    pub chunk_header: Option<u16>,
    /// Called once on completion.
    pub on_complete: Option<CompletionFn>,
}

/// Outcome of [`Connection::send_packets`].
#[derive(Debug)]
pub enum SendStatus {
    /// Finished on the caller's thread: payload bytes sent.
    Completed(u64),
    /// Running on a driver thread: wait, `end_send_packets`, or `.await` it.
    Pending(SendOperation),
}

/// Cancels the operation running on a connection (e.g. from a Ctrl-C handler).
#[derive(Debug, Clone, Default)]
pub struct CancelHandle(Arc<AtomicBool>);

impl CancelHandle {
    /// A new handle, not cancelled.
    pub fn new() -> Self {
        CancelHandle(Arc::new(AtomicBool::new(false)))
    }

    /// True once [`CancelHandle::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// The flag the engine polls.
    pub(crate) fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }

    /// Ask the running operation, and every later one on this connection, to stop: they end
    /// with `Error::Cancelled`. Cancellation is sticky (a cancelled connection stays so).
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Builds a [`Connection`].
pub struct ConnectionBuilder {
    cfg: ConnConfig,
}

impl ConnectionBuilder {
    /// Backend to use (default: auto).
    pub fn backend(mut self, b: BackendChoice) -> Self {
        self.cfg.backend = b;
        self
    }
    /// Where a generator makes its frames (default: auto, live frames when possible).
    pub fn gen_backend(mut self, b: crate::options::GenBackend) -> Self {
        self.cfg.gen_backend = b;
        self
    }
    /// DPDK ([`BackendChoice::Dpdk`]): EAL arguments, port and our address.
    pub fn dpdk(mut self, opts: crate::options::DpdkOptions) -> Self {
        self.cfg.dpdk = opts;
        self
    }
    /// Interface to send from (SO_BINDTODEVICE on the kernel path).
    pub fn iface(mut self, name: impl Into<String>) -> Self {
        self.cfg.iface = Some(name.into());
        self
    }
    /// Local address to bind.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.cfg.bind = Some(addr);
        self
    }
    /// Connect timeout (default 5 s).
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.cfg.connect_timeout = t;
        self
    }
    /// How long sent data may stay unacknowledged before the send fails (default 10 s).
    pub fn user_timeout(mut self, t: Duration) -> Self {
        self.cfg.user_timeout = t;
        self
    }
    /// AF_XDP: the next hop's MAC (default: the kernel's neighbour table, resolved if absent).
    pub fn dst_mac(mut self, mac: MacAddr) -> Self {
        self.cfg.dst_mac = Some(mac);
        self
    }
    /// AF_XDP: tag frames with this 802.1Q VLAN id (1-4094; anything else is refused at
    /// connect). The kernel path cannot tag frames: with a VLAN id, there is no fallback.
    pub fn vlan(mut self, id: u16) -> Self {
        self.cfg.vlan = Some(id);
        self
    }
    /// AF_XDP: number of NIC queues to send on, one socket and TX thread each (default 1).
    pub fn queues(mut self, n: u32) -> Self {
        self.cfg.queues = n.max(1);
        self
    }
    /// AF_XDP: TX ring size in descriptors (a power of two; default 2048).
    pub fn ring_size(mut self, n: u32) -> Self {
        self.cfg.ring_size = n;
        self
    }
    /// AF_XDP: file bytes copied into the frames or sent from the file's own pages (default:
    /// without a copy where that is faster).
    pub fn payload(mut self, p: crate::options::PayloadChoice) -> Self {
        self.cfg.payload = p;
        self
    }

    /// AF_XDP: checksum offload or software checksums (default: offload when possible).
    pub fn checksum(mut self, c: ChecksumChoice) -> Self {
        self.cfg.checksum = c;
        self
    }
    /// Progress callback for every operation of this connection.
    pub fn on_progress(mut self, f: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        self.cfg.progress = Some(Arc::new(f));
        self
    }
    /// An AF_XDP frame generator towards this peer (`xsend bench`): see [`crate::gen`].
    pub fn generator(self) -> Result<crate::gen::Generator> {
        crate::gen::Generator::open(self.cfg)
    }

    /// The options collected so far.
    pub fn config(&self) -> &ConnConfig {
        &self.cfg
    }

    /// Connect.
    pub fn connect(self) -> Result<Connection> {
        let transport = ladder::open(&self.cfg)?;
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let info = transport.info().clone();
        Ok(Connection {
            shared: Arc::new(Shared {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                cfg: self.cfg,
                slot: Mutex::new(Slot::Idle(transport)),
                info: Mutex::new(info),
                last: Mutex::new(SendStats::default()),
                cancel: Arc::new(AtomicBool::new(false)),
            }),
        })
    }
}

enum Slot {
    Idle(Box<dyn Transport>),
    Busy,
    Disconnected,
    Closed,
}

pub(crate) struct Shared {
    id: u64,
    cfg: ConnConfig,
    slot: Mutex<Slot>,
    info: Mutex<BackendInfo>,
    last: Mutex<SendStats>,
    cancel: Arc<AtomicBool>,
}

impl Shared {
    fn take(&self) -> Result<Box<dyn Transport>> {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        match std::mem::replace(&mut *slot, Slot::Busy) {
            Slot::Idle(t) => Ok(t),
            other => {
                let err = match other {
                    Slot::Busy => Error::OperationInProgress,
                    Slot::Disconnected => Error::NotConnected,
                    _ => Error::Closed,
                };
                *slot = other;
                Err(err)
            }
        }
    }

    fn put(&self, t: Box<dyn Transport>, flags: TransmitFlags) {
        let next = if t.usable() {
            Slot::Idle(t)
        } else if flags.contains(TransmitFlags::DISCONNECT | TransmitFlags::REUSE_SOCKET) {
            Slot::Disconnected
        } else {
            Slot::Closed
        };
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = next;
    }
}

/// A connection to one peer over one backend. `Send + Sync`: share it by reference or `Arc`.
///
/// One operation runs at a time; starting a second while one is running is
/// [`Error::OperationInProgress`].
pub struct Connection {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.shared.id)
            .field("peer", &self.shared.cfg.peer)
            .field("proto", &self.shared.cfg.proto)
            .finish()
    }
}

impl Connection {
    fn builder(peer: SocketAddr, proto: Proto) -> ConnectionBuilder {
        ConnectionBuilder {
            cfg: ConnConfig::new(peer, proto),
        }
    }

    /// A TCP connection to `peer`.
    pub fn tcp(peer: SocketAddr) -> ConnectionBuilder {
        Self::builder(peer, Proto::Tcp)
    }

    /// A UDP "connection" (a connected datagram socket) to `peer`.
    pub fn udp(peer: SocketAddr) -> ConnectionBuilder {
        Self::builder(peer, Proto::Udp)
    }

    /// This connection's id (operation handles carry it).
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// Peer address.
    pub fn peer(&self) -> SocketAddr {
        self.shared.cfg.peer
    }

    /// Protocol.
    pub fn proto(&self) -> Proto {
        self.shared.cfg.proto
    }

    /// What backend and mode were obtained, and why better ones were not.
    pub fn info(&self) -> BackendInfo {
        self.shared
            .info
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Bytes and packets of the last operation that completed successfully.
    pub fn last_stats(&self) -> SendStats {
        *self.shared.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A handle that cancels the running operation.
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle(self.shared.cancel.clone())
    }

    /// Connect again after a send with `DISCONNECT | REUSE_SOCKET`.
    pub fn reconnect(&self) -> Result<()> {
        let mut slot = self.shared.slot.lock().unwrap_or_else(|e| e.into_inner());
        match &*slot {
            Slot::Disconnected => {}
            Slot::Busy => return Err(Error::OperationInProgress),
            Slot::Idle(_) => return Ok(()),
            Slot::Closed => return Err(Error::Closed),
        }
        let t = ladder::open(&self.shared.cfg)?;
        *self.shared.info.lock().unwrap_or_else(|e| e.into_inner()) = t.info().clone();
        *slot = Slot::Idle(t);
        Ok(())
    }

    /// Send a whole file; returns the bytes sent. On UDP the file is one datagram (refused
    /// with `MessageTooLarge` if it does not fit).
    pub fn send_file(&self, path: impl AsRef<Path>) -> Result<u64> {
        self.send_file_with(Some(path.as_ref()), None, None, TransmitFlags::empty())
    }

    /// Send `pre`, the file (optional) and `post` as one stream (TCP, corked so a small
    /// header does not travel alone) or one datagram (UDP).
    pub fn send_file_with(
        &self,
        path: Option<&Path>,
        pre: Option<&[u8]>,
        post: Option<&[u8]>,
        flags: TransmitFlags,
    ) -> Result<u64> {
        let op =
            self.begin_send_file(path, pre, post, flags | TransmitFlags::CALLER_THREAD, None)?;
        self.end_send_file(op)
    }

    /// Start sending `pre` + file + `post`; returns a handle at once (the send runs on a
    /// driver thread unless `CALLER_THREAD` is given). Validation errors (missing file, ...)
    /// are returned here, before anything is sent.
    pub fn begin_send_file(
        &self,
        path: Option<&Path>,
        pre: Option<&[u8]>,
        post: Option<&[u8]>,
        flags: TransmitFlags,
        callback: Option<CompletionFn>,
    ) -> Result<SendOperation> {
        let elements = file_elements(path, pre, post);
        let opts = SendPacketsOptions {
            send_size: match self.proto() {
                Proto::Tcp => SEND_SIZE_AUTO,
                Proto::Udp => SEND_SIZE_PACKETS,
            },
            flags,
            chunk_header: None,
            on_complete: callback,
        };
        self.start(&elements, opts)
    }

    /// Wait for an operation of this connection and return its bytes (or error).
    pub fn end_send_file(&self, op: SendOperation) -> Result<u64> {
        if op.connection_id() != self.shared.id {
            return Err(Error::ForeignOperation {
                op_conn: op.connection_id(),
                this_conn: self.shared.id,
            });
        }
        op.wait()
    }

    /// Same as [`Connection::end_send_file`], for operations of `send_packets`.
    pub fn end_send_packets(&self, op: SendOperation) -> Result<u64> {
        self.end_send_file(op)
    }

    /// Send a list of elements (.NET `SendPacketsAsync`): `Completed(bytes)` when driven on
    /// the caller's thread (`CALLER_THREAD`), else `Pending(op)`.
    pub fn send_packets(
        &self,
        elements: &[SendPacketsElement],
        opts: SendPacketsOptions,
    ) -> Result<SendStatus> {
        let caller = opts.flags.contains(TransmitFlags::CALLER_THREAD);
        let op = self.start(elements, opts)?;
        if caller {
            op.wait().map(SendStatus::Completed)
        } else {
            Ok(SendStatus::Pending(op))
        }
    }

    fn start(
        &self,
        elements: &[SendPacketsElement],
        mut opts: SendPacketsOptions,
    ) -> Result<SendOperation> {
        if opts.flags.contains(TransmitFlags::REUSE_SOCKET)
            && !opts.flags.contains(TransmitFlags::DISCONNECT)
        {
            return Err(Error::InvalidOption(
                "REUSE_SOCKET is only valid with DISCONNECT".into(),
            ));
        }
        if opts.chunk_header.is_some() && self.proto() == Proto::Tcp {
            return Err(Error::InvalidOption(
                "the chunk header is for UDP only".into(),
            ));
        }
        // Validate and map everything before touching the connection.
        let payload = Payload::from_elements(elements)?;
        let mut transport = self.shared.take()?;
        let total = payload.len();
        let job = Job {
            payload,
            send_size: opts.send_size,
            flags: opts.flags,
            chunk_header: opts.chunk_header,
        };
        if let Err(e) = transport.validate(&job) {
            self.shared.put(transport, TransmitFlags::empty());
            return Err(e);
        }
        let ctx = OpCtx {
            cancel: self.shared.cancel.clone(),
            progress: self.shared.cfg.progress.clone(),
            total,
        };
        let shared = self.shared.clone();
        let callback = opts.on_complete.take();
        let flags = opts.flags;
        let run = move |done: &op::Completion| {
            let r = transport.send(&job, &ctx).map(|s| {
                *shared.last.lock().unwrap_or_else(|e| e.into_inner()) = s;
                s.bytes
            });
            drop(job);
            // What the send really used (the payload road) is part of the report.
            *shared.info.lock().unwrap_or_else(|e| e.into_inner()) = transport.info().clone();
            shared.put(transport, flags);
            if let Some(cb) = callback {
                cb(&r);
            }
            done.complete(r);
        };
        if opts.flags.contains(TransmitFlags::CALLER_THREAD) {
            Ok(SendOperation::run_here(self.shared.id, run))
        } else {
            SendOperation::spawn(self.shared.id, run)
        }
    }
}

fn file_elements(
    path: Option<&Path>,
    pre: Option<&[u8]>,
    post: Option<&[u8]>,
) -> Vec<SendPacketsElement> {
    let mut v = Vec::with_capacity(3);
    if let Some(b) = pre {
        v.push(SendPacketsElement::buffer(Bytes::copy_from_slice(b)));
    }
    if let Some(p) = path {
        v.push(SendPacketsElement::file(p));
    }
    if let Some(b) = post {
        v.push(SendPacketsElement::buffer(Bytes::copy_from_slice(b)));
    }
    if let Some(last) = v.last_mut() {
        last.end_of_packet = true;
    }
    v
}

/// Validate and map `elements` without sending anything, as every send does first: a missing
/// file, a directory, a range past the end of a file or buffer are the same typed errors.
/// Returns the total bytes.
pub fn validate_elements(elements: &[SendPacketsElement]) -> Result<u64> {
    Payload::from_elements(elements).map(|p| p.len())
}
