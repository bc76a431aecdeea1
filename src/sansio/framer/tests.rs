//! Framer tests: frames checked with etherparse and with our own wire views.

use super::*;
use crate::sansio::wire::{tcp, udp};
use etherparse::{NetSlice, SlicedPacket, TransportSlice};

fn flow(v6: bool, vlan: Option<u16>) -> Flow {
    let (src, dst): (SocketAddr, SocketAddr) = if v6 {
        (
            "[2001:db8::1]:40000".parse().unwrap(),
            "[2001:db8::2]:5201".parse().unwrap(),
        )
    } else {
        (
            "198.18.0.1:40000".parse().unwrap(),
            "198.18.0.2:5201".parse().unwrap(),
        )
    };
    Flow {
        src_mac: "02:58:53:00:00:0a".parse().unwrap(),
        dst_mac: "02:58:53:00:00:0b".parse().unwrap(),
        vlan,
        src,
        dst,
    }
}

/// Check a frame with etherparse and our own views; return the UDP payload.
fn check(frame: &[u8], f: &Flow) -> Vec<u8> {
    let p = SlicedPacket::from_ethernet(frame).expect("etherparse");
    let (src, dst) = match p.net.as_ref().unwrap() {
        NetSlice::Ipv4(v4) => {
            let h = v4.header();
            assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
            assert!(h.dont_fragment());
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
            )
        }
        NetSlice::Ipv6(v6) => (
            IpAddr::V6(v6.header().source_addr()),
            IpAddr::V6(v6.header().destination_addr()),
        ),
    };
    assert_eq!((src, dst), (f.src.ip(), f.dst.ip()));
    let TransportSlice::Udp(u) = p.transport.unwrap() else {
        panic!("not UDP")
    };
    assert_eq!(
        (u.source_port(), u.destination_port()),
        (f.src.port(), f.dst.port())
    );
    let payload = u.payload().to_vec();
    let want = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => u
            .to_header()
            .calc_checksum_ipv4_raw(s.octets(), d.octets(), &payload)
            .unwrap(),
        (IpAddr::V6(s), IpAddr::V6(d)) => u
            .to_header()
            .calc_checksum_ipv6_raw(s.octets(), d.octets(), &payload)
            .unwrap(),
        _ => unreachable!(),
    };
    assert_eq!(u.checksum(), want, "UDP checksum");
    // Our own views agree.
    let eth = ethernet::Frame::new_checked(frame).unwrap();
    assert_eq!(eth.vlan(), f.vlan);
    let l4 = if f.dst.is_ipv6() {
        ipv6::Packet::new_checked(eth.payload())
            .unwrap()
            .payload()
            .to_vec()
    } else {
        let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
        ipv4::Repr::parse(&ip).unwrap();
        ip.payload().to_vec()
    };
    let up = udp::Packet::new_checked(&l4[..]).unwrap();
    assert!(up.verify_checksum(src, dst));
    assert_eq!(up.payload(), &payload[..]);
    payload
}

#[test]
fn frames_check_out_with_etherparse() {
    for (v6, vlan) in [
        (false, None),
        (true, None),
        (false, Some(42)),
        (true, Some(7)),
    ] {
        let f = flow(v6, vlan);
        let mut fr = UdpFramer::new(&f, 1500);
        assert_eq!(fr.max_payload(), if v6 { 1452 } else { 1472 });
        let mut buf = vec![0u8; 2048];
        for len in [0usize, 1, 2, 3, 17, 1000, fr.max_payload()] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            // Odd-sized pieces exercise the checksum's byte parity.
            let n = fr
                .emit(&mut buf, len, |w| {
                    let cut = len.min(3);
                    w.put(&data[..cut]);
                    w.put(&data[cut..]);
                })
                .unwrap();
            assert_eq!(n, fr.frame_len(len));
            assert!(n <= 1500 + 14 + if vlan.is_some() { 4 } else { 0 });
            assert_eq!(check(&buf[..n], &f), data);
        }
    }
}

