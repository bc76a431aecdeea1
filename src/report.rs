//! What was obtained and what was moved: the reports every layer fills in and the CLI prints.

use serde::Serialize;

/// What a connection (or generator) really obtained: path, mode, sizes, and why better ones
/// were refused.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct BackendInfo {
    /// `"kernel"` or `"xdp"`.
    pub backend: &'static str,
    /// How bytes move: `sendfile`, `sendmmsg`, `native/copy`, ...
    pub mode: String,
    /// Interface the traffic leaves by, if known.
    pub iface: Option<String>,
    /// Path MTU, if known.
    pub mtu: Option<u32>,
    /// Largest datagram payload (UDP): MTU minus IP and UDP headers.
    pub max_datagram: Option<u64>,
    /// Why each better backend/mode was not obtained, best first.
    pub fallback_reasons: Vec<String>,
    /// AF_XDP: where our XDP program runs: `native`, `generic` or `none`.
    pub xdp_mode: Option<String>,
    /// AF_XDP: `zerocopy` or `copy`.
    pub copy_mode: Option<String>,
    /// AF_XDP: queues (one socket and TX thread each).
    pub queues: Option<u32>,
    /// AF_XDP: TX/completion ring size (descriptors).
    pub ring_size: Option<u32>,
    /// AF_XDP: UMEM frame size in bytes.
    pub frame_size: Option<u32>,
    /// AF_XDP: UMEM frames (descriptors) the largest frame takes; over 1 is multi-buffer
    /// (`XDP_USE_SG`).
    pub segments: Option<u32>,
    /// AF_XDP: how UDP/TCP checksums are made: `software` or `offload`.
    pub checksum: Option<String>,
    /// AF_XDP: frames one kick may send, if raised (`XDP_MAX_TX_SKB_BUDGET`).
    pub tx_budget: Option<u32>,
    /// AF_XDP: the next hop's MAC the frames carry.
    pub dst_mac: Option<String>,
    /// How the last send's file bytes reached the device: `zero-copy` (the file's pages
    /// mapped into the UMEM, frames point at them) or `copy` (read into buffers).
    pub payload: Option<String>,
    /// Why the last send's payload was copied, when it was.
    pub payload_reason: Option<String>,
    /// DPDK: the PMD (driver) of the port, e.g. `net_af_xdp`.
    pub driver: Option<String>,
    /// DPDK: the port id.
    pub dpdk_port: Option<u16>,
    /// DPDK: the TX offloads obtained (`udp_cksum`, `tcp_cksum`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub offloads: Vec<String>,
    /// DPDK: the EAL's arguments (xsend's defaults, then the user's).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub eal_args: Vec<String>,
}

/// What an operation moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SendStats {
    /// Payload bytes (without xsend headers).
    pub bytes: u64,
    /// Datagrams (UDP), or TCP segments as the kernel counted them (`tcpi_segs_out`).
    pub packets: u64,
    /// TCP over AF_XDP: the user-space sender's counters for the connection so far
    /// (retransmissions, recoveries, RTO expirations, window probes, RTT, cwnd).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<crate::sansio::tcp::Stats>,
}
