//! External buffers: mbufs that carry a file's mapped pages instead of their own data room
//! (`rte_pktmbuf_attach_extbuf`), chained after a header mbuf: a frame's payload leaves
//! without a copy in user space.

use std::io;
use std::ptr::NonNull;
use std::sync::Arc;

use super::{ffi, last_rte_error, pool_cname, Mbuf, Mempool};

/// Memory that external buffers point into, kept alive by them.
pub(crate) type Backing = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// External buffers into one piece of memory (a file's mapping): the shared info of the
/// mbufs attached to it (the owner holds one reference and every attached mbuf one more; its
/// free callback does nothing), and the memory itself, held until no mbuf points into it.
/// Dropped while a PMD still holds such a frame, both are left allocated (leaked) rather
/// than freed under it.
pub(crate) struct ExtShared {
    info: NonNull<ffi::rte_mbuf_ext_shared_info>,
    backing: Option<Backing>,
    /// IO address of the first byte (IOVA-as-VA: its address), else none.
    iova: Option<u64>,
}

// SAFETY: the reference count is atomic; the backing is Send + Sync; the pointer is only
// passed to DPDK.
unsafe impl Send for ExtShared {}

impl ExtShared {
    /// External buffers into `backing`.
    pub(crate) fn new(backing: Backing) -> io::Result<ExtShared> {
        // SAFETY: allocates and initialises a shared info; NULL when out of memory.
        let p = unsafe { ffi::xs_ext_shinfo_new() };
        let info = NonNull::new(p).ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let iova = iova_is_va().then(|| (*backing).as_ref().as_ptr() as u64);
        Ok(ExtShared {
            info,
            backing: Some(backing),
            iova,
        })
    }

    /// True if mbufs are attached to it right now.
    pub(crate) fn busy(&self) -> bool {
        self.users() > 0
    }

    /// Mbufs attached to it right now.
    pub(crate) fn users(&self) -> u16 {
        // SAFETY: a live shared info (ours until drop).
        unsafe { ffi::xs_ext_shinfo_users(self.info.as_ptr()) }
    }
}

impl Drop for ExtShared {
    fn drop(&mut self) {
        // SAFETY: ours; freed only if no mbuf points at it any more.
        let rc = unsafe { ffi::xs_ext_shinfo_free(self.info.as_ptr()) };
        if rc != 0 {
            // A PMD still holds a frame into the backing: it must stay.
            std::mem::forget(self.backing.take());
        }
    }
}

/// True if IO addresses are virtual addresses in this process (IOVA-as-VA): the IO address
/// of a file page is then its address.
pub(crate) fn iova_is_va() -> bool {
    // SAFETY: plain query of the initialised EAL.
    unsafe { ffi::xs_iova_is_va() == 1 }
}

impl Mempool {
    /// `n` mbufs without data room (they only ever carry external buffers), a per-lcore
    /// cache of `cache`; single-producer/single-consumer (one thread allocates, and its
    /// `tx_burst` frees).
    pub(crate) fn new_bare(name: &str, n: u32, cache: u32) -> io::Result<Mempool> {
        let cname = pool_cname(name)?;
        // SAFETY: valid C strings; DPDK copies them. Returns NULL with rte_errno set.
        let mp = unsafe {
            ffi::rte_pktmbuf_pool_create_by_ops(
                cname.as_ptr(),
                n,
                cache,
                0,
                0,
                -1,
                c"ring_sp_sc".as_ptr(),
            )
        };
        NonNull::new(mp)
            .map(|mp| Mempool { mp })
            .ok_or_else(last_rte_error)
    }
}

impl Mbuf {
    /// Make this mbuf, whose first `head_len` bytes are a frame's headers, a two-segment
    /// frame: `seg` (from a [`Mempool::new_bare`] pool) is attached to `len` bytes at `off`
    /// of `ext`'s backing as an external buffer, and follows. TX offload `flags` and header
    /// lengths as [`Mbuf::set_tx`]'s. An error (nothing changed; `seg` freed) if the range
    /// is not in the backing or longer than an mbuf segment.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn chain_external(
        &mut self,
        head_len: u16,
        seg: Mbuf,
        ext: &ExtShared,
        off: usize,
        len: usize,
        flags: u64,
        l2: u16,
        l3: u16,
    ) -> io::Result<()> {
        let mem = ext.backing.as_deref().map_or(&[][..], |b| b.as_ref());
        let bytes = off
            .checked_add(len)
            .and_then(|end| mem.get(off..end))
            .filter(|b| b.len() <= u16::MAX as usize)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{len} bytes at {off} of {} mapped: not one mbuf segment",
                        mem.len()
                    ),
                )
            })?;
        let iova = ext.iova.map_or(u64::MAX, |b| b + off as u64);
        // SAFETY: both mbufs are ours; `seg` is handed to the chain (freed with it, so it is
        // forgotten here). `bytes` lies in `ext`'s backing, which stays allocated as long as
        // any mbuf is attached to its shared info (ExtShared's drop leaks it otherwise).
        unsafe {
            ffi::xs_mbuf_chain_ext(
                self.0.as_ptr(),
                head_len,
                seg.0.as_ptr(),
                bytes.as_ptr() as *mut std::ffi::c_void,
                iova,
                bytes.len() as u16,
                ext.info.as_ptr(),
                flags,
                l2,
                l3,
            );
        }
        std::mem::forget(seg);
        Ok(())
    }

    /// The frame's segments as (bytes, data length) pairs, and its packet length (tests).
    #[cfg(test)]
    pub(crate) fn segments(&self) -> (Vec<(*const u8, u16)>, u32) {
        let mut out = Vec::new();
        let mut m = self.0.as_ptr();
        // SAFETY: reads of our own chain's fields.
        unsafe {
            let pkt = ffi::xs_mbuf_pkt_len(m);
            while !m.is_null() {
                out.push((ffi::xs_mbuf_data(m) as *const u8, ffi::xs_mbuf_data_len(m)));
                m = ffi::xs_mbuf_next(m);
            }
            (out, pkt)
        }
    }
}
