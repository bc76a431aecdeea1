//! Multi-buffer AF_XDP at MTU 9000: frames over one UMEM chunk leave as several descriptors
//! (`XDP_USE_SG`). Chunked UDP verified by `xsend recv`, datagram boundaries and the exact
//! MTU refusal on a plain kernel socket, TCP byte-exact (also with loss injected), frames
//! checked on the wire, the generator counted by the receiving port, and the kernel's own
//! jumbo traffic passing our (frags-aware) XDP program.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::*;
use xsend::lab::{Lab, LabConfig, Side};
use xsend::{
    BackendChoice, ChecksumChoice, Connection, ConnectionBuilder, Error, SendPacketsElement,
    SendPacketsOptions, SendStatus, TransmitFlags,
};

const MTU: u32 = 9000;

fn lab9() -> Lab {
    lab_with(LabConfig {
        mtu: MTU,
        ..Default::default()
    })
}

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

/// One datagram per call, its payload exactly `b`.
fn datagram(conn: &Connection, b: Vec<u8>) -> xsend::Result<u64> {
    let opts = SendPacketsOptions {
        send_size: xsend::SEND_SIZE_PACKETS,
        flags: TransmitFlags::CALLER_THREAD,
        ..Default::default()
    };
    match conn.send_packets(&[SendPacketsElement::buffer(b)], opts)? {
        SendStatus::Completed(n) => Ok(n),
        SendStatus::Pending(op) => conn.end_send_packets(op),
    }
}

/// UDP checksum errors the peer's stack counted.
fn csum_errors(lab: &Lab) -> u64 {
    let out = lab
        .command(Side::B, "nstat")
        .args(["-az", "-j"])
        .output()
        .expect("nstat (iproute2)");
    let v = json(&out.stdout);
    ["UdpInCsumErrors", "Udp6InCsumErrors", "IpInHdrErrors"]
        .iter()
        .map(|n| v["kernel"][*n].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn chunked_udp_256_mib_verified_by_recv() {
    need_root!();
    let _wire = udp_lock();
    let lab = lab9();
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "big", 256 << 20, 91);
    let want = sha256(&data);
    drop(data);
    for (port, v6, checksum) in [
        (11_001u16, false, ChecksumChoice::Auto),
        (11_002, true, ChecksumChoice::Software),
    ] {
        let addr = if v6 {
            SocketAddr::from((lab.ip6_b.unwrap(), port))
        } else {
            SocketAddr::from((lab.ip4_b, port))
        };
        let a = addr.to_string();
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
            ],
        );
        let conn = lab
            .run_in(Side::A, || xdp(addr).checksum(checksum).connect())
            .unwrap()
            .unwrap();
        let info = conn.info();
        assert_eq!(info.backend, "xdp");
        // 9014-byte frames: three 4096-byte UMEM frames, three descriptors.
        assert_eq!((info.frame_size, info.segments), (Some(4096), Some(3)));
        assert_eq!(
            info.max_datagram,
            Some(if v6 { 9000 - 48 } else { 9000 - 28 })
        );
        assert_eq!(chunked(&conn, &path, port).unwrap(), 256 << 20);
        let r = recv.wait_output();
        let v = json(&r.stdout);
        assert!(r.status.success(), "v6 {v6}: {v}");
        assert_eq!(
            (v["lost"].as_u64(), v["duplicates"].as_u64()),
            (Some(0), Some(0)),
            "{v}"
        );
        assert_eq!(v["bytes"], 256u64 << 20);
    }
    assert_eq!(csum_errors(&lab), 0, "the peer saw checksum errors");
}

