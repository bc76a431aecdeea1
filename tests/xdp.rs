//! AF_XDP-specific tests: large chunked files on 1 and 2 queues (IPv4/IPv6), frames checked on
//! the wire, other traffic untouched, the peer vanishing mid-send, fallbacks, program cleanup.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use xsend::lab::{Lab, LabConfig, Side};
use xsend::{
    BackendChoice, ChecksumChoice, Connection, ConnectionBuilder, Error, SendPacketsElement,
    SendPacketsOptions, SendStatus, TransmitFlags,
};

fn xdp(addr: SocketAddr) -> ConnectionBuilder {
    Connection::udp(addr).backend(BackendChoice::Xdp)
}

fn chunked(conn: &Connection, path: &std::path::Path, flow: u16) -> xsend::Result<u64> {
    let opts = SendPacketsOptions {
        chunk_header: Some(flow),
        flags: TransmitFlags::CALLER_THREAD,
        ..Default::default()
    };
    match conn.send_packets(&[SendPacketsElement::file(path)], opts)? {
        SendStatus::Completed(n) => Ok(n),
        SendStatus::Pending(op) => conn.end_send_packets(op),
    }
}

/// `nstat` counters of the peer namespace that reveal bad checksums or lengths.
fn udp_errors(lab: &Lab) -> u64 {
    let out = lab
        .command(Side::B, "nstat")
        .args(["-az", "-j"])
        .output()
        .expect("nstat (iproute2)");
    let v = json(&out.stdout);
    let k = &v["kernel"];
    [
        "UdpInCsumErrors",
        "Udp6InCsumErrors",
        "UdpInErrors",
        "Udp6InErrors",
        "IpInHdrErrors",
        "Ip6InHdrErrors",
        "IpInAddrErrors",
    ]
    .iter()
    .map(|n| k[*n].as_u64().unwrap_or(0))
    .sum()
}

#[test]
fn large_chunked_files_one_and_two_queues_ipv4_ipv6() {
    need_root!();
    let _wire = udp_lock();
    let lab = lab_with(LabConfig {
        queues: 2,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "big", 256 << 20, 99);
    let want = sha256(&data);
    drop(data);
    let mut port = 10_000;
    for queues in [1u32, 2] {
        for v6 in [false, true] {
            port += 1;
            let addr = if v6 {
                SocketAddr::from((lab.ip6_b.unwrap(), port))
            } else {
                SocketAddr::from((lab.ip4_b, port))
            };
            let a = addr.to_string();
            let out = dir.path().join(format!("out{port}"));
            let recv = spawn_recv(
                &lab,
                &[
                    "--listen",
                    &a,
                    "--proto",
                    "udp",
                    "--json",
                    "--expect-sha256",
                    &want,
                    "--timeout",
                    "60",
                    "--out",
                    out.to_str().unwrap(),
                ],
            );
            let conn = lab
                .run_in(Side::A, || xdp(addr).queues(queues).connect())
                .unwrap()
                .unwrap();
            let info = conn.info();
            assert_eq!((info.backend, info.queues), ("xdp", Some(queues)));
            let n = chunked(&conn, &path, port).unwrap();
            assert_eq!(n, 256 << 20);
            let r = recv.wait_output();
            let v = json(&r.stdout);
            assert!(r.status.success(), "queues {queues} v6 {v6}: {v}");
            assert_eq!(
                (v["lost"].as_u64(), v["duplicates"].as_u64()),
                (Some(0), Some(0)),
                "{v}"
            );
            assert_eq!(v["bytes"], 256u64 << 20);
            assert_eq!(sha256_file(&out), want);
            std::fs::remove_file(&out).unwrap();
        }
    }
    assert_eq!(
        udp_errors(&lab),
        0,
        "the peer saw checksum or length errors"
    );
}

#[test]
fn frames_on_the_wire_are_valid() {
    need_root!();
    let _wire = udp_lock();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "f", 100_000, 5);
    // Software checksums, then offloaded ones with TX checksumming off on the sending veth:
    // the kernel then completes each checksum from our TX metadata request (csum_start,
    // csum_offset, pseudo-header sum) before the frame leaves, so the capture shows whether
    // those requests were right. (With it on, veth hands the partial sum to the peer's stack,
    // which trusts it, and a capture shows the partial sum.)
    let modes = [
        (ChecksumChoice::Software, "software"),
        (ChecksumChoice::Offload, "offload"),
    ];
    for (i, ((mode, name), v6)) in modes
        .into_iter()
        .flat_map(|m| [(m, false), (m, true)])
        .enumerate()
    {
        if mode == ChecksumChoice::Offload {
            let st = lab
                .command(Side::A, "ethtool")
                .args(["-K", &lab.if_a, "tx", "off"])
                .status()
                .unwrap();
            assert!(st.success(), "ethtool -K tx off");
        }
        let dst = if v6 {
            SocketAddr::from((lab.ip6_b.unwrap(), 10_100 + i as u16))
        } else {
            SocketAddr::from((lab.ip4_b, 10_100 + i as u16))
        };
        let (frames, payload) = chunked_frames_on_the_wire(&lab, dst, 1500, || {
            let _sink = udp_sink(&lab, dst);
            let conn = lab
                .run_in(Side::A, || xdp(dst).checksum(mode).connect())
                .unwrap()
                .unwrap();
            assert_eq!(conn.info().checksum.as_deref(), Some(name));
            let sent = chunked(&conn, &path, 7).unwrap();
            assert_eq!(sent, 100_000);
        });
        assert_eq!(payload, data);
        assert_eq!(
            frames,
            100_000usize.div_ceil(if v6 { 1452 - 32 } else { 1472 - 32 }) + 3
        );
    }
}

