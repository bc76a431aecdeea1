//! UDP over the kernel backend: datagram boundaries, MTU refusal with nothing on the wire,
//! chunked files verified by `xsend recv`.

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use common::*;
use xsend::lab::{Lab, LabConfig, Side};
use xsend::{
    BackendChoice, Connection, Error, SendPacketsElement, SendPacketsOptions, SendStatus,
    TransmitFlags, SEND_SIZE_PACKETS,
};

/// Every UDP test runs on both backends.
const BACKENDS: [BackendChoice; 2] = [BackendChoice::Kernel, BackendChoice::Xdp];

fn connect(lab: &Lab, addr: SocketAddr, backend: BackendChoice) -> Connection {
    let c = lab
        .run_in(Side::A, || Connection::udp(addr).backend(backend).connect())
        .unwrap()
        .unwrap_or_else(|e| panic!("connect {backend:?}: {e}"));
    let want = if backend == BackendChoice::Xdp {
        "xdp"
    } else {
        "kernel"
    };
    assert_eq!(c.info().backend, want, "{:?}", c.info());
    c
}

fn send(conn: &Connection, elements: &[SendPacketsElement], send_size: u32) -> xsend::Result<u64> {
    let opts = SendPacketsOptions {
        send_size,
        flags: TransmitFlags::CALLER_THREAD,
        ..Default::default()
    };
    match conn.send_packets(elements, opts)? {
        SendStatus::Completed(n) => Ok(n),
        SendStatus::Pending(_) => panic!("CALLER_THREAD completes on the caller"),
    }
}

#[test]
fn datagram_boundaries_follow_end_of_packet() {
    need_root!();
    let _wire = udp_lock();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "f", 5000, 4);
    for (i, (backend, v6)) in BACKENDS
        .iter()
        .flat_map(|b| [(*b, false), (*b, true)])
        .enumerate()
    {
        let port = 8000 + i as u16;
        let addr = if v6 {
            SocketAddr::from((lab.ip6_b.unwrap(), port))
        } else {
            SocketAddr::from((lab.ip4_b, port))
        };
        let sink = udp_sink(&lab, addr);
        let conn = connect(&lab, addr, backend);
        let max = conn.info().max_datagram.unwrap();
        assert_eq!(max, if v6 { 1500 - 48 } else { 1500 - 28 });
        // Eleven pieces (small buffers gathered into one datagram too).
        let mut elements = vec![
            SendPacketsElement::buffer(Bytes::from_static(b"A")),
            SendPacketsElement::file_range(&path, 0, 10).end_of_packet(true),
            SendPacketsElement::buffer(Bytes::new()).end_of_packet(true),
            SendPacketsElement::file_range(&path, 10, max).end_of_packet(true),
        ];
        for i in 0..11u8 {
            elements.push(SendPacketsElement::buffer(vec![i; 3]));
        }
        elements.push(SendPacketsElement::file_range(&path, 4990, 0));
        let n = send(&conn, &elements, SEND_SIZE_PACKETS).unwrap();
        assert_eq!(n, 1 + 10 + max + 33 + 10);
        let got = recv_datagrams(&sink, 4);
        assert_eq!(got[0], [b"A".as_slice(), &data[..10]].concat());
        assert!(got[1].is_empty());
        assert_eq!(got[2], &data[10..10 + max as usize]);
        let tail: Vec<u8> = (0..11u8)
            .flat_map(|i| [i; 3])
            .chain(data[4990..].iter().copied())
            .collect();
        assert_eq!(got[3], tail);

        // send_size N cuts datagrams of N bytes, and also at end_of_packet.
        let elements = [
            SendPacketsElement::file_range(&path, 0, 25).end_of_packet(true),
            SendPacketsElement::file_range(&path, 25, 10),
        ];
        send(&conn, &elements, 10).unwrap();
        let got = recv_datagrams(&sink, 4);
        let lens: Vec<usize> = got.iter().map(|d| d.len()).collect();
        assert_eq!(lens, [10, 10, 5, 10]);
        assert_eq!(got.concat(), &data[..35]);

        // send_file on UDP: the file (with pre/post) as one datagram.
        let small = dir.path().join("small");
        write(&small, b"payload");
        conn.send_file_with(Some(&small), Some(b"<"), Some(b">"), TransmitFlags::empty())
            .unwrap();
        assert_eq!(recv_datagrams(&sink, 1)[0], b"<payload>");
    }
}