#[test]
fn datagrams_of_8972_arrive_whole_and_8973_is_refused_before_sending() {
    need_root!();
    let _wire = udp_lock();
    let lab = lab9();
    let dst = SocketAddr::from((lab.ip4_b, 11_010));
    let sink = udp_sink(&lab, dst);
    let conn = lab.run_in(Side::A, || xdp(dst).connect()).unwrap().unwrap();
    let sent: Vec<Vec<u8>> = [8972usize, 1, 4000, 8972, 3841]
        .iter()
        .enumerate()
        .map(|(i, n)| pattern(*n, 40 + i as u64))
        .collect();
    for d in &sent {
        assert_eq!(datagram(&conn, d.clone()).unwrap(), d.len() as u64);
    }
    assert_eq!(recv_datagrams(&sink, sent.len()), sent);
    let (a0, b0) = (lab.stats(Side::A).unwrap(), lab.stats(Side::B).unwrap());
    match datagram(&conn, pattern(8973, 9)) {
        Err(Error::MessageTooLarge { len, max }) => assert_eq!((len, max), (8973, 8972)),
        r => panic!("8973 bytes at MTU 9000: {r:?}"),
    }
    let (a1, b1) = (lab.stats(Side::A).unwrap(), lab.stats(Side::B).unwrap());
    // (The kernel's own chatter of a fresh lab — IPv6 router solicitations, MLD reports —
    // may leave meanwhile: nothing near the datagram's size may.)
    let rx = b1.rx_bytes - b0.rx_bytes;
    assert!(
        rx < 1000 && a1.tx_packets - a0.tx_packets < 3,
        "nothing may reach the wire: {rx} bytes at the peer, {} frames sent",
        a1.tx_packets - a0.tx_packets
    );
    sink.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut b = [0u8; 16];
    assert!(sink.recv(&mut b).is_err(), "no datagram may arrive");
}

fn tcp_transfer(lab: &Lab, port: u16, len: u64) -> xsend::SendStats {
    let dir = tempfile::tempdir().unwrap();
    let path = big_file(dir.path(), len);
    let want = sha256_file(&path);
    let addr = SocketAddr::from((lab.ip4_b, port));
    let sink = tcp_sink(lab, addr, 1);
    let conn = lab
        .run_in(Side::A, || {
            Connection::tcp(addr)
                .backend(BackendChoice::Xdp)
                .connect_timeout(Duration::from_secs(5))
                .user_timeout(Duration::from_secs(10))
                .connect()
        })
        .unwrap()
        .expect("connect");
    assert_eq!(conn.info().segments, Some(3));
    conn.send_file_with(Some(&path), None, None, TransmitFlags::DISCONNECT)
        .expect("send");
    let got = sink.join().unwrap().remove(0);
    assert_eq!(got.len, len);
    assert_eq!(got.sha256, want);
    conn.last_stats()
}

#[test]
fn tcp_1_gib_byte_exact_and_with_loss() {
    need_root!();
    let lab = lab9();
    let st = tcp_transfer(&lab, 11_020, 1 << 30);
    // MSS 8960 (9000 - 40): about 120k segments, not 730k of a 1500 MTU.
    assert!(st.packets < 125_000, "{st:?}");
    for (what, port) in [("1pct", 11_021u16), ("acks", 11_022)] {
        let lab = lab9();
        match what {
            "acks" => drop_acks(&lab),
            p => drop_data(&lab, &format!("lossy_data_{p}.bpf.o")),
        }
        let st = tcp_transfer(&lab, port, 64 << 20);
        let t = st.tcp.expect("tcp stats");
        if what != "acks" {
            assert!(t.retransmits > 0, "{what}: drops must be retransmitted");
        }
    }
}

