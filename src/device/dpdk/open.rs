//! Opening a DPDK port: EAL, capabilities, addressing, mempool, offloads, next-hop MAC, and
//! the report of what was obtained.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::files::{gathers, DpdkFiles};
use super::queue::{DpdkQueue, PortShare, BURST};
use crate::device::path::Endpoints;
use crate::device::{net, Caps, Port, RxQueue};
use crate::error::{Error, Result};
use crate::options::{ChecksumChoice, ConnConfig, Proto};
use crate::report::BackendInfo;
use crate::sansio::framer::{Flow, UdpFramer};
use crate::sansio::neigh::{self, Seen, Us};
use crate::sansio::wire::ethernet::{self, MacAddr};
use crate::sys::dpdk::{self as sys, offload, EthPort, Mempool};
use crate::sys::netdev;

/// How long the next hop may take to answer ARP/ND, and how often we ask.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);
const RESOLVE_EVERY: Duration = Duration::from_millis(200);
/// Most queues a port is opened with.
const MAX_QUEUES: u32 = 64;

fn unavailable(reason: String) -> Error {
    Error::BackendUnavailable {
        backend: "dpdk",
        reason,
    }
}

/// The kernel interface behind a vdev (`iface=NAME` in its EAL arguments, or the index the
/// PMD reports).
fn kernel_iface(cfg: &ConnConfig, info: &sys::PortInfo) -> Option<String> {
    if info.if_index != 0 {
        if let Some(n) = netdev::if_indextoname(info.if_index) {
            return Some(n);
        }
    }
    cfg.dpdk.eal_args.iter().find_map(|a| {
        let v = a.strip_prefix("--vdev=").unwrap_or(a);
        let mut parts = v.split(',');
        let dev = parts.next()?;
        if dev != info.name {
            return None;
        }
        parts.find_map(|p| p.strip_prefix("iface=").map(str::to_string))
    })
}

