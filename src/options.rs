//! Option types shared by every layer (a leaf module: it depends on nothing but the wire
//! types): protocol, backend and checksum choices, transmit flags, progress, and
//! [`ConnConfig`], everything needed to open a connection, with its defaults.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::sansio::wire::ethernet::MacAddr;

/// Transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP: a byte stream, ended by FIN with [`TransmitFlags::DISCONNECT`].
    Tcp,
    /// UDP: datagrams as the elements' end_of_packet flags (or a send size) say.
    Udp,
}

/// Which backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// Best available: AF_XDP, else kernel sockets; the reason is reported.
    #[default]
    Auto,
    /// Kernel sockets (`sendfile(2)` / `sendmmsg(2)`).
    Kernel,
    /// AF_XDP only; an error if it cannot be had.
    Xdp,
    /// A DPDK port ([`DpdkOptions`]); only when asked for (`auto` never takes a port away
    /// from the kernel). Needs the `dpdk` feature.
    Dpdk,
}

/// Where and how DPDK runs ([`BackendChoice::Dpdk`], [`GenBackend::Dpdk`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DpdkOptions {
    /// EAL arguments (`--vdev=net_af_xdp0,iface=eth1`, `-a 0000:81:00.0`, ...). xsend adds
    /// its own defaults in front: a file prefix of its own, no shared config, no telemetry,
    /// and without a PCI device `--no-pci --no-huge -m 256`.
    pub eal_args: Vec<String>,
    /// The port to send on (default 0).
    pub port: u16,
    /// Our IP address on the port (default: the address of the kernel interface behind a
    /// vdev, if any).
    pub src_ip: Option<std::net::IpAddr>,
}

/// Where a generator ([`crate::gen::Generator`]) makes its frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GenBackend {
    /// The kernel's live-frames generator when the target takes redirected frames (and the
    /// run's frames fit one page), AF_XDP otherwise; the reason is reported.
    #[default]
    Auto,
    /// AF_XDP: frames written in user space into UMEM.
    Xdp,
    /// In-kernel live frames only (`BPF_PROG_RUN` of our XDP program); an error if the
    /// target does not take redirected frames.
    Live,
    /// A DPDK port ([`ConnConfig::dpdk`]); needs the `dpdk` feature.
    Dpdk,
}

/// AF_XDP: who computes the UDP/TCP checksums of the frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksumChoice {
    /// Offload through AF_XDP TX metadata (`XDP_TXMD_FLAGS_CHECKSUM`) when the kernel accepts
    /// it, software otherwise; [`BackendInfo::checksum`](crate::BackendInfo) says which.
    #[default]
    Auto,
    /// Always in user space (frames are complete when they leave: what a capture on a veth
    /// peer shows is what the wire carries).
    Software,
    /// Offload only; an error if the kernel refuses TX metadata.
    Offload,
}

/// AF_XDP: how file bytes reach the frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayloadChoice {
    /// Without a copy where that is faster: the file on tmpfs or a memfd and the queues
    /// in zero-copy mode (the NIC gathers the file's pages). In copy mode the kernel copies
    /// every descriptor anyway, and a header-plus-file descriptor chain costs it more than one
    /// `preadv` into a single buffer, so the copy is kept;
    /// [`BackendInfo::payload`](crate::BackendInfo) says which and why.
    #[default]
    Auto,
    /// Always read into the frames (`preadv`).
    Copy,
    /// The file's pages mapped into the UMEM and pointed at by the frames (UDP and TCP); an
    /// error if the file cannot be (a filesystem with writeback, ...).
    ZeroCopy,
}

bitflags::bitflags! {
    /// .NET's `TransmitFileOptions`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct TransmitFlags: u32 {
        /// Close the sending side after the data (TCP FIN). The connection can no longer
        /// send unless `REUSE_SOCKET` is also given.
        const DISCONNECT = 0x01;
        /// With `DISCONNECT`: the connection may [`reconnect`](crate::Connection::reconnect)
        /// afterwards.
        const REUSE_SOCKET = 0x02;
        /// Return once the bytes are queued; do not wait for the peer to acknowledge them.
        const WRITE_BEHIND = 0x04;
        /// Drive the send on the calling thread (the operation is complete when the call
        /// returns) instead of a background driver thread.
        const CALLER_THREAD = 0x10;
    }
}

/// `send_size`: let xsend choose (MSS for TCP; end_of_packet flags for UDP datagrams, or the
/// largest datagram for chunked sends).
pub const SEND_SIZE_AUTO: u32 = 0;
/// `send_size`: the elements' end_of_packet flags define every datagram / push.
pub const SEND_SIZE_PACKETS: u32 = u32::MAX;

/// Progress of a running operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Payload bytes handed to the wire so far.
    pub bytes: u64,
    /// Datagrams (UDP) or send calls (TCP) so far.
    pub packets: u64,
    /// Total payload bytes of the operation.
    pub total: u64,
}

/// A progress callback (called from the thread driving the send, once per batch).
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// AF_XDP TX ring size (descriptors) unless asked otherwise.
pub const DEFAULT_RING_SIZE: u32 = 2048;

/// Everything needed to open (and re-open) a connection.
#[derive(Clone)]
pub struct ConnConfig {
    /// Peer address.
    pub peer: SocketAddr,
    /// Protocol.
    pub proto: Proto,
    /// Requested backend.
    pub backend: BackendChoice,
    /// Where a generator makes its frames (`xsend bench --backend`).
    pub gen_backend: GenBackend,
    /// Interface to send from.
    pub iface: Option<String>,
    /// Local address to bind.
    pub bind: Option<SocketAddr>,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// How long unacknowledged data may stay outstanding before the send fails.
    pub user_timeout: Duration,
    /// Called with progress during sends.
    pub progress: Option<ProgressFn>,
    /// AF_XDP: destination MAC instead of a neighbour-table lookup.
    pub dst_mac: Option<MacAddr>,
    /// AF_XDP: 802.1Q VLAN tag for the frames.
    pub vlan: Option<u16>,
    /// AF_XDP: queues to send on (one socket and thread each).
    pub queues: u32,
    /// AF_XDP: ring size in descriptors.
    pub ring_size: u32,
    /// AF_XDP: checksum offload or software.
    pub checksum: ChecksumChoice,
    /// AF_XDP: file bytes copied into frames or sent from the file's pages.
    pub payload: PayloadChoice,
    /// DPDK: EAL arguments, port, our address.
    pub dpdk: DpdkOptions,
}

impl ConnConfig {
    /// The defaults for `peer` over `proto`: backend auto, connect timeout 5 s, user timeout
    /// 10 s, one queue, [`DEFAULT_RING_SIZE`] descriptors, checksums offloaded when possible.
    pub fn new(peer: SocketAddr, proto: Proto) -> Self {
        ConnConfig {
            peer,
            proto,
            backend: BackendChoice::Auto,
            gen_backend: GenBackend::Auto,
            iface: None,
            bind: None,
            connect_timeout: Duration::from_secs(5),
            user_timeout: Duration::from_secs(10),
            progress: None,
            dst_mac: None,
            vlan: None,
            queues: 1,
            ring_size: DEFAULT_RING_SIZE,
            checksum: ChecksumChoice::Auto,
            payload: PayloadChoice::Auto,
            dpdk: DpdkOptions::default(),
        }
    }
}

impl std::fmt::Debug for ConnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnConfig")
            .field("peer", &self.peer)
            .field("proto", &self.proto)
            .field("backend", &self.backend)
            .field("iface", &self.iface)
            .field("vlan", &self.vlan)
            .field("queues", &self.queues)
            .finish_non_exhaustive()
    }
}