#[test]
fn frames_on_the_wire_are_valid() {
    need_root!();
    let _wire = udp_lock();
    let lab = lab9();
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "f", 1_000_000, 6);
    for (i, (mode, v6)) in [
        (ChecksumChoice::Software, false),
        (ChecksumChoice::Software, true),
        (ChecksumChoice::Offload, false),
        (ChecksumChoice::Offload, true),
    ]
    .into_iter()
    .enumerate()
    {
        if mode == ChecksumChoice::Offload {
            // The kernel completes each checksum from our TX metadata before the frame
            // leaves (see tests/xdp.rs): the capture shows whether the requests were right.
            ip_ok(&lab, Side::A, "ethtool", &["-K", &lab.if_a, "tx", "off"]);
        }
        let port = 11_030 + i as u16;
        let dst = if v6 {
            SocketAddr::from((lab.ip6_b.unwrap(), port))
        } else {
            SocketAddr::from((lab.ip4_b, port))
        };
        let (frames, payload) = chunked_frames_on_the_wire(&lab, dst, MTU as usize, || {
            let _sink = udp_sink(&lab, dst);
            let conn = lab
                .run_in(Side::A, || xdp(dst).checksum(mode).connect())
                .unwrap()
                .unwrap();
            assert_eq!(chunked(&conn, &path, 3).unwrap(), 1_000_000);
        });
        assert!(payload == data, "{mode:?} v6 {v6}: payload differs");
        // Payload per datagram: the MTU less IP, UDP and the 32-byte xsend header.
        let per = if v6 { 9000 - 48 - 32 } else { 9000 - 28 - 32 };
        assert_eq!(frames, 1_000_000usize.div_ceil(per) + 3);
    }
}

#[test]
fn generator_frames_are_counted_and_kernel_jumbo_traffic_passes() {
    need_root!();
    let _wire = udp_lock();
    let lab = lab9();
    let dst = format!("{}:9", lab.ip4_b);
    for size in ["9014", "imix"] {
        let out = xsend_in_a(
            &lab,
            &[
                "bench",
                "--to",
                &dst,
                "--iface",
                &lab.if_a,
                "--backend",
                "xdp",
                "--size",
                size,
                "--count",
                "20000",
                "--rx-iface",
                &lab.if_b,
                "--rx-netns",
                lab.ns(Side::B),
                "--json",
            ],
        );
        let v = json(&out.stdout);
        assert!(out.status.success(), "{size}: {v}");
        assert_eq!(v["segments"], 3, "{v}");
        let rx = &v["rx"];
        assert_eq!(
            (rx["received"].as_u64(), rx["lost"].as_u64()),
            (Some(20_000), Some(0)),
            "{size}: {rx}"
        );
    }
    // With our XDP program on A (an open AF_XDP connection), the kernel's own 8972-byte
    // datagrams still arrive both ways, whole.
    let conn_dst = SocketAddr::from((lab.ip4_b, 11_040));
    let _conn = lab
        .run_in(Side::A, || xdp(conn_dst).connect())
        .unwrap()
        .unwrap();
    let a = lab
        .run_in(Side::A, || UdpSocket::bind((lab.ip4_a, 11_041)))
        .unwrap()
        .unwrap();
    let b = udp_sink(&lab, SocketAddr::from((lab.ip4_b, 11_042)));
    a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let msg = pattern(8972, 77);
    a.send_to(&msg, (lab.ip4_b, 11_042)).unwrap();
    assert_eq!(recv_datagrams(&b, 1)[0], msg);
    b.send_to(&msg, (lab.ip4_a, 11_041)).unwrap();
    assert_eq!(recv_datagrams(&a, 1)[0], msg);
}

/// Above MTU 9000 (here 16000, four descriptors a frame) the generator's frames are whole
/// and counted: no fixed-size filler caps the payload.
#[test]
fn generator_frames_above_mtu_9000() {
    need_root!();
    let _wire = udp_lock();
    let lab = lab_with(LabConfig {
        mtu: 16_000,
        ..Default::default()
    });
    let dst = format!("{}:9", lab.ip4_b);
    let out = xsend_in_a(
        &lab,
        &[
            "bench",
            "--to",
            &dst,
            "--iface",
            &lab.if_a,
            "--backend",
            "xdp",
            "--size",
            "16014",
            "--count",
            "5000",
            "--rx-iface",
            &lab.if_b,
            "--rx-netns",
            lab.ns(Side::B),
            "--json",
        ],
    );
    let v = json(&out.stdout);
    assert!(
        out.status.success(),
        "{v} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(v["segments"], 4, "{v}");
    let rx = &v["rx"];
    assert_eq!(
        (rx["received"].as_u64(), rx["lost"].as_u64()),
        (Some(5_000), Some(0)),
        "{rx}"
    );
}