/// Open DPDK port `cfg.dpdk.port`: UDP gets `cfg.queues` queue pairs, TCP one; and what maps
/// files into its queues (zero-copy payloads).
pub(crate) fn open(cfg: &ConnConfig) -> Result<(Port<DpdkQueue>, DpdkFiles)> {
    let nq = match cfg.proto {
        Proto::Udp => cfg.queues.max(1),
        Proto::Tcp => 1,
    };
    if nq > MAX_QUEUES {
        return Err(Error::InvalidOption(format!(
            "{nq} queues: at most {MAX_QUEUES}"
        )));
    }
    let user_args = with_queue_devargs(&cfg.dpdk.eal_args, nq, |i| {
        netdev::if_combined_channels(i).unwrap_or(0)
    });
    let eal = sys::eal_init(&user_args).map_err(|e| unavailable(format!("EAL: {e}")))?;
    let count = sys::port_count();
    let port = cfg.dpdk.port;
    if count == 0 {
        return Err(unavailable(format!(
            "the EAL found no port (arguments: {}); name a device with --dpdk-args, e.g. --vdev=net_af_xdp0,iface=eth1 or -a 0000:81:00.0, and check that its PMD is installed (Debian: the dpdk package)",
            eal.args.join(" ")
        )));
    }
    if port >= count {
        return Err(Error::InvalidOption(format!(
            "DPDK port {port}: the EAL found {count} port(s) (0..={})",
            count - 1
        )));
    }
    let info =
        sys::port_info(port).map_err(|e| unavailable(format!("reading DPDK port {port}: {e}")))?;
    let mut reasons = Vec::new();
    if (nq as u16) > info.max_tx_queues.min(info.max_rx_queues) {
        let why = match info.driver.as_str() {
            "net_af_xdp" => format!(
                " (net_af_xdp opens at most the combined channels of its interface: {})",
                kernel_iface(cfg, &info)
                    .and_then(|k| netdev::if_combined_channels(&k).ok())
                    .map_or("unknown".to_string(), |c| c.to_string())
            ),
            "net_af_packet" => format!(" (net_af_packet makes at most {AF_PACKET_MAX_QPAIRS})"),
            _ => String::new(),
        };
        return Err(Error::InvalidOption(format!(
            "{nq} queues asked for, and DPDK port {port} ({}) has {} TX / {} RX{why}",
            info.driver, info.max_tx_queues, info.max_rx_queues
        )));
    }
    let kif = kernel_iface(cfg, &info);
    let name = kif.clone().unwrap_or_else(|| info.name.clone());

    // Our address, source ports, MTU and next hop: from the kernel interface behind a vdev
    // (its sockets also hold our ports), else from the options.
    let (src_ip, ports, mtu, next_hop, sockets) = match &kif {
        Some(k) => {
            let mut c = cfg.clone();
            c.iface = Some(k.clone());
            if let Some(ip) = cfg.dpdk.src_ip {
                c.bind = Some(SocketAddr::new(ip, cfg.bind.map_or(0, |b| b.port())));
            }
            let ends = Endpoints::reserve(&c, nq)?;
            let kmtu = netdev::if_mtu(k).unwrap_or(ends.path_mtu);
            let nh = net::route_get(cfg.peer.ip())
                .map(|r| r.next_hop(cfg.peer.ip()))
                .unwrap_or(cfg.peer.ip());
            (
                ends.src.ip(),
                ends.ports,
                kmtu.min(ends.path_mtu),
                nh,
                ends.sockets,
            )
        }
        None => {
            let ip = cfg.dpdk.src_ip.or(cfg.bind.map(|b| b.ip())).ok_or_else(|| {
                Error::InvalidOption(format!(
                    "DPDK port {port} ({}) has no kernel interface behind it: give our address with --src-ip",
                    info.driver
                ))
            })?;
            let base = cfg
                .bind
                .map(|b| b.port())
                .filter(|&p| p != 0)
                .unwrap_or_else(|| 49152 + (std::process::id() % 8192) as u16 * 2);
            let ports = (0..nq as u16).map(|q| base.wrapping_add(q)).collect();
            let mtu = if info.mtu != 0 { info.mtu as u32 } else { 1500 };
            (ip, ports, mtu, cfg.peer.ip(), Vec::new())
        }
    };
    if src_ip.is_ipv4() != cfg.peer.is_ipv4() {
        return Err(Error::InvalidOption(format!(
            "our address {src_ip} and the peer {} are not the same IP version",
            cfg.peer
        )));
    }
    let l2 = ethernet::HEADER_LEN + cfg.vlan.map_or(0, |_| ethernet::VLAN_TAG_LEN);
    let max_frame = mtu as usize + l2;
    let data_room = max_frame.max(2048).next_multiple_of(64);
    let data_room = u16::try_from(data_room)
        .map_err(|_| Error::InvalidOption(format!("MTU {mtu}: too large for an mbuf")))?;

    // Checksum offload where the PMD has it for our protocol.
    let l4 = match cfg.proto {
        Proto::Udp => offload::UDP_CKSUM,
        Proto::Tcp => offload::TCP_CKSUM,
    };
    let has_l4 = info.tx_offload_capa & l4 != 0;
    let l4_offload = match (cfg.checksum, has_l4) {
        (ChecksumChoice::Software, _) => 0,
        (ChecksumChoice::Offload, false) => {
            return Err(unavailable(format!(
                "checksum offload asked for, and {} does not offer it for {:?}",
                info.driver, cfg.proto
            )))
        }
        (_, true) => l4,
        (ChecksumChoice::Auto, false) => {
            reasons.push(format!(
                "no L4 checksum offload on {} (computed in software)",
                info.driver
            ));
            0
        }
    };
    // Chained mbufs (file pages) where the PMD takes them and says so.
    let gather = gathers(&info.driver);
    let csum_offload = l4_offload != 0;
    let offloads = l4_offload
        | if gather.is_ok() {
            info.tx_offload_capa & offload::MULTI_SEGS
        } else {
            0
        };

    let ring = cfg.ring_size.clamp(64, 4096) as u16;
    let pool = |what: &str, n: u32, single: bool| -> Result<Arc<Mempool>> {
        Mempool::new(&pool_name(what), n, POOL_CACHE, data_room, single)
            .map(Arc::new)
            .map_err(|e| unavailable(format!("mempool of {n} mbufs of {data_room} bytes: {e}")))
    };
    // RX (and ARP/ND answers): the RX rings and what is in flight.
    let rx_need = 2 * ring as u32 + 1024;
    // TX: a pool per queue, allocated from and freed to (by tx_burst) by its one thread.
    // Each holds the TX ring, bursts in our hands and the cache; a frame written into one
    // of its mbufs keeps its bytes when the mbuf comes back (generators re-stamp them).
    let tx_need = ring as u32 + 8 * BURST as u32 + 512;
    // net_af_xdp's UMEM is the pool its RX queue is set up with, and it sends without a
    // copy only mbufs of that pool (any other is copied into one of its mbufs and freed,
    // per frame): there each queue gets one pool for its RX and its TX. The queue's thread
    // is then the only one using it, and nothing is received into it while a generator
    // runs (the generator never polls RX), so its frames still keep their bytes.
    let (rx_pools, tx_pools, data_room) = if info.driver == "net_af_xdp" {
        let (p, room, obj) = umem_pools(nq, rx_need + tx_need, max_frame)?;
        if obj == 2048 {
            // The kernel receives into what is left of a chunk after the PMD's headroom
            // (320 bytes) and XDP's (256): only ACKs and ARP/ND are received here.
            reasons.push(
                "net_af_xdp: 2048-byte UMEM chunks (faster here); frames received over 1472 bytes are dropped by the kernel (only ACKs and ARP/ND are received)"
                    .to_string(),
            );
        }
        (p.clone(), p, room)
    } else {
        let rx = pool("r", nq * rx_need, false)?;
        let tx = (0..nq)
            .map(|_| pool("t", tx_need, true))
            .collect::<Result<Vec<_>>>()?;
        (vec![rx; nq as usize], tx, data_room)
    };
    // The program on the kernel interface before the PMD starts (a PMD's own is guarded).
    let kifindex = kif.as_deref().and_then(netdev::if_nametoindex);
    let prog_before = kifindex.and_then(|i| crate::sys::bpf::xdp_attached(i).ok().flatten());
    let (eth, tx_desc, _rx_desc) =
        EthPort::start(port, nq as u16, ring, offloads, rx_pools.clone()).map_err(|e| {
            unavailable(format!("starting DPDK port {port} ({}): {e}", info.driver))
        })?;
    let eth = Arc::new(eth);
    let xdp_guard = kifindex.and_then(|i| guard_pmd_program(i, prog_before));

    let caps = Caps {
        buf_capacity: data_room as usize,
        max_frame,
        csum_offload,
        max_segs: 1,
        zero_copy: false,
        persistent_bufs: true,
    };
    let us = Us {
        mac: MacAddr(info.mac),
        ip: src_ip,
        vlan: cfg.vlan,
    };
    let share = PortShare {
        port: eth.clone(),
        caps,
        us,
        name: name.clone(),
        kernel_iface: kif.clone(),
    };
    let mut queues: Vec<DpdkQueue> = tx_pools
        .into_iter()
        .enumerate()
        .map(|(q, tx_pool)| DpdkQueue::new(share.clone(), tx_pool, rx_pools[q].clone(), q as u16))
        .collect();
    let dst_mac = match cfg.dst_mac {
        Some(m) => m,
        None => resolve(&mut queues, &us, next_hop).ok_or_else(|| {
            unavailable(format!(
                "no {} answer from {next_hop} on DPDK port {port} ({}) in {} s: is the peer on this link? (give --dst-mac)",
                if next_hop.is_ipv4() { "ARP" } else { "neighbor discovery" },
                info.driver,
                RESOLVE_TIMEOUT.as_secs()
            ))
        })?,
    };
    let flows: Vec<Flow> = ports
        .iter()
        .map(|&p| Flow {
            src_mac: us.mac,
            dst_mac,
            vlan: cfg.vlan,
            src: SocketAddr::new(src_ip, p),
            dst: cfg.peer,
        })
        .collect();
    // A vdev that only taps the kernel interface (net_af_packet) leaves the kernel its
    // packets: keep its TCP from resetting ours.
    let blind = match (&kif, cfg.proto) {
        (Some(k), Proto::Tcp) => Some(super::blind::KernelBlind::install(
            k,
            flows[0].src,
            cfg.peer,
        )?),
        _ => None,
    };
    let mut offl = Vec::new();
    if offloads & offload::UDP_CKSUM != 0 {
        offl.push("udp_cksum".to_string());
    }
    if offloads & offload::TCP_CKSUM != 0 {
        offl.push("tcp_cksum".to_string());
    }
    if offloads & offload::MULTI_SEGS != 0 {
        offl.push("multi_segs".to_string());
    }
    let info_r = BackendInfo {
        backend: "dpdk",
        mode: format!("{}/copy", info.driver),
        iface: Some(name),
        mtu: Some(mtu),
        max_datagram: (cfg.proto == Proto::Udp)
            .then(|| UdpFramer::new(&flows[0], mtu).max_payload() as u64),
        fallback_reasons: reasons,
        queues: Some(nq),
        ring_size: Some(tx_desc as u32),
        frame_size: Some(data_room as u32),
        segments: Some(1),
        checksum: Some(if csum_offload { "offload" } else { "software" }.into()),
        dst_mac: Some(dst_mac.to_string()),
        driver: Some(info.driver.clone()),
        dpdk_port: Some(port),
        offloads: offl,
        eal_args: eal.args.clone(),
        ..Default::default()
    };
    let files = DpdkFiles {
        gathers: gather,
        segs_per_queue: tx_need,
    };
    Ok((
        Port {
            queues,
            flows,
            mtu,
            info: info_r,
            hold: Box::new((sockets, eth, blind, xdp_guard)),
        },
        files,
    ))
}

