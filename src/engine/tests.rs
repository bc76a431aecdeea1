//! The engine over a fake device (buffers in memory, every frame recorded): the UDP sender
//! and the generator are checked frame by frame with etherparse, with no kernel involved.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};

use super::gen::{generate, GenFramers, GenLoop};
use super::udp::UdpTransport;
use super::{Job, OpCtx, Totals, Transport};
use crate::device::fake::FakeQueue;
use crate::device::Port;
use crate::options::TransmitFlags;
use crate::payload::{Payload, SendPacketsElement};
use crate::report::BackendInfo;
use crate::sansio::flows::FlowRanges;
use crate::sansio::framer::{Flow, TcpFramer, UdpFramer};
use crate::sansio::pacing::Imix;
use crate::sansio::wire::xsend;

const MTU: u32 = 1500;

fn flow(v6: bool, vlan: Option<u16>, sport: u16) -> Flow {
    let (src, dst): (IpAddr, IpAddr) = if v6 {
        (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        )
    } else {
        ("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap())
    };
    Flow {
        src_mac: "02:58:53:00:00:0a".parse().unwrap(),
        dst_mac: "02:58:53:00:00:0b".parse().unwrap(),
        vlan,
        src: SocketAddr::new(src, sport),
        dst: SocketAddr::new(dst, 5201),
    }
}

fn fake(flow: &Flow, offload: bool, bufs: usize) -> FakeQueue {
    FakeQueue::new(bufs, 2048 - 256, MTU as usize + flow.l2_len(), offload)
}

fn port(queues: usize, v6: bool, vlan: Option<u16>, offload: bool) -> Port<FakeQueue> {
    let flows: Vec<Flow> = (0..queues)
        .map(|q| flow(v6, vlan, 40000 + q as u16))
        .collect();
    Port {
        queues: flows.iter().map(|f| fake(f, offload, 96)).collect(),
        flows,
        mtu: MTU,
        info: BackendInfo::default(),
        hold: Box::new(()),
    }
}

fn ctx() -> OpCtx {
    OpCtx {
        cancel: Arc::new(AtomicBool::new(false)),
        progress: None,
        total: 0,
    }
}

/// What a frame carries, checked with etherparse: valid IP and L4 checksums, the flow's
/// addresses, the frame's length against the IP length.
struct Seen {
    src: SocketAddr,
    vlan: Option<u16>,
    tcp_seq: Option<u32>,
    payload: Vec<u8>,
}

fn check(frame: &[u8]) -> Seen {
    let p = SlicedPacket::from_ethernet(frame).expect("etherparse");
    let vlan = match &p.vlan {
        Some(etherparse::VlanSlice::SingleVlan(v)) => Some(v.vlan_identifier().value()),
        _ => None,
    };
    let (src, dst) = match p.net.as_ref().expect("IP") {
        NetSlice::Ipv4(v4) => {
            let h = v4.header();
            assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
            assert_eq!(
                h.total_len() as usize + 14 + vlan.map_or(0, |_| 4),
                frame.len()
            );
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
            )
        }
        NetSlice::Ipv6(v6) => {
            let h = v6.header();
            assert_eq!(
                h.payload_length() as usize + 40 + 14 + vlan.map_or(0, |_| 4),
                frame.len()
            );
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
            )
        }
    };
    match p.transport.expect("L4") {
        TransportSlice::Udp(u) => {
            let want = match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => u
                    .to_header()
                    .calc_checksum_ipv4_raw(s.octets(), d.octets(), u.payload())
                    .unwrap(),
                (IpAddr::V6(s), IpAddr::V6(d)) => u
                    .to_header()
                    .calc_checksum_ipv6_raw(s.octets(), d.octets(), u.payload())
                    .unwrap(),
                _ => unreachable!(),
            };
            assert_eq!(u.checksum(), want, "UDP checksum");
            Seen {
                src: SocketAddr::new(src, u.source_port()),
                vlan,
                tcp_seq: None,
                payload: u.payload().to_vec(),
            }
        }
        TransportSlice::Tcp(t) => {
            let want = match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => t
                    .to_header()
                    .calc_checksum_ipv4_raw(s.octets(), d.octets(), t.payload())
                    .unwrap(),
                (IpAddr::V6(s), IpAddr::V6(d)) => t
                    .to_header()
                    .calc_checksum_ipv6_raw(s.octets(), d.octets(), t.payload())
                    .unwrap(),
                _ => unreachable!(),
            };
            assert_eq!(t.checksum(), want, "TCP checksum");
            Seen {
                src: SocketAddr::new(src, t.source_port()),
                vlan,
                tcp_seq: Some(t.sequence_number()),
                payload: t.payload().to_vec(),
            }
        }
        other => panic!("unexpected L4 {other:?}"),
    }
}