/// What a device (or the kernel's `skb_checksum_help`) does with a `CHECKSUM_PARTIAL`
/// frame: sum from `start` to the end, over the pseudo-header sum left in the field, and
/// store the complement.
fn complete(frame: &mut [u8], (start, offset): (u16, u16)) {
    let (start, field) = (start as usize, start as usize + offset as usize);
    let c = checksum::finish(checksum::sum(&frame[start..]));
    frame[field..field + 2].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn offloaded_checksums_complete_like_a_device() {
    for (v6, vlan) in [
        (false, None),
        (true, None),
        (false, Some(42)),
        (true, Some(7)),
    ] {
        let f = flow(v6, vlan);
        let mut fr = UdpFramer::new(&f, 1500);
        fr.set_checksum_offload(true);
        let req = fr.checksum_request().unwrap();
        let mut buf = vec![0u8; 2048];
        for len in [0usize, 1, 3, 17, 1000, fr.max_payload()] {
            let data: Vec<u8> = (0..len).map(|i| (i * 13 + len) as u8).collect();
            let n = fr
                .emit(&mut buf, len, |w| {
                    let cut = len.min(5);
                    w.put(&data[..cut]);
                    w.put(&data[cut..]);
                })
                .unwrap();
            complete(&mut buf[..n], req);
            assert_eq!(check(&buf[..n], &f), data);
        }
        // Re-stamped frames keep a valid pseudo-header sum.
        let n = fr.emit(&mut buf, 100, |w| w.put(&[0u8; 100])).unwrap();
        for k in 0u64..3 {
            let mut frame = buf[..n].to_vec();
            fr.restamp(&mut frame, 100, &k.to_be_bytes());
            complete(&mut frame, req);
            assert_eq!(check(&frame, &f)[..8], k.to_be_bytes());
        }

        let mut t = TcpFramer::new(&f, 1500);
        t.set_checksum_offload(true);
        let req = t.checksum_request().unwrap();
        let seg = tcp::Repr {
            seq: 0xfffffff0,
            ack: 77,
            flags: tcp::Flags::ACK | tcp::Flags::PSH,
            window: 1000,
            payload_len: 999,
            ..Default::default()
        };
        let data: Vec<u8> = (0..999).map(|i| (i * 3) as u8).collect();
        let n = t.emit(&mut buf, &seg, |w| w.put(&data)).unwrap();
        complete(&mut buf[..n], req);
        let p = etherparse::SlicedPacket::from_ethernet(&buf[..n]).unwrap();
        let Some(etherparse::TransportSlice::Tcp(th)) = p.transport else {
            panic!("not TCP")
        };
        let want = match (f.src.ip(), f.dst.ip()) {
            (IpAddr::V4(a), IpAddr::V4(b)) => th
                .to_header()
                .calc_checksum_ipv4_raw(a.octets(), b.octets(), th.payload())
                .unwrap(),
            (IpAddr::V6(a), IpAddr::V6(b)) => th
                .to_header()
                .calc_checksum_ipv6_raw(a.octets(), b.octets(), th.payload())
                .unwrap(),
            _ => unreachable!(),
        };
        assert_eq!(th.checksum(), want, "v6 {v6} vlan {vlan:?}");
        assert_eq!(th.payload(), &data[..]);
    }
}

#[test]
fn refuses_oversize_and_small_buffers() {
    let f = flow(false, None);
    let mut fr = UdpFramer::new(&f, 1500);
    let mut buf = vec![0u8; 2048];
    assert_eq!(
        fr.emit(&mut buf, 1473, |_| {}),
        Err(FrameError::TooLarge {
            len: 1473,
            max: 1472
        })
    );
    let mut small = vec![0u8; 100];
    assert!(matches!(
        fr.emit(&mut small, 200, |_| {}),
        Err(FrameError::BufferTooSmall { .. })
    ));
}

#[test]
fn ipv4_ident_advances_and_checksum_stays_valid() {
    let f = flow(false, None);
    let mut fr = UdpFramer::new(&f, 1500);
    let mut buf = vec![0u8; 2048];
    let mut ids = Vec::new();
    for _ in 0..3 {
        let n = fr.emit(&mut buf, 5, |w| w.put(b"hello")).unwrap();
        check(&buf[..n], &f);
        ids.push(ipv4::Packet::new_checked(&buf[14..n]).unwrap().ident());
    }
    assert_eq!(ids, [1, 2, 3]);
}

#[test]
fn restamped_frames_stay_valid() {
    for v6 in [false, true] {
        let f = flow(v6, None);
        let mut fr = UdpFramer::new(&f, 1500);
        let mut buf = vec![0u8; 2048];
        let n = fr.emit(&mut buf, 1000, |w| w.put(&[0u8; 1000])).unwrap();
        for seq in [1u64, 0xdead_beef, u64::MAX] {
            fr.restamp(&mut buf[..n], 1000, &seq.to_be_bytes());
            let p = check(&buf[..n], &f);
            assert_eq!(&p[..8], &seq.to_be_bytes());
            assert!(p[8..].iter().all(|&b| b == 0));
        }
    }
}

proptest::proptest! {
    #[test]
    fn any_payload_any_split_is_valid(data in proptest::collection::vec(proptest::num::u8::ANY, 0..1452), cut in 0usize..1452, v6: bool) {
        let f = flow(v6, None);
        let mut fr = UdpFramer::new(&f, 1500);
        let mut buf = vec![0u8; 2048];
        let cut = cut.min(data.len());
        let n = fr.emit(&mut buf, data.len(), |w| { w.put(&data[..cut]); w.put(&data[cut..]); }).unwrap();
        proptest::prop_assert_eq!(check(&buf[..n], &f), data);
    }
}

proptest::proptest! {
    #[test]
    fn tcp_segments_check_out_with_etherparse(
        data in proptest::collection::vec(proptest::num::u8::ANY, 0..1448),
        cut in 0usize..1448,
        v6: bool,
        vlan: bool,
        seq: u32,
        ts: Option<(u32, u32)>,
    ) {
        use crate::wire::tcp::{Flags, Options, Repr};
        let f = flow(v6, vlan.then_some(7));
        let mut fr = TcpFramer::new(&f, 1500);
        let opts = Options { timestamps: ts, ..Default::default() };
        let data = &data[..data.len().min(fr.max_payload(opts.buffer_len()))];
        let seg = Repr {
            seq,
            ack: 99,
            flags: Flags::ACK | Flags::PSH,
            window: 512,
            options: Options { timestamps: ts, ..Default::default() },
            payload_len: data.len(),
            ..Default::default()
        };
        let mut buf = vec![0u8; 2048];
        let cut = cut.min(data.len());
        let n = fr.emit(&mut buf, &seg, |w| { w.put(&data[..cut]); w.put(&data[cut..]); }).unwrap();
        proptest::prop_assert_eq!(n, fr.frame_len(&seg));
        let p = SlicedPacket::from_ethernet(&buf[..n]).expect("etherparse");
        let (src, dst) = match p.net.as_ref().unwrap() {
            NetSlice::Ipv4(v4) => {
                let h = v4.header();
                proptest::prop_assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
                (IpAddr::V4(h.source_addr()), IpAddr::V4(h.destination_addr()))
            }
            NetSlice::Ipv6(v6) => (
                IpAddr::V6(v6.header().source_addr()),
                IpAddr::V6(v6.header().destination_addr()),
            ),
        };
        let Some(TransportSlice::Tcp(t)) = p.transport else { panic!("not TCP") };
        proptest::prop_assert_eq!(t.sequence_number(), seq);
        proptest::prop_assert_eq!(t.payload(), data);
        let sum = match (src, dst) {
            (IpAddr::V4(a), IpAddr::V4(b)) => t.to_header().calc_checksum_ipv4_raw(a.octets(), b.octets(), t.payload()).unwrap(),
            (IpAddr::V6(a), IpAddr::V6(b)) => t.to_header().calc_checksum_ipv6_raw(a.octets(), b.octets(), t.payload()).unwrap(),
            _ => unreachable!(),
        };
        proptest::prop_assert_eq!(sum, t.checksum());
        // Too much data for the MTU is refused.
        let big = Repr { payload_len: fr.max_payload(seg.options.buffer_len()) + 1, ..seg };
        let refused = fr.emit(&mut buf, &big, |_| ()).is_err();
        proptest::prop_assert!(refused);
        // Re-stamping a zero-payload frame keeps it valid.
        if !data.is_empty() && ts.is_none() {
            let z = vec![0u8; data.len()];
            let n = fr.emit(&mut buf, &seg, |w| w.put(&z)).unwrap();
            let prefix = &data[..data.len().min(8)];
            let seg2 = Repr { seq: seq.wrapping_add(77), ..seg };
            fr.restamp(&mut buf[..n], &seg2, prefix);
            let p = SlicedPacket::from_ethernet(&buf[..n]).expect("etherparse");
            let Some(TransportSlice::Tcp(t)) = p.transport else { panic!("not TCP") };
            proptest::prop_assert_eq!(t.sequence_number(), seq.wrapping_add(77));
            let sum = match (src, dst) {
                (IpAddr::V4(a), IpAddr::V4(b)) => t.to_header().calc_checksum_ipv4_raw(a.octets(), b.octets(), t.payload()).unwrap(),
                (IpAddr::V6(a), IpAddr::V6(b)) => t.to_header().calc_checksum_ipv6_raw(a.octets(), b.octets(), t.payload()).unwrap(),
                _ => unreachable!(),
            };
            proptest::prop_assert_eq!(sum, t.checksum());
            if let Some(etherparse::NetSlice::Ipv4(v4)) = p.net.as_ref() {
                let h = v4.header();
                proptest::prop_assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
            }
        }
    }
}

proptest::proptest! {
    /// A probe header written from its words (`restamp_probe`) gives the same frame, checksums
    /// included, as one copied from its bytes (`restamp`), valid for etherparse.
    #[test]
    fn probe_restamp_matches_byte_restamp(
        stream in 0u32..1024,
        seq: u64,
        time: u32,
        tseq: u32,
        v6: bool,
        vlan: bool,
        payload in 16usize..1400,
    ) {
        use crate::sansio::wire::probe;
        use crate::wire::tcp::{Flags, Repr};
        let f = flow(v6, vlan.then_some(9));
        let p = probe::Repr { stream, seq, time };
        // UDP
        let mut fr = UdpFramer::new(&f, 1500);
        let mut a = vec![0u8; 2048];
        let n = fr.emit(&mut a, payload, |w| w.put_zeros(payload)).unwrap();
        let mut b = a.clone();
        let mut fr2 = fr.clone();
        fr.restamp(&mut a[..n], payload, &p.to_bytes());
        fr2.restamp_probe(&mut b[..n], payload, &p);
        proptest::prop_assert_eq!(&a[..n], &b[..n]);
        let got = check(&b[..n], &f);
        proptest::prop_assert_eq!(probe::Repr::parse(&got).unwrap().seq, seq & ((1 << 40) - 1));
        // TCP
        let seg = Repr { seq: tseq, ack: 1, flags: Flags::ACK | Flags::PSH, window: 100, payload_len: payload, ..Default::default() };
        let mut fr = TcpFramer::new(&f, 1500);
        let n = fr.emit(&mut a, &seg, |w| w.put_zeros(payload)).unwrap();
        b.copy_from_slice(&a);
        let mut fr2 = fr.clone();
        fr.restamp(&mut a[..n], &seg, &p.to_bytes());
        fr2.restamp_probe(&mut b[..n], &seg, &p);
        proptest::prop_assert_eq!(&a[..n], &b[..n]);
    }
}