/// A switch that detaches the XDP program a PMD attached to `ifindex` without a link
/// (net_af_xdp: libxdp's `xsk_def_prog`, attached by netlink) if this process dies without
/// closing the port (SIGKILL): the program would otherwise stay, and keep the peer's
/// answers from the kernel's TCP (the dead sockets' rings live as long as the TCP
/// watchdog does). Only that very program is detached (`XDP_FLAGS_REPLACE`). None when no
/// program is attached, one (`before`) was there before the PMD started, or the switch
/// cannot be made (best effort, as the TCP watchdog).
fn guard_pmd_program(
    ifindex: u32,
    before: Option<(u32, u32)>,
) -> Option<crate::sys::watchdog::Watchdog> {
    use std::os::fd::AsRawFd;
    if before.is_some() {
        // A program was there before the PMD started (the PMD's is then not alone, or not
        // the one on the interface): never detach what may be someone else's.
        return None;
    }
    let (id, mode) = crate::sys::bpf::xdp_attached(ifindex).ok()??;
    let fd = crate::sys::bpf::prog_fd_by_id(id).ok()?;
    let msg = net::rtnl::xdp_detach_request(ifindex, mode, fd.as_raw_fd(), 1);
    crate::sys::watchdog::Watchdog::arm_netlink(msg, fd).ok()
}

