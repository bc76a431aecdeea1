//! The shim and the EAL over `net_null` (no I/O): mbuf fields as set, offload flags, bursts.

use super::eal::{eal_args, EalInfo};
use super::*;

/// The EAL of this test process, on a `net_null` port; `None` (said loudly) where it cannot
/// start, which fails in CI.
fn eal() -> Option<&'static EalInfo> {
    match eal_init(&["--vdev=net_null0,size=64".into()]) {
        Ok(i) => Some(i),
        Err(e) => {
            let msg = format!("DPDK EAL unavailable here, shim tests not run: {e}");
            if std::env::var_os("CI").is_some() {
                panic!("{msg}");
            }
            eprintln!("SKIPPED: {msg}");
            None
        }
    }
}

#[test]
fn eal_args_put_ours_first_and_respect_the_users() {
    let a = eal_args(&["--vdev=net_null0".into()], 1, "xsend-7");
    assert_eq!(
        a,
        [
            "--log-level=*:warning",
            "-l1",
            "--file-prefix=xsend-7",
            "--no-shconf",
            "--no-telemetry",
            "--no-pci",
            "--no-huge",
            "-m256",
            "--vdev=net_null0"
        ]
    );
    // A PCI port: hugepages and the PCI bus are the user's; memory in memfds, not files.
    let a = eal_args(&["-a".into(), "0000:81:00.0".into()], 0, "p");
    assert!(
        !a.iter()
            .any(|x| x == "--no-pci" || x == "--no-huge" || x == "--no-shconf"),
        "{a:?}"
    );
    assert!(a.iter().any(|x| x == "--in-memory"), "{a:?}");
    // Hugepages asked for on a vdev: the same.
    let a = eal_args(
        &["--vdev=net_null0".into(), "-m".into(), "64".into()],
        0,
        "p",
    );
    assert!(a.iter().any(|x| x == "--in-memory"), "{a:?}");
    assert!(!a.iter().any(|x| x == "--no-huge"), "{a:?}");
    // The user's own --no-huge with a size: no --in-memory (22.11 refuses the pair).
    let a = eal_args(&["--no-huge".into(), "-m512".into()], 0, "p");
    assert!(a.iter().any(|x| x == "--no-shconf"), "{a:?}");
    assert!(!a.iter().any(|x| x == "--in-memory"), "{a:?}");
    // Options 22.11 refuses beside --in-memory: --no-shconf then.
    for o in ["--legacy-mem", "--huge-unlink=never"] {
        let a = eal_args(&["-a".into(), "0000:81:00.0".into(), o.into()], 0, "p");
        assert!(!a.iter().any(|x| x == "--in-memory"), "{a:?}");
        assert!(a.iter().any(|x| x == "--no-shconf"), "{a:?}");
    }
    // The user's --no-shconf is theirs to keep.
    let a = eal_args(
        &["-a".into(), "0000:81:00.0".into(), "--no-shconf".into()],
        0,
        "p",
    );
    assert!(!a.iter().any(|x| x == "--in-memory"), "{a:?}");
    let a = eal_args(&["-l".into(), "3".into(), "--in-memory".into()], 0, "p");
    assert!(
        !a.iter()
            .any(|x| x == "-l0" || x == "--no-shconf" || x == "--no-huge"),
        "{a:?}"
    );
}

#[test]
fn checksum_flags_differ_for_udp_and_tcp() {
    const IPV4: u64 = 1 << 55;
    const IPV6: u64 = 1 << 56;
    const TCP: u64 = 1 << 52;
    const UDP: u64 = 3 << 52;
    assert_eq!(tx_csum_flags(false, false), IPV4 | UDP);
    assert_eq!(tx_csum_flags(false, true), IPV4 | TCP);
    assert_eq!(tx_csum_flags(true, false), IPV6 | UDP);
    assert_eq!(tx_csum_flags(true, true), IPV6 | TCP);
}

#[test]
fn mbufs_bursts_and_fields_over_net_null() {
    let Some(_) = eal() else { return };
    assert!(port_count() >= 1);
    let info = port_info(0).unwrap();
    assert_eq!(info.driver, "net_null");
    assert!(port_info(99).is_err());
    let pool = std::sync::Arc::new(Mempool::new("xs_test_pool", 1023, 32, 2048, false).unwrap());
    let (port, tx, rx) = EthPort::start(0, 1, 512, 0, vec![pool.clone()]).unwrap();
    assert!(tx > 0 && rx > 0);
    let mut v = Vec::new();
    assert!(pool.alloc_bulk(&mut v, 8));
    // The allocating thread got an lcore of its own (so mempool caches work for it).
    assert!(lcore_id().is_some());
    assert_eq!(v.len(), 8);
    for (i, m) in v.iter_mut().enumerate() {
        let c = m.c_room();
        let room = m.room();
        assert!(room.len() >= 2048, "{}", room.len());
        assert_eq!((room.as_mut_ptr(), room.len()), c);
        room[..60].fill(i as u8);
        m.set_tx(
            60 + i as u16,
            tx_csum_flags(i % 2 == 1, i % 3 == 0),
            14,
            20 + i as u16,
        );
        let (fl, l2, l3, dl, pl) = m.tx_fields();
        assert_eq!(fl, tx_csum_flags(i % 2 == 1, i % 3 == 0));
        assert_eq!(
            (l2, l3, dl, pl),
            (14, 20 + i as u16, 60 + i as u16, 60 + i as u32)
        );
    }
    let mut sent = 0;
    while !v.is_empty() {
        sent += tx_burst(port.id(), 0, &mut v);
    }
    assert_eq!(sent, 8);
    let mut lens = Vec::new();
    rx_burst(port.id(), 0, |b, len, segs| lens.push((b.len(), len, segs)));
    assert!(!lens.is_empty());
    assert!(lens.iter().all(|&l| l == (64, 64, 1)), "{lens:?}");
    let (o, e, _) = port.stats().unwrap();
    assert_eq!((o, e), (8, 0));
    // A pool too small for a whole burst hands out nothing.
    let small = Mempool::new("xs_test_small", 3, 0, 128, true).unwrap();
    let mut w = Vec::new();
    assert!(!small.alloc_bulk(&mut w, 8));
    assert!(w.is_empty());
}

