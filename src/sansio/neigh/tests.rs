//! ARP and ND frames checked with etherparse and against each other.

use super::*;

const A: MacAddr = MacAddr([2, 0x58, 0x53, 0, 0, 0x0a]);
const B: MacAddr = MacAddr([2, 0x58, 0x53, 0, 0, 0x0b]);

fn us4() -> Us {
    Us {
        mac: A,
        ip: "198.18.0.1".parse().unwrap(),
        vlan: None,
    }
}

fn us6(mac: MacAddr, ip: &str) -> Us {
    Us {
        mac,
        ip: ip.parse().unwrap(),
        vlan: None,
    }
}

#[test]
fn arp_request_and_answer() {
    let mut q = [0u8; MAX_FRAME];
    let n = request(&mut q, &us4(), "198.18.0.2".parse().unwrap()).unwrap();
    assert_eq!(n, 60);
    let e = etherparse::Ethernet2Header::from_slice(&q[..n]).unwrap().0;
    assert_eq!((e.destination, e.source), ([0xff; 6], A.0));
    // The peer (B, 198.18.0.2) answers it.
    let peer = Us {
        mac: B,
        ip: "198.18.0.2".parse().unwrap(),
        vlan: None,
    };
    let mut out = [0u8; MAX_FRAME];
    let seen = handle(&q[..n], &peer, &mut out);
    assert_eq!(
        seen[0],
        Some(Seen::Neighbour {
            ip: "198.18.0.1".parse().unwrap(),
            mac: A
        })
    );
    let Some(Seen::Answer(m)) = seen[1] else {
        panic!("{seen:?}")
    };
    // We learn the peer from its reply, and do not answer a reply.
    let mut none = [0u8; MAX_FRAME];
    let back = handle(&out[..m], &us4(), &mut none);
    assert_eq!(
        back,
        [
            Some(Seen::Neighbour {
                ip: "198.18.0.2".parse().unwrap(),
                mac: B
            }),
            None
        ]
    );
    // A request for someone else teaches the sender but gets no answer.
    let n = request(&mut q, &us4(), "198.18.0.9".parse().unwrap()).unwrap();
    assert_eq!(handle(&q[..n], &peer, &mut out)[1], None);
}

#[test]
fn nd_solicitation_and_advertisement_with_valid_checksums() {
    let a = us6(A, "2001:db8::1");
    let b = us6(B, "2001:db8::2");
    let mut q = [0u8; MAX_FRAME];
    let n = request(&mut q, &a, b.ip).unwrap();
    let (eth, rest) = etherparse::Ethernet2Header::from_slice(&q[..n]).unwrap();
    assert_eq!(eth.destination, [0x33, 0x33, 0xff, 0, 0, 2]);
    let (ip, icmp) = etherparse::Ipv6Header::from_slice(rest).unwrap();
    assert_eq!(
        ip.destination,
        "ff02::1:ff00:2".parse::<Ipv6Addr>().unwrap().octets()
    );
    let icmp = etherparse::Icmpv6Slice::from_slice(icmp).unwrap();
    assert_eq!(icmp.type_u8(), 135);
    assert_eq!(
        icmp.header()
            .icmp_type
            .calc_checksum(ip.source, ip.destination, icmp.payload())
            .unwrap(),
        icmp.checksum()
    );
    let mut out = [0u8; MAX_FRAME];
    let seen = handle(&q[..n], &b, &mut out);
    let Some(Seen::Answer(m)) = seen[1] else {
        panic!("{seen:?}")
    };
    let mut none = [0u8; MAX_FRAME];
    assert_eq!(
        handle(&out[..m], &a, &mut none),
        [Some(Seen::Neighbour { ip: b.ip, mac: B }), None]
    );
    // A corrupted checksum is ignored.
    out[m - 1] ^= 1;
    assert_eq!(handle(&out[..m], &a, &mut none), [None, None]);
}

#[test]
fn garbage_is_ignored() {
    let mut out = [0u8; MAX_FRAME];
    for len in 0..80 {
        let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
        let _ = handle(&junk, &us4(), &mut out);
        let mut arp = vec![0u8; len.max(14)];
        arp[12..14].copy_from_slice(&arp::ETHERTYPE_ARP.to_be_bytes());
        let _ = handle(&arp, &us4(), &mut out);
    }
}