#[test]
fn udp_sender_frames_every_datagram_of_files_and_buffers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 31 + i / 7) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    for (v6, vlan, offload) in [
        (false, None, false),
        (false, Some(100), true),
        (true, None, true),
        (true, Some(7), false),
    ] {
        // Datagrams by end-of-packet flags: buffer + file range, whole file chunks.
        let mut t = UdpTransport::new(port(1, v6, vlan, offload));
        let elements = [
            SendPacketsElement::buffer(&b"head"[..]),
            SendPacketsElement::file_range(&path, 10, 1000).end_of_packet(true),
            SendPacketsElement::file_range(&path, 5000, 7).end_of_packet(true),
            SendPacketsElement::buffer(&b""[..]).end_of_packet(true),
        ];
        let job = Job {
            payload: Payload::from_elements(&elements).unwrap(),
            send_size: u32::MAX,
            flags: TransmitFlags::empty(),
            chunk_header: None,
        };
        t.validate(&job).unwrap();
        let s = t.send(&job, &ctx()).unwrap();
        assert_eq!((s.packets, s.bytes), (3, 1011));
        let sent = &t.port().queues[0].sent;
        let got: Vec<Vec<u8>> = sent.iter().map(|f| check(f).payload).collect();
        let first = [&b"head"[..], &data[10..1010]].concat();
        assert_eq!(got, vec![first, data[5000..5007].to_vec(), vec![]]);
        assert!(sent.iter().all(|f| check(f).vlan == vlan));

        // Chunked with the xsend header: every byte once, in order, then end markers.
        let mut t = UdpTransport::new(port(1, v6, vlan, offload));
        let job = Job {
            payload: Payload::from_elements(&[SendPacketsElement::file(&path)]).unwrap(),
            send_size: 0,
            flags: TransmitFlags::empty(),
            chunk_header: Some(9),
        };
        let s = t.send(&job, &ctx()).unwrap();
        let mut stream = Vec::new();
        let mut ends = 0;
        for (i, f) in t.port().queues[0].sent.iter().enumerate() {
            assert!(f.len() <= MTU as usize + 14 + vlan.map_or(0, |_| 4));
            let p = check(f).payload;
            let h = xsend::Packet::new_checked(&p[..]).unwrap();
            let r = xsend::Repr::parse(&h).unwrap();
            assert_eq!(r.flow, 9);
            if r.is_end() {
                ends += 1;
                assert_eq!((r.seq, r.offset), (s.packets, data.len() as u64));
                continue;
            }
            assert_eq!((r.seq, r.offset), (i as u64, stream.len() as u64));
            stream.extend_from_slice(h.payload());
        }
        assert_eq!(stream, data);
        assert_eq!(ends, 3);
    }
}

#[test]
fn udp_sender_splits_the_datagrams_over_queues_in_turn() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let data: Vec<u8> = (0..50_000u32).map(|i| (i ^ (i >> 8)) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let mut t = UdpTransport::new(port(3, false, None, true));
    let job = Job {
        payload: Payload::from_elements(&[SendPacketsElement::file(&path)]).unwrap(),
        send_size: 1000,
        flags: TransmitFlags::empty(),
        chunk_header: Some(1),
    };
    let s = t.send(&job, &ctx()).unwrap();
    assert_eq!(s.packets, 50);
    let mut by_seq = BTreeMap::new();
    for (q, dev) in t.port().queues.iter().enumerate() {
        for f in &dev.sent {
            let seen = check(f);
            let h = xsend::Packet::new_checked(&seen.payload[..]).unwrap();
            let r = xsend::Repr::parse(&h).unwrap();
            if r.is_end() {
                assert_eq!(q, 0, "end markers go out on the first queue");
                continue;
            }
            assert_eq!(r.seq % 3, q as u64, "datagram {} on queue {q}", r.seq);
            assert_eq!(seen.src.port(), 40000 + q as u16, "each queue its own port");
            by_seq.insert(r.seq, h.payload().to_vec());
        }
    }
    assert_eq!(by_seq.len(), 50);
    assert_eq!(by_seq.into_values().flatten().collect::<Vec<u8>>(), data);
}