#[test]
fn other_traffic_keeps_working_while_sending() {
    need_root!();
    let _wire = udp_lock();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = file(dir.path(), "f", 64 << 20, 3);
    // A kernel TCP echo server in the peer.
    let l = lab
        .run_in(Side::B, || {
            TcpListener::bind(SocketAddr::from((lab.ip4_b, 10_200)))
        })
        .unwrap()
        .unwrap();
    let echo = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = vec![0u8; 65536];
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            s.write_all(&buf[..n]).unwrap();
        }
    });
    let tcp = lab
        .run_in(Side::A, || {
            TcpStream::connect(SocketAddr::from((lab.ip4_b, 10_200)))
        })
        .unwrap()
        .unwrap();
    let msg = pattern(1 << 20, 4);
    let checked = Arc::new(AtomicBool::new(false));
    let c = checked.clone();
    let dst = SocketAddr::from((lab.ip4_b, 10_201));
    let _sink = udp_sink(&lab, dst);
    let conn = lab
        .run_in(Side::A, || {
            xdp(dst)
                // Mid-send (first progress report), round-trip 1 MiB over kernel TCP: the
                // replies come in on the interface our XDP program is attached to.
                .on_progress(move |_| {
                    if !c.swap(true, Ordering::SeqCst) {
                        let mut back = vec![0u8; msg.len()];
                        let mut r = tcp.try_clone().unwrap();
                        let mut w = tcp.try_clone().unwrap();
                        let m = msg.clone();
                        let writer = std::thread::spawn(move || w.write_all(&m).unwrap());
                        r.read_exact(&mut back).unwrap();
                        writer.join().unwrap();
                        assert!(back == msg, "echo corrupted");
                        tcp.shutdown(std::net::Shutdown::Write).unwrap();
                    }
                })
                .connect()
        })
        .unwrap()
        .unwrap();
    assert!(
        xdp_attached(&lab, Side::A),
        "our XDP program is attached during the send"
    );
    chunked(&conn, &path, 1).unwrap();
    assert!(checked.load(Ordering::SeqCst));
    echo.join().unwrap();
    drop(conn);
    assert!(
        !xdp_attached(&lab, Side::A),
        "the XDP program must be detached when the connection is dropped"
    );
}

#[test]
fn peer_namespace_deleted_mid_send() {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = file(dir.path(), "f", 256 << 20, 8);
    let (deleted, cb) = on_first_progress(&["ip", "netns", "del", &lab.ns_b]);
    // No receiver process: nothing keeps the peer namespace (and the veth pair) alive.
    let conn = lab
        .run_in(Side::A, || {
            xdp(SocketAddr::from((lab.ip4_b, 10_300)))
                .on_progress(cb)
                .connect()
        })
        .unwrap()
        .unwrap();
    let r = chunked(&conn, &path, 1);
    assert!(deleted.load(Ordering::SeqCst));
    match r {
        Err(e @ Error::InterfaceDown { .. }) => assert!(e.to_string().contains(&lab.if_a), "{e}"),
        r => panic!("{r:?}"),
    }
    // The broken connection refuses further sends.
    assert!(matches!(chunked(&conn, &path, 1), Err(Error::Closed)));
}

