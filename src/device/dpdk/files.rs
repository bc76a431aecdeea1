//! Zero-copy file payloads on DPDK: each frame is a header mbuf followed by a bare mbuf
//! attached to the file's mapped pages as an external buffer (`rte_pktmbuf_attach_extbuf`),
//! so no file byte is copied in user space; the PMD reads the pages when it sends.
//!
//! Only PMDs that gather a chain and are done with it inside `tx_burst` take files
//! ([`gathers`]): `net_af_packet` (copies each segment into its ring), `net_pcap` (writes the
//! chain to its file), `net_null` (frees it). A NIC's PMD reads the pages by DMA after
//! `tx_burst` returned, which needs the mapping registered for DMA (`rte_extmem_register`,
//! `rte_dev_dma_map`) and held until completion: not built, and not testable here.
//! `net_af_xdp` (22.11) sends only a chain's first segment.
//!
//! A queue maps the file itself ([`MappedFile::remap`]): its frames point at its own mapping,
//! which outlives them whichever job ends first. Truncation is checked around every batch as
//! on every zero-copy road (`engine/zc.rs`), and each flush checks whether the PMD read a
//! page past the file's new end through the queue's mapping. Unlike pinned AF_XDP pages,
//! such a page is read as zeros (`sys::sigbus`) and the PMD copies them into its frame
//! within `tx_burst`: frames of zeros may leave before the send ends in `FileTruncated`.

use std::sync::Arc;

use super::open::pool_name;
use super::queue::{DpdkQueue, QueueFile, BURST};
use crate::device::{FileMapper, TxQueue};
use crate::error::Result;
use crate::payload::MappedFile;
use crate::sys::dpdk::Mempool;

/// PMDs that read (or drop) a whole mbuf chain within `tx_burst`.
const GATHER_IN_BURST: [&str; 3] = ["net_af_packet", "net_pcap", "net_null"];

/// Whether `driver` can send file pages from external buffers, or why not.
pub(super) fn gathers(driver: &str) -> std::result::Result<(), String> {
    if GATHER_IN_BURST.contains(&driver) {
        return Ok(());
    }
    Err(match driver {
        "net_af_xdp" => "net_af_xdp sends only the first segment of a chained mbuf (DPDK 22.11): file bytes are copied into its UMEM".to_string(),
        d => format!(
            "{d}: file pages would be read by DMA after tx_burst returns, which needs them registered for DMA and held until completion (not built): file bytes are copied into mbufs"
        ),
    })
}

/// Bare mbufs a queue has at most: each attached one holds a reference of its shared info,
/// whose count is 16 bits.
const MAX_SEGS_PER_QUEUE: u32 = 32_768;

/// Maps files into a port's queues for zero-copy payloads.
pub(crate) struct DpdkFiles {
    /// Whether the PMD takes files, or why not.
    pub(super) gathers: std::result::Result<(), String>,
    /// Bare mbufs per queue (frames in flight at once: the TX ring, bursts, cache).
    pub(super) segs_per_queue: u32,
}

impl FileMapper<DpdkQueue> for DpdkFiles {
    fn map(
        &mut self,
        queues: &mut Vec<DpdkQueue>,
        file: &MappedFile,
    ) -> Result<std::result::Result<(), String>> {
        if let Err(why) = &self.gathers {
            return Ok(Err(why.clone()));
        }
        if file.size() == 0 {
            return Ok(Err("an empty file".into()));
        }
        // (The version first: a file changed meanwhile is then mapped again next time.)
        let version = file.version();
        let map = Arc::new(file.remap()?);
        // All queues or none: frames of the file mapped before still point at it, so they
        // leave first; then every queue gets the new file, or (a pool or shared info that
        // cannot be made) none keeps any, so no queue sends an old mapping's bytes.
        let mut made = Vec::with_capacity(queues.len());
        for q in queues.iter_mut() {
            q.drain()?;
            let segs = match q.file.take().and_then(QueueFile::into_segs) {
                Some(segs) => segs,
                None => {
                    let name = pool_name("x");
                    let n = self.segs_per_queue.min(MAX_SEGS_PER_QUEUE);
                    match Mempool::new_bare(&name, n, BURST as u32 * 8) {
                        Ok(p) => Arc::new(p),
                        Err(e) => {
                            queues.iter_mut().for_each(|q| q.file = None);
                            return Ok(Err(format!("a pool of {n} mbufs for file pages: {e}")));
                        }
                    }
                }
            };
            match QueueFile::new(map.clone(), version, segs) {
                Ok(f) => made.push(f),
                Err(e) => {
                    queues.iter_mut().for_each(|q| q.file = None);
                    return Ok(Err(format!("external buffers' shared info: {e}")));
                }
            }
        }
        for (q, f) in queues.iter_mut().zip(made) {
            q.file = Some(f);
        }
        Ok(Ok(()))
    }

    fn auto_refusal(&self, _queues: &[DpdkQueue]) -> Option<String> {
        None
    }
}