#[test]
fn udp_sender_refuses_an_oversize_datagram_before_sending_anything() {
    let mut t = UdpTransport::new(port(1, false, Some(5), false));
    let job = Job {
        payload: Payload::from_elements(&[SendPacketsElement::buffer(vec![0u8; 1473])]).unwrap(),
        send_size: u32::MAX,
        flags: TransmitFlags::empty(),
        chunk_header: None,
    };
    match t.send(&job, &ctx()) {
        Err(crate::Error::MessageTooLarge { len, max }) => assert_eq!((len, max), (1473, 1472)),
        other => panic!("{other:?}"),
    }
    assert!(t.port().queues[0].sent.is_empty());
}

fn gen_run(dev: &mut FakeQueue, framers: GenFramers, sizes: &str, count: u64) -> (u64, u64) {
    let run = GenLoop {
        sizes: Imix::parse(sizes).unwrap(),
        pacer: None,
        limit: Some(count),
        deadline: None,
        stream_base: 0,
    };
    let (s, h) = generate(dev, framers, run, &ctx(), &Totals::default()).unwrap();
    assert_eq!(h[0].len(), count, "every frame's completion was timed");
    (s.packets, s.bytes)
}

#[test]
fn generator_sends_exact_counts_sizes_and_sequence_numbers() {
    for (offload, vlan) in [(false, None), (true, Some(3))] {
        let f = flow(false, vlan, 40000);
        // One size: buffers written once, then re-stamped; checksums stay valid.
        let mut dev = fake(&f, offload, 64);
        let (n, bytes) = gen_run(
            &mut dev,
            GenFramers::Udp(vec![UdpFramer::new(&f, MTU)]),
            "64",
            1000,
        );
        assert_eq!((n, bytes), (1000, 64_000));
        for (i, fr) in dev.sent.iter().enumerate() {
            assert_eq!(fr.len(), 64);
            let p = check(fr).payload;
            // The probe header: stream 0, sequence i, the magic; zeros after it.
            let h = crate::sansio::wire::probe::Repr::parse(&p).unwrap();
            assert_eq!((h.stream, h.seq), (0, i as u64));
            assert!(p[16..].iter().all(|&b| b == 0));
        }
        // IMIX: exact proportions per cycle of 12.
        let mut dev = fake(&f, offload, 64);
        let (n, bytes) = gen_run(
            &mut dev,
            GenFramers::Udp(vec![UdpFramer::new(&f, MTU)]),
            "imix",
            1200,
        );
        assert_eq!(n, 1200);
        let mut counts = BTreeMap::new();
        for fr in &dev.sent {
            check(fr);
            *counts.entry(fr.len()).or_insert(0) += 1;
        }
        assert_eq!(counts, BTreeMap::from([(64, 700), (576, 400), (1500, 100)]));
        assert_eq!(bytes, 700 * 64 + 400 * 576 + 100 * 1500);
    }
}

#[test]
fn generator_cycles_flows_and_frames_stateless_tcp() {
    let f = flow(true, None, 1000);
    let ranges = FlowRanges {
        src_ports: Some((1000, 1003)),
        ..Default::default()
    };
    let flows = ranges.expand(&f).unwrap();
    let mut dev = fake(&f, true, 64);
    let framers = GenFramers::Tcp(flows.iter().map(|f| TcpFramer::new(f, MTU)).collect());
    gen_run(&mut dev, framers, "200", 400);
    let mut next_seq = BTreeMap::new();
    for (i, fr) in dev.sent.iter().enumerate() {
        let s = check(fr);
        assert_eq!(s.src.port(), 1000 + (i % 4) as u16, "round robin");
        let seq = s.tcp_seq.unwrap();
        let want = next_seq.entry(s.src.port()).or_insert(1u32);
        assert_eq!(
            seq, *want,
            "sequence numbers advance by the payload per flow"
        );
        *want = want.wrapping_add(s.payload.len() as u32);
    }
    // One TCP flow, one size: re-stamped segments keep valid checksums and sequence numbers.
    let mut dev = fake(&f, false, 8);
    gen_run(
        &mut dev,
        GenFramers::Tcp(vec![TcpFramer::new(&f, MTU)]),
        "100",
        50,
    );
    let seqs: Vec<u32> = dev
        .sent
        .iter()
        .map(|fr| check(fr).tcp_seq.unwrap())
        .collect();
    let step = (100 - 14 - 40 - 20) as u32;
    assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(step)));
}