/// net_af_xdp's UMEM pools: every mbuf of the pool lies in one array of equal objects from a
/// page boundary (what the PMD maps as its UMEM), none crossing a page, each with the data
/// room reported; pools that cannot be laid out so are refused.
#[test]
fn packed_pools_are_one_array_of_page_sized_objects() {
    if eal().is_none() {
        return;
    }
    for (obj, n) in [(2048u32, 1000u32), (4096, 300)] {
        let (pool, room) = Mempool::new_packed(&format!("pk{obj}"), n, 0, obj).unwrap();
        let mut all = Vec::new();
        while pool.alloc_bulk(&mut all, 1) {}
        assert_eq!(all.len(), n as usize, "every mbuf of the pool");
        // The mempool header (64 bytes) sits in front of each mbuf.
        let mut at: Vec<usize> = all.iter_mut().map(|m| m.0.as_ptr() as usize - 64).collect();
        at.sort_unstable();
        assert_eq!(at[0] % 4096, 0, "the first object starts a page");
        for (i, a) in at.iter().enumerate() {
            assert_eq!(*a, at[0] + i * obj as usize, "object {i} one stride on");
            assert!(a % 4096 + obj as usize <= 4096, "object {i} crosses a page");
        }
        for m in all.iter_mut() {
            let data = m.room().as_ptr() as usize;
            let start = m.0.as_ptr() as usize - 64;
            assert_eq!(m.room().len(), room as usize);
            assert!(data + room as usize <= start + obj as usize);
        }
        assert!(room >= if obj == 2048 { 1518 } else { 3000 }, "{room}");
    }
    // Not a size a mbuf fits in.
    assert!(Mempool::new_packed("pkbad", 10, 0, 256).is_err());
}

/// A header mbuf with an external buffer chained after it: two segments, the second the
/// given bytes themselves (no copy), the packet length their sum; the shared info counts one
/// user per frame in flight and none once they are freed, and the bare pool's mbufs
/// come back detached (reused for the next frames).
#[test]
fn external_buffers_chain_file_bytes_without_a_copy() {
    let Some(_) = eal() else { return };
    let heads = Mempool::new("xs_test_heads", 255, 0, 2048, true).unwrap();
    let segs = Mempool::new_bare("xs_test_segs", 63, 0).unwrap();
    let file: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    let backing: super::extbuf::Backing = std::sync::Arc::new(file.clone());
    let shared = ExtShared::new(backing.clone()).unwrap();
    let base = (*backing).as_ref().as_ptr();
    for round in 0..3 {
        let mut frames = Vec::new();
        for i in 0..40usize {
            let mut h = Vec::new();
            assert!(heads.alloc_bulk(&mut h, 1));
            let mut s = Vec::new();
            assert!(segs.alloc_bulk(&mut s, 1), "round {round} frame {i}");
            let mut h = h.pop().unwrap();
            h.room()[..42].fill(0xab);
            let off = i * 1000 + round;
            h.chain_external(42, s.pop().unwrap(), &shared, off, 1400 + i, 0, 14, 20)
                .unwrap();
            let (segs_of, pkt) = h.segments();
            assert_eq!(pkt, 42 + 1400 + i as u32);
            assert_eq!(segs_of.len(), 2);
            assert_eq!(segs_of[0].1, 42);
            // SAFETY: in bounds of the backing.
            let at = unsafe { base.add(off) };
            assert_eq!(segs_of[1], (at, 1400 + i as u16), "the file's own bytes");
            frames.push(h);
        }
        assert_eq!(shared.users(), 40);
        // Freed as a PMD frees a sent frame (rte_pktmbuf_free: net_null's whole TX).
        drop(frames.pop());
        assert_eq!(shared.users(), 39);
        drop(frames);
        assert_eq!(shared.users(), 0, "round {round}");
    }
    // Outside the backing, or longer than a segment: refused, the bare mbuf back in its pool.
    let mut h = Vec::new();
    assert!(heads.alloc_bulk(&mut h, 1));
    for (off, len) in [(99_999, 2), (usize::MAX, 2), (0, 70_000)] {
        let mut s = Vec::new();
        assert!(segs.alloc_bulk(&mut s, 1));
        let e = h[0].chain_external(42, s.pop().unwrap(), &shared, off, len, 0, 14, 20);
        assert!(e.is_err(), "{off} {len}");
    }
    assert_eq!(shared.users(), 0);
    // Dropped with a frame still attached: the backing stays (leaked), not freed under it.
    let mut s = Vec::new();
    assert!(segs.alloc_bulk(&mut s, 1));
    h[0].chain_external(42, s.pop().unwrap(), &shared, 0, 100, 0, 14, 20)
        .unwrap();
    let weak = std::sync::Arc::downgrade(&backing);
    drop(backing);
    drop(shared);
    assert!(
        weak.upgrade().is_some(),
        "the backing of a frame in flight was freed"
    );
}