#[test]
fn oversize_datagram_is_refused_with_nothing_on_the_wire() {
    need_root!();
    let _wire = udp_lock();
    // No IPv6: nothing but our own datagrams moves the peer's counters.
    let lab = lab_with(LabConfig {
        ipv6: false,
        mtu: 1400,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "f", 4000, 6);
    for (i, backend) in BACKENDS.into_iter().enumerate() {
        let addr = SocketAddr::from((lab.ip4_b, 8010 + i as u16));
        let sink = udp_sink(&lab, addr);
        let conn = connect(&lab, addr, backend);
        let max = conn.info().max_datagram.unwrap();
        assert_eq!(max, 1400 - 28);
        let before = lab.stats(Side::B).unwrap();

        // A fitting datagram first, then one byte too many: the whole operation is refused.
        let elements = [
            SendPacketsElement::file_range(&path, 0, 100).end_of_packet(true),
            SendPacketsElement::file_range(&path, 0, max + 1).end_of_packet(true),
        ];
        match send(&conn, &elements, SEND_SIZE_PACKETS) {
            Err(Error::MessageTooLarge { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
            r => panic!("{r:?}"),
        }
        // send_file of a file larger than a datagram, and a send size over the maximum.
        assert!(matches!(
            conn.send_file(&path),
            Err(Error::MessageTooLarge { len: 4000, .. })
        ));
        assert!(matches!(
            send(&conn, &[SendPacketsElement::file(&path)], max as u32 + 1),
            Err(Error::MessageTooLarge { .. })
        ));
        let after = lab.stats(Side::B).unwrap();
        assert_eq!(before, after, "refused sends must put nothing on the wire");

        // The counters do move for a send that fits (the check above is meaningful), and the
        // largest datagram arrives whole.
        send(
            &conn,
            &[SendPacketsElement::file_range(&path, 0, max)],
            SEND_SIZE_PACKETS,
        )
        .unwrap();
        assert_eq!(recv_datagrams(&sink, 1)[0], &data[..max as usize]);
        let moved = lab.stats(Side::B).unwrap();
        assert_eq!(moved.rx_packets, after.rx_packets + 1);
    }
}

#[test]
fn chunked_64_mib_file_verified_by_xsend_recv() {
    need_root!();
    let _wire = udp_lock();
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(dir.path(), "f", 64 << 20, 77);
    let want = sha256(&data);
    let runs = BACKENDS.into_iter().flat_map(|b| {
        [
            (b, SocketAddr::from((lab.ip4_b, 8020 + b as u16)), 3u16),
            (
                b,
                SocketAddr::from((lab.ip6_b.unwrap(), 8030 + b as u16)),
                4,
            ),
        ]
    });
    for (backend, addr, flow) in runs {
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
        let conn = connect(&lab, addr, backend);
        let opts = SendPacketsOptions {
            chunk_header: Some(flow),
            ..Default::default()
        };
        let n = match conn
            .send_packets(&[SendPacketsElement::file(&path)], opts)
            .unwrap()
        {
            SendStatus::Pending(op) => conn.end_send_packets(op).unwrap(),
            SendStatus::Completed(_) => panic!("expected a background operation"),
        };
        assert_eq!(n, 64 << 20);
        let stats = conn.last_stats();
        let out = recv.wait_output();
        let v = json(&out.stdout);
        assert!(out.status.success(), "{v}");
        assert_eq!(v["verified"], true);
        assert_eq!(v["chunked"], true);
        assert_eq!(v["lost"], 0);
        assert_eq!(v["duplicates"], 0);
        assert_eq!(v["end_marker"], true);
        assert_eq!(v["bytes"], 64u64 << 20);
        assert_eq!(v["datagrams"], stats.packets);
        assert_eq!(v["sha256"], want.as_str());
        // One-way latency from the send timestamps, one sample per datagram.
        assert_eq!(v["latency"]["count"], stats.packets);
    }
}