#[test]
fn interface_down_mid_send() {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = file(dir.path(), "f", 256 << 20, 8);
    let (_, cb) = on_first_progress(&["ip", "-n", &lab.ns_a, "link", "set", &lab.if_a, "down"]);
    let conn = lab
        .run_in(Side::A, || {
            xdp(SocketAddr::from((lab.ip4_b, 10_301)))
                .on_progress(cb)
                .connect()
        })
        .unwrap()
        .unwrap();
    let r = chunked(&conn, &path, 1);
    assert!(matches!(r, Err(Error::InterfaceDown { .. })), "{r:?}");
}

#[test]
fn truncated_file_over_xdp_is_an_error_not_a_sigbus() {
    need_root!();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = file(dir.path(), "f", 32 << 20, 9);
    let dst = SocketAddr::from((lab.ip4_b, 10_302));
    let _sink = udp_sink(&lab, dst);
    let (_, cb) = on_first_progress(&["truncate", "-s", "4096", path.to_str().unwrap()]);
    let conn = lab
        .run_in(Side::A, || xdp(dst).on_progress(cb).connect())
        .unwrap()
        .unwrap();
    match chunked(&conn, &path, 1) {
        Err(e @ Error::FileTruncated { .. }) => assert!(e.to_string().contains("4096"), "{e}"),
        r => panic!("{r:?}"),
    }
}

#[test]
fn auto_falls_back_to_kernel_where_af_xdp_cannot_run() {
    need_root!();
    let _wire = udp_lock();
    let lab = lab();
    // Loopback inside the lab's namespace: no NIC queue.
    let lo = SocketAddr::from(([127, 0, 0, 1], 10_400));
    let sink = lab
        .run_in(Side::A, || std::net::UdpSocket::bind(lo))
        .unwrap()
        .unwrap();
    let conn = lab
        .run_in(Side::A, || Connection::udp(lo).connect())
        .unwrap()
        .unwrap();
    let info = conn.info();
    assert_eq!(info.backend, "kernel");
    assert!(info.fallback_reasons[0].contains("loopback"), "{info:?}");
    conn.send_file_with(None, Some(b"hi"), None, TransmitFlags::empty())
        .unwrap();
    let mut b = [0u8; 8];
    assert_eq!(sink.recv(&mut b).unwrap(), 2);
    // Explicitly asking for AF_XDP there is a typed error.
    let r = lab
        .run_in(Side::A, || {
            Connection::udp(lo).backend(BackendChoice::Xdp).connect()
        })
        .unwrap();
    assert!(
        matches!(r, Err(Error::BackendUnavailable { backend: "xdp", .. })),
        "{r:?}"
    );
}

#[test]
fn mtu_3000_uses_4096_byte_frames() {
    need_root!();
    let _wire = udp_lock();
    // MTU 3000 fits a 4096-byte UMEM frame.
    let lab3 = lab_with(LabConfig {
        mtu: 3000,
        ..Default::default()
    });
    let dst = SocketAddr::from((lab3.ip4_b, 10_500));
    let sink = udp_sink(&lab3, dst);
    let conn = lab3
        .run_in(Side::A, || xdp(dst).connect())
        .unwrap()
        .unwrap();
    assert_eq!(
        (conn.info().frame_size, conn.info().max_datagram),
        (Some(4096), Some(3000 - 28))
    );
    let big = pattern(2972, 1);
    let opts = SendPacketsOptions {
        send_size: xsend::SEND_SIZE_PACKETS,
        flags: TransmitFlags::CALLER_THREAD,
        ..Default::default()
    };
    conn.send_packets(&[SendPacketsElement::buffer(big.clone())], opts)
        .unwrap();
    assert_eq!(recv_datagrams(&sink, 1)[0], big);
    // Larger MTUs take multi-buffer frames: tests/jumbo.rs.
}

