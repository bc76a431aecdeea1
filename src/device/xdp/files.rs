//! Zero-copy file payloads: a file on tmpfs or a memfd mapped into each queue's UMEM
//! after its frames, so frames are a header descriptor followed by descriptors that point at
//! the file's own pages (no copy in user space; on a zero-copy NIC, DMA from the page cache).
//!
//! A UMEM is registered once per socket, so mapping a file means opening the queues again:
//! the old sockets are closed first (a queue takes one socket at a time), the new ones map the
//! file. Files with writeback (ext4, ...) cannot be pinned this way and stay on `preadv`.

use std::os::fd::AsFd;

use super::prog::XskMap;
use super::queue::QueueConfig;
use super::XdpQueue;
use crate::device::{FileMapper, TxQueue};
use crate::error::Result;
use crate::payload::MappedFile;

/// Largest file mapped into a UMEM: registration pins every page (about 0.3 s per GiB here),
/// and the UMEM's frame count must fit 32 bits.
const MAX_FILE: u64 = 16 << 30;

/// Re-opens AF_XDP queues with a file mapped into their UMEMs (and puts the new sockets
/// into our program's XSKMAP, so a TCP connection's ACKs reach them).
pub(crate) struct XdpFiles {
    pub(super) xskmap: Option<XskMap>,
}

impl XdpFiles {
    /// Register re-opened queues with the XDP program, if there is one.
    fn register(&self, queues: &[XdpQueue], configs: &[(QueueConfig, Option<u32>)]) -> Result<()> {
        if let Some(m) = &self.xskmap {
            for (q, (c, _)) in queues.iter().zip(configs) {
                m.insert(c.queue, q.as_fd())?;
            }
        }
        Ok(())
    }
}

impl FileMapper<XdpQueue> for XdpFiles {
    fn map(
        &mut self,
        queues: &mut Vec<XdpQueue>,
        file: &MappedFile,
    ) -> Result<std::result::Result<(), String>> {
        if file.size() == 0 || file.size() > MAX_FILE {
            return Ok(Err(format!(
                "a file of {} bytes: zero-copy maps files of 1 byte to {} GiB",
                file.size(),
                MAX_FILE >> 30
            )));
        }
        if let Some(why) = too_many_pieces(queues) {
            return Ok(Err(why));
        }
        let rw = match file.pinnable() {
            Ok(f) => f,
            Err(why) => return Ok(Err(why)),
        };
        let configs: Vec<_> = queues.iter().map(XdpQueue::config).collect();
        let ifname = configs
            .first()
            .map(|(c, _)| c.ifname.clone())
            .unwrap_or_default();
        let netns = configs.first().and_then(|(c, _)| c.netns.clone());
        // Sockets belong to the namespace of the thread that makes them: make the new ones
        // where the first were made, whichever thread sends.
        let in_netns = |f: &(dyn Fn() -> std::io::Result<Vec<XdpQueue>> + Sync)| {
            std::thread::scope(|s| {
                s.spawn(|| {
                    if let Some(ns) = &netns {
                        crate::sys::thread::enter_netns_fd(ns.as_fd())?;
                    }
                    f()
                })
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the re-opening thread panicked")))
            })
        };
        // Close the sockets: each queue takes one socket at a time.
        queues.clear();
        let with_file = in_netns(&|| {
            configs
                .iter()
                .map(|(c, b)| XdpQueue::reopen(c, *b, Some((&rw, file.version()))))
                .collect()
        });
        match with_file {
            Ok(q) => {
                *queues = q;
                self.register(queues, &configs)?;
                Ok(Ok(()))
            }
            Err(e) => {
                // As before, without the file; if even that fails the port is gone.
                *queues = in_netns(&|| {
                    configs
                        .iter()
                        .map(|(c, b)| XdpQueue::reopen(c, *b, None))
                        .collect()
                })
                .map_err(|e2| {
                    crate::device::tx_error(
                        &ifname,
                        || format!("re-opening the AF_XDP queues of {ifname}"),
                        e2,
                    )
                })?;
                self.register(queues, &configs)?;
                Ok(Err(format!(
                    "mapping {} into the UMEM: {e}",
                    file.path().display()
                )))
            }
        }
    }

    fn auto_refusal(&self, queues: &[XdpQueue]) -> Option<String> {
        (!queues.iter().all(|q| q.caps().zero_copy)).then(|| {
            "copy-mode queues: the kernel copies every descriptor, and a header plus file descriptors cost it more than one preadv into one buffer (measured 0.65x); --payload zero-copy takes it anyway".into()
        })
    }
}

/// Why the queues cannot take a header descriptor plus a frame's file pieces, if they cannot:
/// copy mode builds an skb of at most 18 pieces; a zero-copy driver gathers at most its
/// `xdp_zc_max_segs` (the pieces cut at pages there).
fn too_many_pieces(queues: &[XdpQueue]) -> Option<String> {
    let q = queues.first()?;
    let (cfg, _) = q.config();
    let max_frame = q.caps().max_frame;
    if cfg.zerocopy {
        let need = 1 + max_frame.div_ceil(4096) + 1;
        match crate::device::net::xdp_zc_max_segs(cfg.ifindex) {
            Ok(Some(max)) if (max as usize) < need => Some(format!(
                "a frame of {max_frame} bytes from a file takes up to {need} descriptors, and the driver of {} gathers at most {max}",
                cfg.ifname
            )),
            _ => None,
        }
    } else {
        let need = 1 + max_frame.div_ceil(4096 - 24);
        (need > 18).then(|| {
            format!("a frame of {max_frame} bytes from a file takes {need} descriptors; copy mode takes at most 18")
        })
    }
}
