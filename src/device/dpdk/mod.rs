//! DPDK ports (feature `dpdk`): any PMD the EAL can probe — vdevs such as `net_af_xdp`,
//! `net_af_packet`, `net_pcap`, `net_null`, or a NIC bound to vfio-pci.
//!
//! - `open.rs`: EAL arguments, the port's capabilities, our address (the kernel interface
//!   behind a vdev, or `--src-ip`), the mempool, offloads, and the next hop's MAC resolved
//!   over the port itself (ARP/ND: the kernel does not see a DPDK port's packets);
//! - `blind.rs`: an nftables rule that keeps the kernel's TCP from resetting a connection
//!   whose packets a vdev only taps (`net_af_packet`);
//! - `queue.rs`: [`DpdkQueue`], one queue pair behind the `TxQueue`/`RxQueue` seam, which also
//!   answers ARP/ND for our address;
//! - `files.rs`: zero-copy file payloads (mbufs attached to the file's pages) on the PMDs
//!   that gather chained mbufs.
//!
//! Without the feature, asking for DPDK is an error that says so.

#[cfg(feature = "dpdk")]
mod blind;
#[cfg(feature = "dpdk")]
mod files;
#[cfg(feature = "dpdk")]
mod open;
#[cfg(feature = "dpdk")]
mod queue;

#[cfg(feature = "dpdk")]
pub(crate) use open::open;
#[cfg(feature = "dpdk")]
pub(crate) use queue::DpdkQueue;

use crate::error::Error;

/// The error for `--backend dpdk` in a build without the `dpdk` feature.
#[cfg_attr(feature = "dpdk", allow(dead_code))]
pub(crate) fn not_built() -> Error {
    Error::BackendUnavailable {
        backend: "dpdk",
        reason: "this xsend was built without DPDK (build with `cargo build --features dpdk`; scripts/setup.sh installs libdpdk-dev)".into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn without_the_feature_the_error_says_how_to_get_it() {
        let e = super::not_built().to_string();
        assert!(
            e.contains("built without DPDK") && e.contains("--features dpdk"),
            "{e}"
        );
    }
}