/// Queue pairs net_af_packet makes at most (`RTE_PMD_AF_PACKET_MAX_RINGS`).
const AF_PACKET_MAX_QPAIRS: u32 = 16;

/// The user's EAL arguments with the queue count `nq` (above 1) given to the vdevs whose
/// PMDs take it as a device argument and were not told one: `qpairs=` (net_af_packet, up
/// to 16), `queue_count=` (net_af_xdp, up to the combined channels of its interface, as
/// `combined(iface)` says: the PMD refuses more). Beyond that the PMD opens its default,
/// and the queue check names the limit. A PCI port's queues need no argument.
fn with_queue_devargs(args: &[String], nq: u32, combined: impl Fn(&str) -> u32) -> Vec<String> {
    let mut out = args.to_vec();
    if nq <= 1 {
        return out;
    }
    let mut vdev_next = false;
    for a in out.iter_mut() {
        let (prefix, spec) = match a.strip_prefix("--vdev=") {
            Some(v) => ("--vdev=", v.to_string()),
            None if vdev_next => ("", a.clone()),
            None => {
                vdev_next = a == "--vdev";
                continue;
            }
        };
        vdev_next = false;
        let dev = spec.split(',').next().unwrap_or("");
        let iface = spec
            .split(',')
            .find_map(|p| p.strip_prefix("iface="))
            .unwrap_or("");
        let (key, max) = if dev.starts_with("net_af_packet") || dev.starts_with("eth_af_packet") {
            ("qpairs", AF_PACKET_MAX_QPAIRS)
        } else if dev.starts_with("net_af_xdp") || dev.starts_with("eth_af_xdp") {
            ("queue_count", combined(iface))
        } else {
            continue;
        };
        if nq <= max && !spec.split(',').any(|p| p.starts_with(&format!("{key}="))) {
            *a = format!("{prefix}{spec},{key}={nq}");
        }
    }
    out
}

/// Per-lcore cache of every pool.
const POOL_CACHE: u32 = 256;

/// A pool name unique in the process.
pub(super) fn pool_name(what: &str) -> String {
    static POOLS: AtomicU32 = AtomicU32::new(0);
    format!(
        "xs{}{what}{}",
        std::process::id(),
        POOLS.fetch_add(1, Ordering::Relaxed)
    )
}