#[test]
fn ctrl_c_and_kill_leave_no_program_attached() {
    need_root!();
    let _wire = udp_lock();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(8 << 30)
        .unwrap();
    for (i, sig) in [libc::SIGINT, libc::SIGKILL].into_iter().enumerate() {
        let dst = SocketAddr::from((lab.ip4_b, 10_600 + i as u16));
        let sink = udp_sink(&lab, dst);
        let child = lab
            .command(Side::A, xsend_bin())
            .arg("send")
            .arg(&path)
            .args([
                "--to",
                &dst.to_string(),
                "--proto",
                "udp",
                "--backend",
                "xdp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let guard = ChildGuard(Some(child));
        // Interrupt once datagrams flow.
        recv_datagrams(&sink, 1);
        assert!(xdp_attached(&lab, Side::A));
        let pid = guard.0.as_ref().unwrap().id() as i32;
        // SAFETY: plain kill(2) of our own child.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
        let out = guard.wait_output();
        if sig == libc::SIGINT {
            assert_eq!(
                out.status.code(),
                Some(130),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            !xdp_attached(&lab, Side::A),
            "XDP program left attached after signal {sig}"
        );
    }
}

/// `nstat` counters of the peer namespace, by name.
fn nstat(lab: &Lab) -> serde_json::Value {
    let out = lab
        .command(Side::B, "nstat")
        .args(["-az", "-j"])
        .output()
        .unwrap();
    json(&out.stdout)["kernel"].clone()
}

#[test]
fn bench_counts_agree_with_the_peer_and_checksums_are_valid() {
    need_root!();
    let _wire = udp_lock();
    // No IPv6: nothing but our frames moves the peer's counters.
    let lab = lab_with(LabConfig {
        ipv6: false,
        ..Default::default()
    });
    for (i, size) in [64usize, 1000, 1514].into_iter().enumerate() {
        let before = lab.stats(Side::B).unwrap().rx_packets;
        let k0 = nstat(&lab);
        let count = 5000 + i as u64;
        let out = xsend_in_a(
            &lab,
            &[
                "bench",
                "--to",
                &format!("{}:9", lab.ip4_b),
                "--size",
                &size.to_string(),
                "--count",
                &count.to_string(),
                "--json",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = json(&out.stdout);
        for f in [
            "packets",
            "bytes",
            "seconds",
            "pps",
            "gbps",
            "backend",
            "xdp_mode",
            "copy_mode",
            "queues",
        ] {
            assert!(!v[f].is_null(), "field {f} missing: {v}");
        }
        assert_eq!(v["backend"], "xdp");
        assert_eq!(v["packets"], count);
        assert_eq!(v["bytes"], count * size as u64);
        // Every frame arrived, and the peer's UDP stack found every checksum valid (port 9
        // has no listener: each valid datagram is counted as UdpNoPorts).
        assert_eq!(lab.stats(Side::B).unwrap().rx_packets - before, count);
        let k1 = nstat(&lab);
        let d = |n: &str| k1[n].as_u64().unwrap_or(0) - k0[n].as_u64().unwrap_or(0);
        assert_eq!(d("UdpNoPorts"), count, "size {size}");
        assert_eq!(d("UdpInCsumErrors") + d("IpInHdrErrors"), 0, "size {size}");
    }
    // IMIX: exact proportions per cycle of 12 (7x64, 4x576, 1x1500), paced by the open-loop
    // scheduler; every frame reaches the peer.
    let before = lab.stats(Side::B).unwrap().rx_packets;
    let out = xsend_in_a(
        &lab,
        &[
            "bench",
            "--to",
            &format!("{}:9", lab.ip4_b),
            "--size",
            "imix",
            "--count",
            "1200",
            "--pps",
            "20k",
            "--burst",
            "4",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out.stdout);
    assert_eq!(v["packets"], 1200);
    assert_eq!(v["bytes"], 100 * (7 * 64 + 4 * 576 + 1500));
    assert_eq!(v["target_pps"], 20_000.0);
    // Paced: departures and lateness are measured for every frame but the first.
    assert_eq!(v["inter_departure"]["count"], 1199);
    assert_eq!(v["lateness"]["count"], 1200);
    assert_eq!(lab.stats(Side::B).unwrap().rx_packets - before, 1200);
    // A frame size the path cannot carry is refused clearly.
    let out = xsend_in_a(
        &lab,
        &[
            "bench",
            "--to",
            &format!("{}:9", lab.ip4_b),
            "--size",
            "1515",
            "--count",
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("frame size 1515"));
}

#[test]
fn multi_flow_generator_cycles_every_port_and_address_combination() {
    need_root!();
    let _l = udp_lock();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("cap.pcap");
    let mut dump = lab
        .command(Side::B, "tcpdump")
        .args([
            "-i", &lab.if_b, "-n", "-U", "-B", "16384", "-c", "400", "-w",
        ])
        .arg(&cap)
        .args(["udp", "and", "dst", "portrange", "9-13"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tcpdump");
    let err = dump.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(err));
    assert!(lines.any(|l| l.map(|l| l.contains("listening on")).unwrap_or(false)));
    let out = xsend_in_a(
        &lab,
        &[
            "bench",
            "--to",
            "198.18.0.2:9",
            "--size",
            "64",
            "--count",
            "400",
            "--pps",
            "50k",
            "--src-ports",
            "1000-1003",
            "--dst-ports",
            "9-13",
            "--dst-ips",
            "198.18.0.2-198.18.0.2",
            // The capture checks checksums: complete them before they leave.
            "--checksum",
            "software",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_capture(&mut dump, std::time::Duration::from_secs(10));
    let frames = pcap_frames(&std::fs::read(&cap).unwrap());
    assert_eq!(frames.len(), 400);
    let mut seen = std::collections::HashMap::new();
    for f in &frames {
        let p = etherparse::SlicedPacket::from_ethernet(f).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
            panic!("not IPv4")
        };
        let h = ip.header();
        assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
        let Some(etherparse::TransportSlice::Udp(u)) = p.transport else {
            panic!("not UDP")
        };
        let sum = u
            .to_header()
            .calc_checksum_ipv4_raw(
                h.source_addr().octets(),
                h.destination_addr().octets(),
                u.payload(),
            )
            .unwrap();
        assert_eq!(sum, u.checksum());
        *seen
            .entry((u.source_port(), u.destination_port()))
            .or_insert(0) += 1;
    }
    // 4 source ports x 5 destination ports, 20 packets each.
    assert_eq!(seen.len(), 20, "{seen:?}");
    assert!(seen.values().all(|&n| n == 20), "{seen:?}");
}

#[test]
fn destination_mac_is_resolved_over_netlink_or_refused_clearly() {
    need_root!();
    let _wire = udp_lock();
    let lab = lab();
    // The lab installs permanent neighbour entries: remove them, so xsend has to make the
    // kernel resolve the peer (ARP for IPv4, neighbour discovery for IPv6) and then read the
    // entry over rtnetlink.
    for ip in [lab.ip4_b.to_string(), lab.ip6_b.unwrap().to_string()] {
        let st = lab
            .command(Side::A, "ip")
            .args(["neigh", "del", &ip, "dev", &lab.if_a])
            .status()
            .unwrap();
        assert!(st.success(), "ip neigh del {ip}");
    }
    for (i, dst) in [
        SocketAddr::from((lab.ip4_b, 10_400)),
        SocketAddr::from((lab.ip6_b.unwrap(), 10_401)),
    ]
    .into_iter()
    .enumerate()
    {
        let sink = udp_sink(&lab, dst);
        let conn = lab.run_in(Side::A, || xdp(dst).connect()).unwrap().unwrap();
        assert_eq!(conn.info().dst_mac.as_deref(), Some(lab.mac_b.as_str()));
        let el = [SendPacketsElement::buffer(vec![i as u8; 100]).end_of_packet(true)];
        let opts = SendPacketsOptions {
            flags: TransmitFlags::CALLER_THREAD,
            ..Default::default()
        };
        conn.send_packets(&el, opts).unwrap();
        assert_eq!(recv_datagrams(&sink, 1)[0], vec![i as u8; 100]);
    }
    // An on-link address nobody answers for: a clear error naming the address and the
    // way out, and nothing left attached.
    let nobody = SocketAddr::from(([198, 18, 0, 99], 10_402));
    let err = lab
        .run_in(Side::A, || xdp(nobody).connect())
        .unwrap()
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("198.18.0.99") && msg.contains("--dst-mac"),
        "{msg}"
    );
    assert!(!xdp_attached(&lab, Side::A));
}

/// `--vlan` frames are sized with their 4-byte tag: at MTU 1776 and 1778 (where the tag pushes a
/// full frame past a 2048-byte UMEM frame) every datagram goes out whole, tagged, and exactly
/// `14 + 4 + MTU` bytes long when full. (Before the one open path, the UDP sender sized frames
/// without the tag and failed with a false "file was truncated".)
#[test]
fn vlan_frames_at_mtu_1776_and_1778_are_sized_with_the_tag() {
    need_root!();
    let _wire = udp_lock();
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "f", 60_000, 11);
    for mtu in [1776u32, 1778] {
        let lab = lab_with(LabConfig {
            mtu,
            ..Default::default()
        });
        let cap = dir.path().join(format!("vlan{mtu}.pcap"));
        let mut dump = lab
            .command(Side::B, "tcpdump")
            .args(["-i", &lab.if_b, "-n", "-U", "-B", "16384", "-w"])
            .arg(&cap)
            .args(["vlan", "100", "and", "udp", "dst", "port", "10900"])
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump");
        let err = dump.stderr.take().unwrap();
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(err));
        assert!(lines.any(|l| l.map(|l| l.contains("listening on")).unwrap_or(false)));
        let to = format!("{}:10900", lab.ip4_b);
        let out = xsend_in_a(
            &lab,
            &[
                "send",
                path.to_str().unwrap(),
                "--to",
                &to,
                "--proto",
                "udp",
                "--backend",
                "xdp",
                "--vlan",
                "100",
                "--dst-mac",
                &lab.mac_b,
                "--checksum",
                "software",
                "--json",
            ],
        );
        assert!(
            out.status.success(),
            "MTU {mtu}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s = json(&out.stdout);
        assert_eq!(s["backend"], "xdp", "{s}");
        assert_eq!(s["bytes"], 60_000, "{s}");
        let per = (mtu - 28 - 32) as usize;
        let want = 60_000usize.div_ceil(per) + 3;
        // No one receives a tagged frame on the peer: the capture is the receiver.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let frames = loop {
            let f = pcap_frames(&std::fs::read(&cap).unwrap_or_default());
            if f.len() >= want || std::time::Instant::now() > until {
                break f;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(dump.id() as i32, libc::SIGINT) };
        let _ = dump.wait();
        assert_eq!(frames.len(), want, "MTU {mtu}: frames captured");
        let mut payload = Vec::new();
        let mut full = 0;
        for f in &frames {
            let p = SlicedPacket::from_ethernet(f).unwrap();
            match &p.vlan {
                Some(etherparse::VlanSlice::SingleVlan(v)) => {
                    assert_eq!(v.vlan_identifier().value(), 100)
                }
                v => panic!("MTU {mtu}: not a single VLAN tag: {v:?}"),
            }
            let Some(TransportSlice::Udp(u)) = &p.transport else {
                panic!("MTU {mtu}: not UDP")
            };
            let Some(NetSlice::Ipv4(ip)) = &p.net else {
                panic!("MTU {mtu}: not IPv4")
            };
            let h = ip.header();
            let sum = u
                .to_header()
                .calc_checksum_ipv4_raw(
                    h.source_addr().octets(),
                    h.destination_addr().octets(),
                    u.payload(),
                )
                .unwrap();
            assert_eq!(sum, u.checksum(), "MTU {mtu}: UDP checksum");
            assert_eq!(
                f.len(),
                14 + 4 + h.total_len() as usize,
                "MTU {mtu}: frame length"
            );
            assert!(f.len() <= 14 + 4 + mtu as usize, "MTU {mtu}: over the MTU");
            let x = xsend::wire::xsend::Packet::new_checked(u.payload()).unwrap();
            if x.flags() & xsend::wire::xsend::FLAG_END != 0 {
                continue;
            }
            if f.len() == 14 + 4 + mtu as usize {
                full += 1;
            }
            assert_eq!(x.offset(), payload.len() as u64);
            payload.extend_from_slice(x.payload());
        }
        assert_eq!(payload, data, "MTU {mtu}: bytes on the wire");
        assert_eq!(full, 60_000 / per, "MTU {mtu}: full-size frames");
    }
}