/// net_af_xdp's UMEMs: a pool of `n` mbufs per queue, in objects of 2048 bytes when a
/// `max_frame` frame fits their data room (measured faster than 4096: 1.03x/1.02x against
/// 0.98x/0.81x testpmd at 64/1514 B, bench-results/2026-12-07-dpdk-umem*), else 4096 (a UMEM
/// chunk is at most a page). Returns the pools, their data room and the object size.
fn umem_pools(nq: u32, n: u32, max_frame: usize) -> Result<(Vec<Arc<Mempool>>, u16, u32)> {
    let make = |obj: u32| {
        Mempool::new_packed(&pool_name("u"), n, POOL_CACHE, obj).map_err(|e| {
            unavailable(format!(
                "net_af_xdp's UMEM: a pool of {n} mbufs in {obj}-byte objects: {e}"
            ))
        })
    };
    let mut obj = 2048;
    let (first, room) = loop {
        let (p, room) = make(obj)?;
        if room as usize >= max_frame {
            break (p, room);
        }
        if obj == 4096 {
            return Err(unavailable(format!(
                "net_af_xdp: a {max_frame}-byte frame does not fit a UMEM chunk ({room} bytes of data room in a 4096-byte mbuf; the PMD has no multi-buffer frames)"
            )));
        }
        obj = 4096;
    };
    let mut pools = vec![Arc::new(first)];
    for _ in 1..nq {
        pools.push(Arc::new(make(obj)?.0));
    }
    Ok((pools, room, obj))
}

/// The next hop's MAC, asked over the port (ARP or an NS every 200 ms, up to 3 s) on the
/// first queue. The answer is looked for on every queue: the PMD may spread what it receives
/// over them (net_af_packet's `qpairs` fan out by hash), so it can arrive on any.
fn resolve(queues: &mut [DpdkQueue], us: &Us, target: IpAddr) -> Option<MacAddr> {
    let mut req = [0u8; neigh::MAX_FRAME];
    let n = neigh::request(&mut req, us, target)?;
    if queues.is_empty() {
        return None;
    }
    let start = Instant::now();
    let mut asked = None::<Instant>;
    while start.elapsed() < RESOLVE_TIMEOUT {
        if asked.is_none_or(|t| t.elapsed() >= RESOLVE_EVERY) {
            queues[0].send_now(&req[..n]);
            asked = Some(Instant::now());
        }
        let mut found = None;
        let mut out = [0u8; neigh::MAX_FRAME];
        for q in queues.iter_mut() {
            q.recv(|f| {
                if let Some(Seen::Neighbour { ip, mac }) = neigh::handle(f, us, &mut out)[0] {
                    if ip == target {
                        found = Some(mac);
                    }
                }
            });
        }
        if found.is_some() {
            return found;
        }
        queues[0].wait(Duration::from_millis(1));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::with_queue_devargs;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn queue_counts_go_to_the_vdevs_that_take_them() {
        let a = v(&[
            "--vdev=net_af_packet0,iface=x",
            "--vdev",
            "net_af_xdp1,iface=y",
            "-l",
            "0",
        ]);
        let four = |_: &str| 4;
        assert_eq!(with_queue_devargs(&a, 1, four), a);
        assert_eq!(
            with_queue_devargs(&a, 3, four),
            v(&[
                "--vdev=net_af_packet0,iface=x,qpairs=3",
                "--vdev",
                "net_af_xdp1,iface=y,queue_count=3",
                "-l",
                "0"
            ])
        );
        // The user's own count stays; other devices are left alone.
        let b = v(&[
            "--vdev=net_af_xdp0,iface=x,queue_count=1",
            "--vdev=net_null0",
            "-a",
            "0000:81:00.0",
        ]);
        assert_eq!(with_queue_devargs(&b, 2, four), b);
        // More than the PMD can open: left to its default (the queue check then says why).
        assert_eq!(with_queue_devargs(&a, 17, |_| 32)[0], a[0]);
        assert_eq!(with_queue_devargs(&a, 5, four)[2], a[2]);
        // The interface the PMD takes is the one asked about.
        let asked = std::cell::RefCell::new(Vec::new());
        with_queue_devargs(&a, 2, |i| {
            asked.borrow_mut().push(i.to_string());
            1
        });
        assert_eq!(asked.into_inner(), ["y"]);
    }
}
